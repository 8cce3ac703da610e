/* Unit tests of the HTTPS context: the self-signed certificate, and PEM files that load, are missing or do not match. */
#include "depsera/tls.h"

#include <check.h>

#include "unit.h"
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

START_TEST(self_signed_matches_and_names_localhost)
{
    EVP_PKEY *key;
    X509 *cert;
    char err[512], cn[64];
    int days, secs;

    ck_assert_msg(dps_tls_self_signed(&key, &cert, err, sizeof(err)) == 0, "%s", err);
    ck_assert_int_eq(X509_check_private_key(cert, key), 1);
    ck_assert_int_eq(X509_verify(cert, key), 1); /* self-signed: its own key signs it */
    ck_assert_int_eq(X509_check_host(cert, "localhost", 0, 0, NULL), 1);
    ck_assert_int_eq(X509_check_ip_asc(cert, "127.0.0.1", 0), 1);
    ck_assert_int_eq(X509_check_host(cert, "example.com", 0, 0, NULL), 0);
    ck_assert_int_gt(X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof(cn)), 0);
    ck_assert_str_eq(cn, "localhost");
    ck_assert_int_eq(ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(cert), X509_get0_notAfter(cert)), 1);
    ck_assert_int_eq(days, DPS_TLS_SELF_SIGNED_DAYS);
    ck_assert_int_le(X509_cmp_current_time(X509_get0_notBefore(cert)), 0);
    X509_free(cert);
    EVP_PKEY_free(key);
}
END_TEST

START_TEST(no_paths_gives_self_signed_ctx)
{
    char err[512];
    SSL_CTX *ctx = dps_tls_server_ctx(NULL, "", err, sizeof(err));

    ck_assert_msg(ctx != NULL, "%s", err);
    ck_assert_ptr_nonnull(SSL_CTX_get0_certificate(ctx));
    ck_assert_int_eq(SSL_CTX_check_private_key(ctx), 1);
    SSL_CTX_free(ctx);
}
END_TEST

/* A fresh self-signed pair written as PEM into dir/<name>.crt and dir/<name>.key. */
static void write_pair(const char *dir, const char *name)
{
    char path[512], err[512];
    EVP_PKEY *key;
    X509 *cert;
    FILE *f;

    ck_assert_msg(dps_tls_self_signed(&key, &cert, err, sizeof(err)) == 0, "%s", err);
    snprintf(path, sizeof(path), "%s/%s.crt", dir, name);
    ck_assert_ptr_nonnull(f = fopen(path, "w"));
    ck_assert_int_eq(PEM_write_X509(f, cert), 1);
    fclose(f);
    snprintf(path, sizeof(path), "%s/%s.key", dir, name);
    ck_assert_ptr_nonnull(f = fopen(path, "w"));
    ck_assert_int_eq(PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL), 1);
    fclose(f);
    X509_free(cert);
    EVP_PKEY_free(key);
}

static char dir[] = "/tmp/check_tls_XXXXXX";

static SSL_CTX *load(const char *cert, const char *key, char *err, size_t cap)
{
    char c[512], k[512];

    snprintf(c, sizeof(c), "%s/%s", dir, cert);
    snprintf(k, sizeof(k), "%s/%s", dir, key);
    return dps_tls_server_ctx(c, k, err, cap);
}

START_TEST(files_load_or_fail_with_a_reason)
{
    char err[512];
    SSL_CTX *ctx;

    ck_assert_ptr_nonnull(mkdtemp(dir));
    write_pair(dir, "a");
    write_pair(dir, "b");

    ctx = load("a.crt", "a.key", err, sizeof(err));
    ck_assert_msg(ctx != NULL, "%s", err);
    SSL_CTX_free(ctx);

    ck_assert_ptr_null(load("a.crt", "b.key", err, sizeof(err)));
    ck_assert_msg(strstr(err, "does not match") != NULL, "%s", err);

    ck_assert_ptr_null(load("missing.crt", "a.key", err, sizeof(err)));
    ck_assert_msg(strncmp(err, "SSL_CERT_PATH: cannot load", 26) == 0 && strstr(err, "missing.crt") != NULL, "%s", err);

    ck_assert_ptr_null(load("a.crt", "missing.key", err, sizeof(err)));
    ck_assert_msg(strncmp(err, "SSL_KEY_PATH: cannot load", 25) == 0 && strstr(err, "missing.key") != NULL, "%s", err);

    ck_assert_ptr_null(load("a.key", "a.key", err, sizeof(err))); /* a key is not a certificate */
    ck_assert_msg(strncmp(err, "SSL_CERT_PATH", 13) == 0, "%s", err);

    for (const char *n = "a.crt\0a.key\0b.crt\0b.key\0"; *n; n += strlen(n) + 1) {
        char p[512];
        snprintf(p, sizeof(p), "%s/%s", dir, n);
        unlink(p);
    }
    rmdir(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("tls");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, self_signed_matches_and_names_localhost);
    tcase_add_test(tc, no_paths_gives_self_signed_ctx);
    tcase_add_test(tc, files_load_or_fail_with_a_reason);
    suite_add_tcase(s, tc);
    return dps_check_run(s);
}
