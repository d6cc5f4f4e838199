import PalmSupport
import Foundation
import Logging
import PalmHypervisor
import PalmCrypto
import PalmProtection
import PalmWire

/// The destination side of one migration, run on its session channel.
///
/// It follows ``DestinationProtocolState``: HELLO (admitted by the ``ReceiverProtections``) → ATTEST →
/// CONFIG (capacity and stream count checked, empty paused VM created) → PREPARED → rounds of
/// MEMORY/ROUND_END, on this channel and on the extra page streams that JOIN the session
/// (``IncomingSessions``, ``PageBatchReceiver``) → STATE (restored into the paused VM) →
/// MANIFEST (the image digest and state digest must match, else nothing resumes) → READY →
/// COMMIT → resume → DONE.
///
/// Failure rule: until COMMIT the VM exists here only as a paused, partial image; any failure —
/// bad input on any stream, a dead source, a mismatch — discards it (after every stream thread
/// has let go of it). Pages are applied idempotently, and the round barrier keeps a newer copy
/// of a page from being overwritten by an older one.
public final class MigrationReceiver {
    /// What the destination saw.
    public struct Outcome: Sendable {
        public var vm: String
        public var rounds: Int
        public var pagesReceived: UInt64
        public var streams: Int
        /// Batches that arrived ahead of their round on one stream and waited at the barrier.
        public var barrierWaits: Int
        public var imageDigest: Digest32
    }

    /// Limits on what a source may ask of this destination.
    public struct Limits: Sendable {
        public var wire = WireLimits.default
        /// Page streams one session may use.
        public var maxStreams = WireProtocol.maxStreams
        /// Seconds a stream may wait at the round barrier (and for the others to end a round).
        public var streamTimeout = 60.0
        /// Where a migration takes its reception slot once its ticket verified (nil: no limit).
        public var slots: ReceptionSlots?
        public init() {}
    }

    let channel: SecureChannel
    let hypervisor: Hypervisor
    let protections: ReceiverProtections
    let logger: Logger
    let limits: Limits
    let sessions: IncomingSessions
    let faults: FaultInjection
    private var state = DestinationProtocolState()
    private var domain: DestinationDomain?
    private var session: IncomingSession?
    private var resumed = false
    private var committed = false
    private var holdsSlot = false

    public init(channel: SecureChannel, hypervisor: Hypervisor, protections: ReceiverProtections, logger: Logger,
                limits: Limits = Limits(), sessions: IncomingSessions = IncomingSessions(), faults: FaultInjection = .disabled) {
        self.channel = channel
        self.hypervisor = hypervisor
        self.protections = protections
        self.logger = logger
        self.limits = limits
        self.sessions = sessions
        self.faults = faults
    }

    /// Serves one connection whose first message (HELLO or RESOLVE) was already read: a
    /// migration (returns its outcome) or a RESOLVE question (returns nil).
    public func run(first: Message) throws -> Outcome? {
        defer { if holdsSlot { limits.slots?.release() } }
        do {
            let outcome = try receive(first: first)
            channel.close()
            return outcome
        } catch {
            let failure = MigrationError.wrap(session?.failureCause ?? error)
            teardown(after: failure)
            throw failure
        }
    }

    /// Reads the first message itself, then serves the connection.
    public func run() throws -> Outcome? {
        let first: Message
        do {
            first = try FrameReader(stream: channel, limits: limits.wire).readMessage()
        } catch {
            channel.close()
            throw MigrationError.wrap(error)
        }
        return try run(first: first)
    }

    private func teardown(after failure: MigrationError) {
        if let session {
            session.fail(failure)
            session.awaitStreamsExit(timeout: limits.streamTimeout)
            sessions.unregister(session)
        }
        if committed && !resumed {
            // Committed but not running: keep the image; the agent's start-up recovery resumes it.
            logger.critical("migration committed but resuming failed: \(failure); the image is kept for recovery")
        } else if !resumed, let d = domain {
            protections.journal.recordAbort()
            try? d.discard()
            logger.warning("migration of \(d.info.name) aborted: \(failure); partial VM discarded",
                           metadata: ["event": "\(PalmEvent.aborted.rawValue)", "VM": "\(d.info.name)"])
        } else {
            logger.warning("migration refused: \(failure)", metadata: ["event": "\(PalmEvent.aborted.rawValue)"])
        }
        if case .abortedByPeer = failure {} else if !resumed {
            channel.setIOTimeout(2)
            try? channel.send(.abort(AbortNotice(reason: failure.abortReason, message: failure.description)))
        }
        channel.close()
    }

    private func receive(first: Message) throws -> Outcome? {
        try state.receive(first.type)
        let peer = channel.peer
        if case let .resolve(id) = first {
            let verdict = try MigrationError.refusing(as: .ticket) { try protections.journal.resolve(id: id, peer: peer) }
            logger.notice("RESOLVE from \(peer.commonName ?? peer.subject): migration \(Hex.encode(id)) \(verdict)")
            try channel.send(.resolution(migrationID: id, verdict))
            return nil
        }
        guard case let .hello(hello) = first else { throw WireError.unexpectedMessage(first.type, state: "start") }
        try MigrationError.refusing(as: .ticket) { try protections.admission.admit(hello, peer: peer) }
        try limits.slots?.acquire()
        holdsSlot = limits.slots != nil
        let binding = SessionBinding(nonce: hello.sourceNonce, exporter: try channel.channelBinding())
        let attestation = try MigrationError.refusing(as: .local) { try protections.attestation.attest(binding: binding) }
        try channel.send(.attest(attestation))
        let signatureCost = try MigrationError.refusing(as: .local) { try protections.handoff.signatureCost() }

        let frames = FrameReader(stream: channel, limits: limits.wire)
        guard case let .config(config) = try next(frames) else { throw WireError.unexpectedMessage(.config, state: "attested") }
        let t0 = MonotonicClock.now()
        try MigrationError.refusing(as: .ticket) { try protections.admission.admit(config) }
        try MigrationError.refusing(as: .local) { try protections.journal.recordIncoming() }
        let recordCost = protections.journal.typicalRecordSeconds ?? (MonotonicClock.now() - t0)
        guard Int(config.streams) <= limits.maxStreams else {
            throw MigrationError.unsupportedConfig("\(config.streams) page streams requested, this destination allows \(limits.maxStreams)")
        }
        logger.info("incoming \(config.name) from \(peer.commonName ?? peer.subject): \((config.pageCount * UInt64(config.pageSize)) >> 20) MiB, \(config.mode), \(config.streams) stream(s), compression \(config.compression)")
        let d = try hypervisor.createIncoming(config: config)
        domain = d
        let token = Digest32.randomBytes(Prepared.tokenSize)
        let s = IncomingSession(token: token, config: config, domain: d, peer: peer.fingerprint,
                                joinKey: try StreamJoin.key(session: channel, token: token), session: channel,
                                timeout: limits.streamTimeout, limits: limits.wire, logger: logger, faults: faults)
        session = s
        sessions.register(s)
        // The destination's share of a hand-off, as measured here: the commit record (one durable
        // record), READY's signature and two checks, starting the VM.
        let share = recordCost + 3 * signatureCost + d.resumeEstimate
        try channel.send(.prepared(Prepared(sessionToken: token, handoffMicros: UInt32(min(share * 1e6, Double(UInt32.max))))))
        return try streamAndHandOff(s, hello: hello, attestation: attestation, frames: frames)
    }

    private func next(_ frames: FrameReader) throws -> Message {
        let m = try frames.readMessage()
        try state.receive(m.type)
        if case let .abort(n) = m { throw MigrationError.abortedByPeer(n.reason, n.message) }
        if case let .error(n) = m { throw MigrationError.abortedByPeer(n.reason, n.message) }
        return m
    }

    /// Rounds on the session channel (this channel is stream 0), then STATE, MANIFEST, COMMIT.
    private func streamAndHandOff(_ s: IncomingSession, hello: Hello, attestation: Attestation, frames: FrameReader) throws -> Outcome {
        let d = s.domain
        let config = s.config
        let batches = PageBatchReceiver(stream: 0, channel: channel, session: s)
        let peer = channel.peer
        var cpuState: [UInt8]?
        var pending: (manifest: Manifest, ready: [UInt8])?
        var evidence: (manifest: Manifest, ready: [UInt8], commit: [UInt8])?
        // The destination's share of the downtime, logged with the resume.
        var stateSeconds = 0.0, verifySeconds = 0.0
        commitLoop: while true {
            let header = try frames.nextHeader()
            try state.receive(header.type)
            if header.type == .memory {
                try batches.receiveMemory(payloadLength: Int(header.length))
                continue
            }
            let message = try frames.readMessage(after: header)
            switch message {
            case let .roundEnd(end):
                try batches.roundEnded(end.round)
                try s.closeRound(Int(end.round))
                try channel.send(.roundApplied(round: end.round))
            case let .state(bytes):
                faults.reached(.stopAndCopy, logger)
                let t0 = MonotonicClock.now()
                try d.restoreState(bytes)
                stateSeconds = MonotonicClock.now() - t0
                cpuState = bytes
            case let .manifest(manifest):
                faults.reached(.afterManifest, logger)
                let t0 = MonotonicClock.now()
                try verify(manifest, digest: s.digest, cpuState: cpuState ?? [], peer: peer)
                let ready = try MigrationError.refusing(as: .local) { try protections.handoff.signReady(manifest) }
                verifySeconds = MonotonicClock.now() - t0
                try channel.send(.ready(signature: ready))
                pending = (manifest, ready)
                faults.reached(.afterReady, logger)
            case let .commit(signature):
                guard let (manifest, ready) = pending else { throw WireError.unexpectedMessage(.commit, state: "no manifest") }
                try MigrationError.refusing(as: .signature) { try protections.handoff.verifyCommit(signature, for: manifest, peer: peer) }
                try MigrationError.refusing(as: .local) { try protections.journal.recordCommit() }
                committed = true
                evidence = (manifest, ready, signature)
                faults.reached(.afterCommit, logger)
                break commitLoop
            case let .abort(n), let .error(n):
                throw MigrationError.abortedByPeer(n.reason, n.message)
            default:
                throw WireError.unexpectedMessage(header.type, state: state.rawValue)
            }
        }
        s.end()
        let resumeStart = MonotonicClock.now()
        do {
            try d.resume()
        } catch {
            // Committed: the VM must run here. Start it afresh from its image instead of leaving
            // it nowhere until the agent restarts.
            logger.error("resuming \(config.name) failed (\(error)); starting it from its committed image")
            try hypervisor.completeIncoming(vm: config.name)
        }
        resumed = true
        let ms = { (seconds: Double) in String(format: "%.1f ms", seconds * 1000) }
        let received = s.pagesReceived.load(ordering: .relaxed)
        logger.notice("\(config.name) resumed here after \(batches.roundsEnded) rounds, \(received) pages received on \(config.streams) stream(s) (state applied in \(ms(stateSeconds)), manifest verified in \(ms(verifySeconds)), started in \(ms(MonotonicClock.now() - resumeStart)))",
                      metadata: ["event": "\(PalmEvent.resumedHere.rawValue)", "VM": "\(config.name)"])
        // The VM runs here: settle it, and keep the evidence (the ledger's commit record is what
        // recovery relies on; evidence is for audit, so it is not part of the downtime), even
        // when DONE cannot be delivered.
        defer {
            if let e = evidence {
                protections.evidence.record(HandoffEvidence(ticket: hello.ticket, attestation: attestation, manifest: e.manifest,
                                                            readySignature: e.ready, commitSignature: e.commit))
            }
            s.awaitStreamsExit(timeout: limits.streamTimeout)
            sessions.unregister(s)
            do {
                try d.settle()
            } catch {
                logger.error("\(config.name) runs here, but finishing its hand-off failed: \(error)")
            }
        }
        try channel.send(.done)
        return Outcome(vm: config.name, rounds: batches.roundsEnded, pagesReceived: received, streams: Int(config.streams),
                       barrierWaits: s.barrierWaits.load(ordering: .relaxed), imageDigest: s.digest.finalize())
    }

    private func verify(_ manifest: Manifest, digest: ImageDigest, cpuState: [UInt8], peer: CertificateIdentity) throws {
        try MigrationError.refusing(as: .signature) { try protections.handoff.verifyManifest(manifest, peer: peer) }
        let image = digest.finalize()
        guard image == manifest.imageDigest else {
            throw MigrationError.manifestMismatch("memory image digest \(image.hex.prefix(16))… ≠ manifest \(manifest.imageDigest.hex.prefix(16))…")
        }
        guard SHA256.hash(cpuState) == manifest.stateDigest else {
            throw MigrationError.manifestMismatch("CPU state digest does not match the manifest")
        }
        logger.info("manifest verified: image sha256:\(image.hex.prefix(16))…, \(manifest.rounds) rounds")
    }
}
