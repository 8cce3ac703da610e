/* API key usage accounting (api-keys-and-rate-limits.md §0, §6): counted per worker by (key,
 * minute), written every OTLP_USAGE_FLUSH_INTERVAL_MS and at a graceful stop in one transaction of
 * additive upserts into api_key_usage_buckets (minute and hour rows), with the last_used_at marks
 * of apikey.h. A worker killed with SIGKILL loses what it counted since its last flush. */
#ifndef DEPSERA_USAGE_H
#define DEPSERA_USAGE_H

#include <stddef.h>
#include <stdint.h>

#include "depsera/db.h"

/* Count one authenticated request of key_id at epoch_ms: push +1, and rejected +1 when the per-key
 * limiter refused it (§0: push_count counts every authenticated request). Never fails: when memory
 * runs out the count is dropped and logged. */
void dps_usage_count(const char *key_id, int64_t epoch_ms, int rejected);

/* The counts as PostgreSQL array literals for the flush statement: key ids, bucket starts
 * ("YYYY-MM-DDTHH:MM:00"), granularities, push counts, rejected counts; one minute row and one hour
 * row per counted (key, minute). Returns the number of rows, 0 when there is nothing to write, -1
 * when memory ran out. The caller frees the five strings. */
int dps_usage_arrays(char **ids, char **starts, char **grans, char **push, char **rejected);

/* Forget the counts (after they were written). */
void dps_usage_clear(void);

/* Write the counts if `interval_ms` passed since the last flush, or now with `force` (graceful
 * stop). Call between requests (the connection idle). On failure the counts stay for the next
 * attempt. Also writes the due last_used_at marks (dps_apikey_flush), in the same transaction
 * when there are counts. */
void dps_usage_flush(dps_db_t *db, int64_t interval_ms, int force);

#endif
