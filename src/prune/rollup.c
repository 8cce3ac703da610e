/* The latency roll-up (migration 010): per-dependency per-minute aggregates of
 * dependency_latency_history, recomputed by the pruner at each check for the minutes from
 * DPS_ROLLUP_REROLL_S before rolled_until to the last whole minute before now() - 1 minute, so that
 * the latency buckets of long ranges read one row a minute (src/api/history.c). */
#include "depsera/log.h"
#include "depsera/prune.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ORIGIN "timestamptz '2000-01-01 00:00:00+00'"

/* The state and the bounds of this check, epoch seconds: rolled_from, rolled_until (NULL before the
 * first roll-up), the target (the start of the minute before the current one) and, before the first
 * roll-up, the minute of the oldest raw row (NULL without any). */
#define BOUNDS_SQL                                                                                                                 \
    "SELECT extract(epoch FROM s.rolled_from)::bigint, extract(epoch FROM s.rolled_until)::bigint, "                               \
    "extract(epoch FROM date_bin('1 minute', now() - interval '1 minute', " ORIGIN "))::bigint, "                                  \
    "CASE WHEN s.rolled_until IS NULL THEN (SELECT extract(epoch FROM date_bin('1 minute', min(h.recorded_at), " ORIGIN            \
    "))::bigint FROM dependency_latency_history h) END FROM latency_rollup_state s"

/* Recomputes the minutes of [$1, $2) (epoch seconds, whole minutes) from the raw rows, then records
 * [$3, $2) as rolled up, in one statement (one transaction: a reader sees the minutes and the range
 * together; neither bound moves back). Minutes whose aggregates did not change are not rewritten. One
 * row: the minutes written. */
#define ROLL_SQL                                                                                                                   \
    "WITH r AS (INSERT INTO dependency_latency_minutes AS m (dependency_id, minute, n, sum_ms, min_ms, max_ms, "                   \
    "n_p50, sum_p50, n_p95, sum_p95, n_p99, sum_p99) "                                                                             \
    "SELECT dependency_id, date_bin('1 minute', recorded_at, " ORIGIN "), count(*), sum(latency_ms), min(latency_ms), "            \
    "max(latency_ms), count(p50_ms), sum(p50_ms), count(p95_ms), sum(p95_ms), count(p99_ms), sum(p99_ms) "                         \
    "FROM dependency_latency_history WHERE recorded_at >= to_timestamp($1::bigint) AND recorded_at < to_timestamp($2::bigint) "    \
    "GROUP BY 1, 2 ON CONFLICT (dependency_id, minute) DO UPDATE SET n = excluded.n, sum_ms = excluded.sum_ms, "                   \
    "min_ms = excluded.min_ms, max_ms = excluded.max_ms, n_p50 = excluded.n_p50, sum_p50 = excluded.sum_p50, "                     \
    "n_p95 = excluded.n_p95, sum_p95 = excluded.sum_p95, n_p99 = excluded.n_p99, sum_p99 = excluded.sum_p99 "                      \
    "WHERE (m.n, m.sum_ms, m.min_ms, m.max_ms, m.n_p50, m.sum_p50, m.n_p95, m.sum_p95, m.n_p99, m.sum_p99) IS DISTINCT FROM "      \
    "(excluded.n, excluded.sum_ms, excluded.min_ms, excluded.max_ms, excluded.n_p50, excluded.sum_p50, excluded.n_p95, "           \
    "excluded.sum_p95, excluded.n_p99, excluded.sum_p99) RETURNING 1) "                                                            \
    "UPDATE latency_rollup_state SET rolled_from = greatest(rolled_from, to_timestamp($3::bigint)), "                              \
    "rolled_until = greatest(rolled_until, to_timestamp($2::bigint)) RETURNING (SELECT count(*) FROM r)"

static void log_error(const char *what, PGconn *conn, PGresult *res)
{
    const char *msg = res != NULL ? PQresultErrorMessage(res) : PQerrorMessage(conn);
    char buf[512];

    snprintf(buf, sizeof(buf), "%s", msg != NULL ? msg : "");
    buf[strcspn(buf, "\n")] = '\0';
    DPS_LOG(DPS_LOG_ERROR, "latency roll-up failed", DPS_F_STR("step", what), DPS_F_STR("error", buf));
}

static long long col(PGresult *res, int c, long long def)
{
    return PQgetisnull(res, 0, c) ? def : strtoll(PQgetvalue(res, 0, c), NULL, 10);
}

long long dps_prune_rollup(PGconn *conn)
{
    PGresult *res = PQexec(conn, BOUNDS_SQL);
    long long from, until, target, written = 0;
    int batches = 0;

    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        log_error("bounds", conn, res);
        PQclear(res);
        return -1;
    }
    target = col(res, 2, 0);
    if (PQgetisnull(res, 0, 1)) {
        /* first roll-up: from the oldest raw row's minute (rows older than any retention are left to
         * the raw reads), or from the target when there is none */
        long long oldest = col(res, 3, target);
        if (oldest < target - DPS_ROLLUP_MAX_AGE_S)
            oldest = target - DPS_ROLLUP_MAX_AGE_S;
        from = until = oldest < target ? oldest : target;
    } else {
        from = col(res, 0, 0);
        until = col(res, 1, 0);
    }
    PQclear(res);
    do {
        long long lo = until - DPS_ROLLUP_REROLL_S > from ? until - DPS_ROLLUP_REROLL_S : from;
        long long hi = until + DPS_ROLLUP_BATCH_S < target ? until + DPS_ROLLUP_BATCH_S : target;
        char a[32], b[32], c[32];
        const char *params[3] = {a, b, c};

        if (hi < until)
            hi = until; /* the clock went back: re-roll the last minutes only */
        if (batches > 0 && dps_prune_stop_pending())
            return -2;
        snprintf(a, sizeof(a), "%lld", lo);
        snprintf(b, sizeof(b), "%lld", hi);
        snprintf(c, sizeof(c), "%lld", from);
        res = PQexecParams(conn, ROLL_SQL, 3, NULL, params, NULL, NULL, 0);
        if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
            log_error("roll", conn, res);
            PQclear(res);
            return -1;
        }
        written += col(res, 0, 0);
        PQclear(res);
        until = hi;
        batches++;
    } while (until < target);
    DPS_LOG(batches > 1 ? DPS_LOG_INFO : DPS_LOG_DEBUG, "latency rolled up", DPS_F_INT("minutes_written", written),
            DPS_F_INT("statements", batches), DPS_F_INT("rolled_until", until));
    return written;
}
