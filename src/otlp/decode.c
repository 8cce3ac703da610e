/* OTLP request bodies become protobuf-c messages here: bounded gzip, protobuf, and the OTLP JSON mapping. */
#include "depsera/otlp_decode.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

#define TRACES_SHAPE "Invalid OTLP payload: expected object with resourceSpans array"
#define METRICS_SHAPE "Invalid OTLP payload: expected object with resourceMetrics array"
#define STR_(x) #x
#define STR(x) STR_(x)
#define TOO_DEEP "messages nested more than " STR(DPS_OTLP_MAX_DEPTH) " levels deep"

/* An error message in the arena, or a fixed one when even that fails. */
static const char *errorf(dps_arena_t *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static const char *errorf(dps_arena_t *a, const char *fmt, ...)
{
    char buf[512], *s;
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (n < 0)
        return "Invalid OTLP payload";
    s = dps_arena_strndup(a, buf, strlen(buf));
    return s != NULL ? s : "Invalid OTLP payload";
}

/* The status for an allocation the arena refused. */
static dps_otlp_status_t refused(dps_arena_t *a, const char **err)
{
    if (a->failed == DPS_ARENA_LIMIT) {
        *err = "Payload too large to decode";
        return DPS_OTLP_TOO_LARGE;
    }
    *err = "Out of memory";
    return DPS_OTLP_NOMEM;
}

/* ---- Content-Type and Content-Encoding ---- */

/* The value up to its parameters (';'), without surrounding white space, equals `name` ignoring case. */
static int media_is(const char *v, size_t len, const char *name)
{
    const char *semi = v != NULL ? memchr(v, ';', len) : NULL;
    size_t n = strlen(name);

    if (v == NULL)
        return n == 0;
    if (semi != NULL)
        len = (size_t)(semi - v);
    while (len > 0 && (*v == ' ' || *v == '\t'))
        v++, len--;
    while (len > 0 && (v[len - 1] == ' ' || v[len - 1] == '\t'))
        len--;
    return len == n && strncasecmp(v, name, n) == 0;
}

dps_otlp_format_t dps_otlp_content_type(const char *value, size_t len)
{
    if (media_is(value, len, "application/x-protobuf"))
        return DPS_OTLP_PROTOBUF;
    if (media_is(value, len, "application/json"))
        return DPS_OTLP_JSON;
    return DPS_OTLP_FORMAT_UNSUPPORTED;
}

dps_otlp_encoding_t dps_otlp_content_encoding(const char *value, size_t len)
{
    if (media_is(value, len, "") || media_is(value, len, "identity"))
        return DPS_OTLP_IDENTITY;
    if (media_is(value, len, "gzip") || media_is(value, len, "x-gzip"))
        return DPS_OTLP_GZIP;
    return DPS_OTLP_ENCODING_UNSUPPORTED;
}

/* ---- gzip ---- */

static void *z_alloc(void *opaque, uInt items, uInt size)
{
    if (size != 0 && items > SIZE_MAX / size)
        return NULL;
    return dps_arena_alloc(opaque, (size_t)items * size);
}

static void z_free(void *opaque, void *p)
{
    (void)opaque, (void)p; /* released with the arena */
}

/* First output buffer: the size the gzip trailer announces (exact for a single member) when it is
 * plausible for deflate (at most ~1032:1), else a guess; +1 so that a body of exactly the announced
 * size ends without growing. Never more than limit + 1. */
static size_t first_capacity(const uint8_t *in, size_t len, size_t limit)
{
    size_t cap = len < SIZE_MAX / 4 ? len * 4 : SIZE_MAX;

    if (len >= 18) {
        size_t isize = (size_t)in[len - 4] | (size_t)in[len - 3] << 8 | (size_t)in[len - 2] << 16 | (size_t)in[len - 1] << 24;
        if (isize / 1032 <= len)
            cap = isize;
    }
    if (cap < 4096)
        cap = 4096;
    return cap < limit ? cap + 1 : limit + 1;
}

/* Move the output to a buffer twice as large, or of limit + 1 bytes once that is less than twice as
 * large again: the abandoned buffers then never add up to more than the last one. -1 when the arena
 * refuses. */
static int grow(dps_arena_t *a, uint8_t **buf, size_t *cap, size_t used, size_t limit)
{
    size_t ncap = *cap > (limit + 1) / 4 ? limit + 1 : *cap * 2;
    uint8_t *nbuf = dps_arena_alloc(a, ncap);

    if (nbuf == NULL)
        return -1;
    memcpy(nbuf, *buf, used);
    *buf = nbuf, *cap = ncap;
    return 0;
}

dps_otlp_status_t dps_otlp_inflate(dps_arena_t *a, const void *in, size_t len, size_t limit, const uint8_t **out, size_t *out_len,
                                   const char **err)
{
    z_stream z;
    uint8_t *buf;
    size_t cap, used = 0;
    int rc;

    a->failed = DPS_ARENA_OK;
    if (limit >= SIZE_MAX / 2 || len > UINT_MAX) {
        *err = "Payload too large";
        return DPS_OTLP_TOO_LARGE;
    }
    memset(&z, 0, sizeof(z));
    z.zalloc = z_alloc, z.zfree = z_free, z.opaque = a;
    z.next_in = (Bytef *)in, z.avail_in = (uInt)len;
    cap = first_capacity(in, len, limit);
    if ((buf = dps_arena_alloc(a, cap)) == NULL || inflateInit2(&z, 16 + MAX_WBITS) != Z_OK)
        return refused(a, err);
    for (;;) {
        if (used > limit || (used == cap && grow(a, &buf, &cap, used, limit) != 0))
            break;
        z.next_out = buf + used;
        z.avail_out = (uInt)(cap - used > UINT_MAX ? UINT_MAX : cap - used);
        rc = inflate(&z, Z_NO_FLUSH);
        used = (size_t)(z.next_out - buf);
        if (rc == Z_STREAM_END && z.avail_in == 0 && used <= limit) {
            *out = buf, *out_len = used;
            return DPS_OTLP_OK;
        }
        if (rc == Z_STREAM_END) /* another gzip member follows */
            rc = inflateReset(&z);
        if (rc == Z_MEM_ERROR)
            return refused(a, err);
        if (rc != Z_OK && rc != Z_BUF_ERROR) {
            *err = errorf(a, "Invalid gzip body: %s", z.msg != NULL ? z.msg : "corrupt data");
            return DPS_OTLP_UNDECODABLE;
        }
        if (used < cap && (z.avail_in == 0 || rc == Z_BUF_ERROR)) {
            *err = "Invalid gzip body: truncated";
            return DPS_OTLP_UNDECODABLE;
        }
    }
    if (used > limit) {
        *err = errorf(a, "Payload too large: more than %zu bytes once decompressed", limit);
        return DPS_OTLP_TOO_LARGE;
    }
    return refused(a, err);
}

/* ---- protobuf ---- */

/* What a walk of the wire format found. */
typedef struct {
    int bad_utf8;  /* a string field is not valid UTF-8 */
    int too_deep;  /* messages nested past DPS_OTLP_MAX_DEPTH */
    int malformed; /* the walk could not follow the encoding */
} scan_t;

/* A varint of at most `max` bytes; -1 if longer or cut short. */
static int varint(const uint8_t **p, const uint8_t *end, unsigned max, uint64_t *v)
{
    uint64_t r = 0;

    for (unsigned i = 0; i < max && *p < end; i++) {
        uint8_t b = *(*p)++;
        r |= (uint64_t)(b & 0x7f) << (7 * i);
        if ((b & 0x80) == 0) {
            *v = r;
            return 0;
        }
    }
    return -1;
}

/* A field key read the way protobuf-c reads it (at most 5 bytes, the number kept in 32 bits), so that
 * the walk finds the same fields unpack will; an invalid field number is refused here. */
static int field_key(const uint8_t **p, const uint8_t *end, uint32_t *number, unsigned *wire)
{
    const uint8_t *q = *p;
    uint32_t tag;
    unsigned shift = 4;

    if (q >= end || (q[0] & 0xf8) == 0)
        return -1;
    *wire = q[0] & 7;
    tag = (q[0] & 0x7f) >> 3;
    for (unsigned i = 0; i < 5 && q + i < end; i++) {
        if (i > 0) {
            tag |= (uint32_t)(q[i] & 0x7f) << shift;
            shift += 7;
        }
        if ((q[i] & 0x80) == 0) {
            if (tag == 0 || tag > 536870911) /* field numbers are 1..2^29-1; protobuf-c lets 0 through */
                return -1;
            *number = tag;
            *p = q + i + 1;
            return 0;
        }
    }
    return -1;
}

/* Strict UTF-8 (no overlongs, surrogates or code points past U+10FFFF): the length of the valid
 * sequence at s, or 0. */
static size_t utf8_seq(const uint8_t *s, const uint8_t *end)
{
    uint8_t c = s[0];
    size_t n = c < 0x80 ? 1 : c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
    uint8_t lo = 0x80, hi = 0xbf;

    if (n == 0 || (size_t)(end - s) < n)
        return 0;
    if (c == 0xe0)
        lo = 0xa0;
    else if (c == 0xed)
        hi = 0x9f;
    else if (c == 0xf0)
        lo = 0x90;
    else if (c == 0xf4)
        hi = 0x8f;
    if (n > 1 && (s[1] < lo || s[1] > hi))
        return 0;
    for (size_t i = 2; i < n; i++)
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    return n;
}

static int utf8_valid(const uint8_t *s, size_t len)
{
    const uint8_t *end = s + len;

    while (s < end) {
        uint64_t w;
        size_t n;
        if (end - s >= 8) {
            memcpy(&w, s, 8);
            if ((w & 0x8080808080808080ull) == 0) {
                s += 8;
                continue;
            }
        }
        if ((n = utf8_seq(s, end)) == 0)
            return 0;
        s += n;
    }
    return 1;
}

/* Walk a message of type d in [p, end) as protobuf-c's unpack will read it, without building it:
 * enter every length-delimited field that unpack parses as a message (depth-limited), check string
 * fields' UTF-8, skip the rest. Anything the walk cannot follow is `malformed` (unpack would refuse
 * it too), so nothing unpack accepts escapes the depth limit. */
static void scan(const ProtobufCMessageDescriptor *d, const uint8_t *p, const uint8_t *end, int depth, scan_t *s)
{
    if (depth > DPS_OTLP_MAX_DEPTH) {
        s->too_deep = 1;
        return;
    }
    while (p < end && !s->too_deep && !s->malformed) {
        const ProtobufCFieldDescriptor *f;
        uint32_t number;
        unsigned wire;
        uint64_t v;

        if (field_key(&p, end, &number, &wire) != 0) {
            s->malformed = 1;
            return;
        }
        switch (wire) {
        case 0:
            if (varint(&p, end, 10, &v) != 0)
                s->malformed = 1;
            break;
        case 1:
        case 5:
            if ((size_t)(end - p) < (wire == 1 ? 8u : 4u))
                s->malformed = 1;
            else
                p += wire == 1 ? 8 : 4;
            break;
        case 2:
            if (varint(&p, end, 5, &v) != 0 || v > INT_MAX || v > (uint64_t)(end - p)) {
                s->malformed = 1;
                break;
            }
            f = protobuf_c_message_descriptor_get_field(d, number);
            if (f != NULL && f->type == PROTOBUF_C_TYPE_MESSAGE)
                scan(f->descriptor, p, p + v, depth + 1, s);
            else if (f != NULL && f->type == PROTOBUF_C_TYPE_STRING && !s->bad_utf8 && !utf8_valid(p, (size_t)v))
                s->bad_utf8 = 1;
            p += v;
            break;
        default:
            s->malformed = 1;
        }
    }
}

/* s with every invalid UTF-8 sequence replaced by U+FFFD (a copy in the arena), or s itself when it
 * is valid; NULL when the arena refuses. */
static char *utf8_repair(dps_arena_t *a, char *s)
{
    const uint8_t *in = (const uint8_t *)s, *end;
    size_t len = strlen(s), o = 0;
    char *r;

    if (utf8_valid(in, len))
        return s;
    if ((r = dps_arena_alloc(a, len * 3 + 1)) == NULL)
        return NULL;
    for (end = in + len; in < end;) {
        size_t n = utf8_seq(in, end);
        if (n == 0) {
            memcpy(r + o, "\xef\xbf\xbd", 3), o += 3;
            in++;
        } else {
            memcpy(r + o, in, n), o += n;
            in += n;
        }
    }
    r[o] = '\0';
    return r;
}

/* Repair the strings of an unpacked message and of the messages in it; -1 when the arena refuses. */
static int repair_strings(dps_arena_t *a, ProtobufCMessage *m)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;

    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        char *member = (char *)m + f->offset;
        size_t n = 1;
        void **items = (void **)member;

        if (f->type != PROTOBUF_C_TYPE_STRING && f->type != PROTOBUF_C_TYPE_MESSAGE)
            continue;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            n = *(size_t *)((char *)m + f->quantifier_offset);
            items = *(void ***)member;
        } else if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) && *(uint32_t *)((char *)m + f->quantifier_offset) != f->id) {
            continue;
        }
        for (size_t j = 0; j < n; j++) {
            if (items[j] == NULL)
                continue;
            if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
                if (repair_strings(a, items[j]) != 0)
                    return -1;
            } else if ((items[j] = utf8_repair(a, items[j])) == NULL) {
                return -1;
            }
        }
    }
    return 0;
}

static dps_otlp_status_t decode_protobuf(dps_arena_t *a, const ProtobufCMessageDescriptor *d, const uint8_t *data, size_t len,
                                         ProtobufCMessage **out, const char **err)
{
    scan_t s = {0, 0, 0};
    ProtobufCMessage *m;

    scan(d, data, data + len, 1, &s);
    if (s.too_deep) {
        *err = "Invalid OTLP payload: " TOO_DEEP;
        return DPS_OTLP_UNDECODABLE;
    }
    if (s.malformed || (m = protobuf_c_message_unpack(d, dps_arena_pb(a), len, data)) == NULL) {
        if (!s.malformed && a->failed != DPS_ARENA_OK)
            return refused(a, err);
        *err = "Invalid OTLP payload: malformed protobuf";
        return DPS_OTLP_UNDECODABLE;
    }
    if (s.bad_utf8 && repair_strings(a, m) != 0)
        return refused(a, err);
    *out = m;
    return DPS_OTLP_OK;
}

/* ---- JSON (https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding) ---- */

/* Where a value sits, for error messages: a chain on the C stack, built only on the way down. */
typedef struct path {
    const struct path *up;
    const ProtobufCFieldDescriptor *field; /* NULL for the request itself */
    long index;                            /* element of a repeated field, or -1 */
} path_t;

typedef struct {
    dps_arena_t *a;
    const char *err;
    dps_otlp_status_t status;
} jctx_t;

/* The arena jansson allocates from while json_loadb runs (see decode_json). */
static __thread dps_arena_t *parse_arena;

static void *jansson_alloc(size_t n)
{
    return dps_arena_alloc(parse_arena, n);
}

static void jansson_free(void *p)
{
    (void)p; /* released with the arena */
}

/* Append a path's text (lowerCamelCase names, [i] indexes) to buf at *o. */
static void path_text(const path_t *p, char *buf, size_t cap, size_t *o)
{
    const char *name;

    if (p == NULL || p->field == NULL)
        return;
    path_text(p->up, buf, cap, o);
    if (*o > 0 && *o + 1 < cap)
        buf[(*o)++] = '.';
    for (name = p->field->name; *name != '\0' && *o + 1 < cap; name++) {
        if (*name == '_' && name[1] >= 'a' && name[1] <= 'z')
            buf[(*o)++] = (char)(*++name - 'a' + 'A');
        else
            buf[(*o)++] = *name;
    }
    if (p->index >= 0 && *o + 24 < cap)
        *o += (size_t)snprintf(buf + *o, cap - *o, "[%ld]", p->index);
    buf[*o] = '\0';
}

static int jfail(jctx_t *c, const path_t *p, const char *what)
{
    char where[384];
    size_t o = 0;

    where[0] = '\0';
    path_text(p, where, sizeof(where), &o);
    c->status = DPS_OTLP_UNDECODABLE;
    c->err = errorf(c->a, "Invalid OTLP payload: %s: %s", where, what);
    return -1;
}

static int jrefused(jctx_t *c)
{
    c->status = refused(c->a, &c->err);
    return -1;
}

/* The field a JSON member names: lowerCamelCase json name or the proto (snake_case) name. */
static const ProtobufCFieldDescriptor *field_named(const ProtobufCMessageDescriptor *d, const char *key)
{
    char name[64];
    size_t o = 0;

    for (; *key != '\0'; key++) {
        if (o + 3 > sizeof(name))
            return NULL;
        if (*key >= 'A' && *key <= 'Z')
            name[o++] = '_', name[o++] = (char)(*key - 'A' + 'a');
        else
            name[o++] = *key;
    }
    name[o] = '\0';
    return protobuf_c_message_descriptor_get_field_by_name(d, name);
}

/* A JSON number syntax check for numbers sent as strings (strtod alone takes hex, inf, nan, spaces). */
static int number_text(const char *s)
{
    if (*s == '-')
        s++;
    if (*s < '0' || *s > '9')
        return 0;
    while (*s >= '0' && *s <= '9')
        s++;
    if (*s == '.') {
        if (*++s < '0' || *s > '9')
            return 0;
        while (*s >= '0' && *s <= '9')
            s++;
    }
    if (*s == 'e' || *s == 'E') {
        if (*++s == '+' || *s == '-')
            s++;
        if (*s < '0' || *s > '9')
            return 0;
        while (*s >= '0' && *s <= '9')
            s++;
    }
    return *s == '\0';
}

/* A JSON number, or a string holding one, "NaN", "Infinity" or "-Infinity" (proto3 JSON). */
static int json_double(const json_t *v, double *out)
{
    const char *s;

    if (json_is_number(v)) {
        *out = json_number_value(v);
        return 0;
    }
    if (!json_is_string(v))
        return -1;
    s = json_string_value(v);
    if (strcmp(s, "NaN") == 0)
        *out = NAN;
    else if (strcmp(s, "Infinity") == 0)
        *out = INFINITY;
    else if (strcmp(s, "-Infinity") == 0)
        *out = -INFINITY;
    else if (number_text(s))
        *out = strtod(s, NULL);
    else
        return -1;
    return 0;
}

/* An integer given as a JSON integer, an integral JSON real, or a decimal string (how OTLP JSON
 * sends 64-bit values), in [min, max] (or, unsigned, [0, umax]). */
static int json_int(const json_t *v, int is_signed, int64_t min, int64_t max, uint64_t umax, uint64_t *out)
{
    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        if (is_signed ? (i < min || i > max) : (i < 0 || (uint64_t)i > umax))
            return -1;
        *out = (uint64_t)i;
        return 0;
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        if (d != trunc(d) || (is_signed ? !(d >= -0x1p63 && d < 0x1p63) : !(d >= 0 && d < 0x1p64)))
            return -1;
        if (is_signed && ((int64_t)d < min || (int64_t)d > max))
            return -1;
        if (!is_signed && (uint64_t)d > umax)
            return -1;
        *out = is_signed ? (uint64_t)(int64_t)d : (uint64_t)d;
        return 0;
    }
    if (json_is_string(v)) {
        const char *s = json_string_value(v), *digits = s + (*s == '-');
        char *end;
        if (*digits < '0' || *digits > '9')
            return -1;
        errno = 0;
        if (is_signed) {
            long long i = strtoll(s, &end, 10);
            if (*end != '\0' || errno != 0 || i < min || i > max)
                return -1;
            *out = (uint64_t)i;
        } else {
            unsigned long long u;
            if (*s == '-')
                return -1;
            u = strtoull(s, &end, 10);
            if (*end != '\0' || errno != 0 || u > umax)
                return -1;
            *out = u;
        }
        return 0;
    }
    return -1;
}

static int hex_digit(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* Base64 (standard or URL-safe alphabet, padding optional) digit, or -1. */
static int b64_digit(char c)
{
    return c >= 'A' && c <= 'Z'   ? c - 'A'
           : c >= 'a' && c <= 'z' ? c - 'a' + 26
           : c >= '0' && c <= '9' ? c - '0' + 52
           : c == '+' || c == '-' ? 62
           : c == '/' || c == '_' ? 63
                                  : -1;
}

static int decode_hex(jctx_t *c, const path_t *p, const char *s, size_t len, ProtobufCBinaryData *out)
{
    uint8_t *bytes;

    if (len % 2 != 0)
        return jfail(c, p, "invalid hex (odd length)");
    if ((bytes = dps_arena_alloc(c->a, len / 2)) == NULL)
        return jrefused(c);
    for (size_t i = 0; i < len; i += 2) {
        int hi = hex_digit(s[i]), lo = hex_digit(s[i + 1]);
        if (hi < 0 || lo < 0)
            return jfail(c, p, "invalid hex");
        bytes[i / 2] = (uint8_t)(hi << 4 | lo);
    }
    out->data = bytes, out->len = len / 2;
    return 0;
}

static int decode_base64(jctx_t *c, const path_t *p, const char *s, size_t len, ProtobufCBinaryData *out)
{
    size_t n = len, o = 0;
    uint32_t acc = 0;
    uint8_t *bytes;

    while (n > 0 && len - n < 2 && s[n - 1] == '=')
        n--;
    if ((n < len && len % 4 != 0) || n % 4 == 1)
        return jfail(c, p, "invalid base64");
    if ((bytes = dps_arena_alloc(c->a, n / 4 * 3 + 2)) == NULL)
        return jrefused(c);
    for (size_t i = 0; i < n; i++) {
        int d = b64_digit(s[i]);
        if (d < 0)
            return jfail(c, p, "invalid base64");
        acc = acc << 6 | (uint32_t)d;
        if (i % 4 == 3) {
            bytes[o++] = (uint8_t)(acc >> 16), bytes[o++] = (uint8_t)(acc >> 8), bytes[o++] = (uint8_t)acc;
            acc = 0;
        }
    }
    if (n % 4 == 2)
        bytes[o++] = (uint8_t)(acc >> 4);
    else if (n % 4 == 3)
        bytes[o++] = (uint8_t)(acc >> 10), bytes[o++] = (uint8_t)(acc >> 2);
    out->data = bytes, out->len = o;
    return 0;
}

/* OTLP sends trace and span ids as hex, every other bytes field as base64. */
static int is_id_field(const ProtobufCFieldDescriptor *f)
{
    return strcmp(f->name, "trace_id") == 0 || strcmp(f->name, "span_id") == 0 || strcmp(f->name, "parent_span_id") == 0;
}

static size_t element_size(ProtobufCType type)
{
    switch (type) {
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_DOUBLE:
        return 8;
    case PROTOBUF_C_TYPE_BOOL:
        return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_STRING:
    case PROTOBUF_C_TYPE_MESSAGE:
        return sizeof(void *);
    case PROTOBUF_C_TYPE_BYTES:
        return sizeof(ProtobufCBinaryData);
    default:
        return 4;
    }
}

static int decode_message(jctx_t *c, const ProtobufCMessageDescriptor *d, const json_t *v, const path_t *p, int depth,
                          ProtobufCMessage **out);

/* An enum given as its number or its name. */
static int decode_enum(jctx_t *c, const ProtobufCFieldDescriptor *f, const json_t *v, const path_t *p, int32_t *out)
{
    const ProtobufCEnumValue *ev;
    uint64_t u;

    if (json_is_string(v)) {
        if ((ev = protobuf_c_enum_descriptor_get_value_by_name(f->descriptor, json_string_value(v))) == NULL)
            return jfail(c, p, "unknown enum value name");
        *out = ev->value;
        return 0;
    }
    if (!json_is_number(v) || json_int(v, 1, INT32_MIN, INT32_MAX, 0, &u) != 0)
        return jfail(c, p, "expected an enum name or integer");
    *out = (int32_t)(int64_t)u;
    return 0;
}

/* One value of field f (an element, for a repeated field) into dst. */
static int decode_value(jctx_t *c, const ProtobufCFieldDescriptor *f, void *dst, const json_t *v, const path_t *p, int depth)
{
    uint64_t u;
    double d;

    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        if (json_int(v, 1, INT32_MIN, INT32_MAX, 0, &u) != 0)
            return jfail(c, p, "expected a 32-bit integer");
        *(int32_t *)dst = (int32_t)(int64_t)u;
        return 0;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        if (json_int(v, 0, 0, 0, UINT32_MAX, &u) != 0)
            return jfail(c, p, "expected an unsigned 32-bit integer");
        *(uint32_t *)dst = (uint32_t)u;
        return 0;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        if (json_int(v, 1, INT64_MIN, INT64_MAX, 0, &u) != 0)
            return jfail(c, p, "expected a 64-bit integer (number or decimal string)");
        *(int64_t *)dst = (int64_t)u;
        return 0;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        if (json_int(v, 0, 0, 0, UINT64_MAX, &u) != 0)
            return jfail(c, p, "expected an unsigned 64-bit integer (number or decimal string)");
        *(uint64_t *)dst = u;
        return 0;
    case PROTOBUF_C_TYPE_FLOAT:
    case PROTOBUF_C_TYPE_DOUBLE:
        if (json_double(v, &d) != 0)
            return jfail(c, p, "expected a number");
        if (f->type == PROTOBUF_C_TYPE_FLOAT)
            *(float *)dst = (float)d;
        else
            *(double *)dst = d;
        return 0;
    case PROTOBUF_C_TYPE_BOOL:
        if (!json_is_boolean(v))
            return jfail(c, p, "expected true or false");
        *(protobuf_c_boolean *)dst = json_is_true(v);
        return 0;
    case PROTOBUF_C_TYPE_ENUM:
        return decode_enum(c, f, v, p, dst);
    case PROTOBUF_C_TYPE_STRING:
        if (!json_is_string(v))
            return jfail(c, p, "expected a string");
        *(const char **)dst = json_string_value(v); /* jansson's copy, in the arena */
        return 0;
    case PROTOBUF_C_TYPE_BYTES:
        if (!json_is_string(v))
            return jfail(c, p, is_id_field(f) ? "expected a hex string" : "expected a base64 string");
        if (is_id_field(f))
            return decode_hex(c, p, json_string_value(v), json_string_length(v), dst);
        return decode_base64(c, p, json_string_value(v), json_string_length(v), dst);
    case PROTOBUF_C_TYPE_MESSAGE:
        return decode_message(c, f->descriptor, v, p, depth + 1, dst);
    }
    return jfail(c, p, "unsupported field type");
}

static int decode_repeated(jctx_t *c, ProtobufCMessage *m, const ProtobufCFieldDescriptor *f, const json_t *v, const path_t *up,
                           int depth)
{
    size_t n = json_array_size(v), size = element_size(f->type);
    path_t p = {up, f, -1};
    char *items = NULL;

    if (!json_is_array(v))
        return jfail(c, &p, "expected an array");
    if (n > 0 && (items = dps_arena_calloc(c->a, n * size)) == NULL)
        return jrefused(c);
    for (size_t i = 0; i < n; i++) {
        const json_t *e = json_array_get(v, i);
        p.index = (long)i;
        if (json_is_null(e))
            return jfail(c, &p, "null in an array");
        if (decode_value(c, f, items + i * size, e, &p, depth) != 0)
            return -1;
    }
    *(size_t *)((char *)m + f->quantifier_offset) = n;
    *(void **)((char *)m + f->offset) = items;
    return 0;
}

static int decode_field(jctx_t *c, ProtobufCMessage *m, const ProtobufCFieldDescriptor *f, const json_t *v, const path_t *up,
                        int depth)
{
    path_t p = {up, f, -1};
    uint32_t *oneof_case = (uint32_t *)((char *)m + f->quantifier_offset);

    if (f->label == PROTOBUF_C_LABEL_REPEATED)
        return decode_repeated(c, m, f, v, up, depth);
    if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) && *oneof_case != 0 && *oneof_case != f->id)
        return jfail(c, &p, "more than one member of a oneof is set");
    if (decode_value(c, f, (char *)m + f->offset, v, &p, depth) != 0)
        return -1;
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
        *oneof_case = f->id;
    else if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->type != PROTOBUF_C_TYPE_MESSAGE && f->type != PROTOBUF_C_TYPE_STRING)
        *(protobuf_c_boolean *)((char *)m + f->quantifier_offset) = 1;
    return 0;
}

/* A message of type d from a JSON object: known members decoded (null = absent), unknown ones ignored. */
static int decode_message(jctx_t *c, const ProtobufCMessageDescriptor *d, const json_t *v, const path_t *p, int depth,
                          ProtobufCMessage **out)
{
    const char *key;
    json_t *member;
    ProtobufCMessage *m;

    if (!json_is_object(v))
        return jfail(c, p, "expected an object");
    if (depth > DPS_OTLP_MAX_DEPTH)
        return jfail(c, p, TOO_DEEP);
    if ((m = dps_arena_alloc(c->a, d->sizeof_message)) == NULL)
        return jrefused(c);
    d->message_init(m);
    json_object_foreach((json_t *)v, key, member)
    {
        const ProtobufCFieldDescriptor *f = field_named(d, key);
        if (f == NULL || json_is_null(member))
            continue;
        if (decode_field(c, m, f, member, p, depth) != 0)
            return -1;
    }
    *out = m;
    return 0;
}

/* Parse with jansson allocating from the arena (its tree is never freed piece by piece: the arena
 * goes at once), then map the tree onto d. `array` is the member that must be an array. */
static dps_otlp_status_t decode_json(dps_arena_t *a, const ProtobufCMessageDescriptor *d, const char *array, const char *shape,
                                     const uint8_t *data, size_t len, ProtobufCMessage **out, const char **err)
{
    jctx_t c = {a, NULL, DPS_OTLP_OK};
    path_t root = {NULL, NULL, -1};
    json_malloc_t saved_malloc;
    json_free_t saved_free;
    const ProtobufCFieldDescriptor *f;
    json_error_t je;
    json_t *doc, *member;

    json_get_alloc_funcs(&saved_malloc, &saved_free);
    parse_arena = a;
    json_set_alloc_funcs(jansson_alloc, jansson_free);
    doc = json_loadb((const char *)data, len, 0, &je);
    json_set_alloc_funcs(saved_malloc, saved_free);
    parse_arena = NULL;
    if (doc == NULL) {
        if (a->failed != DPS_ARENA_OK)
            return refused(a, err);
        *err = errorf(a, "Invalid JSON: %s (line %d, column %d)", je.text, je.line, je.column);
        return DPS_OTLP_UNDECODABLE;
    }
    f = protobuf_c_message_descriptor_get_field_by_name(d, array);
    member = json_object_get(doc, array); /* snake_case name */
    if (!json_is_array(member)) {
        char camel[64] = "";
        size_t o = 0;
        path_t p = {NULL, f, -1};
        path_text(&p, camel, sizeof(camel), &o);
        member = json_object_get(doc, camel);
    }
    if (!json_is_object(doc) || !json_is_array(member)) {
        *err = shape;
        return DPS_OTLP_UNDECODABLE;
    }
    if (decode_message(&c, d, doc, &root, 1, out) != 0) {
        *err = c.err;
        return c.status;
    }
    return DPS_OTLP_OK;
}

/* ---- entry points ---- */

static dps_otlp_status_t decode(dps_arena_t *a, const dps_otlp_body_t *body, const ProtobufCMessageDescriptor *d, const char *array,
                                const char *shape, ProtobufCMessage **out, const char **err)
{
    const uint8_t *data = body->data;
    size_t len = body->len;
    dps_otlp_status_t st;

    a->failed = DPS_ARENA_OK;
    if (body->encoding == DPS_OTLP_GZIP) {
        if ((st = dps_otlp_inflate(a, data, len, body->limit, &data, &len, err)) != DPS_OTLP_OK)
            return st;
    } else if (len > body->limit) {
        *err = errorf(a, "Payload too large: more than %zu bytes", body->limit);
        return DPS_OTLP_TOO_LARGE;
    }
    if (body->format == DPS_OTLP_JSON)
        return decode_json(a, d, array, shape, data, len, out, err);
    return decode_protobuf(a, d, data, len, out, err);
}

dps_otlp_status_t dps_otlp_decode_traces(dps_arena_t *a, const dps_otlp_body_t *body, dps_otlp_traces_t **out, const char **err)
{
    return decode(a, body, &opentelemetry__proto__collector__trace__v1__export_trace_service_request__descriptor, "resource_spans",
                  TRACES_SHAPE, (ProtobufCMessage **)out, err);
}

dps_otlp_status_t dps_otlp_decode_metrics(dps_arena_t *a, const dps_otlp_body_t *body, dps_otlp_metrics_t **out, const char **err)
{
    return decode(a, body, &opentelemetry__proto__collector__metrics__v1__export_metrics_service_request__descriptor,
                  "resource_metrics", METRICS_SHAPE, (ProtobufCMessage **)out, err);
}
