/// The coordinator's view of one database transaction, whichever backend runs it: statements with
/// `?` placeholders (the PostgreSQL backend numbers them), typed results, and work to do once the
/// transaction has committed. A connection is only valid inside the `read` / `write` body it was
/// passed to.
public protocol StoreConnection: AnyObject {
    /// Runs a statement; returns the number of rows it changed.
    @discardableResult
    func execute(sql: String, arguments: [any SQLValueConvertible]) throws -> Int
    /// Runs a query; returns every row.
    func fetchRows(sql: String, arguments: [any SQLValueConvertible]) throws -> [StoreRow]
    /// `body` runs after this transaction commits (never if it rolls back).
    func afterCommit(_ body: @escaping @Sendable () -> Void)
}

extension StoreConnection {
    @discardableResult
    public func execute(sql: String) throws -> Int { try execute(sql: sql, arguments: []) }

    public func rows(_ sql: String, arguments: [any SQLValueConvertible] = []) throws -> [StoreRow] {
        try fetchRows(sql: sql, arguments: arguments)
    }

    public func row(_ sql: String, arguments: [any SQLValueConvertible] = []) throws -> StoreRow? {
        try fetchRows(sql: sql, arguments: arguments).first
    }

    /// The first column of the first row (nil: no row, or NULL).
    public func value<T: SQLValueConvertible>(_ type: T.Type, _ sql: String, arguments: [any SQLValueConvertible] = []) throws -> T? {
        try fetchRows(sql: sql, arguments: arguments).first.flatMap { try $0.first(T.self) }
    }

    /// The first column of every row (NULLs skipped).
    public func values<T: SQLValueConvertible>(_ type: T.Type, _ sql: String, arguments: [any SQLValueConvertible] = []) throws -> [T] {
        try fetchRows(sql: sql, arguments: arguments).compactMap { try $0.first(T.self) }
    }
}

/// Where the coordinator's state lives. Both backends give the same guarantees to the code above
/// them: `write` bodies are serialized (one at a time per coordinator process) and atomic; `read`
/// bodies see one consistent snapshot.
public protocol StoreBackend: AnyObject, Sendable {
    /// "sqlite" or "postgresql".
    var name: String { get }
    var dialect: StoreSchema.Dialect { get }
    func read<T>(_ body: (StoreConnection) throws -> T) throws -> T
    /// `durable: false` may commit without waiting for the disk (routine load reports that the next
    /// heartbeat repeats); such a commit is still atomic.
    func write<T>(durable: Bool, _ body: (StoreConnection) throws -> T) throws -> T
    /// The schema versions applied, in order.
    func appliedMigrations() throws -> [String]
}
