import Foundation
import PalmTLS

/// palm-coordinator serve: accepts PalmTLS connections (operators and agents, all with cluster
/// certificates) and answers API requests through ``CoordinatorService``, one thread per connection.
public final class CoordinatorServer: @unchecked Sendable {
    public let listener: TLSListener
    let service: CoordinatorService
    let onEvent: (String) -> Void

    public init(host: String, port: UInt16, context: TLSContext, service: CoordinatorService,
                onEvent: @escaping (String) -> Void = { _ in }) throws {
        listener = try TLSListener(host: host, port: port, context: context)
        self.service = service
        self.onEvent = onEvent
    }

    public func run() {
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
            onEvent("\(CoordinatorService.actor(channel.peer)) \(request.action): \(response.ok ? "ok" : response.error ?? "error")")
            guard (try? CoordinatorAPI.send(response, on: channel)) != nil else { return }
        }
    }

    public func close() { listener.close() }
}

/// An operator's or agent's connection to the coordinator.
public final class CoordinatorClient {
    let channel: TLSChannel

    public init(host: String, port: UInt16, context: TLSContext, serverName: String? = nil) throws {
        channel = try TLSChannel.connect(host: host, port: port, serverName: serverName, context: context)
        guard channel.peer.role == .coordinator else {
            channel.close()
            throw TLSError.certificateRejected(code: 0, reason: "the server's certificate does not carry the coordinator role")
        }
    }

    public func call(_ request: APIRequest) throws -> APIResponse {
        try CoordinatorAPI.send(request, on: channel)
        return try CoordinatorAPI.receive(APIResponse.self, from: channel)
    }

    deinit { channel.close() }
}
