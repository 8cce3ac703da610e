/* /api/auth: mode, local login, logout, and who am I (graph-and-api.md §3.1). */
#include "depsera/config.h"
#include "depsera/http.h"
#include "depsera/password.h"
#include "depsera/routes.h"
#include "depsera/session.h"

#include <string.h>

/* Compared against when the email is unknown, so that an unknown email costs the same bcrypt work
 * as a wrong password (no user enumeration by timing). A hash of a random string, cost 12. */
static const char timing_hash[] = "$2b$12$r/mIFOMK9DruQ7OYhr7AweOdu2/PeaQhWiIl74lRHNqTS3awbNhPS";

void dps_api_auth_mode(dps_req_t *r)
{
    dps_http_json(r, 200, json_pack("{s:s}", "mode", dps_worker_config(r->worker)->local_auth ? "local" : "oidc"));
}

void dps_api_auth_login(dps_req_t *r)
{
    json_t *email = json_object_get(r->body, "email"), *password = json_object_get(r->body, "password");
    const char *params[1];
    PGresult *res;
    int found, active, ok;

    if (!dps_worker_config(r->worker)->local_auth) {
        dps_http_error(r, 404, "Local auth is not enabled");
        return;
    }
    /* "falsy" as the original: absent, null, false, 0, "" */
    if (email == NULL || password == NULL || json_is_null(email) || json_is_null(password) || json_is_false(email) ||
        json_is_false(password) || (json_is_string(email) && json_string_length(email) == 0) ||
        (json_is_string(password) && json_string_length(password) == 0) || (json_is_integer(email) && json_integer_value(email) == 0) ||
        (json_is_integer(password) && json_integer_value(password) == 0)) {
        dps_http_error(r, 400, "Email and password are required");
        return;
    }
    if (!json_is_string(email) || !json_is_string(password)) {
        dps_http_error(r, 400, "Email and password must be strings");
        return;
    }
    params[0] = json_string_value(email);
    if ((res = dps_req_sql(r, NULL, "SELECT id, email, name, role, is_active, password_hash FROM users WHERE email = $1", 1,
                           params)) == NULL)
        return;
    found = PQntuples(res) == 1 && !PQgetisnull(res, 0, 5);
    ok = dps_password_verify(json_string_value(password), found ? PQgetvalue(res, 0, 5) : timing_hash) && found;
    active = found && PQgetvalue(res, 0, 4)[0] == 't';
    if (!found) {
        dps_http_error(r, 401, "Invalid email or password");
        return;
    }
    if (!active) {
        dps_http_error(r, 401, "Account is deactivated");
        return;
    }
    if (!ok) {
        dps_http_error(r, 401, "Invalid email or password");
        return;
    }
    if (dps_session_start(r, PQgetvalue(res, 0, 0)) != 0)
        return;
    dps_http_json(r, 200, json_pack("{s:s,s:s,s:s,s:s}", "id", PQgetvalue(res, 0, 0), "email", PQgetvalue(res, 0, 1), "name",
                                    PQgetvalue(res, 0, 2), "role", PQgetvalue(res, 0, 3)));
}

void dps_api_auth_logout(dps_req_t *r)
{
    if (dps_require_user(r) != 0 || dps_session_end(r) != 0)
        return;
    dps_http_json(r, 200, json_pack("{s:s}", "redirectUrl", "/login"));
}

void dps_api_auth_login_redirect(dps_req_t *r)
{
    const dps_config_t *cfg = dps_worker_config(r->worker);
    char *loc;

    if (!cfg->local_auth) {
        dps_http_error(r, 404, "OIDC login is not available in this version");
        return;
    }
    loc = h2o_mem_alloc_pool(&r->h2o->pool, strlen(cfg->cors_origin) + 8);
    sprintf(loc, "%s/login", cfg->cors_origin);
    dps_http_header(r, "location", loc);
    dps_http_json(r, 302, NULL);
}

/* The session user with teams and permissions; shared with GET /api/users/me. */
void dps_api_auth_me(dps_req_t *r)
{
    const char *params[1];
    PGresult *res;
    json_t *teams, *out;
    int lead_any = 0;

    if (dps_require_user(r) != 0)
        return;
    params[0] = r->user->id;
    if ((res = dps_req_sql(r, NULL,
                           "SELECT m.team_id, m.role, json_build_object('id', t.id, 'name', t.name, 'description', t.description) AS team "
                           "FROM team_members m JOIN teams t ON t.id = m.team_id WHERE m.user_id = $1 ORDER BY t.name",
                           1, params)) == NULL)
        return;
    teams = dps_rows_json(res);
    for (int i = 0; i < PQntuples(res); i++)
        lead_any |= strcmp(PQgetvalue(res, i, 1), "lead") == 0;
    out = json_pack("{s:s,s:s,s:s,s:s,s:b,s:o,s:{s:b,s:b,s:b}}", "id", r->user->id, "email", r->user->email, "name", r->user->name,
                    "role", r->user->is_admin ? "admin" : "user", "is_active", 1, "teams", teams, "permissions", "canManageUsers",
                    r->user->is_admin, "canManageTeams", r->user->is_admin, "canManageServices", r->user->is_admin || lead_any);
    dps_http_json(r, 200, out);
}
