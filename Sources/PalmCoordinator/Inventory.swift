import Foundation
import PalmConfig
import PalmControl
import PalmSecurity
import PalmCrypto
import PalmTLS
import PalmWire

/// Hosts and VMs as the agents report them, and what a heartbeat changes.
///
/// Reconciliation rules (applied in the heartbeat's transaction, so a restarted coordinator or a
/// restarted agent converges on the truth the agents report):
/// - an outcome the agent reports finalises its migration once; repeats are acknowledged and ignored;
/// - a `running` migration its source agent neither runs nor reports ended when the agent was
///   restarted: the VM's location decides — still on the source and running: aborted; on the
///   destination: committed; otherwise in-doubt until one of the two reports it;
/// - an in-doubt migration whose VM the destination reports is committed; one whose VM runs (not
///   paused) on the source again was aborted by `palm-source recover`.
extension CoordinatorService {
    /// A heartbeat that carries no outcome and touches no migration only refreshes load and
    /// inventory, and is written without waiting for the disk; the moment a migration of this host
    /// is involved, the whole heartbeat is written durably before its orders go out.
    func heartbeat(_ report: HostReport, from caller: CertificateIdentity) throws -> AgentOrders {
        guard let name = caller.commonName, !name.isEmpty else { throw ServiceError.badArgument("the agent certificate has no CN") }
        let busy = try store.read { try involved($0, host: name) }
        // A quote is routine too: its verdict is re-established by the next one, so it is not worth
        // waiting for the disk; an enrollment step (identity, a credential's answer) is not.
        let enrolling = report.platform.map { $0.identity != nil || $0.activatedCredential != nil } ?? false
        let routine = report.outcomes.isEmpty && report.active.isEmpty && !busy && !enrolling
        do {
            return try heartbeat(report, host: name, caller: caller, durable: !routine)
        } catch HeartbeatNotRoutine.instance {
            return try heartbeat(report, host: name, caller: caller, durable: true)
        }
    }

    private enum HeartbeatNotRoutine: Error { case instance }

    /// Whether a migration of this host is in a state a heartbeat may change.
    private func involved(_ db: StoreConnection, host: String) throws -> Bool {
        try db.value(Bool.self, """
            SELECT EXISTS(SELECT 1 FROM migration WHERE source = ? AND state IN ('ticketed', 'running', 'in-doubt'))
                OR EXISTS(SELECT 1 FROM migration WHERE destination = ? AND state = 'in-doubt')
            """, arguments: [host, host]) ?? true
    }

    private func heartbeat(_ report: HostReport, host name: String, caller: CertificateIdentity, durable: Bool) throws -> AgentOrders {
        let now = clock()
        let actor = CoordinatorService.actor(caller)
        var orders = AgentOrders(allowlist: settings.allowlist, heartbeatInterval: settings.heartbeatInterval)
        // One reading of the lease for the whole heartbeat: the orders, and every ticket handed out
        // with them, carry this epoch. A lease that lapsed since the request was admitted refuses
        // (the agent retries; the database's fence would refuse the writes anyway).
        guard let epoch = leaderEpoch else { throw ServiceError.refused("this coordinator's leader lease lapsed; retry") }
        if lease != nil { orders.epoch = epoch }
        try store.write(durable: durable) { db in
            try db.execute(sql: """
                INSERT INTO host (name, fingerprint, address, destination_address, cpus, cpu_load, memory_total, memory_used, last_heartbeat)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT(name) DO UPDATE SET fingerprint = excluded.fingerprint, address = excluded.address,
                  destination_address = excluded.destination_address, cpus = excluded.cpus, cpu_load = excluded.cpu_load,
                  memory_total = excluded.memory_total, memory_used = excluded.memory_used, last_heartbeat = excluded.last_heartbeat
                """, arguments: [name, caller.fingerprint.hex, hostPart(report.destinationAddress), report.destinationAddress,
                                         report.cpus, report.cpuLoad, report.memoryTotal, report.memoryUsed, now])
            try updateVMs(db, host: name, report.vms)
            // The host's TPM: its report checked, what is due of it asked (see above for durability).
            try attestation(db, host: name, report: report.platform, orders: &orders, actor: actor, now: now)
            let version = try platformTrustVersion(db)
            orders.platformTrustVersion = version
            // The policy and every enrolled key are sent only to an agent whose copy is stale.
            orders.allowlist.platform = report.platformTrustVersion == version ? nil : try platformTrust(db)
            // A migration became ticketed since the check: roll back, write it durably.
            if !durable {
                if try involved(db, host: name) { throw HeartbeatNotRoutine.instance }
                return  // nothing else for a routine heartbeat to change
            }

            for outcome in report.outcomes {
                try apply(outcome, db, source: name, actor: actor, now: now)
                orders.acknowledged.append(outcome.id)
            }
            let active = Set(report.active.map(\.id))
            for p in report.active {
                try db.execute(sql: """
                    UPDATE migration SET phase = ?, round = ?, pages_left = ?, rate = ?, updated = ? WHERE id = ? AND source = ?
                    """, arguments: [p.phase, p.round, Int64(clamping: p.pagesLeft), p.bytesPerSecond, now, p.id, name])
            }
            try reconcile(db, host: name, active: active, reported: Set(report.outcomes.map(\.id)), vms: report.vms, actor: actor, now: now)

            // Orders: every ticketed migration of this source, unless its ticket expired meanwhile.
            for row in try db.rows("SELECT * FROM migration WHERE source = ? AND state = 'ticketed' ORDER BY created", arguments: [name]) {
                let m = try MigrationRecord(row: row)
                if let expires = row["ticket_expires"] as Double?, expires <= now {
                    try transition(db, m.id, from: .ticketed, to: .aborted, detail: "the ticket expired before \(name) asked for its orders", now: now)
                    continue
                }
                guard let signed = row["ticket"] as String?,
                      let address = try db.value(String.self, "SELECT destination_address FROM host WHERE name = ?", arguments: [m.destination]) else { continue }
                let ticket = try ticketUnderCurrentEpoch(db, id: m.id, signed, epoch: orders.epoch)
                orders.start.append(MigrationOrder(id: m.id, vm: m.vm, destinationHost: m.destination, destinationAddress: address,
                                                   ticket: ticket, mode: m.mode, downtimeMs: row["downtime_target_ms"]))
                try transition(db, m.id, from: .ticketed, to: .running, detail: "handed to the source agent", now: now)
                try audit.append(in: db, actor: actor, role: "agent", action: "migration.start", target: m.vm, allowed: true,
                                 detail: "\(m.id): order handed to \(name) → \(m.destination) at \(address)")
            }
            orders.cancel = try db.values(String.self, "SELECT id FROM migration WHERE source = ? AND state = 'running' AND cancel_requested = 1",
                                                arguments: [name])
        }
        if !orders.start.isEmpty || !report.outcomes.isEmpty { onWork() }
        metrics.heartbeat()
        return orders
    }

    private func hostPart(_ address: String) -> String { Endpoint(address)?.host ?? address }

    /// A ticket signed under an earlier leader's epoch and never handed out is signed anew under
    /// this leader's (same migration, window and nonce), so the agents' epoch floors admit it.
    private func ticketUnderCurrentEpoch(_ db: StoreConnection, id: String, _ hex: String, epoch: Int64?) throws -> String {
        guard let epoch, let issuer, let bytes = Hex.decode(hex), let old = try? MigrationTicket.decode(bytes),
              old.epoch < UInt64(clamping: epoch) else { return hex }
        let renewed = Hex.encode(try issuer.reissue(old, epoch: UInt64(clamping: epoch)).encoded())
        try db.execute(sql: "UPDATE migration SET ticket = ? WHERE id = ?", arguments: [renewed, id])
        return renewed
    }

    /// Brings the host's VM rows in line with its report, writing only what changed (most
    /// heartbeats change nothing). Statements are cached: this runs for every heartbeat.
    private func updateVMs(_ db: StoreConnection, host: String, _ vms: [VMReport]) throws {
        var known: [String: (UInt64, Double, Double)] = [:]
        for r in try db.rows("SELECT name, memory_bytes, dirty_rate, cpu FROM vm WHERE host = ?", arguments: [host]) {
            known[try r.get("name")] = (try r.get("memory_bytes"), try r.get("dirty_rate"), try r.get("cpu"))
        }
        let names = Set(vms.map(\.name))
        for existing in known.keys where !names.contains(existing) {
            try db.execute(sql: "DELETE FROM vm WHERE name = ? AND host = ?", arguments: [existing, host])
        }
        for vm in vms {
            if let k = known[vm.name], k.0 == vm.memoryBytes, k.1 == vm.dirtyRate, k.2 == vm.cpu { continue }
            try db.execute(sql: """
                INSERT INTO vm (name, host, memory_bytes, dirty_rate, cpu) VALUES (?, ?, ?, ?, ?)
                ON CONFLICT(name) DO UPDATE SET host = excluded.host, memory_bytes = excluded.memory_bytes,
                  dirty_rate = excluded.dirty_rate, cpu = excluded.cpu
                """, arguments: [vm.name, host, vm.memoryBytes, vm.dirtyRate, vm.cpu])
        }
    }

    private func apply(_ outcome: MigrationOutcome, _ db: StoreConnection, source: String, actor: String, now: Double) throws {
        guard let row = try db.row("SELECT * FROM migration WHERE id = ? AND source = ?", arguments: [outcome.id, source]) else { return }
        let m = try MigrationRecord(row: row)
        let next: MigrationRecordState
        switch outcome.result {
        case .committed: next = .committed
        case .aborted: next = .aborted
        case .cancelled: next = .cancelled
        case .inDoubt: next = .inDoubt
        }
        guard m.state != next, (try? m.state.moving(to: next)) != nil else { return }
        try transition(db, m.id, from: m.state, to: next, detail: outcome.detail, now: now)
        try db.execute(sql: "UPDATE migration SET downtime_ms = ?, total_seconds = ?, rounds = ?, phase = NULL WHERE id = ?",
                       arguments: [outcome.downtimeMs, outcome.totalSeconds, outcome.rounds, m.id])
        if next == .committed { try movedVM(db, m, now: now) }
        try audit.append(in: db, actor: actor, role: "agent", action: "migration.\(next.rawValue)", target: m.vm, allowed: true,
                         detail: "\(m.id): \(m.source) → \(m.destination): \(outcome.detail)")
    }

    private func movedVM(_ db: StoreConnection, _ m: MigrationRecord, now: Double) throws {
        try db.execute(sql: "UPDATE vm SET host = ?, last_moved = ? WHERE name = ?", arguments: [m.destination, now, m.vm])
        try finishEvacuationIfDrained(db, host: m.source, now: now)
    }

    private func reconcile(_ db: StoreConnection, host: String, active: Set<String>, reported: Set<String>, vms: [VMReport],
                           actor: String, now: Double) throws {
        let here = Set(vms.map(\.name))
        // This host's own running migrations that its agent no longer knows.
        for row in try db.rows("SELECT * FROM migration WHERE source = ? AND state = 'running'", arguments: [host]) {
            let m = try MigrationRecord(row: row)
            guard !active.contains(m.id), !reported.contains(m.id) else { continue }
            let onDest = try db.value(Bool.self, "SELECT 1 FROM vm WHERE name = ? AND host = ?", arguments: [m.vm, m.destination]) ?? false
            let (next, why): (MigrationRecordState, String) =
                here.contains(m.vm) ? (.aborted, "the source agent restarted; the VM runs on the source")
                : onDest ? (.committed, "the source agent restarted; the destination runs the VM")
                : (.inDoubt, "the source agent no longer knows it and no host reports the VM yet")
            try transition(db, m.id, from: .running, to: next, detail: why, now: now)
            if next == .committed { try movedVM(db, m, now: now) }
            try audit.append(in: db, actor: "coordinator", role: "coordinator", action: "migration.\(next.rawValue)", target: m.vm,
                             allowed: true, detail: "\(m.id): reconciled: \(why)")
        }
        // In-doubt migrations this host's inventory settles.
        for row in try db.rows("SELECT * FROM migration WHERE state = 'in-doubt' AND (source = ? OR destination = ?)", arguments: [host, host]) {
            let m = try MigrationRecord(row: row)
            guard let vm = vms.first(where: { $0.name == m.vm }) else { continue }
            let next: MigrationRecordState = host == m.destination ? .committed : .aborted
            if next == .aborted && vm.paused { continue }
            let why = next == .committed ? "\(host) reports the VM" : "the VM runs on the source again"
            try transition(db, m.id, from: .inDoubt, to: next, detail: why, now: now)
            if next == .committed { try movedVM(db, m, now: now) }
            try audit.append(in: db, actor: actor, role: "agent", action: "migration.\(next.rawValue)", target: m.vm,
                             allowed: true, detail: "\(m.id): reconciled: \(why)")
        }
    }

    func setMaintenance(host: String, on: Bool, actor: String) throws {
        try store.write { db in
            let changed = try db.execute(sql: "UPDATE host SET maintenance = ?, evacuating = CASE WHEN ? = 1 THEN evacuating ELSE 0 END WHERE name = ?",
                                         arguments: [on, on, host])
            guard changed == 1 else { throw ServiceError.noSuchHost(host) }
        }
    }

    /// Puts `host` into maintenance and drains it: every scheduling cycle moves what the limits allow.
    func startEvacuation(host: String, actor: String) throws {
        try store.write { db in
            guard try db.execute(sql: "UPDATE host SET maintenance = 1, evacuating = 1 WHERE name = ?", arguments: [host]) == 1 else { throw ServiceError.noSuchHost(host) }
            let count = try db.value(Int.self, "SELECT COUNT(*) FROM vm WHERE host = ?", arguments: [host]) ?? 0
            try audit.append(in: db, actor: actor, role: "operator", action: "evacuation.started", target: host, allowed: true,
                             detail: "\(count) VMs to move; \(host) is in maintenance")
        }
    }

    func finishEvacuationIfDrained(_ db: StoreConnection, host: String, now: Double) throws {
        guard try db.value(Bool.self, "SELECT evacuating FROM host WHERE name = ?", arguments: [host]) == true,
              try db.value(Int.self, "SELECT COUNT(*) FROM vm WHERE host = ?", arguments: [host]) == 0 else { return }
        try db.execute(sql: "UPDATE host SET evacuating = 0 WHERE name = ?", arguments: [host])
        try audit.append(in: db, actor: "coordinator", role: "coordinator", action: "evacuation.done", target: host, allowed: true,
                         detail: "\(host) holds no VMs; it stays in maintenance")
    }

    func hostRows() throws -> [[String: String]] {
        let now = clock()
        return try store.read { db in
            var tpm: [String: StoreRow] = [:]
            for r in try db.rows("SELECT host, state, trust, trust_detail, attested FROM tpm_host") { tpm[try r.get("host")] = r }
            return try db.rows("""
                SELECT h.*, (SELECT COUNT(*) FROM vm WHERE vm.host = h.name) AS vms FROM host h ORDER BY name
                """).map { r -> [String: String] in
                let last = r["last_heartbeat"] as Double?
                let up = last.map { now - $0 <= settings.hostTimeout } ?? false
                let name: String = try r.get("name")
                let attestation = try tpm[name].map { t in
                    try hostTrust(state: try t.get("state"), trust: try t.get("trust"), attested: t["attested"], now: now,
                                  detail: try t.get("trust_detail")).text
                } ?? "software (no TPM reported)"
                let state = (try r.get("evacuating") as Bool) ? "evacuating" : (try r.get("maintenance") as Bool) ? "maintenance" : up ? "up" : "down"
                let total = (try r.get("memory_total") as Int64), used = (try r.get("memory_used") as Int64)
                return ["host": try r.get("name"), "address": try r.get("destination_address"), "state": state,
                        "maintenance": (try r.get("maintenance") as Bool) ? "on" : "off",
                        "cpu": String(format: "%.0f%%", (try r.get("cpu_load") as Double) * 100),
                        "memory": "\(used >> 20)/\(total >> 20) MiB", "vms": "\(try r.get("vms") as Int64)",
                        "fingerprint": String((try r.get("fingerprint") as String).prefix(16)), "attestation": attestation]
            }
        }
    }

    func vmRows() throws -> [[String: String]] {
        try store.read { db in
            try db.rows("SELECT * FROM vm ORDER BY name").map { r in
                ["vm": try r.get("name"), "host": try r.get("host"), "memory": "\((try r.get("memory_bytes") as Int64) >> 20) MiB",
                 "dirty_pages_s": String(format: "%.0f", (try r.get("dirty_rate") as Double)), "cpu": String(format: "%.2f", (try r.get("cpu") as Double))]
            }
        }
    }
}
