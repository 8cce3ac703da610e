/* Large JSON responses written as text straight from query results, without a jansson tree. */
#ifndef DEPSERA_JSONBUF_H
#define DEPSERA_JSONBUF_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stddef.h>

#include "depsera/router.h"

/* A growing text buffer (malloc'd). Appends after a failed allocation do nothing and leave `oom` set,
 * so a writer checks once at the end. */
typedef struct {
    char *data;
    size_t len, cap;
    int oom;
} dps_jsonbuf_t;

/* Start an empty buffer; `hint` is the expected size (may be 0). */
void dps_jsonbuf_init(dps_jsonbuf_t *b, size_t hint);
/* Release the text (safe twice). */
void dps_jsonbuf_free(dps_jsonbuf_t *b);

/* Append bytes as they are (JSON punctuation, or text already JSON). */
void dps_jsonbuf_raw(dps_jsonbuf_t *b, const char *s, size_t n);
/* Append a string literal (only a literal compiles here). */
#define dps_jsonbuf_lit(b, s) dps_jsonbuf_raw((b), "" s, sizeof("" s) - 1)
/* Append s (UTF-8, n bytes) as a JSON string: quotes, backslashes and control characters escaped. */
void dps_jsonbuf_string(dps_jsonbuf_t *b, const char *s, size_t n);
/* Append a jansson value (for the small parts of a large document; JSON_COMPACT). */
void dps_jsonbuf_json(dps_jsonbuf_t *b, const json_t *v);
/* Append one result value typed as dps_row_json types it: booleans, numbers (non-finite ones as
 * null), json/jsonb as they are, timestamptz as ISO-8601 UTC with milliseconds and Z, NULL as null,
 * anything else as a string. */
void dps_jsonbuf_value(dps_jsonbuf_t *b, const PGresult *res, int row, int col);
/* Append "name":value for the columns from..to-1 of a row, comma-separated (no braces). */
void dps_jsonbuf_members(dps_jsonbuf_t *b, const PGresult *res, int row, int from, int to);

/* The columns from..to-1 of a result prepared once (each name escaped, each type classified) for
 * writing many rows. */
typedef struct {
    int from, to;
    struct dps_jsonbuf_col *col;
} dps_jsonbuf_cols_t;
/* 0, or -1 when memory runs out. */
int dps_jsonbuf_cols_init(dps_jsonbuf_cols_t *c, const PGresult *res, int from, int to);
void dps_jsonbuf_cols_free(dps_jsonbuf_cols_t *c);
/* As dps_jsonbuf_members over the prepared columns. */
void dps_jsonbuf_row(dps_jsonbuf_t *b, const dps_jsonbuf_cols_t *c, const PGresult *res, int row);
/* Send the text as a JSON response with `status` (200, 201) and free it; a buffer that ran out of
 * memory is answered 500 instead. */
void dps_http_json_buf(dps_req_t *r, int status, dps_jsonbuf_t *b);

#endif
