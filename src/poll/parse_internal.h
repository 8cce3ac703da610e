/* Helpers shared by the three health-response parsers (src/poll/parse_*.c); not a public surface. */
#ifndef DEPSERA_POLL_PARSE_INTERNAL_H
#define DEPSERA_POLL_PARSE_INTERNAL_H

#include "depsera/poll_parse.h"
#include <jansson.h>
#include <stddef.h>

/* A string → index hash map (open addressing). Keys are borrowed: they must outlive their entry. */
typedef struct {
    struct pp_map_entry {
        const char *key;
        size_t value;
    } * e;
    size_t cap, n;
} pp_map_t;

/* The entry of key, or NULL. */
struct pp_map_entry *pp_map_get(const pp_map_t *m, const char *key);
/* Insert key (not present) with value. 0 or -1 (out of memory). */
int pp_map_put(pp_map_t *m, const char *key, size_t value);
void pp_map_free(pp_map_t *m);

/* Start a result: zeroed, with its de-duplication sets. 0 or -1 (out of memory, *r zeroed). */
int pp_result_init(dps_poll_result_t *r);
/* Fail the poll with a message (printf-like): drops statuses and warnings. Always returns -1. */
int pp_fail(dps_poll_result_t *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Add a warning unless an equal one is already there (printf-like). 0 or -1 (out of memory). */
int pp_warn(dps_poll_result_t *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Add a status, taking ownership of its strings (each NULL or malloc'd; freed here on failure). A name
 * already present replaces the earlier status in place (last report wins, first position kept). 0 or -1. */
int pp_add_status(dps_poll_result_t *r, dps_dep_status_t *st);
/* Free the strings a status owns. */
void pp_status_free_strings(dps_dep_status_t *st);

/* Parse a JSON body (integers beyond int64 read as reals). NULL with a failure already set in r. */
json_t *pp_load_json(const char *body, size_t len, dps_poll_result_t *r);
/* A value's compact JSON text (any value), malloc'd; NULL when out of memory. */
char *pp_json_text(const json_t *v);
/* 1 if s is NULL, empty or only JavaScript white space. */
int pp_blank(const char *s);
/* JavaScript's String(v) of a JSON value into a malloc'd string, NULL when out of memory or when the text
 * would exceed `limit` bytes (the callers only compare it with a string of known length). */
char *pp_js_string(const json_t *v, size_t limit);
/* A double as the int of the row: truncated, saturated, NaN → 0. */
int pp_clamp_int(double v);
/* strdup that tolerates NULL; *oom set when a non-NULL string could not be copied. */
char *pp_dup(const char *s, int *oom);

#endif
