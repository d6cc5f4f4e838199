import PalmHypervisor
import PalmWire

/// What a Xen source sends in CONFIG's platform field: the page layout, the domain's libxl
/// configuration (JSON, as `xl list -l` prints it) and its CPUID/MSR policy in the migration
/// stream's serialised form. Static for the whole migration. Encoded big-endian like the rest of
/// palm's wire; version 1.
struct XenPlatformConfig: Equatable {
    static let version: UInt8 = 1
    var layout: XenPageLayout
    var configJSON: [UInt8]
    var cpuid: [UInt8]
    var msrs: [UInt8]
    var xenMajor: UInt32
    var xenMinor: UInt32

    func encode() -> [UInt8] {
        var w = ByteWriter(capacity: 1024 + configJSON.count + cpuid.count + msrs.count)
        w.write(Self.version)
        w.write(xenMajor)
        w.write(xenMinor)
        layout.encode(into: &w)
        w.write(lengthPrefixed: configJSON)
        w.write(lengthPrefixed: cpuid)
        w.write(lengthPrefixed: msrs)
        return w.bytes
    }

    static func decode(_ bytes: [UInt8]) throws -> XenPlatformConfig {
        try bytes.withUnsafeBytes { buf in
            var r = ByteReader(buf)
            let v = try r.readUInt8("xen.version")
            guard v == version else {
                throw HypervisorError.corruptImage(bytes.isEmpty ? "the source sent no Xen platform description (is it a xen host?)"
                                                                 : "Xen platform description version \(v), expected \(version)")
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
            guard r.remaining == 0 else { throw HypervisorError.corruptImage("\(r.remaining) trailing bytes after the Xen platform description") }
            return XenPlatformConfig(layout: layout, configJSON: json, cpuid: cpuid, msrs: msrs, xenMajor: major, xenMinor: minor)
        }
    }
}
