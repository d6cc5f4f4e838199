import Foundation
import PalmAgent
import PalmControl
import PalmCoordinator
import PalmSecurity
import PalmTestSupport
import PalmCrypto
import PalmTLS
import PalmWire
import Testing

/// `palm-source serve` takes orders only from the coordinator in its configuration, and only with
/// a ticket that coordinator signed for this host: the attacks on the order path.
@Suite("Agent orders under attack", .serialized)
struct AgentOrderAttackTests {
    let pki = TestPKI.shared

    /// Starts `palm-source serve` for the cluster's source host, reporting to `port`.
    func serveSource(_ cluster: SimCluster, coordinatorPort: UInt16) throws -> (Process, String) {
        let config = cluster.sourceConfig + ".serve.toml"
        let base = try String(contentsOfFile: cluster.sourceConfig, encoding: .utf8)
        try (base + """

            [coordinator]
            address = "127.0.0.1:\(coordinatorPort)"
            certificate = "\(pki.cert("coord"))"
            advertise = "127.0.0.1:7410"
            """).write(toFile: config, atomically: true, encoding: .utf8)
        let log = config + ".log"
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: SimCluster.bin("palm-source"))
        p.arguments = ["serve", "--config", config]
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        p.standardOutput = handle
        p.standardError = handle
        try p.run()
        return (p, log)
    }

    func stop(_ p: Process) {
        if p.isRunning { kill(p.processIdentifier, SIGKILL) }
        p.waitUntilExit()
    }

    @Test("a server with the coordinator role but not the configured certificate gets no heartbeat")
    func rogueCoordinator() throws {
        try pki.mintHost("coord-rogue", ip: "127.0.0.1", role: "coordinator")
        let rogue = try CoordinatorProcess(pki: pki, cert: "coord-rogue")
        try rogue.start()
        defer { rogue.kill() }
        let cluster = try SimCluster()
        defer { cluster.shutdown() }
        let (agent, log) = try serveSource(cluster, coordinatorPort: rogue.port)
        defer { stop(agent) }
        let refused = NetnsCluster.poll(30) {
            ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").contains("is not a configured coordinator")
        }
        #expect(refused, "\((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
        let hosts = try CoordinatorClient(host: "127.0.0.1", port: rogue.port, context: pki.context("alice"))
            .call(APIRequest(action: "hosts"))
        #expect(hosts.ok && hosts.rows.isEmpty, "the agent must not have reported to the rogue server: \(hosts.rows)")
    }

    @Test("orders whose ticket is forged, names another source host, or was signed under an older leader epoch than the orders' are refused and reported; the VM stays")
    func forgedOrders() throws {
        let cluster = try SimCluster()
        defer { cluster.shutdown() }
        try cluster.createVM("victim", memory: "16M")
        // A coordinator endpoint with the real coordinator certificate that hands out bad orders.
        let listener = try TLSListener(host: "127.0.0.1", port: 0, context: pki.context("coord"))
        defer { listener.close() }
        func fp(_ name: String) throws -> Digest32 { try CertificateIdentity.load(pemFile: pki.cert(name)).fingerprint }
        let now = UInt64(Date().timeIntervalSince1970)
        let forged = try TicketIssuer(key: SigningKey(pemFile: pki.key("mallory")))
            .issue(vm: "victim", memoryBytes: 16 << 20, source: fp("client"), destination: fp("server"), now: now, validity: 300)
        let elsewhere = try TicketIssuer(key: SigningKey(pemFile: pki.key("coord")))
            .issue(vm: "victim", memoryBytes: 16 << 20, source: fp("mallory"), destination: fp("server"), now: now, validity: 300)
        // Signed by the coordinator key for this very host, but under epoch 3 in orders of epoch 5.
        let stale = try TicketIssuer(key: SigningKey(pemFile: pki.key("coord")))
            .issue(vm: "victim", memoryBytes: 16 << 20, source: fp("client"), destination: fp("server"), now: now, validity: 300, epoch: 3)
        let orders = [forged, elsewhere, stale].map { t in
            MigrationOrder(id: t.id, vm: "victim", destinationHost: "server", destinationAddress: "127.0.0.1:9", ticket: Hex.encode(t.encoded()))
        }
        let outcomes = Background<[MigrationOutcome]> {
            guard let socket = try listener.acceptSocket(timeout: 30) else { return [] }
            let channel = try TLSChannel.accept(socket: socket, context: listener.context)
            defer { channel.close() }
            var first = true
            while true {
                let request = try CoordinatorAPI.receive(APIRequest.self, from: channel)
                let reported = request.report?.outcomes ?? []
                if reported.count == 3 { return reported }
                var answer = AgentOrders(start: first ? orders : [], heartbeatInterval: 0.1)
                answer.epoch = 5
                try CoordinatorAPI.send(APIResponse(ok: true, orders: answer), on: channel)
                first = false
            }
        }
        let (agent, log) = try serveSource(cluster, coordinatorPort: listener.port)
        defer { stop(agent) }
        let reported = try outcomes.value()
        let logText = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        #expect(reported.count == 3, "\(logText)")
        let byID = Dictionary(uniqueKeysWithValues: reported.map { ($0.id, $0) })
        #expect(byID[forged.id]?.result == .aborted)
        #expect(byID[forged.id]?.detail.contains("order refused") == true && byID[forged.id]?.detail.contains("signature") == true,
                "\(byID[forged.id]?.detail ?? "")")
        #expect(byID[elsewhere.id]?.result == .aborted)
        #expect(byID[elsewhere.id]?.detail.contains("order refused") == true, "\(byID[elsewhere.id]?.detail ?? "")")
        #expect(byID[stale.id]?.result == .aborted)
        #expect(byID[stale.id]?.detail.contains("leader epoch 3") == true, "\(byID[stale.id]?.detail ?? "")")
        #expect(try cluster.runningCopies("victim") == (true, false))
    }
}
