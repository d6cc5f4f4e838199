import PalmCrypto
import PalmWire

/// No ticket, no attestation check, no signatures, no journal: what engine tests and the
/// benchmark that measures the protections' cost run with. Never built by an agent; its name is
/// the warning.
public enum Unprotected {
    /// A source that presents no ticket, accepts any attestation and signs nothing.
    public static var sender: SenderProtections {
        SenderProtections(ticket: [], ticketNonce: .zero, attestation: AcceptsAnyAttestation(), handoff: NoSignatures(),
                          journal: NoJournal(), evidence: NoEvidence())
    }

    /// A destination that admits every source and signs nothing; `attest` makes its reports.
    public static func receiver(attest: @escaping @Sendable (SessionBinding) throws -> Attestation) -> ReceiverProtections {
        ReceiverProtections(admission: AdmitsEveryone(), attestation: ClosureAttestor(attest: attest), handoff: NoSignatures(),
                            journal: NoJournal(), evidence: NoEvidence())
    }

    struct AcceptsAnyAttestation: AttestationVerifier {
        func verify(_ attestation: Attestation, binding: SessionBinding, peer: CertificateIdentity) throws {}
    }

    struct AdmitsEveryone: MigrationAdmission {
        func admit(_ hello: Hello, peer: CertificateIdentity) throws {}
        func admit(_ config: VMConfig) throws {}
    }

    struct ClosureAttestor: AttestationProvider {
        let attest: @Sendable (SessionBinding) throws -> Attestation
        func attest(binding: SessionBinding) throws -> Attestation { try attest(binding) }
    }

    struct NoSignatures: HandoffSigner, HandoffCountersigner {
        func signManifest(_ manifest: Manifest) throws -> [UInt8] { [] }
        func verifyReady(_ signature: [UInt8], for manifest: Manifest, peer: CertificateIdentity) throws {}
        func signCommit(_ manifest: Manifest) throws -> [UInt8] { [] }
        func verifyManifest(_ manifest: Manifest, peer: CertificateIdentity) throws {}
        func signReady(_ manifest: Manifest) throws -> [UInt8] { [] }
        func verifyCommit(_ signature: [UInt8], for manifest: Manifest, peer: CertificateIdentity) throws {}
        func signatureCost() throws -> Double { 0 }
    }

    struct NoJournal: SourceJournal, DestinationJournal {
        func recordStart() throws {}
        func recordCommitIntent() throws {}
        func recordFinished() {}
        func recordIncoming() throws {}
        func recordCommit() throws {}
        func recordAbort() {}
        var typicalRecordSeconds: Double? { nil }
        func resolveInDoubt() throws -> Resolution { throw ProtectionRefusal.local("no journal: the migration's end is unknown") }
        func resolve(id: [UInt8], peer: CertificateIdentity) throws -> Resolution { .aborted }
    }

    struct NoEvidence: EvidenceRecorder {
        func record(_ evidence: HandoffEvidence) {}
    }
}
