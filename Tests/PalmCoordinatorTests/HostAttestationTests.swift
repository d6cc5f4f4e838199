import Foundation
import PalmAgent
import PalmControl
import PalmCoordinator
import PalmCrypto
import PalmSecurity
import PalmTestSupport
import PalmWire
import Testing

/// A host's palm-source as the coordinator sees it: its heartbeats carry what its real (software)
/// TPM answers to the coordinator's last request (``PlatformReporter``).
final class TPMAgent: @unchecked Sendable {
    let name: String
    let measured: MeasuredHost
    let reporter: PlatformReporter
    var request: PlatformRequest?
    var orders = AgentOrders()

    init(_ name: String, manufacturer: SoftwareTPMManufacturer) throws {
        self.name = name
        measured = try MeasuredHost(manufacturer: manufacturer, agent: ("/usr/bin/palm-dest", SHA256.hash(Array("palm-dest".utf8))))
        reporter = PlatformReporter(settings: PlatformAttestationSettings(mode: .tpm, tpm: measured.tpm.tcti, tpmTimeout: 60,
                                                                          pcrs: PlatformPolicy.defaultPCRs, bootLog: measured.bootLogPath,
                                                                          imaLog: measured.imaLogPath),
                                    host: name, logger: .init(label: "test"))
    }

    /// One heartbeat: the TPM's answer to the last request in, the next request out.
    func beat(_ h: ServiceHarness) throws {
        let report = HostReport(destinationAddress: "10.0.0.\(name.count):7410", cpus: 4, cpuLoad: 0, memoryTotal: 4 << 30, memoryUsed: 0, vms: [],
                                platform: reporter.answer(request))
        let r = h.service.handle(APIRequest(action: "agent.heartbeat", report: report), from: try h.id(name))
        guard r.ok, let orders = r.orders else { throw CoordinatorService.ServiceError.refused(r.error ?? "no orders") }
        reporter.delivered(report.platform)
        self.orders = orders
        request = orders.platform
    }
}

extension HostReport {
    init(destinationAddress: String, cpus: Int, cpuLoad: Double, memoryTotal: UInt64, memoryUsed: UInt64, vms: [VMReport], platform: PlatformReport?) {
        self.init(destinationAddress: destinationAddress, cpus: cpus, cpuLoad: cpuLoad, memoryTotal: memoryTotal, memoryUsed: memoryUsed, vms: vms)
        self.platform = platform
    }
}

/// Enrollment (EK certificate, credential activation, an operator's decision) and continuous
/// attestation (quotes over the coordinator's nonces, IMA followed incrementally, the policy)
/// against real software TPMs, through the coordinator's API with a clock the test drives.
@Suite("Host enrollment and continuous attestation", .serialized)
struct HostAttestationTests {
    static func settings(cas: [String], enrollment: AttestationSettings.Enrollment = .operatorApproval, chunk: Int = 256 << 10) -> CoordinatorSettings {
        var s = CoordinatorSettings()
        s.allowlist.platform = PlatformTrust(requirement: .tpm)
        s.attestation.endorsementCAs = cas
        s.attestation.enrollment = enrollment
        s.attestation.quoteInterval = 10
        s.attestation.maxQuoteAge = 30
        s.attestation.imaChunk = chunk
        return s
    }

    func attestation(_ h: ServiceHarness, _ host: String) throws -> String {
        try h.call("olivia", "hosts").rows.first { $0["host"] == host }?["attestation"] ?? "?"
    }

    @Test("a host's TPM proves its key, an operator enrolls it, its quotes are checked against a learned policy; a new file makes it untrusted")
    func enrollAndAttest() throws {
        let vendor = try SoftwareTPMManufacturer()
        let agent = try TPMAgent("server", manufacturer: vendor)
        let h = try ServiceHarness(settings: Self.settings(cas: vendor.caCertificates))
        try agent.beat(h)  // identity → challenge
        #expect(agent.request?.credentialBlob != nil)
        try agent.beat(h)  // activated → proven
        #expect(try attestation(h, "server") == "tpm proven, waiting for hosts enroll")
        #expect(agent.orders.allowlist.platform?.enrolledKeys["server"] == nil)
        // Enrolling decides which hosts may receive VMs: an operator may not, an admin may.
        #expect(try h.call("alice", "hosts.enroll", ["host": "server"]).error?.hasPrefix("access denied") == true)
        #expect(try h.call("olivia", "hosts.enroll", ["host": "server"]).rows.first?["state"] == "enrolled")
        try agent.beat(h)  // a quote is asked
        #expect(agent.request?.quoteNonce != nil)
        try agent.beat(h)  // … and checked: nothing is allowed yet
        #expect(try attestation(h, "server").hasPrefix("tpm untrusted: boot component not allowed"))
        #expect(try h.call("olivia", "attestation.policy.learn", ["host": "server"]).rows.first?["version"] == "1")
        h.now += 11
        try agent.beat(h)
        try agent.beat(h)
        #expect(try attestation(h, "server") == "tpm trusted")
        let key = try agent.measured.keyName()
        #expect(agent.orders.allowlist.platform?.enrolledKeys["server"] == key)
        #expect(agent.orders.allowlist.platform?.policy.files.count == agent.measured.ima.entries.count - 1)  // all but boot_aggregate

        // The host runs something the policy does not know: untrusted at its next quote, and it
        // stays so (IMA keeps it in the log) — shown by diff, and no VM goes there.
        let evil = SHA256.hash(Array("a rootkit".utf8))
        try agent.measured.measure(IMALog.Entry(path: "/tmp/.x/rootkit", sha256: evil))
        h.now += 11
        try agent.beat(h)
        try agent.beat(h)
        #expect(try attestation(h, "server") == "tpm untrusted: file not allowed: /tmp/.x/rootkit sha256:\(evil.hex) (policy v1)")
        h.now += 11
        try agent.beat(h)
        try agent.beat(h)
        #expect(try attestation(h, "server").contains("/tmp/.x/rootkit"))
        let diff = try h.call("eve", "attestation.policy.diff", ["host": "server"])
        #expect(diff.rows.map { $0["what"] } == ["/tmp/.x/rootkit"])
        try h.heartbeat("client", vms: [ServiceHarness.vm("web")])
        let refused = try h.call("olivia", "migrate", ["vm": "web", "to": "server"])
        #expect(refused.error?.contains("server receives no VMs: tpm untrusted: file not allowed") == true, "\(refused.error ?? "")")
        let actions = try h.service.audit.entries().map(\.action)
        #expect(actions.filter { $0 == "tpm.enroll" }.count == 2 && actions.contains("hosts.enroll") && actions.contains("attestation.policy.learn"))
        #expect(actions.filter { $0 == "tpm.attest" }.count == 3, "untrusted, trusted, untrusted: \(actions)")
    }

    @Test("a heartbeat lost before the coordinator answered does not lose the TPM's identity: the next one carries it again")
    func identityUntilDelivered() throws {
        let vendor = try SoftwareTPMManufacturer()
        let agent = try TPMAgent("server", manufacturer: vendor)
        let lost = agent.reporter.answer(nil)  // the coordinator was not up: no answer, nothing delivered
        #expect(lost?.identity != nil)
        let h = try ServiceHarness(settings: Self.settings(cas: vendor.caCertificates))
        try agent.beat(h)
        #expect(agent.request?.credentialBlob != nil, "the identity arrived with the next heartbeat and was challenged")
        #expect(agent.reporter.answer(nil)?.identity == nil, "once delivered it is not sent unasked")
    }

    @Test("an EK certificate of a manufacturer the coordinator does not trust: refused, never enrolled, named")
    func foreignManufacturer() throws {
        let vendor = try SoftwareTPMManufacturer(), trusted = try SoftwareTPMManufacturer()
        _ = try SoftwareTPM(manufacturer: trusted)  // makes that CA
        let agent = try TPMAgent("server", manufacturer: vendor)
        let h = try ServiceHarness(settings: Self.settings(cas: trusted.caCertificates, enrollment: .automatic))
        try agent.beat(h)
        try agent.beat(h)
        #expect(agent.request == nil)
        #expect(try attestation(h, "server").hasPrefix("tpm refused: enrollment refused: the EK certificate does not chain to a trusted TPM manufacturer CA"))
        #expect(agent.orders.allowlist.platform?.enrolledKeys["server"] == nil)
    }

    @Test("with enrollment = auto a proven key is enrolled at once; another TPM under the same name waits for an operator")
    func changedKey() throws {
        let vendor = try SoftwareTPMManufacturer()
        let h = try ServiceHarness(settings: Self.settings(cas: vendor.caCertificates, enrollment: .automatic))
        let first = try TPMAgent("server", manufacturer: vendor)
        try first.beat(h)
        try first.beat(h)
        #expect(first.orders.allowlist.platform?.enrolledKeys["server"] == (try first.measured.keyName()))
        // The same host name with another TPM (a replaced board, or a machine posing as it).
        let second = try TPMAgent("server", manufacturer: vendor)
        try second.beat(h)
        #expect(try attestation(h, "server").contains("attestation key changed"))
        #expect(second.orders.allowlist.platform?.enrolledKeys["server"] == (try first.measured.keyName()))
        #expect(try h.call("olivia", "hosts.enroll", ["host": "server"]).rows.first?["state"] == "reenroll")
        for _ in 0..<3 { try second.beat(h) }
        #expect(second.orders.allowlist.platform?.enrolledKeys["server"] == (try second.measured.keyName()))
    }

    @Test("a long IMA log arrives in chunks across quotes; the host is trusted once a quote covers all of it")
    func incrementalIMA() throws {
        let vendor = try SoftwareTPMManufacturer()
        let agent = try TPMAgent("server", manufacturer: vendor)
        for i in 0..<120 { try agent.measured.measure(IMALog.Entry(path: "/usr/lib/module-\(i).so", sha256: SHA256.hash(Array("m\(i)".utf8)))) }
        let h = try ServiceHarness(settings: Self.settings(cas: vendor.caCertificates, enrollment: .automatic, chunk: 4 << 10))
        try agent.beat(h)
        try agent.beat(h)
        _ = try h.service.store.write { db in
            try db.execute(sql: "INSERT INTO platform_policy (version, policy, created, created_by, note) VALUES (1, ?, 0, 'test', 'test')",
                           arguments: [String(decoding: try JSONEncoder().encode(agent.measured.policy(agents: [])), as: UTF8.self)])
        }
        var beats = 0
        while try attestation(h, "server") != "tpm trusted", beats < 40 {
            try agent.beat(h)
            beats += 1
        }
        #expect(try attestation(h, "server") == "tpm trusted")
        #expect(beats > 3, "4 KiB chunks of a ~17 KiB log take several quotes: \(beats)")
    }
}

@Suite("Platform trust sent only when it changed")
struct PlatformTrustVersionTests {
    @Test("an agent holding the current version is sent no policy or keys; an enrollment or a new policy sends them again")
    func versioned() throws {
        let vendor = try SoftwareTPMManufacturer()
        let agent = try TPMAgent("server", manufacturer: vendor)
        let h = try ServiceHarness(settings: HostAttestationTests.settings(cas: vendor.caCertificates, enrollment: .automatic))
        func beat(holding version: String?) throws -> AgentOrders {
            var report = HostReport(destinationAddress: "10.0.0.1:7410", cpus: 4, cpuLoad: 0, memoryTotal: 4 << 30, memoryUsed: 0, vms: [],
                                    platform: agent.reporter.answer(agent.request))
            report.platformTrustVersion = version
            let r = h.service.handle(APIRequest(action: "agent.heartbeat", report: report), from: try h.id("server"))
            guard let orders = r.orders else { throw CoordinatorService.ServiceError.refused(r.error ?? "no orders") }
            agent.request = orders.platform
            return orders
        }
        let first = try beat(holding: nil)  // identity → a credential to activate
        let version = try #require(first.platformTrustVersion)
        #expect(first.allowlist.platform?.version == version)
        let enrolled = try beat(holding: version)  // activated → enrolled (auto): the version changes
        #expect(enrolled.platformTrustVersion != version, "an enrollment changes the version")
        #expect(enrolled.allowlist.platform?.enrolledKeys["server"] == (try agent.measured.keyName()))
        let current = try #require(enrolled.platformTrustVersion)
        #expect(try beat(holding: current).allowlist.platform == nil, "current: nothing resent")
        _ = try beat(holding: current)  // its quote is checked: the verified logs are stored
        #expect(try h.call("olivia", "attestation.policy.learn", ["host": "server"]).ok)
        let after = try beat(holding: current)
        #expect(after.platformTrustVersion != current, "a new policy version changes it")
        #expect(after.allowlist.platform?.policy.files.isEmpty == false)
        #expect(try beat(holding: after.platformTrustVersion).allowlist.platform == nil)
    }
}
