/* The shared upsert pipeline of otlp-ingestion.md §7 (OTLP metrics, OTLP traces and polling): a
 * service's dependency statuses written to dependencies, error history, latency history, and the
 * status changes they cause collected for status_change_events. Set-based: a few statements per
 * call whatever the number of statuses. Runs inside the caller's transaction. */
#ifndef DEPSERA_UPSERT_H
#define DEPSERA_UPSERT_H
#include <libpq-fe.h>

#include "depsera/db.h"
#include <stddef.h>
#include <stdint.h>

/* One dependency as a source reported it. Strings may be NULL (absent). */
typedef struct {
    const char *name; /* required, unique within one call */
    const char *type; /* NULL = "other" */
    const char *description, *impact, *error_message;
    const char *contact, *check_details; /* JSON object text or NULL */
    const char *error;                   /* JSON text of the reported error value, or NULL */
    int healthy;                         /* 0 / 1 */
    int health_state, health_code;
    double latency_ms;
    int skipped;
    int has_last_checked;    /* else: the time of the call */
    int64_t last_checked_ms; /* epoch ms */
    /* latency percentiles (§5.4 health.percentiles): from a histogram and/or a monotonic sum */
    int has_histogram;
    double p50, p95, p99, min, max;
    int has_request_count;
    double request_count;
} dps_dep_status_t;

/* A status change (§7.3) waiting to be written with dps_upsert_write_changes. */
#define DPS_HEALTH_NONE (-1) /* previous_healthy of a dependency that did not exist: NULL */
typedef struct {
    char *service_id, *service_name, *dependency_name;
    int previous_healthy, current_healthy; /* 0 / 1; previous may be DPS_HEALTH_NONE */
} dps_status_change_t;

typedef struct {
    dps_status_change_t *v;
    size_t n, cap;
} dps_status_changes_t;

/* Upserts `n` statuses of service `service_id` with discovery source `source` ("manual",
 * "otlp_metric", "otlp_trace"), appending status changes to `changes`. 0, or -1 with the failed
 * statement's result in *failed (the caller clears it) or *failed NULL when memory ran out or there
 * is no connection. Statements run on dps_db_conn(db), prepared once per connection. */
int dps_upsert_statuses(dps_db_t *db, const char *service_id, const char *service_name, const dps_dep_status_t *st, size_t n,
                        const char *source, dps_status_changes_t *changes, PGresult **failed);

/* Writes the collected changes as status_change_events rows (recorded now). 0, or -1 as above. */
int dps_upsert_write_changes(dps_db_t *db, const dps_status_changes_t *changes, PGresult **failed);
/* Drop the changes after the first n (those of a rolled-back entry). */
void dps_status_changes_truncate(dps_status_changes_t *c, size_t n);
void dps_status_changes_free(dps_status_changes_t *c);

#endif
