/* Which OTLP metric names and data-point attribute keys feed which dependency fields (otlp-ingestion.md
 * §4.2–§4.3): the defaults merged with a service's MetricSchemaConfig. Pure: no I/O. */
#ifndef DEPSERA_OTLP_MAPPING_H
#define DEPSERA_OTLP_MAPPING_H

#include <stddef.h>

/* Targets of the metric map: the dependency field a gauge (or non-monotonic sum) sets. */
typedef enum {
    DPS_METRIC_NONE = -1, /* not mapped, or mapped to a target that does not exist (ignored) */
    DPS_METRIC_STATE,     /* "state": health.state */
    DPS_METRIC_HEALTHY,   /* "healthy": compared with healthy_value */
    DPS_METRIC_LATENCY,   /* "latency": ms, or s if latency_seconds */
    DPS_METRIC_CODE,      /* "code": health.code */
    DPS_METRIC_SKIPPED,   /* "skipped": skipped iff the value is exactly 1 */
} dps_metric_target_t;

/* Targets of the label map: the dependency attribute a data-point attribute sets. */
typedef enum {
    DPS_LABEL_NONE = -1,     /* not mapped, or mapped to a target that does not exist (ignored) */
    DPS_LABEL_NAME,          /* "name": the dependency name (required) */
    DPS_LABEL_TYPE,          /* "type" */
    DPS_LABEL_IMPACT,        /* "impact" */
    DPS_LABEL_DESCRIPTION,   /* "description" */
    DPS_LABEL_ERROR_MESSAGE, /* "errorMessage" */
} dps_label_target_t;

/* One key → target entry. `target` is a dps_metric_target_t or dps_label_target_t; NONE when the
 * configuration named something else (such an entry still shadows a default key of the same name). */
typedef struct {
    char *key;
    int target;
} dps_mapping_entry_t;

/* The effective mapping of one service. Entries are in effective-map order (defaults left in place first,
 * then the user's entries in document order); keys are unique within each map. Read-only for users. */
typedef struct {
    dps_mapping_entry_t *metrics;
    size_t n_metrics;
    dps_mapping_entry_t *labels;
    size_t n_labels;
    int latency_seconds;  /* latency_unit is "s" (else ms) */
    double healthy_value; /* the `healthy` value meaning healthy; default 1 */
    int custom;           /* the schema_config was used (it parsed as an object with `metrics` or `labels`) */
    /* lookup indexes: entry positions sorted by key */
    size_t *metric_index, *label_index;
} dps_mapping_t;

/* Build the effective mapping from a service's `schema_config` text (NULL or anything else unusable gives
 * the defaults silently; a `metrics`/`labels` member that is not an object counts as empty; a
 * `healthy_value` that is not a number counts as 1; `latency_unit` other than "s" means ms).
 * On success fills *out (release with dps_mapping_free) and returns 0; -1 only when out of memory
 * (then *out needs no release). */
int dps_mapping_load(const char *schema_config, dps_mapping_t *out) __attribute__((warn_unused_result));
/* Release what dps_mapping_load allocated; harmless on a zeroed struct. */
void dps_mapping_free(dps_mapping_t *m);

/* The target of a metric name (exact, case-sensitive), DPS_METRIC_NONE if not mapped. O(log n). */
dps_metric_target_t dps_mapping_metric(const dps_mapping_t *m, const char *metric_name);
/* The target of a data-point attribute key, DPS_LABEL_NONE if not mapped. O(log n). */
dps_label_target_t dps_mapping_label(const dps_mapping_t *m, const char *attribute_key);
/* The "name key" of error messages: the first label key whose target is name, else "dependency.name".
 * Borrowed from m (or static). */
const char *dps_mapping_name_key(const dps_mapping_t *m);

/* The configuration spelling of a target ("latency", "errorMessage"), or NULL for NONE/out of range. */
const char *dps_mapping_metric_target_name(int target);
const char *dps_mapping_label_target_name(int target);

#endif
