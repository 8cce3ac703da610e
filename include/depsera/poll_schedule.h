/* The poll schedule in PostgreSQL (migration 008): claiming due services, recording a poll's outcome
 * with its results, releasing claims. Every poller on every node shares it (polling.md §0). */
#ifndef DEPSERA_POLL_SCHEDULE_H
#define DEPSERA_POLL_SCHEDULE_H

#include "depsera/db.h"
#include "depsera/poll_backoff.h"
#include "depsera/upsert.h"
#include <stddef.h>
#include <stdint.h>

/* Transaction-scoped advisory lock that serializes claims across pollers (the pruner's key 1 with 8). */
#define DPS_POLL_CLAIM_LOCK_KEY1 1685086066
#define DPS_POLL_CLAIM_LOCK_KEY2 8
/* Shorter poll intervals (only SQL can store them) count as this. */
#define DPS_POLL_MIN_INTERVAL_MS 1000

/* A claimed service: what to poll, and the claim that its completion presents. Strings are owned
 * by the claim (dps_schedule_claim_free). */
typedef struct {
    char *service_id, *token, *name, *url, *format;
    char *schema_config; /* NULL when none */
    char *host;          /* the per-host cap's key (poll_schedule.host) */
    long long generation;
    int64_t interval_ms;
    int lease_ms;           /* the claim's lease: claimed_until less it is when the poll started */
    dps_poll_state_t state; /* circuit HALF_OPEN: this poll is the breaker's probe */
} dps_poll_claim_t;

/* Claims up to n due services (oldest due first) whose host has fewer than per_host polls in flight
 * in the whole cluster (claims are serialized by an advisory lock, so the count is exact), for lease_ms. On success *out is a
 * malloc'd array of *count claims (NULL when none; free with dps_schedule_claims_free). 0, or -1 when the database failed (logged).
 */
int dps_schedule_claim(dps_db_t *db, int n, int per_host, int lease_ms, dps_poll_claim_t **out, size_t *count)
    __attribute__((warn_unused_result));
void dps_schedule_claim_free(dps_poll_claim_t *c);
void dps_schedule_claims_free(dps_poll_claim_t *c, size_t n);

/* Milliseconds until the next service becomes due (0 if one is due now, -1 if none is scheduled).
 * 0, or -1 when the database failed. */
int dps_schedule_next_due(dps_db_t *db, int64_t *ms) __attribute__((warn_unused_result));

/* The outcome of one poll. */
typedef struct {
    int success;
    const dps_dep_status_t *deps; /* success: the parsed statuses */
    size_t n_deps;
    const char *warnings_json; /* success: JSON array of parser warnings, or NULL */
    const char *error;         /* failure: the sanitized message */
    int64_t elapsed_ms;        /* the request's time, for manual polls' answers */
} dps_poll_outcome_t;

typedef enum {
    DPS_RECORD_OK,     /* written and the service rescheduled */
    DPS_RECORD_STALE,  /* the claim was lost (lease taken over, service changed or removed): nothing written */
    DPS_RECORD_FAILED, /* the database failed (logged): nothing written, the claim left to expire */
} dps_record_status_t;

/* In one transaction: the statuses through the shared upsert (dependencies, latency and error
 * history, status changes), the services row, a service_poll_history row when §5 wants one, the
 * outcome of the manual poll requests waiting for this service (§6, migration 009), and the
 * schedule (backoff and breaker of §3 computed with dps_poll_after). The schedule row is written only
 * while c's claim still holds it, else the transaction is rolled back (STALE) and the claim released.
 * *next_in_ms (may be NULL) receives the delay chosen. */
dps_record_status_t dps_schedule_record(dps_db_t *db, const dps_poll_claim_t *c, const dps_poll_outcome_t *o, int64_t *next_in_ms);

/* A poll to record with others: claim and outcome in, status and delay out. */
typedef struct {
    const dps_poll_claim_t *claim;
    dps_poll_outcome_t outcome;
    dps_record_status_t status;
    int64_t next_in_ms;
} dps_poll_record_t;

/* Records n polls as dps_schedule_record does, in one transaction (one commit for all, a few
 * statements each): a stale claim is left out and the rest written again without it; when one poll's
 * statements fail, each poll is recorded alone. */
void dps_schedule_record_batch(dps_db_t *db, dps_poll_record_t *r, size_t n);

/* Give claims back without a poll (shutdown, or a host over its cap here): the services stay due.
 * 0, or -1 when the database failed. */
int dps_schedule_release(dps_db_t *db, const char *const *tokens, size_t n);

#endif
