import Foundation
import PalmHypervisor
import PalmMigration
import PalmSecurity
import PalmTLS
import PalmWire

/// The `[tls]` table every palm configuration has.
extension TLSConfiguration {
    static func load(_ file: ConfigFile) throws -> TLSConfiguration {
        TLSConfiguration(
            certificateChain: try file.string("tls.certificate"),
            privateKey: try file.string("tls.key"),
            trustRoots: try file.string("tls.ca"),
            crl: try file.optionalString("tls.crl"),
            connectTimeout: try file.double("tls.connect_timeout_s", default: 5, range: 0.1...300),
            handshakeTimeout: try file.double("tls.handshake_timeout_s", default: 10, range: 0.1...300),
            ioTimeout: try file.double("tls.io_timeout_s", default: 60, range: 0.1...3600))
    }
}

/// Which hypervisor driver an agent uses (`[hypervisor]`, `[sim]`).
public struct HypervisorSettings: Sendable, Equatable {
    public var driver: String
    public var simRoot: String
    public var simMemoryLimit: UInt64

    static func load(_ file: ConfigFile) throws -> HypervisorSettings {
        HypervisorSettings(driver: try file.oneOf("hypervisor.driver", ["sim", "xen"], default: "xen"),
                           simRoot: try file.string("sim.root", default: "/dev/shm/palm-sim"),
                           simMemoryLimit: try file.bytes("sim.memory_limit", default: 16 << 30))
    }

    public func make() throws -> Hypervisor {
        switch driver {
        case "sim": return try SimHypervisor(root: simRoot, memoryLimitBytes: simMemoryLimit)
        default: throw HypervisorError.unsupported("the xen driver is not built yet; use driver = \"sim\"")
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
    public var destinationPort: UInt16
    public var stateDirectory: String
    public var attestation: AttestationPolicy
    /// Seconds to keep asking an unreachable destination how a committed migration ended.
    public var resolveTimeout: Double

    public static let defaultPath = "/etc/palm/source.toml"

    public static func load(path: String) throws -> SourceConfiguration {
        let f = try ConfigFile(path: path)
        var policy = ConvergencePolicy()
        policy.downtimeTarget = try f.double("policy.downtime_target_ms", default: 100, range: 1...60_000) / 1000
        policy.dirtyPageFloor = try f.int("policy.dirty_page_floor", default: 50, range: 0...1 << 30)
        policy.maxRounds = try f.int("policy.max_rounds", default: 30, range: 1...1000)
        policy.maxRAMMultiple = try f.double("policy.max_ram_multiple", default: 3, range: 1...100)
        policy.throttleInitial = try f.int("policy.throttle_initial_percent", default: 20, range: 0...99)
        policy.throttleStep = try f.int("policy.throttle_step_percent", default: 10, range: 1...99)
        policy.throttleMax = try f.int("policy.throttle_max_percent", default: 99, range: 0...99)
        let config = SourceConfiguration(
            file: path, tls: try .load(f), hypervisor: try .load(f), policy: policy,
            batchPages: try f.int("migration.batch_pages", default: 256, range: 1...1000),
            destinationPort: UInt16(try f.int("migration.destination_port", default: 7410, range: 1...65535)),
            stateDirectory: try f.string("state.directory", default: "/var/lib/palm/source"),
            attestation: AttestationPolicy(
                allowedAgents: Set(try f.stringArray("attestation.allowed_agents").map { $0.lowercased() }),
                allowedConfigs: Set(try f.stringArray("attestation.allowed_configs").map { $0.lowercased() }),
                allowedHypervisors: Set(try f.stringArray("attestation.allowed_hypervisors")),
                maxClockSkew: UInt64(try f.int("attestation.max_clock_skew_s", default: 60, range: 0...3600))),
            resolveTimeout: try f.double("migration.resolve_timeout_s", default: 60, range: 0...86_400))
        for (key, values) in [("attestation.allowed_agents", config.attestation.allowedAgents),
                              ("attestation.allowed_configs", config.attestation.allowedConfigs)] {
            for v in values where Digest32(hex: v) == nil {
                throw ConfigError.invalidValue(file: path, key: key, reason: "'\(v)' is not a SHA-256 in hex")
            }
        }
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
    public var stateDirectory: String
    /// The coordinator's certificate: tickets must be signed by its key.
    public var coordinatorCertificate: String
    public var clockSkew: UInt64

    public static let defaultPath = "/etc/palm/dest.toml"

    public static func load(path: String) throws -> DestinationConfiguration {
        let f = try ConfigFile(path: path)
        let config = DestinationConfiguration(
            file: path, tls: try .load(f), hypervisor: try .load(f),
            listenAddress: try f.string("listen.address", default: "0.0.0.0"),
            listenPort: UInt16(try f.int("listen.port", default: 7410, range: 0...65535)),
            maxConcurrent: try f.int("listen.max_concurrent", default: 4, range: 1...64),
            stateDirectory: try f.string("state.directory", default: "/var/lib/palm/dest"),
            coordinatorCertificate: try f.string("security.coordinator_certificate"),
            clockSkew: UInt64(try f.int("security.clock_skew_s", default: 30, range: 0...3600)))
        try f.finish()
        return config
    }
}
