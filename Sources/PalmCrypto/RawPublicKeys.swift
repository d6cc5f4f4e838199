import COpenSSLShims

extension VerifyingKey {
    /// A NIST P-256 public key given as its point (x, y; 32 bytes each), e.g. a TPM key's.
    public convenience init(p256X x: [UInt8], y: [UInt8]) throws {
        guard x.count == 32, y.count == 32 else { throw CryptoError.failure(detail: "a P-256 point has 32-byte coordinates") }
        // SubjectPublicKeyInfo { id-ecPublicKey, prime256v1 } with the uncompressed point.
        let algorithm: [UInt8] = [0x30, 0x13, 0x06, 0x07, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01,
                                  0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07]
        let spki = DER.sequence(algorithm, DER.tlv(0x03, [0x00, 0x04] + x + y))
        try self.init(subjectPublicKeyInfo: spki)
    }

    /// The key as a DER SubjectPublicKeyInfo (what a certificate carries).
    public func subjectPublicKeyInfo() throws -> [UInt8] {
        try Self.subjectPublicKeyInfo(of: key)
    }

    static func subjectPublicKeyInfo(of key: OpaquePointer) throws -> [UInt8] {
        let length = i2d_PUBKEY(key, nil)
        guard length > 0 else { throw CryptoError.failure(detail: "i2d_PUBKEY: \(OpenSSLErrors.summary())") }
        var out = [UInt8](repeating: 0, count: Int(length))
        let written = out.withUnsafeMutableBufferPointer { b -> Int32 in
            var p: UnsafeMutablePointer<UInt8>? = b.baseAddress
            return i2d_PUBKEY(key, &p)
        }
        guard written == length else { throw CryptoError.failure(detail: "i2d_PUBKEY wrote \(written) of \(length) bytes") }
        return out
    }

    package convenience init(subjectPublicKeyInfo spki: [UInt8]) throws {
        let key: OpaquePointer? = spki.withUnsafeBufferPointer { b in
            var p: UnsafePointer<UInt8>? = b.baseAddress
            return d2i_PUBKEY(nil, &p, b.count)
        }
        guard let key else { throw CryptoError.failure(detail: "not a public key: \(OpenSSLErrors.summary())") }
        guard PEM.isECDSA(key) else {
            EVP_PKEY_free(key)
            throw CryptoError.wrongKeyType
        }
        self.init(adopting: key)
    }
}

/// An RSA public key that encrypts with OAEP (SHA-256) — what a TPM's RSA endorsement key is
/// to someone who wants only that TPM to read a secret (credential activation).
public final class RSAEncryptionKey: @unchecked Sendable {
    let key: OpaquePointer

    /// The key with modulus `n` (big-endian) and public exponent `e`.
    public init(modulus n: [UInt8], exponent e: UInt32) throws {
        var eBytes: [UInt8] = []
        var v = e
        while v > 0 { eBytes.insert(UInt8(v & 0xFF), at: 0); v >>= 8 }
        // SubjectPublicKeyInfo { rsaEncryption, NULL } with RSAPublicKey { n, e }.
        let algorithm: [UInt8] = [0x30, 0x0D, 0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01, 0x05, 0x00]
        let spki = DER.sequence(algorithm, DER.tlv(0x03, [0x00] + DER.sequence(DER.unsignedInteger(n), DER.unsignedInteger(eBytes))))
        let key: OpaquePointer? = spki.withUnsafeBufferPointer { b in
            var p: UnsafePointer<UInt8>? = b.baseAddress
            return d2i_PUBKEY(nil, &p, b.count)
        }
        guard let key else { throw CryptoError.failure(detail: "not an RSA key: \(OpenSSLErrors.summary())") }
        self.key = key
    }

    deinit { EVP_PKEY_free(key) }

    /// RSAES-OAEP with SHA-256 (hash and MGF1) and `label` (a TPM wants its labels NUL-terminated).
    public func encryptOAEP(_ plaintext: [UInt8], label: [UInt8]) throws -> [UInt8] {
        guard let ctx = EVP_PKEY_CTX_new(key, nil) else { throw CryptoError.failure(detail: "EVP_PKEY_CTX_new") }
        defer { EVP_PKEY_CTX_free(ctx) }
        guard EVP_PKEY_encrypt_init(ctx) == 1, EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) == 1,
              EVP_PKEY_CTX_set_rsa_oaep_md(ctx, EVP_sha256()) == 1, EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, EVP_sha256()) == 1 else {
            throw CryptoError.failure(detail: "OAEP set-up: \(OpenSSLErrors.summary())")
        }
        // The context takes ownership of a label allocated by OpenSSL.
        guard let l = CRYPTO_malloc(max(label.count, 1), nil, 0) else { throw CryptoError.failure(detail: "CRYPTO_malloc") }
        label.withUnsafeBytes { l.copyMemory(from: $0.baseAddress!, byteCount: label.count) }
        guard EVP_PKEY_CTX_set0_rsa_oaep_label(ctx, l, Int32(label.count)) == 1 else {
            CRYPTO_free(l, nil, 0)
            throw CryptoError.failure(detail: "OAEP label: \(OpenSSLErrors.summary())")
        }
        var length = 0
        guard plaintext.withUnsafeBufferPointer({ EVP_PKEY_encrypt(ctx, nil, &length, $0.baseAddress, $0.count) }) == 1 else {
            throw CryptoError.failure(detail: "OAEP: \(OpenSSLErrors.summary())")
        }
        var out = [UInt8](repeating: 0, count: length)
        guard plaintext.withUnsafeBufferPointer({ EVP_PKEY_encrypt(ctx, &out, &length, $0.baseAddress, $0.count) }) == 1 else {
            throw CryptoError.failure(detail: "OAEP: \(OpenSSLErrors.summary())")
        }
        return Array(out.prefix(length))
    }
}

/// AES-128 in CFB mode (full-block feedback, CFB128) — the TPM's parameter and credential cipher.
public enum AES128CFB {
    public static func encrypt(_ plaintext: [UInt8], key: [UInt8], iv: [UInt8] = [UInt8](repeating: 0, count: 16)) throws -> [UInt8] {
        guard key.count == 16, iv.count == 16 else { throw CryptoError.failure(detail: "AES-128-CFB needs a 16-byte key and IV") }
        guard let ctx = EVP_CIPHER_CTX_new() else { throw CryptoError.failure(detail: "EVP_CIPHER_CTX_new") }
        defer { EVP_CIPHER_CTX_free(ctx) }
        guard EVP_EncryptInit_ex(ctx, EVP_aes_128_cfb128(), nil, key, iv) == 1 else {
            throw CryptoError.failure(detail: "AES-128-CFB: \(OpenSSLErrors.summary())")
        }
        var out = [UInt8](repeating: 0, count: plaintext.count + 16)
        var n: Int32 = 0, m: Int32 = 0
        guard plaintext.withUnsafeBufferPointer({ EVP_EncryptUpdate(ctx, &out, &n, $0.baseAddress, Int32($0.count)) }) == 1,
              out.withUnsafeMutableBufferPointer({ EVP_EncryptFinal_ex(ctx, $0.baseAddress! + Int(n), &m) }) == 1 else {
            throw CryptoError.failure(detail: "AES-128-CFB: \(OpenSSLErrors.summary())")
        }
        return Array(out.prefix(Int(n + m)))
    }
}
