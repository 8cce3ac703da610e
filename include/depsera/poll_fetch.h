/* The poller's HTTP client: many health requests at once on one libcurl multi handle, driven by the
 * caller's poll loop (it waits on dps_fetch_fds with dps_fetch_timeout, then calls dps_fetch_run).
 * Every connection is checked against the SSRF rules on the address it is about to use, redirects
 * are followed by hand so that each hop is parsed and checked, and bodies are capped. */
#ifndef DEPSERA_POLL_FETCH_H
#define DEPSERA_POLL_FETCH_H

#include "depsera/ssrf.h"
#include <poll.h>
#include <stddef.h>
#include <stdint.h>

typedef struct dps_fetch dps_fetch_t;

typedef struct {
    int64_t timeout_ms; /* a whole fetch, redirects included */
    size_t max_body;    /* bytes; a longer body fails the fetch */
    int max_redirects;
    const char *user_agent;
} dps_fetch_opts_t;

/* The end of one fetch, valid during the callback only. */
typedef struct {
    long status;      /* HTTP status of the last response, 0 if there was none */
    const char *body; /* NUL-terminated, len bytes (a 2xx response read whole) */
    size_t len;
    const char *error; /* NULL on success; else why (not yet sanitized for storage) */
    int64_t elapsed_ms;
} dps_fetch_result_t;

typedef void (*dps_fetch_done_t)(void *user, const dps_fetch_result_t *r, void *arg);

/* NULL when libcurl or memory fails. curl_global_init must have run. */
dps_fetch_t *dps_fetch_create(const dps_fetch_opts_t *opts);
/* Abandons every fetch in flight (no callbacks) and frees everything. */
void dps_fetch_destroy(dps_fetch_t *f);
/* The allowlist the SSRF checks use from now on (not owned; NULL = empty). After a change, fetches
 * open new connections until every connection opened under the previous list has aged out. */
void dps_fetch_set_allowlist(dps_fetch_t *f, const dps_ssrf_allowlist_t *al);

/* Starts GET url with the given Accept header; `user` comes back in the callback. 0, or -1 with the
 * reason in why (an invalid URL, out of memory): no callback then. */
int dps_fetch_start(dps_fetch_t *f, const char *url, const char *accept, void *user, char *why, size_t cap)
    __attribute__((warn_unused_result));
size_t dps_fetch_in_flight(const dps_fetch_t *f);
/* The users of the fetches in flight, in no order, into out (at most cap); returns how many. */
size_t dps_fetch_users(const dps_fetch_t *f, void **out, size_t cap);

/* The sockets to wait on (at most cap written; returns how many there are in all). */
size_t dps_fetch_fds(const dps_fetch_t *f, struct pollfd *out, size_t cap);
/* Milliseconds until libcurl needs dps_fetch_run for its timers, or -1 for none. */
int64_t dps_fetch_timeout(const dps_fetch_t *f);
/* Act on the polled sockets (fds as filled by dps_fetch_fds, with revents) and on expired timers;
 * every fetch that ended is passed to cb. */
void dps_fetch_run(dps_fetch_t *f, const struct pollfd *fds, size_t n, dps_fetch_done_t cb, void *arg);

#endif
