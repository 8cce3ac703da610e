/* The effective metric and label maps of a service: OTLP defaults merged with its schema_config (§4.2–§4.3). */
#include "depsera/otlp_mapping.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *key;
    int target;
} default_t;

static const char *const metric_names[] = {"state", "healthy", "latency", "code", "skipped"};
static const char *const label_names[] = {"name", "type", "impact", "description", "errorMessage"};

static const default_t default_metrics[] = {
    {"dependency.health.status", DPS_METRIC_STATE},          {"dependency.health.healthy", DPS_METRIC_HEALTHY},
    {"dependency.health.latency", DPS_METRIC_LATENCY},       {"dependency.health.code", DPS_METRIC_CODE},
    {"dependency.health.check_skipped", DPS_METRIC_SKIPPED},
};
static const default_t default_labels[] = {
    {"dependency.name", DPS_LABEL_NAME},
    {"dependency.type", DPS_LABEL_TYPE},
    {"dependency.impact", DPS_LABEL_IMPACT},
    {"dependency.description", DPS_LABEL_DESCRIPTION},
    {"dependency.error_message", DPS_LABEL_ERROR_MESSAGE},
};

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define N_DEFAULTS 5

const char *dps_mapping_metric_target_name(int target)
{
    return target >= 0 && (size_t)target < N(metric_names) ? metric_names[target] : NULL;
}

const char *dps_mapping_label_target_name(int target)
{
    return target >= 0 && (size_t)target < N(label_names) ? label_names[target] : NULL;
}

/* A user value's target: its position among the names, NONE for any other string or non-string. */
static int target_of(json_t *v, const char *const *names)
{
    for (size_t i = 0; json_is_string(v) && i < N_DEFAULTS; i++)
        if (strcmp(json_string_value(v), names[i]) == 0)
            return (int)i;
    return -1;
}

/* Sorting and searching entry positions by key. qsort_r keeps the entries themselves in map order. */
static int by_key(const void *a, const void *b, void *entries)
{
    const dps_mapping_entry_t *e = entries;

    return strcmp(e[*(const size_t *)a].key, e[*(const size_t *)b].key);
}

static int lookup(const dps_mapping_entry_t *e, const size_t *index, size_t n, const char *key)
{
    size_t lo = 0, hi = n;

    while (key != NULL && lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(key, e[index[mid]].key);

        if (c == 0)
            return e[index[mid]].target;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return -1;
}

static int add(dps_mapping_entry_t *e, size_t *n, const char *key, int target)
{
    if ((e[*n].key = strdup(key)) == NULL)
        return -1;
    e[(*n)++].target = target;
    return 0;
}

/* §4.3 merge: defaults whose target the (non-empty) user map names are dropped, then the user's entries
 * are added, a user key equal to a surviving default key replacing its target in place (as assigning an
 * existing key of a JavaScript object does). `user` may be NULL (defaults only). */
static int build(json_t *user, const default_t *defaults, const char *const *names, dps_mapping_entry_t **out, size_t *n_out,
                 size_t **index_out)
{
    size_t n_user = json_is_object(user) ? json_object_size(user) : 0, n = 0, kept;
    dps_mapping_entry_t *e = calloc(N_DEFAULTS + n_user, sizeof(*e));
    size_t *index = malloc((N_DEFAULTS + n_user) * sizeof(*index));
    int named[N_DEFAULTS] = {0};
    const char *key;
    json_t *v;

    if (e == NULL || index == NULL)
        goto fail;
    if (n_user > 0) {
        json_object_foreach(user, key, v)
        {
            if (target_of(v, names) >= 0)
                named[target_of(v, names)] = 1;
        }
    }
    for (size_t i = 0; i < N_DEFAULTS; i++)
        if (!named[defaults[i].target] && add(e, &n, defaults[i].key, defaults[i].target) != 0)
            goto fail;
    kept = n;
    if (n_user > 0) {
        json_object_foreach(user, key, v)
        {
            size_t i = 0;

            while (i < kept && strcmp(e[i].key, key) != 0) /* user keys are unique: only defaults can clash */
                i++;
            if (i < kept)
                e[i].target = target_of(v, names);
            else if (add(e, &n, key, target_of(v, names)) != 0)
                goto fail;
        }
    }
    for (size_t i = 0; i < n; i++)
        index[i] = i;
    qsort_r(index, n, sizeof(*index), by_key, e);
    *out = e, *n_out = n, *index_out = index;
    return 0;
fail:
    for (size_t i = 0; e != NULL && i < n; i++)
        free(e[i].key);
    free(e);
    free(index);
    return -1;
}

int dps_mapping_load(const char *schema_config, dps_mapping_t *out)
{
    json_t *cfg = schema_config != NULL ? json_loads(schema_config, 0, NULL) : NULL;
    json_t *metrics = NULL, *labels = NULL, *unit, *hv;

    memset(out, 0, sizeof(*out));
    out->healthy_value = 1;
    if (json_is_object(cfg)) {
        metrics = json_object_get(cfg, "metrics");
        labels = json_object_get(cfg, "labels");
        out->custom = json_is_object(metrics) || json_is_object(labels);
    }
    if (out->custom) {
        unit = json_object_get(cfg, "latency_unit");
        hv = json_object_get(cfg, "healthy_value");
        out->latency_seconds = json_is_string(unit) && strcmp(json_string_value(unit), "s") == 0;
        if (json_is_number(hv))
            out->healthy_value = json_number_value(hv);
    } else {
        metrics = labels = NULL;
    }
    if (build(metrics, default_metrics, metric_names, &out->metrics, &out->n_metrics, &out->metric_index) != 0 ||
        build(labels, default_labels, label_names, &out->labels, &out->n_labels, &out->label_index) != 0)
        goto fail;
    json_decref(cfg);
    return 0;
fail:
    json_decref(cfg);
    dps_mapping_free(out);
    return -1;
}

void dps_mapping_free(dps_mapping_t *m)
{
    for (size_t i = 0; m->metrics != NULL && i < m->n_metrics; i++)
        free(m->metrics[i].key);
    for (size_t i = 0; m->labels != NULL && i < m->n_labels; i++)
        free(m->labels[i].key);
    free(m->metrics);
    free(m->labels);
    free(m->metric_index);
    free(m->label_index);
    memset(m, 0, sizeof(*m));
}

dps_metric_target_t dps_mapping_metric(const dps_mapping_t *m, const char *metric_name)
{
    return (dps_metric_target_t)lookup(m->metrics, m->metric_index, m->n_metrics, metric_name);
}

dps_label_target_t dps_mapping_label(const dps_mapping_t *m, const char *attribute_key)
{
    return (dps_label_target_t)lookup(m->labels, m->label_index, m->n_labels, attribute_key);
}

const char *dps_mapping_name_key(const dps_mapping_t *m)
{
    for (size_t i = 0; i < m->n_labels; i++)
        if (m->labels[i].target == DPS_LABEL_NAME)
            return m->labels[i].key;
    return "dependency.name";
}
