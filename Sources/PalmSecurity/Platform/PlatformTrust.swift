import Foundation
import Logging

/// What a source demands of a destination's platform: the attestation it requires, the platform
/// policy its TPM evidence must meet, and each host's enrolled attestation key. A source's own
/// configuration (`[attestation]` in source.toml) or, under `palm-source serve`, the
/// coordinator's (sent with its orders).
public struct PlatformTrust: Codable, Sendable, Equatable {
    public var requirement: AttestationRequirement
    /// Where a TPM-attested destination's TLS key must live (`attestation.tls_key`).
    public var tlsKey: TLSKeyRequirement
    public var policy: PlatformPolicy
    /// Host name (certificate CN) → attestation key name (hex).
    public var enrolledKeys: [String: String]
    /// The coordinator's version of this (policy version and enrollment generation): an agent
    /// keeps its copy and is sent a new one only when this changed. Nil from a configuration.
    public var version: String?

    public init(requirement: AttestationRequirement = .tpm, tlsKey: TLSKeyRequirement = .tpm, policy: PlatformPolicy = PlatformPolicy(),
                enrolledKeys: [String: String] = [:]) {
        self.requirement = requirement
        self.tlsKey = tlsKey
        self.policy = policy
        self.enrolledKeys = enrolledKeys
    }

    private enum CodingKeys: String, CodingKey { case requirement, tlsKey, policy, enrolledKeys, version }

    /// A copy without `tlsKey` (from a coordinator that predates it) demands the TPM's key: the
    /// stricter reading, never the looser one.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        requirement = try c.decode(AttestationRequirement.self, forKey: .requirement)
        tlsKey = try c.decodeIfPresent(TLSKeyRequirement.self, forKey: .tlsKey) ?? .tpm
        policy = try c.decode(PlatformPolicy.self, forKey: .policy)
        enrolledKeys = try c.decode([String: String].self, forKey: .enrolledKeys)
        version = try c.decodeIfPresent(String.self, forKey: .version)
    }

    /// The verifier for one migration: the software checks of `software`, then these.
    public func verifier(software: AttestationPolicy, ticketID: [UInt8], clocks: TPMClockLedger?, logger: Logger?) -> PlatformAttestationVerifier {
        PlatformAttestationVerifier(software: software, requirement: requirement, tlsKey: tlsKey, policy: policy, enrolledKeys: enrolledKeys,
                                    ticketID: ticketID, clocks: clocks, logger: logger)
    }

    public enum LoadError: Error, Equatable, CustomStringConvertible {
        case policyFile(path: String, reason: String)
        case enrolledKey(String)
        public var description: String {
            switch self {
            case let .policyFile(p, r): return "cannot use the platform policy \(p): \(r)"
            case let .enrolledKey(e): return "'\(e)' is not HOST=ATTESTATION_KEY_NAME (hex)"
            }
        }
    }

    /// A platform policy file (JSON, as `palm-coordinator attestation policy show --json` prints it).
    public static func loadPolicy(_ path: String) throws -> PlatformPolicy {
        guard let data = FileManager.default.contents(atPath: path) else { throw LoadError.policyFile(path: path, reason: "unreadable") }
        guard data.count <= 64 << 20 else { throw LoadError.policyFile(path: path, reason: "larger than 64 MiB") }
        do { return try JSONDecoder().decode(PlatformPolicy.self, from: data) } catch {
            throw LoadError.policyFile(path: path, reason: "\(error)")
        }
    }

    /// `HOST=NAME` entries (a name is 0x000B followed by a SHA-256: 68 hex digits).
    public static func enrolledKeys(_ entries: [String]) throws -> [String: String] {
        var keys: [String: String] = [:]
        for e in entries {
            let parts = e.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, !parts[0].isEmpty, parts[1].count == 68, parts[1].allSatisfy(\.isHexDigit) else {
                throw LoadError.enrolledKey(e)
            }
            keys[parts[0]] = parts[1].lowercased()
        }
        return keys
    }
}
