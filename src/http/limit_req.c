/* Limiter policies and headers for requests (limit_req.h). */
#include "depsera/limit_req.h"
#include "depsera/config.h"
#include "depsera/db.h"
#include "depsera/log.h"
#include "depsera/ratelimit.h"
#include "depsera/util.h"
#include "depsera/worker_listen.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The runtime settings are trusted this long, NOTIFY or not. */
#define SETTINGS_TTL_MS 5000

/* global_rate_limit, global_rate_limit_window_minutes, auth_rate_limit, auth_rate_limit_window_minutes;
 * 0 = not set (the environment applies). */
static struct {
    long long v[4];
    int64_t loaded_at;
    uint64_t gen;
    int loaded;
} settings;

static const char *const setting_keys[4] = {"global_rate_limit", "global_rate_limit_window_minutes", "auth_rate_limit",
                                            "auth_rate_limit_window_minutes"};

static void load_settings(dps_req_t *r)
{
    int64_t now = dps_mono_ms();
    uint64_t gen = dps_worker_listen_generation();
    dps_db_t *db = dps_worker_db(r->worker);
    PGconn *conn;
    PGresult *res;

    if (settings.loaded && settings.gen == gen && now - settings.loaded_at < SETTINGS_TTL_MS)
        return;
    settings.loaded_at = now, settings.gen = gen, settings.loaded = 1; /* on failure: retried after the TTL */
    if ((conn = dps_db_conn(db)) == NULL)
        return;
    res = PQexec(conn, "SELECT key, value FROM settings WHERE key IN ('global_rate_limit', 'global_rate_limit_window_minutes', "
                       "'auth_rate_limit', 'auth_rate_limit_window_minutes') AND value IS NOT NULL");
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        PQclear(res);
        dps_db_check(db);
        return;
    }
    memset(settings.v, 0, sizeof(settings.v));
    for (int i = 0; i < PQntuples(res); i++)
        for (int k = 0; k < 4; k++)
            if (strcmp(PQgetvalue(res, i, 0), setting_keys[k]) == 0)
                settings.v[k] = strtoll(PQgetvalue(res, i, 1), NULL, 10);
    PQclear(res);
}

dps_limit_policy_t dps_limit_ip_policy(dps_req_t *r, dps_limit_kind_t kind)
{
    const dps_config_t *cfg = dps_worker_config(r->worker);
    dps_limit_policy_t p = {0, 0, 0};

    switch (kind) {
    case DPS_LIMIT_API:
    case DPS_LIMIT_AUTH: {
        int k = kind == DPS_LIMIT_API ? 0 : 2;
        load_settings(r);
        p.limit = settings.v[k] > 0 ? settings.v[k] : kind == DPS_LIMIT_API ? cfg->rate_limit_max : cfg->auth_rate_limit_max;
        p.aux = settings.v[k + 1] > 0   ? settings.v[k + 1] * 60000
                : kind == DPS_LIMIT_API ? cfg->rate_limit_window_ms
                                        : cfg->auth_rate_limit_window_ms;
        break;
    }
    case DPS_LIMIT_OTLP_TRACES:
    case DPS_LIMIT_OTLP_METRICS:
        p.limit = cfg->otlp_rate_limit_max, p.aux = cfg->otlp_rate_limit_window_ms;
        break;
    default:
        break;
    }
    return p;
}

dps_limit_policy_t dps_limit_key_policy(dps_req_t *r, const dps_apikey_t *key)
{
    const dps_config_t *cfg = dps_worker_config(r->worker);
    int64_t own = key->rate_limit_rpm;
    dps_limit_policy_t p;

    p.limit = dps_bucket_effective_rpm(key->has_rate_limit ? &own : NULL, cfg->otlp_per_key_rate_limit_rpm);
    p.aux = dps_bucket_capacity(p.limit, cfg->otlp_rate_limit_burst_seconds);
    p.warn_threshold = cfg->otlp_rate_limit_warning_threshold;
    return p;
}

static void set_int(dps_req_t *r, const char *name, int64_t v)
{
    char s[24];

    snprintf(s, sizeof(s), "%" PRId64, v);
    dps_http_set_header(r, name, s);
}

void dps_limit_ip_subject(const char *ip, char *out, size_t cap)
{
    unsigned char a[16];

    snprintf(out, cap, "%s", ip[0] != '\0' ? ip : "unknown");
    if (strchr(ip, ':') == NULL || inet_pton(AF_INET6, ip, a) != 1)
        return;
    if (memcmp(a, "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12) == 0) { /* IPv4-mapped: the IPv4 address */
        inet_ntop(AF_INET, a + 12, out, (socklen_t)cap);
        return;
    }
    memset(a + 7, 0, 9); /* the /56 */
    if (inet_ntop(AF_INET6, a, out, (socklen_t)cap) != NULL && strlen(out) + 4 < cap)
        strcat(out, "/56");
}

dps_limit_decision_t dps_limit_request(dps_req_t *r, dps_limit_kind_t kind, const dps_apikey_t *key)
{
    char subject[INET6_ADDRSTRLEN + 8];

    dps_limits_t *l = dps_worker_limits(r->worker);
    dps_limit_policy_t p;
    dps_limit_decision_t d;

    memset(&d, 0, sizeof(d));
    d.allowed = 1;
    if (l == NULL)
        return d;
    p = kind == DPS_LIMIT_KEY ? dps_limit_key_policy(r, key) : dps_limit_ip_policy(r, kind);
    if (kind != DPS_LIMIT_KEY)
        dps_limit_ip_subject(r->client_ip, subject, sizeof(subject));
    d = dps_limits_hit(l, kind, kind == DPS_LIMIT_KEY ? key->id : subject, &p, dps_mono_ms());
    if (!d.limited)
        return d;
    if (kind != DPS_LIMIT_KEY) { /* draft-6: the window's policy (the key's values replace the rest) */
        char pol[48];
        snprintf(pol, sizeof(pol), "%" PRId64 ";w=%" PRId64, p.limit, (p.aux + 999) / 1000);
        dps_http_set_header(r, "ratelimit-policy", pol);
    }
    set_int(r, "ratelimit-limit", d.limit);
    set_int(r, "ratelimit-remaining", d.remaining);
    set_int(r, "ratelimit-reset", d.reset);
    if (kind == DPS_LIMIT_KEY) {
        dps_http_set_header(r, "x-ratelimit-key", key->prefix);
        if (d.allowed && d.warning)
            dps_http_set_header(r, "x-ratelimit-warning", "true");
        if (d.allowed && d.warn_log)
            DPS_LOG(DPS_LOG_WARN, "API key approaching its rate limit", DPS_F_STR("api_key_id", key->id),
                    DPS_F_STR("key_prefix", key->prefix), DPS_F_INT("percentage", d.warn_percent), DPS_F_INT("used", d.warn_used),
                    DPS_F_INT("rpm", d.limit));
    }
    if (!d.allowed)
        set_int(r, "retry-after", d.retry_after_s);
    return d;
}
