/* An HTTP worker: h2o on the shared listening socket, request dispatch, access log, graceful drain. */
#include "depsera/worker.h"
#include "depsera/apikey.h"
#include "depsera/bootstrap.h"
#include "depsera/clientip.h"
#include "depsera/db.h"
#include "depsera/limit_req.h"
#include "depsera/limits.h"
#include "depsera/session.h"
#include "depsera/http.h"
#include "depsera/log.h"
#include "depsera/migrate.h"
#include "depsera/proc.h"
#include "depsera/routes.h"
#include "depsera/usage.h"
#include "depsera/util.h"
#include "depsera/worker_listen.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

/* One accepted connection, tracked so that a drain knows when nothing is left in flight. */
typedef struct {
    h2o_linklist_t link;
    h2o_socket_t *sock;
    dps_worker_t *w;
} conn_t;

/* A crowded worker (balance.h) leaves a new connection to the others for DEFER_MS, at most
 * MAX_DEFERRALS times in a row, then takes it anyway (the least loaded one may be busy). */
#define DEFER_MS 2
#define MAX_DEFERRALS 2

struct dps_worker {
    const dps_config_t *cfg;
    h2o_globalconf_t globalconf;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;       /* PORT: TLS when ENABLE_HTTPS */
    h2o_accept_ctx_t plain_accept_ctx; /* HTTP_PORT: never TLS */
    h2o_socket_t *listener, *http_listener;
    h2o_linklist_t conns;
    size_t nconns;
    dps_balance_t *balance;
    int slot, deferrals;
    int64_t resume_accept_at; /* monotonic ms; 0 while accepting */
    dps_db_t *db;
    dps_worker_listen_t *cache_listen; /* NOTIFY depsera_cache: the worker's caches go stale */
    dps_trust_t trust;
    dps_limits_t *limits; /* NULL in development (NODE_ENV=development) */
    h2o_timeout_t wait_timeout; /* handlers that answer later check back on this (dps_worker_wait) */
    int wait_timeout_ready;
    char id_prefix[13];
    unsigned long long next_req;
};

typedef struct {
    h2o_handler_t super;
    dps_worker_t *w;
} handler_t;

typedef struct {
    h2o_logger_t super;
    dps_worker_t *w;
} logger_t;

typedef struct {
    h2o_filter_t super;
    dps_worker_t *w;
} filter_t;

/* Replaces the body of an error h2o produced itself with our JSON one. */
typedef struct {
    h2o_ostream_t super;
    h2o_iovec_t body;
    int sent;
} json_ostream_t;

dps_db_t *dps_worker_db(dps_worker_t *w)
{
    return w->db;
}

const dps_config_t *dps_worker_config(dps_worker_t *w)
{
    return w->cfg;
}

dps_limits_t *dps_worker_limits(dps_worker_t *w)
{
    return w->limits;
}

void dps_worker_wait(dps_worker_t *w, h2o_timeout_entry_t *entry)
{
    if (!w->wait_timeout_ready) {
        h2o_timeout_init(w->ctx.loop, &w->wait_timeout, DPS_WORKER_WAIT_MS);
        w->wait_timeout_ready = 1;
    }
    h2o_timeout_link(w->ctx.loop, &w->wait_timeout, entry);
}

static void on_conn_close(void *data)
{
    conn_t *c = data; /* the socket is being torn down: touch only our record */

    dps_balance_add(c->w->balance, c->w->slot, -1);
    h2o_linklist_unlink(&c->link);
    free(c);
}

static void on_accept(h2o_socket_t *listener, const char *err)
{
    dps_worker_t *w = listener->data;

    if (err != NULL)
        return;
    if (w->deferrals < MAX_DEFERRALS && dps_balance_crowded(w->balance, w->slot)) {
        w->deferrals++;
        h2o_socket_read_stop(listener);
        w->resume_accept_at = dps_mono_ms() + DEFER_MS;
        return;
    }
    w->deferrals = 0;
    /* one per wakeup: a worker blocks on PostgreSQL while it handles a request, so connections must
     * spread over the idle workers rather than pile up on whichever woke first */
    for (int i = 0; i < 1; i++) {
        h2o_socket_t *sock = h2o_evloop_socket_accept(listener);
        conn_t *c;

        if (sock == NULL)
            return;
        if ((c = malloc(sizeof(*c))) == NULL) {
            h2o_socket_close(sock);
            continue;
        }
        *c = (conn_t){{NULL, NULL}, sock, w};
        dps_balance_add(w->balance, w->slot, 1);
        h2o_linklist_insert(&w->conns, &c->link);
        sock->on_close.cb = on_conn_close;
        sock->on_close.data = c;
        h2o_accept(listener == w->http_listener ? &w->plain_accept_ctx : &w->accept_ctx, sock);
    }
}

/* Honour a well-formed X-Request-Id from a load balancer; otherwise make one. */
static const char *request_id(dps_worker_t *w, h2o_req_t *req)
{
    ssize_t i = h2o_find_header_by_str(&req->headers, H2O_STRLIT("x-request-id"), -1);
    char *id;

    if (i >= 0) {
        h2o_iovec_t v = req->headers.entries[i].value;
        size_t k;
        for (k = 0; k < v.len && k < 64; k++)
            if (!(isalnum((unsigned char)v.base[k]) || v.base[k] == '-' || v.base[k] == '_' || v.base[k] == '.'))
                break;
        if (v.len > 0 && v.len <= 64 && k == v.len)
            return h2o_strdup(&req->pool, v.base, v.len).base;
    }
    id = h2o_mem_alloc_pool(&req->pool, 32);
    snprintf(id, 32, "%s-%llx", w->id_prefix, ++w->next_req);
    return id;
}

static const char *internal_error_text(int status)
{
    switch (status) {
    case 400:
        return "Bad request";
    case 408:
        return "Request timeout";
    case 413:
        return "Request body too large";
    case 414:
        return "Request URI too long";
    case 417:
        return "Expectation failed";
    default:
        return "Request failed";
    }
}

static void on_send_json(h2o_ostream_t *self, h2o_req_t *req, h2o_iovec_t *bufs, size_t bufcnt, h2o_send_state_t state)
{
    json_ostream_t *o = (json_ostream_t *)self;

    if (!o->sent && !h2o_send_state_is_in_progress(state)) {
        o->sent = 1;
        h2o_ostream_send_next(self, req, &o->body, 1, state);
        return;
    }
    h2o_ostream_send_next(self, req, NULL, 0, state);
}

/* Errors h2o sends itself (malformed request, body over the global cap) bypass our handler: give
 * them the same JSON body and headers as every other response. Ours carry X-Request-Id already. */
static void on_setup_ostream(h2o_filter_t *self, h2o_req_t *req, h2o_ostream_t **slot)
{
    dps_worker_t *w = ((filter_t *)self)->w;
    json_ostream_t *o;
    ssize_t ct;
    char *body;

    if (req->res.status < 400 || h2o_find_header_by_str(&req->res.headers, H2O_STRLIT("x-request-id"), -1) >= 0) {
        h2o_setup_next_ostream(req, slot);
        return;
    }
    if ((ct = h2o_find_header(&req->res.headers, H2O_TOKEN_CONTENT_TYPE, -1)) >= 0)
        h2o_delete_header(&req->res.headers, ct);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("application/json; charset=utf-8"));
    dps_http_add_common_headers(req, request_id(w, req));
    body = h2o_mem_alloc_pool(&req->pool, 64);
    snprintf(body, 64, "{\"error\":\"%s\"}", internal_error_text(req->res.status));
    req->res.content_length = strlen(body);
    o = (json_ostream_t *)h2o_add_ostream(req, sizeof(*o), slot);
    o->super.do_send = on_send_json;
    o->body = h2o_iovec_init(body, strlen(body));
    o->sent = 0;
    h2o_setup_next_ostream(req, &o->super.next);
}

static socklen_t req_peername(h2o_req_t *req, struct sockaddr_storage *ss)
{
    return req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)ss);
}

/* The connection's own TLS, not the :scheme an HTTP/2 client claims. */
static int conn_is_tls(h2o_req_t *req)
{
    h2o_socket_t *sock = req->conn->callbacks->get_socket != NULL ? req->conn->callbacks->get_socket(req->conn) : NULL;

    return sock != NULL && sock->ssl != NULL;
}

/* The address of a socket as text; "" if it has none. */
static void addr_text(const struct sockaddr_storage *ss, socklen_t len, char *buf, size_t cap)
{
    buf[0] = '\0';
    if (len > 0)
        inet_ntop(ss->ss_family,
                  ss->ss_family == AF_INET ? (const void *)&((const struct sockaddr_in *)ss)->sin_addr
                                           : (const void *)&((const struct sockaddr_in6 *)ss)->sin6_addr,
                  buf, cap);
}

/* Client address and scheme, through trusted proxies only (or TLS of our own). */
static void identify_client(dps_worker_t *w, dps_req_t *r)
{
    struct sockaddr_storage ss;
    socklen_t len = req_peername(r->h2o, &ss);
    char peer[INET6_ADDRSTRLEN];
    ssize_t i;

    addr_text(&ss, len, peer, sizeof(peer));
    i = h2o_find_header_by_str(&r->h2o->headers, H2O_STRLIT("x-forwarded-for"), -1);
    dps_client_ip(&w->trust, peer, i >= 0 ? r->h2o->headers.entries[i].value.base : NULL,
                  i >= 0 ? r->h2o->headers.entries[i].value.len : 0, r->client_ip, sizeof(r->client_ip));
    i = h2o_find_header_by_str(&r->h2o->headers, H2O_STRLIT("x-forwarded-proto"), -1);
    r->secure = conn_is_tls(r->h2o) ||
                (i >= 0 && (w->trust.mode == 1 || w->trust.mode == 2 || dps_trust_contains(&w->trust, peer)) &&
                 h2o_lcstris(r->h2o->headers.entries[i].value.base, r->h2o->headers.entries[i].value.len, H2O_STRLIT("https")));
}

static int is_json_type(h2o_req_t *req)
{
    ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_CONTENT_TYPE, -1);
    h2o_iovec_t v;

    if (i < 0)
        return 0;
    v = req->headers.entries[i].value;
    return v.len >= 16 && h2o_lcstris(v.base, 16, H2O_STRLIT("application/json"));
}

static int is_health_path(const char *path, size_t len)
{
    return h2o_memis(path, len, H2O_STRLIT("/api/health")) || h2o_memis(path, len, H2O_STRLIT("/api/health/live"));
}

/* graph-and-api.md §1 steps 2-3 for /api requests (HTTPS redirect, CORS and its preflight); 0 to
 * go on, -1 when answered. */
static int api_early(dps_worker_t *w, dps_req_t *r, const char *path, size_t path_len)
{
    h2o_req_t *req = r->h2o;

    if (w->cfg->require_https && !r->secure && !is_health_path(path, path_len)) {
        char *loc = h2o_mem_alloc_pool(&req->pool, req->authority.len + req->path.len + 16);
        sprintf(loc, "https://%.*s%.*s", (int)req->authority.len, req->authority.base, (int)req->path.len, req->path.base);
        dps_http_header(r, "location", loc);
        dps_http_json(r, 301, NULL);
        return -1;
    }
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("access-control-allow-origin"), 0, NULL, w->cfg->cors_origin,
                          strlen(w->cfg->cors_origin));
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("access-control-allow-credentials"), 0, NULL,
                          H2O_STRLIT("true"));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_VARY, NULL, H2O_STRLIT("Origin"));
    dps_csrf_issue(r);
    if (h2o_memis(req->method.base, req->method.len, H2O_STRLIT("OPTIONS"))) {
        const char *hdrs = dps_req_header(r, "access-control-request-headers");
        dps_http_header(r, "access-control-allow-methods", "GET,HEAD,PUT,PATCH,POST,DELETE");
        if (hdrs != NULL)
            dps_http_header(r, "access-control-allow-headers", hdrs);
        dps_http_json(r, 204, NULL);
        return -1;
    }
    return 0;
}

/* Counts the request against a per-IP limiter (the draft-6 RateLimit-* headers are set), and answers
 * 429 with Retry-After when the limit is exceeded. 0 to go on, -1 when answered. */
static int limit(dps_req_t *r, dps_limit_kind_t kind, const char *msg)
{
    if (dps_limit_request(r, kind, NULL).allowed)
        return 0;
    dps_http_error(r, 429, msg);
    return -1;
}

/* Steps 4-9 (JSON body, global limiter, session cookie, CSRF, auth limiter), once the route is known
 * to exist. Health checks are never limited: a throttled load-balancer probe would take a node out. */
static int api_late(dps_worker_t *w, dps_req_t *r, const char *path, size_t path_len)
{
    h2o_req_t *req = r->h2o;
    json_error_t jerr;

    if (req->entity.base != NULL && req->entity.len > 0 && is_json_type(req)) {
        if ((r->body = json_loadb(req->entity.base, req->entity.len, JSON_DECODE_ANY, &jerr)) == NULL) {
            dps_http_error(r, 400, "Invalid JSON in request body");
            return -1;
        }
    }
    if (!(path_len >= 11 && memcmp(path, "/api/health", 11) == 0) &&
        limit(r, DPS_LIMIT_API, "Too many requests, please try again later") != 0)
        return -1;
    dps_session_read_cookie(r);
    if (dps_csrf_check(r) != 0)
        return -1;
    if (path_len >= 10 && memcmp(path, "/api/auth/", 10) == 0)
        return limit(r, DPS_LIMIT_AUTH, "Too many authentication attempts, please try again later");
    return 0;
}

/* A handler that returned inside a transaction (an early error exit) must not leave it open for the
 * next request of this worker: h2o frees the request, and its cleanups, only after the response is
 * written, which may be after the next request has started. */
static void end_transaction(dps_worker_t *w)
{
    PGconn *conn = dps_db_is_connected(w->db) ? dps_db_conn(w->db) : NULL;

    if (conn != NULL && PQtransactionStatus(conn) != PQTRANS_IDLE)
        PQclear(PQexec(conn, "ROLLBACK"));
}

/* The host of an authority without its port ("[::1]:80" -> "[::1]") into buf, if it is a plain host
 * name or address: it goes into a Location header, so anything else (userinfo, paths) is refused. 0 or -1. */
static int authority_host(h2o_iovec_t a, char *buf, size_t cap)
{
    size_t n = a.len;

    if (n > 0 && a.base[0] == '[') {
        const char *close = memchr(a.base, ']', n);
        n = close != NULL ? (size_t)(close - a.base) + 1 : 0;
    } else {
        const char *colon = memchr(a.base, ':', n);
        n = colon != NULL ? (size_t)(colon - a.base) : n;
    }
    if (n == 0 || n >= cap)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (!(isalnum((unsigned char)a.base[i]) || strchr("-.[]:", a.base[i]) != NULL))
            return -1;
    memcpy(buf, a.base, n);
    buf[n] = '\0';
    return 0;
}

/* Where a redirect sends the client: the host it asked for, or, when it named none (HTTP/1.0 without
 * Host: h2o then gives the name of our host configuration), the address it connected to. 0 or -1. */
static int redirect_host(h2o_req_t *req, char *buf, size_t cap)
{
    struct sockaddr_storage ss;
    char addr[INET6_ADDRSTRLEN];

    if (req->authority.base != req->hostconf->authority.hostport.base)
        return authority_host(req->authority, buf, cap);
    addr_text(&ss, req->conn->callbacks->get_sockname(req->conn, (struct sockaddr *)&ss), addr, sizeof(addr));
    if (addr[0] == '\0')
        return -1;
    snprintf(buf, cap, strchr(addr, ':') != NULL ? "[%s]" : "%s", addr);
    return 0;
}

/* HTTP_PORT with ENABLE_HTTPS: every plain request but a health check goes to the same path and
 * query on PORT over HTTPS (PORT speaks TLS only, so a plain request came through HTTP_PORT). */
static void redirect_to_https(dps_worker_t *w, dps_req_t *r)
{
    h2o_req_t *req = r->h2o;
    char host[256], *loc;

    if (redirect_host(req, host, sizeof(host)) != 0) {
        dps_http_error(r, 400, "Invalid Host header");
        return;
    }
    loc = h2o_mem_alloc_pool(&req->pool, strlen(host) + req->path.len + 32);
    sprintf(loc, "https://%s:%lld%.*s", host, w->cfg->port, (int)req->path.len, req->path.base);
    dps_http_header(r, "location", loc);
    dps_http_json(r, 301, json_pack("{s:s, s:s}", "error", "HTTPS required", "location", loc));
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    dps_worker_t *w = ((handler_t *)self)->w;
    dps_req_t r;
    dps_route_match_t m;
    size_t path_len = req->query_at != SIZE_MAX ? req->query_at : req->path.len;
    dps_route_result_t res;
    int api;

    memset(&r, 0, sizeof(r));
    r.h2o = req;
    r.worker = w;
    r.req_id = request_id(w, req);
    dps_log_set_request_id(r.req_id);
    dps_http_add_common_headers(req, r.req_id);
    identify_client(w, &r);
    api = path_len >= 4 && memcmp(req->path.base, "/api", 4) == 0 && (path_len == 4 || req->path.base[4] == '/');
    res = dps_router_match(dps_routes, dps_routes_count, req->method.base, req->method.len, req->path.base, path_len, &m);
    if (w->cfg->enable_https && !conn_is_tls(req) && !is_health_path(req->path.base, path_len)) {
        redirect_to_https(w, &r);
    } else if (api && api_early(w, &r, req->path.base, path_len) != 0) {
        /* redirected or preflight answered */
    } else if (res == DPS_ROUTE_NOT_FOUND) {
        dps_http_error(&r, 404, "Not found");
    } else if (res == DPS_ROUTE_BAD_METHOD) {
        dps_http_header(&r, "allow", m.allow);
        dps_http_error(&r, 405, "Method not allowed");
    } else if (req->entity.base != NULL && req->entity.len > (m.route->max_body ? m.route->max_body : DPS_API_MAX_BODY)) {
        dps_http_error(&r, 413, "Request body too large");
    } else if (api && api_late(w, &r, req->path.base, path_len) != 0) {
        /* malformed body or CSRF failure answered */
    } else {
        r.route = m.route;
        memcpy(r.params, m.params, sizeof(m.params));
        r.nparams = m.nparams;
        m.route->handler(&r);
        end_transaction(w);
    }
    json_decref(r.body);
    dps_log_set_request_id(NULL);
    return 0;
}

static void on_log_access(h2o_logger_t *self, h2o_req_t *req)
{
    ssize_t i = h2o_find_header_by_str(&req->res.headers, H2O_STRLIT("x-request-id"), -1);
    char method[16], path[1024], id[72];
    struct timeval now;
    double ms;

    if (!dps_log_enabled(DPS_LOG_INFO))
        return;
    gettimeofday(&now, NULL);
    ms = (double)(now.tv_sec - req->timestamps.request_begin_at.tv_sec) * 1000.0 +
         (double)(now.tv_usec - req->timestamps.request_begin_at.tv_usec) / 1000.0;
    snprintf(method, sizeof(method), "%.*s", (int)req->method.len, req->method.base);
    /* the query string stays out of logs: it may carry tokens */
    snprintf(path, sizeof(path), "%.*s", (int)(req->query_at != SIZE_MAX ? req->query_at : req->path.len), req->path.base);
    snprintf(id, sizeof(id), "%.*s", i >= 0 ? (int)req->res.headers.entries[i].value.len : 0,
             i >= 0 ? req->res.headers.entries[i].value.base : "");
    dps_log_set_request_id(i >= 0 ? id : NULL);
    DPS_LOG(DPS_LOG_INFO, "request", DPS_F_STR("method", method), DPS_F_STR("path", path), DPS_F_INT("status", req->res.status),
            DPS_F_INT("bytes", req->bytes_sent), DPS_F_DBL("duration_ms", ms));
    dps_log_set_request_id(NULL);
}

/* A connection may be closed only when it is an idle keep-alive one: it has carried a request before
 * (h2o has read from it), h2o holds no bytes of a request for it (a partial one, one being handled or
 * answered, or a pipelined one), and the kernel holds none either (the next request, not read yet).
 * A connection that has not sent anything yet is about to: it is waited for (h2o's request timeout
 * or the drain timeout bound that wait). */
static int connection_idle(conn_t *c)
{
    int unread = 0;

    if (c->sock->bytes_read == 0 || (c->sock->input != NULL && c->sock->input->size > 0))
        return 0;
    return ioctl(h2o_socket_get_fd(c->sock), FIONREAD, &unread) == 0 && unread == 0;
}

static int all_connections_idle(dps_worker_t *w)
{
    for (h2o_linklist_t *n = w->conns.next; n != &w->conns; n = n->next)
        if (!connection_idle(H2O_STRUCT_FROM_MEMBER(conn_t, link, n)))
            return 0;
    return 1;
}

/* Each new connection verifies that every migration of this binary is applied unmodified. Newer
 * migrations are tolerated: during a rolling upgrade another node migrates ahead of this one, and
 * migrations are written to be compatible with the previous release. */
static int on_db_connect(PGconn *conn, void *arg)
{
    char why[512];
    int r = dps_migrate_verify(conn, 1, why, sizeof(why));

    if (r == 0) {
        /* the supervisor could not do it when the database was down at start */
        if (dps_bootstrap_admin(conn, ((dps_worker_t *)arg)->cfg, why, sizeof(why)) != 0)
            DPS_LOG(DPS_LOG_ERROR, "cannot create the bootstrap admin", DPS_F_STR("reason", why));
        return 0;
    }
    DPS_LOG(DPS_LOG_ERROR, "database schema does not match this binary", DPS_F_STR("reason", r > 0 ? why : "cannot read"));
    return -1;
}

/* Accept on both listeners (HTTP_PORT's may be absent), the connections of each through its own
 * accept context: that is what makes a PORT connection TLS and an HTTP_PORT one plain. */
static void start_listeners(dps_worker_t *w, const dps_listeners_t *ls)
{
    w->accept_ctx.ctx = w->plain_accept_ctx.ctx = &w->ctx;
    w->accept_ctx.hosts = w->plain_accept_ctx.hosts = w->globalconf.hosts;
    w->accept_ctx.ssl_ctx = ls->ssl_ctx;
    w->listener = h2o_evloop_socket_create(w->ctx.loop, ls->fd, H2O_SOCKET_FLAG_DONT_READ);
    w->listener->data = w;
    h2o_socket_read_start(w->listener, on_accept);
    if (ls->http_fd >= 0) {
        w->http_listener = h2o_evloop_socket_create(w->ctx.loop, ls->http_fd, H2O_SOCKET_FLAG_DONT_READ);
        w->http_listener->data = w;
        h2o_socket_read_start(w->http_listener, on_accept);
    }
}

static int setup(dps_worker_t *w, const dps_config_t *cfg, const dps_listeners_t *ls)
{
    h2o_hostconf_t *host;
    h2o_pathconf_t *path;
    handler_t *h;
    logger_t *lg;
    unsigned char rnd[6];

    w->cfg = cfg;
    h2o_linklist_init_anchor(&w->conns);
    if (dps_random_bytes(rnd, sizeof(rnd)) != 0)
        return -1;
    dps_hex_encode(rnd, sizeof(rnd), w->id_prefix);
    dps_http_init_common_headers(dps_config_is_production(cfg));
    if (dps_trust_parse(cfg->trust_proxy, &w->trust) != 0)
        return -1;
    if ((w->db = dps_db_create(cfg->database_url, "depsera-worker")) == NULL)
        return -1;
    if (!dps_config_is_development(cfg) && (w->limits = dps_limits_create(16384, dps_limits_lease_pg, w->db)) == NULL)
        return -1;
    dps_db_set_on_connect(w->db, on_db_connect, w);

    h2o_config_init(&w->globalconf);
    w->globalconf.server_name = h2o_iovec_init(H2O_STRLIT("depsera"));
    /* the largest body any route takes; each route checks its own, smaller limit */
    w->globalconf.max_request_entity_size = (size_t)cfg->otlp_max_body_bytes;
    host = h2o_config_register_host(&w->globalconf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    path = h2o_config_register_path(host, "/", 0);
    h = (handler_t *)h2o_create_handler(path, sizeof(*h));
    h->super.on_req = on_req;
    h->w = w;
    lg = (logger_t *)h2o_create_logger(path, sizeof(*lg));
    lg->super.log_access = on_log_access;
    lg->w = w;
    /* requests h2o rejects itself (malformed, too large) are bound to the fallback path: log them and
     * give them JSON bodies too */
    lg = (logger_t *)h2o_create_logger(&host->fallback_path, sizeof(*lg));
    lg->super.log_access = on_log_access;
    lg->w = w;
    for (int i = 0; i < 2; i++) {
        filter_t *f = (filter_t *)h2o_create_filter(i == 0 ? path : &host->fallback_path, sizeof(*f));
        f->super.on_setup_ostream = on_setup_ostream;
        f->w = w;
    }

    h2o_context_init(&w->ctx, h2o_evloop_create(), &w->globalconf);
    start_listeners(w, ls);
    return (w->cache_listen = dps_worker_listen_create(w->ctx.loop, cfg)) != NULL ? 0 : -1;
}

static void close_listener(h2o_socket_t **listener)
{
    if (*listener != NULL) {
        h2o_socket_read_stop(*listener);
        h2o_socket_close(*listener);
        *listener = NULL;
    }
}

/* Stop accepting and ask h2o to end keep-alive; returns the drain deadline. */
static int64_t start_drain(dps_worker_t *w)
{
    w->resume_accept_at = 0;
    close_listener(&w->listener);
    close_listener(&w->http_listener);
    h2o_context_request_shutdown(&w->ctx);
    DPS_LOG(DPS_LOG_INFO, "draining", DPS_F_INT("timeout_ms", w->cfg->drain_timeout_ms));
    return dps_mono_ms() + w->cfg->drain_timeout_ms;
}

/* Close what is left through h2o's own paths: shutting a socket down makes h2o see EOF and free the
 * connection properly (closing the socket under it would leak it and trip its timeout asserts). */
static int close_remaining(dps_worker_t *w)
{
    for (h2o_linklist_t *n = w->conns.next; n != &w->conns; n = n->next)
        shutdown(h2o_socket_get_fd(H2O_STRUCT_FROM_MEMBER(conn_t, link, n)->sock), SHUT_RDWR);
    for (int i = 0; i < 100 && !h2o_linklist_is_empty(&w->conns); i++)
        h2o_evloop_run(w->ctx.loop, 10);
    return h2o_linklist_is_empty(&w->conns) ? 0 : -1;
}

static void teardown(dps_worker_t *w)
{
    h2o_evloop_t *loop = w->ctx.loop;
    int closed;

    dps_worker_listen_destroy(w->cache_listen);
    closed = close_remaining(w) == 0; /* no request runs after this: nothing is counted after the flush */
    /* usage counts and last_used_at marks first (they matter more), then unspent leases back */
    dps_usage_flush(w->db, w->cfg->otlp_usage_flush_interval_ms, 1);
    if (w->limits != NULL && dps_db_is_connected(w->db))
        dps_limits_release(w->limits, dps_mono_ms());
    dps_limits_destroy(w->limits);
    w->limits = NULL;
    if (!closed) {
        /* h2o still holds connections: disposing now would assert; the exit closes the sockets */
        DPS_LOG(DPS_LOG_WARN, "connections still open at exit", DPS_F_INT("count", h2o_linklist_is_empty(&w->conns) ? 0 : 1));
        dps_db_destroy(w->db);
        return;
    }
    /* every waiting request was answered or went with its connection */
    if (w->wait_timeout_ready)
        h2o_timeout_dispose(w->ctx.loop, &w->wait_timeout);
    /* request_shutdown armed HTTP/2's GOAWAY timer; h2o_context_dispose asserts its timeouts are idle */
    if (h2o_timeout_is_linked(&w->ctx.http2._graceful_shutdown_timeout))
        h2o_timeout_unlink(&w->ctx.http2._graceful_shutdown_timeout);
    h2o_context_dispose(&w->ctx);
    h2o_evloop_destroy(loop);
    h2o_config_dispose(&w->globalconf);
    dps_db_destroy(w->db);
}

/* Accept again once a deferral (on_accept) is over. */
static void resume_accepting(dps_worker_t *w)
{
    if (w->resume_accept_at != 0 && dps_mono_ms() >= w->resume_accept_at && w->listener != NULL) {
        w->resume_accept_at = 0;
        h2o_socket_read_start(w->listener, on_accept);
        if (w->http_listener != NULL)
            h2o_socket_read_start(w->http_listener, on_accept); /* if it was the one deferred */
    }
}

int dps_worker_main(const dps_config_t *cfg, const dps_listeners_t *ls, int ready_fd, dps_balance_t *balance, int slot)
{
    dps_worker_t w;
    sigset_t none;
    int64_t deadline = 0;
    pid_t pid = getpid();

    memset(&w, 0, sizeof(w));
    w.balance = balance, w.slot = slot;
    /* h2o's loop waits in epoll_wait: let the flag-setting handlers interrupt it */
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGHUP, SIG_IGN);
    signal(SIGINT, SIG_IGN); /* Ctrl-C reaches the whole group: the supervisor decides */
    if (setup(&w, cfg, ls) != 0) {
        DPS_LOG(DPS_LOG_FATAL, "worker set-up failed");
        return 1;
    }
    if (ready_fd >= 0) {
        if (write(ready_fd, &pid, sizeof(pid)) != sizeof(pid))
            DPS_LOG(DPS_LOG_WARN, "cannot report readiness", DPS_F_STR("error", strerror(errno)));
        close(ready_fd);
    }
    DPS_LOG(DPS_LOG_DEBUG, "worker ready");
    dps_log_set_buffered(1);
    for (;;) {
        h2o_evloop_run(w.ctx.loop, w.resume_accept_at ? 1 : deadline ? 20 : 500);
        dps_usage_flush(w.db, cfg->otlp_usage_flush_interval_ms, 0);
        dps_log_flush();
        resume_accepting(&w);
        if (dps_sig_term && deadline == 0)
            deadline = start_drain(&w);
        if (deadline == 0)
            continue;
        if (all_connections_idle(&w))
            break;
        if (dps_mono_ms() >= deadline) {
            DPS_LOG(DPS_LOG_WARN, "drain timeout: closing busy connections");
            break;
        }
    }
    teardown(&w);
    dps_log_set_buffered(0);
    DPS_LOG(DPS_LOG_INFO, "worker stopped");
    return 0;
}
