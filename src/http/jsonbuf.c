/* Large JSON responses written as text straight from query results (lists of thousands of rows). */
#include "depsera/jsonbuf.h"
#include "depsera/http.h"

#include <stdlib.h>
#include <string.h>

#define OID_BOOL 16
#define OID_INT8 20
#define OID_INT2 21
#define OID_INT4 23
#define OID_JSON 114
#define OID_FLOAT4 700
#define OID_FLOAT8 701
#define OID_TIMESTAMPTZ 1184
#define OID_NUMERIC 1700
#define OID_JSONB 3802

void dps_jsonbuf_init(dps_jsonbuf_t *b, size_t hint)
{
    memset(b, 0, sizeof(*b));
    if (hint > 0 && (b->data = malloc(hint)) != NULL)
        b->cap = hint;
}

void dps_jsonbuf_free(dps_jsonbuf_t *b)
{
    free(b->data);
    memset(b, 0, sizeof(*b));
}

/* Room for n more bytes; 0, or -1 (and oom set) when memory runs out. */
static int reserve(dps_jsonbuf_t *b, size_t n)
{
    size_t cap = b->cap ? b->cap : 256;
    char *grown;

    if (b->oom)
        return -1;
    if (b->len + n <= b->cap)
        return 0;
    while (cap < b->len + n)
        cap *= 2;
    if ((grown = realloc(b->data, cap)) == NULL) {
        b->oom = 1;
        return -1;
    }
    b->data = grown, b->cap = cap;
    return 0;
}

void dps_jsonbuf_raw(dps_jsonbuf_t *b, const char *s, size_t n)
{
    if (reserve(b, n) != 0)
        return;
    memcpy(b->data + b->len, s, n);
    b->len += n;
}

/* What each byte becomes inside a JSON string: 0 = itself, 'u' = \u00XX, else \ and that letter. */
static const char escapes[256] = {
    ['\b'] = 'b', ['\t'] = 't', ['\n'] = 'n', ['\f'] = 'f', ['\r'] = 'r', ['"'] = '"',  ['\\'] = '\\', [0x00] = 'u', [0x01] = 'u',
    [0x02] = 'u', [0x03] = 'u', [0x04] = 'u', [0x05] = 'u', [0x06] = 'u', [0x07] = 'u', [0x0b] = 'u',  [0x0e] = 'u', [0x0f] = 'u',
    [0x10] = 'u', [0x11] = 'u', [0x12] = 'u', [0x13] = 'u', [0x14] = 'u', [0x15] = 'u', [0x16] = 'u',  [0x17] = 'u', [0x18] = 'u',
    [0x19] = 'u', [0x1a] = 'u', [0x1b] = 'u', [0x1c] = 'u', [0x1d] = 'u', [0x1e] = 'u', [0x1f] = 'u',
};

/* UTF-8 sequences pass as they are (the database holds UTF-8). Room for the worst case (every byte
 * as \u00XX) is reserved once, so the loop writes without checks. */
void dps_jsonbuf_string(dps_jsonbuf_t *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    char *o;

    if (reserve(b, n * 6 + 2) != 0)
        return;
    o = b->data + b->len;
    *o++ = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char e = escapes[c];
        if (e == 0) {
            *o++ = (char)c;
        } else if (e != 'u') {
            *o++ = '\\', *o++ = e;
        } else {
            memcpy(o, "\\u00", 4);
            o[4] = hex[c >> 4], o[5] = hex[c & 15];
            o += 6;
        }
    }
    *o++ = '"';
    b->len = (size_t)(o - b->data);
}

static int on_dump(const char *chunk, size_t size, void *data)
{
    dps_jsonbuf_raw(data, chunk, size);
    return 0;
}

void dps_jsonbuf_json(dps_jsonbuf_t *b, const json_t *v)
{
    if (v == NULL || json_dump_callback(v, on_dump, b, JSON_COMPACT | JSON_ENCODE_ANY) != 0)
        dps_jsonbuf_lit(b, "null");
}

static int digits(const char *s, int n)
{
    for (int i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return 1;
}

/* PostgreSQL's ISO output in UTC ("2026-04-07 02:10:00.123456+00") rewritten in place of the general
 * conversion: no arithmetic, milliseconds truncated as dps_pg_timestamp_iso does. 0, or -1 if the
 * text has another shape (other zones, years past 9999, BC). */
static int utc_fast(const char *pg, char out[25])
{
    size_t n = strlen(pg);
    const char *frac = pg + 19, *zone;

    if (n < 22 || !digits(pg, 4) || pg[4] != '-' || !digits(pg + 5, 2) || pg[7] != '-' || !digits(pg + 8, 2) || pg[10] != ' ' ||
        !digits(pg + 11, 2) || pg[13] != ':' || !digits(pg + 14, 2) || pg[16] != ':' || !digits(pg + 17, 2))
        return -1;
    zone = *frac == '.' ? frac + 1 + strspn(frac + 1, "0123456789") : frac;
    if (strcmp(zone, "+00") != 0)
        return -1;
    memcpy(out, pg, 19);
    out[10] = 'T';
    out[19] = '.';
    for (int i = 0; i < 3; i++)
        out[20 + i] = *frac == '.' && frac + 1 + i < zone ? frac[1 + i] : '0';
    out[23] = 'Z';
    out[24] = '\0';
    return 0;
}

static void timestamp(dps_jsonbuf_t *b, const char *pg)
{
    char iso[32];

    if (utc_fast(pg, iso) == 0 || dps_pg_timestamp_iso(pg, iso, sizeof(iso)) == 0)
        dps_jsonbuf_string(b, iso, strlen(iso));
    else
        dps_jsonbuf_string(b, pg, strlen(pg));
}

/* PostgreSQL's number text is JSON except for NaN and the infinities, which JSON cannot carry. */
static void number(dps_jsonbuf_t *b, const char *v, size_t n)
{
    if (n == 0 || v[0] == 'N' || v[0] == 'I' || (v[0] == '-' && v[1] == 'I'))
        dps_jsonbuf_lit(b, "null");
    else
        dps_jsonbuf_raw(b, v, n);
}

void dps_jsonbuf_value(dps_jsonbuf_t *b, const PGresult *res, int row, int col)
{
    const char *v = PQgetvalue(res, row, col);
    size_t n = (size_t)PQgetlength(res, row, col);

    if (PQgetisnull(res, row, col)) {
        dps_jsonbuf_lit(b, "null");
        return;
    }
    switch (PQftype(res, col)) {
    case OID_BOOL:
        if (v[0] == 't')
            dps_jsonbuf_lit(b, "true");
        else
            dps_jsonbuf_lit(b, "false");
        return;
    case OID_INT2:
    case OID_INT4:
    case OID_INT8:
    case OID_FLOAT4:
    case OID_FLOAT8:
    case OID_NUMERIC:
        number(b, v, n);
        return;
    case OID_JSON:
    case OID_JSONB:
        dps_jsonbuf_raw(b, v, n);
        return;
    case OID_TIMESTAMPTZ:
        timestamp(b, v);
        return;
    default:
        dps_jsonbuf_string(b, v, n);
    }
}

void dps_jsonbuf_members(dps_jsonbuf_t *b, const PGresult *res, int row, int from, int to)
{
    for (int c = from; c < to; c++) {
        const char *name = PQfname(res, c);
        if (c > from)
            dps_jsonbuf_lit(b, ",");
        dps_jsonbuf_string(b, name, strlen(name));
        dps_jsonbuf_lit(b, ":");
        dps_jsonbuf_value(b, res, row, c);
    }
}

/* As dps_http_json, with the text already written. */
void dps_http_json_buf(dps_req_t *r, int status, dps_jsonbuf_t *b)
{
    if (b->oom) {
        dps_jsonbuf_free(b);
        dps_http_error(r, 500, "Internal server error");
        return;
    }
    dps_http_json_text(r, status, b->data, b->len);
    dps_jsonbuf_free(b);
}
