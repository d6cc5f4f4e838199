import Foundation
import PalmCrypto
import PalmSecurity
import PalmTestSupport
import PalmTPM
import PalmWire
import Testing

/// A TPM's evidence checked as a migration's source checks it: a real quote from swtpm over this
/// session's binding, the logs replayed to the quoted PCRs, the platform policy — and every
/// attack on it refused by name.
@Suite("TPM attestation", .serialized)
struct PlatformAttestationTests {
    let nonce = Digest32.random(), exporter = Digest32.random()
    let ticketID = Digest32.randomBytes(16)
    var binding: [UInt8] { QuoteBinding.migration(nonce: nonce, exporter: exporter, ticketID: ticketID) }

    func checker(_ p: PlatformFixture, policy: PlatformPolicy? = nil, enrolled: [String: String]? = nil,
                 clocks: TPMClockLedger? = nil) throws -> PlatformEvidenceCheck {
        PlatformEvidenceCheck(policy: policy ?? p.policy(), enrolledKeys: try enrolled ?? [p.host: try p.keyName()], clocks: clocks)
    }

    @Test("a quote over this session, logs that replay, a policy that allows them: accepted, and the verdict counts what it checked")
    func goodQuote() throws {
        let p = try PlatformFixture()
        let verdict = try checker(p).check(try p.evidence(binding: binding), host: p.host, qualifyingData: binding,
                                           agentDigest: p.agentDigest.hex)
        #expect(verdict.bootEvents == p.boot.events.count)
        #expect(verdict.measuredFiles == p.ima.entries.count)
        #expect(verdict.clock == .first)
    }

    @Test("a quote for another nonce, another TLS session or another ticket is stale")
    func staleQuote() throws {
        let p = try PlatformFixture()
        let check = try checker(p)
        for other in [QuoteBinding.migration(nonce: .random(), exporter: exporter, ticketID: ticketID),
                      QuoteBinding.migration(nonce: nonce, exporter: .random(), ticketID: ticketID),
                      QuoteBinding.migration(nonce: nonce, exporter: exporter, ticketID: Digest32.randomBytes(16))] {
            let evidence = try p.evidence(binding: other)
            #expect(refusal { _ = try check.check(evidence, host: p.host, qualifyingData: binding, agentDigest: p.agentDigest.hex) } == .staleQuote)
        }
    }

    @Test("PCR values that are not the quoted ones, or a quote altered after signing, are refused")
    func tamperedPCRsAndQuote() throws {
        let p = try PlatformFixture()
        let check = try checker(p)
        var evidence = try p.evidence(binding: binding)
        evidence.pcrValues[3].value = .random()
        #expect(refusal { _ = try check.check(evidence, host: p.host, qualifyingData: binding, agentDigest: p.agentDigest.hex) } == .pcrDigestMismatch)
        evidence = try p.evidence(binding: binding)
        evidence.quote[evidence.quote.count - 1] ^= 1
        #expect(refusal { _ = try check.check(evidence, host: p.host, qualifyingData: binding, agentDigest: p.agentDigest.hex) } == .badQuoteSignature)
    }

    @Test("a boot log or IMA log that is not the one the PCRs were extended with does not replay")
    func logsThatDoNotReplay() throws {
        let p = try PlatformFixture()
        let check = try checker(p)
        var boot = p.boot.events
        boot[1].sha256 = SHA256.hash(Array("another kernel".utf8))
        var evidence = try p.evidence(binding: binding)
        evidence.bootLog = BootEventLog(events: boot).encoded()
        #expect(refusal { _ = try check.check(evidence, host: p.host, qualifyingData: binding, agentDigest: p.agentDigest.hex) } == .bootLogDoesNotReplay(pcr: 4))
        evidence = try p.evidence(binding: binding)
        // An attacker's entry hidden from the log: the log no longer replays to PCR 10.
        evidence.imaLog = IMALog(entries: p.ima.entries.filter { $0.path != "/usr/lib/x86_64-linux-gnu/libc.so.6" }).encoded()
        #expect(refusal { _ = try check.check(evidence, host: p.host, qualifyingData: binding, agentDigest: p.agentDigest.hex) } == .imaLogDoesNotReplay)
    }

    @Test("an IMA log with a file the policy does not allow (a preloaded library) is refused, naming its path and digest")
    func unknownFile() throws {
        let p = try PlatformFixture()
        let policy = p.policy()
        let library = SHA256.hash(Array("copy every plaintext byte to a file".utf8))
        try p.measure(IMALog.Entry(path: "/tmp/snoop.so", sha256: library))
        let refused = refusal {
            _ = try checker(p, policy: policy).check(try p.evidence(binding: binding), host: p.host, qualifyingData: binding,
                                                       agentDigest: p.agentDigest.hex)
        }
        #expect(refused == .policy([.file(path: "/tmp/snoop.so", digest: "sha256:\(library.hex)")]))
        #expect("\(refused.map { "\($0)" } ?? "")".contains("/tmp/snoop.so"))
        // Entries measured after the quote are not covered by it: the log read later is longer.
        var evidence = try p.evidence(binding: binding)
        let later = IMALog(entries: p.ima.entries + [IMALog.Entry(path: "/usr/bin/later", sha256: .random())])
        evidence.imaLog = later.encoded()
        let verdict = try checker(p).check(evidence, host: p.host, qualifyingData: binding, agentDigest: p.agentDigest.hex)
        #expect(verdict.measuredFiles == p.ima.entries.count)
    }

    @Test("a boot component not in the policy (another kernel) is refused by name")
    func unknownBootComponent() throws {
        let p = try PlatformFixture()
        var policy = p.policy()
        policy.boot.removeAll { $0.digest == PlatformFixture.kernel.hex }
        let refused = refusal {
            _ = try checker(p, policy: policy).check(try p.evidence(binding: binding), host: p.host, qualifyingData: binding,
                                                       agentDigest: p.agentDigest.hex)
        }
        guard case let .policy(v)? = refused, case let .bootComponent(pcr, type, digest, what)? = v.first else {
            Issue.record("expected a boot component refusal, got \(String(describing: refused))")
            return
        }
        #expect(pcr == 4 && type == "EV_IPL" && digest == PlatformFixture.kernel.hex && what.contains("vmlinuz"))
    }

    @Test("palm-dest must have been measured by IMA with an allowed digest, not only report one")
    func agentMeasured() throws {
        let p = try PlatformFixture()
        let other = SHA256.hash(Array("a palm-dest IMA never saw".utf8))
        var policy = p.policy()
        policy.agents.append(other.hex)
        let refused = refusal {
            _ = try checker(p, policy: policy).check(try p.evidence(binding: binding), host: p.host, qualifyingData: binding, agentDigest: other.hex)
        }
        #expect(refused == .policy([.agentNotMeasured(digest: other.hex)]))
        policy.agents = []
        let notAllowed = refusal {
            _ = try checker(p, policy: policy).check(try p.evidence(binding: binding), host: p.host, qualifyingData: binding,
                                                       agentDigest: p.agentDigest.hex)
        }
        #expect(notAllowed == .policy([.agentNotAllowed(digest: p.agentDigest.hex)]))
    }

    @Test("an attestation key that is not enrolled, or another TPM's key, is refused")
    func enrollment() throws {
        let p = try PlatformFixture()
        let evidence = try p.evidence(binding: binding)
        #expect(refusal { _ = try checker(p, enrolled: [:]).check(evidence, host: p.host, qualifyingData: binding, agentDigest: p.agentDigest.hex) }
                == .notEnrolled(host: p.host))
        let other = try PlatformFixture(host: "host-c")
        #expect(refusal {
            _ = try checker(p, enrolled: [p.host: try other.keyName()]).check(evidence, host: p.host, qualifyingData: binding,
                                                                               agentDigest: p.agentDigest.hex)
        } == .otherKey(host: p.host))
    }

    @Test("the attestation key is stable while the TPM is: the same name after the TPM restarts")
    func stableKey() throws {
        let p = try PlatformFixture()
        let before = try p.keyName()
        p.swtpm.halt()
        try p.swtpm.start()
        #expect(try p.keyName() == before)
    }

    @Test("a reboot between quotes is noticed; a TPM clock going back is refused")
    func rebootAndRollback() throws {
        let p = try PlatformFixture()
        let ledger = TPMClockLedger(path: nil)
        _ = try checker(p, clocks: ledger).check(try p.evidence(binding: binding), host: p.host, qualifyingData: binding,
                                                 agentDigest: p.agentDigest.hex)
        p.swtpm.halt()
        try p.swtpm.start()
        // After the power cycle the PCRs are reset: the platform measures its boot again.
        let fresh = try PlatformFixture.remeasure(p)
        let verdict = try checker(fresh, clocks: ledger).check(try fresh.evidence(binding: binding), host: p.host, qualifyingData: binding,
                                                               agentDigest: p.agentDigest.hex)
        guard case .rebooted = verdict.clock else {
            Issue.record("expected a reboot, got \(verdict.clock)")
            return
        }
        // A ledger that saw a later reset refuses this TPM's quotes: its counters went back.
        let future = TPMClockLedger(path: nil)
        let q = try TPMQuoteInfo(decoding: try fresh.evidence(binding: binding).quote)
        let name = try TPMPublicArea(decoding: try fresh.tpm.attestationKey()).name
        _ = try future.observe(key: name, quote: q)
        p.swtpm.halt()
        try p.swtpm.start()
        let rolledBack = try PlatformFixture.remeasure(p)
        let earlier = try TPMQuoteInfo(decoding: try rolledBack.evidence(binding: binding).quote)
        #expect(earlier.resetCount > q.resetCount)
        #expect(throws: TPMClockLedger.Refusal.self) {
            let ahead = TPMClockLedger(path: nil)
            _ = try ahead.observe(key: name, quote: earlier)
            _ = try ahead.observe(key: name, quote: q)
        }
    }
}

extension PlatformFixture {
    /// The same host after a power cycle: its TPM's PCRs measured again from the same logs.
    static func remeasure(_ p: PlatformFixture) throws -> PlatformFixture {
        try p.measured.remeasureAfterReboot()
        return p
    }
}
