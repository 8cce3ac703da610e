/* /api/services: registered services, their dependencies and health (graph-and-api.md §4.1-§4.4). */
#ifndef DEPSERA_API_SERVICES_H
#define DEPSERA_API_SERVICES_H

#include <jansson.h>

#include "depsera/router.h"
#include "depsera/ssrf.h"

/* The base service fields of §4.1, in order, of `services` aliased s (the "full service row"). */
#define DPS_SERVICE_COLUMNS                                                                                                        \
    "s.id, s.name, s.team_id, s.health_endpoint, s.metrics_endpoint, s.schema_config, s.poll_interval_ms, s.is_active, "           \
    "s.is_external, s.description, s.last_poll_success, s.last_poll_error, s.health_endpoint_format, s.poll_warnings, "            \
    "COALESCE(s.manifest_managed, false) AS manifest_managed, s.manifest_key, s.created_at, s.updated_at"
/* Every column of `dependencies` aliased d, in table order (the "full dependency row"). */
#define DPS_DEPENDENCY_COLUMNS                                                                                                     \
    "d.id, d.service_id, d.name, d.canonical_name, d.description, d.impact, d.type, d.healthy, d.health_state, d.health_code, "    \
    "d.latency_ms, d.check_details, d.error, d.error_message, d.last_checked, d.last_status_change, d.created_at, d.updated_at, "  \
    "d.contact, d.contact_override, d.impact_override, d.skipped, d.discovery_source, d.user_display_name, d.user_description, "   \
    "d.user_impact"

/* Route handlers. Each answers the request itself (JSON body, or 204 without one). Reads need a
 * logged-in user (and team membership for one service), mutations a lead of the team or an admin;
 * every mutation commits together with its audit row and its NOTIFY depsera_poll / depsera_cache
 * ("service:<id>"). A malformed :id behaves as an unknown one (404). */

/* GET /api/services?team_id=&orderBy=&orderDirection=: non-external services in the detail shape. */
void dps_api_services_list(dps_req_t *r);
/* GET /api/services/:id: one service in the detail shape (dependencies carry is_muted:false). */
void dps_api_services_get(dps_req_t *r);
/* POST /api/services: 201 with the new service in the mutation shape. */
void dps_api_services_create(dps_req_t *r);
/* PUT /api/services/:id: 200 with the service in the mutation shape. */
void dps_api_services_update(dps_req_t *r);
/* DELETE /api/services/:id: 204. */
void dps_api_services_delete(dps_req_t *r);
/* POST /api/services/test-schema (graph-and-api.md §4.5) */
void dps_api_services_test_schema(dps_req_t *r);
/* The SSRF allowlist in force (the ssrf_allowlist setting, else SSRF_ALLOWLIST), freed with the
 * request. 0, or -1 after answering 503/500. */
int dps_api_load_allowlist(dps_req_t *r, dps_ssrf_allowlist_t **out) __attribute__((warn_unused_result));
/* POST /api/services/:id/poll (polling.md §6): answered once the poller has polled */
void dps_api_services_poll(dps_req_t *r);
/* GET /api/services/:id/poll-history (polling.md §7) */
void dps_api_services_poll_history(dps_req_t *r);

/* ---- body validation (src/api/services_validate.c; §4.3) ------------------------------------------ */

/* A service body after validation. Strings point into the body (or are static); schema_config is a
 * new reference to the canonical document (NULL = store SQL NULL), released by dps_service_input_clear.
 * has_* = the member is to be written (a written metrics_endpoint / schema_config may be NULL). */
typedef struct {
    const char *name, *team_id, *format, *health_endpoint, *metrics_endpoint;
    json_t *schema_config;
    long long poll_interval_ms;
    int is_active;
    int has_name, has_team_id, has_format, has_health_endpoint, has_metrics_endpoint, has_poll_interval, has_schema_config,
        has_is_active;
    char *error;       /* the first failure (malloc'd), or NULL */
    const char *field; /* its field, or NULL for "No valid fields to update" */
} dps_service_input_t;

/* Validate a POST body in the order of §4.3 against the SSRF rules of `al` (may be NULL). 0, or -1 with
 * in->error / in->field set. Either way call dps_service_input_clear. */
int dps_service_validate_create(json_t *body, const dps_ssrf_allowlist_t *al, dps_service_input_t *in)
    __attribute__((warn_unused_result));
/* Validate a PUT body; `stored_format` is the service's current format. Beyond §4.3: the effective
 * format (body, else stored) decides the OTLP rules, so a service that is or becomes `otlp` gets
 * health_endpoint '' and poll_interval_ms 0, and one leaving `otlp` must be given a health_endpoint
 * (its interval becomes 30000 unless given). 0, or -1 as above. */
int dps_service_validate_update(json_t *body, const dps_ssrf_allowlist_t *al, const char *stored_format, dps_service_input_t *in)
    __attribute__((warn_unused_result));
/* Release what a validation left in `in` (safe on a zeroed or already cleared struct). */
void dps_service_input_clear(dps_service_input_t *in);

/* schema_config validators, also for test-schema: `value` is a JSON object or a string holding one.
 * Return the canonical document (members in canonical order, unknown members dropped; new reference),
 * or NULL with the message in *err (malloc'd, caller frees). */
json_t *dps_schema_mapping_validate(json_t *value, char **err);
json_t *dps_metric_schema_validate(json_t *value, char **err);

#endif
