import Foundation
import PalmAgent
import PalmTestSupport
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
    }

    @Test("dest.toml loads with the documented defaults")
    func dest() throws {
        let c = try DestinationConfiguration.load(path: deploy + "/dest.toml")
        #expect(c.listenPort == 7410)
        #expect(c.maxConcurrent == 4)
    }
}
