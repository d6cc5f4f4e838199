import Foundation
import PalmCrypto
import PalmSecurity
import PalmTestSupport
import PalmTPM
import PalmWire
import Testing

/// Enrollment's two proofs against real software TPMs: the EK certificate chains to the
/// manufacturer's CA and certifies this TPM's endorsement key, and only the TPM that holds both
/// that EK and the attestation key can activate a credential made for them.
@Suite("TPM enrollment", .serialized)
struct EnrollmentTests {
    @Test("the EK certificate chains to its manufacturer's CA and certifies the TPM's endorsement key; another CA refuses it")
    func endorsementCertificate() throws {
        let tpm = try SoftwareTPM()
        let identity = try TPMDevice(tcti: tpm.tcti).endorsementIdentity()
        let certificate = EndorsementCertificate(der: identity.certificate)
        try certificate.verify(anchors: tpm.manufacturer.caCertificates)
        guard case let .rsa(modulus, _) = try TPMPublicArea(decoding: identity.publicArea).key else {
            Issue.record("the EK is not RSA")
            return
        }
        #expect(try certificate.rsaModulus() == Array(modulus.drop { $0 == 0 }))
        let otherVendor = try SoftwareTPMManufacturer()
        _ = try SoftwareTPM(manufacturer: otherVendor)  // makes that CA
        #expect(throws: EndorsementCertificate.Refusal.self) {
            try certificate.verify(anchors: otherVendor.caCertificates)
        }
    }

    @Test("a credential made for the TPM's EK and AK is activated by that TPM, and by no other")
    func credentialActivation() throws {
        let manufacturer = try SoftwareTPMManufacturer()
        let tpm = try SoftwareTPM(manufacturer: manufacturer), other = try SoftwareTPM(manufacturer: manufacturer)
        let device = TPMDevice(tcti: tpm.tcti), otherDevice = TPMDevice(tcti: other.tcti)
        let ek = try TPMPublicArea(decoding: try device.endorsementIdentity().publicArea)
        let ak = try TPMPublicArea(decoding: try device.attestationKey())
        let secret = Digest32.random().bytes
        let challenge = try CredentialChallenge(secret: secret, name: ak.name, endorsementKey: ek)
        #expect(try device.activateCredential(credentialBlob: challenge.credentialBlob, encryptedSecret: challenge.encryptedSecret) == secret)
        // Another TPM (another EK) cannot open it, even presenting the same AK name.
        #expect(throws: TPMError.self) {
            _ = try otherDevice.activateCredential(credentialBlob: challenge.credentialBlob, encryptedSecret: challenge.encryptedSecret)
        }
        // The right TPM refuses a credential made for another key's name (the other TPM's AK).
        let otherAK = try TPMPublicArea(decoding: try otherDevice.attestationKey())
        let forOther = try CredentialChallenge(secret: secret, name: otherAK.name, endorsementKey: ek)
        #expect(throws: TPMError.self) {
            _ = try device.activateCredential(credentialBlob: forOther.credentialBlob, encryptedSecret: forOther.encryptedSecret)
        }
    }

    @Test("a TPM that is not there, or stops answering, is a named error, not a hang")
    func unavailable() throws {
        let tpm = try SoftwareTPM()
        let device = TPMDevice(tcti: tpm.tcti, timeout: 2)
        try device.probe()
        tpm.halt()
        #expect(throws: TPMError.self) { try device.probe() }
        #expect(throws: TPMError.self) { try TPMDevice(tcti: "swtpm:path=/nonexistent/tpm.sock").probe() }
        #expect(throws: TPMError.self) { try TPMDevice(tcti: "no-such-tcti").probe() }
    }
}

@Suite("A TPM that hangs")
struct HungTPMTests {
    @Test("a TPM that accepts the connection but never answers fails its operation within the timeout, by name")
    func hung() throws {
        let tpm = try SoftwareTPM()
        let device = TPMDevice(tcti: tpm.tcti, timeout: 2)
        try device.probe()
        tpm.freeze()
        defer { tpm.thaw() }
        let started = Date()
        #expect(throws: TPMError.self) { try device.probe() }
        #expect(Date().timeIntervalSince(started) < 10, "bounded by the timeout, not forever")
    }
}
