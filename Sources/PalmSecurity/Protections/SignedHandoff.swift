import PalmCrypto
import PalmProtection
import PalmSupport
import PalmWire

/// The hand-off's signatures, each by a host's certificate key under its own domain-separation
/// label (``HandoffSignature``): the source signs the manifest and COMMIT, the destination READY.
/// Each side checks the other's against the key of the certificate its TLS peer presented.
public struct SignedHandoff: HandoffSigner, HandoffCountersigner {
    let key: SigningKey
    /// The ticket nonce a manifest must name (the destination's check; nil: not yet admitted).
    let expectedTicketNonce: @Sendable () -> Digest32?

    /// The source's side: `key` signs the manifest and COMMIT.
    public init(source key: SigningKey) {
        self.key = key
        expectedTicketNonce = { nil }
    }

    /// The destination's side: `key` signs READY; a manifest must name the nonce of the ticket
    /// `admission` admitted.
    public init(destination key: SigningKey, admission: TicketAdmission) {
        self.key = key
        expectedTicketNonce = { admission.admitted?.nonce }
    }

    static func peerKey(_ peer: CertificateIdentity) throws -> VerifyingKey {
        do { return try VerifyingKey(certificatePEM: peer.pem) } catch {
            throw ProtectionRefusal.signature("the peer's certificate has no usable key: \(error)")
        }
    }

    public func signManifest(_ manifest: Manifest) throws -> [UInt8] { try key.sign(manifest.signedBytes) }

    public func verifyReady(_ signature: [UInt8], for manifest: Manifest, peer: CertificateIdentity) throws {
        guard try Self.peerKey(peer).isValidSignature(signature, for: HandoffSignature.ready(manifest)) else {
            throw ProtectionRefusal.signature("READY is not signed by the destination's key")
        }
    }

    public func signCommit(_ manifest: Manifest) throws -> [UInt8] { try key.sign(HandoffSignature.commit(manifest)) }

    public func verifyManifest(_ manifest: Manifest, peer: CertificateIdentity) throws {
        guard try Self.peerKey(peer).isValidSignature(manifest.signature, for: manifest.signedBytes) else {
            throw ProtectionRefusal.signature("the manifest is not signed by the source's key")
        }
        guard let nonce = expectedTicketNonce(), manifest.ticketNonce == nonce else {
            throw ProtectionRefusal.manifest("the manifest names another ticket")
        }
    }

    public func signReady(_ manifest: Manifest) throws -> [UInt8] { try key.sign(HandoffSignature.ready(manifest)) }

    public func verifyCommit(_ signature: [UInt8], for manifest: Manifest, peer: CertificateIdentity) throws {
        guard try Self.peerKey(peer).isValidSignature(signature, for: HandoffSignature.commit(manifest)) else {
            throw ProtectionRefusal.signature("COMMIT is not signed by the source's key")
        }
    }

    /// The median of three signatures over a probe (one cold first signature can take several
    /// times as long); the probe's label makes it useless as any hand-off signature.
    public func signatureCost() throws -> Double {
        let probe = Array("palm-signature-cost-probe".utf8)
        return try MonotonicClock.medianDuration(of: 3) { try key.sign(probe) }.seconds
    }
}
