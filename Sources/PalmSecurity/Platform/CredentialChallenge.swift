internal import CTSS2MU
import PalmCrypto
import PalmWire

/// TPM2_MakeCredential done by a verifier in software (TPM 2.0 Part 1, §24 "Credential
/// Protection"): a secret that only the TPM holding both the endorsement key and a key of the
/// given name can recover (TPM2_ActivateCredential). The coordinator sends one at enrollment;
/// the host's answer proves its attestation key lives in the TPM its EK certificate names.
///
/// For an RSA endorsement key (name algorithm SHA-256, AES-128-CFB):
/// ```text
///   seed        random 32 bytes, RSA-OAEP(SHA-256, label "IDENTITY\0") to the EK
///   symKey      KDFa(SHA-256, seed, "STORAGE", name, ∅, 128)
///   encIdentity AES-128-CFB(symKey, IV 0, TPM2B(secret))
///   hmacKey     KDFa(SHA-256, seed, "INTEGRITY", ∅, ∅, 256)
///   outerHMAC   HMAC-SHA-256(hmacKey, encIdentity ‖ name)
///   credentialBlob = TPM2B_ID_OBJECT(TPM2B(outerHMAC) ‖ encIdentity); secret = TPM2B(encrypted seed)
/// ```
public struct CredentialChallenge: Sendable, Equatable {
    /// What the TPM must give back.
    public let secret: [UInt8]
    /// TPM2B_ID_OBJECT and TPM2B_ENCRYPTED_SECRET, marshalled, for TPM2_ActivateCredential.
    public let credentialBlob: [UInt8]
    public let encryptedSecret: [UInt8]

    public enum Refusal: Error, Equatable, Sendable, CustomStringConvertible {
        case unsupportedEndorsementKey(String)
        case failed(String)
        public var description: String {
            switch self {
            case let .unsupportedEndorsementKey(d): return "cannot make a credential for this endorsement key: \(d)"
            case let .failed(d): return "cannot make a credential: \(d)"
            }
        }
    }

    /// A challenge for the key named `name` (nameAlg ‖ digest), sealed to `endorsementKey`.
    public init(secret: [UInt8], name: [UInt8], endorsementKey ek: TPMPublicArea, seed: [UInt8] = Digest32.random().bytes) throws {
        guard case let .rsa(modulus, exponent) = ek.key else {
            throw Refusal.unsupportedEndorsementKey("palm makes credentials for RSA endorsement keys")
        }
        guard ek.has(TPMConstant.objectRestricted | TPMConstant.objectDecrypt), secret.count <= 32, seed.count == 32 else {
            throw Refusal.unsupportedEndorsementKey("not a restricted decryption key")
        }
        do {
            let encryptedSeed = try RSAEncryptionKey(modulus: modulus, exponent: exponent)
                .encryptOAEP(seed, label: Array("IDENTITY\0".utf8))
            let symKey = Self.kdfa(key: seed, label: "STORAGE", contextU: name, contextV: [], bits: 128)
            let identity = [UInt8(secret.count >> 8), UInt8(secret.count & 0xFF)] + secret
            let encIdentity = try AES128CFB.encrypt(identity, key: symKey)
            let hmacKey = Self.kdfa(key: seed, label: "INTEGRITY", contextU: [], contextV: [], bits: 256)
            let outerHMAC = HMACSHA256.authenticate(key: hmacKey, message: encIdentity + name).bytes
            var blob = TPM2B_ID_OBJECT()
            let content = [UInt8(0), UInt8(outerHMAC.count)] + outerHMAC + encIdentity
            blob.size = UInt16(content.count)
            withUnsafeMutableBytes(of: &blob.credential) { $0.copyBytes(from: content.prefix($0.count)) }
            var sealed = TPM2B_ENCRYPTED_SECRET()
            sealed.size = UInt16(encryptedSeed.count)
            withUnsafeMutableBytes(of: &sealed.secret) { $0.copyBytes(from: encryptedSeed.prefix($0.count)) }
            credentialBlob = try Self.marshal(blob) { Tss2_MU_TPM2B_ID_OBJECT_Marshal($0, $1, $2, $3) }
            encryptedSecret = try Self.marshal(sealed) { Tss2_MU_TPM2B_ENCRYPTED_SECRET_Marshal($0, $1, $2, $3) }
            self.secret = secret
        } catch let e as Refusal {
            throw e
        } catch {
            throw Refusal.failed("\(error)")
        }
    }

    static func marshal<T>(_ value: T, _ body: (UnsafePointer<T>, UnsafeMutablePointer<UInt8>?, Int, UnsafeMutablePointer<Int>) -> UInt32) throws -> [UInt8] {
        var v = value
        var out = [UInt8](repeating: 0, count: 1024)
        var offset = 0
        let rc = out.withUnsafeMutableBufferPointer { body(&v, $0.baseAddress, $0.count, &offset) }
        guard rc == 0 else { throw Refusal.failed(String(format: "marshalling failed (0x%08x)", rc)) }
        return Array(out.prefix(offset))
    }

    /// KDFa (TPM 2.0 Part 1, §11.4.10.2) with HMAC-SHA-256 in counter mode; the label is
    /// NUL-terminated as the specification requires.
    public static func kdfa(key: [UInt8], label: String, contextU: [UInt8], contextV: [UInt8], bits: Int) -> [UInt8] {
        func be32(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)] }
        var out: [UInt8] = []
        var counter: UInt32 = 1
        while out.count * 8 < bits {
            let message = be32(counter) + Array(label.utf8) + [0] + contextU + contextV + be32(UInt32(bits))
            out += HMACSHA256.authenticate(key: key, message: message).bytes
            counter += 1
        }
        return Array(out.prefix(bits / 8))
    }
}
