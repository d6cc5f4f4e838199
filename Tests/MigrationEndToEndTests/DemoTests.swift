import Foundation
import PalmTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// scripts/demo.sh, the README's main job: it migrates a VM, and it leaves nothing behind — no
/// palm process, no sim guest, no /dev/shm root, no work directory — whether it completes or is
/// interrupted half-way.
@Suite("demo: the README's main job", .serialized)
struct DemoTests {
    let repo = TestPKI.repoRoot.path

    /// Runs the demo with the test's binaries and a private TMPDIR as a terminal runs it: its own
    /// process group, no signal blocked or ignored (the test runner's threads block SIGINT, and a
    /// child inherits that mask); `interruptAfter` sends SIGINT to the group — a Ctrl-C — once
    /// that text has appeared in its output.
    func runDemo(interruptAfter marker: String? = nil) throws -> (status: Int32, output: String, pid: Int32, tmp: String) {
        let tmp = NSTemporaryDirectory() + "palm-demo-test-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: tmp, withIntermediateDirectories: true)
        var env = ProcessInfo.processInfo.environment
        env["PALM_BIN"] = SimCluster.binDir
        env["TMPDIR"] = tmp
        env.removeValue(forKey: "PALM_SERVER")
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { throw POSIXError(.EMFILE) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, fds[1], 1)
        posix_spawn_file_actions_adddup2(&actions, fds[1], 2)
        posix_spawn_file_actions_addclose(&actions, fds[0])
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        var none = sigset_t(), defaults = sigset_t()
        sigemptyset(&none)
        sigemptyset(&defaults)
        for sig in [SIGINT, SIGTERM, SIGQUIT, SIGPIPE] { sigaddset(&defaults, sig) }
        posix_spawnattr_setsigmask(&attr, &none)
        posix_spawnattr_setsigdefault(&attr, &defaults)
        posix_spawnattr_setpgroup(&attr, 0)
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP))
        let argv = ["/bin/bash", repo + "/scripts/demo.sh"]
        let envp = env.map { "\($0.key)=\($0.value)" }
        var pid: pid_t = 0
        let rc = withCStrings(argv) { a in withCStrings(envp) { e in posix_spawn(&pid, "/bin/bash", &actions, &attr, a, e) } }
        close(fds[1])
        guard rc == 0 else { close(fds[0]); throw POSIXError(POSIXErrorCode(rawValue: rc) ?? .EINVAL) }
        // Read until the demo has exited and its output is drained. Not until EOF: a daemon the
        // demo failed to stop would hold the pipe open for ever (expectNothingLeft reports it).
        var output = ""
        var interrupted = marker == nil
        var buffer = [UInt8](repeating: 0, count: 65536)
        var status: Int32 = 0
        var exited = false
        let deadline = Date(timeIntervalSinceNow: 300)
        while Date() < deadline {
            var p = pollfd(fd: fds[0], events: Int16(POLLIN), revents: 0)
            if poll(&p, 1, 100) > 0 {
                let n = read(fds[0], &buffer, buffer.count)
                if n > 0 {
                    output += String(decoding: buffer[0..<n], as: UTF8.self)
                    if !interrupted, let marker, output.contains(marker) {
                        interrupted = true
                        kill(-pid, SIGINT)
                    }
                    continue
                }
                if n == 0 { if !exited { _ = waitpid(pid, &status, 0); exited = true }; break }
            }
            if exited { break }   // exited and nothing more to read
            exited = waitpid(pid, &status, WNOHANG) == pid
        }
        close(fds[0])
        if !exited {
            kill(-pid, SIGKILL)
            _ = waitpid(pid, &status, 0)
            Issue.record("the demo did not finish within 300 s: \(output)")
        }
        #expect(interrupted, "the demo never printed \(marker ?? "")")
        // Exit status as a shell reports it: 128 + signal for a signalled process.
        let code = status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return (code, output, pid, tmp)
    }

    func withCStrings<R>(_ strings: [String], _ body: ([UnsafeMutablePointer<CChar>?]) -> R) -> R {
        var pointers = strings.map { strdup($0) }
        pointers.append(nil)
        defer { pointers.forEach { free($0) } }
        return body(pointers)
    }

    /// Every process still in the demo's process group (the daemons it starts), or whose command
    /// line mentions one of `needles` (sim guests start their own session).
    func processes(inGroup group: pid_t, mentioning needles: [String]) -> [String] {
        let pids = ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { Int32($0) }
        return pids.compactMap { pid -> String? in
            guard pid != getpid(), let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline"), !data.isEmpty else { return nil }
            let cmd = String(decoding: data, as: UTF8.self).replacingOccurrences(of: "\0", with: " ")
            return getpgid(pid) == group || needles.contains { cmd.contains($0) } ? "\(pid): \(cmd)" : nil
        }
    }

    func expectNothingLeft(_ run: (status: Int32, output: String, pid: Int32, tmp: String)) throws {
        defer { try? FileManager.default.removeItem(atPath: run.tmp) }
        let roots = ["/dev/shm/palm-demo-\(run.pid)-a", "/dev/shm/palm-demo-\(run.pid)-b"]
        let left = processes(inGroup: run.pid, mentioning: [run.tmp] + roots)
        #expect(left.isEmpty, "processes left: \(left)")
        for line in left { if let pid = Int32(line.prefix { $0 != ":" }) { kill(pid, SIGKILL) } }   // not leaked into later tests
        for r in roots { #expect(!FileManager.default.fileExists(atPath: r), "\(r) left behind") }
        let files = (try? FileManager.default.contentsOfDirectory(atPath: run.tmp)) ?? []
        #expect(files.isEmpty, "work files left in TMPDIR: \(files)")
    }

    @Test("the demo migrates a VM through the coordinator and removes everything it created")
    func completes() throws {
        let run = try runDemo()
        #expect(run.status == 0, "\(run.output)")
        #expect(run.output.contains("demo complete."))
        #expect(run.output.contains("demo-vm: self-checks 1/1, failures 0"), "the moved VM's self-check: \(run.output)")
        try expectNothingLeft(run)
    }

    @Test("interrupted (Ctrl-C) with the cluster up: it still removes every daemon, guest, root and file")
    func interrupted() throws {
        let run = try runDemo(interruptAfter: "4. host A")
        #expect(run.status != 0, "an interrupted demo does not report success")
        #expect(run.output.contains("interrupted"), "\(run.output)")
        try expectNothingLeft(run)
    }
}
