import Foundation
import PalmConfig
import PalmSecurity
import PalmControl
import PalmTLS
import PalmWire

/// /etc/palm/coordinator.toml: everything `palm-coordinator serve` needs. Unknown keys are errors.
public struct CoordinatorConfiguration: Sendable {
    public var file: String
    public var tls: TLSConfiguration
    public var listenAddress: String
    public var listenPort: UInt16
    /// Where clients reach this coordinator (`listen.advertise`, default address:port): what a
    /// follower names when it sends a write to the leader.
    public var advertiseAddress: String
    /// The SQLite file (`state.database`; used when `store` is SQLite).
    public var database: String
    /// Where the state lives: `[state] backend = "sqlite"` (default) or `"postgresql"` with `url`.
    public var store: StoreLocation
    /// Seconds the leader lease lasts unless renewed (`[state] lease_s`; renewed every third of it).
    public var leaseDuration: Double
    /// Every coordinator that may lead on this state (`state.coordinator_certificates`, this one's
    /// own certificate by default): the keys the audit chain may be signed with.
    public var coordinatorCertificates: [String]
    /// The audit chain's head, kept outside the database (`state.audit_head`).
    public var auditHeadFile: String
    public var policyFile: String
    /// Seconds a ticket stays valid after the coordinator signs it.
    public var ticketValidity: UInt64
    public var heartbeatInterval: Double
    /// A host that has not reported for this long is down: it receives nothing.
    public var hostTimeout: Double
    /// Seconds between scheduling cycles.
    public var schedulerInterval: Double
    /// Balance load automatically (evacuations and requested migrations run regardless).
    public var autoBalance: Bool
    public var scheduler: SchedulerPolicy
    public var allowlist: AttestationAllowlist
    /// What clients may cost the daemon (`[listen]`).
    public var limits: ServerLimits
    public var requestLimits: RequestLimits
    /// Where `serve` exposes its metrics (`[metrics] listen`); nil: not at all.
    public var metricsListen: Endpoint? = nil
    /// Hosts' TPMs: enrollment and continuous attestation (`[attestation]`).
    public var attestation = AttestationSettings()

    public static let defaultPath = "/etc/palm/coordinator.toml"

    public static func load(path: String) throws -> CoordinatorConfiguration {
        let f = try ConfigFile(path: path)
        var policy = SchedulerPolicy()
        policy.imbalanceThreshold = try f.double("scheduler.imbalance_threshold", default: 0.15, range: 0...1)
        policy.minImprovement = try f.double("scheduler.min_improvement", default: 0.05, range: 0.001...1)
        policy.holdTime = try f.double("scheduler.hold_time_s", default: 300, range: 0...86_400)
        policy.maxLoad = try f.double("scheduler.max_load", default: 0.85, range: 0.05...1)
        policy.retryDelay = try f.double("scheduler.retry_delay_s", default: 60, range: 0...86_400)
        policy.maxPerHost = try f.int("scheduler.max_per_host", default: 1, range: 1...64)
        policy.maxConcurrent = try f.int("scheduler.max_concurrent", default: 4, range: 1...4096)
        policy.linkRate = Double(try f.bytes("scheduler.link_rate", default: 1_000_000_000))
        var limits = ServerLimits()
        limits.admission = try AdmissionGate.Limits.load(f)
        limits.workers = try f.int("listen.workers", default: limits.workers, range: 1...256)
        limits.workersPerIdentity = try f.int("listen.workers_per_identity", default: limits.workersPerIdentity, range: 1...256)
        limits.maxConnections = try f.int("listen.max_connections", default: limits.maxConnections, range: 1...1_000_000)
        limits.idleTimeout = try f.double("listen.idle_timeout_s", default: limits.idleTimeout, range: 1...86_400)
        limits.requestTimeout = try f.double("listen.request_timeout_s", default: limits.requestTimeout, range: 0.1...600)
        let requestSize = 1024...CoordinatorAPI.maxMessage
        limits.maxAgentRequest = try f.bytes("listen.max_agent_request", default: limits.maxAgentRequest, range: requestSize)
        limits.maxRequest = try f.bytes("listen.max_request", default: limits.maxRequest, range: requestSize)
        var requestLimits = RequestLimits()
        requestLimits.auditedDenialsPerMinute = try f.int("access.max_audited_denials_per_minute", default: 20, range: 1...100_000)
        let listenAddress = try f.string("listen.address", default: "0.0.0.0")
        let listenPort = UInt16(try f.int("listen.port", default: 7400, range: 0...65535))
        let database = try f.string("state.database", default: "/var/lib/palm/coordinator/palm.sqlite")
        let store: StoreLocation
        let connectTimeout = try f.int("state.connect_timeout_s", default: 5, range: 1...300)
        switch try f.string("state.backend", default: "sqlite") {
        case "sqlite":
            store = .sqlite(path: database)
        case "postgresql":
            let url = try f.string("state.url")
            do { try PostgresStore.validate(url: url) } catch {
                throw ConfigError.invalidValue(file: path, key: "state.url", reason: "\(error)")
            }
            store = .postgresql(url: url, connectTimeout: connectTimeout)
        case let other:
            throw ConfigError.invalidValue(file: path, key: "state.backend", reason: "'\(other)' is not sqlite or postgresql")
        }
        let tls = try TLSConfiguration.load(f)
        let coordinators = try f.stringArray("state.coordinator_certificates")
        guard coordinators.count <= 16 else {
            throw ConfigError.invalidValue(file: path, key: "state.coordinator_certificates", reason: "at most 16 coordinators")
        }
        var config = CoordinatorConfiguration(
            file: path, tls: tls,
            listenAddress: listenAddress, listenPort: listenPort,
            advertiseAddress: try f.string("listen.advertise", default: Endpoint(host: listenAddress, port: listenPort).description),
            database: database, store: store,
            leaseDuration: try f.double("state.lease_s", default: 10, range: 1...3600),
            coordinatorCertificates: coordinators.isEmpty ? [tls.certificateChain] : coordinators,
            auditHeadFile: try f.string("state.audit_head", default: "/var/lib/palm/coordinator/audit-head"),
            policyFile: try f.string("access.policy", default: "/etc/palm/policy.toml"),
            ticketValidity: UInt64(try f.int("tickets.validity_s", default: 300, range: 5...86_400)),
            heartbeatInterval: try f.double("agents.heartbeat_interval_s", default: 5, range: 0.05...3600),
            hostTimeout: try f.double("agents.host_timeout_s", default: 30, range: 0.2...86_400),
            schedulerInterval: try f.double("scheduler.interval_s", default: 10, range: 0.05...3600),
            autoBalance: try f.bool("scheduler.auto_balance", default: true),
            scheduler: policy,
            allowlist: AttestationAllowlist(
                agents: try f.stringArray("attestation.allowed_agents").map { $0.lowercased() },
                configs: try f.stringArray("attestation.allowed_configs").map { $0.lowercased() },
                hypervisors: try f.stringArray("attestation.allowed_hypervisors")),
            limits: limits, requestLimits: requestLimits)
        if case .postgresql = store, ["0.0.0.0", "::", "[::]"].contains(where: { config.advertiseAddress.hasPrefix($0 + ":") }) {
            throw ConfigError.invalidValue(file: path, key: "listen.advertise",
                                           reason: "with backend = \"postgresql\" each coordinator says where clients reach it (HOST:PORT, not a wildcard address)")
        }
        for v in config.allowlist.agents + config.allowlist.configs where Digest32(hex: v) == nil {
            throw ConfigError.invalidValue(file: path, key: "attestation", reason: "'\(v)' is not a SHA-256 in hex")
        }
        config.allowlist.platform = try PlatformTrust.load(f)
        config.attestation = try AttestationSettings.load(f)
        config.metricsListen = try MetricsSettings.listen(f)
        try f.finish()
        return config
    }
}
