/* Configuration: one declarative table of environment variables drives parsing, --help and the man page. */
#ifndef DEPSERA_CONFIG_H
#define DEPSERA_CONFIG_H

#include <stdio.h>

/* The parsed configuration. Strings are owned by the struct (dps_config_free). */
typedef struct dps_config {
    char *database_url;
    char *database_listen_url;
    char *host;
    long long port;
    long long workers;
    long long drain_timeout_ms;
    long long log_level; /* dps_log_level_t */
    char *node_env;
    char *cors_origin;
    char *trust_proxy;
    int require_https;
    int enable_https;
    char *ssl_cert_path;
    char *ssl_key_path;
    long long http_port; /* 0 = none */
    int local_auth;
    char *admin_email;
    char *admin_password;
    char *session_secret;
    long long rate_limit_window_ms;
    long long rate_limit_max;
    long long auth_rate_limit_window_ms;
    long long auth_rate_limit_max;
    long long otlp_rate_limit_window_ms;
    long long otlp_rate_limit_max;
    long long otlp_per_key_rate_limit_rpm;
    long long otlp_rate_limit_burst_seconds;
    double otlp_rate_limit_warning_threshold;
    long long otlp_usage_flush_interval_ms;
    long long graph_cache_ttl_ms;
    long long otlp_max_body_bytes;
    long long poll_max_concurrent_per_host;
    long long poll_max_in_flight;
    char *ssrf_allowlist;
    long long data_retention_days;
    char *retention_cleanup_time;
    long long pruner_check_interval_ms;
    long long default_poll_interval_ms;
    long long alert_cooldown_minutes;
    long long alert_rate_limit_per_hour;
    char *app_base_url;
} dps_config_t;

typedef enum {
    DPS_CFG_STR,  /* free text, checked by the validator if any */
    DPS_CFG_INT,  /* base-10 integer within [min, max] */
    DPS_CFG_DBL,  /* decimal number within [min, max] */
    DPS_CFG_BOOL, /* true/false (also 1/0) */
    DPS_CFG_LEVEL /* a log level name */
} dps_config_type_t;

typedef struct dps_config_var dps_config_var_t;

/* Extra check of a raw value; returns 0 or -1 with a message (without the variable name) in err. */
typedef int (*dps_config_validator_t)(const dps_config_var_t *var, const char *value, char *err, size_t cap);

struct dps_config_var {
    const char *name;
    dps_config_type_t type;
    const char *def; /* default as text; NULL = computed (see help) */
    dps_config_validator_t validate;
    long long min, max;
    const char *help;
    size_t offset; /* of the field in dps_config_t */
    int secret;    /* never printed */
};

/* Looks a variable up; returns NULL when unset. */
typedef const char *(*dps_config_getter_t)(const char *name, void *ctx);

extern const dps_config_var_t dps_config_vars[];
extern const size_t dps_config_vars_count;

/* Parse every variable through `get` into `out`. On failure returns -1, leaves `out` zeroed,
 * and writes "NAME: reason" into err. On success the caller owns `out` (dps_config_free). */
int dps_config_load(dps_config_t *out, dps_config_getter_t get, void *ctx, char *err, size_t cap) __attribute__((warn_unused_result));
/* Convenience: process environment overlaid by an env file (may be NULL). Same contract as dps_config_load. */
int dps_config_load_env(dps_config_t *out, const char *env_file, char *err, size_t cap) __attribute__((warn_unused_result));
void dps_config_free(dps_config_t *cfg);
/* Deep copy; returns 0 or -1 on allocation failure. */
int dps_config_copy(dps_config_t *dst, const dps_config_t *src) __attribute__((warn_unused_result));

/* Human table for --help, and the roff ENVIRONMENT section of man/depsera.1. */
void dps_config_print_help(FILE *out);
void dps_config_print_roff(FILE *out);
/* Effective values (secrets masked), one NAME=value per line. */
void dps_config_print_values(FILE *out, const dps_config_t *cfg);

/* Env files: KEY=VALUE lines, '#' comments, optional quotes and `export `. */
typedef struct dps_envfile dps_envfile_t;
/* Returns NULL with a message in err if the file cannot be read or has a malformed line. */
dps_envfile_t *dps_envfile_load(const char *path, char *err, size_t cap);
const char *dps_envfile_get(const dps_envfile_t *ef, const char *name);
void dps_envfile_free(dps_envfile_t *ef);

/* Default worker count: 2 x online CPUs. */
long long dps_config_default_workers(void);
int dps_config_is_production(const dps_config_t *cfg);
int dps_config_is_development(const dps_config_t *cfg);

#endif
