import PalmSecurity
/// What a host's palm-source tells the coordinator in every `agent.heartbeat`.
///
/// The host's name is never in the report: the coordinator takes it from the agent's certificate.
/// Outcomes are repeated in every heartbeat until the coordinator acknowledged them (the agent
/// keeps them on disk), so a coordinator that was down when a migration ended still learns how it
/// ended; the coordinator applies each outcome at most once.
public struct HostReport: Codable, Sendable, Equatable {
    /// Where this host's palm-dest accepts migrations, HOST:PORT as other hosts reach it.
    public var destinationAddress: String
    /// CPUs and their load (0 = idle, 1 = every CPU busy).
    public var cpus: Int
    public var cpuLoad: Double
    /// Guest memory this host can hold, and how much of it VMs (including incoming ones) use.
    public var memoryTotal: UInt64
    public var memoryUsed: UInt64
    public var vms: [VMReport]
    /// Migrations this agent is running now, with their latest progress.
    public var active: [MigrationProgressReport]
    /// Migrations that ended and that the coordinator has not acknowledged yet.
    public var outcomes: [MigrationOutcome]
    /// This host's TPM: identity, credential answer, quote (absent: no TPM configured).
    public var platform: PlatformReport?
    /// The version of the platform trust (policy, enrolled keys) this agent holds.
    public var platformTrustVersion: String?

    public init(destinationAddress: String, cpus: Int, cpuLoad: Double, memoryTotal: UInt64, memoryUsed: UInt64,
                vms: [VMReport], active: [MigrationProgressReport] = [], outcomes: [MigrationOutcome] = []) {
        self.destinationAddress = destinationAddress
        self.cpus = cpus
        self.cpuLoad = cpuLoad
        self.memoryTotal = memoryTotal
        self.memoryUsed = memoryUsed
        self.vms = vms
        self.active = active
        self.outcomes = outcomes
    }
}

/// One VM running (or paused) on the reporting host.
public struct VMReport: Codable, Sendable, Equatable {
    public var name: String
    public var memoryBytes: UInt64
    /// Pages the guest dirties per second: measured in its last migration, else the driver's estimate.
    public var dirtyRate: Double
    /// CPUs' worth of load the VM puts on its host.
    public var cpu: Double
    /// Paused (e.g. frozen by a migration that has not resolved yet).
    public var paused: Bool

    public init(name: String, memoryBytes: UInt64, dirtyRate: Double, cpu: Double = 0, paused: Bool = false) {
        self.paused = paused
        self.name = name
        self.memoryBytes = memoryBytes
        self.dirtyRate = dirtyRate
        self.cpu = cpu
    }
}

/// The live state of one running migration, as its source agent last saw it.
public struct MigrationProgressReport: Codable, Sendable, Equatable {
    public var id: String
    public var phase: String
    public var round: Int
    public var pagesLeft: UInt64
    public var bytesPerSecond: Double

    public init(id: String, phase: String, round: Int, pagesLeft: UInt64, bytesPerSecond: Double) {
        self.id = id
        self.phase = phase
        self.round = round
        self.pagesLeft = pagesLeft
        self.bytesPerSecond = bytesPerSecond
    }
}

/// How a migration ended on its source agent.
public struct MigrationOutcome: Codable, Sendable, Equatable {
    public enum Result: String, Codable, Sendable {
        /// The destination committed and runs the VM.
        case committed
        /// Nothing committed: the VM runs on the source.
        case aborted
        /// Cancelled by an operator before the commit point: the VM runs on the source.
        case cancelled
        /// COMMIT was sent and the destination could not be asked how it ended (`palm-source recover`).
        case inDoubt = "in-doubt"
    }

    public var id: String
    public var result: Result
    public var detail: String
    public var downtimeMs: Double?
    public var totalSeconds: Double?
    public var rounds: Int?

    public init(id: String, result: Result, detail: String, downtimeMs: Double? = nil, totalSeconds: Double? = nil,
                rounds: Int? = nil) {
        self.id = id
        self.result = result
        self.detail = detail
        self.downtimeMs = downtimeMs
        self.totalSeconds = totalSeconds
        self.rounds = rounds
    }
}

/// The coordinator's answer to a heartbeat: what to start, what to cancel, which outcomes it has
/// recorded, and the attestation allowlist every destination must match.
public struct AgentOrders: Codable, Sendable, Equatable {
    public var start: [MigrationOrder]
    public var cancel: [String]
    /// Outcome ids now recorded: the agent forgets them.
    public var acknowledged: [String]
    public var allowlist: AttestationAllowlist
    /// Seconds until the next heartbeat.
    public var heartbeatInterval: Double
    /// The leader's lease epoch when it issued these orders (nil from a coordinator without one).
    /// An agent that has seen a higher epoch refuses them: they come from a deposed leader.
    public var epoch: Int64?
    /// What the coordinator asks of this host's TPM (enrollment, a quote).
    public var platform: PlatformRequest?
    /// The platform trust in force (``PlatformTrust/version``). `allowlist.platform` carries it
    /// only when the agent reported another version; otherwise the agent's copy is current.
    public var platformTrustVersion: String?

    public init(start: [MigrationOrder] = [], cancel: [String] = [], acknowledged: [String] = [],
                allowlist: AttestationAllowlist = AttestationAllowlist(), heartbeatInterval: Double = 5) {
        self.start = start
        self.cancel = cancel
        self.acknowledged = acknowledged
        self.allowlist = allowlist
        self.heartbeatInterval = heartbeatInterval
    }
}

/// One migration the coordinator orders a source agent to run.
public struct MigrationOrder: Codable, Sendable, Equatable {
    /// The coordinator's migration id (also the ticket's id).
    public var id: String
    public var vm: String
    /// The destination host's name (what its certificate says) and palm-dest address.
    public var destinationHost: String
    public var destinationAddress: String
    /// The signed ticket, hex.
    public var ticket: String
    public var mode: String
    public var downtimeMs: Double?

    public init(id: String, vm: String, destinationHost: String, destinationAddress: String, ticket: String,
                mode: String = "pre-copy", downtimeMs: Double? = nil) {
        self.id = id
        self.vm = vm
        self.destinationHost = destinationHost
        self.destinationAddress = destinationAddress
        self.ticket = ticket
        self.mode = mode
        self.downtimeMs = downtimeMs
    }
}

/// The destination measurements the cluster accepts (see `palm-dest measure`), with the meaning of
/// the agents' own `[attestation]` table: no agent or hypervisor listed denies every destination;
/// no configuration listed accepts any configuration.
///
/// `platform` is what a destination's platform must prove: the attestation required, the platform
/// policy, each host's enrolled attestation key. Absent (a coordinator before TPM attestation):
/// a source requires `tpm` with an empty policy, i.e. refuses every destination.
public struct AttestationAllowlist: Codable, Sendable, Equatable {
    public var agents: [String]
    public var configs: [String]
    public var hypervisors: [String]
    public var platform: PlatformTrust?

    public init(agents: [String] = [], configs: [String] = [], hypervisors: [String] = [], platform: PlatformTrust? = nil) {
        self.agents = agents
        self.configs = configs
        self.hypervisors = hypervisors
        self.platform = platform
    }
}
