import Foundation
import PalmSupport

/// Where a coordinator keeps its state (`[state]` in coordinator.toml).
public enum StoreLocation: Sendable, Equatable {
    /// One coordinator, an embedded SQLite file (the default).
    case sqlite(path: String)
    /// Two or more coordinators sharing one PostgreSQL database (`connectTimeout` in seconds
    /// bounds each connection attempt; statements are bounded at twice that).
    case postgresql(url: String, connectTimeout: Int)
}

/// The coordinator's state, on the backend its configuration names: every read and write of the
/// coordinator goes through here, so both backends run the same SQL under the same guarantees
/// (``StoreBackend``).
///
/// Every write transaction first runs the ``writeFence`` when one is installed: the leader lease
/// (``LeaderLease``) installs its check there, so a coordinator that lost the lease — deposed while
/// frozen, cut off, or slower than its lease — cannot commit anything.
public final class CoordinatorStore: @unchecked Sendable {
    public let backend: StoreBackend
    private let fence = LockedValueBox<(@Sendable (StoreConnection) throws -> Void)?>(nil)

    /// Runs first in every write transaction (nil: none); throwing rolls the transaction back.
    public var writeFence: (@Sendable (StoreConnection) throws -> Void)? {
        get { fence.current }
        set { fence.withLockedValue { $0 = newValue } }
    }

    /// Opens (creating if needed) the SQLite database at `path`.
    public convenience init(path: String) throws {
        try self.init(.sqlite(path: path))
    }

    /// Opens the store and brings its schema up to date. A bad URL, an unreachable server or
    /// refused credentials throw their own ``StoreError`` case.
    public init(_ location: StoreLocation) throws {
        switch location {
        case let .sqlite(path): backend = try SQLiteStore(path: path)
        case let .postgresql(url, timeout): backend = try PostgresStore(url: url, connectTimeout: timeout)
        }
    }

    public func read<T>(_ body: (StoreConnection) throws -> T) throws -> T { try backend.read(body) }

    /// One durable transaction.
    public func write<T>(_ body: (StoreConnection) throws -> T) throws -> T { try write(durable: true, body) }

    /// One transaction; `durable: false` for routine load reports the next heartbeat repeats.
    public func write<T>(durable: Bool, _ body: (StoreConnection) throws -> T) throws -> T {
        let fence = self.fence.current
        return try backend.write(durable: durable) { c in
            try fence?(c)
            return try body(c)
        }
    }

    /// A write outside the fence: only the lease itself takes and renews leadership this way.
    func unfencedWrite<T>(_ body: (StoreConnection) throws -> T) throws -> T { try backend.write(durable: true, body) }

    /// Schema versions applied so far, in order.
    public func appliedMigrations() throws -> [String] { try backend.appliedMigrations() }
}
