/* PostgreSQL connections owned by one process: lazy connect, reconnect with backoff, LISTEN. */
#ifndef DEPSERA_DB_H
#define DEPSERA_DB_H

#include <libpq-fe.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>

typedef struct dps_db dps_db_t;

/* Called after every successful connect; returning -1 drops the connection (it counts as a failure). */
typedef int (*dps_db_on_connect_t)(PGconn *conn, void *arg);

/* A lazily connected query connection. `conninfo` and `app_name` are copied. Never NULL except on OOM. */
dps_db_t *dps_db_create(const char *conninfo, const char *app_name);
void dps_db_set_on_connect(dps_db_t *db, dps_db_on_connect_t cb, void *arg);
void dps_db_destroy(dps_db_t *db);
/* A usable connection, connecting first if needed and the backoff allows; NULL while the database is
 * unavailable. The connection stays owned by db. */
PGconn *dps_db_conn(dps_db_t *db);
/* Call after a failed statement: if the connection is broken it is closed, the loss logged and the
 * backoff started. Returns 1 if the connection was lost, 0 if it is still good. */
int dps_db_check(dps_db_t *db);
/* 1 if a connection is currently open. */
int dps_db_is_connected(const dps_db_t *db);
/* Which connection dps_db_conn gives: a number that changes with every new connection (what was
 * prepared on the previous one is gone). */
unsigned long dps_db_serial(const dps_db_t *db);

/* One synchronous connection for CLI commands; NULL with the reason in err. Caller PQfinish()es it. */
PGconn *dps_db_connect_once(const char *conninfo, const char *app_name, char *err, size_t cap);
/* Run a statement that returns no rows; 0 or -1 with the server's message in err. */
int dps_db_exec(PGconn *conn, const char *sql, char *err, size_t cap) __attribute__((warn_unused_result));

typedef struct dps_listener dps_listener_t;
typedef void (*dps_notify_cb_t)(const char *channel, const char *payload, void *arg);

/* A dedicated connection that LISTENs on `channels` (copied), reconnecting with backoff and re-LISTENing.
 * Must be a direct connection (not through a transaction pooler). */
dps_listener_t *dps_listener_create(const char *conninfo, const char *app_name, const char *const *channels, size_t n);
void dps_listener_destroy(dps_listener_t *l);
/* Wait up to timeout_ms for notifications, delivering each to cb. `sigmask` (may be NULL) is the mask
 * installed while waiting, so that blocked signals interrupt the wait without a race (ppoll).
 * Returns 0 after a timeout or notifications, -1 if interrupted by a signal. */
int dps_listener_wait(dps_listener_t *l, int timeout_ms, const sigset_t *sigmask, dps_notify_cb_t cb, void *arg);
int dps_listener_is_connected(const dps_listener_t *l);
/* For callers with a poll loop of their own: the socket to wait on for input (connecting first when
 * the backoff allows), or -1 while disconnected, with *retry_in_ms until the next attempt. */
int dps_listener_socket(dps_listener_t *l, int64_t *retry_in_ms);
/* After that socket polled readable (or in error): read it and deliver notifications to cb; a broken
 * connection is closed, logged and retried. */
void dps_listener_ready(dps_listener_t *l, dps_notify_cb_t cb, void *arg);

#endif
