import Foundation
import Logging
import PalmHypervisor
import PalmTLS
import PalmWire

/// The destination side of one migration.
///
/// It follows ``DestinationProtocolState``: HELLO (authorized by the security hooks) → ATTEST →
/// CONFIG (capacity checked, empty paused VM created) → PREPARED → MEMORY/ROUND_END rounds →
/// STATE (restored into the paused VM) → MANIFEST (the rebuilt image digest and state digest must
/// match, else nothing resumes) → READY → COMMIT → resume → DONE.
///
/// Failure rule: until COMMIT the VM exists here only as a paused, partial image; any failure —
/// bad input, a dead source, a mismatch — discards it. Pages are applied idempotently, so a page
/// sent in several rounds simply ends with its last content.
public final class MigrationReceiver {
    /// Hooks the protection layer plugs into.
    public struct Security {
        /// Authorizes HELLO (ticket) for this peer; throwing refuses the migration.
        public var authorize: (Hello, CertificateIdentity) throws -> Void = { _, _ in }
        /// Checks the VM configuration against what was authorized (before anything is allocated).
        public var authorizeConfig: (VMConfig) throws -> Void = { _ in }
        /// Produces the signed attestation for (nonce, exporter).
        public var attest: (_ nonce: Digest32, _ exporter: Digest32) throws -> Attestation
        public var verifyManifestSignature: (Manifest, CertificateIdentity) throws -> Void = { _, _ in }
        public var signReady: (Manifest) throws -> [UInt8] = { _ in [] }
        public var verifyCommit: ([UInt8], Manifest, CertificateIdentity) throws -> Void = { _, _, _ in }
        /// Records the commit durably; called after COMMIT verified and before the VM resumes.
        public var recordCommit: () throws -> Void = {}
        /// Records that this migration will never commit; called before a partial VM is discarded.
        public var recordAbort: () -> Void = {}
        /// Receives the hand-off's signed pieces once COMMIT is recorded.
        public var recordEvidence: (_ ticket: [UInt8], _ attestation: Attestation, _ manifest: Manifest, _ ready: [UInt8], _ commit: [UInt8]) -> Void = { _, _, _, _, _ in }
        /// Answers RESOLVE for a migration id from this peer.
        public var resolve: ([UInt8], CertificateIdentity) throws -> Resolution = { _, _ in .aborted }

        public init(attest: @escaping (Digest32, Digest32) throws -> Attestation) {
            self.attest = attest
        }
    }

    /// What the destination saw.
    public struct Outcome: Sendable {
        public var vm: String
        public var rounds: Int
        public var pagesReceived: UInt64
        public var imageDigest: Digest32
    }

    let channel: SecureChannel
    let hypervisor: Hypervisor
    let security: Security
    let logger: Logger
    let limits: WireLimits
    private var state = DestinationProtocolState()

    public init(channel: SecureChannel, hypervisor: Hypervisor, security: Security, logger: Logger,
                limits: WireLimits = .default) {
        self.channel = channel
        self.hypervisor = hypervisor
        self.security = security
        self.logger = logger
        self.limits = limits
    }

    /// Serves one connection: a migration (returns its outcome) or a RESOLVE question (returns nil).
    public func run() throws -> Outcome? {
        var domain: DestinationDomain?
        var resumed = false
        var committed = false
        do {
            let outcome = try receive(domain: &domain, resumed: &resumed, committed: &committed)
            channel.close()
            return outcome
        } catch {
            let failure = MigrationError.wrap(error)
            if committed && !resumed {
                // Committed but not running: keep the image; the agent's start-up recovery resumes it.
                logger.critical("migration committed but resuming failed: \(failure); the image is kept for recovery")
            } else if !resumed, let d = domain {
                security.recordAbort()
                try? d.discard()
                logger.warning("migration of \(d.info.name) aborted: \(failure); partial VM discarded",
                               metadata: ["event": "\(PalmEvent.aborted.rawValue)", "VM": "\(d.info.name)"])
            } else {
                logger.warning("migration refused: \(failure)", metadata: ["event": "\(PalmEvent.aborted.rawValue)"])
            }
            if case .abortedByPeer = failure {} else if !resumed {
                try? channel.send(.abort(AbortNotice(reason: failure.abortReason, message: failure.description)))
            }
            channel.close()
            throw failure
        }
    }

    private func next(_ reader: FrameReader) throws -> Message {
        let m = try reader.readMessage()
        try state.receive(m.type)
        if case let .abort(n) = m { throw MigrationError.abortedByPeer(n.reason, n.message) }
        if case let .error(n) = m { throw MigrationError.abortedByPeer(n.reason, n.message) }
        return m
    }

    private func receive(domain: inout DestinationDomain?, resumed: inout Bool, committed: inout Bool) throws -> Outcome? {
        let reader = FrameReader(stream: channel, limits: limits)
        let peer = channel.peer
        let first = try next(reader)
        if case let .resolve(id) = first {
            let verdict = try security.resolve(id, peer)
            logger.notice("RESOLVE from \(peer.commonName ?? peer.subject): migration \(Hex.encode(id)) \(verdict)")
            try channel.send(.resolution(migrationID: id, verdict))
            return nil
        }
        guard case let .hello(hello) = first else { throw WireError.unexpectedMessage(.hello, state: "start") }
        try security.authorize(hello, peer)
        let attestation = try security.attest(hello.sourceNonce, try channel.channelBinding())
        try channel.send(.attest(attestation))

        guard case let .config(config) = try next(reader) else { throw WireError.unexpectedMessage(.config, state: "attested") }
        try security.authorizeConfig(config)
        logger.info("incoming \(config.name) from \(peer.commonName ?? peer.subject): \((config.pageCount * UInt64(config.pageSize)) >> 20) MiB, \(config.mode)")
        let d = try hypervisor.createIncoming(config: config)
        domain = d
        try channel.send(.prepared)

        let pageSize = Int(config.pageSize)
        let digest = ImageDigest(pageCount: config.pageCount, pageSize: pageSize)
        var pages: UInt64 = 0
        var rounds = 0
        var cpuState: [UInt8]?
        var readySignature: [UInt8] = []
        // The destination's share of the downtime, logged with the resume: completing the VM
        // from STATE, verifying the manifest, starting the VM after COMMIT.
        var stateSeconds = 0.0, verifySeconds = 0.0
        while true {
            let type = try reader.withNextFrame { header, payload -> MessageType in
                try state.receive(header.type)
                if header.type == .memory {
                    if pages == 0 { FaultPoint.precopy.reached(logger) }
                    _ = try MemoryBatchDecoder.forEachPage(in: payload, pageSize: pageSize, pageCount: config.pageCount) { pfn, page in
                        try d.writePage(pfn: pfn, data: page)
                        digest.record(pfn: pfn, page: page)
                        pages += 1
                    }
                    return .memory
                }
                let message = try Message.decode(type: header.type, payload: payload, limits: limits)
                switch message {
                case .roundEnd:
                    rounds += 1
                case let .state(bytes):
                    FaultPoint.stopAndCopy.reached(logger)
                    let t0 = MonotonicClock.now()
                    try d.restoreState(bytes)
                    stateSeconds = MonotonicClock.now() - t0
                    cpuState = bytes
                case let .manifest(manifest):
                    FaultPoint.afterManifest.reached(logger)
                    let t0 = MonotonicClock.now()
                    try verify(manifest, digest: digest, cpuState: cpuState ?? [], peer: peer)
                    readySignature = try security.signReady(manifest)
                    verifySeconds = MonotonicClock.now() - t0
                    try channel.send(.ready(signature: readySignature))
                    pendingManifest = manifest
                    FaultPoint.afterReady.reached(logger)
                case let .commit(signature):
                    guard let manifest = pendingManifest else { throw WireError.unexpectedMessage(.commit, state: "no manifest") }
                    try security.verifyCommit(signature, manifest, peer)
                    try security.recordCommit()
                    committed = true
                    security.recordEvidence(hello.ticket, attestation, manifest, readySignature, signature)
                    FaultPoint.afterCommit.reached(logger)
                case let .abort(n), let .error(n):
                    throw MigrationError.abortedByPeer(n.reason, n.message)
                default:
                    throw WireError.unexpectedMessage(header.type, state: state.rawValue)
                }
                return header.type
            }
            if type == .commit { break }
        }
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
        logger.notice("\(config.name) resumed here after \(rounds) rounds, \(pages) pages received (state applied in \(ms(stateSeconds)), manifest verified in \(ms(verifySeconds)), started in \(ms(MonotonicClock.now() - resumeStart)))",
                      metadata: ["event": "\(PalmEvent.resumedHere.rawValue)", "VM": "\(config.name)"])
        // The VM runs here: settle it even when DONE cannot be delivered.
        defer {
            do {
                try d.settle()
            } catch {
                logger.error("\(config.name) runs here, but finishing its hand-off failed: \(error)")
            }
        }
        try channel.send(.done)
        return Outcome(vm: config.name, rounds: rounds, pagesReceived: pages, imageDigest: digest.finalize())
    }

    private var pendingManifest: Manifest?


    private func verify(_ manifest: Manifest, digest: ImageDigest, cpuState: [UInt8], peer: CertificateIdentity) throws {
        try security.verifyManifestSignature(manifest, peer)
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
