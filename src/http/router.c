/* Which handler serves a request: patterns are compared segment by segment, ':name' captures one. */
#include "depsera/router.h"

#include <stdio.h>
#include <string.h>

/* Next '/'-separated segment of [p, end); returns its length and advances *p past it. */
static size_t next_segment(const char **p, const char *end, const char **seg)
{
    const char *s = *p;
    if (s < end && *s == '/')
        s++;
    *seg = s;
    while (s < end && *s != '/')
        s++;
    *p = s;
    return (size_t)(s - *seg);
}

static int match_path(const char *pattern, const char *path, size_t path_len, dps_route_match_t *out)
{
    const char *pp = pattern, *pend = pattern + strlen(pattern), *xp = path, *xend = path + path_len;
    size_t nparams = 0;

    /* one trailing slash is not significant ("/api/health/" is "/api/health") */
    if (path_len > 1 && path[path_len - 1] == '/')
        xend--;
    while (pp < pend || xp < xend) {
        const char *pseg, *xseg;
        size_t plen, xlen;

        if (pp >= pend || xp >= xend)
            return 0;
        plen = next_segment(&pp, pend, &pseg);
        xlen = next_segment(&xp, xend, &xseg);
        if (plen > 0 && pseg[0] == ':') {
            if (xlen == 0 || nparams == DPS_ROUTE_MAX_PARAMS)
                return 0;
            out->params[nparams++] = (dps_param_t){pseg + 1, plen - 1, xseg, xlen};
        } else if (plen != xlen || memcmp(pseg, xseg, plen) != 0) {
            return 0;
        }
    }
    out->nparams = nparams;
    return 1;
}

static int method_is(const char *want, const char *method, size_t len)
{
    return strlen(want) == len && memcmp(want, method, len) == 0;
}

static void allow_add(char *allow, size_t cap, const char *method)
{
    size_t n = strlen(allow);
    if (strstr(allow, method) != NULL)
        return;
    snprintf(allow + n, cap - n, "%s%s", n ? ", " : "", method);
}

dps_route_result_t dps_router_match(const dps_route_t *routes, size_t nroutes, const char *method, size_t method_len,
                                    const char *path, size_t path_len, dps_route_match_t *out)
{
    int path_matched = 0;

    memset(out, 0, sizeof(*out));
    for (size_t i = 0; i < nroutes; i++) {
        dps_route_match_t m;
        memset(&m, 0, sizeof(m));
        if (!match_path(routes[i].pattern, path, path_len, &m))
            continue;
        if (method_is(routes[i].method, method, method_len) ||
            (strcmp(routes[i].method, "GET") == 0 && method_is("HEAD", method, method_len))) {
            *out = m;
            out->route = &routes[i];
            return DPS_ROUTE_FOUND;
        }
        path_matched = 1;
        allow_add(out->allow, sizeof(out->allow), routes[i].method);
        if (strcmp(routes[i].method, "GET") == 0)
            allow_add(out->allow, sizeof(out->allow), "HEAD");
    }
    return path_matched ? DPS_ROUTE_BAD_METHOD : DPS_ROUTE_NOT_FOUND;
}
