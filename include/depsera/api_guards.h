/* The team guards of graph-and-api.md §2 and the small answers every /api handler shares. */
#ifndef DEPSERA_API_GUARDS_H
#define DEPSERA_API_GUARDS_H

#include <jansson.h>

#include "depsera/router.h"

/* Send {"error": msg, "field": field} (field may be NULL: then only "error") with `status`. */
void dps_api_error_field(dps_req_t *r, int status, const char *msg, const char *field);

/* The path parameter `name` when it is a UUID (in the request pool); otherwise answers 404 with
 * {"error": not_found} and returns NULL (a malformed id is an unknown id, open-questions.md B). */
const char *dps_api_uuid_param(dps_req_t *r, const char *name, const char *not_found) __attribute__((warn_unused_result));

/* The logged-in caller's role in `team`: "lead", "member", or "" for none (a NULL or malformed id is
 * no team). The string lives with the request. NULL after answering 503/500. */
const char *dps_api_team_role(dps_req_t *r, const char *team) __attribute__((warn_unused_result));

/* The team guards (admins pass): 0 if the caller is a member (lead != 0: a lead) of `team`, or -1
 * after answering 403 `Team access required` / `Team lead access required` (or 503/500). */
int dps_api_require_team_role(dps_req_t *r, const char *team, int lead) __attribute__((warn_unused_result));

/* How a dependency "reports" a name, for the guards of aliases, global canonical overrides and external
 * node enrichment (overview.md §4, open-questions.md C). */
typedef enum {
    DPS_REPORTS_NAME,      /* its reported name equals the value (aliases: exact, case-sensitive) */
    DPS_REPORTS_CANONICAL, /* its canonical_name equals the value */
    DPS_REPORTS_NODE,      /* it is grouped into the external node of that name: lower(trim(canonical_name ?? name)) */
} dps_reports_t;

/* Admins pass; anyone else must lead a team that owns a service with a dependency reporting `value`
 * (`how`). 0, or -1 after answering 403 {"error": msg} (or 503/500). */
int dps_api_require_reporting_lead(dps_req_t *r, dps_reports_t how, const char *value, const char *msg)
    __attribute__((warn_unused_result));

/* Queue NOTIFY depsera_cache '<what>:<id>' in the request's open transaction: at COMMIT every worker
 * drops its cached lookups (worker_listen.h). 0, or -1 after answering 503/500. */
int dps_api_notify_cache(dps_req_t *r, const char *what, const char *id) __attribute__((warn_unused_result));

/* COMMIT the request's transaction, then send `body` (stolen; NULL: no body) with `status`; on a failed
 * COMMIT (answered 503/500) `body` is released instead. */
void dps_api_commit_json(dps_req_t *r, int status, json_t *body);

#endif
