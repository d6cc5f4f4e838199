import COpenSSLShims
import PalmWire

/// HMAC-SHA-256 (OpenSSL) and constant-time comparison, for values one side derives from a
/// shared secret and the other checks (e.g. the proof a page stream presents in JOIN).
public enum HMACSHA256 {
    /// HMAC-SHA-256 of `message` under `key`.
    public static func authenticate(key: [UInt8], message: [UInt8]) -> Digest32 {
        var out = [UInt8](repeating: 0, count: Digest32.size)
        var length: UInt32 = 0
        let ok = key.withUnsafeBytes { k in
            message.withUnsafeBufferPointer { m in
                HMAC(EVP_sha256(), k.baseAddress, Int32(k.count), m.baseAddress, m.count, &out, &length)
            }
        }
        // HMAC fails only without memory or without SHA-256; a zeroed tag then never verifies
        // against a correctly computed one.
        guard ok != nil, length == 32, let tag = Digest32(out) else { return .zero }
        return tag
    }
}

extension Digest32 {
    /// Compares in time independent of where the values differ.
    public func constantTimeEquals(_ other: Digest32) -> Bool {
        bytes.withUnsafeBytes { a in other.bytes.withUnsafeBytes { b in CRYPTO_memcmp(a.baseAddress, b.baseAddress, Digest32.size) == 0 } }
    }
}
