/* Admin settings, span retention and the audit log (graph-and-api.md §7, configuration.md §2-§4). */
#include "depsera/audit.h"
#include "depsera/config.h"
#include "depsera/http.h"
#include "depsera/routes.h"
#include "depsera/session.h"
#include "depsera/util.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef enum { KIND_INT, KIND_TIME, KIND_TEXT } kind_t;

/* One runtime setting: its environment default comes from the configuration of the worker. */
typedef struct {
    const char *key;
    kind_t kind;
    long long min, max;
    int retention; /* a change re-plans the pruner */
} setting_t;

static const setting_t settings[] = {
    {"data_retention_days", KIND_INT, 1, 3650, 1},
    {"retention_cleanup_time", KIND_TIME, 0, 0, 1},
    {"default_poll_interval_ms", KIND_INT, 5000, 3600000, 0},
    {"ssrf_allowlist", KIND_TEXT, 0, 0, 0},
    {"global_rate_limit", KIND_INT, 1, 10000, 0},
    {"global_rate_limit_window_minutes", KIND_INT, 1, 1440, 0},
    {"auth_rate_limit", KIND_INT, 1, 1000, 0},
    {"auth_rate_limit_window_minutes", KIND_INT, 1, 1440, 0},
    {"alert_cooldown_minutes", KIND_INT, 0, 1440, 0},
    {"alert_rate_limit_per_hour", KIND_INT, 1, 1000, 0},
};

/* The environment (or built-in) default of a setting, as text. */
static void env_default(const dps_config_t *c, const setting_t *s, char *buf, size_t cap)
{
    long long v = 0;

    if (strcmp(s->key, "retention_cleanup_time") == 0) {
        snprintf(buf, cap, "%s", c->retention_cleanup_time);
        return;
    }
    if (strcmp(s->key, "ssrf_allowlist") == 0) {
        snprintf(buf, cap, "%s", c->ssrf_allowlist);
        return;
    }
    v = strcmp(s->key, "data_retention_days") == 0               ? c->data_retention_days
        : strcmp(s->key, "default_poll_interval_ms") == 0        ? c->default_poll_interval_ms
        : strcmp(s->key, "global_rate_limit") == 0               ? c->rate_limit_max
        : strcmp(s->key, "global_rate_limit_window_minutes") == 0 ? c->rate_limit_window_ms / 60000
        : strcmp(s->key, "auth_rate_limit") == 0                 ? c->auth_rate_limit_max
        : strcmp(s->key, "auth_rate_limit_window_minutes") == 0  ? c->auth_rate_limit_window_ms / 60000
        : strcmp(s->key, "alert_cooldown_minutes") == 0          ? c->alert_cooldown_minutes
                                                                 : c->alert_rate_limit_per_hour;
    snprintf(buf, cap, "%lld", v);
}

/* JavaScript's parseInt on a decimal string: a leading integer, junk after it ignored (configuration.md §3). */
static int leading_int(const char *s, long long *out)
{
    char *end;

    while (isspace((unsigned char)*s))
        s++;
    if (!(isdigit((unsigned char)*s) || ((*s == '-' || *s == '+') && isdigit((unsigned char)s[1]))))
        return -1;
    *out = strtoll(s, &end, 10);
    return 0;
}

static json_t *typed(const setting_t *s, const char *text)
{
    long long v;

    if (s->kind == KIND_INT)
        return leading_int(text, &v) == 0 ? json_integer(v) : NULL;
    return json_string(text);
}

/* Validates a stringified value; NULL if valid, else the message (static or in buf). */
static const char *validate(const setting_t *s, const char *v, char *buf, size_t cap)
{
    long long n;

    if (s->kind == KIND_INT) {
        if (leading_int(v, &n) != 0 || n < s->min || n > s->max) {
            snprintf(buf, cap, "%s must be between %lld and %lld", s->key, s->min, s->max);
            return buf;
        }
    } else if (s->kind == KIND_TIME) {
        if (strlen(v) != 5 || !isdigit((unsigned char)v[0]) || !isdigit((unsigned char)v[1]) || v[2] != ':' ||
            !isdigit((unsigned char)v[3]) || !isdigit((unsigned char)v[4]))
            return "retention_cleanup_time must be in HH:MM format";
        if ((v[0] - '0') * 10 + v[1] - '0' > 23 || (v[3] - '0') * 10 + v[4] - '0' > 59)
            return "retention_cleanup_time must be a valid time";
    }
    return NULL;
}

/* {"<key>": {"value": typed, "source": "database"|"default"}} for every known key. */
static json_t *settings_json(dps_req_t *r)
{
    const dps_config_t *cfg = dps_worker_config(r->worker);
    PGresult *res = dps_req_sql(r, NULL, "SELECT key, value FROM settings WHERE value IS NOT NULL", 0, NULL);
    json_t *out;

    if (res == NULL)
        return NULL;
    out = json_object();
    for (size_t i = 0; i < DPS_ARRAY_SIZE(settings); i++) {
        const setting_t *s = &settings[i];
        char def[256];
        json_t *v = NULL;
        const char *source = "default";

        env_default(cfg, s, def, sizeof(def));
        for (int row = 0; row < PQntuples(res); row++) {
            if (strcmp(PQgetvalue(res, row, 0), s->key) == 0) {
                v = typed(s, PQgetvalue(res, row, 1));
                source = "database";
            }
        }
        if (v == NULL)
            v = typed(s, def);
        json_object_set_new(out, s->key, json_pack("{s:o,s:s}", "value", v != NULL ? v : json_null(), "source", source));
    }
    return out;
}

/* The last retention run (pruner_runs, written by the pruner), or JSON null before the first one. */
static json_t *last_run_json(dps_req_t *r)
{
    PGresult *res = dps_req_sql(r, NULL,
                                "SELECT started_at AS at, finished_at, duration_ms, data_retention_days, span_retention_days, "
                                "cutoff, span_cutoff, counts, partitions_created, partitions_dropped, node FROM pruner_runs",
                                0, NULL);

    if (res == NULL)
        return NULL;
    return PQntuples(res) == 0 ? json_null() : dps_row_json(res, 0);
}

void dps_api_admin_settings_get(dps_req_t *r)
{
    json_t *s, *last;

    if (dps_require_admin(r) != 0 || (s = settings_json(r)) == NULL)
        return;
    if ((last = last_run_json(r)) == NULL) {
        json_decref(s);
        return;
    }
    dps_http_json(r, 200, json_pack("{s:o,s:o}", "settings", s, "retention_last_run", last));
}

static const setting_t *find_setting(const char *key)
{
    for (size_t i = 0; i < DPS_ARRAY_SIZE(settings); i++)
        if (strcmp(settings[i].key, key) == 0)
            return &settings[i];
    return NULL;
}

/* String(value) as the original did before validating. Caller frees. */
static char *stringify(json_t *v)
{
    char buf[64];

    if (json_is_string(v))
        return strdup(json_string_value(v));
    if (json_is_integer(v)) {
        snprintf(buf, sizeof(buf), "%lld", (long long)json_integer_value(v));
        return strdup(buf);
    }
    if (json_is_real(v)) {
        snprintf(buf, sizeof(buf), "%.17g", json_real_value(v));
        return strdup(buf);
    }
    if (json_is_true(v) || json_is_false(v) || json_is_null(v))
        return strdup(json_is_true(v) ? "true" : json_is_false(v) ? "false" : "null");
    return json_dumps(v, JSON_COMPACT);
}

/* Checks every known key; on the first invalid one answers 400 and returns -1. Fills keys/values. */
static int collect(dps_req_t *r, json_t *known, json_t *unknown, int *retention)
{
    const char *key;
    json_t *value;
    char buf[128];

    json_object_foreach(r->body, key, value) {
        const setting_t *s = find_setting(key);
        char *text;
        const char *why;
        if (s == NULL) {
            json_array_append_new(unknown, json_string(key));
            continue;
        }
        if ((text = stringify(value)) == NULL)
            return dps_http_error(r, 500, "Internal server error"), -1;
        if ((why = validate(s, text, buf, sizeof(buf))) != NULL) {
            free(text);
            dps_http_json(r, 400, json_pack("{s:s,s:s}", "error", why, "field", key));
            return -1;
        }
        *retention |= s->retention;
        json_object_set_new(known, key, json_string(text));
        free(text);
    }
    return 0;
}

static int store(dps_req_t *r, json_t *known, int retention)
{
    const char *key;
    json_t *value, *keys = json_array();

    if (dps_req_begin(r) != 0)
        return json_decref(keys), -1;
    json_object_foreach(known, key, value) {
        const char *params[3] = {key, json_string_value(value), r->user->id};
        if (dps_req_sql(r, NULL,
                        "INSERT INTO settings (key, value, updated_at, updated_by) VALUES ($1, $2, now(), $3) "
                        "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now(), updated_by = EXCLUDED.updated_by",
                        3, params) == NULL)
            return json_decref(keys), -1;
        json_array_append_new(keys, json_string(key));
    }
    dps_audit(r, "settings.updated", "settings", NULL, json_pack("{s:o}", "updatedKeys", keys));
    /* workers, poller and pruner drop cached settings; NOTIFY is delivered at COMMIT */
    if (dps_req_sql(r, NULL, "SELECT pg_notify('depsera_cache', 'settings')", 0, NULL) == NULL ||
        (retention && dps_req_sql(r, NULL, "SELECT pg_notify('depsera_retention', 'settings')", 0, NULL) == NULL))
        return -1;
    return dps_req_commit(r);
}

void dps_api_admin_settings_put(dps_req_t *r)
{
    json_t *known, *unknown, *out, *s;
    int retention = 0;

    if (dps_require_admin(r) != 0)
        return;
    if (!json_is_object(r->body)) {
        dps_http_error(r, 400, "Request body must be a JSON object of settings key-value pairs");
        return;
    }
    known = json_object();
    unknown = json_array();
    if (collect(r, known, unknown, &retention) != 0)
        goto done;
    if (json_object_size(known) == 0) {
        out = json_pack("{s:s}", "error", "No valid settings keys provided");
        if (json_array_size(unknown) > 0)
            json_object_set(out, "unknownKeys", unknown);
        dps_http_json(r, 400, out);
        goto done;
    }
    if (store(r, known, retention) != 0 || (s = settings_json(r)) == NULL)
        goto done;
    out = json_pack("{s:o,s:I}", "settings", s, "updated", (json_int_t)json_object_size(known));
    if (json_array_size(unknown) > 0)
        json_object_set(out, "unknownKeys", unknown);
    dps_http_json(r, 200, out);
done:
    json_decref(known);
    json_decref(unknown);
}

void dps_api_admin_span_retention_get(dps_req_t *r)
{
    PGresult *res;
    long long days = 7;

    if (dps_require_admin(r) != 0 ||
        (res = dps_req_sql(r, NULL, "SELECT value FROM app_settings WHERE key = 'span_retention_days'", 0, NULL)) == NULL)
        return;
    if (PQntuples(res) == 1 && leading_int(PQgetvalue(res, 0, 0), &days) != 0)
        days = 7;
    dps_http_json(r, 200, json_pack("{s:I}", "days", (json_int_t)days));
}

void dps_api_admin_span_retention_put(dps_req_t *r)
{
    json_t *days = json_object_get(r->body, "days");
    char text[32];
    const char *params[2] = {text, NULL};

    if (dps_require_admin(r) != 0)
        return;
    /* Number.isInteger: 30.0 and 1e300 are integers; check the double before any cast */
    if (!json_is_integer(days) &&
        !(json_is_real(days) && isfinite(json_real_value(days)) && json_real_value(days) == trunc(json_real_value(days)))) {
        dps_http_error(r, 400, "days must be an integer");
        return;
    }
    double d = json_is_integer(days) ? (double)json_integer_value(days) : json_real_value(days);
    if (d < 1 || d > 365) {
        dps_http_error(r, 400, "days must be between 1 and 365");
        return;
    }
    long long n = (long long)d;
    snprintf(text, sizeof(text), "%lld", n);
    params[1] = r->user->id;
    if (dps_req_begin(r) != 0 ||
        dps_req_sql(r, NULL,
                    "INSERT INTO app_settings (key, value, updated_at, updated_by) VALUES ('span_retention_days', $1, now(), $2) "
                    "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now(), updated_by = EXCLUDED.updated_by",
                    2, params) == NULL)
        return;
    dps_audit(r, "settings.updated", "settings", NULL, json_pack("{s:s,s:I}", "key", "span_retention_days", "value", (json_int_t)n));
    if (dps_req_sql(r, NULL, "SELECT pg_notify('depsera_retention', 'span_retention_days')", 0, NULL) == NULL ||
        dps_req_commit(r) != 0)
        return;
    dps_http_json(r, 200, json_pack("{s:I}", "days", (json_int_t)n));
}

/* Query parameter as a limit/offset: default when absent, zero or not a number. */
static long long int_param(dps_req_t *r, const char *name, long long def, long long max)
{
    const char *v = dps_req_query_param(r, name);
    long long n;

    if (v == NULL || leading_int(v, &n) != 0 || n <= 0)
        return def;
    return n > max ? max : n;
}

/* A filter given empty is no filter (a UI sends every field of its form). */
static const char *filter_param(dps_req_t *r, const char *name)
{
    const char *v = dps_req_query_param(r, name);
    return v != NULL && *v != '\0' ? v : NULL;
}

#define AUDIT_FILTER                                                                                                               \
    "FROM audit_log a LEFT JOIN users u ON u.id = a.user_id "                                                                      \
    "WHERE ($1::timestamptz IS NULL OR a.created_at >= $1::timestamptz) "                                                          \
    "  AND ($2::text IS NULL OR (CASE WHEN length($2) = 10 THEN a.created_at < $2::date + 1 "                                      \
    "                                ELSE a.created_at <= $2::timestamptz END)) "                                                  \
    "  AND ($3::uuid IS NULL OR a.user_id = $3::uuid) AND ($4::text IS NULL OR a.action = $4) "                                    \
    "  AND ($5::text IS NULL OR a.resource_type = $5) "

void dps_api_admin_audit_log(dps_req_t *r)
{
    long long limit = int_param(r, "limit", 50, 250), offset = int_param(r, "offset", 0, 1LL << 40);
    char lim[24], off[24];
    const char *params[7] = {filter_param(r, "startDate"), filter_param(r, "endDate"), filter_param(r, "userId"),
                             filter_param(r, "action"), filter_param(r, "resourceType"), lim, off};
    PGresult *count, *rows;

    if (dps_require_admin(r) != 0)
        return;
    if (params[2] != NULL && !dps_is_uuid(params[2])) {
        dps_http_json(r, 200, json_pack("{s:[],s:i,s:I,s:I}", "entries", "total", 0, "limit", (json_int_t)limit, "offset",
                                        (json_int_t)offset));
        return;
    }
    snprintf(lim, sizeof(lim), "%lld", limit);
    snprintf(off, sizeof(off), "%lld", offset);
    /* 22007/22008: a startDate or endDate that is not a date */
    if ((count = dps_req_sql(r, "22007,22008", "SELECT count(*) " AUDIT_FILTER, 5, params)) == NULL)
        return;
    if (PQresultStatus(count) != PGRES_TUPLES_OK) {
        dps_http_error(r, 400, "startDate and endDate must be valid dates");
        return;
    }
    if ((rows = dps_req_sql(r, NULL,
                            "SELECT a.id, a.user_id, a.action, a.resource_type, a.resource_id, a.details, a.ip_address, "
                            "a.created_at, u.email AS user_email, u.name AS user_name " AUDIT_FILTER
                            "ORDER BY a.created_at DESC, a.id DESC LIMIT $6::bigint OFFSET $7::bigint",
                            7, params)) == NULL)
        return;
    dps_http_json(r, 200, json_pack("{s:o,s:I,s:I,s:I}", "entries", dps_rows_json(rows), "total",
                                    (json_int_t)strtoll(PQgetvalue(count, 0, 0), NULL, 10), "limit", (json_int_t)limit, "offset",
                                    (json_int_t)offset));
}
