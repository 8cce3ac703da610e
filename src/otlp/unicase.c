/* JavaScript-compatible lower-casing of UTF-8 (for case-insensitive name matching) from a generated table. */
#include "depsera/unicase.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    uint32_t first, last; /* sources first..last, every `stride` code points */
    int32_t delta;        /* lower case = source + delta */
    uint32_t stride;      /* 1 or 2 */
} lower_run_t;

typedef struct {
    uint32_t first, last;
} range_t;

#include "unicase_table.inc"

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define RAW 0x80000000u /* marks a byte that is not part of valid UTF-8: kept as is */
#define CAPITAL_SIGMA 0x3A3
#define FINAL_SIGMA 0x3C2
#define DOTTED_I 0x130
#define COMBINING_DOT 0x307

static int in_ranges(const range_t *r, size_t n, uint32_t cp)
{
    size_t lo = 0, hi = n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (cp < r[mid].first)
            hi = mid;
        else if (cp > r[mid].last)
            lo = mid + 1;
        else
            return 1;
    }
    return 0;
}

static uint32_t simple_lower(uint32_t cp)
{
    size_t lo = 0, hi = N(lower_runs);

    if (cp < 0x80)
        return cp >= 'A' && cp <= 'Z' ? cp + 32 : cp;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const lower_run_t *r = &lower_runs[mid];

        if (cp < r->first)
            hi = mid;
        else if (cp > r->last)
            lo = mid + 1;
        else
            return (cp - r->first) % r->stride == 0 ? (uint32_t)((int32_t)cp + r->delta) : cp;
    }
    return cp;
}

static int is_cased(uint32_t cp)
{
    return (cp & RAW) == 0 && in_ranges(cased_ranges, N(cased_ranges), cp);
}

static int is_ignorable(uint32_t cp)
{
    return (cp & RAW) == 0 && in_ranges(ignorable_ranges, N(ignorable_ranges), cp);
}

/* Decode one code point of strict UTF-8 at s[*i] (i < n); an invalid byte is returned as RAW|byte. */
static uint32_t decode(const unsigned char *s, size_t n, size_t *i)
{
    unsigned char c = s[*i];
    uint32_t cp, min;
    size_t len;

    if (c < 0x80) {
        (*i)++;
        return c;
    }
    if (c >= 0xC2 && c <= 0xDF)
        len = 2, cp = c & 0x1F, min = 0x80;
    else if (c >= 0xE0 && c <= 0xEF)
        len = 3, cp = c & 0x0F, min = 0x800;
    else if (c >= 0xF0 && c <= 0xF4)
        len = 4, cp = c & 0x07, min = 0x10000;
    else
        goto raw;
    if (n - *i < len)
        goto raw;
    for (size_t k = 1; k < len; k++) {
        if ((s[*i + k] & 0xC0) != 0x80)
            goto raw;
        cp = (cp << 6) | (s[*i + k] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        goto raw;
    *i += len;
    return cp;
raw:
    (*i)++;
    return RAW | c;
}

static size_t encode(uint32_t cp, unsigned char *b)
{
    if (cp & RAW) {
        b[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x80) {
        b[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        b[0] = (unsigned char)(0xC0 | (cp >> 6)), b[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        b[0] = (unsigned char)(0xE0 | (cp >> 12)), b[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        b[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    b[0] = (unsigned char)(0xF0 | (cp >> 18)), b[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    b[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F)), b[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

/* A stream of lower-cased code points of one string. */
typedef struct {
    const unsigned char *s;
    size_t n, i;
    uint32_t pending; /* second code point of U+0130's mapping, or 0 */
    int after_cased;  /* the last code point that was not case-ignorable was cased */
} lower_iter_t;

/* Final_Sigma's second half: no cased letter follows, skipping case-ignorable ones. Each scan stops at
 * the first code point that is not ignorable, so the total work stays linear. */
static int followed_by_cased(const lower_iter_t *it)
{
    size_t j = it->i;

    while (j < it->n) {
        uint32_t cp = decode(it->s, it->n, &j);

        if (!is_ignorable(cp))
            return is_cased(cp);
    }
    return 0;
}

/* The next lower-cased code point; 0 with *done set at the end (NUL bytes inside are not expected). */
static uint32_t next(lower_iter_t *it, int *done)
{
    uint32_t cp, out;

    *done = 0;
    if (it->pending != 0) {
        out = it->pending;
        it->pending = 0;
        return out;
    }
    if (it->i >= it->n) {
        *done = 1;
        return 0;
    }
    cp = decode(it->s, it->n, &it->i);
    if (cp == DOTTED_I)
        out = 'i', it->pending = COMBINING_DOT;
    else if (cp == CAPITAL_SIGMA && it->after_cased && !followed_by_cased(it))
        out = FINAL_SIGMA;
    else
        out = (cp & RAW) ? cp : simple_lower(cp);
    if (!is_ignorable(cp))
        it->after_cased = is_cased(cp);
    return out;
}

size_t dps_unicase_lower(const char *s, size_t len, char *out, size_t cap)
{
    lower_iter_t it = {(const unsigned char *)s, len, 0, 0, 0};
    unsigned char b[4];
    size_t need = 0, written = 0, k;
    int done, full = 1;
    uint32_t cp;

    for (;;) {
        cp = next(&it, &done);
        if (done)
            break;
        k = encode(cp, b);
        if (full && need + k < cap) {
            memcpy(out + need, b, k);
            written = need + k;
        } else {
            full = 0; /* only a prefix of whole characters is written */
        }
        need += k;
    }
    if (cap > 0)
        out[written] = '\0';
    return need;
}

char *dps_unicase_lower_dup(const char *s)
{
    size_t len = strlen(s), cap = len + len / 2 + 1;
    char *out = malloc(cap);

    if (out != NULL)
        (void)dps_unicase_lower(s, len, out, cap);
    return out;
}

int dps_unicase_eq(const char *a, const char *b)
{
    lower_iter_t x, y;
    int dx, dy;

    if (a == NULL || b == NULL)
        return a == b;
    x = (lower_iter_t){(const unsigned char *)a, strlen(a), 0, 0, 0};
    y = (lower_iter_t){(const unsigned char *)b, strlen(b), 0, 0, 0};
    for (;;) {
        uint32_t cx = next(&x, &dx), cy = next(&y, &dy);

        if (dx || dy)
            return dx && dy;
        if (cx != cy)
            return 0;
    }
}
