import Foundation
import PalmCoordinator
import PalmTestSupport
import PalmTLS
import Testing

/// Every request is authorized from the caller's certificate and audited, allowed or denied.
@Suite("Coordinator service", .serialized)
struct CoordinatorServiceTests {
    let pki = TestPKI.shared

    func service() throws -> (CoordinatorService, String) {
        let path = NSTemporaryDirectory() + "palm-coord-\(UUID().uuidString).sqlite"
        let store = try CoordinatorStore(path: path)
        return (CoordinatorService(store: store, audit: AuditLog(store: store, key: try SigningKey(pemFile: pki.key("coord"))),
                                   policy: try AccessPolicy.parse(AccessPolicy.defaultText)), path)
    }

    func id(_ name: String) throws -> CertificateIdentity { try CertificateIdentity.load(pemFile: pki.cert(name)) }

    @Test("an agent registers; an operator lists it and puts it into maintenance; all of it is audited")
    func allowed() throws {
        let (s, _) = try service()
        let server = try id("server"), alice = try id("alice")
        #expect(s.handle(APIRequest(action: "agent.register"), from: server).ok)
        let hosts = s.handle(APIRequest(action: "hosts"), from: alice)
        #expect(hosts.ok && hosts.rows.map { $0["host"] } == ["server"])
        #expect(s.handle(APIRequest(action: "maintenance", arguments: ["host": "server", "mode": "on"]), from: alice).ok)
        #expect(s.handle(APIRequest(action: "hosts"), from: alice).rows.first?["maintenance"] == "on")
        let audit = try s.audit.entries()
        #expect(audit.map(\.action) == ["agent.register", "hosts", "maintenance", "hosts"])
        let allAllowed = audit.allSatisfy { $0.allowed }
        #expect(allAllowed)
        #expect(audit[2].actor.hasPrefix("alice") && audit[2].role == "operator" && audit[2].target == "server")
    }

    @Test("unauthorized callers are denied, and the denial is audited", arguments: [
        ("eve", "maintenance"), ("server", "hosts"), ("alice", "audit.verify"), ("eve", "agent.register"),
    ])
    func denied(_ caller: String, _ action: String) throws {
        let (s, _) = try service()
        let who = try id(caller)
        let r = s.handle(APIRequest(action: action, arguments: ["host": "server", "mode": "on"]), from: who)
        #expect(!r.ok)
        #expect(r.error?.hasPrefix("access denied") == true, "\(r.error ?? "")")
        let last = try #require(try s.audit.entries().last)
        #expect(!last.allowed && last.action == action && last.actor.hasPrefix(caller))
    }

    @Test("an unknown action is refused and audited")
    func unknownAction() throws {
        let (s, _) = try service()
        let alice = try id("alice")
        #expect(s.handle(APIRequest(action: "format-disks"), from: alice).error == "unknown action 'format-disks'")
        let last = try s.audit.entries().last
        #expect(last?.allowed == false)
    }

    @Test("over TLS with the real CLI: operator allowed, auditor denied, foreign certificate refused, audit intact")
    func overTLS() throws {
        let (_, db) = try service()
        let policyPath = NSTemporaryDirectory() + "palm-policy-\(UUID().uuidString).toml"
        try AccessPolicy.defaultText.write(toFile: policyPath, atomically: true, encoding: .utf8)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: SimCluster.bin("palm-coordinator"))
        p.arguments = ["serve", "--cert", pki.cert("coord"), "--key", pki.key("coord"), "--ca", pki.caCert,
                       "--address", "127.0.0.1", "--port", "0", "--db", db, "--policy", policyPath]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        try p.run()
        defer { kill(p.processIdentifier, SIGKILL); p.waitUntilExit() }
        var line = ""
        while !line.contains("\n") {
            let chunk = out.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            line += String(decoding: chunk, as: UTF8.self)
        }
        let port = try #require(line.split(separator: ":").last.flatMap { UInt16($0.trimmingCharacters(in: .whitespacesAndNewlines)) })

        // An agent registers itself with its host certificate.
        let agent = try CoordinatorClient(host: "127.0.0.1", port: port, context: pki.context("server"))
        let registered = try agent.call(APIRequest(action: "agent.register"))
        #expect(registered.ok)

        func cli(_ who: String, _ args: [String], other: Bool = false) throws -> ProcessRunner.Result {
            try ProcessRunner.run(SimCluster.bin("palm-coordinator"), args + [
                "--server", "127.0.0.1:\(port)", "--cert", pki.cert(who, other: other), "--key", pki.key(who, other: other),
                "--ca", pki.caCert])
        }
        let hosts = try cli("alice", ["hosts"])
        #expect(hosts.status == 0 && hosts.stdout.contains("host=server"), "\(hosts.stdout)\(hosts.stderr)")
        let denied = try cli("eve", ["maintenance", "server", "on"])
        #expect(denied.status == 1)
        #expect(denied.stderr.contains("access denied: role auditor may not maintenance"), "\(denied.stderr)")
        let foreign = try cli("intruder", ["hosts"], other: true)
        #expect(foreign.status == 2)
        #expect(foreign.stderr.contains("refused the connection"), "\(foreign.stderr)")

        let verify = try ProcessRunner.run(SimCluster.bin("palm-coordinator"),
                                           ["audit", "verify", "--db", db, "--coordinator-cert", pki.cert("coord")])
        #expect(verify.status == 0, "\(verify.stderr)")
        #expect(verify.stdout.contains("3 entries"), "\(verify.stdout)")
    }
}
