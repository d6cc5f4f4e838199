/// A 32-byte value: a SHA-256 digest, a nonce, or a TLS exporter value. The type guarantees the
/// length, so code that compares or encodes it never checks sizes again.
public struct Digest32: Hashable, Sendable, CustomStringConvertible {
    public static let size = 32
    public let bytes: [UInt8]

    /// Fails unless `bytes` has exactly 32 elements.
    public init?(_ bytes: [UInt8]) {
        guard bytes.count == Digest32.size else { return nil }
        self.bytes = bytes
    }

    init(unchecked bytes: [UInt8]) { self.bytes = bytes }

    public static let zero = Digest32(unchecked: [UInt8](repeating: 0, count: size))

    /// Lower-case hexadecimal.
    public var hex: String {
        let digits: [Character] = Array("0123456789abcdef")
        var s = ""
        s.reserveCapacity(64)
        for b in bytes { s.append(digits[Int(b >> 4)]); s.append(digits[Int(b & 0xF)]) }
        return s
    }

    /// Parses 64 hexadecimal digits.
    public init?(hex: String) {
        let chars = Array(hex.utf8)
        guard chars.count == 64 else { return nil }
        var out = [UInt8]()
        out.reserveCapacity(32)
        func nibble(_ c: UInt8) -> UInt8? {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
            default: return nil
            }
        }
        var i = 0
        while i < 64 {
            guard let hi = nibble(chars[i]), let lo = nibble(chars[i + 1]) else { return nil }
            out.append(hi << 4 | lo)
            i += 2
        }
        bytes = out
    }

    public var description: String { hex }
}
