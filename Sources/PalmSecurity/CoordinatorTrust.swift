import PalmCrypto
import PalmTLS
import PalmWire

/// The coordinators a host or an auditor trusts: one certificate per coordinator that may lead the
/// cluster (`coordinator.certificates` of palm-source, `security.coordinator_certificates` of
/// palm-dest, `state.coordinator_certificates` of the coordinators, `--coordinator-cert` repeated
/// for `audit verify` and `evidence verify`). Each coordinator signs with its own key, so a stolen
/// key is revoked by removing one certificate, and the audit log names who led when.
///
/// Guarantees: never empty (the initialisers throw ``TrustError/empty``); a signature is accepted
/// only when one of the listed keys made it; a TLS peer is trusted only when its certificate's
/// fingerprint is one of the listed ones. There is no "accept anything" value.
public struct CoordinatorTrust: Sendable {
    /// The listed certificates' SHA-256 fingerprints, in the order given.
    public let fingerprints: [Digest32]
    private let keys: [VerifyingKey]

    public enum TrustError: Error, Equatable, CustomStringConvertible {
        case empty
        case tooMany(Int)
        public var description: String {
            switch self {
            case .empty: return "no coordinator certificate is listed"
            case let .tooMany(n): return "\(n) coordinator certificates listed; at most \(CoordinatorTrust.maxCoordinators)"
            }
        }
    }

    /// At most this many coordinators (what a signature check may cost).
    public static let maxCoordinators = 16

    /// The coordinators whose certificates are in these PEM files (the first certificate of each).
    public init(certificateFiles: [String]) throws {
        try self.init(identities: certificateFiles.map { (try CertificateIdentity.load(pemFile: $0), try VerifyingKey(certificateFile: $0)) })
    }

    /// The coordinators whose certificates are given as PEM text.
    public init(certificatePEMs: [String]) throws {
        try self.init(identities: certificatePEMs.map { (try CertificateIdentity.load(pem: $0), try VerifyingKey(certificatePEM: $0)) })
    }

    private init(identities: [(CertificateIdentity, VerifyingKey)]) throws {
        guard !identities.isEmpty else { throw TrustError.empty }
        guard identities.count <= Self.maxCoordinators else { throw TrustError.tooMany(identities.count) }
        fingerprints = identities.map(\.0.fingerprint)
        keys = identities.map(\.1)
    }

    /// True only when one of the listed coordinators' keys signed `message`.
    public func verifies(_ signature: [UInt8], for message: [UInt8]) -> Bool {
        keys.contains { $0.isValidSignature(signature, for: message) }
    }

    /// True only for the certificate of a listed coordinator.
    public func trusts(_ fingerprint: Digest32) -> Bool { fingerprints.contains(fingerprint) }
}
