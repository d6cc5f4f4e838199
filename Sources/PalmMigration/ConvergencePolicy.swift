/// Decides, after each pre-copy round, whether to run another round, throttle the guest, or stop
/// and copy (DESIGN.md §5). Pure: the same observation always gives the same decision, so every
/// decision can be logged with the numbers that drove it and unit-tested.
///
/// Stop-and-copy when any holds, checked in this order:
/// 1. the dirty set is at most ``dirtyPageFloor`` pages (Xen's `SPP_TARGET_DIRTY_COUNT`, 50);
/// 2. the predicted downtime — dirty bytes ÷ measured rate + the fixed hand-off cost — is within
///    ``downtimeTarget``;
/// 3. ``maxRounds`` rounds are done;
/// 4. sending the dirty set would exceed ``maxRAMMultiple`` × RAM in total (Xen's legacy 3× cap);
/// 5. the dirty set stopped shrinking and the guest is already throttled at ``throttleMax``.
/// When the dirty set stops shrinking (it is not below ``progressRatio`` of the previous round)
/// the guest is throttled: ``throttleInitial`` %, then +``throttleStep`` % per round (QEMU's
/// auto-converge defaults) — within the traffic budget the RAM cap sets.
public struct ConvergencePolicy: Sendable, Equatable, Codable {
    public var dirtyPageFloor: Int = 50
    /// Seconds.
    public var downtimeTarget: Double = 0.100
    public var maxRounds: Int = 30
    public var maxRAMMultiple: Double = 3.0
    public var throttleInitial: Int = 20
    public var throttleStep: Int = 10
    public var throttleMax: Int = 99
    /// A round makes progress when its dirty set is below this fraction of the previous one.
    public var progressRatio: Double = 0.9

    public init() {}

    /// What the engine measured at the end of a round.
    public struct Observation: Sendable, Equatable {
        /// The round that just ended (0 = the full first pass).
        public var round: Int
        /// Pages dirtied during that round: what the next round (or the final copy) must send.
        public var dirtyPages: Int
        /// Dirty pages after the previous round, if any.
        public var previousDirtyPages: Int?
        public var pageSize: Int
        /// Measured transfer rate, bytes per second.
        public var bytesPerSecond: Double
        /// Fixed cost of the hand-off after the last page (state, manifest, commit round trips, resume), seconds.
        public var handoffSeconds: Double
        public var totalBytesSent: UInt64
        public var ramBytes: UInt64
        /// Throttle currently applied, percent.
        public var throttlePercent: Int

        public init(round: Int, dirtyPages: Int, previousDirtyPages: Int?, pageSize: Int, bytesPerSecond: Double,
                    handoffSeconds: Double, totalBytesSent: UInt64, ramBytes: UInt64, throttlePercent: Int) {
            self.round = round
            self.dirtyPages = dirtyPages
            self.previousDirtyPages = previousDirtyPages
            self.pageSize = pageSize
            self.bytesPerSecond = bytesPerSecond
            self.handoffSeconds = handoffSeconds
            self.totalBytesSent = totalBytesSent
            self.ramBytes = ramBytes
            self.throttlePercent = throttlePercent
        }

        /// Downtime if the VM were paused now.
        public var predictedDowntime: Double {
            guard bytesPerSecond > 0 else { return .infinity }
            return Double(dirtyPages * pageSize) / bytesPerSecond + handoffSeconds
        }
    }

    public enum StopReason: String, Sendable, Codable, Equatable {
        case dirtyFloor = "dirty-page floor"
        case downtimeTarget = "downtime target"
        case roundCap = "round cap"
        case ramCap = "RAM-sent cap"
        case noProgress = "no progress at maximum throttle"
        case stopAndCopyMode = "stop-and-copy mode"
    }

    public enum Decision: Sendable, Equatable, CustomStringConvertible {
        case nextRound
        case throttle(percent: Int)
        case stopAndCopy(StopReason)

        public var description: String {
            switch self {
            case .nextRound: return "another round"
            case let .throttle(p): return "throttle the guest to \(p)% and go on"
            case let .stopAndCopy(r): return "stop-and-copy (\(r.rawValue))"
            }
        }
    }

    public func decide(_ o: Observation) -> Decision {
        if o.dirtyPages <= dirtyPageFloor { return .stopAndCopy(.dirtyFloor) }
        if o.predictedDowntime <= downtimeTarget { return .stopAndCopy(.downtimeTarget) }
        if o.round + 1 >= maxRounds { return .stopAndCopy(.roundCap) }
        if Double(o.totalBytesSent) + Double(o.dirtyPages * o.pageSize) > maxRAMMultiple * Double(o.ramBytes) {
            return .stopAndCopy(.ramCap)
        }
        if let previous = o.previousDirtyPages, Double(o.dirtyPages) >= progressRatio * Double(previous) {
            if o.throttlePercent >= throttleMax { return .stopAndCopy(.noProgress) }
            let next = o.throttlePercent == 0 ? throttleInitial : o.throttlePercent + throttleStep
            return .throttle(percent: min(next, throttleMax))
        }
        return .nextRound
    }
}
