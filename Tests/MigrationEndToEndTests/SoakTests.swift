import Foundation
import PalmHypervisor
import PalmTestSupport
import Testing

/// A coordinator and three sim hosts, each in its own network namespace behind a bridge, run
/// migrations while a seeded random schedule kills agents or the coordinator (kill -9), cuts
/// links and fills a destination's state disk. After every step: every VM runs in exactly one
/// place, its own memory check passes, the coordinator records it where it runs, and no half-built
/// VM is left. `PALM_SOAK_SEED=… PALM_SOAK_MIGRATIONS=… swift test --filter soak` replays a run's
/// choices (which VM, which host, which fault, when); outcomes can differ with timing.
@Suite("Random fault soak (network namespaces)", .serialized)
struct SoakTests {
    enum Fault: String, CaseIterable {
        case none, killSource = "kill -9 palm-source", killDest = "kill -9 palm-dest", killCoordinator = "kill -9 palm-coordinator",
             cutSourceLink = "cut the source's link", cutDestLink = "cut the destination's link", fillDestDisk = "fill the destination's state disk"
    }

    @Test("migrations under random faults: none lost, none duplicated, every one recorded as it ended")
    func soak() throws {
        let env = ProcessInfo.processInfo.environment
        let seed = env["PALM_SOAK_SEED"].flatMap(UInt64.init) ?? UInt64.random(in: 1...UInt64(UInt32.max))
        let steps = env["PALM_SOAK_MIGRATIONS"].flatMap(Int.init) ?? 40
        var rng = SplitMix(state: seed)
        let cluster = try NetnsCluster(hosts: 3, memoryLimit: "1G", scheduler: """
            auto_balance = false
            max_per_host = 2
            max_concurrent = 4
            retry_delay_s = 1
            """, coordinatorExtra: "[tickets]\nvalidity_s = 20\n")
        defer { cluster.shutdown() }
        try cluster.smallStateDisks(size: "4m")
        let vms = (0..<6).map { "soak-\($0)" }
        for (i, vm) in vms.enumerated() {
            let r = try ProcessRunner.run(SimCluster.bin("palm-simguest"), ["create", vm, "--root", cluster.hosts[i % 3].root,
                                                                            "--memory", "32M", "--rate", "2000", "--pattern", "hot-set", "--working-set", "4M"])
            guard r.status == 0 else { throw SimClusterError.command("create \(vm): \(r.stderr)") }
        }
        try cluster.start()
        try cluster.shapeLinks(rate: "200mbit")
        #expect(try cluster.await(60) { try cluster.placement().count == vms.count }, "the coordinator sees every VM")

        var tally: [String: Int] = [:], faults: [String: Int] = [:]
        var problems: [String] = []
        print("soak: seed \(seed), \(steps) migrations")
        for step in 0..<steps where problems.isEmpty {
            let placement = try cluster.placement()
            let vm = vms[rng.below(vms.count)]
            guard let fromName = placement[vm], let from = cluster.hosts.first(where: { $0.name == fromName }) else {
                problems.append("step \(step): \(vm) is not placed: \(placement)")
                break
            }
            let others = cluster.hosts.filter { $0.name != fromName }
            let to = others[rng.below(others.count)]
            let fault = rng.below(10) < 4 ? Fault.none : Fault.allCases.dropFirst()[1 + rng.below(Fault.allCases.count - 1)]
            let delay = rng.seconds(0...1.5), outage = rng.seconds(0.3...1.5)
            let order = try cluster.cli(["migrate", vm, "--to", to.name, "--json"])
            guard order.status == 0, let id = (try? JSONDecoder().decode([[String: String]].self, from: Data(order.stdout.utf8)))?.first?["id"] else {
                tally["refused when ordered", default: 0] += 1
                continue
            }
            faults[fault.rawValue, default: 0] += 1
            if fault != .none {
                // The fault lands at a random instant after the migration starts moving pages.
                _ = cluster.await(10) { ["running", "committed", "aborted", "cancelled"].contains(migrationState(cluster, id)) }
                Thread.sleep(forTimeInterval: delay)  // the schedule's own timing, not a wait for anything
                switch fault {
                case .killSource: cluster.killAgent(from, "source")
                case .killDest: cluster.killAgent(to, "dest")
                case .killCoordinator: cluster.coordinator.kill()
                case .cutSourceLink: try cluster.setLink(from, up: false)
                case .cutDestLink: try cluster.setLink(to, up: false)
                case .fillDestDisk: cluster.fillStateDisk(to, full: true)
                case .none: break
                }
                Thread.sleep(forTimeInterval: outage)
                switch fault {
                case .killSource: try cluster.startAgent(from, "source")
                case .killDest: try cluster.startAgent(to, "dest")
                case .killCoordinator: try cluster.coordinator.start()
                case .cutSourceLink: try cluster.setLink(from, up: true)
                case .cutDestLink: try cluster.setLink(to, up: true)
                case .fillDestDisk: cluster.fillStateDisk(to, full: false)
                case .none: break
                }
            }
            // Settle: the migration ends, every VM runs in exactly one place where the coordinator
            // records it, and no host holds a half-received VM or an orphan image.
            var state = "", sawDoubt = false
            let settled = try cluster.await(120) {
                state = migrationState(cluster, id)
                if state == "in-doubt" { sawDoubt = true }
                guard ["committed", "aborted", "cancelled"].contains(state) else { return false }
                let recorded = try cluster.placement()
                for v in vms {
                    let running = try cluster.runningOn(v)
                    guard running.count == 1, recorded[v] == running[0] else { return false }
                }
                // No half-received VM, and no image of a VM that does not run on that host.
                return try cluster.hosts.allSatisfy { host in
                    let h = try host.hypervisor
                    let images = Set(try h.listVMs().map(\.name))
                    return h.incomingVMs().isEmpty && images == Set(vms.filter { recorded[$0] == host.name })
                }
            }
            if !settled {
                let where_ = try vms.map { "\($0): \(try cluster.runningOn($0))" }.joined(separator: ", ")
                problems.append("step \(step) (\(vm) \(fromName) → \(to.name), \(fault.rawValue)): not settled after 120 s; migration \(state); \(where_)"
                                + "\n--- \(fromName) source ---\n\(cluster.agentLog(from, "source").suffix(4000))"
                                + "\n--- \(to.name) dest ---\n\(cluster.agentLog(to, "dest").suffix(4000))")
                break
            }
            tally[state + (sawDoubt ? " (in doubt, resolved)" : ""), default: 0] += 1
            let host = try #require(cluster.hosts.first { $0.name == (try cluster.runningOn(vm)).first })
            let check = try host.hypervisor.awaitSelfCheck(vm: vm)
            if !check.passed { problems.append("step \(step): \(vm)'s memory check failed on \(host.name): \(check)") }
        }
        var lost = 0, duplicated = 0
        for vm in vms {
            let n = try cluster.runningOn(vm).count
            if n == 0 { lost += 1 }
            if n > 1 { duplicated += 1 }
        }
        print("soak: seed \(seed): faults \(faults.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))")
        print("soak: outcomes \(tally.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")); lost \(lost), duplicated \(duplicated)")
        #expect(problems.isEmpty, "seed \(seed): \(problems.joined(separator: "; "))\n--- coordinator ---\n\(cluster.coordinator.log.suffix(3000))")
        #expect(lost == 0 && duplicated == 0, "seed \(seed)")
    }

    /// A migration's state as `status --json` reports it ("" while the coordinator is down).
    private func migrationState(_ cluster: NetnsCluster, _ id: String) -> String {
        guard let r = try? cluster.cli(["status", id, "--json"]), r.status == 0,
              let row = (try? JSONDecoder().decode([[String: String]].self, from: Data(r.stdout.utf8)))?.first else { return "" }
        return row["state"] ?? ""
    }
}
