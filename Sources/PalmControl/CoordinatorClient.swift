import PalmCrypto
import PalmTLS
import PalmWire
import PalmSecurity

/// An operator's or agent's connection to the coordinator.
public final class CoordinatorClient {
    let channel: TLSChannel

    /// Connects and checks that the server is the coordinator: its certificate carries the
    /// coordinator role and, when `pinned` is given (agents pin the configured coordinators'
    /// certificates), has one of those fingerprints.
    public init(host: String, port: UInt16, context: TLSContext, serverName: String? = nil, pinned: Set<Digest32>? = nil) throws {
        channel = try TLSChannel.connect(host: host, port: port, serverName: serverName, context: context)
        guard channel.peer.role == .coordinator else {
            channel.close()
            throw TLSError.certificateRejected(code: 0, reason: "the server's certificate does not carry the coordinator role")
        }
        if let pinned, !pinned.contains(channel.peer.fingerprint) {
            channel.close()
            throw TLSError.certificateRejected(code: 0, reason: "the server (\(channel.peer)) is not a configured coordinator")
        }
    }

    public func call(_ request: APIRequest) throws -> APIResponse {
        try CoordinatorAPI.send(request, on: channel)
        return try CoordinatorAPI.receive(APIResponse.self, from: channel)
    }

    deinit { channel.close() }
}
