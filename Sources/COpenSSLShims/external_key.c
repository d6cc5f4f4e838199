/* An EC key whose signatures palm makes elsewhere (a TPM). OpenSSL 3 still honours a legacy
 * EC_KEY_METHOD on a key it considers "foreign": EVP_PKEY_CTX operations on it, TLS's
 * CertificateVerify included, take the legacy path into the method's sign callbacks. The method
 * must be set before the EC_KEY is assigned to its EVP_PKEY (that is when OpenSSL decides). */
#define OPENSSL_SUPPRESS_DEPRECATED
#include "COpenSSLShims.h"
#include <openssl/ec.h>
#include <openssl/crypto.h>

struct palm_external {
    palm_external_sign_fn sign;
    palm_external_release_fn release;
    void *context;
};

static int external_index = -1;
static EC_KEY_METHOD *external_method;
static CRYPTO_ONCE external_once = CRYPTO_ONCE_STATIC_INIT;

static void external_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp) {
    struct palm_external *e = ptr;
    (void)parent; (void)ad; (void)idx; (void)argl; (void)argp;
    if (e == NULL) return;
    if (e->release != NULL) e->release(e->context);
    OPENSSL_free(e);
}

static int external_sign(int type, const unsigned char *dgst, int dlen, unsigned char *sig, unsigned int *siglen,
                         const BIGNUM *kinv, const BIGNUM *r, EC_KEY *key) {
    struct palm_external *e = EC_KEY_get_ex_data(key, external_index);
    (void)type; (void)kinv; (void)r;
    if (e == NULL || dlen < 0 || sig == NULL || siglen == NULL) return 0;
    size_t length = (size_t)ECDSA_size(key);
    if (e->sign(e->context, dgst, (size_t)dlen, sig, &length) != 1 || length > (size_t)ECDSA_size(key)) return 0;
    *siglen = (unsigned int)length;
    return 1;
}

static ECDSA_SIG *external_sign_sig(const unsigned char *dgst, int dlen, const BIGNUM *kinv, const BIGNUM *r, EC_KEY *key) {
    unsigned char der[256];
    unsigned int length = 0;
    if (ECDSA_size(key) > (int)sizeof der || !external_sign(0, dgst, dlen, der, &length, kinv, r, key)) return NULL;
    const unsigned char *p = der;
    return d2i_ECDSA_SIG(NULL, &p, (long)length);
}

static void external_init(void) {
    int (*sign)(int, const unsigned char *, int, unsigned char *, unsigned int *, const BIGNUM *, const BIGNUM *, EC_KEY *) = NULL;
    int (*setup)(EC_KEY *, BN_CTX *, BIGNUM **, BIGNUM **) = NULL;
    ECDSA_SIG *(*sign_sig)(const unsigned char *, int, const BIGNUM *, const BIGNUM *, EC_KEY *) = NULL;
    external_index = EC_KEY_get_ex_new_index(0, NULL, NULL, NULL, external_free);
    external_method = EC_KEY_METHOD_new(EC_KEY_get_default_method());
    if (external_method == NULL) return;
    EC_KEY_METHOD_get_sign(external_method, &sign, &setup, &sign_sig);
    EC_KEY_METHOD_set_sign(external_method, external_sign, setup, external_sign_sig);
}

EVP_PKEY *palm_external_ec_key(EVP_PKEY *public_key, palm_external_sign_fn sign, palm_external_release_fn release, void *context) {
    EC_KEY *source = NULL, *key = NULL;
    EVP_PKEY *out = NULL;
    struct palm_external *e = NULL;
    if (!CRYPTO_THREAD_run_once(&external_once, external_init) || external_method == NULL || external_index < 0) goto fail;
    if ((source = EVP_PKEY_get1_EC_KEY(public_key)) == NULL) goto fail;
    if ((key = EC_KEY_new()) == NULL || (e = OPENSSL_zalloc(sizeof *e)) == NULL || (out = EVP_PKEY_new()) == NULL) goto fail;
    if (!EC_KEY_set_method(key, external_method) || !EC_KEY_set_group(key, EC_KEY_get0_group(source))
        || !EC_KEY_set_public_key(key, EC_KEY_get0_public_key(source))) goto fail;
    e->sign = sign;
    e->release = release;
    e->context = context;
    if (!EC_KEY_set_ex_data(key, external_index, e)) goto fail;
    e = NULL;  /* the key owns it now: freeing the key releases the context */
    context = NULL;
    if (!EVP_PKEY_assign_EC_KEY(out, key)) goto fail;
    EC_KEY_free(source);
    return out;
fail:
    EVP_PKEY_free(out);
    EC_KEY_free(key);
    EC_KEY_free(source);
    OPENSSL_free(e);
    if (context != NULL && release != NULL) release(context);
    return NULL;
}
