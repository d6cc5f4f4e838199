import PalmMigration
import Testing

func observe(round: Int = 3, dirty: Int, previous: Int? = nil, rate: Double = 100 * 1_048_576, handoff: Double = 0.005,
             sent: UInt64 = 1 << 30, ram: UInt64 = 1 << 30, throttle: Int = 0) -> ConvergencePolicy.Observation {
    .init(round: round, dirtyPages: dirty, previousDirtyPages: previous, pageSize: 4096, bytesPerSecond: rate,
          handoffSeconds: handoff, totalBytesSent: sent, ramBytes: ram, throttlePercent: throttle)
}

@Suite("ConvergencePolicy")
struct ConvergencePolicyTests {
    let policy = ConvergencePolicy()

    @Test("defaults are the anchors': 50 pages, 100 ms, 30 rounds, 3× RAM, throttle 20 % +10 %")
    func defaults() {
        #expect(policy.dirtyPageFloor == 50)
        #expect(policy.downtimeTarget == 0.1)
        #expect(policy.maxRounds == 30)
        #expect(policy.maxRAMMultiple == 3)
        #expect(policy.throttleInitial == 20 && policy.throttleStep == 10)
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

    @Test("no progress: throttle 20 %, then +10 % per round, then stop at the maximum")
    func throttle() {
        let stuck = { (t: Int) in policy.decide(observe(dirty: 100_000, previous: 100_000, sent: 1 << 28, throttle: t)) }
        #expect(stuck(0) == .throttle(percent: 20))
        #expect(stuck(20) == .throttle(percent: 30))
        #expect(stuck(90) == .throttle(percent: 99))
        #expect(stuck(99) == .stopAndCopy(.noProgress))
        // Shrinking by more than 10 % is progress.
        #expect(policy.decide(observe(dirty: 80_000, previous: 100_000, sent: 1 << 28)) == .nextRound)
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
            let decision = policy.decide(observe(round: round, dirty: next, previous: previous, sent: sent, ram: 1 << 30, throttle: throttle))
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
