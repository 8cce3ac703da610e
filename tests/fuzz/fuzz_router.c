/* libFuzzer target: route matching of arbitrary methods and paths (both come from clients). */
#include "depsera/router.h"

#include <stdint.h>
#include <string.h>

static void h(dps_req_t *r)
{
}

static const dps_route_t routes[] = {
    {"GET", "/api/health", h, 0},
    {"GET", "/api/teams/:id", h, 0},
    {"PUT", "/api/teams/:id", h, 0},
    {"DELETE", "/api/teams/:id/members/:userId", h, 0},
    {"GET", "/api/a/:b/:c/:d/:e/:f/:g/:h", h, 0}, /* more params than DPS_ROUTE_MAX_PARAMS */
    {"POST", "/v1/traces", h, 0},
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *sp = memchr(data, ' ', size);
    size_t mlen = sp != NULL ? (size_t)(sp - data) : 0;
    dps_route_match_t m;
    dps_route_result_t r;

    r = dps_router_match(routes, sizeof(routes) / sizeof(routes[0]), (const char *)data, mlen, (const char *)data + mlen,
                         size - mlen, &m);
    if (r == DPS_ROUTE_FOUND) {
        /* every captured value lies inside the input */
        for (size_t i = 0; i < m.nparams; i++)
            if (m.params[i].value < (const char *)data || m.params[i].value + m.params[i].len > (const char *)data + size)
                __builtin_trap();
    }
    return 0;
}
