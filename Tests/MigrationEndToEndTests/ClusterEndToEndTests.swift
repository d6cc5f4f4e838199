import Foundation
import PalmHypervisor
import PalmTestSupport
import Testing

/// Three sim hosts in their own network namespaces, each running `palm-source serve` and
/// `palm-dest serve` on its own address; the coordinator on the bridge between them. Every move
/// is a real protected migration (mTLS, coordinator ticket, attestation against the allowlist the
/// coordinator distributes) and is verified as in the engine's tests: exactly one running copy,
/// on the host the coordinator records, and the guest's memory self-check passes there.
@Suite("Cluster end to end (network namespaces)", .serialized)
struct ClusterEndToEndTests {
    static let scheduler = """
        auto_balance = true
        imbalance_threshold = 0.15
        min_improvement = 0.05
        hold_time_s = 3600
        max_per_host = 1
        max_concurrent = 2
        """

    /// Exactly one copy runs, where the coordinator says, and its self-check passes.
    func verify(_ cluster: NetnsCluster, _ vm: String, on hostName: String) throws {
        #expect(try cluster.runningOn(vm) == [hostName], "\(vm)")
        let host = try #require(cluster.hosts.first { $0.name == hostName })
        let check = try host.hypervisor.awaitSelfCheck(vm: vm)
        #expect(check.passed, "\(vm) on \(hostName): \(check)")
    }

    func history(_ cluster: NetnsCluster) throws -> [[String: String]] {
        let r = try cluster.cli(["history", "--json"])
        return try JSONDecoder().decode([[String: String]].self, from: Data(r.stdout.utf8))
    }

    @Test("the coordinator balances load over three hosts, then evacuates one; every move verified")
    func balanceAndEvacuate() throws {
        let cluster = try NetnsCluster(hosts: 3, memoryLimit: "1G", scheduler: Self.scheduler)
        defer { cluster.shutdown() }
        let (h1, h2, h3) = (cluster.hosts[0], cluster.hosts[1], cluster.hosts[2])
        let vms = ["vm-a", "vm-b", "vm-c", "vm-d"]
        for vm in vms { try cluster.createVM(vm, on: h1) }
        try cluster.start()

        // Balance: h1 holds 512 MiB of 1 GiB, the others nothing; the coordinator spreads it until
        // the spread is within the threshold, each move a real migration.
        let balanced = try cluster.await(120) {
            let p = try cluster.placement()
            let counts = [h1, h2, h3].map { h in p.values.filter { $0 == h.name }.count }
            let settled = try history(cluster).allSatisfy { ["committed", "aborted", "cancelled"].contains($0["state"] ?? "") }
            return p.count == 4 && counts.max()! - counts.min()! <= 1 && counts.min()! >= 1 && settled
        }
        let placed = try cluster.placement()
        #expect(balanced, "placement \(placed)\n\(cluster.coordinator.log)\n\(cluster.agentLog(h1, "source"))")
        let moves = try history(cluster)
        #expect(!moves.isEmpty && moves.allSatisfy { $0["state"] == "committed" && $0["kind"] == "balance" }, "\(moves)")
        for (vm, host) in try cluster.placement() { try verify(cluster, vm, on: host) }
        // No ping-pong: nothing moved twice, and the plan now says balanced.
        #expect(Set(moves.map { $0["vm"] }).count == moves.count)
        let dry = try cluster.cli(["rebalance", "--dry-run"])
        #expect(dry.status == 0 && dry.stdout.contains("balanced: load spread"), "\(dry.stdout)\(dry.stderr)")

        // Evacuate h1: every VM leaves it, one at a time (max_per_host = 1), to hosts that fit.
        let evacuate = try cluster.cli(["evacuate", h1.name])
        #expect(evacuate.status == 0, "\(evacuate.stderr)")
        let drained = try cluster.await(120) {
            let p = try cluster.placement()
            let hosts = try cluster.cli(["hosts", "--json"]).stdout
            return p.count == 4 && !p.values.contains(h1.name) && hosts.contains("\"maintenance\"")
        }
        let after = try cluster.placement()
        #expect(drained, "placement \(after)\n\(cluster.coordinator.log)")
        for (vm, host) in try cluster.placement() { try verify(cluster, vm, on: host) }
        let evacuations = try history(cluster).filter { $0["kind"] == "evacuate" }
        #expect(!evacuations.isEmpty && evacuations.allSatisfy { $0["state"] == "committed" && $0["from"] == h1.name })

        let audit = try ProcessRunner.run(SimCluster.bin("palm-coordinator"), ["audit", "verify", "--db", cluster.coordinator.database,
                                                                              "--coordinator-cert", cluster.pki.cert("coord-\(cluster.tag)")])
        #expect(audit.status == 0, "\(audit.stderr)")
    }

    @Test("an operator's migration with --wait; the coordinator killed mid-migration and restarted: recorded once, committed")
    func operatorMigrationAndCoordinatorRestart() throws {
        let cluster = try NetnsCluster(hosts: 2, memoryLimit: "2G", scheduler: "auto_balance = false")
        defer { cluster.shutdown() }
        let (h1, h2) = (cluster.hosts[0], cluster.hosts[1])
        try cluster.createVM("small", on: h1)
        try cluster.createVM("big", on: h1, memory: "1G", rate: 30_000)
        try cluster.start()
        #expect(try cluster.await(30) { try cluster.placement().count == 2 })

        let wait = try cluster.cli(["migrate", "small", "--to", h2.name, "--wait"])
        #expect(wait.status == 0, "\(wait.stdout)\(wait.stderr)")
        #expect(wait.stdout.contains(": committed, downtime"), "\(wait.stdout)")
        try verify(cluster, "small", on: h2.name)

        let id = try cluster.requestMigration("big", to: h2)
        // Kill the coordinator while the source agent is streaming pages.
        let streaming = try cluster.await(60) {
            let s = try cluster.cli(["status", id, "--json"]).stdout
            return s.contains("\"precopy\"") || s.contains("\"state\" : \"committed\"")
        }
        #expect(streaming)
        cluster.coordinator.kill()
        try cluster.coordinator.start()
        #expect(try cluster.awaitCommitted(id), "\((try? cluster.status(id)) ?? "")\n\(cluster.agentLog(h1, "source"))")
        try verify(cluster, "big", on: h2.name)
        // Nothing forgotten, nothing run twice.
        #expect(try history(cluster).filter { $0["vm"] == "big" }.count == 1)
    }

    @Test("a migration to a destination whose measurement is not on the coordinator's allowlist never starts")
    func allowlistEnforced() throws {
        let cluster = try NetnsCluster(hosts: 2, memoryLimit: "1G", scheduler: "auto_balance = false")
        defer { cluster.shutdown() }
        // Replace the distributed allowlist with one that names another palm-dest build.
        let config = try String(contentsOfFile: cluster.coordinator.configPath, encoding: .utf8)
        let replaced = config.split(separator: "\n").map { line in
            line.hasPrefix("allowed_agents") ? "allowed_agents = [\"\(String(repeating: "ab", count: 32))\"]" : String(line)
        }.joined(separator: "\n")
        try replaced.write(toFile: cluster.coordinator.configPath, atomically: true, encoding: .utf8)
        try cluster.createVM("vm", on: cluster.hosts[0])
        try cluster.start()
        #expect(try cluster.await(30) { try cluster.placement().count == 1 })
        let r = try cluster.cli(["migrate", "vm", "--to", cluster.hosts[1].name, "--wait"])
        #expect(r.status == 1)
        #expect(r.stdout.contains("aborted") && r.stdout.contains("not in the allowlist"), "\(r.stdout)\(r.stderr)")
        try verify(cluster, "vm", on: cluster.hosts[0].name)
    }
}
