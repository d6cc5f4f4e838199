import Foundation
import PalmControl
import PalmCoordinator
import PalmSecurity
import PalmTestSupport
import PalmCrypto
import PalmTLS
import PalmWire
import Testing

extension TestBackend {
    /// A new, empty database on this backend.
    func freshLocation() throws -> StoreLocation {
        switch self {
        case .sqlite: return .sqlite(path: NSTemporaryDirectory() + "palm-coord-\(UUID().uuidString).sqlite")
        case .postgresql: return .postgresql(url: try PostgresTestServer.shared.get().newDatabaseURL(), connectTimeout: 5)
        }
    }
}

/// A coordinator service on a fresh database with a clock the test drives, and three agents
/// (server, client, mallory: agent certificates) plus the operators alice and eve.
final class ServiceHarness: @unchecked Sendable {
    let pki = TestPKI.shared
    let location: StoreLocation
    var now = 1_800_000_000.0
    var service: CoordinatorService!

    init(backend: TestBackend = .sqlite, policy: String = AccessPolicy.defaultText, settings: CoordinatorSettings = CoordinatorSettings()) throws {
        location = try backend.freshLocation()
        try open(policy: policy, settings: settings)
    }

    /// A second coordinator on an existing database (coordinators sharing PostgreSQL).
    init(location: StoreLocation) throws {
        self.location = location
        try open()
    }

    /// (Re)opens the service on the same database, as a restarted coordinator does.
    func open(policy: String = AccessPolicy.defaultText, settings: CoordinatorSettings = CoordinatorSettings()) throws {
        let store = try CoordinatorStore(location)
        let key = try SigningKey(pemFile: pki.key("coord"))
        var s = settings
        s.scheduler.holdTime = 0
        // The simulated hosts have no TPMs; the attestation tests say what they require.
        if s.allowlist.platform == nil { s.allowlist.platform = PlatformTrust(requirement: .software) }
        service = CoordinatorService(store: store, audit: AuditLog(store: store, key: key), policy: try AccessPolicy.parse(policy),
                                     settings: s, ticketKey: key)
        service.clock = { [unowned self] in now }
    }

    func id(_ name: String) throws -> CertificateIdentity { try CertificateIdentity.load(pemFile: pki.cert(name)) }

    @discardableResult
    func heartbeat(_ host: String, vms: [VMReport], active: [MigrationProgressReport] = [], outcomes: [MigrationOutcome] = [],
                   memory: UInt64 = 4 << 30) throws -> AgentOrders {
        let used = vms.reduce(UInt64(0)) { $0 + $1.memoryBytes }
        let report = HostReport(destinationAddress: "10.0.0.\(host.count):7410", cpus: 4, cpuLoad: 0, memoryTotal: memory,
                                memoryUsed: used, vms: vms, active: active, outcomes: outcomes)
        let r = service.handle(APIRequest(action: "agent.heartbeat", report: report), from: try id(host))
        guard r.ok, let orders = r.orders else { throw CoordinatorService.ServiceError.refused(r.error ?? "no orders") }
        return orders
    }

    func call(_ who: String, _ action: String, _ args: [String: String] = [:]) throws -> APIResponse {
        service.handle(APIRequest(action: action, arguments: args), from: try id(who))
    }

    func state(_ id: String) throws -> String? { try call("alice", "status", ["id": id]).rows.first?["state"] }

    static func vm(_ name: String, _ mib: UInt64 = 512, paused: Bool = false) -> VMReport {
        VMReport(name: name, memoryBytes: mib << 20, dirtyRate: 100, paused: paused)
    }
}

/// Every request is authorized from the caller's certificate and audited; heartbeats carry the
/// inventory in and the orders out; every migration moves through its state machine once.
@Suite("Coordinator service", .serialized)
struct CoordinatorServiceTests {
    @Test("an agent's heartbeat registers its host and VMs; an operator lists them and sets maintenance; audited", arguments: TestBackend.allCases)
    func inventory(backend: TestBackend) throws {
        let h = try ServiceHarness(backend: backend)
        try h.heartbeat("server", vms: [ServiceHarness.vm("web-1"), ServiceHarness.vm("db-1", 1024)])
        try h.heartbeat("server", vms: [ServiceHarness.vm("web-1"), ServiceHarness.vm("db-1", 1024)])
        let hosts = try h.call("alice", "hosts")
        #expect(hosts.ok && hosts.rows.map { $0["host"] } == ["server"])
        #expect(hosts.rows.first?["vms"] == "2" && hosts.rows.first?["state"] == "up")
        #expect(try h.call("alice", "vms").rows.map { $0["vm"] } == ["db-1", "web-1"])
        #expect(try h.call("alice", "maintenance", ["host": "server", "mode": "on"]).ok)
        #expect(try h.call("alice", "hosts").rows.first?["state"] == "maintenance")
        // A VM that disappears from the report disappears from the inventory.
        try h.heartbeat("server", vms: [ServiceHarness.vm("web-1")])
        #expect(try h.call("alice", "vms").rows.map { $0["vm"] } == ["web-1"])
        // Only the first heartbeat of an agent is audited on its own.
        let audit = try h.service.audit.entries()
        #expect(audit.map(\.action) == ["agent.heartbeat", "hosts", "vms", "maintenance", "hosts", "vms"])
        let allAllowed = audit.allSatisfy { $0.allowed }
        #expect(allAllowed)
        #expect(audit[3].actor.hasPrefix("alice") && audit[3].role == "operator" && audit[3].target == "server")
    }

    @Test("unauthorized callers are denied, and the denial is audited", arguments: TestBackend.allCases, [
        ("eve", "maintenance"), ("server", "hosts"), ("alice", "audit.verify"), ("eve", "agent.heartbeat"),
        ("eve", "migrate"), ("server", "migrate"), ("eve", "cancel"), ("alice", "agent.heartbeat"),
    ])
    func denied(backend: TestBackend, _ pair: (String, String)) throws {
        let (caller, action) = pair
        let h = try ServiceHarness(backend: backend)
        let r = try h.call(caller, action, ["host": "server", "mode": "on"])
        #expect(!r.ok)
        #expect(r.error?.hasPrefix("access denied") == true, "\(r.error ?? "")")
        let last = try #require(try h.service.audit.entries().last)
        #expect(!last.allowed && last.action == action && last.actor.hasPrefix(caller))
    }

    @Test("an unknown action is refused and audited", arguments: TestBackend.allCases)
    func unknownAction(backend: TestBackend) throws {
        let h = try ServiceHarness(backend: backend)
        #expect(try h.call("alice", "format-disks").error == "unknown action 'format-disks'")
        #expect(try h.service.audit.entries().last?.allowed == false)
    }

    @Test("a migration: requested → ticketed → handed out with a valid ticket → running → committed, once", arguments: TestBackend.allCases)
    func lifecycle(backend: TestBackend) throws {
        let h = try ServiceHarness(backend: backend)
        try h.heartbeat("server", vms: [ServiceHarness.vm("web-1")])
        try h.heartbeat("client", vms: [])
        let m = try h.call("alice", "migrate", ["vm": "web-1", "to": "client"])
        let id = try #require(m.rows.first?["id"], "\(m.error ?? "")")
        #expect(m.rows.first?["state"] == "requested")
        try h.service.runCycle(balance: false)
        #expect(try h.state(id) == "ticketed")

        let orders = try h.heartbeat("server", vms: [ServiceHarness.vm("web-1")])
        let order = try #require(orders.start.first)
        #expect(orders.start.count == 1 && order.id == id && order.vm == "web-1" && order.destinationHost == "client")
        #expect(order.destinationAddress == "10.0.0.6:7410")
        // The ticket is the protected-migration ticket: signed by the coordinator, bound to both hosts.
        let bytes = try #require(Hex.decode(order.ticket))
        let ticket = try TicketValidator(coordinators: CoordinatorTrust(certificateFiles: [h.pki.cert("coord")]), clockSkew: 0)
            .validate(bytes, destination: try h.id("client").fingerprint, peer: try h.id("server").fingerprint, now: UInt64(h.now))
        #expect(ticket.id == id && ticket.memoryBytes == 512 << 20)
        #expect(try h.state(id) == "running")
        // Handed out once: the next heartbeat carries no order.
        let progress = MigrationProgressReport(id: id, phase: "precopy", round: 2, pagesLeft: 1234, bytesPerSecond: 100 * 1_048_576)
        #expect(try h.heartbeat("server", vms: [ServiceHarness.vm("web-1")], active: [progress]).start.isEmpty)
        let status = try #require(try h.call("alice", "status", ["id": String(id.prefix(8))]).rows.first)
        #expect(status["round"] == "2" && status["pages_left"] == "1234" && status["rate_mib_s"] == "100.0")

        let outcome = MigrationOutcome(id: id, result: .committed, detail: "committed in 3 rounds", downtimeMs: 12.5, totalSeconds: 1.5, rounds: 3)
        let ack = try h.heartbeat("server", vms: [], outcomes: [outcome])
        #expect(ack.acknowledged == [id])
        #expect(try h.state(id) == "committed")
        try h.heartbeat("client", vms: [ServiceHarness.vm("web-1")])
        #expect(try h.call("alice", "vms").rows.first?["host"] == "client")
        // A repeated outcome (the agent did not see the acknowledgement) changes nothing.
        let before = try h.service.audit.entries().count
        #expect(try h.heartbeat("server", vms: [], outcomes: [outcome]).acknowledged == [id])
        #expect(try h.service.audit.entries().count == before)
        let history = try h.call("eve", "history").rows
        #expect(history.count == 1 && history[0]["state"] == "committed" && history[0]["downtime_ms"] == "12.5")
        #expect(try h.service.audit.entries().map(\.action).contains("migration.committed"))
    }

    @Test("migrate refusals name the reason", arguments: TestBackend.allCases, [
        (["vm": "nope", "to": "client"], "no VM named 'nope'"),
        (["vm": "web-1", "to": "nowhere"], "no host named 'nowhere'"),
        (["vm": "web-1", "to": "server"], "web-1 already runs on server"),
        (["vm": "web-1", "to": "mallory"], "mallory is in maintenance: it receives no VMs"),
        (["vm": "web-1", "to": "client", "mode": "warp"], "bad argument: mode must be pre-copy or stop-and-copy"),
        (["vm": "web-1"], "missing argument 'to'"),
    ])
    func refusals(backend: TestBackend, _ pair: ([String: String], String)) throws {
        let (args, error) = pair
        let h = try ServiceHarness(backend: backend)
        try h.heartbeat("server", vms: [ServiceHarness.vm("web-1")])
        try h.heartbeat("client", vms: [])
        try h.heartbeat("mallory", vms: [])
        #expect(try h.call("alice", "maintenance", ["host": "mallory", "mode": "on"]).ok)
        #expect(try h.call("alice", "migrate", args).error == error)
    }

    @Test("a migration to a host without room for the VM is refused at once, naming both sizes", arguments: TestBackend.allCases)
    func noRoom(backend: TestBackend) throws {
        let h = try ServiceHarness(backend: backend)
        try h.heartbeat("server", vms: [ServiceHarness.vm("big", 1024)])
        try h.heartbeat("client", vms: [ServiceHarness.vm("other", 200)], memory: 512 << 20)
        #expect(try h.call("alice", "migrate", ["vm": "big", "to": "client"]).error == "client has 312 MiB free; big needs 1024 MiB")
    }

    @Test("a VM already migrating cannot be asked to migrate again", arguments: TestBackend.allCases)
    func noDoubleMigration(backend: TestBackend) throws {
        let h = try ServiceHarness(backend: backend)
        try h.heartbeat("server", vms: [ServiceHarness.vm("web-1")])
        try h.heartbeat("client", vms: [])
        #expect(try h.call("alice", "migrate", ["vm": "web-1", "to": "client"]).ok)
        #expect(try h.call("alice", "migrate", ["vm": "web-1", "to": "client"]).error?.contains("already migrating") == true)
    }

    @Test("cancel: a ticketed migration ends at once; a running one is cancelled by its agent; a finished one cannot be", arguments: TestBackend.allCases)
    func cancel(backend: TestBackend) throws {
        let h = try ServiceHarness(backend: backend)
        try h.heartbeat("server", vms: [ServiceHarness.vm("a"), ServiceHarness.vm("b")])
        try h.heartbeat("client", vms: [])
        let first = try #require(try h.call("alice", "migrate", ["vm": "a", "to": "client"]).rows.first?["id"])
        try h.service.runCycle(balance: false)
        #expect(try h.call("alice", "cancel", ["id": first]).rows.first?["state"] == "cancelled")
        #expect(try h.heartbeat("server", vms: [ServiceHarness.vm("a"), ServiceHarness.vm("b")]).start.isEmpty)

        let second = try #require(try h.call("alice", "migrate", ["vm": "b", "to": "client"]).rows.first?["id"])
        try h.service.runCycle(balance: false)
        #expect(try h.heartbeat("server", vms: [ServiceHarness.vm("a"), ServiceHarness.vm("b")]).start.map(\.id) == [second])
        #expect(try h.call("alice", "cancel", ["id": second]).rows.first?["cancel_requested"] == "yes")
        let active = MigrationProgressReport(id: second, phase: "precopy", round: 1, pagesLeft: 10, bytesPerSecond: 1)
        #expect(try h.heartbeat("server", vms: [ServiceHarness.vm("a"), ServiceHarness.vm("b")], active: [active]).cancel == [second])
        try h.heartbeat("server", vms: [ServiceHarness.vm("a"), ServiceHarness.vm("b")],
                        outcomes: [MigrationOutcome(id: second, result: .cancelled, detail: "cancelled")])
        #expect(try h.state(second) == "cancelled")
        #expect(try h.call("alice", "cancel", ["id": second]).error?.contains("already ended (cancelled)") == true)
        #expect(try h.call("alice", "cancel", ["id": "zz"]).error == "bad argument: a migration id is hexadecimal")
    }

    @Test("a ticket not picked up before it expires is aborted, never handed out late", arguments: TestBackend.allCases)
    func ticketExpiry(backend: TestBackend) throws {
        var settings = CoordinatorSettings()
        settings.ticketValidity = 60
        let h = try ServiceHarness(backend: backend, settings: settings)
        try h.heartbeat("server", vms: [ServiceHarness.vm("web-1")])
        try h.heartbeat("client", vms: [])
        let id = try #require(try h.call("alice", "migrate", ["vm": "web-1", "to": "client"]).rows.first?["id"])
        try h.service.runCycle(balance: false)
        h.now += 61
        #expect(try h.heartbeat("server", vms: [ServiceHarness.vm("web-1")]).start.isEmpty)
        #expect(try h.state(id) == "aborted")
    }

    @Test("reconciliation: a restarted agent that forgot a migration — the VM's location decides", arguments: TestBackend.allCases)
    func reconcile(backend: TestBackend) throws {
        let h = try ServiceHarness(backend: backend)
        try h.heartbeat("server", vms: [ServiceHarness.vm("stays"), ServiceHarness.vm("moved")])
        try h.heartbeat("client", vms: [])
        let stays = try #require(try h.call("alice", "migrate", ["vm": "stays", "to": "client"]).rows.first?["id"])
        var settings = CoordinatorSettings()
        settings.scheduler.maxPerHost = 2
        try h.open(settings: settings)
        let moved = try #require(try h.call("alice", "migrate", ["vm": "moved", "to": "client"]).rows.first?["id"])
        try h.service.runCycle(balance: false)
        #expect(try h.heartbeat("server", vms: [ServiceHarness.vm("stays"), ServiceHarness.vm("moved")]).start.count == 2)
        // The destination now runs "moved"; the restarted source agent reports neither migration.
        try h.heartbeat("client", vms: [ServiceHarness.vm("moved")])
        try h.heartbeat("server", vms: [ServiceHarness.vm("stays")])
        #expect(try h.state(stays) == "aborted")
        #expect(try h.state(moved) == "committed")
    }

    @Test("an in-doubt migration is settled by the destination reporting the VM", arguments: TestBackend.allCases)
    func inDoubt(backend: TestBackend) throws {
        let h = try ServiceHarness(backend: backend)
        try h.heartbeat("server", vms: [ServiceHarness.vm("v")])
        try h.heartbeat("client", vms: [])
        let id = try #require(try h.call("alice", "migrate", ["vm": "v", "to": "client"]).rows.first?["id"])
        try h.service.runCycle(balance: false)
        try h.heartbeat("server", vms: [ServiceHarness.vm("v")])
        try h.heartbeat("server", vms: [ServiceHarness.vm("v", paused: true)],
                        outcomes: [MigrationOutcome(id: id, result: .inDoubt, detail: "link cut after COMMIT")])
        #expect(try h.state(id) == "in-doubt")
        #expect(try h.call("alice", "cancel", ["id": id]).error?.contains("past its commit point") == true)
        try h.heartbeat("server", vms: [ServiceHarness.vm("v", paused: true)])
        #expect(try h.state(id) == "in-doubt")
        try h.heartbeat("client", vms: [ServiceHarness.vm("v")])
        #expect(try h.state(id) == "committed")
    }

    @Test("a coordinator restarted mid-migration keeps the migration and records the outcome the agent repeats", arguments: TestBackend.allCases)
    func restart(backend: TestBackend) throws {
        let h = try ServiceHarness(backend: backend)
        try h.heartbeat("server", vms: [ServiceHarness.vm("v")])
        try h.heartbeat("client", vms: [])
        let id = try #require(try h.call("alice", "migrate", ["vm": "v", "to": "client"]).rows.first?["id"])
        try h.service.runCycle(balance: false)
        #expect(try h.heartbeat("server", vms: [ServiceHarness.vm("v")]).start.count == 1)
        try h.open()
        #expect(try h.state(id) == "running")
        let orders = try h.heartbeat("server", vms: [], outcomes: [MigrationOutcome(id: id, result: .committed, detail: "ok")])
        #expect(orders.start.isEmpty && orders.acknowledged == [id])
        #expect(try h.state(id) == "committed")
        #expect(try h.call("alice", "history").rows.count == 1)
    }

    @Test("host groups scope an operator: a migration touching a host outside them is denied", arguments: TestBackend.allCases)
    func scoped(backend: TestBackend) throws {
        let h = try ServiceHarness(backend: backend, policy: """
        [roles.operator]
        actions = ["migrate", "status"]
        host_groups = ["rack-1"]
        [roles.agent]
        actions = ["agent.heartbeat"]
        [groups]
        rack-1 = ["server", "client"]
        """)
        try h.heartbeat("server", vms: [ServiceHarness.vm("v")])
        try h.heartbeat("client", vms: [])
        try h.heartbeat("mallory", vms: [])
        #expect(try h.call("alice", "migrate", ["vm": "v", "to": "mallory"]).error?.contains("outside the host groups") == true)
        #expect(try h.call("alice", "migrate", ["vm": "v", "to": "client"]).ok)
    }

    @Test("evacuate: the host goes into maintenance and its VMs leave within the limits; done when empty", arguments: TestBackend.allCases)
    func evacuate(backend: TestBackend) throws {
        var settings = CoordinatorSettings()
        settings.scheduler.maxPerHost = 1
        let h = try ServiceHarness(backend: backend, settings: settings)
        try h.heartbeat("server", vms: [ServiceHarness.vm("a", 256), ServiceHarness.vm("b", 1024)])
        try h.heartbeat("client", vms: [])
        try h.heartbeat("mallory", vms: [])
        let plan = try h.call("alice", "evacuate", ["host": "server"])
        #expect(plan.ok)
        let moves = plan.rows.filter { $0["kind"] == "evacuate" }
        #expect(moves.map { $0["vm"] } == ["b"], "largest first, one slot on the source: \(plan.rows)")
        #expect(try h.call("alice", "hosts").rows.first { $0["host"] == "server" }?["state"] == "evacuating")
        let order = try #require(try h.heartbeat("server", vms: [ServiceHarness.vm("a", 256), ServiceHarness.vm("b", 1024)]).start.first)
        try h.heartbeat("server", vms: [ServiceHarness.vm("a", 256)], outcomes: [MigrationOutcome(id: order.id, result: .committed, detail: "ok")])
        try h.heartbeat(order.destinationHost, vms: [ServiceHarness.vm("b", 1024)])
        try h.service.runCycle(balance: false)
        let second = try #require(try h.heartbeat("server", vms: [ServiceHarness.vm("a", 256)]).start.first)
        #expect(second.vm == "a" && second.destinationHost != order.destinationHost, "spread over the least loaded hosts")
        try h.heartbeat("server", vms: [], outcomes: [MigrationOutcome(id: second.id, result: .committed, detail: "ok")])
        #expect(try h.call("alice", "hosts").rows.first { $0["host"] == "server" }?["state"] == "maintenance")
        #expect(try h.service.audit.entries().map(\.action).contains("evacuation.done"))
    }

    @Test("over TLS with the real CLI: tables, --json, denial, foreign certificate, audit intact")
    func overTLS() throws {
        let pki = TestPKI.shared
        let coordinator = try CoordinatorProcess(pki: pki, withCRL: true)
        try coordinator.start()
        defer { coordinator.kill() }
        let agent = try CoordinatorClient(host: "127.0.0.1", port: coordinator.port, context: pki.context("server"))
        let report = HostReport(destinationAddress: "127.0.0.1:7410", cpus: 2, cpuLoad: 0, memoryTotal: 1 << 30, memoryUsed: 0, vms: [])
        #expect(try agent.call(APIRequest(action: "agent.heartbeat", report: report)).ok)

        func cli(_ who: String, _ args: [String], other: Bool = false) throws -> ProcessRunner.Result {
            try ProcessRunner.run(SimCluster.bin("palm-coordinator"), args + [
                "--server", "127.0.0.1:\(coordinator.port)", "--cert", pki.cert(who, other: other), "--key", pki.key(who, other: other),
                "--ca", pki.caCert])
        }
        let hosts = try cli("alice", ["hosts"])
        #expect(hosts.status == 0 && hosts.stdout.hasPrefix("HOST") && hosts.stdout.contains("server  up"), "\(hosts.stdout)\(hosts.stderr)")
        let json = try cli("alice", ["hosts", "--json"])
        let rows = try JSONDecoder().decode([[String: String]].self, from: Data(json.stdout.utf8))
        #expect(rows.first?["host"] == "server")
        let denied = try cli("eve", ["maintenance", "server", "on"])
        #expect(denied.status == 1)
        #expect(denied.stderr.contains("access denied: role auditor may not maintenance"), "\(denied.stderr)")
        let missing = try cli("alice", ["migrate", "ghost", "--to", "server"])
        #expect(missing.status == 1 && missing.stderr.contains("no VM named 'ghost'"), "\(missing.stderr)")
        let usage = try cli("alice", ["maintenance", "server", "maybe"])
        #expect(usage.status == 64 && usage.stderr.contains("MODE must be on or off"), "\(usage.stderr)")
        let foreign = try cli("intruder", ["hosts"], other: true)
        #expect(foreign.status == 2)
        #expect(foreign.stderr.contains("refused the connection"), "\(foreign.stderr)")
        let revoked = try cli("revoked", ["hosts"])
        #expect(revoked.status == 2 && revoked.stderr.contains("refused the connection"), "\(revoked.stderr)")
        // Every bad argument: a named error and a non-zero exit.
        for (args, status, text) in [
            (["migrate", "ghost"], Int32(64), "Missing expected argument '--to <to>'"),
            (["migrate", "v", "--to", "server", "--mode", "teleport"], 64, "--mode must be pre-copy or stop-and-copy"),
            (["history", "--limit", "0"], 64, "--limit must be 1…10000"),
            (["status", "abcdef"], 1, "no migration 'abcdef'"),
            (["cancel", "xyz"], 1, "a migration id is hexadecimal"),
            (["evacuate", "nowhere"], 1, "no host named 'nowhere'"),
        ] {
            let r = try cli("alice", args)
            #expect(r.status == status && r.stderr.contains(text), "\(args): \(r.status) \(r.stderr)")
        }
        let badServer = try ProcessRunner.run(SimCluster.bin("palm-coordinator"), ["hosts", "--server", "nocolon", "--cert", "x", "--key", "y", "--ca", "z"])
        #expect(badServer.status == 64 && badServer.stderr.contains("--server must be HOST:PORT"), "\(badServer.stderr)")

        let verify = try ProcessRunner.run(SimCluster.bin("palm-coordinator"),
                                           ["audit", "verify", "--db", coordinator.database, "--coordinator-cert", pki.cert("coord")])
        #expect(verify.status == 0, "\(verify.stderr)")
        #expect(verify.stdout.contains("8 entries"), "\(verify.stdout)")
    }

    @Test("an agent pins the configured coordinator: a server with the coordinator role but another certificate is refused")
    func pinnedCoordinator() throws {
        let pki = TestPKI.shared
        let coordinator = try CoordinatorProcess(pki: pki)
        try coordinator.start()
        defer { coordinator.kill() }
        let wrongPin = try CertificateIdentity.load(pemFile: pki.cert("server")).fingerprint
        let context = try pki.context("server")
        #expect(throws: TLSError.self) {
            _ = try CoordinatorClient(host: "127.0.0.1", port: coordinator.port, context: context, pinned: [wrongPin])
        }
        _ = try CoordinatorClient(host: "127.0.0.1", port: coordinator.port, context: pki.context("server"),
                                  pinned: [try CertificateIdentity.load(pemFile: pki.cert("coord")).fingerprint])
    }
}
