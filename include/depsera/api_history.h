/* Reads of a dependency's history: health timeline, errors, latency and latency buckets
 * (graph-and-api.md §5.1, §5.2). */
#ifndef DEPSERA_API_HISTORY_H
#define DEPSERA_API_HISTORY_H

#include "depsera/router.h"

/* Route handlers, for any logged-in user (401 otherwise; open-questions.md C). A malformed id is an
 * unknown one: 404 {"error":"Dependency not found"}. Windows are exact intervals back from now. */

/* GET /api/dependencies/:id/timeline?range=24h|7d|30d (default 24h; else 400): the current state and
 * the error-history rows in the range, oldest first, as healthy/unhealthy transitions. */
void dps_api_history_timeline(dps_req_t *r);
/* GET /api/errors/:dependencyId: the error count of the last 24 h and its 50 newest rows. */
void dps_api_history_errors(dps_req_t *r);
/* GET /api/latency/:dependencyId: current latency, 24 h average/min/max/count, 100 newest points. */
void dps_api_history_latency(dps_req_t *r);
/* GET /api/latency/:dependencyId/buckets?range=1h|6h|24h|7d|30d (default 24h; else 400). */
void dps_api_history_buckets(dps_req_t *r);
/* GET /api/latency/aggregate/buckets?dependencyIds=a,b&range=: the buckets of every listed
 * dependency pooled (ids are not checked: unknown ones add nothing). */
void dps_api_history_aggregate_buckets(dps_req_t *r);

#endif
