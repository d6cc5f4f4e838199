/// Why a protection refused a step of a migration, named by the protection that refused. The
/// engine turns each into the matching `MigrationError` case (and ABORT reason), so a refusal
/// reads the same in logs, reports and on the wire whichever protection raised it.
public enum ProtectionRefusal: Error, Equatable, Sendable, CustomStringConvertible {
    /// The ticket (or what it authorizes: this VM, this size, this pair of hosts) was refused.
    case ticket(String)
    /// The destination's attestation did not satisfy the source's policy.
    case attestation(String)
    /// A hand-off signature (manifest, READY, COMMIT) did not verify.
    case signature(String)
    /// The manifest does not belong to this migration (another ticket).
    case manifest(String)
    /// This host cannot do its part (a key that cannot sign, a journal that cannot be written).
    case local(String)

    public var description: String {
        switch self {
        case let .ticket(m), let .attestation(m), let .signature(m), let .manifest(m), let .local(m): return m
        }
    }
}
