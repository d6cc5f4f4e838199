import Foundation
import PalmCoordinator
import PalmTestSupport
import Testing

/// Generated clusters: hosts of random size, VMs packed unevenly (some hosts full, some empty).
func generatedCluster(seed: UInt64, hosts: Int = 12, vms: Int = 60) -> ClusterSnapshot {
    var rng = SplitMix(state: seed)
    var hs = (0..<hosts).map { i in
        ClusterSnapshot.Host(name: "h\(i)", cpus: Double([8, 16, 32].randomElement(using: &rng)!), cpuLoad: 0,
                             memoryTotal: [16, 32, 64].randomElement(using: &rng)! << 30, memoryUsed: 0)
    }
    var list: [ClusterSnapshot.VM] = []
    for i in 0..<vms {
        // Skewed placement: low-numbered hosts get most VMs.
        let h = min(Int(Double(hosts) * pow(Double.random(in: 0..<1, using: &rng), 2.5)), hosts - 1)
        let mem = UInt64([1, 2, 4].randomElement(using: &rng)!) << 30
        guard hs[h].memoryUsed + mem <= hs[h].memoryTotal else { continue }
        let cpu = Double.random(in: 0...2, using: &rng)
        hs[h].memoryUsed += mem
        hs[h].cpuLoad = min(1, hs[h].cpuLoad + cpu / hs[h].cpus)
        list.append(.init(name: "vm\(i)", host: hs[h].name, memoryBytes: mem, dirtyRate: Double.random(in: 0...50_000, using: &rng), cpu: cpu))
    }
    return ClusterSnapshot(hosts: hs, vms: list)
}

/// Applies a plan as if every move completed (the VM and its load now on the destination).
func complete(_ plan: Scheduler.Plan, on snap: ClusterSnapshot) -> ClusterSnapshot {
    var s = snap
    for m in plan.moves {
        guard let v = s.vms.firstIndex(where: { $0.name == m.vm }), let from = s.hosts.firstIndex(where: { $0.name == m.from }),
              let to = s.hosts.firstIndex(where: { $0.name == m.to }) else { continue }
        let vm = s.vms[v]
        s.hosts[from].memoryUsed -= vm.memoryBytes
        s.hosts[from].cpuLoad = max(0, s.hosts[from].cpuLoad - vm.cpu / s.hosts[from].cpus)
        s.hosts[to].memoryUsed += vm.memoryBytes
        s.hosts[to].cpuLoad += vm.cpu / s.hosts[to].cpus
        s.vms[v].host = m.to
    }
    return s
}

@Suite("Scheduler properties on generated clusters")
struct SchedulerTests {
    static let seeds: [UInt64] = Array(1...40)

    func policy(maxPerHost: Int = 2, maxConcurrent: Int = 6) -> SchedulerPolicy {
        var p = SchedulerPolicy()
        p.holdTime = 0  // the properties must hold without the hold time's help
        p.maxPerHost = maxPerHost
        p.maxConcurrent = maxConcurrent
        return p
    }

    @Test("limits hold and no destination is overloaded, in every cycle", arguments: seeds)
    func limitsAndNoOverload(seed: UInt64) {
        let p = policy()
        var snap = generatedCluster(seed: seed)
        for _ in 0..<50 {
            let plan = Scheduler(policy: p).plan(snap, now: 0)
            #expect(plan.moves.count <= p.maxConcurrent)
            var perHost: [String: Int] = [:]
            for m in plan.moves { perHost[m.from, default: 0] += 1; perHost[m.to, default: 0] += 1 }
            #expect(perHost.values.allSatisfy { $0 <= p.maxPerHost }, "seed \(seed): \(perHost)")
            snap = complete(plan, on: snap)
            for m in plan.moves {
                let d = snap.hosts.first { $0.name == m.to }!
                #expect(d.memoryUsed <= d.memoryTotal && d.pressure <= p.maxLoad + 1e-9, "seed \(seed): \(d.name) at \(d.pressure)")
            }
            if plan.moves.isEmpty { break }
        }
    }

    @Test("balancing converges and no VM ever returns to a host it left (no ping-pong)", arguments: seeds)
    func convergesWithoutPingPong(seed: UInt64) {
        let p = policy()
        var snap = generatedCluster(seed: seed)
        let before = Scheduler(policy: p).plan(snap, now: 0).imbalance
        var left: [String: Set<String>] = [:]
        var cycles = 0
        while cycles < 200 {
            let plan = Scheduler(policy: p).plan(snap, now: 0)
            if plan.moves.isEmpty { break }
            for m in plan.moves {
                #expect(!(left[m.vm]?.contains(m.to) ?? false), "seed \(seed): \(m.vm) goes back to \(m.to)")
                left[m.vm, default: []].insert(m.from)
            }
            snap = complete(plan, on: snap)
            cycles += 1
        }
        #expect(cycles < 200, "seed \(seed): still moving after 200 cycles")
        let after = Scheduler(policy: p).plan(snap, now: 0)
        #expect(after.moves.isEmpty)
        #expect(after.imbalance <= before + 1e-9, "seed \(seed): imbalance \(before) → \(after.imbalance)")
        // Converged means: balanced within the threshold, or no move left that would improve things.
        #expect(after.imbalance <= p.imbalanceThreshold || after.notes.contains { $0.contains("no single move lowers") },
                "seed \(seed): \(after.notes)")
    }

    @Test("hosts in maintenance or down never receive VMs and keep theirs")
    func maintenanceSkipped() {
        var snap = generatedCluster(seed: 7)
        snap.hosts[snap.hosts.count - 1].maintenance = true
        snap.hosts[snap.hosts.count - 2].up = false
        let skipped: Set<String> = [snap.hosts[snap.hosts.count - 1].name, snap.hosts[snap.hosts.count - 2].name]
        for _ in 0..<30 {
            let plan = Scheduler(policy: policy()).plan(snap, now: 0)
            #expect(plan.moves.allSatisfy { !skipped.contains($0.to) && !skipped.contains($0.from) })
            if plan.moves.isEmpty { break }
            snap = complete(plan, on: snap)
        }
    }

    @Test("within the imbalance threshold nothing moves, and the plan says why")
    func hysteresisThreshold() {
        let hosts = (0..<3).map { ClusterSnapshot.Host(name: "h\($0)", cpus: 8, cpuLoad: 0, memoryTotal: 10 << 30, memoryUsed: 0) }
        var snap = ClusterSnapshot(hosts: hosts, vms: [])
        snap.hosts[0].memoryUsed = 4 << 30
        snap.hosts[1].memoryUsed = 3 << 30
        snap.hosts[2].memoryUsed = 3 << 30
        snap.vms = [.init(name: "a", host: "h0", memoryBytes: 1 << 30)]
        let plan = Scheduler(policy: policy()).plan(snap, now: 0)
        #expect(plan.moves.isEmpty)
        #expect(plan.notes.first?.hasPrefix("balanced: load spread 0.10") == true, "\(plan.notes)")
    }

    @Test("a recently moved VM is held; the cheaper of two equal moves is chosen")
    func holdAndCost() {
        let hosts = [ClusterSnapshot.Host(name: "busy", cpus: 8, cpuLoad: 0, memoryTotal: 10 << 30, memoryUsed: 8 << 30),
                     ClusterSnapshot.Host(name: "idle", cpus: 8, cpuLoad: 0, memoryTotal: 10 << 30, memoryUsed: 0)]
        let vms: [ClusterSnapshot.VM] = [.init(name: "hot", host: "busy", memoryBytes: 2 << 30, dirtyRate: 200_000),
                                         .init(name: "cold", host: "busy", memoryBytes: 2 << 30, dirtyRate: 0),
                                         .init(name: "fresh", host: "busy", memoryBytes: 4 << 30, lastMoved: 1000)]
        var p = policy()
        p.holdTime = 300
        let plan = Scheduler(policy: p).plan(ClusterSnapshot(hosts: hosts, vms: vms), now: 1100)
        #expect(plan.moves.first?.vm == "cold", "\(plan.moves)")
        #expect(!plan.moves.contains { $0.vm == "fresh" })
        #expect(plan.moves.first?.reason.contains("predicted") == true)
    }

    @Test("evacuation drains a host completely over cycles, largest VMs first, within the limits")
    func evacuation() {
        var snap = generatedCluster(seed: 3)
        let target = snap.hosts[0].name
        snap.hosts[0].maintenance = true
        snap.hosts[0].evacuating = true
        var order: [UInt64] = []
        for _ in 0..<100 {
            let plan = Scheduler(policy: policy(maxPerHost: 1)).plan(snap, now: 0, balance: false)
            #expect(plan.moves.filter { $0.from == target }.count <= 1)
            order += plan.moves.compactMap { m in snap.vms.first { $0.name == m.vm }?.memoryBytes }
            if plan.moves.isEmpty { break }
            snap = complete(plan, on: snap)
        }
        #expect(!snap.vms.contains { $0.host == target }, "every VM left \(target)")
        #expect(order == order.sorted(by: >), "largest first: \(order)")
    }

    @Test("a VM no host can take is named in the plan, not dropped silently")
    func unplaceable() {
        let hosts = [ClusterSnapshot.Host(name: "a", cpus: 8, cpuLoad: 0, memoryTotal: 8 << 30, memoryUsed: 6 << 30, maintenance: true, evacuating: true),
                     ClusterSnapshot.Host(name: "b", cpus: 8, cpuLoad: 0, memoryTotal: 8 << 30, memoryUsed: 6 << 30)]
        let plan = Scheduler(policy: policy()).plan(ClusterSnapshot(hosts: hosts, vms: [.init(name: "big", host: "a", memoryBytes: 6 << 30)]),
                                                    now: 0, balance: false)
        #expect(plan.moves.isEmpty)
        #expect(plan.notes.contains { $0.hasPrefix("big (6144 MiB) cannot leave a now") }, "\(plan.notes)")
    }

    @Test("a VM whose migration just failed is not retried before retry_delay, for balance or evacuation")
    func failedNotRetried() {
        let hosts = [ClusterSnapshot.Host(name: "busy", cpus: 8, cpuLoad: 0, memoryTotal: 10 << 30, memoryUsed: 6 << 30, maintenance: true, evacuating: true),
                     ClusterSnapshot.Host(name: "idle", cpus: 8, cpuLoad: 0, memoryTotal: 10 << 30, memoryUsed: 0)]
        let snap = ClusterSnapshot(hosts: hosts, vms: [.init(name: "v", host: "busy", memoryBytes: 2 << 30, lastFailed: 1000)])
        let soon = Scheduler(policy: policy()).plan(snap, now: 1030)
        #expect(soon.moves.isEmpty && soon.notes.contains { $0.contains("v: its last migration failed") }, "\(soon.notes)")
        #expect(Scheduler(policy: policy()).plan(snap, now: 1061).moves.map(\.vm) == ["v"])
    }

    @Test("memory of a VM in flight is reserved on its destination: no second VM overfills it meanwhile")
    func inFlightReserved() {
        let hosts = [ClusterSnapshot.Host(name: "full", cpus: 8, cpuLoad: 0, memoryTotal: 10 << 30, memoryUsed: 9 << 30),
                     ClusterSnapshot.Host(name: "target", cpus: 8, cpuLoad: 0, memoryTotal: 10 << 30, memoryUsed: 0)]
        let vms: [ClusterSnapshot.VM] = [.init(name: "going", host: "full", memoryBytes: 6 << 30),
                                         .init(name: "next", host: "full", memoryBytes: 3 << 30)]
        var p = policy(maxPerHost: 4, maxConcurrent: 4)
        p.maxLoad = 0.85
        let plan = Scheduler(policy: p).plan(ClusterSnapshot(hosts: hosts, vms: vms, inFlight: [.init(vm: "going", source: "full", destination: "target")]), now: 0)
        // 6 GiB already on its way to target: 3 more would bring it to 0.9 > max load.
        #expect(plan.moves.isEmpty, "\(plan.moves)")
    }
}
