import PalmCrypto
import PalmTLS
import PalmTPM

/// This host's TLS identity as its configuration names it: the certificate of `tls.certificate`
/// with the key of `tls.key` — a PEM file, or `"tpm"`: the key that never leaves the TPM of
/// `[attestation] tpm` (``TPMTLSKey``; its certificate is issued from `tls-key --csr`).
public enum HostTLS {
    /// Why the TPM's key cannot be this host's TLS key.
    public enum Failure: Error, Equatable, CustomStringConvertible {
        /// The certificate names another key than the TPM's.
        case certificateNotForTPMKey(certificate: String, tpm: String)

        public var description: String {
            switch self {
            case let .certificateNotForTPMKey(c, t):
                return "\(c) is not a certificate for the TLS key in the TPM at \(t): issue one from a request made by `tls-key --csr` on this host"
            }
        }
    }

    /// The TLS context for `tls`, its key from the TPM described by `tpm` when `tls.key = "tpm"`.
    public static func context(_ tls: TLSConfiguration, tpm: PlatformAttestationSettings) throws -> TLSContext {
        guard tls.keyIsInTPM else { return try TLSContext(configuration: tls) }
        let key = try tpmKey(tpm)
        let certificate = try VerifyingKey(certificateFile: tls.certificateChain)
        guard try certificate.subjectPublicKeyInfo() == key.subjectPublicKeyInfo else {
            throw Failure.certificateNotForTPMKey(certificate: tls.certificateChain, tpm: key.device.tcti)
        }
        return try TLSContext(configuration: tls, key: try key.signingKey())
    }

    /// The TLS key of the TPM `settings` names (whatever `tls.key` says): for `tls-key`, and for
    /// the certification a TPM attestation carries.
    public static func tpmKey(_ settings: PlatformAttestationSettings) throws -> TPMTLSKey {
        try TPMTLSKey(device: TPMDevice(tcti: settings.tpm, timeout: settings.tpmTimeout))
    }
}
