/* The supervisor: owns the listening socket and a table of children it forks, reaps and respawns.
 * Signal handlers only set flags; this loop acts on them (nginx's master cycle, in small). */
#include "depsera/supervisor.h"
#include "depsera/aux.h"
#include "depsera/bootstrap.h"
#include "depsera/db.h"
#include "depsera/log.h"
#include "depsera/migrate.h"
#include "depsera/proc.h"
#include "depsera/tls.h"
#include "depsera/util.h"
#include "depsera/worker.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_PROCS 1024
#define STABLE_MS 5000          /* a child that lived this long was not crash-looping */
#define RESPAWN_MAX_MS 10000    /* backoff cap for a crash-looping child */
#define READY_TIMEOUT_MS 15000  /* a reload gives up on a replacement that is not ready by then */
#define KILL_GRACE_MS 2000      /* after the drain timeout, SIGKILL what is left */

typedef enum { ROLE_WORKER, ROLE_POLLER, ROLE_PRUNER } role_t;

static const char *role_names[] = {"worker", "poller", "pruner"};
static const char *comm_names[] = {"depsera-worker", "depsera-poller", "depsera-pruner"};

/* A place for one long-lived child; the supervisor keeps every slot filled. */
typedef struct {
    role_t role;
    pid_t pid;          /* 0 while empty */
    int64_t started_ms; /* monotonic */
    int64_t respawn_at; /* monotonic; when empty, refill at this time */
    int failures;       /* consecutive short-lived exits */
} slot_t;

/* Every running child, including retiring ones that no longer own a slot. */
typedef struct {
    pid_t pid;
    role_t role;
    int slot;     /* -1 once it no longer owns a slot (previous generation, or shutting down) */
    int bslot;    /* the slot it was started in: its entry in s->balance (workers) */
    int ready;    /* reported readiness on the ready pipe (workers) */
    int signaled; /* SIGTERM sent */
} proc_t;

typedef struct {
    dps_config_t cfg;
    dps_serve_opts_t opts;
    int listen_fd, ready_rd, ready_wr;
    int http_fd;      /* HTTP_PORT with ENABLE_HTTPS, else -1 */
    SSL_CTX *ssl_ctx; /* ENABLE_HTTPS; children inherit it with the fork */
    dps_balance_t *balance; /* connection counts of the worker slots */
    slot_t slots[MAX_PROCS];
    size_t nslots;
    proc_t procs[MAX_PROCS];
    size_t nprocs;
    int stopping;
    int64_t stop_deadline;
    /* rolling replacement after SIGHUP: worker slots below roll_next are refilled; roll_new is the
     * replacement whose readiness we wait for before retiring one previous-generation worker */
    int rolling;
    size_t roll_next;
    pid_t roll_new;
    int64_t roll_deadline;
} sup_t;

static proc_t *find_proc(sup_t *s, pid_t pid)
{
    for (size_t i = 0; i < s->nprocs; i++)
        if (s->procs[i].pid == pid)
            return &s->procs[i];
    return NULL;
}

static int bind_listener(const char *host, long long port)
{
    struct addrinfo hints = {0}, *ai = NULL;
    char portstr[16];
    int fd = -1, one = 1, rc;

    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
    hints.ai_socktype = SOCK_STREAM;
    snprintf(portstr, sizeof(portstr), "%lld", port);
    if ((rc = getaddrinfo(host, portstr, &hints, &ai)) != 0) {
        DPS_LOG(DPS_LOG_FATAL, "cannot resolve listen address", DPS_F_STR("host", host), DPS_F_STR("error", gai_strerror(rc)));
        return -1;
    }
    if ((fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 ||
        listen(fd, 1024) != 0 || fcntl(fd, F_SETFL, O_NONBLOCK) != 0) {
        DPS_LOG(DPS_LOG_FATAL, "cannot listen", DPS_F_STR("host", host), DPS_F_INT("port", port), DPS_F_STR("error", strerror(errno)));
        if (fd >= 0)
            close(fd);
        fd = -1;
    }
    freeaddrinfo(ai);
    return fd;
}

/* ENABLE_HTTPS: the context every worker shares, made once here so that all present one certificate
 * (a generated one would otherwise differ per worker). NULL after logging why, at `level`. */
static SSL_CTX *open_tls(const dps_config_t *cfg, dps_log_level_t level, const char *failure)
{
    char err[512];
    SSL_CTX *ctx = dps_tls_server_ctx(cfg->ssl_cert_path, cfg->ssl_key_path, err, sizeof(err));

    if (ctx == NULL) {
        DPS_LOG(level, failure, DPS_F_STR("error", err));
        if (level == DPS_LOG_FATAL)
            fprintf(stderr, "depsera: %s\n", err);
        return NULL;
    }
    if (!*cfg->ssl_cert_path)
        DPS_LOG(DPS_LOG_WARN, "HTTPS with a self-signed certificate generated at start: for development only; set "
                              "SSL_CERT_PATH and SSL_KEY_PATH");
    return ctx;
}

/* The listeners of `serve`: PORT (TLS when ENABLE_HTTPS), and HTTP_PORT beside it. 0 or -1 (logged). */
static int open_listeners(sup_t *s)
{
    if (s->cfg.http_port != 0 && !s->cfg.enable_https)
        DPS_LOG(DPS_LOG_WARN, "HTTP_PORT is ignored without ENABLE_HTTPS", DPS_F_INT("http_port", s->cfg.http_port));
    if (s->cfg.enable_https && (s->ssl_ctx = open_tls(&s->cfg, DPS_LOG_FATAL, "cannot set up HTTPS")) == NULL)
        return -1;
    if ((s->listen_fd = bind_listener(s->cfg.host, s->cfg.port)) < 0)
        return -1;
    if (s->cfg.enable_https && s->cfg.http_port != 0 && (s->http_fd = bind_listener(s->cfg.host, s->cfg.http_port)) < 0)
        return -1;
    return 0;
}

/* In the child after fork(): become the role, run it, and exit. Never returns. */
static void run_child(sup_t *s, role_t role, int slot, pid_t parent) __attribute__((noreturn));
static void run_child(sup_t *s, role_t role, int slot, pid_t parent)
{
    int code = 1;

    dps_proc_child_init(parent, comm_names[role]);
    dps_log_set_role(role_names[role]);
    close(s->ready_rd);
    if (role != ROLE_WORKER) {
        close(s->listen_fd);
        if (s->http_fd >= 0)
            close(s->http_fd);
        close(s->ready_wr);
    }
    switch (role) {
    case ROLE_WORKER:
        code = dps_worker_main(&s->cfg, &(dps_listeners_t){s->listen_fd, s->http_fd, s->ssl_ctx}, s->ready_wr, s->balance, slot);
        break;
    case ROLE_POLLER:
        code = dps_poller_main(&s->cfg, 0);
        break;
    case ROLE_PRUNER:
        code = dps_pruner_main(&s->cfg, 0);
        break;
    }
    SSL_CTX_free(s->ssl_ctx);
    dps_config_free(&s->cfg);
    free(s);
    exit(code);
}

static pid_t spawn(sup_t *s, role_t role, int slot)
{
    pid_t parent = getpid(), pid;

    if (s->nprocs == MAX_PROCS) {
        DPS_LOG(DPS_LOG_ERROR, "process table full");
        return -1;
    }
    if (role == ROLE_WORKER)
        dps_balance_assign(s->balance, slot, 0);
    if ((pid = fork()) < 0) {
        DPS_LOG(DPS_LOG_ERROR, "fork failed", DPS_F_STR("error", strerror(errno)));
        return -1;
    }
    if (pid == 0) {
        if (role == ROLE_WORKER)
            dps_balance_assign(s->balance, slot, getpid()); /* before the worker counts anything */
        run_child(s, role, slot, parent);
    }
    s->procs[s->nprocs++] = (proc_t){pid, role, slot, slot, 0, 0};
    if (slot >= 0) {
        s->slots[slot].pid = pid;
        s->slots[slot].started_ms = dps_mono_ms();
    }
    DPS_LOG(DPS_LOG_INFO, "child started", DPS_F_STR("child_role", role_names[role]), DPS_F_INT("child_pid", pid));
    return pid;
}

static void add_slot(sup_t *s, role_t role)
{
    s->slots[s->nslots++] = (slot_t){role, 0, 0, 0, 0};
}

/* Slot layout: workers first (index < cfg.workers), then poller and pruner if enabled. */
static void layout_slots(sup_t *s)
{
    s->nslots = 0;
    for (long long i = 0; i < s->cfg.workers; i++)
        add_slot(s, ROLE_WORKER);
    if (!s->opts.no_poller)
        add_slot(s, ROLE_POLLER);
    if (!s->opts.no_pruner)
        add_slot(s, ROLE_PRUNER);
}

static void signal_proc(proc_t *p, int sig)
{
    if (sig == SIGTERM && p->signaled)
        return;
    p->signaled = sig == SIGTERM ? 1 : p->signaled;
    if (kill(p->pid, sig) != 0 && errno != ESRCH)
        DPS_LOG(DPS_LOG_WARN, "kill failed", DPS_F_INT("child_pid", p->pid), DPS_F_STR("error", strerror(errno)));
}

/* Forget a reaped child; an unexpected exit of a slot owner schedules its respawn with backoff. */
static void on_child_exit(sup_t *s, pid_t pid, int status)
{
    proc_t *p = find_proc(s, pid);
    char desc[128];
    int expected;

    if (p == NULL)
        return;
    dps_proc_describe_status(status, desc, sizeof(desc));
    expected = p->signaled && WIFEXITED(status) && WEXITSTATUS(status) == 0;
    DPS_LOG(expected ? DPS_LOG_INFO : DPS_LOG_WARN, "child exited", DPS_F_STR("child_role", role_names[p->role]),
            DPS_F_INT("child_pid", pid), DPS_F_STR("status", desc), DPS_F_INT("exit_code", WIFEXITED(status) ? WEXITSTATUS(status) : -1),
            DPS_F_INT("signal", WIFSIGNALED(status) ? WTERMSIG(status) : 0));
    if (p->role == ROLE_WORKER)
        dps_balance_release(s->balance, p->bslot, pid);
    if (p->slot >= 0 && s->slots[p->slot].pid == pid) {
        slot_t *sl = &s->slots[p->slot];
        int64_t now = dps_mono_ms(), delay = 0;
        sl->pid = 0;
        sl->failures = now - sl->started_ms >= STABLE_MS ? 0 : sl->failures + 1;
        if (sl->failures > 0) {
            delay = 100LL << (sl->failures - 1 < 7 ? sl->failures - 1 : 7);
            delay = delay > RESPAWN_MAX_MS ? RESPAWN_MAX_MS : delay;
        }
        sl->respawn_at = now + delay;
        if (!s->stopping)
            DPS_LOG(DPS_LOG_INFO, "respawning child", DPS_F_STR("child_role", role_names[p->role]), DPS_F_INT("delay_ms", delay));
    }
    *p = s->procs[--s->nprocs];
}

static void reap(sup_t *s)
{
    pid_t pid;
    int status;

    dps_sig_chld = 0;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
        on_child_exit(s, pid, status);
}

static void read_ready(sup_t *s)
{
    pid_t pids[64];
    ssize_t n;

    while ((n = read(s->ready_rd, pids, sizeof(pids))) > 0) {
        for (size_t i = 0; i < (size_t)n / sizeof(pid_t); i++) {
            proc_t *p = find_proc(s, pids[i]);
            if (p != NULL)
                p->ready = 1;
        }
    }
}

static void refill_slots(sup_t *s)
{
    int64_t now = dps_mono_ms();

    for (size_t i = 0; i < s->nslots; i++) {
        slot_t *sl = &s->slots[i];
        if (sl->pid != 0 || now < sl->respawn_at)
            continue;
        if (s->rolling && sl->role == ROLE_WORKER && i >= s->roll_next)
            continue; /* the rolling replacement fills these one at a time */
        spawn(s, sl->role, (int)i);
    }
}

/* SIGTERM the previous generation: one worker (the rolling step) or all remaining. */
static void retire_old_workers(sup_t *s, int all)
{
    for (size_t i = 0; i < s->nprocs; i++) {
        proc_t *p = &s->procs[i];
        if (p->slot < 0 && p->role == ROLE_WORKER && !p->signaled) {
            signal_proc(p, SIGTERM);
            if (!all)
                return;
        }
    }
}

/* The previous-generation workers not yet retired take back the worker slots that were not
 * refilled, so the count stays WORKERS; slots left over are refilled normally. */
static void abort_roll(sup_t *s)
{
    size_t slot = s->roll_next;

    s->rolling = 0;
    s->roll_new = 0;
    for (size_t i = 0; i < s->nprocs && slot < (size_t)s->cfg.workers; i++) {
        proc_t *p = &s->procs[i];
        if (p->slot >= 0 || p->role != ROLE_WORKER || p->signaled)
            continue;
        p->slot = (int)slot;
        s->slots[slot].pid = p->pid;
        s->slots[slot].started_ms = dps_mono_ms();
        slot++;
    }
}

static void roll_step(sup_t *s)
{
    size_t nworkers = (size_t)s->cfg.workers;

    if (!s->rolling)
        return;
    if (s->roll_new != 0) {
        proc_t *p = find_proc(s, s->roll_new);
        if (p != NULL && !p->ready && dps_mono_ms() < s->roll_deadline)
            return;
        if (p == NULL || !p->ready) {
            DPS_LOG(DPS_LOG_ERROR, "reload aborted: a new worker did not become ready; previous workers keep serving");
            abort_roll(s);
            return;
        }
        retire_old_workers(s, 0);
        s->roll_new = 0;
        s->roll_next++;
    }
    if (s->roll_next < nworkers) {
        if ((s->roll_new = spawn(s, ROLE_WORKER, (int)s->roll_next)) < 0) {
            abort_roll(s);
            return;
        }
        s->roll_deadline = dps_mono_ms() + READY_TIMEOUT_MS;
        return;
    }
    retire_old_workers(s, 1);
    s->rolling = 0;
    DPS_LOG(DPS_LOG_INFO, "reload complete", DPS_F_INT("workers", nworkers));
}

/* The listening sockets stay open across a reload: their settings take the current values. 0, or -1 (logged). */
static int keep_listeners(const dps_config_t *cur, dps_config_t *next)
{
    if (strcmp(next->host, cur->host) == 0 && next->port == cur->port && next->enable_https == cur->enable_https &&
        next->http_port == cur->http_port)
        return 0;
    DPS_LOG(DPS_LOG_WARN, "HOST, PORT, ENABLE_HTTPS and HTTP_PORT changes need a restart; keeping the current listeners");
    free(next->host);
    next->host = strdup(cur->host);
    next->port = cur->port;
    next->enable_https = cur->enable_https;
    next->http_port = cur->http_port;
    if (next->host == NULL) {
        DPS_LOG(DPS_LOG_ERROR, "reload failed: out of memory");
        return -1;
    }
    return 0;
}

/* Certificate files are read again, so that a renewed certificate needs no restart; a generated one is
 * kept. The workers started from now on present the new one. 0, or -1 (logged) to keep everything. */
static int reload_tls(sup_t *s, const dps_config_t *next)
{
    SSL_CTX *ctx;

    if (s->ssl_ctx == NULL || (!*next->ssl_cert_path && !*s->cfg.ssl_cert_path))
        return 0;
    if ((ctx = open_tls(next, DPS_LOG_ERROR, "reload failed: cannot set up HTTPS, keeping the current configuration")) == NULL)
        return -1;
    SSL_CTX_free(s->ssl_ctx);
    s->ssl_ctx = ctx;
    return 0;
}

/* SIGHUP: build and validate the new configuration fully, then swap; on any error keep the old one. */
static void reload(sup_t *s)
{
    dps_config_t next;
    char err[512];

    dps_sig_hup = 0;
    if (s->stopping)
        return;
    if (dps_config_load_env(&next, s->opts.env_file, err, sizeof(err)) != 0) {
        DPS_LOG(DPS_LOG_ERROR, "reload failed: configuration is invalid, keeping the current one", DPS_F_STR("error", err));
        return;
    }
    if (keep_listeners(&s->cfg, &next) != 0 || reload_tls(s, &next) != 0) {
        dps_config_free(&next);
        return;
    }
    dps_config_free(&s->cfg);
    s->cfg = next;
    dps_log_set_level((dps_log_level_t)s->cfg.log_level);
    /* every running child becomes previous generation; background ones are replaced at once,
     * workers one at a time so that capacity never drops */
    for (size_t i = 0; i < s->nprocs; i++) {
        s->procs[i].slot = -1;
        if (s->procs[i].role != ROLE_WORKER)
            signal_proc(&s->procs[i], SIGTERM);
    }
    layout_slots(s);
    s->rolling = 1;
    s->roll_next = 0;
    s->roll_new = 0;
    DPS_LOG(DPS_LOG_INFO, "reloading", DPS_F_INT("workers", s->cfg.workers));
}

static void start_stop(sup_t *s)
{
    dps_sig_term = 0;
    if (s->stopping)
        return;
    s->stopping = 1;
    s->rolling = 0;
    s->stop_deadline = dps_mono_ms() + s->cfg.drain_timeout_ms + KILL_GRACE_MS;
    DPS_LOG(DPS_LOG_INFO, "shutting down", DPS_F_INT("children", s->nprocs));
    /* shutdown() stops the listening socket for every process sharing it: new connections are
     * refused at once, even while a worker is blocked in a query and has not closed its copy */
    shutdown(s->listen_fd, SHUT_RD);
    close(s->listen_fd);
    s->listen_fd = -1;
    if (s->http_fd >= 0) {
        shutdown(s->http_fd, SHUT_RD);
        close(s->http_fd);
        s->http_fd = -1;
    }
    for (size_t i = 0; i < s->nprocs; i++)
        signal_proc(&s->procs[i], SIGTERM);
}

static int64_t next_wakeup_ms(sup_t *s)
{
    int64_t now = dps_mono_ms(), wait = 1000;

    for (size_t i = 0; i < s->nslots && !s->stopping; i++)
        if (s->slots[i].pid == 0 && s->slots[i].respawn_at - now < wait)
            wait = s->slots[i].respawn_at - now;
    if (s->stopping && s->stop_deadline - now < wait)
        wait = s->stop_deadline - now;
    return wait < 0 ? 0 : wait;
}

static int loop(sup_t *s, const sigset_t *wait_mask)
{
    for (;;) {
        struct pollfd pfd = {s->ready_rd, POLLIN, 0};
        int64_t ms = next_wakeup_ms(s);
        struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000};

        if (ppoll(&pfd, 1, &ts, wait_mask) > 0)
            read_ready(s);
        if (dps_sig_chld)
            reap(s);
        if (dps_sig_term)
            start_stop(s);
        if (dps_sig_hup)
            reload(s);
        if (s->stopping) {
            if (s->nprocs == 0)
                return 0;
            if (dps_mono_ms() >= s->stop_deadline) {
                DPS_LOG(DPS_LOG_WARN, "children did not stop in time: killing them", DPS_F_INT("children", s->nprocs));
                for (size_t i = 0; i < s->nprocs; i++)
                    signal_proc(&s->procs[i], SIGKILL);
                s->stop_deadline = dps_mono_ms() + 1000;
            }
            continue;
        }
        refill_slots(s);
        roll_step(s);
    }
}

/* Refuse to serve a database whose schema is not this binary's. An unreachable database is not a
 * reason to refuse: workers verify again on every connect and answer 503 meanwhile. */
static int check_schema(const dps_config_t *cfg)
{
    char err[512], why[512];
    PGconn *conn = dps_db_connect_once(cfg->database_url, "depsera-supervisor", err, sizeof(err));
    int r;

    if (conn == NULL) {
        DPS_LOG(DPS_LOG_WARN, "database unavailable at start; workers will verify the schema when it is back",
                DPS_F_STR("error", err));
        return 0;
    }
    r = dps_migrate_verify(conn, 0, why, sizeof(why));
    if (r == 0) {
        int b = dps_bootstrap_admin(conn, cfg, why, sizeof(why));
        PQfinish(conn);
        if (b == 0)
            return 0;
        DPS_LOG(DPS_LOG_FATAL, "refusing to start: cannot create the bootstrap admin", DPS_F_STR("reason", why));
        fprintf(stderr, "depsera: %s\n", why);
        return b == 1 ? 2 : -1;
    }
    PQfinish(conn);
    DPS_LOG(DPS_LOG_FATAL, "refusing to start: the database schema does not match this binary", DPS_F_STR("reason", why));
    fprintf(stderr, "depsera: %s\n", r > 0 ? why : "cannot read the migration state: run `depsera migrate status`");
    return -1;
}

int dps_supervisor_main(dps_config_t *cfg, const dps_serve_opts_t *opts)
{
    sup_t *s = calloc(1, sizeof(*s));
    sigset_t wait_mask;
    int pipefd[2], code = 1;

    if (s == NULL) {
        dps_config_free(cfg);
        return 1;
    }
    s->cfg = *cfg;
    s->opts = *opts;
    s->listen_fd = s->http_fd = s->ready_rd = s->ready_wr = -1;
    dps_proc_install_signals(&wait_mask);
    if ((code = check_schema(&s->cfg)) != 0) {
        code = code == 2 ? 2 : 1;
        goto out;
    }
    code = 1;
    if (open_listeners(s) != 0) {
        code = s->ssl_ctx == NULL && s->cfg.enable_https ? 2 : 1; /* a certificate that cannot be used is bad configuration */
        goto out;
    }
    if (pipe2(pipefd, O_CLOEXEC) != 0 || fcntl(pipefd[0], F_SETFL, O_NONBLOCK) != 0) {
        DPS_LOG(DPS_LOG_FATAL, "cannot create the ready pipe", DPS_F_STR("error", strerror(errno)));
        goto out;
    }
    s->ready_rd = pipefd[0];
    s->ready_wr = pipefd[1];
    DPS_LOG(DPS_LOG_INFO, "listening", DPS_F_STR("host", s->cfg.host), DPS_F_INT("port", s->cfg.port),
            DPS_F_BOOL("https", s->cfg.enable_https), DPS_F_INT("http_port", s->http_fd >= 0 ? s->cfg.http_port : 0),
            DPS_F_INT("workers", s->cfg.workers), DPS_F_STR("version", DPS_VERSION));
    if ((s->balance = dps_balance_create(MAX_PROCS)) == NULL)
        DPS_LOG(DPS_LOG_WARN, "no shared memory for connection balancing", DPS_F_STR("error", strerror(errno)));
    layout_slots(s);
    code = loop(s, &wait_mask);
    DPS_LOG(DPS_LOG_INFO, "stopped");
out:
    if (s->listen_fd >= 0)
        close(s->listen_fd);
    if (s->http_fd >= 0)
        close(s->http_fd);
    SSL_CTX_free(s->ssl_ctx);
    if (s->ready_rd >= 0)
        close(s->ready_rd);
    if (s->ready_wr >= 0)
        close(s->ready_wr);
    dps_config_free(&s->cfg);
    free(s);
    return code;
}
