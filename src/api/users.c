/* /api/users: admins list, create, re-role, reset, deactivate and reactivate accounts (graph-and-api.md §3.2). */
#include "depsera/api_users.h"
#include "depsera/audit.h"
#include "depsera/config.h"
#include "depsera/http.h"
#include "depsera/password.h"
#include "depsera/session.h"
#include "depsera/util.h"

#include <stdlib.h>
#include <string.h>

/* Every users column except password_hash: no response ever carries a hash (open-questions.md C). */
#define USER_COLS "id, email, name, oidc_subject, role, is_active, created_at, updated_at"
enum { COL_ID, COL_EMAIL, COL_NAME, COL_OIDC, COL_ROLE, COL_ACTIVE };

#define TEAMS_SQL                                                                                                                  \
    "SELECT m.team_id, m.role, json_build_object('id', t.id, 'name', t.name, 'description', t.description) AS team "               \
    "FROM team_members m JOIN teams t ON t.id = m.team_id WHERE m.user_id = $1 ORDER BY t.name"

static const char not_found[] = "User not found";
static const char role_msg[] = "role must be one of: admin, user";

/* A body-less request counts as {} (as Express parses it); any other non-object is refused. */
static int body_is_object(dps_req_t *r)
{
    if (r->body == NULL || json_is_object(r->body))
        return 0;
    dps_http_error(r, 400, "Request body must be a JSON object");
    return -1;
}

/* Creating users and setting passwords exist in local-auth mode only; checked after the admin guard. */
static int local_only(dps_req_t *r)
{
    if (dps_worker_config(r->worker)->local_auth)
        return 0;
    dps_http_error(r, 404, "Not found");
    return -1;
}

/* The :id parameter when it is a UUID; otherwise answers 404 (a malformed id is an unknown id). */
static const char *id_or_404(dps_req_t *r)
{
    const char *id = dps_req_param(r, "id");

    if (id != NULL && dps_is_uuid(id))
        return id;
    dps_http_error(r, 404, not_found);
    return NULL;
}

/* Rolls the open transaction back before answering, so no lock outlives the decision. */
static void abort_tx(dps_req_t *r, int status, const char *msg)
{
    if (dps_req_sql(r, NULL, "ROLLBACK", 0, NULL) != NULL)
        dps_http_error(r, status, msg);
}

static const char *role_value(json_t *v)
{
    const char *s = json_string_value(v);

    if (s != NULL && strcmp(s, "admin") == 0)
        return "admin";
    if (s != NULL && strcmp(s, "user") == 0)
        return "user";
    return NULL;
}

/* The string value trimmed (copied into the pool); NULL when v is not a string or is blank.
 * jansson has already checked the UTF-8 and refused NUL bytes. */
static const char *trimmed(dps_req_t *r, json_t *v)
{
    const char *s = json_string_value(v);
    size_t from, to;

    if (s == NULL)
        return NULL;
    dps_js_trim(s, json_string_length(v), &from, &to);
    return to > from ? h2o_strdup(&r->h2o->pool, s + from, to - from).base : NULL;
}

/* NULL if `v` is an acceptable password, else the 400 message. Length counts characters, not bytes. */
static const char *password_problem(json_t *v)
{
    const char *s = json_string_value(v);
    size_t chars = 0;

    if (s == NULL || *s == '\0')
        return "password is required";
    for (; *s != '\0'; s++)
        chars += ((unsigned char)*s & 0xc0) != 0x80;
    return chars < 8 ? "password must be at least 8 characters" : NULL;
}

/* Locks every active admin row, in id order so that concurrent callers cannot deadlock, and returns
 * how many there are; -1 answered. Rows changed by a transaction we waited for are re-checked, so
 * the count holds until commit: two admins cannot deactivate or demote each other at once. */
static int lock_active_admins(dps_req_t *r)
{
    PGresult *res = dps_req_sql(r, NULL,
                                "SELECT count(*) FROM (SELECT id FROM users WHERE role = 'admin' AND is_active "
                                "ORDER BY id FOR UPDATE) a",
                                0, NULL);
    return res == NULL ? -1 : atoi(PQgetvalue(res, 0, 0));
}

/* The user row (USER_COLS), locked for the transaction; NULL after answering (404 included). */
static PGresult *lock_user(dps_req_t *r, const char *id)
{
    const char *params[1] = {id};
    PGresult *res = dps_req_sql(r, NULL, "SELECT " USER_COLS " FROM users WHERE id = $1 FOR UPDATE", 1, params);

    if (res != NULL && PQntuples(res) == 0) {
        abort_tx(r, 404, not_found);
        return NULL;
    }
    return res;
}

static int is_active_admin(PGresult *u)
{
    return strcmp(PQgetvalue(u, 0, COL_ROLE), "admin") == 0 && PQgetvalue(u, 0, COL_ACTIVE)[0] == 't';
}

/* Audits, commits and answers `status` with the row (or no body when res is NULL). */
static void finish(dps_req_t *r, const char *action, const char *id, json_t *details, int status, PGresult *res)
{
    dps_audit(r, action, "user", id, details);
    if (dps_req_commit(r) != 0)
        return;
    dps_http_json(r, status, res != NULL ? dps_row_json(res, 0) : NULL);
}

void dps_api_users_list(dps_req_t *r)
{
    PGresult *res;

    if (dps_require_admin(r) != 0)
        return;
    if ((res = dps_req_sql(r, NULL, "SELECT " USER_COLS " FROM users ORDER BY name, id", 0, NULL)) == NULL)
        return;
    dps_http_json(r, 200, dps_rows_json(res));
}

void dps_api_users_get(dps_req_t *r)
{
    const char *params[1];
    PGresult *res, *teams;
    json_t *user;

    if (dps_require_admin(r) != 0 || (params[0] = id_or_404(r)) == NULL)
        return;
    if ((res = dps_req_sql(r, NULL, "SELECT " USER_COLS " FROM users WHERE id = $1", 1, params)) == NULL)
        return;
    if (PQntuples(res) == 0) {
        dps_http_error(r, 404, not_found);
        return;
    }
    if ((teams = dps_req_sql(r, NULL, TEAMS_SQL, 1, params)) == NULL)
        return;
    user = dps_row_json(res, 0);
    json_object_set_new(user, "teams", dps_rows_json(teams));
    dps_http_json(r, 200, user);
}

typedef struct {
    const char *email, *name, *password, *role;
} new_user_t;

/* Validates the POST body in the order of §3.2; 0, or -1 after answering 400. */
static int parse_new_user(dps_req_t *r, new_user_t *u)
{
    json_t *role = json_object_get(r->body, "role");
    const char *msg = NULL;

    u->email = trimmed(r, json_object_get(r->body, "email"));
    u->name = trimmed(r, json_object_get(r->body, "name"));
    u->password = json_string_value(json_object_get(r->body, "password"));
    u->role = role == NULL || json_is_null(role) ? "user" : role_value(role);
    if (u->email == NULL)
        msg = "email is required";
    else if (u->name == NULL)
        msg = "name is required";
    else
        msg = password_problem(json_object_get(r->body, "password"));
    if (msg == NULL && u->role == NULL)
        msg = role_msg;
    if (msg == NULL)
        return 0;
    dps_http_error(r, 400, msg);
    return -1;
}

static void insert_user(dps_req_t *r, const new_user_t *u, const char *hash)
{
    const char *params[4] = {u->email, u->name, hash, u->role};
    const char *state;
    PGresult *res;

    if (dps_req_begin(r) != 0)
        return;
    /* 23505: the email is taken (exact comparison); 54000: too long for the unique index */
    res =
        dps_req_sql(r, "23505,54000",
                    "INSERT INTO users (email, name, password_hash, role) VALUES ($1, $2, $3, $4) RETURNING " USER_COLS, 4, params);
    if (res == NULL)
        return;
    if ((state = PQresultErrorField(res, PG_DIAG_SQLSTATE)) != NULL) {
        abort_tx(r, strcmp(state, "23505") == 0 ? 409 : 400,
                 strcmp(state, "23505") == 0 ? "A user with this email already exists" : "email is too long");
        return;
    }
    finish(r, "user.created", PQgetvalue(res, 0, COL_ID), json_pack("{s:s,s:s}", "email", u->email, "role", u->role), 201, res);
}

void dps_api_users_create(dps_req_t *r)
{
    new_user_t u;
    char hash[DPS_PASSWORD_HASH_MAX];

    if (dps_require_admin(r) != 0 || local_only(r) != 0 || body_is_object(r) != 0 || parse_new_user(r, &u) != 0)
        return;
    /* hashed before the transaction opens: bcrypt's quarter second holds no lock */
    if (dps_password_hash(u.password, DPS_PASSWORD_COST, hash, sizeof(hash)) != 0) {
        dps_http_error(r, 500, "Internal server error");
        return;
    }
    insert_user(r, &u, hash);
}

void dps_api_users_set_role(dps_req_t *r)
{
    const char *role, *id, *params[2];
    PGresult *u, *res;
    int admins;

    if (dps_require_admin(r) != 0 || body_is_object(r) != 0)
        return;
    if ((role = role_value(json_object_get(r->body, "role"))) == NULL) {
        dps_http_error(r, 400, role_msg);
        return;
    }
    if ((id = id_or_404(r)) == NULL || dps_req_begin(r) != 0 || (admins = lock_active_admins(r)) < 0 ||
        (u = lock_user(r, id)) == NULL)
        return;
    /* as §3.2 states it: an admin (active or not) is not demoted while active admins <= 1 */
    if (strcmp(PQgetvalue(u, 0, COL_ROLE), "admin") == 0 && strcmp(role, "user") == 0 && admins <= 1) {
        abort_tx(r, 400, "Cannot demote the last admin user");
        return;
    }
    params[0] = PQgetvalue(u, 0, COL_ID);
    params[1] = role;
    if ((res = dps_req_sql(r, NULL, "UPDATE users SET role = $2, updated_at = now() WHERE id = $1 RETURNING " USER_COLS, 2,
                           params)) == NULL)
        return;
    finish(r, "user.role_changed", params[0], json_pack("{s:s,s:s}", "previousRole", PQgetvalue(u, 0, COL_ROLE), "newRole", role),
           200, res);
}

/* Hashes outside the transaction (bcrypt's quarter second holds no lock), then updates and audits. */
static void store_password(dps_req_t *r, const char *id, const char *password)
{
    const char *params[2] = {id, NULL};
    char hash[DPS_PASSWORD_HASH_MAX];
    PGresult *res;

    if (dps_password_hash(password, DPS_PASSWORD_COST, hash, sizeof(hash)) != 0) {
        dps_http_error(r, 500, "Internal server error");
        return;
    }
    params[1] = hash;
    if (dps_req_begin(r) != 0 ||
        (res = dps_req_sql(r, NULL, "UPDATE users SET password_hash = $2, updated_at = now() WHERE id = $1 RETURNING email", 2,
                           params)) == NULL)
        return;
    if (PQntuples(res) == 0) {
        abort_tx(r, 404, not_found);
        return;
    }
    dps_audit(r, "user.password_reset", "user", id, json_pack("{s:s}", "email", PQgetvalue(res, 0, 0)));
    if (dps_req_commit(r) == 0)
        dps_http_json(r, 200, json_pack("{s:s}", "message", "Password updated successfully"));
}

void dps_api_users_set_password(dps_req_t *r)
{
    json_t *password;
    const char *msg, *params[1];
    PGresult *u;

    if (dps_require_admin(r) != 0 || local_only(r) != 0 || body_is_object(r) != 0)
        return;
    if ((msg = password_problem(password = json_object_get(r->body, "password"))) != NULL) {
        dps_http_error(r, 400, msg);
        return;
    }
    /* an unknown id costs no bcrypt work */
    if ((params[0] = id_or_404(r)) == NULL || (u = dps_req_sql(r, NULL, "SELECT id FROM users WHERE id = $1", 1, params)) == NULL)
        return;
    if (PQntuples(u) == 0) {
        dps_http_error(r, 404, not_found);
        return;
    }
    store_password(r, PQgetvalue(u, 0, 0), json_string_value(password));
}

void dps_api_users_reactivate(dps_req_t *r)
{
    const char *id, *params[1];
    PGresult *u, *res;

    if (dps_require_admin(r) != 0 || (id = id_or_404(r)) == NULL || dps_req_begin(r) != 0 || (u = lock_user(r, id)) == NULL)
        return;
    if (PQgetvalue(u, 0, COL_ACTIVE)[0] == 't') {
        abort_tx(r, 400, "User is already active");
        return;
    }
    params[0] = PQgetvalue(u, 0, COL_ID);
    if ((res = dps_req_sql(r, NULL, "UPDATE users SET is_active = true, updated_at = now() WHERE id = $1 RETURNING " USER_COLS, 1,
                           params)) == NULL)
        return;
    finish(r, "user.reactivated", params[0], json_pack("{s:s}", "email", PQgetvalue(u, 0, COL_EMAIL)), 200, res);
}

/* Deactivation logs the user out everywhere at once: their sessions go in the same transaction. */
void dps_api_users_deactivate(dps_req_t *r)
{
    const char *id, *params[1];
    PGresult *u;
    int admins;

    if (dps_require_admin(r) != 0 || (id = id_or_404(r)) == NULL || dps_req_begin(r) != 0 || (admins = lock_active_admins(r)) < 0 ||
        (u = lock_user(r, id)) == NULL)
        return;
    if (is_active_admin(u) && admins <= 1) {
        abort_tx(r, 400, "Cannot deactivate the last admin user");
        return;
    }
    params[0] = PQgetvalue(u, 0, COL_ID);
    if (dps_req_sql(r, NULL,
                    "WITH m AS (DELETE FROM team_members WHERE user_id = $1::uuid), "
                    "     s AS (DELETE FROM sessions WHERE sess->>'userId' = $1::uuid::text) "
                    "UPDATE users SET is_active = false, updated_at = now() WHERE id = $1::uuid",
                    1, params) == NULL)
        return;
    finish(r, "user.deactivated", params[0], json_pack("{s:s}", "email", PQgetvalue(u, 0, COL_EMAIL)), 204, NULL);
}
