import Foundation
import PalmCrypto
import PalmProtection
import PalmTLS
import PalmWire

/// What a source accepts from a destination's attestation: a valid signature by the destination's
/// certificate key over a report that echoes this session's nonce, is bound to this TLS session,
/// is fresh, and whose measurement is on the allowlist. Deny by default: an empty allowlist
/// accepts nothing.
public struct AttestationPolicy: Sendable, Equatable {
    /// SHA-256 (hex) of palm-dest executables allowed to receive VMs.
    public var allowedAgents: Set<String>
    /// SHA-256 (hex) of destination configurations allowed; empty = any configuration.
    public var allowedConfigs: Set<String>
    /// "NAME VERSION" of hypervisors allowed, e.g. "xen 4.17.7" or "sim palm-sim 1".
    public var allowedHypervisors: Set<String>
    /// Seconds a report's timestamp may differ from now.
    public var maxClockSkew: UInt64

    public init(allowedAgents: Set<String>, allowedConfigs: Set<String> = [], allowedHypervisors: Set<String>,
                maxClockSkew: UInt64 = 60) {
        self.allowedAgents = allowedAgents
        self.allowedConfigs = allowedConfigs
        self.allowedHypervisors = allowedHypervisors
        self.maxClockSkew = maxClockSkew
    }

    public enum Refusal: Error, Equatable, CustomStringConvertible {
        case badSignature, wrongNonce, exporterMismatch
        case stale(seconds: Int64)
        case agentNotAllowed(String), configNotAllowed(String), hypervisorNotAllowed(String)

        public var description: String {
            switch self {
            case .badSignature: return "attestation signature does not verify with the destination's certificate"
            case .wrongNonce: return "attestation does not echo this session's nonce"
            case .exporterMismatch: return "attestation is bound to another TLS session (exporter mismatch)"
            case let .stale(s): return "attestation timestamp is \(s) s away from now"
            case let .agentNotAllowed(d): return "palm-dest measurement sha256:\(d) is not in the allowlist"
            case let .configNotAllowed(d): return "destination configuration sha256:\(d) is not in the allowlist"
            case let .hypervisorNotAllowed(h): return "hypervisor '\(h)' is not in the allowlist"
            }
        }
    }

    public func check(_ a: Attestation, nonce: Digest32, exporter: Digest32, peerKey: VerifyingKey, nowMillis: UInt64) throws {
        guard peerKey.isValidSignature(a.signature, for: a.signedBytes) else { throw Refusal.badSignature }
        guard a.sourceNonce == nonce else { throw Refusal.wrongNonce }
        guard a.exporter == exporter else { throw Refusal.exporterMismatch }
        let skew = (Int64(bitPattern: a.timestampMillis) - Int64(bitPattern: nowMillis)) / 1000
        guard abs(skew) <= Int64(maxClockSkew) else { throw Refusal.stale(seconds: skew) }
        guard allowedAgents.contains(a.agentDigest.hex) else { throw Refusal.agentNotAllowed(a.agentDigest.hex) }
        guard allowedConfigs.isEmpty || allowedConfigs.contains(a.configDigest.hex) else {
            throw Refusal.configNotAllowed(a.configDigest.hex)
        }
        let hv = "\(a.hypervisor) \(a.hypervisorVersion)"
        guard allowedHypervisors.contains(hv) else { throw Refusal.hypervisorNotAllowed(hv) }
    }
}

extension AttestationPolicy: AttestationVerifier {
    /// The software report check against the key of the certificate the destination presented.
    public func verify(_ attestation: Attestation, binding: SessionBinding, peer: CertificateIdentity) throws {
        let key: VerifyingKey
        do { key = try VerifyingKey(certificatePEM: peer.pem) } catch { throw Refusal.badSignature }
        try check(attestation, nonce: binding.nonce, exporter: binding.exporter, peerKey: key,
                  nowMillis: UInt64(Date().timeIntervalSince1970 * 1000))
    }
}

/// The signatures that close the hand-off. Each covers the manifest's signed bytes under its own
/// domain-separation label, so one kind can never be replayed as another.
public enum HandoffSignature {
    public static func ready(_ m: Manifest) -> [UInt8] { Array("palm-ready-v1".utf8) + m.signedBytes }
    public static func commit(_ m: Manifest) -> [UInt8] { Array("palm-commit-v1".utf8) + m.signedBytes }
}
