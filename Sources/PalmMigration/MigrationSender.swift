import Foundation
import Logging
import PalmHypervisor
import PalmTLS
import PalmWire

/// The source side of one migration: the multi-pass pre-copy engine.
///
/// Round 0 sends every page while the VM runs; round n sends the pages dirtied during round n−1;
/// after each round ``ConvergencePolicy`` decides whether to go on, throttle, or stop and copy.
/// Stop-and-copy pauses the VM, sends the last dirty pages and the CPU state, then the manifest,
/// and hands over with READY/COMMIT/DONE.
///
/// Failure rule (nothing lost): any failure before COMMIT is sent aborts the migration and leaves
/// the VM running on the source (resumed if it was paused, throttle removed). After COMMIT the
/// source never resumes on its own; a missing DONE is ``MigrationError/commitInDoubt(_:)``.
public final class MigrationSender {
    public struct Options: Sendable {
        public var mode: MigrationMode = .preCopy
        public var policy = ConvergencePolicy()
        /// Pages per MEMORY frame.
        public var batchPages = 256
        /// Expected cost of resuming on the destination, added to the predicted downtime.
        public var resumeAllowance: Double = 0.015
        /// The source hypervisor's name, announced in CONFIG.
        public var hypervisorName = "sim"
        public init() {}
    }

    /// Hooks the protection layer (tickets, attestation, manifest signatures) plugs into.
    public struct Security {
        /// Bytes carried in HELLO.
        public var ticket: [UInt8] = []
        /// Checks the destination's attestation for this session's nonce and channel binding
        /// (the engine checks both too), its signature and its measurement.
        public var verifyAttestation: (_ report: Attestation, _ nonce: Digest32, _ exporter: Digest32) throws -> Void = { _, _, _ in }
        public var signManifest: (Manifest) throws -> [UInt8] = { _ in [] }
        public var verifyReady: ([UInt8], Manifest, CertificateIdentity) throws -> Void = { _, _, _ in }
        public var signCommit: (Manifest) throws -> [UInt8] = { _ in [] }
        /// The ticket's nonce, bound into the manifest.
        public var ticketNonce: Digest32 = .zero
        /// Durable hand-off records: the migration started (so a restarted agent resumes the VM),
        /// COMMIT is about to be sent (so it asks the destination instead), it is over.
        public var recordStart: () throws -> Void = {}
        public var recordCommitIntent: () throws -> Void = {}
        public var recordFinished: () -> Void = {}
        /// Receives the hand-off's signed pieces once the migration committed.
        public var recordEvidence: (_ attestation: Attestation, _ manifest: Manifest, _ ready: [UInt8], _ commit: [UInt8]) -> Void = { _, _, _, _ in }
        /// Asks the destination how the migration ended when DONE did not arrive (RESOLVE).
        public var resolveInDoubt: () throws -> Resolution = { throw MigrationError.commitInDoubt("no resolver") }
        public init() {}
    }

    let channel: SecureChannel
    let domain: SourceDomain
    let options: Options
    let security: Security
    let logger: Logger
    let progress: (MigrationProgress) -> Void
    private let reader: FrameReader
    private var state = SourceProtocolState()
    private var bytesOnWire: UInt64 = 0
    private var resumeOnFailure = false
    private var throttle = 0
    private var committed = false
    private let cancelFlag: CancelFlag

    public init(channel: SecureChannel, domain: SourceDomain, options: Options = Options(), security: Security = Security(),
                logger: Logger, cancel: CancelFlag = CancelFlag(), progress: @escaping (MigrationProgress) -> Void = { _ in }) {
        cancelFlag = cancel
        self.channel = channel
        self.domain = domain
        self.options = options
        self.security = security
        self.logger = logger
        self.progress = progress
        reader = FrameReader(stream: channel, limits: WireLimits(maxPayload: 64 << 10))
    }

    /// Asks a running migration to stop before its commit point (the VM stays on the source).
    public func cancel() { cancelFlag.set() }

    /// Runs the migration to completion; on return the VM runs on the destination.
    public func run() throws -> MigrationReport {
        do {
            return try migrate()
        } catch {
            let failure = MigrationError.wrap(error)
            if !committed {
                recover(after: failure)
                security.recordFinished()
            }
            throw failure
        }
    }

    /// Leaves the VM running on the source after a failure before COMMIT.
    private func recover(after failure: MigrationError) {
        let event: PalmEvent
        switch failure {
        case .attestationRejected: event = .attestationFailed
        case .ticketRejected: event = .ticketRejected
        default: event = .aborted
        }
        logger.warning("migration aborted before commit: \(failure); VM stays on the source", metadata: ["event": "\(event.rawValue)"])
        if case .abortedByPeer = failure {} else {
            try? send(.abort(AbortNotice(reason: failure.abortReason, message: failure.description)))
        }
        channel.close()
        try? domain.setThrottle(percent: 0)
        try? domain.disableDirtyLog()
        if resumeOnFailure {
            do {
                try domain.resume()
                resumeOnFailure = false
                logger.notice("resumed \(domain.info.name) on the source")
            } catch {
                logger.critical("could not resume \(domain.info.name) on the source: \(error)")
            }
        }
    }

    private func send(_ message: Message) throws {
        let frame = message.encodeFrame()
        try channel.write(frame)
        bytesOnWire += UInt64(frame.count)
        state.sent(message.type)
    }

    private func receive() throws -> Message {
        let message = try reader.readMessage()
        try state.receive(message.type)
        if case let .abort(n) = message { throw MigrationError.abortedByPeer(n.reason, n.message) }
        if case let .error(n) = message { throw MigrationError.abortedByPeer(n.reason, n.message) }
        return message
    }

    private func migrate() throws -> MigrationReport {
        let info = domain.info
        let start = MonotonicClock.now()
        let cpuStart = MonotonicClock.processCPUSeconds()
        let peerName = channel.peer.commonName ?? channel.peer.subject
        logger.info("migration of \(info.name) (\(info.memoryBytes >> 20) MiB) to \(peerName) starting, mode \(options.mode)",
                    metadata: ["event": "\(PalmEvent.migrationStarted.rawValue)"])

        // Handshake: HELLO → ATTEST, checked before anything about the VM leaves.
        progress(MigrationProgress(phase: .handshake, round: 0, pagesLeftInRound: info.pageCount, pagesSentInRound: 0,
                                   bytesPerSecond: 0, throttlePercent: 0))
        var nonceBytes = [UInt8](repeating: 0, count: 32)
        var rng = SystemRandomNumberGenerator()
        for i in nonceBytes.indices { nonceBytes[i] = UInt8.random(in: 0...255, using: &rng) }
        let nonce = Digest32(nonceBytes)!
        let helloSent = MonotonicClock.now()
        try send(.hello(Hello(ticket: security.ticket, sourceNonce: nonce)))
        guard case let .attest(attestation) = try receive() else { throw WireError.unexpectedMessage(.attest, state: "handshake") }
        var rtt = MonotonicClock.now() - helloSent
        guard attestation.sourceNonce == nonce else { throw MigrationError.attestationRejected("the report does not echo this session's nonce") }
        guard attestation.exporter == (try channel.channelBinding()) else {
            throw MigrationError.attestationRejected("the report is bound to another TLS session (exporter mismatch)")
        }
        try security.verifyAttestation(attestation, nonce, try channel.channelBinding())
        logger.info("destination attested: \(attestation.hypervisor) \(attestation.hypervisorVersion), agent sha256:\(attestation.agentDigest.hex.prefix(16))…")

        // CONFIG → PREPARED: the destination has room and an empty paused VM.
        let configSent = MonotonicClock.now()
        try send(.config(VMConfig(name: info.name, mode: options.mode, pageSize: UInt32(info.pageSize), pageCount: info.pageCount,
                                  vcpus: info.vcpus, hypervisor: options.hypervisorName, platform: domain.platform)))
        guard case .prepared = try receive() else { throw WireError.unexpectedMessage(.prepared, state: "config") }
        rtt = min(rtt, MonotonicClock.now() - configSent)

        let digest = ImageDigest(pageCount: info.pageCount, pageSize: info.pageSize)
        var rounds: [MigrationReport.Round] = []
        var dirty = DirtyBitmap(pageCount: info.pageCount)
        var totalBytes: UInt64 = 0
        var totalSeconds = 0.0
        var previousDirty: Int?
        var stopReason = ConvergencePolicy.StopReason.stopAndCopyMode
        var predicted = 0.0
        let handoff = 3 * rtt + options.resumeAllowance
        var pauseTime = 0.0
        var pausedAt = 0.0
        /// Ends pre-copy: the driver's preparation while the VM still runs, then the pause, timed.
        func stopVM() throws {
            resumeOnFailure = true       // from here on a failure resumes: a half-done pause is undone too
            try domain.prepareForPause()
            pauseTime = MonotonicClock.now()
            try domain.pause()
            pausedAt = MonotonicClock.now()
        }

        try security.recordStart()
        try domain.enableDirtyLog()
        if options.mode == .preCopy {
            var round = 0
            while true {
                let t0 = MonotonicClock.now()
                // Round 0 sends all of RAM; round n the pages dirtied during round n−1 (still in `dirty`).
                let sent = round == 0
                    ? try sendRound(0, 0..<info.pageCount, count: info.pageCount, digest: digest, phase: .precopy)
                    : try sendRound(UInt32(round), dirty.pfns, count: UInt64(previousDirty ?? 0), digest: digest, phase: .precopy)
                if round == 0 { FaultPoint.precopy.reached(logger) }
                let seconds = MonotonicClock.now() - t0
                dirty.clear()
                let dirtyCount = try domain.collectDirty(into: &dirty)
                let roundEnd = RoundEnd(round: UInt32(round), pagesSent: sent.pages, zeroPages: sent.zeroPages, bytesSent: sent.bytes,
                                        durationMicros: UInt64(seconds * 1e6), dirtyPages: UInt64(dirtyCount))
                try send(.roundEnd(roundEnd))
                totalBytes += sent.bytes
                totalSeconds += seconds
                rounds.append(.init(round: round, pages: sent.pages, zeroPages: sent.zeroPages, bytes: sent.bytes, seconds: seconds,
                                    dirtyRate: seconds > 0 ? Double(dirtyCount) / seconds : 0, dirtyAfter: UInt64(dirtyCount),
                                    throttlePercent: throttle, final: false))
                let observation = ConvergencePolicy.Observation(
                    round: round, dirtyPages: dirtyCount, previousDirtyPages: previousDirty, pageSize: info.pageSize,
                    bytesPerSecond: totalSeconds > 0 ? Double(totalBytes) / totalSeconds : 0, handoffSeconds: handoff,
                    totalBytesSent: totalBytes, ramBytes: info.memoryBytes, throttlePercent: throttle)
                let decision = options.policy.decide(observation)
                logger.info("round \(round): sent \(sent.pages) pages (\(sent.bytes >> 10) KiB) in \(String(format: "%.3f", seconds)) s; \(dirtyCount) dirty; rate \(String(format: "%.0f", observation.bytesPerSecond / 1048576)) MiB/s; predicted downtime \(String(format: "%.1f", observation.predictedDowntime * 1000)) ms; decision \(decision)",
                            metadata: ["ROUND": "\(round)", "DIRTY_PAGES": "\(dirtyCount)", "event": "\(PalmEvent.roundDone.rawValue)"])
                if case let .stopAndCopy(reason) = decision {
                    stopReason = reason
                    predicted = observation.predictedDowntime
                    break
                }
                if case let .throttle(percent) = decision {
                    throttle = percent
                    try domain.setThrottle(percent: percent)
                }
                try checkCancelled()
                previousDirty = dirtyCount
                round += 1
            }
            // Stop-and-copy: pause, collect what was dirtied since, send it all.
            try domain.setThrottle(percent: 0)
            throttle = 0
            try stopVM()
            FaultPoint.stopAndCopy.reached(logger)
            let more = try domain.collectDirty(into: &dirty)
            logger.info("stop-and-copy: paused \(info.name); \(dirty.count) pages left (\(more) dirtied since the last round)",
                        metadata: ["ROUND": "\(round + 1)", "event": "\(PalmEvent.stopAndCopy.rawValue)"])
            rounds.append(try sendFinalRound(round + 1, dirty.pfns, count: UInt64(dirty.count), digest: digest))
        } else {
            try stopVM()
            logger.info("stop-and-copy mode: paused \(info.name); sending all \(info.pageCount) pages", metadata: ["ROUND": "0", "event": "\(PalmEvent.stopAndCopy.rawValue)"])
            let final = try sendFinalRound(0, 0..<info.pageCount, count: info.pageCount, digest: digest)
            rounds.append(final)
            predicted = final.seconds + handoff
        }

        // Hand-off: STATE, MANIFEST → READY → COMMIT → DONE.
        progress(MigrationProgress(phase: .handoff, round: rounds.count - 1, pagesLeftInRound: 0, pagesSentInRound: 0,
                                   bytesPerSecond: 0, throttlePercent: 0))
        let finalRoundDone = MonotonicClock.now()
        let cpuState = try domain.captureState()
        let stateCaptured = MonotonicClock.now()
        try send(.state(cpuState))
        var manifest = Manifest(imageDigest: digest.finalize(), stateDigest: SHA256.hash(cpuState), ticketNonce: security.ticketNonce,
                                rounds: UInt32(rounds.count), pagesSent: rounds.reduce(0) { $0 + $1.pages }, bytesSent: bytesOnWire,
                                signature: [])
        manifest.signature = try security.signManifest(manifest)
        try send(.manifest(manifest))
        FaultPoint.afterManifest.reached(logger)
        guard case let .ready(readySignature) = try receive() else { throw WireError.unexpectedMessage(.ready, state: "handoff") }
        try security.verifyReady(readySignature, manifest, channel.peer)
        let readyAt = MonotonicClock.now()
        FaultPoint.afterReady.reached(logger)
        try checkCancelled()

        // Commit point. The intent is durable before the first byte of COMMIT leaves: from here
        // the source never resumes on its own, it asks the destination (RESOLVE).
        let commitSignature = try security.signCommit(manifest)
        try security.recordCommitIntent()
        committed = true
        do {
            try send(.commit(signature: commitSignature))
            FaultPoint.afterCommit.reached(logger)
            guard case .done = try receive() else { throw WireError.unexpectedMessage(.done, state: "commit") }
        } catch {
            logger.error("COMMIT sent but no DONE from the destination (\(error)); \(info.name) stays paused here while the destination is asked")
            channel.close()
            switch try security.resolveInDoubt() {
            case .committed:
                logger.notice("the destination reports migration committed")
            case .aborted:
                logger.warning("the destination reports the migration aborted; resuming \(info.name) on the source")
                committed = false
                throw MigrationError.abortedByPeer(.cancelled, "the destination never committed (resolved after \(error))")
            }
        }
        let resumedAt = MonotonicClock.now()
        security.recordEvidence(attestation, manifest, readySignature, commitSignature)
        channel.close()
        try domain.destroy()
        resumeOnFailure = false
        security.recordFinished()
        let total = resumedAt - start
        let phases = MigrationReport.DowntimePhases(pause: pausedAt - pauseTime, finalRound: finalRoundDone - pausedAt,
                                                    captureState: stateCaptured - finalRoundDone,
                                                    destinationReady: readyAt - stateCaptured, commit: resumedAt - readyAt)
        logger.notice("migration of \(info.name) committed: downtime \(String(format: "%.1f", (resumedAt - pauseTime) * 1000)) ms (\(phases.summary)), total \(String(format: "%.2f", total)) s",
                      metadata: ["event": "\(PalmEvent.committed.rawValue)", "DOWNTIME_MS": "\(String(format: "%.1f", (resumedAt - pauseTime) * 1000))"])
        progress(MigrationProgress(phase: .done, round: rounds.count - 1, pagesLeftInRound: 0, pagesSentInRound: 0,
                                   bytesPerSecond: 0, throttlePercent: 0))
        return MigrationReport(
            vm: info.name, destination: peerName, mode: options.mode == .preCopy ? "pre-copy" : "stop-and-copy",
            memoryBytes: info.memoryBytes, totalSeconds: total, downtimeSeconds: resumedAt - pauseTime,
            downtimePhases: phases, predictedDowntimeSeconds: predicted, downtimeTargetSeconds: options.policy.downtimeTarget,
            stopReason: stopReason.rawValue, rounds: rounds, bytesOnWire: bytesOnWire,
            throughputMiBps: Double(bytesOnWire) / 1048576 / max(total, 1e-9), imageDigest: manifest.imageDigest.hex,
            sourceCPUSeconds: MonotonicClock.processCPUSeconds() - cpuStart)
    }

    private func checkCancelled() throws {
        if cancelFlag.isSet { throw MigrationError.cancelled }
    }

    struct Sent {
        var pages: UInt64 = 0
        var zeroPages: UInt64 = 0
        var bytes: UInt64 = 0
    }

    /// The stop-and-copy round: the VM is paused; sends the pages and closes the round.
    private func sendFinalRound<S: Sequence>(_ round: Int, _ pfns: S, count: UInt64, digest: ImageDigest) throws
        -> MigrationReport.Round where S.Element == UInt64 {
        let t0 = MonotonicClock.now()
        let sent = try sendRound(UInt32(round), pfns, count: count, digest: digest, phase: .stopAndCopy)
        let seconds = MonotonicClock.now() - t0
        try send(.roundEnd(RoundEnd(round: UInt32(round), pagesSent: sent.pages, zeroPages: sent.zeroPages, bytesSent: sent.bytes,
                                    durationMicros: UInt64(seconds * 1e6), dirtyPages: 0)))
        return .init(round: round, pages: sent.pages, zeroPages: sent.zeroPages, bytes: sent.bytes, seconds: seconds,
                     dirtyRate: 0, dirtyAfter: 0, throttlePercent: 0, final: true)
    }

    /// Streams the given pages in MEMORY frames of `batchPages` (generic: the page path iterates
    /// a range or a bitmap directly, without an existential box per page).
    private func sendRound<S: Sequence>(_ round: UInt32, _ pfns: S, count: UInt64, digest: ImageDigest,
                                        phase: MigrationProgress.Phase) throws -> Sent where S.Element == UInt64 {
        var encoder = MemoryBatchEncoder(pageSize: domain.info.pageSize, capacityPages: options.batchPages)
        encoder.begin(round: round)
        var sent = Sent()
        let t0 = MonotonicClock.now()
        var lastReport = t0
        func flush() throws {
            guard encoder.pageCount > 0 else { return }
            let frame = encoder.finish()
            try channel.write(frame)
            bytesOnWire += UInt64(frame.count)
            sent.bytes += UInt64(frame.count)
            encoder.begin(round: round)
            let now = MonotonicClock.now()
            if now - lastReport > 0.1 {
                lastReport = now
                progress(MigrationProgress(phase: phase, round: Int(round), pagesLeftInRound: count - sent.pages,
                                           pagesSentInRound: sent.pages, bytesPerSecond: Double(sent.bytes) / (now - t0),
                                           throttlePercent: throttle))
                try checkCancelled()
            }
        }
        try domain.readPages(pfns) { pfn, page in
            if PageScan.isZero(page) {
                encoder.appendZero(pfn: pfn)
                digest.record(pfn: pfn, page: nil)
                sent.zeroPages += 1
            } else {
                encoder.appendData(pfn: pfn, page: page)
                // Hash the copy in the frame, not live guest memory: the digest covers what was sent.
                encoder.withLastPage { digest.record(pfn: pfn, page: $0) }
            }
            sent.pages += 1
            if encoder.pageCount == options.batchPages { try flush() }
        }
        try flush()
        return sent
    }
}

/// A flag set from another thread (signal handling, operator cancel); a sender checks it between
/// batches and stops before its commit point.
public final class CancelFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    public init() {}
    public func set() { lock.lock(); value = true; lock.unlock() }
    public var isSet: Bool { lock.lock(); defer { lock.unlock() }; return value }
}
