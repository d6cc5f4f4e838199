import Foundation
import PalmConfig
import PalmControl
import PalmTLS
import TOMLKit
import PalmSecurity

/// Role-based access control from a TOML policy; deny by default.
///
/// ```toml
/// [roles.operator]
/// actions = ["hosts", "vms", "status", "history", "migrate", "cancel"]
/// host_groups = ["rack-1"]          # optional: only hosts in these groups ("*" = all)
///
/// [groups]
/// rack-1 = ["node-a", "node-b"]
/// ```
/// A caller's role comes only from its certificate (``Role``, SAN URI `palm:role:…`). An action is
/// allowed when the role lists it (or `"*"`) and, for an action on a host, the host is in one of
/// the role's groups. Anything else — no role, an unknown role, an unlisted action — is denied.
public struct AccessPolicy: Sendable, Equatable {
    public struct Grant: Sendable, Equatable {
        public var actions: Set<String>
        /// nil: every host.
        public var hostGroups: Set<String>?
    }

    public var grants: [Role: Grant]
    public var groups: [String: Set<String>]

    public init(grants: [Role: Grant], groups: [String: Set<String>] = [:]) {
        self.grants = grants
        self.groups = groups
    }

    public struct Decision: Sendable, Equatable {
        public var allowed: Bool
        public var reason: String
    }

    public func decide(role: Role?, action: CoordinatorAction, host: String? = nil) -> Decision {
        guard let role else { return Decision(allowed: false, reason: "the certificate carries no palm role") }
        guard let grant = grants[role] else { return Decision(allowed: false, reason: "role \(role.rawValue) has no grants") }
        guard grant.actions.contains("*") || grant.actions.contains(action.rawValue) else {
            return Decision(allowed: false, reason: "role \(role.rawValue) may not \(action.rawValue)")
        }
        if let host, let allowedGroups = grant.hostGroups, !allowedGroups.contains("*") {
            let member = allowedGroups.contains { groups[$0]?.contains(host) == true }
            guard member else {
                return Decision(allowed: false, reason: "host \(host) is outside the host groups of role \(role.rawValue)")
            }
        }
        return Decision(allowed: true, reason: "role \(role.rawValue) may \(action.rawValue)")
    }

    /// Parses a policy file; unknown roles, actions or keys are errors naming the file.
    public static func load(path: String) throws -> AccessPolicy {
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw PolicyError.invalid("\(path): cannot read: \(error.localizedDescription)")
        }
        return try parse(text, file: path)
    }

    public enum PolicyError: Error, Equatable, CustomStringConvertible {
        case invalid(String)
        public var description: String { switch self { case let .invalid(m): return m } }
    }

    public static func parse(_ text: String, file: String = "<policy>") throws -> AccessPolicy {
        let table: TOMLTable
        if let (line, column) = TOMLHeaderCheck.firstBadHeader(in: text) {
            throw PolicyError.invalid("\(file):\(line):\(column): a table header must start with a key")
        }
        do { table = try TOMLTable(string: text) } catch let e as TOMLParseError {
            throw PolicyError.invalid("\(file):\(e.source.begin.line): \(e.description)")
        }
        for key in table.keys where !["roles", "groups"].contains(key) {
            throw PolicyError.invalid("\(file): unknown key '\(key)'")
        }
        var grants: [Role: Grant] = [:]
        let known = Set(CoordinatorAction.allCases.map(\.rawValue)).union(["*"])
        for name in table["roles"]?.table?.keys ?? [] {
            guard let role = Role(rawValue: name) else { throw PolicyError.invalid("\(file): unknown role '\(name)'") }
            guard let r = table["roles"]?.table?[name]?.table else { throw PolicyError.invalid("\(file): roles.\(name) must be a table") }
            for key in r.keys where !["actions", "host_groups"].contains(key) {
                throw PolicyError.invalid("\(file): unknown key 'roles.\(name).\(key)'")
            }
            let actions = (r["actions"]?.array ?? TOMLArray()).compactMap { $0.string }
            for a in actions where !known.contains(a) { throw PolicyError.invalid("\(file): roles.\(name): unknown action '\(a)'") }
            let groups = r["host_groups"]?.array.map { Set($0.compactMap { $0.string }) }
            grants[role] = Grant(actions: Set(actions), hostGroups: groups)
        }
        var groups: [String: Set<String>] = [:]
        for g in table["groups"]?.table?.keys ?? [] {
            groups[g] = Set((table["groups"]?.table?[g]?.array ?? TOMLArray()).compactMap { $0.string })
        }
        return AccessPolicy(grants: grants, groups: groups)
    }

    /// The policy shipped in deploy/policy.toml.
    public static let defaultText = """
    [roles.admin]
    actions = ["*"]

    [roles.operator]
    actions = ["hosts", "vms", "status", "history", "migrate", "cancel", "evacuate", "maintenance", "rebalance", "attestation.policy.show",
           "attestation.policy.diff"]

    [roles.auditor]
    actions = ["hosts", "vms", "status", "history", "audit.verify", "attestation.policy.show", "attestation.policy.diff"]

    [roles.agent]
    actions = ["agent.heartbeat"]
    """
}
