/* Unit tests of the default health format (polling.md §2.1), lastChecked parsing and the format dispatch
 * of §2: every check and output rule of the spec's tables, malformed bodies. */
#include "depsera/poll_parse.h"

#include <check.h>

#include "poll_render.h"
#include "unit.h"
#include <stdlib.h>
#include <string.h>

#define OK(body, want)                                                                                                             \
    {                                                                                                                              \
#body, body, NULL, want                                                                                                    \
    }
#define H "\"healthy\":true"

/* clang-format off */
static const struct {
    const char *what, *body;
    const char *error; /* NULL: success; a failure message (prefix) otherwise */
    const char *want;  /* rendered statuses (poll_render) */
} cases[] = {
    /* body shape */
    {"empty array", "[]", NULL, ""},
    {"object body", "{}", "Invalid response: expected array", NULL},
    {"string body", "\"x\"", "Invalid response: expected array", NULL},
    {"null body", "null", "Invalid response: expected array", NULL},
    {"number body", "5", "Invalid response: expected array", NULL},
    {"not JSON", "not json", "Invalid JSON response: ", NULL},
    {"empty body", "", "Invalid JSON response: ", NULL},
    {"trailing garbage", "[] x", "Invalid JSON response: ", NULL},
    {"truncated", "[{\"name\":\"a\",", "Invalid JSON response: ", NULL},
    {"invalid UTF-8", "[{\"name\":\"\xff\"," H "}]", "Invalid JSON response: ", NULL},
    {"NUL escape", "[{\"name\":\"a\\u0000b\"," H "}]", "Invalid JSON response: ", NULL},
    {"number overflowing a double", "[{\"name\":\"a\"," H ",\"latencyMs\":1e400}]", "Invalid JSON response: ", NULL},
    /* element checks, in order, by index; the first invalid element fails the whole poll */
    {"element number", "[1]", "Invalid dependency at index 0: expected object", NULL},
    {"element null", "[null]", "Invalid dependency at index 0: expected object", NULL},
    {"element array", "[[]]", "Invalid dependency at index 0: expected object", NULL},
    {"element string", "[\"pg\"]", "Invalid dependency at index 0: expected object", NULL},
    {"second element bad", "[{\"name\":\"a\"," H "},true]", "Invalid dependency at index 1: expected object", NULL},
    {"name absent", "[{" H "}]", "Invalid dependency at index 0: missing name", NULL},
    {"name number", "[{\"name\":5," H "}]", "Invalid dependency at index 0: missing name", NULL},
    {"name null", "[{\"name\":null," H "}]", "Invalid dependency at index 0: missing name", NULL},
    {"name checked before healthy", "[{\"name\":1}]", "Invalid dependency at index 0: missing name", NULL},
    {"healthy absent", "[{\"name\":\"a\"}]", "Invalid dependency at index 0: missing healthy", NULL},
    {"healthy string", "[{\"name\":\"a\",\"healthy\":\"true\"}]", "Invalid dependency at index 0: missing healthy", NULL},
    {"healthy number", "[{\"name\":\"a\",\"healthy\":1}]", "Invalid dependency at index 0: missing healthy", NULL},
    {"healthy null", "[{\"name\":\"a\",\"healthy\":null}]", "Invalid dependency at index 0: missing healthy", NULL},
    {"third element no healthy", "[{\"name\":\"a\"," H "},{\"name\":\"b\"," H "},{\"name\":\"c\"}]",
     "Invalid dependency at index 2: missing healthy", NULL},
    {"skipped string is not skipped", "[{\"name\":\"a\",\"health\":{\"skipped\":\"true\"}}]",
     "Invalid dependency at index 0: missing healthy", NULL},
    {"skipped 1 is not skipped", "[{\"name\":\"a\",\"health\":{\"skipped\":1}}]", "Invalid dependency at index 0: missing healthy", NULL},
    {"skipped outside health", "[{\"name\":\"a\",\"skipped\":true}]", "Invalid dependency at index 0: missing healthy", NULL},
    {"health array cannot skip", "[{\"name\":\"a\",\"health\":[true]}]", "Invalid dependency at index 0: missing healthy", NULL},
    /* skipped / healthy */
    {"skipped without healthy", "[{\"name\":\"a\",\"health\":{\"skipped\":true}}]", NULL,
     "a type=other h=1 st=0 code=200 lat=0 skip=1"},
    {"skipped keeps a boolean healthy", "[{\"name\":\"a\",\"healthy\":false,\"health\":{\"skipped\":true}}]", NULL,
     "a type=other h=0 st=0 code=200 lat=0 skip=1"},
    {"skipped with non-boolean healthy", "[{\"name\":\"a\",\"healthy\":\"no\",\"health\":{\"skipped\":true,\"state\":1}}]", NULL,
     "a type=other h=1 st=1 code=200 lat=0 skip=1"},
    {"health.skipped false", "[{\"name\":\"a\"," H ",\"health\":{\"skipped\":false}}]", NULL,
     "a type=other h=1 st=0 code=200 lat=0 skip=0"},
    /* nested form */
    {"nested all", "[{\"name\":\"a\"," H ",\"health\":{\"state\":1,\"code\":503,\"latency\":12.5}}]", NULL,
     "a type=other h=1 st=1 code=503 lat=12.5 skip=0"},
    {"nested defaults, state not derived", "[{\"name\":\"a\",\"healthy\":false,\"health\":{}}]", NULL,
     "a type=other h=0 st=0 code=200 lat=0 skip=0"},
    {"nested non-numbers", "[{\"name\":\"a\",\"healthy\":false,\"health\":{\"state\":\"2\",\"code\":null,\"latency\":\"9\"}}]", NULL,
     "a type=other h=0 st=0 code=200 lat=0 skip=0"},
    {"nested ignores flat members", "[{\"name\":\"a\"," H ",\"health\":{},\"healthCode\":500,\"latencyMs\":7}]", NULL,
     "a type=other h=1 st=0 code=200 lat=0 skip=0"},
    {"nested fractions and huge", "[{\"name\":\"a\"," H ",\"health\":{\"state\":1.9,\"code\":1e30,\"latency\":-3}}]", NULL,
     "a type=other h=1 st=1 code=2147483647 lat=-3 skip=0"},
    {"nested negative huge", "[{\"name\":\"a\"," H ",\"health\":{\"state\":-1e30}}]", NULL,
     "a type=other h=1 st=-2147483648 code=200 lat=0 skip=0"},
    /* flat form */
    {"flat healthy", "[{\"name\":\"a\"," H "}]", NULL, "a type=other h=1 st=0 code=200 lat=0 skip=0"},
    {"flat unhealthy", "[{\"name\":\"a\",\"healthy\":false,\"healthCode\":500,\"latencyMs\":42}]", NULL,
     "a type=other h=0 st=2 code=500 lat=42 skip=0"},
    {"flat non-numbers", "[{\"name\":\"a\"," H ",\"healthCode\":\"500\",\"latencyMs\":\"42\"}]", NULL,
     "a type=other h=1 st=0 code=200 lat=0 skip=0"},
    {"health null is flat", "[{\"name\":\"a\",\"healthy\":false,\"health\":null,\"latencyMs\":3}]", NULL,
     "a type=other h=0 st=2 code=200 lat=3 skip=0"},
    {"health array is flat", "[{\"name\":\"a\",\"healthy\":false,\"health\":[],\"latencyMs\":3}]", NULL,
     "a type=other h=0 st=2 code=200 lat=3 skip=0"},
    {"integer beyond int64", "[{\"name\":\"a\"," H ",\"latencyMs\":123456789012345678901234567890}]", NULL,
     "a type=other h=1 st=0 code=200 lat=1.2345678901234568e+29 skip=0"},
    /* type */
    {"type verbatim", "[{\"name\":\"a\"," H ",\"type\":\" Database \"}]", NULL, "a type= Database  h=1 st=0 code=200 lat=0 skip=0"},
    {"type blank", "[{\"name\":\"a\"," H ",\"type\":\" \\t\\u00a0\"}]", NULL, "a type=other h=1 st=0 code=200 lat=0 skip=0"},
    {"type empty", "[{\"name\":\"a\"," H ",\"type\":\"\"}]", NULL, "a type=other h=1 st=0 code=200 lat=0 skip=0"},
    {"type number", "[{\"name\":\"a\"," H ",\"type\":5}]", NULL, "a type=other h=1 st=0 code=200 lat=0 skip=0"},
    /* strings only */
    {"description impact errorMessage", "[{\"name\":\"a\"," H ",\"description\":\"d\",\"impact\":\"i\",\"errorMessage\":\"m\"}]", NULL,
     "a type=other h=1 st=0 code=200 lat=0 skip=0 desc=d impact=i msg=m"},
    {"non-string texts absent", "[{\"name\":\"a\"," H ",\"description\":1,\"impact\":{},\"errorMessage\":null}]", NULL,
     "a type=other h=1 st=0 code=200 lat=0 skip=0"},
    /* lastChecked */
    {"lastChecked ISO", "[{\"name\":\"a\"," H ",\"lastChecked\":\"2026-02-21T10:30:00.000Z\"}]", NULL,
     "a type=other h=1 st=0 code=200 lat=0 skip=0 last=1771669800000"},
    {"lastChecked unparsable", "[{\"name\":\"a\"," H ",\"lastChecked\":\"yesterday\"}]", NULL,
     "a type=other h=1 st=0 code=200 lat=0 skip=0"},
    {"lastChecked number", "[{\"name\":\"a\"," H ",\"lastChecked\":1771669800000}]", NULL,
     "a type=other h=1 st=0 code=200 lat=0 skip=0"},
    /* checkDetails, contact */
    {"objects as JSON", "[{\"name\":\"a\"," H ",\"contact\":{\"email\":\"x@y\"},\"checkDetails\":{\"q\":[1,{\"r\":null}]}}]", NULL,
     "a type=other h=1 st=0 code=200 lat=0 skip=0 contact={\"email\":\"x@y\"} details={\"q\":[1,{\"r\":null}]}"},
    {"empty objects are truthy", "[{\"name\":\"a\"," H ",\"contact\":{},\"checkDetails\":{}}]", NULL,
     "a type=other h=1 st=0 code=200 lat=0 skip=0 contact={} details={}"},
    {"arrays pass", "[{\"name\":\"a\"," H ",\"contact\":[\"x\"],\"checkDetails\":[]}]", NULL,
     "a type=other h=1 st=0 code=200 lat=0 skip=0 contact=[\"x\"] details=[]"},
    {"non-objects absent", "[{\"name\":\"a\"," H ",\"contact\":\"x@y\",\"checkDetails\":null}]", NULL,
     "a type=other h=1 st=0 code=200 lat=0 skip=0"},
    {"contact false", "[{\"name\":\"a\"," H ",\"contact\":false,\"checkDetails\":7}]", NULL,
     "a type=other h=1 st=0 code=200 lat=0 skip=0"},
    /* error: any present value as JSON text */
    {"error null", "[{\"name\":\"a\",\"healthy\":false,\"error\":null}]", NULL, "a type=other h=0 st=2 code=200 lat=0 skip=0 error=null"},
    {"error false", "[{\"name\":\"a\",\"healthy\":false,\"error\":false}]", NULL, "a type=other h=0 st=2 code=200 lat=0 skip=0 error=false"},
    {"error zero", "[{\"name\":\"a\",\"healthy\":false,\"error\":0}]", NULL, "a type=other h=0 st=2 code=200 lat=0 skip=0 error=0"},
    {"error string", "[{\"name\":\"a\",\"healthy\":false,\"error\":\"boom\"}]", NULL,
     "a type=other h=0 st=2 code=200 lat=0 skip=0 error=\"boom\""},
    {"error object", "[{\"name\":\"a\",\"healthy\":false,\"error\":{\"code\":\"E\",\"n\":[1,2]}}]", NULL,
     "a type=other h=0 st=2 code=200 lat=0 skip=0 error={\"code\":\"E\",\"n\":[1,2]}"},
    /* names */
    {"name verbatim", "[{\"name\":\" Postgres \"," H "}]", NULL, " Postgres  type=other h=1 st=0 code=200 lat=0 skip=0"},
    {"empty name is a string", "[{\"name\":\"\"," H "}]", NULL, " type=other h=1 st=0 code=200 lat=0 skip=0"},
    {"unicode name", "[{\"name\":\"\\u00e9\\ud83d\\ude00\"," H "}]", NULL, "\xc3\xa9\xf0\x9f\x98\x80 type=other h=1 st=0 code=200 lat=0 skip=0"},
    {"two statuses", "[{\"name\":\"a\"," H "},{\"name\":\"b\",\"healthy\":false}]", NULL,
     "a type=other h=1 st=0 code=200 lat=0 skip=0; b type=other h=0 st=2 code=200 lat=0 skip=0"},
    {"a repeated name: last wins, first place", "[{\"name\":\"a\"," H ",\"impact\":\"x\"},{\"name\":\"b\"," H "},{\"name\":\"a\",\"healthy\":false}]",
     NULL, "a type=other h=0 st=2 code=200 lat=0 skip=0; b type=other h=1 st=0 code=200 lat=0 skip=0"},
    {"unknown members ignored", "[{\"name\":\"a\"," H ",\"extra\":{\"deep\":[1]}}]", NULL, "a type=other h=1 st=0 code=200 lat=0 skip=0"},
};
/* clang-format on */

START_TEST(default_table)
{
    dps_poll_result_t r;
    char got[2048];
    int rc = dps_poll_parse_default(cases[_i].body, strlen(cases[_i].body), &r);

    if (cases[_i].error != NULL) {
        ck_assert_msg(rc == -1, "%s: expected failure", cases[_i].what);
        ck_assert_ptr_nonnull(r.error);
        ck_assert_msg(strncmp(r.error, cases[_i].error, strlen(cases[_i].error)) == 0, "%s: error %s", cases[_i].what, r.error);
        ck_assert_uint_eq(r.n_deps, 0);
        ck_assert_uint_eq(r.n_warnings, 0);
    } else {
        ck_assert_msg(rc == 0, "%s: failed: %s", cases[_i].what, r.error);
        ck_assert_ptr_null(r.error);
        poll_render(&r, got, sizeof(got));
        ck_assert_msg(strcmp(got, cases[_i].want) == 0, "%s:\n got  %s\n want %s", cases[_i].what, got, cases[_i].want);
        ck_assert_uint_eq(r.n_warnings, 0);
    }
    dps_poll_result_free(&r);
    ck_assert_ptr_null(r.deps);
}
END_TEST

/* A body need not be NUL-terminated: only len bytes are read. */
START_TEST(default_length_bounded)
{
    const char body[] = "[{\"name\":\"a\",\"healthy\":true}]GARBAGE";
    dps_poll_result_t r;

    ck_assert_int_eq(dps_poll_parse_default(body, sizeof(body) - 1 - 7, &r), 0);
    ck_assert_uint_eq(r.n_deps, 1);
    dps_poll_result_free(&r);
}
END_TEST

/* Nesting deeper than the JSON parser's limit is invalid JSON, not a crash; shallower nesting is kept. */
START_TEST(default_deep_nesting)
{
    size_t depth = 100000, n = 0;
    char *body = malloc(2 * depth + 64);
    dps_poll_result_t r;

    for (size_t i = 0; i < depth; i++)
        body[n++] = '[';
    for (size_t i = 0; i < depth; i++)
        body[n++] = ']';
    ck_assert_int_eq(dps_poll_parse_default(body, n, &r), -1);
    ck_assert_str_eq(r.error, "Invalid JSON response: maximum parsing depth reached near '[' at line 1, column 2049");
    dps_poll_result_free(&r);
    n = (size_t)sprintf(body, "[{\"name\":\"a\",\"healthy\":true,\"checkDetails\":");
    for (size_t i = 0; i < 1000; i++)
        body[n++] = '[';
    for (size_t i = 0; i < 1000; i++)
        body[n++] = ']';
    n += (size_t)sprintf(body + n, "}]");
    ck_assert_int_eq(dps_poll_parse_default(body, n, &r), 0);
    ck_assert_uint_eq(strlen(r.deps[0].check_details), 2000);
    dps_poll_result_free(&r);
    free(body);
}
END_TEST

/* Many statuses: linear, names unique. */
START_TEST(default_many)
{
    size_t n = 0, cap = 64 * 20000;
    char *body = malloc(cap);
    dps_poll_result_t r;

    body[n++] = '[';
    for (int i = 0; i < 20000; i++)
        n += (size_t)snprintf(body + n, cap - n, "%s{\"name\":\"d%d\",\"healthy\":%s}", i ? "," : "", i % 15000,
                              i >= 15000 ? "true" : "false");
    body[n++] = ']';
    ck_assert_int_eq(dps_poll_parse_default(body, n, &r), 0);
    ck_assert_uint_eq(r.n_deps, 15000);
    ck_assert_str_eq(r.deps[0].name, "d0");
    ck_assert_int_eq(r.deps[0].healthy, 1);    /* element 0 (false) replaced by element 15000 (true) */
    ck_assert_int_eq(r.deps[4999].healthy, 1); /* element 4999 by element 19999 */
    ck_assert_int_eq(r.deps[5000].healthy, 0); /* element 5000, not repeated */
    ck_assert_int_eq(r.deps[14999].healthy, 0);
    dps_poll_result_free(&r);
    free(body);
}
END_TEST

/* ---- lastChecked ----------------------------------------------------------------------------------- */

/* clang-format off */
static const struct {
    const char *s;
    int ok;
    long long ms;
} isos[] = {
    {"2026-02-21T10:30:00.000Z", 1, 1771669800000LL},   {"2026-02-21", 1, 1771632000000LL},
    {"2026-02-21T10:30", 1, 1771669800000LL},           {"2026-02-21T10:30:00+02:00", 1, 1771662600000LL},
    {"2026-02-21 10:30:00-0130", 1, 1771675200000LL},   {"2026-02-21t10:30:00+05", 1, 1771651800000LL},
    {"2024-02-29T23:59:59.9999Z", 1, 1709251199999LL},  {"2026-02-21T10:30:00,5z", 1, 1771669800500LL},
    {"1970-01-01T00:00:00Z", 1, 0},                     {"1969-12-31T23:59:59.999Z", 1, -1},
    {"0000-01-01T00:00:00Z", 1, -62167219200000LL},     {"9999-12-31T23:59:59.999Z", 1, 253402300799999LL},
    {"2026-02-21T10:30:00", 1, 1771669800000LL},
    {"", 0, 0},                      {"yesterday", 0, 0},             {"2026-2-21", 0, 0},
    {"2026-02-30", 0, 0},            {"2025-02-29", 0, 0},            {"1900-02-29", 0, 0},
    {"2026-13-01", 0, 0},            {"2026-00-10", 0, 0},            {"2026-02-00", 0, 0},
    {"2026-02-21T24:00", 0, 0},      {"2026-02-21T10:60", 0, 0},      {"2026-02-21T10:30:60", 0, 0},
    {"2026-02-21T10:30:00.", 0, 0},  {"2026-02-21T10:30:00Zjunk", 0, 0}, {"2026-02-21T", 0, 0},
    {"2026-02-21T10", 0, 0},         {"2026-02-21T10:30+24:00", 0, 0}, {"2026-02-21T10:30+02:6", 0, 0},
    {"2026-02-21Z", 0, 0},           {"+2026-02-21", 0, 0},           {"2026-02-21 ", 0, 0},
};
/* clang-format on */

START_TEST(iso8601)
{
    int64_t ms = 42;
    int rc = dps_poll_parse_iso8601(isos[_i].s, &ms);

    ck_assert_msg(rc == (isos[_i].ok ? 0 : -1), "%s: rc %d", isos[_i].s, rc);
    if (isos[_i].ok)
        ck_assert_msg(ms == isos[_i].ms, "%s: %lld", isos[_i].s, (long long)ms);
}
END_TEST

/* ---- §2 dispatch ------------------------------------------------------------------------------------ */

#define DEFAULT_BODY "[{\"name\":\"a\",\"healthy\":true}]"
#define SCHEMA_CFG "{\"root\":\"checks\",\"fields\":{\"name\":\"n\",\"healthy\":\"ok\"}}"

/* clang-format off */
static const struct {
    const char *format, *config, *body;
    const char *error, *want;
} dispatch[] = {
    {"otlp", NULL, DEFAULT_BODY, "OTLP services are push-only and cannot be polled", NULL},
    {"otlp", SCHEMA_CFG, DEFAULT_BODY, "OTLP services are push-only and cannot be polled", NULL},
    {"default", NULL, DEFAULT_BODY, NULL, "a type=other h=1 st=0 code=200 lat=0 skip=0"},
    {NULL, NULL, DEFAULT_BODY, NULL, "a type=other h=1 st=0 code=200 lat=0 skip=0"},
    {"schema", NULL, DEFAULT_BODY, NULL, "a type=other h=1 st=0 code=200 lat=0 skip=0"},
    {"schema", "not json", DEFAULT_BODY, NULL, "a type=other h=1 st=0 code=200 lat=0 skip=0"},
    {"schema", "null", DEFAULT_BODY, NULL, "a type=other h=1 st=0 code=200 lat=0 skip=0"},
    {"schema", "5", DEFAULT_BODY, NULL, "a type=other h=1 st=0 code=200 lat=0 skip=0"},
    {"schema", SCHEMA_CFG, "{\"checks\":[{\"n\":\"x\",\"ok\":\"UP\"}]}", NULL, "x type=other h=1 st=0 code=200 lat=0 skip=0"},
    {"default", SCHEMA_CFG, "{\"checks\":[{\"n\":\"x\",\"ok\":\"down\"}]}", NULL, "x type=other h=0 st=2 code=500 lat=0 skip=0"},
    {"schema", "{}", DEFAULT_BODY, "Schema mapping error: invalid schema_config", NULL},
    {"prometheus", NULL, "dependency_health_healthy{name=\"p\"} 1\n", NULL, "p type=other h=1 st=0 code=200 lat=0 skip=0"},
    {"prometheus", SCHEMA_CFG, "dependency_health_healthy{name=\"p\"} 0\n", NULL, "p type=other h=0 st=0 code=200 lat=0 skip=0"},
    {"prometheus", "{\"metrics\":{\"up\":\"healthy\"},\"labels\":{}}", "up{name=\"p\"} 1\n", NULL,
     "p type=other h=1 st=0 code=200 lat=0 skip=0"},
};
/* clang-format on */

START_TEST(dispatch_table)
{
    dps_poll_result_t r;
    char got[512];
    int rc = dps_poll_parse(dispatch[_i].format, dispatch[_i].config, dispatch[_i].body, strlen(dispatch[_i].body), &r);

    if (dispatch[_i].error != NULL) {
        ck_assert_int_eq(rc, -1);
        ck_assert_str_eq(r.error, dispatch[_i].error);
    } else {
        ck_assert_msg(rc == 0, "row %d: %s", _i, r.error);
        poll_render(&r, got, sizeof(got));
        ck_assert_str_eq(got, dispatch[_i].want);
    }
    dps_poll_result_free(&r);
    dps_poll_result_free(&r); /* harmless twice */
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("poll_default");
    TCase *tc = tcase_create("default");

    tcase_add_loop_test(tc, default_table, 0, (int)(sizeof(cases) / sizeof(cases[0])));
    tcase_add_test(tc, default_length_bounded);
    tcase_add_test(tc, default_deep_nesting);
    tcase_add_test(tc, default_many);
    tcase_add_loop_test(tc, iso8601, 0, (int)(sizeof(isos) / sizeof(isos[0])));
    tcase_add_loop_test(tc, dispatch_table, 0, (int)(sizeof(dispatch) / sizeof(dispatch[0])));
    tcase_set_timeout(tc, 30);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return dps_check_run(suite());
}
