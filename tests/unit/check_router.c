/* Unit tests of route matching: params, trailing slash, HEAD, 404 and 405 with Allow. */
#include "depsera/router.h"

#include <check.h>

#include "unit.h"
#include <string.h>

static void h1(dps_req_t *r)
{
}
static void h2(dps_req_t *r)
{
}

static const dps_route_t routes[] = {
    {"GET", "/api/health", h1, 0},
    {"GET", "/api/teams/:id", h1, 0},
    {"PUT", "/api/teams/:id", h2, 0},
    {"DELETE", "/api/teams/:id/members/:userId", h2, 0},
    {"POST", "/v1/traces", h2, 2048},
};
#define N (sizeof(routes) / sizeof(routes[0]))

static dps_route_result_t match(const char *method, const char *path, dps_route_match_t *m)
{
    return dps_router_match(routes, N, method, strlen(method), path, strlen(path), m);
}

static const struct {
    const char *method, *path;
    dps_route_result_t want;
    int route; /* index when found */
} cases[] = {
    {"GET", "/api/health", DPS_ROUTE_FOUND, 0},
    {"HEAD", "/api/health", DPS_ROUTE_FOUND, 0},
    {"GET", "/api/health/", DPS_ROUTE_FOUND, 0},
    {"GET", "/api/health//", DPS_ROUTE_NOT_FOUND, 0},
    {"GET", "/api/healthz", DPS_ROUTE_NOT_FOUND, 0},
    {"GET", "/api", DPS_ROUTE_NOT_FOUND, 0},
    {"GET", "/", DPS_ROUTE_NOT_FOUND, 0},
    {"GET", "", DPS_ROUTE_NOT_FOUND, 0},
    {"POST", "/api/health", DPS_ROUTE_BAD_METHOD, 0},
    {"GET", "/api/teams/abc", DPS_ROUTE_FOUND, 1},
    {"PUT", "/api/teams/abc", DPS_ROUTE_FOUND, 2},
    {"PATCH", "/api/teams/abc", DPS_ROUTE_BAD_METHOD, 0},
    {"GET", "/api/teams/", DPS_ROUTE_NOT_FOUND, 0},
    {"GET", "/api/teams//x", DPS_ROUTE_NOT_FOUND, 0},
    {"DELETE", "/api/teams/t1/members/u2", DPS_ROUTE_FOUND, 3},
    {"DELETE", "/api/teams/t1/members/u2/extra", DPS_ROUTE_NOT_FOUND, 0},
    {"POST", "/v1/traces/", DPS_ROUTE_FOUND, 4},
    {"get", "/api/health", DPS_ROUTE_BAD_METHOD, 0},
};

START_TEST(table)
{
    dps_route_match_t m;
    dps_route_result_t r = match(cases[_i].method, cases[_i].path, &m);

    ck_assert_msg(r == cases[_i].want, "%s %s: got %d want %d", cases[_i].method, cases[_i].path, r, cases[_i].want);
    if (r == DPS_ROUTE_FOUND)
        ck_assert_ptr_eq(m.route, &routes[cases[_i].route]);
}
END_TEST

START_TEST(params_captured)
{
    dps_route_match_t m;

    ck_assert_int_eq(match("DELETE", "/api/teams/t-1/members/u%202", &m), DPS_ROUTE_FOUND);
    ck_assert_int_eq(m.nparams, 2);
    ck_assert_int_eq(m.params[0].name_len, 2);
    ck_assert(memcmp(m.params[0].name, "id", 2) == 0);
    ck_assert_int_eq(m.params[0].len, 3);
    ck_assert(memcmp(m.params[0].value, "t-1", 3) == 0);
    ck_assert(memcmp(m.params[1].name, "userId", 6) == 0);
    ck_assert_int_eq(m.params[1].len, 5);
    ck_assert(memcmp(m.params[1].value, "u%202", 5) == 0);
}
END_TEST

START_TEST(allow_header)
{
    dps_route_match_t m;

    ck_assert_int_eq(match("DELETE", "/api/teams/x", &m), DPS_ROUTE_BAD_METHOD);
    ck_assert_str_eq(m.allow, "GET, HEAD, PUT");
    ck_assert_int_eq(match("POST", "/api/health", &m), DPS_ROUTE_BAD_METHOD);
    ck_assert_str_eq(m.allow, "GET, HEAD");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("router");
    TCase *tc = tcase_create("core");

    tcase_add_loop_test(tc, table, 0, sizeof(cases) / sizeof(cases[0]));
    tcase_add_test(tc, params_captured);
    tcase_add_test(tc, allow_header);
    suite_add_tcase(s, tc);
    return dps_check_run(s);
}
