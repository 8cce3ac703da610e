/* Unit tests of the signed session cookie value and of timestamptz text to ISO-8601 UTC. */
#include "depsera/http.h"
#include "depsera/session.h"

#include <check.h>

#include "unit.h"
#include <string.h>

#define SECRET "test-secret"
/* base64url(HMAC-SHA256("test-secret", "abc123")) without padding, computed independently (Python hmac) */
#define ABC123_SIG "Z7aPPn0OT3ARmifwmGJkMRec74H1AV-RwtpUqN8Ev2c"

/* ---------------------------------------------------------------- sign / verify */

START_TEST(sign_known_answer)
{
    char out[128];

    ck_assert_int_eq(dps_session_sign(SECRET, "abc123", out, sizeof(out)), 0);
    ck_assert_str_eq(out, "abc123." ABC123_SIG);
    /* a dot inside the sid: the signature is the part after the last dot */
    ck_assert_int_eq(dps_session_sign("dev-secret-change-in-production", "session.with.dots", out, sizeof(out)), 0);
    ck_assert_str_eq(out, "session.with.dots.YhovUzju7nsbAPiasLygLvi-jYmOjY8B62PwGZbymco");
}
END_TEST

START_TEST(roundtrip)
{
    static const char *const sids[] = {"abc123", "x", "session.with.dots",
                                       "p7CbjEpbgo3hC0m3uvtM2XJ7-vcPbxGq_VmxMdyApuA" /* the shape the server issues */};
    char out[160], sid[64];

    for (size_t i = 0; i < sizeof(sids) / sizeof(sids[0]); i++) {
        ck_assert_int_eq(dps_session_sign(SECRET, sids[i], out, sizeof(out)), 0);
        memset(sid, 'x', sizeof(sid));
        ck_assert_msg(dps_session_verify(SECRET, out, sid, sizeof(sid)) == 0, "verify of %s failed", out);
        ck_assert_str_eq(sid, sids[i]);
    }
}
END_TEST

START_TEST(wrong_secret_fails)
{
    char out[128], sid[64];

    ck_assert_int_eq(dps_session_sign(SECRET, "abc123", out, sizeof(out)), 0);
    ck_assert_int_eq(dps_session_verify("test-secreT", out, sid, sizeof(sid)), -1);
    ck_assert_int_eq(dps_session_verify("test-secret ", out, sid, sizeof(sid)), -1);
    ck_assert_int_eq(dps_session_verify("", out, sid, sizeof(sid)), -1);
}
END_TEST

static const struct {
    const char *cookie;
    const char *why;
} bad_cookies[] = {
    {"abc124." ABC123_SIG, "tampered sid"},
    {"Abc123." ABC123_SIG, "tampered sid (case)"},
    {"abc12." ABC123_SIG, "sid shortened"},
    {"abc1234." ABC123_SIG, "sid extended"},
    {"abc123.Z7aPPn0OT3ARmifwmGJkMRec74H1AV-RwtpUqN8Ev2d", "last signature char changed"},
    {"abc123.Z7aPPn0OT3ARmifwmGJkMRec74H1AW-RwtpUqN8Ev2c", "middle signature char changed"},
    {"abc123.z7aPPn0OT3ARmifwmGJkMRec74H1AV-RwtpUqN8Ev2c", "first signature char changed"},
    {"abc123.Z7aPPn0OT3ARmifwmGJkMRec74H1AV+RwtpUqN8Ev2c", "base64 instead of base64url"},
    {"abc123.Z7aPPn0OT3ARmifwmGJkMRec74H1AV-RwtpUqN8Ev2c=", "padded signature (44 chars)"},
    {"abc123.Z7aPPn0OT3ARmifwmGJkMRec74H1AV-RwtpUqN8Ev2", "signature of 42 chars"},
    {"abc123.Z7aPPn0OT3ARmifwmGJkMRec74H1AV-RwtpUqN8Ev2cZ7aPPn0OT3ARmifwmGJkMRec74H1AV-RwtpUqN8Ev2c", "signature doubled"},
    {"abc123.", "empty signature"},
    {"abc123", "no dot"},
    {"abc123" ABC123_SIG, "no dot, signature appended"},
    {"", "empty cookie"},
    {".", "dot only"},
    {"." ABC123_SIG, "empty sid"},
    {"s:abc123." ABC123_SIG, "express-session prefix"},
    {"abc123." ABC123_SIG ".", "trailing dot"},
};

START_TEST(bad_cookie_table)
{
    char sid[64] = "untouched";
    int rc = dps_session_verify(SECRET, bad_cookies[_i].cookie, sid, sizeof(sid));

    ck_assert_msg(rc == -1, "%s: \"%s\" verified (sid \"%s\")", bad_cookies[_i].why, bad_cookies[_i].cookie, sid);
}
END_TEST

/* The signature of the empty sid is valid HMAC output, but an empty sid is never a session. */
START_TEST(empty_sid_refused_even_when_signed)
{
    char out[128], sid[64];

    ck_assert_int_eq(dps_session_sign(SECRET, "", out, sizeof(out)), 0);
    ck_assert_int_eq((int)strlen(out), 44);
    ck_assert_int_eq(dps_session_verify(SECRET, out, sid, sizeof(sid)), -1);
}
END_TEST

START_TEST(sign_buffer_too_small)
{
    const size_t need = strlen("abc123." ABC123_SIG) + 1;
    char out[128];

    for (size_t cap = 0; cap < need; cap++)
        ck_assert_msg(dps_session_sign(SECRET, "abc123", out, cap) == -1, "cap %zu accepted", cap);
    ck_assert_int_eq(dps_session_sign(SECRET, "abc123", out, need), 0);
    ck_assert_str_eq(out, "abc123." ABC123_SIG);
}
END_TEST

START_TEST(verify_sid_buffer_too_small)
{
    char sid[64];

    /* "abc123" needs 7 bytes */
    ck_assert_int_eq(dps_session_verify(SECRET, "abc123." ABC123_SIG, sid, 6), -1);
    ck_assert_int_eq(dps_session_verify(SECRET, "abc123." ABC123_SIG, sid, 7), 0);
    ck_assert_str_eq(sid, "abc123");
}
END_TEST

/* ---------------------------------------------------------------- dps_pg_timestamp_iso */

static const struct {
    const char *pg, *want; /* want NULL: -1 expected */
} ts_cases[] = {
    {"2026-04-07 02:10:00.123456+00", "2026-04-07T02:10:00.123Z"},
    {"2026-04-07 02:10:00.123+00", "2026-04-07T02:10:00.123Z"},
    {"2026-04-07 02:10:00.1+00", "2026-04-07T02:10:00.100Z"},
    {"2026-04-07 02:10:00.999+00", "2026-04-07T02:10:00.999Z"},
    {"2026-04-07 02:10:00+00", "2026-04-07T02:10:00.000Z"},
    {"2026-04-07 12:10:00.123456+02", "2026-04-07T10:10:00.123Z"},
    {"2026-04-07 12:10:00+05:30", "2026-04-07T06:40:00.000Z"},
    {"2026-04-07 12:10:00-08", "2026-04-07T20:10:00.000Z"},
    {"2026-04-07 12:10:00-03:30", "2026-04-07T15:40:00.000Z"},
    {"2026-04-07 12:10:00-00:30", "2026-04-07T12:40:00.000Z"},
    /* crossing midnight with an offset */
    {"2026-04-07 02:10:00.123456+02", "2026-04-07T00:10:00.123Z"},
    {"2026-04-07 01:10:00.5+02", "2026-04-06T23:10:00.500Z"},
    {"2026-04-07 02:10:00+05:30", "2026-04-06T20:40:00.000Z"},
    {"2026-04-07 20:10:00-08", "2026-04-08T04:10:00.000Z"},
    {"2026-04-07 22:00:00-03:30", "2026-04-08T01:30:00.000Z"},
    /* month and year boundaries */
    {"2026-04-30 20:00:00-08", "2026-05-01T04:00:00.000Z"},
    {"2026-05-01 01:00:00+02", "2026-04-30T23:00:00.000Z"},
    {"2026-03-01 00:15:00+01", "2026-02-28T23:15:00.000Z"},
    {"2024-03-01 00:15:00+01", "2024-02-29T23:15:00.000Z"}, /* leap year */
    {"2024-02-28 23:30:00-01", "2024-02-29T00:30:00.000Z"},
    {"2026-12-31 23:30:00-01", "2027-01-01T00:30:00.000Z"},
    {"2026-01-01 01:00:00+05:30", "2025-12-31T19:30:00.000Z"},
    {"2000-01-01 00:00:00.000001+14", "1999-12-31T10:00:00.000Z"},
    {"1970-01-01 00:00:00+00", "1970-01-01T00:00:00.000Z"},
    /* not a timestamp */
    {"", NULL},
    {"garbage", NULL},
    {"2026-04-07", NULL},
    {"12:10:00", NULL},
    {"2026-04-07 12:10", NULL},
    {"2026-04-07 12:10:00+", NULL},
    {"2026-04-07 12:10:00+x", NULL},
    {"infinity", NULL},
    {"-infinity", NULL},
};

START_TEST(timestamp_table)
{
    char out[64] = "untouched";
    int rc = dps_pg_timestamp_iso(ts_cases[_i].pg, out, sizeof(out));

    if (ts_cases[_i].want == NULL) {
        ck_assert_msg(rc == -1, "\"%s\": rc %d (\"%s\"), want -1", ts_cases[_i].pg, rc, out);
        return;
    }
    ck_assert_msg(rc == 0, "\"%s\": rc %d", ts_cases[_i].pg, rc);
    ck_assert_msg(strcmp(out, ts_cases[_i].want) == 0, "\"%s\": got \"%s\", want \"%s\"", ts_cases[_i].pg, out,
                  ts_cases[_i].want);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("session");
    TCase *tc = tcase_create("cookie");
    TCase *tt = tcase_create("timestamp");

    tcase_add_test(tc, sign_known_answer);
    tcase_add_test(tc, roundtrip);
    tcase_add_test(tc, wrong_secret_fails);
    tcase_add_loop_test(tc, bad_cookie_table, 0, sizeof(bad_cookies) / sizeof(bad_cookies[0]));
    tcase_add_test(tc, empty_sid_refused_even_when_signed);
    tcase_add_test(tc, sign_buffer_too_small);
    tcase_add_test(tc, verify_sid_buffer_too_small);
    suite_add_tcase(s, tc);
    tcase_add_loop_test(tt, timestamp_table, 0, sizeof(ts_cases) / sizeof(ts_cases[0]));
    suite_add_tcase(s, tt);
    return dps_check_run(s);
}
