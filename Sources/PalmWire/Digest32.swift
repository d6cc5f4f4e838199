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

    /// The first 32 bytes of a buffer palm itself sized (a digest function's output buffer): a
    /// shorter one is a programming error, not input, and traps.
    public init(prefixOf buffer: [UInt8]) {
        precondition(buffer.count >= Digest32.size, "a digest buffer shorter than 32 bytes")
        bytes = buffer.count == Digest32.size ? buffer : Array(buffer.prefix(Digest32.size))
    }

    public static let zero = Digest32(unchecked: [UInt8](repeating: 0, count: size))

    /// 32 bytes from the system's cryptographically secure generator (nonces).
    public static func random() -> Digest32 {
        var g = SystemRandomNumberGenerator()
        return Digest32(unchecked: (0..<size).map { _ in UInt8.random(in: 0...255, using: &g) })
    }

    /// `count` bytes from the system's cryptographically secure generator (tokens).
    public static func randomBytes(_ count: Int) -> [UInt8] {
        var g = SystemRandomNumberGenerator()
        return (0..<count).map { _ in UInt8.random(in: 0...255, using: &g) }
    }

    /// Lower-case hexadecimal.
    public var hex: String { Hex.encode(bytes) }

    /// Parses 64 hexadecimal digits.
    public init?(hex: String) {
        guard let bytes = Hex.decode(hex), bytes.count == Digest32.size else { return nil }
        self.bytes = bytes
    }

    public var description: String { hex }
}
