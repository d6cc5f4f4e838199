/// Appends big-endian integers and length-prefixed fields to a growable byte buffer.
/// Encoding cannot fail for values that fit their fields; callers that build messages from
/// external input check limits first (see ``WireLimits``).
public struct ByteWriter: Sendable {
    public private(set) var bytes: [UInt8]

    public init(capacity: Int = 256) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    public var count: Int { bytes.count }

    public mutating func write(_ v: UInt8) { bytes.append(v) }
    public mutating func write(_ v: UInt16) { writeInteger(v) }
    public mutating func write(_ v: UInt32) { writeInteger(v) }
    public mutating func write(_ v: UInt64) { writeInteger(v) }


    mutating func writeInteger<T: FixedWidthInteger>(_ v: T) {
        withUnsafeBytes(of: v.bigEndian) { bytes.append(contentsOf: $0) }
    }

    /// Raw bytes, no length prefix (fixed-size fields).
    public mutating func write<C: Collection>(raw: C) where C.Element == UInt8 {
        bytes.append(contentsOf: raw)
    }

    public mutating func write(raw: UnsafeRawBufferPointer) {
        bytes.append(contentsOf: raw)
    }

    /// A byte string with a 32-bit length prefix.
    public mutating func write<C: Collection>(lengthPrefixed data: C) where C.Element == UInt8 {
        write(UInt32(data.count))
        bytes.append(contentsOf: data)
    }

    /// A UTF-8 string with a 16-bit length prefix, cut (on a character boundary) to at most
    /// `limit` bytes so the prefix always matches the bytes that follow.
    public mutating func write(string: String, limit: Int = Int(UInt16.max)) {
        var utf8 = Array(string.utf8)
        if utf8.count > limit {
            var end = min(limit, Int(UInt16.max))
            while end > 0 && utf8[end] & 0xC0 == 0x80 { end -= 1 }  // not inside a multi-byte character
            utf8 = Array(utf8[..<end])
        }
        write(UInt16(utf8.count))
        bytes.append(contentsOf: utf8)
    }

    /// Overwrites a 32-bit field written earlier (used to patch a frame's length).
    public mutating func patch(_ v: UInt32, at offset: Int) {
        withUnsafeBytes(of: v.bigEndian) { raw in
            for i in 0..<4 { bytes[offset + i] = raw[i] }
        }
    }

    public mutating func removeAll(keepingCapacity: Bool = true) {
        bytes.removeAll(keepingCapacity: keepingCapacity)
    }
}
