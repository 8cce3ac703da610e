/* The 24-hour average latencies of the full graph (graph-and-api.md §6.1: avgLatencyMs24h) from a
 * per-worker snapshot instead of every row of the window on every request. The snapshot holds each
 * dependency's count and sum of the window [B - 24 h, B), B ten minutes before it was taken; a
 * request reads only the rows that left the window since ([B - 24 h, now() - 24 h)) and the rows
 * from B on, and pools them with it: the same value as the average of the raw rows. It holds while
 * latency_history_epoch (migration 011) has not moved: a back-dated row, a delete or an update moves
 * it, and the request then reads the raw rows (the rows statement says so: SNAPSHOT_ROWS_SQL in
 * graph.c).
 * Rows written with their current time by a transaction open less than nine minutes cannot be
 * missed: they lie after B. */
#ifndef DEPSERA_GRAPH_AVG_H
#define DEPSERA_GRAPH_AVG_H

#include <libpq-fe.h>

#include "depsera/http.h"
#include "depsera/jsonbuf.h"

/* A float8 expression as the hex of its IEEE bytes, which the C side reads back exactly. */
#define DPS_GRAPH_AVG_HEX(x) "encode(float8send(" x "), 'hex')"

/* The parameters of the full graph's rows statement: B (epoch seconds) and the snapshot's epoch;
 * `usable` is 0 when a dependency's snapshot sum is not finite (an infinity leaving the window
 * cannot be subtracted: the rows are read with the raw averages). */
typedef struct {
    char bound[24], epoch[24];
    int usable;
} dps_graph_avg_params_t;

/* Takes a snapshot when the worker has none or it is older than a minute, and fills p. 0, or -1
 * after answering (the database failed). */
int dps_graph_avg_prepare(dps_req_t *r, dps_graph_avg_params_t *p);

/* Whether the snapshot held for a rows result (its column `ok`: the epoch had not moved); one that
 * did not is dropped, and the caller reads the raw averages instead. */
int dps_graph_avg_held(const PGresult *res, int ok);

/* Appends a row's average: the raw column `raw` when the row has no snapshot columns (`ok` NULL);
 * else the snapshot's count and sum of the row's dependency (`dep`) plus the corrections (`dn`,
 * `ds`: rows from B on less rows that left the window), rounded as round(avg(latency_ms)::numeric)
 * rounds; null without rows. */
void dps_graph_avg_write(dps_jsonbuf_t *b, const PGresult *res, int row, int dep, int raw, int ok, int dn, int ds);

/* round(x::numeric) as PostgreSQL writes it (float8 to numeric keeps 15 significant digits, round
 * goes half away from zero) into out; "null" when x is not finite. The largest double has 309
 * integer digits. */
#define DPS_GRAPH_AVG_TEXT_MAX 320
void dps_graph_avg_round(double x, char out[DPS_GRAPH_AVG_TEXT_MAX]);

#endif
