/* Fixed-window request limiters keyed by client address (graph-and-api.md §1 steps 5 and 9).
 * State is per process for now: with N workers a client may get up to N times the limit. The
 * rate-limit issue moves the state to PostgreSQL so that it holds across workers and nodes. */
#ifndef DEPSERA_LIMITER_H
#define DEPSERA_LIMITER_H

#include <stddef.h>
#include <stdint.h>

typedef struct dps_limiter dps_limiter_t;

typedef struct {
    int allowed;        /* 1 if this hit is within the limit */
    long limit;         /* the window's limit */
    long remaining;     /* hits left in the window after this one */
    int64_t reset_ms;   /* milliseconds until the window ends */
} dps_limit_result_t;

/* `max` hits per `window_ms` per key, tracking up to `capacity` keys (the least recent are forgotten). */
dps_limiter_t *dps_limiter_create(long max, int64_t window_ms, size_t capacity);
void dps_limiter_destroy(dps_limiter_t *l);
/* Count one hit of `key` at `now_ms` (monotonic). */
dps_limit_result_t dps_limiter_hit(dps_limiter_t *l, const char *key, int64_t now_ms);

#endif
