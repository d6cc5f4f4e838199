import Foundation
import PalmCrypto
import PalmTLS
import PalmTestSupport
import Testing
import PalmSecurity

/// certs/palm-ca, run as an operator would.
@Suite("certs/palm-ca")
struct PalmCATests {
    let dir = NSTemporaryDirectory() + "palm-ca-test-\(UUID().uuidString)"

    @discardableResult
    func ca(_ args: String...) throws -> ProcessRunner.Result {
        try ProcessRunner.run(TestPKI.palmCA, ["--dir", dir] + args)
    }

    func mode(_ path: String) throws -> Int {
        (try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? NSNumber)?.intValue ?? -1
    }

    @Test("init creates a P-256 CA with a 0600 key; re-running keeps the key")
    func initIsIdempotent() throws {
        #expect(try ca("init").status == 0)
        let key = try String(contentsOfFile: dir + "/ca.key", encoding: .utf8)
        #expect(try mode(dir + "/ca.key") == 0o600)
        let again = try ca("init", "--curve", "P-384")
        #expect(again.status == 0)
        #expect(again.stderr.contains("keeping"))
        #expect(try String(contentsOfFile: dir + "/ca.key", encoding: .utf8) == key)
        let text = try ProcessRunner.run("/usr/bin/openssl", ["x509", "-in", dir + "/ca.pem", "-noout", "-text"]).stdout
        #expect(text.contains("prime256v1") || text.contains("P-256"))
        #expect(text.contains("CA:TRUE"))
    }

    @Test("P-384 on request")
    func p384() throws {
        #expect(try ca("init", "--curve", "P-384").status == 0)
        let text = try ProcessRunner.run("/usr/bin/openssl", ["x509", "-in", dir + "/ca.pem", "-noout", "-text"]).stdout
        #expect(text.contains("secp384r1") || text.contains("P-384"))
        #expect(try ca("host", "h1").status == 0)
        let leaf = try ProcessRunner.run("/usr/bin/openssl", ["x509", "-in", dir + "/issued/h1.pem", "-noout", "-text"]).stdout
        #expect(leaf.contains("secp384r1") || leaf.contains("P-384"))
    }

    @Test("a host certificate: serverAuth+clientAuth, SANs, agent role, 0600 key, chains to the CA")
    func host() throws {
        try ca("init")
        #expect(try ca("host", "node-a", "--dns", "node-a.example", "--ip", "10.0.0.1").status == 0)
        #expect(try mode(dir + "/issued/node-a.key") == 0o600)
        let id = try CertificateIdentity.load(pemFile: dir + "/issued/node-a.pem")
        #expect(id.commonName == "node-a")
        #expect(id.dnsNames == ["node-a", "node-a.example"])
        #expect(id.ipAddresses == ["10.0.0.1"])
        #expect(id.role == .agent)
        let text = try ProcessRunner.run("/usr/bin/openssl", ["x509", "-in", dir + "/issued/node-a.pem", "-noout", "-text"]).stdout
        #expect(text.contains("TLS Web Server Authentication, TLS Web Client Authentication"))
        let verify = try ProcessRunner.run("/usr/bin/openssl", ["verify", "-CAfile", dir + "/ca.pem", dir + "/issued/node-a.pem"])
        #expect(verify.status == 0)
    }

    @Test("a CA directory moved elsewhere (a copy on another machine, a restored backup) still issues, revokes and publishes its CRL; one written before is made relocatable")
    func movedCA() throws {
        try ca("init")
        let moved = dir + "-moved"
        defer { try? FileManager.default.removeItem(atPath: moved) }
        try FileManager.default.moveItem(atPath: dir, toPath: moved)
        let there = { (args: [String]) in try ProcessRunner.run(TestPKI.palmCA, ["--dir", moved] + args) }
        #expect(try there(["host", "h1"]).status == 0)
        let verify = try ProcessRunner.run("/usr/bin/openssl", ["verify", "-CAfile", moved + "/ca.pem", moved + "/issued/h1.pem"])
        #expect(verify.status == 0)
        // A configuration that names its directory, as palm-ca wrote them before, moved as well.
        let cnf = moved + "/db/openssl.cnf"
        let text = try String(contentsOfFile: cnf, encoding: .utf8)
        try text.replacingOccurrences(of: "$ENV::PALM_CA_ROOT", with: dir).write(toFile: cnf, atomically: true, encoding: .utf8)
        #expect(try there(["revoke", "h1"]).status == 0)
        #expect(try there(["crl"]).status == 0)
        #expect(try String(contentsOfFile: cnf, encoding: .utf8).contains("$ENV::PALM_CA_ROOT"))
    }

    @Test("an operator certificate carries its role as a SAN URI and is client-only")
    func operatorRole() throws {
        try ca("init")
        for role in ["admin", "operator", "auditor"] {
            #expect(try ca("operator", "op-\(role)", "--role", role).status == 0)
            let id = try CertificateIdentity.load(pemFile: dir + "/issued/op-\(role).pem")
            #expect(id.role == Role(rawValue: role))
            #expect(id.uris == ["palm:role:\(role)"])
        }
        let text = try ProcessRunner.run("/usr/bin/openssl", ["x509", "-in", dir + "/issued/op-admin.pem", "-noout", "-text"]).stdout
        #expect(text.contains("TLS Web Client Authentication"))
        #expect(!text.contains("TLS Web Server Authentication"))
    }

    @Test("list shows issued certificates; revoke marks one and publishes it in the CRL")
    func listAndRevoke() throws {
        try ca("init")
        try ca("host", "keep")
        try ca("host", "gone")
        let revoke = try ca("revoke", "gone", "--reason", "keyCompromise")
        #expect(revoke.status == 0)
        let list = try ca("list").stdout
        #expect(list.contains("valid") && list.contains("CN=keep"))
        #expect(list.split(separator: "\n").contains { $0.hasPrefix("revoked") && $0.contains("CN=gone") })
        let serial = try ProcessRunner.run("/usr/bin/openssl", ["x509", "-in", dir + "/issued/gone.pem", "-noout", "-serial"])
            .stdout.replacingOccurrences(of: "serial=", with: "").trimmingCharacters(in: .whitespacesAndNewlines)
        let crl = try ProcessRunner.run("/usr/bin/openssl", ["crl", "-in", dir + "/crl.pem", "-noout", "-text"]).stdout
        #expect(crl.contains(serial))
        #expect(crl.contains("Key Compromise"))
    }

    @Test("bad arguments fail with a clear message and a non-zero exit", arguments: [
        (["host"], "NAME is required"),
        (["operator", "bob"], "--role is required"),
        (["operator", "bob", "--role", "root"], "--role must be admin, operator or auditor"),
        (["host", "bad name!"], "NAME must be"),
        (["host", "h", "--days", "-3"], "--days must be a positive number"),
        (["host", "h", "--not-after", "tomorrow"], "--not-after must be YYYYMMDDHHMMSSZ"),
        (["host", "h", "--curve", "P-521"], "--curve must be P-256 or P-384"),
        (["host", "h", "--role", "admin"], "--role must be agent or coordinator"),
        (["host", "h", "--bogus"], "unknown option '--bogus'"),
        (["revoke", "nobody"], "no certificate issued to 'nobody'"),
        (["frobnicate"], "unknown command 'frobnicate'"),
    ])
    func badArguments(_ args: [String], _ message: String) throws {
        try ca("init")
        let r = try ProcessRunner.run(TestPKI.palmCA, ["--dir", dir] + args)
        #expect(r.status != 0)
        #expect(r.stderr.contains(message), "stderr: \(r.stderr)")
    }

    @Test("issuing without a CA says so")
    func noCA() throws {
        let r = try ca("host", "h")
        #expect(r.status != 0)
        #expect(r.stderr.contains("no CA in"))
    }

    @Test("issuing a second certificate to the same name is refused")
    func duplicate() throws {
        try ca("init")
        try ca("host", "h")
        let r = try ca("host", "h")
        #expect(r.status != 0)
        #expect(r.stderr.contains("already has a certificate"))
    }

    @Test("every command answers --help", arguments: ["init", "host", "operator", "list", "revoke", "crl"])
    func help(_ command: String) throws {
        let r = try ProcessRunner.run(TestPKI.palmCA, [command, "--help"])
        #expect(r.status == 0)
        #expect(r.stdout.contains("usage: palm-ca"))
    }
}
