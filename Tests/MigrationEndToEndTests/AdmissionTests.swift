import Foundation
import PalmHypervisor
import PalmMigration
import PalmSecurity
import PalmTestSupport
import PalmCrypto
import PalmTLS
import PalmWire
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A TCP connection from `local` (any 127.0.0.0/8 address) to 127.0.0.1:`port`, or -1.
func rawConnect(_ port: UInt16, from local: String) -> Int32 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var me = sockaddr_in()
    me.sin_family = sa_family_t(AF_INET)
    me.sin_addr.s_addr = inet_addr(local)
    var to = sockaddr_in()
    to.sin_family = sa_family_t(AF_INET)
    to.sin_addr.s_addr = inet_addr("127.0.0.1")
    to.sin_port = port.bigEndian
    let ok = withUnsafePointer(to: &me) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
        bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } } == 0
        && withUnsafePointer(to: &to) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } } == 0
    if !ok { close(fd); return -1 }
    return fd
}

/// Threads of a process (from /proc).
func threadCount(_ pid: Int32) -> Int {
    ((try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? "")
        .split(separator: "\n").first { $0.hasPrefix("Threads:") }
        .flatMap { Int($0.split(separator: "\t").last ?? "") } ?? -1
}

/// palm-dest under connections that never authenticate, or authenticate without the right to
/// migrate: the real work still gets through, and nothing a stranger does creates state.
@Suite("Destination admission", .serialized)
struct AdmissionTests {
    let pki = TestPKI.shared

    @Test("500 idle TCP connections, 50 stalled handshakes and 20 silent authenticated ones (auditor and agent certificates) held open: a ticketed migration still commits")
    func flood() throws {
        let c = try SimCluster(); defer { c.shutdown() }
        try c.startDest()
        try c.createVM("vip", memory: "32M", rate: 1000, pattern: "hot-set", workingSet: "4M")
        var held: [Int32] = []
        defer { for fd in held { close(fd) } }
        for _ in 0..<500 { let fd = rawConnect(c.destPort, from: "127.0.0.2"); if fd >= 0 { held.append(fd) } }
        #expect(held.count == 500)
        // A TLS record header announcing a 512-byte ClientHello, then silence.
        let partialHello: [UInt8] = [0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xFC]
        for _ in 0..<50 {
            let fd = rawConnect(c.destPort, from: "127.0.0.3")
            guard fd >= 0 else { continue }
            _ = partialHello.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            held.append(fd)
        }
        var silent: [TLSChannel] = []
        defer { for ch in silent { ch.close() } }
        for cert in Array(repeating: "eve", count: 10) + Array(repeating: "client", count: 10) {
            if let ch = try? TLSChannel.connect(host: "127.0.0.1", port: c.destPort, serverName: "127.0.0.1",
                                                context: pki.context(cert), from: "127.0.0.4") {
                silent.append(ch)
            }
        }
        let destPID = try #require(c.destPID)
        let threadsUnderAttack = threadCount(destPID)
        let report = try c.migrate("vip")
        #expect(report.rounds.count >= 2)
        #expect(try c.runningCopies("vip") == (source: false, dest: true))
        #expect(try c.destHypervisor().awaitSelfCheck(vm: "vip").passed)
        // Bounded: the handshake budget, not one thread per connection (570 of them).
        #expect(threadsUnderAttack < 120, "palm-dest ran \(threadsUnderAttack) threads under the flood")
        #expect(c.waitForDestLog("refused connections before authentication"), "drops are reported")
        #expect(c.waitForDestLog("role is auditor, not agent"))
    }

    @Test("certificates without the agent role are refused after the handshake, by name", arguments: ["eve", "alice", "coord"])
    func roles(_ cert: String) throws {
        let c = try SimCluster(); defer { c.shutdown() }
        try c.startDest()
        let ch = try TLSChannel.connect(host: "127.0.0.1", port: c.destPort, serverName: "127.0.0.1", context: pki.context(cert))
        defer { ch.close() }
        let answer = try? FrameReader(stream: ch).readMessage()
        if case let .error(n)? = answer { #expect(n.message.contains("only agents")) } else { Issue.record("expected ERROR, got \(String(describing: answer))") }
        #expect(c.waitForDestLog("not agent"))
    }

    @Test("a RESOLVE flood for random ids creates nothing; another host cannot ask about a migration it was not the source of")
    func resolveFlood() throws {
        let c = try SimCluster(); defer { c.shutdown() }
        try c.startDest()
        try c.createVM("done", memory: "16M")
        _ = try c.migrate("done")
        let ledger = c.dir + "/dest-state/migrations"
        let before = try FileManager.default.contentsOfDirectory(atPath: ledger).sorted()
        #expect(before.count == 1)
        let ch = try TLSChannel.connect(host: "127.0.0.1", port: c.destPort, serverName: "127.0.0.1", context: pki.context("client"))
        defer { ch.close() }
        _ = ch
        for _ in 0..<300 {
            let asker = try TLSChannel.connect(host: "127.0.0.1", port: c.destPort, serverName: "127.0.0.1", context: pki.context("client"))
            try asker.send(.resolve(migrationID: Digest32.randomBytes(16)))
            guard case .resolution(_, .aborted) = try FrameReader(stream: asker).readMessage() else { Issue.record("not aborted"); break }
            asker.close()
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: ledger).sorted() == before, "the flood wrote ledger records")
        // The real migration, asked about by another agent certificate: refused.
        let id = try #require(Hex.decode(String(before[0].dropLast(".json".count))))
        let other = try TLSChannel.connect(host: "127.0.0.1", port: c.destPort, serverName: "127.0.0.1", context: pki.context("mallory"))
        defer { other.close() }
        try other.send(.resolve(migrationID: id))
        guard case let .abort(n) = try FrameReader(stream: other).readMessage() else { Issue.record("expected ABORT"); return }
        #expect(n.message.contains("only the migration's source"))
    }

    @Test("a reception slot is taken only once a ticket verified: silent peers take none, a migration beyond max_concurrent is refused as busy")
    func slots() throws {
        let c = try SimCluster(destListen: "max_concurrent = 1"); defer { c.shutdown() }
        try c.startDest()
        // Authenticated agents that say nothing (and one whose ticket is forged) take no slot …
        let idle = try (0..<3).map { _ in
            try TLSChannel.connect(host: "127.0.0.1", port: c.destPort, serverName: "127.0.0.1", context: pki.context("client"))
        }
        defer { for ch in idle { ch.close() } }
        let forger = try RogueSource(cert: "client", port: c.destPort)
        let forged = try TicketIssuer(key: SigningKey(pemFile: pki.key("client")))
            .issue(vm: "x", memoryBytes: 16 * 4096, source: try CertificateIdentity.load(pemFile: pki.cert("client")).fingerprint,
                   destination: try CertificateIdentity.load(pemFile: pki.cert("server")).fingerprint,
                   now: UInt64(Date().timeIntervalSince1970), validity: 300)
        guard case .abort = try forger.hello(ticket: forged.encoded()) else { Issue.record("the forged ticket was accepted"); return }
        // … so the one slot is free for a real migration, which then holds it …
        let issuer = try TicketIssuer(key: SigningKey(pemFile: pki.key("coord")))
        func ticket(_ vm: String) throws -> MigrationTicket {
            try issuer.issue(vm: vm, memoryBytes: 16 * 4096, source: try CertificateIdentity.load(pemFile: pki.cert("client")).fingerprint,
                             destination: try CertificateIdentity.load(pemFile: pki.cert("server")).fingerprint,
                             now: UInt64(Date().timeIntervalSince1970), validity: 300)
        }
        let first = try RogueSource(cert: "client", port: c.destPort)
        _ = try first.prepare(ticket: ticket("one"), pages: 16, streams: 1)
        // … and a second one is refused as busy, not queued.
        let second = try RogueSource(cert: "client", port: c.destPort)
        let answer = try second.hello(ticket: try ticket("two").encoded())
        guard case let .abort(n) = answer else { Issue.record("expected ABORT, got \(answer.type)"); return }
        #expect(n.reason == .busy)
    }
}
