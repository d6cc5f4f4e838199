/// What can go wrong loading a key, a certificate or a file to hash, or signing — named so an
/// operator can act on it. PalmTLS reports these failures for its own files as the matching
/// `TLSError` cases, with the same words.
public enum CryptoError: Error, Equatable, Sendable, CustomStringConvertible {
    case unreadableFile(path: String, detail: String)
    case invalidCertificate(path: String, detail: String)
    case invalidPrivateKey(path: String, detail: String)
    /// A key or certificate of this host that is not ECDSA; palm refuses to use it.
    case notECDSA(path: String)
    /// A peer's certificate whose key is not ECDSA.
    case wrongKeyType
    case invalidCRL(path: String, detail: String)
    /// OpenSSL failed where it should not (an allocation, a signing operation).
    case failure(detail: String)

    public var description: String {
        switch self {
        case let .unreadableFile(p, d): return "cannot read \(p): \(d)"
        case let .invalidCertificate(p, d): return "\(p) is not a valid PEM certificate: \(d)"
        case let .invalidPrivateKey(p, d): return "\(p) is not a valid PEM private key: \(d)"
        case let .notECDSA(p): return "\(p): palm requires an ECDSA certificate"
        case .wrongKeyType: return "the peer's certificate key is not ECDSA"
        case let .invalidCRL(p, d): return "\(p) is not a valid PEM CRL: \(d)"
        case let .failure(d): return "OpenSSL failure: \(d)"
        }
    }
}
