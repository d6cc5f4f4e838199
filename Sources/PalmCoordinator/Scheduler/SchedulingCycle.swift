import Foundation
import PalmSecurity
import PalmSupport
import PalmWire

/// One scheduling cycle, in one transaction: expire stale tickets, ticket the operators' requests
/// that have free slots, then let the ``Scheduler`` plan evacuations and balance moves and ticket
/// those. Agents pick their tickets up with their next heartbeat.
extension CoordinatorService {
    /// Loads the cluster as the scheduler sees it.
    func snapshot(_ db: StoreConnection, now: Double) throws -> ClusterSnapshot {
        let untrusted = try untrustedHosts(db, now: now)
        let hosts = try db.rows("SELECT * FROM host ORDER BY name").map { r in
            ClusterSnapshot.Host(name: try r.get("name"), cpus: Double(try r.get("cpus") as Int64), cpuLoad: try r.get("cpu_load"),
                                 memoryTotal: UInt64(try r.get("memory_total") as Int64), memoryUsed: UInt64(try r.get("memory_used") as Int64),
                                 up: (r["last_heartbeat"] as Double?).map { now - $0 <= settings.hostTimeout } ?? false,
                                 maintenance: try r.get("maintenance"), evacuating: try r.get("evacuating"),
                                 untrusted: untrusted[try r.get("name") as String])
        }
        var failed: [String: Double] = [:]
        for r in try db.rows("SELECT vm, MAX(updated) AS t FROM migration WHERE state = 'aborted' AND updated > ? GROUP BY vm",
                                  arguments: [now - settings.scheduler.retryDelay]) {
            failed[try r.get("vm")] = try r.get("t")
        }
        let vms = try db.rows("SELECT * FROM vm").map { r in
            ClusterSnapshot.VM(name: try r.get("name"), host: try r.get("host"), memoryBytes: UInt64(try r.get("memory_bytes") as Int64),
                               dirtyRate: try r.get("dirty_rate"), cpu: try r.get("cpu"), lastMoved: r["last_moved"], lastFailed: failed[try r.get("name") as String])
        }
        let inFlight = try db.rows("SELECT vm, source, destination FROM migration WHERE state IN \(CoordinatorService.activeStates)")
            .map { ClusterSnapshot.InFlight(vm: try $0.get("vm"), source: try $0.get("source"), destination: try $0.get("destination")) }
        return ClusterSnapshot(hosts: hosts, vms: vms, inFlight: inFlight)
    }

    /// What a cycle would do now, changing nothing (`rebalance --dry-run`).
    public func dryRunPlan() throws -> Scheduler.Plan {
        let now = clock()
        let snap = try store.read { try snapshot($0, now: now) }
        return Scheduler(policy: settings.scheduler).plan(snap, now: now, balance: true)
    }

    /// Runs one cycle and returns its plan (the moves it ticketed and its notes).
    @discardableResult
    public func runCycle(balance: Bool? = nil, requestedBy: String = "scheduler") throws -> Scheduler.Plan {
        // One reading of the lease for the whole cycle: its tickets carry this epoch.
        guard let epoch = leaderEpoch else { return Scheduler.Plan(notes: ["a follower schedules nothing"]) }
        let now = clock()
        let started = MonotonicClock.now()
        defer { metrics.schedulingCycle(seconds: MonotonicClock.now() - started) }
        return try store.write { db in
            for id in try db.values(String.self, "SELECT id FROM migration WHERE state = 'ticketed' AND ticket_expires <= ?", arguments: [now]) {
                try transition(db, id, from: .ticketed, to: .aborted, detail: "the ticket expired before the source agent asked for it", now: now)
            }
            var snap = try snapshot(db, now: now)
            var notes: [String] = []
            try ticketRequested(db, &snap, notes: &notes, now: now, epoch: epoch)
            let waiting = Set(try db.values(String.self, "SELECT vm FROM migration WHERE state = 'requested'"))
            snap.vms.removeAll { waiting.contains($0.name) }
            var plan = Scheduler(policy: settings.scheduler).plan(snap, now: now, balance: balance ?? settings.autoBalance)
            for move in plan.moves {
                let id = Hex.encode((0..<16).map { _ in UInt8.random(in: 0...255) })
                try db.execute(sql: """
                    INSERT INTO migration (id, vm, source, destination, state, reason, requested_by, created, updated, kind, mode)
                    VALUES (?, ?, ?, ?, 'requested', ?, ?, ?, ?, ?, 'pre-copy')
                    """, arguments: [id, move.vm, move.from, move.to, move.reason, requestedBy, now, now, move.kind.rawValue])
                try audit.append(in: db, actor: requestedBy, role: "coordinator", action: "migration.planned", target: move.vm,
                                 allowed: true, detail: "\(id): \(move.kind.rawValue) \(move.from) → \(move.to): \(move.reason)")
                try ticket(db, id: id, now: now, epoch: epoch)
            }
            plan.notes = notes + plan.notes
            return plan
        }
    }

    /// Tickets operators' requests, oldest first, while both hosts and the cluster have slots.
    private func ticketRequested(_ db: StoreConnection, _ snap: inout ClusterSnapshot, notes: inout [String], now: Double, epoch: Int64) throws {
        let policy = settings.scheduler
        for row in try db.rows("SELECT * FROM migration WHERE state = 'requested' ORDER BY created") {
            let m = try MigrationRecord(row: row)
            guard let dest = snap.hosts.first(where: { $0.name == m.destination }),
                  snap.vms.contains(where: { $0.name == m.vm && $0.host == m.source }) else {
                try transition(db, m.id, from: .requested, to: .aborted, detail: "\(m.vm) is no longer on \(m.source) or \(m.destination) is gone", now: now)
                continue
            }
            guard dest.up && !dest.maintenance && dest.untrusted == nil else {
                let why = dest.untrusted.map { "is not trusted: \($0)" } ?? (dest.maintenance ? "is in maintenance" : "is down")
                try transition(db, m.id, from: .requested, to: .aborted, detail: "\(m.destination) \(why)", now: now)
                continue
            }
            let flying = snap.inFlight
            func busy(_ h: String) -> Int { flying.filter { $0.source == h || $0.destination == h }.count }
            guard flying.count < policy.maxConcurrent, busy(m.source) < policy.maxPerHost, busy(m.destination) < policy.maxPerHost else {
                notes.append("\(m.id.prefix(8)) (\(m.vm)) waits for a free migration slot")
                continue
            }
            try ticket(db, id: m.id, now: now, epoch: epoch)
            snap.inFlight.append(.init(vm: m.vm, source: m.source, destination: m.destination))
        }
    }

    /// Signs the ticket of a requested migration and records its nonce: from here its source agent
    /// receives it with its next heartbeat.
    private func ticket(_ db: StoreConnection, id: String, now: Double, epoch: Int64) throws {
        guard let issuer else { throw ServiceError.refused("this coordinator has no ticket key") }
        guard let row = try db.row("""
            SELECT m.vm, v.memory_bytes, s.fingerprint AS sfp, d.fingerprint AS dfp FROM migration m
            JOIN vm v ON v.name = m.vm JOIN host s ON s.name = m.source JOIN host d ON d.name = m.destination WHERE m.id = ?
            """, arguments: [id]),
              let source = Digest32(hex: try row.get("sfp")), let dest = Digest32(hex: try row.get("dfp")), let mid = Hex.decode(id) else {
            throw ServiceError.refused("migration \(id) refers to an unknown VM or host")
        }
        let t = try issuer.issue(vm: try row.get("vm"), memoryBytes: UInt64(try row.get("memory_bytes") as Int64), source: source, destination: dest,
                                 now: UInt64(now), validity: settings.ticketValidity,
                                 epoch: UInt64(clamping: epoch), migrationID: mid)
        try db.execute(sql: "INSERT INTO ticket_nonce (nonce, migration, expires) VALUES (?, ?, ?)",
                       arguments: [t.nonce.hex, id, Double(t.notAfter)])
        try db.execute(sql: "UPDATE migration SET ticket = ?, ticket_expires = ? WHERE id = ?",
                       arguments: [Hex.encode(t.encoded()), Double(t.notAfter), id])
        try transition(db, id, from: .requested, to: .ticketed, detail: "ticket signed, valid \(settings.ticketValidity) s", now: now)
    }
}
