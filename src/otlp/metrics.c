/* One resourceMetrics entry (otlp-ingestion.md §4-§6): gauges, sums and histograms folded into one
 * record per dependency name with the service's mapping, then written through the shared upsert
 * with discovery_source 'otlp_metric'. */
#include "depsera/otlp_ingest.h"
#include "depsera/util.h"
#include "depsera/otlp_mapping.h"
#include "depsera/otlp_percentile.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef Opentelemetry__Proto__Metrics__V1__Metric metric_t;
typedef Opentelemetry__Proto__Metrics__V1__NumberDataPoint number_point_t;
typedef Opentelemetry__Proto__Metrics__V1__HistogramDataPoint histogram_point_t;
typedef Opentelemetry__Proto__Common__V1__KeyValue kv_t;
typedef Opentelemetry__Proto__Common__V1__AnyValue any_value_t;

enum { F_STATE, F_HEALTHY, F_LATENCY, F_CODE, F_SKIPPED, F_N };         /* dps_metric_target_t order */
enum { L_NAME, L_TYPE, L_IMPACT, L_DESCRIPTION, L_ERROR_MESSAGE, L_N }; /* dps_label_target_t order */

/* A mapped attribute value (§4.1 unwrapped). */
typedef struct {
    int set;
    int is_string;
    const char *text; /* the string, or the value as text (for a name) */
} label_t;

/* Everything learnt about one dependency name (§5). */
typedef struct {
    const char *name;
    label_t labels[L_N];
    int has_field[F_N];
    double field[F_N];
    int has_time;
    uint64_t time_ns;
    int has_histogram;
    dps_percentiles_t pct;
    int has_request_count;
    double request_count;
} record_t;

/* Records in order of first appearance, found by name through an open-addressing index. */
typedef struct {
    record_t *v;
    size_t n, cap;
    size_t *index; /* slot -> record + 1, 0 = empty; size 2 * cap */
} records_t;

static uint64_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL;

    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static record_t *find(const records_t *r, const char *name)
{
    if (r->cap == 0)
        return NULL;
    for (size_t i = hash(name) & (2 * r->cap - 1);; i = (i + 1) & (2 * r->cap - 1)) {
        if (r->index[i] == 0)
            return NULL;
        if (strcmp(r->v[r->index[i] - 1].name, name) == 0)
            return &r->v[r->index[i] - 1];
    }
}

static void index_put(records_t *r, size_t rec)
{
    size_t i = hash(r->v[rec].name) & (2 * r->cap - 1);

    while (r->index[i] != 0)
        i = (i + 1) & (2 * r->cap - 1);
    r->index[i] = rec + 1;
}

/* A new zeroed record for `name` (not present), or NULL when out of memory. */
static record_t *add(dps_arena_t *a, records_t *r, const char *name)
{
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 16;
        record_t *v = dps_arena_alloc(a, cap * sizeof(*v));
        size_t *index = dps_arena_calloc(a, 2 * cap * sizeof(*index));
        if (v == NULL || index == NULL)
            return NULL;
        if (r->n > 0)
            memcpy(v, r->v, r->n * sizeof(*v));
        r->v = v, r->index = index, r->cap = cap;
        for (size_t i = 0; i < r->n; i++)
            index_put(r, i);
    }
    memset(&r->v[r->n], 0, sizeof(record_t));
    r->v[r->n].name = name;
    index_put(r, r->n);
    return &r->v[r->n++];
}

/* §4.1: a string, an integer, a double or a boolean; as text, the way JavaScript's String() shows it.
 * 0 when the value is of another kind (absent). */
static int unwrap(dps_arena_t *a, const any_value_t *v, label_t *out)
{
    char text[40];

    if (v == NULL)
        return 0;
    out->is_string = 0;
    switch (v->value_case) {
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE:
        out->is_string = 1;
        out->text = v->string_value != NULL ? v->string_value : "";
        return 1;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE:
        snprintf(text, sizeof(text), "%" PRId64, v->int_value);
        break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_DOUBLE_VALUE:
        dps_js_number(v->double_value, text);
        break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BOOL_VALUE:
        snprintf(text, sizeof(text), "%s", v->bool_value ? "true" : "false");
        break;
    default:
        return 0;
    }
    out->text = dps_arena_strndup(a, text, strlen(text));
    return out->text != NULL;
}

/* JavaScript truthiness of an unwrapped name: "" , 0, NaN and false are not names. */
static int truthy(const label_t *l)
{
    if (!l->set)
        return 0;
    if (l->is_string)
        return l->text[0] != '\0';
    /* the text of a number or boolean is String()'s: 0 and -0 print "0" */
    return strcmp(l->text, "0") != 0 && strcmp(l->text, "NaN") != 0 && strcmp(l->text, "false") != 0;
}

/* §5.1.1: the point's attributes through the label map (later duplicates win). */
static void map_labels(dps_arena_t *a, const dps_mapping_t *m, kv_t *const *kvs, size_t n, label_t out[L_N])
{
    memset(out, 0, sizeof(label_t) * L_N);
    for (size_t i = 0; i < n; i++) {
        dps_label_target_t t;
        label_t l;
        if (kvs[i] == NULL || kvs[i]->key == NULL || (t = dps_mapping_label(m, kvs[i]->key)) == DPS_LABEL_NONE || (int)t >= L_N)
            continue;
        if (unwrap(a, kvs[i]->value, &l)) {
            l.set = 1;
            out[t] = l;
        }
    }
}

/* §5.2.1 / §5.3: the first attribute mapped to name, if it is a string; else NULL. */
static const char *string_name(const dps_mapping_t *m, kv_t *const *kvs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (kvs[i] == NULL || kvs[i]->key == NULL || dps_mapping_label(m, kvs[i]->key) != DPS_LABEL_NAME)
            continue;
        if (kvs[i]->value != NULL && kvs[i]->value->value_case == OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE)
            return kvs[i]->value->string_value;
        return NULL;
    }
    return NULL;
}

static double point_value(const number_point_t *p)
{
    if (p->value_case == OPENTELEMETRY__PROTO__METRICS__V1__NUMBER_DATA_POINT__VALUE_AS_INT)
        return (double)p->as_int;
    if (p->value_case == OPENTELEMETRY__PROTO__METRICS__V1__NUMBER_DATA_POINT__VALUE_AS_DOUBLE)
        return p->as_double;
    return 0;
}

/* §5.1.5: the first non-zero timestamp of a record (protobuf cannot tell 0 from absent). */
static void note_time(record_t *rec, uint64_t ns)
{
    if (ns != 0 && !rec->has_time)
        rec->has_time = 1, rec->time_ns = ns;
}

typedef struct {
    dps_ingest_t *in;
    const dps_mapping_t *map;
    records_t recs;
} fold_t;

/* §5.1: a gauge of a mapped metric. -1 rejects the entry (a point without a name). */
static int fold_gauge(fold_t *f, const metric_t *m, dps_metric_target_t target)
{
    for (size_t i = 0; i < m->gauge->n_data_points; i++) {
        const number_point_t *p = m->gauge->data_points[i];
        label_t l[L_N];
        record_t *rec;
        map_labels(f->in->arena, f->map, p->attributes, p->n_attributes, l);
        if (!truthy(&l[L_NAME])) {
            const char *key = dps_mapping_name_key(f->map), *name = m->name != NULL ? m->name : "";
            size_t len = strlen(key) + strlen(name) + 80;
            char *msg = dps_arena_alloc(f->in->arena, len);
            if (msg != NULL)
                snprintf(msg, len, "OTLP data point for metric \"%s\" missing required attribute: %s", name, key);
            return dps_ingest_fail(f->in, msg != NULL ? msg : "OTLP data point missing its dependency name");
        }
        if ((rec = find(&f->recs, l[L_NAME].text)) == NULL) {
            if ((rec = add(f->in->arena, &f->recs, l[L_NAME].text)) == NULL)
                return dps_ingest_fail(f->in, "Out of memory");
            memcpy(rec->labels, l, sizeof(l));
        } else {
            for (int k = 0; k < L_N; k++)
                if (!rec->labels[k].set)
                    rec->labels[k] = l[k];
        }
        rec->has_field[target] = 1;
        rec->field[target] = point_value(p);
        note_time(rec, p->time_unix_nano);
    }
    return 0;
}

/* §5.2 / §5.3: the record of a histogram or sum point, created from its labels when new; NULL when
 * the point has no string name (skipped) or memory ran out (*oom). */
static record_t *point_record(fold_t *f, kv_t *const *kvs, size_t n, int *oom)
{
    const char *name = string_name(f->map, kvs, n);
    record_t *rec;
    label_t l[L_N];

    *oom = 0;
    if (name == NULL)
        return NULL;
    if ((rec = find(&f->recs, name)) != NULL)
        return rec;
    map_labels(f->in->arena, f->map, kvs, n, l);
    if ((rec = add(f->in->arena, &f->recs, name)) == NULL) {
        *oom = 1;
        return NULL;
    }
    memcpy(rec->labels, l, sizeof(l));
    return rec;
}

static int fold_histogram(fold_t *f, const metric_t *m)
{
    double u = dps_percentile_unit_multiplier(m->unit != NULL && m->unit[0] != '\0' ? m->unit : NULL);

    for (size_t i = 0; i < m->histogram->n_data_points; i++) {
        const histogram_point_t *p = m->histogram->data_points[i];
        int oom;
        record_t *rec = point_record(f, p->attributes, p->n_attributes, &oom);
        dps_histogram_t h = {p->explicit_bounds,
                             p->n_explicit_bounds,
                             p->bucket_counts,
                             p->n_bucket_counts,
                             p->count != 0,
                             p->count,
                             DPS_OTLP_HAS(p, sum),
                             DPS_OTLP_HAS(p, min),
                             DPS_OTLP_HAS(p, max),
                             p->sum,
                             p->min,
                             p->max};
        if (rec == NULL) {
            if (oom)
                return dps_ingest_fail(f->in, "Out of memory");
            continue;
        }
        dps_percentile_compute(&h, u, &rec->pct);
        rec->has_histogram = 1;
        if (!rec->has_field[F_LATENCY] && rec->pct.avg > 0) {
            rec->has_field[F_LATENCY] = 1;
            rec->field[F_LATENCY] = dps_percentile_round(rec->pct.avg);
        }
        note_time(rec, p->time_unix_nano);
    }
    return 0;
}

static int fold_sum(fold_t *f, const metric_t *m)
{
    dps_metric_target_t target = m->name != NULL ? dps_mapping_metric(f->map, m->name) : DPS_METRIC_NONE;

    for (size_t i = 0; i < m->sum->n_data_points; i++) {
        const number_point_t *p = m->sum->data_points[i];
        int oom;
        record_t *rec = point_record(f, p->attributes, p->n_attributes, &oom);
        if (rec == NULL) {
            if (oom)
                return dps_ingest_fail(f->in, "Out of memory");
            continue;
        }
        if (!m->sum->is_monotonic) {
            if (target != DPS_METRIC_NONE && (int)target < F_N) {
                rec->has_field[target] = 1;
                rec->field[target] = point_value(p);
            }
        } else {
            rec->has_request_count = 1;
            rec->request_count = point_value(p);
        }
        note_time(rec, p->time_unix_nano);
    }
    return 0;
}

/* The three independent checks of §5 on one metric. */
static int fold_metric(fold_t *f, const metric_t *m)
{
    dps_metric_target_t target = m->name != NULL ? dps_mapping_metric(f->map, m->name) : DPS_METRIC_NONE;

    if (m->data_case == OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_GAUGE && m->gauge != NULL && target != DPS_METRIC_NONE &&
        (int)target < F_N && fold_gauge(f, m, target) != 0)
        return -1;
    if (m->data_case == OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_HISTOGRAM && m->histogram != NULL &&
        fold_histogram(f, m) != 0)
        return -1;
    if (m->data_case == OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_SUM && m->sum != NULL && fold_sum(f, m) != 0)
        return -1;
    return 0;
}

/* An int column's value from a reported number (not range-checked by the spec; clamped here so the
 * row can be stored). */
static int clamp_int(double v)
{
    if (!(v == v))
        return 0;
    return v < -2147483648.0 ? INT32_MIN : v > 2147483647.0 ? INT32_MAX : (int)v;
}

static const char *string_label(const record_t *rec, int k)
{
    return rec->labels[k].set && rec->labels[k].is_string ? rec->labels[k].text : NULL;
}

/* §5.4: a record as a dependency status. */
static void to_status(const fold_t *f, const record_t *rec, dps_dep_status_t *st)
{
    double state = rec->has_field[F_STATE] ? rec->field[F_STATE] : 0,
           latency = rec->has_field[F_LATENCY] ? rec->field[F_LATENCY] : 0;
    const char *type = string_label(rec, L_TYPE);
    int blank = 1;

    for (const char *c = type; c != NULL && *c; c++)
        blank = blank && (*c == ' ' || *c == '\t' || *c == '\n' || *c == '\r' || *c == '\f' || *c == '\v');
    memset(st, 0, sizeof(*st));
    st->name = rec->name;
    st->type = type != NULL && !blank ? type : "other";
    st->description = string_label(rec, L_DESCRIPTION);
    st->impact = string_label(rec, L_IMPACT);
    st->error_message = string_label(rec, L_ERROR_MESSAGE);
    st->health_state = clamp_int(state);
    st->healthy = rec->has_field[F_HEALTHY] ? rec->field[F_HEALTHY] == f->map->healthy_value : state != 2;
    /* open-questions.md D7 (compat): a histogram average, already ms, is also scaled */
    st->latency_ms = f->map->latency_seconds ? dps_percentile_round(latency * 1000) : latency;
    st->health_code = rec->has_field[F_CODE] ? clamp_int(rec->field[F_CODE]) : 200;
    st->skipped = rec->has_field[F_SKIPPED] && rec->field[F_SKIPPED] == 1;
    if (rec->has_time) {
        st->has_last_checked = 1;
        st->last_checked_ms = (int64_t)(rec->time_ns / 1000000);
    }
    if (rec->has_histogram) {
        st->has_histogram = 1;
        st->p50 = rec->pct.p50, st->p95 = rec->pct.p95, st->p99 = rec->pct.p99;
        st->min = rec->pct.min, st->max = rec->pct.max;
    }
    st->has_request_count = rec->has_request_count;
    st->request_count = rec->request_count;
}

int dps_ingest_metric_entry(dps_ingest_t *in, const dps_ingest_service_t *svc,
                            const Opentelemetry__Proto__Metrics__V1__ResourceMetrics *rm)
{
    dps_mapping_t map;
    fold_t f;
    dps_dep_status_t *st;
    int rc = -1;

    if (dps_mapping_load(svc->schema_config, &map) != 0)
        return dps_ingest_fail(in, "Out of memory");
    memset(&f, 0, sizeof(f));
    f.in = in, f.map = &map;
    for (size_t i = 0; i < rm->n_scope_metrics; i++)
        for (size_t j = 0; j < rm->scope_metrics[i]->n_metrics; j++)
            if (rm->scope_metrics[i]->metrics[j] != NULL && fold_metric(&f, rm->scope_metrics[i]->metrics[j]) != 0)
                goto out;
    if (f.recs.n == 0) {
        rc = 0;
        goto out;
    }
    if ((st = dps_arena_alloc(in->arena, sizeof(*st) * f.recs.n)) == NULL) {
        rc = dps_ingest_fail(in, "Out of memory");
        goto out;
    }
    for (size_t i = 0; i < f.recs.n; i++)
        to_status(&f, &f.recs.v[i], &st[i]);
    rc = dps_upsert_statuses(in->db, svc->id, svc->name, st, f.recs.n, "otlp_metric", &in->changes, &in->failed);
out:
    dps_mapping_free(&map);
    return rc;
}
