import Foundation
import PalmCrypto
import PalmProtection
import PalmSupport
import PalmWire

/// The destination's admission of one connection by its ticket: signed by a listed coordinator,
/// inside its window, for this host, presented by the source it names (the TLS peer), of a
/// leader epoch no lower than any accepted here, never seen before (the replay cache); then a
/// CONFIG for exactly the VM and size the ticket covers.
///
/// Guarantees: ``admitted`` is set only once every check passed and the ticket's nonce is in the
/// replay cache; a CONFIG before an admitted HELLO is refused.
public final class TicketAdmission: MigrationAdmission {
    let validator: TicketValidator
    let replayCache: ReplayCache
    let epochFloor: LeaderEpochFloor
    let destination: Digest32
    /// Told once a ticket is admitted (the agent counts receptions); it cannot refuse.
    let onAdmitted: @Sendable (MigrationTicket) -> Void
    private let ticket = LockedValueBox<MigrationTicket?>(nil)

    public init(validator: TicketValidator, replayCache: ReplayCache, epochFloor: LeaderEpochFloor, destination: Digest32,
                onAdmitted: @escaping @Sendable (MigrationTicket) -> Void = { _ in }) {
        self.validator = validator
        self.replayCache = replayCache
        self.epochFloor = epochFloor
        self.destination = destination
        self.onAdmitted = onAdmitted
    }

    /// The ticket of the admitted HELLO (nil before).
    public var admitted: MigrationTicket? { ticket.current }

    public func admit(_ hello: Hello, peer: CertificateIdentity) throws {
        do {
            let now = UInt64(Date().timeIntervalSince1970)
            let t = try validator.validate(hello.ticket, destination: destination, peer: peer.fingerprint, now: now)
            guard epochFloor.admit(Int64(clamping: t.epoch)) else {
                throw TicketError.staleEpoch(ticket: t.epoch, highest: UInt64(clamping: epochFloor.current))
            }
            try replayCache.insert(nonce: t.nonce.hex, expiry: t.notAfter + 3600)
            ticket.withLockedValue { $0 = t }
            onAdmitted(t)
        } catch let e as TicketError {
            throw ProtectionRefusal.ticket(e.description)
        }
    }

    public func admit(_ config: VMConfig) throws {
        guard let t = admitted else { throw ProtectionRefusal.ticket("no ticket") }
        let bytes = config.pageCount * UInt64(config.pageSize)
        guard config.name == t.vm, bytes == t.memoryBytes else {
            throw ProtectionRefusal.ticket(TicketError.vmMismatch(
                "CONFIG is \(config.name) with \(bytes) bytes, the ticket covers \(t.vm) with \(t.memoryBytes)").description)
        }
    }
}
