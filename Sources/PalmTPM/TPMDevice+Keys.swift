internal import CTSS2ESys
internal import CTSS2Shims
import PalmCrypto

/// The TPM's endorsement identity: its endorsement key's public area and the manufacturer's
/// certificate for it.
public struct EndorsementIdentity: Sendable, Equatable {
    /// TPMT_PUBLIC of the RSA 2048 endorsement key (TCG default template L-1).
    public var publicArea: [UInt8]
    /// The EK certificate (DER) from NV index 0x01C00002.
    public var certificate: [UInt8]
}

extension TPMDevice {
    /// Where the TCG EK Credential Profile puts the RSA 2048 EK certificate.
    public static let rsaEKCertificateIndex: UInt32 = 0x01C0_0002

    /// Creates (re-derives: a primary key is a function of its hierarchy's seed and template)
    /// the key described by `template` under the endorsement hierarchy; the caller flushes it.
    func createPrimary(_ ctx: OpaquePointer, template: TPM2B_PUBLIC, what: String) throws -> (handle: ESYS_TR, publicArea: [UInt8]) {
        var inPublic = template
        var sensitive = TPM2B_SENSITIVE_CREATE()
        var outside = TPM2B_DATA()
        var creationPCR = TPML_PCR_SELECTION()
        var handle: ESYS_TR = palm_esys_tr_none()
        var outPublic: UnsafeMutablePointer<TPM2B_PUBLIC>?
        var creationData: UnsafeMutablePointer<TPM2B_CREATION_DATA>?
        var creationHash: UnsafeMutablePointer<TPM2B_DIGEST>?
        var ticket: UnsafeMutablePointer<TPMT_TK_CREATION>?
        try check(Esys_CreatePrimary(ctx, palm_esys_tr_rh_endorsement(), palm_esys_tr_password(), palm_esys_tr_none(), palm_esys_tr_none(),
                                     &sensitive, &inPublic, &outside, &creationPCR, &handle, &outPublic, &creationData, &creationHash,
                                     &ticket), "CreatePrimary (\(what))")
        defer {
            Esys_Free(outPublic)
            Esys_Free(creationData)
            Esys_Free(creationHash)
            Esys_Free(ticket)
        }
        guard let outPublic else { throw TPMError.unexpected("CreatePrimary returned no public area") }
        do {
            let area = try TPMBytes.marshal(outPublic.pointee.publicArea) { Tss2_MU_TPMT_PUBLIC_Marshal($0, $1, $2, $3) }
            return (handle, area)
        } catch {
            flush(ctx, handle)
            throw error
        }
    }

    func createAttestationKey(_ ctx: OpaquePointer) throws -> (handle: ESYS_TR, publicArea: [UInt8]) {
        var template = TPM2B_PUBLIC()
        palm_tpm_ak_template(&template)
        return try createPrimary(ctx, template: template, what: "attestation key")
    }

    /// Where the TCG EK Credential Profile keeps the RSA EK persistent (swtpm_setup and most
    /// platforms do): using it spares re-deriving a 2048-bit RSA key, seconds on a real TPM.
    public static let rsaEKPersistentHandle: UInt32 = 0x8101_0001

    /// The endorsement key: the persistent one when it is there with the profile's attributes,
    /// else re-derived from the template. `transient` says whether the caller flushes it.
    func createEndorsementKey(_ ctx: OpaquePointer) throws -> (handle: ESYS_TR, publicArea: [UInt8], transient: Bool) {
        var persistent: ESYS_TR = palm_esys_tr_none()
        if Esys_TR_FromTPMPublic(ctx, Self.rsaEKPersistentHandle, palm_esys_tr_none(), palm_esys_tr_none(), palm_esys_tr_none(),
                                 &persistent) == 0 {
            var outPublic: UnsafeMutablePointer<TPM2B_PUBLIC>?
            var name: UnsafeMutablePointer<TPM2B_NAME>?
            var qualified: UnsafeMutablePointer<TPM2B_NAME>?
            if Esys_ReadPublic(ctx, persistent, palm_esys_tr_none(), palm_esys_tr_none(), palm_esys_tr_none(), &outPublic, &name, &qualified) == 0,
               let area = outPublic?.pointee.publicArea {
                defer {
                    Esys_Free(outPublic)
                    Esys_Free(name)
                    Esys_Free(qualified)
                }
                var template = TPM2B_PUBLIC()
                palm_tpm_ek_rsa_template(&template)
                // The same key the template derives: the profile's type, attributes and policy.
                if area.type == template.publicArea.type, area.objectAttributes == template.publicArea.objectAttributes,
                   TPMBytes.read(area.authPolicy.buffer, count: Int(area.authPolicy.size))
                    == TPMBytes.read(template.publicArea.authPolicy.buffer, count: Int(template.publicArea.authPolicy.size)),
                   let bytes = try? TPMBytes.marshal(area, { Tss2_MU_TPMT_PUBLIC_Marshal($0, $1, $2, $3) }) {
                    return (persistent, bytes, false)
                }
            } else {
                Esys_Free(outPublic)
                Esys_Free(name)
                Esys_Free(qualified)
            }
            _ = Esys_TR_Close(ctx, &persistent)
        }
        var template = TPM2B_PUBLIC()
        palm_tpm_ek_rsa_template(&template)
        let (handle, area) = try createPrimary(ctx, template: template, what: "endorsement key")
        return (handle, area, true)
    }

    /// Lets go of an endorsement key: flushed when transient, its handle closed when persistent.
    func release(_ ctx: OpaquePointer, endorsementKey handle: ESYS_TR, transient: Bool) {
        if transient {
            flush(ctx, handle)
        } else {
            var h = handle
            _ = Esys_TR_Close(ctx, &h)
        }
    }

    /// The attestation key's public area (TPMT_PUBLIC): a restricted ECDSA P-256 signing key in
    /// the endorsement hierarchy. The same for as long as the TPM keeps its endorsement seed.
    public func attestationKey() throws -> [UInt8] {
        try run("attestation key") { [self] ctx in
            let (handle, area) = try createAttestationKey(ctx)
            flush(ctx, handle)
            return area
        }
    }

    /// The endorsement key and its certificate (RSA 2048, the profile's default template).
    public func endorsementIdentity() throws -> EndorsementIdentity {
        try run("endorsement key") { [self] ctx in
            let (handle, area, transient) = try createEndorsementKey(ctx)
            release(ctx, endorsementKey: handle, transient: transient)
            let certificate = try readNV(ctx, index: Self.rsaEKCertificateIndex)
            return EndorsementIdentity(publicArea: area, certificate: certificate)
        }
    }

    /// The whole content of an NV index readable with its own (empty) authorization.
    func readNV(_ ctx: OpaquePointer, index: UInt32) throws -> [UInt8] {
        var nv: ESYS_TR = palm_esys_tr_none()
        guard Esys_TR_FromTPMPublic(ctx, index, palm_esys_tr_none(), palm_esys_tr_none(), palm_esys_tr_none(), &nv) == 0 else {
            throw TPMError.noEndorsementCertificate(index: index)
        }
        defer { _ = Esys_TR_Close(ctx, &nv) }
        var nvPublic: UnsafeMutablePointer<TPM2B_NV_PUBLIC>?
        var nvName: UnsafeMutablePointer<TPM2B_NAME>?
        try check(Esys_NV_ReadPublic(ctx, nv, palm_esys_tr_none(), palm_esys_tr_none(), palm_esys_tr_none(), &nvPublic, &nvName), "NV_ReadPublic")
        let size = Int(nvPublic?.pointee.nvPublic.dataSize ?? 0)
        Esys_Free(nvPublic)
        Esys_Free(nvName)
        guard size > 0, size <= 8192 else { throw TPMError.unexpected("NV index 0x\(String(index, radix: 16)) holds \(size) bytes") }
        var out: [UInt8] = []
        while out.count < size {
            let chunk = UInt16(min(512, size - out.count))
            var data: UnsafeMutablePointer<TPM2B_MAX_NV_BUFFER>?
            try check(Esys_NV_Read(ctx, nv, nv, palm_esys_tr_password(), palm_esys_tr_none(), palm_esys_tr_none(), chunk, UInt16(out.count), &data),
                      "NV_Read")
            guard let data, data.pointee.size > 0 else { throw TPMError.unexpected("NV_Read returned nothing") }
            out += TPMBytes.read(data.pointee.buffer, count: Int(data.pointee.size))
            Esys_Free(data)
        }
        return out
    }
}
