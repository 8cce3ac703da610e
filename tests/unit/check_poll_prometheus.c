/* Unit tests of the Prometheus health format (polling.md §2.3): the line rules, label syntax and escapes,
 * comments, NaN/Inf, timestamps, # EOF, CRLF, the default and custom metric/label maps, the §5.4 build
 * rules, and bounded work on large input. */
#include "depsera/poll_parse.h"

#include <check.h>

#include "poll_render.h"
#include "unit.h"
#include <stdlib.h>
#include <string.h>

#define HL "dependency_health_healthy"
#define ST "dependency_health_status"
#define LAT "dependency_health_latency_ms"
#define CODE "dependency_health_code"
#define SKIP "dependency_health_check_skipped"
#define PG_OK "pg type=other h=1 st=0 code=200 lat=0 skip=0"
#define MAL "Skipping malformed metric line: "

/* clang-format off */
static const struct {
    const char *what, *config, *body;
    const char *want;     /* rendered statuses */
    const char *warnings; /* rendered warnings */
} cases[] = {
    {"empty body", NULL, "", "", ""},
    {"only comments and blank lines", NULL, "# HELP x y\n# TYPE x gauge\n\n   \n#\n", "", ""},
    {"every default metric and label", NULL,
     "# HELP " ST " state\n# TYPE " ST " gauge\n"
     ST "{name=\"pg\",type=\"database\",impact=\"high\",description=\"Main DB\",error_message=\"none\"} 1\n"
     HL "{name=\"pg\"} 1\n" LAT "{name=\"pg\"} 12.5\n" CODE "{name=\"pg\"} 503\n" SKIP "{name=\"pg\"} 0\n",
     "pg type=database h=1 st=1 code=503 lat=12.5 skip=0 desc=Main DB impact=high msg=none", ""},
    /* §5.4 build rules */
    {"state 2 without healthy is unhealthy", NULL, ST "{name=\"pg\"} 2\n", "pg type=other h=0 st=2 code=200 lat=0 skip=0", ""},
    {"state 1 without healthy is healthy", NULL, ST "{name=\"pg\"} 1\n", "pg type=other h=1 st=1 code=200 lat=0 skip=0", ""},
    {"healthy 0 wins over state", NULL, ST "{name=\"pg\"} 0\n" HL "{name=\"pg\"} 0\n", "pg type=other h=0 st=0 code=200 lat=0 skip=0", ""},
    {"healthy other than healthy_value", NULL, HL "{name=\"pg\"} 2\n", "pg type=other h=0 st=0 code=200 lat=0 skip=0", ""},
    {"healthy_value", "{\"metrics\":{},\"labels\":{},\"healthy_value\":2}", HL "{name=\"pg\"} 2\n" , PG_OK, ""},
    {"state fraction and huge", NULL, ST "{name=\"a\"} 1.7\n" ST "{name=\"b\"} 1e12\n",
     "a type=other h=1 st=1 code=200 lat=0 skip=0; b type=other h=1 st=2147483647 code=200 lat=0 skip=0", ""},
    {"skipped only when exactly 1", NULL, SKIP "{name=\"a\"} 1\n" SKIP "{name=\"b\"} 0.5\n" SKIP "{name=\"c\"} 2\n",
     "a type=other h=1 st=0 code=200 lat=0 skip=1; b type=other h=1 st=0 code=200 lat=0 skip=0; c type=other h=1 st=0 code=200 lat=0 skip=0", ""},
    {"latency ms is not rounded", NULL, LAT "{name=\"pg\"} 12.345\n", "pg type=other h=1 st=0 code=200 lat=12.345000000000001 skip=0", ""},
    {"latency_unit s rounds v*1000", "{\"metrics\":{},\"labels\":{},\"latency_unit\":\"s\"}",
     LAT "{name=\"a\"} 0.0125\n" LAT "{name=\"b\"} 0.0124\n" LAT "{name=\"c\"} 2\n",
     "a type=other h=1 st=0 code=200 lat=13 skip=0; b type=other h=1 st=0 code=200 lat=12 skip=0; c type=other h=1 st=0 code=200 lat=2000 skip=0", ""},
    {"latency_unit without metrics or labels is ignored", "{\"latency_unit\":\"s\"}", LAT "{name=\"pg\"} 0.5\n",
     "pg type=other h=1 st=0 code=200 lat=0.5 skip=0", ""},
    {"type blank is other", NULL, HL "{name=\"pg\",type=\"  \"} 1\n", PG_OK, ""},
    {"type verbatim", NULL, HL "{name=\"pg\",type=\" DB \"} 1\n", "pg type= DB  h=1 st=0 code=200 lat=0 skip=0", ""},
    /* line rules 1-5 */
    {"CRLF and surrounding white space", NULL, "  " HL "{name=\"pg\"} 1\r\n\r\n\t# comment\r\n", PG_OK, ""},
    {"Unicode white space trimmed", NULL, "\xc2\xa0" HL "{name=\"pg\"} 1\xe2\x80\xa8\n", PG_OK, ""},
    {"timestamp ignored", NULL, HL "{name=\"pg\"} 1 1700000000000\n", PG_OK, ""},
    {"space before the brace", NULL, HL " {name=\"pg\"} 1\n", PG_OK, ""},
    {"no closing brace", NULL, HL "{name=\"pg\" 1\n", "", MAL HL "{name=\"pg\" 1"},
    {"no space", NULL, HL "\n", "", MAL HL},
    {"no value after labels", NULL, HL "{name=\"pg\"}\n", "", MAL HL "{name=\"pg\"}"},
    {"NaN is malformed", NULL, HL "{name=\"pg\"} NaN\n", "", MAL HL "{name=\"pg\"} NaN"},
    {"+Inf is malformed", NULL, LAT "{name=\"pg\"} +Inf\n", "", MAL LAT "{name=\"pg\"} +Inf"},
    {"-Inf is malformed", NULL, LAT "{name=\"pg\"} -Inf\n", "", MAL LAT "{name=\"pg\"} -Inf"},
    {"non-numeric is malformed", NULL, HL "{name=\"pg\"} up\n", "", MAL HL "{name=\"pg\"} up"},
    {"malformed unmapped lines warn too", NULL, "node_load1 NaN\nnode_x\n", "", MAL "node_load1 NaN | " MAL "node_x"},
    {"Infinity parses (latency 0)", NULL, LAT "{name=\"pg\"} Infinity\n", PG_OK, ""},
    {"-Infinity state", NULL, ST "{name=\"pg\"} -Infinity\n", "pg type=other h=1 st=-2147483648 code=200 lat=0 skip=0", ""},
    {"lenient prefixes", NULL,
     LAT "{name=\"a\"} 1.5abc\n" LAT "{name=\"b\"} 1e3\n" LAT "{name=\"c\"} .5\n" LAT "{name=\"d\"} 0x10\n" LAT "{name=\"e\"} +7.\n"
     LAT "{name=\"f\"} 2e\n" LAT "{name=\"g\"} -3e-1x\n" LAT "{name=\"h\"} 1e999\n",
     "a type=other h=1 st=0 code=200 lat=1.5 skip=0; b type=other h=1 st=0 code=200 lat=1000 skip=0; "
     "c type=other h=1 st=0 code=200 lat=0.5 skip=0; d type=other h=1 st=0 code=200 lat=0 skip=0; "
     "e type=other h=1 st=0 code=200 lat=7 skip=0; f type=other h=1 st=0 code=200 lat=2 skip=0; "
     "g type=other h=1 st=0 code=200 lat=-0.29999999999999999 skip=0; h type=other h=1 st=0 code=200 lat=0 skip=0", ""},
    {"a lone dot or sign is malformed", NULL, LAT "{name=\"a\"} .\n" LAT "{name=\"b\"} -\n", "",
     MAL LAT "{name=\"a\"} . | " MAL LAT "{name=\"b\"} -"},
    {"unmapped metrics ignored", NULL, "node_cpu_seconds_total{cpu=\"0\",mode=\"idle\"} 1234.5\ngo_goroutines 7\n", "", ""},
    {"unmapped histogram le=+Inf ignored", NULL, "http_bucket{le=\"+Inf\"} 3\n", "", ""},
    {"# EOF ends the exposition", NULL, HL "{name=\"pg\"} 1\n# EOF\n" HL "{name=\"late\"} 1\ngarbage\n", PG_OK, ""},
    {"#EOF is only a comment", NULL, "#EOF\n" HL "{name=\"pg\"} 1\n", PG_OK, ""},
    {"tab separator", NULL, HL "\t1\n", "", "Metric \"" HL "\" missing required \"name\" label, skipping"},
    /* rule 6: the name */
    {"no labels", NULL, HL " 1\n", "", "Metric \"" HL "\" missing required \"name\" label, skipping"},
    {"no name label", NULL, HL "{type=\"db\"} 1\n", "", "Metric \"" HL "\" missing required \"name\" label, skipping"},
    {"empty name", NULL, HL "{name=\"\"} 1\n", "", "Metric \"" HL "\" missing required \"name\" label, skipping"},
    {"unquoted value joins the key", NULL, HL "{name=pg} 1\n", "", "Metric \"" HL "\" missing required \"name\" label, skipping"},
    {"blank name is a name", NULL, HL "{name=\" \"} 1\n", "  type=other h=1 st=0 code=200 lat=0 skip=0", ""},
    {"warnings de-duplicated", NULL, HL " 1\n" HL " 0\nbad\nbad\n", "",
     "Metric \"" HL "\" missing required \"name\" label, skipping | " MAL "bad"},
    /* rule 7: labels */
    {"escapes", NULL, HL "{name=\"pg\",description=\"say \\\"hi\\\" \\\\ back\\nslash \\q\"} 1\n",
     "pg type=other h=1 st=0 code=200 lat=0 skip=0 desc=say \"hi\" \\ back\nslash q", ""},
    {"braces and commas inside values", NULL, HL "{name=\"a}b\",description=\"x,y={z}\"} 1\n",
     "a}b type=other h=1 st=0 code=200 lat=0 skip=0 desc=x,y={z}", ""},
    {"escaped quote keeps the value open", NULL, HL "{name=\"a\\\"} 1\n", "", MAL HL "{name=\"a\\\"} 1"},
    {"keys trimmed, = and spaces outside quotes", NULL, HL "{ name = \"pg\" ,  type= \"db\" ,} 1\n",
     "pg type=db h=1 st=0 code=200 lat=0 skip=0", ""},
    {"later duplicate label wins", NULL, HL "{name=\"a\",name=\"pg\"} 1\n", PG_OK, ""},
    {"empty label set", NULL, HL "{} 1\n", "", "Metric \"" HL "\" missing required \"name\" label, skipping"},
    {"quotes reopen the value", NULL, HL "{name=\"p\"\"g\"} 1\n", PG_OK, ""},
    {"invalid UTF-8 and NUL read as U+FFFD", NULL, HL "{name=\"p\xff\",description=\"a\0b\"} 1\n",
     "p\xef\xbf\xbd type=other h=1 st=0 code=200 lat=0 skip=0 desc=a\xef\xbf\xbd" "b", ""},
    /* rule 8: records */
    {"first line's labels, later lines fill gaps", NULL,
     ST "{name=\"pg\",type=\"database\"} 0\n" HL "{name=\"pg\",type=\"cache\",impact=\"low\"} 1\n" CODE "{name=\"pg\",impact=\"high\"} 200\n",
     "pg type=database h=1 st=0 code=200 lat=0 skip=0 impact=low", ""},
    {"metric values: last wins", NULL, HL "{name=\"pg\"} 0\n" HL "{name=\"pg\"} 1\n", PG_OK, ""},
    {"records in first-seen order", NULL, HL "{name=\"b\"} 1\n" HL "{name=\"a\"} 0\n" ST "{name=\"b\"} 2\n",
     "b type=other h=1 st=2 code=200 lat=0 skip=0; a type=other h=0 st=0 code=200 lat=0 skip=0", ""},
    /* custom maps (otlp-ingestion.md §4.3 merge) */
    {"custom metric and name label", "{\"metrics\":{\"my_up\":\"healthy\"},\"labels\":{\"service\":\"name\"}}",
     "my_up{service=\"pg\"} 1\n" HL "{service=\"x\"} 0\n" ST "{service=\"pg\",name=\"n\"} 1\n" ST "{name=\"n\"} 1\n",
     "pg type=other h=1 st=1 code=200 lat=0 skip=0", "Metric \"" ST "\" missing required \"service\" label, skipping"},
    {"a user key equal to a default key takes its place", "{\"metrics\":{\"" CODE "\":\"latency\"},\"labels\":{\"type\":\"description\"}}",
     CODE "{name=\"pg\",type=\"t\"} 42\n" LAT "{name=\"pg\"} 7\n", "pg type=other h=1 st=0 code=200 lat=42 skip=0 desc=t", ""},
    {"an unknown target shadows the default key", "{\"metrics\":{\"" ST "\":\"bogus\"},\"labels\":{}}",
     ST "{name=\"pg\"} 2\n" HL "{name=\"pg\"} 1\n", PG_OK, ""},
    {"labels only is a custom config", "{\"labels\":{\"dep\":\"name\",\"kind\":\"type\"},\"latency_unit\":\"s\"}",
     LAT "{dep=\"pg\",kind=\"db\",type=\"x\"} 0.002\n", "pg type=db h=1 st=0 code=200 lat=2 skip=0", ""},
    {"unusable config means defaults", "not json", HL "{name=\"pg\"} 1\n", PG_OK, ""},
    {"metrics not an object", "{\"metrics\":[],\"labels\":5,\"latency_unit\":\"s\"}", LAT "{name=\"pg\"} 1\n",
     "pg type=other h=1 st=0 code=200 lat=1 skip=0", ""},
};
/* clang-format on */

START_TEST(prometheus_table)
{
    dps_poll_result_t r;
    char got[4096];
    size_t len = strlen(cases[_i].body);
    int rc;

    if (strstr(cases[_i].what, "NUL") != NULL) /* the body holds a NUL: its length by hand */
        len = strlen(cases[_i].body) + 1 + strlen(cases[_i].body + strlen(cases[_i].body) + 1);
    rc = dps_poll_parse_prometheus(cases[_i].body, len, cases[_i].config, &r);
    ck_assert_msg(rc == 0, "%s: failed: %s", cases[_i].what, r.error);
    poll_render(&r, got, sizeof(got));
    ck_assert_msg(strcmp(got, cases[_i].want) == 0, "%s:\n got  %s\n want %s", cases[_i].what, got, cases[_i].want);
    poll_render_warnings(&r, got, sizeof(got));
    ck_assert_msg(strcmp(got, cases[_i].warnings) == 0, "%s: warnings\n got  %s\n want %s", cases[_i].what, got,
                  cases[_i].warnings);
    dps_poll_result_free(&r);
}
END_TEST

/* A real exposition (node_exporter style) with a mapping: only the mapped series become statuses. */
START_TEST(prometheus_node_exporter_like)
{
    static const char body[] = "# HELP node_load1 1m load average.\n"
                               "# TYPE node_load1 gauge\n"
                               "node_load1 0.21\n"
                               "# HELP node_network_up Value is 1 if operstate is 'up', 0 otherwise.\n"
                               "# TYPE node_network_up gauge\n"
                               "node_network_up{device=\"eth0\"} 1\n"
                               "node_network_up{device=\"lo\"} 0\n"
                               "node_scrape_collector_duration_seconds{collector=\"cpu\"} 0.000123\n"
                               "http_request_duration_seconds_bucket{le=\"+Inf\"} 144320 1395066363000\n"
                               "process_start_time_seconds 1.70000000012e+09\n";
    dps_poll_result_t r;
    char got[1024];

    ck_assert_int_eq(dps_poll_parse_prometheus(body, sizeof(body) - 1,
                                               "{\"metrics\":{\"node_network_up\":\"healthy\"},\"labels\":{\"device\":\"name\"}}",
                                               &r),
                     0);
    poll_render(&r, got, sizeof(got));
    ck_assert_str_eq(got, "eth0 type=other h=1 st=0 code=200 lat=0 skip=0; lo type=other h=0 st=0 code=200 lat=0 skip=0");
    ck_assert_uint_eq(r.n_warnings, 0);
    dps_poll_result_free(&r);
}
END_TEST

/* A body need not be NUL-terminated. */
START_TEST(prometheus_length_bounded)
{
    static const char body[] = HL "{name=\"pg\"} 1\n" HL "{name=\"other\"} 1";
    dps_poll_result_t r;

    ck_assert_int_eq(dps_poll_parse_prometheus(body, strlen(HL "{name=\"pg\"} 1\n") + 5, NULL, &r), 0);
    ck_assert_uint_eq(r.n_deps, 1);
    ck_assert_uint_eq(r.n_warnings, 1); /* the cut line "depen" */
    dps_poll_result_free(&r);
}
END_TEST

/* 200,000 lines over 50,000 dependencies, and one 4 MB line: linear (the test's timeout catches worse). */
START_TEST(prometheus_large)
{
    size_t cap = 64u << 20, n = 0;
    char *body = malloc(cap);
    dps_poll_result_t r;

    for (int i = 0; i < 200000; i++)
        n += (size_t)snprintf(body + n, cap - n, "%s{name=\"d%d\",type=\"t%d\"} %d\n", i % 2 ? HL : LAT, i % 50000, i, i % 3);
    ck_assert_int_eq(dps_poll_parse_prometheus(body, n, NULL, &r), 0);
    ck_assert_uint_eq(r.n_deps, 50000);
    ck_assert_str_eq(r.deps[7].type, "t7");
    dps_poll_result_free(&r);
    n = (size_t)snprintf(body, cap, HL "{name=\"big\",description=\"");
    for (int i = 0; i < (4 << 20); i++)
        body[n++] = i % 2 ? ',' : '\\';
    n += (size_t)snprintf(body + n, cap - n, "\"} 1\n");
    ck_assert_int_eq(dps_poll_parse_prometheus(body, n, NULL, &r), 0);
    ck_assert_uint_eq(r.n_deps, 1);
    ck_assert_uint_eq(strlen(r.deps[0].description), 1 << 21);
    dps_poll_result_free(&r);
    /* many label pairs on one line, many distinct malformed lines */
    n = (size_t)snprintf(body, cap, HL "{");
    for (int i = 0; i < 500000; i++)
        n += (size_t)snprintf(body + n, cap - n, "k%d=\"v\",", i);
    n += (size_t)snprintf(body + n, cap - n, "name=\"x\"} 1\n");
    for (int i = 0; i < 100000; i++)
        n += (size_t)snprintf(body + n, cap - n, "bad%d\n", i);
    ck_assert_int_eq(dps_poll_parse_prometheus(body, n, NULL, &r), 0);
    ck_assert_uint_eq(r.n_deps, 1);
    ck_assert_uint_eq(r.n_warnings, 100000);
    dps_poll_result_free(&r);
    free(body);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("poll_prometheus");
    TCase *tc = tcase_create("prometheus");

    tcase_add_loop_test(tc, prometheus_table, 0, (int)(sizeof(cases) / sizeof(cases[0])));
    tcase_add_test(tc, prometheus_node_exporter_like);
    tcase_add_test(tc, prometheus_length_bounded);
    tcase_add_test(tc, prometheus_large);
    tcase_set_timeout(tc, 60);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return dps_check_run(suite());
}
