import PalmSupport
import PalmWire

/// The migrations a destination receives at once. A session takes a slot only once its ticket has
/// verified (a peer that has not proved it may migrate here costs no slot), and holds it until it
/// ends; when all are taken, a further migration is refused as busy — never queued.
public final class ReceptionSlots: @unchecked Sendable {
    public let capacity: Int
    private let taken = LockedValueBox(0)

    public init(capacity: Int) { self.capacity = capacity }

    /// Takes a slot or throws ``MigrationError/busy(_:)``.
    func acquire() throws {
        let ok = taken.withLockedValue { n -> Bool in
            guard n < capacity else { return false }
            n += 1
            return true
        }
        guard ok else { throw MigrationError.busy("destination busy: \(capacity) migrations in progress") }
    }

    func release() { taken.withLockedValue { $0 -= 1 } }

    /// Slots taken now.
    public var inUse: Int { taken.current }
}
