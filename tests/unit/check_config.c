/* Unit tests of the configuration table: defaults, every type's validation, env files. */
#include "depsera/config.h"
#include "depsera/log.h"

#include <check.h>

#include "unit.h"
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

/* A tiny fake environment: NULL-terminated name/value pairs. */
static const char *fake_get(const char *name, void *ctx)
{
    const char **kv = ctx;
    for (size_t i = 0; kv[i] != NULL; i += 2)
        if (strcmp(kv[i], name) == 0)
            return kv[i + 1];
    return NULL;
}

static int load(dps_config_t *cfg, const char **kv, char *err)
{
    return dps_config_load(cfg, fake_get, kv, err, 512);
}

START_TEST(defaults)
{
    const char *kv[] = {NULL};
    dps_config_t cfg;
    char err[512];

    ck_assert_int_eq(load(&cfg, kv, err), 0);
    ck_assert_str_eq(cfg.host, "127.0.0.1");
    ck_assert_int_eq(cfg.port, 3001);
    ck_assert_int_eq(cfg.workers, dps_config_default_workers());
    ck_assert_int_eq(cfg.drain_timeout_ms, 10000);
    ck_assert_int_eq(cfg.log_level, DPS_LOG_INFO);
    ck_assert_int_eq(cfg.poll_max_concurrent_per_host, 5);
    ck_assert_int_eq(cfg.otlp_max_body_bytes, 20971520);
    ck_assert(cfg.otlp_rate_limit_warning_threshold > 0.79 && cfg.otlp_rate_limit_warning_threshold < 0.81);
    ck_assert_int_eq(cfg.require_https, 0);
    ck_assert_int_eq(cfg.enable_https, 0);
    ck_assert_int_eq(cfg.http_port, 0);
    ck_assert_str_eq(cfg.ssl_cert_path, "");
    ck_assert_str_eq(cfg.retention_cleanup_time, "02:00");
    dps_config_free(&cfg);
}
END_TEST

/* Each bad value must be refused with a message that starts with the variable's name. */
static const struct {
    const char *name, *value;
} bad[] = {
    {"PORT", "abc"},         {"PORT", "70000"},         {"PORT", "0"},
    {"PORT", "12x"},         {"PORT", ""},              {"WORKERS", "0"},
    {"WORKERS", "-3"},       {"DRAIN_TIMEOUT_MS", "-1"}, {"LOG_LEVEL", "loud"},
    {"HOST", "localhost"},   {"HOST", "300.1.1.1"},     {"REQUIRE_HTTPS", "yes please"},
    {"RETENTION_CLEANUP_TIME", "24:00"}, {"RETENTION_CLEANUP_TIME", "2:00"}, {"OTLP_RATE_LIMIT_WARNING_THRESHOLD", "1.5"},
    {"OTLP_RATE_LIMIT_WARNING_THRESHOLD", "nan"}, {"TRUST_PROXY", "10.0.0.0/33"}, {"TRUST_PROXY", "everyone"},
    {"CORS_ORIGIN", "localhost:3000"}, {"DATA_RETENTION_DAYS", "3651"}, {"ENABLE_HTTPS", "maybe"},
    {"HTTP_PORT", "65536"}, {"HTTP_PORT", "-1"}, {"SSL_CERT_PATH", "/etc/cert.pem"}, {"SSL_KEY_PATH", "/etc/key.pem"},
};

START_TEST(rejects_bad_values)
{
    const char *kv[] = {bad[_i].name, bad[_i].value, NULL};
    dps_config_t cfg;
    char err[512];

    ck_assert_int_eq(load(&cfg, kv, err), -1);
    ck_assert_msg(strncmp(err, bad[_i].name, strlen(bad[_i].name)) == 0, "message \"%s\" does not name %s", err, bad[_i].name);
}
END_TEST

START_TEST(accepts_good_values)
{
    const char *kv[] = {"PORT", "8080", "HOST", "::1", "LOG_LEVEL", "debug", "REQUIRE_HTTPS", "true", "TRUST_PROXY",
                        "loopback, 10.0.0.0/8, fd00::/8", "OTLP_RATE_LIMIT_WARNING_THRESHOLD", "0.5", "WORKERS", "3", NULL};
    dps_config_t cfg;
    char err[512];

    ck_assert_msg(load(&cfg, kv, err) == 0, "%s", err);
    ck_assert_int_eq(cfg.port, 8080);
    ck_assert_str_eq(cfg.host, "::1");
    ck_assert_int_eq(cfg.log_level, DPS_LOG_DEBUG);
    ck_assert_int_eq(cfg.require_https, 1);
    ck_assert_int_eq(cfg.workers, 3);
    dps_config_free(&cfg);
}
END_TEST

START_TEST(production_secret_rules)
{
    const char *weak[] = {"NODE_ENV", "production", "SESSION_SECRET", "change-me-to-random-32-char-string", NULL};
    const char *shrt[] = {"NODE_ENV", "production", "SESSION_SECRET", "short", NULL};
    const char *unset[] = {"NODE_ENV", "production", NULL};
    const char *good[] = {"NODE_ENV", "production", "SESSION_SECRET", "0123456789abcdef0123456789abcdef", NULL};
    dps_config_t cfg;
    char err[512];

    ck_assert_int_eq(load(&cfg, weak, err), -1);
    ck_assert(strstr(err, "SESSION_SECRET") == err);
    ck_assert_int_eq(load(&cfg, shrt, err), -1);
    ck_assert_int_eq(load(&cfg, unset, err), -1);
    ck_assert_int_eq(load(&cfg, good, err), 0);
    ck_assert(dps_config_is_production(&cfg));
    dps_config_free(&cfg);
}
END_TEST

/* The certificate and its key come as a pair; HTTP_PORT cannot take PORT when PORT serves HTTPS. */
START_TEST(https_rules)
{
    const char *pair[] = {"ENABLE_HTTPS", "true", "SSL_CERT_PATH", "/c.pem", "SSL_KEY_PATH", "/k.pem", "HTTP_PORT", "8080", NULL};
    const char *same[] = {"ENABLE_HTTPS", "true", "PORT", "8443", "HTTP_PORT", "8443", NULL};
    const char *plain_same[] = {"PORT", "8443", "HTTP_PORT", "8443", NULL};
    const char *key_only[] = {"ENABLE_HTTPS", "true", "SSL_KEY_PATH", "/k.pem", NULL};
    dps_config_t cfg;
    char err[512];

    ck_assert_msg(load(&cfg, pair, err) == 0, "%s", err);
    ck_assert_int_eq(cfg.enable_https, 1);
    ck_assert_str_eq(cfg.ssl_cert_path, "/c.pem");
    ck_assert_str_eq(cfg.ssl_key_path, "/k.pem");
    ck_assert_int_eq(cfg.http_port, 8080);
    dps_config_free(&cfg);
    ck_assert_int_eq(load(&cfg, same, err), -1);
    ck_assert_msg(strncmp(err, "HTTP_PORT: must differ from PORT", 32) == 0, "%s", err);
    ck_assert_msg(load(&cfg, plain_same, err) == 0, "%s", err); /* ignored without ENABLE_HTTPS */
    dps_config_free(&cfg);
    ck_assert_int_eq(load(&cfg, key_only, err), -1);
    ck_assert_str_eq(err, "SSL_KEY_PATH: must be given together with SSL_CERT_PATH");
}
END_TEST

START_TEST(env_file_overrides_and_parses)
{
    char path[] = "/tmp/check_config_XXXXXX", err[512];
    int fd = mkstemp(path);
    const char *text = "# comment\n\nexport PORT=4000\nLOG_LEVEL = \"warn\"\nHOST='::1'\nPORT=4001\n";
    dps_envfile_t *ef;

    ck_assert(fd >= 0);
    ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    ef = dps_envfile_load(path, err, sizeof(err));
    ck_assert_ptr_nonnull(ef);
    ck_assert_str_eq(dps_envfile_get(ef, "PORT"), "4001");
    ck_assert_str_eq(dps_envfile_get(ef, "LOG_LEVEL"), "warn");
    ck_assert_str_eq(dps_envfile_get(ef, "HOST"), "::1");
    ck_assert_ptr_null(dps_envfile_get(ef, "WORKERS"));
    dps_envfile_free(ef);

    fd = open(path, O_WRONLY | O_TRUNC);
    ck_assert_int_eq(write(fd, "JUNK LINE\n", 10), 10);
    close(fd);
    ck_assert_ptr_null(dps_envfile_load(path, err, sizeof(err)));
    ck_assert(strstr(err, ":1:") != NULL);
    unlink(path);
    ck_assert_ptr_null(dps_envfile_load(path, err, sizeof(err)));
}
END_TEST

START_TEST(copy_is_deep)
{
    const char *kv[] = {NULL};
    dps_config_t a, b;
    char err[512];

    ck_assert_int_eq(load(&a, kv, err), 0);
    ck_assert_int_eq(dps_config_copy(&b, &a), 0);
    ck_assert_ptr_ne(a.host, b.host);
    ck_assert_str_eq(a.host, b.host);
    dps_config_free(&a);
    dps_config_free(&b);
}
END_TEST

START_TEST(every_var_documented)
{
    for (size_t i = 0; i < dps_config_vars_count; i++) {
        ck_assert_ptr_nonnull(dps_config_vars[i].help);
        ck_assert(strlen(dps_config_vars[i].help) > 10);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, defaults);
    tcase_add_loop_test(tc, rejects_bad_values, 0, sizeof(bad) / sizeof(bad[0]));
    tcase_add_test(tc, accepts_good_values);
    tcase_add_test(tc, production_secret_rules);
    tcase_add_test(tc, https_rules);
    tcase_add_test(tc, env_file_overrides_and_parses);
    tcase_add_test(tc, copy_is_deep);
    tcase_add_test(tc, every_var_documented);
    suite_add_tcase(s, tc);
    return dps_check_run(s);
}
