/* Error sanitizing of polling.md §5.1: what a stored poll error may say. */
#include "depsera/poll_sanitize.h"
#include "depsera/jsonbuf.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* First match wins, case-insensitive substring. */
static const struct {
    const char *pattern, *message;
} known[] = {
    {"ECONNREFUSED", "Connection refused"},   {"ECONNRESET", "Connection reset"},       {"ETIMEDOUT", "Connection timed out"},
    {"ENOTFOUND", "DNS lookup failed"},       {"EHOSTUNREACH", "Host unreachable"},     {"ENETUNREACH", "Network unreachable"},
    {"ECONNABORTED", "Connection aborted"},   {"EPIPE", "Connection broken"},           {"abort", "Request timed out"},
    {"certificate", "TLS certificate error"}, {"self-signed", "TLS certificate error"}, {"self signed", "TLS certificate error"},
};

static int is_space(char c)
{
    return isspace((unsigned char)c) != 0;
}

/* Length of a URL starting at p ("http://" or "https://" up to white space), or 0. */
static size_t url_at(const char *p)
{
    size_t n;

    if (strncasecmp(p, "http://", 7) == 0)
        n = 7;
    else if (strncasecmp(p, "https://", 8) == 0)
        n = 8;
    else
        return 0;
    while (p[n] != '\0' && !is_space(p[n]))
        n++;
    return n;
}

/* One to three digits with a value <= 255 at p: its value and length, or -1. */
static int octet(const char *p, size_t *len)
{
    int v = 0;
    size_t n = 0;

    while (n < 3 && isdigit((unsigned char)p[n]))
        v = v * 10 + (p[n++] - '0');
    if (n == 0 || isdigit((unsigned char)p[n]) || v > 255)
        return -1;
    *len = n;
    return v;
}

/* Length of a private IPv4 address (10/8, 172.16/12, 192.168/16, 127/8, 169.254/16) at p, or 0. */
static size_t private_ipv4_at(const char *start, const char *p)
{
    int o[4];
    size_t at = 0, n;

    if (p > start && (isalnum((unsigned char)p[-1]) || p[-1] == '_'))
        return 0;
    for (int i = 0; i < 4; i++) {
        if ((o[i] = octet(p + at, &n)) < 0)
            return 0;
        at += n;
        if (i < 3) {
            if (p[at] != '.')
                return 0;
            at++;
        }
    }
    if (isalnum((unsigned char)p[at]) || p[at] == '_')
        return 0;
    if (o[0] == 10 || o[0] == 127 || (o[0] == 172 && o[1] >= 16 && o[1] <= 31) || (o[0] == 192 && o[1] == 168) ||
        (o[0] == 169 && o[1] == 254))
        return at;
    return 0;
}

static int segment_char(char c)
{
    return c != '\0' && c != '/' && c != '\\' && !is_space(c);
}

/* Length of a path at p: two or more "/segment"s, or a drive letter, ":\" and what follows; or 0. */
static size_t path_at(const char *p)
{
    size_t n = 0;
    int segments = 0;

    if (isalpha((unsigned char)p[0]) && p[1] == ':' && p[2] == '\\') {
        n = 3;
        while (p[n] != '\0' && !is_space(p[n]))
            n++;
        return n;
    }
    while (p[n] == '/' && segment_char(p[n + 1])) {
        n++;
        while (segment_char(p[n]))
            n++;
        segments++;
    }
    return segments >= 2 ? n : 0;
}

/* The buffer's text, NUL-terminated, for the caller to free; NULL when memory ran out. */
static char *text_of(dps_jsonbuf_t *b)
{
    dps_jsonbuf_raw(b, "", 1);
    if (b->oom) {
        dps_jsonbuf_free(b);
        return NULL;
    }
    return b->data;
}

/* Replace every match of `at` in `in` by `repl`. */
static char *replace(const char *in, size_t (*at)(const char *), const char *repl)
{
    dps_jsonbuf_t b;

    dps_jsonbuf_init(&b, strlen(in) + 16);
    for (const char *p = in; *p != '\0';) {
        size_t n = at(p);
        if (n > 0)
            dps_jsonbuf_raw(&b, repl, strlen(repl));
        else
            dps_jsonbuf_raw(&b, p, n = 1);
        p += n;
    }
    return text_of(&b);
}

static char *replace_first_ip(const char *in)
{
    dps_jsonbuf_t b;

    for (const char *p = in; *p != '\0'; p++) {
        size_t n = private_ipv4_at(in, p);
        if (n > 0) {
            dps_jsonbuf_init(&b, strlen(in) + 16);
            dps_jsonbuf_raw(&b, in, (size_t)(p - in));
            dps_jsonbuf_lit(&b, "[redacted-ip]");
            dps_jsonbuf_raw(&b, p + n, strlen(p + n));
            return text_of(&b);
        }
    }
    return strdup(in);
}

/* At most DPS_POLL_ERROR_MAX characters (UTF-8 sequences kept whole), then "...". */
static char *truncate_chars(char *s)
{
    size_t bytes = 0, chars = 0;

    while (s[bytes] != '\0' && chars < DPS_POLL_ERROR_MAX) {
        bytes++;
        while (((unsigned char)s[bytes] & 0xC0) == 0x80)
            bytes++;
        chars++;
    }
    if (s[bytes] == '\0')
        return s;
    char *out = malloc(bytes + 4);
    if (out != NULL) {
        memcpy(out, s, bytes);
        memcpy(out + bytes, "...", 4);
    }
    free(s);
    return out;
}

static int http_status_prefix(const char *m)
{
    return strncmp(m, "HTTP ", 5) == 0 && isdigit((unsigned char)m[5]) && isdigit((unsigned char)m[6]) &&
           isdigit((unsigned char)m[7]) && m[8] == ':';
}

char *dps_poll_sanitize_error(const char *msg)
{
    char *a, *b;

    if (msg == NULL || *msg == '\0')
        return strdup("Unknown poll error");
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
        if (strcasestr(msg, known[i].pattern) != NULL)
            return strdup(known[i].message);
    if (http_status_prefix(msg))
        return strndup(msg, 8);
    if ((a = replace(msg, url_at, "[redacted-url]")) == NULL)
        return NULL;
    b = replace_first_ip(a);
    free(a);
    if (b == NULL)
        return NULL;
    a = replace(b, path_at, "[redacted-path]");
    free(b);
    return a != NULL ? truncate_chars(a) : NULL;
}
