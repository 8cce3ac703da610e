/* Per-key rate limits set by team leads and admins (api-keys-and-rate-limits.md §2.1, §8). */
#ifndef DEPSERA_API_RATE_LIMITS_H
#define DEPSERA_API_RATE_LIMITS_H

#include "depsera/router.h"

#define DPS_RATE_LIMIT_TEAM_MAX_RPM 1500000 /* the most a team lead may set (§2.1) */

/* Route handlers; each answers the request itself. A success updates the key, evicts its shared token
 * bucket (rate_limit_state, limiter 'key') and queues NOTIFY depsera_cache 'api_key:<id>' in one
 * transaction, so that every worker of every node applies the new limit with a full bucket. 200 with
 * the key object (api_keys.h). Not audited. A malformed :keyId is an unknown key. */

/* PATCH /api/teams/:id/api-keys/:keyId/rate-limit {"rate_limit_rpm": null | integer}: lead of :id or
 * admin (403 `Team lead access required`), then in this order 404 `API key not found` (not a key of
 * :id), 403 `Rate limit locked by admin`, 400 `Unlimited (0) can only be set by admins`, 400
 * `rate_limit_rpm must be a positive integer or null` (also when absent), 400 `rate_limit_rpm exceeds
 * maximum of 1,500,000`. null stores NULL (the configured default). The checks hold for admins too:
 * they change locked keys and set 0 through the admin route. */
void dps_api_rate_limit_team(dps_req_t *r);
/* PATCH /api/admin/api-keys/:keyId/rate-limit {"rate_limit_rpm"?: null | integer >= 0, "admin_locked"?:
 * boolean}: admin only; 404 `API key not found`, then 400 `rate_limit_rpm must be a non-negative
 * integer or null`, then 400 `admin_locked must be a boolean` (true, false, 1 or 0). A present member
 * is applied (rate_limit_rpm null = the configured default, 0 = unlimited), an absent one keeps the
 * stored value (open-questions D16: the intent, not the original's quirks). */
void dps_api_rate_limit_admin(dps_req_t *r);

#endif
