import Foundation
import PalmWire

/// One migration as the coordinator records it.
public struct MigrationRecord: Sendable, Equatable {
    public var id: String
    public var vm: String
    public var source: String
    public var destination: String
    public var state: MigrationRecordState
    public var kind: String
    public var mode: String
    public var requestedBy: String
    public var created: Double
    public var updated: Double
    public var reason: String?
    public var detail: String?
    public var phase: String?
    public var round: Int?
    public var pagesLeft: Int64?
    public var rate: Double?
    public var downtimeMs: Double?
    public var totalSeconds: Double?
    public var cancelRequested: Bool

    init(row r: StoreRow) throws {
        id = try r.get("id")
        vm = try r.get("vm")
        source = try r.get("source")
        destination = try r.get("destination")
        guard let s = MigrationRecordState(rawValue: try r.get("state")) else {
            throw CoordinatorService.ServiceError.refused("migration \(id) has an unknown state in the database")
        }
        state = s
        kind = try r.get("kind")
        mode = try r.get("mode")
        requestedBy = try r.get("requested_by")
        created = try r.get("created")
        updated = try r.get("updated")
        reason = r["reason"]
        detail = r["detail"]
        phase = r["phase"]
        round = r["round"]
        pagesLeft = r["pages_left"]
        rate = r["rate"]
        downtimeMs = r["downtime_ms"]
        totalSeconds = r["total_seconds"]
        cancelRequested = try r.get("cancel_requested")
    }

    /// The record as a table row (what `status`, `history` and `migrate` print).
    public var row: [String: String] {
        var r = ["id": id, "vm": vm, "from": source, "to": destination, "state": state.rawValue, "kind": kind,
                 "mode": mode, "requested_by": requestedBy,
                 "created": ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: created))]
        if let reason { r["reason"] = reason }
        if let detail { r["detail"] = detail }
        if let phase { r["phase"] = phase }
        if let round { r["round"] = "\(round)" }
        if let pagesLeft { r["pages_left"] = "\(pagesLeft)" }
        if let rate { r["rate_mib_s"] = String(format: "%.1f", rate / 1_048_576) }
        if let downtimeMs { r["downtime_ms"] = String(format: "%.1f", downtimeMs) }
        if let totalSeconds { r["total_s"] = String(format: "%.2f", totalSeconds) }
        if cancelRequested { r["cancel_requested"] = "yes" }
        return r
    }
}

/// Creating, finding, moving and cancelling migration records; every transition goes through
/// ``MigrationRecordState/moving(to:)`` and is audited in the same transaction.
extension CoordinatorService {
    static let activeStates = "('ticketed', 'running', 'in-doubt')"

    func migration(matching id: String) throws -> MigrationRecord {
        guard !id.isEmpty, id.allSatisfy(\.isHexDigit) else { throw ServiceError.badArgument("a migration id is hexadecimal") }
        let rows = try store.read { try $0.rows("SELECT * FROM migration WHERE id LIKE ? LIMIT 2", arguments: [id.lowercased() + "%"]) }
        guard let first = rows.first else { throw ServiceError.noSuchMigration(id) }
        guard rows.count == 1 else { throw ServiceError.ambiguousMigration(id) }
        return try MigrationRecord(row: first)
    }

    func history(limit: Int, vm: String?) throws -> [MigrationRecord] {
        try store.read { db in
            let rows = vm == nil
                ? try db.rows("SELECT * FROM migration ORDER BY created DESC LIMIT ?", arguments: [limit])
                : try db.rows("SELECT * FROM migration WHERE vm = ? ORDER BY created DESC LIMIT ?", arguments: [vm, limit])
            return try rows.map(MigrationRecord.init(row:))
        }
    }

    /// Records an operator's request; the next scheduling cycle tickets it when both hosts have a
    /// free slot.
    func requestMigration(vm: String, to: String, mode: String, downtimeMs: Double?, actor: String) throws -> [String: String] {
        let now = clock()
        return try store.write { db in
            guard let source = try db.value(String.self, "SELECT host FROM vm WHERE name = ?", arguments: [vm]) else {
                throw ServiceError.noSuchVM(vm)
            }
            guard let dest = try db.row("SELECT * FROM host WHERE name = ?", arguments: [to]) else {
                throw ServiceError.noSuchHost(to)
            }
            guard source != to else { throw ServiceError.refused("\(vm) already runs on \(to)") }
            if try dest.get("maintenance") as Bool { throw ServiceError.refused("\(to) is in maintenance: it receives no VMs") }
            if let why = try untrustedHosts(db, now: now)[to] { throw ServiceError.refused("\(to) receives no VMs: \(why)") }
            let memory = try db.value(Int64.self, "SELECT memory_bytes FROM vm WHERE name = ?", arguments: [vm]) ?? 0
            let free = (try dest.get("memory_total") as Int64) - (try dest.get("memory_used") as Int64)
            if memory > free {
                throw ServiceError.refused("\(to) has \(max(free, 0) >> 20) MiB free; \(vm) needs \(memory >> 20) MiB")
            }
            if let busy = try db.value(String.self, "SELECT id FROM migration WHERE vm = ? AND state IN ('requested', 'ticketed', 'running', 'in-doubt')",
                                              arguments: [vm]) {
                throw ServiceError.refused("\(vm) is already migrating (\(busy.prefix(8)))")
            }
            let id = Hex.encode((0..<16).map { _ in UInt8.random(in: 0...255) })
            try db.execute(sql: """
                INSERT INTO migration (id, vm, source, destination, state, reason, requested_by, created, updated, kind, mode, downtime_target_ms)
                VALUES (?, ?, ?, ?, 'requested', 'requested by an operator', ?, ?, ?, 'manual', ?, ?)
                """, arguments: [id, vm, source, to, actor, now, now, mode, downtimeMs])
            try audit.append(in: db, actor: actor, role: "operator", action: "migration.requested", target: vm, allowed: true,
                             detail: "\(id): \(source) → \(to) (\(mode))")
            return try MigrationRecord(row: try db.row("SELECT * FROM migration WHERE id = ?", arguments: [id])!).row
        }
    }

    /// Cancels a migration that has not committed: one not yet handed to its agent ends at once;
    /// a running one is cancelled by its source agent on its next heartbeat (the VM stays on the
    /// source). A migration past its commit point cannot be cancelled.
    func cancel(id: String, actor: String) throws -> [String: String] {
        let m = try migration(matching: id)
        let now = clock()
        return try store.write { db in
            switch m.state {
            case .requested, .ticketed:
                try transition(db, m.id, from: m.state, to: .cancelled, detail: "cancelled by \(actor) before it started", now: now)
            case .running:
                try db.execute(sql: "UPDATE migration SET cancel_requested = 1, updated = ? WHERE id = ?", arguments: [now, m.id])
            case .inDoubt:
                throw ServiceError.refused("migration \(m.id.prefix(8)) is past its commit point; it cannot be cancelled")
            case .committed, .aborted, .cancelled:
                throw ServiceError.refused("migration \(m.id.prefix(8)) already ended (\(m.state.rawValue))")
            }
            try audit.append(in: db, actor: actor, role: "operator", action: "migration.cancel", target: m.vm, allowed: true,
                             detail: "\(m.id): \(m.state == .running ? "asked the source agent to cancel" : "cancelled")")
            return try MigrationRecord(row: try db.row("SELECT * FROM migration WHERE id = ?", arguments: [m.id])!).row
        }
    }

    /// Moves a record to `to`, refusing any step the state machine does not allow.
    func transition(_ db: StoreConnection, _ id: String, from: MigrationRecordState, to: MigrationRecordState, detail: String, now: Double) throws {
        _ = try from.moving(to: to)
        try db.execute(sql: "UPDATE migration SET state = ?, detail = ?, updated = ? WHERE id = ? AND state = ?",
                       arguments: [to.rawValue, detail, now, id, from.rawValue])
    }
}
