/* Sessions (PostgreSQL `sessions`, signed cookie), CSRF double-submit cookies, and the auth guards. */
#ifndef DEPSERA_SESSION_H
#define DEPSERA_SESSION_H

#include "depsera/http.h"

#define DPS_SESSION_COOKIE "deps-dashboard.sid"
#define DPS_CSRF_COOKIE "csrf-token"
#define DPS_SESSION_MAX_AGE_S 86400

/* Cookie value for a session id: "<sid>.<base64url HMAC-SHA256(secret, sid)>". 0, or -1 if cap is too small. */
int dps_session_sign(const char *secret, const char *sid, char *out, size_t cap) __attribute__((warn_unused_result));
/* Checks a cookie value's signature (constant time) and extracts the sid; 0 if valid, -1 otherwise. */
int dps_session_verify(const char *secret, const char *cookie, char *sid, size_t cap) __attribute__((warn_unused_result));

/* Pipeline steps for /api requests; each returns 0 to go on, or -1 after answering. */
/* Reads the session cookie into r->sid when its signature is valid. */
void dps_session_read_cookie(dps_req_t *r);
/* Sets a csrf-token cookie on the response when the request has none (every /api response). */
void dps_csrf_issue(dps_req_t *r);
/* Rejects mutating methods whose X-CSRF-Token header does not equal the cookie sent with the
 * request (403; also when the cookie was absent and has just been issued). */
int dps_csrf_check(dps_req_t *r);

/* Guards: load the session user into r->user. 401 when there is none (or it is inactive: the session
 * is then destroyed), 403 for require_admin when the user is not an admin. 0 to go on, -1 answered. */
int dps_require_user(dps_req_t *r) __attribute__((warn_unused_result));
int dps_require_admin(dps_req_t *r) __attribute__((warn_unused_result));

/* Start a session for user_id (a fresh id; the request's old session, if any, is destroyed) and set
 * its cookie. 0, or -1 after answering. */
int dps_session_start(dps_req_t *r, const char *user_id) __attribute__((warn_unused_result));
/* Destroy the request's session and clear its cookie. 0, or -1 after answering. */
int dps_session_end(dps_req_t *r) __attribute__((warn_unused_result));

#endif
