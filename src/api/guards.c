/* Team guards and shared answers of the /api handlers (graph-and-api.md §2). */
#include "depsera/api_guards.h"
#include "depsera/http.h"
#include "depsera/util.h"

#include <stdio.h>
#include <string.h>

void dps_api_error_field(dps_req_t *r, int status, const char *msg, const char *field)
{
    json_t *body = json_pack("{s:s}", "error", msg);

    if (field != NULL)
        json_object_set_new(body, "field", json_string(field));
    dps_http_json(r, status, body);
}

const char *dps_api_uuid_param(dps_req_t *r, const char *name, const char *not_found)
{
    const char *id = dps_req_param(r, name);

    if (id != NULL && dps_is_uuid(id))
        return id;
    dps_http_error(r, 404, not_found);
    return NULL;
}

const char *dps_api_team_role(dps_req_t *r, const char *team)
{
    const char *params[2] = {team, r->user->id};
    PGresult *res;

    if (team == NULL || !dps_is_uuid(team))
        return "";
    if ((res = dps_req_sql(r, NULL, "SELECT role FROM team_members WHERE team_id = $1 AND user_id = $2", 2, params)) == NULL)
        return NULL;
    return PQntuples(res) > 0 ? PQgetvalue(res, 0, 0) : "";
}

int dps_api_require_team_role(dps_req_t *r, const char *team, int lead)
{
    const char *role;

    if (r->user->is_admin)
        return 0;
    if ((role = dps_api_team_role(r, team)) == NULL)
        return -1;
    if (lead ? strcmp(role, "lead") == 0 : role[0] != '\0')
        return 0;
    dps_http_error(r, 403, lead ? "Team lead access required" : "Team access required");
    return -1;
}

int dps_api_require_reporting_lead(dps_req_t *r, dps_reports_t how, const char *value, const char *msg)
{
    static const char *const match[] = {
        [DPS_REPORTS_NAME] = "d.name = $1",
        [DPS_REPORTS_CANONICAL] = "d.canonical_name = $1",
        [DPS_REPORTS_NODE] = "lower(btrim(COALESCE(d.canonical_name, d.name))) = lower(btrim($1))",
    };
    const char *params[2] = {value, r->user->id};
    char sql[512];
    PGresult *res;

    if (r->user->is_admin)
        return 0;
    snprintf(sql, sizeof(sql),
             "SELECT 1 FROM dependencies d JOIN services s ON s.id = d.service_id JOIN team_members m ON m.team_id = s.team_id "
             "AND m.user_id = $2 AND m.role = 'lead' WHERE %s LIMIT 1",
             match[how]);
    if ((res = dps_req_sql(r, NULL, sql, 2, params)) == NULL)
        return -1;
    if (PQntuples(res) > 0)
        return 0;
    dps_http_error(r, 403, msg);
    return -1;
}

int dps_api_notify_cache(dps_req_t *r, const char *what, const char *id)
{
    size_t n = strlen(what) + strlen(id) + 2;
    char *payload = h2o_mem_alloc_pool(&r->h2o->pool, n);
    const char *params[1] = {payload};

    snprintf(payload, n, "%s:%s", what, id);
    return dps_req_sql(r, NULL, "SELECT pg_notify('depsera_cache', $1)", 1, params) == NULL ? -1 : 0;
}

void dps_api_commit_json(dps_req_t *r, int status, json_t *body)
{
    if (dps_req_commit(r) != 0) {
        json_decref(body);
        return;
    }
    dps_http_json(r, status, body);
}
