/* Health requests on one libcurl multi handle (see poll_fetch.h): sockets and timers handed to the
 * caller's loop, SSRF checks at connect time, redirects hop by hop, capped bodies. */
#include "depsera/poll_fetch.h"
#include "depsera/poll_limits.h"
#include "depsera/util.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Idle connections are closed after this long (CURLOPT_MAXAGE_CONN): after an allowlist change, no
 * connection opened under the old list is reused (each was checked when it was opened). */
#define CONN_MAX_AGE_S 60

typedef struct xfer xfer_t;

struct xfer {
    dps_fetch_t *f;
    xfer_t *prev, *next;
    CURL *easy;
    struct curl_slist *headers;
    void *user;
    char host[DPS_SSRF_HOST_MAX + 2]; /* of the current hop, as the SSRF rules see it */
    int hops;
    dps_body_t body;
    char blocked[320]; /* why the SSRF check refused a connection of this hop */
    int64_t started_ms;
};

struct dps_fetch {
    dps_fetch_opts_t o;
    CURLM *multi;
    const dps_ssrf_allowlist_t *allowlist;
    int allowlist_set;
    int64_t fresh_until; /* monotonic ms: until then no transfer reuses a connection */
    xfer_t *xfers;       /* list of fetches in flight */
    size_t count;
    struct pollfd *fds; /* the sockets libcurl wants watched */
    size_t nfds, afds;
    int64_t timer_at; /* monotonic ms of libcurl's next timeout, -1 none */
};

/* ---- sockets and timer for the caller's loop ------------------------------------------------------ */

static int on_socket(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
    dps_fetch_t *f = userp;
    size_t i;

    for (i = 0; i < f->nfds && f->fds[i].fd != s; i++)
        ;
    if (what == CURL_POLL_REMOVE) {
        if (i < f->nfds)
            f->fds[i] = f->fds[--f->nfds];
        return 0;
    }
    if (i == f->nfds) {
        if (f->nfds == f->afds) {
            size_t a = f->afds ? f->afds * 2 : 64;
            struct pollfd *v = realloc(f->fds, a * sizeof(*v));
            if (v == NULL)
                return -1;
            f->fds = v, f->afds = a;
        }
        f->nfds++;
    }
    f->fds[i].fd = s;
    f->fds[i].events = (short)((what & CURL_POLL_IN ? POLLIN : 0) | (what & CURL_POLL_OUT ? POLLOUT : 0));
    f->fds[i].revents = 0;
    return 0;
}

static int on_timer(CURLM *multi, long timeout_ms, void *userp)
{
    dps_fetch_t *f = userp;

    f->timer_at = timeout_ms < 0 ? -1 : dps_mono_ms() + timeout_ms;
    return 0;
}

size_t dps_fetch_fds(const dps_fetch_t *f, struct pollfd *out, size_t cap)
{
    if (cap > 0 && f->nfds > 0)
        memcpy(out, f->fds, (f->nfds < cap ? f->nfds : cap) * sizeof(*out));
    return f->nfds;
}

int64_t dps_fetch_timeout(const dps_fetch_t *f)
{
    int64_t left;

    if (f->timer_at < 0)
        return -1;
    left = f->timer_at - dps_mono_ms();
    return left > 0 ? left : 0;
}

/* ---- one transfer ------------------------------------------------------------------------------ */

/* Connect-time SSRF check (polling.md §4, open-questions C): the address libcurl is about to connect
 * to, whatever DNS said before and for every hop, so a rebinding name cannot slip through. */
static curl_socket_t on_open_socket(void *clientp, curlsocktype purpose, struct curl_sockaddr *a)
{
    xfer_t *x = clientp;
    dps_ip_t ip;
    int fd;

    if (purpose != CURLSOCKTYPE_IPCXN || dps_ip_from_sockaddr(&a->addr, &ip) != 0) {
        snprintf(x->blocked, sizeof(x->blocked), "Blocked connection: not an IP address");
        return CURL_SOCKET_BAD;
    }
    if (dps_ssrf_check_address(x->host, &ip, x->f->allowlist, x->blocked, sizeof(x->blocked)) != DPS_SSRF_ALLOWED)
        return CURL_SOCKET_BAD;
    fd = socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
    return fd >= 0 ? fd : CURL_SOCKET_BAD;
}

static size_t on_write(char *p, size_t size, size_t n, void *userp)
{
    xfer_t *x = userp;

    return dps_body_append(&x->body, p, size * n) == 0 ? size * n : 0;
}

/* The hop's URL as the SSRF rules read it: host kept for the connect-time check. 0 or -1. */
static int set_url(xfer_t *x, const char *url)
{
    dps_url_t u;

    if (dps_url_parse(url, &u) != 0)
        return -1;
    memcpy(x->host, u.host, sizeof(x->host));
    x->blocked[0] = '\0';
    return curl_easy_setopt(x->easy, CURLOPT_URL, url) == CURLE_OK ? 0 : -1;
}

static int64_t remaining_ms(const xfer_t *x)
{
    int64_t left = x->f->o.timeout_ms - (dps_mono_ms() - x->started_ms);

    return left > 1 ? left : 1;
}

static int configure(xfer_t *x, const char *accept)
{
    char header[256];
    CURL *e = x->easy;

    snprintf(header, sizeof(header), "Accept: %s", accept);
    if ((x->headers = curl_slist_append(NULL, header)) == NULL)
        return -1;
    /* each option that fails is a libcurl without a feature the poller relies on */
    return (curl_easy_setopt(e, CURLOPT_PRIVATE, x) | curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->headers) |
            curl_easy_setopt(e, CURLOPT_USERAGENT, x->f->o.user_agent) | curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) |
            curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L) | curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") |
            /* no proxy from the environment: the SSRF check must see the target's own address */
            curl_easy_setopt(e, CURLOPT_PROXY, "") | curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "") |
            curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)x->f->o.max_body) |
            curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write) | curl_easy_setopt(e, CURLOPT_WRITEDATA, x) |
            curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, on_open_socket) | curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, x) |
            curl_easy_setopt(e, CURLOPT_MAXAGE_CONN, (long)CONN_MAX_AGE_S) |
            curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, dps_mono_ms() < x->f->fresh_until ? 1L : 0L) |
            curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)remaining_ms(x))) == CURLE_OK
               ? 0
               : -1;
}

static void xfer_free(xfer_t *x)
{
    if (x->easy != NULL) {
        curl_multi_remove_handle(x->f->multi, x->easy);
        curl_easy_cleanup(x->easy);
    }
    curl_slist_free_all(x->headers);
    dps_body_free(&x->body);
    free(x);
}

static void unlink_xfer(xfer_t *x)
{
    dps_fetch_t *f = x->f;

    if (x->prev != NULL)
        x->prev->next = x->next;
    else
        f->xfers = x->next;
    if (x->next != NULL)
        x->next->prev = x->prev;
    f->count--;
}

int dps_fetch_start(dps_fetch_t *f, const char *url, const char *accept, void *user, char *why, size_t cap)
{
    xfer_t *x = calloc(1, sizeof(*x));

    if (x == NULL || (x->easy = curl_easy_init()) == NULL) {
        snprintf(why, cap, "Out of memory");
        free(x);
        return -1;
    }
    x->f = f, x->user = user, x->started_ms = dps_mono_ms();
    dps_body_init(&x->body, f->o.max_body);
    if (set_url(x, url) != 0) {
        snprintf(why, cap, "Invalid URL: %s", url);
        goto fail;
    }
    if (configure(x, accept) != 0 || curl_multi_add_handle(f->multi, x->easy) != CURLM_OK) {
        snprintf(why, cap, "HTTP client setup failed");
        goto fail;
    }
    x->next = f->xfers;
    if (f->xfers != NULL)
        f->xfers->prev = x;
    f->xfers = x;
    f->count++;
    return 0;
fail:
    curl_slist_free_all(x->headers);
    curl_easy_cleanup(x->easy);
    dps_body_free(&x->body);
    free(x);
    return -1;
}

size_t dps_fetch_in_flight(const dps_fetch_t *f)
{
    return f->count;
}

size_t dps_fetch_users(const dps_fetch_t *f, void **out, size_t cap)
{
    size_t n = 0;

    for (const xfer_t *x = f->xfers; x != NULL && n < cap; x = x->next)
        out[n++] = x->user;
    return n;
}

/* ---- outcomes ---------------------------------------------------------------------------------- */

static const char *reason_phrase(long status)
{
    static const struct {
        long status;
        const char *text;
    } t[] = {{300, "Multiple Choices"},   {301, "Moved Permanently"}, {302, "Found"},
             {303, "See Other"},          {304, "Not Modified"},      {307, "Temporary Redirect"},
             {308, "Permanent Redirect"}, {400, "Bad Request"},       {401, "Unauthorized"},
             {403, "Forbidden"},          {404, "Not Found"},         {405, "Method Not Allowed"},
             {408, "Request Timeout"},    {429, "Too Many Requests"}, {500, "Internal Server Error"},
             {501, "Not Implemented"},    {502, "Bad Gateway"},       {503, "Service Unavailable"},
             {504, "Gateway Timeout"}};

    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
        if (t[i].status == status)
            return t[i].text;
    return "Error";
}

/* A connection-level failure in the words of polling.md §5.1's stored messages. */
static const char *errno_text(long e, const char *otherwise)
{
    switch (e) {
    case ECONNREFUSED:
        return "Connection refused";
    case ECONNRESET:
        return "Connection reset";
    case ETIMEDOUT:
        return "Connection timed out";
    case EHOSTUNREACH:
        return "Host unreachable";
    case ENETUNREACH:
        return "Network unreachable";
    case ECONNABORTED:
        return "Connection aborted";
    case EPIPE:
        return "Connection broken";
    default:
        return otherwise;
    }
}

static void describe(const xfer_t *x, CURLcode rc, char *out, size_t cap)
{
    long os_errno = 0;

    curl_easy_getinfo(x->easy, CURLINFO_OS_ERRNO, &os_errno);
    if (x->blocked[0] != '\0' && rc == CURLE_COULDNT_CONNECT)
        snprintf(out, cap, "%s", x->blocked);
    else if (x->body.too_large || rc == CURLE_FILESIZE_EXCEEDED)
        snprintf(out, cap, "Response body too large");
    else if (rc == CURLE_OPERATION_TIMEDOUT)
        snprintf(out, cap, "Request timed out");
    else if (rc == CURLE_COULDNT_RESOLVE_HOST)
        snprintf(out, cap, "DNS lookup failed");
    else if (rc == CURLE_COULDNT_CONNECT)
        snprintf(out, cap, "%s", errno_text(os_errno, "Connection failed"));
    else if (rc == CURLE_RECV_ERROR || rc == CURLE_SEND_ERROR || rc == CURLE_PARTIAL_FILE)
        snprintf(out, cap, "%s", errno_text(os_errno, "Connection closed unexpectedly"));
    else if (rc == CURLE_GOT_NOTHING)
        snprintf(out, cap, "Empty reply from server");
    else if (rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CACERT_BADFILE || rc == CURLE_SSL_ISSUER_ERROR)
        snprintf(out, cap, "TLS certificate error");
    else if (rc == CURLE_SSL_CONNECT_ERROR)
        snprintf(out, cap, "TLS handshake failed");
    else
        snprintf(out, cap, "%s", curl_easy_strerror(rc));
}

/* A 3xx with a Location: the next hop, checked like the first (open-questions C). 1 when the
 * transfer goes on, 0 when it ended (error written). */
static int follow(xfer_t *x, char *err, size_t cap)
{
    char *location = NULL, *copy;
    int ok;

    curl_easy_getinfo(x->easy, CURLINFO_REDIRECT_URL, &location);
    if (location == NULL)
        return 0;
    if (++x->hops > x->f->o.max_redirects) {
        snprintf(err, cap, "Too many redirects");
        return 0;
    }
    if ((copy = strdup(location)) == NULL) {
        snprintf(err, cap, "Out of memory");
        return 0;
    }
    curl_multi_remove_handle(x->f->multi, x->easy);
    dps_body_free(&x->body);
    ok = set_url(x, copy) == 0;
    free(copy);
    if (!ok) {
        snprintf(err, cap, "Invalid redirect URL");
        return 0;
    }
    if (curl_easy_setopt(x->easy, CURLOPT_TIMEOUT_MS, (long)remaining_ms(x)) != CURLE_OK ||
        curl_multi_add_handle(x->f->multi, x->easy) != CURLM_OK) {
        snprintf(err, cap, "HTTP client setup failed");
        return 0;
    }
    return 1;
}

static void finish(xfer_t *x, CURLcode rc, dps_fetch_done_t cb, void *arg)
{
    dps_fetch_result_t r = {0};
    char err[400];
    long status = 0;

    err[0] = '\0';
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
    r.status = status;
    if (rc != CURLE_OK)
        describe(x, rc, err, sizeof(err));
    else if (status >= 300 && status < 400 && follow(x, err, sizeof(err)))
        return; /* the next hop runs */
    else if (err[0] == '\0' && (status < 200 || status > 299))
        snprintf(err, sizeof(err), "HTTP %ld: %s", status, reason_phrase(status));
    r.error = err[0] != '\0' ? err : NULL;
    r.body = x->body.data != NULL ? x->body.data : "";
    r.len = x->body.len;
    r.elapsed_ms = dps_mono_ms() - x->started_ms;
    unlink_xfer(x);
    cb(x->user, &r, arg);
    xfer_free(x);
}

void dps_fetch_run(dps_fetch_t *f, const struct pollfd *fds, size_t n, dps_fetch_done_t cb, void *arg)
{
    int running, left;
    CURLMsg *m;

    for (size_t i = 0; i < n; i++) {
        int mask = 0;
        if (fds[i].revents == 0)
            continue;
        mask |= fds[i].revents & POLLIN ? CURL_CSELECT_IN : 0;
        mask |= fds[i].revents & POLLOUT ? CURL_CSELECT_OUT : 0;
        mask |= fds[i].revents & (POLLERR | POLLHUP | POLLNVAL) ? CURL_CSELECT_ERR : 0;
        curl_multi_socket_action(f->multi, fds[i].fd, mask, &running);
    }
    if (f->timer_at >= 0 && dps_mono_ms() >= f->timer_at) {
        f->timer_at = -1;
        curl_multi_socket_action(f->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    }
    while ((m = curl_multi_info_read(f->multi, &left)) != NULL) {
        xfer_t *x = NULL;
        if (m->msg != CURLMSG_DONE)
            continue;
        CURLcode rc = m->data.result;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
        if (x != NULL)
            finish(x, rc, cb, arg);
    }
}

/* ---- life ------------------------------------------------------------------------------------- */

dps_fetch_t *dps_fetch_create(const dps_fetch_opts_t *opts)
{
    dps_fetch_t *f = calloc(1, sizeof(*f));

    if (f == NULL || (f->multi = curl_multi_init()) == NULL) {
        free(f);
        return NULL;
    }
    f->o = *opts;
    f->timer_at = -1;
    curl_multi_setopt(f->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(f->multi, CURLMOPT_SOCKETDATA, f);
    curl_multi_setopt(f->multi, CURLMOPT_TIMERFUNCTION, on_timer);
    curl_multi_setopt(f->multi, CURLMOPT_TIMERDATA, f);
    return f;
}

void dps_fetch_set_allowlist(dps_fetch_t *f, const dps_ssrf_allowlist_t *al)
{
    if (f->allowlist_set)
        f->fresh_until = dps_mono_ms() + CONN_MAX_AGE_S * 1000 + 1000;
    f->allowlist = al;
    f->allowlist_set = 1;
}

void dps_fetch_destroy(dps_fetch_t *f)
{
    if (f == NULL)
        return;
    while (f->xfers != NULL) {
        xfer_t *x = f->xfers;
        unlink_xfer(x);
        xfer_free(x);
    }
    curl_multi_cleanup(f->multi);
    free(f->fds);
    free(f);
}
