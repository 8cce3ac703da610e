/* Dependency discovery from spans: target names, types, descriptions and per-target aggregation (§8.2–§8.6). */
#include "depsera/otlp_discover.h"
#include "depsera/unicase.h"
#include "depsera/util.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

/* ---- attribute values ------------------------------------------------------------------------------ */

int dps_discover_truthy(const dps_otlp_attr_t *a)
{
    if (a == NULL)
        return 0;
    switch (a->kind) {
    case DPS_OTLP_STRING:
        return a->s != NULL && a->s[0] != '\0';
    case DPS_OTLP_INT:
        return a->i != 0;
    case DPS_OTLP_DOUBLE:
        return a->d != 0 && !isnan(a->d);
    case DPS_OTLP_BOOL:
        return a->b != 0;
    }
    return 0;
}

/* String(value): the string itself, or the number or boolean written into num (32 bytes). */
static const char *str_of(const dps_otlp_attr_t *a, char *num)
{
    switch (a->kind) {
    case DPS_OTLP_STRING:
        return a->s != NULL ? a->s : "";
    case DPS_OTLP_INT:
        snprintf(num, 32, "%lld", (long long)a->i);
        return num;
    case DPS_OTLP_DOUBLE:
        dps_js_number(a->d, num);
        return num;
    case DPS_OTLP_BOOL:
        return a->b ? "true" : "false";
    }
    return "";
}

/* ---- the attributes discovery reads ---------------------------------------------------------------- */

enum {
    K_DB_COLLECTION_NAME,
    K_DB_NAME,
    K_DB_NAMESPACE,
    K_DB_OPERATION,
    K_DB_OPERATION_NAME,
    K_DB_SQL_TABLE,
    K_DB_SYSTEM,
    K_DB_SYSTEM_NAME,
    K_HTTP_METHOD,
    K_HTTP_REQUEST_METHOD,
    K_HTTP_TARGET,
    K_HTTP_URL,
    K_MESSAGING_DESTINATION,
    K_MESSAGING_DESTINATION_NAME,
    K_MESSAGING_OPERATION,
    K_MESSAGING_OPERATION_NAME,
    K_MESSAGING_SYSTEM,
    K_NET_PEER_NAME,
    K_PEER_SERVICE,
    K_RPC_METHOD,
    K_RPC_SERVICE,
    K_RPC_SYSTEM,
    K_RPC_SYSTEM_NAME,
    K_SERVER_ADDRESS,
    K_URL_FULL,
    K_URL_PATH,
    K_COUNT
};

/* Indexed by the enum above, which is in strcmp order (binary search relies on it). */
static const char *const known_keys[K_COUNT] = {
    "db.collection.name",
    "db.name",
    "db.namespace",
    "db.operation",
    "db.operation.name",
    "db.sql.table",
    "db.system",
    "db.system.name",
    "http.method",
    "http.request.method",
    "http.target",
    "http.url",
    "messaging.destination",
    "messaging.destination.name",
    "messaging.operation",
    "messaging.operation.name",
    "messaging.system",
    "net.peer.name",
    "peer.service",
    "rpc.method",
    "rpc.service",
    "rpc.system",
    "rpc.system.name",
    "server.address",
    "url.full",
    "url.path",
};

/* One span's attributes as discovery sees them: the last occurrence of each known key, NULL if absent. */
typedef struct {
    const dps_otlp_attr_t *a[K_COUNT];
} view_t;

static int known_slot(const char *key)
{
    int lo = 0, hi = K_COUNT;

    while (lo < hi) {
        int mid = lo + (hi - lo) / 2, c = strcmp(key, known_keys[mid]);

        if (c == 0)
            return mid;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return -1;
}

static void view_build(view_t *v, const dps_otlp_attr_t *attrs, size_t n)
{
    memset(v, 0, sizeof(*v));
    for (size_t i = 0; attrs != NULL && i < n; i++) {
        int slot = attrs[i].key != NULL ? known_slot(attrs[i].key) : -1;

        if (slot >= 0)
            v->a[slot] = &attrs[i];
    }
}

/* `a ?? b`: the first attribute if present (whatever its value), else the second. */
static const dps_otlp_attr_t *coalesce(const view_t *v, int a, int b)
{
    return v->a[a] != NULL ? v->a[a] : v->a[b];
}

/* ---- URL host (WHATWG) ------------------------------------------------------------------------------ */

#define IS_TNL(c) ((c) == '\t' || (c) == '\n' || (c) == '\r')
#define IS_ALPHA(c) (((c) | 0x20) >= 'a' && ((c) | 0x20) <= 'z')
#define IS_DIGIT(c) ((c) >= '0' && (c) <= '9')

/* WHATWG's forbidden host code points (the opaque-host check); domains also forbid C0, '%' and DEL. */
static int forbidden_host(unsigned char c)
{
    return c == 0 || c == '\t' || c == '\n' || c == '\r' || c == ' ' || c == '#' || c == '/' || c == ':' || c == '<' || c == '>' ||
           c == '?' || c == '@' || c == '[' || c == '\\' || c == ']' || c == '^' || c == '|';
}

static int hexval(unsigned char c)
{
    if (IS_DIGIT(c))
        return c - '0';
    c |= 0x20;
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* WHATWG IPv4 number parser on s[0..n): 0x.. hex, 0.. octal, else decimal; "" after a prefix is 0.
 * -1 on failure; values above 2^32 saturate at 2^32 + 1 (always out of range for the caller). */
static int ipv4_number(const char *s, size_t n, uint64_t *out)
{
    unsigned radix = 10;
    uint64_t v = 0;

    if (n == 0)
        return -1;
    if (n >= 2 && s[0] == '0' && (s[1] | 0x20) == 'x')
        radix = 16, s += 2, n -= 2;
    else if (n >= 2 && s[0] == '0')
        radix = 8, s += 1, n -= 1;
    for (size_t i = 0; i < n; i++) {
        int d = hexval((unsigned char)s[i]);

        if (d < 0 || (unsigned)d >= radix)
            return -1;
        v = v * radix + (unsigned)d;
        if (v > 0x100000000ULL)
            v = 0x100000001ULL;
    }
    *out = v;
    return 0;
}

/* WHATWG "ends in a number": the last label (a trailing empty one ignored) is digits or an IPv4 number. */
static int ends_in_number(const char *s, size_t n)
{
    const char *last;
    uint64_t v;

    if (n > 0 && s[n - 1] == '.')
        n--; /* a trailing empty label is ignored */
    last = s + n;
    while (last > s && last[-1] != '.')
        last--;
    n -= (size_t)(last - s);
    if (n > 0 && strspn(last, "0123456789") >= n)
        return 1;
    return ipv4_number(last, n, &v) == 0;
}

/* WHATWG IPv4 parser; writes dotted decimal into out (16 bytes). */
static int ipv4_parse(const char *s, size_t n, char *out)
{
    uint64_t parts[4], v = 0;
    size_t count = 0, from = 0;

    if (n > 0 && s[n - 1] == '.')
        n--; /* one trailing empty label is allowed */
    for (size_t i = 0; i <= n; i++) {
        if (i < n && s[i] != '.')
            continue;
        if (count == 4 || ipv4_number(s + from, i - from, &parts[count]) != 0)
            return -1;
        count++, from = i + 1;
    }
    for (size_t i = 0; i + 1 < count; i++) {
        if (parts[i] > 255)
            return -1;
        v = v * 256 + parts[i];
    }
    if (parts[count - 1] >= (1ULL << (8 * (5 - count))))
        return -1;
    v = (v << (8 * (5 - count))) + parts[count - 1];
    snprintf(out, 16, "%u.%u.%u.%u", (unsigned)(v >> 24), (unsigned)(v >> 16) & 255, (unsigned)(v >> 8) & 255, (unsigned)v & 255);
    return 0;
}

/* WHATWG IPv6 parser on s[0..n) (inside the brackets) into 8 pieces. */
static int ipv6_parse(const char *s, size_t n, uint16_t addr[8])
{
    size_t p = 0, piece = 0, compress = SIZE_MAX;

    memset(addr, 0, 8 * sizeof(*addr));
#define C (p < n ? (unsigned char)s[p] : 0u)
#define END (p >= n)
    if (!END && C == ':') {
        if (p + 1 >= n || s[p + 1] != ':')
            return -1;
        p += 2;
        compress = ++piece;
    }
    while (!END) {
        unsigned value = 0, length = 0;

        if (piece == 8)
            return -1;
        if (C == ':') {
            if (compress != SIZE_MAX)
                return -1;
            p++;
            compress = ++piece;
            continue;
        }
        while (length < 4 && !END && hexval(C) >= 0)
            value = value * 16 + (unsigned)hexval(C), p++, length++;
        if (!END && C == '.') { /* an embedded IPv4 address ends it */
            unsigned seen = 0;

            if (length == 0 || piece > 6)
                return -1;
            p -= length;
            while (!END) {
                int v4 = -1;

                if (seen > 0) {
                    if (C != '.' || seen >= 4)
                        return -1;
                    p++;
                }
                if (END || !IS_DIGIT(C))
                    return -1;
                while (!END && IS_DIGIT(C)) {
                    if (v4 == 0)
                        return -1; /* leading zero */
                    v4 = v4 < 0 ? (int)(C - '0') : v4 * 10 + (int)(C - '0');
                    if (v4 > 255)
                        return -1;
                    p++;
                }
                addr[piece] = (uint16_t)(addr[piece] * 0x100 + (unsigned)v4);
                if (++seen == 2 || seen == 4)
                    piece++;
            }
            if (seen != 4)
                return -1;
            break;
        }
        if (!END && C == ':') {
            p++;
            if (END)
                return -1;
        } else if (!END) {
            return -1;
        }
        addr[piece++] = (uint16_t)value;
    }
#undef C
#undef END
    if (compress != SIZE_MAX) {
        size_t swaps = piece - compress;

        for (piece = 7; piece != 0 && swaps > 0; piece--, swaps--) {
            uint16_t t = addr[piece];

            addr[piece] = addr[compress + swaps - 1];
            addr[compress + swaps - 1] = t;
        }
    } else if (piece != 8) {
        return -1;
    }
    return 0;
}

/* WHATWG IPv6 serializer, in brackets, into out (42 bytes). */
static void ipv6_format(const uint16_t addr[8], char *out)
{
    size_t best = SIZE_MAX, best_len = 1, o = 0;
    int ignore0 = 0;

    for (size_t i = 0; i < 8;) { /* the first longest run of two or more zero pieces */
        size_t j = i;

        while (j < 8 && addr[j] == 0)
            j++;
        if (j - i > best_len)
            best = i, best_len = j - i;
        i = j > i ? j : i + 1;
    }
    out[o++] = '[';
    for (size_t i = 0; i < 8; i++) {
        if (ignore0 && addr[i] == 0)
            continue;
        ignore0 = 0;
        if (best == i) {
            o += (size_t)snprintf(out + o, 3, "%s", i == 0 ? "::" : ":");
            ignore0 = 1;
            continue;
        }
        o += (size_t)snprintf(out + o, 6, "%x%s", addr[i], i != 7 ? ":" : "");
    }
    out[o++] = ']';
    out[o] = '\0';
}

/* Host parser for the host text in out[0..n) (tab and newline already removed); result in out. */
static int host_parse(char *out, size_t n, size_t cap, int special)
{
    char ip[42];
    uint16_t addr[8];
    size_t m = 0;

    if (n > 0 && out[0] == '[') {
        if (n < 2 || out[n - 1] != ']' || ipv6_parse(out + 1, n - 2, addr) != 0)
            return -1;
        ipv6_format(addr, ip);
        goto copy_ip;
    }
    if (!special) { /* opaque host: kept as written (we also lower-case it; non-ASCII and controls refused) */
        for (size_t i = 0; i < n; i++) {
            unsigned char c = (unsigned char)out[i];

            if ((c != '%' && forbidden_host(c)) || c < 0x20 || c >= 0x7F)
                return -1;
            if (c >= 'A' && c <= 'Z')
                out[i] = (char)(c | 0x20);
        }
        out[n] = '\0';
        return n > 0 ? (int)n : -1;
    }
    for (size_t i = 0; i < n; i++) { /* percent-decode in place, then ASCII domain rules */
        unsigned char c = (unsigned char)out[i];

        if (c == '%' && i + 2 < n && hexval((unsigned char)out[i + 1]) >= 0 && hexval((unsigned char)out[i + 2]) >= 0) {
            c = (unsigned char)(hexval((unsigned char)out[i + 1]) * 16 + hexval((unsigned char)out[i + 2]));
            i += 2;
        }
        if (c >= 0x80 || c < 0x20 || c == 0x7F || c == '%' || forbidden_host(c))
            return -1;
        out[m++] = (char)(c >= 'A' && c <= 'Z' ? c | 0x20 : c);
    }
    out[m] = '\0';
    if (m == 0)
        return -1;
    if (!ends_in_number(out, m))
        return (int)m;
    if (ipv4_parse(out, m, ip) != 0)
        return -1;
copy_ip:
    if (strlen(ip) + 1 > cap)
        return -1;
    strcpy(out, ip);
    return (int)strlen(ip);
}

static int scheme_is(const char *scheme, size_t n, const char *want)
{
    return n == strlen(want) && memcmp(scheme, want, n) == 0;
}

/* The next index >= i that is not a tab or newline (WHATWG removes them before parsing). */
static size_t skip_tnl(const unsigned char *s, size_t i, size_t e)
{
    while (i < e && IS_TNL(s[i]))
        i++;
    return i;
}

/* Copy s[b..e) without tabs and newlines into out; -1 if it does not fit with its NUL. */
static int copy_host(const unsigned char *s, size_t b, size_t e, char *out, size_t cap, size_t *n)
{
    *n = 0;
    for (size_t i = b; i < e; i++) {
        if (IS_TNL(s[i]))
            continue;
        if (*n + 1 >= cap)
            return -1;
        out[(*n)++] = (char)s[i];
    }
    out[*n] = '\0';
    return 0;
}

int dps_discover_url_host(const char *url, size_t len, char *out, size_t cap)
{
    const unsigned char *s = (const unsigned char *)url;
    size_t b = 0, e = len, i, sn = 0, auth, end, host, colon, n;
    char scheme[8];
    int special, file, brackets = 0, r;
    unsigned long port = 0;

    if (url == NULL || out == NULL || cap == 0 || len > INT_MAX / 2)
        return -1;
    out[0] = '\0';
    while (b < e && s[b] <= 0x20)
        b++;
    while (e > b && s[e - 1] <= 0x20)
        e--;
    /* scheme: ALPHA *(ALPHA / DIGIT / "+" / "-" / ".") ":"; without one there is no base to resolve against */
    i = skip_tnl(s, b, e);
    if (i >= e || !IS_ALPHA(s[i]))
        return -1;
    for (; i < e && s[i] != ':'; i++) {
        if (IS_TNL(s[i]))
            continue;
        if (!IS_ALPHA(s[i]) && !IS_DIGIT(s[i]) && s[i] != '+' && s[i] != '-' && s[i] != '.')
            return -1;
        if (sn < sizeof(scheme))
            scheme[sn] = (char)(IS_ALPHA(s[i]) ? s[i] | 0x20 : s[i]);
        sn++;
    }
    if (i >= e)
        return -1;
    i++;
    file = scheme_is(scheme, sn, "file");
    special = file || scheme_is(scheme, sn, "http") || scheme_is(scheme, sn, "https") || scheme_is(scheme, sn, "ws") ||
              scheme_is(scheme, sn, "wss") || scheme_is(scheme, sn, "ftp");
    if (special && !file) { /* any number of slashes and backslashes, even none */
        while (i < e && (s[i] == '/' || s[i] == '\\' || IS_TNL(s[i])))
            i++;
    } else { /* file and other schemes have a host only after exactly "//" (file: "\" counts as "/") */
        for (int k = 0; k < 2; k++) {
            i = skip_tnl(s, i, e);
            if (i >= e || !(s[i] == '/' || (file && s[i] == '\\')))
                return -1;
            i++;
        }
    }
    host = auth = i;
    for (end = auth; end < e; end++) { /* the authority; the host follows its last '@' (file: no userinfo) */
        if (s[end] == '/' || s[end] == '?' || s[end] == '#' || (special && s[end] == '\\'))
            break;
        if (s[end] == '@' && !file)
            host = end + 1;
    }
    for (colon = host; colon < end; colon++) { /* host ends at a ':' outside brackets */
        if (s[colon] == '[')
            brackets = 1;
        else if (s[colon] == ']')
            brackets = 0;
        else if (s[colon] == ':' && !brackets && !file)
            break;
    }
    if (copy_host(s, host, colon, out, cap, &n) != 0 || n == 0)
        return -1; /* http://user@/, http://:80/, file:///x, foo:///x: no host */
    for (i = colon + 1; colon < end && i < end; i++) {
        if (IS_TNL(s[i]))
            continue;
        if (!IS_DIGIT(s[i]) || (port = port * 10 + (unsigned long)(s[i] - '0')) > 65535)
            return -1;
    }
    r = host_parse(out, n, cap, special);
    if (r < 0 || (file && strcmp(out, "localhost") == 0)) { /* file://localhost/ has an empty host */
        out[0] = '\0';
        return -1;
    }
    return r;
}

/* ---- name, type, description --------------------------------------------------------------------- */

/* A growable buffer: URL hosts during name resolution, descriptions while they are built. */
typedef struct {
    char *p;
    size_t len, cap;
    int oom;
} buf_t;

static int buf_reserve(buf_t *b, size_t need)
{
    char *p;
    size_t cap = b->cap > 0 ? b->cap : 64;

    if (b->oom)
        return -1;
    if (need <= b->cap)
        return 0;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    if ((p = realloc(b->p, cap)) == NULL) {
        b->oom = 1;
        return -1;
    }
    b->p = p, b->cap = cap;
    return 0;
}

static void buf_add(buf_t *b, const char *s)
{
    size_t n = strlen(s);

    if (n > SIZE_MAX - b->len - 1 || buf_reserve(b, b->len + n + 1) != 0)
        return;
    memcpy(b->p + b->len, s, n + 1);
    b->len += n;
}

/* Append String(value). */
static void buf_val(buf_t *b, const dps_otlp_attr_t *a)
{
    char num[32];

    buf_add(b, str_of(a, num));
}

/* Rules 6 and 8: the host of a URL attribute (a string; a number or boolean never reads as a URL). */
static int url_rule(const dps_otlp_attr_t *a, buf_t *scratch, const char **name)
{
    size_t len;

    if (!dps_discover_truthy(a) || a->kind != DPS_OTLP_STRING)
        return 0;
    len = strlen(a->s);
    if (len > SIZE_MAX - 64 || buf_reserve(scratch, len + 42) != 0)
        return -1;
    if (dps_discover_url_host(a->s, len, scratch->p, scratch->cap) < 0)
        return 0;
    *name = scratch->p;
    return 1;
}

/* §8.3 and the older names of §0. *name points into the attributes, num (32 bytes) or scratch.
 * 1 found, 0 none, -1 out of memory. */
static int resolve(const view_t *v, char *num, buf_t *scratch, const char **name)
{
    const dps_otlp_attr_t *rules[] = {
        v->a[K_PEER_SERVICE],                         /* 1 */
        coalesce(v, K_DB_SYSTEM, K_DB_SYSTEM_NAME),   /* 2: the alternate only when the primary is absent */
        v->a[K_MESSAGING_SYSTEM],                     /* 3 */
        coalesce(v, K_RPC_SYSTEM, K_RPC_SYSTEM_NAME), /* 4 */
        v->a[K_SERVER_ADDRESS],                       /* 5 */
    };
    int r;

    for (size_t i = 0; i < sizeof(rules) / sizeof(rules[0]); i++) {
        if (dps_discover_truthy(rules[i])) {
            *name = str_of(rules[i], num);
            return 1;
        }
    }
    if ((r = url_rule(v->a[K_URL_FULL], scratch, name)) != 0) /* 6 */
        return r;
    if (dps_discover_truthy(v->a[K_NET_PEER_NAME])) { /* older names; net.peer.ip is an address, never a name */
        *name = str_of(v->a[K_NET_PEER_NAME], num);
        return 1;
    }
    return url_rule(v->a[K_HTTP_URL], scratch, name);
}

static const char *type_of(const view_t *v)
{
    const dps_otlp_attr_t *db = coalesce(v, K_DB_SYSTEM, K_DB_SYSTEM_NAME), *rpc = coalesce(v, K_RPC_SYSTEM, K_RPC_SYSTEM_NAME);
    char num[32];
    const char *s;

    if (dps_discover_truthy(db)) {
        s = str_of(db, num);
        return dps_unicase_eq(s, "redis") || dps_unicase_eq(s, "memcached") || dps_unicase_eq(s, "valkey") ? "cache" : "database";
    }
    if (dps_discover_truthy(v->a[K_MESSAGING_SYSTEM]))
        return "message_queue";
    if (rpc != NULL && dps_unicase_eq(str_of(rpc, num), "grpc"))
        return "grpc";
    if (dps_discover_truthy(v->a[K_HTTP_REQUEST_METHOD]) || dps_discover_truthy(v->a[K_HTTP_METHOD]))
        return "rest";
    return "other";
}

/* Append the truthy ones of a and b joined by sep (JavaScript's [a, b].filter(Boolean).join(sep)). */
static void join2(buf_t *b, const dps_otlp_attr_t *x, const dps_otlp_attr_t *y, const char *sep)
{
    if (dps_discover_truthy(x))
        buf_val(b, x);
    if (dps_discover_truthy(x) && dps_discover_truthy(y))
        buf_add(b, sep);
    if (dps_discover_truthy(y))
        buf_val(b, y);
}

static void describe(const view_t *v, const char *span_name, buf_t *b)
{
    const dps_otlp_attr_t *method = coalesce(v, K_HTTP_REQUEST_METHOD, K_HTTP_METHOD);
    const dps_otlp_attr_t *db = coalesce(v, K_DB_SYSTEM, K_DB_SYSTEM_NAME);
    const dps_otlp_attr_t *op, *ns, *coll, *mq = v->a[K_MESSAGING_SYSTEM];
    char num[32];
    size_t start = b->len;

    if (dps_discover_truthy(method)) {
        const dps_otlp_attr_t *host = coalesce(v, K_SERVER_ADDRESS, K_NET_PEER_NAME),
                              *path = coalesce(v, K_URL_PATH, K_HTTP_TARGET);

        buf_val(b, method);
        if ((host != NULL && str_of(host, num)[0] != '\0') || (path != NULL && str_of(path, num)[0] != '\0')) {
            buf_add(b, " ");
            if (host != NULL)
                buf_val(b, host);
            if (path != NULL)
                buf_val(b, path);
        }
    } else if (dps_discover_truthy(db)) {
        op = coalesce(v, K_DB_OPERATION, K_DB_OPERATION_NAME);
        ns = coalesce(v, K_DB_NAMESPACE, K_DB_NAME);
        coll = coalesce(v, K_DB_COLLECTION_NAME, K_DB_SQL_TABLE);
        if (dps_discover_truthy(op))
            buf_val(b, op);
        if (dps_discover_truthy(op) && (dps_discover_truthy(ns) || dps_discover_truthy(coll)))
            buf_add(b, " ");
        join2(b, ns, coll, ".");
        if (b->len == start)
            buf_val(b, db);
    } else if (dps_discover_truthy(mq)) {
        join2(b, coalesce(v, K_MESSAGING_OPERATION, K_MESSAGING_OPERATION_NAME),
              coalesce(v, K_MESSAGING_DESTINATION_NAME, K_MESSAGING_DESTINATION), " ");
        if (b->len == start)
            buf_val(b, mq);
    } else if (dps_discover_truthy(v->a[K_RPC_METHOD])) {
        join2(b, v->a[K_RPC_SERVICE], v->a[K_RPC_METHOD], "/");
    } else {
        buf_add(b, span_name != NULL ? span_name : "");
    }
    buf_add(b, ""); /* NUL-terminated even when empty */
}

int dps_discover_target_name(const dps_otlp_attr_t *attrs, size_t n, char **out)
{
    view_t v;
    buf_t scratch = {0};
    char num[32];
    const char *name;
    int r;

    *out = NULL;
    view_build(&v, attrs, n);
    r = resolve(&v, num, &scratch, &name);
    if (r == 1 && (*out = strdup(name)) == NULL)
        r = -1;
    free(scratch.p);
    return r;
}

const char *dps_discover_type(const dps_otlp_attr_t *attrs, size_t n)
{
    view_t v;

    view_build(&v, attrs, n);
    return type_of(&v);
}

int dps_discover_description(const dps_otlp_attr_t *attrs, size_t n, const char *span_name, char **out)
{
    view_t v;
    buf_t b = {0};

    view_build(&v, attrs, n);
    describe(&v, span_name, &b);
    if (b.oom) {
        free(b.p);
        *out = NULL;
        return -1;
    }
    *out = b.p;
    return 0;
}

int64_t dps_discover_latency_ms(uint64_t start_ns, uint64_t end_ns)
{
    /* both differences fit: |end - start| < 2^64, / 10^6 < 2^45 */
    if (end_ns >= start_ns)
        return (int64_t)((end_ns - start_ns) / 1000000u);
    return -(int64_t)((start_ns - end_ns) / 1000000u);
}

const char *dps_discover_association_type(const char *t)
{
    if (t == NULL)
        return "other";
    if (strcmp(t, "database") == 0 || strcmp(t, "cache") == 0 || strcmp(t, "message_queue") == 0)
        return t[0] == 'd' ? "database" : t[0] == 'c' ? "cache" : "message_queue";
    if (strcmp(t, "rest") == 0 || strcmp(t, "grpc") == 0)
        return "api_call";
    return "other";
}

/* ---- aggregation ------------------------------------------------------------------------------------ */

typedef struct {
    dps_discover_target_t pub;
    __int128 latency_sum; /* exact for any number of spans */
    size_t name_len;
    uint64_t hash;
} target_t;

struct dps_discover {
    target_t *t;
    size_t n, cap;
    uint32_t *slots; /* open addressing: 0 empty, else target index + 1 */
    size_t n_slots;  /* a power of two, at least twice n */
    uint64_t k0, k1; /* SipHash key: target names come from clients */
    char **warnings;
    size_t n_warnings, cap_warnings, max_warnings, dropped;
    buf_t scratch;
};

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                                                                   \
    do {                                                                                                                           \
        v0 += v1, v1 = ROTL(v1, 13), v1 ^= v0, v0 = ROTL(v0, 32);                                                                  \
        v2 += v3, v3 = ROTL(v3, 16), v3 ^= v2;                                                                                     \
        v0 += v3, v3 = ROTL(v3, 21), v3 ^= v0;                                                                                     \
        v2 += v1, v1 = ROTL(v1, 17), v1 ^= v2, v2 = ROTL(v2, 32);                                                                  \
    } while (0)

/* SipHash-1-3: a keyed hash, so clients cannot choose names that collide. */
static uint64_t siphash13(uint64_t k0, uint64_t k1, const unsigned char *m, size_t len)
{
    uint64_t v0 = 0x736f6d6570736575ULL ^ k0, v1 = 0x646f72616e646f6dULL ^ k1;
    uint64_t v2 = 0x6c7967656e657261ULL ^ k0, v3 = 0x7465646279746573ULL ^ k1;
    uint64_t last = (uint64_t)len << 56, x;
    size_t i = 0;

    for (; len - i >= 8; i += 8) {
        x = 0;
        for (int k = 0; k < 8; k++)
            x |= (uint64_t)m[i + k] << (8 * k);
        v3 ^= x;
        SIPROUND;
        v0 ^= x;
    }
    for (size_t k = 0; i + k < len; k++)
        last |= (uint64_t)m[i + k] << (8 * k);
    v3 ^= last;
    SIPROUND;
    v0 ^= last;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

dps_discover_t *dps_discover_create(size_t max_warnings)
{
    dps_discover_t *d = calloc(1, sizeof(*d));
    uint64_t key[2];

    if (d == NULL)
        return NULL;
    if (getrandom(key, sizeof(key), GRND_NONBLOCK) != (ssize_t)sizeof(key)) {
        struct timespec ts; /* no entropy yet (early boot): still unpredictable enough per request */

        clock_gettime(CLOCK_MONOTONIC, &ts);
        key[0] = (uint64_t)(uintptr_t)d ^ ((uint64_t)ts.tv_nsec << 32) ^ (uint64_t)ts.tv_sec;
        key[1] = ~key[0] * 0x9E3779B97F4A7C15ULL;
    }
    d->k0 = key[0], d->k1 = key[1];
    d->max_warnings = max_warnings;
    return d;
}

void dps_discover_destroy(dps_discover_t *d)
{
    if (d == NULL)
        return;
    for (size_t i = 0; i < d->n; i++) {
        free((char *)d->t[i].pub.name);
        free((char *)d->t[i].pub.description);
    }
    for (size_t i = 0; i < d->n_warnings; i++)
        free(d->warnings[i]);
    free(d->t);
    free(d->slots);
    free(d->warnings);
    free(d->scratch.p);
    free(d);
}

size_t dps_discover_count(const dps_discover_t *d)
{
    return d->n;
}

const dps_discover_target_t *dps_discover_get(const dps_discover_t *d, size_t i)
{
    return i < d->n ? &d->t[i].pub : NULL;
}

size_t dps_discover_warning_count(const dps_discover_t *d)
{
    return d->n_warnings;
}

const char *dps_discover_warning(const dps_discover_t *d, size_t i)
{
    return i < d->n_warnings ? d->warnings[i] : NULL;
}

size_t dps_discover_warnings_dropped(const dps_discover_t *d)
{
    return d->dropped;
}

static int add_warning(dps_discover_t *d, const dps_discover_span_t *span)
{
    char *w;

    if (d->n_warnings >= d->max_warnings) {
        d->dropped++;
        return 0;
    }
    if (d->n_warnings == d->cap_warnings) {
        size_t cap = d->cap_warnings > 0 ? d->cap_warnings * 2 : 16;
        char **p = realloc(d->warnings, cap * sizeof(*p));

        if (p == NULL)
            return -1;
        d->warnings = p, d->cap_warnings = cap;
    }
    if (asprintf(&w, "Span \"%s\" (%s) has no resolvable target name \xE2\x80\x94 skipped for dependency discovery",
                 span->name != NULL ? span->name : "", span->span_id != NULL ? span->span_id : "") < 0)
        return -1;
    d->warnings[d->n_warnings++] = w;
    return 0;
}

/* Slot of name in the table: its target index + 1 there, or the empty slot where it would go. */
static size_t find_slot(const dps_discover_t *d, const char *name, size_t len, uint64_t hash)
{
    size_t mask = d->n_slots - 1, i = (size_t)hash & mask;

    for (;; i = (i + 1) & mask) {
        const target_t *t;

        if (d->slots[i] == 0)
            return i;
        t = &d->t[d->slots[i] - 1];
        if (t->hash == hash && t->name_len == len && memcmp(t->pub.name, name, len) == 0)
            return i;
    }
}

/* Room for one more target (array and table); on failure nothing observable changed. */
static int reserve_target(dps_discover_t *d)
{
    if (d->n == d->cap) {
        size_t cap = d->cap > 0 ? d->cap * 2 : 8;
        target_t *t = cap <= UINT32_MAX - 1 ? realloc(d->t, cap * sizeof(*t)) : NULL;

        if (t == NULL)
            return -1;
        d->t = t, d->cap = cap;
    }
    if ((d->n + 1) * 2 > d->n_slots) {
        size_t n_slots = d->n_slots > 0 ? d->n_slots * 2 : 16;
        uint32_t *slots = calloc(n_slots, sizeof(*slots)), *old = d->slots;

        if (slots == NULL)
            return -1;
        d->slots = slots, d->n_slots = n_slots;
        for (size_t i = 0; i < d->n; i++)
            slots[find_slot(d, d->t[i].pub.name, d->t[i].name_len, d->t[i].hash)] = (uint32_t)(i + 1);
        free(old);
    }
    return 0;
}

/* round(sum / count), halves up: floor((2·sum + count) / (2·count)) in exact integer arithmetic. */
static int64_t mean_half_up(__int128 sum, uint64_t count)
{
    __int128 num = 2 * sum + (__int128)count, den = 2 * (__int128)count, q = num / den;

    if (num % den != 0 && num < 0)
        q--;
    return (int64_t)q;
}

static void account(target_t *t, int64_t latency, int error)
{
    t->latency_sum += latency;
    t->pub.span_count++;
    t->pub.error |= error;
    t->pub.latency_ms = mean_half_up(t->latency_sum, t->pub.span_count);
    t->pub.healthy = !t->pub.error;
    t->pub.state = t->pub.error ? 2 : 0;
    t->pub.code = t->pub.error ? 500 : 200;
}

int dps_discover_add(dps_discover_t *d, const dps_discover_span_t *span)
{
    view_t v;
    char num[32], *name_copy;
    const char *name;
    buf_t desc = {0};
    size_t len, slot;
    uint64_t hash;
    target_t *t;
    int r;

    if (span->kind != DPS_SPAN_KIND_CLIENT && span->kind != DPS_SPAN_KIND_PRODUCER)
        return 0;
    view_build(&v, span->attrs, span->n_attrs);
    d->scratch.oom = 0;
    if ((r = resolve(&v, num, &d->scratch, &name)) <= 0)
        return r < 0 ? -1 : add_warning(d, span);
    len = strlen(name);
    hash = siphash13(d->k0, d->k1, (const unsigned char *)name, len);
    if (d->n_slots > 0 && d->slots[slot = find_slot(d, name, len, hash)] != 0) {
        account(&d->t[d->slots[slot] - 1], span->times_valid ? dps_discover_latency_ms(span->start_ns, span->end_ns) : 0,
                span->status_code == DPS_SPAN_STATUS_ERROR);
        return 0;
    }
    if (reserve_target(d) != 0 || (name_copy = strdup(name)) == NULL)
        return -1;
    describe(&v, span->name, &desc);
    if (desc.oom) {
        free(desc.p);
        free(name_copy);
        return -1;
    }
    t = &d->t[d->n];
    memset(t, 0, sizeof(*t));
    t->pub.name = name_copy;
    t->pub.type = type_of(&v);
    t->pub.description = desc.p[0] != '\0' ? desc.p : NULL;
    if (t->pub.description == NULL)
        free(desc.p);
    t->pub.kind = span->kind;
    t->name_len = len;
    t->hash = hash;
    account(t, span->times_valid ? dps_discover_latency_ms(span->start_ns, span->end_ns) : 0,
            span->status_code == DPS_SPAN_STATUS_ERROR);
    d->slots[find_slot(d, name, len, hash)] = (uint32_t)(d->n + 1);
    d->n++;
    return 0;
}
