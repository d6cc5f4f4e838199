import PalmCrypto
import PalmWire

/// Decides whether a source may migrate to this destination: its ticket in HELLO, then the VM
/// its CONFIG describes against what the ticket covers (before anything is allocated).
public protocol MigrationAdmission: Sendable {
    func admit(_ hello: Hello, peer: CertificateIdentity) throws
    func admit(_ config: VMConfig) throws
}

/// Produces the destination's attestation for one session (a report bound to the session's
/// nonce and exporter; with a TPM, a quote over them).
public protocol AttestationProvider: Sendable {
    func attest(binding: SessionBinding) throws -> Attestation
}

/// The destination's signatures on the hand-off: the check of the source's manifest and COMMIT,
/// READY.
public protocol HandoffCountersigner: Sendable {
    /// Accepts the manifest's signature (and that it names this migration's ticket) or throws.
    func verifyManifest(_ manifest: Manifest, peer: CertificateIdentity) throws
    func signReady(_ manifest: Manifest) throws -> [UInt8]
    /// Accepts COMMIT's signature over `manifest` or throws.
    func verifyCommit(_ signature: [UInt8], for manifest: Manifest, peer: CertificateIdentity) throws
    /// Seconds one signature operation takes here, measured (the source's downtime prediction).
    func signatureCost() throws -> Double
}

/// The destination's durable record of the commit rule (its ledger).
public protocol DestinationJournal: Sendable {
    /// The admitted migration is incoming (durable before anything is built).
    func recordIncoming() throws
    /// COMMIT verified: durable before the VM resumes here.
    func recordCommit() throws
    /// This migration will never commit (before a partial VM is discarded).
    func recordAbort()
    /// What one durable record costs here (the ledger's recent median), when known.
    var typicalRecordSeconds: Double? { get }
    /// Answers RESOLVE for migration `id` from `peer` (only its source may ask).
    func resolve(id: [UInt8], peer: CertificateIdentity) throws -> Resolution
}

/// Every protection on the destination's side of one connection, composed by the agent. Each
/// part is required; what tests use instead says so by name (``Unprotected``).
public struct ReceiverProtections: Sendable {
    public var admission: any MigrationAdmission
    public var attestation: any AttestationProvider
    public var handoff: any HandoffCountersigner
    public var journal: any DestinationJournal
    public var evidence: any EvidenceRecorder

    public init(admission: any MigrationAdmission, attestation: any AttestationProvider, handoff: any HandoffCountersigner,
                journal: any DestinationJournal, evidence: any EvidenceRecorder) {
        self.admission = admission
        self.attestation = attestation
        self.handoff = handoff
        self.journal = journal
        self.evidence = evidence
    }
}
