import ArgumentParser
import Foundation
import PalmAgent
import PalmMetricsEndpoint
import PalmSystemd
import PalmCrypto
import PalmSecurity
import PalmTPM
import PalmWire

/// palm-dest: the inbound side of a migration on every host.
struct PalmDest: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "palm-dest",
        abstract: "palm's inbound migration agent: accepts migrations over mutual TLS 1.3 and resumes the VM.",
        discussion: """
        Runs on every host as the palm-dest systemd unit. It attests itself to the source, rebuilds the VM,
        verifies the signed manifest and resumes it.

        Files:
          /etc/palm/dest.toml            configuration
          /etc/palm/tls/                 host certificate, key, cluster CA, CRL (made with certs/palm-ca)
          /var/lib/palm/dest/            state
        """,
        version: "palm-dest \(PalmVersion.string) (wire protocol v\(WireProtocol.version))",
        subcommands: [Serve.self, Measure.self, EvidenceCommand<DestinationConfiguration>.self, TLSKeyCommand<DestinationConfiguration>.self],
        defaultSubcommand: Serve.self)
}

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Listen for incoming migrations.")
    @Option(help: "Configuration file.") var config: String = DestinationConfiguration.defaultPath

    func run() throws {
        let logger = DaemonLogging.bootstrap(identifier: "palm-dest")
        do {
            let configuration = try DestinationConfiguration.load(path: config)
            let metrics = try configuration.metricsListen.map { try MetricsEndpoint.start(listen: $0, logger: logger) }
            defer { metrics?.stop() }
            let server = try DestinationServer(configuration: configuration, logger: logger)
            let runtime = DaemonRuntime(logger: logger)
            runtime.liveness.register("accept")
            server.beatInterval = runtime.liveness.maxWait(fallback: 5)
            server.onBeat = { runtime.liveness.beat("accept") }
            server.onStatus = { runtime.notifier.status($0) }
            print("listening on \(server.configuration.listenAddress):\(server.port)")
            fflush(nil)  // stdout: the "listening" line a supervisor or test waits for
            runtime.run(status: server.status, serve: server.run, stop: { server.close() }) {
                try server.reload()
                return server.status
            }
        } catch {
            CLI.fail("palm-dest", error)
            throw ExitCode(1)
        }
    }
}

struct Measure: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print this agent's attestation measurement (for the sources' [attestation] allowlist).",
        discussion: """
        With --platform-policy FILE (attestation.mode = "tpm"): also writes a platform policy learned from this host's \
        measured-boot and IMA logs as they are now — everything this host has run so far is allowed, and this \
        palm-dest — for a source's attestation.platform_policy without a coordinator. Declare the host good first: \
        run it as it will run, then learn.
        """)
    @Option(help: "Configuration file.") var config: String = DestinationConfiguration.defaultPath
    @Option(help: "Write a platform policy learned from this host's logs (JSON) to this file.") var platformPolicy: String?

    func run() throws {
        do {
            let c = try DestinationConfiguration.load(path: config)
            if platformPolicy != nil && c.attestation.mode != .tpm {
                throw ValidationError("--platform-policy needs attestation.mode = \"tpm\" (a platform policy is checked against a TPM's quote)")
            }
            let m = try Measurement.measure(configPath: c.file, hypervisor: try c.hypervisor.make())
            print("allowed_agents = [\"\(m.agentDigest.hex)\"]")
            print("allowed_configs = [\"\(m.configDigest.hex)\"]")
            print("allowed_hypervisors = [\"\(m.hypervisor) \(m.hypervisorVersion)\"]")
            switch c.attestation.mode {
            case .software:
                print("# this destination attests in software only (attestation.mode = software): a source accepts it only with")
                print("require = \"software\"")
            case .tpm:
                let device = TPMDevice(tcti: c.attestation.tpm, timeout: c.attestation.tpmTimeout)
                let name = Hex.encode(try TPMPublicArea(decoding: try device.attestationKey()).name)
                let host = (try? CertificateIdentity.load(pemFile: c.tls.certificateChain))?.commonName ?? "HOST"
                print("require = \"tpm\"")
                print("enrolled_keys = [\"\(host)=\(name)\"]")
                if let file = platformPolicy {
                    let policy = try c.attestation.learnedPolicy(agentDigest: m.agentDigest)
                    try policy.fileText().write(toFile: file, atomically: true, encoding: .utf8)
                    print("platform_policy = \"\(file)\"  # PCRs \(policy.pcrs.map(String.init).joined(separator: ",")): \(policy.boot.count) boot components, \(policy.files.count) files")
                }
            }
        } catch {
            CLI.fail("palm-dest", error)
            throw ExitCode(1)
        }
    }
}

PalmDest.main()
