/* The configuration table and everything it drives: parsing, validation, --help, man page, env files. */
#include "depsera/config.h"
#include "depsera/log.h"
#include "depsera/util.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define OFF(f) offsetof(dps_config_t, f)
#define INT_MAX_CFG 2147483647LL

static int v_host(const dps_config_var_t *, const char *, char *, size_t);
static int v_hhmm(const dps_config_var_t *, const char *, char *, size_t);
static int v_trust_proxy(const dps_config_var_t *, const char *, char *, size_t);
static int v_url(const dps_config_var_t *, const char *, char *, size_t);

/* clang-format off */
const dps_config_var_t dps_config_vars[] = {
    /* core / HTTP */
    {"DATABASE_URL", DPS_CFG_STR, "", NULL, 0, 0,
     "PostgreSQL connection string (URI or key=value); empty uses libpq's PG* variables", OFF(database_url), 1},
    {"DATABASE_LISTEN_URL", DPS_CFG_STR, "", NULL, 0, 0,
     "connection for LISTEN (workers, poller, pruner); must reach PostgreSQL directly, not through a transaction pooler; "
     "empty = DATABASE_URL", OFF(database_listen_url), 1},
    {"HOST", DPS_CFG_STR, "127.0.0.1", v_host, 0, 0, "address to listen on (IPv4 or IPv6 literal)", OFF(host), 0},
    {"PORT", DPS_CFG_INT, "3001", NULL, 1, 65535, "TCP port to listen on", OFF(port), 0},
    {"WORKERS", DPS_CFG_INT, NULL, NULL, 1, 256, "HTTP worker processes (default: 2 x CPU cores)", OFF(workers), 0},
    {"DRAIN_TIMEOUT_MS", DPS_CFG_INT, "10000", NULL, 0, 600000,
     "on SIGTERM or reload, how long in-flight requests may take before workers are stopped", OFF(drain_timeout_ms), 0},
    {"LOG_LEVEL", DPS_CFG_LEVEL, "info", NULL, 0, 0, "fatal, error, warn, info, debug, trace or silent", OFF(log_level), 0},
    {"NODE_ENV", DPS_CFG_STR, "", NULL, 0, 0,
     "development disables the rate limiters; production makes SESSION_SECRET strict and enables HSTS", OFF(node_env), 0},
    {"CORS_ORIGIN", DPS_CFG_STR, "http://localhost:3000", v_url, 0, 0, "allowed CORS origin (credentials allowed)",
     OFF(cors_origin), 0},
    {"TRUST_PROXY", DPS_CFG_STR, "", v_trust_proxy, 0, 0,
     "proxies trusted for X-Forwarded-For: true, false, a hop count, or a comma list of addresses, CIDRs, "
     "loopback, linklocal, uniquelocal", OFF(trust_proxy), 0},
    {"REQUIRE_HTTPS", DPS_CFG_BOOL, "false", NULL, 0, 0, "redirect plain-HTTP requests (except /api/health) to HTTPS",
     OFF(require_https), 0},
    {"ENABLE_HTTPS", DPS_CFG_BOOL, "false", NULL, 0, 0,
     "serve HTTPS on PORT (HTTP/2 and HTTP/1.1); without SSL_CERT_PATH and SSL_KEY_PATH a self-signed certificate is "
     "generated at start (development use)", OFF(enable_https), 0},
    {"SSL_CERT_PATH", DPS_CFG_STR, "", NULL, 0, 0,
     "with ENABLE_HTTPS: PEM certificate (chain) file; must be given together with SSL_KEY_PATH; re-read on SIGHUP",
     OFF(ssl_cert_path), 0},
    {"SSL_KEY_PATH", DPS_CFG_STR, "", NULL, 0, 0,
     "with ENABLE_HTTPS: PEM private key file of SSL_CERT_PATH; must be given together with it; re-read on SIGHUP",
     OFF(ssl_key_path), 0},
    {"HTTP_PORT", DPS_CFG_INT, "0", NULL, 0, 65535,
     "with ENABLE_HTTPS: an extra plain-HTTP port that serves /api/health and redirects everything else to HTTPS on "
     "PORT; 0 = none; ignored (with a warning) without ENABLE_HTTPS", OFF(http_port), 0},
    /* authentication / session */
    {"LOCAL_AUTH", DPS_CFG_BOOL, "false", NULL, 0, 0, "true: local email/password login", OFF(local_auth), 0},
    {"ADMIN_EMAIL", DPS_CFG_STR, "", NULL, 0, 0, "local mode: bootstrap admin created when no user exists", OFF(admin_email), 0},
    {"ADMIN_PASSWORD", DPS_CFG_STR, "", NULL, 0, 0, "local mode: bootstrap admin password (at least 8 characters)",
     OFF(admin_password), 1},
    {"SESSION_SECRET", DPS_CFG_STR, "dev-secret-change-in-production", NULL, 0, 0,
     "signs session cookies; in production required, at least 32 characters and not a known example value",
     OFF(session_secret), 1},
    /* rate limiting and OTLP */
    {"RATE_LIMIT_WINDOW_MS", DPS_CFG_INT, "60000", NULL, 1, INT_MAX_CFG, "global per-IP limiter window", OFF(rate_limit_window_ms), 0},
    {"RATE_LIMIT_MAX", DPS_CFG_INT, "3000", NULL, 1, INT_MAX_CFG, "global per-IP limit per window", OFF(rate_limit_max), 0},
    {"AUTH_RATE_LIMIT_WINDOW_MS", DPS_CFG_INT, "60000", NULL, 1, INT_MAX_CFG, "/api/auth/* limiter window",
     OFF(auth_rate_limit_window_ms), 0},
    {"AUTH_RATE_LIMIT_MAX", DPS_CFG_INT, "20", NULL, 1, INT_MAX_CFG, "/api/auth/* limit per window per IP",
     OFF(auth_rate_limit_max), 0},
    {"OTLP_RATE_LIMIT_WINDOW_MS", DPS_CFG_INT, "60000", NULL, 1, INT_MAX_CFG, "per-IP OTLP limiter window",
     OFF(otlp_rate_limit_window_ms), 0},
    {"OTLP_RATE_LIMIT_MAX", DPS_CFG_INT, "600", NULL, 1, INT_MAX_CFG, "per-IP OTLP limit per window",
     OFF(otlp_rate_limit_max), 0},
    {"OTLP_PER_KEY_RATE_LIMIT_RPM", DPS_CFG_INT, "150000", NULL, 0, INT_MAX_CFG,
     "per-key requests per minute when the key has no limit of its own; 0 = unlimited", OFF(otlp_per_key_rate_limit_rpm), 0},
    {"OTLP_RATE_LIMIT_BURST_SECONDS", DPS_CFG_INT, "6", NULL, 1, 3600, "per-key bucket capacity in seconds of rate",
     OFF(otlp_rate_limit_burst_seconds), 0},
    {"OTLP_RATE_LIMIT_WARNING_THRESHOLD", DPS_CFG_DBL, "0.80", NULL, 0, 1,
     "consumed fraction at which X-RateLimit-Warning is sent", OFF(otlp_rate_limit_warning_threshold), 0},
    {"GRAPH_CACHE_TTL_MS", DPS_CFG_INT, "5000", NULL, 0, 600000,
     "how long a worker reuses a GET /api/graph answer (any change notification drops it at once); 0 = never",
     OFF(graph_cache_ttl_ms), 0},
    {"OTLP_USAGE_FLUSH_INTERVAL_MS", DPS_CFG_INT, "5000", NULL, 100, 3600000, "usage counters flush period",
     OFF(otlp_usage_flush_interval_ms), 0},
    {"OTLP_MAX_BODY_BYTES", DPS_CFG_INT, "20971520", NULL, 1024, 1073741824,
     "largest request body accepted on the wire, and largest OTLP body after decompression", OFF(otlp_max_body_bytes), 0},
    /* polling, SSRF, retention */
    {"POLL_MAX_CONCURRENT_PER_HOST", DPS_CFG_INT, "5", NULL, 1, 1000, "simultaneous polls per target host, counted across all pollers",
     OFF(poll_max_concurrent_per_host), 0},
    {"POLL_MAX_IN_FLIGHT", DPS_CFG_INT, "256", NULL, 1, 10000, "simultaneous polls of one poller process, all hosts together",
     OFF(poll_max_in_flight), 0},
    {"SSRF_ALLOWLIST", DPS_CFG_STR, "", NULL, 0, 0,
     "comma list of host names, *.suffix patterns and IPv4 CIDRs that polls may reach despite the SSRF rules",
     OFF(ssrf_allowlist), 0},
    {"DATA_RETENTION_DAYS", DPS_CFG_INT, "365", NULL, 1, 3650, "default of setting data_retention_days",
     OFF(data_retention_days), 0},
    {"RETENTION_CLEANUP_TIME", DPS_CFG_STR, "02:00", v_hhmm, 0, 0, "default of setting retention_cleanup_time (HH:MM, local)",
     OFF(retention_cleanup_time), 0},
    {"PRUNER_CHECK_INTERVAL_MS", DPS_CFG_INT, "60000", NULL, 100, 3600000,
     "for tests: how often the pruner checks its lock and schedule (retention runs once a day whatever it is)",
     OFF(pruner_check_interval_ms), 0},
    {"DEFAULT_POLL_INTERVAL_MS", DPS_CFG_INT, "30000", NULL, 5000, 3600000, "default of setting default_poll_interval_ms",
     OFF(default_poll_interval_ms), 0},
    {"ALERT_COOLDOWN_MINUTES", DPS_CFG_INT, "5", NULL, 0, 1440, "default of setting alert_cooldown_minutes",
     OFF(alert_cooldown_minutes), 0},
    {"ALERT_RATE_LIMIT_PER_HOUR", DPS_CFG_INT, "30", NULL, 1, 1000, "default of setting alert_rate_limit_per_hour",
     OFF(alert_rate_limit_per_hour), 0},
    {"APP_BASE_URL", DPS_CFG_STR, "", NULL, 0, 0, "public base URL of this installation", OFF(app_base_url), 0},
};
/* clang-format on */
const size_t dps_config_vars_count = DPS_ARRAY_SIZE(dps_config_vars);

static const char *weak_secrets[] = {"dev-secret-change-in-production", "dev-session-secret-change-in-production",
                                     "change-me-to-random-32-char-string"};

static int v_host(const dps_config_var_t *var, const char *value, char *err, size_t cap)
{
    unsigned char addr[16];
    if (inet_pton(AF_INET, value, addr) == 1 || inet_pton(AF_INET6, value, addr) == 1)
        return 0;
    snprintf(err, cap, "must be an IPv4 or IPv6 address, got \"%s\"", value);
    return -1;
}

static int v_hhmm(const dps_config_var_t *var, const char *value, char *err, size_t cap)
{
    if (strlen(value) == 5 && isdigit((unsigned char)value[0]) && isdigit((unsigned char)value[1]) && value[2] == ':' &&
        isdigit((unsigned char)value[3]) && isdigit((unsigned char)value[4])) {
        int h = (value[0] - '0') * 10 + value[1] - '0', m = (value[3] - '0') * 10 + value[4] - '0';
        if (h <= 23 && m <= 59)
            return 0;
    }
    snprintf(err, cap, "must be a time in HH:MM format (00:00 to 23:59), got \"%s\"", value);
    return -1;
}

static int v_url(const dps_config_var_t *var, const char *value, char *err, size_t cap)
{
    if (strncmp(value, "http://", 7) == 0 || strncmp(value, "https://", 8) == 0)
        return 0;
    snprintf(err, cap, "must be an http:// or https:// origin, got \"%s\"", value);
    return -1;
}

/* One TRUST_PROXY list item: a keyword, an address, or an address/prefix. */
static int trust_item_ok(const char *item)
{
    char addr[64];
    const char *slash = strchr(item, '/');
    unsigned char bin[16];
    size_t n = slash ? (size_t)(slash - item) : strlen(item);
    long long bits;
    int v6;

    if (strcmp(item, "loopback") == 0 || strcmp(item, "linklocal") == 0 || strcmp(item, "uniquelocal") == 0)
        return 1;
    if (n == 0 || n >= sizeof(addr))
        return 0;
    memcpy(addr, item, n);
    addr[n] = '\0';
    v6 = strchr(addr, ':') != NULL;
    if (inet_pton(v6 ? AF_INET6 : AF_INET, addr, bin) != 1)
        return 0;
    return slash == NULL || dps_parse_int(slash + 1, 0, v6 ? 128 : 32, &bits) == 0;
}

static int v_trust_proxy(const dps_config_var_t *var, const char *value, char *err, size_t cap)
{
    char buf[1024], *save = NULL;
    long long hops;

    if (*value == '\0' || strcmp(value, "true") == 0 || strcmp(value, "false") == 0 ||
        dps_parse_int(value, 0, 1000, &hops) == 0)
        return 0;
    if (strlen(value) >= sizeof(buf))
        goto fail;
    strcpy(buf, value);
    for (char *tok = strtok_r(buf, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ')
            tok++;
        for (char *e = tok + strlen(tok); e > tok && e[-1] == ' ';)
            *--e = '\0';
        if (!trust_item_ok(tok))
            goto fail;
    }
    return 0;
fail:
    snprintf(err, cap, "must be true, false, a hop count, or a comma list of addresses, CIDRs, loopback, linklocal, "
                       "uniquelocal; got \"%s\"", value);
    return -1;
}

static int parse_bool(const char *s, int *out)
{
    if (strcasecmp(s, "true") == 0 || strcmp(s, "1") == 0)
        *out = 1;
    else if (strcasecmp(s, "false") == 0 || strcmp(s, "0") == 0)
        *out = 0;
    else
        return -1;
    return 0;
}

long long dps_config_default_workers(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? 2 * n : 2;
}

static int parse_var(const dps_config_var_t *v, const char *raw, dps_config_t *cfg, char *err, size_t cap)
{
    char why[512] = "";
    void *field = (char *)cfg + v->offset;
    long long i;
    double d;
    int b, lvl;

    if (v->validate != NULL && v->validate(v, raw, why, sizeof(why)) != 0)
        goto fail;
    switch (v->type) {
    case DPS_CFG_STR:
        if ((*(char **)field = strdup(raw)) == NULL)
            goto nomem;
        return 0;
    case DPS_CFG_INT:
        if (dps_parse_int(raw, v->min, v->max, &i) != 0) {
            snprintf(why, sizeof(why), "must be an integer between %lld and %lld, got \"%s\"", v->min, v->max, raw);
            goto fail;
        }
        *(long long *)field = i;
        return 0;
    case DPS_CFG_DBL:
        if (dps_parse_double(raw, (double)v->min, (double)v->max, &d) != 0) {
            snprintf(why, sizeof(why), "must be a number between %lld and %lld, got \"%s\"", v->min, v->max, raw);
            goto fail;
        }
        *(double *)field = d;
        return 0;
    case DPS_CFG_BOOL:
        if (parse_bool(raw, &b) != 0) {
            snprintf(why, sizeof(why), "must be true or false, got \"%s\"", raw);
            goto fail;
        }
        *(int *)field = b;
        return 0;
    case DPS_CFG_LEVEL:
        if ((lvl = dps_log_level_parse(raw)) < 0) {
            snprintf(why, sizeof(why), "must be one of fatal, error, warn, info, debug, trace, silent; got \"%s\"", raw);
            goto fail;
        }
        *(long long *)field = lvl;
        return 0;
    }
nomem:
    snprintf(why, sizeof(why), "out of memory");
fail:
    snprintf(err, cap, "%s: %s", v->name, why);
    return -1;
}

/* Rules that involve more than one variable. */
static int check_cross(const dps_config_t *cfg, char *err, size_t cap)
{
    if (!*cfg->ssl_cert_path != !*cfg->ssl_key_path) {
        snprintf(err, cap, "%s: must be given together with %s", *cfg->ssl_cert_path ? "SSL_CERT_PATH" : "SSL_KEY_PATH",
                 *cfg->ssl_cert_path ? "SSL_KEY_PATH" : "SSL_CERT_PATH");
        return -1;
    }
    if (cfg->enable_https && cfg->http_port == cfg->port) {
        snprintf(err, cap, "HTTP_PORT: must differ from PORT (%lld), which serves HTTPS", cfg->port);
        return -1;
    }
    if (!dps_config_is_production(cfg))
        return 0;
    if (strlen(cfg->session_secret) < 32) {
        snprintf(err, cap, "SESSION_SECRET: must be at least 32 characters when NODE_ENV=production");
        return -1;
    }
    for (size_t i = 0; i < DPS_ARRAY_SIZE(weak_secrets); i++) {
        if (strcmp(cfg->session_secret, weak_secrets[i]) == 0) {
            snprintf(err, cap, "SESSION_SECRET: must not be the example value \"%s\" when NODE_ENV=production", weak_secrets[i]);
            return -1;
        }
    }
    return 0;
}

int dps_config_load(dps_config_t *out, dps_config_getter_t get, void *ctx, char *err, size_t cap)
{
    memset(out, 0, sizeof(*out));
    for (size_t i = 0; i < dps_config_vars_count; i++) {
        const dps_config_var_t *v = &dps_config_vars[i];
        const char *raw = get(v->name, ctx);
        char computed[32];

        if (raw == NULL && v->def == NULL) {
            /* only WORKERS has a computed default */
            snprintf(computed, sizeof(computed), "%lld", dps_config_default_workers());
            raw = computed;
        } else if (raw == NULL) {
            raw = v->def;
        }
        if (parse_var(v, raw, out, err, cap) != 0)
            goto fail;
    }
    if (check_cross(out, err, cap) != 0)
        goto fail;
    return 0;
fail:
    dps_config_free(out);
    return -1;
}

static const char *get_env(const char *name, void *ctx)
{
    const char *v = ctx != NULL ? dps_envfile_get(ctx, name) : NULL;
    return v != NULL ? v : getenv(name);
}

int dps_config_load_env(dps_config_t *out, const char *env_file, char *err, size_t cap)
{
    dps_envfile_t *ef = NULL;
    int ret;

    if (env_file != NULL && (ef = dps_envfile_load(env_file, err, cap)) == NULL) {
        memset(out, 0, sizeof(*out));
        return -1;
    }
    ret = dps_config_load(out, get_env, ef, err, cap);
    dps_envfile_free(ef);
    return ret;
}

void dps_config_free(dps_config_t *cfg)
{
    for (size_t i = 0; i < dps_config_vars_count; i++) {
        if (dps_config_vars[i].type == DPS_CFG_STR) {
            char **field = (char **)((char *)cfg + dps_config_vars[i].offset);
            free(*field);
            *field = NULL;
        }
    }
}

int dps_config_copy(dps_config_t *dst, const dps_config_t *src)
{
    *dst = *src;
    for (size_t i = 0; i < dps_config_vars_count; i++) {
        if (dps_config_vars[i].type == DPS_CFG_STR) {
            char **field = (char **)((char *)dst + dps_config_vars[i].offset);
            if (*field != NULL && (*field = strdup(*field)) == NULL)
                return -1;
        }
    }
    return 0;
}

int dps_config_is_production(const dps_config_t *cfg)
{
    return cfg->node_env != NULL && strcmp(cfg->node_env, "production") == 0;
}

int dps_config_is_development(const dps_config_t *cfg)
{
    return cfg->node_env != NULL && strcmp(cfg->node_env, "development") == 0;
}

static const char *type_name(const dps_config_var_t *v)
{
    switch (v->type) {
    case DPS_CFG_INT:
        return "integer";
    case DPS_CFG_DBL:
        return "number";
    case DPS_CFG_BOOL:
        return "boolean";
    case DPS_CFG_LEVEL:
        return "level";
    case DPS_CFG_STR:
        break;
    }
    return "string";
}

static void range_text(const dps_config_var_t *v, char *buf, size_t cap)
{
    buf[0] = '\0';
    if (v->type == DPS_CFG_INT || v->type == DPS_CFG_DBL)
        snprintf(buf, cap, " (%lld..%lld)", v->min, v->max);
}

void dps_config_print_help(FILE *out)
{
    char range[64];

    fputs("Environment (an --env-file overrides the environment):\n", out);
    for (size_t i = 0; i < dps_config_vars_count; i++) {
        const dps_config_var_t *v = &dps_config_vars[i];
        range_text(v, range, sizeof(range));
        fprintf(out, "  %-34s %s%s, default %s\n      %s\n", v->name, type_name(v), range,
                v->def == NULL ? "computed" : *v->def ? v->def : "empty", v->help);
    }
}

/* roff needs a leading dot or quote escaped and backslashes doubled. */
static void roff_text(FILE *out, const char *s)
{
    if (*s == '.' || *s == '\'')
        fputs("\\&", out);
    for (; *s; s++) {
        if (*s == '\\')
            fputs("\\e", out);
        else if (*s == '-')
            fputs("\\-", out);
        else
            fputc(*s, out);
    }
}

void dps_config_print_roff(FILE *out)
{
    char range[64];

    for (size_t i = 0; i < dps_config_vars_count; i++) {
        const dps_config_var_t *v = &dps_config_vars[i];
        range_text(v, range, sizeof(range));
        fprintf(out, ".TP\n.B %s\n", v->name);
        fprintf(out, "%s%s; default ", type_name(v), range);
        roff_text(out, v->def == NULL ? "computed" : *v->def ? v->def : "empty");
        fputs(".\n", out);
        roff_text(out, v->help);
        fputs(".\n", out);
    }
}

void dps_config_print_values(FILE *out, const dps_config_t *cfg)
{
    for (size_t i = 0; i < dps_config_vars_count; i++) {
        const dps_config_var_t *v = &dps_config_vars[i];
        const void *field = (const char *)cfg + v->offset;

        fprintf(out, "%s=", v->name);
        if (v->secret && v->type == DPS_CFG_STR && **(char *const *)field != '\0')
            fputs("(set)", out);
        else if (v->type == DPS_CFG_STR)
            fputs(*(char *const *)field, out);
        else if (v->type == DPS_CFG_INT)
            fprintf(out, "%lld", *(const long long *)field);
        else if (v->type == DPS_CFG_DBL)
            fprintf(out, "%g", *(const double *)field);
        else if (v->type == DPS_CFG_BOOL)
            fputs(*(const int *)field ? "true" : "false", out);
        else
            fputs(dps_log_level_name((dps_log_level_t) * (const long long *)field), out);
        fputc('\n', out);
    }
}
