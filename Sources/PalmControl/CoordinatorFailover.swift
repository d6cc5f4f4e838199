import PalmConfig
import PalmTLS
import PalmWire

/// A client of a cluster with two or more coordinators (one leader, the others followers): the
/// configured endpoints are tried in order, starting with the one that answered last.
///
/// Guarantees: one ``call(_:)`` makes at most two passes over the endpoints (each connection
/// bounded by the TLS connect timeout), so a cluster with no reachable leader fails the call
/// instead of hanging; a follower's refusal (a response naming a leader) moves on to the endpoint
/// whose address the leader advertises, or to the next one; any other answer — success or a
/// refusal on the merits — is returned as is. Every server must pass the same checks as a single
/// coordinator (the coordinator role and, when `pinned` is given, one of those certificates).
public final class CoordinatorFailover {
    public let targets: [Endpoint]
    private let connect: (Endpoint) throws -> CoordinatorClient
    private var current: Int = 0
    private var client: CoordinatorClient?

    public init(targets: [Endpoint], context: TLSContext, pinned: Set<Digest32>? = nil) {
        self.targets = targets
        connect = { t in try CoordinatorClient(host: t.host, port: t.port, context: context, pinned: pinned) }
    }

    /// The endpoint of the last answer.
    public var answering: Endpoint? { targets.isEmpty ? nil : targets[current] }

    public enum Failure: Error, CustomStringConvertible {
        /// No endpoint answered, or only followers did (with what each said).
        case noLeader([String])
        public var description: String {
            "no coordinator leader reachable: " + (self.failures.isEmpty ? "no endpoints configured" : self.failures.joined(separator: "; "))
        }
        var failures: [String] { switch self { case let .noLeader(f): return f } }
    }

    public func call(_ request: APIRequest) throws -> APIResponse {
        var failures: [String] = []
        for _ in 0..<(2 * max(targets.count, 1)) where !targets.isEmpty {
            let target = targets[current]
            do {
                let c = try client ?? connect(target)
                client = c
                let response = try c.call(request)
                guard !response.ok, let leader = response.leader else { return response }
                failures.append("\(target.description) follows \(leader)")
                client = nil
                // The leader's advertised address, if it is one of ours; else the next endpoint.
                if let i = targets.firstIndex(where: { leader.hasSuffix(" at " + $0.description) }), i != current { current = i } else { advance() }
            } catch {
                failures.append("\(target.description): \(error)")
                client = nil
                advance()
            }
        }
        throw Failure.noLeader(Array(failures.suffix(2 * max(targets.count, 1))))
    }

    /// Forgets the connection (the next call reconnects).
    public func reset() { client = nil }

    private func advance() { current = (current + 1) % max(targets.count, 1) }
}
