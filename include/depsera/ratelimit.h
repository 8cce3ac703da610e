/* Per-key token bucket arithmetic, lease sizing and usage bucket starts
 * (api-keys-and-rate-limits.md §5, §5.1, §5.2, §6; issue 6).
 *
 * Pure: no I/O, no allocation, no clock. Time is always a parameter (epoch milliseconds).
 * The global limiter keeps the bucket in PostgreSQL and runs the same formulas there; these
 * functions are the reference the SQL and the worker-side lease logic are tested against. */
#ifndef DEPSERA_RATELIMIT_H
#define DEPSERA_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

/* Capacities are capped so that every whole token count is exact in a double. */
#define DPS_BUCKET_MAX_CAPACITY ((int64_t)1 << 53)
/* Length of a bucket start string "YYYY-MM-DDTHH:MM:00" plus its NUL. */
#define DPS_USAGE_BUCKET_START_LEN 20

/* Token bucket state. Invariant kept by every function here: 0 <= tokens <= capacity, finite. */
typedef struct {
    double tokens;          /* tokens available at last_refill_ms (fractional: refill is continuous) */
    int64_t last_refill_ms; /* epoch ms of the last refill; never moves backwards */
} dps_bucket_t;

/* The outcome of one request against a bucket, with everything the §5.1 headers need. */
typedef struct {
    int limited;           /* 0: rpm is 0 (unlimited) — skip the limiter, set no header; 1 otherwise */
    int allowed;           /* 1: a token was taken; 0: reject with 429 */
    int64_t limit;         /* RateLimit-Limit: the effective rpm */
    int64_t remaining;     /* RateLimit-Remaining: max(0, floor(tokens)) after consumption */
    int64_t reset_s;       /* RateLimit-Reset: absolute Unix seconds when the bucket is full again */
    int64_t retry_after_s; /* Retry-After in seconds (>= 1) when rejected; 0 when allowed */
    int warning;           /* X-RateLimit-Warning: true (allowed requests only, §5.1) */
    int warn_percent;      /* round(consumed/capacity × 100), for the §5.2 log line */
    int64_t warn_used;     /* capacity − floor(tokens), for the §5.2 log line */
} dps_bucket_decision_t;

typedef enum {
    DPS_USAGE_MINUTE, /* bucket starts on the UTC minute: YYYY-MM-DDTHH:MM:00 */
    DPS_USAGE_HOUR    /* bucket starts on the UTC hour:   YYYY-MM-DDTHH:00:00 */
} dps_usage_granularity_t;

/* Effective rpm (§5): the key's value when `key_rpm` is non-NULL, else `default_rpm`.
 * 0 means unlimited; a negative value (never valid input) is also returned as 0. */
int64_t dps_bucket_effective_rpm(const int64_t *key_rpm, int64_t default_rpm);

/* Capacity (§5): ceil(rpm / 60 × burst_seconds), computed in integers, at least 1 and at most
 * DPS_BUCKET_MAX_CAPACITY. burst_seconds < 1 is treated as 1. Returns 0 for rpm <= 0 (unlimited). */
int64_t dps_bucket_capacity(int64_t rpm, int64_t burst_seconds);

/* A new bucket (§5 "Creation"): full, last refill at now_ms. */
void dps_bucket_init(dps_bucket_t *b, int64_t capacity, int64_t now_ms);

/* Refill to now_ms (§5): tokens = min(capacity, tokens + elapsed_ms × rpm/60000). A clock that
 * went backwards (now_ms < last_refill_ms) adds nothing and leaves last_refill_ms alone. */
void dps_bucket_refill(dps_bucket_t *b, int64_t rpm, int64_t capacity, int64_t now_ms);

/* One request at now_ms (§5 decision, §5.1 headers, §5.2 threshold): refill, then take one
 * token if at least one is there. `warn_threshold` is OTLP_RATE_LIMIT_WARNING_THRESHOLD
 * (0.80 by default; NaN or > 1 never warns). rpm <= 0 leaves the bucket alone and returns
 * limited = 0, allowed = 1. Never fails. */
dps_bucket_decision_t dps_bucket_take(dps_bucket_t *b, int64_t rpm, int64_t capacity, int64_t now_ms, double warn_threshold);

/* Lease size for the global limiter (issue 6). A worker takes `n` tokens from the shared bucket
 * in one round trip and spends them locally. The rule:
 *     n = clamp(floor(rpm × target_ms / 60000), 1, min(max_lease, capacity))
 *     n = min(n, floor(available))        (0 when available < 1: nothing to lease)
 * i.e. about target_ms worth of the key's refill. A slow key (600 rpm, 100 ms ⇒ 1) leases one
 * token at a time and is exact; a fast key (150000 rpm, 100 ms ⇒ 250) costs one round trip per
 * 250 requests. Invariant: the result never exceeds what the bucket holds. rpm <= 0 ⇒ 0. */
int64_t dps_bucket_lease_size(int64_t rpm, int64_t capacity, double available, int64_t target_ms, int64_t max_lease);

/* The shared-bucket side of a lease: refill to now_ms, size the lease with
 * dps_bucket_lease_size and take it out of the bucket. Returns the number of tokens granted
 * (0 means the caller rejects and asks again after dps_bucket_retry_after_s). */
int64_t dps_bucket_lease(dps_bucket_t *b, int64_t rpm, int64_t capacity, int64_t now_ms, int64_t target_ms, int64_t max_lease);

/* Retry-After for a bucket holding `tokens` (< 1): ceil((1 − tokens) / (rpm/60000) / 1000),
 * at least 1. Returns 0 when tokens >= 1 or rpm <= 0. */
int64_t dps_bucket_retry_after_s(double tokens, int64_t rpm);

/* Start (epoch ms, UTC) of the minute or hour bucket holding epoch_ms; floors negative times. */
int64_t dps_usage_bucket_start_ms(int64_t epoch_ms, dps_usage_granularity_t g);

/* Writes the bucket start of epoch_ms as "YYYY-MM-DDTHH:MM:00" (UTC, no zone, §6) into `out`
 * (DPS_USAGE_BUCKET_START_LEN bytes, caller-owned). Returns 0, or -1 (out untouched but for a
 * "" when out_len allows) when out_len is too small or the year is outside 0000..9999. */
int dps_usage_bucket_start(int64_t epoch_ms, dps_usage_granularity_t g, char *out, size_t out_len)
    __attribute__((warn_unused_result));

#endif
