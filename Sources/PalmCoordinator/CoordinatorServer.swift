import Foundation
import Logging
import PalmControl
import PalmMetrics
import PalmServer
import PalmCrypto
import PalmTLS
import PalmWire
import PalmSupport
import PalmSecurity

/// palm-coordinator serve: accepts PalmTLS connections (operators and agents, all with cluster
/// certificates) and answers API requests through ``CoordinatorService``. Connections pass the
/// ``AdmissionGate`` (bounded handshakes, per address too, under a pre-authentication deadline),
/// then wait in the ``ConnectionPool``'s idle set; a bounded pool of workers reads each request
/// under one deadline, with a size cap by the caller's role, and answers it. A scheduling thread
/// runs a cycle every `schedulerInterval` seconds and at once when a request made one worth
/// running (a migration requested, an outcome reported).
public final class CoordinatorServer: @unchecked Sendable {
    public let listener: TLSListener
    let service: CoordinatorService
    let schedulerInterval: Double
    let logger: Logger
    private let wake = NSCondition()
    private var pending = false
    private var stopped = false
    private var tlsContext: TLSContext
    private let schedulerDone = DispatchSemaphore(value: 0)
    private let leaseDone = DispatchSemaphore(value: 0)
    /// Called when this coordinator becomes leader or follower (and at the first renewal).
    public var onLeadership: @Sendable (LeaderLease.State) -> Void = { _ in }
    let limits: ServerLimits
    private var pool: ConnectionPool!

    /// Loops wake (and call ``onBeat`` with their name, "accept" or "scheduler") at least this often.
    public var beatInterval = 5.0
    public var onBeat: @Sendable (String) -> Void = { _ in }
    /// Called after every scheduling cycle with ``CoordinatorService/statusLine()``.
    public var onStatus: @Sendable (String) -> Void = { _ in }

    /// The TLS identity and trust for new connections (a reload replaces it).
    public var context: TLSContext {
        get { wake.lock(); defer { wake.unlock() }; return tlsContext }
        set { wake.lock(); tlsContext = newValue; wake.unlock() }
    }

    public init(host: String, port: UInt16, context: TLSContext, service: CoordinatorService, schedulerInterval: Double = 10,
                limits: ServerLimits = ServerLimits(), logger: Logger = Logger(label: "palm-coordinator")) throws {
        listener = try TLSListener(host: host, port: port, context: context, backlog: 512)
        tlsContext = context
        self.service = service
        self.schedulerInterval = schedulerInterval
        self.limits = limits
        self.logger = logger
        pool = ConnectionPool(limits: limits, logger: logger) { [unowned self] channel in serveRequest(channel) }
        service.onWork = { [weak self] in self?.poke() }
    }

    /// Connections open now (idle, queued or being served).
    public var connections: Int { pool.count }

    /// Serves until ``close()``: the scheduling thread, the connection pool and the admission
    /// gate. Returns once the gate and the scheduler have stopped; requests are transactions, so
    /// nothing is left half-done.
    public func run() {
        Thread { [self] in scheduleLoop(); schedulerDone.signal() }.start()
        defer { schedulerDone.wait() }
        if let lease = service.lease {
            Thread { [self] in leaseLoop(lease); leaseDone.signal() }.start()
        }
        defer { if service.lease != nil { leaseDone.wait() } }
        pool.start()
        defer { pool.stop() }
        let tls = TLSAdmission(logger: logger) { [service] reason, n in service.metrics.refused(reason, count: n) }
        let gate = AdmissionGate(listener: listener, limits: limits.admission) { [self] admission in
            defer { admission.release() }
            guard let channel = tls.handshake(admission, context: context) else { return }
            admission.release()
            pool.park(channel)
        }
        gate.beatInterval = beatInterval
        gate.onBeat = { [onBeat] in onBeat("accept") }
        tls.reportDrops(of: gate)
        gate.run()
        gate.reportNow()
    }

    /// One request of one connection, on a pool worker: read under the whole-request deadline
    /// and the caller's size cap, answer, keep the connection (false: close it).
    private func serveRequest(_ channel: TLSChannel) -> Bool {
        let deadline = Date(timeIntervalSinceNow: limits.requestTimeout)
        let cap = channel.peer.role == .agent ? limits.maxAgentRequest : limits.maxRequest
        let request: APIRequest
        do {
            request = try CoordinatorAPI.receive(APIRequest.self, from: channel, limit: cap, deadline: deadline)
        } catch {
            switch error {
            case TLSError.peerClosed, TLSError.connectionLost, WireError.truncated: break  // the client went away
            case TLSError.timeout: pool.dropped("request not complete within \(Int(limits.requestTimeout)) s")
            case WireError.payloadTooLarge: pool.dropped("request over the size cap for the caller's role")
            default: pool.dropped("unreadable request")
            }
            return false
        }
        let response = service.handle(request, from: channel.peer)
        let actor = CoordinatorService.actor(channel.peer)
        let action = CoordinatorService.printable(request.action)
        if response.error?.hasPrefix("access denied") == true {
            service.metrics.refused(.authorization)
            logger.warning("\(actor) \(action): \(response.error ?? "")",
                           metadata: ["event": "\(PalmEvent.accessDenied.rawValue)", "ACTOR": "\(actor)", "ACTION": "\(action)"])
        } else if request.action != CoordinatorAction.agentHeartbeat.rawValue || !response.ok {
            logger.info("\(actor) \(action): \(response.ok ? "ok" : response.error ?? "error")",
                        metadata: ["ACTOR": "\(actor)", "ACTION": "\(action)"])
        }
        channel.setIOTimeout(max(1, limits.requestTimeout))
        return (try? CoordinatorAPI.send(response, on: channel)) != nil
    }

    private func poke() {
        wake.lock()
        pending = true
        wake.broadcast()
        wake.unlock()
    }

    private func scheduleLoop() {
        var next = Date()
        while true {
            onBeat("scheduler")
            wake.lock()
            if !pending && !stopped && next > Date() { _ = wake.wait(until: min(next, Date(timeIntervalSinceNow: beatInterval))) }
            let due = pending || next <= Date()
            pending = false
            let stop = stopped
            wake.unlock()
            if stop { return }
            guard due else { continue }
            next = Date(timeIntervalSinceNow: schedulerInterval)
            do {
                let plan = try service.runCycle()
                for move in plan.moves {
                    logger.notice("scheduled \(move.kind.rawValue) of \(move.vm) \(move.from) → \(move.to): \(move.reason)",
                                  metadata: ["event": "\(PalmEvent.migrationScheduled.rawValue)", "VM": "\(move.vm)",
                                             "SOURCE_HOST": "\(move.from)", "DESTINATION_HOST": "\(move.to)"])
                }
            } catch {
                logger.error("scheduling cycle failed: \(error)")
            }
            onStatus(service.statusLine())
        }
    }

    /// Renews (or tries to take) the lease every third of its duration; a renewal that fails
    /// (database unreachable) leaves this coordinator a follower until one succeeds. Stopping
    /// resigns the lease, so a standby takes over at once after a clean shutdown.
    private func leaseLoop(_ lease: LeaderLease) {
        var last: LeaderLease.State?
        while true {
            let state: LeaderLease.State
            do { state = try lease.renew() } catch {
                logger.error("leader lease: \(error)")
                state = lease.current
            }
            if state != last {
                last = state
                onLeadership(state)
                if case .leader = state { poke() }
            }
            wake.lock()
            if !stopped { _ = wake.wait(until: Date(timeIntervalSinceNow: lease.duration / 3)) }
            let stop = stopped
            wake.unlock()
            if stop { lease.resign(); return }
        }
    }

    public func close() {
        wake.lock()
        stopped = true
        wake.broadcast()
        wake.unlock()
        listener.close()
    }
}

/// How much the coordinator's clients may cost it (`[listen]` keys of coordinator.toml).
public struct ServerLimits: Sendable {
    public var admission = AdmissionGate.Limits()
    /// Workers serving requests at once, and how many of them one certificate may hold.
    public var workers = 8
    public var workersPerIdentity = 2
    /// Authenticated connections kept open (idle ones included); the oldest idle one is closed
    /// when a new one needs room.
    public var maxConnections = 4096
    /// Seconds a connection may sit idle between requests.
    public var idleTimeout = 120.0
    /// Seconds a whole request may take to arrive, once its first byte has.
    public var requestTimeout = 10.0
    /// Request size caps: agents (heartbeats carry their VM lists) and everyone else.
    public var maxAgentRequest = CoordinatorAPI.maxMessage
    public var maxRequest = 64 << 10
    public init() {}
}
