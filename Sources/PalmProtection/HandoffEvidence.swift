import PalmWire

/// The signed pieces of one committed hand-off, as either side holds them once COMMIT is
/// recorded: the ticket, the destination's attestation, the source's manifest, READY's and
/// COMMIT's signatures.
public struct HandoffEvidence: Sendable {
    public var ticket: [UInt8]
    public var attestation: Attestation
    public var manifest: Manifest
    public var readySignature: [UInt8]
    public var commitSignature: [UInt8]

    public init(ticket: [UInt8], attestation: Attestation, manifest: Manifest, readySignature: [UInt8], commitSignature: [UInt8]) {
        self.ticket = ticket
        self.attestation = attestation
        self.manifest = manifest
        self.readySignature = readySignature
        self.commitSignature = commitSignature
    }
}

/// Keeps the evidence of committed hand-offs. Called after the commit is durable and outside
/// the downtime; a failure to keep it is the recorder's to log, never a reason to undo a commit.
public protocol EvidenceRecorder: Sendable {
    func record(_ evidence: HandoffEvidence)
}
