/* A worker's LISTEN connection, driven by its h2o loop: NOTIFY depsera_cache makes every cache of the worker stale. */
#include "depsera/worker_listen.h"
#include "depsera/log.h"
#include "depsera/util.h"

#include <errno.h>
#include <libpq-fe.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BACKOFF_MIN_MS 250
#define BACKOFF_MAX_MS 5000
#define CONNECT_TIMEOUT_MS 5000 /* libpq's connect_timeout is not applied to PQconnectPoll: ours */
#define FAST_TICK_MS 20         /* while connecting: how often the socket is checked */
#define SLOW_TICK_MS 250        /* while down: how often the backoff deadline is checked */

typedef enum {
    LISTEN_DOWN,        /* no connection; the next attempt is due at next_attempt_ms */
    LISTEN_CONNECTING,  /* PQconnectPoll in progress, its socket checked by the fast tick */
    LISTEN_SUBSCRIBING, /* connected, LISTEN sent; its result arrives through the read watch */
    LISTEN_ACTIVE,      /* subscribed: notifications arrive through the read watch; no tick */
} listen_state_t;

struct dps_worker_listen {
    h2o_evloop_t *loop;
    char *conninfo;
    PGconn *conn;
    /* A dup of PQsocket(conn) watched for reads (H2O_SOCKET_FLAG_DONT_READ: libpq does the reading).
     * h2o closes the descriptor it owns and libpq the one it owns, so neither closes the other's, and
     * the epoll registration stays valid even after libpq has dropped a broken connection. */
    h2o_socket_t *sock;
    listen_state_t state;
    PostgresPollingStatusType polling; /* what PQconnectPoll waits for while CONNECTING */
    int64_t next_attempt_ms, deadline_ms, backoff_ms;
    int reported_down; /* an outage is logged once, not at every attempt */
    h2o_timeout_t fast, slow;
    h2o_timeout_entry_t tick;
};

/* Process-wide: a worker is one process with one listener; its caches are process-wide too. */
static uint64_t generation = 1;
static int active;

uint64_t dps_worker_listen_generation(void)
{
    return generation;
}

void dps_worker_listen_invalidate(void)
{
    generation++;
}

int dps_worker_listen_active(void)
{
    return active;
}

/* The tick runs only while not subscribed: fast while a connection is being set up, slow while down. */
static void arm(dps_worker_listen_t *l)
{
    if (h2o_timeout_is_linked(&l->tick))
        h2o_timeout_unlink(&l->tick);
    if (l->state != LISTEN_ACTIVE)
        h2o_timeout_link(l->loop, l->state == LISTEN_DOWN ? &l->slow : &l->fast, &l->tick);
}

static void close_connection(dps_worker_listen_t *l)
{
    if (l->sock != NULL) {
        h2o_socket_read_stop(l->sock);
        h2o_socket_close(l->sock);
        l->sock = NULL;
    }
    if (l->conn != NULL) {
        PQfinish(l->conn);
        l->conn = NULL;
    }
}

/* Drop the connection and schedule the next attempt. A subscription that was working is retried at
 * once (the server may only have restarted), later ones with a doubling backoff. */
static void fail(dps_worker_listen_t *l, const char *why)
{
    char err[512];

    snprintf(err, sizeof(err), "%s", why);
    err[strcspn(err, "\n")] = '\0'; /* libpq's first line says it */
    if (!l->reported_down)
        DPS_LOG(DPS_LOG_WARN, l->state == LISTEN_ACTIVE ? "cache listener disconnected" : "cache listener cannot connect",
                DPS_F_STR("error", err), DPS_F_INT("retry_in_ms", l->state == LISTEN_ACTIVE ? 0 : l->backoff_ms));
    l->reported_down = 1;
    if (l->state == LISTEN_ACTIVE) {
        l->backoff_ms = BACKOFF_MIN_MS;
        l->next_attempt_ms = 0;
    } else {
        l->next_attempt_ms = dps_mono_ms() + l->backoff_ms;
        l->backoff_ms = l->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : l->backoff_ms * 2;
    }
    close_connection(l);
    if (active) {
        active = 0;
        generation++;
    }
    l->state = LISTEN_DOWN;
    arm(l);
}

static void on_subscribed(dps_worker_listen_t *l)
{
    l->state = LISTEN_ACTIVE;
    active = 1;
    generation++; /* whatever was sent while we were not listening is lost */
    DPS_LOG(l->reported_down ? DPS_LOG_INFO : DPS_LOG_DEBUG, "listening for cache invalidations",
            DPS_F_STR("channel", DPS_CACHE_CHANNEL));
    l->reported_down = 0;
    l->backoff_ms = BACKOFF_MIN_MS;
    arm(l);
}

static void drain_notifies(dps_worker_listen_t *l)
{
    PGnotify *n;

    while ((n = PQnotifies(l->conn)) != NULL) {
        if (strcmp(n->relname, DPS_CACHE_CHANNEL) == 0)
            generation++;
        DPS_LOG(DPS_LOG_DEBUG, "notification", DPS_F_STR("channel", n->relname), DPS_F_STR("payload", n->extra));
        PQfreemem(n);
    }
}

/* The LISTEN's results, until libpq has none left (ReadyForQuery): then we are subscribed. 0, or -1
 * after fail(). */
static int read_subscription(dps_worker_listen_t *l)
{
    PGresult *res;

    while (!PQisBusy(l->conn)) {
        int ok;

        if ((res = PQgetResult(l->conn)) == NULL) {
            on_subscribed(l);
            return 0;
        }
        ok = PQresultStatus(res) == PGRES_COMMAND_OK;
        if (!ok) {
            char err[512];
            snprintf(err, sizeof(err), "LISTEN failed: %s", PQresultErrorMessage(res));
            PQclear(res);
            fail(l, err);
            return -1;
        }
        PQclear(res);
    }
    return 0;
}

static void on_readable(h2o_socket_t *sock, const char *err)
{
    dps_worker_listen_t *l = sock->data;

    if (err != NULL) {
        fail(l, err);
        return;
    }
    if (PQconsumeInput(l->conn) == 0 || PQstatus(l->conn) != CONNECTION_OK) {
        fail(l, PQerrorMessage(l->conn));
        return;
    }
    if (l->state == LISTEN_SUBSCRIBING && read_subscription(l) != 0)
        return;
    drain_notifies(l);
}

/* Connected: send LISTEN without blocking and watch the socket for its answer. */
static void subscribe(dps_worker_listen_t *l)
{
    int fd;

    if (PQsetnonblocking(l->conn, 1) != 0 || PQsendQuery(l->conn, "LISTEN " DPS_CACHE_CHANNEL) == 0) {
        fail(l, PQerrorMessage(l->conn));
        return;
    }
    if ((fd = dup(PQsocket(l->conn))) < 0) {
        fail(l, strerror(errno));
        return;
    }
    l->sock = h2o_evloop_socket_create(l->loop, fd, H2O_SOCKET_FLAG_DONT_READ);
    l->sock->data = l;
    h2o_socket_read_start(l->sock, on_readable);
    l->state = LISTEN_SUBSCRIBING;
    l->deadline_ms = dps_mono_ms() + CONNECT_TIMEOUT_MS;
    if (PQflush(l->conn) < 0)
        fail(l, PQerrorMessage(l->conn));
}

/* 1 if the socket is ready for what PQconnectPoll waits for (errors and hang-ups count: libpq reports them). */
static int socket_ready(dps_worker_listen_t *l)
{
    struct pollfd pfd = {PQsocket(l->conn), l->polling == PGRES_POLLING_READING ? POLLIN : POLLOUT, 0};

    return pfd.fd >= 0 && poll(&pfd, 1, 0) > 0;
}

/* Run PQconnectPoll as long as its socket is ready. */
static void advance_connect(dps_worker_listen_t *l)
{
    while (socket_ready(l)) {
        l->polling = PQconnectPoll(l->conn);
        if (l->polling == PGRES_POLLING_OK) {
            subscribe(l);
            return;
        }
        if (l->polling == PGRES_POLLING_FAILED) {
            fail(l, PQerrorMessage(l->conn));
            return;
        }
    }
}

static void start_connect(dps_worker_listen_t *l)
{
    /* the conninfo comes last so that its own settings win (as in db.c) */
    const char *keys[] = {"application_name", "keepalives_idle", "keepalives_interval", "keepalives_count", "dbname", NULL};
    const char *vals[] = {"depsera-worker", "30", "10", "3", l->conninfo, NULL};

    if ((l->conn = PQconnectStartParams(keys, vals, 1)) == NULL) {
        fail(l, "out of memory");
        return;
    }
    if (PQstatus(l->conn) == CONNECTION_BAD) {
        fail(l, PQerrorMessage(l->conn));
        return;
    }
    l->state = LISTEN_CONNECTING;
    l->polling = PGRES_POLLING_WRITING; /* libpq: behave as if PQconnectPoll had asked for writing */
    l->deadline_ms = dps_mono_ms() + CONNECT_TIMEOUT_MS;
    advance_connect(l);
}

static void on_tick(h2o_timeout_entry_t *entry)
{
    dps_worker_listen_t *l = H2O_STRUCT_FROM_MEMBER(dps_worker_listen_t, tick, entry);
    int64_t now = dps_mono_ms();

    switch (l->state) {
    case LISTEN_DOWN:
        if (now >= l->next_attempt_ms)
            start_connect(l);
        break;
    case LISTEN_CONNECTING:
        if (now >= l->deadline_ms)
            fail(l, "timeout expired");
        else
            advance_connect(l);
        break;
    case LISTEN_SUBSCRIBING:
        if (now >= l->deadline_ms)
            fail(l, "timeout expired waiting for LISTEN");
        else if (PQflush(l->conn) < 0)
            fail(l, PQerrorMessage(l->conn));
        break;
    case LISTEN_ACTIVE:
        break;
    }
    arm(l);
}

dps_worker_listen_t *dps_worker_listen_create(h2o_evloop_t *loop, const dps_config_t *cfg)
{
    const char *url =
        cfg->database_listen_url != NULL && cfg->database_listen_url[0] ? cfg->database_listen_url : cfg->database_url;
    dps_worker_listen_t *l = calloc(1, sizeof(*l));

    if (l == NULL)
        return NULL;
    if ((l->conninfo = strdup(url != NULL ? url : "")) == NULL) {
        free(l);
        return NULL;
    }
    l->loop = loop;
    l->backoff_ms = BACKOFF_MIN_MS;
    l->state = LISTEN_DOWN;
    h2o_timeout_init(loop, &l->fast, FAST_TICK_MS);
    h2o_timeout_init(loop, &l->slow, SLOW_TICK_MS);
    l->tick.cb = on_tick;
    start_connect(l);
    arm(l);
    return l;
}

void dps_worker_listen_destroy(dps_worker_listen_t *l)
{
    if (l == NULL)
        return;
    close_connection(l);
    if (h2o_timeout_is_linked(&l->tick))
        h2o_timeout_unlink(&l->tick);
    h2o_timeout_dispose(l->loop, &l->fast);
    h2o_timeout_dispose(l->loop, &l->slow);
    if (active) {
        active = 0;
        generation++;
    }
    free(l->conninfo);
    free(l);
}
