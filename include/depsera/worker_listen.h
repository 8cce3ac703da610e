/* A worker's LISTEN connection on depsera_cache and the cache generation every worker cache checks. */
#ifndef DEPSERA_WORKER_LISTEN_H
#define DEPSERA_WORKER_LISTEN_H

#define H2O_USE_LIBUV 0
#include <h2o.h>

#include <stdint.h>

#include "depsera/config.h"

#define DPS_CACHE_CHANNEL "depsera_cache"

typedef struct dps_worker_listen dps_worker_listen_t;

/* Start LISTENing on depsera_cache over DATABASE_LISTEN_URL (else DATABASE_URL), driven by `loop`:
 * the connection is opened without blocking the loop, watched by it, and reopened with a backoff
 * (250 ms doubling to 5 s) whenever it fails or is lost. Never NULL except on OOM. One per process. */
dps_worker_listen_t *dps_worker_listen_create(h2o_evloop_t *loop, const dps_config_t *cfg);
/* Close the connection and release the loop's timers; call before the loop is destroyed. NULL is a no-op. */
void dps_worker_listen_destroy(dps_worker_listen_t *l);

/* The process's cache generation. A cached value is usable only while the generation it was loaded
 * under is still current (and its own TTL has not run out): the generation moves on every NOTIFY on
 * depsera_cache, whatever its payload, and whenever the listener (re)subscribes, since notifications
 * sent while it was down are lost. Notifications are hints: caches keep a short TTL regardless. */
uint64_t dps_worker_listen_generation(void);
/* Move the generation on: every cached value of this process becomes stale. */
void dps_worker_listen_invalidate(void);
/* 1 while the listener is subscribed (notifications are being received), 0 otherwise. */
int dps_worker_listen_active(void);

#endif
