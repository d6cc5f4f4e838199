import ArgumentParser
import Foundation
import PalmCoordinator
import PalmSecurity
import PalmCrypto
import PalmTLS
import PalmWire

struct Audit: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "The audit log.", subcommands: [Verify.self])

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check the audit chain: names the first entry that was edited, reordered or deleted.",
            discussion: """
                With --head (the head file the coordinator keeps beside its database, or a copy of it), or with \
                --head-seq and --head-hash (from the journal: journalctl PALM_EVENT=audit.head), it also checks that \
                the log still holds the newest entry the coordinator recorded: entries removed from the end, or an \
                older database put back, are reported as tampering.
                """)
        @Option(help: "The coordinator database (SQLite).") var db: String = "/var/lib/palm/coordinator/palm.sqlite"
        @Option(help: "The coordinators' PostgreSQL database instead (postgresql://USER@HOST:PORT/DB).") var url: String?
        @Option(help: "A coordinator's certificate (PEM); repeat it for every coordinator that has led on this database.")
        var coordinatorCert: [String] = ["/etc/palm/tls/coordinator.pem"]
        @Option(help: "An audit head file (state.audit_head of coordinator.toml, or a copy).") var head: String?
        @Option(help: "The newest entry's sequence number, as the journal recorded it (with --head-hash).") var headSeq: Int64?
        @Option(help: "The newest entry's hash, as the journal recorded it (with --head-seq).") var headHash: String?

        func validate() throws {
            if (headSeq == nil) != (headHash == nil) { throw ValidationError("--head-seq and --head-hash go together") }
            if head != nil && headSeq != nil { throw ValidationError("give --head or --head-seq/--head-hash, not both") }
        }

        func run() throws {
            do {
                let location: StoreLocation
                if let url {
                    location = .postgresql(url: url, connectTimeout: 5)
                } else {
                    guard FileManager.default.fileExists(atPath: db) else { throw ValidationError("no database at \(db)") }
                    location = .sqlite(path: db)
                }
                let log = AuditLog(store: try CoordinatorStore(location), key: nil)
                let coordinators = try CoordinatorTrust(certificateFiles: coordinatorCert)
                var anchor: AuditHead?
                if let head { anchor = try AuditHead.load(from: head) }
                let n: Int
                if let seq = headSeq, let hash = headHash {
                    // The journal's copy carries no signature to check: the chain must hold this very entry.
                    n = try log.verify(coordinators: coordinators, headSeq: seq, headHash: hash)
                } else {
                    n = try log.verify(coordinators: coordinators, head: anchor)
                }
                let checked = anchor.map { " up to the head (entry \($0.seq))" } ?? headSeq.map { " up to entry \($0)" } ?? ""
                print("audit log intact\(checked): \(n) entries, every hash chained and signed by a listed coordinator")
            } catch let e as ValidationError {
                throw e
            } catch let e as AuditLog.AuditError {
                if case .unreadableHead = e {
                    FileHandle.standardError.write(Data("palm-coordinator: error: \(e)\n".utf8))
                    throw ExitCode(2)
                }
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
        @Option(help: ArgumentHelp("The leader epoch to sign the ticket under.",
                                   discussion: "A destination refuses a ticket of a lower epoch than the highest it has accepted; give the epoch the cluster's coordinator leads under (palm-coordinator log: coordinator.leading)."))
        var epoch: UInt64 = 0
        @Option(help: "Where to write the ticket.") var out: String

        func run() throws {
            guard let bytes = ByteSize.parse(memory), bytes > 0 else { throw ValidationError("--memory: '\(memory)' is not a size") }
            guard validity > 0, validity <= 86_400 else { throw ValidationError("--validity must be 1…86400 seconds") }
            do {
                let issuer = TicketIssuer(key: try SigningKey(pemFile: key))
                let ticket = try issuer.issue(vm: vm, memoryBytes: bytes,
                                              source: try CertificateIdentity.load(pemFile: sourceCert).fingerprint,
                                              destination: try CertificateIdentity.load(pemFile: destCert).fingerprint,
                                              now: UInt64(Date().timeIntervalSince1970), validity: validity, epoch: epoch)
                guard FileManager.default.createFile(atPath: out, contents: Data(ticket.encoded()),
                                                     attributes: [.posixPermissions: 0o600]) else {
                    throw ValidationError("cannot write '\(out)'")
                }
                print("ticket \(ticket.id) for \(vm): valid \(validity) s, epoch \(epoch), written to \(out)")
            } catch let e as ValidationError {
                throw e
            } catch {
                FileHandle.standardError.write(Data("palm-coordinator: error: \(error)\n".utf8))
                throw ExitCode(1)
            }
        }
    }
}
