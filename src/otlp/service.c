/* The service of a resource entry (otlp-ingestion.md §3) and its push result (§2.4d). */
#include "depsera/otlp_ingest.h"
#include "depsera/ttlcache.h"
#include "depsera/util.h"
#include "depsera/worker_listen.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef Opentelemetry__Proto__Common__V1__AnyValue any_value_t;

/* §4.1 unwrapped and made a name the way the original's truthiness test and string use do: a
 * non-empty string, a non-zero number in decimal, true; anything else is no name. */
static const char *name_of(dps_arena_t *a, const any_value_t *v)
{
    char text[40];

    if (v == NULL)
        return NULL;
    switch (v->value_case) {
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE:
        return v->string_value != NULL && v->string_value[0] != '\0' ? v->string_value : NULL;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE:
        if (v->int_value == 0)
            return NULL;
        snprintf(text, sizeof(text), "%" PRId64, v->int_value);
        break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_DOUBLE_VALUE:
        if (!(v->double_value != 0)) /* 0 and NaN are falsy */
            return NULL;
        dps_js_number(v->double_value, text);
        break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BOOL_VALUE:
        return v->bool_value ? "true" : NULL;
    default:
        return NULL;
    }
    return dps_arena_strndup(a, text, strlen(text));
}

const char *dps_ingest_service_name(dps_ingest_t *in, const Opentelemetry__Proto__Resource__V1__Resource *resource)
{
    if (resource == NULL)
        return NULL;
    for (size_t i = 0; i < resource->n_attributes; i++) {
        const Opentelemetry__Proto__Common__V1__KeyValue *kv = resource->attributes[i];
        if (kv != NULL && kv->key != NULL && strcmp(kv->key, "service.name") == 0)
            return name_of(in->arena, kv->value);
    }
    return NULL;
}

static dps_stmt_t find_stmt = DPS_STMT("dps_otlp_find_service",
                                       "SELECT id, name, health_endpoint_format, schema_config FROM services "
                                       "WHERE team_id = $1 AND name = $2 ORDER BY created_at, id LIMIT 1",
                                       2);
static dps_stmt_t push_stmt = DPS_STMT("dps_otlp_push_result",
                                       "UPDATE services SET last_poll_success = true, last_poll_error = NULL, "
                                       "poll_warnings = $2::jsonb, updated_at = now() WHERE id = $1",
                                       2);

/* Copies row 0 of a find_sql / insert result into the arena. */
static int take(dps_ingest_t *in, PGresult *res, dps_ingest_service_t *out)
{
    const char *v[4];

    for (int c = 0; c < 4; c++) {
        v[c] = NULL;
        if (!PQgetisnull(res, 0, c) &&
            (v[c] = dps_arena_strndup(in->arena, PQgetvalue(res, 0, c), (size_t)PQgetlength(res, 0, c))) == NULL) {
            PQclear(res);
            return dps_ingest_fail(in, "Out of memory");
        }
    }
    PQclear(res);
    *out = (dps_ingest_service_t){v[0], v[1], v[2], v[3]};
    return 0;
}

/* Found services by team and name, and services whose push result was written without warnings, for
 * a second: a busy service costs its lookup and its services-row write once a second per worker, not
 * on every push. Entries are stored once the request committed (dps_ingest_cache_later). */
static dps_ttlcache_t *found, *pushed;

void dps_ingest_service_cache_clear(void)
{
    dps_ttlcache_clear(found);
    dps_ttlcache_clear(pushed);
}

/* A change of a service (NOTIFY depsera_cache from the services API) reaches the cache at once. */
static void follow_notifications(void)
{
    static uint64_t seen;
    uint64_t now = dps_worker_listen_generation();

    if (now != seen) {
        seen = now;
        dps_ingest_service_cache_clear();
    }
}

static size_t cache_key(const dps_ingest_t *in, const char *name, char **out)
{
    size_t t = strlen(in->team_id), n = strlen(name);
    char *k = dps_arena_alloc(in->arena, t + n + 1);

    if ((*out = k) == NULL)
        return 0;
    memcpy(k, in->team_id, t + 1);
    memcpy(k + t + 1, name, n);
    return t + 1 + n;
}

/* The cached service: "id\0format\0S<schema_config>" (S = '1' when set, '0' when NULL). */
static int from_cache(dps_ingest_t *in, const char *key, size_t key_len, const char *name, dps_ingest_service_t *out)
{
    size_t len;
    const char *v = dps_ttlcache_get(found, key, key_len, dps_mono_ms(), &len), *fmt, *sc;

    if (v == NULL)
        return 0;
    fmt = v + strlen(v) + 1;
    sc = fmt + strlen(fmt) + 1;
    out->id = dps_arena_strndup(in->arena, v, strlen(v));
    out->format = dps_arena_strndup(in->arena, fmt, strlen(fmt));
    out->schema_config = sc[0] == '1' ? dps_arena_strndup(in->arena, sc + 1, strlen(sc + 1)) : NULL;
    out->name = name;
    return out->id != NULL && out->format != NULL && (sc[0] != '1' || out->schema_config != NULL);
}

static void to_cache(dps_ingest_t *in, const char *key, size_t key_len, const dps_ingest_service_t *svc)
{
    size_t a = strlen(svc->id), b = strlen(svc->format), c = svc->schema_config != NULL ? strlen(svc->schema_config) : 0;
    char *v = dps_arena_alloc(in->arena, a + b + c + 4);

    if ((found == NULL && (found = dps_ttlcache_create(4096, 1000)) == NULL) || v == NULL)
        return;
    memcpy(v, svc->id, a + 1);
    memcpy(v + a + 1, svc->format, b + 1);
    v[a + b + 2] = svc->schema_config != NULL ? '1' : '0';
    if (c > 0)
        memcpy(v + a + b + 3, svc->schema_config, c);
    v[a + b + 3 + c] = '\0';
    dps_ingest_cache_later(in, found, key, key_len, v, a + b + c + 4);
}

/* Services have no unique name per team, so two requests creating the same service serialize on an
 * advisory lock (held to the end of the transaction) and the second finds the first's row. */
int dps_ingest_resolve_service(dps_ingest_t *in, const char *name, dps_ingest_service_t *out)
{
    const char *p[2] = {in->team_id, name};
    PGresult *res;
    char *key;
    size_t key_len = cache_key(in, name, &key);

    follow_notifications();
    if (key_len > 0 && from_cache(in, key, key_len, name, out))
        goto warn;
    if ((res = dps_ingest_stmt(in, &find_stmt, p)) == NULL)
        return -1;
    if (PQntuples(res) == 0) {
        PQclear(res);
        if ((res = dps_ingest_sql(in, "SELECT pg_advisory_xact_lock(1685086067, hashtext($1 || '/' || $2))", 2, p)) == NULL)
            return -1;
        PQclear(res);
        if ((res = dps_ingest_stmt(in, &find_stmt, p)) == NULL)
            return -1;
    }
    if (PQntuples(res) == 0) {
        PQclear(res);
        if ((res = dps_ingest_sql(in,
                                  "INSERT INTO services (name, team_id, health_endpoint, health_endpoint_format, "
                                  "poll_interval_ms, is_active, is_external) VALUES ($2, $1, '', 'otlp', 0, true, false) "
                                  "RETURNING id, name, health_endpoint_format, schema_config",
                                  2, p)) == NULL)
            return -1;
    }
    if (take(in, res, out) != 0)
        return -1;
    if (key_len > 0)
        to_cache(in, key, key_len, out);
warn:
    if (strcmp(out->format, "otlp") != 0) {
        static const char fmt[] =
            "Service \"%s\" exists with format \"%s\" \xe2\x80\x94 receiving OTLP data but not overwriting format";
        size_t n = strlen(fmt) + strlen(name) + strlen(out->format);
        char *warning = dps_arena_alloc(in->arena, n);
        if (warning == NULL)
            return dps_ingest_fail(in, "Out of memory");
        snprintf(warning, n, fmt, name, out->format);
        dps_ingest_warn(in, warning);
    }
    return 0;
}

int dps_ingest_push_result(dps_ingest_t *in, const dps_ingest_service_t *svc)
{
    const char *p[2] = {svc->id, dps_ingest_warnings_so_far(in)};
    size_t len;
    PGresult *res;

    /* a clean push of a service this worker wrote clean less than a second ago changes nothing
     * but updated_at, which is kept to the second */
    if (p[1] == NULL && dps_ttlcache_get(pushed, svc->id, strlen(svc->id), dps_mono_ms(), &len) != NULL)
        return 0;
    res = dps_ingest_stmt(in, &push_stmt, p);
    PQclear(res);
    if (res == NULL)
        return -1;
    if (p[1] != NULL)
        dps_ttlcache_clear(pushed); /* a later clean push must write again, to clear these warnings */
    else if (pushed != NULL || (pushed = dps_ttlcache_create(4096, 1000)) != NULL)
        dps_ingest_cache_later(in, pushed, svc->id, strlen(svc->id), "", 0);
    return 0;
}
