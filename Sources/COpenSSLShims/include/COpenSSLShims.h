/// C shims for OpenSSL macros and inline functions Swift cannot import.
/// Every function is a one-line wrapper, except the external key below (an EC_KEY_METHOD whose
/// callbacks OpenSSL calls with C types only).
#ifndef PALM_COPENSSL_SHIMS_H
#define PALM_COPENSSL_SHIMS_H

#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/bio.h>
#include <openssl/rand.h>

/// Pins the context to TLS 1.3 only (minimum = maximum). Returns 1 on success.
int palm_ssl_ctx_set_tls13_only(SSL_CTX *ctx);
/// Disables stateful and stateless resumption, renegotiation-style options and compression.
void palm_ssl_ctx_harden(SSL_CTX *ctx);
/// Allows partial writes and moving write buffers (needed for non-blocking I/O with large writes).
void palm_ssl_ctx_set_io_modes(SSL_CTX *ctx);
int palm_ssl_ctx_set1_groups_list(SSL_CTX *ctx, const char *list);
int palm_ssl_set_tlsext_host_name(SSL *ssl, const char *name);
int palm_ssl_get_min_proto_version(SSL *ssl);

int palm_err_get_lib(unsigned long e);
int palm_err_get_reason(unsigned long e);

int palm_evp_pkey_ec(void);
unsigned long palm_xn_flag_rfc2253(void);
int palm_x509_v_err_application_verification(void);

/// Number of entries / entry i of a GENERAL_NAMES stack.
int palm_general_names_count(const GENERAL_NAMES *names);
const GENERAL_NAME *palm_general_names_get(const GENERAL_NAMES *names, int i);
void palm_general_names_free(GENERAL_NAMES *names);

/// The bytes held by a memory BIO.
long palm_bio_get_mem_data(BIO *bio, char **data);

void palm_openssl_free(void *ptr);


/// Signs a SHA-256 digest with a key palm holds elsewhere (a TPM): writes the DER ECDSA
/// signature into `der` (capacity `*der_len` on entry, its length on return); 1 on success.
typedef int (*palm_external_sign_fn)(void *context, const unsigned char *digest, size_t digest_len, unsigned char *der, size_t *der_len);
/// Lets go of the context given to palm_external_ec_key (when the key is freed).
typedef void (*palm_external_release_fn)(void *context);
/// An EC private key whose public half is `public_key`'s and whose every ECDSA signature —
/// TLS handshakes (CertificateVerify) and EVP_DigestSign alike — is made by `sign(context, …)`.
/// Takes ownership of `context` (released through `release`, also when this fails). NULL on
/// failure.
EVP_PKEY *palm_external_ec_key(EVP_PKEY *public_key, palm_external_sign_fn sign, palm_external_release_fn release, void *context);
#endif
