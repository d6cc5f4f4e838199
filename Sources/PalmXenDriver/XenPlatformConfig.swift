import PalmHypervisor
import PalmWire

/// What a Xen source sends in CONFIG's platform field: the page layout, the domain's libxl
/// configuration (JSON, as `xl list -l` prints it) and its CPUID/MSR policy in the migration
/// stream's serialised form, and — version 2 — the guest's state when the source opened it, from
/// which the destination builds the domain before the hand-off. Static for the whole migration.
/// Encoded big-endian like the rest of palm's wire; a destination reads versions 1 and 2.
///
/// ```text
///   u8 version (2) · u32 xen major · u32 xen minor · layout · [u32 len · bytes] config JSON
///   · [u32 len · bytes] CPUID policy · [u32 len · bytes] MSR policy
///   · [u32 len · bytes] provisional XenDomainState (length 0: none)            ← version 2 only
/// ```
struct XenPlatformConfig: Equatable {
    static let version: UInt8 = 2
    /// What CONFIG's platform field may carry (WireLimits.maxPlatformConfig).
    static let maxEncodedSize = 64 << 10
    var layout: XenPageLayout
    var configJSON: [UInt8]
    var cpuid: [UInt8]
    var msrs: [UInt8]
    var xenMajor: UInt32
    var xenMinor: UInt32
    /// The running guest's state when the source opened it (nil: the destination builds at the end).
    /// Decoded, and so checked, once — when CONFIG arrives, not when the domain is built.
    var provisionalState: XenDomainState?

    func encode() -> [UInt8] {
        var w = ByteWriter(capacity: 1024 + configJSON.count + cpuid.count + msrs.count)
        w.write(Self.version)
        w.write(xenMajor)
        w.write(xenMinor)
        layout.encode(into: &w)
        w.write(lengthPrefixed: configJSON)
        w.write(lengthPrefixed: cpuid)
        w.write(lengthPrefixed: msrs)
        w.write(lengthPrefixed: provisionalState?.encode() ?? [])
        return w.bytes
    }

    static func decode(_ bytes: [UInt8]) throws -> XenPlatformConfig {
        try bytes.withUnsafeBytes { buf in
            var r = ByteReader(buf)
            let v = try r.readUInt8("xen.version")
            guard v == 1 || v == version else {
                throw HypervisorError.corruptImage(bytes.isEmpty ? "the source sent no Xen platform description (is it a xen host?)"
                                                                 : "Xen platform description version \(v), expected 1 or \(version)")
            }
            let major = try r.readUInt32("xen.major")
            let minor = try r.readUInt32("xen.minor")
            let layout = try XenPageLayout.decode(from: &r)
            let json = try r.readLengthPrefixed("xen.config", limit: 48 << 10)
            let cpuid = try r.readLengthPrefixed("xen.cpuid", limit: 16 << 10)
            let msrs = try r.readLengthPrefixed("xen.msrs", limit: 4 << 10)
            guard cpuid.count % 24 == 0, msrs.count % 16 == 0 else {
                throw HypervisorError.corruptImage("CPU policy sizes \(cpuid.count)/\(msrs.count) are not whole entries")
            }
            var provisional: XenDomainState?
            if v >= 2 {
                let state = try r.readLengthPrefixed("xen.provisional", limit: maxEncodedSize)
                if !state.isEmpty { provisional = try XenDomainState.decode(state) }
            }
            guard r.remaining == 0 else { throw HypervisorError.corruptImage("\(r.remaining) trailing bytes after the Xen platform description") }
            return XenPlatformConfig(layout: layout, configJSON: json, cpuid: cpuid, msrs: msrs, xenMajor: major, xenMinor: minor,
                                     provisionalState: provisional)
        }
    }
}
