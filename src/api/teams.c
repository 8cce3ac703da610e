/* /api/teams: teams and who belongs to them, read by any user, changed by admins (graph-and-api.md §3.3). */
#include "depsera/api_teams.h"
#include "depsera/audit.h"
#include "depsera/http.h"
#include "depsera/session.h"
#include "depsera/util.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define KEY_MAX_LEN 128 /* UTF-16 code units, as the original's String.length */
#define KEY_PATTERN "^[a-z0-9][a-z0-9_-]*$"

/* Uniqueness is left to the unique indexes (schema/001_core.up.sql), so concurrent requests cannot both
 * win: a violation of idx_teams_key is the key's, any other (teams_name_key; the primary key is generated)
 * the name's. PostgreSQL checks teams_name_key first, so a body taking both is a name conflict, as in
 * the original. */
#define TEAM_KEY_CONSTRAINT "idx_teams_key"
/* What PostgreSQL says of a JSON document it will not store as jsonb (invalid text, \u0000, too deep). */
#define JSONB_REJECTED "22P02,22P05,54001"

/* Lists sort names by bytes (COLLATE "C"), as the original's SQLite BINARY collation, whatever the
 * database's locale. */
#define TEAM_COLUMNS "t.id, t.name, t.key, t.description, t.contact, t.created_at, t.updated_at"
#define TEAM_COUNTS                                                                                                                \
    "(SELECT count(*) FROM team_members c WHERE c.team_id = t.id) AS member_count, "                                               \
    "(SELECT count(*) FROM services s WHERE s.team_id = t.id) AS service_count"
/* The membership `m` (a CTE) with its user, as member add/change answer it. */
#define MEMBER_WITH_USER                                                                                                           \
    "SELECT m.team_id, m.user_id, m.role, m.created_at, json_build_object('id', u.id, 'email', u.email, 'name', u.name, "          \
    "'role', u.role, 'is_active', u.is_active) AS \"user\" FROM m JOIN users u ON u.id = m.user_id"

/* A team body after validation. Absent members have has_* = 0; a present value may still be NULL (SQL NULL). */
typedef struct {
    const char *name, *key, *description, *contact;
    int has_name, has_key, has_description, has_contact;
    int create;                /* POST wording (required fields, longer pattern message) */
    const char *error, *field; /* the first validation failure */
} team_input_t;

/* ---- small helpers ---------------------------------------------------------------------------- */

static void error_field(dps_req_t *r, int status, const char *msg, const char *field)
{
    dps_http_json(r, status, json_pack("{s:s,s:s}", "error", msg, "field", field));
}

static const char *pool_strdup(dps_req_t *r, const char *s, size_t len)
{
    return h2o_strdup(&r->h2o->pool, s, len).base;
}

/* JavaScript falsiness of a body member: absent, null, false, 0, "". */
static int falsy(json_t *v)
{
    return v == NULL || json_is_null(v) || json_is_false(v) || (json_is_string(v) && json_string_length(v) == 0) ||
           (json_is_number(v) && json_number_value(v) == 0);
}

/* s without leading and trailing white space, copied into the request pool ("" if nothing is left). */
static const char *js_trim(dps_req_t *r, const char *s)
{
    size_t from, to;

    dps_js_trim(s, strlen(s), &from, &to);
    return pool_strdup(r, s + from, to - from);
}

/* Length in UTF-16 code units: what the original compared against 128. */
static size_t utf16_length(const char *s)
{
    size_t n = 0;

    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        n += (*p & 0xC0) != 0x80 ? (*p >= 0xF0 ? 2 : 1) : 0;
    return n;
}

static int key_matches(const char *k)
{
    if (!((k[0] >= 'a' && k[0] <= 'z') || (k[0] >= '0' && k[0] <= '9')))
        return 0;
    for (const char *p = k + 1; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_' || *p == '-'))
            return 0;
    return 1;
}

/* ---- team body validation ----------------------------------------------------------------------- */

static int fail(team_input_t *in, const char *msg, const char *field)
{
    in->error = msg;
    in->field = field;
    return -1;
}

static int check_name(dps_req_t *r, team_input_t *in, json_t *v)
{
    if (v == NULL && !in->create)
        return 0;
    in->has_name = 1;
    in->name = json_is_string(v) ? js_trim(r, json_string_value(v)) : "";
    if (in->name[0] == '\0')
        return fail(in, in->create ? "name is required and must be a non-empty string" : "name must be a non-empty string", "name");
    return 0;
}

static int check_key(dps_req_t *r, team_input_t *in, json_t *v)
{
    if (v == NULL && !in->create)
        return 0;
    in->has_key = 1;
    in->key = json_is_string(v) ? json_string_value(v) : NULL;
    if (in->key == NULL || js_trim(r, in->key)[0] == '\0')
        return fail(in, in->create ? "key is required and must be a non-empty string" : "key must be a non-empty string", "key");
    if (utf16_length(in->key) > KEY_MAX_LEN)
        return fail(in, "key must be at most 128 characters", "key");
    if (!key_matches(in->key))
        return fail(in,
                    in->create ? "key must match pattern " KEY_PATTERN " (lowercase alphanumeric, hyphens, underscores)"
                               : "key must match pattern " KEY_PATTERN,
                    "key");
    return 0;
}

/* POST: "" stores NULL; PUT stores the string as given. Either way only strings and null are taken. */
static int check_description(team_input_t *in, json_t *v)
{
    if (v == NULL)
        return 0;
    in->has_description = 1;
    if (json_is_null(v))
        return 0;
    if (!json_is_string(v))
        return fail(in, "description must be a string", "description");
    in->description = in->create && json_string_length(v) == 0 ? NULL : json_string_value(v);
    return 0;
}

/* A JSON object, or a string holding one (open-questions.md B); kept as JSON text for a ::jsonb parameter. */
static int check_contact(dps_req_t *r, team_input_t *in, json_t *v)
{
    json_t *parsed;
    char *text;

    if (v == NULL)
        return 0;
    in->has_contact = 1;
    if (json_is_null(v))
        return 0;
    if (json_is_object(v)) {
        if ((text = json_dumps(v, JSON_COMPACT)) == NULL)
            return fail(in, "contact must be a valid JSON object string", "contact");
        in->contact = pool_strdup(r, text, strlen(text));
        free(text);
        return 0;
    }
    if (!json_is_string(v))
        return fail(in, "contact must be a JSON string or null", "contact");
    parsed = json_loads(json_string_value(v), JSON_DECODE_ANY, NULL);
    in->contact = json_string_value(v);
    if (!json_is_object(parsed)) {
        json_decref(parsed);
        return fail(in, "contact must be a valid JSON object string", "contact");
    }
    json_decref(parsed);
    return 0;
}

/* Validate the body in the original's order; 0, or -1 after answering 400. */
static int parse_team_input(dps_req_t *r, team_input_t *in, int create)
{
    json_t *b = r->body;

    memset(in, 0, sizeof(*in));
    in->create = create;
    if (check_name(r, in, json_object_get(b, "name")) != 0 || check_key(r, in, json_object_get(b, "key")) != 0 ||
        check_description(in, json_object_get(b, "description")) != 0 || check_contact(r, in, json_object_get(b, "contact")) != 0) {
        error_field(r, 400, in->error, in->field);
        return -1;
    }
    if (!create && !in->has_name && !in->has_key && !in->has_description && !in->has_contact) {
        dps_http_error(r, 400, "No valid fields to update");
        return -1;
    }
    return 0;
}

/* A failed INSERT/UPDATE of a team that the caller allowed: which of our answers it is. */
static void answer_team_write_error(dps_req_t *r, PGresult *res)
{
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE), *constraint = PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME);

    if (state != NULL && strcmp(state, "23505") == 0)
        dps_http_error(r, 409,
                       constraint != NULL && strcmp(constraint, TEAM_KEY_CONSTRAINT) == 0 ? "A team with this key already exists"
                                                                                          : "A team with this name already exists");
    else /* PostgreSQL refused the contact document although jansson read it */
        error_field(r, 400, "contact must be a valid JSON object string", "contact");
}

/* ---- lookups ------------------------------------------------------------------------------------ */

/* The :id of an existing team, or NULL after answering 404 (malformed ids included) or 503/500. */
static const char *team_or_404(dps_req_t *r)
{
    const char *id = dps_req_param(r, "id");
    PGresult *res;

    if (id == NULL || !dps_is_uuid(id)) {
        dps_http_error(r, 404, "Team not found");
        return NULL;
    }
    if ((res = dps_req_sql(r, NULL, "SELECT 1 FROM teams WHERE id = $1", 1, &id)) == NULL)
        return NULL;
    if (PQntuples(res) == 0) {
        dps_http_error(r, 404, "Team not found");
        return NULL;
    }
    return id;
}

/* The :userId of a member of `team` and its current role (row locked for the transaction), or NULL
 * after answering 404 `Team member not found` or 503/500. */
static const char *member_or_404(dps_req_t *r, const char *team, const char **role)
{
    const char *params[2] = {team, dps_req_param(r, "userId")};
    PGresult *res;

    if (params[1] == NULL || !dps_is_uuid(params[1])) {
        dps_http_error(r, 404, "Team member not found");
        return NULL;
    }
    if ((res = dps_req_sql(r, NULL, "SELECT role FROM team_members WHERE team_id = $1 AND user_id = $2 FOR UPDATE", 2, params)) ==
        NULL)
        return NULL;
    if (PQntuples(res) == 0) {
        dps_http_error(r, 404, "Team member not found");
        return NULL;
    }
    *role = PQgetvalue(res, 0, 0);
    return params[1];
}

/* ---- teams -------------------------------------------------------------------------------------- */

void dps_api_teams_list(dps_req_t *r)
{
    PGresult *res;

    if (dps_require_user(r) != 0)
        return;
    if ((res = dps_req_sql(r, NULL, "SELECT " TEAM_COLUMNS ", " TEAM_COUNTS " FROM teams t ORDER BY t.name COLLATE \"C\", t.id", 0,
                           NULL)) == NULL)
        return;
    dps_http_json(r, 200, dps_rows_json(res));
}

void dps_api_teams_get(dps_req_t *r)
{
    const char *id;
    PGresult *team, *members, *services;
    json_t *out;

    if (dps_require_user(r) != 0)
        return;
    if ((id = dps_req_param(r, "id")) == NULL || !dps_is_uuid(id)) {
        dps_http_error(r, 404, "Team not found");
        return;
    }
    if ((team = dps_req_sql(r, NULL, "SELECT " TEAM_COLUMNS " FROM teams t WHERE t.id = $1", 1, &id)) == NULL)
        return;
    if (PQntuples(team) == 0) {
        dps_http_error(r, 404, "Team not found");
        return;
    }
    if ((members = dps_req_sql(r, NULL,
                               "SELECT m.team_id, m.user_id, m.role, m.created_at, "
                               "json_build_object('id', u.id, 'email', u.email, 'name', u.name) AS \"user\" "
                               "FROM team_members m JOIN users u ON u.id = m.user_id WHERE m.team_id = $1 "
                               "ORDER BY u.name COLLATE \"C\", u.id",
                               1, &id)) == NULL ||
        (services = dps_req_sql(r, NULL, "SELECT * FROM services WHERE team_id = $1 ORDER BY name COLLATE \"C\", id", 1, &id)) ==
            NULL)
        return;
    out = dps_row_json(team, 0);
    json_object_set_new(out, "members", dps_rows_json(members));
    json_object_set_new(out, "services", dps_rows_json(services));
    dps_http_json(r, 200, out);
}

void dps_api_teams_create(dps_req_t *r)
{
    team_input_t in;
    const char *params[4];
    PGresult *res;
    json_t *out;

    if (dps_require_admin(r) != 0 || parse_team_input(r, &in, 1) != 0 || dps_req_begin(r) != 0)
        return;
    params[0] = in.name, params[1] = in.key, params[2] = in.description, params[3] = in.contact;
    if ((res = dps_req_sql(r, "23505," JSONB_REJECTED,
                           "INSERT INTO teams AS t (name, key, description, contact) VALUES ($1, $2, $3, $4::jsonb) "
                           "RETURNING " TEAM_COLUMNS,
                           4, params)) == NULL)
        return;
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        answer_team_write_error(r, res);
        return;
    }
    dps_audit(r, "team.created", "team", PQgetvalue(res, 0, 0), json_pack("{s:s}", "name", in.name));
    if (dps_req_commit(r) != 0)
        return;
    out = dps_row_json(res, 0);
    json_object_set_new(out, "members", json_array());
    json_object_set_new(out, "services", json_array());
    json_object_set_new(out, "member_count", json_integer(0));
    json_object_set_new(out, "service_count", json_integer(0));
    dps_http_json(r, 201, out);
}

/* Absent fields keep their value: name/key through COALESCE (never NULL when given), the others by flag. */
void dps_api_teams_update(dps_req_t *r)
{
    team_input_t in;
    const char *params[7];
    PGresult *res;

    if (dps_require_admin(r) != 0 || (params[0] = team_or_404(r)) == NULL || parse_team_input(r, &in, 0) != 0 ||
        dps_req_begin(r) != 0)
        return;
    params[1] = in.name, params[2] = in.key, params[3] = in.has_description ? "t" : "f", params[4] = in.description;
    params[5] = in.has_contact ? "t" : "f", params[6] = in.contact;
    if ((res = dps_req_sql(r, "23505," JSONB_REJECTED,
                           "UPDATE teams t SET name = COALESCE($2, t.name), key = COALESCE($3, t.key), "
                           "description = CASE WHEN $4::boolean THEN $5::text ELSE t.description END, "
                           "contact = CASE WHEN $6::boolean THEN $7::jsonb ELSE t.contact END, updated_at = now() "
                           "WHERE t.id = $1 RETURNING " TEAM_COLUMNS ", " TEAM_COUNTS,
                           7, params)) == NULL)
        return;
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        answer_team_write_error(r, res);
        return;
    }
    if (PQntuples(res) == 0) { /* deleted since team_or_404 */
        dps_http_error(r, 404, "Team not found");
        return;
    }
    dps_audit(r, "team.updated", "team", params[0], json_pack("{s:s}", "name", PQgetvalue(res, 0, 1)));
    if (dps_req_commit(r) == 0)
        dps_http_json(r, 200, dps_row_json(res, 0));
}

/* The team row is locked first: a service insert needs a key-share lock on it, so the count that
 * follows cannot go stale before the DELETE (which the services FK would otherwise refuse). */
void dps_api_teams_delete(dps_req_t *r)
{
    const char *id = dps_req_param(r, "id");
    PGresult *team, *count;

    if (dps_require_admin(r) != 0)
        return;
    if (id == NULL || !dps_is_uuid(id)) {
        dps_http_error(r, 404, "Team not found");
        return;
    }
    if (dps_req_begin(r) != 0 || (team = dps_req_sql(r, NULL, "SELECT name FROM teams WHERE id = $1 FOR UPDATE", 1, &id)) == NULL)
        return;
    if (PQntuples(team) == 0) {
        dps_http_error(r, 404, "Team not found");
        return;
    }
    if ((count = dps_req_sql(r, NULL, "SELECT count(*) FROM services WHERE team_id = $1", 1, &id)) == NULL)
        return;
    if (strcmp(PQgetvalue(count, 0, 0), "0") != 0) {
        dps_http_json(r, 409,
                      json_pack("{s:s,s:I}", "error", "Cannot delete team with existing services", "service_count",
                                (json_int_t)strtoll(PQgetvalue(count, 0, 0), NULL, 10)));
        return;
    }
    if (dps_req_sql(r, NULL, "DELETE FROM teams WHERE id = $1", 1, &id) == NULL)
        return;
    dps_audit(r, "team.deleted", "team", id, json_pack("{s:s}", "name", PQgetvalue(team, 0, 0)));
    if (dps_req_commit(r) == 0)
        dps_http_json(r, 204, NULL);
}

/* ---- members ------------------------------------------------------------------------------------ */

/* The role a member is given: a falsy role means 'member' (the original's `role || 'member'`). NULL if invalid. */
static const char *member_role(json_t *v, const char *fallback)
{
    const char *s;

    if (falsy(v))
        return fallback;
    s = json_string_value(v);
    return s != NULL && (strcmp(s, "lead") == 0 || strcmp(s, "member") == 0) ? s : NULL;
}

/* Body of POST members, then the user it names: user id and role, or -1 after answering 400. */
static int member_add_input(dps_req_t *r, const char **user, const char **role, const char **email)
{
    json_t *uid = json_object_get(r->body, "user_id");
    PGresult *res;

    if (!json_is_string(uid) || json_string_length(uid) == 0) {
        error_field(r, 400, "user_id is required", "user_id");
        return -1;
    }
    if ((*role = member_role(json_object_get(r->body, "role"), "member")) == NULL) {
        error_field(r, 400, "role must be one of: lead, member", "role");
        return -1;
    }
    *user = json_string_value(uid);
    if (!dps_is_uuid(*user)) {
        error_field(r, 400, "User not found", "user_id");
        return -1;
    }
    if ((res = dps_req_sql(r, NULL, "SELECT email FROM users WHERE id = $1", 1, user)) == NULL)
        return -1;
    if (PQntuples(res) == 0) {
        error_field(r, 400, "User not found", "user_id");
        return -1;
    }
    *email = PQgetvalue(res, 0, 0);
    return 0;
}

void dps_api_teams_member_add(dps_req_t *r)
{
    const char *params[3], *email;
    PGresult *res;

    if (dps_require_admin(r) != 0 || (params[0] = team_or_404(r)) == NULL ||
        member_add_input(r, &params[1], &params[2], &email) != 0 || dps_req_begin(r) != 0)
        return;
    if ((res = dps_req_sql(
             r, "23505,23503",
             "WITH m AS (INSERT INTO team_members (team_id, user_id, role) VALUES ($1, $2, $3) RETURNING *) " MEMBER_WITH_USER, 3,
             params)) == NULL)
        return;
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        /* 23505: already a member (perhaps by a concurrent request); 23503: the team was deleted since team_or_404 */
        if (strcmp(PQresultErrorField(res, PG_DIAG_SQLSTATE), "23505") == 0)
            dps_http_error(r, 409, "User is already a member of this team");
        else
            dps_http_error(r, 404, "Team not found");
        return;
    }
    dps_audit(r, "team.member_added", "team", params[0],
              json_pack("{s:s,s:s,s:s}", "memberId", params[1], "memberEmail", email, "memberRole", params[2]));
    if (dps_req_commit(r) == 0)
        dps_http_json(r, 201, dps_row_json(res, 0));
}

void dps_api_teams_member_update(dps_req_t *r)
{
    const char *params[3], *previous;
    json_t *role = json_object_get(r->body, "role");
    PGresult *res;

    if (dps_require_admin(r) != 0 || (params[0] = team_or_404(r)) == NULL || dps_req_begin(r) != 0 ||
        (params[1] = member_or_404(r, params[0], &previous)) == NULL)
        return;
    if (falsy(role)) {
        error_field(r, 400, "role is required", "role");
        return;
    }
    if ((params[2] = member_role(role, NULL)) == NULL) {
        error_field(r, 400, "role must be one of: lead, member", "role");
        return;
    }
    if ((res = dps_req_sql(
             r, NULL,
             "WITH m AS (UPDATE team_members SET role = $3 WHERE team_id = $1 AND user_id = $2 RETURNING *) " MEMBER_WITH_USER, 3,
             params)) == NULL)
        return;
    dps_audit(r, "team.member_role_changed", "team", params[0],
              json_pack("{s:s,s:s,s:s}", "memberId", params[1], "previousRole", previous, "newRole", params[2]));
    if (dps_req_commit(r) == 0)
        dps_http_json(r, 200, dps_row_json(res, 0));
}

void dps_api_teams_member_remove(dps_req_t *r)
{
    const char *params[2], *previous;

    if (dps_require_admin(r) != 0 || (params[0] = team_or_404(r)) == NULL || dps_req_begin(r) != 0 ||
        (params[1] = member_or_404(r, params[0], &previous)) == NULL)
        return;
    if (dps_req_sql(r, NULL, "DELETE FROM team_members WHERE team_id = $1 AND user_id = $2", 2, params) == NULL)
        return;
    dps_audit(r, "team.member_removed", "team", params[0], json_pack("{s:s}", "memberId", params[1]));
    if (dps_req_commit(r) == 0)
        dps_http_json(r, 204, NULL);
}
