import Foundation
@testable import PalmCoordinator
import PalmControl
import PalmSecurity
import PalmTestSupport
import PalmWire
import Testing

/// Two coordinators on one database: one leader by lease, followers read-only, takeover after
/// expiry with a higher epoch, and a deposed leader fenced at the database.
@Suite("Leader lease", .serialized)
struct LeaderLeaseTests {
    /// Two coordinator services on one fresh database, each with its own lease.
    func pair(_ backend: TestBackend, duration: Double = 1) throws -> (ServiceHarness, LeaderLease, ServiceHarness, LeaderLease) {
        let a = try ServiceHarness(backend: backend)
        let b = try ServiceHarness(location: a.location)
        let la = LeaderLease(store: a.service.store, holder: "coord-a", address: "10.0.0.1:7400", duration: duration)
        let lb = LeaderLease(store: b.service.store, holder: "coord-b", address: "10.0.0.2:7400", duration: duration)
        a.service.lease = la
        b.service.lease = lb
        return (a, la, b, lb)
    }

    /// Renews `lease` until it leads, at most `seconds` (the other lease must expire first).
    func leads(_ lease: LeaderLease, within seconds: Double) throws -> Int64? {
        let end = Date().addingTimeInterval(seconds)
        while Date() < end {
            if case let .leader(epoch) = try lease.renew() { return epoch }
            Thread.sleep(forTimeInterval: lease.duration / 10)
        }
        return nil
    }

    @Test("one leader: the other coordinator follows, answers reads, refuses writes naming the leader, schedules nothing",
          arguments: TestBackend.allCases)
    func oneLeader(backend: TestBackend) throws {
        let (a, la, b, lb) = try pair(backend, duration: 30)
        guard case let .leader(epoch) = try la.renew() else { Issue.record("the first coordinator does not lead"); return }
        #expect(try lb.renew() == .follower(leader: "coord-a", address: "10.0.0.1:7400", epoch: epoch))
        try a.heartbeat("server", vms: [ServiceHarness.vm("web-1")])
        // The follower reads the leader's writes…
        #expect(try b.call("alice", "vms").rows.map { $0["vm"] } == ["web-1"])
        // …and refuses writes, heartbeats included, naming the leader.
        for (who, action, args) in [("alice", "maintenance", ["host": "server", "mode": "on"]), ("alice", "migrate", ["vm": "web-1", "to": "client"])] {
            let r = try b.call(who, action, args)
            #expect(!r.ok)
            #expect(r.leader == "coord-a at 10.0.0.1:7400")
        }
        #expect(throws: (any Error).self) { try b.heartbeat("client", vms: []) }
        #expect(try b.service.runCycle(balance: true).moves.isEmpty)
        #expect(try b.call("alice", "hosts").rows.first { $0["host"] == "server" }?["maintenance"] == "off")
    }

    @Test("the leader stops renewing (killed or frozen): the follower takes over after the lease, with a higher epoch",
          arguments: TestBackend.allCases)
    func takeover(backend: TestBackend) throws {
        let (_, la, b, lb) = try pair(backend, duration: 1)
        guard case let .leader(first) = try la.renew() else { Issue.record("no first leader"); return }
        // Not before the lease expires on the database's clock.
        if case .leader = try lb.renew() { Issue.record("took over an unexpired lease") }
        let taken = Date()
        let second = try leads(lb, within: 5)
        #expect(second == first + 1)
        #expect(Date().timeIntervalSince(taken) <= 1 + 2, "the standby leads within the lease + 2 s")
        try b.heartbeat("client", vms: [ServiceHarness.vm("db-1")])  // the new leader writes
    }

    @Test("a deposed leader that resumes cannot commit anything: its writes fail at the database's fence",
          arguments: TestBackend.allCases)
    func fenced(backend: TestBackend) throws {
        let (a, la, _, lb) = try pair(backend, duration: 1)
        guard case .leader = try la.renew() else { Issue.record("no first leader"); return }
        try a.heartbeat("server", vms: [ServiceHarness.vm("web-1")])
        #expect(try leads(lb, within: 5) != nil)
        // A was frozen before it could notice: it still believes it leads (no renewal since), and
        // every write — a request ticketing a migration, a heartbeat handing out orders — is refused.
        #expect(throws: StoreError.notLeader(leader: nil)) {
            try a.service.store.write { try $0.execute(sql: "UPDATE host SET maintenance = 1 WHERE name = 'server'") }
        }
        #expect(try a.service.store.read { try $0.value(Int.self, "SELECT maintenance FROM host WHERE name = 'server'") } == 0)
        // On its next renewal it learns it follows.
        #expect(try la.renew() == .follower(leader: "coord-b", address: "10.0.0.2:7400", epoch: try epoch(of: lb)))
    }

    @Test("a leader that resigns (clean shutdown) is replaced at once", arguments: TestBackend.allCases)
    func resign(backend: TestBackend) throws {
        let (_, la, _, lb) = try pair(backend, duration: 30)
        guard case let .leader(first) = try la.renew() else { Issue.record("no first leader"); return }
        la.resign()
        #expect(try lb.renew() == .leader(epoch: first + 1))
    }

    @Test("SQLite: a restarted coordinator takes the lease at once with a new epoch; the stale process is fenced")
    func sqliteTakeOver() throws {
        let (a, la, _, lb) = try pair(.sqlite, duration: 30)
        guard case let .leader(first) = try la.renew() else { Issue.record("no first leader"); return }
        #expect(try lb.renew(takeOver: true) == .leader(epoch: first + 1))
        #expect(throws: StoreError.notLeader(leader: nil)) { try a.service.store.write { try $0.execute(sql: "DELETE FROM host") } }
    }

    @Test("tickets carry the leader's epoch; one ticketed by a deposed leader is handed out by the new one signed under its epoch, same migration and nonce",
          arguments: TestBackend.allCases)
    func ticketEpoch(backend: TestBackend) throws {
        let (a, la, b, lb) = try pair(backend, duration: 1)
        guard case let .leader(first) = try la.renew() else { Issue.record("no first leader"); return }
        try a.heartbeat("server", vms: [ServiceHarness.vm("web-1")])
        try a.heartbeat("client", vms: [])
        let id = try #require(try a.call("alice", "migrate", ["vm": "web-1", "to": "client"]).rows.first?["id"])
        try a.service.runCycle(balance: false)
        let stored = try #require(try a.service.store.read { try $0.value(String.self, "SELECT ticket FROM migration WHERE id = ?", arguments: [id]) })
        let old = try MigrationTicket.decode(try #require(Hex.decode(stored)))
        #expect(old.epoch == UInt64(first))

        // A dies before the source asked for its orders; B leads and hands the migration out.
        let second = try #require(try leads(lb, within: 5))
        let orders = try b.heartbeat("server", vms: [ServiceHarness.vm("web-1")])
        #expect(orders.epoch == second)
        let order = try #require(orders.start.first)
        let bytes = try #require(Hex.decode(order.ticket))
        let handed = try TicketValidator(coordinators: CoordinatorTrust(certificateFiles: [b.pki.cert("coord")]), clockSkew: 0)
            .validate(bytes, destination: try b.id("client").fingerprint, peer: try b.id("server").fingerprint, now: UInt64(b.now))
        #expect(handed.epoch == UInt64(second) && second > first)
        #expect(handed.id == id && handed.nonce == old.nonce && handed.notAfter == old.notAfter)
    }

    func epoch(of lease: LeaderLease) throws -> Int64 {
        guard case let .leader(e) = lease.current else { throw StoreError.notLeader(leader: nil) }
        return e
    }
}

/// A store that cannot be opened says why, by name: the URL, the server, the credentials.
@Suite("PostgreSQL connection errors")
struct PostgresConnectionErrorTests {
    @Test("a malformed URL, an unreachable server and a wrong password are three named errors")
    func named() throws {
        let server = try PostgresTestServer.shared.get()
        #expect(throws: StoreError.self) { try CoordinatorStore(.postgresql(url: "mysql://x@y/z", connectTimeout: 2)) }
        do {
            _ = try CoordinatorStore(.postgresql(url: "postgresql://palm@127.0.0.1:1/palm", connectTimeout: 2))
            Issue.record("connected to a closed port")
        } catch let e as StoreError {
            guard case .unreachable = e else { Issue.record("unreachable server reported as \(e)"); return }
        }
        do {
            _ = try CoordinatorStore(.postgresql(url: server.url(database: "postgres", password: "wrong"), connectTimeout: 2))
            Issue.record("connected with a wrong password")
        } catch let e as StoreError {
            guard case .authenticationFailed = e else { Issue.record("wrong password reported as \(e)"); return }
            #expect(!e.description.contains("wrong"), "the password never appears in the error")
        }
        #expect(throws: StoreError.badURL("it must start with postgresql:// (e.g. postgresql://palm@db.example:5432/palm)")) {
            try PostgresStore.validate(url: "palm.sqlite")
        }
    }
}

/// PostgreSQL restarted under a coordinator: the next transaction reconnects, nothing is lost.
@Suite("PostgreSQL restart")
struct PostgresRestartTests {
    @Test("the server restarts between heartbeats: the coordinator reconnects, every committed write is there")
    func restart() throws {
        let server = try PostgresTestServer.privateServer()
        let h = try ServiceHarness(location: .postgresql(url: try server.newDatabaseURL(), connectTimeout: 5))
        for i in 0..<20 { try h.heartbeat("server", vms: (0...i).map { ServiceHarness.vm("vm-\($0)") }) }
        try server.restart()
        // The first transaction after the restart finds its connection dropped and reconnects.
        try h.heartbeat("client", vms: [ServiceHarness.vm("db-1")])
        #expect(try h.call("alice", "vms").rows.count == 21)
        #expect(try h.call("alice", "hosts").rows.count == 2)
    }
}
