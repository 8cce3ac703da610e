/* The HTTPS server context: certificates are read or made here, once, by the supervisor before it forks. */
#include "depsera/tls.h"

#include <h2o.h>
#include <h2o/http2.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <stdio.h>

#define SELF_SIGNED_SAN "DNS:localhost,IP:127.0.0.1"

/* OpenSSL's reason for the last failure, after our own words, and its error queue emptied. */
static void tls_error(char *err, size_t cap, const char *what, const char *path)
{
    unsigned long e = ERR_peek_last_error();
    char why[256] = "";

    if (e != 0)
        ERR_error_string_n(e, why, sizeof(why));
    ERR_clear_error();
    snprintf(err, cap, "%s%s%s%s%s", what, path ? " " : "", path ? path : "", *why ? ": " : "", why);
}

static int add_ext(X509 *cert, int nid, const char *value)
{
    X509V3_CTX v3;
    X509_EXTENSION *ext;
    int ok;

    X509V3_set_ctx(&v3, cert, cert, NULL, NULL, 0);
    if ((ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value)) == NULL)
        return -1;
    ok = X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
    return ok ? 0 : -1;
}

static EVP_PKEY *make_p256_key(void)
{
    EVP_PKEY_CTX *pctx = EVP_PKEY_CTX_new_id(EVP_PKEY_EC, NULL);
    EVP_PKEY *key = NULL;

    if (pctx == NULL || EVP_PKEY_keygen_init(pctx) <= 0 ||
        EVP_PKEY_CTX_set_ec_paramgen_curve_nid(pctx, NID_X9_62_prime256v1) <= 0 || EVP_PKEY_keygen(pctx, &key) <= 0)
        key = NULL;
    EVP_PKEY_CTX_free(pctx);
    return key;
}

/* Subject, validity and extensions of the self-signed certificate; 0 or -1. */
static int fill_cert(X509 *cert, EVP_PKEY *key)
{
    unsigned char serial[8];
    X509_NAME *name = X509_get_subject_name(cert);
    BIGNUM *bn = NULL;
    int ok;

    /* a random serial: browsers reject two certificates with one issuer and serial but different keys */
    if (RAND_bytes(serial, sizeof(serial)) != 1 || (bn = BN_bin2bn(serial, sizeof(serial), NULL)) == NULL)
        return -1;
    ok = BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert)) != NULL;
    BN_free(bn);
    return ok && X509_set_version(cert, 2) && X509_gmtime_adj(X509_getm_notBefore(cert), 0) &&
                   X509_gmtime_adj(X509_getm_notAfter(cert), 60L * 60 * 24 * DPS_TLS_SELF_SIGNED_DAYS) &&
                   X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"localhost", -1, -1, 0) &&
                   X509_set_issuer_name(cert, name) && X509_set_pubkey(cert, key) &&
                   add_ext(cert, NID_subject_alt_name, SELF_SIGNED_SAN) == 0 &&
                   add_ext(cert, NID_basic_constraints, "critical,CA:FALSE") == 0 &&
                   add_ext(cert, NID_ext_key_usage, "serverAuth") == 0 && X509_sign(cert, key, EVP_sha256()) > 0
               ? 0
               : -1;
}

int dps_tls_self_signed(EVP_PKEY **key, X509 **cert, char *err, size_t cap)
{
    *key = make_p256_key();
    *cert = X509_new();
    if (*key == NULL || *cert == NULL || fill_cert(*cert, *key) != 0) {
        tls_error(err, cap, "cannot generate a self-signed certificate", NULL);
        EVP_PKEY_free(*key);
        X509_free(*cert);
        *key = NULL;
        *cert = NULL;
        return -1;
    }
    return 0;
}

static int use_self_signed(SSL_CTX *ctx, char *err, size_t cap)
{
    EVP_PKEY *key;
    X509 *cert;
    int ok;

    if (dps_tls_self_signed(&key, &cert, err, cap) != 0)
        return -1;
    ok = SSL_CTX_use_certificate(ctx, cert) == 1 && SSL_CTX_use_PrivateKey(ctx, key) == 1; /* both take a reference */
    X509_free(cert);
    EVP_PKEY_free(key);
    if (!ok)
        tls_error(err, cap, "cannot use the self-signed certificate", NULL);
    return ok ? 0 : -1;
}

static int use_files(SSL_CTX *ctx, const char *cert_path, const char *key_path, char *err, size_t cap)
{
    /* the chain file: a certificate issued by an intermediate needs the intermediate sent too */
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_path) != 1) {
        tls_error(err, cap, "SSL_CERT_PATH: cannot load the certificate from", cert_path);
        return -1;
    }
    /* OpenSSL compares the key with the certificate as it loads it: a mismatch fails here already */
    if (SSL_CTX_use_PrivateKey_file(ctx, key_path, SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
        if (ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH || SSL_CTX_get0_privatekey(ctx) != NULL)
            tls_error(err, cap, "SSL_KEY_PATH: the private key does not match the certificate of SSL_CERT_PATH in", key_path);
        else
            tls_error(err, cap, "SSL_KEY_PATH: cannot load the private key from", key_path);
        return -1;
    }
    return 0;
}

SSL_CTX *dps_tls_server_ctx(const char *cert_path, const char *key_path, char *err, size_t cap)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    int files = cert_path != NULL && *cert_path && key_path != NULL && *key_path;

    if (ctx == NULL) {
        tls_error(err, cap, "cannot create a TLS context", NULL);
        return NULL;
    }
    /* HTTP/2 forbids anything older than TLS 1.2 (RFC 9113 §9.2) */
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    if ((files ? use_files(ctx, cert_path, key_path, err, cap) : use_self_signed(ctx, err, cap)) != 0) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    h2o_ssl_register_alpn_protocols(ctx, h2o_http2_alpn_protocols);
    return ctx;
}
