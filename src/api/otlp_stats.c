/* OTLP stats (§9): push services and API keys of a team, or of every team, in two statements. */
#include "depsera/api_otlp_stats.h"
#include "depsera/config.h"
#include "depsera/http.h"
#include "depsera/jsonbuf.h"
#include "depsera/session.h"
#include "depsera/util.h"

#include <stdio.h>
#include <string.h>

/* The windows end at the statement's now() (UTC wall-clock time, as bucket_start). */
#define NOW_UTC "(now() AT TIME ZONE 'UTC')"

/* Service rows: team_id and team_name, then the members of a service object (SVC_FIRST..SVC_END-1). */
enum { SVC_TEAM, SVC_TEAM_NAME, SVC_FIRST, SVC_ACTIVE = 4, SVC_SUCCESS = 5, SVC_END = 12 };
#define SERVICE_SQL                                                                                                                \
    "SELECT s.team_id, COALESCE(t.name, 'Unknown') AS team_name, s.id, s.name, s.is_active, "                                      \
    "s.last_poll_success AS last_push_success, s.last_poll_error AS last_push_error, "                                             \
    "CASE WHEN jsonb_typeof(s.poll_warnings) = 'array' THEN s.poll_warnings END AS last_push_warnings, "                           \
    "s.updated_at AS last_push_at, "                                                                                               \
    "(SELECT count(*) FROM dependencies d WHERE d.service_id = s.id) AS dependency_count, "                                        \
    "(SELECT count(*) FROM service_poll_history h WHERE h.service_id = s.id AND h.error IS NOT NULL "                              \
    "AND h.recorded_at BETWEEN now() - interval '24 hours' AND now()) AS errors_24h, "                                             \
    "s.schema_config "                                                                                                             \
    "FROM services s LEFT JOIN teams t ON t.id = s.team_id "

/* Key rows: team_id, then the members of a key object (KEY_FIRST..KEY_END-1); $1 is the default rpm.
 * Q-USAGE: the 1 h and 24 h figures sum minute buckets only, the 7 d ones hour buckets only. */
enum { KEY_TEAM, KEY_FIRST, KEY_END = 14 };
/* clang-format off */
#define SUM(col, g, span, name) \
    "sum(b." col ") FILTER (WHERE b.granularity = '" g "' AND b.bucket_start >= " NOW_UTC " - interval '" span "')::bigint AS " name
#define KEY_SQL                                                                                                                    \
    "SELECT k.team_id, k.id, k.name, k.key_prefix, k.last_used_at, k.created_at, "                                                 \
    "COALESCE(k.rate_limit_rpm::bigint, $1::bigint) AS rate_limit_rpm, k.rate_limit_rpm IS NOT NULL AS rate_limit_is_custom, "     \
    "k.rate_limit_admin_locked, "                                                                                                  \
    "COALESCE(u.usage_1h, 0) AS usage_1h, COALESCE(u.usage_24h, 0) AS usage_24h, COALESCE(u.usage_7d, 0) AS usage_7d, "            \
    "COALESCE(u.rejected_24h, 0) AS rejected_24h, COALESCE(u.rejected_7d, 0) AS rejected_7d "                                      \
    "FROM team_api_keys k CROSS JOIN LATERAL (SELECT "                                                                             \
    SUM("push_count", "minute", "1 hour", "usage_1h") ", "                                                                         \
    SUM("push_count", "minute", "24 hours", "usage_24h") ", "                                                                      \
    SUM("push_count", "hour", "7 days", "usage_7d") ", "                                                                           \
    SUM("rejected_count", "minute", "24 hours", "rejected_24h") ", "                                                               \
    SUM("rejected_count", "hour", "7 days", "rejected_7d") " "                                                                     \
    "FROM api_key_usage_buckets b WHERE b.api_key_id = k.id "                                                                      \
    "AND b.bucket_start BETWEEN " NOW_UTC " - interval '7 days' AND " NOW_UTC ") u "
/* clang-format on */

/* The admin view's team order: the rank of each team's first OTLP service by name. */
#define TEAM_RANKS                                                                                                                 \
    "WITH ranks AS (SELECT x.team_id, min(x.rn) AS team_rank FROM (SELECT s.team_id, "                                             \
    "row_number() OVER (ORDER BY s.name COLLATE \"C\", s.id) AS rn FROM services s "                                               \
    "WHERE s.health_endpoint_format = 'otlp') x GROUP BY x.team_id) "

typedef struct {
    long total, active, with_errors, never_pushed;
} summary_t;

/* Both results, written team by team: rows of one team are contiguous in each. */
typedef struct {
    PGresult *svc, *keys;
    int si, ki; /* the next row of each */
    dps_jsonbuf_cols_t svc_cols, key_cols;
    summary_t sum;
} stats_t;

/* 1 if row `i` of `res` is there and of `team` (NULL: any team). */
static int of_team(const PGresult *res, int i, const char *team)
{
    return i < PQntuples(res) && (team == NULL || strcmp(PQgetvalue(res, i, 0), team) == 0);
}

/* "services":[…] of the service rows from s->si on that belong to `team` (NULL: all), counted into the summary. */
static void write_services(dps_jsonbuf_t *b, stats_t *s, const char *team)
{
    const char *success;

    dps_jsonbuf_lit(b, "\"services\":[");
    for (int first = 1; of_team(s->svc, s->si, team); s->si++, first = 0) {
        dps_jsonbuf_raw(b, first ? "{" : ",{", first ? 1 : 2);
        dps_jsonbuf_row(b, &s->svc_cols, s->svc, s->si);
        dps_jsonbuf_lit(b, "}");
        success = PQgetisnull(s->svc, s->si, SVC_SUCCESS) ? NULL : PQgetvalue(s->svc, s->si, SVC_SUCCESS);
        s->sum.total++;
        s->sum.active += PQgetvalue(s->svc, s->si, SVC_ACTIVE)[0] == 't';
        s->sum.with_errors += success != NULL && success[0] == 'f';
        s->sum.never_pushed += success == NULL;
    }
    dps_jsonbuf_lit(b, "]");
}

/* "apiKeys":[…] of the key rows from s->ki on that belong to `team` (NULL: all). */
static void write_keys(dps_jsonbuf_t *b, stats_t *s, const char *team)
{
    dps_jsonbuf_lit(b, "\"apiKeys\":[");
    for (int first = 1; of_team(s->keys, s->ki, team); s->ki++, first = 0) {
        dps_jsonbuf_raw(b, first ? "{" : ",{", first ? 1 : 2);
        dps_jsonbuf_row(b, &s->key_cols, s->keys, s->ki);
        dps_jsonbuf_lit(b, "}");
    }
    dps_jsonbuf_lit(b, "]");
}

/* "summary":{…}, with total_teams unless it is negative. */
static void write_summary(dps_jsonbuf_t *b, const summary_t *sum, long teams)
{
    char text[192];
    int n = snprintf(text, sizeof(text),
                     "\"summary\":{\"total_otlp_services\":%ld,\"active_services\":%ld,\"services_with_errors\":%ld,"
                     "\"services_never_pushed\":%ld",
                     sum->total, sum->active, sum->with_errors, sum->never_pushed);

    dps_jsonbuf_raw(b, text, (size_t)n);
    if (teams >= 0) {
        n = snprintf(text, sizeof(text), ",\"total_teams\":%ld", teams);
        dps_jsonbuf_raw(b, text, (size_t)n);
    }
    dps_jsonbuf_lit(b, "}");
}

/* Run the two statements (team: $1 of the service statement, $2 of the key one; NULL for every team)
 * and prepare their columns. 0, or -1 after answering. */
static int load(dps_req_t *r, stats_t *s, const char *services_sql, const char *keys_sql, const char *team)
{
    char rpm[24];
    const char *params[2] = {rpm, team};

    memset(s, 0, sizeof(*s));
    snprintf(rpm, sizeof(rpm), "%lld", dps_worker_config(r->worker)->otlp_per_key_rate_limit_rpm);
    if ((s->svc = dps_req_sql(r, NULL, services_sql, team != NULL ? 1 : 0, params + 1)) == NULL ||
        (s->keys = dps_req_sql(r, NULL, keys_sql, team != NULL ? 2 : 1, params)) == NULL)
        return -1;
    if (dps_jsonbuf_cols_init(&s->svc_cols, s->svc, SVC_FIRST, SVC_END) != 0 ||
        dps_jsonbuf_cols_init(&s->key_cols, s->keys, KEY_FIRST, KEY_END) != 0) {
        dps_jsonbuf_cols_free(&s->svc_cols);
        dps_http_error(r, 500, "Internal server error");
        return -1;
    }
    return 0;
}

static void unload(stats_t *s)
{
    dps_jsonbuf_cols_free(&s->svc_cols);
    dps_jsonbuf_cols_free(&s->key_cols);
}

/* Members of the team (any role) and admins; 0, or -1 after answering 403 (or 401, 503/500). */
static int member_guard(dps_req_t *r, const char *team)
{
    const char *params[2] = {team, NULL};
    PGresult *res;

    if (dps_require_user(r) != 0)
        return -1;
    if (r->user->is_admin)
        return 0;
    if (team != NULL && dps_is_uuid(team)) {
        params[1] = r->user->id;
        if ((res = dps_req_sql(r, NULL, "SELECT 1 FROM team_members WHERE team_id = $1 AND user_id = $2", 2, params)) == NULL)
            return -1;
        if (PQntuples(res) > 0)
            return 0;
    }
    dps_http_error(r, 403, "Team access required");
    return -1;
}

void dps_api_otlp_stats_team(dps_req_t *r)
{
    const char *team = dps_req_param(r, "id");
    dps_jsonbuf_t b;
    stats_t s;

    if (member_guard(r, team) != 0)
        return;
    if (team == NULL || !dps_is_uuid(team)) /* an admin naming no team: the nil UUID, no team's id */
        team = "00000000-0000-0000-0000-000000000000";
    if (load(r, &s, SERVICE_SQL "WHERE s.health_endpoint_format = 'otlp' AND s.team_id = $1 ORDER BY s.name COLLATE \"C\", s.id",
             KEY_SQL "WHERE k.team_id = $2 ORDER BY k.created_at DESC, k.id DESC", team) != 0)
        return;
    dps_jsonbuf_init(&b, 1024);
    dps_jsonbuf_lit(&b, "{");
    write_services(&b, &s, NULL);
    dps_jsonbuf_lit(&b, ",");
    write_keys(&b, &s, NULL);
    dps_jsonbuf_lit(&b, ",");
    write_summary(&b, &s.sum, -1);
    dps_jsonbuf_lit(&b, "}");
    unload(&s);
    dps_http_json_buf(r, 200, &b);
}

void dps_api_otlp_stats_admin(dps_req_t *r)
{
    dps_jsonbuf_t b;
    stats_t s;
    long teams = 0;
    const char *team;

    /* one snapshot for both statements, so that the team order of the two results agrees */
    if (dps_require_admin(r) != 0 || dps_req_sql(r, NULL, "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY", 0, NULL) == NULL ||
        load(r, &s,
             TEAM_RANKS SERVICE_SQL "JOIN ranks ON ranks.team_id = s.team_id WHERE s.health_endpoint_format = 'otlp' "
                                    "ORDER BY ranks.team_rank, s.name COLLATE \"C\", s.id",
             TEAM_RANKS KEY_SQL "JOIN ranks ON ranks.team_id = k.team_id ORDER BY ranks.team_rank, k.created_at DESC, k.id DESC",
             NULL) != 0)
        return;
    if (dps_req_commit(r) != 0) {
        unload(&s);
        return;
    }
    dps_jsonbuf_init(&b, 1024);
    dps_jsonbuf_lit(&b, "{\"teams\":[");
    while (s.si < PQntuples(s.svc)) {
        team = PQgetvalue(s.svc, s.si, SVC_TEAM);
        if (teams++ > 0)
            dps_jsonbuf_lit(&b, ",");
        dps_jsonbuf_lit(&b, "{");
        dps_jsonbuf_members(&b, s.svc, s.si, SVC_TEAM, SVC_FIRST); /* "team_id":…,"team_name":… */
        dps_jsonbuf_lit(&b, ",");
        write_services(&b, &s, team);
        dps_jsonbuf_lit(&b, ",");
        write_keys(&b, &s, team);
        dps_jsonbuf_lit(&b, "}");
    }
    dps_jsonbuf_lit(&b, "],");
    write_summary(&b, &s.sum, teams);
    dps_jsonbuf_lit(&b, "}");
    unload(&s);
    dps_http_json_buf(r, 200, &b);
}
