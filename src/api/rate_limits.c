/* Rate limits of API keys, set by team leads within bounds and by admins without them (§2.1, §8). */
#include "depsera/api_rate_limits.h"
#include "depsera/api_keys.h"
#include "depsera/http.h"
#include "depsera/session.h"
#include "depsera/util.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>

static const char key_not_found[] = "API key not found";

/* What an accepted body changes: each member is applied only when its flag is set. */
typedef struct {
    int set_rpm, set_lock;
    const char *rpm;  /* decimal text, or NULL for the configured default */
    const char *lock; /* "t" or "f" */
    char rpm_text[24];
} change_t;

/* JavaScript's Number.isInteger on a JSON value: an integer, or a real without a fraction (100.0, 1e30),
 * as the original's check saw them. */
static int js_integer(json_t *v, double *out)
{
    double d;

    if (!json_is_number(v))
        return 0;
    d = json_number_value(v);
    if (!isfinite(d) || d != floor(d))
        return 0;
    *out = d;
    return 1;
}

/* The key's row, locked until the transaction ends (a concurrent lock or limit change waits for ours).
 * Opens the transaction. The row (column 0: the lock), or NULL after answering 404 (or 503/500). */
static PGresult *lock_key(dps_req_t *r, const char *key, const char *team)
{
    const char *params[2] = {key, team};
    PGresult *res;

    if (key == NULL || !dps_is_uuid(key) || (team != NULL && !dps_is_uuid(team))) {
        dps_http_error(r, 404, key_not_found);
        return NULL;
    }
    if (dps_req_begin(r) != 0 ||
        (res = dps_req_sql(r, NULL,
                           team != NULL
                               ? "SELECT rate_limit_admin_locked FROM team_api_keys WHERE id = $1 AND team_id = $2 FOR UPDATE"
                               : "SELECT rate_limit_admin_locked FROM team_api_keys WHERE id = $1 FOR UPDATE",
                           team != NULL ? 2 : 1, params)) == NULL)
        return NULL;
    if (PQntuples(res) == 0) {
        dps_http_error(r, 404, key_not_found);
        return NULL;
    }
    return res;
}

/* Apply the change inside the open transaction, evict the key's shared token bucket (the next request
 * starts a full one at the new rate, §5) and notify every worker; commit and answer 200 with the key. */
static void store(dps_req_t *r, const char *key, const change_t *c)
{
    const char *params[5] = {key, c->set_rpm ? "t" : "f", c->rpm, c->set_lock ? "t" : "f", c->lock}, *id;
    PGresult *res;

    if ((res = dps_req_sql(r, NULL,
                           "UPDATE team_api_keys k SET "
                           "rate_limit_rpm = CASE WHEN $2::boolean THEN $3::integer ELSE k.rate_limit_rpm END, "
                           "rate_limit_admin_locked = CASE WHEN $4::boolean THEN $5::boolean ELSE k.rate_limit_admin_locked END "
                           "WHERE k.id = $1 RETURNING " DPS_API_KEY_COLUMNS,
                           5, params)) == NULL)
        return;
    id = PQgetvalue(res, 0, 0); /* the bucket's subject is the id as PostgreSQL writes it, whatever case :keyId has */
    if (dps_req_sql(r, NULL, "DELETE FROM rate_limit_state WHERE limiter = 'key' AND subject = $1", 1, &id) == NULL ||
        dps_api_keys_notify(r, id) != 0 || dps_req_commit(r) != 0)
        return;
    dps_http_json(r, 200, dps_row_json(res, 0));
}

/* §2.1 step 3: NULL if the body is acceptable (c filled), else the message of the 400. */
static const char *team_rpm(json_t *body, change_t *c)
{
    json_t *v = json_object_get(body, "rate_limit_rpm");
    double d;

    c->set_rpm = 1;
    if (json_is_null(v))
        return NULL;
    if (json_is_number(v) && json_number_value(v) == 0)
        return "Unlimited (0) can only be set by admins";
    if (!js_integer(v, &d) || d < 1) /* absent included */
        return "rate_limit_rpm must be a positive integer or null";
    if (d > DPS_RATE_LIMIT_TEAM_MAX_RPM)
        return "rate_limit_rpm exceeds maximum of 1,500,000";
    snprintf(c->rpm_text, sizeof(c->rpm_text), "%lld", (long long)d);
    c->rpm = c->rpm_text;
    return NULL;
}

/* §8 steps 2 and 3, as intended (open-questions D16): NULL if acceptable (c filled), else the 400's
 * message. rate_limit_rpm has no upper bound but the column's: a value PostgreSQL's integer cannot
 * hold is refused like any other invalid one rather than failing the UPDATE. admin_locked takes true
 * and false, and the 1 and 0 the key object shows the lock as; any other value is refused instead of
 * being judged by JavaScript truthiness (the original locked a key on "false"). */
static const char *admin_change(json_t *body, change_t *c)
{
    json_t *rpm = json_object_get(body, "rate_limit_rpm"), *lock = json_object_get(body, "admin_locked");
    double d;

    if (rpm != NULL && !json_is_null(rpm)) {
        if (!js_integer(rpm, &d) || d < 0 || d > INT32_MAX)
            return "rate_limit_rpm must be a non-negative integer or null";
        snprintf(c->rpm_text, sizeof(c->rpm_text), "%lld", (long long)d);
        c->rpm = c->rpm_text;
    }
    c->set_rpm = rpm != NULL;
    if (lock != NULL) {
        if (!json_is_boolean(lock) && !(json_is_integer(lock) && (json_integer_value(lock) == 0 || json_integer_value(lock) == 1)))
            return "admin_locked must be a boolean";
        c->set_lock = 1;
        c->lock = json_is_true(lock) || (json_is_integer(lock) && json_integer_value(lock) == 1) ? "t" : "f";
    }
    return NULL;
}

void dps_api_rate_limit_team(dps_req_t *r)
{
    change_t c = {0};
    const char *team, *key, *err;
    PGresult *res;

    if ((team = dps_api_keys_lead_guard(r)) == NULL)
        return;
    key = dps_req_param(r, "keyId");
    if ((res = lock_key(r, key, team)) == NULL)
        return;
    if (PQgetvalue(res, 0, 0)[0] == 't') {
        dps_http_error(r, 403, "Rate limit locked by admin");
        return;
    }
    if ((err = team_rpm(r->body, &c)) != NULL) {
        dps_http_error(r, 400, err);
        return;
    }
    store(r, key, &c);
}

void dps_api_rate_limit_admin(dps_req_t *r)
{
    change_t c = {0};
    const char *key, *err;

    if (dps_require_admin(r) != 0)
        return;
    key = dps_req_param(r, "keyId");
    if (lock_key(r, key, NULL) == NULL)
        return;
    if ((err = admin_change(r->body, &c)) != NULL) {
        dps_http_error(r, 400, err);
        return;
    }
    store(r, key, &c);
}
