import PalmSupport
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Logging
import PalmConfig
import PalmEngineTLS
import PalmHypervisor
import PalmMetrics
import PalmMigration
import PalmProtection
import PalmSecurity
import PalmTPM
import PalmServer
import PalmCrypto
import PalmTLS
import PalmWire

/// palm-dest's service. Connections pass the ``AdmissionGate`` (a peer that has not authenticated
/// costs a descriptor, then at most one of a bounded set of handshake threads, per address too,
/// until the pre-authentication deadline), must present a certificate with the agent role, and
/// must send their first message before that deadline. Then, by that message: HELLO starts a
/// migration (a ``MigrationReceiver``; it takes one of `maxConcurrent` reception slots once its
/// ticket has verified — a further one is refused as busy, never queued), JOIN attaches an extra
/// page stream to a migration in progress (``IncomingSessions``; no slot), RESOLVE answers how a
/// migration this peer was the source of ended. Every refusal is logged with its reason.
///
/// Shutdown (``close()``) stops accepting and lets receptions in flight finish for up to
/// ``stopGrace`` seconds; one cut short before its commit is discarded at the next start (the
/// source resumes its VM), one cut short after it is resumed at the next start (the ledger).
public final class DestinationServer: @unchecked Sendable {
    /// The configuration now in force (a reload replaces it with the credentials, together).
    public var configuration: DestinationConfiguration { live.current.configuration }
    public let hypervisor: Hypervisor
    let listener: TLSListener
    let replayCache: ReplayCache
    /// The highest leader epoch of a ticket accepted here (`STATE/ticket-epoch`).
    let epochFloor: LeaderEpochFloor
    /// Receptions, refusals (a no-op unless the process bootstrapped a metrics backend).
    let metrics = AgentMetrics(role: .destination)
    /// The handshake of each admitted connection; every refusal logged and counted.
    private let tlsAdmission: TLSAdmission
    let ledger: DestinationLedger
    let logger: Logger
    /// Reception slots: one per migration whose ticket verified.
    public let slots: ReceptionSlots
    /// Migrations being received; extra page streams find theirs here.
    public let sessions: IncomingSessions
    private let group = DispatchGroup()
    /// Where a fault-injection test stops this agent (`PALM_TEST_STOP_AT`, read once at start).
    let faults: FaultInjection
    /// What a reload replaces, read and replaced together.
    private let live: LockedValueBox<(configuration: DestinationConfiguration, credentials: Credentials)>
    /// Connections being handled: the last session number given out, and what each is receiving.
    private let receptions = LockedValueBox((last: 0, receiving: [Int: String]()))

    /// The accept loop wakes (and calls ``onBeat``) at least this often.
    public var beatInterval = 5.0
    /// Called every time round the accept loop: the watchdog's proof of life.
    public var onBeat: @Sendable () -> Void = {}
    /// Called with a one-line status whenever receptions start or end.
    public var onStatus: @Sendable (String) -> Void = { _ in }
    /// Seconds a shutdown waits for receptions in flight.
    public var stopGrace = 60.0

    /// What a reload replaces: the TLS identity and trust, the ticket key, the measurement.
    struct Credentials {
        var context: TLSContext
        var signingKey: SigningKey
        var validator: TicketValidator
        var measurement: Measurement
        /// `attestation.mode = "tpm"`: this host's TPM (checked to answer at start and reload).
        var tpm: TPMDevice?
        var attestation: PlatformAttestationSettings
        /// With the TLS key in the TPM (`tls.key = "tpm"`) and TPM attestation: the attestation
        /// key's certification of it, made once here, sent with every quote.
        var tlsKeyCertification: PlatformEvidence.KeyCertification?

        init(_ c: DestinationConfiguration, hypervisor: Hypervisor) throws {
            context = try HostTLS.context(c.tls, tpm: c.attestation)
            signingKey = context.key
            validator = TicketValidator(coordinators: try CoordinatorTrust(certificateFiles: c.coordinatorCertificates), clockSkew: c.clockSkew)
            measurement = try Measurement.measure(configPath: c.file, hypervisor: hypervisor)
            attestation = c.attestation
            if c.attestation.mode == .tpm {
                let device = TPMDevice(tcti: c.attestation.tpm, timeout: c.attestation.tpmTimeout)
                try device.probe()
                tpm = device
                if c.tls.keyIsInTPM { tlsKeyCertification = try HostTLS.tpmKey(c.attestation).certification() }
            }
        }

        /// What attests one connection: the TPM's quote for the ticket `admission` admits, or
        /// the software report alone.
        func attestor(for admission: TicketAdmission) -> any AttestationProvider {
            guard let tpm else { return SoftwareAttestor(measurement: measurement, key: signingKey) }
            return TPMAttestor(measurement: measurement, key: signingKey, device: tpm, settings: attestation, admission: admission,
                               tlsKey: tlsKeyCertification)
        }
    }

    /// One line for the start-up log: how this host attests.
    static func describeAttestation(_ c: Credentials, logger: Logger) {
        if let tpm = c.tpm {
            let name = (try? tpm.attestationKey()).flatMap { try? TPMPublicArea(decoding: $0) }.map { Hex.encode($0.name) } ?? "?"
            logger.notice("attesting with the TPM at \(tpm.tcti): attestation key \(name), PCRs \(c.attestation.pcrs.map(String.init).joined(separator: ","))")
            if c.tlsKeyCertification != nil {
                logger.notice("the TLS key is in the TPM (tls.key = tpm), certified by the attestation key with every quote")
            } else {
                logger.warning("the TLS key is a file (\(c.signingKey.location)): sources that require attestation.tls_key = tpm refuse this host; a copy of the file works anywhere")
            }
        } else {
            logger.warning("attesting in software only (attestation.mode = software): anything with root on this host can produce the same report; sources that require tpm refuse this host")
        }
    }

    public var port: UInt16 { listener.port }

    public init(configuration: DestinationConfiguration, logger: Logger) throws {
        self.logger = logger
        sessions = IncomingSessions(pageThreadNice: configuration.pageThreadNice)
        tlsAdmission = TLSAdmission(logger: logger) { [metrics] reason, n in metrics.refused(reason, count: n) }
        hypervisor = try configuration.hypervisor.make()
        ledger = try DestinationLedger(directory: configuration.stateDirectory + "/migrations")
        DestinationServer.recover(hypervisor: hypervisor, ledger: ledger, logger: logger)
        try DestinationServer.keepLifecycle(hypervisor: hypervisor, metrics: metrics, logger: logger)
        DestinationServer.prune(ledger, configuration: configuration, logger: logger)
        let credentials = try Credentials(configuration, hypervisor: hypervisor)
        Self.describeAttestation(credentials, logger: logger)
        faults = try FaultInjection.fromEnvironment()
        if let point = faults.stopAt { logger.warning("fault injection armed: receptions stop at \(point.rawValue) (\(FaultInjection.variable))") }
        live = LockedValueBox((configuration, credentials))
        replayCache = try ReplayCache(path: configuration.stateDirectory + "/replay-cache",
                                      now: UInt64(Date().timeIntervalSince1970))
        epochFloor = LeaderEpochFloor(path: configuration.stateDirectory + "/ticket-epoch")
        listener = try TLSListener(host: configuration.listenAddress, port: configuration.listenPort, context: credentials.context)
        slots = ReceptionSlots(capacity: configuration.maxConcurrent)
    }

    /// Re-reads the configuration file: certificates, CRL, the coordinator's certificate and the
    /// measurement take effect for the next connection. The listen address, hypervisor and state
    /// directory need a restart; a change to them is refused.
    public func reload() throws {
        let configuration = self.configuration
        let next = try DestinationConfiguration.load(path: configuration.file)
        guard next.listenAddress == configuration.listenAddress, next.listenPort == configuration.listenPort,
              next.hypervisor == configuration.hypervisor, next.stateDirectory == configuration.stateDirectory else {
            throw ConfigError.invalidValue(file: next.file, key: "listen/hypervisor/state",
                                           reason: "changed; these take effect only after a restart")
        }
        let fresh = try Credentials(next, hypervisor: hypervisor)
        live.withLockedValue { $0 = (next, fresh) }
    }

    private var current: Credentials { live.current.credentials }

    /// The status line: what is being received now.
    public var status: String {
        let address = "\(configuration.listenAddress):\(port)"
        let receiving = receptions.current.receiving
        guard !receiving.isEmpty else { return "listening on \(address), idle" }
        return "listening on \(address); receiving \(receiving.count): " + receiving.values.sorted().joined(separator: ", ")
    }

    private func track(_ session: Int, _ what: String?) {
        receptions.withLockedValue { $0.receiving[session] = what }
        onStatus(status)
    }

    /// Accepts connections until `close()`, then waits up to ``stopGrace`` for receptions in flight.
    public func run() {
        logger.info("palm-dest listening on \(configuration.listenAddress):\(port) as \(current.context.localIdentity)")
        let gate = AdmissionGate(listener: listener, limits: configuration.admission) { [self] admission in
            group.enter()
            let session = receptions.withLockedValue { r in
                r.last += 1
                return r.last
            }
            defer { track(session, nil); group.leave() }
            handle(admission, session: session)
        }
        gate.beatInterval = beatInterval
        let beat = onBeat
        let lastPrune = LockedValueBox(Date())
        gate.onBeat = { [self] in
            beat()
            let due = lastPrune.withLockedValue { last -> Bool in
                guard Date().timeIntervalSince(last) > 3600 else { return false }
                last = Date()
                return true
            }
            if due { DestinationServer.prune(ledger, configuration: configuration, logger: logger) }
        }
        tlsAdmission.reportDrops(of: gate)
        gate.run()
        gate.reportNow()
        if group.wait(timeout: .now() + stopGrace) == .timedOut {
            logger.warning("stopping with receptions still in flight; the next start settles them")
        }
    }

    /// Handshake, role and first message within the pre-authentication deadline, then the service.
    private func handle(_ admission: AdmissionGate.Admission, session: Int) {
        defer { admission.release() }
        let credentials = current
        let context = credentials.context
        guard let channel = tlsAdmission.handshake(admission, context: context) else { return }
        defer { channel.close() }
        let peer = channel.peer.commonName ?? channel.peer.subject
        var log = logger
        log[metadataKey: "PEER"] = "\(peer)"
        guard channel.peer.role == .agent else {
            metrics.refused(.authorization)
            log.warning("refused \(peer) from \(admission.address): its certificate's role is \(channel.peer.role?.rawValue ?? "none"), not agent",
                        metadata: ["event": "\(PalmEvent.connectionRefused.rawValue)"])
            channel.setIOTimeout(1)
            try? channel.send(.error(AbortNotice(reason: .protocolViolation, message: "only agents may connect to palm-dest")))
            return
        }
        let first: Message
        do {
            channel.setIOTimeout(admission.remaining)
            first = try FrameReader(stream: channel, limits: WireLimits(maxPayload: 16 << 10)).readMessage()
            channel.setIOTimeout(context.configuration.ioTimeout)
        } catch {
            log.warning("refused a connection from \(peer): no valid first message before the deadline (\(error))",
                        metadata: ["event": "\(PalmEvent.connectionRefused.rawValue)"])
            channel.setIOTimeout(1)
            try? channel.send(.error(AbortNotice(reason: .protocolViolation, message: "\(error)")))
            return
        }
        admission.release()
        switch first {
        case let .join(join):
            do {
                try sessions.serveStream(join, channel: channel, logger: log)
            } catch {
                log.warning("page stream \(join.stream) from \(peer) ended: \(error)",
                            metadata: ["event": "\(PalmEvent.connectionRefused.rawValue)"])
                if case MigrationError.streamRefused = error {
                    try? channel.send(.error(AbortNotice(reason: .protocolViolation, message: "\(error)")))
                }
            }
        case .hello:
            track(session, "from \(peer)")
            receive(first, channel: channel, credentials: credentials, log: log)
        default:
            receive(first, channel: channel, credentials: credentials, log: log)
        }
    }

    private func receive(_ first: Message, channel: TLSChannel, credentials: Credentials, log: Logger) {
        let security = DestinationSecurity(credentials: credentials, replayCache: replayCache, epochFloor: epochFloor, ledger: ledger,
                                           peer: channel.peer, evidenceDirectory: self.configuration.stateDirectory + "/evidence",
                                           metrics: metrics, logger: log)
        var limits = MigrationReceiver.Limits()
        limits.maxStreams = configuration.maxStreams
        limits.streamTimeout = configuration.streamTimeout
        limits.slots = slots
        let receiver = MigrationReceiver(channel: channel, hypervisor: hypervisor, protections: security.protections, logger: log,
                                         limits: limits, sessions: sessions, faults: faults)
        do {
            guard let outcome = try receiver.run(first: first) else { return }  // a RESOLVE exchange
            metrics.committed()
            log.notice("received \(outcome.vm): \(outcome.rounds) rounds, \(outcome.pagesReceived) pages on \(outcome.streams) stream(s), image sha256:\(outcome.imageDigest.hex)",
                       metadata: ["VM": "\(outcome.vm)"])
        } catch {
            log.warning("incoming migration failed: \(error)")
            let failure = MigrationError.wrap(error)
            if let refusal = AgentMetrics.Refusal(failure) { metrics.refused(refusal) }
            if security.admission.admitted != nil { metrics.aborted(reason: failure.caseName) }
        }
    }

    public func close() { listener.close() }

    /// Forgets finished migrations older than the retention (`state.ledger_retention_days`).
    static func prune(_ ledger: DestinationLedger, configuration: DestinationConfiguration, logger: Logger) {
        let removed = ledger.prune(olderThan: configuration.ledgerRetention * 86_400)
        if removed > 0 { logger.info("ledger: forgot \(removed) migration(s) finished more than \(Int(configuration.ledgerRetention)) days ago") }
        let evidence = EvidenceArchive.prune(directory: configuration.stateDirectory + "/evidence", olderThan: configuration.evidenceRetention * 86_400)
        if evidence > 0 { logger.info("evidence: removed \(evidence) file(s) older than \(Int(configuration.evidenceRetention)) days") }
    }

    /// Keeps the life of the VMs migrated here (restart on reboot, …, as their configuration says),
    /// re-attaching to those kept before this start; every decision is logged and counted.
    static func keepLifecycle(hypervisor: Hypervisor, metrics: AgentMetrics, logger: Logger) throws {
        let kept = try hypervisor.keepLifecycle { event in
            let level: Logger.Level
            switch event.outcome {
            case .restarted, .destroyed: level = .notice
            case .left: level = .warning
            case .released: level = .info
            case .failed: level = .critical
            }
            metrics.lifecycle(outcome: event.outcome.rawValue)
            logger.log(level: level, "\(event.detail)",
                       metadata: ["event": "\(PalmEvent.vmLifecycle.rawValue)", "VM": "\(event.vm)", "OUTCOME": "\(event.outcome.rawValue)"])
        }
        if !kept.isEmpty {
            logger.notice("keeping the life of \(kept.count) VM(s) migrated here before this start: \(kept.joined(separator: ", "))")
        }
    }

    /// Start-up recovery after a crash: an incoming VM whose migration — the newest ledger record
    /// naming it, not an older migration that brought the same VM here before — is recorded as
    /// committed is resumed (the source has or will destroy its copy); any other is discarded and
    /// its migration recorded as aborted (the source resumes its copy).
    static func recover(hypervisor: Hypervisor, ledger: DestinationLedger, logger: Logger) {
        let records = ledger.journal.all()
        for vm in hypervisor.incomingVMs() {
            let current = ledger.latest(vm: vm, in: records)
            if let current, current.record["state"] == "committed" {
                do {
                    try hypervisor.completeIncoming(vm: vm)
                    logger.notice("recovery: resumed \(vm), migration \(current.id) was committed before the restart")
                } catch {
                    logger.critical("recovery: cannot resume committed \(vm): \(error)")
                }
            } else {
                if let current { _ = try? ledger.resolve(id: current.id) }
                do {
                    try hypervisor.discardIncoming(vm: vm)
                    logger.warning("recovery: discarded the partial image of \(vm) left by interrupted migration \(current?.id ?? "(unrecorded)")")
                } catch {
                    logger.critical("recovery: cannot discard the partial image of \(vm) left by interrupted migration \(current?.id ?? "(unrecorded)"): \(error)")
                }
            }
        }
        for e in ledger.journal.all() where e.record["state"] == "incoming" { _ = try? ledger.resolve(id: e.id) }
    }
}
