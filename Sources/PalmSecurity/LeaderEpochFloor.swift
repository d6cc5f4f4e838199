import Foundation
import PalmSupport

/// The highest coordinator lease epoch this agent has taken orders under, kept in its state
/// directory (`leader-epoch`, written durably before the orders are acted on), so that neither a
/// deposed leader nor a restart of the agent lets orders of an older epoch through.
///
/// Guarantees: ``admit(_:)`` is true for an epoch at least the highest seen and records it; false
/// for a lower one. A missing or unreadable file counts as 0 (an agent that never took orders).
public final class LeaderEpochFloor: @unchecked Sendable {
    public let path: String
    private let highest: LockedValueBox<Int64>

    public init(path: String) {
        self.path = path
        let text = (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
        highest = LockedValueBox(text.flatMap { Int64($0) }.map { max($0, 0) } ?? 0)
    }

    public var current: Int64 { highest.current }

    /// Whether orders of `epoch` may be taken; records a new highest epoch (durably) first.
    /// A failed write refuses the orders: the floor must never move back after a restart.
    public func admit(_ epoch: Int64) -> Bool {
        highest.withLockedValue { h in
            guard epoch >= h else { return false }
            guard epoch > h else { return true }
            do { try DurableFile.write(Array("\(epoch)\n".utf8), to: path) } catch { return false }
            h = epoch
            return true
        }
    }
}
