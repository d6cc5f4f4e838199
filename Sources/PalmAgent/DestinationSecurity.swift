import Foundation
import Logging
import PalmMetrics
import PalmProtection
import PalmSecurity
import PalmCrypto
import PalmWire

/// The destination's protections for one connection, composed: the ticket admission (a listed
/// coordinator's signature, window, this host, the TLS peer as source, an epoch no lower than
/// any accepted here, never seen before, the VM it covers), the attestation this host makes,
/// the hand-off signatures, the ledger, the evidence.
struct DestinationSecurity {
    let admission: TicketAdmission
    let protections: ReceiverProtections

    init(credentials: DestinationServer.Credentials, replayCache: ReplayCache, epochFloor: LeaderEpochFloor, ledger: DestinationLedger,
         peer: CertificateIdentity, evidenceDirectory: String, metrics: AgentMetrics, logger: Logger) {
        let local = credentials.context.localIdentity
        let admission = TicketAdmission(validator: credentials.validator, replayCache: replayCache, epochFloor: epochFloor,
                                        destination: local.fingerprint) { _ in metrics.started() }
        self.admission = admission
        protections = ReceiverProtections(
            admission: admission,
            attestation: credentials.attestor(for: admission),
            handoff: SignedHandoff(destination: credentials.signingKey, admission: admission),
            journal: LedgerJournal(ledger: ledger, admission: admission),
            evidence: EvidenceArchive(directory: evidenceDirectory, recordedBy: "destination", ticket: { admission.admitted },
                                      sourceCertificate: peer.pem, destinationCertificate: local.pem, logger: logger))
    }
}

/// The destination ledger as the receiver's journal for the migration `admission` admitted.
struct LedgerJournal: DestinationJournal {
    let ledger: DestinationLedger
    let admission: TicketAdmission

    private func ticket() throws -> MigrationTicket {
        guard let t = admission.admitted else { throw ProtectionRefusal.ticket("no ticket") }
        return t
    }

    func recordIncoming() throws {
        let t = try ticket()
        try ledger.recordIncoming(id: t.id, vm: t.vm, source: t.source.hex)
    }

    func recordCommit() throws { try ledger.commit(id: try ticket().id) }

    func recordAbort() {
        if let t = admission.admitted { _ = try? ledger.resolve(id: t.id) }
    }

    var typicalRecordSeconds: Double? { ledger.journal.typicalWriteSeconds }

    /// Only the source the ledger names may ask; a migration it does not hold is answered aborted
    /// without writing anything.
    func resolve(id: [UInt8], peer: CertificateIdentity) throws -> Resolution {
        let hex = Hex.encode(id)
        if let record = ledger.record(hex), record["source"] != peer.fingerprint.hex {
            throw ProtectionRefusal.ticket("only the migration's source may ask how it ended")
        }
        return try ledger.resolve(id: hex)
    }
}
