import ArgumentParser
import Foundation
import PalmCoordinator
import PalmSecurity
import PalmTLS
import PalmWire

/// palm-coordinator: the cluster's scheduler and the operators' CLI.
struct PalmCoordinator: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "palm-coordinator",
        abstract: "palm's coordinator: decides every migration, issues tickets, enforces access control.",
        discussion: """
        `palm-coordinator serve` runs as the palm-coordinator systemd unit on one control host; the other
        subcommands are the operators' CLI and authenticate with the operator's client certificate.

        Files:
          /etc/palm/coordinator.toml     configuration (policy, limits)
          /etc/palm/tls/                 coordinator certificate, key, cluster CA, CRL
          /var/lib/palm/coordinator/     state: SQLite database, audit log
        """,
        version: "palm-coordinator \(PalmVersion.string) (wire protocol v\(WireProtocol.version))",
        subcommands: [Serve.self, Hosts.self, Maintenance.self, Ticket.self, Audit.self])
}

/// TLS material for talking to (or being) the coordinator.
struct TLSOptions: ParsableArguments {
    @Option(help: "Certificate chain (PEM): an operator's, or the coordinator's for serve.") var cert: String
    @Option(help: "Its private key (PEM).") var key: String
    @Option(help: "The cluster CA certificate.") var ca: String
    @Option(help: "The CA's CRL (optional).") var crl: String?

    func context() throws -> TLSContext {
        try TLSContext(configuration: TLSConfiguration(certificateChain: cert, privateKey: key, trustRoots: ca, crl: crl))
    }
}

struct ClientOptions: ParsableArguments {
    @Option(help: "The coordinator, HOST:PORT.") var server: String
    @OptionGroup var tls: TLSOptions
    @Flag(help: "Print JSON.") var json = false

    func call(_ request: APIRequest) throws {
        let parts = server.split(separator: ":")
        guard parts.count == 2, let port = UInt16(parts[1]) else { throw ValidationError("--server must be HOST:PORT") }
        let response: APIResponse
        do {
            response = try CoordinatorClient(host: String(parts[0]), port: port, context: try tls.context()).call(request)
        } catch {
            FileHandle.standardError.write(Data("palm-coordinator: error: \(error)\n".utf8))
            throw ExitCode(2)
        }
        guard response.ok else {
            FileHandle.standardError.write(Data("palm-coordinator: \(response.error ?? "failed")\n".utf8))
            throw ExitCode(1)
        }
        if json {
            let e = JSONEncoder()
            e.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try e.encode(response.rows), as: UTF8.self))
        } else {
            for row in response.rows { print(row.keys.sorted().map { "\($0)=\(row[$0]!)" }.joined(separator: "  ")) }
        }
    }
}

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the coordinator daemon.")
    @OptionGroup var tls: TLSOptions
    @Option(help: "Listen address.") var address = "0.0.0.0"
    @Option(help: "Listen port (0: any, printed).") var port: UInt16 = 7400
    @Option(help: "The database.") var db = "/var/lib/palm/coordinator/palm.sqlite"
    @Option(help: "The access policy (TOML).") var policy = "/etc/palm/policy.toml"

    func run() throws {
        do {
            let context = try tls.context()
            guard context.localIdentity.role == .coordinator else {
                throw ValidationError("--cert must carry the coordinator role (certs/palm-ca host NAME --role coordinator)")
            }
            let store = try CoordinatorStore(path: db)
            let service = CoordinatorService(store: store, audit: AuditLog(store: store, key: try SigningKey(pemFile: tls.key)),
                                             policy: try AccessPolicy.load(path: policy))
            let server = try CoordinatorServer(host: address, port: port, context: context, service: service) { event in
                FileHandle.standardError.write(Data("palm-coordinator: \(event)\n".utf8))
            }
            print("listening on \(address):\(server.listener.port)")
            fflush(stdout)
            server.run()
        } catch let e as ValidationError {
            throw e
        } catch {
            FileHandle.standardError.write(Data("palm-coordinator: error: \(error)\n".utf8))
            throw ExitCode(1)
        }
    }
}

struct Hosts: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List the hosts the coordinator knows.")
    @OptionGroup var client: ClientOptions
    func run() throws { try client.call(APIRequest(action: CoordinatorAction.hosts.rawValue)) }
}

struct Maintenance: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Put a host into or out of maintenance.")
    @Argument(help: "The host.") var host: String
    @Argument(help: "on or off.") var mode: String
    @OptionGroup var client: ClientOptions

    func validate() throws {
        guard mode == "on" || mode == "off" else { throw ValidationError("MODE must be on or off") }
    }

    func run() throws {
        try client.call(APIRequest(action: CoordinatorAction.maintenance.rawValue, arguments: ["host": host, "mode": mode]))
    }
}

struct Audit: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "The audit log.", subcommands: [Verify.self])

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check the audit chain: names the first entry that was edited, reordered or deleted.")
        @Option(help: "The coordinator database.") var db: String = "/var/lib/palm/coordinator/palm.sqlite"
        @Option(help: "The coordinator's certificate (PEM).") var coordinatorCert: String = "/etc/palm/tls/coordinator.pem"

        func run() throws {
            do {
                guard FileManager.default.fileExists(atPath: db) else { throw ValidationError("no database at \(db)") }
                let log = AuditLog(store: try CoordinatorStore(path: db), key: nil)
                let n = try log.verify(coordinatorKey: try VerifyingKey(certificateFile: coordinatorCert))
                print("audit log intact: \(n) entries, every hash chained and signed by the coordinator")
            } catch let e as ValidationError {
                throw e
            } catch let e as AuditLog.AuditError {
                FileHandle.standardError.write(Data("palm-coordinator: AUDIT LOG TAMPERED: \(e)\n".utf8))
                throw ExitCode(1)
            } catch {
                FileHandle.standardError.write(Data("palm-coordinator: error: \(error)\n".utf8))
                throw ExitCode(2)
            }
        }
    }
}

struct Ticket: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Migration tickets.", subcommands: [Issue.self])

    struct Issue: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Sign a migration ticket offline with the coordinator key (the daemon uses the same code).")
        @Option(help: "The coordinator's private key (PEM, ECDSA).") var key: String
        @Option(help: "The VM to migrate.") var vm: String
        @Option(help: "The VM's memory in bytes (or with K/M/G).") var memory: String
        @Option(help: "The source host's certificate (PEM).") var sourceCert: String
        @Option(help: "The destination host's certificate (PEM).") var destCert: String
        @Option(help: "Seconds the ticket stays valid.") var validity: UInt64 = 300
        @Option(help: "Where to write the ticket.") var out: String

        func run() throws {
            guard let bytes = ByteSize.parse(memory), bytes > 0 else { throw ValidationError("--memory: '\(memory)' is not a size") }
            guard validity > 0, validity <= 86_400 else { throw ValidationError("--validity must be 1…86400 seconds") }
            do {
                let issuer = TicketIssuer(key: try SigningKey(pemFile: key))
                let ticket = try issuer.issue(vm: vm, memoryBytes: bytes,
                                              source: try CertificateIdentity.load(pemFile: sourceCert).fingerprint,
                                              destination: try CertificateIdentity.load(pemFile: destCert).fingerprint,
                                              now: UInt64(Date().timeIntervalSince1970), validity: validity)
                guard FileManager.default.createFile(atPath: out, contents: Data(ticket.encoded()),
                                                     attributes: [.posixPermissions: 0o600]) else {
                    throw ValidationError("cannot write '\(out)'")
                }
                print("ticket \(ticket.id) for \(vm): valid \(validity) s, written to \(out)")
            } catch let e as ValidationError {
                throw e
            } catch {
                FileHandle.standardError.write(Data("palm-coordinator: error: \(error)\n".utf8))
                throw ExitCode(1)
            }
        }
    }
}

PalmCoordinator.main()
