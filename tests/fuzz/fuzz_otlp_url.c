/* libFuzzer target: the URL host extractor of span discovery (url.full / http.url come from clients). */
#include "depsera/otlp_discover.h"
#include "depsera/unicase.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Invariants of a host: non-empty, printable ASCII, lower case, no port; an IPv6 literal is bracketed. */
static void check_host(const char *h, int r)
{
    size_t n = strlen(h);

    if (r <= 0 || (size_t)r != n)
        __builtin_trap();
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)h[i];

        if (c <= 0x20 || c >= 0x7F || (c >= 'A' && c <= 'Z') || c == '/' || c == '?' || c == '#' || c == '@')
            __builtin_trap();
    }
    if ((h[0] == '[') != (h[n - 1] == ']') || (h[0] != '[' && strchr(h, ':') != NULL))
        __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t cap = size + 42 + 8;
    char *out = malloc(cap), *again = malloc(cap + 16), *url = malloc(size + 8);
    int r;

    /* 1. the input as a whole URL: a result always fits in len + 42 bytes */
    r = dps_discover_url_host((const char *)data, size, out, size + 42);
    if (r >= 0)
        check_host(out, r);
    /* 2. "http://" + input: a special-scheme host reads back as itself (the canonical form is a fixed point) */
    memcpy(url, "http://", 7);
    memcpy(url + 7, data, size);
    r = dps_discover_url_host(url, size + 7, out, cap);
    if (r >= 0) {
        size_t n = (size_t)r;
        char *u2 = malloc(n + 9);
        int r2;

        check_host(out, r);
        memcpy(u2, "http://", 7);
        memcpy(u2 + 7, out, n);
        u2[7 + n] = '/';
        r2 = dps_discover_url_host(u2, n + 8, again, cap + 16);
        if (r2 != r || strcmp(out, again) != 0)
            __builtin_trap();
        free(u2);
    }
    /* 3. lower-casing the same bytes stays within its documented bound */
    if (dps_unicase_lower((const char *)data, size, NULL, 0) > size + size / 2)
        __builtin_trap();
    free(out);
    free(again);
    free(url);
    return 0;
}
