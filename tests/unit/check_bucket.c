/* Unit tests of the token bucket math (§5, §5.1, §5.2), usage bucket starts (§6), lease sizing. */
#include "depsera/ratelimit.h"

#include <check.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "unit.h"

#define T0 1000000 /* epoch ms on a whole second: 1000 s */

static const int64_t K1000 = 1000, K0 = 0, KNEG = -5;

static const struct {
    const int64_t *key;
    int64_t def, want;
} rpm_cases[] = {
    {NULL, 150000, 150000}, /* NULL ⇒ OTLP_PER_KEY_RATE_LIMIT_RPM */
    {&K1000, 150000, 1000}, /* custom value wins */
    {&K0, 150000, 0},       /* admin-set 0 ⇒ unlimited */
    {NULL, 0, 0},           /* env default 0 ⇒ unlimited */
    {&KNEG, 150000, 0},     /* never valid; read as unlimited rather than as a broken bucket */
};

START_TEST(effective_rpm)
{
    ck_assert_int_eq(dps_bucket_effective_rpm(rpm_cases[_i].key, rpm_cases[_i].def), rpm_cases[_i].want);
}
END_TEST

static const struct {
    int64_t rpm, burst, want;
} cap_cases[] = {
    {150000, 6, 15000},   /* the spec's default */
    {1500000, 6, 150000}, /* team maximum */
    {600, 6, 60},
    {61, 6, 7},  /* ceil(6.1) */
    {1, 6, 1},   /* ceil(0.1) */
    {59, 1, 1},  /* ceil(0.983) */
    {100, 0, 2}, /* burst < 1 read as 1: ceil(1.67) */
    {0, 6, 0},   /* unlimited */
    {-1, 6, 0},
    {INT64_MAX, 6, DPS_BUCKET_MAX_CAPACITY},
    {60, INT64_MAX, DPS_BUCKET_MAX_CAPACITY},
    {59, INT64_MAX, DPS_BUCKET_MAX_CAPACITY},
};

START_TEST(capacity)
{
    ck_assert_int_eq(dps_bucket_capacity(cap_cases[_i].rpm, cap_cases[_i].burst), cap_cases[_i].want);
}
END_TEST

/* Refill from a given state to `now`: {rpm, cap, tokens, last, now, want tokens, want last}. */
static const struct {
    int64_t rpm, cap;
    double tokens;
    int64_t last, now;
    double want;
    int64_t want_last;
} refill_cases[] = {
    {150000, 15000, 0, T0, T0 + 1000, 2500, T0 + 1000},          /* 2.5 tokens per ms */
    {150000, 15000, 0, T0, T0 + 6000, 15000, T0 + 6000},         /* exactly full after burst s */
    {150000, 15000, 100, T0, T0 + 3600000, 15000, T0 + 3600000}, /* idle hour: capped */
    {150000, 15000, 100, T0, T0, 100, T0},                       /* elapsed 0 */
    {150000, 15000, 100, T0, T0 - 5000, 100, T0},                /* clock back: nothing, no rewind */
    {1, 1, 0, T0, T0 + 30000, 0.5, T0 + 30000},                  /* rpm 1: one token per minute */
    {1, 1, 0, T0, T0 + 1, 1.0 / 60000, T0 + 1},
    {1500000, 150000, 0, T0, T0 + 1, 25, T0 + 1},
    {600, 60, 59.5, T0, T0 + 1000, 60, T0 + 1000},
    {INT64_MAX, DPS_BUCKET_MAX_CAPACITY, 0, INT64_MIN, INT64_MAX, (double)DPS_BUCKET_MAX_CAPACITY, INT64_MAX},
};

START_TEST(refill)
{
    dps_bucket_t b = {refill_cases[_i].tokens, refill_cases[_i].last};

    dps_bucket_refill(&b, refill_cases[_i].rpm, refill_cases[_i].cap, refill_cases[_i].now);
    ck_assert_double_eq_tol(b.tokens, refill_cases[_i].want, 1e-12);
    ck_assert_int_eq(b.last_refill_ms, refill_cases[_i].want_last);
}
END_TEST

/* One take from a given state: the §5 decision and every §5.1 value. */
static const struct {
    const char *what;
    int64_t rpm, cap;
    double tokens;
    int64_t last, now;
    int allowed;
    int64_t remaining, reset_s, retry_s;
    int warning;
    double tokens_after;
} take_cases[] = {
    /* full default bucket: 14999 left; deficit 1 token = 0.4 ms ⇒ ceil(1000.0004) */
    {"full", 150000, 15000, 15000, T0, T0, 1, 14999, 1001, 0, 0, 14999},
    /* empty default bucket: Retry-After ceil(1 / 2.5 / 1000) = 1; full again in 15000/2.5 ms */
    {"empty", 150000, 15000, 0, T0, T0, 0, 0, 1006, 1, 0, 0},
    /* 0.5 token at 2.5/ms: 0.2 ms short, still 1 s */
    {"half", 150000, 15000, 0.5, T0, T0, 0, 0, 1006, 1, 0, 0.5},
    /* rpm 1 right after its only token: 60 s to the next one */
    {"rpm1 empty", 1, 1, 0, T0, T0, 0, 0, 1060, 60, 0, 0},
    /* rpm 1 half way: 0.5 token ⇒ 30 s; full at 1000 + 30 + 30 */
    {"rpm1 half", 1, 1, 0, T0, T0 + 30000, 0, 0, 1060, 30, 0, 0.5},
    {"rpm1 full", 1, 1, 0, T0, T0 + 60000, 1, 0, 1120, 0, 1, 0},
    /* 600 rpm (10/s): 0.4 token ⇒ ceil(0.6 × 0.1) = 1 s */
    {"600 short", 600, 60, 0.4, T0, T0, 0, 0, 1006, 1, 0, 0.4},
    /* fractional tokens: floor for Remaining; reset with a sub-second now */
    {"fraction", 150000, 15000, 10.7, T0 + 500, T0 + 500, 1, 9, 1007, 0, 1, 9.7},
    /* huge rpm: 1 ms refills 25 tokens */
    {"huge", 1500000, 150000, 0, T0 - 1, T0, 1, 24, 1006, 0, 1, 24},
    /* stale NaN state is read as empty, never propagated */
    {"nan", 150000, 15000, NAN, T0, T0, 0, 0, 1006, 1, 0, 0},
};

START_TEST(take)
{
    dps_bucket_t b = {take_cases[_i].tokens, take_cases[_i].last};
    dps_bucket_decision_t d = dps_bucket_take(&b, take_cases[_i].rpm, take_cases[_i].cap, take_cases[_i].now, 0.80);

    ck_assert_msg(d.limited == 1, "%s", take_cases[_i].what);
    ck_assert_int_eq(d.limit, take_cases[_i].rpm);
    ck_assert_msg(d.allowed == take_cases[_i].allowed, "%s allowed", take_cases[_i].what);
    ck_assert_int_eq(d.remaining, take_cases[_i].remaining);
    ck_assert_msg(d.reset_s == take_cases[_i].reset_s, "%s reset %lld", take_cases[_i].what, (long long)d.reset_s);
    ck_assert_int_eq(d.retry_after_s, take_cases[_i].retry_s);
    ck_assert_int_eq(d.warning, take_cases[_i].warning);
    ck_assert(isfinite(b.tokens));
    ck_assert_double_eq_tol(b.tokens, take_cases[_i].tokens_after, 1e-9);
}
END_TEST

/* Burst of 15000 in one millisecond, then the 15001st is refused; 0.4 ms later one more fits. */
START_TEST(burst_exhaustion_then_retry_after)
{
    int64_t cap = dps_bucket_capacity(150000, 6);
    dps_bucket_t b;
    dps_bucket_decision_t d;
    int warned_first = -1;

    dps_bucket_init(&b, cap, T0);
    for (int i = 1; i <= 15000; i++) {
        d = dps_bucket_take(&b, 150000, cap, T0, 0.80);
        ck_assert_int_eq(d.allowed, 1);
        ck_assert_int_eq(d.remaining, 15000 - i);
        if (d.warning && warned_first < 0)
            warned_first = i;
    }
    ck_assert_int_eq(warned_first, 12000); /* 12000 consumed / 15000 = 0.80 exactly */
    d = dps_bucket_take(&b, 150000, cap, T0, 0.80);
    ck_assert_int_eq(d.allowed, 0);
    ck_assert_int_eq(d.warning, 0); /* rejections never warn */
    ck_assert_int_eq(d.retry_after_s, 1);
    ck_assert_int_eq(d.reset_s, 1006);
    ck_assert_int_eq(d.remaining, 0);
    d = dps_bucket_take(&b, 150000, cap, T0 + 1, 0.80); /* +2.5 tokens */
    ck_assert_int_eq(d.allowed, 1);
    ck_assert_int_eq(d.remaining, 1);
    /* idle: full again */
    dps_bucket_refill(&b, 150000, cap, T0 + 60000);
    ck_assert_double_eq(b.tokens, 15000);
}
END_TEST

/* Warning boundaries: tokens before the take, threshold, expected {warning, percent, used}. */
static const struct {
    int64_t cap;
    double tokens, threshold;
    int warning, percent;
    int64_t used;
} warn_cases[] = {
    {15000, 3001, 0.80, 1, 80, 12000},   /* after: 3000 ⇒ 12000/15000 = 0.80 exactly */
    {15000, 3002, 0.80, 0, 0, 0},        /* after: 3001 ⇒ 0.79993 */
    {10, 3, 0.80, 1, 80, 8},             /* 8/10 */
    {10, 4, 0.80, 0, 0, 0},              /* 7/10 */
    {15000, 2251.5, 0.80, 1, 85, 12750}, /* 12749.5/15000 = 0.84997 ⇒ 85; used via floor */
    {15000, 1, 0.80, 1, 100, 15000},
    {15000, 15000, 0.0, 1, 0, 1}, /* threshold 0: every allowed request */
    {15000, 1, 1.01, 0, 0, 0},    /* above 1: never */
    {15000, 1, NAN, 0, 0, 0},     /* NaN: never */
    {15000, 0.5, 0.0, 0, 0, 0},   /* rejected: never */
};

START_TEST(warning_threshold)
{
    dps_bucket_t b = {warn_cases[_i].tokens, T0};
    dps_bucket_decision_t d = dps_bucket_take(&b, 150000, warn_cases[_i].cap, T0, warn_cases[_i].threshold);

    ck_assert_int_eq(d.warning, warn_cases[_i].warning);
    ck_assert_int_eq(d.warn_percent, warn_cases[_i].percent);
    ck_assert_int_eq(d.warn_used, warn_cases[_i].used);
}
END_TEST

START_TEST(unlimited_and_clock_back)
{
    dps_bucket_t b = {5, T0};
    dps_bucket_decision_t d = dps_bucket_take(&b, 0, 0, T0 + 1000, 0.80);

    ck_assert_int_eq(d.limited, 0);
    ck_assert_int_eq(d.allowed, 1);
    ck_assert_double_eq(b.tokens, 5); /* untouched */
    ck_assert_int_eq(b.last_refill_ms, T0);

    d = dps_bucket_take(&b, 600, 60, T0 - 10000, 0.80); /* clock went back 10 s */
    ck_assert_int_eq(d.allowed, 1);
    ck_assert_double_eq(b.tokens, 4);
    ck_assert_int_eq(b.last_refill_ms, T0);
    ck_assert_int_eq(dps_bucket_retry_after_s(2, 600), 0);
    ck_assert_int_eq(dps_bucket_retry_after_s(0, 0), 0);
    ck_assert_int_eq(dps_bucket_retry_after_s(0, 60), 1); /* 1/(0.001)/1000, no noise */
    ck_assert_int_eq(dps_bucket_retry_after_s(0.999999, 60), 1);
    ck_assert_int_eq(dps_bucket_retry_after_s(0, 1500000), 1);
}
END_TEST

/* Lease sizing: {rpm, cap, available, target_ms, max_lease, want}. */
static const struct {
    int64_t rpm, cap;
    double available;
    int64_t target_ms, max_lease, want;
} lease_cases[] = {
    {600, 60, 60, 100, 1000, 1},                /* slow key: 1 at a time, exact */
    {1, 1, 1, 100, 1000, 1},                    /* rpm 1 */
    {6000, 600, 600, 100, 1000, 10},            /* 100/s × 0.1 s */
    {150000, 15000, 15000, 100, 1000, 250},     /* default: one round trip per 250 requests */
    {1500000, 150000, 150000, 100, 1000, 1000}, /* fast: capped by max_lease */
    {150000, 15000, 42.7, 100, 1000, 42},       /* never more than the bucket holds */
    {150000, 15000, 0.99, 100, 1000, 0},        /* nothing to lease */
    {150000, 15000, NAN, 100, 1000, 0},
    {150000, 15000, 15000, 0, 1000, 1},      /* no target: exact */
    {150000, 15000, 15000, 10000, 0, 15000}, /* no max_lease: capacity bounds it */
    {0, 0, 100, 100, 1000, 0},               /* unlimited: no leases needed */
    {INT64_MAX, DPS_BUCKET_MAX_CAPACITY, 1e18, INT64_MAX, INT64_MAX, DPS_BUCKET_MAX_CAPACITY},
};

START_TEST(lease_size)
{
    ck_assert_int_eq(dps_bucket_lease_size(lease_cases[_i].rpm, lease_cases[_i].cap, lease_cases[_i].available,
                                           lease_cases[_i].target_ms, lease_cases[_i].max_lease),
                     lease_cases[_i].want);
}
END_TEST

/* A worker that leases when its local stock runs out, fed `per_step` requests every `step_ms`
 * for 3 minutes: it accepts at most burst + rpm × 3, never drives the shared bucket below 0,
 * a slow key hammered at 100× is exact, and a key at its own rate costs few round trips. */
START_TEST(lease_over_three_minutes)
{
    static const struct {
        int64_t rpm, step_ms, per_step;
    } c[] = {{600, 1, 1}, {150000, 2, 5}, {1500000, 1, 25}, {150000, 1, 25}};

    for (size_t k = 0; k < sizeof(c) / sizeof(c[0]); k++) {
        int64_t cap = dps_bucket_capacity(c[k].rpm, 6), accepted = 0, trips = 0, stock = 0;
        int64_t demand, ceiling;
        double lowest = 0;
        dps_bucket_t b;

        dps_bucket_init(&b, cap, 0);
        for (int64_t t = 0; t < 180000; t += c[k].step_ms) {
            for (int64_t r = 0; r < c[k].per_step; r++) {
                if (stock == 0) {
                    stock = dps_bucket_lease(&b, c[k].rpm, cap, t, 100, 1000);
                    trips++;
                    if (b.tokens < lowest)
                        lowest = b.tokens; /* no ck_assert here: each one costs a write */
                }
                if (stock > 0) {
                    stock--;
                    accepted++;
                }
            }
        }
        ck_assert(lowest >= 0);
        ck_assert_int_le(accepted, cap + c[k].rpm * 3);
        demand = c[k].per_step * (180000 / c[k].step_ms);
        ceiling = cap + c[k].rpm * 3;
        ck_assert_int_ge(accepted + 1000, demand < ceiling ? demand : ceiling);
        if (k == 0)
            ck_assert_int_ge(accepted, 60 + 1800 - 1); /* the last partial token may be pending */
        if (k == 1)
            ck_assert_int_le(trips * 50, accepted); /* at its rate: ≤ 1 round trip per 50 */
    }
}
END_TEST

/* Bucket starts: {epoch ms, minute, hour}. */
static const struct {
    int64_t ms;
    const char *minute, *hour;
} start_cases[] = {
    {0, "1970-01-01T00:00:00", "1970-01-01T00:00:00"},
    {-1, "1969-12-31T23:59:00", "1969-12-31T23:00:00"},
    {1700000000000, "2023-11-14T22:13:00", "2023-11-14T22:00:00"},
    {1672531200000 - 1, "2022-12-31T23:59:00", "2022-12-31T23:00:00"}, /* year boundary */
    {1672531200000, "2023-01-01T00:00:00", "2023-01-01T00:00:00"},
    {1709210096789, "2024-02-29T12:34:00", "2024-02-29T12:00:00"},     /* leap day */
    {1709251200000 - 1, "2024-02-29T23:59:00", "2024-02-29T23:00:00"}, /* day boundary */
    {1709251200000, "2024-03-01T00:00:00", "2024-03-01T00:00:00"},
    {951868770000, "2000-02-29T23:59:00", "2000-02-29T23:00:00"},          /* 400-year leap */
    {4107542400000 - 60000, "2100-02-28T23:59:00", "2100-02-28T23:00:00"}, /* 2100 not leap */
    {4107542400000, "2100-03-01T00:00:00", "2100-03-01T00:00:00"},
    {1700000059999, "2023-11-14T22:14:00", "2023-11-14T22:00:00"},
    {1700002799999, "2023-11-14T22:59:00", "2023-11-14T22:00:00"}, /* hour boundary */
    {1700002800000, "2023-11-14T23:00:00", "2023-11-14T23:00:00"},
    {253402300799999, "9999-12-31T23:59:00", "9999-12-31T23:00:00"},
};

START_TEST(bucket_starts)
{
    char out[DPS_USAGE_BUCKET_START_LEN];

    ck_assert_int_eq(dps_usage_bucket_start(start_cases[_i].ms, DPS_USAGE_MINUTE, out, sizeof(out)), 0);
    ck_assert_str_eq(out, start_cases[_i].minute);
    ck_assert_int_eq(dps_usage_bucket_start(start_cases[_i].ms, DPS_USAGE_HOUR, out, sizeof(out)), 0);
    ck_assert_str_eq(out, start_cases[_i].hour);
    ck_assert_int_eq(dps_usage_bucket_start_ms(start_cases[_i].ms, DPS_USAGE_MINUTE) % 60000, 0);
    ck_assert_int_le(dps_usage_bucket_start_ms(start_cases[_i].ms, DPS_USAGE_HOUR), start_cases[_i].ms);
    ck_assert_int_gt(dps_usage_bucket_start_ms(start_cases[_i].ms, DPS_USAGE_HOUR) + 3600000, start_cases[_i].ms);
}
END_TEST

START_TEST(bucket_start_errors)
{
    char out[DPS_USAGE_BUCKET_START_LEN];
    char small[DPS_USAGE_BUCKET_START_LEN - 1];

    ck_assert_int_eq(dps_usage_bucket_start_ms(-1, DPS_USAGE_MINUTE), -60000);
    ck_assert_int_eq(dps_usage_bucket_start_ms(1700000000000, DPS_USAGE_HOUR), 1699999200000);
    ck_assert_int_eq(dps_usage_bucket_start(253402300800000, DPS_USAGE_MINUTE, out, sizeof(out)), -1);
    ck_assert_str_eq(out, "");
    ck_assert_int_eq(dps_usage_bucket_start(-62167219200001, DPS_USAGE_MINUTE, out, sizeof(out)), -1);
    ck_assert_int_eq(dps_usage_bucket_start(-62167219200000, DPS_USAGE_MINUTE, out, sizeof(out)), 0);
    ck_assert_str_eq(out, "0000-01-01T00:00:00");
    ck_assert_int_eq(dps_usage_bucket_start(INT64_MAX, DPS_USAGE_HOUR, out, sizeof(out)), -1);
    ck_assert_int_eq(dps_usage_bucket_start(INT64_MIN, DPS_USAGE_HOUR, out, sizeof(out)), -1);
    ck_assert_int_eq(dps_usage_bucket_start(0, DPS_USAGE_HOUR, small, sizeof(small)), -1);
    ck_assert_str_eq(small, "");
    ck_assert_int_eq(dps_usage_bucket_start(0, DPS_USAGE_HOUR, NULL, 0), -1);
}
END_TEST

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))

int main(void)
{
    Suite *s = suite_create("bucket");
    TCase *tc = tcase_create("core");

    tcase_add_loop_test(tc, effective_rpm, 0, N(rpm_cases));
    tcase_add_loop_test(tc, capacity, 0, N(cap_cases));
    tcase_add_loop_test(tc, refill, 0, N(refill_cases));
    tcase_add_loop_test(tc, take, 0, N(take_cases));
    tcase_add_test(tc, burst_exhaustion_then_retry_after);
    tcase_add_loop_test(tc, warning_threshold, 0, N(warn_cases));
    tcase_add_test(tc, unlimited_and_clock_back);
    tcase_add_loop_test(tc, lease_size, 0, N(lease_cases));
    tcase_add_test(tc, lease_over_three_minutes);
    tcase_add_loop_test(tc, bucket_starts, 0, N(start_cases));
    tcase_add_test(tc, bucket_start_errors);
    suite_add_tcase(s, tc);
    return dps_check_run(s);
}
