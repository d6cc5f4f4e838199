import Foundation
import GRDB

/// The coordinator's state in SQLite, schema-versioned with GRDB's migrator: every schema change
/// is a new named migration appended below, applied in order exactly once, so a database written
/// by any earlier version opens and upgrades itself.
public final class CoordinatorStore: @unchecked Sendable {
    public let queue: DatabaseQueue

    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    public init(path: String) throws {
        var config = Configuration()
        config.foreignKeysEnabled = true
        config.busyMode = .timeout(5)
        queue = try DatabaseQueue(path: path, configuration: config)
        // WAL: heartbeats write while operators read, and a crash never leaves a torn page.
        try queue.writeWithoutTransaction { try $0.execute(sql: "PRAGMA journal_mode = WAL") }
        try CoordinatorStore.migrator.migrate(queue)
    }

    /// Runs `body` in one transaction. Every write is durable (synchronous = FULL) except those
    /// marked `durable: false`: routine load reports, which the next heartbeat repeats anyway. They
    /// commit with synchronous = NORMAL — in WAL mode still atomic and consistent after a crash,
    /// only possibly rolled back by a power loss — and the next durable commit makes them durable too.
    public func write<T>(durable: Bool, _ body: (Database) throws -> T) throws -> T {
        guard !durable else { return try queue.write(body) }
        return try queue.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
            defer { try? db.execute(sql: "PRAGMA synchronous = FULL") }
            var result: T?
            try db.inTransaction {
                result = try body(db)
                return .commit
            }
            return result!
        }
    }

    /// Schema versions applied so far.
    public func appliedMigrations() throws -> [String] {
        try queue.read { try CoordinatorStore.migrator.appliedMigrations($0) }
    }

    static var migrator: DatabaseMigrator {
        var m = DatabaseMigrator()
        m.registerMigration("v1: hosts, vms, migrations, nonces, audit") { db in
            try db.create(table: "host") { t in
                t.primaryKey("name", .text)
                t.column("fingerprint", .text).notNull().unique()
                t.column("address", .text).notNull()
                t.column("maintenance", .boolean).notNull().defaults(to: false)
                t.column("cpu_load", .double).notNull().defaults(to: 0)
                t.column("memory_total", .integer).notNull().defaults(to: 0)
                t.column("memory_free", .integer).notNull().defaults(to: 0)
                t.column("last_heartbeat", .double)
            }
            try db.create(table: "vm") { t in
                t.primaryKey("name", .text)
                t.column("host", .text).notNull().references("host", onDelete: .cascade)
                t.column("memory_bytes", .integer).notNull()
                t.column("dirty_rate", .double).notNull().defaults(to: 0)
            }
            try db.create(table: "migration") { t in
                t.primaryKey("id", .text)
                t.column("vm", .text).notNull()
                t.column("source", .text).notNull()
                t.column("destination", .text).notNull()
                t.column("state", .text).notNull()
                t.column("reason", .text)
                t.column("requested_by", .text).notNull()
                t.column("created", .double).notNull()
                t.column("updated", .double).notNull()
            }
            try db.create(table: "ticket_nonce") { t in
                t.primaryKey("nonce", .text)
                t.column("migration", .text).notNull()
                t.column("expires", .double).notNull()
            }
            try db.create(table: "audit") { t in
                t.primaryKey("seq", .integer)
                t.column("time", .double).notNull()
                t.column("actor", .text).notNull()
                t.column("role", .text).notNull()
                t.column("action", .text).notNull()
                t.column("target", .text).notNull()
                t.column("allowed", .boolean).notNull()
                t.column("detail", .text).notNull()
                t.column("prev_hash", .text).notNull()
                t.column("hash", .text).notNull()
                t.column("signature", .text).notNull()
            }
        }
        m.registerMigration("v2: heartbeats, orders, progress, outcomes") { db in
            try db.alter(table: "host") { t in
                t.add(column: "destination_address", .text).notNull().defaults(to: "")
                t.add(column: "cpus", .integer).notNull().defaults(to: 1)
                t.add(column: "memory_used", .integer).notNull().defaults(to: 0)
                t.add(column: "evacuating", .boolean).notNull().defaults(to: false)
            }
            try db.alter(table: "vm") { t in
                t.add(column: "cpu", .double).notNull().defaults(to: 0)
                t.add(column: "last_moved", .double)
            }
            try db.alter(table: "migration") { t in
                t.add(column: "kind", .text).notNull().defaults(to: "manual")
                t.add(column: "mode", .text).notNull().defaults(to: "pre-copy")
                t.add(column: "downtime_target_ms", .double)
                t.add(column: "ticket", .text)
                t.add(column: "ticket_expires", .double)
                t.add(column: "cancel_requested", .boolean).notNull().defaults(to: false)
                t.add(column: "phase", .text)
                t.add(column: "round", .integer)
                t.add(column: "pages_left", .integer)
                t.add(column: "rate", .double)
                t.add(column: "downtime_ms", .double)
                t.add(column: "total_seconds", .double)
                t.add(column: "rounds", .integer)
                t.add(column: "detail", .text)
            }
            try db.create(index: "migration_by_state", on: "migration", columns: ["state"])
            try db.create(index: "migration_by_source", on: "migration", columns: ["source", "state"])
            try db.create(index: "migration_by_destination", on: "migration", columns: ["destination", "state"])
            try db.create(index: "vm_by_host", on: "vm", columns: ["host"])
        }
        return m
    }
}
