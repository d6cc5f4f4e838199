/// A bounds-checked cursor over received bytes. Every read checks the remaining length first and
/// throws ``WireError/truncated(field:needed:available:)`` instead of reading past the end, and
/// every variable-length read is checked against an explicit limit before any allocation.
public struct ByteReader {
    public let buffer: UnsafeRawBufferPointer
    public private(set) var offset: Int = 0

    public init(_ buffer: UnsafeRawBufferPointer) { self.buffer = buffer }

    public var remaining: Int { buffer.count - offset }

    mutating func need(_ n: Int, _ field: String) throws {
        guard n >= 0, remaining >= n else {
            throw WireError.truncated(field: field, needed: n, available: remaining)
        }
    }


    mutating func readInteger<T: FixedWidthInteger>(_ field: String, as: T.Type = T.self) throws -> T {
        let size = MemoryLayout<T>.size
        try need(size, field)
        var v: T = 0
        withUnsafeMutableBytes(of: &v) { dst in
            dst.copyMemory(from: UnsafeRawBufferPointer(rebasing: buffer[offset..<offset + size]))
        }
        offset += size
        return T(bigEndian: v)
    }

    public mutating func readUInt8(_ field: String) throws -> UInt8 { try readInteger(field) }
    public mutating func readUInt16(_ field: String) throws -> UInt16 { try readInteger(field) }
    public mutating func readUInt32(_ field: String) throws -> UInt32 { try readInteger(field) }
    public mutating func readUInt64(_ field: String) throws -> UInt64 { try readInteger(field) }

    /// A view of the next `count` bytes, valid as long as the underlying buffer.
    public mutating func readView(_ count: Int, _ field: String) throws -> UnsafeRawBufferPointer {
        try need(count, field)
        let view = UnsafeRawBufferPointer(rebasing: buffer[offset..<offset + count])
        offset += count
        return view
    }

    /// Exactly `count` bytes, copied.
    public mutating func readBytes(_ count: Int, _ field: String) throws -> [UInt8] {
        Array(try readView(count, field))
    }

    /// A fixed-size 32-byte field (digests, nonces).
    public mutating func readDigest(_ field: String) throws -> Digest32 {
        Digest32(unchecked: try readBytes(Digest32.size, field))
    }

    /// A byte string with a 32-bit length prefix, at most `limit` bytes long.
    public mutating func readLengthPrefixed(_ field: String, limit: Int) throws -> [UInt8] {
        let length = try readUInt32(field + ".length")
        guard length <= limit else { throw WireError.fieldTooLong(field: field, length: Int(length), limit: limit) }
        return try readBytes(Int(length), field)
    }

    /// A UTF-8 string with a 16-bit length prefix, at most `limit` bytes long.
    public mutating func readString(_ field: String, limit: Int) throws -> String {
        let length = Int(try readUInt16(field + ".length"))
        guard length <= limit else { throw WireError.fieldTooLong(field: field, length: length, limit: limit) }
        let view = try readView(length, field)
        guard let s = String(validating: view, as: UTF8.self) else { throw WireError.invalidUTF8(field: field) }
        return s
    }

    /// Throws unless every byte was consumed.
    public func expectEnd(_ message: MessageType) throws {
        if remaining != 0 { throw WireError.trailingBytes(message: message, count: remaining) }
    }
}
