/* /api/canonical-overrides: contact and impact overrides for every dependency of a canonical name,
 * org-wide or for one team (graph-and-api.md §5.5, data-model.md §8). */
#include "depsera/api_curation.h"
#include "depsera/api_guards.h"
#include "depsera/audit.h"
#include "depsera/http.h"
#include "depsera/session.h"
#include "depsera/util.h"

#include <string.h>

static const char not_found[] = "Canonical override not found";
static const char forbidden[] = "Team lead access required for a team with a service reporting this dependency";

#define CO_COLUMNS                                                                                                                 \
    "o.id, o.canonical_name, o.team_id, o.contact_override, o.impact_override, "                                                   \
    "COALESCE(o.manifest_managed, false) AS manifest_managed, o.created_at, o.updated_at, o.updated_by"

/* Insert, or replace the members the body gave (open-questions.md D1: omitted ones are kept).
 * $1 name, $2 team or NULL, $3/$4 has/contact, $5/$6 has/impact, $7 caller. `target` is the partial
 * unique index's conflict target. */
#define UPSERT_SQL(target)                                                                                                         \
    "WITH o AS (INSERT INTO dependency_canonical_overrides AS o (canonical_name, team_id, contact_override, impact_override, "     \
    "updated_by) VALUES ($1, $2::uuid, $4::jsonb, $6, $7) ON CONFLICT " target " DO UPDATE SET "                                   \
    "contact_override = CASE WHEN $3::boolean THEN EXCLUDED.contact_override ELSE o.contact_override END, "                        \
    "impact_override = CASE WHEN $5::boolean THEN EXCLUDED.impact_override ELSE o.impact_override END, "                           \
    "updated_at = now(), updated_by = EXCLUDED.updated_by RETURNING *) SELECT " CO_COLUMNS " FROM o"

static const char upsert_team_sql[] = UPSERT_SQL("(team_id, canonical_name) WHERE team_id IS NOT NULL");
static const char upsert_global_sql[] = UPSERT_SQL("(canonical_name) WHERE team_id IS NULL");

/* A team_id given in the query (NULL when absent or empty). */
static const char *query_team(dps_req_t *r)
{
    const char *team = dps_req_query_param(r, "team_id");

    return team != NULL && team[0] != '\0' ? team : NULL;
}

void dps_api_canonical_overrides_list(dps_req_t *r)
{
    const char *team;
    PGresult *res;

    if (dps_require_user(r) != 0)
        return;
    if ((team = query_team(r)) != NULL && !dps_is_uuid(team)) { /* no such team: no rows */
        dps_http_json(r, 200, json_array());
        return;
    }
    if ((res = dps_req_sql(r, NULL,
                           "SELECT " CO_COLUMNS " FROM dependency_canonical_overrides o WHERE $1::uuid IS NULL OR o.team_id = $1 "
                           "ORDER BY o.canonical_name COLLATE \"C\", o.team_id NULLS FIRST",
                           1, &team)) == NULL)
        return;
    dps_http_json(r, 200, dps_rows_json(res));
}

void dps_api_canonical_overrides_get(dps_req_t *r)
{
    const char *params[2] = {dps_req_param(r, "canonicalName"), query_team(r)};
    PGresult *res;

    if (dps_require_user(r) != 0)
        return;
    if (params[1] != NULL && !dps_is_uuid(params[1])) { /* no such team: no row */
        dps_http_error(r, 404, not_found);
        return;
    }
    if ((res = dps_req_sql(r, NULL,
                           "SELECT " CO_COLUMNS " FROM dependency_canonical_overrides o "
                           "WHERE o.canonical_name = $1 AND o.team_id IS NOT DISTINCT FROM $2::uuid",
                           2, params)) == NULL)
        return;
    if (PQntuples(res) == 0)
        dps_http_error(r, 404, not_found);
    else
        dps_http_json(r, 200, dps_row_json(res, 0));
}

/* The guard of PUT and DELETE: with a team, its lead; without, an admin or a lead of a team reporting the
 * name. For an admin, a team that is not a UUID answers `bad_team` (404 or 400). 0, or -1 after answering. */
static int guard(dps_req_t *r, const char *name, const char *team, int bad_status)
{
    if (team == NULL)
        return dps_api_require_reporting_lead(r, DPS_REPORTS_CANONICAL, name, forbidden);
    if (dps_api_require_team_role(r, team, 1) != 0)
        return -1;
    if (dps_is_uuid(team))
        return 0;
    if (bad_status == 404)
        dps_http_error(r, 404, not_found);
    else
        dps_api_error_field(r, 400, "Team not found", "team_id");
    return -1;
}

/* The body's team_id: NULL (global) when absent, null or empty; -1 after answering 400. */
static int body_team(dps_req_t *r, const char **team)
{
    json_t *v = json_object_get(r->body, "team_id");

    *team = NULL;
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_string(v)) {
        dps_api_error_field(r, 400, "team_id must be a string", "team_id");
        return -1;
    }
    if (json_string_length(v) > 0)
        *team = json_string_value(v);
    return 0;
}

static PGresult *upsert(dps_req_t *r, const char *name, const char *team, const dps_override_input_t *in)
{
    const char *params[7] = {name,       team,       in->has_contact ? "t" : "f", in->contact, in->has_impact ? "t" : "f",
                             in->impact, r->user->id};
    PGresult *res;

    if (dps_req_begin(r) != 0 ||
        (res = dps_req_sql(r, "23503", team != NULL ? upsert_team_sql : upsert_global_sql, 7, params)) == NULL)
        return NULL;
    if (PQresultStatus(res) != PGRES_TUPLES_OK) { /* the team does not exist */
        dps_api_error_field(r, 400, "Team not found", "team_id");
        return NULL;
    }
    return res;
}

void dps_api_canonical_overrides_put(dps_req_t *r)
{
    const char *name = dps_req_param(r, "canonicalName"), *team;
    dps_override_input_t in;
    PGresult *res;

    if (dps_require_user(r) != 0 || dps_api_override_input(r, &in) != 0)
        return;
    if (body_team(r, &team) != 0 || guard(r, name, team, 400) != 0 || (res = upsert(r, name, team, &in)) == NULL) {
        json_decref(in.audit);
        return;
    }
    json_object_set_new(in.audit, "canonical_name", json_string(name));
    if (team != NULL)
        json_object_set_new(in.audit, "team_id", json_string(team));
    dps_audit(r, "canonical_override.upserted", "canonical_override", name, in.audit);
    if (dps_api_notify_cache(r, "canonical_override", PQgetvalue(res, 0, 0)) != 0)
        return;
    dps_api_commit_json(r, 200, dps_row_json(res, 0));
}

void dps_api_canonical_overrides_delete(dps_req_t *r)
{
    const char *params[2] = {dps_req_param(r, "canonicalName"), query_team(r)};
    PGresult *res;

    if (dps_require_user(r) != 0 || guard(r, params[0], params[1], 404) != 0 || dps_req_begin(r) != 0 ||
        (res = dps_req_sql(r, NULL,
                           "DELETE FROM dependency_canonical_overrides WHERE canonical_name = $1 "
                           "AND team_id IS NOT DISTINCT FROM $2::uuid RETURNING id",
                           2, params)) == NULL)
        return;
    if (PQntuples(res) == 0) {
        dps_http_error(r, 404, not_found);
        return;
    }
    dps_audit(r, "canonical_override.deleted", "canonical_override", params[0],
              json_pack("{s:s,s:s?}", "canonical_name", params[0], "team_id", params[1]));
    if (dps_api_notify_cache(r, "canonical_override", PQgetvalue(res, 0, 0)) == 0)
        dps_api_commit_json(r, 204, NULL);
}
