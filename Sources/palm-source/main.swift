import ArgumentParser
import PalmHypervisor
import Foundation
import PalmAgent
import PalmConfig
import PalmSystemd
import PalmMetricsEndpoint
import PalmMigration
import PalmTLS
import PalmWire

/// palm-source: the outbound side of a migration on every host.
struct PalmSource: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "palm-source",
        abstract: "palm's outbound migration agent: streams a running VM to a palm-dest over mutual TLS 1.3.",
        discussion: """
        Runs on every host. It talks to the local hypervisor, runs the multi-pass pre-copy engine and
        streams pages to the destination agent.

        Files:
          /etc/palm/source.toml          configuration
          /etc/palm/tls/                 host certificate, key, cluster CA, CRL (made with certs/palm-ca)
          /var/lib/palm/source/          state
        """,
        version: "palm-source \(PalmVersion.string) (wire protocol v\(WireProtocol.version))",
        subcommands: [Serve.self, Migrate.self, VMs.self, Recover.self, EvidenceCommand<SourceConfiguration>.self,
                      TLSKeyCommand<SourceConfiguration>.self])
}

struct ConfigOption: ParsableArguments {
    @Option(help: "Configuration file.") var config: String = SourceConfiguration.defaultPath
}

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the host agent: report to the coordinator and run the migrations it orders.")
    @OptionGroup var options: ConfigOption

    func run() throws {
        let logger = DaemonLogging.bootstrap(identifier: "palm-source")
        do {
            let configuration = try SourceConfiguration.load(path: options.config)
            let metrics = try configuration.metricsListen.map { try MetricsEndpoint.start(listen: $0, logger: logger) }
            defer { metrics?.stop() }
            let daemon = try SourceDaemon(configuration: configuration, logger: logger)
            daemon.recover()
            let runtime = DaemonRuntime(logger: logger)
            runtime.liveness.register("heartbeat")
            daemon.beatInterval = runtime.liveness.maxWait(fallback: 5)
            daemon.onBeat = { runtime.liveness.beat("heartbeat") }
            daemon.onStatus = { runtime.notifier.status($0) }
            runtime.run(status: "reporting to \(daemon.link.address)", serve: daemon.run, stop: { daemon.stop() }) {
                try daemon.reload()
                return "reloaded; " + daemon.status
            }
        } catch {
            CLI.fail("palm-source", error)
            throw ExitCode(1)
        }
    }
}

struct Migrate: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Live-migrate a VM to a destination host.")
    @Argument(help: "The VM to migrate.") var vm: String
    @Option(help: "Destination HOST[:PORT] running palm-dest.") var to: String
    @Option(help: "The name the destination's certificate must carry (default: the host).") var serverName: String?
    @Option(help: "pre-copy (multi-pass, default) or stop-and-copy.") var mode: String = "pre-copy"
    @Option(help: "Downtime target in milliseconds (overrides the configuration).") var downtimeMs: Double?
    @Option(help: "The coordinator's migration ticket (palm-coordinator ticket issue).") var ticket: String
    @Option(help: "Page streams, 1-8 (overrides migration.streams).") var streams: Int?
    @Option(help: "MEMORY batch compression: auto (lz4 where a trial measures it faster), none, lz4 or zstd (overrides migration.compression).") var compression: String?
    @Flag(help: "Print the report as JSON.") var json = false
    @OptionGroup var options: ConfigOption

    func validate() throws {
        guard MigrationMode(name: mode) != nil else { throw ValidationError("--mode must be pre-copy or stop-and-copy") }
        if let d = downtimeMs, !(d > 0 && d <= 60_000) { throw ValidationError("--downtime-ms must be in (0, 60000]") }
        if let n = streams, !(1...WireProtocol.maxStreams).contains(n) { throw ValidationError("--streams must be 1 to \(WireProtocol.maxStreams)") }
        if let c = compression, CompressionSetting(name: c) == nil { throw ValidationError("--compression must be auto, none, lz4 or zstd") }
    }

    func run() throws {
        let logger = CLI.bootstrapLogging(label: "palm-source", level: json ? .warning : .info)
        do {
            let config = try SourceConfiguration.load(path: options.config)
            guard let destination = Endpoint(to, defaultPort: config.destinationPort) else {
                throw ValidationError("--to must be HOST or HOST:PORT, not '\(to)'")
            }
            guard let ticketBytes = FileManager.default.contents(atPath: ticket) else {
                throw ValidationError("--ticket: cannot read '\(ticket)'")
            }
            var request = SourceAgent.Request(vm: vm, host: destination.host, port: destination.port, serverName: serverName,
                                              mode: MigrationMode(name: mode) ?? .preCopy,
                                              downtimeTarget: downtimeMs.map { $0 / 1000 }, ticket: Array(ticketBytes))
            request.streams = streams
            request.compression = compression.flatMap(CompressionSetting.init(name:))
            let report = try SourceAgent(configuration: config, logger: logger)
                .migrate(request, progress: json ? { _ in } : CLI.progressPrinter())
            print(json ? report.json() : report.rendered())
        } catch let e as ValidationError {
            throw e
        } catch {
            CLI.fail("palm-source", error)
            throw ExitCode(1)
        }
    }
}

struct VMs: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "vms", abstract: "List the VMs on this host.")
    @OptionGroup var options: ConfigOption
    @Flag(help: "Print JSON (exact sizes: memoryBytes is what a ticket for the VM must cover).") var json = false
    func run() throws {
        do {
            let config = try SourceConfiguration.load(path: options.config)
            let vms = try config.hypervisor.make().listVMs()
            if json {
                let e = JSONEncoder()
                e.outputFormatting = [.prettyPrinted, .sortedKeys]
                print(String(decoding: try e.encode(vms.map(VMListing.init)), as: UTF8.self))
                return
            }
            for vm in vms {
                print("\(vm.name)\t\(vm.memoryBytes >> 20) MiB\t\(vm.vcpus) vCPU\t\(vm.state.rawValue)")
            }
        } catch {
            CLI.fail("palm-source", error)
            throw ExitCode(1)
        }
    }
}

struct Recover: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Settle migrations a stopped agent left behind: resume, or destroy what the destination committed.")
    @OptionGroup var options: ConfigOption

    func run() throws {
        let logger = CLI.bootstrapLogging(label: "palm-source")
        do {
            let config = try SourceConfiguration.load(path: options.config)
            let handoff = try SourceHandoff(stateDirectory: config.stateDirectory,
                                            context: try HostTLS.context(config.tls, tpm: config.hostAttestation), logger: logger)
            let inDoubt = handoff.recoverAll(hypervisor: try config.hypervisor.make(), resolveTimeout: config.resolveTimeout)
            if !inDoubt.isEmpty {
                CLI.fail("palm-source", MigrationError.commitInDoubt("migrations \(inDoubt.joined(separator: ", ")) unresolved"))
                throw ExitCode(2)
            }
        } catch let e as ExitCode {
            throw e
        } catch {
            CLI.fail("palm-source", error)
            throw ExitCode(1)
        }
    }
}

PalmSource.main()

/// One line of `palm-source vms --json`.
struct VMListing: Encodable {
    var name: String
    var memoryBytes: UInt64
    var vcpus: UInt32
    var state: String
    init(_ vm: VMInfo) {
        name = vm.name
        memoryBytes = vm.memoryBytes
        vcpus = vm.vcpus
        state = vm.state.rawValue
    }
}
