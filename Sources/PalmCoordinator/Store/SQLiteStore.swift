import Foundation
import GRDB
import PalmSupport

/// The embedded default: one coordinator, one SQLite file (WAL), schema-versioned with GRDB's
/// migrator under the names in ``StoreSchema`` — so a database written by any earlier version
/// opens and upgrades itself.
public final class SQLiteStore: StoreBackend, @unchecked Sendable {
    public let name = "sqlite"
    public let dialect = StoreSchema.Dialect.sqlite
    let queue: DatabaseQueue

    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    public init(path: String) throws {
        var config = Configuration()
        config.foreignKeysEnabled = true
        config.busyMode = .timeout(5)
        queue = try DatabaseQueue(path: path, configuration: config)
        // WAL: heartbeats write while operators read, and a crash never leaves a torn page.
        try queue.writeWithoutTransaction { try $0.execute(sql: "PRAGMA journal_mode = WAL") }
        if try queue.read({ try Self.migrator.hasBeenSuperseded($0) }) {
            throw StoreError.schemaTooNew(applied: try appliedMigrations())
        }
        try Self.migrator.migrate(queue)
    }

    public func read<T>(_ body: (StoreConnection) throws -> T) throws -> T {
        try queue.read { try body(GRDBConnection($0)) }
    }

    /// Durable writes commit with synchronous = FULL; the others with NORMAL — in WAL mode still
    /// atomic and consistent after a crash, only possibly rolled back by a power loss, and made
    /// durable by the next durable commit.
    public func write<T>(durable: Bool, _ body: (StoreConnection) throws -> T) throws -> T {
        guard !durable else { return try queue.write { try body(GRDBConnection($0)) } }
        return try queue.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
            defer { try? db.execute(sql: "PRAGMA synchronous = FULL") }
            var result: T?
            try db.inTransaction {
                result = try body(GRDBConnection(db))
                return .commit
            }
            guard let result else { throw StoreError.queryFailed(sqlState: "", message: "transaction produced no result") }
            return result
        }
    }

    public func appliedMigrations() throws -> [String] {
        try queue.read { try Self.migrator.appliedMigrations($0) }
    }

    static var migrator: DatabaseMigrator {
        var m = DatabaseMigrator()
        for migration in StoreSchema.migrations {
            m.registerMigration(migration.name) { db in
                for statement in migration.statements(.sqlite) { try db.execute(sql: statement) }
            }
        }
        return m
    }
}

/// A GRDB `Database` as a ``StoreConnection``. Statements are cached per SQL text: the same few
/// run for every heartbeat.
final class GRDBConnection: StoreConnection {
    let db: Database
    init(_ db: Database) { self.db = db }

    private static func arguments(_ values: [any SQLValueConvertible]) -> StatementArguments {
        StatementArguments(values.map { v -> DatabaseValue in
            switch v.sqlValue {
            case .null: return .null
            case let .integer(i): return i.databaseValue
            case let .real(d): return d.databaseValue
            case let .text(s): return s.databaseValue
            }
        })
    }

    func execute(sql: String, arguments: [any SQLValueConvertible]) throws -> Int {
        try db.cachedStatement(sql: sql).execute(arguments: Self.arguments(arguments))
        return db.changesCount
    }

    /// Each query's column positions by name, built once per SQL text (at most a few hundred:
    /// queries are written in the code, not made from input).
    private static let columnMaps = LockedValueBox<[String: [String: Int]]>([:])

    func fetchRows(sql: String, arguments: [any SQLValueConvertible]) throws -> [StoreRow] {
        let statement = try db.cachedStatement(sql: sql)
        let columns = Self.columnMaps.withLockedValue { maps -> [String: Int] in
            if let known = maps[sql] { return known }
            var columns: [String: Int] = [:]
            for (i, c) in statement.columnNames.enumerated() where columns[c] == nil { columns[c] = i }
            if maps.count >= 512 { maps.removeAll() }
            maps[sql] = columns
            return columns
        }
        return try Row.fetchAll(statement, arguments: Self.arguments(arguments)).map { row in
            StoreRow(columns: columns, values: row.databaseValues.map { dv in
                switch dv.storage {
                case .null: return .null
                case let .int64(i): return .integer(i)
                case let .double(d): return .real(d)
                case let .string(s): return .text(s)
                case let .blob(b): return .text(String(decoding: b, as: UTF8.self))
                }
            })
        }
    }

    func afterCommit(_ body: @escaping @Sendable () -> Void) {
        db.afterNextTransaction(onCommit: { _ in body() })
    }
}
