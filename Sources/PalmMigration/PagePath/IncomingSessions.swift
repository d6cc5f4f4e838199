import PalmSupport
import Foundation
import Logging
import PalmCrypto
import PalmWire

/// The migration sessions a destination is receiving, by session token: where an extra page
/// stream's JOIN finds its session.
///
/// Guarantees: a stream is attached only if its token names a live session, its certificate is
/// the session's source, its proof verifies (``StreamJoin``) and its index is free; otherwise it
/// is refused before a single page of it is read, and the session it named is not disturbed.
public final class IncomingSessions: @unchecked Sendable {
    private let sessions = LockedValueBox<[[UInt8]: IncomingSession]>([:])
    /// The nice value an extra page stream's thread takes once it joined (``ThreadPriority``).
    let pageThreadNice: Int

    public init(pageThreadNice: Int = 0) {
        self.pageThreadNice = pageThreadNice
    }

    func register(_ session: IncomingSession) {
        sessions.withLockedValue { $0[session.token] = session }
    }

    func unregister(_ session: IncomingSession) {
        sessions.withLockedValue { $0[session.token] = nil }
    }

    /// Sessions being received now.
    public var count: Int { sessions.withLockedValue { $0.count } }

    /// Serves an extra page stream whose first message was `join`: verifies it, answers JOINED,
    /// and receives its pages on the calling thread until the session ends. Throws
    /// ``MigrationError/streamRefused(_:)`` (nothing applied) when it does not belong; a failure
    /// after it joined fails its session too.
    public func serveStream(_ join: Join, channel: SecureChannel, logger: Logger) throws {
        guard let session = sessions.withLockedValue({ $0[join.sessionToken] }) else {
            throw MigrationError.streamRefused("no session has this token")
        }
        guard channel.peer.fingerprint == session.peer else {
            throw MigrationError.streamRefused("the stream's certificate (\(channel.peer)) is not the session's source")
        }
        let expected = try StreamJoin.proof(key: session.joinKey, stream: Int(join.stream), channel: channel)
        guard expected.constantTimeEquals(join.proof) else {
            throw MigrationError.streamRefused("its proof does not match the session (another session's key or another connection)")
        }
        try session.attach(stream: Int(join.stream), channel: channel)
        defer { session.detach() }
        do {
            try channel.send(.joined)
            // This connection's thread serves nothing else from here to its end.
            if pageThreadNice > 0 { ThreadPriority.yield(nice: pageThreadNice) }
            try PageStreamLoop(stream: Int(join.stream), channel: channel, session: session).run()
        } catch {
            if session.isOver { return }  // the session ended (committed or failed elsewhere): the stream just stops
            session.fail(error)
            throw error
        }
    }
}

/// An extra stream's receive loop: MEMORY and ROUND_END until the session ends.
struct PageStreamLoop {
    let stream: Int
    let channel: SecureChannel
    let session: IncomingSession

    func run() throws {
        let frames = FrameReader(stream: channel, limits: session.limits)
        let batches = PageBatchReceiver(stream: stream, channel: channel, session: session)
        var state = PageStreamProtocolState()
        try state.receive(.join)
        while true {
            let header = try frames.nextHeader()
            try state.receive(header.type)
            switch header.type {
            case .memory:
                try batches.receiveMemory(payloadLength: Int(header.length))
            case .roundEnd:
                guard case let .roundEnd(end) = try frames.readMessage(after: header) else {
                    throw WireError.unexpectedMessage(.roundEnd, state: "page stream")
                }
                try batches.roundEnded(end.round)
            default:
                let message = try frames.readMessage(after: header)
                if case let .abort(n) = message { throw MigrationError.abortedByPeer(n.reason, n.message) }
                if case let .error(n) = message { throw MigrationError.abortedByPeer(n.reason, n.message) }
                throw WireError.unexpectedMessage(header.type, state: "page stream")
            }
        }
    }
}
