import Foundation
import PalmHypervisor
import PalmProtection
import PalmCrypto
import PalmTLS
import PalmWire

/// What a destination agent attests to: the SHA-256 of its own executable and of its
/// configuration file, and its hypervisor's name and version. Measured once at start-up.
public struct Measurement: Sendable, Equatable {
    public var agentDigest: Digest32
    public var configDigest: Digest32
    public var hypervisor: String
    public var hypervisorVersion: String

    public static func measure(configPath: String, hypervisor: Hypervisor) throws -> Measurement {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return Measurement(agentDigest: try SHA256.hash(file: exe), configDigest: try SHA256.hash(file: configPath),
                           hypervisor: hypervisor.name, hypervisorVersion: hypervisor.version)
    }

    /// A signed attestation report for one session, with a TPM's evidence when there is one
    /// (the signature covers it too).
    public func report(nonce: Digest32, exporter: Digest32, key: SigningKey, platform: PlatformEvidence? = nil) throws -> Attestation {
        var a = Attestation(sourceNonce: nonce, exporter: exporter, agentDigest: agentDigest, configDigest: configDigest,
                            hypervisor: hypervisor, hypervisorVersion: hypervisorVersion,
                            timestampMillis: UInt64(Date().timeIntervalSince1970 * 1000), platform: platform, signature: [])
        a.signature = try key.sign(a.signedBytes)
        return a
    }
}

/// The software attestation: this host's ``Measurement`` in a report signed with its
/// certificate key. It proves what the agent says about itself, no more: anything with root on
/// the host can say the same (the TPM attestation is what roots it in hardware).
public struct SoftwareAttestor: AttestationProvider {
    public let measurement: Measurement
    public let key: SigningKey

    public init(measurement: Measurement, key: SigningKey) {
        self.measurement = measurement
        self.key = key
    }

    public func attest(binding: SessionBinding) throws -> Attestation {
        try measurement.report(nonce: binding.nonce, exporter: binding.exporter, key: key)
    }
}
