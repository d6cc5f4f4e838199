import Foundation
import PalmCrypto
import PalmMigration
import PalmSecurity
import PalmTestSupport
import PalmWire
import Testing

/// Real palm-source and palm-dest processes, the destination's TPM a real swtpm whose PCRs hold
/// the measured boot and IMA log written beside it (what the kernel would expose): the migration
/// attests through a quote over the session, and what the destination ran decides.
@Suite("Hardware-rooted attestation end to end", .serialized)
struct TPMAttestationEndToEndTests {
    /// A cluster whose destination attests with `host`'s TPM and whose source allows exactly
    /// `host`'s platform (its learned policy) and its enrolled key (from `palm-dest measure`).
    func cluster(_ host: MeasuredHost, destExtra: String = "") throws -> SimCluster {
        let policy = host.directory + "/platform-policy.json"
        let agent = try SHA256.hash(file: SimCluster.bin("palm-dest")).hex
        try JSONEncoder().encode(host.policy(agents: [agent])).write(to: URL(fileURLWithPath: policy))
        return try SimCluster(destAttestation: host.destinationTable + "\n" + destExtra, sourceAttestation: "platform_policy = \"\(policy)\"")
    }

    static func palmDestMeasured() throws -> MeasuredHost {
        let path = SimCluster.bin("palm-dest")
        return try MeasuredHost(agent: (path, try SHA256.hash(file: path)))
    }

    @Test("a destination with a TPM attests with a quote of its measured platform; the migration commits and says tpm")
    func tpmCommits() throws {
        let host = try Self.palmDestMeasured()
        let c = try cluster(host)
        defer { c.shutdown() }
        try c.startDest()
        #expect(c.waitForDestLog("attesting with the TPM"))
        try c.createVM("attested", memory: "32M", rate: 200)
        let report = try c.migrate("attested")
        #expect(report.destinationAttestation == "tpm")
        #expect(report.rendered().contains("attestation     tpm"))
        #expect(try c.runningCopies("attested") == (source: false, dest: true))
        #expect(try c.destHypervisor().awaitSelfCheck(vm: "attested").passed)
        // Both hosts keep the evidence, and it says how the destination attested.
        let dir = c.dir + "/source-state/evidence"
        let file = try #require(try FileManager.default.contentsOfDirectory(atPath: dir).first { $0.hasSuffix(".evidence.json") })
        let verify = try ProcessRunner.run(SimCluster.bin("palm-source"), ["evidence", "verify", dir + "/" + file,
                                                                          "--coordinator-cert", c.pki.cert("coord")])
        #expect(verify.status == 0, "\(verify.stdout)\(verify.stderr)")
        #expect(verify.stdout.contains("attestation tpm: a quote of PCRs 0,1,2,3,4,5,6,7,8,9,10"), "\(verify.stdout)")
    }

    @Test("palm-dest started with a preloaded library: refused before the first page, naming the library; after a reboot without it, committed")
    func preloadedLibrary() throws {
        let host = try Self.palmDestMeasured()
        let c = try cluster(host)
        defer { c.shutdown() }
        // The attacker's library: copies what palm-dest reads (here it only exists; what matters
        // is that IMA measures it when the loader maps it executable).
        let source = host.directory + "/snoop.c", library = host.directory + "/snoop.so"
        try "void palm_snoop(void) {}\n".write(toFile: source, atomically: true, encoding: .utf8)
        let cc = try ProcessRunner.run("/usr/bin/cc", ["-shared", "-fPIC", "-o", library, source])
        #expect(cc.status == 0, "cc: \(cc.stderr)")
        try host.measure(file: library)  // what IMA's MMAP_CHECK records as palm-dest maps it
        try c.startDest(environment: ["LD_PRELOAD": library])
        try c.createVM("victim", memory: "32M", rate: 200)
        let (status, _, err) = try c.startMigration("victim").finish()
        #expect(status != 0)
        #expect(err.contains("file not allowed: \(library) sha256:"), "stderr: \(err)")
        #expect(!err.contains("progress: precopy"))
        #expect(c.files(inRoot: c.destRoot).isEmpty)
        #expect(try c.runningCopies("victim") == (source: true, dest: false))
        #expect(try c.sourceHypervisor().awaitSelfCheck(vm: "victim").passed)

        // IMA remembers until the next boot: restarting palm-dest normally is not enough.
        c.killDest()
        try c.startDest()  // a new port: samePort would change the configuration's digest
        let again = try c.startMigration("victim").finish()
        #expect(again.0 != 0 && again.2.contains(library), "stderr: \(again.2)")
        // A reboot (the TPM's PCRs reset, the platform measured again without the library).
        c.killDest()
        host.tpm.halt()
        try host.tpm.start()
        try host.remeasureAfterReboot(dropping: library)
        try c.startDest()  // a new port: samePort would change the configuration's digest
        let report = try c.migrate("victim")
        #expect(report.destinationAttestation == "tpm")
        #expect(try c.runningCopies("victim") == (source: false, dest: true))
    }

    @Test("a source that requires tpm refuses a destination attesting in software, by name")
    func softwareRefused() throws {
        let c = try SimCluster()
        defer { c.shutdown() }
        let config = try String(contentsOfFile: c.sourceConfig, encoding: .utf8)
        try config.replacingOccurrences(of: "require = \"software\"", with: "require = \"tpm\"")
            .write(toFile: c.sourceConfig, atomically: true, encoding: .utf8)
        try c.startDest()
        try c.createVM("plain", memory: "32M")
        let (status, _, err) = try c.startMigration("plain").finish()
        #expect(status != 0)
        #expect(err.contains("software attestation only") && err.contains("requires tpm"), "stderr: \(err)")
        #expect(try c.runningCopies("plain") == (source: true, dest: false))
    }

    @Test("the destination's TPM stops answering mid-handshake: a named abort, the VM stays on the source")
    func tpmStopsAnswering() throws {
        let host = try Self.palmDestMeasured()
        let c = try cluster(host, destExtra: "tpm_timeout_s = 2")
        defer {
            host.tpm.thaw()
            c.shutdown()
        }
        try c.startDest()
        try c.createVM("steady", memory: "32M", rate: 100)
        host.tpm.freeze()
        let (status, _, err) = try c.startMigration("steady").finish()
        #expect(status != 0)
        #expect(err.contains("TPM") && err.contains("did not answer"), "stderr: \(err)")
        #expect(c.files(inRoot: c.destRoot).isEmpty)
        #expect(try c.runningCopies("steady") == (source: true, dest: false))
        #expect(try c.sourceHypervisor().awaitSelfCheck(vm: "steady").passed)
    }
}
