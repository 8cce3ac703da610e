/* POST /api/services/test-schema (graph-and-api.md §4.5): fetch a health endpoint once, with the
 * poller's client and SSRF rules, and show what the poller would make of it. Nothing is stored.
 *
 * The fetch runs in the worker, which waits for it: the timeout is shorter than a poll's
 * (TEST_TIMEOUT_MS), so that a slow endpoint holds the worker's other connections back for a few
 * seconds at most. Deviation from the original, by design (open-questions C14): SSRF refusals are 400s. */
#include "depsera/api_guards.h"
#include "depsera/api_services.h"
#include "depsera/http.h"
#include "depsera/poll_fetch.h"
#include "depsera/poll_parse.h"
#include "depsera/session.h"
#include "depsera/ssrf.h"
#include "depsera/util.h"

#include <curl/curl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TEST_TIMEOUT_MS 5000
#define TEST_MAX_BODY (1024 * 1024)
#define TEST_MAX_REDIRECTS 5
#define USER_AGENT "Dependencies-Dashboard/1.0"

typedef struct {
    int done;
    long status;
    char *body;
    size_t len;
    char error[400];
} outcome_t;

static void error_field(dps_req_t *r, const char *msg, const char *field)
{
    dps_api_error_field(r, 400, msg, field);
}

/* Admins, and leads of at least one team (step 1). 0 to go on, -1 when answered. */
static int lead_guard(dps_req_t *r)
{
    const char *uid = r->user->id;
    PGresult *res;

    if (r->user->is_admin)
        return 0;
    if ((res = dps_req_sql(r, NULL, "SELECT 1 FROM team_members WHERE user_id = $1 AND role = 'lead' LIMIT 1", 1, &uid)) == NULL)
        return -1;
    if (PQntuples(res) > 0)
        return 0;
    dps_http_error(r, 403, "Requires team lead or admin role");
    return -1;
}

static void on_done(void *user, const dps_fetch_result_t *res, void *arg)
{
    outcome_t *o = user;

    (void)arg;
    o->done = 1;
    o->status = res->status;
    if (res->error != NULL)
        snprintf(o->error, sizeof(o->error), "%s", res->error);
    else if ((o->body = malloc(res->len + 1)) != NULL) {
        memcpy(o->body, res->body, res->len);
        o->body[res->len] = '\0';
        o->len = res->len;
    } else {
        snprintf(o->error, sizeof(o->error), "Out of memory");
    }
}

/* GET url and wait for the end. 0, or -1 with o->error set. */
static int fetch(const char *url, const char *accept, const dps_ssrf_allowlist_t *al, outcome_t *o)
{
    static int curl_ready;
    dps_fetch_opts_t opts = {TEST_TIMEOUT_MS, TEST_MAX_BODY, TEST_MAX_REDIRECTS, USER_AGENT};
    dps_fetch_t *f;
    int64_t give_up = dps_mono_ms() + TEST_TIMEOUT_MS + 2000;

    if (!curl_ready && curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK)
        curl_ready = 1;
    if (!curl_ready || (f = dps_fetch_create(&opts)) == NULL) {
        snprintf(o->error, sizeof(o->error), "HTTP client setup failed");
        return -1;
    }
    dps_fetch_set_allowlist(f, al);
    if (dps_fetch_start(f, url, accept, o, o->error, sizeof(o->error)) != 0) {
        dps_fetch_destroy(f);
        return -1;
    }
    while (!o->done && dps_mono_ms() < give_up) {
        struct pollfd fds[16];
        size_t n = dps_fetch_fds(f, fds, 16);
        int64_t wait = dps_fetch_timeout(f);
        if (n > 16)
            n = 16;
        (void)poll(fds, (nfds_t)n, wait < 0 || wait > 100 ? 100 : (int)wait);
        dps_fetch_run(f, fds, n, on_done, NULL);
    }
    if (!o->done)
        snprintf(o->error, sizeof(o->error), "Request timed out");
    dps_fetch_destroy(f);
    return o->error[0] != '\0' ? -1 : 0;
}

/* Step 6's answers for a failed fetch. */
static void fetch_failed(dps_req_t *r, const outcome_t *o)
{
    char msg[512];

    if (strncmp(o->error, "HTTP ", 5) == 0 && o->status > 0)
        snprintf(msg, sizeof(msg), "Health endpoint returned HTTP %ld", o->status);
    else if (strcmp(o->error, "Request timed out") == 0)
        snprintf(msg, sizeof(msg), "Health endpoint request timed out (%ds)", TEST_TIMEOUT_MS / 1000);
    else
        snprintf(msg, sizeof(msg), "Failed to fetch health endpoint: %s", o->error);
    error_field(r, msg, "url");
}

static json_t *str_or_null(const char *s)
{
    return s != NULL ? json_string(s) : json_null();
}

/* Step 9: the mappings a schema lacks. */
static void mapping_warnings(json_t *warnings, json_t *config)
{
    static const char *const fields[][2] = {
        {"latency", "latency"}, {"impact", "impact"}, {"description", "description"}, {"checkDetails", "check details"},
        {"contact", "contact"},
    };
    json_t *map = json_object_get(config, "fields");
    char msg[160];

    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        if (json_object_get(map, fields[i][0]) != NULL)
            continue;
        snprintf(msg, sizeof(msg), "No %s field mapping configured \u2014 %s data will not be captured", fields[i][0],
                 fields[i][1]);
        json_array_append_new(warnings, json_string(msg));
    }
}

/* Steps 8-10: parse and answer. */
static void answer(dps_req_t *r, const char *format, json_t *config, const outcome_t *o)
{
    char *config_text = config != NULL ? json_dumps(config, JSON_COMPACT) : NULL;
    dps_poll_result_t res;
    json_t *deps = json_array(), *warnings = json_array();
    int latency_mapped = strcmp(format, "schema") == 0 && json_object_get(json_object_get(config, "fields"), "latency") != NULL;

    if (dps_poll_parse(format, config_text, o->body, o->len, &res) != 0) {
        json_array_append_new(warnings, json_string(res.error != NULL ? res.error : "Parse failed"));
        dps_http_json(r, 200, json_pack("{s:b,s:o,s:o}", "success", 0, "dependencies", deps, "warnings", warnings));
        dps_poll_result_free(&res);
        free(config_text);
        return;
    }
    if (strcmp(format, "schema") == 0)
        mapping_warnings(warnings, config);
    for (size_t i = 0; i < res.n_warnings; i++)
        json_array_append_new(warnings, json_string(res.warnings[i]));
    for (size_t i = 0; i < res.n_deps; i++) {
        const dps_dep_status_t *d = &res.deps[i];
        char msg[512];
        json_array_append_new(deps, json_pack("{s:s,s:b,s:f,s:o,s:o,s:o,s:o,s:s,s:b}", "name", d->name, "healthy", d->healthy,
                                              "latency_ms", d->latency_ms, "impact", str_or_null(d->impact), "description",
                                              str_or_null(d->description), "check_details",
                                              d->check_details ? json_loads(d->check_details, 0, NULL) : json_null(), "contact",
                                              d->contact ? json_loads(d->contact, 0, NULL) : json_null(), "type",
                                              d->type != NULL ? d->type : "other", "skipped", d->skipped));
        if (latency_mapped && d->latency_ms == 0) {
            snprintf(msg, sizeof(msg), "Dependency \"%.400s\": latency field resolved to 0 or was not found", d->name);
            json_array_append_new(warnings, json_string(msg));
        }
    }
    if (res.n_deps == 0)
        json_array_append_new(warnings, json_string("No dependencies were parsed from the response"));
    dps_http_json(r, 200, json_pack("{s:b,s:o,s:o}", "success", 1, "dependencies", deps, "warnings", warnings));
    dps_poll_result_free(&res);
    free(config_text);
}

static int known_format(const char *f)
{
    return f != NULL &&
           (strcmp(f, "default") == 0 || strcmp(f, "schema") == 0 || strcmp(f, "prometheus") == 0 || strcmp(f, "otlp") == 0);
}

/* Steps 4 and 7: the schema_config a format takes, validated (NULL when it takes none). 0, or -1
 * when answered 400. */
static int take_config(dps_req_t *r, const char *format, json_t *given, json_t **out)
{
    char *err = NULL;

    *out = NULL;
    if (strcmp(format, "default") == 0 || (strcmp(format, "prometheus") == 0 && (given == NULL || json_is_null(given))))
        return 0;
    if (given == NULL || json_is_null(given)) {
        error_field(r, "schema_config is required", "schema_config");
        return -1;
    }
    *out = strcmp(format, "schema") == 0 ? dps_schema_mapping_validate(given, &err) : dps_metric_schema_validate(given, &err);
    if (*out != NULL)
        return 0;
    error_field(r, err != NULL ? err : "schema_config is invalid", "schema_config");
    free(err);
    return -1;
}

void dps_api_services_test_schema(dps_req_t *r)
{
    json_t *body = json_is_object(r->body) ? r->body : NULL, *v, *config = NULL;
    const char *format = "schema", *url;
    dps_ssrf_allowlist_t *al;
    dps_url_t parsed;
    outcome_t o;

    if (dps_require_user(r) != 0 || lead_guard(r) != 0)
        return;
    if ((v = json_object_get(body, "format")) != NULL && !json_is_null(v)) {
        format = json_string_value(v);
        if (!known_format(format)) {
            error_field(r, "format must be one of: default, schema, prometheus, otlp", "format");
            return;
        }
    }
    if (strcmp(format, "otlp") == 0) {
        error_field(r, "OTLP services receive pushed metrics and cannot be tested via URL", "format");
        return;
    }
    if (!json_is_string(v = json_object_get(body, "url"))) {
        error_field(r, "url is required and must be a string", "url");
        return;
    }
    url = json_string_value(v);
    if (dps_url_parse(url, &parsed) != 0) {
        error_field(r, "url must be a valid URL", "url");
        return;
    }
    /* step 7's validation of a prometheus config comes after the fetch, as the spec orders it */
    if (strcmp(format, "schema") == 0 && take_config(r, format, json_object_get(body, "schema_config"), &config) != 0)
        return;
    if (dps_api_load_allowlist(r, &al) != 0)
        goto out;
    switch (dps_ssrf_check_url(url, al, NULL, 0)) {
    case DPS_SSRF_BAD_URL:
        error_field(r, "url must be a valid URL", "url");
        goto out;
    case DPS_SSRF_BLOCKED:
        error_field(r, "url must not target private or internal addresses", "url");
        goto out;
    default:
        break;
    }
    memset(&o, 0, sizeof(o));
    if (fetch(url, strcmp(format, "prometheus") == 0 ? "text/plain; version=0.0.4" : "application/json", al, &o) != 0)
        fetch_failed(r, &o);
    else if (strcmp(format, "prometheus") != 0 || take_config(r, format, json_object_get(body, "schema_config"), &config) == 0)
        answer(r, format, config, &o);
    free(o.body);
out:
    json_decref(config);
}
