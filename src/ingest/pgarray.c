/* PostgreSQL array literals (see pgarray.h). Every element is double-quoted, so that no element text
 * (braces, commas, spaces, the word NULL) can change the array's shape. */
#include "depsera/pgarray.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

void dps_pgarray_init(dps_pgarray_t *a)
{
    dps_jsonbuf_init(&a->b, 256);
    dps_jsonbuf_lit(&a->b, "{");
    a->n = 0;
}

static void separator(dps_pgarray_t *a)
{
    if (a->n++ > 0)
        dps_jsonbuf_lit(&a->b, ",");
}

void dps_pgarray_add(dps_pgarray_t *a, const char *s, size_t n)
{
    size_t from = 0;

    if (s == NULL) {
        dps_pgarray_add_null(a);
        return;
    }
    separator(a);
    dps_jsonbuf_lit(&a->b, "\"");
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '"' && s[i] != '\\' && s[i] != '\0')
            continue;
        dps_jsonbuf_raw(&a->b, s + from, i - from);
        if (s[i] != '\0')
            dps_jsonbuf_raw(&a->b, (const char[]){'\\', s[i]}, 2);
        from = i + 1;
    }
    dps_jsonbuf_raw(&a->b, s + from, n - from);
    dps_jsonbuf_lit(&a->b, "\"");
}

void dps_pgarray_add_str(dps_pgarray_t *a, const char *s)
{
    dps_pgarray_add(a, s, s != NULL ? strlen(s) : 0);
}

void dps_pgarray_add_null(dps_pgarray_t *a)
{
    separator(a);
    dps_jsonbuf_lit(&a->b, "NULL");
}

void dps_pgarray_add_int(dps_pgarray_t *a, long long v)
{
    char text[24];

    separator(a);
    dps_jsonbuf_raw(&a->b, text, (size_t)snprintf(text, sizeof(text), "%lld", v));
}

void dps_pgarray_add_double(dps_pgarray_t *a, double v)
{
    char text[32];

    if (!isfinite(v)) {
        dps_pgarray_add_null(a);
        return;
    }
    separator(a);
    dps_jsonbuf_raw(&a->b, text, (size_t)snprintf(text, sizeof(text), "%.17g", v));
}

void dps_pgarray_add_bool(dps_pgarray_t *a, int v)
{
    separator(a);
    if (v)
        dps_jsonbuf_lit(&a->b, "t");
    else
        dps_jsonbuf_lit(&a->b, "f");
}

const char *dps_pgarray_text(dps_pgarray_t *a)
{
    dps_jsonbuf_raw(&a->b, "}", 2); /* with its NUL */
    if (a->b.oom)
        return NULL;
    a->b.len -= 2; /* more elements may follow: keep the literal open */
    return a->b.data;
}

void dps_pgarray_free(dps_pgarray_t *a)
{
    dps_jsonbuf_free(&a->b);
}
