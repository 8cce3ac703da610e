/* Sessions live in PostgreSQL so that every worker of every node sees them; the cookie only carries a
 * signed random id. CSRF uses the double-submit cookie of graph-and-api.md §1.2. */
#include "depsera/session.h"
#include "depsera/config.h"
#include "depsera/log.h"
#include "depsera/util.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <string.h>

/* base64url without padding */
static void b64url(const unsigned char *in, size_t len, char *out)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0;

    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < len ? (uint32_t)in[i + 1] << 8 : 0) | (i + 2 < len ? in[i + 2] : 0);
        out[o++] = tbl[v >> 18 & 63];
        out[o++] = tbl[v >> 12 & 63];
        if (i + 1 < len)
            out[o++] = tbl[v >> 6 & 63];
        if (i + 2 < len)
            out[o++] = tbl[v & 63];
    }
    out[o] = '\0';
}

static void mac(const char *secret, const char *sid, char out[44])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;

    HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)sid, strlen(sid), md, &mdlen);
    b64url(md, mdlen, out);
}

int dps_session_sign(const char *secret, const char *sid, char *out, size_t cap)
{
    char sig[44];

    mac(secret, sid, sig);
    return (size_t)snprintf(out, cap, "%s.%s", sid, sig) < cap ? 0 : -1;
}

int dps_session_verify(const char *secret, const char *cookie, char *sid, size_t cap)
{
    const char *dot = strrchr(cookie, '.');
    char want[44], id[64];
    size_t n;

    if (dot == NULL || (n = (size_t)(dot - cookie)) == 0 || n >= sizeof(id) || n >= cap || strlen(dot + 1) != 43)
        return -1;
    memcpy(id, cookie, n);
    id[n] = '\0';
    mac(secret, id, want);
    if (CRYPTO_memcmp(want, dot + 1, 43) != 0)
        return -1;
    memcpy(sid, id, n + 1);
    return 0;
}

static const dps_config_t *cfg_of(dps_req_t *r)
{
    return dps_worker_config(r->worker);
}

static const char *cookie_attrs(dps_req_t *r, int http_only, long max_age)
{
    char *buf = h2o_mem_alloc_pool(&r->h2o->pool, 128);
    snprintf(buf, 128, "Path=/; Max-Age=%ld; SameSite=Lax%s%s", max_age, http_only ? "; HttpOnly" : "", r->secure ? "; Secure" : "");
    return buf;
}

void dps_session_read_cookie(dps_req_t *r)
{
    const char *c = dps_req_cookie(r, DPS_SESSION_COOKIE);

    r->sid[0] = '\0';
    if (c != NULL && dps_session_verify(cfg_of(r)->session_secret, c, r->sid, sizeof(r->sid)) != 0)
        r->sid[0] = '\0';
}

static int is_safe_method(const h2o_req_t *req)
{
    return h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET")) ||
           h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD")) ||
           h2o_memis(req->method.base, req->method.len, H2O_STRLIT("OPTIONS"));
}

void dps_csrf_issue(dps_req_t *r)
{
    unsigned char rnd[32];
    char token[65];

    if (dps_req_cookie(r, DPS_CSRF_COOKIE) != NULL || dps_random_bytes(rnd, sizeof(rnd)) != 0)
        return;
    dps_hex_encode(rnd, sizeof(rnd), token);
    /* a browser-session cookie (no Max-Age), readable by the UI, which echoes it in X-CSRF-Token */
    dps_req_set_cookie(r, DPS_CSRF_COOKIE, token, r->secure ? "Path=/; SameSite=Lax; Secure" : "Path=/; SameSite=Lax");
}

int dps_csrf_check(dps_req_t *r)
{
    const char *cookie = dps_req_cookie(r, DPS_CSRF_COOKIE), *header;

    if (is_safe_method(r->h2o))
        return 0;
    header = dps_req_header(r, "x-csrf-token");
    if (cookie == NULL || header == NULL || strlen(cookie) != strlen(header) || *cookie == '\0' ||
        CRYPTO_memcmp(cookie, header, strlen(cookie)) != 0) {
        dps_http_error(r, 403, "Invalid or missing CSRF token");
        r->responded = 1;
        return -1;
    }
    return 0;
}

static void set_session_cookie(dps_req_t *r, long max_age)
{
    char value[160];

    if (max_age == 0) {
        dps_req_set_cookie(r, DPS_SESSION_COOKIE, "", cookie_attrs(r, 1, 0));
        return;
    }
    if (dps_session_sign(cfg_of(r)->session_secret, r->sid, value, sizeof(value)) == 0)
        dps_req_set_cookie(r, DPS_SESSION_COOKIE, value, cookie_attrs(r, 1, max_age));
}

static int fail(dps_req_t *r, int status, const char *msg)
{
    dps_http_error(r, status, msg);
    r->responded = 1;
    return -1;
}

int dps_require_user(dps_req_t *r)
{
    const char *params[1] = {r->sid};
    PGresult *res;

    if (r->user != NULL)
        return 0;
    if (r->sid[0] == '\0')
        return fail(r, 401, "Not authenticated");
    res = dps_req_sql(r, NULL,
                      "SELECT u.id, u.email, u.name, u.role = 'admin', u.is_active, "
                      "       s.expire < now() + interval '23 hours 59 minutes' "
                      "FROM sessions s LEFT JOIN users u ON u.id = (s.sess->>'userId')::uuid "
                      "WHERE s.sid = $1 AND s.expire > now()",
                      1, params);
    if (res == NULL)
        return -1;
    if (PQntuples(res) == 0)
        return fail(r, 401, "Not authenticated");
    if (PQgetisnull(res, 0, 0) || PQgetvalue(res, 0, 4)[0] != 't') {
        if (dps_req_sql(r, NULL, "DELETE FROM sessions WHERE sid = $1", 1, params) == NULL)
            return -1;
        set_session_cookie(r, 0);
        return fail(r, 401, "User not found or inactive");
    }
    /* rolling expiry, written at most once a minute per session rather than on every request */
    if (PQgetvalue(res, 0, 5)[0] == 't' &&
        dps_req_sql(r, NULL, "UPDATE sessions SET expire = now() + interval '24 hours' WHERE sid = $1", 1, params) == NULL)
        return -1;
    r->user = h2o_mem_alloc_pool(&r->h2o->pool, sizeof(*r->user));
    snprintf(r->user->id, sizeof(r->user->id), "%s", PQgetvalue(res, 0, 0));
    snprintf(r->user->email, sizeof(r->user->email), "%s", PQgetvalue(res, 0, 1));
    snprintf(r->user->name, sizeof(r->user->name), "%s", PQgetvalue(res, 0, 2));
    r->user->is_admin = PQgetvalue(res, 0, 3)[0] == 't';
    set_session_cookie(r, DPS_SESSION_MAX_AGE_S);
    return 0;
}

int dps_require_admin(dps_req_t *r)
{
    if (dps_require_user(r) != 0)
        return -1;
    return r->user->is_admin ? 0 : fail(r, 403, "Admin access required");
}

int dps_session_start(dps_req_t *r, const char *user_id)
{
    unsigned char rnd[32];
    const char *params[2];

    /* a fresh id at every login: a session id planted before login is worth nothing after it */
    if (r->sid[0] != '\0') {
        params[0] = r->sid;
        if (dps_req_sql(r, NULL, "DELETE FROM sessions WHERE sid = $1", 1, params) == NULL)
            return -1;
    }
    if (dps_random_bytes(rnd, sizeof(rnd)) != 0)
        return fail(r, 500, "Internal server error");
    b64url(rnd, sizeof(rnd), r->sid);
    params[0] = r->sid;
    params[1] = user_id;
    if (dps_req_sql(r, NULL,
                    "INSERT INTO sessions (sid, sess, expire) VALUES ($1, jsonb_build_object('userId', $2::text, "
                    "'cookie', jsonb_build_object('maxAge', 86400000, 'httpOnly', true, 'path', '/')), "
                    "now() + interval '24 hours')",
                    2, params) == NULL)
        return -1;
    set_session_cookie(r, DPS_SESSION_MAX_AGE_S);
    return 0;
}

int dps_session_end(dps_req_t *r)
{
    const char *params[1] = {r->sid};

    if (r->sid[0] != '\0' && dps_req_sql(r, NULL, "DELETE FROM sessions WHERE sid = $1", 1, params) == NULL)
        return -1;
    r->sid[0] = '\0';
    set_session_cookie(r, 0);
    return 0;
}
