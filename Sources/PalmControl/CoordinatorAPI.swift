import Foundation
import PalmTLS
import PalmWire

/// The coordinator's API, spoken over a PalmTLS channel by operators' CLIs and agents.
///
/// Each message is a 32-bit big-endian length followed by that many bytes of JSON (at most
/// ``maxMessage``). The client sends one ``APIRequest`` and reads one ``APIResponse``, any number
/// of times per connection. The caller's identity and role come from its certificate only; every
/// request is authorized against the access policy and audited, allowed or denied.
public enum CoordinatorAPI {
    public static let maxMessage = 1 << 20

    public static func send<T: Encodable>(_ value: T, on stream: ByteStream) throws {
        let body = try JSONEncoder().encode(value)
        var w = ByteWriter(capacity: body.count + 4)
        w.write(UInt32(body.count))
        w.write(raw: body)
        try stream.write(w.bytes)
    }

    public static func receive<T: Decodable>(_ type: T.Type, from stream: ByteStream, limit: Int = maxMessage) throws -> T {
        try JSONDecoder().decode(T.self, from: Data(try receiveBody(from: stream, limit: limit, beforeRead: {})))
    }

    /// Reads one message of at most `limit` bytes, all of it before `deadline` (not per read: a
    /// peer that sends a byte now and then still runs out of time). The buffer grows with the
    /// bytes that arrive, never to the length a peer announces before it has sent them.
    public static func receive<T: Decodable>(_ type: T.Type, from channel: TLSChannel, limit: Int, deadline: Date) throws -> T {
        let body = try receiveBody(from: channel, limit: limit) {
            let left = deadline.timeIntervalSinceNow
            guard left > 0 else { throw TLSError.timeout(operation: "request", seconds: 0) }
            channel.setIOTimeout(left)
        }
        return try JSONDecoder().decode(T.self, from: Data(body))
    }

    static func receiveBody(from stream: ByteStream, limit: Int, beforeRead: () throws -> Void) throws -> [UInt8] {
        let header = try read(4, from: stream, field: "stream", beforeRead: beforeRead)
        let length = header.reduce(0) { $0 << 8 | Int($1) }
        guard length <= limit else { throw WireError.payloadTooLarge(length: UInt32(length), limit: limit) }
        return try read(length, from: stream, field: "api.body", beforeRead: beforeRead)
    }

    /// Exactly `count` bytes, `beforeRead` called before every read (the length prefix's too, so
    /// a deadline covers the whole message); the buffer grows with the bytes that arrive.
    private static func read(_ count: Int, from stream: ByteStream, field: String, beforeRead: () throws -> Void) throws -> [UInt8] {
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: min(count, 16 << 10))
        while bytes.count < count {
            try beforeRead()
            let want = min(chunk.count, count - bytes.count)
            let n = try chunk.withUnsafeMutableBytes { try stream.read(into: UnsafeMutableRawBufferPointer(rebasing: $0[0..<want])) }
            guard n > 0 else { throw WireError.truncated(field: field, needed: count, available: bytes.count) }
            bytes += chunk[0..<n]
        }
        return bytes
    }
}

/// What an authenticated caller may ask the coordinator to do (the names the policy file uses).
public enum CoordinatorAction: String, CaseIterable, Sendable, Codable {
    case hosts, vms, status, history
    case migrate, cancel, evacuate, maintenance, rebalance
    case auditVerify = "audit.verify"
    case agentHeartbeat = "agent.heartbeat"
    /// Enroll a host's TPM attestation key (or start its re-enrollment).
    case hostsEnroll = "hosts.enroll"
    /// The platform policy: show it, learn it from a host declared good, diff a host against it.
    case policyShow = "attestation.policy.show"
    case policyLearn = "attestation.policy.learn"
    case policyDiff = "attestation.policy.diff"

    /// Answered by every coordinator, followers included; the others only by the leader.
    public var isReadOnly: Bool { [.hosts, .vms, .status, .history, .auditVerify, .policyShow, .policyDiff].contains(self) }
}

/// One request: an action, its string arguments and, for `agent.heartbeat`, the host's report.
public struct APIRequest: Codable, Sendable, Equatable {
    public var action: String
    public var arguments: [String: String]
    public var report: HostReport?
    public init(action: String, arguments: [String: String] = [:], report: HostReport? = nil) {
        self.action = action
        self.arguments = arguments
        self.report = report
    }
}

/// One response: a result table (rows of string columns) or a named error; for a heartbeat, the
/// coordinator's orders.
public struct APIResponse: Codable, Sendable, Equatable {
    public var ok: Bool
    public var error: String?
    public var rows: [[String: String]]
    public var orders: AgentOrders?
    /// Set by a follower refusing a write: the leader's name and address as the lease names them
    /// (a client fails over to the endpoint it configured for that leader, or tries the next).
    public var leader: String?
    public init(ok: Bool, error: String? = nil, rows: [[String: String]] = [], orders: AgentOrders? = nil, leader: String? = nil) {
        self.ok = ok
        self.leader = leader
        self.error = error
        self.rows = rows
        self.orders = orders
    }
}
