import PalmSupport

/// The number of migrations in flight in this process for one role: what the in-flight gauge shows.
final class InFlightCount: Sendable {
    static let source = InFlightCount()
    static let destination = InFlightCount()
    private let value = LockedValueBox(0)

    /// Adds `delta` (never below 0) and returns the new count as the gauge records it.
    func add(_ delta: Int) -> Double {
        value.withLockedValue { v in
            v = max(0, v + delta)
            return Double(v)
        }
    }
}
