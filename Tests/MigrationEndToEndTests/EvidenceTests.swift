import Foundation
import PalmSecurity
import PalmTestSupport
import Testing

/// Both agents keep signed evidence of a committed migration, and anyone with the certificates
/// can check it offline with `palm-dest evidence verify` / `palm-source evidence verify`.
@Suite("Migration evidence", .serialized)
struct EvidenceTests {
    @Test("both sides store evidence; every signature verifies; an edited file fails naming the check")
    func evidence() throws {
        let c = try SimCluster(); defer { c.shutdown() }
        try c.startDest()
        try c.createVM("ev", memory: "32M", rate: 1000)
        _ = try c.migrate("ev")
        let files = ["source", "dest"].map { side -> String in
            let dir = c.dir + "/\(side)-state/evidence"
            let name = ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).first ?? "missing"
            return dir + "/" + name
        }
        let coord = c.pki.cert("coord")
        let s = try ProcessRunner.run(SimCluster.bin("palm-source"), ["evidence", "verify", files[0], "--coordinator-cert", coord])
        #expect(s.status == 0, "\(s.stdout)\(s.stderr)")
        #expect(s.stdout.contains("all signatures verify"))
        let d = try ProcessRunner.run(SimCluster.bin("palm-dest"), ["evidence", "verify", files[1], "--config", c.destConfig])
        #expect(d.status == 0, "\(d.stdout)\(d.stderr)")
        #expect(d.stdout.components(separatedBy: "OK  ").count - 1 == 6, "six checks: \(d.stdout)")

        // Both sides recorded the same hand-off.
        let se = try Evidence.load(files[0]), de = try Evidence.load(files[1])
        #expect(se.migrationID == de.migrationID && se.manifest == de.manifest && se.commitSignature == de.commitSignature)

        // Swap the COMMIT signature for the READY one: the file no longer verifies.
        var forged = de
        forged.commitSignature = forged.readySignature
        let forgedPath = try forged.save(in: c.dir + "/forged")
        let f = try ProcessRunner.run(SimCluster.bin("palm-dest"), ["evidence", "verify", forgedPath, "--config", c.destConfig])
        #expect(f.status == 1)
        #expect(f.stdout.contains("FAIL COMMIT signed by the source"))

        // Another coordinator's certificate does not vouch for the ticket.
        let o = try ProcessRunner.run(SimCluster.bin("palm-source"), ["evidence", "verify", files[0], "--coordinator-cert", c.pki.cert("server")])
        #expect(o.status == 1)
        #expect(o.stdout.contains("FAIL ticket signed by a listed coordinator"))
        // Listed beside the real one (two coordinators), it does.
        let both = try ProcessRunner.run(SimCluster.bin("palm-source"), ["evidence", "verify", files[0], "--coordinator-cert", c.pki.cert("server"),
                                                                          "--coordinator-cert", c.pki.cert("coord")])
        #expect(both.status == 0, "\(both.stdout)\(both.stderr)")

        // One command for both agents: without --coordinator-cert, palm-source takes the
        // coordinators its configuration lists ([coordinator] certificate), as palm-dest does…
        let listed = c.dir + "/source-with-coordinator.toml"
        try (String(contentsOfFile: c.sourceConfig, encoding: .utf8)
            + "\n[coordinator]\naddress = \"127.0.0.1:7400\"\ncertificate = \"\(coord)\"\nadvertise = \"127.0.0.1:7410\"\n")
            .write(toFile: listed, atomically: true, encoding: .utf8)
        let fromConfig = try ProcessRunner.run(SimCluster.bin("palm-source"), ["evidence", "verify", files[0], "--config", listed])
        #expect(fromConfig.status == 0, "\(fromConfig.stdout)\(fromConfig.stderr)")
        // …and a configuration that lists none is a named error (exit 2), never an unchecked ticket.
        let none = try ProcessRunner.run(SimCluster.bin("palm-source"), ["evidence", "verify", files[0], "--config", c.sourceConfig])
        #expect(none.status == 2)
        #expect(none.stderr.contains("no coordinator certificate"), "\(none.stderr)")
    }
}
