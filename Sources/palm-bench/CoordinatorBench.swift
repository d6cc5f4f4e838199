import ArgumentParser
import Foundation
import PalmControl
import PalmCoordinator
import PalmSupport
import PalmCrypto
import PalmSecurity
import PalmTLS

/// One scheduling cycle at cluster scale: a real coordinator database holding HOSTS hosts and VMS
/// VMs (loaded unevenly, so there is work to plan), timed from loading the snapshot out of SQLite
/// to a ticketed plan — and the planner alone.
struct SchedulerCycle: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "scheduler-cycle", abstract: "Time one scheduling cycle at scale.")
    @Option var hosts = 1000
    @Option var vms = 20_000
    @Option(help: "Coordinator key (signs the tickets the cycle issues).") var key: String
    @Option(help: "Runs.") var runs = 5
    @Option(help: "A fresh PostgreSQL database (postgresql://…) instead of a temporary SQLite file.") var url: String?

    func run() throws {
        let path = NSTemporaryDirectory() + "palm-bench-\(getpid()).sqlite"
        defer { for s in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + s) } }
        let store = try CoordinatorStore(url.map { .postgresql(url: $0, connectTimeout: 5) } ?? .sqlite(path: path))
        var rng = SystemRandomNumberGenerator()
        let now = Date().timeIntervalSince1970
        try store.write { db in
            for h in 0..<hosts {
                try db.execute(sql: """
                    INSERT INTO host (name, fingerprint, address, destination_address, cpus, cpu_load, memory_total, memory_used, last_heartbeat)
                    VALUES (?, ?, ?, ?, 32, ?, ?, 0, ?)
                    """, arguments: ["host-\(h)", String(format: "%064x", h), "10.0.\(h / 250).\(h % 250)", "10.0.\(h / 250).\(h % 250):7410",
                                     Double.random(in: 0...0.6, using: &rng), Int64(512) << 30, now])
            }
            for v in 0..<vms {
                // Skewed: a third of the hosts carry most VMs.
                let h = Int(pow(Double.random(in: 0..<1, using: &rng), 2) * Double(hosts))
                let mem = Int64([2, 4, 8, 16].randomElement(using: &rng)!) << 30
                try db.execute(sql: "INSERT INTO vm (name, host, memory_bytes, dirty_rate, cpu) VALUES (?, ?, ?, ?, ?)",
                               arguments: ["vm-\(v)", "host-\(h)", mem, Double.random(in: 0...20_000, using: &rng), Double.random(in: 0...2, using: &rng)])
                try db.execute(sql: "UPDATE host SET memory_used = memory_used + ? WHERE name = ?", arguments: [mem, "host-\(h)"])
            }
        }
        var settings = CoordinatorSettings()
        // The simulated hosts have no TPMs: their software attestation is accepted.
        settings.allowlist.platform = PlatformTrust(requirement: .software)
        settings.scheduler.maxConcurrent = 64
        settings.scheduler.maxPerHost = 2
        settings.hostTimeout = 1e9
        let signing = try SigningKey(pemFile: key)
        var cycle: [Double] = [], planner: [Double] = []
        var moves = 0
        for _ in 0..<runs {
            let service = CoordinatorService(store: store, audit: AuditLog(store: store, key: signing),
                                             policy: try AccessPolicy.parse(AccessPolicy.defaultText), settings: settings, ticketKey: signing)
            // The planner alone, on the snapshot.
            let t0 = Date()
            let plan = try service.dryRunPlan()
            planner.append(Date().timeIntervalSince(t0))
            // The whole cycle: snapshot from SQLite, plan, tickets signed and stored, audited.
            let t1 = Date()
            moves = try service.runCycle(balance: true).moves.count
            cycle.append(Date().timeIntervalSince(t1))
            _ = plan
            try store.write { try $0.execute(sql: "DELETE FROM migration"); try $0.execute(sql: "DELETE FROM ticket_nonce") }
        }
        func median(_ a: [Double]) -> Double { a.sorted()[a.count / 2] }
        print("scheduling cycle (\(store.backend.name)), " + String(format: "%d hosts × %d VMs: median %.0f ms (snapshot + plan + %d tickets), planner with snapshot %.0f ms; target < 1000 ms → %.2f of the budget",
                     hosts, vms, median(cycle) * 1000, moves, median(planner) * 1000, median(cycle)))
    }
}

/// Heartbeats per second a running palm-coordinator sustains from AGENTS agents, each with its
/// own certificate and connection, each reporting VMS_PER_HOST VMs.
struct HeartbeatRate: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "heartbeats", abstract: "Heartbeats per second from many agents.")
    @Option var server: String
    @Option(help: "Directory with agent-N.pem / agent-N.key.") var certs: String
    @Option var ca: String
    @Option var agents = 1000
    @Option var vmsPerHost = 20
    @Option var seconds = 10.0
    @Option var threads = 16

    func run() throws {
        let parts = server.split(separator: ":")
        guard parts.count == 2, let port = UInt16(parts[1]) else { throw ValidationError("--server HOST:PORT") }
        let t0 = Date()
        // Each thread uses only its own clients (below), so sharing the array is safe.
        nonisolated(unsafe) let clients = try (0..<agents).map { i in
            let context = try TLSContext(configuration: TLSConfiguration(certificateChain: "\(certs)/agent-\(i).pem",
                                                                         privateKey: "\(certs)/agent-\(i).key", trustRoots: ca))
            return try CoordinatorClient(host: String(parts[0]), port: port, context: context)
        }
        let connectTime = Date().timeIntervalSince(t0)
        let reports = (0..<agents).map { i in
            HostReport(destinationAddress: "10.1.\(i / 250).\(i % 250):7410", cpus: 32, cpuLoad: 0.3, memoryTotal: 512 << 30,
                       memoryUsed: UInt64(vmsPerHost) << 32,
                       vms: (0..<vmsPerHost).map { VMReport(name: "a\(i)-vm\($0)", memoryBytes: 4 << 30, dirtyRate: 1000) })
        }
        let count = HeartbeatCount()
        let deadline = Date(timeIntervalSinceNow: seconds)
        let group = DispatchGroup()
        for t in 0..<threads {
            group.enter()
            Thread {
                var i = t
                while Date() < deadline {
                    let r = try? clients[i].call(APIRequest(action: CoordinatorAction.agentHeartbeat.rawValue, report: reports[i]))
                    if r?.ok == true { count.add() }
                    // Each thread keeps to its own agents (t, t + threads, …): a TLS connection is
                    // never used by two threads at once (wrapping modulo AGENTS did that when
                    // AGENTS is not a multiple of THREADS, and crashed in OpenSSL).
                    i = i + threads < agents ? i + threads : t
                }
                group.leave()
            }.start()
        }
        group.wait()
        print(String(format: "heartbeats: %d agents (%d VMs each, own certificate and connection; %d handshakes in %.1f s): %.0f heartbeats/s over %.0f s",
                     agents, vmsPerHost, agents, connectTime, Double(count.value) / seconds, seconds))
    }
}

/// Successful heartbeats, counted by every load thread.
final class HeartbeatCount: Sendable {
    private let n = LockedValueBox(0)
    func add() { n.withLockedValue { $0 += 1 } }
    var value: Int { n.current }
}
