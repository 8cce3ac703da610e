/* A process's query connection: connected lazily, dropped when broken, retried with backoff. */
#include "depsera/db.h"
#include "depsera/log.h"
#include "depsera/util.h"

#include <stdlib.h>
#include <string.h>

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 2000 /* a local connect attempt is cheap; come back fast after an outage */

struct dps_db {
    char *conninfo, *app_name;
    PGconn *conn;
    int64_t next_attempt_ms; /* monotonic; no attempt before this */
    int64_t backoff_ms;
    int was_connected;  /* for "connection lost" vs "unavailable" */
    int reported_down;  /* log an outage once, not at every attempt */
    dps_db_on_connect_t on_connect;
    void *on_connect_arg;
    unsigned long serial; /* connections made so far (dps_db_serial) */
};

/* libpq notices (e.g. "relation already exists, skipping") go through our log, not raw to stderr. */
static void on_notice(void *arg, const char *message)
{
    char buf[512];
    size_t n = strlen(message);

    snprintf(buf, sizeof(buf), "%.*s", (int)(n > 0 && message[n - 1] == '\n' ? n - 1 : n), message);
    DPS_LOG(DPS_LOG_DEBUG, "postgresql notice", DPS_F_STR("notice", buf));
}

PGconn *dps_db_connect_once(const char *conninfo, const char *app_name, char *err, size_t cap)
{
    /* the conninfo comes last so that its own connect_timeout or application_name win */
    const char *keys[] = {"connect_timeout", "application_name", "dbname", NULL};
    const char *vals[] = {"5", app_name, conninfo, NULL};
    PGconn *conn = PQconnectdbParams(keys, vals, 1);
    size_t n;

    if (conn == NULL) {
        snprintf(err, cap, "out of memory");
        return NULL;
    }
    if (PQstatus(conn) != CONNECTION_OK) {
        snprintf(err, cap, "%s", PQerrorMessage(conn));
        n = strlen(err);
        while (n > 0 && (err[n - 1] == '\n' || err[n - 1] == ' '))
            err[--n] = '\0';
        PQfinish(conn);
        return NULL;
    }
    PQsetNoticeProcessor(conn, on_notice, NULL);
    return conn;
}

int dps_db_exec(PGconn *conn, const char *sql, char *err, size_t cap)
{
    PGresult *res = PQexec(conn, sql);
    int ok = PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK;

    if (!ok)
        snprintf(err, cap, "%s", PQresultErrorMessage(res));
    PQclear(res);
    return ok ? 0 : -1;
}

dps_db_t *dps_db_create(const char *conninfo, const char *app_name)
{
    dps_db_t *db = calloc(1, sizeof(*db));

    if (db == NULL)
        return NULL;
    db->conninfo = strdup(conninfo != NULL ? conninfo : "");
    db->app_name = strdup(app_name);
    if (db->conninfo == NULL || db->app_name == NULL) {
        dps_db_destroy(db);
        return NULL;
    }
    db->backoff_ms = BACKOFF_MIN_MS;
    return db;
}

void dps_db_set_on_connect(dps_db_t *db, dps_db_on_connect_t cb, void *arg)
{
    db->on_connect = cb;
    db->on_connect_arg = arg;
}

void dps_db_destroy(dps_db_t *db)
{
    if (db == NULL)
        return;
    if (db->conn != NULL)
        PQfinish(db->conn);
    free(db->conninfo);
    free(db->app_name);
    free(db);
}

static void fail_attempt(dps_db_t *db, const char *why)
{
    if (!db->reported_down)
        DPS_LOG(DPS_LOG_WARN, db->was_connected ? "database connection lost" : "database unavailable", DPS_F_STR("error", why),
                DPS_F_INT("retry_in_ms", db->backoff_ms));
    else
        DPS_LOG(DPS_LOG_DEBUG, "database still unavailable", DPS_F_STR("error", why), DPS_F_INT("retry_in_ms", db->backoff_ms));
    db->reported_down = 1;
    db->next_attempt_ms = dps_mono_ms() + db->backoff_ms;
    db->backoff_ms = db->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : db->backoff_ms * 2;
}

PGconn *dps_db_conn(dps_db_t *db)
{
    char err[512];

    if (db->conn != NULL)
        return db->conn;
    if (dps_mono_ms() < db->next_attempt_ms)
        return NULL;
    if ((db->conn = dps_db_connect_once(db->conninfo, db->app_name, err, sizeof(err))) == NULL) {
        fail_attempt(db, err);
        return NULL;
    }
    if (db->on_connect != NULL && db->on_connect(db->conn, db->on_connect_arg) != 0) {
        PQfinish(db->conn);
        db->conn = NULL;
        fail_attempt(db, "connection rejected by start-up check");
        return NULL;
    }
    DPS_LOG(db->reported_down ? DPS_LOG_INFO : DPS_LOG_DEBUG, "database connected");
    db->serial++;
    db->was_connected = 1;
    db->reported_down = 0;
    db->backoff_ms = BACKOFF_MIN_MS;
    return db->conn;
}

int dps_db_check(dps_db_t *db)
{
    char err[512];

    if (db->conn == NULL)
        return 1;
    if (PQstatus(db->conn) == CONNECTION_OK)
        return 0;
    snprintf(err, sizeof(err), "%s", PQerrorMessage(db->conn));
    err[strcspn(err, "\n")] = '\0';
    PQfinish(db->conn);
    db->conn = NULL;
    db->backoff_ms = BACKOFF_MIN_MS;
    fail_attempt(db, err);
    /* the first retry may be immediate: the server may only have restarted */
    db->next_attempt_ms = 0;
    return 1;
}

unsigned long dps_db_serial(const dps_db_t *db)
{
    return db->serial;
}

int dps_db_is_connected(const dps_db_t *db)
{
    return db->conn != NULL;
}
