import Metrics

/// What an agent records about its migrations, through swift-metrics: whatever backend the
/// process bootstrapped (Prometheus when `[metrics] listen` is set; nothing otherwise).
///
/// Guarantees: every started migration ends in exactly one of ``committed(_:)`` or
/// ``aborted(reason:)`` when its caller follows the start/end pairing, so `in_flight` returns to
/// zero; labels take only the fixed values documented on ``MetricName``.
public struct AgentMetrics: Sendable {
    public enum Role: String, Sendable { case source, destination }
    /// Why a peer or a request was refused.
    public enum Refusal: String, Sendable, CaseIterable {
        case tls, admission, ticket, attestation, signature, authorization
    }

    public let role: Role

    public init(role: Role) { self.role = role }

    private var roleLabel: [(String, String)] { [("role", role.rawValue)] }

    public func started() {
        Counter(label: MetricName.migrationsStarted.rawValue, dimensions: roleLabel).increment()
        inFlight.increment()
    }

    /// A committed migration; the source adds what it measured.
    public func committed(_ measured: Measured? = nil) {
        Counter(label: MetricName.migrationsCommitted.rawValue, dimensions: roleLabel).increment()
        inFlight.decrement()
        guard let m = measured else { return }
        Recorder(label: MetricName.downtime.rawValue, dimensions: roleLabel).record(m.downtimeSeconds)
        Recorder(label: MetricName.duration.rawValue, dimensions: roleLabel).record(m.totalSeconds)
        Recorder(label: MetricName.rounds.rawValue, dimensions: roleLabel).record(m.rounds)
    }

    /// What a source measured of one migration (committed or not: pages and bytes went out).
    public struct Measured: Sendable {
        public var downtimeSeconds: Double
        public var totalSeconds: Double
        public var rounds: Int
        public init(downtimeSeconds: Double, totalSeconds: Double, rounds: Int) {
            self.downtimeSeconds = downtimeSeconds
            self.totalSeconds = totalSeconds
            self.rounds = rounds
        }
    }

    /// Pages and bytes a source sent (data pages, zero pages sent as a marker, bytes on the wire,
    /// batches compressed).
    public func sent(dataPages: UInt64, zeroPages: UInt64, bytes: UInt64, compressedBatches: UInt64) {
        let pages = MetricName.pagesSent.rawValue
        Counter(label: pages, dimensions: roleLabel + [("kind", "data")]).increment(by: Int64(clamping: dataPages))
        Counter(label: pages, dimensions: roleLabel + [("kind", "zero")]).increment(by: Int64(clamping: zeroPages))
        Counter(label: MetricName.bytesSent.rawValue, dimensions: roleLabel).increment(by: Int64(clamping: bytes))
        Counter(label: MetricName.compressedBatches.rawValue, dimensions: roleLabel).increment(by: Int64(clamping: compressedBatches))
    }

    /// A migration that ended before its commit point; `reason` is the failure's case name.
    public func aborted(reason: String) {
        Counter(label: MetricName.migrationsAborted.rawValue, dimensions: roleLabel + [("reason", reason)]).increment()
        inFlight.decrement()
    }

    /// A migration whose commit is in doubt (resolved later by the hand-off journal).
    public func inDoubt() {
        Counter(label: MetricName.migrationsInDoubt.rawValue, dimensions: roleLabel).increment()
        inFlight.decrement()
    }

    public func refused(_ reason: Refusal, count: Int = 1) {
        Counter(label: MetricName.refusals.rawValue, dimensions: roleLabel + [("reason", reason.rawValue)]).increment(by: Int64(count))
    }

    /// A VM that stopped after its move was acted on (`outcome`: a ``LifecycleEvent`` outcome's name).
    public func lifecycle(outcome: String) {
        Counter(label: MetricName.lifecycleActions.rawValue, dimensions: roleLabel + [("outcome", outcome)]).increment()
    }

    /// Migrations in flight in this process, per role: a meter the backend keeps (+1 at start, −1 at
    /// each end).
    private var inFlight: Meter { Meter(label: MetricName.migrationsInFlight.rawValue, dimensions: roleLabel) }
}
