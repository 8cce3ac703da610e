/* gzip for large JSON responses: which clients take it, and the compression itself (libdeflate:
 * the whole text is at hand, and at level 1 it compresses the 6.6 MB graph of tests/bench/graph.sh
 * to 0.69 MB in 20 ms, where zlib's deflate took 31-39 ms for 0.73 MB). */
#include "depsera/compress.h"
#include "depsera/http.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <libdeflate.h>

/* Level 1: level 6 would make that graph 0.51 MB in 35 ms (a worker compresses while its client
 * waits, and CPU is what a computed graph runs out of first). */
#define RESPONSE_LEVEL 1

static const char *skip_ows(const char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

/* A q value of zero ("0", "0.", "0.000"), which refuses the coding; anything else accepts it. */
static int q_is_zero(const char *v, size_t n)
{
    if (n == 0 || v[0] != '0')
        return 0;
    for (size_t i = 1; i < n; i++)
        if (v[i] != '.' && v[i] != '0')
            return 0;
    return 1;
}

/* The parameters after a coding (";q=0.5;x=y") up to the next comma: 0 if q refuses it, else 1. */
static int coding_accepted(const char **pp)
{
    const char *p = *pp;
    int accepted = 1;

    while (*p == ';') {
        const char *name = skip_ows(p + 1), *eq = name, *value, *end;
        while (*eq != '\0' && *eq != '=' && *eq != ';' && *eq != ',')
            eq++;
        value = *eq == '=' ? skip_ows(eq + 1) : eq;
        end = value;
        while (*end != '\0' && *end != ';' && *end != ',' && *end != ' ' && *end != '\t')
            end++;
        if (*eq == '=' && eq - name == 1 && (name[0] == 'q' || name[0] == 'Q'))
            accepted = !q_is_zero(value, (size_t)(end - value));
        p = skip_ows(end);
    }
    *pp = p;
    return accepted;
}

int dps_accepts_gzip(const char *header)
{
    int gzip = -1, star = -1; /* -1: not listed; else whether accepted */
    const char *p = header;

    if (p == NULL)
        return 0;
    while (*p != '\0') {
        const char *token = skip_ows(p), *end = token;
        size_t n;
        int accepted;

        while (*end != '\0' && *end != ',' && *end != ';' && *end != ' ' && *end != '\t')
            end++;
        n = (size_t)(end - token);
        p = skip_ows(end);
        accepted = coding_accepted(&p);
        if ((n == 4 && strncasecmp(token, "gzip", 4) == 0) || (n == 6 && strncasecmp(token, "x-gzip", 6) == 0))
            gzip = gzip == 1 ? 1 : accepted;
        else if (n == 1 && token[0] == '*')
            star = accepted;
        while (*p != '\0' && *p != ',')
            p++;
        if (*p == ',')
            p++;
    }
    return gzip >= 0 ? gzip : star == 1;
}

/* One compressor per level and worker (a worker runs one request at a time): making one costs more
 * than compressing a small answer. */
static struct libdeflate_compressor *compressor(int level)
{
    static struct libdeflate_compressor *made[10];

    if (level < 1 || level > 9)
        return NULL;
    if (made[level] == NULL)
        made[level] = libdeflate_alloc_compressor(level);
    return made[level];
}

int dps_gzip(const char *in, size_t len, int level, char **out, size_t *out_len)
{
    struct libdeflate_compressor *c = compressor(level);
    size_t bound;

    *out = NULL, *out_len = 0;
    if (c == NULL || (*out = malloc(bound = libdeflate_gzip_compress_bound(c, len))) == NULL)
        return -1;
    if ((*out_len = libdeflate_gzip_compress(c, in, len, *out, bound)) == 0) {
        free(*out);
        *out = NULL;
        return -1;
    }
    return 0;
}

void dps_http_json_buf_negotiated(dps_req_t *r, int status, dps_jsonbuf_t *b)
{
    char *packed;
    size_t n;

    dps_http_header(r, "vary", "Accept-Encoding");
    if (b->oom || b->len < DPS_GZIP_MIN_BYTES || !dps_accepts_gzip(dps_req_header(r, "accept-encoding")) ||
        dps_gzip(b->data, b->len, RESPONSE_LEVEL, &packed, &n) != 0) {
        dps_http_json_buf(r, status, b);
        return;
    }
    dps_jsonbuf_free(b);
    dps_http_header(r, "content-encoding", "gzip");
    dps_http_send_owned(r, status, "application/json; charset=utf-8", packed, n);
}
