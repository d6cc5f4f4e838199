#if canImport(Glibc)
import Glibc
#endif
import Foundation
import PalmSupport

/// Process control for sim guests: a guest is an ordinary process in its own session, so it
/// outlives the agent that started it (like a VM outlives its toolstack). Pause and resume are
/// SIGSTOP and SIGCONT, confirmed through /proc.
enum SimProcess {
    /// The state letter from /proc/PID/stat (R, S, D, T, t, Z, …), nil when the process is gone.
    static func state(_ pid: pid_t) -> Character? {
        guard let text = readFile("/proc/\(pid)/stat"), let close = text.lastIndex(of: ")") else { return nil }
        let rest = text[text.index(after: close)...].drop(while: { $0 == " " })
        return rest.first
    }

    /// True when `pid` is a live (non-zombie) process whose command line names `image` (as its
    /// image or, for a guest started before its image was renamed into place, as its final path).
    static func isGuest(_ pid: pid_t, image: String) -> Bool {
        guard pid > 0, let s = state(pid), s != "Z", s != "X" else { return false }
        guard let cmdline = readFile("/proc/\(pid)/cmdline") else { return false }
        return cmdline.split(separator: "\0").contains { String($0) == image }
    }

    static func isStopped(_ pid: pid_t) -> Bool {
        guard let s = state(pid) else { return false }
        return s == "T" || s == "t"
    }

    /// Sends SIGSTOP and waits (bounded) until the kernel reports the process stopped.
    static func stop(_ pid: pid_t, timeout: Double = 5) throws {
        guard kill(pid, SIGSTOP) == 0 else { throw HypervisorError.systemCall(call: "kill(SIGSTOP)", errno: errno) }
        try waitUntil(timeout: timeout, what: "guest \(pid) to stop") { isStopped(pid) || state(pid) == nil }
        guard state(pid) != nil else { throw HypervisorError.guestFailed("guest \(pid) exited while pausing") }
    }

    static func resume(_ pid: pid_t) throws {
        guard kill(pid, SIGCONT) == 0 else { throw HypervisorError.systemCall(call: "kill(SIGCONT)", errno: errno) }
    }

    /// Kills and reaps (when it is our child) a guest; waits until it is gone.
    static func terminate(_ pid: pid_t) throws {
        guard pid > 0 else { return }
        _ = kill(pid, SIGKILL)
        var status: Int32 = 0
        _ = waitpid(pid, &status, 0)  // ECHILD when another process started it: fine
        try waitUntil(timeout: 5, what: "guest \(pid) to exit") {
            guard let s = state(pid) else { return true }
            return s == "Z" || s == "X"
        }
    }

    /// Polls a condition of the kernel's process table with a short back-off, bounded by `timeout`.
    static func waitUntil(timeout: Double, what: String, _ condition: () -> Bool) throws {
        let deadline = MonotonicClock.now() + timeout
        var delay: Int = 20_000  // ns
        while !condition() {
            if MonotonicClock.now() > deadline {
                throw HypervisorError.guestFailed("timed out waiting for \(what)")
            }
            var req = timespec(tv_sec: 0, tv_nsec: delay)
            nanosleep(&req, nil)
            delay = min(delay * 2, 250_000)
        }
    }

    /// Starts `binary args…` with stdout on a pipe and stderr appended to `log`; waits for the
    /// guest's "ready PID" line. With `holdStart`, the guest's stdin is a pipe whose write end is
    /// returned: the guest waits on it to start and exits when it closes.
    static func spawn(binary: String, args: [String], log: String, holdStart: Bool = false,
                      timeout: Double = 30) throws -> (pid: pid_t, startFD: Int32?) {
        var startFDs: [Int32] = [-1, -1]
        if holdStart {
            guard pipe(&startFDs) == 0 else { throw HypervisorError.systemCall(call: "pipe", errno: errno) }
            _ = fcntl(startFDs[0], F_SETFD, FD_CLOEXEC)
            _ = fcntl(startFDs[1], F_SETFD, FD_CLOEXEC)
        }
        var startHandedOver = false
        defer {
            if holdStart {
                close(startFDs[0])
                if !startHandedOver { close(startFDs[1]) }
            }
        }
        var pipeFDs: [Int32] = [0, 0]
        guard pipe(&pipeFDs) == 0 else { throw HypervisorError.systemCall(call: "pipe", errno: errno) }
        _ = fcntl(pipeFDs[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(pipeFDs[1], F_SETFD, FD_CLOEXEC)
        defer { close(pipeFDs[0]) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        if holdStart {
            posix_spawn_file_actions_adddup2(&actions, startFDs[0], 0)
        } else {
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        }
        posix_spawn_file_actions_adddup2(&actions, pipeFDs[1], 1)
        posix_spawn_file_actions_addopen(&actions, 2, log, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        let argv: [UnsafeMutablePointer<CChar>?] = ([binary] + args).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, binary, &actions, nil, argv, environ)
        close(pipeFDs[1])
        guard rc == 0 else { throw HypervisorError.systemCall(call: "posix_spawn(\(binary))", errno: rc) }

        // Read the ready line with a deadline.
        var line = [UInt8]()
        var buf = [UInt8](repeating: 0, count: 64)
        var fds = pollfd(fd: pipeFDs[0], events: Int16(POLLIN), revents: 0)
        while !line.contains(UInt8(ascii: "\n")) {
            let r = poll(&fds, 1, Int32(timeout * 1000))
            guard r > 0 else {
                _ = kill(pid, SIGKILL)
                _ = waitpid(pid, nil, 0)
                throw HypervisorError.guestFailed("guest did not start within \(timeout) s (see \(log))")
            }
            let n = read(pipeFDs[0], &buf, buf.count)
            if n <= 0 {
                var status: Int32 = 0
                _ = waitpid(pid, &status, 0)
                throw HypervisorError.guestFailed("guest exited during start (see \(log))")
            }
            line.append(contentsOf: buf[0..<n])
        }
        let text = String(decoding: line, as: UTF8.self)
        guard text.hasPrefix("ready ") else {
            throw HypervisorError.guestFailed("unexpected guest output '\(text)' (see \(log))")
        }
        startHandedOver = true
        return (pid, holdStart ? startFDs[1] : nil)
    }

    static func readFile(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var out = [UInt8]()
        var buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = read(fd, &buf, buf.count)
            if n <= 0 { break }
            out.append(contentsOf: buf[0..<n])
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// Auto-converge for sim guests: stuns the guest for `percent` % of every 20 ms period with
/// SIGSTOP/SIGCONT, the way a hypervisor takes vCPU time away, without the guest's cooperation.
final class SimThrottle: Sendable {
    private let pid: pid_t
    /// The stun share and whether the throttling thread runs.
    private let state = LockedValueBox((percent: 0, running: false))
    private let done = DispatchSemaphore(value: 0)

    init(pid: pid_t) { self.pid = pid }

    func set(percent newValue: Int) {
        let start = state.withLockedValue { s in
            s.percent = max(0, min(99, newValue))
            let start = s.percent > 0 && !s.running
            if start { s.running = true }
            return start
        }
        if start {
            Thread { [self] in loop() }.start()
        } else if newValue <= 0 {
            stop()
        }
    }

    /// Stops throttling and leaves the guest running (SIGCONT).
    func stop() {
        let wasRunning = state.withLockedValue { s in
            defer { s.running = false }
            return s.running
        }
        if wasRunning {
            done.wait()
            _ = kill(pid, SIGCONT)
        }
    }

    private func loop() {
        let period = 20_000_000  // ns
        while true {
            let (p, go) = state.withLockedValue { ($0.percent, $0.running) }
            guard go else { break }
            _ = kill(pid, SIGSTOP)
            var off = timespec(tv_sec: 0, tv_nsec: period * p / 100)
            nanosleep(&off, nil)
            _ = kill(pid, SIGCONT)
            var on = timespec(tv_sec: 0, tv_nsec: period * (100 - p) / 100)
            nanosleep(&on, nil)
        }
        done.signal()
    }
}
