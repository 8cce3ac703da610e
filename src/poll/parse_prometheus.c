/* The Prometheus health format (polling.md §2.3): text exposition lines folded into dependency statuses
 * through the default metric and label maps merged with a MetricSchemaConfig. Hand-written, one pass,
 * linear work and memory in the body's length whatever it holds. */
#include "parse_internal.h"

#include "depsera/otlp_percentile.h"
#include "depsera/util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { M_STATE, M_HEALTHY, M_LATENCY, M_CODE, M_SKIPPED, M_N };
enum { L_NAME, L_TYPE, L_IMPACT, L_DESCRIPTION, L_ERROR_MESSAGE, L_N };

static const char *const metric_targets[M_N] = {"state", "healthy", "latency", "code", "skipped"};
static const char *const label_targets[L_N] = {"name", "type", "impact", "description", "errorMessage"};
static const char *const default_metrics[M_N] = {"dependency_health_status", "dependency_health_healthy",
                                                 "dependency_health_latency_ms", "dependency_health_code",
                                                 "dependency_health_check_skipped"};
static const char *const default_labels[L_N] = {"name", "type", "impact", "description", "error_message"};

/* One effective map (metric or label): entries in effective order, a key → entry index for lookups. */
typedef struct {
    struct {
        char *key;
        int target; /* -1: a target that does not exist (the key is shadowed, nothing is set) */
    } * e;
    size_t n;
    pp_map_t index;
} map_t;

typedef struct {
    map_t metrics, labels;
    int latency_seconds;
    double healthy_value;
} mapping_t;

/* One dependency being folded. */
typedef struct {
    char *name;
    char *label[L_N]; /* L_NAME unused */
    double field[M_N];
    unsigned char has[M_N];
} record_t;

typedef struct {
    dps_poll_result_t *r;
    const mapping_t *map;
    record_t *recs;
    size_t n_recs, cap_recs;
    pp_map_t by_name;
    char *keybuf, *valbuf, *namebuf; /* scratch, grown to the longest line */
    size_t scratch_cap;
} fold_t;

/* ---- the effective maps (otlp-ingestion.md §4.3 merge, with the Prometheus defaults) --------------- */

static int target_of(json_t *v, const char *const *names)
{
    for (int i = 0; json_is_string(v) && i < 5; i++)
        if (strcmp(json_string_value(v), names[i]) == 0)
            return i;
    return -1;
}

static int add(map_t *m, const char *key, int target)
{
    if ((m->e[m->n].key = strdup(key)) == NULL)
        return -1;
    m->e[m->n++].target = target;
    return 0;
}

/* Defaults whose target the (non-empty) user map names are dropped, then the user's entries are added, a
 * user key equal to a surviving default key replacing its target in place. */
static int build(map_t *m, json_t *user, const char *const *defaults, const char *const *names)
{
    size_t n_user = json_is_object(user) ? json_object_size(user) : 0, kept;
    int named[5] = {0};
    const char *key;
    json_t *v;

    if ((m->e = calloc(5 + n_user, sizeof(*m->e))) == NULL)
        return -1;
    if (n_user > 0) {
        json_object_foreach(user, key, v)
        {
            if (target_of(v, names) >= 0)
                named[target_of(v, names)] = 1;
        }
    }
    for (int i = 0; i < 5; i++)
        if (!named[i] && add(m, defaults[i], i) != 0)
            return -1;
    kept = m->n;
    if (n_user > 0) {
        json_object_foreach(user, key, v)
        {
            size_t i = 0;

            while (i < kept && strcmp(m->e[i].key, key) != 0)
                i++;
            if (i < kept)
                m->e[i].target = target_of(v, names);
            else if (add(m, key, target_of(v, names)) != 0)
                return -1;
        }
    }
    for (size_t i = 0; i < m->n; i++)
        if (pp_map_put(&m->index, m->e[i].key, i) != 0)
            return -1;
    return 0;
}

static void map_free(map_t *m)
{
    for (size_t i = 0; m->e != NULL && i < m->n; i++)
        free(m->e[i].key);
    free(m->e);
    pp_map_free(&m->index);
}

static int lookup(const map_t *m, const char *key)
{
    struct pp_map_entry *e = pp_map_get(&m->index, key);

    return e != NULL ? m->e[e->value].target : -1;
}

static int mapping_load(const char *schema_config, mapping_t *out)
{
    json_t *cfg = schema_config != NULL ? json_loads(schema_config, JSON_DECODE_ANY, NULL) : NULL;
    json_t *metrics = NULL, *labels = NULL, *unit, *hv;
    int rc;

    memset(out, 0, sizeof(*out));
    out->healthy_value = 1;
    if (json_is_object(cfg)) {
        metrics = json_object_get(cfg, "metrics");
        labels = json_object_get(cfg, "labels");
    }
    if (json_is_object(metrics) || json_is_object(labels)) {
        unit = json_object_get(cfg, "latency_unit");
        hv = json_object_get(cfg, "healthy_value");
        out->latency_seconds = json_is_string(unit) && strcmp(json_string_value(unit), "s") == 0;
        if (json_is_number(hv))
            out->healthy_value = json_number_value(hv);
    } else {
        metrics = labels = NULL;
    }
    rc = build(&out->metrics, metrics, default_metrics, metric_targets) == 0 &&
                 build(&out->labels, labels, default_labels, label_targets) == 0
             ? 0
             : -1;
    json_decref(cfg);
    return rc;
}

/* The "name label" of warnings: the first label key whose target is name. */
static const char *name_key(const mapping_t *m)
{
    for (size_t i = 0; i < m->labels.n; i++)
        if (m->labels.e[i].target == L_NAME)
            return m->labels.e[i].key;
    return "name";
}

/* ---- text ----------------------------------------------------------------------------------------------- */

/* The length of a valid UTF-8 sequence at p (1-4), or 0 if the bytes there are not one (or are NUL). */
static int utf8_len(const unsigned char *p, const unsigned char *end)
{
    size_t avail = (size_t)(end - p);

    if (p[0] >= 0x01 && p[0] < 0x80)
        return 1;
    if (p[0] >= 0xC2 && p[0] <= 0xDF)
        return avail >= 2 && (p[1] & 0xC0) == 0x80 ? 2 : 0;
    if (p[0] >= 0xE0 && p[0] <= 0xEF) {
        unsigned lo = p[0] == 0xE0 ? 0xA0 : 0x80, hi = p[0] == 0xED ? 0x9F : 0xBF; /* no overlong, no surrogate */

        return avail >= 3 && p[1] >= lo && p[1] <= hi && (p[2] & 0xC0) == 0x80 ? 3 : 0;
    }
    if (p[0] >= 0xF0 && p[0] <= 0xF4) {
        unsigned lo = p[0] == 0xF0 ? 0x90 : 0x80, hi = p[0] == 0xF4 ? 0x8F : 0xBF;

        return avail >= 4 && p[1] >= lo && p[1] <= hi && (p[2] & 0xC0) == 0x80 && (p[3] & 0xC0) == 0x80 ? 4 : 0;
    }
    return 0;
}

/* The body as text: valid UTF-8, each invalid byte and each NUL (which no stored string can hold) read as
 * U+FFFD, as a text decoder would. NUL-terminated, malloc'd; NULL when out of memory. */
static char *as_text(const char *body, size_t len, size_t *out_len)
{
    const unsigned char *p = (const unsigned char *)body, *end = p + len;
    char *t = malloc(3 * len + 1), *o = t;

    if (t == NULL)
        return NULL;
    while (p < end) {
        int n = utf8_len(p, end);

        if (n > 0) {
            memcpy(o, p, (size_t)n);
            o += n, p += n;
        } else {
            memcpy(o, "\xEF\xBF\xBD", 3);
            o += 3, p++;
        }
    }
    *o = '\0';
    *out_len = (size_t)(o - t);
    return t;
}

/* JavaScript's parseFloat on s[0..n): leading white space, then the longest decimal literal prefix
 * (sign, digits, fraction, exponent) or "Infinity". 0 with *v, or -1 (NaN: nothing numeric). */
static int parse_float(const char *s, size_t n, double *v)
{
    size_t from, to, i, start, digits = 0;
    char buf[64];
    int neg = 0;

    dps_js_trim(s, n, &from, &to);
    i = start = from;
    if (i < to && (s[i] == '+' || s[i] == '-'))
        neg = s[i++] == '-';
    if (to - i >= 8 && memcmp(s + i, "Infinity", 8) == 0) {
        *v = neg ? -INFINITY : INFINITY;
        return 0;
    }
    for (; i < to && s[i] >= '0' && s[i] <= '9'; i++)
        digits++;
    if (i < to && s[i] == '.')
        for (i++; i < to && s[i] >= '0' && s[i] <= '9'; i++)
            digits++;
    if (digits == 0)
        return -1;
    if (i < to && (s[i] == 'e' || s[i] == 'E')) {
        size_t j = i + 1;

        if (j < to && (s[j] == '+' || s[j] == '-'))
            j++;
        if (j < to && s[j] >= '0' && s[j] <= '9') {
            while (j < to && s[j] >= '0' && s[j] <= '9')
                j++;
            i = j;
        }
    }
    if (i - start < sizeof(buf)) {
        memcpy(buf, s + start, i - start);
        buf[i - start] = '\0';
        *v = strtod(buf, NULL);
    } else { /* a very long literal: strtod on a copy (only decimal characters, so no surprise syntax) */
        char *copy = strndup(s + start, i - start);

        if (copy == NULL)
            return -1;
        *v = strtod(copy, NULL);
        free(copy);
    }
    return 0;
}

/* ---- lines ----------------------------------------------------------------------------------------------- */

static int grow_scratch(fold_t *f, size_t need)
{
    char *k, *v, *n;

    if (need <= f->scratch_cap)
        return 0;
    need = need < 2 * f->scratch_cap ? 2 * f->scratch_cap : need;
    if ((k = realloc(f->keybuf, need)) == NULL)
        return -1;
    f->keybuf = k;
    if ((v = realloc(f->valbuf, 2 * need)) == NULL)
        return -1;
    f->valbuf = v;
    if ((n = realloc(f->namebuf, need)) == NULL)
        return -1;
    f->namebuf = n;
    f->scratch_cap = need;
    return 0;
}

/* End of a label pair: its value terminated in valbuf; a mapped key records where the value starts
 * (later pairs overwrite earlier ones). */
static void push_pair(fold_t *f, size_t klen, size_t vstart, size_t *vlen, long *mapped)
{
    size_t from, to;
    int target;

    f->valbuf[(*vlen)++] = '\0';
    dps_js_trim(f->keybuf, klen, &from, &to);
    if (from == to)
        return;
    f->keybuf[to] = '\0';
    if ((target = lookup(&f->map->labels, f->keybuf + from)) >= 0)
        mapped[target] = (long)vstart;
}

/* §2.3 rule 7 on the text between the braces: key="value" pairs separated by commas; quotes toggle value
 * mode; in values \n is a newline and a backslash makes any other character literal (\\, \"); '=' outside
 * quotes is ignored; keys trimmed. mapped[t] = offset in valbuf of the value of target t, or -1. */
static void parse_labels(fold_t *f, const char *s, size_t n, long *mapped)
{
    size_t klen = 0, vlen = 0, vstart = 0;
    int inq = 0, esc = 0;

    for (int t = 0; t < L_N; t++)
        mapped[t] = -1;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];

        if (inq) {
            if (esc)
                f->valbuf[vlen++] = c == 'n' ? '\n' : c, esc = 0;
            else if (c == '\\')
                esc = 1;
            else if (c == '"')
                inq = 0;
            else
                f->valbuf[vlen++] = c;
        } else if (c == '"') {
            inq = 1;
        } else if (c == ',') {
            push_pair(f, klen, vstart, &vlen, mapped);
            klen = 0, vstart = vlen;
        } else if (c != '=') {
            f->keybuf[klen++] = c;
        }
    }
    push_pair(f, klen, vstart, &vlen, mapped);
}

/* The closing brace of a label set starting after s[0] == '{', skipping quoted values (with escapes). */
static const char *closing_brace(const char *s, const char *end)
{
    int inq = 0;

    for (const char *p = s + 1; p < end; p++) {
        if (inq && *p == '\\')
            p++;
        else if (*p == '"')
            inq = !inq;
        else if (!inq && *p == '}')
            return p;
    }
    return NULL;
}

static record_t *record_for(fold_t *f, const char *name)
{
    struct pp_map_entry *e = pp_map_get(&f->by_name, name);
    record_t *rec;

    if (e != NULL)
        return &f->recs[e->value];
    if (f->n_recs == f->cap_recs) {
        size_t cap = f->cap_recs ? 2 * f->cap_recs : 16;
        record_t *r = realloc(f->recs, cap * sizeof(*r));

        if (r == NULL)
            return NULL;
        f->recs = r, f->cap_recs = cap;
    }
    rec = &f->recs[f->n_recs];
    memset(rec, 0, sizeof(*rec));
    if ((rec->name = strdup(name)) == NULL || pp_map_put(&f->by_name, rec->name, f->n_recs) != 0) {
        free(rec->name);
        return NULL;
    }
    f->n_recs++;
    return rec;
}

/* One trimmed, non-empty, non-comment line (rules 2-8). 0, or -1 when out of memory. */
static int line(fold_t *f, const char *s, size_t n)
{
    const char *end = s + n, *brace = memchr(s, '{', n), *name_end, *rest, *close = NULL;
    size_t from, to;
    long mapped[L_N];
    record_t *rec;
    double value;
    int target;

    if (brace != NULL) {
        name_end = brace;
        if ((close = closing_brace(brace, end)) == NULL)
            goto malformed;
        rest = close + 1;
    } else {
        for (name_end = s; name_end < end && *name_end != ' ' && *name_end != '\t'; name_end++)
            ;
        if (name_end == end)
            goto malformed;
        rest = name_end + 1;
    }
    if (parse_float(rest, (size_t)(end - rest), &value) != 0 || isnan(value))
        goto malformed;
    if (grow_scratch(f, n + 2) != 0)
        return -1;
    dps_js_trim(s, (size_t)(name_end - s), &from, &to);
    memcpy(f->namebuf, s + from, to - from);
    f->namebuf[to - from] = '\0';
    if ((target = lookup(&f->map->metrics, f->namebuf)) < 0)
        return 0; /* rule 5: not a mapped metric */
    if (brace != NULL)
        parse_labels(f, brace + 1, (size_t)(close - brace - 1), mapped);
    else
        for (int t = 0; t < L_N; t++)
            mapped[t] = -1;
    if (mapped[L_NAME] < 0 || f->valbuf[mapped[L_NAME]] == '\0')
        return pp_warn(f->r, "Metric \"%s\" missing required \"%s\" label, skipping", f->namebuf, name_key(f->map));
    if ((rec = record_for(f, f->valbuf + mapped[L_NAME])) == NULL)
        return -1;
    for (int t = L_NAME + 1; t < L_N; t++) /* rule 8: the first line's labels, later lines fill gaps only */
        if (mapped[t] >= 0 && rec->label[t] == NULL && (rec->label[t] = strdup(f->valbuf + mapped[t])) == NULL)
            return -1;
    rec->field[target] = value, rec->has[target] = 1;
    return 0;
malformed:
    return pp_warn(f->r, "Skipping malformed metric line: %.*s", (int)n, s);
}

/* ---- statuses (otlp-ingestion.md §5.4) ---------------------------------------------------------------- */

static int to_status(const fold_t *f, record_t *rec, dps_dep_status_t *st)
{
    double state = rec->has[M_STATE] ? rec->field[M_STATE] : 0, latency = rec->has[M_LATENCY] ? rec->field[M_LATENCY] : 0;
    int oom = 0;

    memset(st, 0, sizeof(*st));
    st->name = rec->name, rec->name = NULL;
    st->type = pp_dup(pp_blank(rec->label[L_TYPE]) ? "other" : rec->label[L_TYPE], &oom);
    st->description = rec->label[L_DESCRIPTION], rec->label[L_DESCRIPTION] = NULL;
    st->impact = rec->label[L_IMPACT], rec->label[L_IMPACT] = NULL;
    st->error_message = rec->label[L_ERROR_MESSAGE], rec->label[L_ERROR_MESSAGE] = NULL;
    st->health_state = pp_clamp_int(state);
    st->healthy = rec->has[M_HEALTHY] ? rec->field[M_HEALTHY] == f->map->healthy_value : state != 2;
    /* an "Infinity" latency cannot be stored or rendered as JSON: 0, as for a non-number */
    st->latency_ms = f->map->latency_seconds ? dps_percentile_round(latency * 1000) : isfinite(latency) ? latency : 0;
    st->health_code = rec->has[M_CODE] ? pp_clamp_int(rec->field[M_CODE]) : 200;
    st->skipped = rec->has[M_SKIPPED] && rec->field[M_SKIPPED] == 1;
    if (oom) {
        pp_status_free_strings(st);
        return -1;
    }
    return 0;
}

static void fold_free(fold_t *f)
{
    for (size_t i = 0; i < f->n_recs; i++) {
        free(f->recs[i].name);
        for (int t = 0; t < L_N; t++)
            free(f->recs[i].label[t]);
    }
    free(f->recs);
    pp_map_free(&f->by_name);
    free(f->keybuf);
    free(f->valbuf);
    free(f->namebuf);
}

int dps_poll_parse_prometheus(const char *body, size_t len, const char *schema_config, dps_poll_result_t *out)
{
    mapping_t map;
    fold_t f;
    char *text = NULL;
    size_t tlen = 0;
    int rc = -1;

    memset(&f, 0, sizeof(f));
    if (pp_result_init(out) != 0)
        return -1;
    if (mapping_load(schema_config, &map) != 0 || (text = as_text(body, len, &tlen)) == NULL)
        goto oom;
    f.r = out, f.map = &map;
    for (const char *p = text, *end = text + tlen; p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p)), *le = nl != NULL ? nl : end;
        size_t from, to;

        dps_js_trim(p, (size_t)(le - p), &from, &to);
        if (to > from && p[from] == '#') {
            if (to - from == 5 && memcmp(p + from, "# EOF", 5) == 0)
                break; /* OpenMetrics: nothing follows */
        } else if (to > from && line(&f, p + from, to - from) != 0) {
            goto oom;
        }
        p = nl != NULL ? nl + 1 : end;
    }
    for (size_t i = 0; i < f.n_recs; i++) {
        dps_dep_status_t st;

        if (to_status(&f, &f.recs[i], &st) != 0 || pp_add_status(out, &st) != 0)
            goto oom;
    }
    rc = 0;
    goto out;
oom:
    pp_fail(out, "Out of memory");
out:
    fold_free(&f);
    map_free(&map.metrics);
    map_free(&map.labels);
    free(text);
    return rc;
}
