/// The knobs of the scheduler (`[scheduler]` in coordinator.toml), with the hysteresis that keeps
/// VMs from ping-ponging: nothing moves while the cluster is within ``imbalanceThreshold``, a move
/// must lower the busier host of its pair by at least ``minImprovement``, and a VM that moved
/// stays put for ``holdTime``.
public struct SchedulerPolicy: Sendable, Equatable {
    /// Rebalance only when the most and least loaded hosts differ by more than this (load 0…1).
    public var imbalanceThreshold = 0.15
    /// A move must bring max(source, destination) load at least this far below the source's.
    public var minImprovement = 0.05
    /// Seconds a VM stays where a migration put it before it may be moved for balance again.
    public var holdTime = 300.0
    /// Seconds before a VM whose migration failed is tried again (balance or evacuation), so a
    /// move that cannot succeed is not retried every cycle.
    public var retryDelay = 60.0
    /// Never let a destination's load go above this (0…1).
    public var maxLoad = 0.85
    /// Concurrent migrations touching one host (as source or destination).
    public var maxPerHost = 1
    /// Concurrent migrations in the whole cluster.
    public var maxConcurrent = 4
    /// Link rate assumed between hosts, bytes per second (for the cost model).
    public var linkRate = 1.0e9
    public var pageSize = 4096.0
    /// The engine's cap on total bytes sent as a multiple of RAM (ConvergencePolicy).
    public var maxRAMMultiple = 3.0

    public init() {}
}
