/* What the health-response parsers share: the result container, warnings, JSON loading, JavaScript's
 * String() and the format dispatch of polling.md §2. */
#include "parse_internal.h"

#include "depsera/util.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- string → index map ------------------------------------------------------------------------- */

static size_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL;

    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return (size_t)(h ^ (h >> 29));
}

struct pp_map_entry *pp_map_get(const pp_map_t *m, const char *key)
{
    if (m->cap == 0)
        return NULL;
    for (size_t i = hash(key) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        if (m->e[i].key == NULL)
            return NULL;
        if (strcmp(m->e[i].key, key) == 0)
            return &m->e[i];
    }
}

static void place(struct pp_map_entry *e, size_t cap, const char *key, size_t value)
{
    size_t i = hash(key) & (cap - 1);

    while (e[i].key != NULL)
        i = (i + 1) & (cap - 1);
    e[i].key = key, e[i].value = value;
}

int pp_map_put(pp_map_t *m, const char *key, size_t value)
{
    if ((m->n + 1) * 2 > m->cap) { /* load ≤ 1/2: probes stay short */
        size_t cap = m->cap ? m->cap * 2 : 16;
        struct pp_map_entry *e = calloc(cap, sizeof(*e));

        if (e == NULL)
            return -1;
        for (size_t i = 0; i < m->cap; i++)
            if (m->e[i].key != NULL)
                place(e, cap, m->e[i].key, m->e[i].value);
        free(m->e);
        m->e = e, m->cap = cap;
    }
    place(m->e, m->cap, key, value);
    m->n++;
    return 0;
}

void pp_map_free(pp_map_t *m)
{
    free(m->e);
    memset(m, 0, sizeof(*m));
}

/* ---- the result ------------------------------------------------------------------------------------ */

int pp_result_init(dps_poll_result_t *r)
{
    memset(r, 0, sizeof(*r));
    r->warning_set = calloc(1, sizeof(pp_map_t));
    r->name_set = calloc(1, sizeof(pp_map_t));
    if (r->warning_set == NULL || r->name_set == NULL) {
        free(r->warning_set);
        free(r->name_set);
        memset(r, 0, sizeof(*r));
        r->error = "Out of memory", r->error_static = 1;
        return -1;
    }
    return 0;
}

void pp_status_free_strings(dps_dep_status_t *st)
{
    free((char *)st->name);
    free((char *)st->type);
    free((char *)st->description);
    free((char *)st->impact);
    free((char *)st->error_message);
    free((char *)st->contact);
    free((char *)st->check_details);
    free((char *)st->error);
}

/* Statuses and warnings go; the error (if any) stays. */
static void drop_content(dps_poll_result_t *r)
{
    for (size_t i = 0; i < r->n_deps; i++)
        pp_status_free_strings(&r->deps[i]);
    for (size_t i = 0; i < r->n_warnings; i++)
        free(r->warnings[i]);
    free(r->deps);
    free(r->warnings);
    r->deps = NULL, r->warnings = NULL;
    r->n_deps = r->n_warnings = r->cap_deps = r->cap_warnings = 0;
    if (r->warning_set != NULL)
        pp_map_free(r->warning_set);
    if (r->name_set != NULL)
        pp_map_free(r->name_set);
}

void dps_poll_result_free(dps_poll_result_t *r)
{
    drop_content(r);
    free(r->warning_set);
    free(r->name_set);
    if (!r->error_static)
        free(r->error);
    memset(r, 0, sizeof(*r));
}

static int oom(dps_poll_result_t *r)
{
    drop_content(r);
    if (!r->error_static)
        free(r->error);
    r->error = "Out of memory", r->error_static = 1;
    return -1;
}

static char *vformat(const char *fmt, va_list ap)
{
    char *s = NULL;

    return vasprintf(&s, fmt, ap) < 0 ? NULL : s;
}

int pp_fail(dps_poll_result_t *r, const char *fmt, ...)
{
    va_list ap;
    char *msg;

    va_start(ap, fmt);
    msg = vformat(fmt, ap);
    va_end(ap);
    if (msg == NULL)
        return oom(r);
    drop_content(r);
    if (!r->error_static)
        free(r->error);
    r->error = msg, r->error_static = 0;
    return -1;
}

int pp_warn(dps_poll_result_t *r, const char *fmt, ...)
{
    va_list ap;
    char *msg;

    va_start(ap, fmt);
    msg = vformat(fmt, ap);
    va_end(ap);
    if (msg == NULL)
        return -1;
    if (pp_map_get(r->warning_set, msg) != NULL) {
        free(msg);
        return 0;
    }
    if (r->n_warnings == r->cap_warnings) {
        size_t cap = r->cap_warnings ? r->cap_warnings * 2 : 8;
        char **w = realloc(r->warnings, cap * sizeof(*w));

        if (w == NULL) {
            free(msg);
            return -1;
        }
        r->warnings = w, r->cap_warnings = cap;
    }
    if (pp_map_put(r->warning_set, msg, r->n_warnings) != 0) {
        free(msg);
        return -1;
    }
    r->warnings[r->n_warnings++] = msg;
    return 0;
}

int pp_add_status(dps_poll_result_t *r, dps_dep_status_t *st)
{
    struct pp_map_entry *e = pp_map_get(r->name_set, st->name);

    if (e != NULL) { /* a repeated name: the later report replaces the earlier one (one row per name) */
        pp_status_free_strings(&r->deps[e->value]);
        r->deps[e->value] = *st;
        e->key = st->name;
        return 0;
    }
    if (r->n_deps == r->cap_deps) {
        size_t cap = r->cap_deps ? r->cap_deps * 2 : 8;
        dps_dep_status_t *d = realloc(r->deps, cap * sizeof(*d));

        if (d == NULL)
            goto fail;
        r->deps = d, r->cap_deps = cap;
    }
    if (pp_map_put(r->name_set, st->name, r->n_deps) != 0)
        goto fail;
    r->deps[r->n_deps++] = *st;
    return 0;
fail:
    pp_status_free_strings(st);
    return -1;
}

/* ---- small conversions ------------------------------------------------------------------------------ */

char *pp_dup(const char *s, int *oom_flag)
{
    char *d;

    if (s == NULL)
        return NULL;
    if ((d = strdup(s)) == NULL)
        *oom_flag = 1;
    return d;
}

int pp_blank(const char *s)
{
    size_t from, to;

    if (s == NULL)
        return 1;
    dps_js_trim(s, strlen(s), &from, &to);
    return from == to;
}

int pp_clamp_int(double v)
{
    if (!(v == v))
        return 0;
    return v < -2147483648.0 ? INT32_MIN : v > 2147483647.0 ? INT32_MAX : (int)v;
}

json_t *pp_load_json(const char *body, size_t len, dps_poll_result_t *r)
{
    json_error_t err;
    json_t *v = json_loadb(body, len, JSON_DECODE_ANY, &err);

    /* JSON.parse reads every number as a double: an integer too big for int64 is still a number */
    if (v == NULL && json_error_code(&err) == json_error_numeric_overflow)
        v = json_loadb(body, len, JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL, &err);
    if (v == NULL) {
        if (json_error_code(&err) == json_error_out_of_memory)
            pp_fail(r, "Out of memory");
        else
            pp_fail(r, "Invalid JSON response: %s at line %d, column %d", err.text, err.line, err.column);
    }
    return v;
}

char *pp_json_text(const json_t *v)
{
    return json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
}

/* String(v) appended to buf (len so far), failing once the text would pass limit. Arrays join their
 * elements with commas, null elements as "" (Array.prototype.join); objects are "[object Object]". */
static int js_string_append(const json_t *v, char *buf, size_t *len, size_t limit, int in_array)
{
    char num[32];
    const char *s;
    size_t n;

    switch (json_typeof(v)) {
    case JSON_STRING:
        s = json_string_value(v), n = json_string_length(v);
        break;
    case JSON_INTEGER:
    case JSON_REAL:
        dps_js_number(json_number_value(v), num);
        s = num, n = strlen(num);
        break;
    case JSON_TRUE:
        s = "true", n = 4;
        break;
    case JSON_FALSE:
        s = "false", n = 5;
        break;
    case JSON_NULL:
        s = in_array ? "" : "null", n = in_array ? 0 : 4;
        break;
    case JSON_OBJECT:
        s = "[object Object]", n = 15;
        break;
    case JSON_ARRAY:
        for (size_t i = 0; i < json_array_size(v); i++) {
            if (i > 0) {
                if (*len + 1 > limit)
                    return -1;
                buf[(*len)++] = ',';
            }
            if (js_string_append(json_array_get(v, i), buf, len, limit, 1) != 0)
                return -1;
        }
        return 0;
    default:
        return -1;
    }
    if (n > limit - *len)
        return -1;
    memcpy(buf + *len, s, n);
    *len += n;
    return 0;
}

char *pp_js_string(const json_t *v, size_t limit)
{
    char *buf = malloc(limit + 1);
    size_t len = 0;

    if (buf == NULL)
        return NULL;
    if (js_string_append(v, buf, &len, limit, 0) != 0) {
        free(buf);
        return NULL;
    }
    buf[len] = '\0';
    return buf;
}

/* ---- lastChecked ------------------------------------------------------------------------------------ */

/* n digits at *p as a number (advancing *p); -1 if they are not all digits. */
static int digits(const char **p, int n)
{
    int v = 0;

    for (int i = 0; i < n; i++, (*p)++) {
        if (**p < '0' || **p > '9')
            return -1;
        v = v * 10 + (**p - '0');
    }
    return v;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    int64_t era, yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

int dps_poll_parse_iso8601(const char *s, int64_t *epoch_ms)
{
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    const char *p = s;
    int y, mo, d, h = 0, mi = 0, sec = 0, ms = 0, off = 0;

    if ((y = digits(&p, 4)) < 0 || *p++ != '-' || (mo = digits(&p, 2)) < 1 || mo > 12 || *p++ != '-' || (d = digits(&p, 2)) < 1)
        return -1;
    if (d > mdays[mo - 1] + (mo == 2 && y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)))
        return -1;
    if (*p == 'T' || *p == 't' || *p == ' ') {
        p++;
        if ((h = digits(&p, 2)) < 0 || h > 23 || *p++ != ':' || (mi = digits(&p, 2)) < 0 || mi > 59)
            return -1;
        if (*p == ':') {
            p++;
            if ((sec = digits(&p, 2)) < 0 || sec > 59)
                return -1;
            if (*p == '.' || *p == ',') {
                int scale = 100;

                if (*++p < '0' || *p > '9')
                    return -1;
                for (; *p >= '0' && *p <= '9'; p++, scale /= 10)
                    ms += (*p - '0') * scale;
            }
        }
        if (*p == 'Z' || *p == 'z') {
            p++;
        } else if (*p == '+' || *p == '-') {
            int sign = *p++ == '-' ? -1 : 1, oh, om = 0;

            if ((oh = digits(&p, 2)) < 0 || oh > 23)
                return -1;
            if (*p == ':')
                p++;
            if (*p != '\0' && ((om = digits(&p, 2)) < 0 || om > 59))
                return -1;
            off = sign * (oh * 60 + om);
        }
    }
    if (*p != '\0')
        return -1;
    *epoch_ms = ((days_from_civil(y, mo, d) * 24 + h) * 60 + mi - off) * 60000 + (int64_t)sec * 1000 + ms;
    return 0;
}

/* ---- §2 dispatch --------------------------------------------------------------------------------------- */

int dps_poll_parse(const char *format, const char *schema_config, const char *body, size_t len, dps_poll_result_t *out)
{
    json_t *cfg = schema_config != NULL ? json_loads(schema_config, JSON_DECODE_ANY, NULL) : NULL;
    int is_object = json_is_object(cfg);

    json_decref(cfg);
    if (format != NULL && strcmp(format, "otlp") == 0) {
        if (pp_result_init(out) != 0)
            return -1;
        return pp_fail(out, "OTLP services are push-only and cannot be polled");
    }
    if (format != NULL && strcmp(format, "prometheus") == 0)
        return dps_poll_parse_prometheus(body, len, schema_config, out);
    if (is_object)
        return dps_poll_parse_schema(body, len, schema_config, out);
    return dps_poll_parse_default(body, len, out);
}
