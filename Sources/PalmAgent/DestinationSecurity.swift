import Foundation
import PalmMetrics
import PalmMigration
import PalmSecurity
import PalmCrypto
import PalmTLS
import PalmWire

/// The destination's protections for one connection: ticket (a listed coordinator's signature,
/// window, this host, the TLS peer as source, an epoch no lower than any accepted here, never seen
/// before), the VM matching the ticket, a signed attestation bound
/// to the session, the source's manifest and COMMIT signatures, and its own READY signature.
final class DestinationSecurity {
    let validator: TicketValidator
    let replayCache: ReplayCache
    let epochFloor: LeaderEpochFloor
    let measurement: Measurement
    let key: SigningKey
    let local: CertificateIdentity
    let peerKey: VerifyingKey
    let ledger: DestinationLedger
    let peerPEM: String
    let evidenceDirectory: String
    let metrics: AgentMetrics
    private(set) var ticket: MigrationTicket?

    init(validator: TicketValidator, replayCache: ReplayCache, epochFloor: LeaderEpochFloor, measurement: Measurement, key: SigningKey,
         local: CertificateIdentity, peerKey: VerifyingKey, peerPEM: String, ledger: DestinationLedger, evidenceDirectory: String,
         metrics: AgentMetrics) {
        self.metrics = metrics
        self.peerPEM = peerPEM
        self.evidenceDirectory = evidenceDirectory
        self.ledger = ledger
        self.validator = validator
        self.replayCache = replayCache
        self.epochFloor = epochFloor
        self.measurement = measurement
        self.key = key
        self.local = local
        self.peerKey = peerKey
    }

    static func now() -> UInt64 { UInt64(Date().timeIntervalSince1970) }

    var hooks: MigrationReceiver.Security {
        var s = MigrationReceiver.Security { [self] nonce, exporter in
            try measurement.report(nonce: nonce, exporter: exporter, key: key)
        }
        s.authorize = { [self] hello, peer in
            do {
                let t = try validator.validate(hello.ticket, destination: local.fingerprint, peer: peer.fingerprint, now: Self.now())
                guard epochFloor.admit(Int64(clamping: t.epoch)) else {
                    throw TicketError.staleEpoch(ticket: t.epoch, highest: UInt64(clamping: epochFloor.current))
                }
                try replayCache.insert(nonce: t.nonce.hex, expiry: t.notAfter + 3600)
                ticket = t
                metrics.started()
            } catch let e as TicketError {
                throw MigrationError.ticketRejected(e.description)
            }
        }
        s.authorizeConfig = { [self] config in
            guard let t = ticket else { throw MigrationError.ticketRejected("no ticket") }
            let bytes = config.pageCount * UInt64(config.pageSize)
            guard config.name == t.vm, bytes == t.memoryBytes else {
                throw MigrationError.ticketRejected(TicketError.vmMismatch(
                    "CONFIG is \(config.name) with \(bytes) bytes, the ticket covers \(t.vm) with \(t.memoryBytes)").description)
            }
            try ledger.recordIncoming(id: t.id, vm: t.vm, source: t.source.hex)
        }
        s.recordCommit = { [self] in
            guard let t = ticket else { throw MigrationError.ticketRejected("no ticket") }
            try ledger.commit(id: t.id)
        }
        s.durableRecordEstimate = { [self] in ledger.journal.typicalWriteSeconds }
        s.recordAbort = { [self] in
            if let t = ticket { _ = try? ledger.resolve(id: t.id) }
        }
        s.recordEvidence = { [self] ticketBytes, attestation, manifest, ready, commit in
            guard let t = ticket else { return }
            let e = Evidence(migrationID: t.id, recordedBy: "destination", vm: t.vm, ticket: ticketBytes, attestation: attestation,
                             manifest: manifest, readySignature: ready, commitSignature: commit,
                             sourceCertificate: peerPEM, destinationCertificate: local.pem)
            _ = try? e.save(in: evidenceDirectory)
        }
        s.resolve = { [self] id, peer in
            let hex = Hex.encode(id)
            // Only the source the ledger names may ask; a migration it does not hold is answered
            // aborted without writing anything.
            if let record = ledger.record(hex), record["source"] != peer.fingerprint.hex {
                throw MigrationError.ticketRejected("only the migration's source may ask how it ended")
            }
            return try ledger.resolve(id: hex)
        }
        s.verifyManifestSignature = { [self] manifest, _ in
            guard peerKey.isValidSignature(manifest.signature, for: manifest.signedBytes) else {
                throw MigrationError.signatureRejected("the manifest is not signed by the source's key")
            }
            guard manifest.ticketNonce == ticket?.nonce else {
                throw MigrationError.manifestMismatch("the manifest names another ticket")
            }
        }
        s.signReady = { [self] manifest in try key.sign(HandoffSignature.ready(manifest)) }
        s.verifyCommit = { [self] signature, manifest, _ in
            guard peerKey.isValidSignature(signature, for: HandoffSignature.commit(manifest)) else {
                throw MigrationError.signatureRejected("COMMIT is not signed by the source's key")
            }
        }
        return s
    }
}
