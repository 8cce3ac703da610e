/* PostgreSQL array literals in text form ({"a",NULL,"b\"c"}), so that one statement can take a
 * column of values for many rows (unnest($1::text[], ...)) instead of one statement per row. */
#ifndef DEPSERA_PGARRAY_H
#define DEPSERA_PGARRAY_H
#include <stddef.h>

#include "depsera/jsonbuf.h"

/* A literal being built; `b` is malloc'd (dps_jsonbuf_t is a plain growing buffer). */
typedef struct {
    dps_jsonbuf_t b;
    size_t n;
} dps_pgarray_t;

void dps_pgarray_init(dps_pgarray_t *a);
/* Append an element: s (n bytes, NUL bytes dropped: text cannot hold them) quoted and escaped, or
 * NULL for SQL NULL. */
void dps_pgarray_add(dps_pgarray_t *a, const char *s, size_t n);
/* A NUL-terminated string, or NULL. */
void dps_pgarray_add_str(dps_pgarray_t *a, const char *s);
void dps_pgarray_add_null(dps_pgarray_t *a);
void dps_pgarray_add_int(dps_pgarray_t *a, long long v);
/* Finite doubles at full precision; NaN and infinities as NULL. */
void dps_pgarray_add_double(dps_pgarray_t *a, double v);
void dps_pgarray_add_bool(dps_pgarray_t *a, int v);
/* The NUL-terminated literal ("{...}"), owned by `a`; NULL when memory ran out. */
const char *dps_pgarray_text(dps_pgarray_t *a);
void dps_pgarray_free(dps_pgarray_t *a);

#endif
