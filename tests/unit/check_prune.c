/* Unit tests of the pruner's pure parts: HH:MM, "is a run due", local-day cutoffs, batch arithmetic. */
#include "depsera/prune.h"

#include <check.h>

#include "unit.h"
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const struct {
    const char *in;
    int ok, minutes;
} hhmm[] = {
    {"00:00", 1, 0}, {"02:00", 1, 120}, {"23:59", 1, 1439}, {"12:30", 1, 750}, {"24:00", 0, 0},
    {"12:60", 0, 0}, {"2:00", 0, 0},    {"02:00:00", 0, 0}, {"0200", 0, 0},    {"", 0, 0},
    {"ab:cd", 0, 0}, {" 2:00", 0, 0},   {"02.00", 0, 0},    {"99:99", 0, 0},   {"-1:00", 0, 0},
};

START_TEST(parse_hhmm)
{
    int m = -1;
    int r = dps_prune_parse_hhmm(hhmm[_i].in, &m);

    ck_assert_msg((r == 0) == hhmm[_i].ok, "\"%s\"", hhmm[_i].in);
    if (hhmm[_i].ok)
        ck_assert_int_eq(m, hhmm[_i].minutes);
}
END_TEST

static struct tm at(int y, int mo, int d, int h, int mi)
{
    struct tm t;

    memset(&t, 0, sizeof(t));
    t.tm_year = y - 1900;
    t.tm_mon = mo - 1;
    t.tm_mday = d;
    t.tm_hour = h;
    t.tm_min = mi;
    return t;
}

/* now, last run (year 0 = never), cleanup time in minutes, expected */
static const struct {
    int now[5], last[5], cleanup, due;
} dues[] = {
    {{2026, 4, 7, 1, 59}, {0}, 120, 0},                  /* before the time, never ran */
    {{2026, 4, 7, 2, 0}, {0}, 120, 1},                   /* at the time */
    {{2026, 4, 7, 15, 0}, {0}, 120, 1},                  /* started later the same day: catch up */
    {{2026, 4, 7, 15, 0}, {2026, 4, 6, 2, 0}, 120, 1},   /* ran yesterday */
    {{2026, 4, 7, 15, 0}, {2026, 4, 7, 2, 0}, 120, 0},   /* ran today already */
    {{2026, 4, 7, 15, 0}, {2026, 4, 7, 0, 10}, 120, 0},  /* ran today before a later time was set */
    {{2026, 4, 7, 1, 0}, {2026, 4, 6, 2, 0}, 120, 0},    /* yesterday's ran, today's time not reached */
    {{2026, 4, 7, 23, 59}, {2026, 3, 1, 2, 0}, 1439, 1}, /* a long outage */
    {{2026, 1, 1, 0, 0}, {2025, 12, 31, 23, 0}, 0, 1},   /* across a year */
    {{2026, 4, 7, 15, 0}, {2026, 4, 8, 2, 0}, 120, 0},   /* the clock went back a day */
    {{2026, 3, 1, 3, 0}, {2026, 2, 28, 3, 0}, 180, 1},   /* across a month */
};

START_TEST(is_due)
{
    struct tm now = at(dues[_i].now[0], dues[_i].now[1], dues[_i].now[2], dues[_i].now[3], dues[_i].now[4]);
    struct tm last = at(dues[_i].last[0], dues[_i].last[1], dues[_i].last[2], dues[_i].last[3], dues[_i].last[4]);

    ck_assert_int_eq(dps_prune_is_due(&now, dues[_i].last[0] ? &last : NULL, dues[_i].cleanup), dues[_i].due);
}
END_TEST

START_TEST(is_due_local_time)
{
    /* 2026-04-07 23:30 UTC is 2026-04-08 01:30 in Paris (CEST) */
    time_t now = 1775604600, ran_utc_same_day = now - 3600; /* 22:30 UTC = 00:30 Paris, April 8 */

    setenv("TZ", "UTC", 1);
    tzset();
    ck_assert_int_eq(dps_prune_is_due_at(now, -1, 23 * 60), 1);
    ck_assert_int_eq(dps_prune_is_due_at(now, ran_utc_same_day, 23 * 60), 0);
    setenv("TZ", "Europe/Paris", 1);
    tzset();
    ck_assert_int_eq(dps_prune_is_due_at(now, -1, 23 * 60), 0);
    ck_assert_int_eq(dps_prune_is_due_at(now, -1, 60), 1);
    ck_assert_int_eq(dps_prune_is_due_at(now, ran_utc_same_day, 60), 0);
    ck_assert_int_eq(dps_prune_is_due_at(now, now - 3 * 3600, 60), 1); /* 22:30 Paris on April 7 */
    unsetenv("TZ");
    tzset();
}
END_TEST

START_TEST(cutoff_local_days)
{
    time_t now = 1775527800; /* 2026-04-07T02:10:00Z */

    setenv("TZ", "UTC", 1);
    tzset();
    ck_assert_int_eq((long long)dps_prune_cutoff(now, 1), (long long)now - 86400);
    ck_assert_int_eq((long long)dps_prune_cutoff(now, 365), (long long)now - 365LL * 86400);
    /* Paris moved to summer time on 2026-03-29: 10 calendar days back is 10 days minus one hour */
    setenv("TZ", "Europe/Paris", 1);
    tzset();
    ck_assert_int_eq((long long)dps_prune_cutoff(now, 10), (long long)now - 10 * 86400 + 3600);
    ck_assert_int_eq((long long)dps_prune_cutoff(now, 7), (long long)now - 7 * 86400);
    unsetenv("TZ");
    tzset();
}
END_TEST

START_TEST(batches)
{
    ck_assert_int_eq(dps_prune_more_batches(0, DPS_PRUNE_BATCH), 0);
    ck_assert_int_eq(dps_prune_more_batches(DPS_PRUNE_BATCH - 1, DPS_PRUNE_BATCH), 0);
    ck_assert_int_eq(dps_prune_more_batches(DPS_PRUNE_BATCH, DPS_PRUNE_BATCH), 1);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("prune");
    TCase *tc = tcase_create("schedule");

    tcase_add_loop_test(tc, parse_hhmm, 0, sizeof(hhmm) / sizeof(hhmm[0]));
    tcase_add_loop_test(tc, is_due, 0, sizeof(dues) / sizeof(dues[0]));
    tcase_add_test(tc, is_due_local_time);
    tcase_add_test(tc, cutoff_local_days);
    tcase_add_test(tc, batches);
    suite_add_tcase(s, tc);
    return dps_check_run(s);
}
