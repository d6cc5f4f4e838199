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

    /// Watches a round as the engine does — a tick every 0.1 s, a look at the dirty count when
    /// ``ConvergencePolicy/nextLook(after:interval:)`` says — for `seconds`, the guest's dirty count
    /// and the pages sent as functions of time; the elapsed time at which the round was given up.
    private func watchRound(pages: Int, seconds: Double, sent: (Double) -> Int, dirtied: (Double) -> Int) -> Double? {
        var watch = ConvergencePolicy.OutrunWatch()
        var next = 0.0
        for tick in 1...Int(seconds * 10) {
            let t = Double(tick) / 10
            guard t >= next else { continue }
            next = ConvergencePolicy.nextLook(after: t, interval: 0.1)
            let p = ConvergencePolicy.RoundProgress(elapsed: t, pagesSent: sent(t), pagesInRound: pages, dirtiedSoFar: dirtied(t))
            if policy.abandonRound(p, watch: &watch) { return t }
        }
        return nil
    }

    @Test("the early stop looks at every tick for the first second, then at a tenth of the elapsed time")
    func looksThinOut() {
        var looks: [Double] = []
        var next = 0.0
        for tick in 1...200 {
            let t = Double(tick) / 10
            if t >= next - 1e-9 {
                looks.append(t)
                next = ConvergencePolicy.nextLook(after: t, interval: 0.1)
            }
        }
        #expect(looks.prefix(10).count == 10 && looks[9] <= 1.0 + 1e-9, "every tick at first: \(looks.prefix(12))")
        #expect(looks.count >= 30 && looks.count <= 50, "a 20 s round: \(looks.count) looks")
        for (a, b) in zip(looks, looks.dropFirst()) { #expect(b - a <= max(0.1, a / 10) + 0.1 + 1e-9) }
    }

    @Test("a running round is given up when the guest keeps dirtying as much as it sends, not before it can be judged")
    func abandon() throws {
        // 130,000 pages/s sent, 800,000 dirtied: judged at 0.1 s, confirmed at 0.2 s.
        #expect(watchRound(pages: 262_144, seconds: 1, sent: { Int(130_000 * $0) }, dirtied: { Int(800_000 * $0) }) == 0.2)
        // A guest dirtying a tenth of what is sent: never.
        #expect(watchRound(pages: 262_144, seconds: 2, sent: { Int(130_000 * $0) }, dirtied: { Int(13_000 * $0) }) == nil)
        // Not before sampleSeconds and minimumSample: 5,000 pages/s sends 1,024 pages by 0.3 s.
        let slow = try #require(watchRound(pages: 262_144, seconds: 5, sent: { Int(5_000 * $0) }, dirtied: { Int(50_000 * $0) }))
        #expect(slow >= 0.6)
        // Not when less than a quarter of the round is ahead.
        #expect(watchRound(pages: 20_000, seconds: 1, sent: { min(20_000, 16_000 + Int(1_000 * $0)) }, dirtied: { Int(900_000 * $0) }) == nil)
        // A link that sent nothing since the suspicion is not judged against the guest.
        #expect(watchRound(pages: 262_144, seconds: 2, sent: { min(2_000, Int(20_000 * $0)) }, dirtied: { Int(50_000 * $0) }) == nil)
    }

    @Test("a working set that has filled does not stop round 0: the guest re-dirties, it adds no new pages")
    func filledWorkingSet() {
        // Seen on Xen under emulation: a 128 MiB guest re-dirtying ≈ 2,000 pages while round 0
        // started slowly (≈ 1,000 pages/s): by 2 s the dirty count had passed the pages sent, and
        // stopping there sent the other 30,000 pages in the downtime (18 s instead of 0.3 s).
        #expect(watchRound(pages: 32_784, seconds: 25, sent: { Int(1_000 * $0) }, dirtied: { min(2_200, Int(2_000 * $0)) }) == nil)
        // The same start with a guest that keeps adding pages faster than they are sent is stopped.
        #expect(watchRound(pages: 32_784, seconds: 25, sent: { Int(1_000 * $0) }, dirtied: { Int(1_200 * $0) }) != nil)
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
