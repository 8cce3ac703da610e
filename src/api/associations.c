/* /api/dependencies/:id/associations: the graph edges users draw from a dependency to the registered
 * service it calls (graph-and-api.md §5.3, open-questions.md A). */
#include "depsera/api_curation.h"
#include "depsera/api_guards.h"
#include "depsera/api_services.h"
#include "depsera/http.h"
#include "depsera/session.h"
#include "depsera/util.h"

#include <string.h>

static const char assoc_not_found[] = "Association not found";

#define ASSOC_COLUMNS                                                                                                              \
    "a.id, a.dependency_id, a.linked_service_id, a.association_type, a.manifest_managed, a.created_at, a.is_auto_suggested, "      \
    "a.is_dismissed"

static const char *const association_types[] = {"api_call", "database", "message_queue", "cache", "other"};

/* Each association row of `assocs` with "linked_service": its row in `services` (DPS_SERVICE_COLUMNS). */
static json_t *with_services(PGresult *assocs, PGresult *services)
{
    json_t *out = json_array();
    int c_linked = PQfnumber(assocs, "linked_service_id");

    for (int i = 0; i < PQntuples(assocs); i++) {
        json_t *row = dps_row_json(assocs, i), *svc = json_null();

        for (int k = 0; k < PQntuples(services); k++)
            if (strcmp(PQgetvalue(services, k, 0), PQgetvalue(assocs, i, c_linked)) == 0) {
                svc = dps_row_json(services, k);
                break;
            }
        json_object_set_new(row, "linked_service", svc);
        json_array_append_new(out, row);
    }
    return out;
}

void dps_api_associations_list(dps_req_t *r)
{
    const char *id;
    PGresult *res, *assocs, *services;

    if (dps_require_user(r) != 0 || (id = dps_api_uuid_param(r, "dependencyId", "Dependency not found")) == NULL ||
        (res = dps_req_sql(r, NULL, "SELECT 1 FROM dependencies WHERE id = $1", 1, &id)) == NULL)
        return;
    if (PQntuples(res) == 0) {
        dps_http_error(r, 404, "Dependency not found");
        return;
    }
    if ((assocs = dps_req_sql(r, NULL,
                              "SELECT " ASSOC_COLUMNS " FROM dependency_associations a WHERE a.dependency_id = $1 "
                              "ORDER BY a.created_at, a.id",
                              1, &id)) == NULL ||
        (services = dps_req_sql(r, NULL,
                                "SELECT " DPS_SERVICE_COLUMNS " FROM services s WHERE s.id IN "
                                "(SELECT linked_service_id FROM dependency_associations WHERE dependency_id = $1)",
                                1, &id)) == NULL)
        return;
    dps_http_json(r, 200, with_services(assocs, services));
}

/* Each dependency row of `deps` with "auto_suggested_associations": the rows of `suggestions` whose
 * dependency it is. */
static json_t *with_suggestions(PGresult *deps, PGresult *suggestions)
{
    json_t *out = json_array();
    int c_dep = PQfnumber(suggestions, "dependency_id");

    for (int i = 0; i < PQntuples(deps); i++) {
        json_t *row = dps_row_json(deps, i), *list = json_array();

        for (int k = 0; k < PQntuples(suggestions); k++)
            if (strcmp(PQgetvalue(suggestions, k, c_dep), PQgetvalue(deps, i, 0)) == 0)
                json_array_append_new(list, dps_row_json(suggestions, k));
        json_object_set_new(row, "auto_suggested_associations", list);
        json_array_append_new(out, row);
    }
    return out;
}

/* Trace discoveries of a service (graph-and-api.md §4.2, with Q-DISC fixed: traces store otlp_trace). */
#define DISCOVERED "d.service_id = $1 AND d.discovery_source = 'otlp_trace'"

void dps_api_associations_discovered(dps_req_t *r)
{
    const char *id;
    PGresult *res, *deps, *suggestions;

    if (dps_require_user(r) != 0 || (id = dps_api_uuid_param(r, "serviceId", "Service not found")) == NULL ||
        (res = dps_req_sql(r, NULL, "SELECT team_id FROM services WHERE id = $1", 1, &id)) == NULL)
        return;
    if (PQntuples(res) == 0) {
        dps_http_error(r, 404, "Service not found");
        return;
    }
    if (dps_api_require_team_role(r, PQgetvalue(res, 0, 0), 0) != 0 ||
        (deps = dps_req_sql(r, NULL,
                            "SELECT " DPS_DEPENDENCY_COLUMNS " FROM dependencies d WHERE " DISCOVERED
                            " ORDER BY d.name COLLATE \"C\", d.id",
                            1, &id)) == NULL ||
        (suggestions = dps_req_sql(r, NULL,
                                   "SELECT " ASSOC_COLUMNS " FROM dependency_associations a JOIN dependencies d "
                                   "ON d.id = a.dependency_id WHERE " DISCOVERED " AND a.is_auto_suggested AND NOT "
                                   "a.is_dismissed ORDER BY a.created_at, a.id",
                                   1, &id)) == NULL)
        return;
    dps_http_json(r, 200, with_suggestions(deps, suggestions));
}

/* The body of a POST, in the order of §5.3: the linked service id (as given; NULL when not a string)
 * and the type. -1 after answering 400. */
static int create_input(dps_req_t *r, const char **linked, const char **type)
{
    json_t *l = json_object_get(r->body, "linked_service_id"), *t = json_object_get(r->body, "association_type");

    if (l == NULL || json_is_null(l) || json_is_false(l) || (json_is_string(l) && json_string_length(l) == 0) ||
        (json_is_number(l) && json_number_value(l) == 0)) {
        dps_api_error_field(r, 400, "linked_service_id is required", "linked_service_id");
        return -1;
    }
    *linked = json_string_value(l);
    *type = json_string_value(t);
    for (size_t i = 0; *type != NULL && i < DPS_ARRAY_SIZE(association_types); i++)
        if (strcmp(*type, association_types[i]) == 0)
            return 0;
    dps_api_error_field(r, 400, "association_type must be one of: api_call, database, message_queue, cache, other",
                        "association_type");
    return -1;
}

/* The linked service's row (DPS_SERVICE_COLUMNS), checked against the dependency's own service. NULL
 * after answering 400 (or 503/500). */
static PGresult *linked_service(dps_req_t *r, const char *linked, const char *own)
{
    PGresult *res;

    if (linked == NULL || !dps_is_uuid(linked) ||
        (res = dps_req_sql(r, NULL, "SELECT " DPS_SERVICE_COLUMNS " FROM services s WHERE s.id = $1", 1, &linked)) == NULL ||
        PQntuples(res) == 0) {
        if (!r->responded)
            dps_http_error(r, 400, "Linked service not found");
        return NULL;
    }
    if (strcmp(PQgetvalue(res, 0, 0), own) == 0) {
        dps_http_error(r, 400, "Cannot link dependency to its own service");
        return NULL;
    }
    return res;
}

void dps_api_associations_create(dps_req_t *r)
{
    const char *linked, *type, *params[3];
    PGresult *dep, *svc, *res;
    json_t *out;

    if (dps_require_user(r) != 0 || create_input(r, &linked, &type) != 0 ||
        (dep = dps_api_dependency_guard(r, "dependencyId", 0)) == NULL ||
        (svc = linked_service(r, linked, PQgetvalue(dep, 0, 1))) == NULL)
        return;
    params[0] = PQgetvalue(dep, 0, 0), params[1] = PQgetvalue(svc, 0, 0), params[2] = type;
    /* A dismissed suggestion is a hidden suggestion, not a link: the manual link replaces it (A). */
    if (dps_req_begin(r) != 0 ||
        dps_req_sql(r, NULL,
                    "DELETE FROM dependency_associations WHERE dependency_id = $1 AND linked_service_id = $2 AND is_dismissed", 2,
                    params) == NULL ||
        (res = dps_req_sql(r, NULL,
                           "WITH a AS (INSERT INTO dependency_associations (dependency_id, linked_service_id, association_type) "
                           "VALUES ($1, $2, $3) ON CONFLICT (dependency_id, linked_service_id) DO NOTHING RETURNING *) "
                           "SELECT " ASSOC_COLUMNS " FROM a",
                           3, params)) == NULL)
        return;
    if (PQntuples(res) == 0) {
        dps_http_error(r, 409, "Association already exists");
        return;
    }
    if (dps_api_notify_cache(r, "dependency", params[0]) != 0)
        return;
    out = with_services(res, svc);
    dps_api_commit_json(r, 201, json_incref(json_array_get(out, 0)));
    json_decref(out);
}

void dps_api_associations_delete(dps_req_t *r)
{
    const char *params[2];
    PGresult *dep, *res;

    if (dps_require_user(r) != 0 || (dep = dps_api_dependency_guard(r, "dependencyId", 0)) == NULL ||
        (params[1] = dps_api_uuid_param(r, "serviceId", assoc_not_found)) == NULL)
        return;
    params[0] = PQgetvalue(dep, 0, 0);
    if (dps_req_begin(r) != 0 ||
        (res = dps_req_sql(r, NULL,
                           "DELETE FROM dependency_associations WHERE dependency_id = $1 AND linked_service_id = $2 RETURNING id",
                           2, params)) == NULL)
        return;
    if (PQntuples(res) == 0) {
        dps_http_error(r, 404, assoc_not_found);
        return;
    }
    if (dps_api_notify_cache(r, "dependency", params[0]) == 0)
        dps_api_commit_json(r, 204, NULL);
}

/* confirm / dismiss: `set` is the SET list applied to association :assocId of dependency :depId. */
static void change_state(dps_req_t *r, const char *sql)
{
    const char *params[2];
    PGresult *dep, *res;

    if (dps_require_user(r) != 0 || (dep = dps_api_dependency_guard(r, "depId", 0)) == NULL ||
        (params[0] = dps_api_uuid_param(r, "assocId", assoc_not_found)) == NULL)
        return;
    params[1] = PQgetvalue(dep, 0, 0);
    if (dps_req_begin(r) != 0 || (res = dps_req_sql(r, NULL, sql, 2, params)) == NULL)
        return;
    if (PQntuples(res) == 0) {
        dps_http_error(r, 404, assoc_not_found);
        return;
    }
    if (dps_api_notify_cache(r, "dependency", params[1]) == 0)
        dps_api_commit_json(r, 200, json_pack("{s:b}", "success", 1));
}

/* Confirming makes the suggestion a link: it is no longer a suggestion, dismissed or not. */
void dps_api_associations_confirm(dps_req_t *r)
{
    change_state(r, "UPDATE dependency_associations SET is_auto_suggested = false, is_dismissed = false, dismissed_at = NULL "
                    "WHERE id = $1 AND dependency_id = $2 RETURNING id");
}

/* The pruner deletes dismissed rows by dismissed_at (open-questions.md A); a second dismissal keeps the first time. */
void dps_api_associations_dismiss(dps_req_t *r)
{
    change_state(r, "UPDATE dependency_associations SET is_dismissed = true, dismissed_at = CASE WHEN is_dismissed THEN "
                    "dismissed_at ELSE now() END "
                    "WHERE id = $1 AND dependency_id = $2 RETURNING id");
}
