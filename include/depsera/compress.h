/* gzip for large JSON responses: Accept-Encoding negotiation and one-shot compression (libdeflate). */
#ifndef DEPSERA_COMPRESS_H
#define DEPSERA_COMPRESS_H

#include <stddef.h>

#include "depsera/jsonbuf.h"

/* Bodies shorter than this are sent as they are: compressing them saves less than it costs. */
#define DPS_GZIP_MIN_BYTES 1024

/* 1 if an Accept-Encoding header value (NULL: the header is absent) accepts gzip: "gzip" or
 * "x-gzip" listed with a non-zero q, or "*" with a non-zero q and gzip not refused by name (RFC 9110
 * §12.5.3). Codings are compared case-insensitively. */
int dps_accepts_gzip(const char *accept_encoding);

/* The gzip member (RFC 1952) of `len` bytes at `in`, at `level` (1..9, as zlib's), into *out
 * (malloc'd, owned by the caller) of *out_len bytes. 0, or -1 when memory runs out (*out NULL). */
int dps_gzip(const char *in, size_t len, int level, char **out, size_t *out_len) __attribute__((warn_unused_result));

/* As dps_http_json_buf, compressed with gzip when the request accepts it and the text is at least
 * DPS_GZIP_MIN_BYTES long (Content-Encoding: gzip); every answer carries Vary: Accept-Encoding. The
 * text is handed over (freed here or with the request); compressing failure sends it plain. */
void dps_http_json_buf_negotiated(dps_req_t *r, int status, dps_jsonbuf_t *b);

#endif
