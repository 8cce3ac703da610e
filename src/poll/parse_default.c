/* The default health format (polling.md §2.1, proactive-deps): a JSON array of dependency objects. */
#include "parse_internal.h"

#include <stdlib.h>
#include <string.h>

static const char *string_member(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);

    return json_is_string(v) ? json_string_value(v) : NULL;
}

static double number_member(json_t *o, const char *key, double dflt)
{
    json_t *v = json_object_get(o, key);

    return json_is_number(v) ? json_number_value(v) : dflt;
}

/* checkDetails, contact: a truthy object, arrays included; their JSON text. */
static char *object_text(json_t *o, const char *key, int *oom)
{
    json_t *v = json_object_get(o, key);
    char *s;

    if (!json_is_object(v) && !json_is_array(v))
        return NULL;
    if ((s = pp_json_text(v)) == NULL)
        *oom = 1;
    return s;
}

/* One element (an object with a string name, already checked). -1 when out of memory. */
static int element(dps_poll_result_t *r, json_t *el, json_t *healthy)
{
    json_t *health = json_object_get(el, "health"), *err = json_object_get(el, "error");
    const char *type = string_member(el, "type"), *last = string_member(el, "lastChecked");
    dps_dep_status_t st;
    int oom = 0;

    memset(&st, 0, sizeof(st));
    st.skipped = json_is_object(health) && json_is_true(json_object_get(health, "skipped"));
    st.healthy = json_is_boolean(healthy) ? json_is_true(healthy) : 1; /* not boolean ⇒ skipped */
    if (json_is_object(health)) {
        /* nested form: state is not derived from healthy (open-questions D23, compat) */
        st.health_state = pp_clamp_int(number_member(health, "state", 0));
        st.health_code = pp_clamp_int(number_member(health, "code", 200));
        st.latency_ms = number_member(health, "latency", 0);
    } else {
        st.health_code = pp_clamp_int(number_member(el, "healthCode", 200));
        st.latency_ms = number_member(el, "latencyMs", 0);
        st.health_state = st.healthy ? 0 : 2;
    }
    st.name = pp_dup(json_string_value(json_object_get(el, "name")), &oom);
    st.type = pp_dup(pp_blank(type) ? "other" : type, &oom);
    st.description = pp_dup(string_member(el, "description"), &oom);
    st.impact = pp_dup(string_member(el, "impact"), &oom);
    st.error_message = pp_dup(string_member(el, "errorMessage"), &oom);
    /* open-questions B: an unparsable lastChecked falls back to now */
    st.has_last_checked = last != NULL && dps_poll_parse_iso8601(last, &st.last_checked_ms) == 0;
    st.check_details = object_text(el, "checkDetails", &oom);
    st.contact = object_text(el, "contact", &oom);
    if (err != NULL && (st.error = pp_json_text(err)) == NULL)
        oom = 1;
    if (oom) {
        pp_status_free_strings(&st);
        return -1;
    }
    return pp_add_status(r, &st);
}

int dps_poll_parse_default(const char *body, size_t len, dps_poll_result_t *out)
{
    json_t *doc, *el;
    size_t i;
    int rc = -1;

    if (pp_result_init(out) != 0)
        return -1;
    if ((doc = pp_load_json(body, len, out)) == NULL)
        return -1;
    if (!json_is_array(doc)) {
        pp_fail(out, "Invalid response: expected array");
        goto out;
    }
    json_array_foreach(doc, i, el)
    {
        json_t *health, *healthy;
        int skipped;

        if (!json_is_object(el)) {
            pp_fail(out, "Invalid dependency at index %zu: expected object", i);
            goto out;
        }
        if (!json_is_string(json_object_get(el, "name"))) {
            pp_fail(out, "Invalid dependency at index %zu: missing name", i);
            goto out;
        }
        health = json_object_get(el, "health");
        healthy = json_object_get(el, "healthy");
        skipped = json_is_object(health) && json_is_true(json_object_get(health, "skipped"));
        if (!json_is_boolean(healthy) && !skipped) {
            pp_fail(out, "Invalid dependency at index %zu: missing healthy", i);
            goto out;
        }
        if (element(out, el, healthy) != 0) {
            pp_fail(out, "Out of memory");
            goto out;
        }
    }
    rc = 0;
out:
    json_decref(doc);
    return rc;
}
