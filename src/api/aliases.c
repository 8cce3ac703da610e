/* /api/aliases: which reported dependency names mean the same thing (graph-and-api.md §5.4). */
#include "depsera/api_curation.h"
#include "depsera/api_guards.h"
#include "depsera/http.h"
#include "depsera/session.h"
#include "depsera/util.h"

#include <stdio.h>
#include <string.h>

static const char not_found[] = "Alias not found";
static const char forbidden[] = "Admin or team lead access required for a team with a service reporting this dependency";

#define ALIAS_COLUMNS "al.id, al.alias, al.canonical_name, al.created_at, al.manifest_team_id"

/* Alias changes reach the dependencies they name at once rather than at each one's next poll or push
 * (open-questions.md D24): the upsert writes canonical_name from the alias table, and so does this. */
/* The rows are locked in service-id order first, the order in which the poller records its
 * batches: an alias touching many services cannot deadlock with a batch. */
#define APPLY_SQL                                                                                                                  \
    "WITH l AS (SELECT id FROM dependencies WHERE name = $1 AND canonical_name IS DISTINCT FROM $2 "                               \
    "ORDER BY service_id, id FOR UPDATE) UPDATE dependencies d SET canonical_name = $2 FROM l WHERE d.id = l.id"

void dps_api_aliases_list(dps_req_t *r)
{
    PGresult *res;

    if (dps_require_user(r) != 0 || (res = dps_req_sql(r, NULL,
                                                       "SELECT " ALIAS_COLUMNS " FROM dependency_aliases al "
                                                       "ORDER BY al.canonical_name COLLATE \"C\", al.alias COLLATE \"C\"",
                                                       0, NULL)) == NULL)
        return;
    dps_http_json(r, 200, dps_rows_json(res));
}

void dps_api_aliases_canonical_names(dps_req_t *r)
{
    PGresult *res;
    json_t *out;

    if (dps_require_user(r) != 0 ||
        (res = dps_req_sql(r, NULL, "SELECT DISTINCT canonical_name COLLATE \"C\" FROM dependency_aliases ORDER BY 1", 0, NULL)) ==
            NULL)
        return;
    out = json_array();
    for (int i = 0; i < PQntuples(res); i++)
        json_array_append_new(out, json_string(PQgetvalue(res, i, 0)));
    dps_http_json(r, 200, out);
}

/* Body member `name` as a non-empty string, trimmed into the pool; NULL after answering 400. */
static const char *required_string(dps_req_t *r, const char *name)
{
    json_t *v = json_object_get(r->body, name);
    size_t from = 0, to = 0;
    char msg[96];

    if (json_is_string(v))
        dps_js_trim(json_string_value(v), json_string_length(v), &from, &to);
    if (to > from)
        return h2o_strdup(&r->h2o->pool, json_string_value(v) + from, to - from).base;
    snprintf(msg, sizeof(msg), "%s is required and must be a string", name);
    dps_http_error(r, 400, msg);
    return NULL;
}

/* The row of alias :id (id, alias), after the guard; locked for the transaction the caller opened.
 * NULL after answering 404/403 (or 503/500). */
static PGresult *existing_alias(dps_req_t *r)
{
    const char *id;
    PGresult *res;

    if ((id = dps_api_uuid_param(r, "id", not_found)) == NULL || dps_req_begin(r) != 0 ||
        (res = dps_req_sql(r, NULL, "SELECT id, alias FROM dependency_aliases WHERE id = $1 FOR UPDATE", 1, &id)) == NULL)
        return NULL;
    if (PQntuples(res) == 0) {
        dps_http_error(r, 404, not_found);
        return NULL;
    }
    return dps_api_require_reporting_lead(r, DPS_REPORTS_NAME, PQgetvalue(res, 0, 1), forbidden) == 0 ? res : NULL;
}

/* Apply (alias, canonical) to the dependencies, queue the notification, commit and answer. */
static void finish(dps_req_t *r, const char *alias, const char *canonical, const char *id, int status, json_t *out)
{
    const char *params[2] = {alias, canonical};

    if (dps_req_sql(r, NULL, APPLY_SQL, 2, params) == NULL || dps_api_notify_cache(r, "alias", id) != 0) {
        json_decref(out);
        return;
    }
    dps_api_commit_json(r, status, out);
}

void dps_api_aliases_create(dps_req_t *r)
{
    const char *params[2];
    PGresult *res;
    size_t n;
    char *msg;

    if (dps_require_user(r) != 0 || (params[0] = required_string(r, "alias")) == NULL ||
        (params[1] = required_string(r, "canonical_name")) == NULL ||
        dps_api_require_reporting_lead(r, DPS_REPORTS_NAME, params[0], forbidden) != 0 || dps_req_begin(r) != 0 ||
        (res = dps_req_sql(r, "23505",
                           "WITH al AS (INSERT INTO dependency_aliases (alias, canonical_name) VALUES ($1, $2) RETURNING *) "
                           "SELECT " ALIAS_COLUMNS " FROM al",
                           2, params)) == NULL)
        return;
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        n = strlen(params[0]) + sizeof("Alias \"\" already exists");
        msg = h2o_mem_alloc_pool(&r->h2o->pool, n);
        snprintf(msg, n, "Alias \"%s\" already exists", params[0]);
        dps_http_error(r, 409, msg);
        return;
    }
    finish(r, params[0], params[1], PQgetvalue(res, 0, 0), 201, dps_row_json(res, 0));
}

void dps_api_aliases_update(dps_req_t *r)
{
    const char *params[2];
    PGresult *old, *res;

    if (dps_require_user(r) != 0 || (params[1] = required_string(r, "canonical_name")) == NULL || (old = existing_alias(r)) == NULL)
        return;
    params[0] = PQgetvalue(old, 0, 0);
    if ((res = dps_req_sql(r, NULL,
                           "WITH al AS (UPDATE dependency_aliases SET canonical_name = $2 WHERE id = $1 RETURNING *) "
                           "SELECT " ALIAS_COLUMNS " FROM al",
                           2, params)) == NULL)
        return;
    finish(r, PQgetvalue(old, 0, 1), params[1], params[0], 200, dps_row_json(res, 0));
}

void dps_api_aliases_delete(dps_req_t *r)
{
    const char *id;
    PGresult *old;

    if (dps_require_user(r) != 0 || (old = existing_alias(r)) == NULL)
        return;
    id = PQgetvalue(old, 0, 0);
    if (dps_req_sql(r, NULL, "DELETE FROM dependency_aliases WHERE id = $1", 1, &id) == NULL)
        return;
    finish(r, PQgetvalue(old, 0, 1), NULL, id, 204, NULL);
}
