/* Large JSON responses written as text straight from query results (lists of thousands of rows). */
#include "depsera/jsonbuf.h"
#include "depsera/http.h"

#include <stdint.h>
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

/* Bytes that need no escape, 8 at a time: none below 0x20, none '"' or '\\' (bit tricks on a word:
 * a byte is flagged when subtracting from it borrows). Long plain runs are the common case. */
static int plain8(const unsigned char *s)
{
    const uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u;
    uint64_t x, q, bs;

    memcpy(&x, s, 8);
    q = x ^ (ones * '"');
    bs = x ^ (ones * '\\');
    return (((x - ones * 0x20) & ~x) | ((q - ones) & ~q) | ((bs - ones) & ~bs)) & highs ? 0 : 1;
}

/* Escapes s (n bytes) at o, which has room for n * 6 + 2 bytes; returns the end. UTF-8 sequences pass
 * as they are (the database holds UTF-8). */
static char *escape_into(char *o, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t i = 0;

    *o++ = '"';
    while (i < n) {
        if (i + 8 <= n && plain8((const unsigned char *)s + i)) {
            memcpy(o, s + i, 8);
            o += 8, i += 8;
            continue;
        }
        unsigned char c = (unsigned char)s[i++];
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
    return o;
}

/* Room for the worst case (every byte as \u00XX) is reserved once, so the escaping writes without checks. */
void dps_jsonbuf_string(dps_jsonbuf_t *b, const char *s, size_t n)
{
    if (reserve(b, n * 6 + 2) != 0)
        return;
    b->len = (size_t)(escape_into(b->data + b->len, s, n) - b->data);
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

/* How a column's values are written. */
enum kind { K_TEXT, K_BOOL, K_NUMBER, K_JSON, K_TIMESTAMP };

static int kind_of(Oid type)
{
    switch (type) {
    case OID_BOOL:
        return K_BOOL;
    case OID_INT2:
    case OID_INT4:
    case OID_INT8:
    case OID_FLOAT4:
    case OID_FLOAT8:
    case OID_NUMERIC:
        return K_NUMBER;
    case OID_JSON:
    case OID_JSONB:
        return K_JSON;
    case OID_TIMESTAMPTZ:
        return K_TIMESTAMP;
    default:
        return K_TEXT;
    }
}

/* The most a value of n text bytes can take once written (escaped text is the longest). */
#define VALUE_ROOM(n) ((n)*6 + 8)

static char *put(char *o, const char *s, size_t n)
{
    memcpy(o, s, n);
    return o + n;
}

/* Writes one non-NULL value at o, which has VALUE_ROOM(n) bytes; returns the end. PostgreSQL's number
 * text is JSON except for NaN and the infinities, which JSON cannot carry. */
static char *value_into(char *o, int kind, const char *v, size_t n)
{
    char iso[32];

    switch (kind) {
    case K_BOOL:
        return v[0] == 't' ? put(o, "true", 4) : put(o, "false", 5);
    case K_NUMBER:
        if (n == 0 || v[0] == 'N' || v[0] == 'I' || (v[0] == '-' && v[1] == 'I'))
            return put(o, "null", 4);
        return put(o, v, n);
    case K_JSON:
        return put(o, v, n);
    case K_TIMESTAMP:
        if (utc_fast(v, iso) == 0 || dps_pg_timestamp_iso(v, iso, sizeof(iso)) == 0)
            return escape_into(o, iso, strlen(iso));
        return escape_into(o, v, n);
    default:
        return escape_into(o, v, n);
    }
}

void dps_jsonbuf_value(dps_jsonbuf_t *b, const PGresult *res, int row, int col)
{
    size_t n = (size_t)PQgetlength(res, row, col);

    if (PQgetisnull(res, row, col)) {
        dps_jsonbuf_lit(b, "null");
        return;
    }
    if (reserve(b, VALUE_ROOM(n)) != 0)
        return;
    b->len = (size_t)(value_into(b->data + b->len, kind_of(PQftype(res, col)), PQgetvalue(res, row, col), n) - b->data);
}

struct dps_jsonbuf_col {
    char *key; /* "name": (escaped, quoted) */
    size_t key_len;
    int kind;
};

int dps_jsonbuf_cols_init(dps_jsonbuf_cols_t *c, const PGresult *res, int from, int to)
{
    c->from = from, c->to = to;
    if ((c->col = calloc((size_t)(to > from ? to - from : 1), sizeof(*c->col))) == NULL)
        return -1;
    for (int i = from; i < to; i++) {
        const char *name = PQfname(res, i);
        size_t n = strlen(name);
        struct dps_jsonbuf_col *col = &c->col[i - from];

        if ((col->key = malloc(VALUE_ROOM(n) + 1)) == NULL) {
            dps_jsonbuf_cols_free(c);
            return -1;
        }
        col->key_len = (size_t)(put(escape_into(col->key, name, n), ":", 1) - col->key);
        col->kind = kind_of(PQftype(res, i));
    }
    return 0;
}

void dps_jsonbuf_cols_free(dps_jsonbuf_cols_t *c)
{
    if (c->col != NULL)
        for (int i = c->from; i < c->to; i++)
            free(c->col[i - c->from].key);
    free(c->col);
    c->col = NULL;
}

/* One reservation per row for its worst case, then plain writes. */
void dps_jsonbuf_row(dps_jsonbuf_t *b, const dps_jsonbuf_cols_t *c, const PGresult *res, int row)
{
    size_t room = 0;
    char *o;

    for (int i = c->from; i < c->to; i++)
        room += c->col[i - c->from].key_len + 1 + VALUE_ROOM((size_t)PQgetlength(res, row, i));
    if (reserve(b, room) != 0)
        return;
    o = b->data + b->len;
    for (int i = c->from; i < c->to; i++) {
        const struct dps_jsonbuf_col *col = &c->col[i - c->from];
        if (i > c->from)
            *o++ = ',';
        o = put(o, col->key, col->key_len);
        if (PQgetisnull(res, row, i))
            o = put(o, "null", 4);
        else
            o = value_into(o, col->kind, PQgetvalue(res, row, i), (size_t)PQgetlength(res, row, i));
    }
    b->len = (size_t)(o - b->data);
}

void dps_jsonbuf_members(dps_jsonbuf_t *b, const PGresult *res, int row, int from, int to)
{
    dps_jsonbuf_cols_t c;

    if (dps_jsonbuf_cols_init(&c, res, from, to) != 0) {
        b->oom = 1;
        return;
    }
    dps_jsonbuf_row(b, &c, res, row);
    dps_jsonbuf_cols_free(&c);
}

/* As dps_http_json, with the text already written; the text is handed over, not copied. */
void dps_http_json_buf(dps_req_t *r, int status, dps_jsonbuf_t *b)
{
    char *data = b->data;
    size_t len = b->len;

    if (b->oom || len == 0) {
        dps_jsonbuf_free(b);
        dps_http_error(r, 500, "Internal server error");
        return;
    }
    memset(b, 0, sizeof(*b));
    dps_http_send_owned(r, status, "application/json; charset=utf-8", data, len);
}
