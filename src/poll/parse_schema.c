/* The schema health format (polling.md §2.2): any JSON document read through a SchemaMapping. */
#include "parse_internal.h"

#include "depsera/unicase.h"
#include "depsera/util.h"

#include <stdlib.h>
#include <string.h>

/* One field mapping: a dot path, or {field, equals} (a boolean comparison). */
typedef struct {
    const char *path;   /* NULL: not mapped */
    const char *equals; /* NULL: plain path */
} mapping_t;

enum {
    F_NAME,
    F_HEALTHY,
    F_LATENCY,
    F_IMPACT,
    F_DESCRIPTION,
    F_TYPE,
    F_SKIPPED,
    F_CHECK_DETAILS,
    F_CONTACT,
    F_ERROR,
    F_ERROR_MESSAGE,
    F_N
};
static const char *const field_names[F_N] = {"name",    "healthy",      "latency", "impact", "description", "type",
                                             "skipped", "checkDetails", "contact", "error",  "errorMessage"};

/* The value at a dot path: split on '.', walk object members (and array elements by canonical index, as
 * JavaScript's property access does); anything else on the way ⇒ absent (NULL). Borrowed. */
static json_t *resolve(json_t *v, const char *path)
{
    const char *seg = path;

    for (;;) {
        const char *dot = strchr(seg, '.');
        size_t n = dot != NULL ? (size_t)(dot - seg) : strlen(seg);

        if (json_is_object(v)) {
            v = json_object_getn(v, seg, n);
        } else if (json_is_array(v)) {
            size_t idx = 0, i;

            /* "0", "12": no sign, no leading zero, no other spelling */
            if (n == 0 || n > 18 || (n > 1 && seg[0] == '0'))
                return NULL;
            for (i = 0; i < n && seg[i] >= '0' && seg[i] <= '9'; i++)
                idx = idx * 10 + (size_t)(seg[i] - '0');
            if (i < n)
                return NULL;
            v = json_array_get(v, idx);
        } else {
            return NULL;
        }
        if (v == NULL || dot == NULL)
            return v;
        seg = dot + 1;
    }
}

static int is_one_of(const char *lower, const char *const *set)
{
    for (; *set != NULL; set++)
        if (strcmp(lower, *set) == 0)
            return 1;
    return 0;
}

/* The healthy rules of step 6 for one mapping: 1 true, 0 false, -1 unresolved. */
static int boolean_of(json_t *item, const mapping_t *m)
{
    static const char *const yes[] = {"true", "ok", "healthy", "up", NULL};
    static const char *const no[] = {"false", "error", "unhealthy", "down", "critical", NULL};
    json_t *v;
    char *lower, *text;
    int r = -1;

    if (m->path == NULL || (v = resolve(item, m->path)) == NULL)
        return -1;
    if (m->equals != NULL) {
        if (json_is_null(v))
            return -1;
        /* lower(String(value)) == lower(equals). Lower-casing shrinks a character at most 3 bytes to 1
         * (U+212A KELVIN SIGN → k), so a text longer than 3 × |equals| cannot match: stop building it there */
        text = pp_js_string(v, 3 * strlen(m->equals) + 8);
        r = text != NULL && dps_unicase_eq(text, m->equals);
        free(text);
        return r;
    }
    if (json_is_boolean(v))
        return json_is_true(v);
    if (!json_is_string(v) || (lower = dps_unicase_lower_dup(json_string_value(v))) == NULL)
        return -1;
    r = is_one_of(lower, yes) ? 1 : is_one_of(lower, no) ? 0 : -1;
    free(lower);
    return r;
}

/* A plain-path mapping's value (comparison mappings resolve to booleans, which no caller here wants). */
static json_t *plain(json_t *item, const mapping_t *m)
{
    return m->path != NULL && m->equals == NULL ? resolve(item, m->path) : NULL;
}

static const char *plain_string(json_t *item, const mapping_t *m)
{
    json_t *v = plain(item, m);

    return json_is_string(v) ? json_string_value(v) : NULL;
}

static char *trimmed(const char *s)
{
    size_t from, to;

    dps_js_trim(s, strlen(s), &from, &to);
    return strndup(s + from, to - from);
}

/* One item (steps 3-8). `key` is the member name of an object root, else NULL with index i. 0, or -1
 * when out of memory. */
static int item(dps_poll_result_t *r, const mapping_t *map, json_t *it, const char *key, size_t i)
{
    json_t *nv = NULL, *v;
    dps_dep_status_t st;
    const char *name, *type;
    int healthy, oom = 0;

    if (!json_is_object(it))
        return key != NULL ? pp_warn(r, "Dependency \"%s\": non-object value", key)
                           : pp_warn(r, "Item at index %zu: non-object item in response array", i);
    if (key != NULL && map[F_NAME].equals == NULL && strcmp(map[F_NAME].path, "$key") == 0)
        name = key;
    else
        name = json_string_value(nv = plain(it, &map[F_NAME]));
    if (nv != NULL && !json_is_string(nv))
        name = NULL;
    if (pp_blank(name))
        return key != NULL ? pp_warn(r, "Item \"%s\": \"name\" field is missing or not a string", key)
                           : pp_warn(r, "Item index %zu: \"name\" field is missing or not a string", i);
    memset(&st, 0, sizeof(st));
    st.skipped = boolean_of(it, &map[F_SKIPPED]) == 1;
    healthy = st.skipped ? 1 : boolean_of(it, &map[F_HEALTHY]);
    if ((st.name = trimmed(name)) == NULL)
        return -1;
    if (healthy < 0) {
        int rc = pp_warn(r, "Dependency \"%s\": \"healthy\" field could not be resolved", st.name);

        free((char *)st.name);
        return rc;
    }
    st.healthy = healthy;
    st.latency_ms = json_is_number(v = plain(it, &map[F_LATENCY])) ? json_number_value(v) : 0;
    st.impact = pp_dup(plain_string(it, &map[F_IMPACT]), &oom);
    st.description = pp_dup(plain_string(it, &map[F_DESCRIPTION]), &oom);
    type = plain_string(it, &map[F_TYPE]);
    st.type = pp_dup(pp_blank(type) ? "other" : type, &oom);
    if (json_is_object(v = plain(it, &map[F_CHECK_DETAILS])) && (st.check_details = pp_json_text(v)) == NULL)
        oom = 1;
    if (json_is_object(v = plain(it, &map[F_CONTACT])) && (st.contact = pp_json_text(v)) == NULL)
        oom = 1;
    if ((v = plain(it, &map[F_ERROR])) != NULL && (st.error = pp_json_text(v)) == NULL)
        oom = 1;
    st.error_message = pp_dup(plain_string(it, &map[F_ERROR_MESSAGE]), &oom);
    st.health_state = healthy ? 0 : 2;
    st.health_code = healthy ? 200 : 500;
    if (oom) {
        pp_status_free_strings(&st);
        return -1;
    }
    return pp_add_status(r, &st);
}

/* The mappings of the config's `fields` (borrowed from cfg). -1 if root or fields is unusable. */
static int load_mapping(json_t *cfg, mapping_t *map, const char **root)
{
    json_t *fields = json_object_get(cfg, "fields");

    memset(map, 0, sizeof(*map) * F_N);
    *root = json_string_value(json_object_get(cfg, "root"));
    if (*root == NULL || !json_is_object(fields))
        return -1;
    for (int f = 0; f < F_N; f++) {
        json_t *m = json_object_get(fields, field_names[f]);

        if (json_is_string(m) && json_string_length(m) > 0) {
            map[f].path = json_string_value(m);
        } else if (json_is_object(m) && json_is_string(json_object_get(m, "field")) &&
                   json_is_string(json_object_get(m, "equals"))) {
            map[f].path = json_string_value(json_object_get(m, "field"));
            map[f].equals = json_string_value(json_object_get(m, "equals"));
        }
    }
    return map[F_NAME].path != NULL ? 0 : -1;
}

int dps_poll_parse_schema(const char *body, size_t len, const char *schema_config, dps_poll_result_t *out)
{
    json_t *cfg = NULL, *doc = NULL, *items, *it;
    mapping_t map[F_N];
    const char *root, *key;
    size_t i;
    int rc = -1;

    if (pp_result_init(out) != 0)
        return -1;
    if (schema_config == NULL || (cfg = json_loads(schema_config, JSON_DECODE_ANY, NULL)) == NULL ||
        load_mapping(cfg, map, &root) != 0) {
        pp_fail(out, "Schema mapping error: invalid schema_config");
        goto out;
    }
    if ((doc = pp_load_json(body, len, out)) == NULL)
        goto out;
    if (!json_is_object(doc) && !json_is_array(doc)) {
        pp_fail(out, "Invalid response: expected object");
        goto out;
    }
    items = resolve(doc, root);
    if (json_is_array(items)) {
        json_array_foreach(items, i, it)
        {
            if (item(out, map, it, NULL, i) != 0)
                goto oom;
        }
    } else if (json_is_object(items)) {
        json_object_foreach(items, key, it)
        {
            if (item(out, map, it, key, 0) != 0)
                goto oom;
        }
    } else {
        pp_fail(out, "Schema mapping error: root path \"%s\" did not resolve to an array or object", root);
        goto out;
    }
    rc = 0;
    goto out;
oom:
    pp_fail(out, "Out of memory");
out:
    json_decref(doc);
    json_decref(cfg);
    return rc;
}
