import Logging
import PalmMetrics
import PalmSupport
import PalmTLS

/// What palm's two TLS servers — palm-dest and `palm-coordinator serve` — do with a connection
/// the ``AdmissionGate`` let in, before it has authenticated: the TLS handshake under what is left
/// of its pre-authentication deadline. Every refusal is logged as `connection.refused` with the
/// peer's address and counted — `tls` for a certificate refused (by either side), `admission` for
/// anything else — and so are the connections the gate itself dropped. One place, so both servers
/// refuse strangers alike.
public struct TLSAdmission: Sendable {
    public let logger: Logger
    /// Counts refusals into the server's metrics (agent or coordinator).
    public let count: @Sendable (_ reason: AgentMetrics.Refusal, _ count: Int) -> Void

    public init(logger: Logger, count: @escaping @Sendable (_ reason: AgentMetrics.Refusal, _ count: Int) -> Void) {
        self.logger = logger
        self.count = count
    }

    /// The authenticated channel of `admission`, or nil once its refusal is logged and counted.
    /// The log record names the calling server's source location (journald's CODE_FILE), not this one.
    public func handshake(_ admission: AdmissionGate.Admission, context: TLSContext,
                          file: String = #fileID, function: String = #function, line: UInt = #line) -> TLSChannel? {
        do {
            return try TLSChannel.accept(socket: admission.socket, context: context, timeout: admission.remaining)
        } catch {
            logger.warning("refused a connection from \(admission.address): \(error)",
                           metadata: ["event": "\(PalmEvent.connectionRefused.rawValue)"], file: file, function: function, line: line)
            count((error as? TLSError)?.isCertificateRefusal == true ? .tls : .admission, 1)
            return nil
        }
    }

    /// Logs and counts, from now on, the connections `gate` drops before authentication (its
    /// periodic summary: over the handshake limit, per address, past the deadline…).
    public func reportDrops(of gate: AdmissionGate, file: String = #fileID, function: String = #function, line: UInt = #line) {
        gate.onDrops = { [logger, count] summary, n in
            logger.warning("refused connections before authentication: \(summary)",
                           metadata: ["event": "\(PalmEvent.connectionRefused.rawValue)"], file: file, function: function, line: line)
            count(.admission, n)
        }
    }
}
