import ArgumentParser
import Foundation
import PalmCrypto
import PalmSecurity
import PalmSupport
import PalmTPM
import PalmWire

/// What hardware-rooted attestation costs, on a software TPM (swtpm, started by bench.sh): the
/// destination's quote (with its PCR reads), the source's verification of quote and logs, and the
/// verification of a long IMA log alone. Prints "name p50_ms p99_ms" lines; nothing asserted.
struct AttestationCost: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "attestation",
                                                    abstract: "TPM quote and verification latency, IMA log verification.")
    @Option(help: "The TPM (a tpm2-tss TCTI string).") var tcti: String
    @Option(help: "IMA entries measured before the quotes.") var entries = 10_000
    @Option(help: "Quotes to time.") var runs = 50
    @Option(help: "A host certificate and key, for the software attestation's cost in the same run.") var cert: String
    @Option var key: String

    func run() throws {
        let device = TPMDevice(tcti: tcti, timeout: 30)
        // A platform: a few boot events, `entries` measured files, the PCRs extended to match.
        var bootEvents: [BootEventLog.Event] = []
        for pcr in 0...9 {
            let e = BootEventLog.Event(pcr: pcr, type: 0xD, sha256: SHA256.hash(Array("boot \(pcr)".utf8)), data: Array("component \(pcr)".utf8))
            bootEvents.append(e)
            try device.extend(pcr: pcr, with: e.sha256)
        }
        let boot = BootEventLog(events: bootEvents)
        let ima = IMALog(entries: (0..<entries).map { IMALog.Entry(path: "/usr/lib/x86_64-linux-gnu/lib-\($0).so", sha256: SHA256.hash(Array("f\($0)".utf8))) })
        try device.extend(pcr: 10, withEach: ima.entries.map(\.sha256Extension))
        let bootBytes = boot.encoded(), imaBytes = ima.encoded()
        let akName = Hex.encode(try TPMPublicArea(decoding: try device.attestationKey()).name)
        let policy = PlatformPolicy().learning(boot: boot, ima: ima.entries[...])
        let check = PlatformEvidenceCheck(policy: policy, enrolledKeys: ["bench": akName], clocks: nil)
        let index = check.index

        var quoteTimes: [Double] = [], verifyTimes: [Double] = []
        for _ in 0..<runs {
            let binding = QuoteBinding.migration(nonce: .random(), exporter: .random(), ticketID: Digest32.randomBytes(16))
            let t0 = MonotonicClock.now()
            let q = try device.quote(pcrs: PlatformPolicy.defaultPCRs, qualifyingData: binding)
            let t1 = MonotonicClock.now()
            let evidence = PlatformEvidence(attestationKey: q.attestationKey, quote: q.quote, signature: q.signature, pcrValues: q.pcrValues,
                                            bootLog: bootBytes, imaLog: imaBytes)
            _ = try check.check(evidence, host: "bench", qualifyingData: binding, agentDigest: nil)
            quoteTimes.append(t1 - t0)
            verifyTimes.append(MonotonicClock.now() - t1)
        }
        // The IMA log alone: decode, replay to PCR 10, every entry against the policy.
        let pcr10 = try device.readPCRs([10])[0].value
        var imaTimes: [Double] = []
        for _ in 0..<max(5, runs / 5) {
            let t0 = MonotonicClock.now()
            let log = try IMALog(decoding: imaBytes)
            guard let prefix = log.verifiedPrefix(replaying: pcr10) else { throw ValidationError("the IMA log does not replay") }
            _ = policy.violations(boot: .empty, ima: prefix, agentDigest: nil, index: index)
            imaTimes.append(MonotonicClock.now() - t0)
        }
        func line(_ name: String, _ samples: [Double]) {
            let s = samples.sorted()
            print(String(format: "%@ %.2f %.2f", name, s[s.count / 2] * 1000, s[min(s.count - 1, Int(Double(s.count) * 0.99))] * 1000))
        }
        line("quote", quoteTimes)
        line("verify", verifyTimes)
        line("quote+verify", zip(quoteTimes, verifyTimes).map(+))
        line("ima-log", imaTimes)
        // The software attestation in the same run: the report's signature and its check.
        let signing = try SigningKey(pemFile: key), verifying = try VerifyingKey(certificateFile: cert)
        var softwareTimes: [Double] = []
        for _ in 0..<runs {
            let report = Array("palm-attest-v2".utf8) + Digest32.randomBytes(200)
            let t0 = MonotonicClock.now()
            let signature = try signing.sign(report)
            guard verifying.isValidSignature(signature, for: report) else { throw ValidationError("the bench key does not verify") }
            softwareTimes.append(MonotonicClock.now() - t0)
        }
        line("software", softwareTimes)
        print("evidence-bytes \(bootBytes.count + imaBytes.count)")
    }
}
