import Foundation
import Logging
import PalmConfig
import PalmControl
import PalmHypervisor
import PalmMetrics
import PalmMigration
import PalmSupport
import PalmSecurity
import PalmTPM
import PalmCrypto
import PalmTLS
import PalmWire

/// `palm-source serve`: reports this host to the coordinator and runs the migrations it orders.
///
/// Guarantees:
/// - orders come only from the configured coordinator: the server must present exactly the
///   certificate in `coordinator.certificate`, and every ticket must verify with its key, name this
///   host as source and be inside its validity window — otherwise the order is refused and reported;
/// - an order id runs at most once, even across restarts (`STATE/orders/ID` is written first);
/// - how each migration ended is written to `STATE/outbox/ID.json` before it is reported, and
///   repeated in every heartbeat until the coordinator acknowledges it, so a coordinator that was
///   down when a migration ended still learns the outcome;
/// - at start-up, migrations a previous run left behind are settled first (``SourceHandoff``).
public final class SourceDaemon: @unchecked Sendable {
    /// The configuration in force (a reload replaces it for new heartbeats and orders).
    public var configuration: SourceConfiguration {
        lock.lock(); defer { lock.unlock() }; return currentConfiguration
    }
    private var currentConfiguration: SourceConfiguration
    public let link: SourceConfiguration.CoordinatorLink
    let logger: Logger
    /// One for every migration this daemon runs (they may run at once).
    let handoffHistory: HandoffHistory
    let hypervisor: Hypervisor
    let context: TLSContext
    /// Orders run and refused, pages and bytes sent (a no-op unless a metrics backend is bootstrapped).
    let metrics = AgentMetrics(role: .source)
    /// The coordinators this agent takes orders from (pinned) and whose tickets it runs.
    let coordinators: CoordinatorTrust
    let outbox: String
    let orders: String

    /// The heartbeat loop wakes (and calls ``onBeat``) at least this often; coordinator calls time
    /// out within it, so an unreachable coordinator never looks like a hung agent.
    public var beatInterval = 5.0
    public var onBeat: @Sendable () -> Void = {}
    /// Called with a one-line status after every heartbeat and progress report.
    public var onStatus: @Sendable (String) -> Void = { _ in }

    private struct Running {
        var cancel: CancelFlag
        var progress: MigrationProgressReport
        var vm: String
        var destination: String
    }

    private let lock = NSCondition()
    private var running: [String: Running] = [:]
    private var lastContact = "not yet reported to the coordinator"
    /// The highest leader epoch seen in orders (kept across restarts): orders of a lower one come
    /// from a deposed leader.
    let epochFloor: LeaderEpochFloor
    private var measuredDirtyRate: [String: Double] = [:]
    private var allowlist = AttestationAllowlist()
    /// The coordinator's platform trust (policy, enrolled keys), kept between the heartbeats that
    /// carry it (only when it changed), and the version the coordinator says is in force.
    private var platformTrust: PlatformTrust?
    private var platformTrustVersion: String?
    /// This host's TPM, reported to the coordinator (nil: no TPM configured).
    let platform: PlatformReporter?
    /// What the coordinator last asked of this host's TPM.
    private var platformRequest: PlatformRequest?
    private var interval = 5.0
    private var stopped = false

    public enum DaemonError: Error, CustomStringConvertible {
        case notConfigured(String)
        public var description: String {
            switch self { case let .notConfigured(file): return "\(file): [coordinator] address, certificate and advertise are required for serve" }
        }
    }

    public init(configuration: SourceConfiguration, logger: Logger) throws {
        guard let link = configuration.coordinator else { throw DaemonError.notConfigured(configuration.file) }
        currentConfiguration = configuration
        self.link = link
        self.logger = logger
        hypervisor = try configuration.hypervisor.make()
        context = try HostTLS.context(configuration.tls, tpm: configuration.hostAttestation)
        coordinators = try CoordinatorTrust(certificateFiles: link.certificates)
        handoffHistory = HandoffHistory(path: configuration.stateDirectory + "/handoff-history.json")
        outbox = configuration.stateDirectory + "/outbox"
        orders = configuration.stateDirectory + "/orders"
        epochFloor = LeaderEpochFloor(path: configuration.stateDirectory + "/leader-epoch")
        if configuration.hostAttestation.mode == .tpm {
            let device = TPMDevice(tcti: configuration.hostAttestation.tpm, timeout: configuration.hostAttestation.tpmTimeout)
            try device.probe()
            platform = PlatformReporter(settings: configuration.hostAttestation, host: context.localIdentity.commonName ?? "", logger: logger)
        } else {
            platform = nil
        }
        for dir in [outbox, orders] { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) }
    }

    /// Re-reads the configuration: TLS material, CRL, convergence policy and limits apply to the
    /// next heartbeat and order. `[coordinator]`, `[hypervisor]`, `[sim]` and `[state]` need a
    /// restart; a change to them is refused.
    public func reload() throws {
        let current = configuration
        let next = try SourceConfiguration.load(path: current.file)
        guard next.coordinator == current.coordinator, next.hypervisor == current.hypervisor,
              next.stateDirectory == current.stateDirectory else {
            throw ConfigError.invalidValue(file: next.file, key: "coordinator/hypervisor/state",
                                           reason: "changed; these take effect only after a restart")
        }
        _ = try HostTLS.context(next.tls, tpm: next.hostAttestation)  // refuse unusable certificates before switching
        lock.lock()
        currentConfiguration = next
        lock.unlock()
    }

    /// Settles what a previous run left behind (before the daemon says it is ready).
    public func recover() {
        let evidence = EvidenceArchive.prune(directory: configuration.stateDirectory + "/evidence", olderThan: configuration.evidenceRetention * 86_400)
        if evidence > 0 { logger.info("evidence: removed \(evidence) file(s) older than \(Int(configuration.evidenceRetention)) days") }
        let handoff = try? SourceHandoff(stateDirectory: configuration.stateDirectory, context: context, logger: logger)
        let unresolved = handoff?.recoverAll(hypervisor: hypervisor, resolveTimeout: configuration.resolveTimeout) ?? []
        if !unresolved.isEmpty { logger.warning("migrations still in doubt after recovery: \(unresolved.joined(separator: ", "))") }
    }

    /// Heartbeats until ``stop()``; then waits for the migrations in flight (``stop()`` cancelled
    /// those before their commit point) and reports how they ended.
    public func run() {
        var client: CoordinatorFailover?
        var failures = 0
        while !isStopped {
            onBeat()
            if heartbeat(&client) { failures = 0 } else { failures += 1 }
            onStatus(status)
            // Back off while the coordinator is unreachable; report fast while migrating.
            let wait = busy ? min(interval, 0.5) : interval * Double(min(1 << min(failures, 4), 16))
            pause(seconds: min(wait, beatInterval))
        }
        lock.lock()
        while !running.isEmpty { _ = lock.wait(until: Date(timeIntervalSinceNow: beatInterval)); lock.unlock(); onBeat(); lock.lock() }
        lock.unlock()
        _ = heartbeat(&client)  // the outcomes of what just ended, if the coordinator is reachable
    }

    /// One heartbeat; false when the coordinator could not be reached or refused it.
    private func heartbeat(_ client: inout CoordinatorFailover?) -> Bool {
        do {
            let failover = try client ?? connect()
            client = failover
            let sent = try report()
            let response = try failover.call(APIRequest(action: CoordinatorAction.agentHeartbeat.rawValue, report: sent))
            guard response.ok, let orders = response.orders else {
                logger.error("the coordinator refused the heartbeat: \(response.error ?? "no orders")")
                setContact("the coordinator refused the heartbeat: \(response.error ?? "no orders")")
                failover.reset()
                return false
            }
            if let epoch = orders.epoch {
                guard epochFloor.admit(epoch) else {
                    logger.error("refused orders of epoch \(epoch) from \(failover.answering?.description ?? "?"): a leader of epoch \(epochFloor.current) has spoken since (a deposed coordinator), or the epoch could not be recorded")
                    failover.reset()
                    return false
                }
            }
            platform?.delivered(sent.platform)
            setContact("reporting to \(failover.answering?.description ?? link.address)")
            if !isStopped { apply(orders) } else { acknowledge(orders) }
            return true
        } catch {
            logger.warning("cannot report to the coordinator at \(link.address): \(error)")
            setContact("coordinator at \(link.address) unreachable")
            client = nil
            return false
        }
    }

    private func setContact(_ text: String) {
        lock.lock()
        lastContact = text
        lock.unlock()
    }

    /// "migrating vm-7 → host-b: round 3, 1204 pages left, 812 MiB/s", or how the host reports.
    public var status: String {
        lock.lock()
        defer { lock.unlock() }
        guard !running.isEmpty else { return "\(lastContact); idle" }
        return running.values.sorted { $0.vm < $1.vm }.map { r in
            "migrating \(r.vm) → \(r.destination): \(r.progress.phase) round \(r.progress.round), \(r.progress.pagesLeft) pages left, "
                + String(format: "%.0f MiB/s", r.progress.bytesPerSecond / 1_048_576)
        }.joined(separator: "; ")
    }

    /// Stops taking orders and cancels the migrations in flight: those before their commit point
    /// leave their VM running here; one past it completes. ``run()`` returns when they have ended.
    public func stop() {
        lock.lock()
        stopped = true
        for r in running.values { r.cancel.set() }
        lock.broadcast()
        lock.unlock()
    }

    private var isStopped: Bool { lock.lock(); defer { lock.unlock() }; return stopped }
    private var busy: Bool { lock.lock(); defer { lock.unlock() }; return !running.isEmpty }

    /// Waits for the next heartbeat, or less when a migration ends (its outcome goes out at once).
    private func pause(seconds: Double) {
        lock.lock()
        if !stopped { _ = lock.wait(until: Date(timeIntervalSinceNow: seconds)) }
        lock.unlock()
    }

    private func connect() throws -> CoordinatorFailover {
        let targets = link.endpoints.compactMap { Endpoint($0) }
        guard targets.count == link.endpoints.count else { throw DaemonError.notConfigured(configuration.file) }
        var tls = configuration.tls
        tls.connectTimeout = min(tls.connectTimeout, beatInterval)
        tls.handshakeTimeout = min(tls.handshakeTimeout, beatInterval)
        tls.ioTimeout = min(tls.ioTimeout, beatInterval)
        return CoordinatorFailover(targets: targets, context: try HostTLS.context(tls, tpm: configuration.hostAttestation),
                                   pinned: Set(coordinators.fingerprints))
    }

    /// This host as the coordinator should see it.
    func report() throws -> HostReport {
        let vms = try hypervisor.listVMs()
        let used = vms.reduce(UInt64(0)) { $0 + $1.memoryBytes }
        let free = try hypervisor.freeMemoryBytes()
        lock.lock()
        let measured = measuredDirtyRate
        let active = running.values.map(\.progress)
        lock.unlock()
        let reports = vms.filter { $0.state == .running || $0.state == .paused }.map { vm in
            VMReport(name: vm.name, memoryBytes: vm.memoryBytes,
                     dirtyRate: measured[vm.name] ?? hypervisor.dirtyRateEstimate(vm: vm.name) ?? 0, paused: vm.state == .paused)
        }
        lock.lock()
        let asked = platformRequest
        let holding = platformTrust?.version
        lock.unlock()
        var report = HostReport(destinationAddress: link.advertise, cpus: ProcessInfo.processInfo.activeProcessorCount,
                                cpuLoad: hypervisor.hostCPULoad(),
                                memoryTotal: used + free, memoryUsed: used, vms: reports, active: active, outcomes: pendingOutcomes())
        report.platform = platform?.answer(asked)
        report.platformTrustVersion = holding
        return report
    }

    private func apply(_ orders: AgentOrders) {
        lock.lock()
        allowlist = orders.allowlist
        if let trust = orders.allowlist.platform { platformTrust = trust }
        platformTrustVersion = orders.platformTrustVersion
        platformRequest = orders.platform
        interval = orders.heartbeatInterval
        for id in orders.cancel { running[id]?.cancel.set() }
        lock.unlock()
        acknowledge(orders)
        for order in orders.start { start(order) }
    }

    private func acknowledge(_ orders: AgentOrders) {
        for id in orders.acknowledged { try? FileManager.default.removeItem(atPath: "\(outbox)/\(id).json") }
    }

    private func start(_ order: MigrationOrder) {
        guard order.id.count == 32, order.id.allSatisfy(\.isHexDigit) else {
            logger.error("refused an order with a malformed id")
            return
        }
        // At most once: the marker exists before anything runs.
        let marker = "\(orders)/\(order.id)"
        let fd = open(marker, O_CREAT | O_EXCL | O_WRONLY, 0o600)
        guard fd >= 0 else {
            logger.warning("order \(order.id) was received before; not run again")
            return
        }
        close(fd)
        let request: SourceAgent.Request
        do {
            request = try validate(order)
        } catch {
            logger.error("refused order \(order.id) for \(order.vm): \(error)")
            if let refusal = AgentMetrics.Refusal(error) { metrics.refused(refusal) }
            finish(MigrationOutcome(id: order.id, result: .aborted, detail: "order refused: \(error)"))
            return
        }
        let cancel = request.cancel
        lock.lock()
        running[order.id] = Running(cancel: cancel, progress: MigrationProgressReport(id: order.id, phase: "handshake", round: 0, pagesLeft: 0, bytesPerSecond: 0),
                                    vm: order.vm, destination: order.destinationHost)
        lock.unlock()
        logger.info("coordinator ordered migration \(order.id) of \(order.vm) to \(order.destinationHost) at \(order.destinationAddress)")
        metrics.started()
        Thread { [self] in execute(order, request) }.start()
    }

    /// Checks an order before acting on it: a ticket signed by a configured coordinator, for this
    /// VM, this host and this migration, currently valid, of an epoch no lower than any seen.
    private func validate(_ order: MigrationOrder) throws -> SourceAgent.Request {
        guard let bytes = Hex.decode(order.ticket) else { throw MigrationError.ticketRejected("the ticket is not hex") }
        let ticket = try MigrationTicket.decode(bytes)
        _ = try TicketValidator(coordinators: coordinators, clockSkew: 60)
            .validate(bytes, destination: ticket.destination, peer: context.localIdentity.fingerprint, now: UInt64(Date().timeIntervalSince1970))
        guard epochFloor.admit(Int64(clamping: ticket.epoch)) else {
            throw MigrationError.ticketRejected(TicketError.staleEpoch(ticket: ticket.epoch, highest: UInt64(clamping: epochFloor.current)).description)
        }
        guard ticket.id == order.id, ticket.vm == order.vm else {
            throw MigrationError.ticketRejected("the ticket is for another migration or VM")
        }
        guard let destination = Endpoint(order.destinationAddress, defaultPort: configuration.destinationPort) else {
            throw MigrationError.ticketRejected("bad destination address '\(order.destinationAddress)'")
        }
        guard let mode = MigrationMode(name: order.mode) else {
            throw MigrationError.unsupportedConfig("the order's mode '\(order.mode)' is not pre-copy or stop-and-copy")
        }
        lock.lock()
        let list = allowlist
        // The copy in force, or — stale, or never received — nothing accepted (deny by default).
        let trust = platformTrust.flatMap { t in platformTrustVersion == nil || t.version == platformTrustVersion ? t : nil }
        lock.unlock()
        var request = SourceAgent.Request(vm: order.vm, host: destination.host, port: destination.port, serverName: order.destinationHost,
                                          mode: mode,
                                          downtimeTarget: order.downtimeMs.map { $0 / 1000 }, ticket: bytes)
        request.attestation = AttestationPolicy(allowedAgents: Set(list.agents), allowedConfigs: Set(list.configs),
                                                allowedHypervisors: Set(list.hypervisors),
                                                maxClockSkew: configuration.attestation.maxClockSkew)
        request.platform = trust ?? PlatformTrust()
        return request
    }

    private func execute(_ order: MigrationOrder, _ request: SourceAgent.Request) {
        let outcome: MigrationOutcome
        do {
            let report = try SourceAgent(configuration: configuration, logger: logger, handoffHistory: handoffHistory).migrate(request) { [self] p in
                lock.lock()
                running[order.id]?.progress = MigrationProgressReport(id: order.id, phase: p.phase.rawValue, round: p.round,
                                                                      pagesLeft: p.pagesLeftInRound, bytesPerSecond: p.bytesPerSecond)
                lock.unlock()
                onStatus(status)
            }
            metrics.committed(.init(downtimeSeconds: report.downtimeSeconds, totalSeconds: report.totalSeconds, rounds: report.rounds.count))
            let pages = report.pagesSent, zero = report.rounds.reduce(UInt64(0)) { $0 + $1.zeroPages }
            metrics.sent(dataPages: pages - min(zero, pages), zeroPages: zero, bytes: report.bytesOnWire, compressedBatches: report.compressedBatches)
            let precopy = report.rounds.filter { !$0.final }
            lock.lock()
            if let rate = precopy.dropFirst().map(\.dirtyRate).max() ?? precopy.first?.dirtyRate { measuredDirtyRate[order.vm] = rate }
            lock.unlock()
            outcome = MigrationOutcome(id: order.id, result: .committed,
                                       detail: String(format: "committed in %d rounds, downtime %.1f ms", report.rounds.count, report.downtimeSeconds * 1000),
                                       downtimeMs: report.downtimeSeconds * 1000, totalSeconds: report.totalSeconds, rounds: report.rounds.count)
            logger.info("migration \(order.id) of \(order.vm) committed")
        } catch MigrationError.cancelled {
            metrics.aborted(reason: MigrationError.cancelled.caseName)
            outcome = MigrationOutcome(id: order.id, result: .cancelled,
                                       detail: "\(isStopped ? "cancelled: palm-source was stopping" : "cancelled by the coordinator"); \(order.vm) runs on the source")
        } catch let MigrationError.commitInDoubt(why) {
            metrics.inDoubt()
            outcome = MigrationOutcome(id: order.id, result: .inDoubt, detail: "commit in doubt: \(why)")
        } catch {
            logger.error("migration \(order.id) of \(order.vm) failed: \(error)")
            let failure = MigrationError.wrap(error)
            if let refusal = AgentMetrics.Refusal(failure) { metrics.refused(refusal) }
            metrics.aborted(reason: failure.caseName)
            outcome = MigrationOutcome(id: order.id, result: .aborted, detail: "\(error)")
        }
        finish(outcome)
    }

    /// Writes the outcome durably, then forgets the running migration and wakes the heartbeat.
    private func finish(_ outcome: MigrationOutcome) {
        let path = "\(outbox)/\(outcome.id).json"
        do {
            try DurableFile.write(Array(try JSONEncoder().encode(outcome)), to: path)
        } catch {
            logger.error("cannot record the outcome of \(outcome.id): \(error)")
        }
        lock.lock()
        running[outcome.id] = nil
        lock.broadcast()
        lock.unlock()
    }

    private func pendingOutcomes() -> [MigrationOutcome] {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: outbox)) ?? []
        return files.filter { $0.hasSuffix(".json") }.sorted().compactMap { name in
            FileManager.default.contents(atPath: "\(outbox)/\(name)").flatMap { try? JSONDecoder().decode(MigrationOutcome.self, from: $0) }
        }
    }
}
