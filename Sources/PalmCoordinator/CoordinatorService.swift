import Foundation
import GRDB
import PalmTLS

/// What the coordinator does for one authenticated caller: authorize against the policy, audit
/// the decision, then act. Transport-free, so it is tested directly and served by
/// ``CoordinatorServer``.
public final class CoordinatorService: @unchecked Sendable {
    public let store: CoordinatorStore
    public let audit: AuditLog
    public let policy: AccessPolicy

    public init(store: CoordinatorStore, audit: AuditLog, policy: AccessPolicy) {
        self.store = store
        self.audit = audit
        self.policy = policy
    }

    static func actor(_ id: CertificateIdentity) -> String {
        "\(id.commonName ?? id.subject) sha256:\(id.fingerprint.hex.prefix(16))"
    }

    /// Authorizes, audits and performs one request.
    public func handle(_ request: APIRequest, from caller: CertificateIdentity) -> APIResponse {
        guard let action = CoordinatorAction(rawValue: request.action) else {
            record(caller, request.action, target: "", allowed: false, reason: "unknown action")
            return APIResponse(ok: false, error: "unknown action '\(request.action)'")
        }
        let host = request.arguments["host"]
        let decision = policy.decide(role: caller.role, action: action, host: host)
        record(caller, action.rawValue, target: host ?? request.arguments["vm"] ?? "", allowed: decision.allowed, reason: decision.reason)
        guard decision.allowed else { return APIResponse(ok: false, error: "access denied: \(decision.reason)") }
        do {
            return try perform(action, request.arguments, caller)
        } catch {
            return APIResponse(ok: false, error: "\(error)")
        }
    }

    private func record(_ caller: CertificateIdentity, _ action: String, target: String, allowed: Bool, reason: String) {
        _ = try? audit.append(actor: CoordinatorService.actor(caller), role: caller.role?.rawValue ?? "none", action: action,
                              target: target, allowed: allowed, detail: reason)
    }

    public enum ServiceError: Error, CustomStringConvertible {
        case missingArgument(String), noSuchHost(String), badArgument(String), notYetImplemented(String)
        public var description: String {
            switch self {
            case let .missingArgument(a): return "missing argument '\(a)'"
            case let .noSuchHost(h): return "no host named '\(h)'"
            case let .badArgument(a): return "bad argument: \(a)"
            case let .notYetImplemented(a): return "'\(a)' is not available yet"
            }
        }
    }

    private func perform(_ action: CoordinatorAction, _ args: [String: String], _ caller: CertificateIdentity) throws -> APIResponse {
        switch action {
        case .agentRegister:
            guard let name = caller.commonName else { throw ServiceError.badArgument("the agent certificate has no CN") }
            let address = args["address"] ?? caller.ipAddresses.first ?? name
            try store.queue.write { db in
                try db.execute(sql: """
                    INSERT INTO host (name, fingerprint, address, last_heartbeat) VALUES (?, ?, ?, ?)
                    ON CONFLICT(name) DO UPDATE SET fingerprint = excluded.fingerprint, address = excluded.address,
                    last_heartbeat = excluded.last_heartbeat
                    """, arguments: [name, caller.fingerprint.hex, address, Date().timeIntervalSince1970])
            }
            return APIResponse(ok: true, rows: [["host": name, "registered": "yes"]])
        case .hosts:
            let rows = try store.queue.read { db in
                try Row.fetchAll(db, sql: "SELECT name, address, maintenance, fingerprint FROM host ORDER BY name").map { r -> [String: String] in
                    ["host": r["name"], "address": r["address"], "maintenance": (r["maintenance"] as Bool) ? "on" : "off",
                     "fingerprint": String((r["fingerprint"] as String).prefix(16))]
                }
            }
            return APIResponse(ok: true, rows: rows)
        case .maintenance:
            guard let host = args["host"] else { throw ServiceError.missingArgument("host") }
            guard let mode = args["mode"], mode == "on" || mode == "off" else { throw ServiceError.badArgument("mode must be on or off") }
            let changed = try store.queue.write { db -> Int in
                try db.execute(sql: "UPDATE host SET maintenance = ? WHERE name = ?", arguments: [mode == "on", host])
                return db.changesCount
            }
            guard changed == 1 else { throw ServiceError.noSuchHost(host) }
            return APIResponse(ok: true, rows: [["host": host, "maintenance": mode]])
        case .auditVerify:
            return APIResponse(ok: true, rows: [["entries": "\(try audit.entries().count)"]])
        default:
            throw ServiceError.notYetImplemented(action.rawValue)
        }
    }
}
