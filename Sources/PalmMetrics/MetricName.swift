/// Every metric palm exports, by name: the one list the daemons record under, the dashboard
/// (`deploy/grafana/palm.json`) queries and the README's alert rules name. A test checks that each
/// dashboard query names one of these.
///
/// Conventions (Prometheus'): `_total` counters, `_seconds` and `_bytes` units, labels with a small
/// fixed set of values (a role, a reason's case name, a kind, a state) — never a VM or host name.
public enum MetricName: String, CaseIterable, Sendable {
    // Agents (label `role`: source | destination).
    /// Migrations this agent began (the source: an order taken; the destination: a HELLO accepted).
    case migrationsStarted = "palm_migrations_started_total"
    /// Migrations that committed: the VM runs on the destination.
    case migrationsCommitted = "palm_migrations_committed_total"
    /// Migrations that ended before their commit point (label `reason`: the failure's case name);
    /// the VM runs on the source.
    case migrationsAborted = "palm_migrations_aborted_total"
    /// Migrations whose commit was in doubt when they ended (the hand-off journal settles them).
    case migrationsInDoubt = "palm_migrations_in_doubt_total"
    /// Migrations under way right now.
    case migrationsInFlight = "palm_migrations_in_flight"
    /// The guest's pause, from suspend to resume on the destination (source; histogram).
    case downtime = "palm_migration_downtime_seconds"
    /// From the order to the commit (source; histogram).
    case duration = "palm_migration_duration_seconds"
    /// Pre-copy rounds, the final round included (source; histogram).
    case rounds = "palm_migration_rounds"
    /// Pages sent (source; label `kind`: data | zero).
    case pagesSent = "palm_migration_pages_total"
    /// Bytes on the wire: pages, digests and records as framed (source).
    case bytesSent = "palm_migration_bytes_total"
    /// MEMORY batches sent compressed (`migration.compression`; source).
    case compressedBatches = "palm_migration_compressed_batches_total"
    /// Peers and requests refused (label `reason`: tls | admission | ticket | attestation |
    /// signature | authorization).
    case refusals = "palm_refusals_total"
    /// What palm-dest did on its own to a VM that stopped after its move (label `outcome`:
    /// restarted | destroyed | left | released | failed), as the VM's configuration says.
    case lifecycleActions = "palm_vm_lifecycle_actions_total"

    // The coordinator.
    /// Hosts by state (label `state`: up | down | maintenance).
    case hosts = "palm_coordinator_hosts"
    /// VMs the agents report.
    case vms = "palm_coordinator_vms"
    /// Agent heartbeats answered.
    case heartbeats = "palm_coordinator_heartbeats_total"
    /// One scheduling cycle (histogram).
    case schedulingCycle = "palm_coordinator_scheduling_cycle_seconds"
    /// Migrations by state (label `state`: requested | ticketed | running | in-doubt).
    case migrations = "palm_coordinator_migrations"
    /// Audit entries this coordinator wrote.
    case auditEntries = "palm_coordinator_audit_entries_total"
    /// 1 while this coordinator holds the leader lease, else 0.
    case leader = "palm_coordinator_leader"
    /// Hosts by what their TPM's attestation shows (label `trust`: trusted, untrusted, unenrolled —
    /// a host that reported a TPM not enrolled yet, or refused).
    case hostAttestation = "palm_coordinator_host_attestation"
    /// Changes of a host's attestation verdict (label `trust`: trusted, untrusted).
    case attestationChanges = "palm_coordinator_attestation_changes_total"

    // The process (Prometheus' standard names).
    case cpuSeconds = "process_cpu_seconds_total"
    case residentMemory = "process_resident_memory_bytes"
    case openFDs = "process_open_fds"
    case maxFDs = "process_max_fds"
    case startTime = "process_start_time_seconds"

    /// Histogram bucket upper bounds for the histograms above (seconds, or rounds).
    public var buckets: [Double]? {
        switch self {
        case .downtime: return [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
        case .duration: return [0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800]
        case .rounds: return [1, 2, 3, 4, 5, 7, 10, 15, 20, 30]
        case .schedulingCycle: return [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5]
        default: return nil
        }
    }
}
