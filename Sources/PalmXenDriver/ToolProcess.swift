import PalmHypervisor
#if canImport(Glibc)
import Glibc
#endif

/// A child process of the Xen toolstack (`xl`), started with posix_spawn: its stdout and stderr go
/// to one captured file so a failure can be reported with what the tool said, and extra file
/// descriptors can be handed to it (`xl restore /proc/self/fd/3`).
final class ToolProcess {
    let command: [String]
    let pid: pid_t
    private let outputPath: String
    private var exitStatus: Int32?

    /// Starts `argv` (argv[0] searched in PATH); `passing` maps child fd numbers to our fds.
    init(_ argv: [String], passing: [Int32: Int32] = [:]) throws {
        command = argv
        var template = Array("/tmp/palm-xl.XXXXXX".utf8CString)
        let out = mkstemp(&template)
        guard out >= 0 else { throw HypervisorError.systemCall(call: "mkstemp", errno: errno) }
        outputPath = String(cString: template)
        defer { close(out) }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, out, 1)
        posix_spawn_file_actions_adddup2(&actions, out, 2)
        for (child, ours) in passing { posix_spawn_file_actions_adddup2(&actions, ours, child) }

        var cargs = argv.map { strdup($0) } + [nil]
        defer { for a in cargs { free(a) } }
        var child: pid_t = 0
        let rc = posix_spawnp(&child, argv[0], &actions, nil, &cargs, environ)
        guard rc == 0 else {
            unlink(outputPath)
            throw HypervisorError.systemCall(call: "posix_spawnp(\(argv[0]))", errno: rc)
        }
        pid = child
    }

    deinit {
        if exitStatus == nil { kill() }
        unlink(outputPath)
    }

    /// Waits for the tool to exit (at most `timeout` seconds, then kills it) and returns its output;
    /// throws `toolFailed` on a non-zero exit.
    @discardableResult
    func wait(timeout: Double) throws -> String {
        let deadline = Self.now() + timeout
        var status: Int32 = 0
        // `isRunning` may have reaped the child already: then there is nothing left to wait for
        // (waitpid would fail with ECHILD) and its recorded status is the answer.
        var code: Int32
        while true {
            if let reaped = exitStatus { code = reaped; break }
            let r = waitpid(pid, &status, WNOHANG)
            if r == pid { code = Self.exitCode(status); exitStatus = code; break }
            if r < 0 && errno != EINTR { throw HypervisorError.systemCall(call: "waitpid", errno: errno) }
            if Self.now() > deadline {
                kill()
                throw HypervisorError.guestFailed("`\(command.joined(separator: " "))` did not finish within \(Int(timeout)) s")
            }
            usleep(2_000)
        }
        let text = output()
        guard code == 0 else {
            let tail = text.split(separator: "\n").suffix(6).joined(separator: " | ")
            throw HypervisorError.guestFailed("`\(command.joined(separator: " "))` exited \(code): \(tail)")
        }
        return text
    }

    /// True while the child has not exited (reaps it when it has).
    var isRunning: Bool {
        guard exitStatus == nil else { return false }
        var status: Int32 = 0
        if waitpid(pid, &status, WNOHANG) == pid {
            exitStatus = Self.exitCode(status)
            return false
        }
        return true
    }

    func kill() {
        guard exitStatus == nil else { return }
        _ = Glibc.kill(pid, SIGKILL)
        var status: Int32 = 0
        _ = waitpid(pid, &status, 0)
        exitStatus = 137
    }

    func output() -> String {
        guard let f = fopen(outputPath, "r") else { return "" }
        defer { fclose(f) }
        var bytes: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = fread(&buf, 1, buf.count, f)
            if n <= 0 { break }
            bytes += buf.prefix(n)
            if bytes.count > 1 << 20 { break }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Runs a tool to completion and returns its output.
    @discardableResult
    static func run(_ argv: [String], timeout: Double = 60) throws -> String {
        try ToolProcess(argv).wait(timeout: timeout)
    }

    /// The exit code of a waitpid status; 128 + signal for a child killed by a signal.
    static func exitCode(_ status: Int32) -> Int32 {
        (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    }

    static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }
}
