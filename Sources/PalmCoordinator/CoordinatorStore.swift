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
        queue = try DatabaseQueue(path: path, configuration: config)
        try CoordinatorStore.migrator.migrate(queue)
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
        return m
    }
}
