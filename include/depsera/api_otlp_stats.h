/* OTLP stats: a team's push services and API keys with their recent usage (api-keys-and-rate-limits.md §9). */
#ifndef DEPSERA_API_OTLP_STATS_H
#define DEPSERA_API_OTLP_STATS_H

#include "depsera/router.h"

/* Route handlers; each answers the request itself with a fixed number of statements, whatever the
 * number of services and keys.
 *
 * A service: the team's services of format otlp, by name: {"id", "name", "is_active",
 * "last_push_success" (booleans, null when never pushed), "last_push_error", "last_push_warnings" (the
 * stored JSON array, else null), "last_push_at" (updated_at), "dependency_count", "errors_24h" (poll
 * history errors of the last 24 h), "schema_config"}.
 * A key: every key of the team, newest first: {"id", "name", "key_prefix", "last_used_at",
 * "created_at", "rate_limit_rpm" (the key's, else OTLP_PER_KEY_RATE_LIMIT_RPM), "rate_limit_is_custom",
 * "rate_limit_admin_locked" (booleans), "usage_1h", "usage_24h", "rejected_24h" (sums over the minute
 * buckets), "usage_7d", "rejected_7d" (sums over the hour buckets)}: each request is counted once
 * (open-questions Q-USAGE), by the buckets whose bucket_start lies in [now - window, now].
 * Timestamps are ISO-8601 UTC with milliseconds and Z. */

/* GET /api/teams/:id/otlp-stats: members of :id and admins (403 `Team access required`; the original
 * let any user in, open-questions C). 200 {"services", "apiKeys", "summary": {"total_otlp_services",
 * "active_services", "services_with_errors", "services_never_pushed"}}; an unknown team has empty lists. */
void dps_api_otlp_stats_team(dps_req_t *r);
/* GET /api/admin/otlp-stats: admin. 200 {"teams": [{"team_id", "team_name", "services", "apiKeys"}],
 * "summary": {... as above, "total_teams"}}: the teams owning an OTLP service, in the order their first
 * service comes in by name. */
void dps_api_otlp_stats_admin(dps_req_t *r);

#endif
