/* Applying, reverting and checking the compiled-in schema migrations. */
#include "depsera/migrate.h"
#include "depsera/db.h"
#include "depsera/log.h"
#include "depsera/util.h"

#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>

/* pg_advisory_xact_lock(namespace, id): one namespace for depsera, id 1 for migrations. Transaction
 * scoped so that it also works through a transaction-pooling PgBouncer. */
#define LOCK_SQL "SELECT pg_advisory_xact_lock(1685086066, 1)"
#define CREATE_TABLE_SQL                                                                                                           \
    "CREATE TABLE IF NOT EXISTS _migrations (id text PRIMARY KEY, name text NOT NULL, checksum text NOT NULL, "                    \
    "applied_at timestamptz NOT NULL DEFAULT now())"

const char *dps_mig_state_name(dps_mig_state_t s)
{
    static const char *names[] = {"applied", "pending", "modified", "unknown"};
    return names[s];
}

void dps_migration_checksum(const dps_migration_t *m, char out[65])
{
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)m->up_sql, strlen(m->up_sql), md);
    dps_hex_encode(md, sizeof(md), out);
}

static int cmp_status(const void *a, const void *b)
{
    return strcmp(((const dps_mig_status_t *)a)->id, ((const dps_mig_status_t *)b)->id);
}

size_t dps_migrate_classify(const dps_migration_t *known, size_t nknown, const dps_mig_row_t *rows, size_t nrows,
                            dps_mig_status_t *out)
{
    size_t n = 0;
    char sum[65];

    for (size_t i = 0; i < nknown; i++) {
        dps_mig_status_t *s = &out[n++];
        memset(s, 0, sizeof(*s));
        snprintf(s->id, sizeof(s->id), "%s", known[i].id);
        snprintf(s->name, sizeof(s->name), "%s", known[i].name);
        s->state = DPS_MIG_PENDING;
        for (size_t j = 0; j < nrows; j++) {
            if (strcmp(rows[j].id, known[i].id) != 0)
                continue;
            dps_migration_checksum(&known[i], sum);
            s->state = strcmp(sum, rows[j].checksum) == 0 ? DPS_MIG_APPLIED : DPS_MIG_MODIFIED;
            snprintf(s->applied_at, sizeof(s->applied_at), "%s", rows[j].applied_at);
        }
    }
    for (size_t j = 0; j < nrows; j++) {
        size_t i;
        for (i = 0; i < nknown && strcmp(rows[j].id, known[i].id) != 0; i++)
            ;
        if (i < nknown)
            continue;
        dps_mig_status_t *s = &out[n++];
        memset(s, 0, sizeof(*s));
        snprintf(s->id, sizeof(s->id), "%s", rows[j].id);
        snprintf(s->name, sizeof(s->name), "%s", rows[j].name);
        snprintf(s->applied_at, sizeof(s->applied_at), "%s", rows[j].applied_at);
        s->state = DPS_MIG_UNKNOWN;
    }
    qsort(out, n, sizeof(*out), cmp_status);
    return n;
}

/* Reads _migrations (absent table = no rows). *rows is malloc'ed. */
static int read_rows(PGconn *conn, dps_mig_row_t **rows, size_t *n, char *err, size_t cap)
{
    PGresult *res = PQexec(conn, "SELECT to_regclass('_migrations') IS NOT NULL");
    int exists;

    *rows = NULL;
    *n = 0;
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        goto fail;
    exists = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    if (!exists)
        return 0;
    res = PQexec(conn, "SELECT id, name, checksum, to_char(applied_at AT TIME ZONE 'UTC', "
                       "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') FROM _migrations ORDER BY id");
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        goto fail;
    *n = (size_t)PQntuples(res);
    if ((*rows = calloc(*n ? *n : 1, sizeof(**rows))) == NULL) {
        PQclear(res);
        snprintf(err, cap, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < *n; i++) {
        snprintf((*rows)[i].id, sizeof((*rows)[i].id), "%s", PQgetvalue(res, (int)i, 0));
        snprintf((*rows)[i].name, sizeof((*rows)[i].name), "%s", PQgetvalue(res, (int)i, 1));
        snprintf((*rows)[i].checksum, sizeof((*rows)[i].checksum), "%s", PQgetvalue(res, (int)i, 2));
        snprintf((*rows)[i].applied_at, sizeof((*rows)[i].applied_at), "%s", PQgetvalue(res, (int)i, 3));
    }
    PQclear(res);
    return 0;
fail:
    snprintf(err, cap, "reading _migrations: %s", PQresultErrorMessage(res));
    PQclear(res);
    return -1;
}

int dps_migrate_status(PGconn *conn, dps_mig_status_t **out, size_t *n, char *err, size_t cap)
{
    dps_mig_row_t *rows;
    size_t nrows;

    if (read_rows(conn, &rows, &nrows, err, cap) != 0)
        return -1;
    if ((*out = calloc(dps_migrations_count + nrows + 1, sizeof(**out))) == NULL) {
        free(rows);
        snprintf(err, cap, "out of memory");
        return -1;
    }
    *n = dps_migrate_classify(dps_migrations, dps_migrations_count, rows, nrows, *out);
    free(rows);
    return 0;
}

int dps_migrate_verify(PGconn *conn, int allow_unknown, char *why, size_t cap)
{
    dps_mig_status_t *st;
    size_t n, counts[4] = {0};

    if (dps_migrate_status(conn, &st, &n, why, cap) != 0)
        return -1;
    for (size_t i = 0; i < n; i++)
        counts[st[i].state]++;
    free(st);
    if (allow_unknown)
        counts[DPS_MIG_UNKNOWN] = 0;
    if (counts[DPS_MIG_PENDING] + counts[DPS_MIG_MODIFIED] + counts[DPS_MIG_UNKNOWN] == 0)
        return 0;
    if (counts[DPS_MIG_UNKNOWN] > 0)
        snprintf(why, cap, "the database has %zu migration(s) unknown to this binary (a newer depsera applied them): upgrade depsera",
                 counts[DPS_MIG_UNKNOWN]);
    else if (counts[DPS_MIG_MODIFIED] > 0)
        snprintf(why, cap, "%zu applied migration(s) differ from this binary's (checksum mismatch): see `depsera migrate status`",
                 counts[DPS_MIG_MODIFIED]);
    else
        snprintf(why, cap, "%zu migration(s) pending: run `depsera migrate up`", counts[DPS_MIG_PENDING]);
    return 1;
}

/* Runs sql; on failure rolls back and copies the message. */
static int exec_or_rollback(PGconn *conn, const char *sql, const char *what, char *err, size_t cap)
{
    char msg[1024];

    if (dps_db_exec(conn, sql, msg, sizeof(msg)) == 0)
        return 0;
    msg[strcspn(msg, "\n")] = '\0';
    snprintf(err, cap, "%s: %s", what, msg);
    PQclear(PQexec(conn, "ROLLBACK"));
    return -1;
}

/* Inside a transaction holding the lock: is migration `id` recorded, and with which checksum? */
static int recorded_checksum(PGconn *conn, const char *id, char sum[65], char *err, size_t cap)
{
    const char *params[] = {id};
    PGresult *res = PQexecParams(conn, "SELECT checksum FROM _migrations WHERE id = $1", 1, NULL, params, NULL, NULL, 0);
    int found;

    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        snprintf(err, cap, "reading _migrations: %s", PQresultErrorMessage(res));
        PQclear(res);
        PQclear(PQexec(conn, "ROLLBACK"));
        return -1;
    }
    found = PQntuples(res) > 0;
    if (found)
        snprintf(sum, 65, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    return found;
}

static int apply_one(PGconn *conn, const dps_migration_t *m, FILE *progress, char *err, size_t cap)
{
    char sum[65], recorded[65], what[160];
    const char *params[3];
    PGresult *res;
    int found;

    dps_migration_checksum(m, sum);
    if (exec_or_rollback(conn, "BEGIN", "begin", err, cap) != 0 || exec_or_rollback(conn, LOCK_SQL, "lock", err, cap) != 0)
        return -1;
    /* another `migrate up` may have applied it while we waited for the lock */
    if ((found = recorded_checksum(conn, m->id, recorded, err, cap)) < 0)
        return -1;
    if (found) {
        PQclear(PQexec(conn, "ROLLBACK"));
        if (strcmp(recorded, sum) != 0) {
            snprintf(err, cap, "migration %s_%s was applied with a different checksum (modified): see `depsera migrate status`",
                     m->id, m->name);
            return -1;
        }
        return 0;
    }
    snprintf(what, sizeof(what), "migration %s_%s", m->id, m->name);
    if (exec_or_rollback(conn, m->up_sql, what, err, cap) != 0)
        return -1;
    params[0] = m->id, params[1] = m->name, params[2] = sum;
    res = PQexecParams(conn, "INSERT INTO _migrations (id, name, checksum) VALUES ($1, $2, $3)", 3, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        snprintf(err, cap, "recording %s: %s", what, PQresultErrorMessage(res));
        PQclear(res);
        PQclear(PQexec(conn, "ROLLBACK"));
        return -1;
    }
    PQclear(res);
    if (exec_or_rollback(conn, "COMMIT", "commit", err, cap) != 0)
        return -1;
    if (progress != NULL)
        fprintf(progress, "applied %s_%s\n", m->id, m->name);
    DPS_LOG(DPS_LOG_DEBUG, "migration applied", DPS_F_STR("id", m->id), DPS_F_STR("name", m->name));
    return 0;
}

/* Refuses to touch a database that a newer binary has migrated, or whose history was modified. */
static int check_history(PGconn *conn, char *err, size_t cap)
{
    dps_mig_status_t *st;
    size_t n;
    int ret = 0;

    if (dps_migrate_status(conn, &st, &n, err, cap) != 0)
        return -1;
    for (size_t i = 0; i < n && ret == 0; i++) {
        if (st[i].state == DPS_MIG_UNKNOWN) {
            snprintf(err, cap, "migration %s_%s is recorded in the database but unknown to this binary: upgrade depsera", st[i].id,
                     st[i].name);
            ret = -1;
        } else if (st[i].state == DPS_MIG_MODIFIED) {
            snprintf(err, cap, "migration %s_%s was applied with a different checksum (modified): see `depsera migrate status`",
                     st[i].id, st[i].name);
            ret = -1;
        }
    }
    free(st);
    return ret;
}

int dps_migrate_up(PGconn *conn, FILE *progress, char *err, size_t cap)
{
    /* the bookkeeping table is created under the same lock so that concurrent runs do not race on it */
    if (exec_or_rollback(conn, "BEGIN", "begin", err, cap) != 0 || exec_or_rollback(conn, LOCK_SQL, "lock", err, cap) != 0 ||
        exec_or_rollback(conn, "SET LOCAL client_min_messages = warning", "set", err, cap) != 0 ||
        exec_or_rollback(conn, CREATE_TABLE_SQL, "creating _migrations", err, cap) != 0 ||
        exec_or_rollback(conn, "COMMIT", "commit", err, cap) != 0)
        return -1;
    if (check_history(conn, err, cap) != 0)
        return -1;
    for (size_t i = 0; i < dps_migrations_count; i++) {
        if (apply_one(conn, &dps_migrations[i], progress, err, cap) != 0)
            return -1;
    }
    return 0;
}

static const dps_migration_t *find_known(const char *id)
{
    for (size_t i = 0; i < dps_migrations_count; i++)
        if (strcmp(dps_migrations[i].id, id) == 0)
            return &dps_migrations[i];
    return NULL;
}

/* Reverts the newest recorded migration; 1 if there was none. */
static int revert_latest(PGconn *conn, FILE *progress, char *err, size_t cap)
{
    const dps_migration_t *m;
    const char *params[1];
    char id[16], what[160];
    PGresult *res;

    if (exec_or_rollback(conn, "BEGIN", "begin", err, cap) != 0 || exec_or_rollback(conn, LOCK_SQL, "lock", err, cap) != 0)
        return -1;
    res = PQexec(conn, "SELECT id FROM _migrations ORDER BY id DESC LIMIT 1");
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) == 0) {
        int none = PQresultStatus(res) == PGRES_TUPLES_OK;
        if (!none)
            snprintf(err, cap, "reading _migrations: %s", PQresultErrorMessage(res));
        PQclear(res);
        PQclear(PQexec(conn, "ROLLBACK"));
        return none ? 1 : -1;
    }
    snprintf(id, sizeof(id), "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    if ((m = find_known(id)) == NULL) {
        snprintf(err, cap, "migration %s is unknown to this binary: it cannot be reverted by this version", id);
        PQclear(PQexec(conn, "ROLLBACK"));
        return -1;
    }
    snprintf(what, sizeof(what), "reverting %s_%s", m->id, m->name);
    if (exec_or_rollback(conn, m->down_sql, what, err, cap) != 0)
        return -1;
    params[0] = m->id;
    res = PQexecParams(conn, "DELETE FROM _migrations WHERE id = $1", 1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        snprintf(err, cap, "recording the revert of %s_%s: %s", m->id, m->name, PQresultErrorMessage(res));
        PQclear(res);
        PQclear(PQexec(conn, "ROLLBACK"));
        return -1;
    }
    PQclear(res);
    if (exec_or_rollback(conn, "COMMIT", "commit", err, cap) != 0)
        return -1;
    if (progress != NULL)
        fprintf(progress, "reverted %s_%s\n", m->id, m->name);
    DPS_LOG(DPS_LOG_DEBUG, "migration reverted", DPS_F_STR("id", m->id), DPS_F_STR("name", m->name));
    return 0;
}

int dps_migrate_down(PGconn *conn, int n, FILE *progress, char *err, size_t cap)
{
    PGresult *res = PQexec(conn, "SELECT to_regclass('_migrations') IS NOT NULL");
    int exists = PQresultStatus(res) == PGRES_TUPLES_OK && strcmp(PQgetvalue(res, 0, 0), "t") == 0;

    PQclear(res);
    if (!exists)
        return 0;
    for (int i = 0; i < n; i++) {
        int r = revert_latest(conn, progress, err, cap);
        if (r < 0)
            return -1;
        if (r == 1)
            break;
    }
    return 0;
}
