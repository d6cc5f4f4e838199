/// HELLO: the source opens a migration with the coordinator's ticket and a fresh nonce the
/// destination must echo in its attestation.
public struct Hello: Equatable, Sendable {
    /// The signed migration ticket, opaque to the wire layer (PalmSecurity defines its contents).
    public var ticket: [UInt8]
    /// 32 random bytes chosen by the source for this connection.
    public var sourceNonce: Digest32

    public init(ticket: [UInt8], sourceNonce: Digest32) {
        self.ticket = ticket
        self.sourceNonce = sourceNonce
    }
}

/// ATTEST: the destination's signed report of what it runs, bound to this TLS session.
public struct Attestation: Equatable, Sendable {
    public var sourceNonce: Digest32
    /// The TLS exporter value of this connection (channel binding).
    public var exporter: Digest32
    /// SHA-256 of the running `palm-dest` executable.
    public var agentDigest: Digest32
    /// SHA-256 of the destination's configuration file.
    public var configDigest: Digest32
    public var hypervisor: String
    public var hypervisorVersion: String
    /// Milliseconds since the Unix epoch when the report was made.
    public var timestampMillis: UInt64
    /// What the destination's TPM says (quote, PCRs, event logs); nil for a software-only
    /// attestation.
    public var platform: PlatformEvidence?
    /// ECDSA signature (DER) by the destination host key over ``signedBytes``.
    public var signature: [UInt8]

    public init(sourceNonce: Digest32, exporter: Digest32, agentDigest: Digest32, configDigest: Digest32,
                hypervisor: String, hypervisorVersion: String, timestampMillis: UInt64, platform: PlatformEvidence? = nil,
                signature: [UInt8]) {
        self.platform = platform
        self.sourceNonce = sourceNonce
        self.exporter = exporter
        self.agentDigest = agentDigest
        self.configDigest = configDigest
        self.hypervisor = hypervisor
        self.hypervisorVersion = hypervisorVersion
        self.timestampMillis = timestampMillis
        self.signature = signature
    }

    /// The canonical bytes the signature covers: every field but the signature, with a
    /// domain-separation prefix so the signature cannot be reused for another message.
    public var signedBytes: [UInt8] {
        var w = ByteWriter()
        w.write(raw: Array("palm-attest-v2".utf8))
        encodeBody(into: &w)
        return w.bytes
    }

    func encodeBody(into w: inout ByteWriter) {
        w.write(raw: sourceNonce.bytes)
        w.write(raw: exporter.bytes)
        w.write(raw: agentDigest.bytes)
        w.write(raw: configDigest.bytes)
        w.write(string: hypervisor)
        w.write(string: hypervisorVersion)
        w.write(timestampMillis)
        if let platform {
            w.write(UInt8(1))
            platform.encode(into: &w)
        } else {
            w.write(UInt8(0))
        }
    }

    /// `software` or `tpm`: what the destination could prove (shown in reports and evidence).
    public var mode: String { platform == nil ? "software" : "tpm" }
}

/// How the source moves memory.
public enum MigrationMode: UInt8, Sendable, CaseIterable {
    /// Multi-pass pre-copy: rounds while the VM runs, then a short stop-and-copy.
    case preCopy = 0
    /// Pause first, copy everything, resume on the destination (the baseline).
    case stopAndCopy = 1

    /// The name operators, orders and reports use: `pre-copy` or `stop-and-copy`.
    public var name: String { self == .preCopy ? "pre-copy" : "stop-and-copy" }

    /// The mode a name denotes; nil for anything else.
    public init?(name: String) {
        guard let mode = Self.allCases.first(where: { $0.name == name }) else { return nil }
        self = mode
    }
}

/// CONFIG: what the destination must create before the first page arrives, and how the pages
/// will travel.
public struct VMConfig: Equatable, Sendable {
    public var name: String
    public var mode: MigrationMode
    /// Bytes per page (4096 on x86).
    public var pageSize: UInt32
    /// Pages of guest RAM; every pfn on the wire is below this.
    public var pageCount: UInt64
    public var vcpus: UInt32
    public var hypervisor: String
    /// Driver-specific platform description, opaque to the wire layer.
    public var platform: [UInt8]
    /// Page streams of this session, the session channel included (1 … ``WireProtocol/maxStreams``).
    public var streams: UInt8
    /// The codec MEMORY batches may use (each batch still says which it used).
    public var compression: PageCompression

    public init(name: String, mode: MigrationMode, pageSize: UInt32, pageCount: UInt64, vcpus: UInt32,
                hypervisor: String, platform: [UInt8], streams: UInt8 = 1, compression: PageCompression = .none) {
        self.name = name
        self.mode = mode
        self.pageSize = pageSize
        self.pageCount = pageCount
        self.vcpus = vcpus
        self.hypervisor = hypervisor
        self.platform = platform
        self.streams = streams
        self.compression = compression
    }

    /// Page sizes a VM may declare.
    public static let allowedPageSizes: Set<UInt32> = [4096]
}

/// How the page data of a MEMORY batch is encoded. Raw values are the codec byte on the wire.
public enum PageCompression: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    case none = 0
    case lz4 = 1
    case zstd = 2

    /// The names configuration files and the CLI use.
    public init?(name: String) {
        switch name {
        case "none": self = .none
        case "lz4": self = .lz4
        case "zstd": self = .zstd
        default: return nil
        }
    }

    public var description: String {
        switch self {
        case .none: return "none"
        case .lz4: return "lz4"
        case .zstd: return "zstd"
        }
    }
}

/// PREPARED: the destination created an empty paused VM for the CONFIG and has room for it.
public struct Prepared: Equatable, Sendable {
    /// 16 random bytes naming this session; extra streams present it in JOIN.
    public var sessionToken: [UInt8]
    /// What the destination measured its own share of a hand-off to cost (durable records,
    /// signatures, starting the VM), in microseconds — part of the source's downtime prediction.
    public var handoffMicros: UInt32

    public static let tokenSize = 16

    public init(sessionToken: [UInt8], handoffMicros: UInt32) {
        self.sessionToken = sessionToken
        self.handoffMicros = handoffMicros
    }
}

/// JOIN: the first message on an extra page stream, proving it belongs to a session.
public struct Join: Equatable, Sendable {
    /// The session's token from PREPARED.
    public var sessionToken: [UInt8]
    /// This stream's index, 1 … streams − 1 (0 is the session channel).
    public var stream: UInt8
    /// The session channel's TLS exporter over (stream index ‖ this connection's exporter): only
    /// the two ends of the session channel can compute it, and it is good for this connection only.
    public var proof: Digest32

    public init(sessionToken: [UInt8], stream: UInt8, proof: Digest32) {
        self.sessionToken = sessionToken
        self.stream = stream
        self.proof = proof
    }
}

/// ROUND_END: statistics of one completed round, as the source measured them.
public struct RoundEnd: Equatable, Sendable {
    public var round: UInt32
    public var pagesSent: UInt64
    public var zeroPages: UInt64
    public var bytesSent: UInt64
    public var durationMicros: UInt64
    /// Pages found dirty when the round ended (what the next round would send).
    public var dirtyPages: UInt64

    public init(round: UInt32, pagesSent: UInt64, zeroPages: UInt64, bytesSent: UInt64,
                durationMicros: UInt64, dirtyPages: UInt64) {
        self.round = round
        self.pagesSent = pagesSent
        self.zeroPages = zeroPages
        self.bytesSent = bytesSent
        self.durationMicros = durationMicros
        self.dirtyPages = dirtyPages
    }
}

/// MANIFEST: the source's signed account of exactly what it sent.
public struct Manifest: Equatable, Sendable {
    /// SHA-256 over the final memory image (see PalmMigration's image digest definition).
    public var imageDigest: Digest32
    /// SHA-256 of the STATE payload.
    public var stateDigest: Digest32
    /// The nonce of the ticket this migration runs under.
    public var ticketNonce: Digest32
    public var rounds: UInt32
    public var pagesSent: UInt64
    public var bytesSent: UInt64
    /// ECDSA signature (DER) by the source host key over ``signedBytes``.
    public var signature: [UInt8]

    public init(imageDigest: Digest32, stateDigest: Digest32, ticketNonce: Digest32, rounds: UInt32,
                pagesSent: UInt64, bytesSent: UInt64, signature: [UInt8]) {
        self.imageDigest = imageDigest
        self.stateDigest = stateDigest
        self.ticketNonce = ticketNonce
        self.rounds = rounds
        self.pagesSent = pagesSent
        self.bytesSent = bytesSent
        self.signature = signature
    }

    public var signedBytes: [UInt8] {
        var w = ByteWriter()
        w.write(raw: Array("palm-manifest-v1".utf8))
        encodeBody(into: &w)
        return w.bytes
    }

    func encodeBody(into w: inout ByteWriter) {
        w.write(raw: imageDigest.bytes)
        w.write(raw: stateDigest.bytes)
        w.write(raw: ticketNonce.bytes)
        w.write(rounds)
        w.write(pagesSent)
        w.write(bytesSent)
    }
}

/// Why a migration was abandoned. Raw values are the code on the wire.
public enum AbortReason: UInt16, Sendable, CaseIterable {
    case ticketRejected = 1
    case attestationRejected = 2
    case insufficientMemory = 3
    case protocolViolation = 4
    case manifestMismatch = 5
    case cancelled = 6
    case hypervisorFailure = 7
    case shuttingDown = 8
    case internalError = 9
    case unsupportedConfig = 10
    /// The destination is receiving as many migrations as it is configured to.
    case busy = 11
}

/// ABORT and ERROR: a named reason plus a human-readable explanation.
public struct AbortNotice: Equatable, Sendable {
    public var reason: AbortReason
    public var message: String

    public init(reason: AbortReason, message: String) {
        self.reason = reason
        self.message = message
    }
}

/// The destination's durable verdict on a migration, answered to RESOLVE.
public enum Resolution: UInt8, Sendable, CaseIterable {
    /// COMMIT was received and recorded: the VM runs (or will run) on the destination.
    case committed = 1
    /// No COMMIT was recorded, and now none ever will be: the VM belongs to the source.
    case aborted = 2
}
