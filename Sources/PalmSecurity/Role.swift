import PalmCrypto
import PalmTLS

/// The role a certificate grants, read from its SAN URI `palm:role:<role>` (certs/palm-ca writes it;
/// the subject's OU is never consulted). Who may do what with a role is the coordinator's access
/// policy; palm-dest admits only `agent`, agents obey only a `coordinator`.
public enum Role: String, Sendable, CaseIterable, Codable {
    /// palm-source / palm-dest on a host.
    case agent
    /// The palm-coordinator daemon.
    case coordinator
    case admin
    case `operator`
    case auditor
}

extension CertificateIdentity {
    /// The role the certificate grants: its one `palm:role:` URI, when that names a known role.
    public var role: Role? { roleClaim.flatMap(Role.init(rawValue:)) }
}
