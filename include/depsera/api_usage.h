/* Usage read endpoints: the request counts of API keys per minute and per hour (api-keys-and-rate-limits.md §7). */
#ifndef DEPSERA_API_USAGE_H
#define DEPSERA_API_USAGE_H

#include "depsera/router.h"

/* Route handlers; each answers the request itself. Query: `from` and `to` (ISO-8601 date or date-time,
 * no offset meaning UTC; absent or empty = the default window ending now), else 400 `from must be an
 * ISO-8601 timestamp` (or `to …`). They are answered verbatim and compared with bucket_start as
 * instants (UTC), bounds included. A bucket is {"api_key_id", "bucket_start" (YYYY-MM-DDTHH:MM:00,
 * UTC), "granularity", "push_count", "rejected_count"}; buckets come in ascending bucket_start.
 * Defaults are rendered as ISO-8601 UTC with milliseconds and Z. */

/* GET /api/teams/:id/api-keys/:keyId/usage?granularity=minute|hour: lead of :id or admin (403 `Team
 * lead access required`), 403 `API key does not belong to this team` (unknown, malformed or another
 * team's key), 400 `granularity must be "minute" or "hour"`. 200 {"api_key_id", "granularity",
 * "from", "to", "buckets"}; default window 24 h (minute) or 30 days (hour). */
void dps_api_usage_team_key(dps_req_t *r);
/* GET /api/admin/api-keys/:keyId/usage: as above for admins, with 404 `API key not found`. */
void dps_api_usage_admin_key(dps_req_t *r);
/* GET /api/admin/otlp-usage: admin; the hour buckets of every existing key, each with "team_id" and
 * "key_name" (rows of deleted keys are left out), ascending; default window 7 days. 200 {"from", "to",
 * "buckets"}. */
void dps_api_usage_admin_all(dps_req_t *r);

#endif
