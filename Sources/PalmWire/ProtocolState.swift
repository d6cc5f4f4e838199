/// The destination's receiver state machine (diagram in ``WireProtocol``). It accepts a message
/// type only where the protocol allows it and otherwise throws
/// ``WireError/unexpectedMessage(_:state:)``, so out-of-order input can never reach the VM.
public enum DestinationProtocolState: String, Sendable {
    case awaitingHello, awaitingConfig, receivingMemory, betweenRounds, awaitingManifest, awaitingCommit
    case committed, aborted, resolved

    public init() { self = .awaitingHello }

    /// Advances on a received message type.
    public mutating func receive(_ type: MessageType) throws {
        switch (self, type) {
        case (.committed, _), (.aborted, _), (.resolved, _):
            throw WireError.unexpectedMessage(type, state: rawValue)
        case (_, .abort), (_, .error):
            self = .aborted
        case (.awaitingHello, .resolve): self = .resolved
        case (.awaitingHello, .hello): self = .awaitingConfig
        case (.awaitingConfig, .config): self = .receivingMemory
        case (.receivingMemory, .memory): self = .receivingMemory
        case (.receivingMemory, .roundEnd): self = .betweenRounds
        case (.betweenRounds, .memory): self = .receivingMemory
        case (.betweenRounds, .roundEnd): self = .betweenRounds  // a round with nothing to send
        case (.betweenRounds, .state): self = .awaitingManifest
        case (.awaitingManifest, .manifest): self = .awaitingCommit
        case (.awaitingCommit, .commit): self = .committed
        default:
            throw WireError.unexpectedMessage(type, state: rawValue)
        }
    }
}

/// The source's view: what it may receive given what it has sent.
///
/// ```text
///   awaitingAttest --ATTEST--> attested --(sent CONFIG)--> awaitingPrepared --PREPARED--> streaming
///   streaming --ROUND_APPLIED--> streaming
///   streaming --(sent MANIFEST)--> awaitingReady --ROUND_APPLIED--> awaitingReady
///   awaitingReady --READY--> readyReceived
///   readyReceived --(sent COMMIT)--> awaitingDone --DONE--> done
///   any state before done --ABORT/ERROR--> aborted
/// ```
public enum SourceProtocolState: String, Sendable {
    case awaitingAttest, attested, awaitingPrepared, streaming, awaitingReady, readyReceived, awaitingDone, done, aborted

    public init() { self = .awaitingAttest }

    /// Records a message the source sent.
    public mutating func sent(_ type: MessageType) {
        switch (self, type) {
        case (.attested, .config): self = .awaitingPrepared
        case (.streaming, .manifest): self = .awaitingReady
        case (.readyReceived, .commit): self = .awaitingDone
        case (_, .abort), (_, .error): self = .aborted
        default: break
        }
    }

    /// Advances on a received message type.
    public mutating func receive(_ type: MessageType) throws {
        switch (self, type) {
        case (.done, _), (.aborted, _):
            throw WireError.unexpectedMessage(type, state: rawValue)
        case (_, .abort), (_, .error): self = .aborted
        case (.awaitingAttest, .attest): self = .attested
        case (.awaitingPrepared, .prepared): self = .streaming
        case (.streaming, .roundApplied), (.awaitingReady, .roundApplied): break
        case (.awaitingReady, .ready): self = .readyReceived
        case (.awaitingDone, .done): self = .done
        default:
            throw WireError.unexpectedMessage(type, state: rawValue)
        }
    }
}

/// An extra page stream on the destination (diagram in ``WireProtocol``): JOIN first, then only
/// MEMORY and ROUND_END. Its JOIN is verified by the session it names before the state advances.
public enum PageStreamProtocolState: String, Sendable {
    case awaitingJoin, streaming, closed

    public init() { self = .awaitingJoin }

    public mutating func receive(_ type: MessageType) throws {
        switch (self, type) {
        case (.awaitingJoin, .join): self = .streaming
        case (.streaming, .memory), (.streaming, .roundEnd): break
        case (.closed, _):
            throw WireError.unexpectedMessage(type, state: rawValue)
        case (_, .abort), (_, .error): self = .closed
        default:
            throw WireError.unexpectedMessage(type, state: rawValue)
        }
    }
}
