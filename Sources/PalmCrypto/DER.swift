/// The few DER encodings palm builds itself: lengths, unsigned INTEGERs, SEQUENCEs — enough to
/// hand OpenSSL a TPM's raw key material (ECDSA signatures as (r, s), public keys as points or
/// moduli) in the forms it parses.
package enum DER {
    package static func length(_ n: Int) -> [UInt8] {
        if n < 0x80 { return [UInt8(n)] }
        var bytes: [UInt8] = []
        var v = n
        while v > 0 { bytes.insert(UInt8(v & 0xFF), at: 0); v >>= 8 }
        return [0x80 | UInt8(bytes.count)] + bytes
    }

    package static func tlv(_ tag: UInt8, _ content: [UInt8]) -> [UInt8] { [tag] + length(content.count) + content }

    /// An INTEGER holding the unsigned big-endian number `bytes`.
    package static func unsignedInteger(_ bytes: [UInt8]) -> [UInt8] {
        var v = Array(bytes.drop(while: { $0 == 0 }))
        if v.isEmpty { v = [0] }
        if v[0] & 0x80 != 0 { v.insert(0, at: 0) }
        return tlv(0x02, v)
    }

    package static func sequence(_ parts: [UInt8]...) -> [UInt8] { tlv(0x30, parts.flatMap { $0 }) }
}

/// An ECDSA signature given as its two numbers (a TPM's form) in the DER form OpenSSL verifies.
public enum ECDSASignatureDER {
    public static func encode(r: [UInt8], s: [UInt8]) -> [UInt8] {
        DER.sequence(DER.unsignedInteger(r), DER.unsignedInteger(s))
    }
}
