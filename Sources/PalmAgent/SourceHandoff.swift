import PalmSupport
import Foundation
import Logging
import PalmHypervisor
import PalmMigration
import PalmProtection
import PalmCrypto
import PalmTLS
import PalmWire

/// The source's side of the commit rule, shared by `migrate` and `recover`.
///
/// ```text
///   (no record) --start--> started --COMMIT about to be sent--> commit-intent --DONE--> (no record)
///   started, agent alive, any failure        → resume the VM here, clear
///   started, agent died (recover)            → resume the VM here: no COMMIT was ever sent
///   commit-intent, no DONE (or agent died)   → RESOLVE at the destination:
///        committed → destroy the local copy;  aborted → resume it here;
///        destination unreachable → keep the VM paused and ask again later (never guess)
/// ```
/// So at every instant at most one copy runs, and a VM is never resumed on the source once the
/// destination may have resumed it.
public struct SourceHandoff: Sendable {
    public let journal: HandoffJournal
    public let context: TLSContext
    public let logger: Logger

    public init(stateDirectory: String, context: TLSContext, logger: Logger) throws {
        journal = try HandoffJournal(directory: stateDirectory + "/migrations")
        self.context = context
        self.logger = logger
    }

    public struct Target: Sendable {
        public var id: [UInt8]
        public var vm: String
        public var host: String
        public var port: UInt16
        public var serverName: String?
        public var destination: Digest32
    }

    func record(_ t: Target, phase: String) -> [String: String] {
        var r = ["vm": t.vm, "phase": phase, "host": t.host, "port": "\(t.port)", "destination": t.destination.hex,
                 "pid": "\(getpid())"]
        if let s = t.serverName { r["server_name"] = s }
        return r
    }

    func target(id: String, _ r: [String: String]) -> Target? {
        guard let vm = r["vm"], let host = r["host"], let port = r["port"].flatMap(UInt16.init),
              let dest = r["destination"].flatMap(Digest32.init(hex:)), let bytes = Hex.decode(id), bytes.count == 16 else {
            return nil
        }
        return Target(id: bytes, vm: vm, host: host, port: port, serverName: r["server_name"], destination: dest)
    }

    /// The sender's journal for migration `t`: records in this agent's hand-off journal, RESOLVE
    /// at `t`'s destination when DONE does not arrive.
    public func journal(for t: Target, resolveTimeout: Double) -> SourceJournal {
        Journal(handoff: self, target: t, resolveTimeout: resolveTimeout)
    }

    struct Journal: SourceJournal {
        let handoff: SourceHandoff
        let target: Target
        let resolveTimeout: Double
        var id: String { Hex.encode(target.id) }

        func recordStart() throws { try handoff.journal.write(id, handoff.record(target, phase: "started")) }
        func recordCommitIntent() throws { try handoff.journal.write(id, handoff.record(target, phase: "commit-intent")) }
        func recordFinished() { handoff.journal.remove(id) }
        var typicalRecordSeconds: Double? { handoff.journal.typicalWriteSeconds }
        func resolveInDoubt() throws -> Resolution { try handoff.resolve(target, timeout: resolveTimeout) }
    }

    /// Asks the destination how migration `t` ended, retrying until `timeout`.
    public func resolve(_ t: Target, timeout: Double) throws -> Resolution {
        let deadline = MonotonicClock.now() + timeout
        var lastError: Error = MigrationError.commitInDoubt("not asked yet")
        repeat {
            do {
                let ch = try TLSChannel.connect(host: t.host, port: t.port, serverName: t.serverName, context: context)
                defer { ch.close() }
                guard ch.peer.fingerprint == t.destination else {
                    throw MigrationError.ticketRejected("the peer at \(t.host) is not the migration's destination")
                }
                try ch.send(.resolve(migrationID: t.id))
                guard case let .resolution(id, verdict) = try FrameReader(stream: ch, limits: WireLimits(maxPayload: 4096)).readMessage(),
                      id == t.id else {
                    throw MigrationError.protocolViolation(.unexpectedMessage(.resolution, state: "resolve"))
                }
                logger.notice("destination says migration \(Hex.encode(t.id)) of \(t.vm) is \(verdict)")
                return verdict
            } catch {
                lastError = error
                logger.warning("cannot resolve migration \(Hex.encode(t.id)) yet: \(error)")
                usleep(500_000)  // retry back-off while the destination restarts
            }
        } while MonotonicClock.now() < deadline
        throw MigrationError.commitInDoubt("destination unreachable: \(lastError)")
    }

    static func isAgentAlive(_ pid: Int32) -> Bool {
        guard kill(pid, 0) == 0, let comm = try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8) else { return false }
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), !stat.contains(") Z ") else { return false }
        return comm.hasPrefix("palm-source")
    }

    /// Settles every migration a previous run of the agent left behind. Returns the ids still in doubt.
    public func recoverAll(hypervisor: Hypervisor, resolveTimeout: Double) -> [String] {
        var inDoubt: [String] = []
        for (id, r) in journal.all() {
            guard let t = target(id: id, r) else { journal.remove(id); continue }
            // A migration whose agent is still alive is not left behind: touching it would unpause
            // a VM in the middle of its stop-and-copy.
            if let pid = r["pid"].flatMap(Int32.init), pid != getpid(), SourceHandoff.isAgentAlive(pid) {
                logger.notice("migration \(id) of \(t.vm) is still run by process \(pid); left alone")
                continue
            }
            do {
                let verdict: Resolution = r["phase"] == "commit-intent" ? try resolve(t, timeout: resolveTimeout) : .aborted
                let domain = try? hypervisor.openSource(vm: t.vm)
                switch verdict {
                case .committed:
                    try domain?.destroy()
                    logger.notice("recovery: \(t.vm) runs on the destination; local copy destroyed", metadata: ["event": "\(PalmEvent.recovery.rawValue)", "VM": "\(t.vm)", "MIGRATION_ID": "\(id)"])
                case .aborted:
                    try domain?.setThrottle(percent: 0)
                    try domain?.resume()
                    logger.notice("recovery: \(t.vm) resumed on this host (migration \(id) did not commit)", metadata: ["event": "\(PalmEvent.recovery.rawValue)", "VM": "\(t.vm)", "MIGRATION_ID": "\(id)"])
                }
                journal.remove(id)
            } catch {
                logger.error("recovery: migration \(id) of \(t.vm) still in doubt: \(error); the VM stays paused")
                inDoubt.append(id)
            }
        }
        return inDoubt
    }
}
