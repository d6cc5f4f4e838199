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

    public static func receive<T: Decodable>(_ type: T.Type, from stream: ByteStream) throws -> T {
        var header = [UInt8](repeating: 0, count: 4)
        try header.withUnsafeMutableBytes { try stream.readExactly(into: $0) }
        let length = header.reduce(0) { $0 << 8 | Int($1) }
        guard length <= maxMessage else { throw WireError.payloadTooLarge(length: UInt32(length), limit: maxMessage) }
        var body = [UInt8](repeating: 0, count: length)
        try body.withUnsafeMutableBytes { try stream.readExactly(into: $0) }
        return try JSONDecoder().decode(T.self, from: Data(body))
    }
}

/// What an authenticated caller may ask the coordinator to do (the names the policy file uses).
public enum CoordinatorAction: String, CaseIterable, Sendable, Codable {
    case hosts, vms, status, history
    case migrate, cancel, evacuate, maintenance, rebalance
    case auditVerify = "audit.verify"
    case agentHeartbeat = "agent.heartbeat"
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
    public init(ok: Bool, error: String? = nil, rows: [[String: String]] = [], orders: AgentOrders? = nil) {
        self.ok = ok
        self.error = error
        self.rows = rows
        self.orders = orders
    }
}
