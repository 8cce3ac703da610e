/* The shared side of the limiters: one call of a lease function of migration 007 per lease, on the
 * worker's query connection (idle between requests, where leases are taken). */
#include "depsera/db.h"
#include "depsera/limits.h"
#include "depsera/log.h"
#include "depsera/stmt.h"
#include "depsera/util.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

static const char *const limiter_names[DPS_LIMIT_KINDS] = {"key", "api", "auth", "otlp_traces", "otlp_metrics"};

static dps_stmt_t bucket_stmt =
    DPS_STMT("dps_bucket_lease", "SELECT granted, tokens, now_ms, 0 FROM depsera_bucket_lease($1, $2, $3, $4, $5)", 5);
static dps_stmt_t window_stmt =
    DPS_STMT("dps_window_lease", "SELECT granted, used, now_ms, start_ms FROM depsera_window_lease($1, $2, $3, $4, $5, $6, $7)", 7);

/* One warning per 10 s at most: a database that is down makes every request say so. */
static void log_failure(PGconn *conn, const PGresult *res)
{
    static int64_t last;
    int64_t now = dps_mono_ms();

    if (last != 0 && now - last < 10000)
        return;
    last = now;
    DPS_LOG(DPS_LOG_WARN, "rate limit state unreachable: requests are not limited meanwhile",
            DPS_F_STR("error", res != NULL    ? PQresultErrorMessage(res)
                               : conn != NULL ? PQerrorMessage(conn)
                                              : "no connection"));
}

int dps_limits_lease_pg(void *arg, dps_limit_kind_t kind, const char *subject, const dps_limit_policy_t *p, int64_t want,
                        int64_t give, int64_t give_start_ms, dps_lease_reply_t *out)
{
    dps_db_t *db = arg;
    PGconn *conn = dps_db_conn(db);
    char v[5][24];
    PGresult *res;

    if (conn == NULL) {
        log_failure(NULL, NULL);
        return -1;
    }
    snprintf(v[0], sizeof(v[0]), "%" PRId64, p->limit);
    snprintf(v[1], sizeof(v[1]), "%" PRId64, p->aux);
    snprintf(v[2], sizeof(v[2]), "%" PRId64, want);
    snprintf(v[3], sizeof(v[3]), "%" PRId64, give);
    snprintf(v[4], sizeof(v[4]), "%" PRId64, give_start_ms);
    if (kind == DPS_LIMIT_KEY) {
        const char *params[5] = {subject, v[0], v[1], v[2], v[3]};
        res = dps_stmt_exec(db, &bucket_stmt, params);
    } else {
        const char *params[7] = {limiter_names[kind], subject, v[0], v[1], v[2], v[3], v[4]};
        res = dps_stmt_exec(db, &window_stmt, params);
    }
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        log_failure(conn, res);
        PQclear(res);
        if (PQstatus(conn) != CONNECTION_OK)
            dps_db_check(db);
        return -1;
    }
    out->granted = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    out->state = strtod(PQgetvalue(res, 0, 1), NULL);
    out->now_ms = strtoll(PQgetvalue(res, 0, 2), NULL, 10);
    out->start_ms = strtoll(PQgetvalue(res, 0, 3), NULL, 10);
    PQclear(res);
    return 0;
}
