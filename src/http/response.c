/* Every response leaves through here: JSON bodies, JSON errors, and the headers all responses carry. */
#include "depsera/http.h"
#include "depsera/log.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *name;
    const char *value;
} header_t;

static header_t common[16];
static size_t ncommon;

/* CSP per graph-and-api.md §1; development builds of the UI need eval and websockets. */
#define CSP_PROD                                                                                                                   \
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self'; "            \
    "connect-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
#define CSP_DEV                                                                                                                    \
    "default-src 'self'; script-src 'self' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "              \
    "font-src 'self'; connect-src 'self' ws:; object-src 'none'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"

void dps_http_init_common_headers(int production)
{
    ncommon = 0;
    common[ncommon++] = (header_t){"content-security-policy", production ? CSP_PROD : CSP_DEV};
    common[ncommon++] = (header_t){"x-frame-options", "DENY"};
    common[ncommon++] = (header_t){"x-content-type-options", "nosniff"};
    common[ncommon++] = (header_t){"referrer-policy", "no-referrer"};
    common[ncommon++] = (header_t){"cross-origin-opener-policy", "same-origin"};
    common[ncommon++] = (header_t){"cross-origin-resource-policy", "same-origin"};
    common[ncommon++] = (header_t){"origin-agent-cluster", "?1"};
    common[ncommon++] = (header_t){"x-dns-prefetch-control", "off"};
    common[ncommon++] = (header_t){"x-download-options", "noopen"};
    common[ncommon++] = (header_t){"x-permitted-cross-domain-policies", "none"};
    common[ncommon++] = (header_t){"x-xss-protection", "0"};
    if (production)
        common[ncommon++] = (header_t){"strict-transport-security", "max-age=31536000; includeSubDomains"};
}

void dps_http_add_common_headers(h2o_req_t *req, const char *req_id)
{
    for (size_t i = 0; i < ncommon; i++)
        h2o_add_header_by_str(&req->pool, &req->res.headers, common[i].name, strlen(common[i].name), 0, NULL, common[i].value,
                              strlen(common[i].value));
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-request-id"), 0, NULL, req_id, strlen(req_id));
}

void dps_http_header(dps_req_t *r, const char *name, const char *value)
{
    h2o_iovec_t n = h2o_strdup(&r->h2o->pool, name, SIZE_MAX), v = h2o_strdup(&r->h2o->pool, value, SIZE_MAX);
    h2o_add_header_by_str(&r->h2o->pool, &r->h2o->res.headers, n.base, n.len, 0, NULL, v.base, v.len);
}

static const char *reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 415: return "Unsupported Media Type";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Unknown";
    }
}

void dps_http_set_header(dps_req_t *r, const char *name, const char *value)
{
    ssize_t i;

    while ((i = h2o_find_header_by_str(&r->h2o->res.headers, name, strlen(name), -1)) >= 0)
        h2o_delete_header(&r->h2o->res.headers, i);
    dps_http_header(r, name, value);
}

void dps_http_json_text(dps_req_t *r, int status, const char *text, size_t len)
{
    h2o_req_t *req = r->h2o;

    req->res.status = status;
    req->res.reason = reason(status);
    req->res.content_length = len;
    if (len > 0)
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("application/json; charset=utf-8"));
    /* h2o copies the body into the request pool */
    h2o_send_inline(req, len > 0 ? text : "", len);
}

static void on_owned_dispose(void *p)
{
    free(*(char **)p);
}

/* h2o_send_inline without its copy: the body is freed with the request's pool, once written. */
void dps_http_send_owned(dps_req_t *r, int status, const char *content_type, char *data, size_t len)
{
    static h2o_generator_t generator = {NULL, NULL};
    h2o_req_t *req = r->h2o;
    char **owner = h2o_mem_alloc_shared(&req->pool, sizeof(*owner), on_owned_dispose);
    h2o_iovec_t body = h2o_iovec_init(data, len);

    *owner = data;
    h2o_mem_link_shared(&req->pool, owner);
    req->res.status = status;
    req->res.reason = reason(status);
    req->res.content_length = len;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, content_type, strlen(content_type));
    h2o_start_response(req, &generator);
    if (h2o_memis(req->input.method.base, req->input.method.len, H2O_STRLIT("HEAD")))
        h2o_send(req, NULL, 0, H2O_SEND_STATE_FINAL);
    else
        h2o_send(req, &body, 1, H2O_SEND_STATE_FINAL);
}

void dps_http_json(dps_req_t *r, int status, json_t *body)
{
    char *text = NULL;

    if (body != NULL) {
        text = json_dumps(body, JSON_COMPACT);
        json_decref(body);
        if (text == NULL) {
            dps_http_json_text(r, 500, H2O_STRLIT("{\"error\":\"Internal server error\"}"));
            return;
        }
    }
    dps_http_json_text(r, status, text, text != NULL ? strlen(text) : 0);
    free(text);
}

void dps_http_error(dps_req_t *r, int status, const char *msg)
{
    dps_http_json(r, status, json_pack("{s:s}", "error", msg));
}
