import PalmConfig
import PalmSecurity

extension PlatformTrust {
    /// `[attestation]`'s platform keys, as a source (standalone) and the coordinator (for the
    /// whole cluster) read them: `require` (`tpm`, the default, or `software`), `tls_key` (`tpm`,
    /// the default: a TPM-attested destination's TLS key must be certified by its attestation key;
    /// `file`: a key file is accepted), `platform_policy` (a JSON policy file), `enrolled_keys`
    /// (`["HOST=AK_NAME", …]`).
    public static func load(_ f: ConfigFile) throws -> PlatformTrust {
        var trust = PlatformTrust()
        trust.requirement = AttestationRequirement(rawValue: try f.oneOf("attestation.require", AttestationRequirement.allCases.map(\.rawValue),
                                                                         default: "tpm")) ?? .tpm
        trust.tlsKey = TLSKeyRequirement(rawValue: try f.oneOf("attestation.tls_key", TLSKeyRequirement.allCases.map(\.rawValue),
                                                              default: "tpm")) ?? .tpm
        do {
            if let file = try f.optionalString("attestation.platform_policy") { trust.policy = try loadPolicy(file) }
        } catch let e as LoadError {
            throw ConfigError.invalidValue(file: f.path, key: "attestation.platform_policy", reason: "\(e)")
        }
        do { trust.enrolledKeys = try enrolledKeys(try f.stringArray("attestation.enrolled_keys")) } catch let e as LoadError {
            throw ConfigError.invalidValue(file: f.path, key: "attestation.enrolled_keys", reason: "\(e)")
        }
        return trust
    }
}
