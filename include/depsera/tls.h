/* HTTPS on PORT: the server SSL_CTX (a certificate from PEM files, or a self-signed one) shared by every worker. */
#ifndef DEPSERA_TLS_H
#define DEPSERA_TLS_H

#include <stddef.h>
#include <openssl/ssl.h>

/* Days a generated self-signed certificate is valid. */
#define DPS_TLS_SELF_SIGNED_DAYS 365

/* A server context for h2o: TLS 1.2 or later, ALPN offering h2 then http/1.1. With both paths set, the
 * certificate chain and key are read from those PEM files and must match; with both NULL or empty, a
 * self-signed certificate for localhost is generated (development use). The caller owns the result
 * (SSL_CTX_free). NULL on failure, with a message naming the file or the mismatch in err. */
SSL_CTX *dps_tls_server_ctx(const char *cert_path, const char *key_path, char *err, size_t cap)
    __attribute__((warn_unused_result));

/* A fresh P-256 key and a certificate for it, self-signed, CN=localhost, subjectAltName DNS:localhost
 * and IP:127.0.0.1, valid from now for DPS_TLS_SELF_SIGNED_DAYS. 0 with *key and *cert owned by the
 * caller (EVP_PKEY_free, X509_free), or -1 with a message in err and nothing to free. */
int dps_tls_self_signed(EVP_PKEY **key, X509 **cert, char *err, size_t cap) __attribute__((warn_unused_result));

#endif
