/* /api/external-nodes: what users know about services outside the registry that dependencies point at
 * (graph-and-api.md §5.6; open-questions.md C: only leads of teams depending on the node, and admins, change it). */
#include "depsera/api_curation.h"
#include "depsera/api_guards.h"
#include "depsera/http.h"
#include "depsera/session.h"
#include "depsera/util.h"

static const char not_found[] = "External node enrichment not found";
static const char forbidden[] = "Team lead access required for a team with a service reporting this dependency";

#define NODE_COLUMNS                                                                                                               \
    "e.id, e.canonical_name, e.display_name, e.description, e.impact, e.contact, e.service_type, e.created_at, e.updated_at, "     \
    "e.updated_by"

/* The text members of the body, in parameter order after $1 (name); contact comes last. */
static const struct {
    const char *member, *error;
} text_members[] = {
    {"displayName", "displayName must be a string or null"},
    {"description", "description must be a string or null"},
    {"impact", "impact must be a string or null"},
    {"serviceType", "serviceType must be a string or null"},
};

/* Insert, or replace the members the body gave (open-questions.md D1: omitted ones are kept). $1 name,
 * then (has, value) pairs for display_name, description, impact, service_type, contact ($10/$11), $12 caller. */
#define SET(col, has) col " = CASE WHEN " has "::boolean THEN EXCLUDED." col " ELSE e." col " END, "
#define UPSERT_SQL                                                                                                                 \
    "WITH e AS (INSERT INTO external_node_enrichment AS e (canonical_name, display_name, description, impact, service_type, "      \
    "contact, updated_by) VALUES ($1, $3, $5, $7, $9, $11::jsonb, $12) ON CONFLICT (canonical_name) DO UPDATE SET " SET(           \
        "display_name", "$2") SET("description", "$4") SET("impact", "$6") SET("service_type", "$8")                               \
        SET("contact", "$10") "updated_at = now(), updated_by = EXCLUDED.updated_by RETURNING *) SELECT " NODE_COLUMNS " FROM e"

void dps_api_external_nodes_list(dps_req_t *r)
{
    PGresult *res;

    if (dps_require_user(r) != 0 ||
        (res =
             dps_req_sql(r, NULL, "SELECT " NODE_COLUMNS " FROM external_node_enrichment e ORDER BY e.canonical_name COLLATE \"C\"",
                         0, NULL)) == NULL)
        return;
    dps_http_json(r, 200, dps_rows_json(res));
}

/* JavaScript truthiness, which decides whether a contact is stored (§5.6). */
static int truthy(json_t *v)
{
    return !(json_is_null(v) || json_is_false(v) || (json_is_string(v) && json_string_length(v) == 0) ||
             (json_is_number(v) && json_number_value(v) == 0));
}

/* The body's members as UPSERT_SQL parameters $2..$11. -1 after answering 400. */
static int node_input(dps_req_t *r, const char *params[12])
{
    json_t *contact = json_object_get(r->body, "contact"), *value;

    for (size_t i = 0; i < DPS_ARRAY_SIZE(text_members); i++) {
        json_t *v = json_object_get(r->body, text_members[i].member);

        if (v != NULL && !json_is_null(v) && !json_is_string(v)) {
            dps_api_error_field(r, 400, text_members[i].error, text_members[i].member);
            return -1;
        }
        params[1 + 2 * i] = v != NULL ? "t" : "f";
        params[2 + 2 * i] = json_string_value(v);
    }
    params[9] = contact != NULL ? "t" : "f";
    params[10] = NULL;
    if (contact != NULL && truthy(contact)) {
        value = dps_api_json_input(contact); /* a string holding JSON is that JSON (open-questions.md B) */
        params[10] = dps_api_json_text(r, value);
        json_decref(value);
    }
    return 0;
}

void dps_api_external_nodes_put(dps_req_t *r)
{
    const char *params[12];
    PGresult *res;

    if (dps_require_user(r) != 0)
        return;
    params[0] = dps_req_param(r, "canonicalName");
    params[11] = r->user->id;
    if (node_input(r, params) != 0 || dps_api_require_reporting_lead(r, DPS_REPORTS_NODE, params[0], forbidden) != 0 ||
        dps_req_begin(r) != 0 || (res = dps_req_sql(r, NULL, UPSERT_SQL, 12, params)) == NULL ||
        dps_api_notify_cache(r, "external_node", PQgetvalue(res, 0, 0)) != 0)
        return;
    dps_api_commit_json(r, 200, dps_row_json(res, 0));
}

void dps_api_external_nodes_delete(dps_req_t *r)
{
    const char *name = dps_req_param(r, "canonicalName");
    PGresult *res;

    if (dps_require_user(r) != 0 || dps_api_require_reporting_lead(r, DPS_REPORTS_NODE, name, forbidden) != 0 ||
        dps_req_begin(r) != 0 ||
        (res = dps_req_sql(r, NULL, "DELETE FROM external_node_enrichment WHERE canonical_name = $1 RETURNING id", 1, &name)) ==
            NULL)
        return;
    if (PQntuples(res) == 0) {
        dps_http_error(r, 404, not_found);
        return;
    }
    if (dps_api_notify_cache(r, "external_node", PQgetvalue(res, 0, 0)) == 0)
        dps_api_commit_json(r, 204, NULL);
}
