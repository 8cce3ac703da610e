/* A small per-process cache of byte strings by string key, each entry valid for a fixed time. For the
 * lookups a worker repeats on every OTLP push (service, resource, association checks): bounded (full =
 * emptied), no locking (workers are single-threaded). */
#ifndef DEPSERA_TTLCACHE_H
#define DEPSERA_TTLCACHE_H
#include <stddef.h>
#include <stdint.h>

typedef struct dps_ttlcache dps_ttlcache_t;

/* Room for `capacity` entries, each valid `ttl_ms` after it was put. NULL when out of memory. */
dps_ttlcache_t *dps_ttlcache_create(size_t capacity, int64_t ttl_ms);
void dps_ttlcache_destroy(dps_ttlcache_t *c);
/* The value of a live entry (and its length), or NULL. Valid until the next put or clear. */
const void *dps_ttlcache_get(dps_ttlcache_t *c, const void *key, size_t key_len, int64_t now_ms, size_t *len);
/* Store a copy of value under a copy of key (replacing an entry of the same key). 0, or -1 when out
 * of memory (the cache is unchanged). */
int dps_ttlcache_put(dps_ttlcache_t *c, const void *key, size_t key_len, const void *value, size_t len, int64_t now_ms);
/* Forget everything (after a failure that may come from a stale entry, or a change notification). */
void dps_ttlcache_clear(dps_ttlcache_t *c);

#endif
