#include "COpenSSLShims.h"

int palm_ssl_ctx_set_tls13_only(SSL_CTX *ctx) {
    return SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) == 1
        && SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) == 1;
}

void palm_ssl_ctx_harden(SSL_CTX *ctx) {
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET | SSL_OP_NO_COMPRESSION
                             | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
}

void palm_ssl_ctx_set_io_modes(SSL_CTX *ctx) {
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_read_ahead(ctx, 1);
    SSL_CTX_set_default_read_buffer_len(ctx, 256 * 1024);
}

int palm_ssl_ctx_set1_groups_list(SSL_CTX *ctx, const char *list) {
    return (int)SSL_CTX_set1_groups_list(ctx, list);
}

int palm_ssl_set_tlsext_host_name(SSL *ssl, const char *name) {
    return (int)SSL_set_tlsext_host_name(ssl, name);
}

int palm_ssl_get_min_proto_version(SSL *ssl) { return (int)SSL_get_min_proto_version(ssl); }

int palm_err_get_lib(unsigned long e) { return ERR_GET_LIB(e); }
int palm_err_get_reason(unsigned long e) { return ERR_GET_REASON(e); }

int palm_evp_pkey_ec(void) { return EVP_PKEY_EC; }
unsigned long palm_xn_flag_rfc2253(void) { return XN_FLAG_RFC2253; }
int palm_x509_v_err_application_verification(void) { return X509_V_ERR_APPLICATION_VERIFICATION; }

int palm_general_names_count(const GENERAL_NAMES *names) { return sk_GENERAL_NAME_num(names); }
const GENERAL_NAME *palm_general_names_get(const GENERAL_NAMES *names, int i) {
    return sk_GENERAL_NAME_value(names, i);
}
void palm_general_names_free(GENERAL_NAMES *names) { GENERAL_NAMES_free(names); }

long palm_bio_get_mem_data(BIO *bio, char **data) { return BIO_get_mem_data(bio, data); }

void palm_openssl_free(void *ptr) { OPENSSL_free(ptr); }
