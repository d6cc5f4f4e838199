import Foundation
import PalmControl
import PalmTLS

/// palm-coordinator serve: accepts PalmTLS connections (operators and agents, all with cluster
/// certificates) and answers API requests through ``CoordinatorService``, one thread per
/// connection; a scheduling thread runs a cycle every `schedulerInterval` seconds and at once
/// when a request made one worth running (a migration requested, an outcome reported).
public final class CoordinatorServer: @unchecked Sendable {
    public let listener: TLSListener
    let service: CoordinatorService
    let schedulerInterval: Double
    let onEvent: @Sendable (String) -> Void
    private let wake = NSCondition()
    private var pending = false
    private var stopped = false

    public init(host: String, port: UInt16, context: TLSContext, service: CoordinatorService, schedulerInterval: Double = 10,
                onEvent: @escaping @Sendable (String) -> Void = { _ in }) throws {
        listener = try TLSListener(host: host, port: port, context: context)
        self.service = service
        self.schedulerInterval = schedulerInterval
        self.onEvent = onEvent
        service.onWork = { [weak self] in self?.poke() }
    }

    /// Serves until ``close()``: the scheduling thread and the accept loop.
    public func run() {
        Thread { [self] in scheduleLoop() }.start()
        while true {
            let socket: Int32
            do {
                guard let s = try listener.acceptSocket() else { continue }
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
        while true {
            wake.lock()
            if !pending && !stopped { _ = wake.wait(until: Date(timeIntervalSinceNow: schedulerInterval)) }
            pending = false
            let stop = stopped
            wake.unlock()
            if stop { return }
            do {
                let plan = try service.runCycle()
                for move in plan.moves { onEvent("scheduled \(move.kind.rawValue) of \(move.vm) \(move.from) → \(move.to): \(move.reason)") }
            } catch {
                onEvent("scheduling cycle failed: \(error)")
            }
        }
    }

    private func serve(_ socket: Int32) {
        let channel: TLSChannel
        do {
            channel = try TLSChannel.accept(socket: socket, context: listener.context)
        } catch {
            onEvent("refused a connection: \(error)")
            return
        }
        defer { channel.close() }
        while true {
            guard let request = try? CoordinatorAPI.receive(APIRequest.self, from: channel) else { return }
            let response = service.handle(request, from: channel.peer)
            if request.action != CoordinatorAction.agentHeartbeat.rawValue || !response.ok {
                onEvent("\(CoordinatorService.actor(channel.peer)) \(request.action): \(response.ok ? "ok" : response.error ?? "error")")
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
