#include "CTSS2Shims.h"
#include <string.h>

/* TCG EK Credential Profile 2.0, B.3.3: PolicySecret(TPM_RH_ENDORSEMENT). */
static const uint8_t ek_policy[32] = {
    0x83, 0x71, 0x97, 0x67, 0x44, 0x84, 0xB3, 0xF8, 0x1A, 0x90, 0xCC, 0x8D, 0x46, 0xA5, 0xD7, 0x24,
    0xFD, 0x52, 0xD7, 0x6E, 0x06, 0x52, 0x0B, 0x64, 0xF2, 0xA1, 0xDA, 0x1B, 0x33, 0x14, 0x69, 0xAA,
};

static const TPMA_OBJECT ek_attributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN
    | TPMA_OBJECT_ADMINWITHPOLICY | TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT;

void palm_tpm_ek_rsa_template(TPM2B_PUBLIC *out) {
    memset(out, 0, sizeof *out);
    TPMT_PUBLIC *p = &out->publicArea;
    p->type = TPM2_ALG_RSA;
    p->nameAlg = TPM2_ALG_SHA256;
    p->objectAttributes = ek_attributes;
    p->authPolicy.size = sizeof ek_policy;
    memcpy(p->authPolicy.buffer, ek_policy, sizeof ek_policy);
    p->parameters.rsaDetail.symmetric.algorithm = TPM2_ALG_AES;
    p->parameters.rsaDetail.symmetric.keyBits.aes = 128;
    p->parameters.rsaDetail.symmetric.mode.aes = TPM2_ALG_CFB;
    p->parameters.rsaDetail.scheme.scheme = TPM2_ALG_NULL;
    p->parameters.rsaDetail.keyBits = 2048;
    p->parameters.rsaDetail.exponent = 0;
    p->unique.rsa.size = 256;   /* 256 zero bytes */
}

void palm_tpm_ek_ecc_template(TPM2B_PUBLIC *out) {
    memset(out, 0, sizeof *out);
    TPMT_PUBLIC *p = &out->publicArea;
    p->type = TPM2_ALG_ECC;
    p->nameAlg = TPM2_ALG_SHA256;
    p->objectAttributes = ek_attributes;
    p->authPolicy.size = sizeof ek_policy;
    memcpy(p->authPolicy.buffer, ek_policy, sizeof ek_policy);
    p->parameters.eccDetail.symmetric.algorithm = TPM2_ALG_AES;
    p->parameters.eccDetail.symmetric.keyBits.aes = 128;
    p->parameters.eccDetail.symmetric.mode.aes = TPM2_ALG_CFB;
    p->parameters.eccDetail.scheme.scheme = TPM2_ALG_NULL;
    p->parameters.eccDetail.curveID = TPM2_ECC_NIST_P256;
    p->parameters.eccDetail.kdf.scheme = TPM2_ALG_NULL;
    p->unique.ecc.x.size = 32;  /* 32 zero bytes each */
    p->unique.ecc.y.size = 32;
}

void palm_tpm_ak_template(TPM2B_PUBLIC *out) {
    memset(out, 0, sizeof *out);
    TPMT_PUBLIC *p = &out->publicArea;
    p->type = TPM2_ALG_ECC;
    p->nameAlg = TPM2_ALG_SHA256;
    p->objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN
        | TPMA_OBJECT_USERWITHAUTH | TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_SIGN_ENCRYPT;
    p->parameters.eccDetail.symmetric.algorithm = TPM2_ALG_NULL;
    p->parameters.eccDetail.scheme.scheme = TPM2_ALG_ECDSA;
    p->parameters.eccDetail.scheme.details.ecdsa.hashAlg = TPM2_ALG_SHA256;
    p->parameters.eccDetail.curveID = TPM2_ECC_NIST_P256;
    p->parameters.eccDetail.kdf.scheme = TPM2_ALG_NULL;
}

void palm_tpm_tls_key_template(TPM2B_PUBLIC *out) {
    static const char unique[] = "palm-tls-key-v1";
    palm_tpm_ak_template(out);
    TPMT_PUBLIC *p = &out->publicArea;
    p->objectAttributes &= ~TPMA_OBJECT_RESTRICTED;
    p->unique.ecc.x.size = sizeof unique - 1;
    memcpy(p->unique.ecc.x.buffer, unique, sizeof unique - 1);
}

void palm_tpm_pcr_selection_sha256(uint32_t mask, TPML_PCR_SELECTION *out) {
    memset(out, 0, sizeof *out);
    out->count = 1;
    out->pcrSelections[0].hash = TPM2_ALG_SHA256;
    out->pcrSelections[0].sizeofSelect = 3;
    for (int i = 0; i < 24; i++) {
        if (mask & (1u << i)) out->pcrSelections[0].pcrSelect[i / 8] |= (uint8_t)(1u << (i % 8));
    }
}

ESYS_TR palm_esys_tr_none(void) { return ESYS_TR_NONE; }
ESYS_TR palm_esys_tr_password(void) { return ESYS_TR_PASSWORD; }
ESYS_TR palm_esys_tr_rh_endorsement(void) { return ESYS_TR_RH_ENDORSEMENT; }
ESYS_TR palm_esys_tr_rh_owner(void) { return ESYS_TR_RH_OWNER; }
ESYS_TR palm_esys_tr_rh_null(void) { return ESYS_TR_RH_NULL; }
