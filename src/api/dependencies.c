/* /api/dependencies/:id: what users add to a reported dependency — enrichment and overrides (graph-and-api.md §5.1). */
#include "depsera/api_curation.h"
#include "depsera/api_guards.h"
#include "depsera/api_services.h"
#include "depsera/audit.h"
#include "depsera/http.h"
#include "depsera/session.h"
#include "depsera/util.h"

#include <stdlib.h>
#include <string.h>

static const char not_found[] = "Dependency not found";

/* The enrichment members of §5.1 and the columns they write. */
static const struct {
    const char *member, *column, *error;
} enrich_fields[] = {
    {"displayName", "user_display_name", "displayName must be a string or null"},
    {"description", "user_description", "description must be a string or null"},
    {"impact", "user_impact", "impact must be a string or null"},
};

/* ---- shared ------------------------------------------------------------------------------------ */

PGresult *dps_api_dependency_guard(dps_req_t *r, const char *param, int lead)
{
    const char *id;
    PGresult *res;

    if ((id = dps_api_uuid_param(r, param, not_found)) == NULL ||
        (res = dps_req_sql(r, NULL,
                           "SELECT d.id, d.service_id, s.team_id FROM dependencies d JOIN services s ON s.id = d.service_id "
                           "WHERE d.id = $1",
                           1, &id)) == NULL)
        return NULL;
    if (PQntuples(res) == 0) {
        dps_http_error(r, 404, not_found);
        return NULL;
    }
    return dps_api_require_team_role(r, PQgetvalue(res, 0, 2), lead) == 0 ? res : NULL;
}

json_t *dps_api_json_input(json_t *v)
{
    json_t *parsed;

    if (v == NULL)
        return NULL;
    if (json_is_string(v) && (parsed = json_loadb(json_string_value(v), json_string_length(v), JSON_DECODE_ANY, NULL)) != NULL)
        return parsed;
    return json_incref(v);
}

const char *dps_api_json_text(dps_req_t *r, json_t *v)
{
    char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    const char *copy;

    if (text == NULL)
        return NULL;
    copy = h2o_strdup(&r->h2o->pool, text, strlen(text)).base;
    free(text);
    return copy;
}

static int bad_override(dps_override_input_t *in, dps_req_t *r, const char *msg)
{
    json_decref(in->audit);
    in->audit = NULL;
    dps_http_error(r, 400, msg);
    return -1;
}

int dps_api_override_input(dps_req_t *r, dps_override_input_t *in)
{
    json_t *contact = json_object_get(r->body, "contact_override"), *impact = json_object_get(r->body, "impact_override"), *value;

    memset(in, 0, sizeof(*in));
    in->audit = json_object();
    if (contact == NULL && impact == NULL)
        return bad_override(in, r, "At least one of contact_override or impact_override must be provided");
    if (contact != NULL) {
        value = dps_api_json_input(contact);
        if (!json_is_null(value) && !json_is_object(value)) {
            json_decref(value);
            return bad_override(in, r, "contact_override must be an object or null");
        }
        in->has_contact = 1;
        in->contact = json_is_null(value) ? NULL : dps_api_json_text(r, value);
        json_object_set_new(in->audit, "contact_override", value);
    }
    if (impact != NULL) {
        if (!json_is_null(impact) && !json_is_string(impact))
            return bad_override(in, r, "impact_override must be a string or null");
        in->has_impact = 1;
        in->impact = json_string_value(impact);
        json_object_set(in->audit, "impact_override", impact);
    }
    return 0;
}

/* ---- PATCH /enrich -------------------------------------------------------------------------------- */

void dps_api_dependency_enrich(dps_req_t *r)
{
    const char *params[1 + 2 * DPS_ARRAY_SIZE(enrich_fields)];
    int present = 0;
    PGresult *res;

    if (dps_require_user(r) != 0 || (res = dps_api_dependency_guard(r, "id", 0)) == NULL)
        return;
    params[0] = PQgetvalue(res, 0, 0);
    for (size_t i = 0; i < DPS_ARRAY_SIZE(enrich_fields); i++) {
        json_t *v = json_object_get(r->body, enrich_fields[i].member);

        if (v != NULL && !json_is_null(v) && !json_is_string(v)) {
            dps_api_error_field(r, 400, enrich_fields[i].error, enrich_fields[i].member);
            return;
        }
        present += v != NULL;
        params[1 + 2 * i] = v != NULL ? "t" : "f";
        params[2 + 2 * i] = json_string_value(v);
    }
    if (present == 0) {
        dps_http_error(r, 400, "At least one enrichment field is required (displayName, description, impact)");
        return;
    }
    if ((res = dps_req_sql(r, NULL,
                           "WITH d AS (UPDATE dependencies SET "
                           "user_display_name = CASE WHEN $2::boolean THEN $3 ELSE user_display_name END, "
                           "user_description = CASE WHEN $4::boolean THEN $5 ELSE user_description END, "
                           "user_impact = CASE WHEN $6::boolean THEN $7 ELSE user_impact END, updated_at = now() "
                           "WHERE id = $1 RETURNING *) SELECT " DPS_DEPENDENCY_COLUMNS " FROM d",
                           7, params)) == NULL)
        return;
    if (PQntuples(res) == 0) /* deleted meanwhile */
        dps_http_error(r, 404, not_found);
    else
        dps_http_json(r, 200, dps_row_json(res, 0));
}

/* ---- instance overrides ----------------------------------------------------------------------------- */

void dps_api_dependency_overrides_put(dps_req_t *r)
{
    dps_override_input_t in;
    const char *params[5];
    PGresult *res;

    if (dps_require_user(r) != 0 || dps_api_override_input(r, &in) != 0)
        return;
    if ((res = dps_api_dependency_guard(r, "id", 1)) == NULL || dps_req_begin(r) != 0) {
        json_decref(in.audit);
        return;
    }
    params[0] = PQgetvalue(res, 0, 0);
    params[1] = in.has_contact ? "t" : "f", params[2] = in.contact;
    params[3] = in.has_impact ? "t" : "f", params[4] = in.impact;
    if ((res = dps_req_sql(r, NULL,
                           "WITH d AS (UPDATE dependencies SET "
                           "contact_override = CASE WHEN $2::boolean THEN $3::jsonb ELSE contact_override END, "
                           "impact_override = CASE WHEN $4::boolean THEN $5 ELSE impact_override END, updated_at = now() "
                           "WHERE id = $1 RETURNING *) SELECT " DPS_DEPENDENCY_COLUMNS " FROM d",
                           5, params)) == NULL) {
        json_decref(in.audit);
        return;
    }
    if (PQntuples(res) == 0) {
        json_decref(in.audit);
        dps_http_error(r, 404, not_found);
        return;
    }
    dps_audit(r, "dependency_override.updated", "dependency", params[0], in.audit);
    if (dps_api_notify_cache(r, "dependency", params[0]) != 0)
        return;
    dps_api_commit_json(r, 200, dps_row_json(res, 0));
}

void dps_api_dependency_overrides_delete(dps_req_t *r)
{
    const char *id;
    PGresult *res;

    if (dps_require_user(r) != 0 || (res = dps_api_dependency_guard(r, "id", 1)) == NULL || dps_req_begin(r) != 0)
        return;
    id = PQgetvalue(res, 0, 0);
    if ((res = dps_req_sql(r, NULL,
                           "UPDATE dependencies SET contact_override = NULL, impact_override = NULL, updated_at = now() "
                           "WHERE id = $1 RETURNING id",
                           1, &id)) == NULL)
        return;
    if (PQntuples(res) == 0) {
        dps_http_error(r, 404, not_found);
        return;
    }
    dps_audit(r, "dependency_override.cleared", "dependency", id, NULL);
    if (dps_api_notify_cache(r, "dependency", id) == 0)
        dps_api_commit_json(r, 204, NULL);
}
