/* A request as handlers see it, and the only ways they answer it. */
#ifndef DEPSERA_HTTP_H
#define DEPSERA_HTTP_H

#define H2O_USE_LIBUV 0
#include <h2o.h>
#include <jansson.h>

#include <libpq-fe.h>

#include "depsera/router.h"

#define DPS_API_MAX_BODY (100 * 1024) /* /api JSON bodies (graph-and-api.md §1) */

typedef struct dps_worker dps_worker_t;

/* The logged-in user of a request (from its session). */
typedef struct {
    char id[40];
    char email[256];
    char name[256];
    int is_admin;
} dps_user_t;

struct dps_req {
    h2o_req_t *h2o;
    dps_worker_t *worker;
    const dps_route_t *route;
    dps_param_t params[DPS_ROUTE_MAX_PARAMS];
    size_t nparams;
    const char *req_id;  /* allocated from the h2o request pool */
    char client_ip[48];  /* peer, or X-Forwarded-For hop through trusted proxies */
    int secure;          /* HTTPS, directly or as reported by a trusted proxy */
    json_t *body;        /* parsed JSON body, or NULL (no body or not JSON) */
    dps_user_t *user;    /* session user, loaded by the auth guard; NULL if anonymous */
    char sid[64];        /* session id from a valid cookie, "" if none */
    int responded;       /* a response has been sent: handlers stop */
};

/* Send `body` (a reference is stolen; may be NULL for an empty body) as JSON with `status`. */
void dps_http_json(dps_req_t *r, int status, json_t *body);
/* Send `len` bytes of `data` (malloc'd; ownership passes to the request, which frees it once sent)
 * with `status` and `content_type`, without copying. */
void dps_http_send_owned(dps_req_t *r, int status, const char *content_type, char *data, size_t len);
/* Send `len` bytes of text that is already JSON (copied) with `status`. */
void dps_http_json_text(dps_req_t *r, int status, const char *text, size_t len);
/* Send {"error": msg} with `status`. */
void dps_http_error(dps_req_t *r, int status, const char *msg);
/* Add a response header (name and value are copied into the request pool). */
void dps_http_header(dps_req_t *r, const char *name, const char *value);
/* Set a response header, replacing any earlier one of that name (copied into the pool). */
void dps_http_set_header(dps_req_t *r, const char *name, const char *value);

/* Precompute the headers every response carries (security headers per NODE_ENV). Called once per worker. */
void dps_http_init_common_headers(int production);
/* Add the common headers and X-Request-Id to an h2o response. */
void dps_http_add_common_headers(h2o_req_t *req, const char *req_id);

/* The worker's database connection (lazily connected; NULL while unavailable). */
struct dps_db *dps_worker_db(dps_worker_t *w);
/* The worker's configuration. */
const struct dps_config *dps_worker_config(dps_worker_t *w);
/* A handler that answers later (a copy of its dps_req_t in the request's pool) has `entry` called
 * back on the worker's loop in about DPS_WORKER_WAIT_MS, outside any other request (the database
 * connection idle); it links the entry again to wait more. The entry must be unlinked when the
 * request's pool goes (the client left). */
#define DPS_WORKER_WAIT_MS 100
void dps_worker_wait(dps_worker_t *w, h2o_timeout_entry_t *entry);

/* Request helpers (src/http/request.c). */

/* The value of cookie `name` in the request, copied into the request pool; NULL if absent. */
const char *dps_req_cookie(dps_req_t *r, const char *name);
/* The value of query parameter `name` (percent-decoded, in the pool); NULL if absent. */
const char *dps_req_query_param(dps_req_t *r, const char *name);
/* The path parameter `name` (percent-decoded, in the pool); NULL if absent. */
const char *dps_req_param(dps_req_t *r, const char *name);
/* The first value of request header `name` (lower case), in the pool; NULL if absent. */
const char *dps_req_header(dps_req_t *r, const char *name);
/* Set a cookie: `attrs` is appended after "name=value; " (e.g. "Path=/; HttpOnly"). */
void dps_req_set_cookie(dps_req_t *r, const char *name, const char *value, const char *attrs);

/* Runs a parameterised statement on the worker's connection. On success returns the result (cleared
 * with the request). On failure answers 503 (database unavailable) or 500 and returns NULL, unless
 * the SQLSTATE is listed in `allow` ("23505,23503"; may be NULL): then the failed result is returned
 * for the caller to inspect with PQresultErrorField(res, PG_DIAG_SQLSTATE). */
PGresult *dps_req_sql(dps_req_t *r, const char *allow, const char *sql, int n, const char *const *params);
/* BEGIN / COMMIT on the worker's connection; 0, or -1 after answering 503/500. A transaction still
 * open when the handler returns is rolled back. */
int dps_req_begin(dps_req_t *r) __attribute__((warn_unused_result));
int dps_req_commit(dps_req_t *r) __attribute__((warn_unused_result));

/* A result row as a JSON object: booleans, numbers, json/jsonb values, timestamps as ISO-8601 UTC
 * with milliseconds and Z, NULL as null, everything else as strings. New reference. */
json_t *dps_row_json(PGresult *res, int row);
/* Every row as a JSON array of objects. New reference. */
json_t *dps_rows_json(PGresult *res);
/* Convert PostgreSQL timestamptz text ("2026-04-07 02:10:00.123456+02") to ISO UTC with ms; -1 if unparsable. */
int dps_pg_timestamp_iso(const char *pg, char *out, size_t cap);

#endif
