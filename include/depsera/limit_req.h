/* The limiters as requests meet them: the policy of each limiter (configuration, runtime settings,
 * the key's rate_limit_rpm) and the RateLimit-* headers (api-keys-and-rate-limits.md §4, §5.1;
 * graph-and-api.md §1). */
#ifndef DEPSERA_LIMIT_REQ_H
#define DEPSERA_LIMIT_REQ_H

#include "depsera/apikey.h"
#include "depsera/http.h"
#include "depsera/limits.h"

/* The worker's limiters; NULL when NODE_ENV=development disables them. */
dps_limits_t *dps_worker_limits(dps_worker_t *w);

/* The policy of a per-IP limiter (API, AUTH, OTLP_*): the API and auth limits and windows come from
 * the runtime settings (global_rate_limit, ..., configuration.md §2) when set, else from the
 * environment; the settings are re-read within a few seconds of a change (NOTIFY depsera_cache
 * at once). */
dps_limit_policy_t dps_limit_ip_policy(dps_req_t *r, dps_limit_kind_t kind);
/* The per-key bucket policy (§5): effective rpm and capacity; limit 0 = unlimited. */
dps_limit_policy_t dps_limit_key_policy(dps_req_t *r, const dps_apikey_t *key);

/* The subject of a per-IP limiter for client address `ip`: an IPv6 address stands for its /56 (one
 * site: a client cannot escape its limit by walking its own prefix), an IPv4-mapped IPv6 address
 * for its IPv4 address, anything else for itself. */
void dps_limit_ip_subject(const char *ip, char *out, size_t cap);

/* Count the request: a per-IP limiter for r->client_ip, or the key bucket for key->id. Sets
 * RateLimit-Limit, -Remaining, -Reset (replacing a previous limiter's), RateLimit-Policy for the
 * OTLP per-IP limiters, X-RateLimit-Key and X-RateLimit-Warning for a key, Retry-After on refusal,
 * and logs the §5.2 soft-limit warning. Returns the decision (allowed = 1 when not limited). */
dps_limit_decision_t dps_limit_request(dps_req_t *r, dps_limit_kind_t kind, const dps_apikey_t *key);

#endif
