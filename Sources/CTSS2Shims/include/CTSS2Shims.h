/// C shims for tpm2-tss: the key templates palm uses (C designated initializers over the spec's
/// macro constants, which Swift cannot import) and the handful of constants the Swift side needs.
/// No TPM command is encoded here: every command goes through ESAPI.
#ifndef PALM_CTSS2_SHIMS_H
#define PALM_CTSS2_SHIMS_H
#include <stdint.h>
#include <tss2/tss2_tpm2_types.h>
#include <tss2/tss2_esys.h>

/// The TCG EK Credential Profile's default RSA 2048 EK template (L-1): restricted decryption,
/// AES-128-CFB, the standard PolicySecret(TPM_RH_ENDORSEMENT) policy.
void palm_tpm_ek_rsa_template(TPM2B_PUBLIC *out);
/// The same profile's ECC NIST P-256 EK template (L-2).
void palm_tpm_ek_ecc_template(TPM2B_PUBLIC *out);
/// palm's attestation key: a restricted ECDSA P-256 / SHA-256 signing key, fixedTPM and
/// fixedParent, generated in the TPM (sensitiveDataOrigin), usable with an empty password.
void palm_tpm_ak_template(TPM2B_PUBLIC *out);
/// palm's TLS key: an unrestricted ECDSA P-256 / SHA-256 signing key (it signs TLS handshakes and
/// palm's reports, which are not TPM-generated data), fixedTPM, fixedParent, generated in the TPM,
/// usable with an empty password; its `unique` field ("palm-tls-key-v1") makes it another key
/// than the attestation key under the same seed.
void palm_tpm_tls_key_template(TPM2B_PUBLIC *out);

/// A selection of PCRs `mask` (bit i = PCR i, 0 … 23) in the SHA-256 bank.
void palm_tpm_pcr_selection_sha256(uint32_t mask, TPML_PCR_SELECTION *out);

/// ESAPI handles and hierarchy constants (casted macros in the headers).
ESYS_TR palm_esys_tr_none(void);
ESYS_TR palm_esys_tr_password(void);
ESYS_TR palm_esys_tr_rh_endorsement(void);
ESYS_TR palm_esys_tr_rh_owner(void);
ESYS_TR palm_esys_tr_rh_null(void);
#endif
