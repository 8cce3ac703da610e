/* Reading the per-minute and per-hour request counts of API keys (§7); the buckets are built as JSON by PostgreSQL. */
#include "depsera/api_usage.h"
#include "depsera/api_keys.h"
#include "depsera/http.h"
#include "depsera/jsonbuf.h"
#include "depsera/poll_parse.h" /* dps_poll_parse_iso8601: the ISO-8601 reader of lastChecked */
#include "depsera/session.h"
#include "depsera/util.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define HOUR_MS (3600LL * 1000)
#define DAY_MS (24 * HOUR_MS)

/* bucket_start is UTC wall-clock time without a zone; an instant given as epoch milliseconds ($n) becomes
 * that wall-clock time without going through the session's TimeZone. */
#define UTC_OF_MS(p) "('1970-01-01'::timestamp + " p "::bigint * interval '1 millisecond')"
#define BUCKET_MEMBERS                                                                                                             \
    "'api_key_id', b.api_key_id, 'bucket_start', to_char(b.bucket_start, 'YYYY-MM-DD\"T\"HH24:MI:SS'), "                           \
    "'granularity', b.granularity, 'push_count', b.push_count, 'rejected_count', b.rejected_count"

/* The window of a read: as answered (verbatim or the defaults) and as compared (epoch ms, decimal). */
typedef struct {
    const char *from, *to;
    char from_iso[32], to_iso[32];
    char from_ms[24], to_ms[24];
} window_t;

/* One bound from the query, or the default `ms`; 0, or -1 after answering 400. An empty value is the
 * default, as the original's `req.query.from || default`. */
static int bound(dps_req_t *r, const char *name, int64_t ms, const char **text, char *iso, char *ms_text)
{
    const char *given = dps_req_query_param(r, name);
    char msg[48];

    if (given != NULL && given[0] != '\0') {
        if (dps_poll_parse_iso8601(given, &ms) != 0) {
            snprintf(msg, sizeof(msg), "%s must be an ISO-8601 timestamp", name);
            dps_http_error(r, 400, msg);
            return -1;
        }
        *text = given;
    } else {
        dps_time_iso8601(ms, iso, 32);
        *text = iso;
    }
    snprintf(ms_text, 24, "%" PRId64, ms);
    return 0;
}

/* The window from the query, defaulting to the `span_ms` ending now; 0, or -1 after answering 400. */
static int window_or_400(dps_req_t *r, int64_t span_ms, window_t *w)
{
    int64_t now = dps_now_ms();

    return bound(r, "from", now - span_ms, &w->from, w->from_iso, w->from_ms) == 0 &&
                   bound(r, "to", now, &w->to, w->to_iso, w->to_ms) == 0
               ? 0
               : -1;
}

/* `"name":"value",` */
static void member(dps_jsonbuf_t *b, const char *name, const char *value)
{
    dps_jsonbuf_string(b, name, strlen(name));
    dps_jsonbuf_lit(b, ":");
    dps_jsonbuf_string(b, value, strlen(value));
    dps_jsonbuf_lit(b, ",");
}

/* Answer 200 {"api_key_id", "granularity" (unless key is NULL), "from", "to", "buckets"}, the buckets
 * being the JSON array text in row 0, column 0 of `res`; nothing when res is NULL (already answered). */
static void answer(dps_req_t *r, PGresult *res, const char *key, const char *granularity, const window_t *w)
{
    dps_jsonbuf_t b;

    if (res == NULL)
        return;
    dps_jsonbuf_init(&b, 256 + (size_t)PQgetlength(res, 0, 0));
    dps_jsonbuf_lit(&b, "{");
    if (key != NULL) {
        member(&b, "api_key_id", key);
        member(&b, "granularity", granularity);
    }
    member(&b, "from", w->from);
    member(&b, "to", w->to);
    dps_jsonbuf_lit(&b, "\"buckets\":");
    dps_jsonbuf_raw(&b, PQgetvalue(res, 0, 0), (size_t)PQgetlength(res, 0, 0));
    dps_jsonbuf_lit(&b, "}");
    dps_http_json_buf(r, 200, &b);
}

/* The usage object of one key known to exist: granularity and window from the query, its buckets. */
static void key_usage(dps_req_t *r, const char *key)
{
    const char *g = dps_req_query_param(r, "granularity"), *params[4];
    window_t w;

    if (g == NULL || g[0] == '\0')
        g = "minute";
    if (strcmp(g, "minute") != 0 && strcmp(g, "hour") != 0) {
        dps_http_error(r, 400, "granularity must be \"minute\" or \"hour\"");
        return;
    }
    if (window_or_400(r, g[0] == 'm' ? DAY_MS : 30 * DAY_MS, &w) != 0)
        return;
    params[0] = key, params[1] = g, params[2] = w.from_ms, params[3] = w.to_ms;
    answer(r,
           dps_req_sql(r, NULL,
                       "SELECT COALESCE(json_agg(json_build_object(" BUCKET_MEMBERS ") ORDER BY b.bucket_start), '[]') "
                       "FROM api_key_usage_buckets b WHERE b.api_key_id = $1 AND b.granularity = $2 "
                       "AND b.bucket_start BETWEEN " UTC_OF_MS("$3") " AND " UTC_OF_MS("$4"),
                       4, params),
           key, g, &w);
}

/* The usage of :keyId when it exists and, unless team is NULL, belongs to team; else answer `status`
 * with `msg` (a malformed id is an unknown one). */
static void usage_of_key(dps_req_t *r, const char *team, int status, const char *msg)
{
    const char *params[2] = {dps_req_param(r, "keyId"), team};
    PGresult *res = NULL;

    if (params[0] != NULL && dps_is_uuid(params[0]) && (team == NULL || dps_is_uuid(team)) &&
        (res = dps_req_sql(r, NULL,
                           team != NULL ? "SELECT 1 FROM team_api_keys WHERE id = $1 AND team_id = $2"
                                        : "SELECT 1 FROM team_api_keys WHERE id = $1",
                           team != NULL ? 2 : 1, params)) == NULL)
        return;
    if (res == NULL || PQntuples(res) == 0) {
        dps_http_error(r, status, msg);
        return;
    }
    key_usage(r, params[0]);
}

void dps_api_usage_team_key(dps_req_t *r)
{
    const char *team;

    if ((team = dps_api_keys_lead_guard(r)) != NULL)
        usage_of_key(r, team, 403, "API key does not belong to this team");
}

void dps_api_usage_admin_key(dps_req_t *r)
{
    if (dps_require_admin(r) == 0)
        usage_of_key(r, NULL, 404, "API key not found");
}

void dps_api_usage_admin_all(dps_req_t *r)
{
    const char *params[2];
    window_t w;

    if (dps_require_admin(r) != 0 || window_or_400(r, 7 * DAY_MS, &w) != 0)
        return;
    params[0] = w.from_ms, params[1] = w.to_ms;
    answer(r,
           dps_req_sql(r, NULL,
                       "SELECT COALESCE(json_agg(json_build_object(" BUCKET_MEMBERS ", 'team_id', k.team_id, 'key_name', k.name) "
                       "ORDER BY b.bucket_start, b.api_key_id), '[]') "
                       "FROM api_key_usage_buckets b JOIN team_api_keys k ON k.id = b.api_key_id "
                       "WHERE b.granularity = 'hour' AND b.bucket_start BETWEEN " UTC_OF_MS("$1") " AND " UTC_OF_MS("$2"),
                       2, params),
           NULL, NULL, &w);
}
