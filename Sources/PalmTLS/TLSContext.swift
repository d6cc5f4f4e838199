import PalmCrypto
import COpenSSLShims
#if canImport(Glibc)
import Glibc
#endif

/// A configured OpenSSL `SSL_CTX` shared by every connection of an endpoint.
///
/// Guarantees, enforced here once for all connections:
/// * TLS 1.3 only (minimum = maximum = 1.3); no session tickets, no resumption, no compression;
///   AEAD cipher suites only.
/// * Our own certificate and key are ECDSA and match (checked at load, so an agent refuses to start
///   with a wrong credential rather than failing its first migration).
/// * Peers must present a certificate chaining to ``TLSConfiguration/trustRoots``, with an ECDSA
///   leaf, the right extended key usage, inside its validity window and — when a CRL is configured —
///   not revoked.
/// Thread-safe once built: connections on any thread may share it.
public final class TLSContext: @unchecked Sendable {
    let ctx: OpaquePointer
    public let configuration: TLSConfiguration
    /// The identity our own certificate presents.
    public let localIdentity: CertificateIdentity
    /// The private key that signs our handshakes (a file's, or one in the TPM).
    public let key: SigningKey

    public static let cipherSuites = "TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256"
    public static let groups = "X25519:P-256:P-384"

    /// A context whose handshakes are signed by `key` when given (a key in the TPM), else by the
    /// configuration's key file.
    public init(configuration: TLSConfiguration, key given: SigningKey? = nil) throws {
        // OpenSSL writes to sockets with write(2): a peer that vanished would raise SIGPIPE and kill
        // the agent. palm reports that as TLSError.connectionLost instead.
        TLSContext.ignoreSIGPIPE
        _ = OpenSSLErrors.drain()
        guard let ctx = SSL_CTX_new(TLS_method()) else {
            throw TLSError.tlsFailure(detail: "SSL_CTX_new: \(OpenSSLErrors.summary())")
        }
        self.ctx = ctx
        self.configuration = configuration

        // Fail closed on any configuration error below: deinit frees ctx.
        guard palm_ssl_ctx_set_tls13_only(ctx) == 1,
              SSL_CTX_set_ciphersuites(ctx, TLSContext.cipherSuites) == 1,
              palm_ssl_ctx_set1_groups_list(ctx, TLSContext.groups) == 1 else {
            throw TLSError.tlsFailure(detail: "cannot restrict the context to TLS 1.3: \(OpenSSLErrors.summary())")
        }
        palm_ssl_ctx_harden(ctx)
        palm_ssl_ctx_set_io_modes(ctx)
        SSL_CTX_set_num_tickets(ctx, 0)

        let chain = configuration.certificateChain
        let leaf = try TLSError.reporting { try PEM.readCertificate(chain) }
        defer { X509_free(leaf) }
        guard let leafKey = X509_get0_pubkey(leaf), PEM.isECDSA(leafKey) else {
            throw TLSError.localKeyNotECDSA(path: chain)
        }
        localIdentity = CertificateIdentity(certificate: leaf)
        guard SSL_CTX_use_certificate_chain_file(ctx, chain) == 1 else {
            throw TLSError.invalidCertificate(path: chain, detail: OpenSSLErrors.summary())
        }
        if given == nil && configuration.keyIsInTPM { throw TLSError.keyNeedsTPM }
        key = try given ?? TLSError.reporting { try SigningKey(pemFile: configuration.privateKey) }
        guard SSL_CTX_use_PrivateKey(ctx, key.key) == 1, SSL_CTX_check_private_key(ctx) == 1 else {
            _ = OpenSSLErrors.drain()
            throw TLSError.keyMismatch(certificate: chain, key: key.location)
        }

        let roots = try TLSError.reporting { try PEM.readCertificate(configuration.trustRoots) }  // a readable, parseable file
        X509_free(roots)
        guard SSL_CTX_load_verify_locations(ctx, configuration.trustRoots, nil) == 1 else {
            throw TLSError.invalidCertificate(path: configuration.trustRoots, detail: OpenSSLErrors.summary())
        }

        if let crlPath = configuration.crl {
            let store = SSL_CTX_get_cert_store(ctx)
            for crl in try TLSError.reporting({ try PEM.readCRLs(crlPath) }) {
                defer { X509_CRL_free(crl) }
                guard X509_STORE_add_crl(store, crl) == 1 else {
                    throw TLSError.invalidCRL(path: crlPath, detail: OpenSSLErrors.summary())
                }
            }
            X509_STORE_set_flags(store, UInt(X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL))
        }
    }

    deinit { SSL_CTX_free(ctx) }

    private static let ignoreSIGPIPE: Void = { _ = signal(SIGPIPE, SIG_IGN) }()
}

/// Called by OpenSSL for every certificate of the peer's chain. Beyond OpenSSL's own checks it
/// refuses a leaf whose key is not ECDSA, reported as X509_V_ERR_APPLICATION_VERIFICATION — the
/// only use palm makes of that code, so ``TLSError/wrongKeyType`` is unambiguous.
let palmVerifyCallback: @convention(c) (Int32, OpaquePointer?) -> Int32 = { preverifyOK, store in
    guard preverifyOK == 1, let store else { return preverifyOK }
    if X509_STORE_CTX_get_error_depth(store) == 0,
       let cert = X509_STORE_CTX_get_current_cert(store),
       let key = X509_get0_pubkey(cert),
       !PEM.isECDSA(key) {
        X509_STORE_CTX_set_error(store, palm_x509_v_err_application_verification())
        return 0
    }
    return 1
}
