import PalmSupport
import Foundation
import Logging
import PalmCrypto
import PalmTLS
import PalmWire
#if canImport(Glibc)
import Glibc
#endif

/// The coordinator's authenticated connections and the bounded pool of workers that serves them.
///
/// ```text
///   handshake done ──► idle set (one poll loop, no thread each) ──request bytes──► ready queue ──► worker (× workers)
///                      at most maxConnections; the oldest is        bounded          one request, under one
///                      closed when a new one needs room, and                          deadline for all of it,
///                      any idle past idleTimeout                                      then back to the idle set
/// ```
/// A connection costs a thread only while one of its requests is being read, served and
/// answered, and the reading is bounded by ``ServerLimits/requestTimeout`` for the whole request — a
/// client that sends a byte now and then holds a worker for at most that long, and is then closed.
/// One certificate holds at most ``ServerLimits/workersPerIdentity`` workers at a time, however many
/// connections it opens: its other ready connections wait while everyone else is served.
final class ConnectionPool: @unchecked Sendable {
    let limits: ServerLimits
    let logger: Logger
    /// Serves one ready connection (reads one request, answers it); returns false to close it.
    private let serve: @Sendable (TLSChannel) -> Bool
    private let condition = NSCondition()
    private var idle: [(channel: TLSChannel, since: Date)] = []
    private var ready: [TLSChannel] = []
    private var stopping = false
    private var wakeFDs: [Int32] = [-1, -1]
    private let drops = LockedValueBox<[String: Int]>([:])
    /// Connections that are idle, queued or being served now.
    var count: Int { condition.lock(); defer { condition.unlock() }; return idle.count + ready.count + busy }
    private var busy = 0
    private var busyByIdentity: [Digest32: Int] = [:]

    init(limits: ServerLimits, logger: Logger, serve: @escaping @Sendable (TLSChannel) -> Bool) {
        self.limits = limits
        self.logger = logger
        self.serve = serve
        _ = pipe(&wakeFDs)
        for fd in wakeFDs { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
    }

    deinit { for fd in wakeFDs where fd >= 0 { close(fd) } }

    /// Starts the poll loop and the workers.
    func start() {
        Thread { [self] in pollLoop() }.start()
        for _ in 0..<limits.workers { Thread { [self] in workLoop() }.start() }
    }

    func stop() {
        condition.lock()
        stopping = true
        condition.broadcast()
        condition.unlock()
        wake()
    }

    /// A connection that finished its handshake (or its last request) and waits for the next.
    func park(_ channel: TLSChannel) {
        condition.lock()
        if stopping { condition.unlock(); channel.close(); return }
        var evicted: TLSChannel?
        if idle.count + ready.count + busy >= limits.maxConnections, !idle.isEmpty {
            evicted = idle.removeFirst().channel
        }
        idle.append((channel, Date()))
        condition.unlock()
        if let evicted {
            evicted.close()
            drops.withLockedValue { $0["connection limit reached (oldest idle closed)", default: 0] += 1 }
        }
        wake()
    }

    private func wake() {
        var b: UInt8 = 1
        _ = write(wakeFDs[1], &b, 1)
    }

    private func pollLoop() {
        var lastReport = Date()
        while true {
            condition.lock()
            if stopping {
                let all = idle.map(\.channel)
                idle.removeAll()
                condition.unlock()
                for ch in all { ch.close() }
                return
            }
            // Connections whose next request is already buffered inside TLS need no poll.
            var promoted = false
            idle.removeAll { entry in
                guard entry.channel.hasBufferedInput else { return false }
                ready.append(entry.channel)
                promoted = true
                return true
            }
            if promoted { condition.broadcast() }
            let snapshot = idle
            condition.unlock()

            var fds = [pollfd(fd: wakeFDs[0], events: Int16(POLLIN), revents: 0)]
            fds += snapshot.map { pollfd(fd: $0.channel.descriptor, events: Int16(POLLIN), revents: 0) }
            let oldest = snapshot.map(\.since).min()
            let wait = min(5, oldest.map { max(0, $0.addingTimeInterval(limits.idleTimeout).timeIntervalSinceNow) } ?? 5)
            _ = fds.withUnsafeMutableBufferPointer { poll($0.baseAddress, nfds_t($0.count), Int32(wait * 1000) + 1) }
            if fds[0].revents != 0 {
                var buf = [UInt8](repeating: 0, count: 64)
                while buf.withUnsafeMutableBytes({ read(wakeFDs[0], $0.baseAddress, $0.count) }) > 0 {}
            }
            let readable = Set(snapshot.indices.filter { fds[$0 + 1].revents != 0 }.map { ObjectIdentifier(snapshot[$0].channel) })
            let now = Date()
            var expired: [TLSChannel] = []
            condition.lock()
            idle.removeAll { entry in
                if readable.contains(ObjectIdentifier(entry.channel)) {
                    ready.append(entry.channel)
                    return true
                }
                if now.timeIntervalSince(entry.since) > limits.idleTimeout {
                    expired.append(entry.channel)
                    return true
                }
                return false
            }
            if !readable.isEmpty { condition.broadcast() }
            condition.unlock()
            for ch in expired { ch.close() }
            if now.timeIntervalSince(lastReport) > 10 {
                lastReport = now
                let summary = drops.withLockedValue { d -> String in
                    defer { d = [:] }
                    return d.map { "\($0.value) \($0.key)" }.sorted().joined(separator: ", ")
                }
                if !summary.isEmpty {
                    logger.warning("closed connections: \(summary)", metadata: ["event": "\(PalmEvent.connectionRefused.rawValue)"])
                }
            }
        }
    }

    private func workLoop() {
        while true {
            condition.lock()
            var next: Int?
            while true {
                next = ready.firstIndex { busyByIdentity[$0.peer.fingerprint, default: 0] < limits.workersPerIdentity }
                if next != nil || stopping { break }
                condition.wait()
            }
            guard let index = next else { condition.unlock(); return }
            let channel = ready.remove(at: index)
            let identity = channel.peer.fingerprint
            busy += 1
            busyByIdentity[identity, default: 0] += 1
            condition.unlock()
            let keep = serve(channel)
            condition.lock()
            busy -= 1
            busyByIdentity[identity, default: 0] -= 1
            if busyByIdentity[identity] == 0 { busyByIdentity[identity] = nil }
            condition.broadcast()  // a connection of this identity may be servable now
            condition.unlock()
            if keep { park(channel) } else { channel.close() }
        }
    }

    /// Counts a connection closed for `reason` into the next summary.
    func dropped(_ reason: String) {
        drops.withLockedValue { $0[reason, default: 0] += 1 }
    }
}
