import Foundation
import PalmControl
import PalmTestSupport
import PalmTLS
import Testing

/// The three daemons as systemd sees them: sd_notify through the test's own NOTIFY_SOCKET, journal
/// entries through journald's socket bound in a private mount namespace.
@Suite("systemd: notify, watchdog, signals, journald", .serialized)
struct SystemdTests {
    let pki = TestPKI.shared

    /// True when something accepts TCP connections on 127.0.0.1:port right now.
    func accepts(_ port: UInt16) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = port.bigEndian
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } } == 0
    }

    func port(inStatus lines: [String]) -> UInt16? {
        guard let status = lines.first(where: { $0.hasPrefix("STATUS=listening on ") }) else { return nil }
        let address = status.dropFirst("STATUS=listening on ".count).split(separator: ";").first.map(String.init) ?? ""
        return address.split(separator: ":").last.flatMap { UInt16($0.split(separator: ",").first ?? "") }
    }

    @Test("palm-dest: READY=1 only once its port accepts; WATCHDOG=1 at half WatchdogSec; STOPPING=1 and exit 0 on SIGTERM")
    func destLifecycle() throws {
        let cluster = try SimCluster()
        defer { cluster.shutdown() }
        let notify = try NotifyListener()
        try cluster.startDest(environment: notify.environment.merging(["WATCHDOG_USEC": "1000000"]) { $1 })
        #expect(notify.waitFor("READY=1"))
        let ready = try #require(notify.lines.first { $0.lines.contains("READY=1") })
        // The READY message names the port it serves, and that port accepts at once.
        let port = try #require(self.port(inStatus: ready.lines), "\(ready.lines)")
        #expect(port == cluster.destPort && accepts(port))
        #expect(ready.lines.contains("MAINPID=\(cluster.destPID ?? 0)"))
        // Nothing before READY claimed readiness or pinged.
        let before = notify.lines.prefix { !$0.lines.contains("READY=1") }
        #expect(before.isEmpty, "\(before)")

        // WATCHDOG_USEC = 1 s: pings every ~0.5 s, from the accept loop's proof of life.
        #expect(notify.wait { $0.filter { String(decoding: $0.data, as: UTF8.self) == "WATCHDOG=1" }.count >= 4 })
        let pings = notify.lines.filter { $0.lines == ["WATCHDOG=1"] }.map(\.time)
        let gaps = zip(pings.dropFirst(), pings).map { $0 - $1 }
        #expect(gaps.allSatisfy { $0 < 1.0 }, "every ping within the watchdog interval: \(gaps)")

        let p = try #require(cluster.destProcess)
        kill(p.processIdentifier, SIGTERM)
        #expect(notify.waitFor("STOPPING=1"))
        p.waitUntilExit()
        #expect(p.terminationReason == .exit && p.terminationStatus == 0)
    }

    @Test("SIGHUP: RELOADING=1 then READY=1; a broken configuration is refused and the daemon keeps serving")
    func reload() throws {
        let cluster = try SimCluster()
        defer { cluster.shutdown() }
        let notify = try NotifyListener()
        try cluster.startDest(environment: notify.environment)
        #expect(notify.waitFor("READY=1"))
        let p = try #require(cluster.destProcess)
        kill(p.processIdentifier, SIGHUP)
        #expect(notify.wait { $0.filter { String(decoding: $0.data, as: UTF8.self).contains("READY=1") }.count == 2 })
        #expect(notify.lines.contains { $0.lines.contains("RELOADING=1") })
        // Now break the file: the reload is refused, the old configuration keeps serving.
        let good = try String(contentsOfFile: cluster.destConfig, encoding: .utf8)
        try (good + "\n[bogus]\nkey = 1\n").write(toFile: cluster.destConfig, atomically: true, encoding: .utf8)
        kill(p.processIdentifier, SIGHUP)
        #expect(notify.waitFor("STATUS=reload failed", prefix: true))
        #expect(notify.lines.last { $0.lines.contains("READY=1") }?.lines.contains { $0.contains("unknown key 'bogus.key'") } == true)
        #expect(accepts(cluster.destPort) && p.isRunning)
        try good.write(toFile: cluster.destConfig, atomically: true, encoding: .utf8)
    }

    @Test("journald: fields, MESSAGE_IDs and structured fields of a refused connection and a completed migration")
    func journal() throws {
        let cluster = try SimCluster()
        defer { cluster.shutdown() }
        let journal = try JournalCapture()
        try cluster.startDest(prefix: journal.command, journalStderr: true)
        let ready = try #require(journal.waitFor(["PALM_EVENT": "daemon.ready"]))
        #expect(ready["SYSLOG_IDENTIFIER"] == "palm-dest" && ready["PRIORITY"] == "5")
        #expect(ready["MESSAGE_ID"] == "d50840324ac54ec8a80bead6a9aa1b86")
        #expect(cluster.destLog.isEmpty, "with the journal on stderr, nothing is written to stderr: \(cluster.destLog)")

        // An intruder's handshake: refused, as a warning with its MESSAGE_ID.
        #expect(throws: (any Error).self) {
            _ = try TLSChannel.connect(host: "127.0.0.1", port: cluster.destPort, context: pki.context("intruder", other: true))
        }
        let refused = try #require(journal.waitFor(["PALM_EVENT": "connection.refused"]))
        #expect(refused["PRIORITY"] == "4" && refused["MESSAGE"]?.contains("refused a connection") == true)
        #expect(refused["CODE_FILE"]?.hasSuffix("DestinationServer.swift") == true && refused["CODE_LINE"] != nil, "\(refused)")

        // A migration: the destination's entries carry VM and PEER fields.
        try cluster.createVM("journaled", memory: "32M")
        _ = try cluster.migrate("journaled")
        let resumed = try #require(journal.waitFor(["PALM_EVENT": "migration.resumed"]))
        #expect(resumed["VM"] == "journaled" && resumed["PEER"] == "client" && resumed["PRIORITY"] == "5")
        #expect(resumed["MESSAGE_ID"]?.count == 32)
        let ids = Set(journal.entries.compactMap { e in e["PALM_EVENT"].map { "\($0) \(e["MESSAGE_ID"] ?? "")" } })
        #expect(ids.count == Set(journal.entries.compactMap { $0["PALM_EVENT"] }).count, "one MESSAGE_ID per event: \(ids)")
    }

    @Test("palm-source serve: STATUS shows the migration live; SIGTERM mid-migration stops it safely, the VM in one place")
    func sourceStatusAndStop() throws {
        let cluster = try SimCluster()
        defer { cluster.shutdown() }
        try cluster.startDest()
        // The coordinator distributes exactly what the destination measures.
        let measured = try ProcessRunner.run(SimCluster.bin("palm-dest"), ["measure", "--config", cluster.destConfig]).stdout
        let coordinator = try CoordinatorProcess(pki: pki, extra: """
            [agents]
            heartbeat_interval_s = 0.2
            [scheduler]
            interval_s = 0.2
            auto_balance = false
            [attestation]
            \(measured)
            """)
        try coordinator.start()
        defer { coordinator.kill() }
        // The destination host reports itself (its palm-dest address) as its palm-source would.
        let destAgent = try CoordinatorClient(host: "127.0.0.1", port: coordinator.port, context: pki.context("server"))
        let destReport = HostReport(destinationAddress: "127.0.0.1:\(cluster.destPort)", cpus: 2, cpuLoad: 0,
                                    memoryTotal: 8 << 30, memoryUsed: 0, vms: [])
        #expect(try destAgent.call(APIRequest(action: "agent.heartbeat", report: destReport)).ok)

        // Slow enough to be caught mid-transfer: 1 GiB dirtying 40,000 pages/s.
        try cluster.createVM("busy", memory: "1G", rate: 40_000)
        let config = cluster.sourceConfig + ".serve.toml"
        try (try String(contentsOfFile: cluster.sourceConfig, encoding: .utf8) + """

            [coordinator]
            address = "127.0.0.1:\(coordinator.port)"
            certificate = "\(pki.cert("coord"))"
            advertise = "127.0.0.1:7410"
            """).write(toFile: config, atomically: true, encoding: .utf8)
        let notify = try NotifyListener()
        let agent = Process()
        agent.executableURL = URL(fileURLWithPath: SimCluster.bin("palm-source"))
        agent.arguments = ["serve", "--config", config]
        agent.environment = ProcessInfo.processInfo.environment.merging(notify.environment) { $1 }
        agent.standardError = FileHandle.nullDevice
        try agent.run()
        defer { if agent.isRunning { kill(agent.processIdentifier, SIGKILL) } }
        #expect(notify.waitFor("READY=1"))
        let operatorClient = try CoordinatorClient(host: "127.0.0.1", port: coordinator.port, context: pki.context("alice"))
        #expect(try NetnsCluster.poll(30) { try operatorClient.call(APIRequest(action: "vms")).rows.contains { $0["vm"] == "busy" } })
        let started = try operatorClient.call(APIRequest(action: "migrate", arguments: ["vm": "busy", "to": "server"]))
        #expect(started.ok, "\(started.error ?? "")")
        let id = try #require(started.rows.first?["id"])

        #expect(notify.waitFor("STATUS=migrating busy → server: precopy round", prefix: true, timeout: 60))
        kill(agent.processIdentifier, SIGTERM)
        #expect(notify.waitFor("STOPPING=1"))
        agent.waitUntilExit()
        #expect(agent.terminationReason == .exit && agent.terminationStatus == 0)
        // Exactly one running copy, and the coordinator was told how it ended.
        let copies = try cluster.runningCopies("busy")
        #expect(copies.source != copies.dest, "\(copies)")
        let state = try operatorClient.call(APIRequest(action: "status", arguments: ["id": id])).rows.first?["state"]
        #expect(state == (copies.source ? "cancelled" : "committed"), "\(state ?? "nil") with \(copies)")
    }
}
