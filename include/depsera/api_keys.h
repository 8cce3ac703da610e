/* /api/teams/:id/api-keys: a team's API keys for OTLP ingestion (api-keys-and-rate-limits.md §2). */
#ifndef DEPSERA_API_KEYS_H
#define DEPSERA_API_KEYS_H

#include "depsera/router.h"

/* Route handlers. Each answers the request itself; none returns anything to the caller. All need the
 * lead of team :id or an admin (401 anonymous, 403 `Team lead access required`, checked before any
 * existence: an unknown or malformed :id is a team the caller does not lead). A key object is every
 * team_api_keys column but key_hash, rate_limit_admin_locked as 0/1. Each mutation, its audit row
 * and its NOTIFY depsera_cache ('api_key:<id>', so every worker drops its cached lookups) commit
 * together. */

/* The key object's columns, of team_api_keys aliased `k`: every column but key_hash, the lock as 0/1
 * as the original emitted it. */
#define DPS_API_KEY_COLUMNS                                                                                                        \
    "k.id, k.team_id, k.name, k.key_prefix, k.last_used_at, k.created_at, k.created_by, k.rate_limit_rpm, "                        \
    "k.rate_limit_admin_locked::int AS rate_limit_admin_locked"

/* The guard of every /api/teams/:id/api-keys route: the :id (in the request pool) of a team the caller
 * leads, or any :id (even malformed, "" when absent) for an admin. NULL after answering 401/403 (or
 * 503/500). */
const char *dps_api_keys_lead_guard(dps_req_t *r) __attribute__((warn_unused_result));
/* Queue NOTIFY depsera_cache 'api_key:<id>' in the request's transaction: when it commits, every worker
 * drops its cached key lookups and limits (worker_listen.h). 0, or -1 after answering 503/500. */
int dps_api_keys_notify(dps_req_t *r, const char *id) __attribute__((warn_unused_result));

/* GET /api/teams/:id/api-keys: the team's key objects, newest first; 404 `Team not found`. */
void dps_api_keys_list(dps_req_t *r);
/* POST /api/teams/:id/api-keys {"name"}: 201 with the key object and "rawKey" (the only time it is
 * shown); 400 `Name is required` (field name) when name is not a string or is blank once trimmed;
 * 404 `Team not found`. Audit api_key.created. */
void dps_api_keys_create(dps_req_t *r);
/* DELETE /api/teams/:id/api-keys/:keyId: 204; 404 `API key not found` unless the key belongs to
 * team :id. Audit api_key.revoked. */
void dps_api_keys_revoke(dps_req_t *r);

#endif
