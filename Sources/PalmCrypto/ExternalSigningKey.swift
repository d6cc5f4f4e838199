import COpenSSLShims
import PalmSupport

/// A P-256 private key that lives outside this process — palm's TLS key in the host's TPM — and
/// signs SHA-256 digests on request. Its private half never enters palm's memory.
public protocol ExternalP256Signer: Sendable {
    /// The key's public half as a DER SubjectPublicKeyInfo (what its certificate must carry).
    var subjectPublicKeyInfo: [UInt8] { get }
    /// Where the key lives, for logs and errors ("the TPM at device:/dev/tpmrm0").
    var location: String { get }
    /// An ECDSA signature (DER) over a 32-byte SHA-256 digest.
    func sign(digest: [UInt8]) throws -> [UInt8]
}

/// What OpenSSL's callback reaches: the signer, and its last failure (OpenSSL only learns "0").
final class ExternalSignerBox {
    let signer: any ExternalP256Signer
    let lastFailure = LockedValueBox<(any Error)?>(nil)
    init(_ signer: any ExternalP256Signer) { self.signer = signer }
}

private let externalSign: palm_external_sign_fn = { context, digest, digestLength, der, derLength in
    guard let context, let digest, let der, let derLength else { return 0 }
    let box = Unmanaged<ExternalSignerBox>.fromOpaque(context).takeUnretainedValue()
    do {
        let signature = try box.signer.sign(digest: Array(UnsafeBufferPointer(start: digest, count: digestLength)))
        guard signature.count <= derLength.pointee else { throw CryptoError.failure(detail: "the external signature is \(signature.count) bytes") }
        signature.withUnsafeBufferPointer { der.update(from: $0.baseAddress!, count: $0.count) }
        derLength.pointee = signature.count
        box.lastFailure.withLockedValue { $0 = nil }
        return 1
    } catch {
        box.lastFailure.withLockedValue { $0 = error }
        return 0
    }
}

private let externalRelease: palm_external_release_fn = { context in
    guard let context else { return }
    Unmanaged<ExternalSignerBox>.fromOpaque(context).release()
}

extension SigningKey {
    /// A key whose every signature — palm's reports and hand-offs, and the TLS handshakes of any
    /// ``TLSContext`` it is given to — is made by `signer` (the TPM).
    public convenience init(external signer: any ExternalP256Signer) throws {
        let publicKey = try VerifyingKey(subjectPublicKeyInfo: signer.subjectPublicKeyInfo)
        let box = ExternalSignerBox(signer)
        guard let key = palm_external_ec_key(publicKey.key, externalSign, externalRelease, Unmanaged.passRetained(box).toOpaque()) else {
            throw CryptoError.failure(detail: "cannot make an OpenSSL key for \(signer.location): \(OpenSSLErrors.summary())")
        }
        self.init(adopting: key, location: signer.location, external: box)
    }

    /// Why the external signer last failed (the TPM's own error), if its last signature failed.
    public var lastExternalFailure: (any Error)? { external?.lastFailure.withLockedValue { $0 } }
}
