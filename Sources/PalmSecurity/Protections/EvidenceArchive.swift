import Foundation
import Logging
import PalmProtection

/// Keeps a committed hand-off's evidence as `DIR/ID.evidence.json` (``Evidence``), with both
/// hosts' certificates, so it can be checked later by anyone holding the cluster's certificates.
public struct EvidenceArchive: EvidenceRecorder {
    public let directory: String
    /// "source" or "destination".
    public let recordedBy: String
    /// The migration's ticket (the destination learns it only once HELLO is admitted).
    let ticket: @Sendable () -> MigrationTicket?
    public let sourceCertificate: String
    public let destinationCertificate: String
    let logger: Logger

    public init(directory: String, recordedBy: String, ticket: @escaping @Sendable () -> MigrationTicket?, sourceCertificate: String,
                destinationCertificate: String, logger: Logger) {
        self.directory = directory
        self.recordedBy = recordedBy
        self.ticket = ticket
        self.sourceCertificate = sourceCertificate
        self.destinationCertificate = destinationCertificate
        self.logger = logger
    }

    /// Removes evidence files older than `age` seconds (a TPM-attested migration's carries the
    /// destination's logs: a megabyte or more each); returns how many.
    @discardableResult
    public static func prune(directory: String, olderThan age: Double, now: Date = Date()) -> Int {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        var removed = 0
        for f in files where f.hasSuffix(".evidence.json") {
            let path = directory + "/" + f
            guard let modified = (try? FileManager.default.attributesOfItem(atPath: path))?[.modificationDate] as? Date,
                  now.timeIntervalSince(modified) > age else { continue }
            if (try? FileManager.default.removeItem(atPath: path)) != nil { removed += 1 }
        }
        return removed
    }

    public func record(_ e: HandoffEvidence) {
        guard let t = ticket() else { return }
        let evidence = Evidence(migrationID: t.id, recordedBy: recordedBy, vm: t.vm, ticket: e.ticket, attestation: e.attestation,
                                manifest: e.manifest, readySignature: e.readySignature, commitSignature: e.commitSignature,
                                sourceCertificate: sourceCertificate, destinationCertificate: destinationCertificate)
        do { _ = try evidence.save(in: directory) } catch {
            logger.error("cannot save the evidence of migration \(t.id): \(error)")
        }
    }
}
