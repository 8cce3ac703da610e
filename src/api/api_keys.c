/* /api/teams/:id/api-keys: the keys a team's collectors push with, issued and revoked by its leads (spec §2). */
#include "depsera/api_keys.h"
#include "depsera/apikey.h"
#include "depsera/audit.h"
#include "depsera/http.h"
#include "depsera/session.h"
#include "depsera/util.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>

static const char team_not_found[] = "Team not found";
static const char key_not_found[] = "API key not found";

const char *dps_api_keys_lead_guard(dps_req_t *r)
{
    const char *params[2] = {dps_req_param(r, "id"), NULL};
    PGresult *res;

    if (dps_require_user(r) != 0)
        return NULL;
    if (r->user->is_admin)
        return params[0] != NULL ? params[0] : "";
    if (params[0] != NULL && dps_is_uuid(params[0])) {
        params[1] = r->user->id;
        if ((res = dps_req_sql(r, NULL, "SELECT 1 FROM team_members WHERE team_id = $1 AND user_id = $2 AND role = 'lead'", 2,
                               params)) == NULL)
            return NULL;
        if (PQntuples(res) > 0)
            return params[0];
    }
    dps_http_error(r, 403, "Team lead access required");
    return NULL;
}

int dps_api_keys_notify(dps_req_t *r, const char *id)
{
    char payload[64];
    const char *params[1] = {payload};

    snprintf(payload, sizeof(payload), "api_key:%s", id);
    return dps_req_sql(r, NULL, "SELECT pg_notify('depsera_cache', $1)", 1, params) == NULL ? -1 : 0;
}

/* The key's name from the body, trimmed into the request pool; NULL after answering 400. */
static const char *name_or_400(dps_req_t *r)
{
    json_t *v = json_object_get(r->body, "name");
    size_t from = 0, to = 0;

    if (json_is_string(v))
        dps_js_trim(json_string_value(v), json_string_length(v), &from, &to);
    if (to <= from) {
        dps_http_json(r, 400, json_pack("{s:s,s:s}", "error", "Name is required", "field", "name"));
        return NULL;
    }
    return h2o_strdup(&r->h2o->pool, json_string_value(v) + from, to - from).base;
}

void dps_api_keys_list(dps_req_t *r)
{
    const char *team;
    PGresult *res;

    if ((team = dps_api_keys_lead_guard(r)) == NULL)
        return;
    if (!dps_is_uuid(team)) {
        dps_http_error(r, 404, team_not_found);
        return;
    }
    if ((res = dps_req_sql(r, NULL, "SELECT 1 FROM teams WHERE id = $1", 1, &team)) == NULL)
        return;
    if (PQntuples(res) == 0) {
        dps_http_error(r, 404, team_not_found);
        return;
    }
    if ((res = dps_req_sql(r, NULL,
                           "SELECT " DPS_API_KEY_COLUMNS
                           " FROM team_api_keys k WHERE k.team_id = $1 ORDER BY k.created_at DESC, k.id DESC",
                           1, &team)) == NULL)
        return;
    dps_http_json(r, 200, dps_rows_json(res));
}

/* The original let the foreign key fail (500) for an unknown team; here it is a 404, from the INSERT
 * itself so that a team deleted concurrently is caught too. */
void dps_api_keys_create(dps_req_t *r)
{
    dps_apikey_material_t key;
    const char *params[5];
    PGresult *res;
    json_t *out;

    if ((params[0] = dps_api_keys_lead_guard(r)) == NULL || (params[1] = name_or_400(r)) == NULL)
        return;
    if (!dps_is_uuid(params[0])) {
        dps_http_error(r, 404, team_not_found);
        return;
    }
    if (dps_apikey_generate(&key) != 0) {
        dps_http_error(r, 500, "Internal server error");
        return;
    }
    params[2] = key.hash, params[3] = key.prefix, params[4] = r->user->id;
    if (dps_req_begin(r) != 0 ||
        (res = dps_req_sql(r, "23503",
                           "INSERT INTO team_api_keys AS k (team_id, name, key_hash, key_prefix, created_by) "
                           "VALUES ($1, $2, $3, $4, $5) RETURNING " DPS_API_KEY_COLUMNS,
                           5, params)) == NULL)
        goto done;
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        dps_http_error(r, 404, team_not_found);
        goto done;
    }
    dps_audit(r, "api_key.created", "team_api_key", PQgetvalue(res, 0, 0),
              json_pack("{s:s,s:s,s:s}", "team_id", PQgetvalue(res, 0, 1), "key_name", params[1], "key_prefix", key.prefix));
    if (dps_api_keys_notify(r, PQgetvalue(res, 0, 0)) != 0 || dps_req_commit(r) != 0)
        goto done;
    out = dps_row_json(res, 0);
    json_object_set_new(out, "rawKey", json_string(key.raw));
    dps_http_json(r, 201, out);
done:
    OPENSSL_cleanse(&key, sizeof(key));
}

void dps_api_keys_revoke(dps_req_t *r)
{
    const char *params[2];
    PGresult *res;

    if ((params[0] = dps_api_keys_lead_guard(r)) == NULL)
        return;
    params[1] = dps_req_param(r, "keyId");
    if (!dps_is_uuid(params[0]) || params[1] == NULL || !dps_is_uuid(params[1])) {
        dps_http_error(r, 404, key_not_found);
        return;
    }
    if (dps_req_begin(r) != 0 ||
        (res = dps_req_sql(r, NULL,
                           "DELETE FROM team_api_keys WHERE id = $2 AND team_id = $1 RETURNING id, team_id, name, key_prefix", 2,
                           params)) == NULL)
        return;
    if (PQntuples(res) == 0) {
        dps_http_error(r, 404, key_not_found);
        return;
    }
    dps_audit(r, "api_key.revoked", "team_api_key", PQgetvalue(res, 0, 0),
              json_pack("{s:s,s:s,s:s}", "team_id", PQgetvalue(res, 0, 1), "key_name", PQgetvalue(res, 0, 2), "key_prefix",
                        PQgetvalue(res, 0, 3)));
    if (dps_api_keys_notify(r, PQgetvalue(res, 0, 0)) == 0 && dps_req_commit(r) == 0)
        dps_http_json(r, 204, NULL);
}
