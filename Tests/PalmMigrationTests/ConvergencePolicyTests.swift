import PalmMigration
import Testing

func observe(round: Int = 3, dirty: Int, previous: Int? = nil, pagesSent: Int = 1_000_000, rate: Double = 100 * 1_048_576,
             handoff: Double = 0.005, sent: UInt64 = 1 << 30, ram: UInt64 = 1 << 30, throttle: Int = 0) -> ConvergencePolicy.Observation {
    .init(round: round, dirtyPages: dirty, previousDirtyPages: previous, pagesSent: pagesSent, roundSeconds: 1, pageSize: 4096,
          bytesPerSecond: rate, handoffSeconds: handoff, totalBytesSent: sent, ramBytes: ram, throttlePercent: throttle)
}

@Suite("ConvergencePolicy")
struct ConvergencePolicyTests {
    let policy = ConvergencePolicy()

    @Test("defaults: Xen's 50 pages and 3× RAM, QEMU-like 100 ms target, 30 rounds, a hard throttle (50 % +25 %)")
    func defaults() {
        #expect(policy.dirtyPageFloor == 50)
        #expect(policy.downtimeTarget == 0.1)
        #expect(policy.maxRounds == 30)
        #expect(policy.maxRAMMultiple == 3)
        #expect(policy.throttleInitial == 50 && policy.throttleStep == 25 && policy.throttleMax == 99)
    }

    @Test("at or below the dirty-page floor: stop and copy")
    func floor() {
        #expect(policy.decide(observe(dirty: 50, rate: 1)) == .stopAndCopy(.dirtyFloor))
        #expect(policy.decide(observe(dirty: 51, rate: 1)) != .stopAndCopy(.dirtyFloor))
    }

    @Test("predicted downtime within the target: stop; just above it: go on")
    func downtime() {
        // 100 MiB/s: 2,000 pages = 7.8 MiB ≈ 78 ms + 5 ms hand-off ≤ 100 ms.
        #expect(policy.decide(observe(dirty: 2000)) == .stopAndCopy(.downtimeTarget))
        // 2,600 pages ≈ 101.6 ms + 5 ms > 100 ms.
        #expect(policy.decide(observe(dirty: 2600, sent: 1 << 28)) == .nextRound)
        // The hand-off cost counts.
        #expect(policy.decide(observe(dirty: 2000, handoff: 0.05, sent: 1 << 28)) == .nextRound)
    }

    @Test("the round cap stops pre-copy")
    func rounds() {
        #expect(policy.decide(observe(round: 29, dirty: 100_000, sent: 1 << 28)) == .stopAndCopy(.roundCap))
        #expect(policy.decide(observe(round: 28, dirty: 100_000, sent: 1 << 28)) == .nextRound)
    }

    @Test("sending more than 3× RAM stops pre-copy")
    func ramCap() {
        #expect(policy.decide(observe(dirty: 100_000, sent: 3 << 30 - 1 << 20)) == .stopAndCopy(.ramCap))
    }

    @Test("no progress: throttle hard at once (50 %), then +25 % per round, then stop at the maximum")
    func throttle() {
        let stuck = { (t: Int) in policy.decide(observe(dirty: 100_000, previous: 100_000, sent: 1 << 28, throttle: t)) }
        #expect(stuck(0) == .throttle(percent: 50))
        #expect(stuck(50) == .throttle(percent: 75))
        #expect(stuck(75) == .throttle(percent: 99))
        #expect(stuck(99) == .stopAndCopy(.noProgress))
        // Shrinking fast enough to reach the target within a few rounds is progress.
        #expect(policy.decide(observe(dirty: 40_000, previous: 100_000, sent: 1 << 28)) == .nextRound)
    }

    @Test("a round that sent no more pages than the guest dirtied meanwhile has outrun the link")
    func outrunning() {
        #expect(policy.decide(observe(round: 1, dirty: 40_000, pagesSent: 40_000, sent: 1 << 28)) == .throttle(percent: 50))
        #expect(policy.decide(observe(round: 1, dirty: 40_000, pagesSent: 40_000, sent: 1 << 28, throttle: 99))
                == .stopAndCopy(.dirtyRateAtLinkRate))
        #expect(policy.decide(observe(round: 1, dirty: 30_000, pagesSent: 40_000, sent: 1 << 28)) == .nextRound)
    }

    @Test("a dirty set that shrinks, but too slowly to reach the target within five rounds, is throttled at once")
    func slowConvergence() {
        // Goal: (100 ms − 5 ms) at 100 MiB/s ≈ 2,432 pages. From 8,000 at ×0.8 per round: 5.3 rounds.
        #expect(policy.decide(observe(round: 2, dirty: 8000, previous: 10_000, pagesSent: 10_000, sent: 1 << 28)) == .throttle(percent: 50))
        // At ×0.5 per round: 1.7 rounds — go on.
        #expect(policy.decide(observe(round: 2, dirty: 8000, previous: 16_000, pagesSent: 16_000, sent: 1 << 28)) == .nextRound)
        #expect(policy.projectedRounds(observe(round: 2, dirty: 8000, previous: 16_000, sent: 1 << 28)) < 2)
    }

    @Test("when the fixed hand-off cost dominates, another round that would gain little is not run")
    func diminishingReturns() {
        // A 1.5 s suspend: 2,600 pages (≈ 0.1 s at 100 MiB/s) are ≤ 10 % of the predicted 1.6 s.
        #expect(policy.decide(observe(dirty: 2600, handoff: 1.5, sent: 1 << 28)) == .stopAndCopy(.diminishingReturns))
        // 26,000 pages (≈ 1 s) are 40 % of it: another round is worth it.
        #expect(policy.decide(observe(dirty: 26_000, handoff: 1.5, sent: 1 << 28)) == .nextRound)
    }

    @Test("a running round is given up when the guest dirties as much as it sends, not before it can be judged")
    func abandon() {
        let heavy = ConvergencePolicy.RoundProgress(elapsed: 0.1, pagesSent: 13_000, pagesInRound: 262_144, dirtiedSoFar: 80_000)
        #expect(policy.abandonRound(heavy))
        let moderate = ConvergencePolicy.RoundProgress(elapsed: 1.0, pagesSent: 130_000, pagesInRound: 262_144, dirtiedSoFar: 8_000)
        #expect(!policy.abandonRound(moderate))
        var early = heavy
        early.elapsed = 0.05
        #expect(!policy.abandonRound(early))
        var nearlyDone = heavy
        nearlyDone.pagesSent = 250_000
        nearlyDone.dirtiedSoFar = 260_000
        #expect(!policy.abandonRound(nearlyDone))
    }

    @Test("a guest dirtying faster than the link always ends within the round cap", arguments: [0.5, 1.0, 2.0, 10.0])
    func boundedRounds(overload: Double) {
        // Simulate: each round sends the previous dirty set; the guest dirties overload × what was
        // sent, reduced by the throttle; working set 200,000 pages.
        var dirty = 262_144, previous: Int?, throttle = 0, sent: UInt64 = 0
        var round = 0
        while true {
            sent += UInt64(dirty * 4096)
            let next = min(200_000, Int(Double(dirty) * overload * Double(100 - throttle) / 100))
            let decision = policy.decide(observe(round: round, dirty: next, previous: previous, pagesSent: dirty, sent: sent,
                                                 ram: 1 << 30, throttle: throttle))
            if case .stopAndCopy = decision { break }
            if case let .throttle(p) = decision { throttle = p }
            previous = next
            dirty = next
            round += 1
            #expect(round < policy.maxRounds)
            if round >= policy.maxRounds { break }
        }
    }
}
