/* The health-response parsers of the poller (polling.md §2): a response body, and the service's format
 * and schema_config, turned into dependency statuses for the upsert pipeline plus parser warnings.
 * Pure: no I/O, no database, no clock (a status without a time means "now", see upsert.h). */
#ifndef DEPSERA_POLL_PARSE_H
#define DEPSERA_POLL_PARSE_H

#include "depsera/upsert.h"
#include <stddef.h>

/* What one parse produced. Everything it points to is owned by the result (dps_poll_result_free).
 * On success: deps[0..n_deps) with unique names, in first-seen order, every string member either NULL
 * (absent) or a NUL-terminated valid UTF-8 string (`type` is never NULL: "other" when not reported);
 * contact, check_details and error are JSON text; warnings de-duplicated, in first-seen order.
 * On failure: error is the poll's failure message (§2, stored after §5.1 sanitizing), n_deps and
 * n_warnings are 0. */
typedef struct {
    dps_dep_status_t *deps;
    size_t n_deps;
    char **warnings;
    size_t n_warnings;
    char *error; /* NULL on success */
    /* private to the parsers */
    size_t cap_deps, cap_warnings;
    void *warning_set, *name_set;
    int error_static; /* error is a string literal (out of memory), not to be freed */
} dps_poll_result_t;

/* The parser a service's format and schema_config select (§2's dispatch table): `otlp` fails with
 * "OTLP services are push-only and cannot be polled"; `prometheus` uses its text parser (the config
 * counts as a MetricSchemaConfig only if it has a `metrics` or `labels` object); any other format with
 * a config that parses as a JSON object uses the SchemaMapper; else the default proactive-deps parser.
 * A config that does not parse, or parses as something other than an object, counts as none.
 * `format` may be NULL (default). `body` is len bytes, not necessarily NUL-terminated.
 * Fills *out (always; release with dps_poll_result_free). Returns 0 when the poll succeeded, -1 when it
 * failed (out->error says why: a message of the spec, or "Out of memory"). */
int dps_poll_parse(const char *format, const char *schema_config, const char *body, size_t len, dps_poll_result_t *out)
    __attribute__((warn_unused_result));

/* §2.1: a JSON array of proactive-deps dependency objects. A body that is not JSON fails with
 * "Invalid JSON response: <parser message> at line L, column C" (also past 2048 levels of nesting, or for a
 * number beyond the double range); integers beyond int64 are read as doubles. A repeated name: the later
 * element replaces the earlier one in its place. As dps_poll_parse. */
int dps_poll_parse_default(const char *body, size_t len, dps_poll_result_t *out) __attribute__((warn_unused_result));

/* §2.2: any JSON document mapped by a SchemaMapping (`schema_config` text: {"root":…,"fields":{…}}).
 * A config without a string root, a fields object and a name mapping (the API never stores one) fails with
 * "Schema mapping error: invalid schema_config". JSON errors and repeated names as the default parser.
 * As dps_poll_parse. */
int dps_poll_parse_schema(const char *body, size_t len, const char *schema_config, dps_poll_result_t *out)
    __attribute__((warn_unused_result));

/* §2.3: the Prometheus text exposition format (0.0.4 / OpenMetrics text) with the default metric and label
 * maps merged with a MetricSchemaConfig (`schema_config` text; NULL or unusable ⇒ defaults). Work and
 * memory are linear in len. As dps_poll_parse (it fails only when out of memory). */
int dps_poll_parse_prometheus(const char *body, size_t len, const char *schema_config, dps_poll_result_t *out)
    __attribute__((warn_unused_result));

/* Release everything a parse put in *r and zero it; harmless on a zeroed or already freed result. */
void dps_poll_result_free(dps_poll_result_t *r);

/* An ISO-8601 date or date-time (YYYY-MM-DD, then optionally [T ]hh:mm[:ss[.fff…]] and Z, ±hh:mm, ±hhmm or
 * ±hh; no offset means UTC) as epoch milliseconds (fraction truncated to ms). 0, or -1 if s is anything
 * else or not a real calendar date/time. Used for the default format's lastChecked. */
int dps_poll_parse_iso8601(const char *s, int64_t *epoch_ms) __attribute__((warn_unused_result));

#endif
