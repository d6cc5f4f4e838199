import Atomics
import Foundation
import Logging
import PalmHypervisor
import PalmWire

/// The destination's view of one migration session: the VM being built, its image digest, the
/// page streams attached to it and the **round barrier** that keeps a page of round r+1 from
/// being overwritten by its round-r copy (rule and diagram in ``WireProtocol``).
///
/// Round r is *closed* when the session channel delivered ROUND_END(r), every extra stream
/// delivered its own ROUND_END(r), and the digest was sealed; a page of round r may be applied
/// only once round r−1 is closed. Every wait is bounded by ``timeout``.
///
/// A failure on any stream fails the session: ``fail(_:)`` records the first cause, wakes every
/// waiter and interrupts every channel, so each stream thread stops reading and the session
/// channel's thread discards the VM once they are all out (``awaitStreamsExit(timeout:)``).
final class IncomingSession: @unchecked Sendable {
    let token: [UInt8]
    let config: VMConfig
    let domain: DestinationDomain
    let digest: ImageDigest
    /// The source's certificate fingerprint: every stream must present the same.
    let peer: Digest32
    let joinKey: [UInt8]
    let timeout: Double
    let limits: WireLimits
    let logger: Logger
    let faults: FaultInjection
    let pagesReceived = ManagedAtomic<UInt64>(0)
    /// Batches that arrived before their round was open and waited at the barrier.
    let barrierWaits = ManagedAtomic<Int>(0)

    private let condition = NSCondition()
    private var ended: [Int]
    private var channels: [SecureChannel?]
    private var closedRound = -1
    private var failure: Error?
    private var over = false
    private var activeStreams = 0

    init(token: [UInt8], config: VMConfig, domain: DestinationDomain, peer: Digest32, joinKey: [UInt8],
         session channel: SecureChannel, timeout: Double, limits: WireLimits, logger: Logger,
         faults: FaultInjection = .disabled) {
        self.logger = logger
        self.faults = faults
        self.token = token
        self.config = config
        self.domain = domain
        self.peer = peer
        self.joinKey = joinKey
        self.timeout = timeout
        self.limits = limits
        digest = ImageDigest(pageCount: config.pageCount, pageSize: Int(config.pageSize))
        ended = [Int](repeating: -1, count: Int(config.streams))
        channels = [SecureChannel?](repeating: nil, count: Int(config.streams))
        channels[0] = channel
    }

    private func locked<R>(_ body: () throws -> R) rethrows -> R {
        condition.lock()
        defer { condition.unlock() }
        return try body()
    }

    /// Attaches extra stream `index` (verified by the caller); refuses an index out of range or
    /// taken, and a session that is over.
    func attach(stream index: Int, channel: SecureChannel) throws {
        try locked {
            guard !over else { throw MigrationError.streamRefused("the session is over") }
            guard index >= 1, index < channels.count else {
                throw MigrationError.streamRefused("stream \(index) is outside the session's \(channels.count) streams")
            }
            guard channels[index] == nil else { throw MigrationError.streamRefused("stream \(index) has already joined") }
            channels[index] = channel
            activeStreams += 1
        }
    }

    /// The stream's thread has stopped using the session.
    func detach() {
        locked {
            activeStreams -= 1
            condition.broadcast()
        }
    }

    /// Waits until pages of `round` may be applied (round − 1 closed).
    func awaitRoundOpen(_ round: Int) throws {
        if locked({ closedRound < round - 1 }) { barrierWaits.wrappingIncrement(ordering: .relaxed) }
        try wait("round \(round - 1) to close on every stream") { closedRound >= round - 1 }
    }

    /// Extra stream `index` delivered ROUND_END(round).
    func streamEnded(_ index: Int, round: Int) {
        locked {
            ended[index] = round
            condition.broadcast()
        }
    }

    /// The session channel delivered ROUND_END(round): waits for every extra stream's, seals the
    /// digest, and opens round + 1.
    func closeRound(_ round: Int) throws {
        locked { ended[0] = round }
        try wait("every stream to end round \(round)") { ended.allSatisfy { $0 >= round } }
        digest.seal()
        locked {
            closedRound = round
            condition.broadcast()
        }
    }

    private func wait(_ what: String, until ready: () -> Bool) throws {
        let deadline = Date(timeIntervalSinceNow: timeout)
        try locked {
            while true {
                if let failure { throw failure }
                if over { throw MigrationError.local("the session ended while waiting for \(what)") }
                if ready() { return }
                guard condition.wait(until: deadline) else {
                    throw MigrationError.stalled("waited \(Int(timeout)) s for \(what)")
                }
            }
        }
    }

    /// Fails the session with `error` (the first cause wins), waking everything that waits or
    /// reads. The session channel keeps its writing side, so its thread can still tell the source
    /// why (ABORT).
    func fail(_ error: Error) {
        let all: [SecureChannel] = locked {
            if failure == nil { failure = error }
            over = true
            condition.broadcast()
            return channels.compactMap { $0 }
        }
        for ch in all { ch.interrupt(keepWriting: true) }
    }

    /// The first failure, if the session failed.
    var failureCause: Error? { locked { failure } }

    var isOver: Bool { locked { over } }

    /// The migration is over (committed or failed): extra streams stop reading.
    func end() {
        let extra: [SecureChannel] = locked {
            over = true
            condition.broadcast()
            return channels.dropFirst().compactMap { $0 }
        }
        for ch in extra { ch.interrupt() }
    }

    /// Waits (bounded) until no stream thread uses the session, so the VM can be discarded safely.
    func awaitStreamsExit(timeout: Double) {
        let deadline = Date(timeIntervalSinceNow: timeout)
        locked {
            while activeStreams > 0 {
                if !condition.wait(until: deadline) { return }
            }
        }
    }
}
