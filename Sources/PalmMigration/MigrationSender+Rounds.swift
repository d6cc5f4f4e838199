import PalmSupport
import Foundation
import Logging
import PalmHypervisor
import PalmWire

/// The transfer phase: pre-copy rounds spread over the page streams, watched while they run, and
/// the stop-and-copy round.
extension MigrationSender {
    /// What one round did.
    struct RoundOutcome {
        var pages: UInt64 = 0
        var zeroPages: UInt64 = 0
        var bytes: UInt64 = 0
        var seconds = 0.0
        /// The round was stopped part-way; bitmap words from here on were not sent.
        var unsentFrom: Int?
    }

    func preCopy(_ s: inout SenderSession) throws {
        let policy = options.policy
        var round = 0
        while true {
            let outcome = try runRound(&s, round: round, pages: s.dirty, phase: .precopy, final: false)
            let pending = s.dirty  // what this round was to send; `dirty` is refilled below
            s.dirty.clear()
            let dirtyCount = try domain.collectDirty(into: &s.dirty)
            s.transferBytes += outcome.bytes
            s.transferSeconds += outcome.seconds
            s.lastRoundBytes = outcome.bytes
            s.lastRoundSeconds = outcome.seconds
            if let unsent = outcome.unsentFrom {
                // The round was cut short: its unsent pages join the final round.
                s.dirty.formUnion(pending.words, from: unsent)
            }
            try sendRoundEnd(&s, round: round, outcome, dirtyAfter: s.dirty.count, final: false)
            // Both ends seal the round's digest chunks now, in parallel (the destination on
            // ROUND_END): neither is left sealing while the other waits in the hand-off.
            let t0 = MonotonicClock.now()
            let chunks = s.digest.seal()
            if round == 0 {
                s.costs.digestChunk = chunks > 0 ? (MonotonicClock.now() - t0) / Double(chunks) : 0
                options.faults.reached(.precopy, logger)
            }
            s.costs.roundTrip = channel.roundTripTime ?? s.costs.roundTrip
            let pendingNow = s.dirty.count
            let observation = ConvergencePolicy.Observation(
                round: round, dirtyPages: pendingNow, previousDirtyPages: s.previousDirty, pagesSent: Int(outcome.pages),
                roundSeconds: outcome.seconds, pageSize: s.info.pageSize, bytesPerSecond: s.transferRate,
                handoffSeconds: s.costs.fixed(changedChunks: s.dirty.nonzeroWords),
                totalBytesSent: s.transferBytes, ramBytes: s.info.memoryBytes, throttlePercent: s.throttle)
            let decision: ConvergencePolicy.Decision = outcome.unsentFrom != nil
                ? .stopAndCopy(.dirtyRateAtLinkRate) : policy.decide(observation)
            logger.info("round \(round): sent \(outcome.pages) pages (\(outcome.bytes >> 10) KiB) in \(String(format: "%.3f", outcome.seconds)) s on \(s.streams.count) stream(s)\(outcome.unsentFrom != nil ? ", stopped part-way" : ""); \(dirtyCount) dirtied, \(pendingNow) to send; rate \(String(format: "%.0f", observation.bytesPerSecond / 1048576)) MiB/s; predicted downtime \(String(format: "%.1f", observation.predictedDowntime * 1000)) ms (fixed \(String(format: "%.1f", observation.handoffSeconds * 1000)) ms: \(s.costs.summary)); decision \(decision)",
                        metadata: ["ROUND": "\(round)", "DIRTY_PAGES": "\(pendingNow)", "event": "\(PalmEvent.roundDone.rawValue)"])
            if case let .stopAndCopy(reason) = decision {
                s.stopReason = reason
                s.predicted = observation.predictedDowntime
                break
            }
            if case let .throttle(percent) = decision {
                s.throttle = percent
                try domain.setThrottle(percent: percent)
            }
            try checkCancelled()
            s.previousDirty = pendingNow
            round += 1
        }
        // Stop-and-copy: once the destination has caught up (its backlog is not downtime),
        // pause, collect what was dirtied since, send it all. The prediction is made again
        // from the dirty set as it stands right before the pause.
        try awaitApplied(round)
        _ = try domain.collectDirty(into: &s.dirty)
        s.predicted = Double(s.dirty.count * s.info.pageSize) / max(s.transferRate, 1)
            + s.costs.fixed(changedChunks: s.dirty.nonzeroWords)
        try stopVM(&s)
        options.faults.reached(.stopAndCopy, logger)
        let more = try domain.collectDirty(into: &s.dirty)
        logger.info("stop-and-copy: paused \(s.info.name); \(s.dirty.count) pages left (\(more) dirtied since the last look); predicted downtime \(String(format: "%.1f", s.predicted * 1000)) ms",
                    metadata: ["ROUND": "\(round + 1)", "event": "\(PalmEvent.stopAndCopy.rawValue)"])
        s.finalChunks = s.dirty.nonzeroWords
        _ = try runRound(&s, round: round + 1, pages: s.dirty, phase: .stopAndCopy, final: true)
    }

    /// Sends `pages` as round `round` over every stream and ends it on the session channel.
    /// A pre-copy round is watched while it runs: progress, cancellation, and the policy's
    /// early stop when the guest dirties pages as fast as they go out.
    @discardableResult
    func runRound(_ s: inout SenderSession, round: Int, pages: DirtyBitmap, phase: MigrationProgress.Phase,
                  final: Bool) throws -> RoundOutcome {
        let work = RoundWork(round: UInt32(round), pages: pages)
        let total = UInt64(pages.count)
        let group = DispatchGroup()
        let failures = LockedValueBox<[Error]>([])
        let t0 = MonotonicClock.now()
        for stream in s.streams {
            group.enter()
            stream.start(work) { error in
                if let error { failures.withLockedValue { $0.append(error) } }
                group.leave()
            }
        }
        var outcome = RoundOutcome()
        var stopped = false
        var watch = ConvergencePolicy.OutrunWatch()
        var nextLook = 0.0
        func sent() -> UInt64 { s.streams.reduce(0) { $0 + $1.pages.load(ordering: .relaxed) } }
        func stop(unsent: Bool) {
            guard !stopped else { return }
            stopped = true
            let first = work.stop()
            if unsent { outcome.unsentFrom = first }
        }
        while group.wait(timeout: .now() + options.monitorInterval) == .timedOut {
            if !failures.current.isEmpty {
                stop(unsent: false)
                for stream in s.streams.dropFirst() { stream.channel.interrupt() }
                continue
            }
            let elapsed = MonotonicClock.now() - t0
            let done = sent()
            let bytes = s.streams.reduce(0) { $0 + $1.bytes.load(ordering: .relaxed) }
            progress(MigrationProgress(phase: phase, round: round, pagesLeftInRound: total - min(done, total), pagesSentInRound: done,
                                       bytesPerSecond: Double(bytes) / max(elapsed, 1e-6), throttlePercent: s.throttle))
            if cancelFlag.isSet { stop(unsent: false); continue }
            guard !final, !stopped, elapsed >= nextLook else { continue }
            nextLook = ConvergencePolicy.nextLook(after: elapsed, interval: options.monitorInterval)
            if let dirtied = try? domain.peekDirtyCount(),
               options.policy.abandonRound(ConvergencePolicy.RoundProgress(elapsed: elapsed, pagesSent: Int(done),
                                                                          pagesInRound: Int(total), dirtiedSoFar: dirtied), watch: &watch) {
                let since = watch.suspected.map { String(format: "%.2f", $0.elapsed) } ?? "?"
                logger.notice("round \(round): the guest dirtied \(dirtied) pages while \(done) were sent in \(String(format: "%.2f", elapsed)) s, and kept pace since \(since) s — pre-copy cannot converge; stopping the round and the VM")
                stop(unsent: true)
            }
        }
        if let error = failures.current.first { throw error }
        try checkCancelled()
        outcome.seconds = MonotonicClock.now() - t0
        for stream in s.streams {
            outcome.pages += stream.pages.load(ordering: .relaxed)
            outcome.zeroPages += stream.zeroPages.load(ordering: .relaxed)
            outcome.bytes += stream.bytes.load(ordering: .relaxed)
        }
        s.compressedBatches = s.streams.reduce(0) { $0 + $1.compressedBatches.load(ordering: .relaxed) }
        if final {
            s.timeline.finalRoundDone = MonotonicClock.now()
            try sendRoundEnd(&s, round: round, outcome, dirtyAfter: 0, final: true)
        }
        return outcome
    }

    /// ROUND_END on the session channel: the round's totals, after every stream ended its share.
    func sendRoundEnd(_ s: inout SenderSession, round: Int, _ o: RoundOutcome, dirtyAfter: Int, final: Bool) throws {
        try send(.roundEnd(RoundEnd(round: UInt32(round), pagesSent: o.pages, zeroPages: o.zeroPages, bytesSent: o.bytes,
                                    durationMicros: UInt64(o.seconds * 1e6), dirtyPages: UInt64(dirtyAfter))))
        s.rounds.append(.init(round: round, pages: o.pages, zeroPages: o.zeroPages, bytes: o.bytes, seconds: o.seconds,
                              dirtyRate: o.seconds > 0 && !final ? Double(dirtyAfter) / o.seconds : 0, dirtyAfter: UInt64(dirtyAfter),
                              throttlePercent: s.throttle, final: final))
    }
}
