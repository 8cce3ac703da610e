/* Recent GET /api/graph answers of one worker (graph-and-api.md §6), so that a dashboard many people
 * keep open, or one refreshing every few seconds, does not recompute a graph of several MB each time.
 * An answer is reused for GRAPH_CACHE_TTL_MS at most (health and latency read from polls and pushes
 * are at most that old), and never after a change notification (NOTIFY depsera_cache: services,
 * aliases, overrides, associations...). The graph is the same for every logged-in user. */
#ifndef DEPSERA_GRAPH_CACHE_H
#define DEPSERA_GRAPH_CACHE_H

#include "depsera/http.h"
#include "depsera/jsonbuf.h"

/* Answers the request from the cache entry of `key` if there is a live one (plain or gzip as the
 * client accepts). 1 when answered, 0 when the caller must compute. */
int dps_graph_cache_answer(dps_req_t *r, const char *key);
/* Keep the answer `b` (its text is taken) under `key` and send it. With a TTL of 0, only sends. */
void dps_graph_cache_send(dps_req_t *r, const char *key, dps_jsonbuf_t *b);

#endif
