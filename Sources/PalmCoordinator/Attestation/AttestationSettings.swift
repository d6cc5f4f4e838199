import PalmConfig
import PalmSecurity

/// The coordinator's `[attestation]` keys for hosts' TPMs: who may vouch for an endorsement key,
/// how a host is enrolled, how often it is attested.
public struct AttestationSettings: Sendable, Equatable {
    public enum Enrollment: String, Sendable, CaseIterable {
        /// A host whose TPM proved itself is enrolled once an operator says so (`hosts enroll`).
        case operatorApproval = "operator"
        /// A host whose TPM proved itself (EK certificate, credential activation) is enrolled at
        /// first contact. A changed key always waits for an operator.
        case automatic = "auto"
    }

    /// TPM manufacturers' CA certificates (PEM files) an EK certificate must chain to.
    public var endorsementCAs: [String] = []
    public var enrollment: Enrollment = .operatorApproval
    /// Seconds between quotes asked of each enrolled host.
    public var quoteInterval: Double = 60
    /// A host whose last good quote is older than this is untrusted.
    public var maxQuoteAge: Double = 180
    /// Bytes of IMA entries a host sends with one quote.
    public var imaChunk = 256 << 10
    /// IMA entries received and not yet confirmed by a quote, at most.
    public var maxPendingIMA = 32 << 20

    public init() {}

    public static func load(_ f: ConfigFile) throws -> AttestationSettings {
        var s = AttestationSettings()
        s.endorsementCAs = try f.stringArray("attestation.ek_ca")
        s.enrollment = Enrollment(rawValue: try f.oneOf("attestation.enrollment", Enrollment.allCases.map(\.rawValue), default: "operator"))
            ?? .operatorApproval
        s.quoteInterval = try f.double("attestation.quote_interval_s", default: 60, range: 0.05...86_400)
        s.maxQuoteAge = try f.double("attestation.max_quote_age_s", default: 3 * s.quoteInterval, range: 0.1...604_800)
        guard s.maxQuoteAge > s.quoteInterval else {
            throw ConfigError.invalidValue(file: f.path, key: "attestation.max_quote_age_s", reason: "must exceed attestation.quote_interval_s")
        }
        s.imaChunk = try f.bytes("attestation.ima_chunk", default: 256 << 10, range: (4 << 10)...(512 << 10))
        return s
    }
}
