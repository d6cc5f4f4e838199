import PalmMetrics
import PalmMigration
import PalmSecurity
import PalmTLS

extension AgentMetrics.Refusal {
    /// The refusal an agent counts for a failure, when it is one: a ticket, an attestation or a
    /// signature refused, or a certificate refused at the TLS handshake (by either side). Other
    /// failures (transport, hypervisor, cancellation) are not refusals.
    init?(_ error: Error) {
        if error is TicketError { self = .ticket; return }
        if let tls = error as? TLSError { guard tls.isCertificateRefusal else { return nil }; self = .tls; return }
        switch MigrationError.wrap(error) {
        case .ticketRejected: self = .ticket
        case .attestationRejected: self = .attestation
        case .signatureRejected, .manifestMismatch: self = .signature
        case let .channel(e) where e.isCertificateRefusal: self = .tls
        default: return nil
        }
    }
}
