/// The role a certificate grants, read from its SAN URI `palm:role:<role>` (certs/palm-ca writes it;
/// the subject's OU is never consulted).
public enum Role: String, Sendable, CaseIterable, Codable {
    /// palm-source / palm-dest on a host.
    case agent
    /// The palm-coordinator daemon.
    case coordinator
    case admin
    case `operator`
    case auditor

    /// The SAN URI prefix that carries a role.
    public static let uriPrefix = "palm:role:"
}
