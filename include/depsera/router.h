/* Route table matching: method + path pattern with :params, 404 and 405 decisions. */
#ifndef DEPSERA_ROUTER_H
#define DEPSERA_ROUTER_H

#include <stddef.h>

#define DPS_ROUTE_MAX_PARAMS 6

typedef struct dps_req dps_req_t;
typedef void (*dps_handler_t)(dps_req_t *r);

typedef struct {
    const char *method;  /* "GET", "POST", ...; GET routes also answer HEAD */
    const char *pattern; /* "/api/teams/:id/members/:userId" */
    dps_handler_t handler;
    size_t max_body; /* largest accepted request body in bytes; 0 = the /api default (100 KB) */
} dps_route_t;

/* A path parameter; value points into the request path (not decoded, not NUL-terminated). */
typedef struct {
    const char *name; /* points into the pattern, after ':' */
    size_t name_len;
    const char *value;
    size_t len;
} dps_param_t;

typedef enum {
    DPS_ROUTE_FOUND,      /* route and params set */
    DPS_ROUTE_NOT_FOUND,  /* no pattern matches the path: 404 */
    DPS_ROUTE_BAD_METHOD, /* the path matches, not with this method: 405, allow lists the methods */
} dps_route_result_t;

typedef struct {
    const dps_route_t *route;
    dps_param_t params[DPS_ROUTE_MAX_PARAMS];
    size_t nparams;
    char allow[96]; /* "GET, HEAD, POST" for 405 */
} dps_route_match_t;

/* Match `path` (without query string; one trailing slash is ignored) against the table. */
dps_route_result_t dps_router_match(const dps_route_t *routes, size_t nroutes, const char *method, size_t method_len,
                                    const char *path, size_t path_len, dps_route_match_t *out);

#endif
