internal import CTSS2ESys
internal import CTSS2Shims

extension TPMDevice {
    /// TPM2_ActivateCredential: recovers the secret a verifier sealed to this TPM's endorsement
    /// key for the attestation key's name (``CredentialChallenge``). Only the TPM that holds both
    /// keys can: this is what proves the attestation key lives in the TPM the EK certificate names.
    public func activateCredential(credentialBlob: [UInt8], encryptedSecret: [UInt8]) throws -> [UInt8] {
        var blob = TPM2B_ID_OBJECT()
        var secret = TPM2B_ENCRYPTED_SECRET()
        try TPMBytes.unmarshal(credentialBlob, into: &blob) { Tss2_MU_TPM2B_ID_OBJECT_Unmarshal($0, $1, $2, $3) }
        try TPMBytes.unmarshal(encryptedSecret, into: &secret) { Tss2_MU_TPM2B_ENCRYPTED_SECRET_Unmarshal($0, $1, $2, $3) }
        return try run("ActivateCredential") { [self] ctx in
            let (ek, _, transient) = try createEndorsementKey(ctx)
            defer { release(ctx, endorsementKey: ek, transient: transient) }
            let (ak, _) = try createAttestationKey(ctx)
            defer { flush(ctx, ak) }
            // The EK's policy: PolicySecret(TPM_RH_ENDORSEMENT) in a policy session.
            var symmetric = TPMT_SYM_DEF()
            symmetric.algorithm = 0x0010  // TPM2_ALG_NULL
            var session: ESYS_TR = palm_esys_tr_none()
            try check(Esys_StartAuthSession(ctx, palm_esys_tr_none(), palm_esys_tr_none(), palm_esys_tr_none(), palm_esys_tr_none(),
                                            palm_esys_tr_none(), nil, 0x01 /* TPM2_SE_POLICY */, &symmetric, 0x000B, &session),
                      "StartAuthSession")
            defer { flush(ctx, session) }
            var timeout: UnsafeMutablePointer<TPM2B_TIMEOUT>?
            var ticket: UnsafeMutablePointer<TPMT_TK_AUTH>?
            try check(Esys_PolicySecret(ctx, palm_esys_tr_rh_endorsement(), session, palm_esys_tr_password(), palm_esys_tr_none(),
                                        palm_esys_tr_none(), nil, nil, nil, 0, &timeout, &ticket), "PolicySecret")
            Esys_Free(timeout)
            Esys_Free(ticket)
            var certInfo: UnsafeMutablePointer<TPM2B_DIGEST>?
            try check(Esys_ActivateCredential(ctx, ak, ek, palm_esys_tr_password(), session, palm_esys_tr_none(), &blob, &secret, &certInfo),
                      "ActivateCredential")
            defer { Esys_Free(certInfo) }
            guard let certInfo else { throw TPMError.unexpected("ActivateCredential returned nothing") }
            return TPMBytes.read(certInfo.pointee.buffer, count: Int(certInfo.pointee.size))
        }
    }
}
