/// C shims for OpenSSL macros and inline functions Swift cannot import.
/// Every function is a one-line wrapper; no logic lives here.
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

#endif
