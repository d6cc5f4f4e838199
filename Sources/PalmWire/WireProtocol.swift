/// palm's source → destination migration protocol, version 1.
///
/// One TLS 1.3 connection (PalmTLS, mutual ECDSA authentication) carries a sequence of frames.
///
/// # Sequence
///
/// ```text
/// Source                                          Destination
///   |==== TLS 1.3, mutual ECDSA certificates =========|  peer identities must match the ticket
///   |-- HELLO(ticket, nonce_s) ---------------------->|  verify ticket: signature, expiry,
///   |                                                 |  single use, source identity
///   |<-- ATTEST(nonce_s, exporter, measurement, sig) -|  source checks sig, nonce, binding,
///   |                                                 |  measurement allowlist
///   |-- CONFIG(vm config) --------------------------->|  destination checks capacity, creates an
///   |<-- PREPARED -------------------------------------|  empty paused VM (or ABORT: no page moved)
///   |-- MEMORY(round r, pages …) -------------------->|  repeated
///   |-- ROUND_END(round r stats) -------------------->|  one per round
///   |     … convergence policy decides stop-and-copy; source pauses the VM …
///   |-- MEMORY(final dirty pages) ------------------->|
///   |-- ROUND_END(final round) ---------------------->|
///   |-- STATE(vCPU/platform state) ------------------>|
///   |-- MANIFEST(image digest, state digest, nonce,   |
///   |            stats, sig) ------------------------>|  verified before anything resumes
///   |<-- READY(sig) ----------------------------------|
///   |-- COMMIT(sig) --------------------------------->|  destination resumes the VM
///   |<-- DONE ----------------------------------------|  source destroys its copy
///
///   ABORT from either side before COMMIT: the destination discards, the source resumes the VM.
///   ERROR reports a protocol violation (the named ``WireError``) just before closing.
///
/// After COMMIT was sent but no DONE arrived, the source asks on a new connection:
///   |-- RESOLVE(migration id) ----------------------->|  committed? (else recorded as aborted,
///   |<-- RESOLUTION(committed | aborted) --------------|  so a late COMMIT is refused)
/// ```
///
/// # Frame
///
/// ```text
///   0       4       6    7     8               12
///   +-------+-------+----+-----+---------------+--------------------+
///   | PALM  | ver   |type|flags| payload length| payload …          |
///   +-------+-------+----+-----+---------------+--------------------+
///   all integers big-endian; length ≤ the receiver's cap (WireLimits.maxPayload)
/// ```
///
/// # Destination state machine (``DestinationProtocolState``)
///
/// ```text
///   awaitingHello --RESOLVE--> resolved (destination answers RESOLUTION and closes)
///   awaitingHello --HELLO--> awaitingConfig --CONFIG--> receivingMemory (destination sends PREPARED)
///   receivingMemory --MEMORY--> receivingMemory
///   receivingMemory --ROUND_END--> betweenRounds
///   betweenRounds --MEMORY--> receivingMemory
///   betweenRounds --ROUND_END--> betweenRounds (a round with no dirty page)
///   betweenRounds --STATE--> awaitingManifest
///   awaitingManifest --MANIFEST--> awaitingCommit (destination sends READY)
///   awaitingCommit --COMMIT--> committed (destination sends DONE)
///   any state before committed --ABORT/ERROR--> aborted
///   anything else: WireError.unexpectedMessage → ERROR, close, discard
/// ```
/// (ATTEST, PREPARED, READY and DONE flow the other way and are validated by ``SourceProtocolState``.)
///
/// # Versioning rule
///
/// Every frame carries ``WireProtocol/version``. Any change to the layout or meaning of a frame
/// or message — a new field, a new message type, a new flag — increments it. A receiver accepts
/// only frames of exactly its own version and answers any other with ``WireError/unsupportedVersion(received:supported:)``;
/// there is no in-band negotiation, because a migration must never proceed on a partially
/// understood stream. Undefined flag bits and trailing bytes are errors for the same reason.
/// Operators upgrade the destination side of a cluster before its sources; the coordinator
/// (which knows each agent's version) schedules only between agents that speak the same version.
public enum WireProtocol {
    /// The protocol version this build speaks.
    public static let version: UInt16 = 1
    /// `PALM` in ASCII.
    public static let magic: UInt32 = 0x5041_4C4D
    /// Bytes in a frame header.
    public static let headerSize = 12
}

/// The message types of protocol version 1. Raw values are the type byte on the wire.
public enum MessageType: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    case hello = 1
    case attest = 2
    case config = 3
    case memory = 4
    case roundEnd = 5
    case state = 6
    case manifest = 7
    case ready = 8
    case commit = 9
    case done = 10
    case abort = 11
    case error = 12
    case prepared = 13
    case resolve = 14
    case resolution = 15

    public var description: String {
        switch self {
        case .hello: return "HELLO"
        case .attest: return "ATTEST"
        case .config: return "CONFIG"
        case .memory: return "MEMORY"
        case .roundEnd: return "ROUND_END"
        case .state: return "STATE"
        case .manifest: return "MANIFEST"
        case .ready: return "READY"
        case .commit: return "COMMIT"
        case .done: return "DONE"
        case .abort: return "ABORT"
        case .error: return "ERROR"
        case .prepared: return "PREPARED"
        case .resolve: return "RESOLVE"
        case .resolution: return "RESOLUTION"
        }
    }
}

/// Limits a receiver enforces on every frame and field before it allocates anything.
public struct WireLimits: Sendable, Equatable {
    /// The largest frame payload accepted (default 4 MiB: a MEMORY batch of up to ~1,000 pages).
    public var maxPayload: Int
    /// Opaque blobs: tickets, signatures, platform config.
    public var maxTicket: Int
    public var maxSignature: Int
    public var maxString: Int
    public var maxPlatformConfig: Int
    /// CPU/platform state (HVM context of all vCPUs).
    public var maxState: Int

    public init(maxPayload: Int = 4 << 20, maxTicket: Int = 8 << 10, maxSignature: Int = 512,
                maxString: Int = 1024, maxPlatformConfig: Int = 64 << 10, maxState: Int = 2 << 20) {
        self.maxPayload = maxPayload
        self.maxTicket = maxTicket
        self.maxSignature = maxSignature
        self.maxString = maxString
        self.maxPlatformConfig = maxPlatformConfig
        self.maxState = maxState
    }

    public static let `default` = WireLimits()
}
