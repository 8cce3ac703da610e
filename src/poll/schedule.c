/* Claims, completions and releases of the shared poll schedule (poll_schedule, migration 008). */
#include "depsera/poll_schedule.h"
#include "depsera/log.h"
#include "depsera/pgarray.h"
#include "depsera/stmt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ATTEMPTS 3 /* of a recording transaction aborted by a deadlock or serialization failure */

/* The claim (polling.md §0, §3):
 *   busy  polls in flight per host in the whole cluster (live leases);
 *   cand  due, unclaimed rows of hosts under the cap, oldest due first, locked with SKIP LOCKED so
 *         that concurrent claimers take different rows; a few times n, so that rows of full hosts
 *         do not starve the others;
 *   pick  at most cap - busy rows of each host, then n in due order.
 * An open circuit's claim is its half-open probe. */
static const char claim_sql[] =
    "WITH busy AS (SELECT host, count(*) AS n FROM poll_schedule WHERE claimed_until > now() GROUP BY host), "
    "cand AS (SELECT ps.service_id, ps.host, ps.next_due_at FROM poll_schedule ps "
    "WHERE ps.next_due_at <= now() AND (ps.claimed_until IS NULL OR ps.claimed_until <= now()) "
    "AND NOT EXISTS (SELECT 1 FROM busy b WHERE b.host = ps.host AND b.n >= $2::int) "
    "ORDER BY ps.next_due_at LIMIT $1::int * 4 FOR UPDATE OF ps SKIP LOCKED), "
    "pick AS (SELECT c.service_id FROM (SELECT cand.*, row_number() OVER (PARTITION BY cand.host "
    "ORDER BY cand.next_due_at) AS k FROM cand) c LEFT JOIN busy b ON b.host = c.host "
    "WHERE c.k + coalesce(b.n, 0) <= $2::int ORDER BY c.next_due_at LIMIT $1::int) "
    "UPDATE poll_schedule ps SET claimed_until = now() + $3::int * interval '1 millisecond', "
    "claim_token = gen_random_uuid(), circuit = CASE WHEN ps.circuit = 'open' THEN 'half_open' ELSE ps.circuit END "
    "FROM pick, services s WHERE ps.service_id = pick.service_id AND s.id = ps.service_id "
    "RETURNING ps.service_id, ps.claim_token, ps.generation, ps.failures, ps.circuit, ps.host, s.name, "
    "s.health_endpoint, s.health_endpoint_format, s.schema_config::text, s.poll_interval_ms";

/* The first due time of an unclaimed row, or the first lease to expire (a claim may be a dead
 * poller's): two index scans, whatever the size of the schedule. */
static const char next_due_sql[] =
    "SELECT greatest(0, ceil(extract(epoch FROM least("
    "(SELECT next_due_at FROM poll_schedule WHERE claimed_until IS NULL ORDER BY next_due_at LIMIT 1), "
    "(SELECT min(claimed_until) FROM poll_schedule WHERE claimed_until IS NOT NULL)) - now()) * 1000))::bigint";

/* §5: the services row, and a poll-history row: after a success only when the last row is an error
 * (a recovery), after a failure when there is no row, the last one is a recovery, or its error
 * differs. §6: the manual poll requests that wait for this service get this poll's outcome (req, run
 * to completion after the rest, as an unreferenced data-modifying WITH is): one round trip less per
 * poll than a statement of its own, for a table that is nearly always without a waiting row. */
static const char service_sql[] =
    "WITH svc AS (UPDATE services SET last_poll_success = $2::boolean, last_poll_error = $3, "
    "poll_warnings = $4::jsonb, updated_at = now() WHERE id = $1 RETURNING id), "
    "req AS (UPDATE poll_requests SET finished_at = now(), success = $2::boolean, dependencies_updated = $5::int, "
    "status_changes = $6::int, latency_ms = $7::double precision, error = $3 "
    "WHERE service_id = $1 AND finished_at IS NULL), "
    "last AS (SELECT h.error FROM service_poll_history h WHERE h.service_id = $1 "
    "ORDER BY h.recorded_at DESC, h.id DESC LIMIT 1) "
    "INSERT INTO service_poll_history (service_id, error, recorded_at) SELECT svc.id, $3, now() FROM svc "
    "WHERE CASE WHEN $2::boolean THEN EXISTS (SELECT 1 FROM last WHERE last.error IS NOT NULL) "
    "ELSE NOT EXISTS (SELECT 1 FROM last WHERE last.error IS NOT DISTINCT FROM $3) END";

/* The schedule, only while the claim holds the row and the service has not changed since. After a
 * success the service is due again an interval after its poll started (the claim: claimed_until less
 * the lease, $8), not after it ended: N services on an interval I are N / I polls a second whatever
 * the answer time (polling.md §3.1 counts from the end: README, "Polling", says why we differ); an
 * answer slower than half the interval leaves half an interval after its end. After a failure the
 * backoff counts from the end. */
static const char complete_sql[] =
    "UPDATE poll_schedule SET next_due_at = CASE WHEN $7::boolean THEN greatest(claimed_until + ($4::bigint - $8::bigint) * "
    "interval '1 millisecond', now() + $4::bigint / 2 * interval '1 millisecond') "
    "ELSE now() + $4::bigint * interval '1 millisecond' END, claimed_until = NULL, "
    "claim_token = NULL, failures = $5::int, circuit = $6, "
    "last_failure_at = CASE WHEN $7::boolean THEN last_failure_at ELSE now() END, last_polled_at = now() "
    "WHERE service_id = $1 AND claim_token = $2 AND generation = $3::bigint";

static const char release_sql[] =
    "UPDATE poll_schedule SET claimed_until = NULL, claim_token = NULL WHERE claim_token = ANY ($1::uuid[])";

static dps_stmt_t claim_stmt = DPS_STMT("dps_poll_claim", claim_sql, 3);
static dps_stmt_t next_due_stmt = DPS_STMT("dps_poll_next_due", next_due_sql, 0);
static dps_stmt_t service_stmt = DPS_STMT("dps_poll_service", service_sql, 7);
static dps_stmt_t complete_stmt = DPS_STMT("dps_poll_complete", complete_sql, 8);
static dps_stmt_t release_stmt = DPS_STMT("dps_poll_release", release_sql, 1);

static void log_failed(const char *what, const PGresult *res)
{
    char err[512];

    snprintf(err, sizeof(err), "%s", res != NULL ? PQresultErrorMessage(res) : "no connection or out of memory");
    err[strcspn(err, "\n")] = '\0';
    DPS_LOG(DPS_LOG_ERROR, what, DPS_F_STR("error", err),
            DPS_F_STR("sqlstate", res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL));
}

/* A statement's result if it succeeded, else NULL (logged, cleared). */
static PGresult *exec_ok(dps_db_t *db, dps_stmt_t *st, const char *const *params, const char *what)
{
    PGresult *res = dps_stmt_exec(db, st, params);
    ExecStatusType s = PQresultStatus(res);

    if (res != NULL && (s == PGRES_TUPLES_OK || s == PGRES_COMMAND_OK))
        return res;
    log_failed(what, res);
    PQclear(res);
    return NULL;
}

static char *dup_value(const PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? NULL : strdup(PQgetvalue(res, row, col));
}

void dps_schedule_claim_free(dps_poll_claim_t *c)
{
    free(c->service_id), free(c->token), free(c->name), free(c->url), free(c->format), free(c->schema_config);
    free(c->host);
    memset(c, 0, sizeof(*c));
}

void dps_schedule_claims_free(dps_poll_claim_t *c, size_t n)
{
    for (size_t i = 0; i < n && c != NULL; i++)
        dps_schedule_claim_free(&c[i]);
    free(c);
}

static int take_claim(const PGresult *res, int row, dps_poll_claim_t *c)
{
    memset(c, 0, sizeof(*c));
    c->service_id = dup_value(res, row, 0);
    c->token = dup_value(res, row, 1);
    c->generation = strtoll(PQgetvalue(res, row, 2), NULL, 10);
    c->state.failures = atoi(PQgetvalue(res, row, 3));
    c->state.circuit = dps_circuit_parse(PQgetvalue(res, row, 4));
    c->host = dup_value(res, row, 5);
    c->name = dup_value(res, row, 6);
    c->url = dup_value(res, row, 7);
    c->format = dup_value(res, row, 8);
    c->schema_config = dup_value(res, row, 9);
    c->interval_ms = strtoll(PQgetvalue(res, row, 10), NULL, 10);
    /* the API keeps intervals at 5 s or more; a row written by hand must not make a busy loop */
    if (c->interval_ms < DPS_POLL_MIN_INTERVAL_MS)
        c->interval_ms = DPS_POLL_MIN_INTERVAL_MS;
    if (c->service_id == NULL || c->token == NULL || c->host == NULL || c->name == NULL || c->url == NULL || c->format == NULL ||
        (c->schema_config == NULL && !PQgetisnull(res, row, 9))) {
        dps_schedule_claim_free(c);
        return -1;
    }
    return 0;
}

static int exec_simple(PGconn *conn, const char *sql)
{
    PGresult *res = PQexec(conn, sql);
    int ok = PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK;

    PQclear(res);
    return ok ? 0 : -1;
}

/* The claim runs after the claim lock is taken, in a statement of its own: its snapshot then sees
 * every claim committed before, so the per-host counts hold across pollers (claims are serialized;
 * each takes a few milliseconds). The lock is transaction-scoped: it works through a transaction
 * pooler. */
static PGresult *claim_locked(dps_db_t *db, PGconn *conn, const char *const *p)
{
    char lock[96];
    PGresult *res = NULL;

    snprintf(lock, sizeof(lock), "SELECT pg_advisory_xact_lock(%d, %d)", DPS_POLL_CLAIM_LOCK_KEY1, DPS_POLL_CLAIM_LOCK_KEY2);
    if (exec_simple(conn, "BEGIN") == 0 && exec_simple(conn, lock) == 0 &&
        (res = exec_ok(db, &claim_stmt, p, "poll claim failed")) != NULL && exec_simple(conn, "COMMIT") != 0) {
        PQclear(res);
        res = NULL;
    }
    if (res == NULL && PQtransactionStatus(conn) != PQTRANS_IDLE)
        (void)exec_simple(conn, "ROLLBACK");
    return res;
}

int dps_schedule_claim(dps_db_t *db, int n, int per_host, int lease_ms, dps_poll_claim_t **out, size_t *count)
{
    char pn[16], ph[16], pl[16];
    const char *p[3] = {pn, ph, pl};
    PGconn *conn = dps_db_conn(db);
    PGresult *res;
    int rows, kept = 0;

    *out = NULL, *count = 0;
    snprintf(pn, sizeof(pn), "%d", n), snprintf(ph, sizeof(ph), "%d", per_host), snprintf(pl, sizeof(pl), "%d", lease_ms);
    if (conn == NULL || (res = claim_locked(db, conn, p)) == NULL)
        return -1;
    if ((rows = PQntuples(res)) > 0 && (*out = calloc((size_t)rows, sizeof(**out))) == NULL) {
        PQclear(res);
        DPS_LOG(DPS_LOG_ERROR, "out of memory");
        return -1; /* the claims expire with their leases */
    }
    for (int i = 0; i < rows; i++)
        if (take_claim(res, i, &(*out)[kept]) == 0)
            (*out)[kept++].lease_ms = lease_ms;
    PQclear(res);
    *count = (size_t)kept;
    return 0;
}

int dps_schedule_next_due(dps_db_t *db, int64_t *ms)
{
    PGresult *res = exec_ok(db, &next_due_stmt, NULL, "poll schedule read failed");

    if (res == NULL)
        return -1;
    *ms = PQgetisnull(res, 0, 0) ? -1 : strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return 0;
}

int dps_schedule_release(dps_db_t *db, const char *const *tokens, size_t n)
{
    dps_pgarray_t a;
    const char *p[1];
    PGresult *res = NULL;

    if (n == 0)
        return 0;
    dps_pgarray_init(&a);
    for (size_t i = 0; i < n; i++)
        dps_pgarray_add_str(&a, tokens[i]);
    if ((p[0] = dps_pgarray_text(&a)) != NULL)
        res = exec_ok(db, &release_stmt, p, "poll claims not released");
    dps_pgarray_free(&a);
    PQclear(res);
    return res != NULL ? 0 : -1;
}

/* ---- recording ---------------------------------------------------------------------------------- */

typedef enum { TX_DONE, TX_STALE, TX_RETRY, TX_FAILED } tx_t;

/* What a failed statement means: retry the transaction (deadlock, serialization failure, a
 * prepared statement a pooler lost), or give up (logged). */
static tx_t failed_tx(const char *what, PGresult *res)
{
    const char *state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    tx_t t =
        state != NULL && (!strcmp(state, "40001") || !strcmp(state, "40P01") || !strcmp(state, "26000")) ? TX_RETRY : TX_FAILED;

    if (t == TX_FAILED)
        log_failed(what, res);
    PQclear(res);
    return t;
}

static tx_t run_stmt(dps_db_t *db, dps_stmt_t *st, const char *const *p, const char *what, int *rows)
{
    PGresult *res = dps_stmt_exec(db, st, p);
    ExecStatusType s = PQresultStatus(res);

    if (res == NULL || (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK))
        return failed_tx(what, res);
    if (rows != NULL)
        *rows = atoi(PQcmdTuples(res));
    PQclear(res);
    return TX_DONE;
}

static tx_t write_statuses(dps_db_t *db, const dps_poll_claim_t *c, const dps_poll_outcome_t *o, size_t *nchanges)
{
    dps_status_changes_t changes = {0};
    PGresult *failed = NULL;
    tx_t t = TX_DONE;

    /* discovery_source 'manual': a polled dependency is what the service itself reports */
    if (dps_upsert_statuses(db, c->service_id, c->name, o->deps, o->n_deps, "manual", &changes, &failed) != 0 ||
        dps_upsert_write_changes(db, &changes, &failed) != 0)
        t = failed_tx("poll results not written", failed);
    *nchanges = changes.n;
    dps_status_changes_free(&changes);
    return t;
}

/* The statements of one poll's recording, in the transaction open on db. */
static tx_t write_one(dps_db_t *db, const dps_poll_claim_t *c, const dps_poll_outcome_t *o, dps_poll_state_t next, int64_t delay)
{
    char delay_s[24], fail_s[16], gen_s[24], lease_s[24];
    const char *cp[8] = {c->service_id, c->token, gen_s, delay_s, fail_s, dps_circuit_name(next.circuit), o->success ? "t" : "f",
                         lease_s};
    char deps_s[24], changes_s[24], ms_s[32];
    const char *sp[7] = {c->service_id, o->success ? "t" : "f", o->success ? NULL : o->error, o->success ? o->warnings_json : NULL,
                         deps_s, changes_s, ms_s};
    size_t nchanges = 0;
    int rows = 0;
    tx_t t;

    snprintf(delay_s, sizeof(delay_s), "%lld", (long long)delay);
    snprintf(fail_s, sizeof(fail_s), "%d", next.failures);
    snprintf(gen_s, sizeof(gen_s), "%lld", c->generation);
    snprintf(lease_s, sizeof(lease_s), "%d", c->lease_ms);
    /* lock order as every writer of a service: dependencies, then services, then poll_schedule (the
     * services trigger writes poll_schedule after services) */
    if (o->success && o->n_deps > 0 && (t = write_statuses(db, c, o, &nchanges)) != TX_DONE)
        return t;
    snprintf(deps_s, sizeof(deps_s), "%zu", o->success ? o->n_deps : 0);
    snprintf(changes_s, sizeof(changes_s), "%zu", nchanges);
    snprintf(ms_s, sizeof(ms_s), "%lld", (long long)o->elapsed_ms);
    if ((t = run_stmt(db, &service_stmt, sp, "poll result not written", NULL)) != TX_DONE ||
        (t = run_stmt(db, &complete_stmt, cp, "poll schedule not written", &rows)) != TX_DONE)
        return t;
    return rows == 0 ? TX_STALE : TX_DONE;
}

static tx_t commit_or_rollback(PGconn *conn, tx_t t)
{
    if (t != TX_DONE) {
        if (PQtransactionStatus(conn) != PQTRANS_IDLE)
            (void)exec_simple(conn, "ROLLBACK");
        return t;
    }
    if (exec_simple(conn, "COMMIT") != 0)
        return PQstatus(conn) == CONNECTION_OK ? TX_RETRY : TX_FAILED;
    return TX_DONE;
}

static tx_t record_once(dps_db_t *db, const dps_poll_claim_t *c, const dps_poll_outcome_t *o, dps_poll_state_t next, int64_t delay)
{
    PGconn *conn = dps_db_conn(db);

    if (conn == NULL || exec_simple(conn, "BEGIN") != 0)
        return TX_FAILED;
    return commit_or_rollback(conn, write_one(db, c, o, next, delay));
}

dps_record_status_t dps_schedule_record(dps_db_t *db, const dps_poll_claim_t *c, const dps_poll_outcome_t *o, int64_t *next_in_ms)
{
    int64_t delay;
    dps_poll_state_t next = dps_poll_after(c->state, o->success, c->interval_ms, &delay);
    tx_t t = TX_RETRY;

    if (next_in_ms != NULL)
        *next_in_ms = delay;
    for (int i = 0; i < MAX_ATTEMPTS && t == TX_RETRY; i++)
        t = record_once(db, c, o, next, delay);
    (void)dps_db_check(db);
    if (t == TX_STALE) {
        const char *tok[1] = {c->token};
        (void)dps_schedule_release(db, tok, 1);
        return DPS_RECORD_STALE;
    }
    return t == TX_DONE ? DPS_RECORD_OK : DPS_RECORD_FAILED;
}

/* ---- recording many polls ----------------------------------------------------------------------- */

#define PENDING ((dps_record_status_t)(DPS_RECORD_FAILED + 1)) /* not recorded yet */

/* One transaction for the polls of r still PENDING. A stale claim ends it at once (its writes must
 * not stay): *stale receives its index and the caller runs the rest again without it. */
static tx_t batch_once(dps_db_t *db, dps_poll_record_t *r, size_t n, size_t *stale)
{
    PGconn *conn = dps_db_conn(db);
    tx_t t = TX_DONE;

    if (conn == NULL || exec_simple(conn, "BEGIN") != 0)
        return TX_FAILED;
    for (size_t i = 0; i < n && t == TX_DONE; i++)
        if (r[i].status == PENDING) {
            dps_poll_state_t next = dps_poll_after(r[i].claim->state, r[i].outcome.success, r[i].claim->interval_ms, &r[i].next_in_ms);
            if ((t = write_one(db, r[i].claim, &r[i].outcome, next, r[i].next_in_ms)) == TX_STALE)
                *stale = i;
        }
    return commit_or_rollback(conn, t);
}

void dps_schedule_record_batch(dps_db_t *db, dps_poll_record_t *r, size_t n)
{
    size_t stale = 0;
    int retries = 0;
    tx_t t;

    for (size_t i = 0; i < n; i++)
        r[i].status = PENDING;
    for (;;) {
        t = batch_once(db, r, n, &stale);
        if (t == TX_STALE) {
            const char *tok[1] = {r[stale].claim->token};
            (void)dps_schedule_release(db, tok, 1);
            r[stale].status = DPS_RECORD_STALE;
            continue; /* each round ends one claim's part: at most n rounds */
        }
        if (t != TX_RETRY || ++retries >= MAX_ATTEMPTS)
            break;
    }
    if (t == TX_FAILED)
        (void)dps_db_check(db); /* a lost connection is reopened for the polls one by one */
    for (size_t i = 0; i < n; i++)
        if (r[i].status == PENDING)
            /* committed; or one poll's statements failed: each poll alone, so that it costs no other
             * poll its result */
            r[i].status = t == TX_DONE ? DPS_RECORD_OK : dps_schedule_record(db, r[i].claim, &r[i].outcome, &r[i].next_in_ms);
    (void)dps_db_check(db);
}
