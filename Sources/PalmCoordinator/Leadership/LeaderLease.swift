import Foundation
import PalmSupport

/// Exactly one leader among the coordinators sharing one database: a lease row with an expiry
/// and a monotonically increasing epoch (schema v3, `leader_lease`).
///
/// ```
///   coordinator A                 database (leader_lease: holder, epoch, expires)            coordinator B
///   acquire ───────────────────▶  holder '' expired → holder A, epoch 7, now+lease
///   renew every lease/3 ───────▶  holder A, epoch 7 → expires = now+lease
///   write txn: fence ──────────▶  SELECT … WHERE holder=A AND epoch=7 AND expires>now FOR SHARE
///                                                                    ◀─────────────── acquire (refused: A's, unexpired)
///   (A killed / frozen / cut off: no renewal)
///                                 expires passes                      ◀─────────────── acquire → holder B, epoch 8
///   (A resumes) write txn fence ▶  no row for (A, 7) → StoreError.notLeader(B): rolled back
/// ```
///
/// Guarantees and failure cases:
/// - Time is the database server's clock (`clock_timestamp()` / SQLite's `julianday('now')`):
///   coordinators' clocks may disagree freely.
/// - A takeover happens only after the old lease expired, and always bumps the epoch; a renewal by
///   the holder keeps it. A holder whose own lease lapsed (a pause longer than the lease) takes a
///   new epoch when it renews, so everything it issued before the lapse is fenced off as well.
/// - Every write transaction of a coordinator checks its (holder, epoch) under a row lock in the
///   same transaction (``CoordinatorStore/writeFence``): a deposed leader — frozen with SIGSTOP,
///   partitioned, or slow — cannot commit a ticket, an order or an audit entry after a takeover,
///   whatever its local view says. The row lock also makes a takeover wait for in-flight writes.
/// - What the database cannot fence — an order or ticket already handed to an agent — carries the
///   epoch, and agents refuse any from a lower epoch than one they have seen.
/// - The standby takes over within `lease + lease/3` of the leader's last renewal (its next
///   attempt after expiry). If the database itself is unreachable, nobody can renew: leadership
///   lapses everywhere and no coordinator writes until it returns (safety over availability).
public final class LeaderLease: @unchecked Sendable {
    /// What this coordinator knows about leadership.
    public enum State: Sendable, Equatable {
        case leader(epoch: Int64)
        case follower(leader: String?, address: String?, epoch: Int64)
    }

    public let holder: String
    public let address: String
    public let duration: Double
    private let store: CoordinatorStore
    private let state = LockedValueBox<(State, validUntil: Double)>((.follower(leader: nil, address: nil, epoch: 0), 0))

    /// `holder`: this coordinator's name (its certificate's CN), unique among the coordinators;
    /// `address`: where clients reach it (named to them by followers).
    public init(store: CoordinatorStore, holder: String, address: String, duration: Double) {
        self.store = store
        self.holder = holder
        self.address = address
        self.duration = duration
        store.writeFence = { [holder, state] c in
            guard case let .leader(epoch) = state.current.0 else {
                throw StoreError.notLeader(leader: Self.describe(state.current.0))
            }
            let now = Self.now(store.backend.dialect)
            let lock = store.backend.dialect == .postgresql ? " FOR SHARE" : ""
            guard try c.row("SELECT epoch FROM leader_lease WHERE id = 1 AND holder = ? AND epoch = ? AND expires > \(now)\(lock)",
                            arguments: [holder, epoch]) != nil else {
                throw StoreError.notLeader(leader: nil)
            }
        }
    }

    /// The state as of the last renewal; a leader whose renewal is overdue (its lease may have
    /// expired on the database's clock) reports itself a follower until it renews again.
    public var current: State {
        let (s, validUntil) = state.current
        if case let .leader(epoch) = s, MonotonicClock.now() >= validUntil {
            return .follower(leader: nil, address: nil, epoch: epoch)
        }
        return s
    }

    public var isLeader: Bool { if case .leader = current { return true }; return false }

    /// Takes the lease if it is free or expired, renews it if held; returns the state after.
    /// `takeOver` takes it even from a live holder, with a new epoch: what the single coordinator
    /// of an SQLite file does when it starts (it is the only one meant to run; a stale process
    /// still running on the file is fenced off instead of blocking the restart for a lease).
    @discardableResult
    public func renew(takeOver: Bool = false) throws -> State {
        let started = MonotonicClock.now()
        let now = Self.now(store.backend.dialect)
        let result: State
        do {
            result = try store.unfencedWrite { c -> State in
                let row = try c.row("SELECT holder, epoch, expires > \(now) AS live, address FROM leader_lease WHERE id = 1")
                let current: String = try row?.get("holder") ?? ""
                let epoch: Int64 = try row?.get("epoch") ?? 0
                let live: Bool = row?["live"] ?? false
                if live && current != holder && !takeOver {
                    return .follower(leader: current, address: row?["address"], epoch: epoch)
                }
                // Ours and live: the same epoch. Free, expired, or ours but lapsed: a new one.
                let next = (live && current == holder && !takeOver) ? epoch : epoch + 1
                try c.execute(sql: "UPDATE leader_lease SET holder = ?, address = ?, epoch = ?, expires = \(now) + ? WHERE id = 1",
                              arguments: [holder, address, next, duration])
                return .leader(epoch: next)
            }
        } catch {
            state.withLockedValue { $0 = (.follower(leader: nil, address: nil, epoch: 0), 0) }
            throw error
        }
        // Valid locally for the lease minus the time the renewal took (measured from before it
        // was sent: the database's expiry was set later than that).
        state.withLockedValue { $0 = (result, started + duration * 0.9) }
        return result
    }

    /// Steps down: the lease expires now (a clean shutdown lets the standby take over at once).
    public func resign() {
        guard case .leader = state.current.0 else { return }
        state.withLockedValue { $0 = (.follower(leader: nil, address: nil, epoch: 0), 0) }
        let now = Self.now(store.backend.dialect)
        _ = try? store.unfencedWrite { c in
            try c.execute(sql: "UPDATE leader_lease SET expires = \(now) WHERE id = 1 AND holder = ?", arguments: [holder])
        }
    }

    static func now(_ dialect: StoreSchema.Dialect) -> String {
        dialect == .postgresql ? "EXTRACT(EPOCH FROM clock_timestamp())::double precision" : "((julianday('now') - 2440587.5) * 86400.0)"
    }

    static func describe(_ s: State) -> String? {
        guard case let .follower(leader?, address, _) = s else { return nil }
        return address.map { "\(leader) at \($0)" } ?? leader
    }
}
