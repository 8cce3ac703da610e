/* A request as handlers see it, and the only ways they answer it. */
#ifndef DEPSERA_HTTP_H
#define DEPSERA_HTTP_H

#define H2O_USE_LIBUV 0
#include <h2o.h>
#include <jansson.h>

#include "depsera/router.h"

#define DPS_API_MAX_BODY (100 * 1024) /* /api JSON bodies (graph-and-api.md §1) */

typedef struct dps_worker dps_worker_t;

struct dps_req {
    h2o_req_t *h2o;
    dps_worker_t *worker;
    const dps_route_t *route;
    dps_param_t params[DPS_ROUTE_MAX_PARAMS];
    size_t nparams;
    const char *req_id; /* allocated from the h2o request pool */
};

/* Send `body` (a reference is stolen; may be NULL for an empty body) as JSON with `status`. */
void dps_http_json(dps_req_t *r, int status, json_t *body);
/* Send {"error": msg} with `status`. */
void dps_http_error(dps_req_t *r, int status, const char *msg);
/* Add a response header (name and value are copied into the request pool). */
void dps_http_header(dps_req_t *r, const char *name, const char *value);

/* Precompute the headers every response carries (security headers per NODE_ENV). Called once per worker. */
void dps_http_init_common_headers(int production);
/* Add the common headers and X-Request-Id to an h2o response. */
void dps_http_add_common_headers(h2o_req_t *req, const char *req_id);

/* The worker's database connection (lazily connected; NULL while unavailable). */
struct dps_db *dps_worker_db(dps_worker_t *w);

#endif
