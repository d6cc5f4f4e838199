import PalmSupport
import Foundation
import Logging
import PalmHypervisor
import PalmCrypto
import PalmProtection
import PalmWire

/// The source side of one migration: the multi-pass pre-copy engine.
///
/// One migration is a ``SenderSession`` carried through four phases:
/// 1. **handshake** — HELLO → ATTEST (checked), CONFIG → PREPARED, on the session channel;
/// 2. **streams** — the extra page streams connect and JOIN (proof derived from the session channel);
/// 3. **transfer** — round 0 sends every page while the VM runs, round n the pages dirtied during
///    round n−1, each round spread over all streams (``PageStreamSender``); after each round — and
///    while a round runs — ``ConvergencePolicy`` decides to go on, throttle, or stop and copy;
/// 4. **hand-off** — pause, the last dirty pages, STATE, MANIFEST → READY, COMMIT → DONE.
///
/// Failure rule (nothing lost): any failure before COMMIT is sent aborts the migration and leaves
/// the VM running on the source (resumed if it was paused, throttle removed), whichever stream it
/// happened on. After COMMIT the source never resumes on its own; a missing DONE is resolved
/// through the journal (``SourceJournal/resolveInDoubt()``).
///
/// Every protection (ticket, attestation check, hand-off signatures, journal, evidence) comes in
/// as one ``SenderProtections``; each refusal becomes the matching ``MigrationError``.
public final class MigrationSender {
    public struct Options: Sendable {
        public var mode: MigrationMode = .preCopy
        public var policy = ConvergencePolicy()
        /// Pages per MEMORY batch.
        public var batchPages = 256
        /// Page streams, the session channel included (1 … ``WireProtocol/maxStreams``).
        public var streams = 1
        /// How MEMORY batches are compressed (default: never).
        public var compression: CompressionSetting = .off
        /// The page streams' threads' nice value (``ThreadPriority``; 0: as the caller's).
        public var pageThreadNice = 0
        /// The source hypervisor's name, announced in CONFIG.
        public var hypervisorName = "sim"
        /// How often a running round is looked at: progress, cancellation, the policy's early stop.
        public var monitorInterval = 0.1
        /// Measured costs of earlier hand-offs, for the downtime prediction (none: the model alone).
        public var handoffHistory: HandoffHistory?
        /// Where a fault-injection test stops this sender (tests only; disabled by default).
        public var faults: FaultInjection = .disabled
        /// The largest ATTEST read from the destination (its TPM's logs make it large).
        public var maxAttestationBytes = 16 << 20
        public init() {}
    }

    /// Opens extra page stream `index` to the same destination, authenticated as the session
    /// channel's peer (the agent checks the certificate as it did for the session channel).
    public typealias StreamConnector = @Sendable (_ index: Int) throws -> SecureChannel

    let channel: SecureChannel
    let domain: SourceDomain
    let options: Options
    let protections: SenderProtections
    let logger: Logger
    let progress: (MigrationProgress) -> Void
    let connectStream: StreamConnector?
    private let reader: FrameReader
    private var state = SourceProtocolState()
    private var bytesOnWire: UInt64 = 0
    private var resumeOnFailure = false
    private var committed = false
    /// The last round the destination confirmed with ROUND_APPLIED.
    private var appliedRound = -1
    private var streamChannels: [SecureChannel] = []
    /// Streams 1 … N−1 connecting (TCP and TLS) while the session's handshake runs; each is
    /// adopted into `streamChannels`, in order, once the destination PREPARED the session.
    private var connecting: [BackgroundResult<SecureChannel>] = []
    let cancelFlag: CancelFlag

    public init(channel: SecureChannel, domain: SourceDomain, options: Options = Options(), protections: SenderProtections,
                logger: Logger, cancel: CancelFlag = CancelFlag(), connectStream: StreamConnector? = nil,
                progress: @escaping (MigrationProgress) -> Void = { _ in }) {
        cancelFlag = cancel
        self.channel = channel
        self.domain = domain
        self.options = options
        self.protections = protections
        self.logger = logger
        self.progress = progress
        self.connectStream = connectStream
        reader = FrameReader(stream: channel, limits: WireLimits(maxPayload: 64 << 10))
    }

    /// Asks a running migration to stop before its commit point (the VM stays on the source).
    public func cancel() { cancelFlag.set() }

    /// Runs the migration to completion; on return the VM runs on the destination.
    public func run() throws -> MigrationReport {
        var session = SenderSession(info: domain.info)
        // Nothing is sent on an extra stream before it JOINs, after the attestation was checked.
        if options.streams > 1, let connectStream {
            connecting = (1..<options.streams).map { index in
                BackgroundResult(name: "palm-connect-\(index)") { try connectStream(index) }
            }
        }
        do {
            try handshake(&session)
            try openStreams(&session)
            try transfer(&session)
            return try handOff(&session)
        } catch {
            let failure = MigrationError.wrap(error)
            if !committed {
                recover(after: failure)
                protections.journal.recordFinished()
            }
            closeStreams()
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
            // Best effort, and brief: a destination that stopped reading does not hold the VM's recovery.
            channel.setIOTimeout(2)
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

    private func closeStreams() {
        for s in streamChannels { s.interrupt() }
        // Connected but never adopted (the session failed first): closed unused.
        for pending in connecting.dropFirst(streamChannels.count) { (try? pending.wait())?.close() }
        connecting = []
    }

    func send(_ message: Message) throws {
        let frame = message.encodeFrame()
        try channel.write(frame)
        bytesOnWire += UInt64(frame.count)
        state.sent(message.type)
    }

    /// The next message from the destination other than ROUND_APPLIED (those are recorded).
    private func receive() throws -> Message {
        while true {
            let message = try receiveAny()
            if case .roundApplied = message { continue }
            return message
        }
    }

    /// The next message from the destination; ROUND_APPLIED advances ``appliedRound``.
    private func receiveAny() throws -> Message {
        let message = try reader.readMessage()
        try state.receive(message.type)
        if case let .abort(n) = message { throw MigrationError.abortedByPeer(n.reason, n.message) }
        if case let .error(n) = message { throw MigrationError.abortedByPeer(n.reason, n.message) }
        if case let .roundApplied(round) = message {
            guard Int(round) == appliedRound + 1 else {
                throw WireError.invalidValue(field: "roundApplied.round", value: UInt64(round))
            }
            appliedRound = Int(round)
        }
        return message
    }

    /// Waits until the destination has applied every page of `round` (ROUND_APPLIED).
    func awaitApplied(_ round: Int) throws {
        while appliedRound < round {
            let message = try receiveAny()
            if case .roundApplied = message { continue }
            throw WireError.unexpectedMessage(message.type, state: "waiting for ROUND_APPLIED \(round)")
        }
    }

    func checkCancelled() throws {
        if cancelFlag.isSet { throw MigrationError.cancelled }
    }

    // MARK: phase 1: handshake

    /// HELLO → ATTEST (checked before anything about the VM leaves), CONFIG → PREPARED.
    private func handshake(_ s: inout SenderSession) throws {
        let info = s.info
        let peerName = channel.peer.commonName ?? channel.peer.subject
        logger.info("migration of \(info.name) (\(info.memoryBytes >> 20) MiB) to \(peerName) starting, mode \(options.mode), \(options.streams) stream(s), compression \(options.compression)",
                    metadata: ["event": "\(PalmEvent.migrationStarted.rawValue)"])
        progress(MigrationProgress(phase: .handshake, round: 0, pagesLeftInRound: info.pageCount, pagesSentInRound: 0,
                                   bytesPerSecond: 0, throttlePercent: 0))
        try send(.hello(Hello(ticket: protections.ticket, sourceNonce: s.nonce)))
        // ATTEST alone may be large (a TPM's measurement logs): read with its own, configured cap.
        let attestReader = FrameReader(stream: channel, limits: .attestation(maxBytes: options.maxAttestationBytes))
        let first = try attestReader.readMessage()
        try state.receive(first.type)
        if case let .abort(n) = first { throw MigrationError.abortedByPeer(n.reason, n.message) }
        if case let .error(n) = first { throw MigrationError.abortedByPeer(n.reason, n.message) }
        guard case let .attest(attestation) = first else { throw WireError.unexpectedMessage(first.type, state: "handshake") }
        guard attestation.sourceNonce == s.nonce else {
            throw MigrationError.attestationRejected("the report does not echo this session's nonce")
        }
        let binding = try channel.channelBinding()
        guard attestation.exporter == binding else {
            throw MigrationError.attestationRejected("the report is bound to another TLS session (exporter mismatch)")
        }
        let session = SessionBinding(nonce: s.nonce, exporter: binding)
        try MigrationError.refusing(as: .attestation) {
            try protections.attestation.verify(attestation, binding: session, peer: channel.peer)
        }
        s.costs.signature = try MigrationError.refusing(as: .local) { try protections.handoff.signatureCost() }
        s.attestation = attestation
        logger.info("destination attested (\(attestation.mode)): \(attestation.hypervisor) \(attestation.hypervisorVersion), agent sha256:\(attestation.agentDigest.hex.prefix(16))…")

        try send(.config(VMConfig(name: info.name, mode: options.mode, pageSize: UInt32(info.pageSize), pageCount: info.pageCount,
                                  vcpus: info.vcpus, hypervisor: options.hypervisorName, platform: domain.platform,
                                  streams: UInt8(options.streams), compression: options.compression.codec)))
        guard case let .prepared(prepared) = try receive() else { throw WireError.unexpectedMessage(.prepared, state: "config") }
        s.prepared = prepared
        s.costs.destination = Double(prepared.handoffMicros) / 1e6
        s.costs.pause = domain.pauseEstimate
        s.costs.measured = options.handoffHistory?.typical(for: channel.peer.fingerprint)

        s.joinKey = try StreamJoin.key(session: channel, token: prepared.sessionToken)
    }

    // MARK: phase 2: page streams

    /// Stream 0 is the session channel; streams 1 … N−1, connected while the handshake ran, JOIN.
    private func openStreams(_ s: inout SenderSession) throws {
        func sender(_ index: Int, _ ch: SecureChannel) -> PageStreamSender {
            PageStreamSender(index: index, channel: ch, domain: domain, digest: s.digest, pageSize: s.info.pageSize,
                             batchPages: options.batchPages, compression: options.compression, nice: options.pageThreadNice)
        }
        s.streams = [sender(0, channel)]
        guard options.streams > 1 else { return }
        guard connecting.count == options.streams - 1, let prepared = s.prepared else {
            throw MigrationError.local("\(options.streams) streams requested but no way to open them")
        }
        for index in 1..<options.streams {
            let ch = try connecting[index - 1].wait()
            streamChannels.append(ch)
            let proof = try StreamJoin.proof(key: s.joinKey, stream: index, channel: ch)
            try ch.send(.join(Join(sessionToken: prepared.sessionToken, stream: UInt8(index), proof: proof)))
            let answer = try FrameReader(stream: ch, limits: WireLimits(maxPayload: 4096)).readMessage()
            switch answer {
            case .joined: break
            case let .abort(n), let .error(n): throw MigrationError.abortedByPeer(n.reason, "stream \(index) refused: \(n.message)")
            default: throw WireError.unexpectedMessage(answer.type, state: "joining stream \(index)")
            }
            s.streams.append(sender(index, ch))
        }
        logger.info("\(options.streams) page streams joined the session")
    }

    // MARK: phase 3: transfer

    private func transfer(_ s: inout SenderSession) throws {
        let t0 = MonotonicClock.now()
        try MigrationError.refusing(as: .local) { try protections.journal.recordStart() }
        s.costs.durableRecord = protections.journal.typicalRecordSeconds ?? (MonotonicClock.now() - t0)
        try domain.enableDirtyLog()
        if options.mode == .preCopy {
            try preCopy(&s)
        } else {
            try stopVM(&s)
            logger.info("stop-and-copy mode: paused \(s.info.name); sending all \(s.info.pageCount) pages",
                        metadata: ["ROUND": "0", "event": "\(PalmEvent.stopAndCopy.rawValue)"])
            s.finalChunks = s.dirty.nonzeroWords
            let final = try runRound(&s, round: 0, pages: s.dirty, phase: .stopAndCopy, final: true)
            s.predicted = final.seconds + s.costs.fixed(changedChunks: s.finalChunks)
        }
    }

    /// Ends pre-copy: the driver's preparation while the VM still runs, then the pause, timed.
    func stopVM(_ s: inout SenderSession) throws {
        resumeOnFailure = true       // from here on a failure resumes: a half-done pause is undone too
        try domain.setThrottle(percent: 0)
        s.throttle = 0
        try domain.prepareForPause()
        s.timeline.pauseRequested = MonotonicClock.now()
        try domain.pause()
        s.timeline.paused = MonotonicClock.now()
    }

    // MARK: phase 4: hand-off

    /// STATE, MANIFEST → READY → COMMIT → DONE.
    private func handOff(_ s: inout SenderSession) throws -> MigrationReport {
        let info = s.info
        progress(MigrationProgress(phase: .handoff, round: s.rounds.count - 1, pagesLeftInRound: 0, pagesSentInRound: 0,
                                   bytesPerSecond: 0, throttlePercent: 0))
        let cpuState = try domain.captureState()
        s.timeline.stateCaptured = MonotonicClock.now()
        try send(.state(cpuState))
        var manifest = Manifest(imageDigest: s.digest.finalize(), stateDigest: SHA256.hash(cpuState), ticketNonce: protections.ticketNonce,
                                rounds: UInt32(s.rounds.count), pagesSent: s.rounds.reduce(0) { $0 + $1.pages },
                                bytesSent: totalBytes(s), signature: [])
        manifest.signature = try MigrationError.refusing(as: .local) { try protections.handoff.signManifest(manifest) }
        try send(.manifest(manifest))
        options.faults.reached(.afterManifest, logger)
        guard case let .ready(readySignature) = try receive() else { throw WireError.unexpectedMessage(.ready, state: "handoff") }
        try MigrationError.refusing(as: .signature) {
            try protections.handoff.verifyReady(readySignature, for: manifest, peer: channel.peer)
        }
        s.timeline.ready = MonotonicClock.now()
        options.faults.reached(.afterReady, logger)
        try checkCancelled()

        // Commit point. The intent is durable before the first byte of COMMIT leaves: from here
        // the source never resumes on its own, it asks the destination (RESOLVE).
        let commitSignature = try MigrationError.refusing(as: .local) { try protections.handoff.signCommit(manifest) }
        try MigrationError.refusing(as: .local) { try protections.journal.recordCommitIntent() }
        committed = true
        do {
            try send(.commit(signature: commitSignature))
            options.faults.reached(.afterCommit, logger)
            guard case .done = try receive() else { throw WireError.unexpectedMessage(.done, state: "commit") }
        } catch {
            logger.error("COMMIT sent but no DONE from the destination (\(error)); \(info.name) stays paused here while the destination is asked")
            channel.close()
            closeStreams()
            switch try MigrationError.refusing(as: .commitInDoubt) { try protections.journal.resolveInDoubt() } {
            case .committed:
                logger.notice("the destination reports migration committed")
            case .aborted:
                logger.warning("the destination reports the migration aborted; resuming \(info.name) on the source")
                committed = false
                throw MigrationError.abortedByPeer(.cancelled, "the destination never committed (resolved after \(error))")
            }
        }
        s.timeline.resumed = MonotonicClock.now()
        if let attestation = s.attestation {
            protections.evidence.record(HandoffEvidence(ticket: protections.ticket, attestation: attestation, manifest: manifest,
                                                        readySignature: readySignature, commitSignature: commitSignature))
        }
        channel.close()
        closeStreams()
        // Committed: whatever happens now, the copy here is never resumed, and a failure to
        // destroy it does not make the migration a failed one (an operator told "error" might
        // resume the paused copy: two VMs). Its commit-intent record stays for recover.
        resumeOnFailure = false
        let destroying = MonotonicClock.now()
        do {
            try domain.destroy()
            let seconds = MonotonicClock.now() - destroying
            s.cleanupSeconds = seconds
            logger.info("the source's copy of \(info.name) destroyed in \(String(format: "%.2f", seconds)) s")
            protections.journal.recordFinished()
        } catch {
            s.sourceCopyLeft = "\(error)"
            logger.error("\(info.name) runs on the destination, but its paused copy here could not be destroyed (\(error)): never resume it; `palm-source recover` destroys it")
        }
        return report(s, manifest: manifest)
    }

    private func totalBytes(_ s: SenderSession) -> UInt64 { bytesOnWire + s.rounds.reduce(0) { $0 + $1.bytes } }

    private func report(_ s: SenderSession, manifest: Manifest) -> MigrationReport {
        let total = s.timeline.resumed - s.started
        let downtime = s.timeline.downtime
        let phases = s.timeline.phases
        options.handoffHistory?.record(downtime - phases.finalRound - s.costs.sealing(changedChunks: s.finalChunks),
                                       for: channel.peer.fingerprint)
        let wire = totalBytes(s)
        logger.notice("migration of \(s.info.name) committed: downtime \(String(format: "%.1f", downtime * 1000)) ms (predicted \(String(format: "%.1f", s.predicted * 1000)) ms; \(phases.summary)), total \(String(format: "%.2f", total)) s",
                      metadata: ["event": "\(PalmEvent.committed.rawValue)", "DOWNTIME_MS": "\(String(format: "%.1f", downtime * 1000))"])
        progress(MigrationProgress(phase: .done, round: s.rounds.count - 1, pagesLeftInRound: 0, pagesSentInRound: 0,
                                   bytesPerSecond: 0, throttlePercent: 0))
        return MigrationReport(
            vm: s.info.name, destination: channel.peer.commonName ?? channel.peer.subject,
            mode: options.mode.name, memoryBytes: s.info.memoryBytes,
            totalSeconds: total, downtimeSeconds: downtime, downtimePhases: phases, predictedDowntimeSeconds: s.predicted,
            predictionBasis: s.costs.measured == nil ? "model" : "earlier hand-offs",
            downtimeTargetSeconds: options.policy.downtimeTarget, stopReason: s.stopReason.rawValue, rounds: s.rounds,
            bytesOnWire: wire, throughputMiBps: Double(wire) / 1048576 / max(total, 1e-9), imageDigest: manifest.imageDigest.hex,
            sourceCPUSeconds: MonotonicClock.processCPUSeconds() - s.cpuStarted, streams: options.streams,
            compression: options.compression.description, compressedBatches: s.compressedBatches,
            cleanupSeconds: s.cleanupSeconds, sourceCopyLeft: s.sourceCopyLeft, destinationAttestation: s.attestation?.mode,
            destinationTLSKey: s.attestation?.platform.map { $0.tlsKey == nil ? "file" : "tpm" })
    }
}

/// A flag set from another thread (signal handling, operator cancel); a sender checks it between
/// batches and stops before its commit point.
public final class CancelFlag: @unchecked Sendable {
    private let value = LockedValueBox(false)
    public init() {}
    public func set() { value.withLockedValue { $0 = true } }
    public var isSet: Bool { value.current }
}
