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
        subcommands: [Ticket.self, Audit.self])
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
            let units: [Character: UInt64] = ["K": 1 << 10, "M": 1 << 20, "G": 1 << 30]
            let m = memory.uppercased()
            let bytes = m.last.flatMap { units[$0] }.flatMap { mult in UInt64(m.dropLast()).map { $0 * mult } } ?? UInt64(m)
            guard let bytes, bytes > 0 else { throw ValidationError("--memory: '\(memory)' is not a size") }
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
