/* Clocks, ISO timestamps, hex and strict number parsing used everywhere. */
#include "depsera/util.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <openssl/rand.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int64_t dps_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t dps_mono_ms(void)
{
    return dps_mono_us() / 1000;
}

int64_t dps_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void dps_time_iso8601(int64_t epoch_ms, char *buf, size_t cap)
{
    time_t secs = (time_t)(epoch_ms / 1000);
    int ms = (int)(epoch_ms % 1000);
    struct tm tm;

    if (ms < 0) {
        ms += 1000;
        secs -= 1;
    }
    gmtime_r(&secs, &tm);
    snprintf(buf, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
             tm.tm_sec, ms);
}

void dps_hex_encode(const unsigned char *in, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * len] = '\0';
}

int dps_parse_int(const char *s, long long min, long long max, long long *out)
{
    char *end;
    long long v;

    /* strtoll would skip leading blanks and take a '+': a configuration value is exactly digits */
    if (s == NULL || !(isdigit((unsigned char)*s) || (*s == '-' && isdigit((unsigned char)s[1]))))
        return -1;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

int dps_parse_double(const char *s, double min, double max, double *out)
{
    char *end;
    double v;

    if (s == NULL || !(isdigit((unsigned char)*s) || ((*s == '-' || *s == '.') && s[1] != '\0')))
        return -1;
    errno = 0;
    v = strtod(s, &end);
    if (errno != 0 || *end != '\0' || !isfinite(v) || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

int dps_random_bytes(void *buf, size_t len)
{
    return RAND_bytes(buf, (int)len) == 1 ? 0 : -1;
}

int dps_sleep_ms(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000};
    return nanosleep(&ts, NULL) == 0 ? 0 : -1;
}

int dps_is_uuid(const char *s)
{
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return 0;
        } else if (!isxdigit((unsigned char)s[i])) {
            return 0;
        }
    }
    return s[36] == '\0';
}

/* The code point at p (valid UTF-8, as jansson guarantees for JSON strings) and its length in bytes. */
static uint32_t utf8_at(const unsigned char *p, int *len)
{
    if (p[0] < 0x80)
        return *len = 1, p[0];
    if (p[0] < 0xE0)
        return *len = 2, (uint32_t)(p[0] & 0x1F) << 6 | (p[1] & 0x3F);
    if (p[0] < 0xF0)
        return *len = 3, (uint32_t)(p[0] & 0x0F) << 12 | (uint32_t)(p[1] & 0x3F) << 6 | (p[2] & 0x3F);
    return *len = 4, (uint32_t)(p[0] & 0x07) << 18 | (uint32_t)(p[1] & 0x3F) << 12 | (uint32_t)(p[2] & 0x3F) << 6 | (p[3] & 0x3F);
}

/* WhiteSpace and LineTerminator of ECMAScript. */
static int js_space(uint32_t c)
{
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 ||
           c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000 || c == 0xFEFF;
}

void dps_js_trim(const char *s, size_t len, size_t *from, size_t *to)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + len, *last;
    int n;

    while (p < end && js_space(utf8_at(p, &n)))
        p += n;
    last = p;
    for (const unsigned char *q = p; q < end; q += n)
        if (!js_space(utf8_at(q, &n)))
            last = q + n;
    *from = (size_t)(p - (const unsigned char *)s);
    *to = (size_t)(last - (const unsigned char *)s);
}

/* JavaScript's String(d) (Number::toString): the shortest digits that read back as d, in plain notation
 * for 1e-7 <= |d| < 1e21 and exponent notation otherwise. buf holds at least 32 bytes. */
void dps_js_number(double d, char *buf)
{
    char tmp[40], digits[20];
    const char *t = tmp;
    int k = 0, n, e;
    size_t o = 0;

    if (isnan(d) || isinf(d) || d == 0) {
        strcpy(buf, isnan(d) ? "NaN" : isinf(d) ? (d > 0 ? "Infinity" : "-Infinity") : "0");
        return;
    }
    for (int p = 1; p <= 17; p++) { /* correctly rounded p digits: the first that round-trips is the answer */
        snprintf(tmp, sizeof(tmp), "%.*e", p - 1, d);
        if (strtod(tmp, NULL) == d)
            break;
    }
    if (*t == '-')
        buf[o++] = '-', t++;
    for (; *t != '\0' && *t != 'e' && *t != 'E'; t++)
        if (*t >= '0' && *t <= '9' && k < (int)sizeof(digits))
            digits[k++] = *t;
    n = atoi(t + (*t != '\0')) + 1; /* d = 0.digits × 10^n */
    if (k <= n && n <= 21) {
        memcpy(buf + o, digits, (size_t)k), o += (size_t)k;
        for (int z = k; z < n; z++)
            buf[o++] = '0';
    } else if (n > 0 && n <= 21) {
        memcpy(buf + o, digits, (size_t)n), o += (size_t)n;
        buf[o++] = '.';
        memcpy(buf + o, digits + n, (size_t)(k - n)), o += (size_t)(k - n);
    } else if (n > -6 && n <= 0) {
        buf[o++] = '0', buf[o++] = '.';
        for (int z = 0; z < -n; z++)
            buf[o++] = '0';
        memcpy(buf + o, digits, (size_t)k), o += (size_t)k;
    } else {
        e = n - 1;
        buf[o++] = digits[0];
        if (k > 1) {
            buf[o++] = '.';
            memcpy(buf + o, digits + 1, (size_t)(k - 1)), o += (size_t)(k - 1);
        }
        o += (size_t)snprintf(buf + o, 8, "e%c%d", e < 0 ? '-' : '+', e < 0 ? -e : e);
    }
    buf[o] = '\0';
}
