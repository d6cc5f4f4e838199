import Foundation
@testable import PalmCoordinator
import PalmSecurity
import PalmTestSupport
import PalmCrypto
import PalmTLS
import PalmWire
import Testing

@Suite("Audit log")
struct AuditLogTests {
    let pki = TestPKI.shared

    /// A log with five signed entries in a fresh database, its head kept in `path + ".head"`.
    func fiveEntries(_ backend: TestBackend = .sqlite) throws -> (AuditLog, CoordinatorStore, String) {
        let path = NSTemporaryDirectory() + "palm-audit-\(UUID().uuidString).sqlite"
        let store = try CoordinatorStore(backend == .sqlite ? .sqlite(path: path) : try backend.freshLocation())
        let log = AuditLog(store: store, key: try SigningKey(pemFile: pki.key("coord")), headFile: path + ".head")
        for i in 1...5 {
            try log.append(actor: "alice", role: "operator", action: "migrate", target: "vm-\(i)", allowed: i != 3,
                           detail: i == 3 ? "host outside group" : "")
        }
        return (log, store, path)
    }

    var coordinatorKey: CoordinatorTrust { try! CoordinatorTrust(certificateFiles: [pki.cert("coord")]) }

    @Test("an intact log verifies; allowed and denied decisions are both recorded", arguments: TestBackend.allCases)
    func intact(backend: TestBackend) throws {
        let (log, _, _) = try fiveEntries(backend)
        #expect(try log.verify(coordinators: coordinatorKey) == 5)
        #expect(try log.entries().map(\.allowed) == [true, true, false, true, true])
    }

    @Test("an entry edited on disk is named", arguments: TestBackend.allCases)
    func edited(backend: TestBackend) throws {
        let (log, store, _) = try fiveEntries(backend)
        _ = try store.write { try $0.execute(sql: "UPDATE audit SET target = 'vm-other' WHERE seq = 2") }
        #expect(throws: AuditLog.AuditError.edited(seq: 2)) { try log.verify(coordinators: coordinatorKey) }
    }

    @Test("an entry edited and re-chained (without the coordinator key) fails its signature", arguments: TestBackend.allCases)
    func rehashed(backend: TestBackend) throws {
        let (log, store, _) = try fiveEntries(backend)
        // The attacker flips the denied decision and rebuilds a consistent hash chain from there,
        // signing with the only key it has.
        let mallory = try SigningKey(pemFile: pki.key("mallory"))
        var entries = try log.entries()
        entries[2].allowed = true
        for i in 2..<entries.count {
            if i > 2 { entries[i].prevHash = entries[i - 1].hash }
            entries[i].hash = SHA256.hash(entries[i].canonical).hex
            entries[i].signature = Hex.encode(try mallory.sign(Array(entries[i].hash.utf8)))
        }
        try store.write { db in
            for e in entries[2...] {
                try db.execute(sql: "UPDATE audit SET allowed = ?, prev_hash = ?, hash = ?, signature = ? WHERE seq = ?",
                               arguments: [e.allowed, e.prevHash, e.hash, e.signature, e.seq])
            }
        }
        #expect(throws: AuditLog.AuditError.badSignature(seq: 3)) { try log.verify(coordinators: coordinatorKey) }
    }

    @Test("palm-coordinator audit verify: exit 0 on an intact log, 1 naming the entry on a tampered one")
    func cli() throws {
        let (_, store, path) = try fiveEntries()
        let args = ["audit", "verify", "--db", path, "--coordinator-cert", pki.cert("coord")]
        let ok = try ProcessRunner.run(SimCluster.bin("palm-coordinator"), args)
        #expect(ok.status == 0)
        #expect(ok.stdout.contains("5 entries"))
        _ = try store.write { try $0.execute(sql: "DELETE FROM audit WHERE seq = 2") }
        let bad = try ProcessRunner.run(SimCluster.bin("palm-coordinator"), args)
        #expect(bad.status == 1)
        #expect(bad.stderr.contains("audit entries between 1 and 3 were deleted"), "stderr: \(bad.stderr)")
    }

    @Test("a deleted entry is named", arguments: TestBackend.allCases)
    func deleted(backend: TestBackend) throws {
        let (log, store, _) = try fiveEntries(backend)
        _ = try store.write { try $0.execute(sql: "DELETE FROM audit WHERE seq = 3") }
        #expect(throws: AuditLog.AuditError.deleted(after: 2, seq: 4)) { try log.verify(coordinators: coordinatorKey) }
    }

    @Test("reordered entries are named", arguments: TestBackend.allCases)
    func reordered(backend: TestBackend) throws {
        let (log, store, _) = try fiveEntries(backend)
        // Swap the sequence numbers of entries 2 and 4 (each row keeps its own valid hash and signature).
        try store.write { db in
            try db.execute(sql: "UPDATE audit SET seq = 100 WHERE seq = 2")
            try db.execute(sql: "UPDATE audit SET seq = 2 WHERE seq = 4")
            try db.execute(sql: "UPDATE audit SET seq = 4 WHERE seq = 100")
        }
        #expect {
            try log.verify(coordinators: coordinatorKey)
        } throws: { error in
            switch error as? AuditLog.AuditError {
            case .edited(seq: 2)?, .reordered(seq: 2)?: return true
            default: return false
            }
        }
    }

    @Test("a log verified against another key fails at the first entry", arguments: TestBackend.allCases)
    func otherKey(backend: TestBackend) throws {
        let (log, _, _) = try fiveEntries(backend)
        #expect(throws: AuditLog.AuditError.badSignature(seq: 1)) {
            try log.verify(coordinators: try CoordinatorTrust(certificateFiles: [pki.cert("server")]))
        }
    }

    @Test("one chain across two leaders: it verifies with both coordinators' certificates listed, and fails at the second leader's first entry with only the first's", arguments: TestBackend.allCases)
    func twoLeaders(backend: TestBackend) throws {
        let (first, store, _) = try fiveEntries(backend)
        let second = AuditLog(store: store, key: try SigningKey(pemFile: pki.key("coord2")))
        for i in 1...3 { try second.append(actor: "alice", role: "operator", action: "migrate", target: "vm-\(i)", allowed: true, detail: "") }
        let both = try CoordinatorTrust(certificateFiles: [pki.cert("coord"), pki.cert("coord2")])
        #expect(try first.verify(coordinators: both) == 8)
        #expect(throws: AuditLog.AuditError.badSignature(seq: 6)) { try first.verify(coordinators: coordinatorKey) }
        #expect(throws: AuditLog.AuditError.badSignature(seq: 1)) {
            try first.verify(coordinators: try CoordinatorTrust(certificateFiles: [pki.cert("coord2")]))
        }
    }

    @Test("the head outside the database shows the newest entries deleted — one, a hundred or all of them", arguments: TestBackend.allCases, [1, 100, 105])
    func tailTruncation(backend: TestBackend, _ deleted: Int) throws {
        let (log, store, path) = try fiveEntries(backend)
        for i in 6...105 { try log.append(actor: "alice", role: "operator", action: "hosts", target: "\(i)", allowed: true) }
        let head = try AuditHead.load(from: path + ".head")
        #expect(head.seq == 105)
        #expect(try log.verify(coordinators: coordinatorKey, head: head) == 105)
        _ = try store.write { try $0.execute(sql: "DELETE FROM audit WHERE seq > ?", arguments: [105 - deleted]) }
        // The chain alone still looks intact …
        #expect(try log.verify(coordinators: coordinatorKey) == 105 - deleted)
        // … against the head it does not.
        #expect(throws: AuditLog.AuditError.truncated(head: 105, last: Int64(105 - deleted))) {
            try log.verify(coordinators: coordinatorKey, head: head)
        }
    }

    @Test("a live log cut back by five entries and written on shows as rolled back, also through the CLI")
    func rollback() throws {
        let (log, store, path) = try fiveEntries()
        for i in 6...10 { try log.append(actor: "alice", role: "operator", action: "hosts", target: "\(i)", allowed: true) }
        let anchor = try AuditHead.load(from: path + ".head")  // what the journal (or a copy) kept
        try FileManager.default.copyItem(atPath: path + ".head", toPath: path + ".head-copy")
        _ = try store.write { try $0.execute(sql: "DELETE FROM audit WHERE seq > 5") }
        // The coordinator writes on: the next entries chain onto the shortened log.
        for i in 6...12 { try log.append(actor: "eve", role: "auditor", action: "hosts", target: "x\(i)", allowed: true) }
        #expect(try log.verify(coordinators: coordinatorKey) == 12)
        #expect(throws: AuditLog.AuditError.rolledBack(seq: 10)) { try log.verify(coordinators: coordinatorKey, head: anchor) }
        let args = ["audit", "verify", "--db", path, "--coordinator-cert", pki.cert("coord")]
        let cli = try ProcessRunner.run(SimCluster.bin("palm-coordinator"), args + ["--head", path + ".head-copy"])
        #expect(cli.status == 1)
        #expect(cli.stderr.contains("rolled back"), "stderr: \(cli.stderr)")
        let journal = try ProcessRunner.run(SimCluster.bin("palm-coordinator"), args + ["--head-seq", "10", "--head-hash", anchor.hash])
        #expect(journal.status == 1 && journal.stderr.contains("rolled back"))
        // The head the coordinator itself keeps moved on with it: only an outside copy shows the rollback.
        #expect(try ProcessRunner.run(SimCluster.bin("palm-coordinator"), args + ["--head", path + ".head"]).status == 0)
    }

    @Test("a head not signed by the coordinator is refused", arguments: TestBackend.allCases)
    func forgedHead(backend: TestBackend) throws {
        let (log, _, path) = try fiveEntries(backend)
        var head = try AuditHead.load(from: path + ".head")
        head.signature = Hex.encode(try SigningKey(pemFile: pki.key("mallory")).sign(head.signedBytes))
        #expect(throws: AuditLog.AuditError.headNotSigned) { try log.verify(coordinators: coordinatorKey, head: head) }
    }

    @Test("the schema is versioned: a database records the migrations applied to it", arguments: TestBackend.allCases)
    func schema(backend: TestBackend) throws {
        let location = try backend.freshLocation()
        let store = try CoordinatorStore(location)
        let log = AuditLog(store: store, key: try SigningKey(pemFile: pki.key("coord")))
        for i in 1...5 { try log.append(actor: "alice", role: "operator", action: "hosts", target: "\(i)", allowed: true) }
        #expect(try store.appliedMigrations() == StoreSchema.migrations.map(\.name))
        #expect(StoreSchema.migrations.first?.name == "v1: hosts, vms, migrations, nonces, audit")
        // Reopening applies nothing twice and keeps the data.
        let again = try CoordinatorStore(location)
        #expect(try again.appliedMigrations() == StoreSchema.migrations.map(\.name))
        #expect(try AuditLog(store: again, key: nil).entries().count == 5)
    }
}
