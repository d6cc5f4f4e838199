/// Everything that can go wrong in PalmTLS, named so an operator can act on it.
///
/// Cases in the first group are decided by *this* side while verifying the peer's certificate;
/// ``rejectedByPeer(_:)`` means the *peer* refused us and says why with its alert.
public enum TLSError: Error, Equatable, Sendable {
    // Verification of the peer, decided here.
    /// The peer presented no certificate (clients must; palm has no anonymous peers).
    case noPeerCertificate
    /// The peer's certificate does not chain to the cluster CA.
    case unknownCA(detail: String)
    case certificateExpired
    case certificateNotYetValid
    /// The peer's certificate is on the configured CRL.
    case certificateRevoked
    /// The peer's leaf key is not ECDSA (RSA and others are refused even when the CA signed them).
    case wrongKeyType
    /// The certificate lacks the extended key usage its side needs (serverAuth / clientAuth).
    case wrongPurpose
    /// The server's certificate names neither the expected host name nor the address.
    case serverNameMismatch(expected: String)
    /// CRL checking is configured but no valid CRL covers the issuer.
    case crlUnavailable(detail: String)
    /// Any other X.509 verification failure, with OpenSSL's code and text.
    case certificateRejected(code: Int32, reason: String)

    // Decided by the peer.
    /// The peer aborted the handshake or connection with this alert.
    case rejectedByPeer(TLSAlert)

    // Protocol and transport.
    /// The peer offered or required a TLS version other than 1.3.
    case protocolVersion(detail: String)
    /// A record failed authentication (tampered or corrupted in flight); no data from it was delivered.
    case recordIntegrity
    /// The peer closed the connection cleanly (close_notify).
    case peerClosed
    /// The connection ended without close_notify, or was reset.
    case connectionLost(detail: String)
    /// An operation did not complete within its deadline.
    case timeout(operation: String, seconds: Double)
    case handshakeFailed(detail: String)
    /// The peer is not a palm TLS endpoint (it did not send palm's channel confirmation).
    case notPalmPeer
    case tlsFailure(detail: String)

    // Sockets.
    case addressResolution(host: String, detail: String)
    case connectFailed(host: String, port: UInt16, detail: String)
    case bindFailed(host: String, port: UInt16, detail: String)
    case socketFailure(operation: String, errno: Int32)
    case closed

    // Configuration (local files).
    case unreadableFile(path: String, detail: String)
    case invalidCertificate(path: String, detail: String)
    case invalidPrivateKey(path: String, detail: String)
    /// Our own certificate is not ECDSA; palm refuses to start with it.
    case localKeyNotECDSA(path: String)
    case keyMismatch(certificate: String, key: String)
    case invalidCRL(path: String, detail: String)
    case invalidSignature
    /// `tls.key = "tpm"` with no TPM key given to the context (an endpoint that has no TPM).
    case keyNeedsTPM
    /// This host's key, held outside the process (its TPM), failed to sign a handshake.
    case localKeyFailed(location: String, detail: String)
}

extension TLSError: CustomStringConvertible {
    public var description: String {
        switch self {
        case .noPeerCertificate: return "the peer presented no certificate"
        case let .unknownCA(d): return "the peer's certificate is not issued by the cluster CA (\(d))"
        case .certificateExpired: return "the peer's certificate has expired"
        case .certificateNotYetValid: return "the peer's certificate is not yet valid"
        case .certificateRevoked: return "the peer's certificate is revoked"
        case .wrongKeyType: return "the peer's certificate key is not ECDSA"
        case .wrongPurpose: return "the peer's certificate lacks the required extended key usage"
        case let .serverNameMismatch(e): return "the server's certificate does not name '\(e)'"
        case let .crlUnavailable(d): return "no usable CRL: \(d)"
        case let .certificateRejected(c, r): return "certificate rejected (X509 error \(c): \(r))"
        case let .rejectedByPeer(a): return "the peer refused the connection (alert \(a))"
        case let .protocolVersion(d): return "TLS version refused, palm speaks TLS 1.3 only (\(d))"
        case .recordIntegrity: return "a TLS record failed its integrity check (tampered or corrupted in flight)"
        case .peerClosed: return "the peer closed the connection"
        case let .connectionLost(d): return "connection lost: \(d)"
        case let .timeout(op, s): return "\(op) timed out after \(s) s"
        case let .handshakeFailed(d): return "TLS handshake failed: \(d)"
        case .notPalmPeer: return "the peer is not a palm TLS endpoint"
        case let .tlsFailure(d): return "TLS failure: \(d)"
        case let .addressResolution(h, d): return "cannot resolve '\(h)': \(d)"
        case let .connectFailed(h, p, d): return "cannot connect to \(h):\(p): \(d)"
        case let .bindFailed(h, p, d): return "cannot listen on \(h):\(p): \(d)"
        case let .socketFailure(op, e): return "\(op) failed: \(String(cString: strerror(e)))"
        case .closed: return "the channel is closed"
        case let .unreadableFile(p, d): return "cannot read \(p): \(d)"
        case let .invalidCertificate(p, d): return "\(p) is not a valid PEM certificate: \(d)"
        case let .invalidPrivateKey(p, d): return "\(p) is not a valid PEM private key: \(d)"
        case let .localKeyNotECDSA(p): return "\(p): palm requires an ECDSA certificate"
        case let .keyMismatch(c, k): return "private key \(k) does not match certificate \(c)"
        case let .invalidCRL(p, d): return "\(p) is not a valid PEM CRL: \(d)"
        case .invalidSignature: return "signature verification failed"
        case .keyNeedsTPM: return "tls.key = \"tpm\" is for palm-source and palm-dest with an [attestation] tpm; this endpoint needs a key file"
        case let .localKeyFailed(l, d): return "this host's TLS key (\(l)) could not sign the handshake: \(d)"
        }
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension TLSError {
    /// True for a refused certificate — decided here while verifying the peer, or by the peer
    /// with its alert — rather than a transport failure: what metrics count as a TLS refusal.
    public var isCertificateRefusal: Bool {
        switch self {
        case .noPeerCertificate, .unknownCA, .certificateExpired, .certificateNotYetValid, .certificateRevoked, .wrongKeyType,
             .wrongPurpose, .serverNameMismatch, .crlUnavailable, .certificateRejected, .rejectedByPeer:
            return true
        default:
            return false
        }
    }
}

import PalmCrypto

extension TLSError {
    /// The TLS case, with the same words, for a key or certificate failure PalmCrypto reported.
    public init(_ crypto: CryptoError) {
        switch crypto {
        case let .unreadableFile(p, d): self = .unreadableFile(path: p, detail: d)
        case let .invalidCertificate(p, d): self = .invalidCertificate(path: p, detail: d)
        case let .invalidPrivateKey(p, d): self = .invalidPrivateKey(path: p, detail: d)
        case let .notECDSA(p): self = .localKeyNotECDSA(path: p)
        case .wrongKeyType: self = .wrongKeyType
        case let .invalidCRL(p, d): self = .invalidCRL(path: p, detail: d)
        case let .failure(d): self = .tlsFailure(detail: d)
        }
    }

    /// Runs `body`, reporting a ``CryptoError`` it throws as the matching TLSError: PalmTLS's
    /// callers see TLSError only.
    static func reporting<T>(_ body: () throws -> T) throws -> T {
        do { return try body() } catch let e as CryptoError { throw TLSError(e) }
    }
}
