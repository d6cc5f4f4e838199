import Foundation
import PalmTestSupport
import Testing

/// deploy/'s units and scripts/install.sh: what an operator installs is valid, hardened, and
/// removable again.
@Suite("deploy: units and install", .serialized)
struct DeployTests {
    let repo = TestPKI.repoRoot.path

    func install(_ args: [String]) throws -> ProcessRunner.Result {
        try ProcessRunner.run("/bin/bash", [repo + "/scripts/install.sh"] + args)
    }

    /// The installed units, their ExecStart pointing into `root` so systemd can check the binaries.
    func units(in root: String) throws -> [String] {
        try ["palm-coordinator", "palm-source", "palm-dest"].map { name in
            let path = "\(root)/etc/systemd/system/\(name).service"
            let text = try String(contentsOfFile: path, encoding: .utf8).replacingOccurrences(of: "/usr/local/bin/", with: "\(root)/usr/local/bin/")
            let copy = "\(root)/check-\(name).service"
            try text.write(toFile: copy, atomically: true, encoding: .utf8)
            return copy
        }
    }

    @Test("install.sh refuses binaries whose shared libraries are missing, naming the binary, the library and its package")
    func missingLibraries() throws {
        let dir = NSTemporaryDirectory() + "palm-libs-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir + "/bin", withIntermediateDirectories: true)
        try "int palm_gone(void) { return 0; }\n".write(toFile: dir + "/gone.c", atomically: true, encoding: .utf8)
        try "int palm_gone(void); int main(void) { return palm_gone(); }\n".write(toFile: dir + "/main.c", atomically: true, encoding: .utf8)
        // Two libraries that exist only while linking: one whose package install.sh knows (a Xen
        // toolstack soname), one it cannot know.
        for (file, soname) in [("libxenpalmgone.so", "libxenpalmgone.so.4.17"), ("libpalmgone.so", "libpalmgone.so.1")] {
            let r = try ProcessRunner.run("/usr/bin/cc", ["-shared", "-fPIC", "-Wl,-soname,\(soname)", "-o", "\(dir)/\(file)", dir + "/gone.c"])
            #expect(r.status == 0, "\(r.stderr)")
        }
        for (binary, lib) in [("palm-dest", "xenpalmgone"), ("palm-coordinator", "palmgone")] {
            let r = try ProcessRunner.run("/usr/bin/cc", ["-o", "\(dir)/bin/\(binary)", dir + "/main.c", "-L" + dir, "-l" + lib])
            #expect(r.status == 0, "\(r.stderr)")
        }
        for binary in ["palm-source", "palm-simguest"] { try FileManager.default.copyItem(atPath: "/bin/true", toPath: "\(dir)/bin/\(binary)") }
        for file in ["libxenpalmgone.so", "libpalmgone.so"] { try FileManager.default.removeItem(atPath: "\(dir)/\(file)") }

        let unknown = try ProcessRunner.run("/usr/bin/env", ["PALM_INSTALL_APT=0", "/bin/bash", repo + "/scripts/install.sh", "--check-libraries", "--bin-dir", dir + "/bin"])
        #expect(unknown.status != 0)
        #expect(unknown.stderr.contains("no Debian package is known for libpalmgone.so.1 (palm-coordinator)"), "\(unknown.stderr)")

        try FileManager.default.removeItem(atPath: dir + "/bin/palm-coordinator")
        try FileManager.default.copyItem(atPath: "/bin/true", toPath: dir + "/bin/palm-coordinator")
        let known = try ProcessRunner.run("/usr/bin/env", ["PALM_INSTALL_APT=0", "/bin/bash", repo + "/scripts/install.sh", "--check-libraries", "--bin-dir", dir + "/bin"])
        #expect(known.status != 0)
        #expect(known.stderr.contains("palm-dest needs libxenpalmgone.so.4.17 (Debian package libxenmisc4.17), which is not installed"), "\(known.stderr)")

        // The real binaries: every library present.
        let real = try ProcessRunner.run("/usr/bin/env", ["PALM_INSTALL_APT=0", "/bin/bash", repo + "/scripts/install.sh", "--check-libraries", "--bin-dir", SimCluster.binDir])
        #expect(real.status == 0, "\(real.stdout)\(real.stderr)")
        let ldd = try ProcessRunner.run("/usr/bin/ldd", [SimCluster.bin("palm-simguest")])
        #expect(!ldd.stdout.contains("libxen"), "palm-simguest must load no Xen library: \(ldd.stdout)")
    }

    @Test("install into a root: binaries, units, configs, user; systemd-analyze verify passes; security scores printed")
    func installVerifyScore() throws {
        let root = NSTemporaryDirectory() + "palm-root-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: root) }
        let r = try install(["--root", root, "--bin-dir", SimCluster.binDir])
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
        for p in ["palm-coordinator", "palm-source", "palm-dest", "palm-simguest"] {
            #expect(FileManager.default.isExecutableFile(atPath: "\(root)/usr/local/bin/\(p)"))
        }
        for c in ["coordinator", "source", "dest", "policy"] {
            let attrs = try FileManager.default.attributesOfItem(atPath: "\(root)/etc/palm/\(c).toml")
            #expect((attrs[.posixPermissions] as? Int) == 0o640, "\(c).toml must not be world-readable")
        }
        #expect(try String(contentsOfFile: "\(root)/etc/passwd", encoding: .utf8).contains("palm:x:"))
        // Man pages and completions, generated from the commands themselves; the dashboard.
        let share = "\(root)/usr/local/share"
        func text(_ path: String) -> String { (try? String(contentsOfFile: share + path, encoding: .utf8)) ?? "" }
        let installed = ["/man/man1/palm-coordinator.1", "/man/man1/palm-source.1", "/man/man1/palm-dest.1",
                         "/bash-completion/completions/palm-coordinator", "/zsh/site-functions/_palm-source", "/fish/vendor_completions.d/palm-dest.fish",
                         "/doc/palm/grafana-palm.json"]
        #expect(text("/man/man1/palm-coordinator.1").contains(".Dt PALM-COORDINATOR 1") && text("/man/man1/palm-coordinator.1").contains("evacuate"),
                "\(text("/man/man1/palm-coordinator.1").prefix(300))")
        #expect(text("/man/man1/palm-source.1").contains("migrate"))
        #expect(text("/bash-completion/completions/palm-coordinator").contains("evacuate"))
        #expect(text("/zsh/site-functions/_palm-source").contains("#compdef palm-source"))
        #expect(text("/fish/vendor_completions.d/palm-dest.fish").contains("palm-dest"))

        let checked = try units(in: root)
        let verify = try ProcessRunner.run("/usr/bin/systemd-analyze", ["verify"] + checked)
        #expect(verify.status == 0 && verify.stderr.isEmpty, "\(verify.stderr)")

        var scores: [String: Double] = [:]
        for unit in checked {
            let s = try ProcessRunner.run("/usr/bin/systemd-analyze", ["security", "--offline=true", unit])
            let last = s.stdout.split(separator: "\n").last { $0.contains("Overall exposure level") } ?? ""
            let value = last.split(separator: ":").last?.split(separator: " ").first.flatMap { Double($0) }
            scores[URL(fileURLWithPath: unit).lastPathComponent] = value
            print("systemd-analyze security: \(last.trimmingCharacters(in: .whitespaces))")
        }
        #expect((scores["check-palm-coordinator.service"] ?? 99) <= 2.0, "\(scores)")
        #expect((scores["check-palm-source.service"] ?? 99) <= 3.0 && (scores["check-palm-dest.service"] ?? 99) <= 3.0, "\(scores)")

        // An operator's edited configuration survives a reinstall.
        try "# mine\n".write(toFile: "\(root)/etc/palm/policy.toml", atomically: true, encoding: .utf8)
        #expect(try install(["--root", root, "--bin-dir", SimCluster.binDir]).status == 0)
        #expect(try String(contentsOfFile: "\(root)/etc/palm/policy.toml", encoding: .utf8) == "# mine\n")

        // Uninstall keeps configuration and state; --purge removes them.
        #expect(try install(["--uninstall", "--root", root]).status == 0)
        #expect(!FileManager.default.fileExists(atPath: "\(root)/usr/local/bin/palm-dest"))
        for path in installed { #expect(!FileManager.default.fileExists(atPath: share + path), "\(path) left behind") }
        #expect(!FileManager.default.fileExists(atPath: "\(root)/etc/systemd/system/palm-dest.service"))
        #expect(FileManager.default.fileExists(atPath: "\(root)/etc/palm/policy.toml"))
        #expect(try install(["--uninstall", "--purge", "--root", root]).status == 0)
        #expect(!FileManager.default.fileExists(atPath: "\(root)/etc/palm"))
    }

    /// The Xen driver is its own target: a host without Xen's libraries can run the coordinator,
    /// the sim guest and the benchmarks; only the agents (which carry the Xen driver) link them.
    @Test("only palm-source and palm-dest link Xen's libraries", arguments: [
        ("palm-coordinator", false), ("palm-simguest", false), ("palm-bench", false), ("palm-source", true), ("palm-dest", true),
    ])
    func xenLinkage(binary: String, linksXen: Bool) throws {
        let r = try ProcessRunner.run("/usr/bin/ldd", [SimCluster.binDir + "/" + binary])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("libxenctrl") == linksXen, "\(binary): \(r.stdout)")
    }

    @Test("a bad install argument is named and exits 64")
    func badArgument() throws {
        let r = try install(["--frobnicate"])
        #expect(r.status == 64 && r.stderr.contains("unknown argument '--frobnicate'"))
    }
}
