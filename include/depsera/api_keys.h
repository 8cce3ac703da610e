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
