import Foundation
import PalmCrypto
import PalmMigration
import PalmSecurity
import PalmTestSupport
import PalmTPM
import PalmWire
import Testing

/// Real palm-source and palm-dest processes, the destination's TPM a real swtpm whose PCRs hold
/// the measured boot and IMA log written beside it (what the kernel would expose): the migration
/// attests through a quote over the session, and what the destination ran decides.
@Suite("Hardware-rooted attestation end to end", .serialized)
struct TPMAttestationEndToEndTests {
    /// A cluster whose destination attests with `host`'s TPM and whose source allows exactly
    /// `host`'s platform (its learned policy) and its enrolled key (from `palm-dest measure`).
    /// `keyInTPM`: the destination's TLS key is its TPM's, its certificate issued from a request
    /// the TPM signed; otherwise a key file (the cluster's "server" certificate).
    func cluster(_ host: MeasuredHost, destExtra: String = "", sourceExtra: String = "", keyInTPM: Bool = true) throws -> SimCluster {
        let policy = host.directory + "/platform-policy.json"
        let agent = try SHA256.hash(file: SimCluster.bin("palm-dest")).hex
        try JSONEncoder().encode(host.policy(agents: [agent])).write(to: URL(fileURLWithPath: policy))
        let name = "tpm-host-\(UInt32.random(in: 0...UInt32.max))"
        if keyInTPM { _ = try host.tlsCertificate(TestPKI.shared, name: name) }
        return try SimCluster(destCert: keyInTPM ? name : "server", destAttestation: host.destinationTable + "\n" + destExtra,
                              sourceAttestation: "platform_policy = \"\(policy)\"\n" + sourceExtra, destKeyInTPM: keyInTPM)
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
        #expect(c.waitForDestLog("the TLS key is in the TPM"))
        try c.createVM("attested", memory: "32M", rate: 200)
        let report = try c.migrate("attested")
        #expect(report.destinationAttestation == "tpm")
        #expect(report.destinationTLSKey == "tpm")
        #expect(report.rendered().contains("attestation     tpm (the destination's TPM, which also holds its TLS key)"))
        #expect(try c.runningCopies("attested") == (source: false, dest: true))
        #expect(try c.destHypervisor().awaitSelfCheck(vm: "attested").passed)
        // Both hosts keep the evidence, and it says how the destination attested.
        let dir = c.dir + "/source-state/evidence"
        let file = try #require(try FileManager.default.contentsOfDirectory(atPath: dir).first { $0.hasSuffix(".evidence.json") })
        let verify = try ProcessRunner.run(SimCluster.bin("palm-source"), ["evidence", "verify", dir + "/" + file,
                                                                          "--coordinator-cert", c.pki.cert("coord")])
        #expect(verify.status == 0, "\(verify.stdout)\(verify.stderr)")
        #expect(verify.stdout.contains("attestation tpm: a quote of PCRs 0,1,2,3,4,5,6,7,8,9,10"), "\(verify.stdout)")
        #expect(verify.stdout.contains("the TLS key in the TPM, certified by its attestation key"), "\(verify.stdout)")
    }

    @Test("a TPM-attested destination whose TLS key is a file (copyable anywhere): refused before the first page by a source requiring tls_key = tpm, accepted and shown as such with tls_key = file")
    func tlsKeyFromAFile() throws {
        let host = try Self.palmDestMeasured()
        let c = try cluster(host, keyInTPM: false)
        defer { c.shutdown() }
        try c.startDest()
        #expect(c.waitForDestLog("the TLS key is a file"))
        try c.createVM("guarded", memory: "32M", rate: 100)
        let (status, _, err) = try c.startMigration("guarded").finish()
        #expect(status != 0)
        #expect(err.contains("TLS key is not in its TPM") && err.contains("attestation.tls_key = tpm"), "stderr: \(err)")
        #expect(!err.contains("progress: precopy"))
        #expect(c.files(inRoot: c.destRoot).isEmpty)
        #expect(try c.runningCopies("guarded") == (source: true, dest: false))

        // The operator accepts less, explicitly: the report says what was accepted.
        let config = try String(contentsOfFile: c.sourceConfig, encoding: .utf8)
        try config.replacingOccurrences(of: "\n[attestation]\n", with: "\n[attestation]\ntls_key = \"file\"\n")
            .write(toFile: c.sourceConfig, atomically: true, encoding: .utf8)
        let report = try c.migrate("guarded")
        #expect(report.destinationTLSKey == "file")
        #expect(report.rendered().contains("its TLS key from a file: accepted by attestation.tls_key = file"))
    }

    @Test("palm-dest tls-key: the TPM's key, whether the certificate is for it, a request signed in the TPM that palm-ca issues a certificate for; a certificate of another TPM's key stops palm-dest at start")
    func tlsKeyCommand() throws {
        let host = try Self.palmDestMeasured()
        let c = try cluster(host)
        defer { c.shutdown() }
        let show = try ProcessRunner.run(SimCluster.bin("palm-dest"), ["tls-key", "--config", c.destConfig])
        #expect(show.status == 0, "\(show.stderr)")
        #expect(show.stdout.contains("TLS key in the TPM at \(host.tpm.tcti)"), "\(show.stdout)")
        #expect(show.stdout.contains("a certificate for this key") && show.stdout.contains("in use"), "\(show.stdout)")
        let csr = c.dir + "/request.csr", name = "renamed-\(UInt32.random(in: 0...UInt32.max))"
        let request = try ProcessRunner.run(SimCluster.bin("palm-dest"), ["tls-key", "--config", c.destConfig, "--csr", csr, "--name", name])
        #expect(request.status == 0, "\(request.stderr)")
        try TestPKI.shared.mintHost(name, request: csr)
        let issued = try VerifyingKey(certificateFile: TestPKI.shared.cert(name)).subjectPublicKeyInfo()
        #expect(issued == (try TPMTLSKey(device: host.device).subjectPublicKeyInfo))
        #expect(try CertificateIdentity.load(pemFile: TestPKI.shared.cert(name)).commonName == name)

        // The whole /etc/palm of this host copied to a machine with another TPM: palm-dest refuses to start.
        let other = try Self.palmDestMeasured()
        let config = try String(contentsOfFile: c.destConfig, encoding: .utf8)
        try config.replacingOccurrences(of: host.tpm.tcti, with: other.tpm.tcti).write(toFile: c.destConfig, atomically: true, encoding: .utf8)
        let start = try ProcessRunner.run(SimCluster.bin("palm-dest"), ["serve", "--config", c.destConfig])
        #expect(start.status != 0)
        #expect(start.stderr.contains("is not a certificate for the TLS key in the TPM at \(other.tpm.tcti)"), "\(start.stderr)")
    }

    @Test("palm-dest measure --platform-policy: a policy learned from this host's logs as they are (its boot, every file IMA measured, this palm-dest), which a source takes as its platform_policy; refused without a TPM")
    func measurePlatformPolicy() throws {
        let host = try Self.palmDestMeasured()
        let c = try cluster(host)
        defer { c.shutdown() }
        let file = c.dir + "/learned-policy.json"
        let r = try ProcessRunner.run(SimCluster.bin("palm-dest"), ["measure", "--config", c.destConfig, "--platform-policy", file])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("platform_policy = \"\(file)\""), "\(r.stdout)")
        let learned = try PlatformTrust.loadPolicy(file)
        let agent = try SHA256.hash(file: SimCluster.bin("palm-dest")).hex
        let expected = host.policy(agents: [agent])
        #expect(Set(learned.files.map(\.digest)) == Set(expected.files.map(\.digest)))
        #expect(Set(learned.boot.map(\.digest)) == Set(expected.boot.map(\.digest)))
        #expect(learned.agents == [agent])
        // The source with the learned policy: the migration commits.
        let config = try String(contentsOfFile: c.sourceConfig, encoding: .utf8)
        let source = config.components(separatedBy: "\n").filter { !$0.hasPrefix("platform_policy") }.joined(separator: "\n")
        try source.replacingOccurrences(of: "\n[attestation]\n", with: "\n[attestation]\nplatform_policy = \"\(file)\"\n")
            .write(toFile: c.sourceConfig, atomically: true, encoding: .utf8)
        try c.startDest()
        try c.createVM("learned", memory: "32M", rate: 100)
        #expect(try c.migrate("learned").destinationAttestation == "tpm")

        // A destination that attests in software has no platform to learn from.
        let plain = try SimCluster()
        defer { plain.shutdown() }
        let refused = try ProcessRunner.run(SimCluster.bin("palm-dest"), ["measure", "--config", plain.destConfig, "--platform-policy", file])
        #expect(refused.status != 0)
        #expect(refused.stderr.contains("--platform-policy needs attestation.mode = \"tpm\""), "\(refused.stderr)")
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
        // The TLS key in a file: the TPM stops between the handshake and the quote (with the key
        // in the TPM the handshake itself would fail, TLSKeyTests shows how).
        let host = try Self.palmDestMeasured()
        let c = try cluster(host, destExtra: "tpm_timeout_s = 2", sourceExtra: "tls_key = \"file\"", keyInTPM: false)
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
