import Foundation
import PalmTestSupport
import Testing

/// The Xen driver as an operator meets it outside dom0, and the exact sizes `vms --json` prints.
@Suite("xen driver from the command line")
struct XenDriverCLITests {
    @Test("outside dom0 the xen driver fails with the Xen call's name and errno, exit 1, no crash")
    func outsideDom0() throws {
        guard !FileManager.default.fileExists(atPath: "/dev/xen/privcmd") else { return }  // a real dom0: nothing to show
        let pki = try TestPKI()
        let dir = NSTemporaryDirectory() + "palm-xencli-\(UUID().uuidString.prefix(6))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let config = dir + "/source.toml"
        try """
        [tls]
        certificate = "\(pki.cert("client"))"
        key = "\(pki.key("client"))"
        ca = "\(pki.caCert)"
        [hypervisor]
        driver = "xen"
        [state]
        directory = "\(dir)/state"
        """.write(toFile: config, atomically: true, encoding: .utf8)
        let r = try ProcessRunner.run(SimCluster.bin("palm-source"), ["vms", "--config", config])
        #expect(r.status == 1)
        #expect(r.stderr.contains("xc_interface_open"), "names the Xen call: \(r.stderr)")
        #expect(r.stderr.contains("errno"), "carries errno: \(r.stderr)")
    }

    @Test("vms --json prints each VM's exact memory, the size a ticket must cover")
    func exactSizes() throws {
        let cluster = try SimCluster()
        defer { cluster.shutdown() }
        try cluster.createVM("exact", memory: "20M")
        let r = try ProcessRunner.run(SimCluster.bin("palm-source"), ["vms", "--json", "--config", cluster.sourceConfig])
        #expect(r.status == 0, "\(r.stderr)")
        let list = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [[String: Any]]
        let vm = list?.first { $0["name"] as? String == "exact" }
        #expect(vm?["memoryBytes"] as? Int == 20 << 20)
        #expect(vm?["state"] as? String == "running")
    }
}
