/* Unit tests of the small helpers: strict integer parsing, ISO time, hex, passwords, exit statuses. */
#include "depsera/password.h"
#include "depsera/proc.h"
#include "depsera/util.h"

#include <check.h>
#include <math.h>

#include "unit.h"
#include <signal.h>
#include <string.h>
#include <sys/wait.h>

static const struct {
    const char *in;
    int ok;
    long long want;
} ints[] = {
    {"0", 1, 0},      {"42", 1, 42},   {"-7", 1, -7},  {"", 0, 0},        {" 1", 0, 0},
    {"1 ", 0, 0},     {"1e3", 0, 0},   {"0x10", 0, 0}, {"99999999999999999999", 0, 0}, {"101", 0, 0},
};

START_TEST(parse_int_strict)
{
    long long v = -1;
    int r = dps_parse_int(ints[_i].in, -100, 100, &v);

    ck_assert_msg((r == 0) == ints[_i].ok, "\"%s\"", ints[_i].in);
    if (ints[_i].ok)
        ck_assert_int_eq(v, ints[_i].want);
}
END_TEST

START_TEST(iso_time)
{
    char buf[32];

    dps_time_iso8601(0, buf, sizeof(buf));
    ck_assert_str_eq(buf, "1970-01-01T00:00:00.000Z");
    dps_time_iso8601(1775527800123LL, buf, sizeof(buf));
    ck_assert_str_eq(buf, "2026-04-07T02:10:00.123Z");
}
END_TEST

START_TEST(hex)
{
    unsigned char in[] = {0x00, 0xab, 0x7f, 0xff};
    char out[9];

    dps_hex_encode(in, sizeof(in), out);
    ck_assert_str_eq(out, "00ab7fff");
}
END_TEST

START_TEST(password_roundtrip)
{
    char hash[DPS_PASSWORD_HASH_MAX], other[DPS_PASSWORD_HASH_MAX];

    /* cost 4 keeps the test fast; production uses DPS_PASSWORD_COST */
    ck_assert_int_eq(dps_password_hash("correct horse", 4, hash, sizeof(hash)), 0);
    ck_assert(strncmp(hash, "$2b$04$", 7) == 0);
    ck_assert(dps_password_verify("correct horse", hash));
    ck_assert(!dps_password_verify("correct horsf", hash));
    ck_assert(!dps_password_verify("correct horse", "not-a-hash"));
    ck_assert(!dps_password_verify("correct horse", NULL));
    ck_assert_int_eq(dps_password_hash("correct horse", 4, other, sizeof(other)), 0);
    ck_assert_str_ne(hash, other); /* fresh salt each time */
}
END_TEST

START_TEST(uuid)
{
    ck_assert(dps_is_uuid("8b4e2660-868b-4d6b-9e62-22971e71aef4"));
    ck_assert(dps_is_uuid("8B4E2660-868B-4D6B-9E62-22971E71AEF4"));
    ck_assert(!dps_is_uuid("8b4e2660-868b-4d6b-9e62-22971e71aef"));
    ck_assert(!dps_is_uuid("8b4e2660-868b-4d6b-9e62-22971e71aef44"));
    ck_assert(!dps_is_uuid("8b4e2660x868b-4d6b-9e62-22971e71aef4"));
    ck_assert(!dps_is_uuid("8b4e2660-868b-4d6b-9e62-22971e71aeg4"));
    ck_assert(!dps_is_uuid(""));
}
END_TEST

START_TEST(js_trim)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"  abc  ", "abc"}, {"\t\n\v\f\r x \r\n", "x"}, {"\xc2\xa0nbsp\xc2\xa0", "nbsp"},
        {"\xe3\x80\x80ideo\xe2\x80\xa8", "ideo"}, {"\xef\xbb\xbf" "bom", "bom"}, {"   ", ""}, {"", ""},
        {"a b", "a b"}, {"\xc3\xa9t\xc3\xa9 ", "\xc3\xa9t\xc3\xa9"}, {"\xe2\x80\x8bzw", "\xe2\x80\x8bzw"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t from, to;
        dps_js_trim(cases[i].in, strlen(cases[i].in), &from, &to);
        ck_assert_int_eq(to - from, strlen(cases[i].out));
        ck_assert(memcmp(cases[i].in + from, cases[i].out, to - from) == 0);
    }
}
END_TEST

START_TEST(describe_status)
{
    char buf[128];

    dps_proc_describe_status(1 << 8, buf, sizeof(buf));
    ck_assert_str_eq(buf, "exited with code 1");
    dps_proc_describe_status(SIGKILL, buf, sizeof(buf));
    ck_assert(strncmp(buf, "killed by signal 9", 18) == 0);
}
END_TEST

/* JavaScript's String(number), as Node prints it. */
START_TEST(js_number)
{
    static const struct {
        double d;
        const char *out;
    } cases[] = {
        {0, "0"},         {-0.0, "0"},           {1, "1"},
        {-2.5, "-2.5"},   {0.1, "0.1"},          {1e21, "1e+21"},
        {1e20, "100000000000000000000"},          {123456789012345680000.0, "123456789012345680000"},
        {1e-7, "1e-7"},   {0.000001, "0.000001"}, {1.5e-10, "1.5e-10"},
        {5e-324, "5e-324"}, {1.7976931348623157e308, "1.7976931348623157e+308"},
        {0.30000000000000004, "0.30000000000000004"},
    };
    char buf[32];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        dps_js_number(cases[i].d, buf);
        ck_assert_str_eq(buf, cases[i].out);
    }
    dps_js_number(NAN, buf);
    ck_assert_str_eq(buf, "NaN");
    dps_js_number(-INFINITY, buf);
    ck_assert_str_eq(buf, "-Infinity");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("util");
    TCase *tc = tcase_create("core");

    tcase_add_loop_test(tc, parse_int_strict, 0, sizeof(ints) / sizeof(ints[0]));
    tcase_add_test(tc, iso_time);
    tcase_add_test(tc, hex);
    tcase_add_test(tc, password_roundtrip);
    tcase_add_test(tc, describe_status);
    tcase_add_test(tc, uuid);
    tcase_add_test(tc, js_trim);
    tcase_add_test(tc, js_number);
    suite_add_tcase(s, tc);
    return dps_check_run(s);
}
