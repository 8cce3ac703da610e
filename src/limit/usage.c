/* Usage counts of one worker, in an open-addressing table keyed by (key id, minute). */
#include "depsera/usage.h"
#include "depsera/apikey.h"
#include "depsera/log.h"
#include "depsera/pgarray.h"
#include "depsera/ratelimit.h"
#include "depsera/util.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    char id[DPS_APIKEY_ID_LEN + 1]; /* "" = free */
    int64_t minute_ms;
    long long push, rejected;
} count_t;

static count_t *table;
static size_t cap, used;
static int64_t next_flush;

#define FLUSH_SQL                                                                                                                  \
    "INSERT INTO api_key_usage_buckets AS b (api_key_id, bucket_start, granularity, push_count, rejected_count) "                  \
    "SELECT id, start, g, sum(p), sum(r) FROM unnest($1::uuid[], $2::timestamp[], $3::text[], $4::bigint[], $5::bigint[]) "        \
    "AS u(id, start, g, p, r) GROUP BY 1, 2, 3 ORDER BY 1, 2, 3 "                                                                  \
    "ON CONFLICT (api_key_id, bucket_start, granularity) DO UPDATE "                                                               \
    "SET push_count = b.push_count + excluded.push_count, rejected_count = b.rejected_count + excluded.rejected_count"

static size_t slot_of(const char *id, int64_t minute_ms, size_t n)
{
    uint64_t h = 1469598103934665603ULL ^ (uint64_t)minute_ms;

    for (const char *s = id; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return (size_t)(h % n);
}

static count_t *lookup(count_t *t, size_t n, const char *id, int64_t minute_ms)
{
    size_t i = slot_of(id, minute_ms, n);

    while (t[i].id[0] != '\0' && !(t[i].minute_ms == minute_ms && strcmp(t[i].id, id) == 0))
        i = (i + 1) % n;
    return &t[i];
}

static int grow(void)
{
    size_t ncap = cap ? cap * 2 : 64;
    count_t *t = calloc(ncap, sizeof(*t));

    if (t == NULL)
        return -1;
    for (size_t i = 0; i < cap; i++)
        if (table[i].id[0] != '\0')
            *lookup(t, ncap, table[i].id, table[i].minute_ms) = table[i];
    free(table);
    table = t, cap = ncap;
    return 0;
}

void dps_usage_count(const char *key_id, int64_t epoch_ms, int rejected)
{
    int64_t minute = dps_usage_bucket_start_ms(epoch_ms, DPS_USAGE_MINUTE);
    count_t *c;

    if (strlen(key_id) != DPS_APIKEY_ID_LEN)
        return;
    if ((used + 1) * 2 > cap && grow() != 0) {
        DPS_LOG(DPS_LOG_ERROR, "out of memory: a usage count is lost");
        return;
    }
    c = lookup(table, cap, key_id, minute);
    if (c->id[0] == '\0') {
        memcpy(c->id, key_id, DPS_APIKEY_ID_LEN + 1);
        c->minute_ms = minute;
        used++;
    }
    c->push++;
    c->rejected += rejected ? 1 : 0;
}

void dps_usage_clear(void)
{
    if (table != NULL)
        memset(table, 0, cap * sizeof(*table));
    used = 0;
}

int dps_usage_arrays(char **ids, char **starts, char **grans, char **push, char **rejected)
{
    dps_pgarray_t a[5];
    char *out[5] = {NULL};
    int rows = 0, ok = 1;

    if (used == 0)
        return 0;
    for (int k = 0; k < 5; k++)
        dps_pgarray_init(&a[k]);
    for (size_t i = 0; i < cap; i++) {
        if (table[i].id[0] == '\0')
            continue;
        for (int g = 0; g < 2; g++) {
            char start[DPS_USAGE_BUCKET_START_LEN];
            if (dps_usage_bucket_start(table[i].minute_ms, g ? DPS_USAGE_HOUR : DPS_USAGE_MINUTE, start, sizeof(start)) != 0)
                break; /* a clock outside years 0-9999 */
            dps_pgarray_add_str(&a[0], table[i].id);
            dps_pgarray_add_str(&a[1], start);
            dps_pgarray_add_str(&a[2], g ? "hour" : "minute");
            dps_pgarray_add_int(&a[3], table[i].push);
            dps_pgarray_add_int(&a[4], table[i].rejected);
            rows++;
        }
    }
    for (int k = 0; k < 5; k++) {
        const char *t = dps_pgarray_text(&a[k]);
        if (t == NULL || (out[k] = strdup(t)) == NULL)
            ok = 0;
        dps_pgarray_free(&a[k]);
    }
    if (!ok) {
        for (int k = 0; k < 5; k++)
            free(out[k]);
        return -1;
    }
    *ids = out[0], *starts = out[1], *grans = out[2], *push = out[3], *rejected = out[4];
    return rows;
}

static int exec_ok(PGconn *conn, PGresult *res)
{
    int ok = PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK;

    if (!ok) {
        char err[512];
        snprintf(err, sizeof(err), "%s", res != NULL ? PQresultErrorMessage(res) : PQerrorMessage(conn));
        err[strcspn(err, "\n")] = '\0';
        DPS_LOG(DPS_LOG_WARN, "usage counts not written: kept for the next flush", DPS_F_STR("error", err));
    }
    PQclear(res);
    return ok;
}

/* COMMIT, which answers "ROLLBACK" (not an error) when the transaction had failed. */
static int commit(PGconn *conn)
{
    PGresult *res = PQexec(conn, "COMMIT");
    int ok = PQresultStatus(res) == PGRES_COMMAND_OK && strcmp(PQcmdStatus(res), "COMMIT") == 0;

    if (!ok && PQresultStatus(res) == PGRES_COMMAND_OK)
        DPS_LOG(DPS_LOG_WARN, "usage counts not written: the transaction was rolled back; kept for the next flush");
    return exec_ok(conn, res) && ok;
}

/* BEGIN; the usage upsert; the last_used_at marks (in a savepoint: their failure must not cost the
 * counts); COMMIT. 0 when committed. */
static int write_counts(dps_db_t *db, int force)
{
    char *v[5];
    PGconn *conn;
    int rows = dps_usage_arrays(&v[0], &v[1], &v[2], &v[3], &v[4]), ok;

    if (rows <= 0)
        return rows;
    ok = (conn = dps_db_conn(db)) != NULL && PQtransactionStatus(conn) == PQTRANS_IDLE;
    if (ok)
        ok = exec_ok(conn, PQexec(conn, "BEGIN")) &&
             exec_ok(conn, PQexecParams(conn, FLUSH_SQL, 5, NULL, (const char *const *)v, NULL, NULL, 0)) &&
             exec_ok(conn, PQexec(conn, "SAVEPOINT last_used"));
    if (ok && (force ? dps_apikey_flush(db, 1) : dps_apikey_flush_due(db)) != 0)
        ok = exec_ok(conn, PQexec(conn, "ROLLBACK TO SAVEPOINT last_used"));
    if (ok)
        ok = commit(conn);
    else if (conn != NULL && PQtransactionStatus(conn) != PQTRANS_IDLE)
        PQclear(PQexec(conn, "ROLLBACK"));
    for (int k = 0; k < 5; k++)
        free(v[k]);
    if (conn != NULL && PQstatus(conn) != CONNECTION_OK)
        dps_db_check(db);
    return ok ? 0 : -1;
}

void dps_usage_flush(dps_db_t *db, int64_t interval_ms, int force)
{
    int64_t now = dps_mono_ms();

    if (!force && now < next_flush)
        return;
    next_flush = now + interval_ms;
    if (used == 0) {
        (void)dps_apikey_flush(db, force); /* logged; kept for the next attempt */
        return;
    }
    if (write_counts(db, force) == 0)
        dps_usage_clear();
    else if (force)
        DPS_LOG(DPS_LOG_ERROR, "usage counts lost at exit: the database is unavailable", DPS_F_INT("rows", (long long)used));
}
