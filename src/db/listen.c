/* LISTEN connections: wait on the socket with a timeout, deliver NOTIFYs, survive database restarts. */
#include "depsera/db.h"
#include "depsera/log.h"
#include "depsera/util.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#define BACKOFF_MIN_MS 250
#define BACKOFF_MAX_MS 5000

struct dps_listener {
    char *conninfo, *app_name;
    char **channels;
    size_t nchannels;
    PGconn *conn;
    int64_t next_attempt_ms, backoff_ms;
    int reported_down, was_connected;
};

dps_listener_t *dps_listener_create(const char *conninfo, const char *app_name, const char *const *channels, size_t n)
{
    dps_listener_t *l = calloc(1, sizeof(*l));

    if (l == NULL)
        return NULL;
    l->conninfo = strdup(conninfo != NULL ? conninfo : "");
    l->app_name = strdup(app_name);
    l->channels = calloc(n ? n : 1, sizeof(char *));
    if (l->conninfo == NULL || l->app_name == NULL || l->channels == NULL)
        goto fail;
    for (l->nchannels = 0; l->nchannels < n; l->nchannels++)
        if ((l->channels[l->nchannels] = strdup(channels[l->nchannels])) == NULL)
            goto fail;
    l->backoff_ms = BACKOFF_MIN_MS;
    return l;
fail:
    dps_listener_destroy(l);
    return NULL;
}

void dps_listener_destroy(dps_listener_t *l)
{
    if (l == NULL)
        return;
    if (l->conn != NULL)
        PQfinish(l->conn);
    for (size_t i = 0; i < l->nchannels; i++)
        free(l->channels[i]);
    free(l->channels);
    free(l->conninfo);
    free(l->app_name);
    free(l);
}

int dps_listener_is_connected(const dps_listener_t *l)
{
    return l->conn != NULL;
}

static void lost(dps_listener_t *l, const char *why)
{
    if (l->conn != NULL) {
        PQfinish(l->conn);
        l->conn = NULL;
    }
    if (!l->reported_down)
        DPS_LOG(DPS_LOG_WARN, l->was_connected ? "database connection lost" : "database unavailable", DPS_F_STR("error", why),
                DPS_F_INT("retry_in_ms", l->backoff_ms));
    l->reported_down = 1;
    l->next_attempt_ms = dps_mono_ms() + l->backoff_ms;
    l->backoff_ms = l->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : l->backoff_ms * 2;
}

static int connect_and_listen(dps_listener_t *l)
{
    char err[512], sql[256];

    if ((l->conn = dps_db_connect_once(l->conninfo, l->app_name, err, sizeof(err))) == NULL) {
        lost(l, err);
        return -1;
    }
    for (size_t i = 0; i < l->nchannels; i++) {
        char *ident = PQescapeIdentifier(l->conn, l->channels[i], strlen(l->channels[i]));
        if (ident == NULL) {
            lost(l, "cannot quote channel name");
            return -1;
        }
        snprintf(sql, sizeof(sql), "LISTEN %s", ident);
        PQfreemem(ident);
        if (dps_db_exec(l->conn, sql, err, sizeof(err)) != 0) {
            lost(l, err);
            return -1;
        }
    }
    DPS_LOG(DPS_LOG_INFO, "database connected", DPS_F_INT("channels", l->nchannels));
    l->was_connected = 1;
    l->reported_down = 0;
    l->backoff_ms = BACKOFF_MIN_MS;
    return 0;
}

static int wait_fd(int fd, int timeout_ms, const sigset_t *sigmask)
{
    struct pollfd pfd = {fd, POLLIN, 0};
    struct timespec ts = {timeout_ms / 1000, (long)(timeout_ms % 1000) * 1000000};
    int r = sigmask != NULL ? ppoll(fd >= 0 ? &pfd : NULL, fd >= 0, &ts, sigmask) : poll(fd >= 0 ? &pfd : NULL, fd >= 0, timeout_ms);

    if (r < 0)
        return errno == EINTR ? -1 : 0;
    return r;
}

static void drain_notifies(dps_listener_t *l, dps_notify_cb_t cb, void *arg)
{
    PGnotify *n;

    while ((n = PQnotifies(l->conn)) != NULL) {
        cb(n->relname, n->extra, arg);
        PQfreemem(n);
    }
}

int dps_listener_socket(dps_listener_t *l, int64_t *retry_in_ms)
{
    int64_t now = dps_mono_ms();

    if (l->conn == NULL && now >= l->next_attempt_ms)
        connect_and_listen(l);
    if (l->conn != NULL)
        return PQsocket(l->conn);
    *retry_in_ms = l->next_attempt_ms > now ? l->next_attempt_ms - now : 0;
    return -1;
}

void dps_listener_ready(dps_listener_t *l, dps_notify_cb_t cb, void *arg)
{
    if (l->conn == NULL)
        return;
    if (PQconsumeInput(l->conn) == 0 || PQstatus(l->conn) != CONNECTION_OK) {
        char err[512];
        snprintf(err, sizeof(err), "%s", PQerrorMessage(l->conn));
        err[strcspn(err, "\n")] = '\0';
        lost(l, err);
        l->next_attempt_ms = 0; /* try again at once: the server may just have restarted */
        return;
    }
    drain_notifies(l, cb, arg);
}

int dps_listener_wait(dps_listener_t *l, int timeout_ms, const sigset_t *sigmask, dps_notify_cb_t cb, void *arg)
{
    int64_t retry = 0;
    int fd = dps_listener_socket(l, &retry), r;

    if (fd < 0) /* sleep until the timeout or the next connection attempt, whichever is first */
        return wait_fd(-1, (int)(retry < timeout_ms ? retry : timeout_ms), sigmask) < 0 ? -1 : 0;
    if ((r = wait_fd(fd, timeout_ms, sigmask)) < 0)
        return -1;
    if (r > 0)
        dps_listener_ready(l, cb, arg);
    else
        drain_notifies(l, cb, arg);
    return 0;
}
