/// palm's source → destination migration protocol, version 2.
///
/// A migration is one **session**: a session channel (the first TLS 1.3 connection, PalmTLS,
/// mutual ECDSA authentication) that carries the whole dialogue, plus up to seven extra **page
/// streams** — further TLS connections that carry only pages. N = 1 is the session channel alone.
///
/// # Sequence
///
/// ```text
/// Source                                            Destination
///   |==== TLS 1.3, mutual ECDSA certificates ===========|  peer identities must match the ticket
///   |-- HELLO(ticket, nonce_s) ------------------------>|  verify ticket: signature, expiry,
///   |                                                   |  single use, source identity
///   |<-- ATTEST(nonce_s, exporter, measurement,         |
///   |           [TPM quote, PCRs, boot + IMA logs], sig)|  source checks sig, nonce, binding,
///   |                                                   |  measurement allowlist; with a TPM: the
///   |                                                   |  enrolled AK's quote over (nonce_s,
///   |                                                   |  exporter, ticket id), logs replayed
///   |                                                   |  to the PCRs, the platform policy
///   |-- CONFIG(vm, streams N, compression) ------------>|  destination checks capacity, creates an
///   |<-- PREPARED(session token, hand-off cost) --------|  empty paused VM (or ABORT: no page moved)
///   |                                                   |
///   |   for each extra stream i = 1 … N−1, a new TLS connection with the same certificates:
///   |==== TLS 1.3 (stream i) ===========================|
///   |-- JOIN(token, i, proof) ------------------------->|  proof = session channel's exporter over
///   |<-- JOINED ----------------------------------------|  (i ‖ this connection's exporter); same peer
///   |                                                   |
///   |   round r (0 = all RAM while the VM runs; r > 0 = pages dirtied during round r−1):
///   |-- MEMORY(r, pages …) on any of the N streams ---->|  a page appears on one stream per round
///   |-- ROUND_END(r, this stream's share) on stream i ->|  every extra stream ends its share
///   |-- ROUND_END(r, round totals) on the session ----->|  last: the round is complete
///   |<-- ROUND_APPLIED(r) ------------------------------|  every page of round r applied, digest sealed
///   |     … convergence policy decides stop-and-copy; the source waits for ROUND_APPLIED of the
///   |       last pre-copy round (the destination has caught up), then pauses the VM …
///   |-- MEMORY(final dirty pages), ROUND_END … -------->|
///   |-- STATE(vCPU/platform state) -------------------->|
///   |-- MANIFEST(image digest, state digest, nonce,     |
///   |            stats, sig) -------------------------->|  verified before anything resumes
///   |<-- READY(sig) ------------------------------------|
///   |-- COMMIT(sig) ----------------------------------->|  destination resumes the VM
///   |<-- DONE ------------------------------------------|  source destroys its copy
///
///   ABORT from either side before COMMIT: the destination discards, the source resumes the VM.
///   A failure on any stream fails the whole session the same way.
///   ERROR reports a protocol violation (the named ``WireError``) just before closing.
///
/// After COMMIT was sent but no DONE arrived, the source asks on a new connection:
///   |-- RESOLVE(migration id) ------------------------->|  committed? (else recorded as aborted,
///   |<-- RESOLUTION(committed | aborted) ----------------|  so a late COMMIT is refused)
/// ```
///
/// # Round ordering across streams (round barriers)
///
/// Within a round every page is sent at most once, so pages of one round never conflict, in
/// whatever order the streams deliver them. Across rounds they could: page p sent in round r on
/// stream A and again in round r+1 on stream B. The rule that keeps the newer copy: **the
/// destination applies no page of round r+1, on any stream, before every stream has delivered its
/// ROUND_END(r)**. A stream that reads a MEMORY frame of round r+1 early waits (bounded by the
/// I/O timeout) at that barrier. The session channel's ROUND_END(r) comes after the source has
/// finished writing round r on every stream, and STATE only after the final round's — so when
/// the destination verifies the manifest, every page has been applied. The destination confirms
/// each closed round with ROUND_APPLIED; the source pauses the VM only after the last pre-copy
/// round's, so the destination's backlog of received-but-unapplied pages is never downtime.
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
/// # MEMORY payload
///
/// ```text
///   +---------+---------+-------+--------------------------------+---------------------------+
///   | round   | count   | codec | count × ( pfn u64 | kind u8 )  | data                      |
///   | u32     | u32     | u8    | the page table                 |                           |
///   +---------+---------+-------+--------------------------------+---------------------------+
///   kind 0 = data, 1 = zero (no content). D = the number of data records.
///   codec 0 (none): data = D × pageSize bytes, the data pages in table order.
///   codec 1 (lz4), 2 (zstd): data = those D × pageSize bytes compressed as one block
///                            (used only for a batch it shrinks).
/// ```
/// The table comes first so a receiver validates every pfn and kind, and knows exactly how many
/// bytes of page data follow, before it reads (or writes) a single page.
///
/// # Destination state machine, session channel (``DestinationProtocolState``)
///
/// ```text
///   awaitingHello --RESOLVE--> resolved (destination answers RESOLUTION and closes)
///   awaitingHello --HELLO--> awaitingConfig --CONFIG--> receivingMemory (destination sends PREPARED)
///   receivingMemory --MEMORY--> receivingMemory
///   receivingMemory --ROUND_END--> betweenRounds
///   betweenRounds --MEMORY--> receivingMemory
///   betweenRounds --ROUND_END--> betweenRounds (a round with no page on this stream)
///   betweenRounds --STATE--> awaitingManifest
///   awaitingManifest --MANIFEST--> awaitingCommit (destination sends READY)
///   awaitingCommit --COMMIT--> committed (destination sends DONE)
///   any state before committed --ABORT/ERROR--> aborted
///   anything else: WireError.unexpectedMessage → ERROR, close, discard
/// ```
///
/// # Destination state machine, extra stream (``PageStreamProtocolState``)
///
/// ```text
///   awaitingJoin --JOIN (verified)--> streaming (destination sends JOINED)
///   streaming --MEMORY--> streaming
///   streaming --ROUND_END--> streaming
///   anything else (and any JOIN that does not verify): refused, closed, no page applied
/// ```
/// (ATTEST, PREPARED, JOINED, ROUND_APPLIED, READY and DONE flow the other way and are validated by
/// ``SourceProtocolState``.)
///
/// # Versioning rule
///
/// Every frame carries ``WireProtocol/version``. Any change to the layout or meaning of a frame
/// or message — a new field, a new message type, a new flag — increments it. A receiver accepts
/// only frames of exactly its own version and answers any other with ``WireError/unsupportedVersion(received:supported:)``;
/// there is no in-band negotiation, because a migration must never proceed on a partially
/// understood stream. Undefined flag bits and trailing bytes are errors for the same reason.
/// Choices *within* a version (the number of streams, the compression codec) are announced by the
/// source in CONFIG and checked by the destination against its own limits and abilities; a
/// destination that cannot honour them refuses with ABORT(unsupportedConfig) before any page.
/// Operators upgrade the destination side of a cluster before its sources; the coordinator
/// (which knows each agent's version) schedules only between agents that speak the same version.
///
/// Version history: 1 — one connection, MEMORY records interleaving page headers and data.
/// 2 — parallel page streams (JOIN/JOINED, CONFIG.streams, PREPARED's session token), MEMORY with
/// its page table first and an optional compression codec, PREPARED's hand-off cost,
/// ROUND_APPLIED, ABORT reason `busy`.
/// 3 — ATTEST carries optional TPM platform evidence (``PlatformEvidence``: the attestation key,
/// a quote, the quoted PCRs, the measured-boot and IMA logs, and the attestation key's
/// certification of the TLS key when that key lives in the TPM), covered by the report's signature.
public enum WireProtocol {
    /// The protocol version this build speaks.
    public static let version: UInt16 = 3
    /// `PALM` in ASCII.
    public static let magic: UInt32 = 0x5041_4C4D
    /// Bytes in a frame header.
    public static let headerSize = 12
    /// Streams one session may use (the session channel included).
    public static let maxStreams = 8
}

/// The message types of protocol version 2. Raw values are the type byte on the wire.
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
    case join = 16
    case joined = 17
    case roundApplied = 18

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
        case .join: return "JOIN"
        case .joined: return "JOINED"
        case .roundApplied: return "ROUND_APPLIED"
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
    /// Page records in one MEMORY batch.
    public var maxBatchPages: Int
    /// A destination's measured-boot event log and IMA log in ATTEST.
    public var maxBootLog: Int
    public var maxIMALog: Int

    public init(maxPayload: Int = 4 << 20, maxTicket: Int = 8 << 10, maxSignature: Int = 512,
                maxString: Int = 1024, maxPlatformConfig: Int = 64 << 10, maxState: Int = 2 << 20,
                maxBatchPages: Int = 1024, maxBootLog: Int = 1 << 20, maxIMALog: Int = 16 << 20) {
        self.maxBootLog = maxBootLog
        self.maxIMALog = maxIMALog
        self.maxPayload = maxPayload
        self.maxTicket = maxTicket
        self.maxSignature = maxSignature
        self.maxString = maxString
        self.maxPlatformConfig = maxPlatformConfig
        self.maxState = maxState
        self.maxBatchPages = maxBatchPages
    }

    public static let `default` = WireLimits()

    /// What an extra page stream may carry before and after it joined: JOIN, MEMORY, ROUND_END.
    public static let pageStream = WireLimits(maxPayload: 4 << 20, maxTicket: 0, maxSignature: 0, maxString: 1024,
                                              maxPlatformConfig: 0, maxState: 0, maxBootLog: 0, maxIMALog: 0)

    /// What a source accepts in the destination's ATTEST: a frame of at most `maxBytes` (the
    /// configured `attestation.max_evidence`), its logs within it.
    public static func attestation(maxBytes: Int) -> WireLimits {
        WireLimits(maxPayload: maxBytes, maxBootLog: min(maxBytes, 1 << 20), maxIMALog: maxBytes)
    }
}
