/* A dependency's history as the charts read it: health timeline, errors, latency and latency buckets
 * (graph-and-api.md §5.1, §5.2), one or two statements each. */
#include "depsera/api_history.h"
#include "depsera/api_guards.h"
#include "depsera/http.h"
#include "depsera/jsonbuf.h"
#include "depsera/session.h"
#include "depsera/util.h"

#include <stdio.h>
#include <string.h>

static const char not_found[] = "Dependency not found";

/* A range of the query: its name, its window and the width of its buckets (PostgreSQL intervals). */
typedef struct {
    const char *name, *window, *bucket;
} range_t;

static const range_t timeline_ranges[] = {{"24h", "24 hours", NULL}, {"7d", "7 days", NULL}, {"30d", "30 days", NULL}, {NULL}};
static const range_t bucket_ranges[] = {{"1h", "1 hour", "1 minute"},      {"6h", "6 hours", "1 minute"},
                                        {"24h", "24 hours", "15 minutes"}, {"7d", "7 days", "1 hour"},
                                        {"30d", "30 days", "6 hours"},     {NULL}};

/* The `range` parameter (absent or empty: 24h) among `ranges`; NULL after answering 400. */
static const range_t *range_of(dps_req_t *r, const range_t *ranges, const char *names)
{
    const char *v = dps_req_query_param(r, "range");
    char msg[96];

    if (v == NULL || v[0] == '\0')
        v = "24h";
    for (const range_t *x = ranges; x->name != NULL; x++)
        if (strcmp(x->name, v) == 0)
            return x;
    snprintf(msg, sizeof(msg), "Invalid range. Must be one of: %s", names);
    dps_http_error(r, 400, msg);
    return NULL;
}

/* "name":"value" with the value escaped, after `lead` (",", or "{"). */
static void write_member(dps_jsonbuf_t *b, const char *lead, const char *name, const char *value)
{
    dps_jsonbuf_raw(b, lead, strlen(lead));
    dps_jsonbuf_string(b, name, strlen(name));
    dps_jsonbuf_lit(b, ":");
    dps_jsonbuf_string(b, value, strlen(value));
}

/* The rows of a result whose column `key` is not NULL as objects of the columns from..to-1 (named by
 * their aliases), comma-separated; 0, or -1 when memory runs out. */
static int write_objects(dps_jsonbuf_t *b, const PGresult *res, int key, int from, int to)
{
    dps_jsonbuf_cols_t cols;
    int written = 0;

    if (dps_jsonbuf_cols_init(&cols, res, from, to) != 0)
        return -1;
    for (int i = 0; i < PQntuples(res); i++) {
        if (PQgetisnull(res, i, key))
            continue;
        if (written++ > 0)
            dps_jsonbuf_lit(b, ",");
        dps_jsonbuf_lit(b, "{");
        dps_jsonbuf_row(b, &cols, res, i);
        dps_jsonbuf_lit(b, "}");
    }
    dps_jsonbuf_cols_free(&cols);
    return 0;
}

/* The rows of a statement about one dependency ($1), at least one when it exists; NULL after
 * answering 404 (or 503/500). */
static PGresult *dependency_rows(dps_req_t *r, const char *sql, int n, const char *const *params)
{
    PGresult *res = dps_req_sql(r, NULL, sql, n, params);

    if (res != NULL && PQntuples(res) == 0) {
        dps_http_error(r, 404, not_found);
        return NULL;
    }
    return res;
}

/* Ends a document with its list member `name` (the rows of `res` whose column `key` is not NULL, as
 * objects of the columns from..to-1) and sends it as 200 (500 if memory ran out). */
static void send_with_list(dps_req_t *r, dps_jsonbuf_t *b, const char *name, const PGresult *res, int key, int from, int to)
{
    dps_jsonbuf_lit(b, ",");
    dps_jsonbuf_string(b, name, strlen(name));
    dps_jsonbuf_lit(b, ":[");
    b->oom |= write_objects(b, res, key, from, to) != 0;
    dps_jsonbuf_lit(b, "]}");
    dps_http_json_buf(r, 200, b);
}

/* ---- timeline (§5.1) ------------------------------------------------------------------------------ */

/* One row per error-history row in the window (oldest first), or one with a NULL timestamp. A row
 * whose error and message are both NULL is a recovery. */
#define TIMELINE_SQL                                                                                                               \
    "SELECT CASE WHEN d.healthy THEN 'healthy' WHEN NOT d.healthy THEN 'unhealthy' ELSE 'unknown' END, "                           \
    "e.recorded_at AS \"timestamp\", CASE WHEN e.error IS NULL AND e.error_message IS NULL THEN 'healthy' ELSE 'unhealthy' END "   \
    "AS state FROM dependencies d LEFT JOIN dependency_error_history e ON e.dependency_id = d.id "                                 \
    "AND e.recorded_at >= now() - $2::interval WHERE d.id = $1 ORDER BY e.recorded_at, e.id"

void dps_api_history_timeline(dps_req_t *r)
{
    const range_t *range;
    const char *id, *params[2];
    PGresult *res;
    dps_jsonbuf_t b;

    if (dps_require_user(r) != 0 || (range = range_of(r, timeline_ranges, "24h, 7d, 30d")) == NULL ||
        (id = dps_api_uuid_param(r, "id", not_found)) == NULL)
        return;
    params[0] = id, params[1] = range->window;
    if ((res = dependency_rows(r, TIMELINE_SQL, 2, params)) == NULL)
        return;
    dps_jsonbuf_init(&b, 256 + (size_t)PQntuples(res) * 64);
    write_member(&b, "{", "dependencyId", id);
    write_member(&b, ",", "range", range->name);
    write_member(&b, ",", "currentState", PQgetvalue(res, 0, 0));
    send_with_list(r, &b, "transitions", res, 1, 1, 3);
}

/* ---- errors (§5.1) -------------------------------------------------------------------------------- */

/* The 50 newest rows of the last 24 h (or one row with a NULL time), each with the count of error rows
 * (not recoveries) of the 24 h. */
#define ERRORS_SQL                                                                                                                 \
    "SELECT (SELECT count(*) FROM dependency_error_history c WHERE c.dependency_id = d.id "                                        \
    "AND c.recorded_at >= now() - interval '24 hours' AND (c.error IS NOT NULL OR c.error_message IS NOT NULL)), "                 \
    "e.error, e.error_message AS \"errorMessage\", e.recorded_at AS \"recordedAt\", "                                              \
    "e.error IS NULL AND e.error_message IS NULL AS \"isRecovery\" FROM dependencies d LEFT JOIN LATERAL "                         \
    "(SELECT x.error, x.error_message, x.recorded_at, x.id FROM dependency_error_history x WHERE x.dependency_id = d.id "          \
    "AND x.recorded_at >= now() - interval '24 hours' ORDER BY x.recorded_at DESC, x.id DESC LIMIT 50) e ON true "                 \
    "WHERE d.id = $1 ORDER BY e.recorded_at DESC, e.id DESC"

void dps_api_history_errors(dps_req_t *r)
{
    const char *id;
    PGresult *res;
    dps_jsonbuf_t b;

    if (dps_require_user(r) != 0 || (id = dps_api_uuid_param(r, "dependencyId", not_found)) == NULL ||
        (res = dependency_rows(r, ERRORS_SQL, 1, &id)) == NULL)
        return;
    dps_jsonbuf_init(&b, 256 + (size_t)PQntuples(res) * 200);
    write_member(&b, "{", "dependencyId", id);
    dps_jsonbuf_lit(&b, ",\"errorCount\":");
    dps_jsonbuf_value(&b, res, 0, 0);
    send_with_list(r, &b, "errors", res, 3, 1, 5);
}

/* ---- latency (§5.2) ------------------------------------------------------------------------------- */

/* The statistics of the last 24 h (the average rounded as Math.round) and the 100 newest points
 * whenever they were recorded, newest first (or one row with a NULL point). */
#define LATENCY_SQL                                                                                                                \
    "SELECT d.latency_ms AS \"currentLatencyMs\", floor(s.avg + 0.5) AS \"avgLatencyMs24h\", s.min AS \"minLatencyMs24h\", "       \
    "s.max AS \"maxLatencyMs24h\", s.n AS \"dataPointCount\", p.latency_ms, p.recorded_at FROM dependencies d "                    \
    "CROSS JOIN LATERAL (SELECT avg(h.latency_ms) AS avg, min(h.latency_ms) AS min, max(h.latency_ms) AS max, count(*) AS n "      \
    "FROM dependency_latency_history h WHERE h.dependency_id = d.id AND h.recorded_at >= now() - interval '24 hours') s "          \
    "LEFT JOIN LATERAL (SELECT h.latency_ms, h.recorded_at FROM dependency_latency_history h WHERE h.dependency_id = d.id "        \
    "ORDER BY h.recorded_at DESC LIMIT 100) p ON true WHERE d.id = $1 ORDER BY p.recorded_at DESC"

void dps_api_history_latency(dps_req_t *r)
{
    const char *id;
    PGresult *res;
    dps_jsonbuf_t b;

    if (dps_require_user(r) != 0 || (id = dps_api_uuid_param(r, "dependencyId", not_found)) == NULL ||
        (res = dependency_rows(r, LATENCY_SQL, 1, &id)) == NULL)
        return;
    dps_jsonbuf_init(&b, 512 + (size_t)PQntuples(res) * 80);
    write_member(&b, "{", "dependencyId", id);
    dps_jsonbuf_lit(&b, ",");
    dps_jsonbuf_members(&b, res, 0, 0, 5);
    send_with_list(r, &b, "dataPoints", res, 6, 5, 7);
}

/* Buckets of §5.2 over the rows of the dependencies in $1 (uuid[]) of the window $3, $2 wide: bucket
 * starts aligned on UTC midnight (minutes, quarter hours, hours, 00/06/12/18 h), ascending. The
 * timestamp prints as YYYY-MM-DDTHH:MM:00.000Z. Averages round half away from zero, as SQLite's
 * ROUND did (numeric: round() of a double rounds half to even).
 *
 * The rows come from the per-minute roll-up (migration 010) for the whole minutes of the window in
 * [lo, hi) = [max(first whole minute of the window, rolled_from), rolled_until), and from the raw
 * rows of the window outside them (the window's partial first minute, minutes before rolled_from,
 * and everything from rolled_until on; all of them before the first roll-up). Every bucket width is
 * a whole number of minutes aligned on the same origin, so a minute falls in one bucket: a bucket
 * pools its minutes and raw rows (count = Σn, avg = Σsum / Σn as avg() computes it). */
#define ORIGIN "timestamptz '2000-01-01 00:00:00+00'"
#define RAW_SQL                                                                                                                    \
    "SELECT recorded_at, 1, latency_ms, latency_ms, latency_ms, (p50_ms IS NOT NULL)::int, p50_ms, (p95_ms IS NOT NULL)::int, "    \
    "p95_ms, (p99_ms IS NOT NULL)::int, p99_ms FROM dependency_latency_history WHERE dependency_id = ANY ($1::uuid[]) "            \
    "AND recorded_at >= now() - $3::interval AND recorded_at "
#define BUCKETS_SQL                                                                                                                \
    "WITH s AS (SELECT CASE WHEN rolled_from IS NULL THEN timestamptz 'infinity' ELSE greatest(date_bin('1 minute', "              \
    "now() - $3::interval - interval '1 microsecond', " ORIGIN ") + interval '1 minute', rolled_from) END AS lo, rolled_until "    \
    "FROM latency_rollup_state), r AS (SELECT lo, greatest(coalesce(rolled_until, timestamptz 'infinity'), lo) AS hi FROM s) "     \
    "SELECT date_bin($2::interval, t, " ORIGIN ") AS \"timestamp\", min(mn) AS min, round((sum(sm) / sum(n)::float8)::numeric) "   \
    "AS avg, max(mx) AS max, sum(n)::bigint AS count, round((sum(s50) / nullif(sum(n50), 0)::float8)::numeric) AS avg_p50, "       \
    "round((sum(s95) / nullif(sum(n95), 0)::float8)::numeric) AS avg_p95, "                                                        \
    "round((sum(s99) / nullif(sum(n99), 0)::float8)::numeric) AS avg_p99 "                                                         \
    "FROM (SELECT minute, n, sum_ms, min_ms, max_ms, n_p50, sum_p50, n_p95, sum_p95, n_p99, sum_p99 "                              \
    "FROM dependency_latency_minutes WHERE dependency_id = ANY ($1::uuid[]) AND minute >= (SELECT lo FROM r) "                     \
    "AND minute < (SELECT hi FROM r) UNION ALL " RAW_SQL "< (SELECT lo FROM r) UNION ALL " RAW_SQL ">= (SELECT hi FROM r)) "       \
    "x (t, n, sm, mn, mx, n50, s50, n95, s95, n99, s99) GROUP BY 1 ORDER BY 1"

/* Ends the document with the range and its buckets over `ids` (a uuid[] literal) and sends it; the
 * document is freed on failure (answered 503/500). */
static void send_buckets(dps_req_t *r, dps_jsonbuf_t *b, const range_t *range, const char *ids)
{
    const char *params[3] = {ids, range->bucket, range->window};
    PGresult *res = dps_req_sql(r, NULL, BUCKETS_SQL, 3, params);

    if (res == NULL) {
        dps_jsonbuf_free(b);
        return;
    }
    write_member(b, ",", "range", range->name);
    send_with_list(r, b, "buckets", res, 0, 0, PQnfields(res));
}

void dps_api_history_buckets(dps_req_t *r)
{
    const range_t *range;
    const char *id;
    char ids[48];
    dps_jsonbuf_t b;

    if (dps_require_user(r) != 0 || (range = range_of(r, bucket_ranges, "1h, 6h, 24h, 7d, 30d")) == NULL ||
        (id = dps_api_uuid_param(r, "dependencyId", not_found)) == NULL ||
        dependency_rows(r, "SELECT 1 FROM dependencies WHERE id = $1", 1, &id) == NULL)
        return;
    snprintf(ids, sizeof(ids), "{%s}", id);
    dps_jsonbuf_init(&b, 4096);
    write_member(&b, "{", "dependencyId", id);
    send_buckets(r, &b, range, ids);
}

/* dependencyIds split on commas, empty parts dropped (the original's split(',').filter(Boolean)):
 * written as a JSON array of strings into `b`, the UUIDs among them into `ids` (a uuid[] literal:
 * an id that is not one matches no row). The number of parts. */
static int split_ids(const char *list, dps_jsonbuf_t *b, dps_jsonbuf_t *ids)
{
    int n = 0, valid = 0;

    dps_jsonbuf_lit(ids, "{");
    for (const char *p = list; *p != '\0';) {
        size_t len = strcspn(p, ",");
        char one[64];
        if (len > 0) {
            if (n++ > 0)
                dps_jsonbuf_lit(b, ",");
            dps_jsonbuf_string(b, p, len);
            if (len < sizeof(one)) {
                memcpy(one, p, len), one[len] = '\0';
                if (dps_is_uuid(one)) {
                    if (valid++ > 0)
                        dps_jsonbuf_lit(ids, ",");
                    dps_jsonbuf_raw(ids, one, len);
                }
            }
        }
        p += len + (p[len] == ',');
    }
    dps_jsonbuf_raw(ids, "}", 2); /* with the NUL */
    return n;
}

void dps_api_history_aggregate_buckets(dps_req_t *r)
{
    const char *list;
    const range_t *range;
    dps_jsonbuf_t b, ids;
    int n;

    if (dps_require_user(r) != 0)
        return;
    if ((list = dps_req_query_param(r, "dependencyIds")) == NULL || list[0] == '\0') {
        dps_http_error(r, 400, "dependencyIds query parameter is required");
        return;
    }
    dps_jsonbuf_init(&b, 4096);
    dps_jsonbuf_init(&ids, 256);
    dps_jsonbuf_lit(&b, "{\"dependencyIds\":[");
    n = split_ids(list, &b, &ids);
    dps_jsonbuf_lit(&b, "]");
    if (n == 0) {
        dps_http_error(r, 400, "At least one dependency ID is required");
    } else if ((range = range_of(r, bucket_ranges, "1h, 6h, 24h, 7d, 30d")) == NULL) {
        /* answered */
    } else if (ids.oom) {
        dps_http_error(r, 500, "Internal server error");
    } else {
        send_buckets(r, &b, range, ids.data);
        dps_jsonbuf_free(&ids);
        return;
    }
    dps_jsonbuf_free(&ids);
    dps_jsonbuf_free(&b);
}
