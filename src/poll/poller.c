/* The health poller process (polling.md): claims due services from the shared schedule in PostgreSQL,
 * polls them many at a time on one libcurl multi handle, parses each answer, and records the outcome
 * through the shared upsert. One loop waits on the LISTEN socket (NOTIFY depsera_poll: rescan now),
 * the HTTP sockets and the next due time, with the signal mask of ppoll (STYLE: flags only in
 * handlers). SIGTERM stops claiming, lets in-flight polls finish for DRAIN_TIMEOUT_MS, then gives the
 * remaining claims back. */
#include "depsera/aux.h"
#include "depsera/db.h"
#include "depsera/log.h"
#include "depsera/poll_fetch.h"
#include "depsera/poll_limits.h"
#include "depsera/poll_parse.h"
#include "depsera/poll_sanitize.h"
#include "depsera/poll_schedule.h"
#include "depsera/proc.h"
#include "depsera/util.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define CHANNEL "depsera_poll"
#define POLL_TIMEOUT_MS 10000  /* §2: a poll is aborted after 10 s, redirects included */
#define MAX_BODY (1024 * 1024) /* a longer answer fails the poll ("Response body too large") */
#define MAX_REDIRECTS 5
#define LEASE_MS 60000     /* a claim outlives the longest poll and its recording many times over */
#define RESCAN_MS 5000     /* §3 tick: lost notifications, the allowlist setting, other pollers' polls */
#define BUSY_RESCAN_MS 500 /* due services left because their hosts were at their cap */
#define DB_RETRY_MS 500    /* while PostgreSQL is away */
#define USER_AGENT "Dependencies-Dashboard/1.0"

#define RECORD_BATCH 64     /* polls recorded in one transaction at most */
#define MIN_SCAN_GAP_MS 20   /* a freed slot waits this long for others before the next claim */

typedef struct {
    dps_poll_claim_t claim;
    dps_poll_outcome_t o; /* once fetched: what to record */
    dps_poll_result_t pr;
    char *sanitized, *warnings;
} poll_t;

typedef struct {
    const dps_config_t *cfg;
    dps_db_t *db;
    dps_listener_t *listener;
    dps_fetch_t *fetch;
    dps_hosts_t *hosts;
    dps_ssrf_allowlist_t *allowlist;
    char *allowlist_text;
    int64_t next_scan_ms, last_scan_ms, allowlist_at_ms;
    int rescan;
    int idle_claims; /* scans in a row that claimed nothing although a service was due */
    struct pollfd *fds;
    size_t afds;
    /* claims of polls whose recording failed (PostgreSQL away): given back when it returns, so that
     * their services are not left until the leases expire */
    char **lost;
    size_t nlost, alost;
    /* fetched polls waiting to be recorded together (flush) */
    poll_t **done;
    size_t ndone, adone;
} poller_t;

/* ---- the SSRF allowlist: the admin setting if non-empty, else SSRF_ALLOWLIST (§4.1) --------------- */

static void use_allowlist(poller_t *p, const char *text)
{
    dps_ssrf_allowlist_t *al;
    char *copy;

    if (p->allowlist_text != NULL && strcmp(p->allowlist_text, text) == 0)
        return;
    if ((al = dps_ssrf_allowlist_parse(text)) == NULL || (copy = strdup(text)) == NULL) {
        dps_ssrf_allowlist_free(al);
        return; /* out of memory: keep the list in force */
    }
    if (dps_ssrf_allowlist_error(al) != NULL)
        DPS_LOG(DPS_LOG_ERROR, "SSRF allowlist invalid: every poll is refused until it is fixed",
                DPS_F_STR("error", dps_ssrf_allowlist_error(al)));
    else if (p->allowlist_text != NULL)
        DPS_LOG(DPS_LOG_INFO, "SSRF allowlist changed", DPS_F_STR("allowlist", text));
    /* the fetches in flight switch to the new list before the old one is freed */
    dps_fetch_set_allowlist(p->fetch, al);
    dps_ssrf_allowlist_free(p->allowlist);
    free(p->allowlist_text);
    p->allowlist = al, p->allowlist_text = copy;
}

static void refresh_allowlist(poller_t *p, PGconn *conn)
{
    PGresult *res = PQexec(conn, "SELECT value FROM settings WHERE key = 'ssrf_allowlist'");
    const char *text = p->cfg->ssrf_allowlist;

    if (PQresultStatus(res) == PGRES_TUPLES_OK) {
        if (PQntuples(res) > 0 && !PQgetisnull(res, 0, 0) && PQgetvalue(res, 0, 0)[0] != '\0')
            text = PQgetvalue(res, 0, 0);
        use_allowlist(p, text);
        p->allowlist_at_ms = dps_mono_ms() + RESCAN_MS;
    }
    PQclear(res);
}

/* ---- one poll's end ---------------------------------------------------------------------------- */

/* The parser warnings as the JSON array services.poll_warnings holds, or NULL when there are none. */
static char *warnings_json(const dps_poll_result_t *r)
{
    json_t *a;
    char *s;

    if (r->n_warnings == 0 || (a = json_array()) == NULL)
        return NULL;
    for (size_t i = 0; i < r->n_warnings; i++)
        json_array_append_new(a, json_string(r->warnings[i]));
    s = json_dumps(a, JSON_COMPACT);
    json_decref(a);
    return s;
}

static void log_outcome(const poll_t *pl, const dps_poll_outcome_t *o, dps_record_status_t st, int64_t next_in, int64_t ms)
{
    const dps_poll_claim_t *c = &pl->claim;

    DPS_LOG(DPS_LOG_DEBUG, "poll", DPS_F_STR("service_id", c->service_id), DPS_F_BOOL("success", o->success),
            DPS_F_INT("dependencies", o->n_deps), DPS_F_STR("error", o->error), DPS_F_INT("duration_ms", ms),
            DPS_F_INT("next_in_ms", next_in), DPS_F_BOOL("recorded", st == DPS_RECORD_OK));
    if (st == DPS_RECORD_STALE)
        DPS_LOG(DPS_LOG_INFO, "poll result dropped: the service changed or its claim was taken over",
                DPS_F_STR("service_id", c->service_id));
    else if (st == DPS_RECORD_OK && !o->success && c->state.circuit != DPS_CIRCUIT_OPEN &&
             (c->state.circuit == DPS_CIRCUIT_HALF_OPEN || c->state.failures + 1 == DPS_POLL_BREAKER_THRESHOLD))
        DPS_LOG(DPS_LOG_WARN, "circuit open: polls of the service pause", DPS_F_STR("service_id", c->service_id),
                DPS_F_STR("service", c->name), DPS_F_INT("failures", c->state.failures + 1), DPS_F_INT("probe_in_ms", next_in));
    else if (st == DPS_RECORD_OK && o->success && c->state.circuit == DPS_CIRCUIT_HALF_OPEN)
        DPS_LOG(DPS_LOG_INFO, "circuit closed: the probe succeeded", DPS_F_STR("service_id", c->service_id));
}

static void keep_lost(poller_t *p, const char *token)
{
    char *copy;

    if (p->nlost == p->alost) {
        size_t a = p->alost ? p->alost * 2 : 16;
        char **v = realloc(p->lost, a * sizeof(*v));
        if (v == NULL)
            return; /* the lease expires by itself */
        p->lost = v, p->alost = a;
    }
    if ((copy = strdup(token)) != NULL)
        p->lost[p->nlost++] = copy;
}

static void release_lost(poller_t *p)
{
    if (p->nlost == 0 || dps_schedule_release(p->db, (const char *const *)p->lost, p->nlost) != 0)
        return;
    DPS_LOG(DPS_LOG_INFO, "claims of unrecorded polls released", DPS_F_INT("polls", p->nlost));
    while (p->nlost > 0)
        free(p->lost[--p->nlost]);
}

static void free_poll(poller_t *p, poll_t *pl)
{
    dps_poll_result_free(&pl->pr);
    free(pl->sanitized);
    free(pl->warnings);
    dps_hosts_release(p->hosts, pl->claim.host);
    dps_schedule_claim_free(&pl->claim);
    free(pl);
    p->rescan = 1; /* a slot is free */
}

/* A failed recording: with PostgreSQL away the claim is given back when it returns; with PostgreSQL
 * there (the poll's own writes failed) it is left to its lease, so that a service whose results cannot
 * be written is not polled again at once, over and over. */
static void recorded(poller_t *p, poll_t *pl, dps_record_status_t st, int64_t next_in, int db_up)
{
    log_outcome(pl, &pl->o, st, next_in, pl->o.elapsed_ms);
    if (st == DPS_RECORD_FAILED && !db_up)
        keep_lost(p, pl->claim.token);
    else if (st == DPS_RECORD_FAILED)
        DPS_LOG(DPS_LOG_WARN, "poll not recorded: polled again when its claim's lease expires",
                DPS_F_STR("service_id", pl->claim.service_id), DPS_F_INT("lease_ms", pl->claim.lease_ms));
    free_poll(p, pl);
}

static int by_service(const void *a, const void *b)
{
    return strcmp((*(poll_t *const *)a)->claim.service_id, (*(poll_t *const *)b)->claim.service_id);
}

/* Records the fetched polls, RECORD_BATCH to a transaction: a poll's recording is a few statements,
 * the commit (a WAL flush) is shared. */
static void flush(poller_t *p)
{
    dps_poll_record_t r[RECORD_BATCH];
    size_t at = 0;
    int db_up;

    if (p->ndone == 0)
        return; /* (and p->done may be NULL, which qsort must not get) */
    /* rows locked in one order by every batch (dependencies, services, schedule by service id) */
    qsort(p->done, p->ndone, sizeof(*p->done), by_service);
    while (at < p->ndone) {
        size_t n = p->ndone - at < RECORD_BATCH ? p->ndone - at : RECORD_BATCH;
        for (size_t i = 0; i < n; i++)
            r[i] = (dps_poll_record_t){.claim = &p->done[at + i]->claim, .outcome = p->done[at + i]->o};
        dps_schedule_record_batch(p->db, r, n);
        db_up = dps_db_check(p->db) == 0;
        for (size_t i = 0; i < n; i++)
            recorded(p, p->done[at + i], r[i].status, r[i].next_in_ms, db_up);
        at += n;
    }
    p->ndone = 0;
}

/* Parse (unless the fetch failed) and queue for recording. `error` is the fetch's failure or NULL. */
static void complete(poller_t *p, poll_t *pl, const char *error, const char *body, size_t len, int64_t ms)
{
    const char *raw = error;

    if (raw == NULL && dps_poll_parse(pl->claim.format, pl->claim.schema_config, body, len, &pl->pr) != 0)
        raw = pl->pr.error;
    pl->o.success = raw == NULL;
    pl->o.elapsed_ms = ms;
    if (pl->o.success) {
        pl->o.deps = pl->pr.deps, pl->o.n_deps = pl->pr.n_deps;
        pl->o.warnings_json = pl->warnings = warnings_json(&pl->pr);
    } else {
        pl->sanitized = dps_poll_sanitize_error(raw);
        pl->o.error = pl->sanitized != NULL ? pl->sanitized : "Unknown poll error";
    }
    if (p->ndone == p->adone) {
        size_t a = p->adone ? p->adone * 2 : 64;
        poll_t **v = realloc(p->done, a * sizeof(*v));
        if (v == NULL) { /* out of memory: this one alone, now */
            int64_t next_in = 0;
            dps_record_status_t st = dps_schedule_record(p->db, &pl->claim, &pl->o, &next_in);
            recorded(p, pl, st, next_in, dps_db_check(p->db) == 0);
            return;
        }
        p->done = v, p->adone = a;
    }
    p->done[p->ndone++] = pl;
}

static void on_fetched(void *user, const dps_fetch_result_t *r, void *arg)
{
    complete(arg, user, r->error, r->body, r->len, r->elapsed_ms);
}

/* ---- claiming and starting ------------------------------------------------------------------- */

static void release_one(poller_t *p, const char *token)
{
    const char *t[1] = {token};

    (void)dps_schedule_release(p->db, t, 1);
}

static void start(poller_t *p, dps_poll_claim_t *c)
{
    const char *accept = strcmp(c->format, "prometheus") == 0 ? "text/plain; version=0.0.4" : "application/json";
    poll_t *pl;
    char why[256];

    /* the claim counted the cluster's polls per host; this is the same cap kept locally */
    if (dps_hosts_acquire(p->hosts, c->host) != 0) {
        release_one(p, c->token);
        dps_schedule_claim_free(c);
        return;
    }
    if ((pl = calloc(1, sizeof(*pl))) == NULL) {
        dps_hosts_release(p->hosts, c->host);
        release_one(p, c->token);
        dps_schedule_claim_free(c);
        return;
    }
    pl->claim = *c;
    memset(c, 0, sizeof(*c));
    if (dps_fetch_start(p->fetch, pl->claim.url, accept, pl, why, sizeof(why)) != 0)
        complete(p, pl, why, NULL, 0, 0);
}

/* Claim what the global cap allows, start it, and plan the next scan. */
static void scan(poller_t *p)
{
    int64_t now = dps_mono_ms(), due = -1;
    int room = (int)(p->cfg->poll_max_in_flight - (long long)dps_fetch_in_flight(p->fetch));
    PGconn *conn = dps_db_conn(p->db);
    dps_poll_claim_t *claims = NULL;
    size_t n = 0;

    p->rescan = 0;
    p->last_scan_ms = now;
    p->next_scan_ms = now + DB_RETRY_MS;
    if (conn == NULL)
        return; /* PostgreSQL is away: polling pauses, the fetches in flight finish */
    release_lost(p);
    if (now >= p->allowlist_at_ms)
        refresh_allowlist(p, conn);
    if (room > 0) {
        if (dps_schedule_claim(p->db, room, (int)p->cfg->poll_max_concurrent_per_host, LEASE_MS, &claims, &n) != 0) {
            /* logged; a schema without migration 008 must not fill the log twice a second */
            if (dps_db_check(p->db) == 0)
                p->next_scan_ms = now + RESCAN_MS;
            return;
        }
        for (size_t i = 0; i < n; i++)
            start(p, &claims[i]);
        dps_schedule_claims_free(claims, n);
        flush(p); /* the polls that failed to start */
    }
    if (n > 0)
        p->idle_claims = 0;
    if (dps_db_check(p->db) == 0 && dps_schedule_next_due(p->db, &due) == 0) {
        if (due != 0)
            p->idle_claims = 0;
        if (due < 0 || due > RESCAN_MS)
            due = RESCAN_MS;
        else if (due == 0 && (size_t)room <= n)
            due = RESCAN_MS; /* no room here: a completion rescans */
        else if (due == 0) {
            /* due, not claimed: it became due since the claim (claim again soon), or its host is at
             * its cap; a completion here rescans at once, another poller's is waited for in steps */
            due = n == 0 && ++p->idle_claims >= 2 ? BUSY_RESCAN_MS : MIN_SCAN_GAP_MS;
        }
        p->next_scan_ms = now + due;
    }
    (void)dps_db_check(p->db);
}

/* ---- the loop --------------------------------------------------------------------------------- */

static void on_notify(const char *channel, const char *payload, void *arg)
{
    poller_t *p = arg;

    DPS_LOG(DPS_LOG_INFO, "notification", DPS_F_STR("channel", channel), DPS_F_STR("payload", payload));
    p->rescan = 1;
}

static int64_t min_wait(int64_t a, int64_t b)
{
    return b >= 0 && b < a ? b : a;
}

/* One wait on the LISTEN socket, the HTTP sockets and the timers, and what follows from it. */
static void wait_once(poller_t *p, int64_t until_ms, const sigset_t *mask)
{
    size_t need = 1 + dps_fetch_fds(p->fetch, NULL, 0), nf, base = 0;
    int64_t retry = -1, wait = until_ms - dps_mono_ms();
    int lfd = dps_listener_socket(p->listener, &retry);
    struct timespec ts;

    if (need > p->afds) {
        struct pollfd *v = realloc(p->fds, need * 2 * sizeof(*v));
        if (v == NULL) {
            dps_sleep_ms(10);
            return;
        }
        p->fds = v, p->afds = need * 2;
    }
    if (lfd >= 0)
        p->fds[base++] = (struct pollfd){lfd, POLLIN, 0};
    nf = dps_fetch_fds(p->fetch, p->fds + base, p->afds - base);
    wait = min_wait(min_wait(wait, dps_fetch_timeout(p->fetch)), lfd < 0 ? retry : -1);
    wait = wait > 0 ? wait : 0;
    ts.tv_sec = wait / 1000, ts.tv_nsec = (long)(wait % 1000) * 1000000;
    if (ppoll(p->fds, base + nf, &ts, mask) < 0)
        for (size_t i = 0; i < base + nf; i++)
            p->fds[i].revents = 0;
    if (lfd >= 0 && p->fds[0].revents != 0)
        dps_listener_ready(p->listener, on_notify, p);
    dps_fetch_run(p->fetch, p->fds + base, nf, on_fetched, p);
    flush(p);
}

/* SIGTERM: no new claims; the polls in flight have DRAIN_TIMEOUT_MS, then their claims go back. */
static void stop(poller_t *p, const sigset_t *mask)
{
    int64_t deadline = dps_mono_ms() + p->cfg->drain_timeout_ms;
    size_t n;
    void **users;

    DPS_LOG(DPS_LOG_INFO, "stopping", DPS_F_INT("in_flight", dps_fetch_in_flight(p->fetch)));
    while (dps_fetch_in_flight(p->fetch) > 0 && dps_mono_ms() < deadline)
        wait_once(p, deadline, mask);
    release_lost(p); /* recordings that failed while draining */
    if ((n = dps_fetch_in_flight(p->fetch)) == 0 || (users = calloc(n, sizeof(*users))) == NULL)
        return;
    n = dps_fetch_users(p->fetch, users, n);
    const char **tokens = calloc(n, sizeof(*tokens));
    if (tokens != NULL) {
        for (size_t i = 0; i < n; i++)
            tokens[i] = ((poll_t *)users[i])->claim.token;
        if (dps_schedule_release(p->db, tokens, n) == 0)
            DPS_LOG(DPS_LOG_INFO, "polls abandoned, claims released", DPS_F_INT("polls", n));
    }
    free(tokens);
    dps_fetch_destroy(p->fetch);
    p->fetch = NULL;
    for (size_t i = 0; i < n; i++) {
        dps_schedule_claim_free(&((poll_t *)users[i])->claim);
        free(users[i]);
    }
    free(users);
}

static int setup(poller_t *p, const dps_config_t *cfg)
{
    const char *channels[] = {CHANNEL};
    dps_fetch_opts_t fo = {POLL_TIMEOUT_MS, MAX_BODY, MAX_REDIRECTS, USER_AGENT};
    const char *listen_url = *cfg->database_listen_url ? cfg->database_listen_url : cfg->database_url;

    p->cfg = cfg;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return -1;
    if ((p->listener = dps_listener_create(listen_url, "depsera-poller", channels, 1)) == NULL ||
        (p->db = dps_db_create(cfg->database_url, "depsera-poller")) == NULL || (p->fetch = dps_fetch_create(&fo)) == NULL ||
        (p->hosts = dps_hosts_create((int)cfg->poll_max_concurrent_per_host)) == NULL)
        return -1;
    use_allowlist(p, cfg->ssrf_allowlist);
    return p->allowlist != NULL ? 0 : -1;
}

static void teardown(poller_t *p)
{
    dps_fetch_destroy(p->fetch);
    dps_hosts_free(p->hosts);
    dps_db_destroy(p->db);
    dps_listener_destroy(p->listener);
    dps_ssrf_allowlist_free(p->allowlist);
    free(p->allowlist_text);
    free(p->fds);
    while (p->nlost > 0)
        free(p->lost[--p->nlost]);
    free(p->lost);
    free(p->done);
    curl_global_cleanup();
}

int dps_poller_main(const dps_config_t *cfg, int standalone)
{
    poller_t p = {0};
    sigset_t wait_mask;

    if (standalone)
        dps_log_set_role("poller");
    dps_proc_install_signals(&wait_mask);
    if (setup(&p, cfg) != 0) {
        DPS_LOG(DPS_LOG_FATAL, "out of memory");
        teardown(&p);
        return 1;
    }
    DPS_LOG(DPS_LOG_INFO, "started", DPS_F_STR("channel", CHANNEL), DPS_F_INT("tick_ms", RESCAN_MS),
            DPS_F_INT("max_in_flight", cfg->poll_max_in_flight), DPS_F_INT("max_per_host", cfg->poll_max_concurrent_per_host));
    p.rescan = 1; /* §3: the first scan at once */
    while (!dps_sig_term) {
        /* a freed slot claims at once only if no claim ran in the last MIN_SCAN_GAP_MS: the polls that
         * end together share one claim */
        int64_t soon = p.last_scan_ms + MIN_SCAN_GAP_MS, now = dps_mono_ms();
        if ((p.rescan && now >= soon) || now >= p.next_scan_ms)
            scan(&p);
        wait_once(&p, p.rescan && soon < p.next_scan_ms ? soon : p.next_scan_ms, &wait_mask);
        if (dps_sig_hup) {
            dps_sig_hup = 0;
            DPS_LOG(DPS_LOG_INFO, "SIGHUP ignored: restart this process to change its configuration");
        }
        dps_sig_chld = 0;
    }
    stop(&p, &wait_mask);
    teardown(&p);
    return 0;
}
