import Foundation
import PalmAgent
import PalmConfig
import PalmCoordinator
import PalmTestSupport
import PalmWire
import Testing

/// The example configurations under deploy/ are what operators copy: they must load as they are.
@Suite("deploy/ example configurations")
struct ExampleConfigTests {
    let deploy = TestPKI.repoRoot.appendingPathComponent("deploy").path

    @Test("source.toml loads with the documented defaults")
    func source() throws {
        let c = try SourceConfiguration.load(path: deploy + "/source.toml")
        #expect(c.policy.downtimeTarget == 0.1)
        #expect(c.policy.dirtyPageFloor == 50)
        #expect(c.batchPages == 256)
        #expect(c.hypervisor.driver == "xen")
        #expect(c.streams == SourceConfiguration.defaultStreams && (1...8).contains(c.streams))
        #expect(c.compression == .auto)
        #expect(c.pageThreadNice == 10)
        #expect(c.policy.throttleInitial == 50 && c.policy.throttleStep == 25 && c.policy.linkRatio == 1)
        #expect(c.hypervisor.xenSuspendEstimate == 0.3)
        #expect(c.hypervisor.xenBuildBuffer == 64 << 20)
    }

    @Test("dest.toml loads with the documented defaults")
    func dest() throws {
        let c = try DestinationConfiguration.load(path: deploy + "/dest.toml")
        #expect(c.listenPort == 7410)
        #expect(c.maxConcurrent == 4)
        #expect(c.maxStreams == 8 && c.streamTimeout == 60)
        #expect(c.pageThreadNice == 10)
        let path = NSTemporaryDirectory() + "palm-dest-\(UUID().uuidString.prefix(6)).toml"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let text = try String(contentsOfFile: deploy + "/dest.toml", encoding: .utf8)
        try text.replacingOccurrences(of: "page_thread_nice = 10", with: "page_thread_nice = 20").write(toFile: path, atomically: true, encoding: .utf8)
        #expect(throws: ConfigError.self, "a nice value outside 0-19 is a named configuration error") { try DestinationConfiguration.load(path: path) }
    }

    @Test("coordinator.toml loads with the documented defaults")
    func coordinator() throws {
        let c = try CoordinatorConfiguration.load(path: deploy + "/coordinator.toml")
        #expect(c.listenPort == 7400 && c.ticketValidity == 300 && c.autoBalance)
        #expect(c.scheduler.imbalanceThreshold == 0.15 && c.scheduler.maxPerHost == 1 && c.scheduler.maxConcurrent == 4)
        #expect(c.scheduler.holdTime == 300 && c.scheduler.retryDelay == 60 && c.scheduler.linkRate == 1e9)
        #expect(c.allowlist.agents.isEmpty, "deny by default")
        #expect(c.store == .sqlite(path: "/var/lib/palm/coordinator/palm.sqlite") && c.leaseDuration == 10)
    }

    @Test("coordinator-ha.toml: PostgreSQL, an advertised address, the lease; a wildcard advertise is refused")
    func coordinatorHA() throws {
        let c = try CoordinatorConfiguration.load(path: deploy + "/coordinator-ha.toml")
        #expect(c.store == .postgresql(url: "postgresql://palm@db.example:5432/palm?sslmode=verify-full", connectTimeout: 5))
        #expect(c.advertiseAddress == "10.0.0.1:7400" && c.leaseDuration == 10)
        let path = NSTemporaryDirectory() + "palm-coord-\(UUID().uuidString.prefix(6)).toml"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let text = try String(contentsOfFile: deploy + "/coordinator-ha.toml", encoding: .utf8)
        try text.replacingOccurrences(of: "advertise = \"10.0.0.1:7400\"\n", with: "").write(toFile: path, atomically: true, encoding: .utf8)
        #expect(throws: ConfigError.self) { try CoordinatorConfiguration.load(path: path) }
        try text.replacingOccurrences(of: "postgresql://palm@db", with: "mysql://palm@db").write(toFile: path, atomically: true, encoding: .utf8)
        #expect(throws: ConfigError.self) { try CoordinatorConfiguration.load(path: path) }
    }

    @Test("source.toml's [coordinator] table: all three keys or none")
    func coordinatorLink() throws {
        let path = NSTemporaryDirectory() + "palm-source-\(UUID().uuidString.prefix(6)).toml"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let example = try String(contentsOfFile: deploy + "/source.toml", encoding: .utf8)
        let base = String(example[..<(example.range(of: "[coordinator]")?.lowerBound ?? example.endIndex)])
        try (base + "\n[coordinator]\naddress = \"10.0.0.1:7400\"\n").write(toFile: path, atomically: true, encoding: .utf8)
        #expect(throws: ConfigError.missingKey(file: path, key: "coordinator.certificate")) { try SourceConfiguration.load(path: path) }
        try (base + "\n[coordinator]\naddress = \"nowhere\"\ncertificate = \"c.pem\"\nadvertise = \"10.0.0.2:7410\"\n")
            .write(toFile: path, atomically: true, encoding: .utf8)
        #expect(throws: ConfigError.invalidValue(file: path, key: "coordinator.address", reason: "'nowhere' is not HOST:PORT")) {
            try SourceConfiguration.load(path: path)
        }
    }
}
