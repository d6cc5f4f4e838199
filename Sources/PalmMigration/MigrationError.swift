import PalmCompression
import PalmHypervisor
import PalmProtection
import PalmWire

/// Why a migration failed, named for the operator. Every case before ``commitInDoubt`` leaves
/// the VM running on the source.
public enum MigrationError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The peer aborted with a reason.
    case abortedByPeer(AbortReason, String)
    /// The destination refused (or the source would not present) the ticket.
    case ticketRejected(String)
    /// The destination's attestation did not check out.
    case attestationRejected(String)
    /// A hand-off signature (manifest, READY, COMMIT) did not verify.
    case signatureRejected(String)
    /// The destination's rebuilt image does not match the manifest.
    case manifestMismatch(String)
    case protocolViolation(WireError)
    /// The channel failed (TLS: a refused certificate, a lost connection, a timeout…).
    case channel(ChannelFailure)
    case hypervisor(HypervisorError)
    /// COMMIT was sent but DONE never arrived: the VM stays paused on the source until the
    /// destination's state is known (it may already run there).
    case commitInDoubt(String)
    case cancelled
    /// An extra page stream did not prove it belongs to the session it named (JOIN refused).
    case streamRefused(String)
    /// A compressed MEMORY batch did not decode to the pages its table announces.
    case corruptBatch(PageCodecError)
    /// A stream waited longer than its timeout for the others (round barrier).
    case stalled(String)
    /// The destination is receiving as many migrations as it may.
    case busy(String)
    /// CONFIG asks for something this destination does not do (too many streams, …).
    case unsupportedConfig(String)
    /// A failure of this host (a journal that cannot be written, …), not of the peer or protocol.
    case local(String)

    public var description: String {
        switch self {
        case let .abortedByPeer(r, m): return "the peer aborted the migration (\(r)): \(m)"
        case let .ticketRejected(m): return "ticket rejected: \(m)"
        case let .attestationRejected(m): return "destination attestation rejected: \(m)"
        case let .signatureRejected(m): return "signature rejected: \(m)"
        case let .manifestMismatch(m): return "manifest mismatch: \(m)"
        case let .protocolViolation(e): return "protocol violation: \(e)"
        case let .channel(e): return "channel: \(e)"
        case let .hypervisor(e): return "hypervisor: \(e)"
        case let .commitInDoubt(m): return "commit in doubt: \(m)"
        case .cancelled: return "cancelled"
        case let .streamRefused(m): return "page stream refused: \(m)"
        case let .corruptBatch(e): return "\(e)"
        case let .stalled(m): return "page streams stalled: \(m)"
        case let .unsupportedConfig(m): return "unsupported configuration: \(m)"
        case let .busy(m): return m
        case let .local(m): return "local failure: \(m)"
        }
    }

    /// Wraps any error into a MigrationError.
    public static func wrap(_ error: Error) -> MigrationError {
        switch error {
        case let e as MigrationError: return e
        case let e as ProtectionRefusal: return refusal(e, as: .local)
        case let e as ChannelError: return .channel(e.channelFailure)
        case let e as WireError: return .protocolViolation(e)
        case let e as HypervisorError: return .hypervisor(e)
        case let e as PageCodecError: return .corruptBatch(e)
        default: return .local("\(error)")
        }
    }

    /// The step of a migration a protection guards: what its refusal is named as.
    public enum ProtectedStep: Sendable {
        case ticket, attestation, signature, commitInDoubt, local
    }

    /// Runs a protection's step; a refusal becomes the matching case (a ``ProtectionRefusal``
    /// by its own kind, any other error as the step's).
    @discardableResult
    public static func refusing<R>(as step: ProtectedStep, _ body: () throws -> R) throws -> R {
        do { return try body() } catch { throw refusal(error, as: step) }
    }

    static func refusal(_ error: Error, as step: ProtectedStep) -> MigrationError {
        switch error {
        case let e as MigrationError: return e
        case let e as ProtectionRefusal:
            switch e {
            case let .ticket(m): return .ticketRejected(m)
            case let .attestation(m): return .attestationRejected(m)
            case let .signature(m): return .signatureRejected(m)
            case let .manifest(m): return .manifestMismatch(m)
            case let .local(m): return step == .commitInDoubt ? .commitInDoubt(m) : .local(m)
            }
        default:
            let m = "\(error)"
            switch step {
            case .ticket: return .ticketRejected(m)
            case .attestation: return .attestationRejected(m)
            case .signature: return .signatureRejected(m)
            case .commitInDoubt: return .commitInDoubt(m)
            case .local: return wrap(error)
            }
        }
    }

    /// The case's name in snake case (`ticket_rejected`, `channel`, …): a label value with a small,
    /// fixed set of values, for metrics.
    public var caseName: String {
        switch self {
        case let .abortedByPeer(r, _): return "peer_\(r)".lowercased()
        case .ticketRejected: return "ticket_rejected"
        case .attestationRejected: return "attestation_rejected"
        case .signatureRejected: return "signature_rejected"
        case .manifestMismatch: return "manifest_mismatch"
        case .protocolViolation: return "protocol_violation"
        case .channel: return "channel"
        case .hypervisor: return "hypervisor"
        case .commitInDoubt: return "commit_in_doubt"
        case .cancelled: return "cancelled"
        case .streamRefused: return "stream_refused"
        case .corruptBatch: return "corrupt_batch"
        case .stalled: return "stalled"
        case .busy: return "busy"
        case .unsupportedConfig: return "unsupported_config"
        case .local: return "local"
        }
    }

    /// The reason to put in an ABORT sent to the peer.
    var abortReason: AbortReason {
        switch self {
        case .ticketRejected: return .ticketRejected
        case .attestationRejected: return .attestationRejected
        case .signatureRejected: return .manifestMismatch
        case .manifestMismatch: return .manifestMismatch
        case .protocolViolation, .corruptBatch, .streamRefused: return .protocolViolation
        case .unsupportedConfig: return .unsupportedConfig
        case .busy: return .busy
        case .hypervisor(.insufficientMemory): return .insufficientMemory
        case .hypervisor: return .hypervisorFailure
        case .cancelled: return .cancelled
        default: return .internalError
        }
    }
}
