/// The life of a migration as the coordinator records it. Every transition is checked, so a
/// restarted coordinator that replays its database can never run a migration twice or revive a
/// finished one.
///
/// ```text
///   requested --ticket signed--> ticketed --source agent accepted--> running
///   running --DONE reported--> committed
///   requested | ticketed | running --refused, aborted, failed--> aborted
///   running --agent lost, outcome unknown--> inDoubt --RESOLVE answered--> committed | aborted
///   requested | ticketed --operator cancel--> cancelled
///   running --operator cancel, agent stopped before COMMIT--> cancelled
/// ```
public enum MigrationRecordState: String, Sendable, CaseIterable, Codable {
    case requested, ticketed, running, committed, aborted, inDoubt = "in-doubt", cancelled

    public var isFinal: Bool { [.committed, .aborted, .cancelled].contains(self) }

    static let transitions: [MigrationRecordState: Set<MigrationRecordState>] = [
        .requested: [.ticketed, .aborted, .cancelled],
        .ticketed: [.running, .aborted, .cancelled],
        .running: [.committed, .aborted, .inDoubt, .cancelled],
        .inDoubt: [.committed, .aborted],
    ]

    public struct IllegalTransition: Error, Equatable, CustomStringConvertible {
        public let from: MigrationRecordState
        public let to: MigrationRecordState
        public init(from: MigrationRecordState, to: MigrationRecordState) {
            self.from = from
            self.to = to
        }
        public var description: String { "a migration cannot go from \(from.rawValue) to \(to.rawValue)" }
    }

    /// The next state, or an error naming the illegal step.
    public func moving(to next: MigrationRecordState) throws -> MigrationRecordState {
        guard MigrationRecordState.transitions[self]?.contains(next) == true else { throw IllegalTransition(from: self, to: next) }
        return next
    }
}
