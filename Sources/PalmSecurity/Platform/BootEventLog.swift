import PalmCrypto
import PalmWire

/// The measured-boot event log (TCG PC Client Platform Firmware Profile, crypto-agile format),
/// as firmware hands it to the kernel (`/sys/kernel/security/tpm0/binary_bios_measurements`).
///
/// ```text
///   first event (TCG_PCClientPCREvent, SHA-1 format):
///     pcr u32 | type u32 (EV_NO_ACTION) | sha1[20] | size u32 | "Spec ID Event03\0" spec header
///       spec header: platformClass u32 | minor u8 | major u8 | errata u8 | uintnSize u8 |
///                    n u32 | n × (algorithm u16 | digest size u16) | vendor size u8 | vendor
///   every further event (TCG_PCR_EVENT2):
///     pcr u32 | type u32 | count u32 | count × (algorithm u16 | digest) | size u32 | data
///   all little-endian
/// ```
/// Only the SHA-256 digests are kept; an event without one is refused (palm replays the SHA-256
/// bank). Decoding bounds every count and size by what is left of the log.
public struct BootEventLog: Sendable, Equatable {
    public struct Event: Sendable, Equatable {
        public var pcr: Int
        public var type: UInt32
        public var sha256: Digest32
        public var data: [UInt8]

        public init(pcr: Int, type: UInt32, sha256: Digest32, data: [UInt8]) {
            self.pcr = pcr
            self.type = type
            self.sha256 = sha256
            self.data = data
        }

        /// The event type's name from the profile (`EV_IPL`, `EV_SEPARATOR`, …) or its number.
        public var typeName: String { BootEventLog.typeNames[type] ?? String(format: "0x%08x", type) }

        /// A short readable form of the event's data where the profile makes it text (the
        /// kernel command line, a loaded image's path), for policies and refusals.
        public var summary: String {
            let printable = data.prefix(160).filter { $0 >= 0x20 && $0 < 0x7F }
            return printable.count * 4 >= min(data.count, 160) * 3 ? String(decoding: printable, as: UTF8.self) : "\(data.count) bytes"
        }
    }

    static let evNoAction: UInt32 = 0x3
    static let typeNames: [UInt32: String] = [
        0x0: "EV_PREBOOT_CERT", 0x1: "EV_POST_CODE", 0x3: "EV_NO_ACTION", 0x4: "EV_SEPARATOR", 0x5: "EV_ACTION",
        0x6: "EV_EVENT_TAG", 0x7: "EV_S_CRTM_CONTENTS", 0x8: "EV_S_CRTM_VERSION", 0x9: "EV_CPU_MICROCODE",
        0xA: "EV_PLATFORM_CONFIG_FLAGS", 0xB: "EV_TABLE_OF_DEVICES", 0xC: "EV_COMPACT_HASH", 0xD: "EV_IPL",
        0xE: "EV_IPL_PARTITION_DATA", 0xF: "EV_NONHOST_CODE", 0x10: "EV_NONHOST_CONFIG", 0x11: "EV_NONHOST_INFO",
        0x12: "EV_OMIT_BOOT_DEVICE_EVENTS", 0x8000_0001: "EV_EFI_VARIABLE_DRIVER_CONFIG", 0x8000_0002: "EV_EFI_VARIABLE_BOOT",
        0x8000_0003: "EV_EFI_BOOT_SERVICES_APPLICATION", 0x8000_0004: "EV_EFI_BOOT_SERVICES_DRIVER",
        0x8000_0005: "EV_EFI_RUNTIME_SERVICES_DRIVER", 0x8000_0006: "EV_EFI_GPT_EVENT", 0x8000_0007: "EV_EFI_ACTION",
        0x8000_0008: "EV_EFI_PLATFORM_FIRMWARE_BLOB", 0x8000_0009: "EV_EFI_HANDOFF_TABLES",
        0x8000_00E0: "EV_EFI_VARIABLE_AUTHORITY",
    ]

    static let sha256Algorithm: UInt16 = 0x000B
    static let sha1Algorithm: UInt16 = 0x0004
    /// Events one log may hold (a UEFI boot logs a few hundred).
    public static let maxEvents = 20_000

    /// Every event that extends a PCR (EV_NO_ACTION events are informational and not kept).
    public let events: [Event]
    /// The locality the platform started in (PCR 0's initial value), from a StartupLocality event.
    public let startupLocality: UInt8

    public init(events: [Event], startupLocality: UInt8 = 0) {
        self.events = events
        self.startupLocality = startupLocality
    }

    /// An empty log (a platform without measured boot).
    public static let empty = BootEventLog(events: [])

    public init(decoding bytes: [UInt8]) throws {
        guard !bytes.isEmpty else {
            self = .empty
            return
        }
        let name = "boot event log"
        var r = LogReader(bytes, log: name)
        // The header event: SHA-1 format, carrying the digest sizes of every algorithm used.
        _ = try r.u32("pcr")
        let headerType = try r.u32("type")
        _ = try r.bytes(20, "sha1")
        let headerSize = Int(try r.u32("size"))
        var header = LogReader(try r.bytes(headerSize, "spec header"), log: name)
        let signature = try header.bytes(16, "signature")
        guard headerType == Self.evNoAction, signature == Array("Spec ID Event03\0".utf8) else {
            throw PlatformLogError.invalid(log: name, field: "header", offset: 0, detail: "not a crypto-agile log (no Spec ID Event03)")
        }
        _ = try header.bytes(8, "spec version")
        let algorithms = Int(try header.u32("algorithms"))
        guard (1...16).contains(algorithms) else {
            throw PlatformLogError.invalid(log: name, field: "algorithms", offset: headerSize, detail: "\(algorithms)")
        }
        var sizes: [UInt16: Int] = [:]
        for _ in 0..<algorithms {
            let algorithm = try header.u16("algorithm")
            let size = Int(try header.u16("digest size"))
            guard (1...64).contains(size) else {
                throw PlatformLogError.invalid(log: name, field: "digest size", offset: 0, detail: "\(size)")
            }
            sizes[algorithm] = size
        }
        guard sizes[Self.sha256Algorithm] == 32 else {
            throw PlatformLogError.invalid(log: name, field: "algorithms", offset: 0, detail: "no SHA-256 digests")
        }
        var events: [Event] = []
        var locality: UInt8 = 0
        while !r.atEnd {
            guard events.count < Self.maxEvents else { throw PlatformLogError.tooManyEntries(log: name, limit: Self.maxEvents) }
            let at = r.offset
            let pcr = Int(try r.u32("pcr"))
            let type = try r.u32("type")
            let count = Int(try r.u32("digest count"))
            guard (1...16).contains(count) else {
                throw PlatformLogError.invalid(log: name, field: "digest count", offset: at, detail: "\(count)")
            }
            var sha256: Digest32?
            for _ in 0..<count {
                let algorithm = try r.u16("algorithm")
                guard let size = sizes[algorithm] else {
                    throw PlatformLogError.invalid(log: name, field: "algorithm", offset: at, detail: String(format: "0x%04x not in the header", algorithm))
                }
                let digest = try r.bytes(size, "digest")
                if algorithm == Self.sha256Algorithm { sha256 = Digest32(digest) }
            }
            let data = try r.bytes(Int(try r.u32("event size")), "event data")
            if type == Self.evNoAction {
                // Informational; only StartupLocality changes a PCR's starting value.
                if data.count == 17, data.prefix(16) == ArraySlice("StartupLocality\0".utf8) { locality = data[16] }
                continue
            }
            guard pcr < PlatformEvidence.pcrCount else {
                throw PlatformLogError.invalid(log: name, field: "pcr", offset: at, detail: "\(pcr)")
            }
            guard let sha256 else {
                throw PlatformLogError.invalid(log: name, field: "digests", offset: at, detail: "event without a SHA-256 digest")
            }
            events.append(Event(pcr: pcr, type: type, sha256: sha256, data: data))
        }
        self.events = events
        startupLocality = locality
    }

    /// The bytes this log decodes from (crypto-agile, SHA-256 only): what tests and the rig build.
    public func encoded() -> [UInt8] {
        func le32(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
        func le16(_ v: UInt16) -> [UInt8] { [UInt8(v & 0xFF), UInt8(v >> 8)] }
        var spec = Array("Spec ID Event03\0".utf8) + le32(0) + [0, 2, 0, 2] + le32(1) + le16(Self.sha256Algorithm) + le16(32) + [0]
        spec = le32(0) + le32(Self.evNoAction) + [UInt8](repeating: 0, count: 20) + le32(UInt32(spec.count)) + spec
        var out = spec
        if startupLocality != 0 {
            let data = Array("StartupLocality\0".utf8) + [startupLocality]
            out += le32(0) + le32(Self.evNoAction) + le32(1) + le16(Self.sha256Algorithm) + [UInt8](repeating: 0, count: 32)
                + le32(UInt32(data.count)) + data
        }
        for e in events {
            out += le32(UInt32(e.pcr)) + le32(e.type) + le32(1) + le16(Self.sha256Algorithm) + e.sha256.bytes + le32(UInt32(e.data.count)) + e.data
        }
        return out
    }

    /// The SHA-256 PCR values this log replays to, for `pcrs` (a PCR no event extends keeps
    /// its reset value: zero, or the startup locality for PCR 0).
    public func replay(_ pcrs: [Int]) -> [Int: Digest32] {
        var values: [Int: Digest32] = [:]
        for pcr in pcrs {
            var bytes = [UInt8](repeating: 0, count: 32)
            if pcr == 0 { bytes[31] = startupLocality }
            values[pcr] = Digest32(bytes)
        }
        for e in events {
            if let v = values[e.pcr] { values[e.pcr] = extend(v, with: e.sha256) }
        }
        return values
    }
}
