import PalmCrypto
import PalmWire

/// Checks the destination's attestation before anything about the VM leaves the source.
///
/// Implementations: the software report check (`AttestationPolicy`), the TPM quote check
/// (`PlatformAttestationVerifier`). Throwing refuses the destination (a ``ProtectionRefusal``
/// names why); returning accepts it.
public protocol AttestationVerifier: Sendable {
    /// Accepts `attestation` for this session, sent by `peer`, or throws the refusal.
    func verify(_ attestation: Attestation, binding: SessionBinding, peer: CertificateIdentity) throws
}

/// The source's signatures on the hand-off: the manifest, the check of the destination's READY,
/// COMMIT.
public protocol HandoffSigner: Sendable {
    func signManifest(_ manifest: Manifest) throws -> [UInt8]
    /// Accepts the destination's READY signature over `manifest` or throws the refusal.
    func verifyReady(_ signature: [UInt8], for manifest: Manifest, peer: CertificateIdentity) throws
    func signCommit(_ manifest: Manifest) throws -> [UInt8]
    /// Seconds one signature operation takes here, measured (the downtime prediction counts them).
    func signatureCost() throws -> Double
}

/// The source's durable record of the commit rule: a started migration resumes the VM here after
/// a crash, one whose COMMIT may have left asks the destination instead (never guesses).
public protocol SourceJournal: Sendable {
    /// The migration started (before the first page): a crash from here resumes the VM here.
    func recordStart() throws
    /// COMMIT is about to be sent (durable before its first byte leaves).
    func recordCommitIntent() throws
    /// The migration is over (committed and the local copy gone, or the VM runs here again).
    func recordFinished()
    /// What one durable record costs here (the journal's recent median), when known.
    var typicalRecordSeconds: Double? { get }
    /// Asks the destination how the migration ended when DONE did not arrive (RESOLVE).
    func resolveInDoubt() throws -> Resolution
}

/// Every protection on the source's side of one migration, composed by the agent. Each part is
/// required: there is no default that accepts, so a forgotten protection does not compile. What
/// tests and the protection benchmark use instead says so by name (``Unprotected``).
public struct SenderProtections: Sendable {
    /// Bytes carried in HELLO (the coordinator's signed ticket).
    public var ticket: [UInt8]
    /// The ticket's nonce, bound into the manifest.
    public var ticketNonce: Digest32
    public var attestation: any AttestationVerifier
    public var handoff: any HandoffSigner
    public var journal: any SourceJournal
    public var evidence: any EvidenceRecorder

    public init(ticket: [UInt8], ticketNonce: Digest32, attestation: any AttestationVerifier, handoff: any HandoffSigner,
                journal: any SourceJournal, evidence: any EvidenceRecorder) {
        self.ticket = ticket
        self.ticketNonce = ticketNonce
        self.attestation = attestation
        self.handoff = handoff
        self.journal = journal
        self.evidence = evidence
    }
}
