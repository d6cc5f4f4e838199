import Foundation
import PalmCrypto
import PalmSecurity
import PalmTestSupport
import PalmTLS
import PalmTPM
import PalmWire
import Testing

/// The host's TLS key in its TPM: it signs inside the TPM, carries TLS 1.3 handshakes through
/// OpenSSL, is certified by the attestation key — and a certificate for it is worthless with any
/// other TPM.
@Suite("TLS key in the TPM", .serialized)
struct TLSKeyTests {
    let pki = TestPKI.shared

    static func host() throws -> MeasuredHost {
        try MeasuredHost(agent: ("/usr/bin/palm-dest", SHA256.hash(Array("palm-dest".utf8))))
    }

    static func uniqueName(_ prefix: String) -> String { "\(prefix)-\(UInt32.random(in: 0...UInt32.max))" }

    func configuration(certificate: String) -> TLSConfiguration {
        TLSConfiguration(certificateChain: certificate, privateKey: TLSConfiguration.tpmKey, trustRoots: pki.caCert,
                         connectTimeout: 5, handshakeTimeout: 10, ioTimeout: 30)
    }

    @Test("the key signs inside the TPM (signatures verify with its public key), is another key than the AK, and is the same after a TPM restart")
    func signsAndIsStable() throws {
        let h = try Self.host()
        let key = try TPMTLSKey(device: h.device)
        let signing = try key.signingKey()
        #expect(signing.isExternal)
        #expect(try signing.subjectPublicKeyInfo() == key.subjectPublicKeyInfo)
        let message = Array("a report palm signs".utf8)
        let signature = try signing.sign(message)
        let verifying = try VerifyingKey(subjectPublicKeyInfo: key.subjectPublicKeyInfo)
        #expect(verifying.isValidSignature(signature, for: message))
        #expect(!verifying.isValidSignature(signature, for: Array("another message".utf8)))
        #expect(try key.publicArea != h.device.attestationKey())
        h.tpm.halt()
        try h.tpm.start()
        #expect(try TPMTLSKey(device: h.device).subjectPublicKeyInfo == key.subjectPublicKeyInfo)
    }

    @Test("a TLS 1.3 session between two hosts whose keys are in their TPMs: both handshakes are signed in the TPMs, each side sees the other's certificate")
    func handshakeBetweenTPMKeys() throws {
        let a = try Self.host(), b = try Self.host()
        let nameA = Self.uniqueName("tpm-a"), nameB = Self.uniqueName("tpm-b")
        let serverContext = try TLSContext(configuration: configuration(certificate: try a.tlsCertificate(pki, name: nameA)),
                                           key: try TPMTLSKey(device: a.device).signingKey())
        let clientContext = try TLSContext(configuration: configuration(certificate: try b.tlsCertificate(pki, name: nameB)),
                                           key: try TPMTLSKey(device: b.device).signingKey())
        let listener = try TLSListener(host: "127.0.0.1", port: 0, context: serverContext)
        let server = Background { () throws -> String? in
            guard let channel = try listener.accept(timeout: 20) else { throw TLSError.timeout(operation: "accept", seconds: 20) }
            defer { channel.close() }
            try channel.write(Array("ok".utf8))
            return channel.peer.commonName
        }
        let client = try TLSChannel.connect(host: "127.0.0.1", port: listener.port, context: clientContext)
        defer { client.close() }
        var reply = [UInt8](repeating: 0, count: 2)
        try reply.withUnsafeMutableBytes { try client.readExactly(into: $0) }
        #expect(reply == Array("ok".utf8))
        #expect(client.peer.commonName == nameA)
        #expect(try server.value() == nameB)
    }

    @Test("a certificate for one TPM's key with another TPM (a copied configuration and certificate): refused at start, never a handshake")
    func certificateOfAnotherTPM() throws {
        let a = try Self.host(), b = try Self.host()
        let certificateA = try a.tlsCertificate(pki, name: Self.uniqueName("tpm-a"))
        #expect(throws: TLSError.keyMismatch(certificate: certificateA, key: "the TPM at \(b.device.tcti)")) {
            _ = try TLSContext(configuration: configuration(certificate: certificateA), key: try TPMTLSKey(device: b.device).signingKey())
        }
        // And a configuration saying tls.key = "tpm" with no TPM behind it is refused by name.
        #expect(throws: TLSError.keyNeedsTPM) { _ = try TLSContext(configuration: configuration(certificate: certificateA)) }
    }

    @Test("the TPM stops answering during a handshake: the server's error names its TPM key, not a bare handshake failure")
    func tpmStopsAnsweringInHandshake() throws {
        let a = try Self.host()
        let device = TPMDevice(tcti: a.tpm.tcti, timeout: 2)
        let context = try TLSContext(configuration: configuration(certificate: try a.tlsCertificate(pki, name: Self.uniqueName("tpm-a"))),
                                     key: try TPMTLSKey(device: device).signingKey())
        let listener = try TLSListener(host: "127.0.0.1", port: 0, context: context)
        a.tpm.freeze()
        defer { a.tpm.thaw() }
        let server = Background { () throws -> TLSChannel? in try listener.accept(timeout: 20) }
        #expect(throws: (any Error).self) { _ = try TLSChannel.connect(host: "127.0.0.1", port: listener.port, context: pki.context("client")) }
        do {
            _ = try server.value()
            Issue.record("the server completed a handshake its TPM never signed")
        } catch let TLSError.localKeyFailed(location, detail) {
            #expect(location == "the TPM at \(a.tpm.tcti)")
            #expect(detail.contains("did not answer"), "\(detail)")
        }
    }

    /// A certification check's refusal, or nil when it passed.
    func certificationRefusal(_ c: PlatformEvidence.KeyCertification, ak: [UInt8], peer: [UInt8]) -> PlatformAttestationVerifier.Refusal? {
        refusal { try PlatformEvidenceCheck.checkTLSKey(c, attestationKey: ak, peerKey: peer) }
    }

    @Test("the attestation key certifies the TLS key for its certificate; another certificate's key, another TPM's AK, a certification for another certificate or an altered key are refused")
    func certification() throws {
        let a = try Self.host(), b = try Self.host()
        let keyA = try TPMTLSKey(device: a.device)
        let akA = try a.device.attestationKey(), akB = try b.device.attestationKey()
        let good = try keyA.certification()
        #expect(certificationRefusal(good, ak: akA, peer: keyA.subjectPublicKeyInfo) == nil)
        // The session's certificate is for a key file (a copy on another machine): not the certified key.
        let fileKey = try VerifyingKey(certificateFile: pki.cert("server")).subjectPublicKeyInfo()
        #expect(certificationRefusal(good, ak: akA, peer: fileKey) == .tlsKeyCertification("is for another key than the TLS certificate's"))
        // Certified by host A's TPM, quoted by host B's: another attestation key.
        #expect(certificationRefusal(good, ak: akB, peer: keyA.subjectPublicKeyInfo) == .tlsKeyCertification("is not signed by the quote's attestation key"))
        // Host B's TPM certifying B's key: fine for B, useless for A's certificate.
        let keyB = try TPMTLSKey(device: b.device)
        #expect(certificationRefusal(try keyB.certification(), ak: akB, peer: keyA.subjectPublicKeyInfo)
                == .tlsKeyCertification("is for another key than the TLS certificate's"))
        // A certification made over other qualifying data (for another certificate).
        var stale = try a.device.certifyTLSKey(qualifyingData: QuoteBinding.tlsKey(subjectPublicKeyInfo: fileKey))
        #expect(certificationRefusal(stale, ak: akA, peer: keyA.subjectPublicKeyInfo) == .tlsKeyCertification("was not made for this certificate's key"))
        // The public area swapped for another key's: its name is not the certified one.
        stale = good
        stale.publicArea = keyB.publicArea
        #expect(certificationRefusal(stale, ak: akA, peer: keyB.subjectPublicKeyInfo) == .tlsKeyCertification("is for another key than the one sent"))
        // A signature altered after the fact.
        stale = good
        stale.certifyInfo[stale.certifyInfo.count - 1] ^= 1
        #expect(certificationRefusal(stale, ak: akA, peer: keyA.subjectPublicKeyInfo) == .tlsKeyCertification("is not signed by the quote's attestation key"))
    }
}
