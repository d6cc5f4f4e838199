import Foundation
import Logging
import PalmEngineTLS
import PalmHypervisor
import PalmMigration
import PalmProtection
import PalmSecurity
import PalmSupport
import PalmCrypto
import PalmTLS
import PalmWire

/// palm-source's migrate operation: open the VM, connect to the destination over PalmTLS, run
/// the engine, return its report.
public struct SourceAgent {
    public let configuration: SourceConfiguration
    public let logger: Logger

    /// Measured hand-off costs for the downtime prediction; one per agent process, so migrations
    /// running at once share it (default: read from the state directory).
    public let handoffHistory: HandoffHistory

    public init(configuration: SourceConfiguration, logger: Logger, handoffHistory: HandoffHistory? = nil) {
        self.configuration = configuration
        self.logger = logger
        self.handoffHistory = handoffHistory ?? HandoffHistory(path: configuration.stateDirectory + "/handoff-history.json")
    }

    public struct Request: Sendable {
        public var vm: String
        public var host: String
        public var port: UInt16
        /// The name the destination's certificate must carry (default: host).
        public var serverName: String?
        public var mode: MigrationMode
        public var downtimeTarget: Double?
        /// Page streams (default: the configuration's `migration.streams`).
        public var streams: Int?
        /// MEMORY batch compression (default: the configuration's `migration.compression`).
        public var compression: CompressionSetting?
        /// The coordinator's ticket for this migration.
        public var ticket: [UInt8]
        /// The destination measurements accepted (default: the configuration's `[attestation]`;
        /// `serve` uses the allowlist the coordinator distributes).
        public var attestation: AttestationPolicy?
        /// What the destination's platform must prove (default: the configuration's; `serve`
        /// uses the coordinator's).
        public var platform: PlatformTrust?
        /// Set from another thread to stop the migration before its commit point.
        public var cancel = CancelFlag()
        public init(vm: String, host: String, port: UInt16, serverName: String? = nil, mode: MigrationMode = .preCopy,
                    downtimeTarget: Double? = nil, ticket: [UInt8]) {
            self.ticket = ticket
            self.vm = vm
            self.host = host
            self.port = port
            self.serverName = serverName
            self.mode = mode
            self.downtimeTarget = downtimeTarget
        }
    }

    public func migrate(_ request: Request, progress: @escaping (MigrationProgress) -> Void = { _ in }) throws -> MigrationReport {
        let preparing = MonotonicClock.now()
        let ticket: MigrationTicket
        do { ticket = try MigrationTicket.decode(request.ticket) } catch {
            throw MigrationError.ticketRejected("\(error)")
        }
        guard ticket.vm == request.vm else {
            throw MigrationError.ticketRejected("the ticket is for VM '\(ticket.vm)', not '\(request.vm)'")
        }
        let hypervisor = try configuration.hypervisor.make()
        // Opening the VM needs nothing from the destination and takes as long as connecting to it
        // (on Xen under emulation, over a second: libxl's configuration, a scan of the page types,
        // the CPU policy), so it runs on its own thread meanwhile. Nothing is sent before it is
        // open; a VM that cannot be opened is reported before any connection problem, as if first.
        let vm = request.vm
        let sideBySide = MonotonicClock.now()
        let opening = BackgroundResult(name: "palm-open") { () throws -> (SourceDomain, Double) in
            (try hypervisor.openSource(vm: vm), MonotonicClock.now() - sideBySide)
        }
        let connected = Result { () throws -> (TLSContext, TLSChannel, SigningKey) in
            let context = try HostTLS.context(configuration.tls, tpm: configuration.hostAttestation)
            guard ticket.source == context.localIdentity.fingerprint else {
                throw MigrationError.ticketRejected("the ticket names another source host")
            }
            let channel = try Self.connect(request, context: context, destination: ticket.destination)
            return (context, channel, context.key)
        }
        let connectSeconds = MonotonicClock.now() - sideBySide
        let domain: SourceDomain, openSeconds: Double
        do { (domain, openSeconds) = try opening.wait() } catch {
            if case let .success((_, channel, _)) = connected { channel.close() }
            throw error
        }
        let (context, channel, key) = try connected.get()
        logger.info("\(vm) opened in \(String(format: "%.2f", openSeconds)) s, the destination connected in \(String(format: "%.2f", connectSeconds)) s, side by side")
        /// Every extra page stream must reach the ticket's destination too.
        let connect = { @Sendable () throws -> TLSChannel in try Self.connect(request, context: context, destination: ticket.destination) }
        let handoff = try SourceHandoff(stateDirectory: configuration.stateDirectory, context: context, logger: logger)
        let target = SourceHandoff.Target(id: ticket.migrationID, vm: request.vm, host: request.host, port: request.port,
                                          serverName: request.serverName, destination: ticket.destination)
        let protections = SenderProtections(
            ticket: request.ticket, ticketNonce: ticket.nonce,
            attestation: (request.platform ?? configuration.platform).verifier(
                software: request.attestation ?? configuration.attestation, ticketID: ticket.migrationID,
                clocks: TPMClockLedger(path: configuration.stateDirectory + "/tpm-clocks.json"), logger: logger),
            handoff: SignedHandoff(source: key),
            journal: handoff.journal(for: target, resolveTimeout: configuration.resolveTimeout),
            evidence: EvidenceArchive(directory: configuration.stateDirectory + "/evidence", recordedBy: "source", ticket: { ticket },
                                      sourceCertificate: context.localIdentity.pem, destinationCertificate: channel.peer.pem,
                                      logger: logger))
        var options = MigrationSender.Options()
        options.mode = request.mode
        options.policy = configuration.policy
        if let t = request.downtimeTarget { options.policy.downtimeTarget = t }
        options.batchPages = configuration.batchPages
        options.streams = request.streams ?? configuration.streams
        options.compression = request.compression ?? configuration.compression
        options.pageThreadNice = configuration.pageThreadNice
        options.hypervisorName = hypervisor.name
        options.handoffHistory = handoffHistory
        options.faults = try FaultInjection.fromEnvironment()
        options.maxAttestationBytes = configuration.maxEvidence
        if let point = options.faults.stopAt { logger.warning("fault injection armed: this migration stops at \(point.rawValue) (\(FaultInjection.variable))") }
        var log = logger
        log[metadataKey: "VM"] = "\(request.vm)"
        log[metadataKey: "PEER"] = "\(channel.peer.commonName ?? request.host)"
        log[metadataKey: "MIGRATION_ID"] = "\(ticket.id)"
        let sessionStart = MonotonicClock.now()
        let sender = MigrationSender(channel: channel, domain: domain, options: options, protections: protections,
                                     logger: log, cancel: request.cancel, connectStream: { _ in try connect() }, progress: progress)
        var report = try sender.run()
        report.preparationSeconds = sessionStart - preparing
        return report
    }

    /// A connection to the request's destination whose peer is the ticket's destination, checked
    /// before anything is sent on it (the session channel and each extra page stream).
    private static func connect(_ request: Request, context: TLSContext, destination: Digest32) throws -> TLSChannel {
        let ch = try TLSChannel.connect(host: request.host, port: request.port, serverName: request.serverName, context: context)
        guard ch.peer.fingerprint == destination else {
            ch.close()
            throw MigrationError.ticketRejected("the peer at \(request.host) (\(ch.peer)) is not the ticket's destination")
        }
        return ch
    }
}
