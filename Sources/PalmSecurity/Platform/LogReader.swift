import PalmCrypto
import PalmWire

/// A bounds-checked little-endian reader for the logs the kernel exposes (TCG event log, IMA):
/// every count and size is checked against what is left before anything is read or allocated.
struct LogReader {
    let bytes: [UInt8]
    let log: String
    private(set) var offset = 0

    init(_ bytes: [UInt8], log: String) {
        self.bytes = bytes
        self.log = log
    }

    var atEnd: Bool { offset >= bytes.count }

    /// Continues at `position` (a field inside something already read).
    mutating func skip(to position: Int) { offset = position }
    var remaining: Int { bytes.count - offset }

    mutating func bytes(_ n: Int, _ field: String) throws -> [UInt8] {
        guard n >= 0, n <= remaining else {
            throw PlatformLogError.truncated(log: log, field: field, offset: offset)
        }
        defer { offset += n }
        return Array(bytes[offset..<offset + n])
    }

    /// The next `n` bytes without copying them.
    mutating func slice(_ n: Int, _ field: String) throws -> ArraySlice<UInt8> {
        guard n >= 0, n <= remaining else {
            throw PlatformLogError.truncated(log: log, field: field, offset: offset)
        }
        defer { offset += n }
        return bytes[offset..<offset + n]
    }

    mutating func u8(_ field: String) throws -> UInt8 { try bytes(1, field)[0] }
    mutating func u16(_ field: String) throws -> UInt16 {
        let b = try bytes(2, field)
        return UInt16(b[0]) | UInt16(b[1]) << 8
    }
    mutating func u32(_ field: String) throws -> UInt32 {
        guard remaining >= 4 else { throw PlatformLogError.truncated(log: log, field: field, offset: offset) }
        defer { offset += 4 }
        return UInt32(bytes[offset]) | UInt32(bytes[offset + 1]) << 8 | UInt32(bytes[offset + 2]) << 16 | UInt32(bytes[offset + 3]) << 24
    }
}

/// Why a platform log was refused, with where in it.
public enum PlatformLogError: Error, Equatable, Sendable, CustomStringConvertible {
    case truncated(log: String, field: String, offset: Int)
    case invalid(log: String, field: String, offset: Int, detail: String)
    case tooManyEntries(log: String, limit: Int)

    public var description: String {
        switch self {
        case let .truncated(l, f, o): return "\(l): truncated at byte \(o) (\(f))"
        case let .invalid(l, f, o, d): return "\(l): invalid \(f) at byte \(o): \(d)"
        case let .tooManyEntries(l, n): return "\(l): more than \(n) entries"
        }
    }
}

/// SHA-256 PCR extension: new = SHA-256(old ‖ measurement).
func extend(_ pcr: Digest32, with measurement: Digest32) -> Digest32 {
    SHA256.hash(pcr.bytes + measurement.bytes)
}
