/* The retention pruner (retention.md): its schedule (pure, unit-tested) and one run against PostgreSQL. */
#ifndef DEPSERA_PRUNE_H
#define DEPSERA_PRUNE_H

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Rows removed per DELETE statement (one short transaction each). */
#define DPS_PRUNE_BATCH 5000
/* Spans partitions that must exist ahead: today .. today + DPS_PRUNE_DAYS_AHEAD (UTC days). */
#define DPS_PRUNE_DAYS_AHEAD 3
/* lock_timeout of each partition creation or drop; one that times out is retried at the next check. */
#define DPS_PRUNE_LOCK_TIMEOUT_MS 2000
/* Expired sessions are swept this often (retention.md §2), besides every run. */
#define DPS_PRUNE_SESSION_SWEEP_MS (15 * 60 * 1000)
/* Advisory lock held by the working pruner: (DPS_LOCK_CLASS, 4). */
#define DPS_PRUNE_LOCK_KEY1 1685086066
#define DPS_PRUNE_LOCK_KEY2 4

/* "HH:MM" (two digits each, 00:00..23:59) into minutes after midnight; 0, or -1 when malformed. */
int dps_prune_parse_hhmm(const char *s, int *minutes) __attribute__((warn_unused_result));

/* Whether a run is due (retention.md §1): the local time of `now` is at or past `cleanup_min`
 * (minutes after local midnight) and no run started on today's local date or later. `last` is the
 * local time of the last successful run's start, NULL when there was none. 1 or 0. */
int dps_prune_is_due(const struct tm *now, const struct tm *last, int cleanup_min);
/* The same from epoch seconds in the process's local time zone (TZ); last_run < 0 means never. */
int dps_prune_is_due_at(time_t now, time_t last_run, int cleanup_min);

/* `days` local calendar days before `now` (same local wall-clock time; DST-aware), as epoch seconds. */
time_t dps_prune_cutoff(time_t now, int days);

/* After a batch that deleted `deleted` rows out of at most `batch`: 1 if another batch is needed. */
int dps_prune_more_batches(long long deleted, long long batch);

/* Retention settings of one run (settings table, else environment defaults). */
typedef struct {
    int data_retention_days; /* D, 1..3650 */
    int span_retention_days; /* S, 1..365 */
} dps_prune_settings_t;

/* Outcome of one run step or of a whole run. */
typedef enum {
    DPS_PRUNE_OK,       /* done */
    DPS_PRUNE_DEFERRED, /* done except partition work that hit lock_timeout: retry at the next check */
    DPS_PRUNE_FAILED,   /* an error (logged); the run is not recorded and is retried at the next check */
    DPS_PRUNE_STOPPED,  /* SIGTERM/SIGINT arrived: abandoned, not recorded */
} dps_prune_status_t;

/* One retention run on `conn` (a direct connection holding the pruner's advisory lock): partitions
 * ahead, expired partitions dropped, every other table of retention.md §2 deleted in batches,
 * expired sessions swept; logs one summary line and records the run in pruner_runs unless it
 * failed or was stopped. `now` is the run's time (epoch seconds). */
dps_prune_status_t dps_prune_run(PGconn *conn, const dps_prune_settings_t *set, time_t now);
/* The partition work alone: the partitions ahead, and with `drop` the expired ones for the current
 * span setting (a retry of a run's deferred work). Logs what it created or dropped. */
dps_prune_status_t dps_prune_partitions(PGconn *conn, int span_retention_days, time_t now, int drop);
/* DELETE of expired sessions, in batches; the number removed, or -1 on error (logged). */
long long dps_prune_sessions(PGconn *conn);

/* The latency roll-up (migration 010): the minutes from DPS_ROLLUP_REROLL_S before rolled_until (rows
 * committed late) up to the start of the minute before the current one are recomputed from the raw
 * rows, at most DPS_ROLLUP_BATCH_S of them per statement (one short transaction each), and
 * rolled_until advanced; the first roll-up starts at the oldest raw row (at most DPS_ROLLUP_MAX_AGE_S
 * old). Returns the minute rows written, -1 on error (logged), -2 when a stop signal arrived. */
#define DPS_ROLLUP_REROLL_S (10 * 60)
#define DPS_ROLLUP_BATCH_S (24 * 3600)
#define DPS_ROLLUP_MAX_AGE_S (3660LL * 86400)
long long dps_prune_rollup(PGconn *conn);

/* 1 if SIGTERM or SIGINT is pending (they are blocked outside the loop's wait). */
int dps_prune_stop_pending(void);

#endif
