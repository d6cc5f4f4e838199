import PalmCrypto
import PalmSecurity
import PalmWire

/// palm's TLS key in a TPM (``TPMDevice/tlsKey()``) as OpenSSL's signer: every handshake and
/// report this host signs is signed inside the TPM; the private key never reaches palm.
public struct TPMTLSKey: ExternalP256Signer {
    public let device: TPMDevice
    /// TPMT_PUBLIC of the key.
    public let publicArea: [UInt8]
    public let subjectPublicKeyInfo: [UInt8]
    public var location: String { "the TPM at \(device.tcti)" }

    /// Derives the key in `device` (it is there for as long as the TPM keeps its endorsement seed).
    public init(device: TPMDevice) throws {
        self.device = device
        publicArea = try device.tlsKey()
        let area: TPMPublicArea
        do { area = try TPMPublicArea(decoding: publicArea) } catch { throw TPMError.unexpected("the TLS key's public area: \(error)") }
        guard case let .ecc(_, x, y) = area.key else { throw TPMError.unexpected("the TLS key is not an ECC key") }
        subjectPublicKeyInfo = try VerifyingKey(p256X: x, y: y).subjectPublicKeyInfo()
    }

    public func sign(digest: [UInt8]) throws -> [UInt8] {
        try device.signWithTLSKey(digest: digest)
    }

    /// The key as a ``SigningKey`` for TLS contexts and palm's signatures.
    public func signingKey() throws -> SigningKey { try SigningKey(external: self) }

    /// The attestation key's certification of this key for a certificate carrying it
    /// (``QuoteBinding/tlsKey(subjectPublicKeyInfo:)``).
    public func certification() throws -> PlatformEvidence.KeyCertification {
        try device.certifyTLSKey(qualifyingData: QuoteBinding.tlsKey(subjectPublicKeyInfo: subjectPublicKeyInfo))
    }
}
