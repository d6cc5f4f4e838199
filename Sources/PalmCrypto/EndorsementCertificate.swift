import COpenSSLShims

/// A TPM's endorsement key certificate (DER, as the TPM keeps it in NV), checked against the
/// TPM manufacturers' CAs an operator trusts.
public struct EndorsementCertificate: Sendable {
    public let der: [UInt8]

    public init(der: [UInt8]) { self.der = der }

    public enum Refusal: Error, Equatable, Sendable, CustomStringConvertible {
        case malformed(String)
        case untrusted(String)
        case notRSA
        public var description: String {
            switch self {
            case let .malformed(d): return "the EK certificate cannot be read: \(d)"
            case let .untrusted(d): return "the EK certificate does not chain to a trusted TPM manufacturer CA: \(d)"
            case .notRSA: return "the EK certificate's key is not RSA"
            }
        }
    }

    private func withCertificate<R>(_ body: (OpaquePointer) throws -> R) throws -> R {
        let cert: OpaquePointer? = der.withUnsafeBufferPointer { b in
            var p: UnsafePointer<UInt8>? = b.baseAddress
            return d2i_X509(nil, &p, b.count)
        }
        guard let cert else { throw Refusal.malformed(OpenSSLErrors.summary("not DER X.509")) }
        defer { X509_free(cert) }
        return try body(cert)
    }

    /// The subject, one line (RFC 2253).
    public func subject() throws -> String {
        try withCertificate { cert in CertificateIdentity.rfc2253(X509_get_subject_name(cert)) }
    }

    /// Verifies the chain to one of `anchors` (PEM files of root CAs; intermediates may be in
    /// them too, or in `intermediates`). Throws ``Refusal/untrusted(_:)`` naming OpenSSL's reason.
    public func verify(anchors: [String], intermediates: [String] = []) throws {
        try withCertificate { cert in
            guard let store = X509_STORE_new() else { throw Refusal.untrusted("X509_STORE_new") }
            defer { X509_STORE_free(store) }
            for file in anchors {
                guard X509_STORE_load_file(store, file) == 1 else { throw Refusal.untrusted("cannot load \(file): \(OpenSSLErrors.summary())") }
            }
            guard let untrusted = OPENSSL_sk_new_null() else { throw Refusal.untrusted("no memory") }
            var loaded: [OpaquePointer] = []
            defer {
                OPENSSL_sk_free(untrusted)
                loaded.forEach { X509_free($0) }
            }
            for file in intermediates {
                let c = try PEM.readCertificate(file)
                loaded.append(c)
                OPENSSL_sk_push(untrusted, UnsafeRawPointer(c))
            }
            guard let ctx = X509_STORE_CTX_new() else { throw Refusal.untrusted("X509_STORE_CTX_new") }
            defer { X509_STORE_CTX_free(ctx) }
            guard X509_STORE_CTX_init(ctx, store, cert, untrusted) == 1 else { throw Refusal.untrusted(OpenSSLErrors.summary()) }
            guard X509_verify_cert(ctx) == 1 else {
                let code = X509_STORE_CTX_get_error(ctx)
                _ = OpenSSLErrors.drain()
                throw Refusal.untrusted(String(cString: X509_verify_cert_error_string(Int(code))))
            }
        }
    }

    /// The certified RSA key's modulus (big-endian, no leading zero).
    public func rsaModulus() throws -> [UInt8] {
        try withCertificate { cert in
            guard let key = X509_get0_pubkey(cert), EVP_PKEY_get_base_id(key) == EVP_PKEY_RSA else { throw Refusal.notRSA }
            var n: OpaquePointer? = nil
            guard EVP_PKEY_get_bn_param(key, "n", &n) == 1, let n else { throw Refusal.notRSA }
            defer { BN_free(n) }
            var out = [UInt8](repeating: 0, count: Int((BN_num_bits(n) + 7) / 8))
            _ = BN_bn2bin(n, &out)
            return out
        }
    }
}
