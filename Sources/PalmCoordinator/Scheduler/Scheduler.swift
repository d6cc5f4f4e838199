/// Decides which VMs move where: draining hosts under evacuation and balancing load.
///
/// Guarantees, for any snapshot (the scheduler tests check them on generated clusters):
/// - **limits**: a plan plus what is already in flight never exceeds ``SchedulerPolicy/maxPerHost``
///   on any host nor ``SchedulerPolicy/maxConcurrent`` in the cluster;
/// - **no overload**: a destination's memory never exceeds its total and its load never exceeds
///   ``SchedulerPolicy/maxLoad``; hosts down, in maintenance or being drained receive nothing;
/// - **no ping-pong, convergence**: a balancing move replaces its source's load p by two loads
///   ≤ p − ``SchedulerPolicy/minImprovement``, so the sorted load vector strictly decreases with
///   every move — no sequence of moves can return to an earlier state, and balancing stops;
/// - evacuation moves the largest VMs first (they are the hardest to place) and says which VM
///   cannot be placed anywhere and why.
public struct Scheduler: Sendable {
    public var policy: SchedulerPolicy
    public init(policy: SchedulerPolicy) { self.policy = policy }

    /// One planned migration and why.
    public struct Move: Sendable, Equatable, Codable {
        public enum Kind: String, Sendable, Codable { case evacuate, balance }
        public var kind: Kind
        public var vm: String
        public var from: String
        public var to: String
        /// How much the busier host of the pair gets less loaded (0 for evacuations).
        public var gain: Double
        /// Predicted seconds on the link.
        public var cost: Double
        public var reason: String
    }

    /// The moves of one cycle and notes on what was not done.
    public struct Plan: Sendable, Equatable {
        public var moves: [Move] = []
        public var notes: [String] = []
        /// Max − min load over hosts that accept VMs, before the plan.
        public var imbalance: Double = 0
    }

    /// Plans one cycle at time `now` (seconds since 1970): evacuations first, then balance moves
    /// when `balance` is set.
    public func plan(_ snapshot: ClusterSnapshot, now: Double, balance: Bool = true) -> Plan {
        var state = PlanningState(snapshot, policy: policy)
        var plan = Plan()
        plan.imbalance = state.imbalance()
        evacuate(&state, &plan, now: now)
        if balance { rebalance(&state, &plan, now: now) }
        return plan
    }

    private func recentlyFailed(_ vm: ClusterSnapshot.VM, now: Double) -> Bool {
        vm.lastFailed.map { now - $0 < policy.retryDelay } ?? false
    }

    private func evacuate(_ state: inout PlanningState, _ plan: inout Plan, now: Double) {
        let cost = MigrationCostModel(policy: policy)
        for source in state.hosts.indices where state.hosts[source].evacuating {
            let name = state.hosts[source].name
            let leaving = state.vms.indices.filter { state.vms[$0].host == name && !state.moving.contains(state.vms[$0].name) }
                .sorted { state.vms[$0].memoryBytes > state.vms[$1].memoryBytes }
            for v in leaving {
                guard state.clusterSlots > 0 else {
                    plan.notes.append("cluster limit of \(policy.maxConcurrent) concurrent migrations reached; the rest waits")
                    return
                }
                guard state.slots(source) > 0 else {
                    plan.notes.append("\(name): \(leaving.count - plan.moves.filter { $0.from == name }.count) VMs still to drain, one slot per cycle (max_per_host = \(policy.maxPerHost))")
                    break
                }
                let vm = state.vms[v]
                if recentlyFailed(vm, now: now) {
                    plan.notes.append("\(vm.name): its last migration failed; retrying after \(Int(policy.retryDelay)) s")
                    continue
                }
                // The least loaded host that can take it without going over the limits.
                let target = state.hosts.indices
                    .filter { $0 != source && state.hosts[$0].acceptsVMs && state.slots($0) > 0 && state.fits(vm, on: $0) }
                    .min { state.pressure(after: vm, on: $0) < state.pressure(after: vm, on: $1) }
                guard let d = target else {
                    plan.notes.append("\(vm.name) (\(vm.memoryBytes >> 20) MiB) cannot leave \(name) now: no host with a free slot can take it under max load \(policy.maxLoad)")
                    continue
                }
                let move = Move(kind: .evacuate, vm: vm.name, from: name, to: state.hosts[d].name, gain: 0,
                                cost: cost.seconds(memoryBytes: vm.memoryBytes, dirtyPagesPerSecond: vm.dirtyRate),
                                reason: String(format: "evacuating %@: %@ is the least loaded host that fits (load %.2f → %.2f)",
                                               name, state.hosts[d].name, state.hosts[d].pressure, state.pressure(after: vm, on: d)))
                state.apply(move)
                plan.moves.append(move)
            }
        }
    }

    private func rebalance(_ state: inout PlanningState, _ plan: inout Plan, now: Double) {
        let cost = MigrationCostModel(policy: policy)
        while true {
            let imbalance = state.imbalance()
            guard imbalance > policy.imbalanceThreshold else {
                plan.notes.append(String(format: "balanced: load spread %.2f is within the threshold %.2f", imbalance, policy.imbalanceThreshold))
                return
            }
            guard state.clusterSlots > 0 else {
                plan.notes.append("cluster limit of \(policy.maxConcurrent) concurrent migrations reached; balancing waits")
                return
            }
            // Receivers: accepting hosts with a free slot, least loaded first.
            let receivers = state.hosts.indices.filter { state.hosts[$0].acceptsVMs && state.slots($0) > 0 }
                .sorted { state.hosts[$0].pressure < state.hosts[$1].pressure }
            // Givers: busiest first; maintenance hosts keep their VMs.
            let givers = state.hosts.indices.filter { state.hosts[$0].acceptsVMs && state.slots($0) > 0 }
                .sorted { state.hosts[$0].pressure > state.hosts[$1].pressure }
            var best: (move: Move, score: Double)?
            var held = 0
            for s in givers {
                let source = state.hosts[s]
                for v in state.vmsOn[source.name] ?? [] where !state.moving.contains(state.vms[v].name) {
                    let vm = state.vms[v]
                    if let moved = vm.lastMoved, now - moved < policy.holdTime { held += 1; continue }
                    if recentlyFailed(vm, now: now) { held += 1; continue }
                    let after = state.pressure(without: vm, on: s)
                    guard let d = receivers.first(where: { $0 != s && state.fits(vm, on: $0) }) else { continue }
                    let peak = max(after, state.pressure(after: vm, on: d))
                    let gain = source.pressure - peak
                    guard gain >= policy.minImprovement else { continue }
                    let seconds = cost.seconds(memoryBytes: vm.memoryBytes, dirtyPagesPerSecond: vm.dirtyRate)
                    let score = gain / max(seconds, 0.001)
                    if best == nil || score > best!.score {
                        let reason = String(format: "load %@ %.2f → %.2f, %@ %.2f → %.2f; gain %.2f for a predicted %.1f s migration",
                                            source.name, source.pressure, after, state.hosts[d].name, state.hosts[d].pressure,
                                            state.pressure(after: vm, on: d), gain, seconds)
                        best = (Move(kind: .balance, vm: vm.name, from: source.name, to: state.hosts[d].name, gain: gain,
                                     cost: seconds, reason: reason), score)
                    }
                }
                // The busiest host with a candidate wins; less loaded givers only if it had none.
                if best != nil { break }
            }
            guard let chosen = best else {
                plan.notes.append(String(format: "load spread %.2f, but no single move lowers the busier host of its pair by %.2f or more without overloading the other%@",
                                         imbalance, policy.minImprovement, held > 0 ? " (\(held) VMs held after a recent move or failed attempt)" : ""))
                return
            }
            state.apply(chosen.move)
            plan.moves.append(chosen.move)
        }
    }
}

/// The scheduler's working copy of a snapshot: indexes, slot counts and loads updated as moves
/// are planned.
struct PlanningState {
    var hosts: [ClusterSnapshot.Host]
    var vms: [ClusterSnapshot.VM]
    var index: [String: Int] = [:]
    var vmsOn: [String: [Int]] = [:]
    var busy: [Int]
    var moving: Set<String>
    var clusterSlots: Int
    let policy: SchedulerPolicy

    init(_ snapshot: ClusterSnapshot, policy: SchedulerPolicy) {
        self.policy = policy
        hosts = snapshot.hosts
        vms = snapshot.vms
        busy = Array(repeating: 0, count: hosts.count)
        for (i, h) in hosts.enumerated() { index[h.name] = i }
        for (i, v) in vms.enumerated() { vmsOn[v.host, default: []].append(i) }
        let inFlightNames = Set(snapshot.inFlight.map(\.vm))
        moving = inFlightNames
        let flying = Dictionary(snapshot.vms.filter { inFlightNames.contains($0.name) }.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        for f in snapshot.inFlight {
            if let s = index[f.source] { busy[s] += 1 }
            if let d = index[f.destination] {
                busy[d] += 1
                // Reserve the incoming VM on its destination until the move completes.
                if let vm = flying[f.vm], vm.host == f.source {
                    hosts[d].memoryUsed += vm.memoryBytes
                    hosts[d].cpuLoad += vm.cpu / max(hosts[d].cpus, 1)
                }
            }
        }
        clusterSlots = policy.maxConcurrent - snapshot.inFlight.count
    }

    func slots(_ h: Int) -> Int { policy.maxPerHost - busy[h] }

    func imbalance() -> Double {
        let loads = hosts.filter(\.acceptsVMs).map(\.pressure)
        guard let hi = loads.max(), let lo = loads.min() else { return 0 }
        return hi - lo
    }

    func cpuShare(_ vm: ClusterSnapshot.VM, _ h: Int) -> Double { vm.cpu / max(hosts[h].cpus, 1) }

    func pressure(after vm: ClusterSnapshot.VM, on h: Int) -> Double {
        let host = hosts[h]
        let mem = host.memoryTotal == 0 ? 1 : Double(host.memoryUsed + vm.memoryBytes) / Double(host.memoryTotal)
        return max(host.cpuLoad + cpuShare(vm, h), mem)
    }

    func pressure(without vm: ClusterSnapshot.VM, on h: Int) -> Double {
        let host = hosts[h]
        let used = host.memoryUsed > vm.memoryBytes ? host.memoryUsed - vm.memoryBytes : 0
        let mem = host.memoryTotal == 0 ? 1 : Double(used) / Double(host.memoryTotal)
        return max(max(host.cpuLoad - cpuShare(vm, h), 0), mem)
    }

    /// Memory fits and the load stays within maxLoad.
    func fits(_ vm: ClusterSnapshot.VM, on h: Int) -> Bool {
        let host = hosts[h]
        return host.memoryUsed + vm.memoryBytes <= host.memoryTotal && pressure(after: vm, on: h) <= policy.maxLoad
    }

    mutating func apply(_ move: Scheduler.Move) {
        guard let s = index[move.from], let d = index[move.to],
              let v = vmsOn[move.from]?.first(where: { vms[$0].name == move.vm }) else { return }
        let vm = vms[v]
        let sourceCPU = cpuShare(vm, s), destCPU = cpuShare(vm, d)
        hosts[s].memoryUsed = hosts[s].memoryUsed > vm.memoryBytes ? hosts[s].memoryUsed - vm.memoryBytes : 0
        hosts[s].cpuLoad = max(hosts[s].cpuLoad - sourceCPU, 0)
        hosts[d].memoryUsed += vm.memoryBytes
        hosts[d].cpuLoad += destCPU
        busy[s] += 1
        busy[d] += 1
        clusterSlots -= 1
        moving.insert(vm.name)
        vms[v].host = move.to
        vmsOn[move.from]?.removeAll { $0 == v }
        vmsOn[move.to, default: []].append(v)
    }
}
