import Foundation
import PalmSupport

/// The coordinator's state in PostgreSQL, for two or more coordinators sharing one database.
///
/// Guarantees, as ``StoreBackend`` promises: writes of this process run one at a time on one
/// connection, each in one transaction (READ COMMITTED; the leader lease, not the isolation level,
/// keeps other coordinators from writing); reads run on a second connection in a REPEATABLE READ,
/// READ ONLY transaction, so a read sees one snapshot and never waits for a write. A connection
/// the server dropped (restart, failover) is reopened at the next transaction; the transaction
/// that saw it drop fails with ``StoreError/connectionLost(_:)`` and is not retried here (its
/// caller — an agent's heartbeat, an operator's command — repeats it).
public final class PostgresStore: StoreBackend, @unchecked Sendable {
    public let name = "postgresql"
    public let dialect = StoreSchema.Dialect.postgresql
    private let writer: LockedValueBox<PostgresConnection>
    private let reader: LockedValueBox<PostgresConnection>

    /// Connects twice (writer, reader) and brings the schema up to date.
    public init(url: String, connectTimeout: Int = 5) throws {
        writer = LockedValueBox(try PostgresConnection(url: url, connectTimeout: connectTimeout))
        reader = LockedValueBox(try PostgresConnection(url: url, connectTimeout: connectTimeout))
        try writer.withLockedValue { try Self.migrate($0) }
    }

    /// Checks a connection URL's form without connecting (``StoreError/badURL(_:)``).
    public static func validate(url: String) throws { try PostgresConnection.validate(url: url) }

    public func read<T>(_ body: (StoreConnection) throws -> T) throws -> T {
        try reader.withLockedValue { c in
            try c.transaction(begin: "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY") { try body($0) }
        }
    }

    /// Non-durable writes commit with `synchronous_commit = off`: atomic, possibly lost by a server
    /// crash (the next heartbeat repeats them), never torn.
    public func write<T>(durable: Bool, _ body: (StoreConnection) throws -> T) throws -> T {
        try writer.withLockedValue { c in
            try c.transaction(begin: "BEGIN") { c in
                if !durable { try c.execute(sql: "SET LOCAL synchronous_commit = off") }
                return try body(c)
            }
        }
    }

    public func appliedMigrations() throws -> [String] {
        let applied = Set(try read { try $0.values(String.self, "SELECT identifier FROM palm_schema_migrations") })
        let known = StoreSchema.migrations.map(\.name)
        return known.filter(applied.contains) + applied.subtracting(known).sorted()
    }

    /// Applies the missing migrations of ``StoreSchema`` under a transaction-scoped advisory lock.
    private static func migrate(_ c: PostgresConnection) throws {
        try c.transaction(begin: "BEGIN") { c in
            try c.execute(sql: "SELECT pg_advisory_xact_lock(7400)")
            try c.execute(sql: "CREATE TABLE IF NOT EXISTS palm_schema_migrations (identifier TEXT PRIMARY KEY, applied DOUBLE PRECISION NOT NULL)")
            let applied = try c.values(String.self, "SELECT identifier FROM palm_schema_migrations")
            let known = Set(StoreSchema.migrations.map(\.name))
            guard applied.allSatisfy(known.contains) else { throw StoreError.schemaTooNew(applied: applied.sorted()) }
            for m in StoreSchema.migrations where !applied.contains(m.name) {
                for statement in m.statements(.postgresql) { try c.execute(sql: statement) }
                try c.execute(sql: "INSERT INTO palm_schema_migrations (identifier, applied) VALUES (?, ?)",
                              arguments: [m.name, Date().timeIntervalSince1970])
            }
        }
    }
}
