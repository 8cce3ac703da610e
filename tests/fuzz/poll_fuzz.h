/* Shared by the poll parser fuzz targets: the invariants every parse result must hold. */
#ifndef DEPSERA_TESTS_POLL_FUZZ_H
#define DEPSERA_TESTS_POLL_FUZZ_H

#include "depsera/poll_parse.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static inline void poll_fuzz_utf8(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;

    while (*p) {
        int n = *p < 0x80 ? 1 : *p >= 0xC2 && *p <= 0xDF ? 2 : *p >= 0xE0 && *p <= 0xEF ? 3 : *p >= 0xF0 && *p <= 0xF4 ? 4 : 0;

        if (n == 0)
            __builtin_trap();
        for (int i = 1; i < n; i++)
            if ((p[i] & 0xC0) != 0x80)
                __builtin_trap();
        p += n;
    }
}

static int poll_fuzz_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Unique names, unique warnings, valid UTF-8 everywhere; failure means an error and nothing else. */
static inline void poll_fuzz_check(const dps_poll_result_t *r, int rc)
{
    const char **v;

    if (rc != 0) {
        if (rc != -1 || r->error == NULL || r->n_deps != 0 || r->n_warnings != 0)
            __builtin_trap();
        return;
    }
    if (r->error != NULL)
        __builtin_trap();
    v = malloc((r->n_deps + r->n_warnings + 1) * sizeof(*v));
    for (size_t i = 0; i < r->n_deps; i++) {
        const dps_dep_status_t *d = &r->deps[i];
        const char *s[] = {d->name, d->type, d->description, d->impact, d->error_message, d->contact, d->check_details, d->error};

        if (d->name == NULL || d->type == NULL || (d->healthy != 0 && d->healthy != 1) || (d->skipped != 0 && d->skipped != 1))
            __builtin_trap();
        for (size_t k = 0; k < sizeof(s) / sizeof(s[0]); k++)
            if (s[k] != NULL)
                poll_fuzz_utf8(s[k]);
        v[i] = d->name;
    }
    qsort(v, r->n_deps, sizeof(*v), poll_fuzz_cmp);
    for (size_t i = 1; i < r->n_deps; i++)
        if (strcmp(v[i - 1], v[i]) == 0)
            __builtin_trap();
    for (size_t i = 0; i < r->n_warnings; i++) {
        poll_fuzz_utf8(r->warnings[i]);
        v[i] = r->warnings[i];
    }
    qsort(v, r->n_warnings, sizeof(*v), poll_fuzz_cmp);
    for (size_t i = 1; i < r->n_warnings; i++)
        if (strcmp(v[i - 1], v[i]) == 0)
            __builtin_trap();
    free(v);
}

/* The input of a target with a table of n configurations: the first byte picks one, or for the last
 * choice (n) the input up to its first newline is the configuration (*owned, to free). The rest is the
 * body. -1 when the input has no body to parse. */
static inline int poll_fuzz_input(const uint8_t *data, size_t size, const char *const *configs, size_t n, const char **cfg,
                                  char **owned, const char **body, size_t *len)
{
    *owned = NULL;
    if (size < 1)
        return -1;
    *body = (const char *)data + 1, *len = size - 1;
    if (data[0] % (n + 1) != n) {
        *cfg = configs[data[0] % (n + 1)];
        return 0;
    }
    const char *nl = memchr(*body, '\n', *len);
    if (nl == NULL || (*owned = strndup(*body, (size_t)(nl - *body))) == NULL)
        return -1;
    *cfg = *owned;
    *len -= (size_t)(nl + 1 - *body), *body = nl + 1;
    return 0;
}

#endif
