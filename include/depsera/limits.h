/* The request limiters (api-keys-and-rate-limits.md §0, §4, §5; graph-and-api.md §1): one module for
 * the global per-IP /api limiter, the /api/auth limiter, the per-IP OTLP limiters and the per-key
 * token bucket.
 *
 * State is global across workers and nodes: it lives in PostgreSQL (rate_limit_state, migration
 * 007). A worker does not ask PostgreSQL for every request: it leases a batch of tokens (bucket) or
 * hits (fixed window) and spends them locally. The lease is about LEASE_TARGET_MS worth of the
 * limit's rate, so that a slow limit (600/min: one token at a time) is exact and a fast one
 * (150,000/min: 250 at a time) costs one round trip per few hundred requests. Leases never exceed
 * what the shared state holds. A key's lease that a worker did not spend within the bucket's refill
 * time (capacity / rate) is dropped, so that leases idle workers hold do not stack on a bucket that
 * refilled under them; what a worker holds unspent is given back when it stops (dps_limits_release).
 * A burst after a quiet spell takes at most the capacity plus the leases younger than that time
 * (workers × about 100 ms of the rate).
 *
 * When the shared state says there is nothing left, the worker refuses locally until the time at
 * which the next token (or the next window) can exist, then asks again. */
#ifndef DEPSERA_LIMITS_H
#define DEPSERA_LIMITS_H

#include <stddef.h>
#include <stdint.h>

/* A lease is about this much of the limit's rate... */
#define DPS_LIMITS_LEASE_TARGET_MS 100
/* ...and at most this many tokens. */
#define DPS_LIMITS_MAX_LEASE 1000

typedef enum {
    DPS_LIMIT_KEY,          /* token bucket per API key id (§5) */
    DPS_LIMIT_API,          /* fixed window per client address, /api/... */
    DPS_LIMIT_AUTH,         /* fixed window per client address, /api/auth/... */
    DPS_LIMIT_OTLP_TRACES,  /* fixed window per client address, /v1/traces (§4) */
    DPS_LIMIT_OTLP_METRICS, /* fixed window per client address, /v1/metrics (§4) */
    DPS_LIMIT_KINDS
} dps_limit_kind_t;

/* The limit a hit is counted against. For DPS_LIMIT_KEY: limit = rpm, aux = capacity (burst). For
 * the windows: limit = hits per window, aux = window length in ms. limit <= 0 = unlimited. */
typedef struct {
    int64_t limit;
    int64_t aux;
    double warn_threshold; /* DPS_LIMIT_KEY: OTLP_RATE_LIMIT_WARNING_THRESHOLD */
} dps_limit_policy_t;

/* What the shared state answered to a lease. */
typedef struct {
    int64_t granted;  /* tokens or hits now held by the caller */
    double state;     /* bucket: tokens left in the shared bucket; window: hits used in the window */
    int64_t start_ms; /* window: start of the window (epoch ms, the state's clock) */
    int64_t now_ms;   /* the state's clock (epoch ms) when it answered */
} dps_lease_reply_t;

/* A lease request: want up to `want` (0 = only give back), giving back `give` unspent tokens or
 * hits (of the window that started at give_start_ms). 0, or -1 when the state cannot be reached. */
typedef int (*dps_lease_fn)(void *arg, dps_limit_kind_t kind, const char *subject, const dps_limit_policy_t *p, int64_t want,
                            int64_t give, int64_t give_start_ms, dps_lease_reply_t *out);

/* The outcome of one hit, with the values of the RateLimit-* headers. */
typedef struct {
    int limited;           /* 0: unlimited (or the state unreachable): no header, allowed */
    int allowed;           /* 0: answer 429 */
    int64_t limit;         /* RateLimit-Limit */
    int64_t remaining;     /* RateLimit-Remaining */
    int64_t reset;         /* RateLimit-Reset: bucket: absolute Unix s (§5.1); window: s until its end (§4) */
    int64_t retry_after_s; /* when refused, >= 1 */
    int warning;           /* bucket: X-RateLimit-Warning (§5.1) */
    int warn_log;          /* bucket: the §5.2 log line is due (debounced per worker and key) */
    int warn_percent;
    int64_t warn_used;
} dps_limit_decision_t;

typedef struct dps_limits dps_limits_t;

/* A worker's limiter: `slots` local entries (the least recently used is forgotten), leases through
 * `lease`. NULL when out of memory. */
dps_limits_t *dps_limits_create(size_t slots, dps_lease_fn lease, void *arg);
void dps_limits_destroy(dps_limits_t *l);

/* One hit of `subject` (client address or key id) at now_mono_ms. Never fails: when the shared
 * state cannot be reached the hit is allowed (limited = 0) — the request needs PostgreSQL anyway and
 * fails on its own. */
dps_limit_decision_t dps_limits_hit(dps_limits_t *l, dps_limit_kind_t kind, const char *subject, const dps_limit_policy_t *p,
                                    int64_t now_mono_ms);

/* Give back every unspent lease (graceful stop), for at most about 250 ms. Returns how many leases
 * were given back. */
size_t dps_limits_release(dps_limits_t *l, int64_t now_mono_ms);

/* The lease size: about target_ms worth of the rate, clamp(floor(rate × target_ms), 1,
 * min(max_lease, limit)) for a window (rate = limit / window) and the bucket rule of
 * dps_bucket_lease_size for a key. */
int64_t dps_limits_lease_size(dps_limit_kind_t kind, const dps_limit_policy_t *p);

/* The PostgreSQL lease (depsera_bucket_lease / depsera_window_lease of migration 007) on the
 * database handle `arg` (a dps_db_t *). */
int dps_limits_lease_pg(void *arg, dps_limit_kind_t kind, const char *subject, const dps_limit_policy_t *p, int64_t want,
                        int64_t give, int64_t give_start_ms, dps_lease_reply_t *out);

#endif
