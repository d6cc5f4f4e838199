import Foundation
import PalmConfig
import PalmControl
import PalmHypervisor
import PalmMigration
import PalmSecurity
import PalmSupport
import PalmXenDriver
import PalmTLS
import PalmWire

/// Which hypervisor driver an agent uses (`[hypervisor]`, `[sim]`, `[xen]`).
public struct HypervisorSettings: Sendable, Equatable {
    public var driver: String
    public var simRoot: String
    public var simMemoryLimit: UInt64
    /// Seconds a Xen guest gets to acknowledge and complete a suspend request.
    public var xenSuspendTimeout: Double
    /// Seconds a suspend is expected to take until the agent has measured one (downtime prediction).
    public var xenSuspendEstimate: Double
    /// Bytes of pages an incoming Xen domain holds while libxl still builds it (`xen.build_buffer_mib`).
    public var xenBuildBuffer: Int = 64 << 20

    static func load(_ file: ConfigFile) throws -> HypervisorSettings {
        var settings = HypervisorSettings(driver: try file.oneOf("hypervisor.driver", ["sim", "xen"], default: "xen"),
                           simRoot: try file.string("sim.root", default: "/dev/shm/palm-sim"),
                           simMemoryLimit: try file.bytes("sim.memory_limit", default: 16 << 30),
                           xenSuspendTimeout: try file.double("xen.suspend_timeout_s", default: 30, range: 1...600),
                           xenSuspendEstimate: try file.double("xen.suspend_estimate_ms", default: 300, range: 0...60_000) / 1000)
        settings.xenBuildBuffer = try file.int("xen.build_buffer_mib", default: 64, range: 0...4096) << 20
        return settings
    }

    public func make() throws -> Hypervisor {
        switch driver {
        case "sim": return try SimHypervisor(root: simRoot, memoryLimitBytes: simMemoryLimit)
        default: return try XenHypervisor(suspendTimeout: xenSuspendTimeout, suspendEstimate: xenSuspendEstimate,
                                          buildBufferBytes: xenBuildBuffer)
        }
    }
}

/// /etc/palm/source.toml
public struct SourceConfiguration {
    public var file: String
    public var tls: TLSConfiguration
    public var hypervisor: HypervisorSettings
    public var policy: ConvergencePolicy
    public var batchPages: Int
    /// Page streams per migration (the session channel included).
    public var streams: Int
    /// How MEMORY batches are compressed (`migration.compression`, default `auto`).
    public var compression: CompressionSetting
    /// The page streams' threads' nice value (`migration.page_thread_nice`, 0–19, default 10):
    /// bulk copying takes the CPU the rest of the host leaves (ThreadPriority).
    public var pageThreadNice = 10
    public var destinationPort: UInt16
    public var stateDirectory: String
    public var attestation: AttestationPolicy
    /// What a destination's platform must prove (`attestation.require`, `platform_policy`,
    /// `enrolled_keys`); under `serve`, the coordinator's.
    public var platform = PlatformTrust()
    /// The largest ATTEST (with a TPM's logs) this source reads (`attestation.max_evidence`).
    public var maxEvidence = 16 << 20
    /// Days a migration's evidence file is kept (`state.evidence_retention_days`).
    public var evidenceRetention = 90.0
    /// This host's TPM (`attestation.mode = "tpm"`, `tpm`, …): under `serve`, enrolled with the
    /// coordinator and quoted whenever it asks. The same keys as palm-dest's.
    public var hostAttestation = PlatformAttestationSettings(mode: .software, tpm: "", tpmTimeout: 10, pcrs: PlatformPolicy.defaultPCRs,
                                                             bootLog: PlatformAttestationSettings.defaultBootLog,
                                                             imaLog: PlatformAttestationSettings.defaultIMALog)
    /// Seconds to keep asking an unreachable destination how a committed migration ended.
    public var resolveTimeout: Double
    /// `palm-source serve`: the coordinator it reports to and takes orders from.
    public var coordinator: CoordinatorLink?
    /// Where `serve` exposes its metrics (`[metrics] listen`); nil: not at all.
    public var metricsListen: Endpoint? = nil

    /// Where `palm-source serve` reports: `[coordinator]`.
    public struct CoordinatorLink: Sendable, Equatable {
        /// HOST:PORT of palm-coordinator serve (`address`), or of each coordinator sharing the
        /// cluster's database (`endpoints = [...]`): tried in order, the leader found by failover.
        public var endpoints: [String]
        public var address: String { endpoints.joined(separator: ", ") }
        /// The coordinators' certificates (`certificate`, or `certificates = [...]` with one per
        /// coordinator): the only servers this agent takes orders from, and the keys one of which
        /// must have signed every ticket.
        public var certificates: [String]
        /// HOST:PORT at which other hosts reach this host's palm-dest.
        public var advertise: String

        /// All three keys, or none (then `serve` refuses to start).
        static func load(_ f: ConfigFile) throws -> CoordinatorLink? {
            let single = try f.optionalString("coordinator.address")
            let list = try f.stringArray("coordinator.endpoints")
            let certificates = try f.oneOrMany("coordinator.certificate", "coordinator.certificates", limit: 16)
            let advertise = try f.optionalString("coordinator.advertise")
            guard single != nil || !list.isEmpty || !certificates.isEmpty || advertise != nil else { return nil }
            if single != nil && !list.isEmpty {
                throw ConfigError.invalidValue(file: f.path, key: "coordinator.endpoints", reason: "give address or endpoints, not both")
            }
            let endpoints = single.map { [$0] } ?? list
            guard !endpoints.isEmpty else { throw ConfigError.missingKey(file: f.path, key: "coordinator.address") }
            guard endpoints.count <= 16 else {
                throw ConfigError.invalidValue(file: f.path, key: "coordinator.endpoints", reason: "at most 16 coordinators")
            }
            guard !certificates.isEmpty else { throw ConfigError.missingKey(file: f.path, key: "coordinator.certificate") }
            guard let advertise else { throw ConfigError.missingKey(file: f.path, key: "coordinator.advertise") }
            for (key, value) in endpoints.map({ (single == nil ? "coordinator.endpoints" : "coordinator.address", $0) }) + [("coordinator.advertise", advertise)] where Endpoint(value) == nil {
                throw ConfigError.invalidValue(file: f.path, key: key, reason: "'\(value)' is not HOST:PORT")
            }
            return CoordinatorLink(endpoints: endpoints, certificates: certificates, advertise: advertise)
        }
    }

    public static let defaultPath = "/etc/palm/source.toml"

    /// One page stream per CPU of this host, at most ``WireProtocol/maxStreams``.
    public static var defaultStreams: Int { min(WireProtocol.maxStreams, max(1, ProcessInfo.processInfo.activeProcessorCount)) }

    public static func load(path: String) throws -> SourceConfiguration {
        let f = try ConfigFile(path: path)
        var policy = ConvergencePolicy()
        policy.downtimeTarget = try f.double("policy.downtime_target_ms", default: 100, range: 1...60_000) / 1000
        policy.dirtyPageFloor = try f.int("policy.dirty_page_floor", default: 50, range: 0...1 << 30)
        policy.maxRounds = try f.int("policy.max_rounds", default: 30, range: 1...1000)
        policy.maxRAMMultiple = try f.double("policy.max_ram_multiple", default: 3, range: 1...100)
        policy.throttleInitial = try f.int("policy.throttle_initial_percent", default: 50, range: 0...99)
        policy.throttleStep = try f.int("policy.throttle_step_percent", default: 25, range: 1...99)
        policy.throttleMax = try f.int("policy.throttle_max_percent", default: 99, range: 0...99)
        policy.linkRatio = try f.double("policy.link_ratio", default: 1.0, range: 0.1...10)
        policy.minimumGain = try f.double("policy.minimum_gain", default: 0.1, range: 0...1)
        policy.maxProjectedRounds = try f.double("policy.max_projected_rounds", default: 5, range: 1...100)
        var config = SourceConfiguration(
            file: path, tls: try .load(f), hypervisor: try .load(f), policy: policy,
            batchPages: try f.int("migration.batch_pages", default: 256, range: 1...1000),
            streams: try f.int("migration.streams", default: SourceConfiguration.defaultStreams, range: 1...WireProtocol.maxStreams),
            compression: try CompressionSetting(name: f.oneOf("migration.compression", CompressionSetting.names, default: "auto")) ?? .auto,
            destinationPort: UInt16(try f.int("migration.destination_port", default: 7410, range: 1...65535)),
            stateDirectory: try f.string("state.directory", default: "/var/lib/palm/source"),
            attestation: AttestationPolicy(
                allowedAgents: Set(try f.stringArray("attestation.allowed_agents").map { $0.lowercased() }),
                allowedConfigs: Set(try f.stringArray("attestation.allowed_configs").map { $0.lowercased() }),
                allowedHypervisors: Set(try f.stringArray("attestation.allowed_hypervisors")),
                maxClockSkew: UInt64(try f.int("attestation.max_clock_skew_s", default: 60, range: 0...3600))),
            resolveTimeout: try f.double("migration.resolve_timeout_s", default: 60, range: 0...86_400),
            coordinator: try CoordinatorLink.load(f))
        config.pageThreadNice = try f.int("migration.page_thread_nice", default: 10, range: ThreadPriority.niceRange)
        for (key, values) in [("attestation.allowed_agents", config.attestation.allowedAgents),
                              ("attestation.allowed_configs", config.attestation.allowedConfigs)] {
            for v in values where Digest32(hex: v) == nil {
                throw ConfigError.invalidValue(file: path, key: key, reason: "'\(v)' is not a SHA-256 in hex")
            }
        }
        config.metricsListen = try MetricsSettings.listen(f)
        config.platform = try PlatformTrust.load(f)
        config.maxEvidence = try f.bytes("attestation.max_evidence", default: 16 << 20, range: (64 << 10)...(256 << 20))
        config.hostAttestation = try PlatformAttestationSettings.load(f)
        config.evidenceRetention = try f.double("state.evidence_retention_days", default: 90, range: 1...3650)
        try f.finish()
        return config
    }
}

/// /etc/palm/dest.toml
public struct DestinationConfiguration {
    public var file: String
    public var tls: TLSConfiguration
    public var hypervisor: HypervisorSettings
    public var listenAddress: String
    public var listenPort: UInt16
    public var maxConcurrent: Int
    /// Page streams one incoming migration may use.
    public var maxStreams: Int
    /// Seconds a page stream may wait for the others at a round barrier.
    public var streamTimeout: Double
    /// An extra page stream's thread's nice value once it joined (`migration.page_thread_nice`,
    /// 0–19, default 10): on Xen the hotplug scripts bringing the incoming domain's devices up
    /// during pre-copy run first.
    public var pageThreadNice = 10
    /// What a peer that has not authenticated may cost (`[listen]` pre-authentication keys).
    public var admission: AdmissionGate.Limits
    /// Days a finished migration stays in the ledger.
    public var ledgerRetention: Double
    /// Days a migration's evidence file is kept (`state.evidence_retention_days`).
    public var evidenceRetention = 90.0
    public var stateDirectory: String
    /// The coordinators' certificates (`security.coordinator_certificate`, or
    /// `security.coordinator_certificates = [...]`, one per coordinator): every ticket must be
    /// signed by one of their keys.
    public var coordinatorCertificates: [String]
    public var clockSkew: UInt64
    /// Where `serve` exposes its metrics (`[metrics] listen`); nil: not at all.
    public var metricsListen: Endpoint? = nil
    /// How this host attests: its TPM, or the software report only (`[attestation]`).
    public var attestation = PlatformAttestationSettings(mode: .software, tpm: "", tpmTimeout: 10, pcrs: PlatformPolicy.defaultPCRs,
                                                         bootLog: PlatformAttestationSettings.defaultBootLog,
                                                         imaLog: PlatformAttestationSettings.defaultIMALog)

    public static let defaultPath = "/etc/palm/dest.toml"

    public static func load(path: String) throws -> DestinationConfiguration {
        let f = try ConfigFile(path: path)
        var config = DestinationConfiguration(
            file: path, tls: try .load(f), hypervisor: try .load(f),
            listenAddress: try f.string("listen.address", default: "0.0.0.0"),
            listenPort: UInt16(try f.int("listen.port", default: 7410, range: 0...65535)),
            maxConcurrent: try f.int("listen.max_concurrent", default: 4, range: 1...64),
            maxStreams: try f.int("listen.max_streams", default: WireProtocol.maxStreams, range: 1...WireProtocol.maxStreams),
            streamTimeout: try f.double("listen.stream_timeout_s", default: 60, range: 1...3600),
            admission: try AdmissionGate.Limits.load(f),
            ledgerRetention: try f.double("state.ledger_retention_days", default: 30, range: 1...3650),
            stateDirectory: try f.string("state.directory", default: "/var/lib/palm/dest"),
            coordinatorCertificates: try f.oneOrMany("security.coordinator_certificate", "security.coordinator_certificates", limit: 16),
            clockSkew: UInt64(try f.int("security.clock_skew_s", default: 30, range: 0...3600)))
        guard !config.coordinatorCertificates.isEmpty else { throw ConfigError.missingKey(file: path, key: "security.coordinator_certificate") }
        config.metricsListen = try MetricsSettings.listen(f)
        config.pageThreadNice = try f.int("migration.page_thread_nice", default: 10, range: ThreadPriority.niceRange)
        config.attestation = try PlatformAttestationSettings.load(f)
        config.evidenceRetention = try f.double("state.evidence_retention_days", default: 90, range: 1...3650)
        try f.finish()
        return config
    }
}
