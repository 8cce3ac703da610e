/* /api/graph: the dependency graph of services, external nodes and edges (graph-and-api.md §6). */
#ifndef DEPSERA_API_GRAPH_H
#define DEPSERA_API_GRAPH_H

#include "depsera/router.h"

/* GET /api/graph?dependency=|service=|team= (the first non-empty one wins; none: the full graph), for
 * any logged-in user (401 otherwise). 200 {"nodes":[…],"edges":[…]}, gzip when the client accepts
 * it; an unknown or malformed id is an empty graph. Three statements at most after the session's,
 * however large the graph (the full graph: one more when its worker takes the snapshot of the 24 h
 * averages, and the rows read twice when the history changed under that snapshot; graph_avg.h). */
void dps_api_graph(dps_req_t *r);

#endif
