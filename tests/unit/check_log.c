/* Unit tests of log line formatting: JSON escaping, fields, request id, levels. */
#include "depsera/log.h"

#include <check.h>

#include "unit.h"
#include <jansson.h>
#include <string.h>

START_TEST(json_line_parses_with_fields)
{
    char buf[4096];
    json_error_t jerr;
    json_t *j;
    size_t n;

    dps_log_set_role("worker");
    dps_log_set_request_id("abc-1");
    n = dps_log_format(buf, sizeof(buf), 1, DPS_LOG_WARN, "quote \" backslash \\ newline \n tab \t",
                       (const dps_log_field_t[]){DPS_F_STR("path", "/a\"b"), DPS_F_INT("status", 404), DPS_F_DBL("ms", 1.5),
                                                 DPS_F_BOOL("ok", 0), {NULL, DPS_LF_END, NULL, 0, 0}});
    dps_log_set_request_id(NULL);
    ck_assert(n > 0 && buf[n - 1] == '\n');
    j = json_loadb(buf, n, 0, &jerr);
    ck_assert_msg(j != NULL, "not JSON: %s (%s)", buf, jerr.text);
    ck_assert_str_eq(json_string_value(json_object_get(j, "level")), "warn");
    ck_assert_str_eq(json_string_value(json_object_get(j, "role")), "worker");
    ck_assert_str_eq(json_string_value(json_object_get(j, "req_id")), "abc-1");
    ck_assert_str_eq(json_string_value(json_object_get(j, "msg")), "quote \" backslash \\ newline \n tab \t");
    ck_assert_str_eq(json_string_value(json_object_get(j, "path")), "/a\"b");
    ck_assert_int_eq(json_integer_value(json_object_get(j, "status")), 404);
    ck_assert(json_is_false(json_object_get(j, "ok")));
    ck_assert(json_is_integer(json_object_get(j, "pid")));
    ck_assert_int_eq(strlen(json_string_value(json_object_get(j, "ts"))), 24);
    json_decref(j);
}
END_TEST

START_TEST(overlong_line_is_bounded)
{
    char buf[256], big[1000];
    size_t n;

    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    n = dps_log_format(buf, sizeof(buf), 1, DPS_LOG_INFO, big, NULL);
    ck_assert(n <= sizeof(buf));
    ck_assert(buf[n - 1] == '\n');
}
END_TEST

START_TEST(levels)
{
    ck_assert_int_eq(dps_log_level_parse("debug"), DPS_LOG_DEBUG);
    ck_assert_int_eq(dps_log_level_parse("silent"), DPS_LOG_SILENT);
    ck_assert_int_eq(dps_log_level_parse("verbose"), -1);
    dps_log_set_level(DPS_LOG_WARN);
    ck_assert(!dps_log_enabled(DPS_LOG_INFO));
    ck_assert(dps_log_enabled(DPS_LOG_ERROR));
    dps_log_set_level(DPS_LOG_SILENT);
    ck_assert(!dps_log_enabled(DPS_LOG_FATAL));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("log");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, json_line_parses_with_fields);
    tcase_add_test(tc, overlong_line_is_bounded);
    tcase_add_test(tc, levels);
    suite_add_tcase(s, tc);
    return dps_check_run(s);
}
