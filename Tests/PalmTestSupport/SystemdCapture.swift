import Foundation

/// A bound AF_UNIX datagram socket whose messages a thread collects: the test's stand-in for the
/// service manager's notification socket and for journald's native socket.
public class DatagramCollector: @unchecked Sendable {
    public let path: String
    private let fd: Int32
    private let condition = NSCondition()
    private var messages: [(time: Double, data: [UInt8])] = []

    public init(path: String) throws {
        self.path = path
        unlink(path)
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { throw SimClusterError.command("socket: errno \(errno)") }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: addr.sun_path) else { throw SimClusterError.command("socket path too long: \(path)") }
        withUnsafeMutableBytes(of: &addr.sun_path) { $0.copyBytes(from: bytes + [0]) }
        let r = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        guard r == 0 else { throw SimClusterError.command("bind \(path): errno \(errno)") }
        chmod(path, 0o666)
        var size: Int32 = 8 << 20
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        let sock = fd
        Thread { [self] in
            var buffer = [UInt8](repeating: 0, count: 256 << 10)
            while true {
                let n = recv(sock, &buffer, buffer.count, 0)
                if n < 0 { if errno == EINTR { continue }; return }
                var ts = timespec()
                clock_gettime(CLOCK_MONOTONIC, &ts)
                condition.lock()
                messages.append((Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9, Array(buffer[0..<n])))
                condition.broadcast()
                condition.unlock()
            }
        }.start()
    }

    /// Every datagram so far with its arrival time (monotonic seconds).
    public var received: [(time: Double, data: [UInt8])] { condition.lock(); defer { condition.unlock() }; return messages }

    /// Waits until `predicate` holds for the datagrams received so far.
    @discardableResult
    public func wait(timeout: Double = 30, _ predicate: ([(time: Double, data: [UInt8])]) -> Bool) -> Bool {
        let deadline = Date(timeIntervalSinceNow: timeout)
        condition.lock()
        defer { condition.unlock() }
        while !predicate(messages) {
            if !condition.wait(until: deadline) { return predicate(messages) }
        }
        return true
    }

    deinit {
        shutdown(fd, Int32(SHUT_RDWR))
        close(fd)
        unlink(path)
    }
}

/// The test's `NOTIFY_SOCKET`: every sd_notify message a daemon sends, as its lines.
public final class NotifyListener: DatagramCollector, @unchecked Sendable {
    public convenience init() throws {
        try self.init(path: NSTemporaryDirectory() + "palm-notify-\(UUID().uuidString.prefix(8)).sock")
    }

    public var environment: [String: String] { ["NOTIFY_SOCKET": path] }

    /// Each message's `KEY=value` lines.
    public var lines: [(time: Double, lines: [String])] {
        received.map { ($0.time, String(decoding: $0.data, as: UTF8.self).split(separator: "\n").map(String.init)) }
    }

    /// Waits for a message containing `line` (exactly, or as a prefix when `prefix`).
    @discardableResult
    public func waitFor(_ line: String, prefix: Bool = false, timeout: Double = 30) -> Bool {
        wait(timeout: timeout) { messages in
            messages.contains { m in
                String(decoding: m.data, as: UTF8.self).split(separator: "\n").contains { prefix ? $0.hasPrefix(line) : $0 == line }
            }
        }
    }
}

/// journald's native socket in a private mount namespace: ``command(_:)`` wraps a daemon so that
/// `/run/systemd/journal/socket` is this collector; ``entries`` parses what arrived.
public final class JournalCapture: DatagramCollector, @unchecked Sendable {
    public let directory: String

    public init() throws {
        directory = NSTemporaryDirectory() + "palm-journal-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try super.init(path: directory + "/socket")
    }

    /// `unshare` + bind mount, then exec the daemon.
    public func command(_ argv: [String]) -> [String] {
        ["/usr/bin/unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-c",
         "mkdir -p /run/systemd && mount -t tmpfs palm-journal /run/systemd && mkdir /run/systemd/journal && mount --bind \"$0\" /run/systemd/journal && exec \"$@\"",
         directory] + argv
    }

    /// Entries in journald's native format: `FIELD=value` lines, or `FIELD\n` + 64-bit LE length +
    /// data + `\n` for values with newlines.
    public var entries: [[String: String]] { received.map { JournalCapture.parse($0.data) } }

    public static func parse(_ d: [UInt8]) -> [String: String] {
        var fields: [String: String] = [:]
        var i = 0
        while i < d.count {
            guard let nl = d[i...].firstIndex(of: 10) else { break }
            let line = d[i..<nl]
            if let eq = line.firstIndex(of: 61) {
                fields[String(decoding: d[i..<eq], as: UTF8.self)] = String(decoding: d[(eq + 1)..<nl], as: UTF8.self)
                i = nl + 1
            } else {
                let name = String(decoding: line, as: UTF8.self)
                guard nl + 9 <= d.count else { break }
                let n = (0..<8).reduce(0) { $0 | Int(d[nl + 1 + $1]) << (8 * $1) }
                let start = nl + 9
                guard start + n <= d.count else { break }
                fields[name] = String(decoding: d[start..<(start + n)], as: UTF8.self)
                i = start + n + 1
            }
        }
        return fields
    }

    /// Waits for an entry matching every given field.
    @discardableResult
    public func waitFor(_ match: [String: String], timeout: Double = 30) -> [String: String]? {
        var found: [String: String]?
        wait(timeout: timeout) { messages in
            found = messages.lazy.map { JournalCapture.parse($0.data) }.first { e in match.allSatisfy { e[$0.key] == $0.value } }
            return found != nil
        }
        return found
    }

    deinit { try? FileManager.default.removeItem(atPath: directory) }
}

/// `JOURNAL_STREAM` naming a pipe, as systemd sets it for a service whose stderr is the journal.
public func journalStream(of pipe: Pipe) -> String {
    var st = stat()
    fstat(pipe.fileHandleForWriting.fileDescriptor, &st)
    return "\(st.st_dev):\(st.st_ino)"
}
