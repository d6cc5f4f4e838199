import Foundation
import PalmHypervisor
import PalmMigration
import PalmSecurity
import PalmTestSupport
import PalmCrypto
import PalmTLS
import PalmWire
import Testing

/// Attacks on a protected migration. Each must fail closed: no page accepted (nothing created or
/// left on the destination) and, where a real VM is involved, the VM still running on the source.
@Suite("Protected migration under attack", .serialized)
struct ProtectionAttackTests {
    let pki = TestPKI.shared

    func fingerprint(_ name: String) throws -> Digest32 { try CertificateIdentity.load(pemFile: pki.cert(name)).fingerprint }

    func ticket(vm: String = "rogue-vm", memory: UInt64 = 16 * 4096, source: String = "client", dest: String = "server",
                key: String = "coord", now: UInt64 = UInt64(Date().timeIntervalSince1970), validity: UInt64 = 300) throws -> MigrationTicket {
        try TicketIssuer(key: SigningKey(pemFile: pki.key(key)))
            .issue(vm: vm, memoryBytes: memory, source: fingerprint(source), destination: fingerprint(dest), now: now, validity: validity)
    }

    /// Asserts the destination answered ABORT with `reason` and a message containing `text`.
    func expectAbort(_ m: Message, _ reason: AbortReason, _ text: String, sourceLocation: SourceLocation = #_sourceLocation) {
        guard case let .abort(n) = m else { Issue.record("expected ABORT, got \(m.type)", sourceLocation: sourceLocation); return }
        #expect(n.reason == reason, sourceLocation: sourceLocation)
        #expect(n.message.contains(text), "ABORT message: \(n.message)", sourceLocation: sourceLocation)
    }

    func expectNothingOnDest(_ c: SimCluster, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(c.files(inRoot: c.destRoot).isEmpty, "destination files: \(c.files(inRoot: c.destRoot))", sourceLocation: sourceLocation)
    }

    // MARK: the destination refuses bad tickets

    /// A bad ticket presented in HELLO by a rogue source: what it is, who presents it, what the
    /// destination's ABORT must say.
    enum BadTicket: String, CaseIterable, CustomStringConvertible, Sendable {
        case forged = "signed by another key"
        case otherDestination = "for another destination"
        case otherSource = "presented by another source than it names"
        case expired = "expired beyond the clock-skew allowance"
        case missing = "no ticket at all"
        case raisedEpoch = "its epoch raised after signing"

        var description: String { rawValue }
        var presenter: String { self == .otherSource ? "mallory" : "client" }
        var refusal: String {
            switch self {
            case .forged, .raisedEpoch: return "forged"
            case .otherDestination: return "another destination"
            case .otherSource: return "another source"
            case .expired: return "expired"
            case .missing: return "no migration ticket"
            }
        }
    }

    func bytes(_ attack: BadTicket) throws -> [UInt8] {
        switch attack {
        case .forged: return try ticket(key: "server").encoded()
        case .otherDestination: return try ticket(dest: "mallory").encoded()
        case .otherSource: return try ticket(source: "client").encoded()
        case .expired: return try ticket(now: UInt64(Date().timeIntervalSince1970) - 3600, validity: 60).encoded()
        case .missing: return []
        case .raisedEpoch:
            var t = try ticket()
            t.epoch += 1
            return t.encoded()
        }
    }

    @Test("a bad ticket is refused before anything is created", arguments: BadTicket.allCases)
    func badTicket(_ attack: BadTicket) throws {
        let c = try SimCluster(); defer { c.shutdown() }
        try c.startDest()
        let rogue = try RogueSource(cert: attack.presenter, port: c.destPort)
        expectAbort(try rogue.hello(ticket: bytes(attack)), .ticketRejected, attack.refusal)
        expectNothingOnDest(c)
    }

    @Test("a ticket for one VM cannot carry another VM or size")
    func vmMismatch() throws {
        let c = try SimCluster(); defer { c.shutdown() }
        try c.startDest()
        let rogue = try RogueSource(cert: "client", port: c.destPort)
        guard case .attest = try rogue.hello(ticket: ticket(vm: "small", memory: 4096).encoded()) else { Issue.record("no ATTEST"); return }
        try rogue.send(.config(VMConfig(name: "small", mode: .preCopy, pageSize: 4096, pageCount: 1 << 18, vcpus: 1,
                                        hypervisor: "sim", platform: [])))
        expectAbort(try rogue.read(), .ticketRejected, "does not cover this VM")
        expectNothingOnDest(c)
    }

    @Test("replaying a captured ticket is refused, also after the destination restarts")
    func replayedTicket() throws {
        let c = try SimCluster(); defer { c.shutdown() }
        try c.startDest()
        try c.createVM("once", memory: "32M")
        let ticketPath = try c.issueTicket("once")
        _ = try c.migrate("once", ticket: ticketPath)
        // The same ticket again, for a VM of the same name and size.
        try c.destHypervisor().destroy(vm: "once")
        try c.createVM("once", memory: "32M")
        let (status, _, err) = try c.startMigration("once", ticket: ticketPath).finish()
        #expect(status != 0)
        #expect(err.contains("replay"), "stderr: \(err)")
        #expect(try c.runningCopies("once") == (source: true, dest: false))
        // The replay cache is on disk: a restarted destination still refuses.
        c.killDest()
        try c.startDest()
        let (status2, _, err2) = try c.startMigration("once", ticket: ticketPath).finish()
        #expect(status2 != 0)
        #expect(err2.contains("replay"), "stderr: \(err2)")
        #expect(try c.runningCopies("once") == (source: true, dest: false))
        #expect(try c.sourceHypervisor().awaitSelfCheck(vm: "once").passed)
    }

    @Test("a ticket of an older leader epoch than one the destination accepted is refused (a deposed coordinator's), also after a restart")
    func staleEpochTicket() throws {
        let c = try SimCluster(); defer { c.shutdown() }
        try c.startDest()
        try c.createVM("new", memory: "32M")
        try c.createVM("old", memory: "32M")
        _ = try c.migrate("new", ticket: try c.issueTicket("new", epoch: 7))
        // Signed by the same coordinator key, valid, unused: only its epoch is older.
        let stale = try c.issueTicket("old", epoch: 6)
        let (status, _, err) = try c.startMigration("old", ticket: stale).finish()
        #expect(status != 0)
        #expect(err.contains("leader epoch 6") && err.contains("epoch 7"), "stderr: \(err)")
        #expect(try c.runningCopies("old") == (source: true, dest: false))
        // The floor is on disk: a restarted destination still refuses; the current epoch passes.
        c.killDest()
        try c.startDest()
        let (status2, _, err2) = try c.startMigration("old", ticket: try c.issueTicket("old", epoch: 6)).finish()
        #expect(status2 != 0)
        #expect(err2.contains("leader epoch 6"), "stderr: \(err2)")
        _ = try c.migrate("old", ticket: try c.issueTicket("old", epoch: 7))
        #expect(try c.runningCopies("old") == (source: false, dest: true))
    }

    @Test("replaying a whole recorded session creates nothing: the TLS handshake cannot be replayed")
    func replayedSession() throws {
        let c = try SimCluster(); defer { c.shutdown() }
        try c.startDest()
        try c.createVM("taped", memory: "16M")
        let tap = try LinkProxy(upstreamPort: c.destPort)
        let (status, _, err) = try c.startMigration("taped", port: tap.port, extra: ["--streams", "1"]).finish()
        #expect(status == 0, "the recorded migration itself succeeds: \(err)")
        let tape = tap.recordedClientBytes
        #expect(tape.count > 16 << 20, "the tape holds the whole session")
        try c.destHypervisor().destroy(vm: "taped")
        #expect(c.files(inRoot: c.destRoot).isEmpty)
        _ = LinkProxy.replay(tape, to: c.destPort)
        #expect(c.waitForDestLog("refused a connection"))
        expectNothingOnDest(c)
    }

    // MARK: the destination refuses a bad hand-off

    @Test("a tampered manifest (changed after signing) is refused; nothing resumes")
    func tamperedManifest() throws {
        let c = try SimCluster(); defer { c.shutdown() }
        try c.startDest()
        let rogue = try RogueSource(cert: "client", port: c.destPort)
        let answer = try rogue.playToManifest(ticket: ticket(), pages: 16, signingKey: SigningKey(pemFile: pki.key("client"))) {
            $0.pagesSent += 1
        }
        expectAbort(answer, .manifestMismatch, "not signed by the source")
        #expect(c.waitForDestLog("partial VM discarded"))
        expectNothingOnDest(c)
    }

    @Test("one page altered before the manifest: the digest does not match and the VM never resumes")
    func alteredPage() throws {
        let c = try SimCluster(); defer { c.shutdown() }
        try c.startDest()
        let rogue = try RogueSource(cert: "client", port: c.destPort)
        let answer = try rogue.playToManifest(ticket: ticket(), pages: 16, signingKey: SigningKey(pemFile: pki.key("client")),
                                              alterPageBeforeDigest: 7)
        expectAbort(answer, .manifestMismatch, "memory image digest")
        #expect(c.waitForDestLog("partial VM discarded"))
        expectNothingOnDest(c)
    }

    @Test("an honest rogue run (nothing altered) reaches READY: the two tests above fail for their tampering alone")
    func controlRun() throws {
        let c = try SimCluster(); defer { c.shutdown() }
        try c.startDest()
        let rogue = try RogueSource(cert: "client", port: c.destPort)
        let answer = try rogue.playToManifest(ticket: ticket(), pages: 16, signingKey: SigningKey(pemFile: pki.key("client")))
        guard case .ready = answer else { Issue.record("expected READY, got \(answer.type)"); return }
    }

    // MARK: the source refuses a bad destination

    @Test("a man in the middle with a valid cluster certificate of another host gets nothing")
    func mitmClusterCert() throws {
        let c = try SimCluster(destCert: "mallory"); defer { c.shutdown() }
        try c.startDest()  // mallory's palm-dest
        try c.createVM("target", memory: "32M")
        let ticketPath = try c.issueTicket("target", dest: "server")  // the coordinator sent it to "server"
        let (status, _, err) = try c.startMigration("target", ticket: ticketPath).finish()
        #expect(status != 0)
        #expect(err.contains("is not the ticket's destination"), "stderr: \(err)")
        expectNothingOnDest(c)
        #expect(try c.runningCopies("target") == (source: true, dest: false))
    }

    @Test("a man in the middle with a certificate from another CA fails the TLS handshake")
    func mitmOtherCA() throws {
        let c = try SimCluster(); defer { c.shutdown() }
        try c.createVM("target", memory: "32M")
        let intruder = try TLSListener(host: "127.0.0.1", port: 0, context: pki.context("intruder", other: true))
        let accept = Background { _ = try? intruder.accept(timeout: 30) }
        let (status, _, err) = try c.startMigration("target", port: intruder.port).finish()
        _ = accept.wait()
        #expect(status != 0)
        #expect(err.contains("not issued by the cluster CA"), "stderr: \(err)")
        #expect(try c.runningCopies("target") == (source: true, dest: false))
    }

    @Test("a destination whose measurement is not in the allowlist receives no page")
    func notAllowlisted() throws {
        let bogus = String(repeating: "ab", count: 32)
        let c = try SimCluster(allowlist: "require = \"software\"\nallowed_agents = [\"\(bogus)\"]\nallowed_hypervisors = [\"sim palm-sim 1\"]\n")
        defer { c.shutdown() }
        try c.startDest()
        try c.createVM("target", memory: "32M")
        let (status, _, err) = try c.startMigration("target").finish()
        #expect(status != 0)
        #expect(err.contains("is not in the allowlist"), "stderr: \(err)")
        #expect(!err.contains("progress: precopy"))
        #expect(c.waitForDestLog("migration refused") || c.waitForDestLog("aborted"))
        expectNothingOnDest(c)
        #expect(try c.runningCopies("target") == (source: true, dest: false))
        #expect(try c.sourceHypervisor().awaitSelfCheck(vm: "target").passed)
    }

    @Test("an attestation replayed from another session (exporter mismatch) is refused")
    func foreignAttestation() throws {
        let c = try SimCluster(); defer { c.shutdown() }
        try c.createVM("target", memory: "32M")
        let rogue = try RogueDestination(cert: "server")
        let zero = Digest32.zero
        let served = rogue.answerWithForeignAttestation(key: try SigningKey(pemFile: pki.key("server")), measurement: (zero, zero))
        let (status, _, err) = try c.startMigration("target", port: rogue.port).finish()
        _ = served.wait()
        #expect(status != 0)
        #expect(err.contains("another TLS session"), "stderr: \(err)")
        #expect(try c.runningCopies("target") == (source: true, dest: false))
    }
}
