/* The retention pruner process: LISTEN depsera_retention, a check every PRUNER_CHECK_INTERVAL_MS, and
 * the retention work and the latency roll-up done only while this process holds the pruner's advisory
 * lock (one pruner at a time across all nodes; a waiting one takes over within a check when the
 * holder's session ends). */
#include "depsera/aux.h"
#include "depsera/db.h"
#include "depsera/log.h"
#include "depsera/proc.h"
#include "depsera/prune.h"
#include "depsera/util.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHANNEL "depsera_retention"
#define DEFAULT_SPAN_DAYS 7 /* retention.md §2: when app_settings has no usable value */

typedef struct {
    const dps_config_t *cfg;
    dps_db_t *db;  /* direct connection: it holds the session advisory lock */
    int have_lock; /* the lock is held on the connection numbered lock_serial */
    unsigned long lock_serial;
    int waiting_logged;     /* "waiting for the lock" said once per wait */
    int replan;             /* a notification arrived: check at once */
    int ahead_pending;      /* a new holder: make sure the partitions ahead exist */
    int partitions_pending; /* a run's partition work deferred by lock_timeout: retry each check */
    int64_t next_sweep_ms;  /* monotonic time of the next session sweep */
} pruner_t;

/* What a check reads from the database: the effective settings and the last run. */
typedef struct {
    dps_prune_settings_t set;
    int cleanup_min;
    time_t last_run; /* -1: never */
} plan_t;

static void on_notify(const char *channel, const char *payload, void *arg)
{
    pruner_t *p = arg;

    DPS_LOG(DPS_LOG_INFO, "notification", DPS_F_STR("channel", channel), DPS_F_STR("payload", payload));
    p->replan = 1;
}

/* JavaScript's parseInt as the admin API stores values (configuration.md §3): a leading integer. */
static int leading_int(const char *s, long long *out)
{
    if (s == NULL)
        return -1;
    while (isspace((unsigned char)*s))
        s++;
    if (!(isdigit((unsigned char)*s) || ((*s == '-' || *s == '+') && isdigit((unsigned char)s[1]))))
        return -1;
    *out = strtoll(s, NULL, 10);
    return 0;
}

/* A database value in [min, max], else `def` (with a warning when a value was there but unusable). */
static int int_setting(PGresult *res, int col, const char *key, long long min, long long max, long long def)
{
    long long v;

    if (PQgetisnull(res, 0, col))
        return (int)def;
    if (leading_int(PQgetvalue(res, 0, col), &v) == 0 && v >= min && v <= max)
        return (int)v;
    DPS_LOG(DPS_LOG_WARN, "retention: invalid setting ignored", DPS_F_STR("key", key), DPS_F_STR("value", PQgetvalue(res, 0, col)));
    return (int)def;
}

/* Reads settings and the last run; 0 or -1 (logged). */
static int read_plan(pruner_t *p, PGconn *conn, plan_t *plan)
{
    PGresult *res = PQexec(conn, "SELECT (SELECT value FROM settings WHERE key = 'data_retention_days'), "
                                 "(SELECT value FROM settings WHERE key = 'retention_cleanup_time'), "
                                 "(SELECT value FROM app_settings WHERE key = 'span_retention_days'), "
                                 "(SELECT floor(extract(epoch FROM started_at))::bigint FROM pruner_runs)");
    int ret = -1;

    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        char err[512];
        snprintf(err, sizeof(err), "%s", PQresultErrorMessage(res));
        err[strcspn(err, "\n")] = '\0';
        DPS_LOG(DPS_LOG_ERROR, "retention: cannot read settings", DPS_F_STR("error", err));
        goto done;
    }
    plan->set.data_retention_days = int_setting(res, 0, "data_retention_days", 1, 3650, p->cfg->data_retention_days);
    plan->set.span_retention_days = int_setting(res, 2, "span_retention_days", 1, 365, DEFAULT_SPAN_DAYS);
    if (PQgetisnull(res, 0, 1) || dps_prune_parse_hhmm(PQgetvalue(res, 0, 1), &plan->cleanup_min) != 0) {
        if (!PQgetisnull(res, 0, 1))
            DPS_LOG(DPS_LOG_WARN, "retention: invalid setting ignored", DPS_F_STR("key", "retention_cleanup_time"),
                    DPS_F_STR("value", PQgetvalue(res, 0, 1)));
        if (dps_prune_parse_hhmm(p->cfg->retention_cleanup_time, &plan->cleanup_min) != 0)
            plan->cleanup_min = 2 * 60; /* unreachable: the configuration was validated */
    }
    plan->last_run = PQgetisnull(res, 0, 3) ? -1 : (time_t)strtoll(PQgetvalue(res, 0, 3), NULL, 10);
    ret = 0;
done:
    PQclear(res);
    return ret;
}

/* 1 if this process holds the advisory lock on its current connection (trying to take it if not). */
static int hold_lock(pruner_t *p, PGconn *conn)
{
    char sql[96];
    PGresult *res;
    int got;

    if (p->have_lock && p->lock_serial == dps_db_serial(p->db))
        return 1;
    /* never blocking (pg_try_): SIGTERM stays prompt and another node's run is not waited on */
    snprintf(sql, sizeof(sql), "SELECT pg_try_advisory_lock(%d, %d)", DPS_PRUNE_LOCK_KEY1, DPS_PRUNE_LOCK_KEY2);
    res = PQexec(conn, sql);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        /* a lost connection is logged by the caller's dps_db_check */
        PQclear(res);
        return p->have_lock = 0;
    }
    got = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    p->have_lock = got;
    if (got) {
        p->lock_serial = dps_db_serial(p->db);
        p->waiting_logged = 0;
        p->ahead_pending = 1; /* the coming days have their partitions even before the next run */
        DPS_LOG(DPS_LOG_INFO, "retention lock acquired");
    } else if (!p->waiting_logged) {
        p->waiting_logged = 1;
        DPS_LOG(DPS_LOG_INFO, "retention lock held by another pruner; waiting");
    }
    return got;
}

/* One check: take or keep the lock, run if due, else retry deferred partition work and sweep sessions. */
static void check(pruner_t *p)
{
    PGconn *conn = dps_db_conn(p->db);
    time_t now = time(NULL);
    plan_t plan;

    if (conn == NULL)
        return;
    if (!hold_lock(p, conn))
        goto out;
    /* the latency roll-up at every check (a failure is logged and retried at the next one) */
    if (dps_prune_rollup(conn) == -2 || read_plan(p, conn, &plan) != 0)
        goto out;
    if (dps_prune_is_due_at(now, plan.last_run, plan.cleanup_min)) {
        dps_prune_status_t st = dps_prune_run(conn, &plan.set, now);
        if (st == DPS_PRUNE_OK || st == DPS_PRUNE_DEFERRED) {
            p->partitions_pending = st == DPS_PRUNE_DEFERRED;
            p->ahead_pending = 0;
            p->next_sweep_ms = dps_mono_ms() + DPS_PRUNE_SESSION_SWEEP_MS;
        }
        goto out;
    }
    if ((p->partitions_pending || p->ahead_pending) && !dps_prune_stop_pending()) {
        int drop = p->partitions_pending;
        int st = dps_prune_partitions(conn, plan.set.span_retention_days, now, drop) != DPS_PRUNE_OK;
        if (drop)
            p->partitions_pending = st;
        p->ahead_pending = st;
    }
    if (dps_mono_ms() >= p->next_sweep_ms && !dps_prune_stop_pending()) {
        long long n = dps_prune_sessions(conn);
        if (n >= 0) {
            DPS_LOG(n > 0 ? DPS_LOG_INFO : DPS_LOG_DEBUG, "expired sessions swept", DPS_F_INT("sessions", n));
            p->next_sweep_ms = dps_mono_ms() + DPS_PRUNE_SESSION_SWEEP_MS;
        }
    }
out:
    /* a lost connection takes the lock with it: the next connection must take it again */
    if (dps_db_check(p->db))
        p->have_lock = 0;
}

int dps_pruner_main(const dps_config_t *cfg, int standalone)
{
    const char *channels[] = {CHANNEL};
    pruner_t p = {.cfg = cfg};
    dps_listener_t *l;
    sigset_t wait_mask;
    int64_t next_check;

    if (standalone)
        dps_log_set_role("pruner");
    dps_proc_install_signals(&wait_mask);
    /* both connections must be direct: LISTEN and a session advisory lock are session state */
    const char *url = *cfg->database_listen_url ? cfg->database_listen_url : cfg->database_url;

    if ((l = dps_listener_create(url, "depsera-pruner", channels, 1)) == NULL ||
        (p.db = dps_db_create(url, "depsera-pruner")) == NULL) {
        DPS_LOG(DPS_LOG_FATAL, "out of memory");
        dps_listener_destroy(l);
        return 1;
    }
    DPS_LOG(DPS_LOG_INFO, "started", DPS_F_STR("channel", CHANNEL), DPS_F_INT("tick_ms", cfg->pruner_check_interval_ms));
    next_check = dps_mono_ms(); /* retention.md §1: one check at start */
    while (!dps_sig_term) {
        int64_t wait = p.replan ? 0 : next_check - dps_mono_ms();

        dps_listener_wait(l, (int)(wait > 0 ? wait : 0), &wait_mask, on_notify, &p);
        if (dps_sig_hup) {
            dps_sig_hup = 0;
            DPS_LOG(DPS_LOG_INFO, "SIGHUP ignored: restart this process to change its configuration");
        }
        dps_sig_chld = 0;
        if (dps_sig_term)
            break;
        if (p.replan || dps_mono_ms() >= next_check) {
            p.replan = 0;
            next_check = dps_mono_ms() + cfg->pruner_check_interval_ms;
            check(&p);
        }
    }
    DPS_LOG(DPS_LOG_INFO, "stopping");
    /* closing the session releases the advisory lock */
    dps_db_destroy(p.db);
    dps_listener_destroy(l);
    return 0;
}
