import Foundation
import PalmHypervisor
import PalmMigration
import PalmSecurity
import PalmTestSupport
import PalmEngineTLS
import PalmCrypto
import PalmTLS
import PalmWire
import Testing

/// Parallel page streams between real agents: only streams that prove they belong to the session
/// carry pages, a stream lost mid-round aborts the whole migration cleanly, and every stream
/// count and codec moves the VM intact.
@Suite("Page streams", .serialized)
struct PageStreamTests {
    let pki = TestPKI.shared

    func ticket(pages: UInt64) throws -> MigrationTicket {
        try TicketIssuer(key: SigningKey(pemFile: pki.key("coord")))
            .issue(vm: "rogue-vm", memoryBytes: pages * 4096, source: CertificateIdentity.load(pemFile: pki.cert("client")).fingerprint,
                   destination: CertificateIdentity.load(pemFile: pki.cert("server")).fingerprint,
                   now: UInt64(Date().timeIntervalSince1970), validity: 300)
    }

    /// Opens a connection as `cert` and sends JOIN; `afterJoin` runs before the answer is read.
    /// A connection reset (the destination closed on bytes it never read) reads as ERROR "reset".
    func join(_ cert: String, port: UInt16, token: [UInt8], stream: UInt8, proof: (TLSChannel) throws -> Digest32,
              afterJoin: (TLSChannel) throws -> Void = { _ in }) throws -> (TLSChannel, Message) {
        let ch = try TLSChannel.connect(host: "127.0.0.1", port: port, context: pki.context(cert))
        try ch.send(.join(Join(sessionToken: token, stream: stream, proof: try proof(ch))))
        try afterJoin(ch)
        do {
            return (ch, try FrameReader(stream: ch).readMessage())
        } catch {
            return (ch, .error(AbortNotice(reason: .protocolViolation, message: "reset: \(error)")))
        }
    }

    func expectRefused(_ m: Message, _ text: String, sourceLocation: SourceLocation = #_sourceLocation) {
        guard case let .error(n) = m else { Issue.record("expected ERROR, got \(m.type)", sourceLocation: sourceLocation); return }
        #expect(n.message.contains(text), "refusal: \(n.message)", sourceLocation: sourceLocation)
    }

    @Test("a stream that cannot prove it belongs to the session is refused and none of its pages is applied")
    func joinAttacks() throws {
        let c = try SimCluster(); defer { c.shutdown() }
        try c.startDest()
        let pages: UInt64 = 16
        let t = try ticket(pages: pages)
        let rogue = try RogueSource(cert: "client", port: c.destPort)
        let prepared = try rogue.prepare(ticket: t, pages: pages, streams: 2)
        let key = try StreamJoin.key(session: rogue.channel, token: prepared.sessionToken)
        let right = { (ch: TLSChannel) in try StreamJoin.proof(key: key, stream: 1, channel: ch) }
        // Page 15 is never sent by the legitimate streams: if the attacker's copy of it were
        // applied, the destination's image digest would not match the manifest.
        let attackPage = Message.memory(MemoryBatch(round: 0, pages: [.init(pfn: 15, data: RogueSource.page(0xBB))]))

        // Another session's key (the proof a stranger could compute), with a page sent right behind it.
        let (a, refusedA) = try join("client", port: c.destPort, token: prepared.sessionToken, stream: 1,
                                     proof: { try StreamJoin.proof(key: Digest32.random().bytes, stream: 1, channel: $0) },
                                     afterJoin: { try? $0.send(attackPage) })
        if case let .error(n) = refusedA, n.message.hasPrefix("reset") {
            #expect(c.waitForDestLog("proof does not match"))
        } else {
            expectRefused(refusedA, "proof does not match")
        }
        a.close()
        // The right proof presented on another host's certificate.
        let (b, refusedB) = try join("mallory", port: c.destPort, token: prepared.sessionToken, stream: 1, proof: right)
        expectRefused(refusedB, "not the session's source")
        b.close()
        // A token no session has.
        let (d, refusedD) = try join("client", port: c.destPort, token: Digest32.randomBytes(16), stream: 1, proof: right)
        expectRefused(refusedD, "no session has this token")
        d.close()
        // The proof of stream 1 presented for stream 2 … and a stream index the session does not have.
        let (e, refusedE) = try join("client", port: c.destPort, token: prepared.sessionToken, stream: 1,
                                     proof: { try StreamJoin.proof(key: key, stream: 2, channel: $0) })
        expectRefused(refusedE, "proof does not match")
        e.close()
        let (f, refusedF) = try join("client", port: c.destPort, token: prepared.sessionToken, stream: 5,
                                     proof: { try StreamJoin.proof(key: key, stream: 5, channel: $0) })
        expectRefused(refusedF, "outside the session's 2 streams")
        f.close()

        // The legitimate stream joins; the migration completes with only its pages and the
        // session channel's: the image digest proves the refused stream's page was never applied.
        let (stream, answer) = try join("client", port: c.destPort, token: prepared.sessionToken, stream: 1, proof: right)
        guard case .joined = answer else { Issue.record("expected JOINED, got \(answer.type)"); return }
        let digest = ImageDigest(pageCount: pages, pageSize: 4096)
        let hasher = PageHasher()
        for pfn in 0..<(pages - 1) {
            let page = RogueSource.page(UInt8(pfn + 1))
            try (pfn % 2 == 0 ? rogue.channel : stream).send(.memory(MemoryBatch(round: 0, pages: [.init(pfn: pfn, data: page)])))
            page.withUnsafeBytes { digest.record(pfn: pfn, page: $0, hasher: hasher) }
        }
        try stream.send(.roundEnd(RoundEnd(round: 0, pagesSent: pages / 2, zeroPages: 0, bytesSent: 0, durationMicros: 1, dirtyPages: 0)))
        try rogue.send(.roundEnd(RoundEnd(round: 0, pagesSent: pages, zeroPages: 0, bytesSent: 0, durationMicros: 1, dirtyPages: 0)))
        guard case .roundApplied(round: 0) = try rogue.read() else { Issue.record("no ROUND_APPLIED"); return }
        let state = RogueSource.simState(pages: pages)
        try rogue.send(.state(state))
        var manifest = Manifest(imageDigest: digest.finalize(), stateDigest: SHA256.hash(state), ticketNonce: t.nonce,
                                rounds: 1, pagesSent: pages, bytesSent: 0, signature: [])
        manifest.signature = try SigningKey(pemFile: pki.key("client")).sign(manifest.signedBytes)
        try rogue.send(.manifest(manifest))
        let ready = try rogue.read()
        guard case .ready = ready else { Issue.record("expected READY, got \(ready) — \(c.destLog)"); return }
        #expect(c.destLog.contains("refused") || c.destLog.contains("page stream"))
        stream.close()
    }

    @Test("one of four streams cut mid-round: the migration aborts cleanly and the VM stays on the source")
    func streamCut() throws {
        let c = try SimCluster(); defer { c.shutdown() }
        try c.startDest()
        try c.createVM("cut", memory: "256M", rate: 5000, pattern: "hot-set", workingSet: "16M")
        let proxy = try LinkProxy(upstreamPort: c.destPort)
        let m = try c.startMigration("cut", port: proxy.port, extra: ["--streams", "4"])
        // Stream 2 is the third connection; cut it once it has carried some of round 0.
        let deadline = Date(timeIntervalSinceNow: 60)
        while proxy.forwarded(connection: 2) < 1 << 20, m.process.isRunning, Date() < deadline { usleep(2_000) }
        #expect(proxy.connectionCount == 4 && proxy.forwarded(connection: 2) >= 1 << 20, "stream 2 was carrying pages")
        proxy.sever(connection: 2)
        let (status, _, err) = m.finish()
        #expect(status != 0, "the migration must fail: \(err)")
        #expect(try c.runningCopies("cut") == (source: true, dest: false))
        #expect(try c.sourceHypervisor().awaitSelfCheck(vm: "cut").passed)
        #expect(c.waitForDestLog("partial VM discarded"))
        #expect(c.files(inRoot: c.destRoot).isEmpty, "destination files: \(c.files(inRoot: c.destRoot))")
        withExtendedLifetime(proxy) {}
    }

    @Test("the VM arrives intact over 1, 2, 4 and 8 streams, with and without compression (auto: at least its trial batches shrink)",
          arguments: [(1, "none"), (2, "lz4"), (4, "zstd"), (8, "none"), (2, "auto")])
    func streamsAndCodecs(_ streams: Int, _ compression: String) throws {
        let c = try SimCluster(); defer { c.shutdown() }
        try c.startDest()
        try c.createVM("mix", memory: "64M", rate: 2000, pattern: "hot-set", workingSet: "8M", fill: "realistic")
        let report = try c.migrate("mix", extra: ["--streams", "\(streams)", "--compression", compression])
        #expect(report.streams == streams && report.compression == compression)
        if compression != "none" { #expect(report.compressedBatches > 0, "a realistic guest's batches shrink") }
        #expect(report.rounds[0].zeroPages > 0, "a realistic guest has zero pages")
        #expect(try c.runningCopies("mix") == (source: false, dest: true))
        #expect(try c.destHypervisor().awaitSelfCheck(vm: "mix").passed)
        #expect(c.destLog.contains("on \(streams) stream(s)"))
    }
}
