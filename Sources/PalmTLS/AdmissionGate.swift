import Foundation
import PalmSupport
#if canImport(Glibc)
import Glibc
#endif

/// The pre-authentication stage of a palm server: what a peer that has not authenticated may cost.
///
/// ```text
///   accept ──► pending (one epoll set, no thread) ──first bytes──► handshake budget ──► handler thread
///              at most maxPending; the oldest       at most maxHandshakes in all and      TLS handshake +
///              is dropped when a new one arrives    maxPerAddress per peer address;        first message,
///              and full; dropped at the deadline    early drop between earlyDropStart     then release()
///                                                   and maxHandshakes (sshd's MaxStartups)
/// ```
/// A connection that never sends a byte costs one descriptor until ``Limits/preAuthTimeout``; one
/// that starts a handshake holds one of ``Limits/maxHandshakes`` handler threads until the same
/// deadline, and one address can hold at most ``Limits/maxPerAddress`` of them. Whatever is dropped
/// is counted and reported in one summary line per ``Limits/reportInterval`` (a flood of refusals
/// must not become a flood of log lines). `accept` failing (e.g. out of descriptors) backs off
/// exponentially up to one second and is reported the same way — the loop never spins.
public final class AdmissionGate: @unchecked Sendable {
    public struct Limits: Sendable, Equatable {
        /// Accepted sockets waiting for their first byte.
        public var maxPending = 256
        /// Connections between their first byte and their first message (handshakes in progress).
        public var maxHandshakes = 64
        /// Of those, from one peer address.
        public var maxPerAddress = 8
        /// From this many handshakes in progress on, new ones are dropped with a probability rising
        /// linearly to 1 at ``maxHandshakes``.
        public var earlyDropStart = 32
        /// Seconds from accept until the first message must have been read.
        public var preAuthTimeout = 5.0
        /// Seconds between summaries of what was dropped.
        public var reportInterval = 10.0
        public init() {}
    }

    /// Why a connection was dropped before it authenticated.
    public enum Drop: String, CaseIterable, Sendable {
        case pendingFull = "pending set full (oldest dropped)"
        case silent = "no byte before the pre-authentication deadline"
        case perAddress = "too many handshakes from its address"
        case earlyDrop = "early drop (handshakes near the limit)"
        case budget = "handshake budget exhausted"
        case acceptFailed = "accept failed"
    }

    /// A connection admitted to the handshake stage. ``release()`` gives its handshake slot back
    /// (after the first message, or when it fails); it is idempotent.
    public final class Admission: @unchecked Sendable {
        public let socket: Int32
        public let address: String
        /// When the first message must have been read (``MonotonicClock`` seconds: a step of the
        /// wall clock neither shortens nor stretches a peer's time).
        public let deadline: Double
        private weak var gate: AdmissionGate?
        private let released = LockedValueBox(false)

        init(socket: Int32, address: String, deadline: Double, gate: AdmissionGate) {
            self.socket = socket
            self.address = address
            self.deadline = deadline
            self.gate = gate
        }

        /// Seconds left before ``deadline`` (at least a millisecond, so a timeout is never 0).
        public var remaining: Double { max(0.001, deadline - MonotonicClock.now()) }

        public func release() {
            if !released.exchange(true) { gate?.leave(address) }
        }

        deinit { release() }
    }

    public let limits: Limits
    private let listener: TLSListener
    private let state = LockedValueBox(State())
    /// Called for every admitted connection, on a thread of its own.
    private let admit: @Sendable (Admission) -> Void
    /// Called once per report interval in which something was dropped: a summary line and the
    /// number of connections dropped.
    public var onDrops: @Sendable (_ summary: String, _ count: Int) -> Void = { _, _ in }
    /// Called at least every `beatInterval` seconds from the gate's loop.
    public var onBeat: @Sendable () -> Void = {}
    public var beatInterval = 5.0

    private struct State {
        var inProgress = 0
        var perAddress: [String: Int] = [:]
        var drops: [Drop: Int] = [:]
    }

    public init(listener: TLSListener, limits: Limits, admit: @escaping @Sendable (Admission) -> Void) {
        self.listener = listener
        self.limits = limits
        self.admit = admit
    }

    /// Handshakes in progress now.
    public var handshakesInProgress: Int { state.withLockedValue { $0.inProgress } }

    private func leave(_ address: String) {
        state.withLockedValue { s in
            s.inProgress -= 1
            s.perAddress[address, default: 1] -= 1
            if s.perAddress[address] == 0 { s.perAddress[address] = nil }
        }
    }

    private func dropped(_ why: Drop) {
        state.withLockedValue { $0.drops[why, default: 0] += 1 }
    }

    /// Tries to take a handshake slot for `address`.
    private func enter(_ address: String) -> Drop? {
        state.withLockedValue { s in
            if s.inProgress >= limits.maxHandshakes { return .budget }
            if s.perAddress[address, default: 0] >= limits.maxPerAddress { return .perAddress }
            if s.inProgress >= limits.earlyDropStart, limits.maxHandshakes > limits.earlyDropStart {
                let p = Double(s.inProgress - limits.earlyDropStart + 1) / Double(limits.maxHandshakes - limits.earlyDropStart + 1)
                if Double.random(in: 0..<1) < p { return .earlyDrop }
            }
            s.inProgress += 1
            s.perAddress[address, default: 0] += 1
            return nil
        }
    }

    /// Accepts and admits until the listener is closed.
    public func run() {
        // Times are MonotonicClock seconds.
        var pending: [(fd: Int32, address: String, since: Double)] = []  // accept order: the oldest first
        var backoff = 0.0
        var resumeAccepting: Double?   // set while accept backs off: the listener is not polled
        var lastReport = MonotonicClock.now()
        while true {
            onBeat()
            let start = MonotonicClock.now()
            let oldest = pending.first?.since
            let wait = min(beatInterval, resumeAccepting.map { max(0, $0 - start) } ?? .infinity,
                           oldest.map { max(0, $0 + limits.preAuthTimeout - start) } ?? .infinity)
            var fds = pending.map { pollfd(fd: $0.fd, events: Int16(POLLIN), revents: 0) }
            if resumeAccepting == nil { fds.append(pollfd(fd: listener.descriptor, events: Int16(POLLIN), revents: 0)) }
            let n = fds.withUnsafeMutableBufferPointer { poll($0.baseAddress, nfds_t($0.count), Int32(wait * 1000) + 1) }
            if n < 0 && errno != EINTR { return }
            var acceptReady = resumeAccepting == nil && fds.last.map { $0.revents != 0 } == true
            if let resume = resumeAccepting, resume <= MonotonicClock.now() {
                resumeAccepting = nil
                acceptReady = true
            }
            // Sockets that sent their first bytes (or closed) go to the handshake stage.
            var stillPending: [(fd: Int32, address: String, since: Double)] = []
            for (i, entry) in pending.enumerated() {
                guard fds[i].revents != 0 else { stillPending.append(entry); continue }
                if let why = enter(entry.address) {
                    dropped(why)
                    close(entry.fd)
                    continue
                }
                let admission = Admission(socket: entry.fd, address: entry.address,
                                          deadline: entry.since + limits.preAuthTimeout, gate: self)
                let admit = self.admit
                Thread { admit(admission) }.start()
            }
            pending = stillPending
            if acceptReady {
                do {
                    while let (fd, address) = try listener.acceptNow() {
                        if pending.count >= limits.maxPending {
                            close(pending.removeFirst().fd)
                            dropped(.pendingFull)
                        }
                        pending.append((fd, address, MonotonicClock.now()))
                    }
                    backoff = 0
                } catch TLSError.closed {
                    for entry in pending { close(entry.fd) }
                    return
                } catch {
                    // Out of descriptors (or the like): the waiting connection keeps the listener
                    // readable, so it is not polled until the back-off has passed.
                    dropped(.acceptFailed)
                    backoff = min(1, max(0.01, backoff * 2))
                    resumeAccepting = MonotonicClock.now() + backoff
                }
            }
            let now = MonotonicClock.now()
            while let entry = pending.first, now - entry.since >= limits.preAuthTimeout {
                pending.removeFirst()
                close(entry.fd)
                dropped(.silent)
            }
            if now - lastReport >= limits.reportInterval {
                lastReport = now
                reportNow()
            }
        }
    }

    /// Reports what was dropped since the last report now (tests, shutdown).
    public func reportNow() {
        let drops = state.withLockedValue { s -> [Drop: Int] in
            defer { s.drops = [:] }
            return s.drops
        }
        if !drops.isEmpty {
            onDrops(Drop.allCases.compactMap { d in drops[d].map { "\($0) \(d.rawValue)" } }.joined(separator: ", "),
                    drops.values.reduce(0, +))
        }
    }
}
