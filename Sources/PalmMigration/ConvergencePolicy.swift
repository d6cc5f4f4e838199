#if canImport(Glibc)
import Glibc
#endif

/// Decides, after each pre-copy round, whether to run another round, throttle the guest, or stop
/// and copy (README, "Migration") — and, while a round runs, whether to give up on it at once. Pure: the
/// same observation always gives the same decision, so every decision can be logged with the
/// numbers that drove it and unit-tested.
///
/// After a round, stop-and-copy when any holds, checked in this order:
/// 1. the dirty set is at most ``dirtyPageFloor`` pages (Xen's `SPP_TARGET_DIRTY_COUNT`, 50);
/// 2. the predicted downtime — dirty bytes ÷ measured rate + the measured fixed hand-off cost —
///    is within ``downtimeTarget``;
/// 3. ``maxRounds`` rounds are done;
/// 4. sending the dirty set would exceed ``maxRAMMultiple`` × RAM in total (Xen's legacy 3× cap);
/// 5. another round would gain little: the transfer part of the predicted downtime is at most
///    ``minimumGain`` of it (the fixed hand-off cost dominates, e.g. a slow guest suspend);
/// 6. the round made too little progress and the guest is already throttled at ``throttleMax``.
///
/// A round makes too little progress when the dirty set did not shrink below ``progressRatio`` of
/// the previous one, when the guest dirtied as many pages as the round sent (its dirty rate
/// reached the link rate), or when at its rate of shrinking it would need more than
/// ``maxProjectedRounds`` further rounds to reach the goal (the pages that fit the downtime
/// target — or, when the fixed cost alone exceeds the target, ``minimumGain`` of that cost). Such
/// a round throttles the guest hard at once: ``throttleInitial`` %, then +``throttleStep`` % per
/// round up to ``throttleMax`` (QEMU's auto-converge starts at 20 % and creeps by 10 %; a guest
/// that outruns the link gains nothing from the creep but extra rounds).
///
/// While a round runs (``abandonRound(_:watch:)``): once it has run ``sampleSeconds`` and sent at
/// least ``minimumSample`` pages, if the guest has already dirtied as many pages as the round sent
/// (× ``linkRatio``), keeps adding new pages that fast for as long again (a working set that has
/// filled does not), and much of the round is still ahead, the round is stopped where it is and
/// the VM with it — every further round would re-send at least as much as it sends, so pre-copy
/// would only add time to what stop-and-copy costs.
public struct ConvergencePolicy: Sendable, Equatable, Codable {
    public var dirtyPageFloor: Int = 50
    /// Seconds.
    public var downtimeTarget: Double = 0.100
    public var maxRounds: Int = 30
    public var maxRAMMultiple: Double = 3.0
    public var throttleInitial: Int = 50
    public var throttleStep: Int = 25
    public var throttleMax: Int = 99
    /// A round makes progress when its dirty set is below this fraction of the previous one.
    public var progressRatio: Double = 0.9
    /// Dirtied pages ÷ sent pages at which the guest is taken to outrun the link.
    public var linkRatio: Double = 1.0
    /// Seconds a round runs before the early stop may judge it.
    public var sampleSeconds: Double = 0.1
    /// Pages a round has sent before the early stop may judge it.
    public var minimumSample: Int = 1024
    /// Stop when another round could remove at most this fraction of the predicted downtime.
    public var minimumGain: Double = 0.1
    /// Rounds pre-copy may still take, at the rate the dirty set shrinks, before that rate counts
    /// as too little progress.
    public var maxProjectedRounds: Double = 5

    public init() {}

    /// What the engine measured at the end of a round.
    public struct Observation: Sendable, Equatable {
        /// The round that just ended (0 = the full first pass).
        public var round: Int
        /// Pages to send next: dirtied during the round (plus any it left unsent).
        public var dirtyPages: Int
        /// Dirty pages after the previous round, if any.
        public var previousDirtyPages: Int?
        /// Pages the round sent.
        public var pagesSent: Int
        public var roundSeconds: Double
        public var pageSize: Int
        /// Measured transfer rate, bytes per second.
        public var bytesPerSecond: Double
        /// Fixed cost of the hand-off after the last page (pause, state, digests, signatures,
        /// durable records, round trips, the destination's share), seconds.
        public var handoffSeconds: Double
        public var totalBytesSent: UInt64
        public var ramBytes: UInt64
        /// Throttle currently applied, percent.
        public var throttlePercent: Int

        public init(round: Int, dirtyPages: Int, previousDirtyPages: Int?, pagesSent: Int, roundSeconds: Double, pageSize: Int,
                    bytesPerSecond: Double, handoffSeconds: Double, totalBytesSent: UInt64, ramBytes: UInt64, throttlePercent: Int) {
            self.round = round
            self.dirtyPages = dirtyPages
            self.previousDirtyPages = previousDirtyPages
            self.pagesSent = pagesSent
            self.roundSeconds = roundSeconds
            self.pageSize = pageSize
            self.bytesPerSecond = bytesPerSecond
            self.handoffSeconds = handoffSeconds
            self.totalBytesSent = totalBytesSent
            self.ramBytes = ramBytes
            self.throttlePercent = throttlePercent
        }

        /// Seconds the dirty pages take to send.
        public var transferSeconds: Double {
            guard bytesPerSecond > 0 else { return .infinity }
            return Double(dirtyPages * pageSize) / bytesPerSecond
        }

        /// Downtime if the VM were paused now.
        public var predictedDowntime: Double { transferSeconds + handoffSeconds }

        /// The dirty set relative to the one this round set out to send (round 0: all of RAM).
        public var shrinkFactor: Double {
            let before = previousDirtyPages ?? Int(ramBytes / UInt64(max(pageSize, 1)))
            return before > 0 ? Double(dirtyPages) / Double(before) : 1
        }
    }

    /// What the engine sees while a round runs.
    public struct RoundProgress: Sendable, Equatable {
        public var elapsed: Double
        public var pagesSent: Int
        public var pagesInRound: Int
        /// Pages dirtied since the round began (the driver's count, not reset).
        public var dirtiedSoFar: Int

        public init(elapsed: Double, pagesSent: Int, pagesInRound: Int, dirtiedSoFar: Int) {
            self.elapsed = elapsed
            self.pagesSent = pagesSent
            self.pagesInRound = pagesInRound
            self.dirtiedSoFar = dirtiedSoFar
        }
    }

    public enum StopReason: String, Sendable, Codable, Equatable {
        case dirtyFloor = "dirty-page floor"
        case downtimeTarget = "downtime target"
        case roundCap = "round cap"
        case ramCap = "RAM-sent cap"
        case noProgress = "too little progress at maximum throttle"
        case dirtyRateAtLinkRate = "dirty rate at the link rate"
        case diminishingReturns = "another round would gain little"
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
        if o.transferSeconds <= minimumGain * o.predictedDowntime { return .stopAndCopy(.diminishingReturns) }
        let notShrinking = o.previousDirtyPages.map { Double(o.dirtyPages) >= progressRatio * Double($0) } ?? false
        let outrunning = o.pagesSent > 0 && Double(o.dirtyPages) >= linkRatio * Double(o.pagesSent)
        if notShrinking || outrunning || projectedRounds(o) > maxProjectedRounds {
            if o.throttlePercent >= throttleMax {
                return .stopAndCopy(outrunning ? .dirtyRateAtLinkRate : .noProgress)
            }
            let next = o.throttlePercent == 0 ? throttleInitial : o.throttlePercent + throttleStep
            return .throttle(percent: min(next, throttleMax))
        }
        return .nextRound
    }

    /// Further rounds the dirty set needs, shrinking as it just did, to reach the goal: the pages
    /// that fit the downtime target beside the fixed cost, or — when that cost alone exceeds the
    /// target — the pages whose transfer is ``minimumGain`` of it.
    public func projectedRounds(_ o: Observation) -> Double {
        guard o.bytesPerSecond > 0, o.dirtyPages > 0 else { return 0 }
        let budget = downtimeTarget > o.handoffSeconds ? downtimeTarget - o.handoffSeconds : minimumGain * o.handoffSeconds
        let goal = max(Double(dirtyPageFloor), budget * o.bytesPerSecond / Double(o.pageSize), 1)
        guard Double(o.dirtyPages) > goal else { return 0 }
        let q = o.shrinkFactor
        guard q > 0, q < 1 else { return .infinity }
        return log(goal / Double(o.dirtyPages)) / log(q)
    }

    /// True when a running round should stop where it is (and the VM with it): the guest has
    /// dirtied as many pages as the round has sent, at least a quarter of the round is ahead, and
    /// the guest is confirmed to keep pace — from the look that first saw it (`watch`) until at
    /// least twice that look's elapsed time, it dirtied as many *new* pages as the round sent.
    ///
    /// The confirmation is what tells an outrunning guest from a working set that has filled: a
    /// guest's dirty count saturates at its working set, and early in a long round (round 0 is all
    /// of RAM, and starts slowly while connections and the destination warm up) it can pass the
    /// pages sent although the guest adds no new pages — stopping then would send the rest of the
    /// round in the downtime. Stopping early saves pre-copy time, never downtime, so it waits for
    /// the evidence.
    public func abandonRound(_ p: RoundProgress, watch: inout OutrunWatch) -> Bool {
        guard p.elapsed >= sampleSeconds, p.pagesSent >= minimumSample,
              p.pagesInRound - p.pagesSent >= p.pagesInRound / 4,
              Double(p.dirtiedSoFar) >= linkRatio * Double(p.pagesSent) else {
            watch.suspected = nil
            return false
        }
        guard let first = watch.suspected else {
            watch.suspected = p
            return false
        }
        let seconds = p.elapsed - first.elapsed, sent = p.pagesSent - first.pagesSent
        guard seconds >= max(sampleSeconds, first.elapsed), sent > 0 else { return false }   // not yet confirmable
        if Double(p.dirtiedSoFar - first.dirtiedSoFar) >= linkRatio * Double(sent) { return true }
        watch.suspected = p   // the guest slowed down: judge again from here
        return false
    }

    /// When the early stop takes its next look at a running round (reads the guest's dirty count),
    /// `elapsed` seconds into it: after `interval`, or a tenth of the time the round has run if
    /// that is longer. Judging needs the count at about twice the time it was first suspicious,
    /// not every tick; on Xen each look is a domctl that walks the log-dirty bitmap under Xen's
    /// domctl lock — the lock the destination's domain build needs too — so a 20 s round takes
    /// ≈ 40 looks instead of 200.
    public static func nextLook(after elapsed: Double, interval: Double) -> Double {
        elapsed + max(interval, elapsed / 10)
    }

    /// What the early stop remembers between the looks it takes at one round.
    public struct OutrunWatch: Sendable, Equatable {
        /// The look that first saw the guest dirty as many pages as the round had sent.
        public var suspected: RoundProgress?

        public init() {}
    }
}
