import PalmSupport
import Foundation
import PalmControl
import PalmMetrics
import PalmSecurity
import PalmCrypto
import PalmTLS

/// The coordinator's settings that are not about transport (from coordinator.toml).
public struct CoordinatorSettings: Sendable {
    public var ticketValidity: UInt64 = 300
    public var heartbeatInterval: Double = 5
    public var hostTimeout: Double = 30
    public var autoBalance = true
    public var scheduler = SchedulerPolicy()
    public var allowlist = AttestationAllowlist()
    public var attestation = AttestationSettings()

    public init() {}

    public init(_ c: CoordinatorConfiguration) {
        ticketValidity = c.ticketValidity
        heartbeatInterval = c.heartbeatInterval
        hostTimeout = c.hostTimeout
        autoBalance = c.autoBalance
        scheduler = c.scheduler
        allowlist = c.allowlist
        attestation = c.attestation
    }
}

/// What the coordinator does for one authenticated caller: authorize against the policy, audit
/// the decision, then act. Transport-free, so it is tested directly and served by
/// ``CoordinatorServer``.
///
/// Every state change happens in one SQLite transaction together with its audit entry, so a
/// coordinator killed at any instant restarts with a database where each migration is in exactly
/// one recorded state and no decision is missing from the log.
public final class CoordinatorService: @unchecked Sendable {
    public let store: CoordinatorStore
    public let audit: AuditLog
    /// The access policy in force (replaced by a reload).
    public var policy: AccessPolicy {
        get { currentPolicy.current }
        set { currentPolicy.withLockedValue { $0 = newValue } }
    }
    private let currentPolicy: LockedValueBox<AccessPolicy>
    public let settings: CoordinatorSettings
    let issuer: TicketIssuer?
    /// Seconds since 1970; tests drive it.
    public var clock: @Sendable () -> Double = { Date().timeIntervalSince1970 }
    /// Called when a request makes a scheduling cycle worth running now.
    public var onWork: @Sendable () -> Void = {}
    /// Agents seen since this coordinator started (their first heartbeat is audited).
    private let seenAgents = LockedValueBox(Set<String>())
    /// With coordinators sharing a PostgreSQL database: who leads. A follower answers the
    /// read-only actions (without auditing them: the chain takes the leader's entries only) and
    /// refuses the others naming the leader; it runs no scheduling cycle. nil: always the leader.
    public var lease: LeaderLease?
    /// The epoch this coordinator leads under (0 without a lease), nil while it does not lead: what
    /// its tickets and orders carry. Read once per cycle or heartbeat.
    var leaderEpoch: Int64? {
        guard let lease else { return 0 }
        if case let .leader(epoch) = lease.current { return epoch }
        return nil
    }
    /// The coordinators whose keys may have signed audit entries (`state.coordinator_certificates`,
    /// this one's by default), to verify the chain on request (`audit.verify`).
    public var auditTrust: CoordinatorTrust?
    /// Heartbeats, cycles, audit entries, refusals (a no-op unless a metrics backend is bootstrapped).
    public let metrics = CoordinatorMetrics()
    /// What a request may hold; what denials are audited one by one.
    public let requestLimits: RequestLimits
    private let denials: DenialLimiter
    /// The platform policy in force, decoded, with its lookup sets: built once per version (every
    /// quote of every host is checked against it).
    let platformPolicyCache = LockedValueBox<(version: Int, policy: PlatformPolicy, index: PlatformPolicy.Index)?>(nil)

    /// `ticketKey` signs migration tickets (the coordinator's certificate key); without it the
    /// service answers queries but schedules nothing.
    public init(store: CoordinatorStore, audit: AuditLog, policy: AccessPolicy, settings: CoordinatorSettings = .init(),
                ticketKey: SigningKey? = nil, requestLimits: RequestLimits = RequestLimits()) {
        self.requestLimits = requestLimits
        denials = DenialLimiter(perMinute: requestLimits.auditedDenialsPerMinute)
        self.store = store
        self.audit = audit
        currentPolicy = LockedValueBox(policy)
        self.settings = settings
        issuer = ticketKey.map { TicketIssuer(key: $0) }
    }

    static func actor(_ id: CertificateIdentity) -> String {
        "\(id.commonName ?? id.subject) sha256:\(id.fingerprint.hex.prefix(16))"
    }

    /// A request's action as logs may show it: at most 64 characters, printable ASCII only.
    public static func printable(_ action: String) -> String {
        String(String.UnicodeScalarView(action.unicodeScalars.prefix(64).map { $0.isASCII && $0.value >= 0x20 && $0.value < 0x7F ? $0 : "?" }))
    }

    /// A failure the caller can act on, named.
    public enum ServiceError: Error, Equatable, CustomStringConvertible {
        case missingArgument(String), badArgument(String)
        case noSuchHost(String), noSuchVM(String), noSuchMigration(String), ambiguousMigration(String)
        case refused(String)
        public var description: String {
            switch self {
            case let .missingArgument(a): return "missing argument '\(a)'"
            case let .badArgument(a): return "bad argument: \(a)"
            case let .noSuchHost(h): return "no host named '\(h)'"
            case let .noSuchVM(v): return "no VM named '\(v)'"
            case let .noSuchMigration(m): return "no migration '\(m)'"
            case let .ambiguousMigration(m): return "'\(m)' matches more than one migration; give more of the id"
            case let .refused(r): return r
            }
        }
    }

    /// Authorizes, audits and performs one request.
    public func handle(_ request: APIRequest, from caller: CertificateIdentity) -> APIResponse {
        if let problem = requestLimits.problem(with: request) {
            record(caller, "(malformed request)", target: "", allowed: false, reason: problem)
            return APIResponse(ok: false, error: "invalid request: \(problem)")
        }
        guard let action = CoordinatorAction(rawValue: request.action) else {
            record(caller, request.action, target: "", allowed: false, reason: "unknown action")
            return APIResponse(ok: false, error: "unknown action '\(request.action)'")
        }
        let hosts: [String]
        do { hosts = try hostsInvolved(action, request.arguments, caller) } catch {
            record(caller, action.rawValue, target: target(of: request), allowed: false, reason: "\(error)")
            return APIResponse(ok: false, error: "\(error)")
        }
        let policy = self.policy
        var decision = policy.decide(role: caller.role, action: action, host: nil)
        for host in hosts where decision.allowed { decision = policy.decide(role: caller.role, action: action, host: host) }
        if let lease, case let .follower(leader, address, _) = lease.current {
            let named = leader.map { l in address.map { "\(l) at \($0)" } ?? l }
            guard action.isReadOnly else {
                return APIResponse(ok: false, error: "this coordinator is a follower: '\(action.rawValue)' goes to the leader"
                                   + (named.map { " (\($0))" } ?? " (none holds the lease right now; retry)"), leader: named)
            }
            guard decision.allowed else { return APIResponse(ok: false, error: "access denied: \(decision.reason)") }
            do { return try perform(action, request, caller) } catch { return APIResponse(ok: false, error: "\(error)") }
        }
        if shouldAudit(action, caller: caller, allowed: decision.allowed) {
            record(caller, action.rawValue, target: target(of: request), allowed: decision.allowed, reason: decision.reason)
        }
        guard decision.allowed else { return APIResponse(ok: false, error: "access denied: \(decision.reason)") }
        do {
            return try perform(action, request, caller)
        } catch {
            return APIResponse(ok: false, error: "\(error)")
        }
    }

    private func target(of request: APIRequest) -> String {
        request.arguments["vm"] ?? request.arguments["host"] ?? request.arguments["id"] ?? ""
    }

    /// Routine heartbeats are not audited one by one (a cluster sends thousands a minute): an agent's
    /// first heartbeat to this coordinator is, every denied one is, and so is everything a
    /// heartbeat changes (orders handed out, outcomes recorded) — inside the heartbeat's transaction.
    private func shouldAudit(_ action: CoordinatorAction, caller: CertificateIdentity, allowed: Bool) -> Bool {
        guard action == .agentHeartbeat, allowed else { return true }
        return seenAgents.withLockedValue { $0.insert(caller.fingerprint.hex).inserted }
    }

    /// One line for `STATUS=`: hosts up and migrations in flight.
    public func statusLine() -> String {
        let now = clock()
        let (up, total, running) = (try? store.read { db -> (Int, Int, Int) in
            (try db.value(Int.self, "SELECT COUNT(*) FROM host WHERE last_heartbeat >= ?", arguments: [now - settings.hostTimeout]) ?? 0,
             try db.value(Int.self, "SELECT COUNT(*) FROM host") ?? 0,
             try db.value(Int.self, "SELECT COUNT(*) FROM migration WHERE state IN \(CoordinatorService.activeStates)") ?? 0)
        }) ?? (0, 0, 0)
        return "\(up)/\(total) hosts up, \(running) migration\(running == 1 ? "" : "s") in flight"
    }

    /// Audits a decision. Denials are audited one by one up to the per-caller limit a minute; the
    /// rest are counted into one entry when the caller's next minute begins.
    private func record(_ caller: CertificateIdentity, _ action: String, target: String, allowed: Bool, reason: String) {
        let actor = CoordinatorService.actor(caller), role = caller.role?.rawValue ?? "none"
        if !allowed {
            switch denials.admit(actor, now: clock()) {
            case .suppress:
                return
            case let .audit(suppressed) where suppressed > 0:
                _ = try? audit.append(actor: actor, role: role, action: "(denials not audited one by one)", target: "",
                                      allowed: false, detail: "\(suppressed) further denials in the previous minute")
            case .audit:
                break
            }
        }
        _ = try? audit.append(actor: actor, role: role, action: action, target: target, allowed: allowed, detail: reason)
    }

    /// The hosts an action touches: each must be inside the caller's host groups.
    private func hostsInvolved(_ action: CoordinatorAction, _ args: [String: String], _ caller: CertificateIdentity) throws -> [String] {
        switch action {
        case .agentHeartbeat:
            return [caller.commonName ?? ""]
        case .maintenance, .evacuate, .hostsEnroll, .policyLearn, .policyDiff:
            return args["host"].map { [$0] } ?? []
        case .migrate:
            guard let vm = args["vm"] else { return [] }
            let from = try store.read { try $0.value(String.self, "SELECT host FROM vm WHERE name = ?", arguments: [vm]) }
            return [from, args["to"]].compactMap { $0 }
        case .cancel:
            guard let id = args["id"] else { return [] }
            let m = try migration(matching: id)
            return [m.source, m.destination]
        default:
            return []
        }
    }

    private func perform(_ action: CoordinatorAction, _ request: APIRequest, _ caller: CertificateIdentity) throws -> APIResponse {
        let args = request.arguments
        let actor = CoordinatorService.actor(caller)
        switch action {
        case .agentHeartbeat:
            guard let report = request.report else { throw ServiceError.missingArgument("report") }
            return APIResponse(ok: true, orders: try heartbeat(report, from: caller))
        case .hosts:
            return APIResponse(ok: true, rows: try hostRows())
        case .vms:
            return APIResponse(ok: true, rows: try vmRows())
        case .maintenance:
            guard let host = args["host"] else { throw ServiceError.missingArgument("host") }
            guard let mode = args["mode"], mode == "on" || mode == "off" else { throw ServiceError.badArgument("mode must be on or off") }
            try setMaintenance(host: host, on: mode == "on", actor: actor)
            return APIResponse(ok: true, rows: [["host": host, "maintenance": mode]])
        case .migrate:
            guard let vm = args["vm"] else { throw ServiceError.missingArgument("vm") }
            guard let to = args["to"] else { throw ServiceError.missingArgument("to") }
            let mode = args["mode"] ?? "pre-copy"
            guard mode == "pre-copy" || mode == "stop-and-copy" else { throw ServiceError.badArgument("mode must be pre-copy or stop-and-copy") }
            var downtime: Double?
            if let d = args["downtime_ms"] {
                guard let v = Double(d), v > 0, v <= 60_000 else { throw ServiceError.badArgument("downtime_ms must be in (0, 60000]") }
                downtime = v
            }
            let row = try requestMigration(vm: vm, to: to, mode: mode, downtimeMs: downtime, actor: actor)
            onWork()
            return APIResponse(ok: true, rows: [row])
        case .cancel:
            guard let id = args["id"] else { throw ServiceError.missingArgument("id") }
            return APIResponse(ok: true, rows: [try cancel(id: id, actor: actor)])
        case .status:
            guard let id = args["id"] else { throw ServiceError.missingArgument("id") }
            return APIResponse(ok: true, rows: [try migration(matching: id).row])
        case .history:
            let limit = Int(args["limit"] ?? "50") ?? 50
            guard limit > 0 && limit <= 10_000 else { throw ServiceError.badArgument("limit must be 1…10000") }
            return APIResponse(ok: true, rows: try history(limit: limit, vm: args["vm"]).map(\.row))
        case .evacuate:
            guard let host = args["host"] else { throw ServiceError.missingArgument("host") }
            try startEvacuation(host: host, actor: actor)
            let plan = try runCycle(balance: false)
            return APIResponse(ok: true, rows: plan.rows)
        case .rebalance:
            let dryRun = args["dry_run"] == "yes"
            let plan = dryRun ? try dryRunPlan() : try runCycle(balance: true, requestedBy: actor)
            return APIResponse(ok: true, rows: plan.rows)
        case .hostsEnroll:
            guard let host = args["host"] else { throw ServiceError.missingArgument("host") }
            return APIResponse(ok: true, rows: [try enroll(host: host, actor: actor)])
        case .policyShow:
            return APIResponse(ok: true, rows: try platformPolicyRows(json: args["format"] == "json"))
        case .policyLearn:
            guard let host = args["host"] else { throw ServiceError.missingArgument("host") }
            return APIResponse(ok: true, rows: [try learnPlatformPolicy(from: host, actor: actor)])
        case .policyDiff:
            guard let host = args["host"] else { throw ServiceError.missingArgument("host") }
            return APIResponse(ok: true, rows: try platformPolicyDiff(host: host))
        case .auditVerify:
            // The whole chain, and against the head kept outside the database when there is one.
            guard let trust = auditTrust else { return APIResponse(ok: true, rows: [["entries": "\(try audit.entries().count)"]]) }
            let head = audit.headFile.flatMap { FileManager.default.fileExists(atPath: $0) ? try? AuditHead.load(from: $0) : nil }
            do {
                let n = try audit.verify(coordinators: trust, head: head)
                return APIResponse(ok: true, rows: [["entries": "\(n)", "head": head.map { "\($0.seq)" } ?? "-", "verdict": "intact"]])
            } catch let e as AuditLog.AuditError {
                return APIResponse(ok: false, error: "AUDIT LOG TAMPERED: \(e)")
            }
        }
    }
}

extension Scheduler.Plan {
    /// The plan as a table: one row per move, then one per note.
    var rows: [[String: String]] {
        moves.map { ["kind": $0.kind.rawValue, "vm": $0.vm, "from": $0.from, "to": $0.to,
                     "cost_s": String(format: "%.1f", $0.cost), "reason": $0.reason] }
            + notes.map { ["kind": "note", "reason": $0] }
    }
}
