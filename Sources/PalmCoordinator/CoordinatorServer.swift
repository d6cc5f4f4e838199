import Foundation
import Logging
import PalmControl
import PalmTLS
import PalmWire

/// palm-coordinator serve: accepts PalmTLS connections (operators and agents, all with cluster
/// certificates) and answers API requests through ``CoordinatorService``, one thread per
/// connection; a scheduling thread runs a cycle every `schedulerInterval` seconds and at once
/// when a request made one worth running (a migration requested, an outcome reported).
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
                logger: Logger = Logger(label: "palm-coordinator")) throws {
        listener = try TLSListener(host: host, port: port, context: context)
        tlsContext = context
        self.service = service
        self.schedulerInterval = schedulerInterval
        self.logger = logger
        service.onWork = { [weak self] in self?.poke() }
    }

    /// Serves until ``close()``: the scheduling thread and the accept loop. Returns once both have
    /// stopped; requests are transactions, so nothing is left half-done.
    public func run() {
        Thread { [self] in scheduleLoop(); schedulerDone.signal() }.start()
        defer { schedulerDone.wait() }
        while true {
            onBeat("accept")
            let socket: Int32
            do {
                guard let s = try listener.acceptSocket(timeout: beatInterval) else { continue }
                socket = s
            } catch {
                if case TLSError.closed = error { return }
                continue
            }
            Thread { [self] in serve(socket) }.start()
        }
    }

    private func poke() {
        wake.lock()
        pending = true
        wake.signal()
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

    private func serve(_ socket: Int32) {
        let channel: TLSChannel
        do {
            channel = try TLSChannel.accept(socket: socket, context: context)
        } catch {
            logger.warning("refused a connection: \(error)", metadata: ["event": "\(PalmEvent.connectionRefused.rawValue)"])
            return
        }
        defer { channel.close() }
        while true {
            guard let request = try? CoordinatorAPI.receive(APIRequest.self, from: channel) else { return }
            let response = service.handle(request, from: channel.peer)
            let actor = CoordinatorService.actor(channel.peer)
            if response.error?.hasPrefix("access denied") == true {
                logger.warning("\(actor) \(request.action): \(response.error ?? "")",
                               metadata: ["event": "\(PalmEvent.accessDenied.rawValue)", "ACTOR": "\(actor)", "ACTION": "\(request.action)"])
            } else if request.action != CoordinatorAction.agentHeartbeat.rawValue || !response.ok {
                logger.info("\(actor) \(request.action): \(response.ok ? "ok" : response.error ?? "error")",
                            metadata: ["ACTOR": "\(actor)", "ACTION": "\(request.action)"])
            }
            guard (try? CoordinatorAPI.send(response, on: channel)) != nil else { return }
        }
    }

    public func close() {
        wake.lock()
        stopped = true
        wake.signal()
        wake.unlock()
        listener.close()
    }
}
