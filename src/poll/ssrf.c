/* SSRF decisions: the host an http(s) URL names, blocked names and address ranges, the allowlist. */
#include "depsera/ssrf.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define PORT_MAX 65535
#define NUM_CAP 0x1FFFFFFFFULL /* IPv4 numbers above 2^32 all fail the same way: stop growing */

typedef enum {
    ENTRY_EXACT,  /* name: lower case, without a trailing dot */
    ENTRY_SUFFIX, /* name: ".suffix", lower case, without a trailing dot */
    ENTRY_CIDR,   /* net/prefix */
    ENTRY_IP,     /* one address, written in any form (net) */
} entry_kind_t;

typedef struct {
    entry_kind_t kind;
    char *name;
    dps_ip_t net;
    int prefix;
} entry_t;

struct dps_ssrf_allowlist {
    entry_t *entries;
    size_t n, cap;
    char *error; /* first invalid entry, or NULL */
};

/* ---- addresses ---------------------------------------------------------------------------------- */

/* 1 if the first `bits` bits of a and b are equal. */
static int prefix_eq(const unsigned char *a, const unsigned char *b, int bits)
{
    int full = bits / 8, rest = bits % 8;
    unsigned char mask;

    if (memcmp(a, b, (size_t)full) != 0)
        return 0;
    if (rest == 0)
        return 1;
    mask = (unsigned char)(0xFF << (8 - rest));
    return (a[full] & mask) == (b[full] & mask);
}

typedef struct {
    unsigned char net[16];
    int bits;
    int embedded_v4; /* offset of an IPv4 address to judge instead, or -1: the whole range is blocked */
} range_t;

/* polling.md §4; 255.255.255.255 is inside 240.0.0.0/4. */
static const range_t blocked4[] = {
    {{0, 0, 0, 0}, 8, -1},      {{10, 0, 0, 0}, 8, -1},      {{100, 64, 0, 0}, 10, -1},  {{127, 0, 0, 0}, 8, -1},
    {{169, 254, 0, 0}, 16, -1}, {{172, 16, 0, 0}, 12, -1},   {{192, 0, 0, 0}, 24, -1},   {{192, 0, 2, 0}, 24, -1},
    {{192, 168, 0, 0}, 16, -1}, {{198, 51, 100, 0}, 24, -1}, {{203, 0, 113, 0}, 24, -1}, {{224, 0, 0, 0}, 4, -1},
    {{240, 0, 0, 0}, 4, -1},
};

/* polling.md §4 lists ::1, ::, fe80::/10, fc00::/7 and ::ffff:a.b.c.d; the others are the IPv6
 * counterparts of the IPv4 ranges above (documentation, multicast, deprecated site-local and
 * IPv4-compatible) and the translation prefixes through which an IPv4 address could be reached. */
static const range_t blocked6[] = {
    {{0}, 96, -1},                                        /* ::/96: ::, ::1, IPv4-compatible */
    {{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff}, 96, 12}, /* ::ffff:a.b.c.d, IPv4-mapped */
    {{0, 0x64, 0xff, 0x9b}, 96, 12},                      /* 64:ff9b::/96, NAT64 */
    {{0, 0x64, 0xff, 0x9b, 0, 1}, 48, -1},                /* 64:ff9b:1::/48, local-use NAT64 */
    {{0x01, 0x00}, 64, -1},                               /* 100::/64, discard-only */
    {{0x20, 0x01, 0x0d, 0xb8}, 32, -1},                   /* 2001:db8::/32, documentation */
    {{0x20, 0x02}, 16, 2},                                /* 2002::/16, 6to4 */
    {{0xfc}, 7, -1},                                      /* fc00::/7, unique local */
    {{0xfe, 0x80}, 10, -1},                               /* fe80::/10, link-local */
    {{0xfe, 0xc0}, 10, -1},                               /* fec0::/10, site-local */
    {{0xff}, 8, -1},                                      /* ff00::/8, multicast */
};

static int v4_blocked(const unsigned char *a)
{
    for (size_t i = 0; i < sizeof(blocked4) / sizeof(blocked4[0]); i++)
        if (prefix_eq(a, blocked4[i].net, blocked4[i].bits))
            return 1;
    return 0;
}

int dps_ip_is_blocked(const dps_ip_t *ip)
{
    if (ip->family == 4)
        return v4_blocked(ip->b);
    if (ip->family != 6)
        return 1;
    for (size_t i = 0; i < sizeof(blocked6) / sizeof(blocked6[0]); i++) {
        const range_t *r = &blocked6[i];
        if (prefix_eq(ip->b, r->net, r->bits))
            return r->embedded_v4 < 0 ? 1 : v4_blocked(ip->b + r->embedded_v4);
    }
    return 0;
}

int dps_ip_parse(const char *s, dps_ip_t *out)
{
    memset(out, 0, sizeof(*out));
    if (strchr(s, ':') != NULL) {
        out->family = 6;
        return inet_pton(AF_INET6, s, out->b) == 1 ? 0 : -1;
    }
    out->family = 4;
    return inet_pton(AF_INET, s, out->b) == 1 ? 0 : -1;
}

void dps_ip_format(const dps_ip_t *ip, char *buf, size_t cap)
{
    if (inet_ntop(ip->family == 6 ? AF_INET6 : AF_INET, ip->b, buf, (socklen_t)cap) == NULL && cap > 0)
        buf[0] = '\0';
}

int dps_ip_from_sockaddr(const struct sockaddr *sa, dps_ip_t *out)
{
    memset(out, 0, sizeof(*out));
    if (sa->sa_family == AF_INET) {
        out->family = 4;
        memcpy(out->b, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        return 0;
    }
    if (sa->sa_family == AF_INET6) {
        out->family = 6;
        memcpy(out->b, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
        return 0;
    }
    return -1;
}

/* The IPv4 address inside an IPv4-mapped IPv6 address (::ffff:a.b.c.d), else NULL. */
static const unsigned char *mapped_v4(const dps_ip_t *ip)
{
    static const unsigned char prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

    if (ip->family == 4)
        return ip->b;
    return memcmp(ip->b, prefix, sizeof(prefix)) == 0 ? ip->b + 12 : NULL;
}

/* ---- host names --------------------------------------------------------------------------------- */

/* Length of a host name without its trailing dot ("localhost." is localhost). */
static size_t name_len(const char *host)
{
    size_t n = strlen(host);
    return n > 0 && host[n - 1] == '.' ? n - 1 : n;
}

/* 1 if the first n bytes of host end with suffix, case-insensitively. */
static int ends_with(const char *host, size_t n, const char *suffix)
{
    size_t k = strlen(suffix);
    return n >= k && strncasecmp(host + n - k, suffix, k) == 0;
}

int dps_ssrf_hostname_blocked(const char *host)
{
    size_t n = name_len(host);

    return (n == 9 && strncasecmp(host, "localhost", 9) == 0) || ends_with(host, n, ".local") || ends_with(host, n, ".internal") ||
           ends_with(host, n, ".localhost");
}

/* ---- URL parsing -------------------------------------------------------------------------------- */

static int hexval(int c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* WHATWG "IPv4 number parser": decimal, 0x hex or 0-prefixed octal. 0, or -1 if not a number. */
static int ipv4_number(const char *s, size_t len, uint64_t *out)
{
    unsigned radix = 10;
    uint64_t v = 0;

    if (len == 0)
        return -1;
    if (len >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
        s += 2, len -= 2, radix = 16;
    else if (len >= 2 && s[0] == '0')
        s += 1, len -= 1, radix = 8;
    for (size_t i = 0; i < len; i++) {
        int d = hexval((unsigned char)s[i]);
        if (d < 0 || (unsigned)d >= radix)
            return -1;
        v = v * radix + (unsigned)d;
        if (v > NUM_CAP)
            v = NUM_CAP;
    }
    *out = v;
    return 0;
}

/* Split a host on '.' into at most `max` parts (starts and lengths); the count, or -1 if more. */
static int split_dots(const char *h, size_t len, const char **start, size_t *plen, int max)
{
    int n = 0;
    const char *p = h, *end = h + len;

    for (;;) {
        const char *dot = memchr(p, '.', (size_t)(end - p));
        if (n == max)
            return -1;
        start[n] = p;
        plen[n] = dot != NULL ? (size_t)(dot - p) : (size_t)(end - p);
        n++;
        if (dot == NULL)
            return n;
        p = dot + 1;
    }
}

/* WHATWG "ends in a number": such a host must parse as IPv4 or the URL is invalid. */
static int ends_in_number(const char *h, size_t len)
{
    const char *last;
    size_t n;
    uint64_t v;

    if (len > 0 && h[len - 1] == '.')
        len--;
    last = memrchr(h, '.', len);
    last = last != NULL ? last + 1 : h;
    n = (size_t)(h + len - last);
    if (n > 0 && strspn(last, "0123456789") >= n)
        return 1;
    return ipv4_number(last, n, &v) == 0;
}

/* WHATWG IPv4 parser (1 to 4 parts, e.g. 127.1, 0x7f.0.0.1, 2130706433). 0, or -1. */
static int ipv4_parse(const char *h, size_t len, dps_ip_t *out)
{
    const char *start[5];
    size_t plen[5];
    uint64_t num[4], v;
    int n = split_dots(h, len, start, plen, 5);

    if (n > 1 && plen[n - 1] == 0)
        n--;
    if (n < 1 || n > 4)
        return -1;
    for (int i = 0; i < n; i++)
        if (ipv4_number(start[i], plen[i], &num[i]) != 0 || (i < n - 1 && num[i] > 255))
            return -1;
    if (num[n - 1] >= (1ULL << (8 * (5 - n))))
        return -1;
    v = num[n - 1];
    for (int i = 0; i < n - 1; i++)
        v += num[i] << (8 * (3 - i));
    memset(out, 0, sizeof(*out));
    out->family = 4;
    for (int i = 0; i < 4; i++)
        out->b[i] = (unsigned char)(v >> (8 * (3 - i)));
    return 0;
}

/* WHATWG forbidden domain code points (C0 controls and DEL are refused earlier or here). */
static int forbidden_in_domain(unsigned char c)
{
    return c <= 0x20 || c == 0x7f || strchr("#%/:<>?@[\\]^|", c) != NULL;
}

/* Percent-decode and lower-case a registered name into out; -1 if not an ASCII host we can judge. Hosts
 * that are not ASCII are refused: without IDNA mapping we cannot know which ASCII name they become
 * (fullwidth "ｌｏｃａｌｈｏｓｔ" is localhost), so the punycode form must be used. */
static int decode_host(const char *h, size_t len, char *out, size_t cap, size_t *outlen)
{
    size_t o = 0;

    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)h[i];
        int hi, lo;
        if (c == '%' && i + 2 < len && (hi = hexval((unsigned char)h[i + 1])) >= 0 && (lo = hexval((unsigned char)h[i + 2])) >= 0) {
            c = (unsigned char)(hi << 4 | lo);
            i += 2;
        } else if (c == '%') {
            return -1;
        }
        if (c >= 0x80 || forbidden_in_domain(c) || o + 1 >= cap)
            return -1;
        out[o++] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
    }
    out[o] = '\0';
    *outlen = o;
    return o > 0 ? 0 : -1;
}

/* The host of an authority (userinfo removed), into out. */
static int parse_host(const char *h, const char *end, dps_url_t *out)
{
    char buf[DPS_SSRF_HOST_MAX + 2], ip6[64];
    size_t n;

    if (h < end && *h == '[') {
        if (end - h < 3 || (size_t)(end - h) - 2 >= sizeof(ip6) || end[-1] != ']')
            return -1;
        memcpy(ip6, h + 1, (size_t)(end - h) - 2);
        ip6[end - h - 2] = '\0';
        out->is_ip = 1;
        out->ip.family = 6;
        if (inet_pton(AF_INET6, ip6, out->ip.b) != 1)
            return -1;
        dps_ip_format(&out->ip, out->host, sizeof(out->host));
        return 0;
    }
    if (decode_host(h, (size_t)(end - h), buf, sizeof(buf), &n) != 0)
        return -1;
    if (ends_in_number(buf, n)) {
        if (ipv4_parse(buf, n, &out->ip) != 0)
            return -1;
        out->is_ip = 1;
        dps_ip_format(&out->ip, out->host, sizeof(out->host));
        return 0;
    }
    if (name_len(buf) > DPS_SSRF_HOST_MAX)
        return -1;
    memcpy(out->host, buf, n + 1);
    return 0;
}

/* ":<digits>" after the host, possibly empty (the default port). */
static int parse_port(const char *p, const char *end, dps_url_t *out)
{
    long v = 0;

    out->port = out->https ? 443 : 80;
    if (p == end)
        return 0;
    if (*p++ != ':')
        return -1;
    if (p == end)
        return 0;
    for (; p < end; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        v = v * 10 + (*p - '0');
        if (v > PORT_MAX)
            return -1;
    }
    out->port = (int)v;
    return 0;
}

int dps_url_parse(const char *url, dps_url_t *out)
{
    const char *end, *auth, *auth_end, *host, *host_end, *at = NULL;

    memset(out, 0, sizeof(*out));
    /* leading and trailing C0 controls and spaces are stripped (WHATWG); controls elsewhere refuse it */
    while (*url != '\0' && (unsigned char)*url <= 0x20)
        url++;
    end = url + strlen(url);
    while (end > url && (unsigned char)end[-1] <= 0x20)
        end--;
    for (const char *p = url; p < end; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            return -1;
    if (end - url >= 7 && strncasecmp(url, "http://", 7) == 0)
        auth = url + 7;
    else if (end - url >= 8 && strncasecmp(url, "https://", 8) == 0)
        auth = url + 8, out->https = 1;
    else
        return -1;
    /* '\' would end the authority for WHATWG but not for libcurl; several '@' are read differently too */
    for (auth_end = auth; auth_end < end && *auth_end != '/' && *auth_end != '?' && *auth_end != '#'; auth_end++) {
        if (*auth_end == '\\' || (*auth_end == '@' && at != NULL))
            return -1;
        if (*auth_end == '@')
            at = auth_end;
    }
    host = at != NULL ? at + 1 : auth;
    if (host < auth_end && *host == '[') {
        host_end = memchr(host, ']', (size_t)(auth_end - host));
        if (host_end == NULL)
            return -1;
        host_end++;
    } else {
        host_end = memchr(host, ':', (size_t)(auth_end - host));
        if (host_end == NULL)
            host_end = auth_end;
    }
    if (parse_host(host, host_end, out) != 0)
        return -1;
    return parse_port(host_end, auth_end, out);
}

/* ---- allowlist ---------------------------------------------------------------------------------- */

static char *lower_dup(const char *s, size_t n)
{
    char *out = malloc(n + 1);

    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++)
        out[i] = (char)(s[i] >= 'A' && s[i] <= 'Z' ? s[i] + 32 : s[i]);
    out[n] = '\0';
    return out;
}

/* An address with optional brackets: "[::1]" or "::1" or "10.0.0.1". */
static int parse_bracketed_ip(const char *s, size_t n, dps_ip_t *ip)
{
    char buf[64];

    if (n >= 2 && s[0] == '[' && s[n - 1] == ']')
        s++, n -= 2;
    if (n == 0 || n >= sizeof(buf))
        return -1;
    memcpy(buf, s, n);
    buf[n] = '\0';
    return dps_ip_parse(buf, ip);
}

static int parse_cidr(const char *s, entry_t *e)
{
    const char *slash = strchr(s, '/');
    size_t digits = strlen(slash + 1);
    int max;

    if (parse_bracketed_ip(s, (size_t)(slash - s), &e->net) != 0 || digits == 0 || digits > 3 ||
        strspn(slash + 1, "0123456789") != digits)
        return -1;
    e->prefix = atoi(slash + 1);
    max = e->net.family == 4 ? 32 : 128;
    return e->prefix <= max ? 0 : -1;
}

static int set_error(dps_ssrf_allowlist_t *al, const char *entry)
{
    size_t n;

    if (al->error != NULL)
        return 0;
    n = strlen(entry) + sizeof("Invalid CIDR: ");
    if ((al->error = malloc(n)) == NULL)
        return -1;
    snprintf(al->error, n, "Invalid CIDR: %s", entry);
    return 0;
}

/* Adds one trimmed, non-empty entry; -1 only when out of memory. */
static int add_entry(dps_ssrf_allowlist_t *al, const char *s)
{
    entry_t e = {0};
    size_t n = strlen(s);

    if (strchr(s, '/') != NULL) {
        if (parse_cidr(s, &e) != 0)
            return set_error(al, s);
        e.kind = ENTRY_CIDR;
    } else if (n > 2 && s[0] == '*' && s[1] == '.') {
        e.kind = ENTRY_SUFFIX;
        if ((e.name = lower_dup(s + 1, name_len(s + 1))) == NULL)
            return -1;
    } else if (parse_bracketed_ip(s, n, &e.net) == 0) {
        e.kind = ENTRY_IP;
    } else {
        e.kind = ENTRY_EXACT;
        if ((e.name = lower_dup(s, name_len(s))) == NULL)
            return -1;
    }
    if (al->n == al->cap) {
        size_t cap = al->cap ? al->cap * 2 : 8;
        entry_t *grown = realloc(al->entries, cap * sizeof(*grown));
        if (grown == NULL)
            return free(e.name), -1;
        al->entries = grown, al->cap = cap;
    }
    al->entries[al->n++] = e;
    return 0;
}

static int is_space(char c)
{
    return c == ' ' || (c >= '\t' && c <= '\r');
}

dps_ssrf_allowlist_t *dps_ssrf_allowlist_parse(const char *text)
{
    dps_ssrf_allowlist_t *al = calloc(1, sizeof(*al));
    char *copy, *rest, *tok;

    if (al == NULL || text == NULL)
        return al;
    if ((copy = strdup(text)) == NULL)
        goto fail;
    for (rest = copy; (tok = strsep(&rest, ",")) != NULL;) {
        char *end = tok + strlen(tok);
        while (is_space(*tok))
            tok++;
        while (end > tok && is_space(end[-1]))
            *--end = '\0';
        if (*tok != '\0' && add_entry(al, tok) != 0) {
            free(copy);
            goto fail;
        }
    }
    free(copy);
    return al;
fail:
    dps_ssrf_allowlist_free(al);
    return NULL;
}

void dps_ssrf_allowlist_free(dps_ssrf_allowlist_t *al)
{
    if (al == NULL)
        return;
    for (size_t i = 0; i < al->n; i++)
        free(al->entries[i].name);
    free(al->entries);
    free(al->error);
    free(al);
}

const char *dps_ssrf_allowlist_error(const dps_ssrf_allowlist_t *al)
{
    return al != NULL ? al->error : NULL;
}

static int ip_equal(const dps_ip_t *a, const dps_ip_t *b)
{
    const unsigned char *a4 = mapped_v4(a), *b4 = mapped_v4(b);

    if (a4 != NULL && b4 != NULL)
        return memcmp(a4, b4, 4) == 0;
    return a->family == b->family && memcmp(a->b, b->b, 16) == 0;
}

int dps_ssrf_allowlist_host(const dps_ssrf_allowlist_t *al, const char *host)
{
    size_t n = name_len(host);
    dps_ip_t ip;
    int is_ip = parse_bracketed_ip(host, strlen(host), &ip) == 0;

    for (size_t i = 0; al != NULL && i < al->n; i++) {
        const entry_t *e = &al->entries[i];
        if ((e->kind == ENTRY_EXACT && strlen(e->name) == n && strncasecmp(host, e->name, n) == 0) ||
            (e->kind == ENTRY_SUFFIX && n > strlen(e->name) && ends_with(host, n, e->name)) ||
            (e->kind == ENTRY_IP && is_ip && ip_equal(&ip, &e->net)))
            return 1;
    }
    return 0;
}

int dps_ssrf_allowlist_ip(const dps_ssrf_allowlist_t *al, const dps_ip_t *ip)
{
    const unsigned char *v4 = mapped_v4(ip);

    for (size_t i = 0; al != NULL && i < al->n; i++) {
        const entry_t *e = &al->entries[i];
        if (e->kind == ENTRY_IP && ip_equal(ip, &e->net))
            return 1;
        if (e->kind != ENTRY_CIDR)
            continue;
        if (e->net.family == 4 ? v4 != NULL && prefix_eq(v4, e->net.b, e->prefix)
                               : ip->family == 6 && prefix_eq(ip->b, e->net.b, e->prefix))
            return 1;
    }
    return 0;
}

/* ---- verdicts ----------------------------------------------------------------------------------- */

__attribute__((format(printf, 3, 4))) static void say(char *why, size_t cap, const char *fmt, ...)
{
    va_list ap;

    if (why == NULL || cap == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(why, cap, fmt, ap);
    va_end(ap);
}

dps_ssrf_verdict_t dps_ssrf_check_url(const char *url, const dps_ssrf_allowlist_t *al, char *why, size_t cap)
{
    dps_url_t u;

    if (dps_url_parse(url, &u) != 0) {
        say(why, cap, "Invalid URL");
        return DPS_SSRF_BAD_URL;
    }
    if (dps_ssrf_allowlist_error(al) != NULL) {
        say(why, cap, "%s", dps_ssrf_allowlist_error(al));
        return DPS_SSRF_BLOCKED;
    }
    if (dps_ssrf_allowlist_host(al, u.host) || (u.is_ip && dps_ssrf_allowlist_ip(al, &u.ip)))
        return DPS_SSRF_ALLOWED;
    if (dps_ssrf_hostname_blocked(u.host)) {
        say(why, cap, "Blocked hostname: %s", u.host);
        return DPS_SSRF_BLOCKED;
    }
    if (u.is_ip && dps_ip_is_blocked(&u.ip)) {
        say(why, cap, "Blocked private IP address: %s", u.host);
        return DPS_SSRF_BLOCKED;
    }
    return DPS_SSRF_ALLOWED;
}

dps_ssrf_verdict_t dps_ssrf_check_address(const char *host, const dps_ip_t *addr, const dps_ssrf_allowlist_t *al, char *why,
                                          size_t cap)
{
    char text[64];
    dps_ip_t literal;

    if (dps_ssrf_allowlist_error(al) != NULL) {
        say(why, cap, "%s", dps_ssrf_allowlist_error(al));
        return DPS_SSRF_BLOCKED;
    }
    if (dps_ssrf_allowlist_host(al, host) || dps_ssrf_allowlist_ip(al, addr))
        return DPS_SSRF_ALLOWED;
    if (dps_ssrf_hostname_blocked(host)) {
        say(why, cap, "Blocked hostname: %s", host);
        return DPS_SSRF_BLOCKED;
    }
    if (!dps_ip_is_blocked(addr))
        return DPS_SSRF_ALLOWED;
    dps_ip_format(addr, text, sizeof(text));
    if (dps_ip_parse(host, &literal) == 0)
        say(why, cap, "Blocked private IP: %s", text);
    else
        say(why, cap, "Hostname %s resolved to blocked private IP: %s", host, text);
    return DPS_SSRF_BLOCKED;
}
