/* What a service body may say: create/update rules, endpoint SSRF checks, schema_config canonical form (§4.3). */
#include "depsera/api_services.h"
#include "depsera/util.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define POLL_MIN_MS 5000
#define POLL_MAX_MS 3600000
#define POLL_DEFAULT_MS 30000

static const char *const formats[] = {"default", "schema", "prometheus", "otlp"};
static const char *const metric_targets[] = {"state", "healthy", "latency", "code", "skipped"};
static const char *const label_targets[] = {"name", "type", "impact", "description", "errorMessage"};
/* SchemaMapping fields in canonical order; the last four take a dot path only. */
static const char *const mapping_fields[] = {"name",         "healthy", "latency", "impact",       "description", "type",
                                             "checkDetails", "contact", "error",   "errorMessage", "skipped"};

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* ---- helpers ------------------------------------------------------------------------------------ */

/* Set *out to the formatted message (malloc'd); NULL, so that validators can `return refuse(...)`. */
__attribute__((format(printf, 2, 3))) static json_t *refuse(char **out, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    if (vasprintf(out, fmt, ap) < 0)
        *out = NULL;
    va_end(ap);
    return NULL;
}

static int one_of(const char *s, const char *const *set, size_t n)
{
    for (size_t i = 0; s != NULL && i < n; i++)
        if (strcmp(s, set[i]) == 0)
            return 1;
    return 0;
}

/* The original's isNonEmptyString: a string with something besides white space. */
static int non_blank(json_t *v)
{
    size_t from, to;

    if (!json_is_string(v))
        return 0;
    dps_js_trim(json_string_value(v), json_string_length(v), &from, &to);
    return to > from;
}

/* A JSON number that is a whole number (JavaScript's Number.isInteger); its value as a double. */
static int whole_number(json_t *v, double *out)
{
    if (json_is_integer(v))
        return *out = (double)json_integer_value(v), 1;
    if (json_is_real(v) && isfinite(json_real_value(v)) && floor(json_real_value(v)) == json_real_value(v))
        return *out = json_real_value(v), 1;
    return 0;
}

__attribute__((format(printf, 3, 4))) static int fail(dps_service_input_t *in, const char *field, const char *fmt, ...)
{
    va_list ap;

    if (in->error != NULL)
        return -1;
    va_start(ap, fmt);
    if (vasprintf(&in->error, fmt, ap) < 0)
        in->error = NULL;
    va_end(ap);
    in->field = field;
    return -1;
}

void dps_service_input_clear(dps_service_input_t *in)
{
    json_decref(in->schema_config);
    in->schema_config = NULL;
    free(in->error);
    in->error = NULL;
    free((char *)in->name);
    in->name = NULL;
}

/* ---- schema_config -------------------------------------------------------------------------------- */

/* The document a schema_config value holds: a JSON object, or a string with one. New reference or NULL. */
static json_t *config_document(json_t *value, char **err)
{
    json_t *doc;

    if (json_is_string(value)) {
        if ((doc = json_loads(json_string_value(value), JSON_DECODE_ANY, NULL)) == NULL)
            return refuse(err, "schema_config must be valid JSON");
    } else if (json_is_object(value) || json_is_array(value)) {
        doc = json_incref(value);
    } else {
        return refuse(err, "schema_config must be a JSON string or object");
    }
    if (!json_is_object(doc)) {
        json_decref(doc);
        return refuse(err, "schema_config must be a JSON object");
    }
    return doc;
}

/* 1 if some value of `map` is the string t. */
static int has_target(json_t *map, const char *t)
{
    const char *key;
    json_t *v;

    json_object_foreach(map, key, v)
    {
        if (strcmp(json_string_value(v), t) == 0)
            return 1;
    }
    return 0;
}

/* One `metrics` or `labels` map: string values among `targets`, none twice (so at most five members
 * get checked against each other). A copy, or NULL. */
static json_t *metric_map(json_t *cfg, const char *member, const char *const *targets, size_t ntargets, const char *valid,
                          char **err)
{
    json_t *map = json_object_get(cfg, member), *out, *v;
    const char *key;

    if (map == NULL)
        return refuse(err, "schema_config.%s is required", member);
    if (!json_is_object(map))
        return refuse(err, "schema_config.%s must be an object", member);
    out = json_object();
    json_object_foreach(map, key, v)
    {
        const char *t = json_string_value(v);
        if (t == NULL)
            refuse(err, "schema_config.%s.%s must be a string", member, key);
        else if (!one_of(t, targets, ntargets))
            refuse(err, "schema_config.%s.%s has invalid target \"%s\". Valid targets: %s", member, key, t, valid);
        else if (has_target(out, t))
            refuse(err, "schema_config.%s has duplicate target \"%s\"", member, t);
        if (*err != NULL || json_object_set(out, key, v) != 0) {
            json_decref(out);
            return NULL;
        }
    }
    return out;
}

json_t *dps_metric_schema_validate(json_t *value, char **err)
{
    json_t *cfg, *metrics = NULL, *labels = NULL, *unit, *hv, *out = NULL;

    *err = NULL;
    if ((cfg = config_document(value, err)) == NULL)
        return NULL;
    if ((metrics = metric_map(cfg, "metrics", metric_targets, N(metric_targets), "state, healthy, latency, code, skipped", err)) ==
            NULL ||
        (labels = metric_map(cfg, "labels", label_targets, N(label_targets), "name, type, impact, description, errorMessage",
                             err)) == NULL)
        goto done;
    unit = json_object_get(cfg, "latency_unit");
    hv = json_object_get(cfg, "healthy_value");
    if (unit != NULL && !one_of(json_string_value(unit), (const char *const[]){"ms", "s"}, 2)) {
        refuse(err, "schema_config.latency_unit must be \"ms\" or \"s\"");
        goto done;
    }
    if (hv != NULL && !json_is_number(hv)) {
        refuse(err, "schema_config.healthy_value must be a number");
        goto done;
    }
    out = json_pack("{s:O,s:O}", "metrics", metrics, "labels", labels);
    if (unit != NULL)
        json_object_set(out, "latency_unit", unit);
    if (hv != NULL)
        json_object_set(out, "healthy_value", hv);
done:
    json_decref(metrics);
    json_decref(labels);
    json_decref(cfg);
    return out;
}

static int path_only(const char *field)
{
    return strcmp(field, "checkDetails") == 0 || strcmp(field, "contact") == 0 || strcmp(field, "error") == 0 ||
           strcmp(field, "errorMessage") == 0;
}

/* One field mapping: a dot path, or {field, equals} for the fields that allow a comparison. A new
 * reference to its canonical form, or NULL. */
static json_t *field_mapping(const char *key, json_t *v, char **err)
{
    json_t *f, *eq;

    if (path_only(key)) {
        if (!non_blank(v))
            return refuse(err, "schema_config.fields.%s must be a non-empty string path", key);
        if (strcmp(json_string_value(v), "$key") == 0)
            return refuse(err, "schema_config.fields.%s cannot use \"$key\" — it is only valid for the name field", key);
        return json_incref(v);
    }
    if (non_blank(v))
        return json_incref(v);
    if (!json_is_object(v))
        return refuse(err, "schema_config.fields.%s must be a string or { field, equals } object", key);
    f = json_object_get(v, "field");
    eq = json_object_get(v, "equals");
    if (!non_blank(f))
        return refuse(err, "schema_config.fields.%s.field must be a non-empty string", key);
    if (!non_blank(eq))
        return refuse(err, "schema_config.fields.%s.equals must be a non-empty string", key);
    return json_pack("{s:O,s:O}", "field", f, "equals", eq);
}

/* Every mapping of `fields`, validated in body order, into `out` (keyed by field). 0 or -1. */
static int mapping_fields_check(json_t *fields, json_t *out, char **err)
{
    const char *key;
    json_t *v, *m;

    json_object_foreach(fields, key, v)
    {
        if (!one_of(key, mapping_fields, N(mapping_fields))) {
            refuse(err,
                   "schema_config.fields contains unknown field \"%s\". Valid fields: name, healthy, latency, impact, "
                   "description, type, checkDetails, contact, error, errorMessage, skipped",
                   key);
            return -1;
        }
        if ((m = field_mapping(key, v, err)) == NULL)
            return -1;
        json_object_set_new(out, key, m);
    }
    /* "$key" names the member of an object root: only the name can be one */
    json_object_foreach(out, key, m)
    {
        if (strcmp(key, "name") != 0 && !path_only(key) && json_is_string(m) && strcmp(json_string_value(m), "$key") == 0) {
            refuse(err, "schema_config.fields.%s cannot use \"$key\" — it is only valid for the name field", key);
            return -1;
        }
    }
    return 0;
}

json_t *dps_schema_mapping_validate(json_t *value, char **err)
{
    json_t *cfg, *fields, *checked, *ordered, *out = NULL;

    *err = NULL;
    if ((cfg = config_document(value, err)) == NULL)
        return NULL;
    fields = json_object_get(cfg, "fields");
    checked = json_object();
    if (!non_blank(json_object_get(cfg, "root")))
        refuse(err, "schema_config.root must be a non-empty string");
    else if (!json_is_object(fields))
        refuse(err, "schema_config.fields must be an object");
    else if (json_object_get(fields, "name") == NULL)
        refuse(err, "schema_config.fields.name is required");
    else if (json_object_get(fields, "healthy") == NULL)
        refuse(err, "schema_config.fields.healthy is required");
    else if (mapping_fields_check(fields, checked, err) == 0) {
        ordered = json_object();
        for (size_t i = 0; i < N(mapping_fields); i++)
            if (json_object_get(checked, mapping_fields[i]) != NULL)
                json_object_set(ordered, mapping_fields[i], json_object_get(checked, mapping_fields[i]));
        out = json_pack("{s:O,s:o}", "root", json_object_get(cfg, "root"), "fields", ordered);
    }
    json_decref(checked);
    json_decref(cfg);
    return out;
}

/* The schema_config of a body for a given format (the body's own, NULL if it names none). */
static int take_schema_config(dps_service_input_t *in, json_t *v, const char *format, int metric_shape)
{
    char *err = NULL;

    in->has_schema_config = 1;
    if (json_is_null(v) || (format != NULL && strcmp(format, "default") == 0))
        return 0;
    if ((format != NULL && (strcmp(format, "prometheus") == 0 || strcmp(format, "otlp") == 0)) || metric_shape)
        in->schema_config = dps_metric_schema_validate(v, &err);
    else
        in->schema_config = dps_schema_mapping_validate(v, &err);
    if (in->schema_config != NULL)
        return 0;
    fail(in, "schema_config", "%s", err != NULL ? err : "schema_config must be a JSON object");
    free(err);
    return -1;
}

/* ---- members ------------------------------------------------------------------------------------ */

static int take_name(dps_service_input_t *in, json_t *v, const char *msg)
{
    size_t from, to;

    if (!non_blank(v))
        return fail(in, "name", "%s", msg);
    dps_js_trim(json_string_value(v), json_string_length(v), &from, &to);
    if ((in->name = strndup(json_string_value(v) + from, to - from)) == NULL)
        return fail(in, "name", "%s", msg);
    in->has_name = 1;
    return 0;
}

/* An endpoint URL: http(s) and allowed by the SSRF rules (polling.md §4). */
static int check_endpoint(dps_service_input_t *in, const char *field, json_t *v, const dps_ssrf_allowlist_t *al)
{
    dps_ssrf_verdict_t verdict = json_is_string(v) ? dps_ssrf_check_url(json_string_value(v), al, NULL, 0) : DPS_SSRF_BAD_URL;

    if (verdict == DPS_SSRF_BAD_URL)
        return fail(in, field, "%s must be a valid HTTP or HTTPS URL", field);
    if (verdict == DPS_SSRF_BLOCKED)
        return fail(in, field, "%s must not target private or internal addresses", field);
    return 0;
}

static int take_poll_interval(dps_service_input_t *in, json_t *v)
{
    double d;

    if (!whole_number(v, &d))
        return fail(in, "poll_interval_ms", "poll_interval_ms must be an integer");
    if (d < POLL_MIN_MS || d > POLL_MAX_MS)
        return fail(in, "poll_interval_ms", "poll_interval_ms must be between %d and %d", POLL_MIN_MS, POLL_MAX_MS);
    in->poll_interval_ms = (long long)d;
    in->has_poll_interval = 1;
    return 0;
}

static int take_format(dps_service_input_t *in, json_t *v)
{
    if (!one_of(json_string_value(v), formats, N(formats)))
        return fail(in, "health_endpoint_format", "health_endpoint_format must be one of: default, schema, prometheus, otlp");
    in->format = json_string_value(v);
    in->has_format = 1;
    return 0;
}

/* ---- create --------------------------------------------------------------------------------------- */

static int create_endpoints(dps_service_input_t *in, json_t *b, const dps_ssrf_allowlist_t *al, int otlp)
{
    json_t *he = json_object_get(b, "health_endpoint"), *me = json_object_get(b, "metrics_endpoint");

    in->has_health_endpoint = in->has_metrics_endpoint = 1;
    if (otlp) {
        if (non_blank(he))
            return fail(in, "health_endpoint", "health_endpoint must be empty for OTLP format (push-only)");
        in->health_endpoint = "";
    } else {
        if (!json_is_string(he) || json_string_length(he) == 0)
            return fail(in, "health_endpoint", "health_endpoint is required");
        if (check_endpoint(in, "health_endpoint", he, al) != 0)
            return -1;
        in->health_endpoint = json_string_value(he);
    }
    if (me == NULL || json_is_null(me))
        return 0;
    if (!json_is_string(me))
        return fail(in, "metrics_endpoint", "metrics_endpoint must be a string");
    if (json_string_length(me) > 0 && check_endpoint(in, "metrics_endpoint", me, al) != 0)
        return -1;
    in->metrics_endpoint = json_string_length(me) > 0 ? json_string_value(me) : NULL;
    return 0;
}

int dps_service_validate_create(json_t *b, const dps_ssrf_allowlist_t *al, dps_service_input_t *in)
{
    json_t *team = json_object_get(b, "team_id"), *fmt = json_object_get(b, "health_endpoint_format");
    json_t *poll = json_object_get(b, "poll_interval_ms"), *sc = json_object_get(b, "schema_config");
    int otlp;

    memset(in, 0, sizeof(*in));
    if (take_name(in, json_object_get(b, "name"), "name is required and must be a non-empty string") != 0)
        return -1;
    if (!json_is_string(team) || json_string_length(team) == 0)
        return fail(in, "team_id", "team_id is required");
    in->team_id = json_string_value(team);
    in->has_team_id = 1;
    if (fmt != NULL && take_format(in, fmt) != 0)
        return -1;
    otlp = in->format != NULL && strcmp(in->format, "otlp") == 0;
    if (create_endpoints(in, b, al, otlp) != 0)
        return -1;
    in->has_poll_interval = 1;
    in->poll_interval_ms = otlp ? 0 : POLL_DEFAULT_MS;
    if (!otlp && poll != NULL && take_poll_interval(in, poll) != 0)
        return -1;
    /* no format in the body: a mapping is validated as one (and kept, the poller reads it) */
    if (sc != NULL)
        return take_schema_config(in, sc, in->format, 0);
    in->has_schema_config = 1;
    return 0;
}

/* ---- update --------------------------------------------------------------------------------------- */

/* 1 if the config the body sends looks like a MetricSchemaConfig (has `metrics` or `labels`). */
static int metric_shaped(json_t *v)
{
    json_t *doc = json_is_string(v) ? json_loads(json_string_value(v), JSON_DECODE_ANY, NULL) : json_incref(v);
    int yes = json_is_object(doc) && (json_object_get(doc, "metrics") != NULL || json_object_get(doc, "labels") != NULL);

    json_decref(doc);
    return yes;
}

static int update_endpoints(dps_service_input_t *in, json_t *b, const dps_ssrf_allowlist_t *al, int otlp)
{
    json_t *he = json_object_get(b, "health_endpoint"), *me = json_object_get(b, "metrics_endpoint");

    if (he != NULL) {
        if (otlp && non_blank(he))
            return fail(in, "health_endpoint", "health_endpoint must be empty for OTLP format (push-only)");
        if (!otlp && check_endpoint(in, "health_endpoint", he, al) != 0)
            return -1;
        in->health_endpoint = otlp ? "" : json_string_value(he);
        in->has_health_endpoint = 1;
    }
    if (me != NULL) {
        if (!json_is_null(me) && check_endpoint(in, "metrics_endpoint", me, al) != 0)
            return -1;
        in->metrics_endpoint = json_string_value(me);
        in->has_metrics_endpoint = 1;
    }
    return 0;
}

/* The members of a PUT body in the original's order; `otlp` = the service is or becomes otlp. */
static int update_members(dps_service_input_t *in, json_t *b, const dps_ssrf_allowlist_t *al, int otlp)
{
    json_t *team = json_object_get(b, "team_id"), *poll = json_object_get(b, "poll_interval_ms");
    json_t *sc = json_object_get(b, "schema_config"), *active = json_object_get(b, "is_active");
    json_t *fmt = json_object_get(b, "health_endpoint_format");

    if (json_object_get(b, "name") != NULL && take_name(in, json_object_get(b, "name"), "name must be a non-empty string") != 0)
        return -1;
    if (team != NULL && !json_is_string(team))
        return fail(in, "team_id", "team_id must be a string");
    in->team_id = json_string_value(team), in->has_team_id = team != NULL;
    if (update_endpoints(in, b, al, otlp) != 0)
        return -1;
    if (poll != NULL && !otlp && take_poll_interval(in, poll) != 0)
        return -1;
    in->has_poll_interval |= poll != NULL;
    /* with an invalid format the config is left to the format's own error, as the original did */
    if (sc != NULL && (fmt == NULL || one_of(json_string_value(fmt), formats, N(formats))) &&
        take_schema_config(in, sc, json_string_value(fmt), fmt == NULL && metric_shaped(sc)) != 0)
        return -1;
    if (active != NULL && !json_is_boolean(active))
        return fail(in, "is_active", "is_active must be a boolean");
    in->is_active = json_is_true(active), in->has_is_active = active != NULL;
    return fmt != NULL ? take_format(in, fmt) : 0;
}

int dps_service_validate_update(json_t *b, const dps_ssrf_allowlist_t *al, const char *stored_format, dps_service_input_t *in)
{
    const char *body_format = json_string_value(json_object_get(b, "health_endpoint_format"));
    int was_otlp = stored_format != NULL && strcmp(stored_format, "otlp") == 0, otlp;

    memset(in, 0, sizeof(*in));
    if (!one_of(body_format, formats, N(formats)))
        body_format = NULL; /* an invalid format fails in its turn; meanwhile the stored one rules */
    otlp = body_format != NULL ? strcmp(body_format, "otlp") == 0 : was_otlp;
    if (update_members(in, b, al, otlp) != 0)
        return -1;
    if (!(in->has_name || in->has_team_id || in->has_health_endpoint || in->has_metrics_endpoint || in->has_poll_interval ||
          in->has_schema_config || in->has_is_active || in->has_format))
        return fail(in, NULL, "No valid fields to update");
    if (in->has_format && strcmp(in->format, "default") == 0 && !in->has_schema_config)
        in->has_schema_config = 1; /* format default carries no config */
    if (otlp) {                    /* push-only: nothing to poll */
        in->health_endpoint = "", in->has_health_endpoint = 1;
        in->poll_interval_ms = 0, in->has_poll_interval = 1;
    } else if (was_otlp) { /* leaving otlp: it needs an endpoint and an interval again */
        if (!in->has_health_endpoint)
            return fail(in, "health_endpoint", "health_endpoint is required");
        if (!in->has_poll_interval)
            in->poll_interval_ms = POLL_DEFAULT_MS, in->has_poll_interval = 1;
    }
    return 0;
}
