import Foundation
import PalmCrypto
import PalmSecurity
import PalmTestSupport
import PalmTPM
import PalmWire
import Testing

/// The named refusal `body` throws, or nil when it passes; any other error is recorded as an issue.
func refusal(_ body: () throws -> Void) -> PlatformAttestationVerifier.Refusal? {
    do {
        try body()
        return nil
    } catch let r as PlatformAttestationVerifier.Refusal {
        return r
    } catch {
        Issue.record("not a named refusal: \(error)")
        return nil
    }
}

/// One test host's measured platform (``MeasuredHost``) with a palm-dest digest of its own, and
/// the evidence its TPM gives for a binding.
final class PlatformFixture: @unchecked Sendable {
    let measured: MeasuredHost
    let agentDigest: Digest32
    let host: String
    var tpm: TPMDevice { measured.device }
    var swtpm: SoftwareTPM { measured.tpm }
    var boot: BootEventLog { measured.boot }
    var ima: IMALog { measured.ima }

    static var kernel: Digest32 { MeasuredHost.kernel }

    init(host: String = "host-b") throws {
        self.host = host
        agentDigest = SHA256.hash(Array("palm-dest build \(host)".utf8))
        measured = try MeasuredHost(agent: ("/usr/bin/palm-dest", agentDigest))
    }

    func measure(_ entry: IMALog.Entry) throws { try measured.measure(entry) }
    func keyName() throws -> String { try measured.keyName() }
    func policy() -> PlatformPolicy { measured.policy(agents: [agentDigest.hex]) }

    /// Evidence for a migration session, as palm-dest sends it.
    func evidence(binding: [UInt8], pcrs: [Int] = PlatformPolicy.defaultPCRs) throws -> PlatformEvidence {
        let q = try tpm.quote(pcrs: pcrs, qualifyingData: binding)
        return PlatformEvidence(attestationKey: q.attestationKey, quote: q.quote, signature: q.signature, pcrValues: q.pcrValues,
                                bootLog: boot.encoded(), imaLog: ima.encoded())
    }
}
