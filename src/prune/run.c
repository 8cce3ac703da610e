/* One retention run (retention.md §2): spans partitions ahead and expired, batched deletes of the
 * other tables, expired sessions, one summary line, and the record of the run in pruner_runs. */
#include "depsera/log.h"
#include "depsera/prune.h"
#include "depsera/util.h"

#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* One rule of retention.md §2 other than spans. $1 = Cutoff_D, $2 = Cutoff_S, $3 = the run's now
 * (epoch seconds). Timestamps are compared as timestamps (not text: the original's quirk). */
typedef struct {
    const char *table;
    const char *where;
} rule_t;

static const rule_t rules[] = {
    {"dependency_latency_history", "recorded_at < to_timestamp($1::double precision)"},
    /* the minutes of migration 010 starting before the cutoff (the one it falls in too: the readers
     * take its remaining raw rows, rolled_from having moved past it first) */
    {"dependency_latency_minutes", "minute < to_timestamp($1::double precision)"},
    {"dependency_error_history", "recorded_at < to_timestamp($1::double precision)"},
    {"audit_log", "created_at < to_timestamp($1::double precision)"},
    {"status_change_events", "recorded_at < to_timestamp($1::double precision)"},
    {"service_poll_history", "recorded_at < to_timestamp($1::double precision)"},
    /* open-questions.md §A (binding): dismissed suggestions go by dismissal time, with the span window;
     * rows dismissed without a dismissed_at fall back to created_at */
    {"dependency_associations", "is_dismissed AND coalesce(dismissed_at, created_at) < to_timestamp($2::double precision)"},
    /* windows 11-13; bucket_start is UTC wall-clock time without a zone */
    {"api_key_usage_buckets", "granularity = 'minute' AND "
                              "bucket_start < (to_timestamp($3::double precision) AT TIME ZONE 'UTC') - interval '24 hours'"},
    {"api_key_usage_buckets", "granularity = 'hour' AND "
                              "bucket_start < (to_timestamp($3::double precision) AT TIME ZONE 'UTC') - interval '30 days'"},
    {"api_key_usage_buckets", "NOT EXISTS (SELECT 1 FROM team_api_keys k WHERE k.id = api_key_id) AND "
                              "bucket_start < (to_timestamp($3::double precision) AT TIME ZONE 'UTC') - interval '7 days'"},
    /* limiter state untouched for two days is the same as none: every window (at most 1440 minutes)
     * is over and every bucket full (migration 007) */
    {"rate_limit_state", "at_ms < ($3::double precision - 172800) * 1000"},
    /* manual poll requests (migration 009) are answered within seconds: a day is plenty */
    {"poll_requests", "requested_at < to_timestamp($3::double precision) - interval '1 day'"},
};

int dps_prune_stop_pending(void)
{
    sigset_t pending;

    return sigpending(&pending) == 0 && (sigismember(&pending, SIGTERM) == 1 || sigismember(&pending, SIGINT) == 1);
}

static void log_sql_error(const char *what, PGconn *conn, PGresult *res)
{
    const char *msg = res != NULL ? PQresultErrorMessage(res) : PQerrorMessage(conn);
    char buf[512];

    snprintf(buf, sizeof(buf), "%s", msg != NULL ? msg : "");
    buf[strcspn(buf, "\n")] = '\0';
    DPS_LOG(DPS_LOG_ERROR, "retention statement failed", DPS_F_STR("step", what), DPS_F_STR("error", buf));
}

/* A statement outside a transaction; the result (caller clears) or NULL after logging. */
static PGresult *exec(PGconn *conn, const char *what, const char *sql, int n, const char *const *params, ExecStatusType want)
{
    PGresult *res = PQexecParams(conn, sql, n, NULL, params, NULL, NULL, 0);

    if (res == NULL || PQresultStatus(res) != want) {
        log_sql_error(what, conn, res);
        PQclear(res);
        return NULL;
    }
    return res;
}

static const Oid epoch_types[3] = {701, 701, 701}; /* float8: epoch seconds */

/* Deletes the rows of one rule in batches of DPS_PRUNE_BATCH, each statement its own transaction.
 * Returns the rows deleted, -1 on error, -2 when a stop signal arrived. */
static long long delete_batched(PGconn *conn, const rule_t *r, const char *const *params)
{
    char sql[1024];
    long long total = 0, n;

    /* ctid = ANY(ARRAY(...)) is a TID scan: each batch touches only the rows it deletes */
    snprintf(sql, sizeof(sql), "DELETE FROM %s WHERE ctid = ANY (ARRAY(SELECT ctid FROM %s WHERE %s LIMIT %d))", r->table, r->table,
             r->where, DPS_PRUNE_BATCH);
    do {
        PGresult *res;

        if (dps_prune_stop_pending())
            return -2;
        /* typed: a rule need not use every parameter */
        res = PQexecParams(conn, sql, 3, epoch_types, params, NULL, NULL, 0);
        if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK) {
            log_sql_error(r->table, conn, res);
            PQclear(res);
            return -1;
        }
        n = strtoll(PQcmdTuples(res), NULL, 10);
        PQclear(res);
        total += n;
    } while (dps_prune_more_batches(n, DPS_PRUNE_BATCH));
    return total;
}

long long dps_prune_sessions(PGconn *conn)
{
    static const rule_t sessions = {"sessions", "expire < to_timestamp($3::double precision)"};
    char now[32];
    const char *params[3] = {"0", "0", now};

    snprintf(now, sizeof(now), "%lld", (long long)time(NULL));
    return delete_batched(conn, &sessions, params);
}

/* Runs `sql` (one parameter) in its own transaction under lock_timeout. 0, 1 if it timed out on a
 * lock (or deadlocked: retried later), -1 on another error (logged). */
static int exec_locked(PGconn *conn, const char *what, const char *sql, const char *param)
{
    char set[64];
    PGresult *res;
    int ret = -1;

    snprintf(set, sizeof(set), "SET LOCAL lock_timeout = %d", DPS_PRUNE_LOCK_TIMEOUT_MS);
    if ((res = exec(conn, what, "BEGIN", 0, NULL, PGRES_COMMAND_OK)) == NULL)
        return -1;
    PQclear(res);
    if ((res = exec(conn, what, set, 0, NULL, PGRES_COMMAND_OK)) == NULL)
        goto rollback;
    PQclear(res);
    res = PQexecParams(conn, sql, param != NULL, NULL, &param, NULL, NULL, 0);
    if (res != NULL && (PQresultStatus(res) == PGRES_TUPLES_OK || PQresultStatus(res) == PGRES_COMMAND_OK)) {
        PQclear(res);
        if ((res = exec(conn, what, "COMMIT", 0, NULL, PGRES_COMMAND_OK)) == NULL)
            return -1;
        PQclear(res);
        return 0;
    }
    {
        const char *state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
        if (state != NULL && (strcmp(state, "55P03") == 0 || strcmp(state, "40P01") == 0)) {
            DPS_LOG(DPS_LOG_WARN, "retention: lock not available, retrying at the next check", DPS_F_STR("step", what));
            ret = 1;
        } else {
            log_sql_error(what, conn, res);
        }
    }
    PQclear(res);
rollback:
    PQclear(PQexec(conn, "ROLLBACK"));
    return ret;
}

/* "a,b" list of names: appended to a JSON array and to a comma-separated text for the log. */
static void add_name(json_t *arr, char *text, size_t cap, const char *name)
{
    size_t len = strlen(text);

    json_array_append_new(arr, json_string(name));
    snprintf(text + len, cap - len, "%s%s", len > 0 ? "," : "", name);
}

/* Partitions for today .. today + DPS_PRUNE_DAYS_AHEAD (UTC days), created when missing. */
static dps_prune_status_t create_ahead(PGconn *conn, time_t now, json_t *created, char *text, size_t cap)
{
    dps_prune_status_t st = DPS_PRUNE_OK;

    for (int d = 0; d <= DPS_PRUNE_DAYS_AHEAD; d++) {
        time_t t = now + (time_t)d * 86400;
        struct tm tm;
        char day[16], name[32];
        const char *p = name;
        PGresult *res;
        int missing, r;

        gmtime_r(&t, &tm);
        strftime(day, sizeof(day), "%Y-%m-%d", &tm);
        strftime(name, sizeof(name), "spans_%Y%m%d", &tm);
        /* a look-up without any lock first: the partition usually exists already */
        if ((res = exec(conn, "partition lookup", "SELECT to_regclass($1) IS NULL", 1, &p, PGRES_TUPLES_OK)) == NULL)
            return DPS_PRUNE_FAILED;
        missing = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
        PQclear(res);
        if (!missing)
            continue;
        if ((r = exec_locked(conn, name, "SELECT depsera_ensure_span_partition($1::date)", day)) < 0)
            return DPS_PRUNE_FAILED;
        if (r > 0)
            return DPS_PRUNE_DEFERRED; /* spans is busy: the others would wait as long */
        add_name(created, text, cap, name);
    }
    return st;
}

/* YYYYMMDD -> the epoch seconds of the next day's 00:00 UTC (the partition's upper bound); -1 if invalid. */
static time_t upper_bound(const char *digits)
{
    struct tm tm;
    long long ymd;

    if (strlen(digits) != 8 || dps_parse_int(digits, 19700101, 99991231, &ymd) != 0)
        return -1;
    memset(&tm, 0, sizeof(tm));
    tm.tm_year = (int)(ymd / 10000) - 1900;
    tm.tm_mon = (int)(ymd / 100 % 100) - 1;
    tm.tm_mday = (int)(ymd % 100) + 1;
    if (tm.tm_mon < 0 || tm.tm_mon > 11 || tm.tm_mday < 2 || tm.tm_mday > 32)
        return -1;
    return timegm(&tm);
}

/* Drops every partition whose whole day is older than span_cutoff: a DROP, not a DELETE. */
static dps_prune_status_t drop_expired(PGconn *conn, time_t span_cutoff, json_t *dropped, char *text, size_t cap)
{
    dps_prune_status_t st = DPS_PRUNE_OK;
    PGresult *list;

    if ((list = exec(conn, "partition list",
                     "SELECT n.nspname, c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                     "JOIN pg_namespace n ON n.oid = c.relnamespace "
                     "WHERE i.inhparent = to_regclass('spans') AND c.relname ~ '^spans_[0-9]{8}$' ORDER BY c.relname",
                     0, NULL, PGRES_TUPLES_OK)) == NULL)
        return DPS_PRUNE_FAILED;
    for (int i = 0; i < PQntuples(list) && st != DPS_PRUNE_FAILED; i++) {
        const char *name = PQgetvalue(list, i, 1);
        time_t upper = upper_bound(name + 6);
        char *nsp, *rel, sql[256];
        int r;

        if (upper < 0 || upper > span_cutoff)
            continue;
        nsp = PQescapeIdentifier(conn, PQgetvalue(list, i, 0), strlen(PQgetvalue(list, i, 0)));
        rel = PQescapeIdentifier(conn, name, strlen(name));
        if (nsp == NULL || rel == NULL) {
            st = DPS_PRUNE_FAILED;
        } else {
            snprintf(sql, sizeof(sql), "DROP TABLE %s.%s", nsp, rel);
            if ((r = exec_locked(conn, name, sql, NULL)) < 0)
                st = DPS_PRUNE_FAILED;
            else if (r > 0)
                st = DPS_PRUNE_DEFERRED;
            else
                add_name(dropped, text, cap, name);
        }
        PQfreemem(nsp);
        PQfreemem(rel);
        if (st == DPS_PRUNE_DEFERRED)
            break; /* spans is busy: the others would wait as long */
    }
    PQclear(list);
    return st;
}

static dps_prune_status_t worse(dps_prune_status_t a, dps_prune_status_t b)
{
    return a > b ? a : b;
}

/* Partition work of a run; the names go to the arrays and texts given. */
static dps_prune_status_t partitions(PGconn *conn, time_t now, time_t span_cutoff, json_t *created, char *ctext, json_t *dropped,
                                     char *dtext, size_t cap)
{
    dps_prune_status_t st = create_ahead(conn, now, created, ctext, cap);

    if (st == DPS_PRUNE_FAILED)
        return st;
    return worse(st, drop_expired(conn, span_cutoff, dropped, dtext, cap));
}

dps_prune_status_t dps_prune_partitions(PGconn *conn, int span_retention_days, time_t now, int drop)
{
    json_t *created = json_array(), *dropped = json_array();
    char ctext[1024] = "", dtext[1024] = "";
    dps_prune_status_t st;

    if (drop)
        st = partitions(conn, now, dps_prune_cutoff(now, span_retention_days), created, ctext, dropped, dtext, sizeof(ctext));
    else
        st = create_ahead(conn, now, created, ctext, sizeof(ctext));
    if (*ctext || *dtext)
        DPS_LOG(DPS_LOG_INFO, "retention partitions", DPS_F_STR("partitions_created", ctext),
                DPS_F_STR("partitions_dropped", dtext));
    json_decref(created);
    json_decref(dropped);
    return st;
}

/* Writes the run into pruner_runs (one row, replaced). */
static int record(PGconn *conn, time_t now, long long duration_ms, const dps_prune_settings_t *set, time_t cutoff,
                  time_t span_cutoff, json_t *counts, json_t *created, json_t *dropped)
{
    char at[32], dur[32], d[16], s[16], c[32], sc[32], node[300], host[256] = "?";
    char *cj = json_dumps(counts, JSON_COMPACT | JSON_SORT_KEYS), *crj = json_dumps(created, JSON_COMPACT),
         *drj = json_dumps(dropped, JSON_COMPACT);
    const char *params[10] = {at, dur, d, s, c, sc, cj, crj, drj, node};
    PGresult *res = NULL;

    gethostname(host, sizeof(host) - 1);
    snprintf(at, sizeof(at), "%lld", (long long)now);
    snprintf(dur, sizeof(dur), "%lld", duration_ms);
    snprintf(d, sizeof(d), "%d", set->data_retention_days);
    snprintf(s, sizeof(s), "%d", set->span_retention_days);
    snprintf(c, sizeof(c), "%lld", (long long)cutoff);
    snprintf(sc, sizeof(sc), "%lld", (long long)span_cutoff);
    snprintf(node, sizeof(node), "%s:%d", host, (int)getpid());
    if (cj != NULL && crj != NULL && drj != NULL)
        res = exec(conn, "record run",
                   "INSERT INTO pruner_runs (id, started_at, finished_at, duration_ms, data_retention_days, "
                   "span_retention_days, cutoff, span_cutoff, counts, partitions_created, partitions_dropped, node) "
                   "VALUES (true, to_timestamp($1::double precision), now(), $2, $3, $4, to_timestamp($5::double precision), "
                   "to_timestamp($6::double precision), $7, $8, $9, $10) "
                   "ON CONFLICT (id) DO UPDATE SET started_at = EXCLUDED.started_at, finished_at = EXCLUDED.finished_at, "
                   "duration_ms = EXCLUDED.duration_ms, data_retention_days = EXCLUDED.data_retention_days, "
                   "span_retention_days = EXCLUDED.span_retention_days, cutoff = EXCLUDED.cutoff, "
                   "span_cutoff = EXCLUDED.span_cutoff, counts = EXCLUDED.counts, "
                   "partitions_created = EXCLUDED.partitions_created, partitions_dropped = EXCLUDED.partitions_dropped, "
                   "node = EXCLUDED.node",
                   10, params, PGRES_COMMAND_OK);
    free(cj);
    free(crj);
    free(drj);
    PQclear(res);
    return res != NULL ? 0 : -1;
}

static long long count_of(json_t *counts, const char *table)
{
    return json_integer_value(json_object_get(counts, table));
}

static void log_summary(dps_prune_status_t st, json_t *counts, const dps_prune_settings_t *set, time_t cutoff, time_t span_cutoff,
                        const char *ctext, const char *dtext, long long duration_ms)
{
    char c[32], sc[32];

    dps_time_iso8601((int64_t)cutoff * 1000, c, sizeof(c));
    dps_time_iso8601((int64_t)span_cutoff * 1000, sc, sizeof(sc));
    DPS_LOG(DPS_LOG_INFO, "retention run", DPS_F_STR("status", st == DPS_PRUNE_OK ? "ok" : "partitions deferred"),
            DPS_F_INT("data_retention_days", set->data_retention_days), DPS_F_STR("cutoff", c),
            DPS_F_INT("span_retention_days", set->span_retention_days), DPS_F_STR("span_cutoff", sc),
            DPS_F_INT("dependency_latency_history", count_of(counts, "dependency_latency_history")),
            DPS_F_INT("dependency_latency_minutes", count_of(counts, "dependency_latency_minutes")),
            DPS_F_INT("dependency_error_history", count_of(counts, "dependency_error_history")),
            DPS_F_INT("audit_log", count_of(counts, "audit_log")),
            DPS_F_INT("status_change_events", count_of(counts, "status_change_events")),
            DPS_F_INT("service_poll_history", count_of(counts, "service_poll_history")),
            DPS_F_INT("dependency_associations", count_of(counts, "dependency_associations")),
            DPS_F_INT("api_key_usage_buckets", count_of(counts, "api_key_usage_buckets")),
            DPS_F_INT("rate_limit_state", count_of(counts, "rate_limit_state")),
            DPS_F_INT("poll_requests", count_of(counts, "poll_requests")), DPS_F_INT("sessions", count_of(counts, "sessions")),
            DPS_F_STR("partitions_created", ctext), DPS_F_STR("partitions_dropped", dtext), DPS_F_INT("duration_ms", duration_ms));
}

/* The batched deletes of every rule, then the sessions; counts per table go to `counts`. */
static dps_prune_status_t delete_all(PGconn *conn, const char *const *params, json_t *counts)
{
    long long n;
    PGresult *res;

    /* the rolled-up range starts at the first whole minute at or after the cutoff before the minutes
     * before it go: readers then take the raw rows of the minute the cutoff falls in */
    res = exec(conn, "latency_rollup_state",
               "UPDATE latency_rollup_state SET rolled_from = date_bin('1 minute', to_timestamp($1::bigint + 59), "
               "timestamptz '2000-01-01 00:00:00+00'), rolled_until = greatest(rolled_until, date_bin('1 minute', "
               "to_timestamp($1::bigint + 59), timestamptz '2000-01-01 00:00:00+00')) "
               "WHERE rolled_from < to_timestamp($1::bigint + 59)",
               1, params, PGRES_COMMAND_OK);
    if (res == NULL)
        return DPS_PRUNE_FAILED;
    PQclear(res);
    for (size_t i = 0; i < DPS_ARRAY_SIZE(rules); i++) {
        if ((n = delete_batched(conn, &rules[i], params)) < 0)
            return n == -2 ? DPS_PRUNE_STOPPED : DPS_PRUNE_FAILED;
        json_object_set_new(counts, rules[i].table, json_integer(count_of(counts, rules[i].table) + n));
    }
    if ((n = dps_prune_sessions(conn)) < 0)
        return n == -2 ? DPS_PRUNE_STOPPED : DPS_PRUNE_FAILED;
    json_object_set_new(counts, "sessions", json_integer(n));
    return DPS_PRUNE_OK;
}

dps_prune_status_t dps_prune_run(PGconn *conn, const dps_prune_settings_t *set, time_t now)
{
    int64_t t0 = dps_mono_ms();
    time_t cutoff = dps_prune_cutoff(now, set->data_retention_days);
    time_t span_cutoff = dps_prune_cutoff(now, set->span_retention_days);
    char c[32], sc[32], n[32], ctext[1024] = "", dtext[1024] = "";
    const char *params[3] = {c, sc, n};
    json_t *counts = json_object(), *created = json_array(), *dropped = json_array();
    dps_prune_status_t st, del;

    snprintf(c, sizeof(c), "%lld", (long long)cutoff);
    snprintf(sc, sizeof(sc), "%lld", (long long)span_cutoff);
    snprintf(n, sizeof(n), "%lld", (long long)now);
    DPS_LOG(DPS_LOG_DEBUG, "retention run starting");
    st = partitions(conn, now, span_cutoff, created, ctext, dropped, dtext, sizeof(ctext));
    if (st != DPS_PRUNE_FAILED) {
        del = delete_all(conn, params, counts);
        st = worse(st, del);
    }
    if (st == DPS_PRUNE_OK || st == DPS_PRUNE_DEFERRED) {
        long long ms = dps_mono_ms() - t0;
        log_summary(st, counts, set, cutoff, span_cutoff, ctext, dtext, ms);
        if (record(conn, now, ms, set, cutoff, span_cutoff, counts, created, dropped) != 0)
            st = DPS_PRUNE_FAILED;
    } else if (st == DPS_PRUNE_STOPPED) {
        DPS_LOG(DPS_LOG_INFO, "retention run stopped by a signal; not recorded");
    } else {
        DPS_LOG(DPS_LOG_ERROR, "retention run failed; retrying at the next check");
    }
    json_decref(counts);
    json_decref(created);
    json_decref(dropped);
    return st;
}
