internal import CTSS2ESys
internal import CTSS2Shims
import PalmCrypto
import PalmSecurity
import PalmWire

extension TPMDevice {
    func createTLSKey(_ ctx: OpaquePointer) throws -> (handle: ESYS_TR, publicArea: [UInt8]) {
        var template = TPM2B_PUBLIC()
        palm_tpm_tls_key_template(&template)
        return try createPrimary(ctx, template: template, what: "TLS key")
    }

    /// The TLS key's public area (TPMT_PUBLIC): an ECDSA P-256 signing key that never leaves the
    /// TPM, derived from the endorsement seed — the same for as long as the TPM keeps that seed,
    /// so a certificate issued for it stays valid across reboots, and is worthless anywhere else.
    public func tlsKey() throws -> [UInt8] {
        try run("TLS key") { [self] ctx in
            let (handle, area) = try createTLSKey(ctx)
            flush(ctx, handle)
            return area
        }
    }

    /// Signs a 32-byte SHA-256 digest with the TLS key; the ECDSA signature in DER.
    public func signWithTLSKey(digest: [UInt8]) throws -> [UInt8] {
        guard digest.count == 32 else { throw TPMError.unexpected("the TLS key signs SHA-256 digests (32 bytes), not \(digest.count) bytes") }
        return try run("Sign") { [self] ctx in
            let (key, _) = try createTLSKey(ctx)
            defer { flush(ctx, key) }
            var input = TPM2B_DIGEST()
            input.size = UInt16(TPMBytes.write(digest, into: &input.buffer))
            var scheme = TPMT_SIG_SCHEME()
            scheme.scheme = 0x0010  // TPM2_ALG_NULL: the key's own scheme (ECDSA, SHA-256)
            // An unrestricted key signs any digest: the "hash check" ticket is the null one.
            var validation = TPMT_TK_HASHCHECK()
            validation.tag = 0x8024  // TPM2_ST_HASHCHECK
            validation.hierarchy = 0x4000_0007  // TPM2_RH_NULL
            var signature: UnsafeMutablePointer<TPMT_SIGNATURE>?
            try check(Esys_Sign(ctx, key, palm_esys_tr_password(), palm_esys_tr_none(), palm_esys_tr_none(), &input, &scheme, &validation,
                                &signature), "Sign")
            defer { Esys_Free(signature) }
            guard let signature else { throw TPMError.unexpected("Sign returned nothing") }
            let bytes = try TPMBytes.marshal(signature.pointee) { Tss2_MU_TPMT_SIGNATURE_Marshal($0, $1, $2, $3) }
            do { return try TPMSignature(decoding: bytes).der } catch { throw TPMError.unexpected("Sign: \(error)") }
        }
    }

    /// TPM2_Certify: the attestation key certifies the TLS key, over `qualifyingData` (≤ 64 bytes;
    /// palm: ``QuoteBinding/tlsKey(subjectPublicKeyInfo:)``, which binds it to the certificate's key).
    public func certifyTLSKey(qualifyingData: [UInt8]) throws -> PlatformEvidence.KeyCertification {
        guard qualifyingData.count <= 64 else { throw TPMError.unexpected("qualifying data longer than 64 bytes") }
        return try run("Certify") { [self] ctx in
            let (key, area) = try createTLSKey(ctx)
            defer { flush(ctx, key) }
            let (ak, _) = try createAttestationKey(ctx)
            defer { flush(ctx, ak) }
            var data = TPM2B_DATA()
            data.size = UInt16(TPMBytes.write(qualifyingData, into: &data.buffer))
            var scheme = TPMT_SIG_SCHEME()
            scheme.scheme = 0x0010
            var info: UnsafeMutablePointer<TPM2B_ATTEST>?
            var signature: UnsafeMutablePointer<TPMT_SIGNATURE>?
            // The certified object in the ADMIN role and the signer in the USER role, both by
            // their (empty) passwords.
            try check(Esys_Certify(ctx, key, ak, palm_esys_tr_password(), palm_esys_tr_password(), palm_esys_tr_none(), &data, &scheme,
                                   &info, &signature), "Certify")
            defer {
                Esys_Free(info)
                Esys_Free(signature)
            }
            guard let info, let signature else { throw TPMError.unexpected("Certify returned nothing") }
            let sig = try TPMBytes.marshal(signature.pointee) { Tss2_MU_TPMT_SIGNATURE_Marshal($0, $1, $2, $3) }
            return PlatformEvidence.KeyCertification(publicArea: area, certifyInfo: TPMBytes.read(info.pointee.attestationData, count: Int(info.pointee.size)),
                                       signature: sig)
        }
    }
}
