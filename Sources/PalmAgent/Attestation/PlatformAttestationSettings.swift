import Foundation
import PalmConfig
import PalmSecurity
import PalmWire

/// How a destination attests (`[attestation]` in dest.toml).
///
/// `mode = "tpm"` quotes this host's TPM (`tpm`, any tpm2-tss TCTI string) over each session and
/// sends the measured-boot and IMA logs with it; `mode = "software"` (the default) sends only
/// the signed report of palm-dest's own measurement — which anything with root on the host can
/// produce, so sources that require `tpm` refuse it, by name.
public struct PlatformAttestationSettings: Sendable, Equatable {
    public enum Mode: String, Sendable, CaseIterable { case tpm, software }

    public var mode: Mode
    /// The TPM's TCTI (`device:/dev/tpmrm0` on a host, `swtpm:path=…` in tests).
    public var tpm: String
    /// Seconds one TPM command may take.
    public var tpmTimeout: Double
    /// PCRs quoted (SHA-256 bank): what the sources' platform policy requires.
    public var pcrs: [Int]
    /// The measured-boot event log and the IMA log as the kernel exposes them.
    public var bootLog: String
    public var imaLog: String

    public init(mode: Mode, tpm: String, tpmTimeout: Double, pcrs: [Int], bootLog: String, imaLog: String) {
        self.mode = mode
        self.tpm = tpm
        self.tpmTimeout = tpmTimeout
        self.pcrs = pcrs
        self.bootLog = bootLog
        self.imaLog = imaLog
    }

    public static let defaultBootLog = "/sys/kernel/security/tpm0/binary_bios_measurements"
    public static let defaultIMALog = "/sys/kernel/security/ima/binary_runtime_measurements"

    public static func load(_ f: ConfigFile) throws -> PlatformAttestationSettings {
        let mode = Mode(rawValue: try f.oneOf("attestation.mode", Mode.allCases.map(\.rawValue), default: "software")) ?? .software
        let pcrs = try f.intArray("attestation.pcrs", default: PlatformPolicy.defaultPCRs, range: 0...23)
        return PlatformAttestationSettings(
            mode: mode,
            tpm: try f.string("attestation.tpm", default: "device:/dev/tpmrm0"),
            tpmTimeout: try f.double("attestation.tpm_timeout_s", default: 10, range: 0.1...600),
            pcrs: Array(Set(pcrs)).sorted(),
            bootLog: try f.string("attestation.boot_log", default: defaultBootLog),
            imaLog: try f.string("attestation.ima_log", default: defaultIMALog))
    }
}

extension PlatformAttestationSettings {
    /// A platform policy that allows this host as its logs show it now (its boot components,
    /// every file IMA measured so far) and the palm-dest of `agentDigest`, over these PCRs: what
    /// `palm-dest measure --platform-policy` writes for a source without a coordinator.
    public func learnedPolicy(agentDigest: Digest32) throws -> PlatformPolicy {
        let logs = try readLogs()
        let boot = try BootEventLog(decoding: logs.boot)
        let ima = try IMALog(decoding: logs.ima)
        return PlatformPolicy(pcrs: pcrs).learning(boot: boot, ima: ima.entries[...], agents: [agentDigest.hex])
    }

    /// The kernel's measured-boot and IMA logs as they are now, each within the wire's limit (what
    /// a quote is sent with, and what a policy is learned from).
    public func readLogs(limits: WireLimits = .default) throws -> (boot: [UInt8], ima: [UInt8]) {
        (try PlatformLogFile.read(bootLog, limit: limits.maxBootLog), try PlatformLogFile.read(imaLog, limit: limits.maxIMALog))
    }
}
