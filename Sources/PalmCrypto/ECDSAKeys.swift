import COpenSSLShims

/// An ECDSA private key that signs with SHA-256 (DER signatures). Used for TLS, tickets,
/// attestation reports, manifests and audit entries. Refuses any non-EC key at load. Either a
/// PEM file's key, or one that never leaves its TPM (``init(external:)``).
public final class SigningKey: @unchecked Sendable {
    package let key: OpaquePointer
    /// Where the key lives: its file, or its TPM.
    public let location: String
    /// The external signer behind the key, if it is not in this process.
    let external: ExternalSignerBox?

    public init(pemFile path: String) throws {
        let key = try PEM.readPrivateKey(path)
        guard PEM.isECDSA(key) else {
            EVP_PKEY_free(key)
            throw CryptoError.notECDSA(path: path)
        }
        self.key = key
        location = path
        external = nil
    }

    init(adopting key: OpaquePointer, location: String, external: ExternalSignerBox?) {
        self.key = key
        self.location = location
        self.external = external
    }

    deinit { EVP_PKEY_free(key) }

    /// True when the private key is not in this process (a TPM holds it).
    public var isExternal: Bool { external != nil }

    /// The public half as a DER SubjectPublicKeyInfo.
    public func subjectPublicKeyInfo() throws -> [UInt8] { try VerifyingKey.subjectPublicKeyInfo(of: key) }

    public func sign(_ message: [UInt8]) throws -> [UInt8] {
        guard let md = EVP_MD_CTX_new() else { throw CryptoError.failure(detail: "EVP_MD_CTX_new") }
        defer { EVP_MD_CTX_free(md) }
        guard EVP_DigestSignInit(md, nil, EVP_sha256(), nil, key) == 1 else {
            throw CryptoError.failure(detail: "sign: \(OpenSSLErrors.summary())")
        }
        var length = 0
        guard message.withUnsafeBufferPointer({ EVP_DigestSign(md, nil, &length, $0.baseAddress, $0.count) }) == 1 else {
            throw CryptoError.failure(detail: "sign: \(OpenSSLErrors.summary())")
        }
        var signature = [UInt8](repeating: 0, count: length)
        guard message.withUnsafeBufferPointer({ EVP_DigestSign(md, &signature, &length, $0.baseAddress, $0.count) }) == 1 else {
            if let failure = lastExternalFailure {
                _ = OpenSSLErrors.drain()
                throw failure
            }
            throw CryptoError.failure(detail: "sign: \(OpenSSLErrors.summary())")
        }
        return Array(signature.prefix(length))
    }
}

/// An ECDSA public key, taken from a certificate, that verifies SHA-256 signatures.
public final class VerifyingKey: @unchecked Sendable {
    package let key: OpaquePointer

    /// The public key of the first certificate in a PEM file.
    public init(certificateFile path: String) throws {
        let cert = try PEM.readCertificate(path)
        defer { X509_free(cert) }
        guard let key = X509_get_pubkey(cert) else {
            throw CryptoError.invalidCertificate(path: path, detail: "no public key")
        }
        guard PEM.isECDSA(key) else {
            EVP_PKEY_free(key)
            throw CryptoError.notECDSA(path: path)
        }
        self.key = key
    }

    /// The public key of a certificate given as PEM text.
    public convenience init(certificatePEM pem: String) throws {
        let cert = try PEM.readCertificate(pem: pem)
        defer { X509_free(cert) }
        try self.init(x509: cert)
    }

    package init(x509 cert: OpaquePointer) throws {
        guard let key = X509_get_pubkey(cert) else { throw CryptoError.invalidCertificate(path: "<peer>", detail: "no public key") }
        guard PEM.isECDSA(key) else {
            EVP_PKEY_free(key)
            throw CryptoError.wrongKeyType
        }
        self.key = key
    }

    /// Takes ownership of an ECDSA `EVP_PKEY`.
    package init(adopting key: OpaquePointer) { self.key = key }

    deinit { EVP_PKEY_free(key) }

    /// True only for a valid signature by this key over `message`; malformed signatures are false.
    public func isValidSignature(_ signature: [UInt8], for message: [UInt8]) -> Bool {
        guard let md = EVP_MD_CTX_new() else { return false }
        defer { EVP_MD_CTX_free(md); ERR_clear_error() }
        guard EVP_DigestVerifyInit(md, nil, EVP_sha256(), nil, key) == 1 else { return false }
        return signature.withUnsafeBufferPointer { s in
            message.withUnsafeBufferPointer { m in
                EVP_DigestVerify(md, s.baseAddress, s.count, m.baseAddress, m.count) == 1
            }
        }
    }
}
