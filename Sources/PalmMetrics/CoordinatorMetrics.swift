import Metrics

/// What the coordinator records, through swift-metrics. Counters move as things happen; the
/// inventory gauges (hosts, VMs, migrations by state, leadership) are set from the database when
/// the endpoint is scraped (``CoordinatorMetrics/Inventory``), so they always show the shared state.
public struct CoordinatorMetrics: Sendable {
    public init() {}

    public func heartbeat() { Counter(label: MetricName.heartbeats.rawValue).increment() }

    public func schedulingCycle(seconds: Double) {
        Recorder(label: MetricName.schedulingCycle.rawValue).record(seconds)
    }

    public func auditEntry() { Counter(label: MetricName.auditEntries.rawValue).increment() }

    public func attestation(trusted: Bool) {
        Counter(label: MetricName.attestationChanges.rawValue, dimensions: [("trust", trusted ? "trusted" : "untrusted")]).increment()
    }

    public func refused(_ reason: AgentMetrics.Refusal, count: Int = 1) {
        Counter(label: MetricName.refusals.rawValue, dimensions: [("role", "coordinator"), ("reason", reason.rawValue)])
            .increment(by: Int64(count))
    }

    /// The cluster as the database holds it.
    public struct Inventory: Sendable, Equatable {
        public static let hostStates = ["up", "down", "maintenance"]
        public static let migrationStates = ["requested", "ticketed", "running", "in-doubt"]
        public var hosts: [String: Int]
        public var vms: Int
        public var migrations: [String: Int]
        public var leader: Bool
        public static let attestationStates = ["trusted", "untrusted", "unenrolled"]
        /// Hosts with a TPM by attestation verdict.
        public var attestation: [String: Int]
        public init(hosts: [String: Int], vms: Int, migrations: [String: Int], leader: Bool, attestation: [String: Int] = [:]) {
            self.attestation = attestation
            self.hosts = hosts
            self.vms = vms
            self.migrations = migrations
            self.leader = leader
        }
    }

    /// Sets the inventory gauges (every documented state, 0 where none).
    public func record(_ inventory: Inventory) {
        for state in Inventory.hostStates {
            Gauge(label: MetricName.hosts.rawValue, dimensions: [("state", state)]).record(inventory.hosts[state] ?? 0)
        }
        Gauge(label: MetricName.vms.rawValue).record(inventory.vms)
        for state in Inventory.migrationStates {
            Gauge(label: MetricName.migrations.rawValue, dimensions: [("state", state)]).record(inventory.migrations[state] ?? 0)
        }
        Gauge(label: MetricName.leader.rawValue).record(inventory.leader ? 1 : 0)
        for trust in Inventory.attestationStates {
            Gauge(label: MetricName.hostAttestation.rawValue, dimensions: [("trust", trust)]).record(inventory.attestation[trust] ?? 0)
        }
    }
}
