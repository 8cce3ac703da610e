/* The route table of the HTTP API. */
#ifndef DEPSERA_ROUTES_H
#define DEPSERA_ROUTES_H

#include "depsera/router.h"

extern const dps_route_t dps_routes[];
extern const size_t dps_routes_count;

/* Handlers, one group per API resource file. */
void dps_api_health(dps_req_t *r);
void dps_api_health_live(dps_req_t *r);
void dps_api_auth_mode(dps_req_t *r);
void dps_api_auth_login(dps_req_t *r);
void dps_api_auth_login_redirect(dps_req_t *r);
void dps_api_auth_logout(dps_req_t *r);
void dps_api_auth_me(dps_req_t *r);
void dps_api_admin_settings_get(dps_req_t *r);
void dps_api_admin_settings_put(dps_req_t *r);
void dps_api_admin_span_retention_get(dps_req_t *r);
void dps_api_admin_span_retention_put(dps_req_t *r);
void dps_api_admin_audit_log(dps_req_t *r);

#endif
