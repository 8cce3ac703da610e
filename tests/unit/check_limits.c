/* Unit tests of the shared limiters' worker side (limits.h) against an in-memory shared state that
 * follows the rules of migration 007's lease functions: several limiters (workers) over one state,
 * a simulated clock, lease sizing, local refusals, give-back, headers. */
#include "depsera/limit_req.h"
#include "depsera/limits.h"
#include "depsera/ratelimit.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "unit.h"

/* The shared state: one bucket and one window (the tests use one subject per kind). */
typedef struct {
    int64_t now; /* the simulated clock, epoch ms, also the workers' mono clock */
    dps_bucket_t bucket;
    int has_bucket;
    double used;   /* window: hits counted */
    int64_t start; /* window start */
    int has_window;
    int calls, fail;
    int64_t max_granted; /* the largest lease granted */
} shared_t;

static int fake_lease(void *arg, dps_limit_kind_t kind, const char *subject, const dps_limit_policy_t *p, int64_t want,
                      int64_t give, int64_t give_start, dps_lease_reply_t *out)
{
    shared_t *s = arg;

    (void)subject;
    s->calls++;
    if (s->fail)
        return -1;
    out->now_ms = s->now;
    if (kind == DPS_LIMIT_KEY) {
        if (!s->has_bucket)
            dps_bucket_init(&s->bucket, p->aux, s->now), s->has_bucket = 1;
        dps_bucket_refill(&s->bucket, p->limit, p->aux, s->now);
        s->bucket.tokens = fmin((double)p->aux, s->bucket.tokens + (double)give);
        out->granted = want < (int64_t)floor(s->bucket.tokens) ? want : (int64_t)floor(s->bucket.tokens);
        s->bucket.tokens -= (double)out->granted;
        if (out->granted > s->max_granted)
            s->max_granted = out->granted;
        out->state = s->bucket.tokens;
        out->start_ms = 0;
        return 0;
    }
    if (!s->has_window || s->now >= s->start + p->aux)
        s->start = s->now, s->used = 0, s->has_window = 1;
    else if (give > 0 && give_start == s->start)
        s->used = fmax(0, s->used - (double)give);
    out->granted = want < p->limit - (int64_t)s->used ? want : p->limit - (int64_t)s->used;
    if (out->granted < 0)
        out->granted = 0;
    s->used += (double)out->granted;
    out->state = s->used;
    out->start_ms = s->start;
    return 0;
}

START_TEST(lease_sizes)
{
    dps_limit_policy_t slow_key = {600, 60, 0.8}, default_key = {150000, 15000, 0.8};
    dps_limit_policy_t otlp = {600, 60000, 0}, api = {3000, 60000, 0}, huge = {10000000, 60000, 0}, tiny = {3, 1000, 0};

    ck_assert_int_eq(dps_limits_lease_size(DPS_LIMIT_KEY, &slow_key), 1);
    ck_assert_int_eq(dps_limits_lease_size(DPS_LIMIT_KEY, &default_key), 250);
    ck_assert_int_eq(dps_limits_lease_size(DPS_LIMIT_OTLP_TRACES, &otlp), 1);
    ck_assert_int_eq(dps_limits_lease_size(DPS_LIMIT_API, &api), 5);
    ck_assert_int_eq(dps_limits_lease_size(DPS_LIMIT_API, &huge), DPS_LIMITS_MAX_LEASE);
    ck_assert_int_eq(dps_limits_lease_size(DPS_LIMIT_AUTH, &tiny), 1);
    tiny.limit = 0;
    ck_assert_int_eq(dps_limits_lease_size(DPS_LIMIT_AUTH, &tiny), 0);
}
END_TEST

START_TEST(window_counts_resets_and_refuses_locally)
{
    shared_t s = {.now = 1000000};
    dps_limits_t *l = dps_limits_create(64, fake_lease, &s);
    dps_limit_policy_t p = {3, 10000, 0};
    dps_limit_decision_t d;

    for (int i = 0; i < 3; i++) {
        d = dps_limits_hit(l, DPS_LIMIT_API, "1.2.3.4", &p, s.now);
        ck_assert(d.limited && d.allowed);
        ck_assert_int_eq(d.limit, 3);
        ck_assert_int_eq(d.remaining, 2 - i);
        ck_assert_int_eq(d.reset, 10 - i);
        s.now += 1000;
    }
    d = dps_limits_hit(l, DPS_LIMIT_API, "1.2.3.4", &p, s.now);
    ck_assert(d.limited && !d.allowed);
    ck_assert_int_eq(d.remaining, 0);
    ck_assert_int_eq(d.retry_after_s, 7); /* the window started at 1000000 and ends 10 s later */
    /* refused again without asking the shared state until the window is over */
    int calls = s.calls;
    s.now += 5000;
    ck_assert(!dps_limits_hit(l, DPS_LIMIT_API, "1.2.3.4", &p, s.now).allowed);
    ck_assert_int_eq(s.calls, calls);
    s.now += 2000;
    d = dps_limits_hit(l, DPS_LIMIT_API, "1.2.3.4", &p, s.now);
    ck_assert(d.allowed);
    ck_assert_int_eq(d.remaining, 2);
    ck_assert_int_eq(s.calls, calls + 1);
    dps_limits_destroy(l);
}
END_TEST

/* The bar in miniature: 8 workers, a key limited to 600/min hammered at 10x for 3 minutes:
 * accepted within ±5% of 1,800 (plus at most the initial burst, which the limit allows). */
START_TEST(eight_workers_hold_a_slow_key)
{
    shared_t s = {.now = 5000000};
    dps_limits_t *w[8];
    dps_limit_policy_t p = {600, dps_bucket_capacity(600, 6), 0.8};
    long accepted = 0, requests = 0;

    for (int i = 0; i < 8; i++)
        w[i] = dps_limits_create(64, fake_lease, &s);
    for (int64_t t = 0; t < 180000; t += 10, requests++) { /* 100 requests/s = 10x */
        s.now = 5000000 + t;
        accepted += dps_limits_hit(w[requests % 8], DPS_LIMIT_KEY, "key", &p, s.now).allowed;
    }
    ck_assert_int_ge(accepted, 1800 * 95 / 100);
    ck_assert_int_le(accepted, 1800 * 105 / 100);
    ck_assert_int_le(accepted, 1800 + p.aux); /* never more than the rate plus one burst */
    ck_assert_int_eq(s.max_granted, 1);       /* a slow key is never leased ahead */
    for (int i = 0; i < 8; i++)
        dps_limits_destroy(w[i]);
}
END_TEST

/* A fast key at its limit costs few round trips: the bar of ≤ 1 per 50 accepted requests. */
START_TEST(fast_key_costs_few_round_trips)
{
    shared_t s = {.now = 7000000};
    dps_limits_t *w[4];
    dps_limit_policy_t p = {150000, dps_bucket_capacity(150000, 6), 0.8};
    long accepted = 0, requests = 0;

    for (int i = 0; i < 4; i++)
        w[i] = dps_limits_create(64, fake_lease, &s);
    for (int64_t t = 0; t < 60000; t++) { /* 2,500 requests/s: the limit */
        s.now = 7000000 + t;
        for (int k = 0; k < 5; k++, requests++)
            if (requests % 2 == 0)
                accepted += dps_limits_hit(w[(requests / 2) % 4], DPS_LIMIT_KEY, "key", &p, s.now).allowed;
    }
    ck_assert_int_ge(accepted, 150000 * 95 / 100);
    ck_assert_int_le(accepted * 1, 150000 + p.aux);
    ck_assert_int_le((long)s.calls * 50, accepted);
    for (int i = 0; i < 4; i++)
        dps_limits_destroy(w[i]);
}
END_TEST

/* Leases held by idle workers do not stack on a bucket that refilled under them: 32 workers take a
 * lease each, the key idles a minute, then a burst: at most the capacity plus a second of the rate. */
START_TEST(idle_leases_do_not_stack_on_a_full_bucket)
{
    shared_t s = {.now = 11000000};
    dps_limits_t *w[32];
    dps_limit_policy_t p = {150000, dps_bucket_capacity(150000, 6), 0.8};
    long accepted = 0;

    for (int i = 0; i < 32; i++) {
        w[i] = dps_limits_create(64, fake_lease, &s);
        ck_assert(dps_limits_hit(w[i], DPS_LIMIT_KEY, "key", &p, s.now).allowed);
    }
    s.now += 60000;
    for (int k = 0; k < 200000; k++)
        accepted += dps_limits_hit(w[k % 32], DPS_LIMIT_KEY, "key", &p, s.now).allowed;
    ck_assert_int_le(accepted, p.aux);
    for (int i = 0; i < 32; i++)
        dps_limits_destroy(w[i]);
}
END_TEST

/* Saturated (twice the limit, the burst spent): still about one round trip per lease, not per token. */
START_TEST(saturated_fast_key_costs_few_round_trips)
{
    shared_t s = {.now = 9000000};
    dps_limits_t *w[4];
    dps_limit_policy_t p = {150000, dps_bucket_capacity(150000, 6), 0.8};
    long accepted = 0, requests = 0;

    for (int i = 0; i < 4; i++)
        w[i] = dps_limits_create(64, fake_lease, &s);
    for (int64_t t = 0; t < 60000; t++) { /* 5,000 requests/s */
        s.now = 9000000 + t;
        for (int k = 0; k < 5; k++, requests++)
            accepted += dps_limits_hit(w[requests % 4], DPS_LIMIT_KEY, "key", &p, s.now).allowed;
    }
    ck_assert_int_ge(accepted, 150000 * 95 / 100);
    ck_assert_int_le(accepted, 150000 + p.aux);
    ck_assert_int_le((long)s.calls * 50, accepted);
    for (int i = 0; i < 4; i++)
        dps_limits_destroy(w[i]);
}
END_TEST

START_TEST(bucket_headers_and_warning)
{
    shared_t s = {.now = 1700000000000};
    dps_limits_t *l = dps_limits_create(64, fake_lease, &s);
    dps_limit_policy_t p = {60, 6, 0.5}; /* 1 token/s, burst 6 */
    dps_limit_decision_t d;

    d = dps_limits_hit(l, DPS_LIMIT_KEY, "k", &p, s.now);
    ck_assert(d.allowed);
    ck_assert_int_eq(d.limit, 60);
    ck_assert_int_eq(d.remaining, 5);
    ck_assert_int_eq(d.reset, 1700000000 + 1); /* one token short of full: 1 s */
    ck_assert(!d.warning);
    for (int i = 0; i < 2; i++)
        d = dps_limits_hit(l, DPS_LIMIT_KEY, "k", &p, s.now);
    ck_assert_int_eq(d.remaining, 3);
    ck_assert(d.warning && d.warn_log); /* 3 of 6 used: the 0.5 threshold */
    ck_assert_int_eq(d.warn_percent, 50);
    d = dps_limits_hit(l, DPS_LIMIT_KEY, "k", &p, s.now);
    ck_assert(d.warning && !d.warn_log); /* the log line is debounced */
    for (int i = 0; i < 2; i++)
        d = dps_limits_hit(l, DPS_LIMIT_KEY, "k", &p, s.now);
    ck_assert(d.allowed);
    ck_assert_int_eq(d.remaining, 0);
    d = dps_limits_hit(l, DPS_LIMIT_KEY, "k", &p, s.now + 200);
    ck_assert(!d.allowed);
    ck_assert_int_eq(d.retry_after_s, 1);
    ck_assert_int_eq(d.remaining, 0);
    dps_limits_destroy(l);
}
END_TEST

START_TEST(unreachable_state_allows)
{
    shared_t s = {.now = 1000, .fail = 1};
    dps_limits_t *l = dps_limits_create(64, fake_lease, &s);
    dps_limit_policy_t p = {1, 60000, 0};

    for (int i = 0; i < 5; i++) {
        dps_limit_decision_t d = dps_limits_hit(l, DPS_LIMIT_OTLP_METRICS, "::1", &p, s.now);
        ck_assert(d.allowed && !d.limited);
    }
    p.limit = 0; /* unlimited: no call at all */
    s.calls = 0;
    ck_assert(dps_limits_hit(l, DPS_LIMIT_KEY, "k", &p, s.now).allowed);
    ck_assert_int_eq(s.calls, 0);
    dps_limits_destroy(l);
}
END_TEST

START_TEST(changed_limit_and_release)
{
    shared_t s = {.now = 100000};
    dps_limits_t *l = dps_limits_create(64, fake_lease, &s);
    dps_limit_policy_t p = {600000, dps_bucket_capacity(600000, 6), 0.8}; /* lease 1000 */
    dps_limit_decision_t d;

    d = dps_limits_hit(l, DPS_LIMIT_KEY, "k", &p, s.now);
    ck_assert(d.allowed);
    ck_assert_double_eq_tol(s.bucket.tokens, (double)(p.aux - 1000), 1e-6);
    /* a changed limit: what is left of the old lease (999) goes back before a new lease (1000) */
    p.limit = 600060, p.aux = dps_bucket_capacity(600060, 6);
    d = dps_limits_hit(l, DPS_LIMIT_KEY, "k", &p, s.now);
    ck_assert(d.allowed);
    ck_assert_double_eq_tol(s.bucket.tokens, (double)(60000 - 1000 + 999 - 1000), 1e-6);
    /* a lowered limit after an eviction: a new full bucket of the new capacity */
    p.limit = 60, p.aux = 6;
    s.has_bucket = 0; /* the PATCH evicted the shared bucket */
    d = dps_limits_hit(l, DPS_LIMIT_KEY, "k", &p, s.now);
    ck_assert(d.allowed);
    ck_assert_int_eq(d.limit, 60);
    ck_assert_double_eq_tol(s.bucket.tokens, 5.0, 1e-6);
    /* a graceful stop gives back what is left of the leases */
    p.limit = 6000, p.aux = 600; /* lease 10 */
    s.has_bucket = 0;
    (void)dps_limits_hit(l, DPS_LIMIT_KEY, "k", &p, s.now);
    ck_assert_double_eq_tol(s.bucket.tokens, 590.0, 1e-6);
    ck_assert_int_eq(dps_limits_release(l, s.now), 1);
    ck_assert_double_eq_tol(s.bucket.tokens, 599.0, 1e-6);
    ck_assert_int_eq(dps_limits_release(l, s.now), 0); /* nothing twice */
    dps_limits_destroy(l);
}
END_TEST

START_TEST(many_subjects_small_table)
{
    shared_t s = {.now = 1000};
    dps_limits_t *l = dps_limits_create(16, fake_lease, &s);
    dps_limit_policy_t p = {1000000, 60000, 0};
    char ip[32];

    /* more subjects than slots: old ones are forgotten, nothing crashes */
    for (int i = 0; i < 1000; i++) {
        snprintf(ip, sizeof(ip), "10.0.%d.%d", i / 256, i % 256);
        ck_assert(dps_limits_hit(l, DPS_LIMIT_API, ip, &p, s.now).allowed);
    }
    dps_limits_destroy(l);
}
END_TEST

START_TEST(ip_subjects)
{
    static const char *const cases[][2] = {
        {"1.2.3.4", "1.2.3.4"},
        {"2001:db8:abcd:12ff:1:2:3:4", "2001:db8:abcd:1200::/56"},
        {"2001:db8:abcd:12aa::9", "2001:db8:abcd:1200::/56"},
        {"::ffff:10.0.0.1", "10.0.0.1"},
        {"::1", "::/56"},
        {"not an address", "not an address"},
        {"", "unknown"},
    };
    char out[64];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        dps_limit_ip_subject(cases[i][0], out, sizeof(out));
        ck_assert_str_eq(out, cases[i][1]);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("limits");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, lease_sizes);
    tcase_add_test(tc, window_counts_resets_and_refuses_locally);
    tcase_add_test(tc, eight_workers_hold_a_slow_key);
    tcase_add_test(tc, fast_key_costs_few_round_trips);
    tcase_add_test(tc, saturated_fast_key_costs_few_round_trips);
    tcase_add_test(tc, idle_leases_do_not_stack_on_a_full_bucket);
    tcase_add_test(tc, bucket_headers_and_warning);
    tcase_add_test(tc, unreachable_state_allows);
    tcase_add_test(tc, changed_limit_and_release);
    tcase_add_test(tc, many_subjects_small_table);
    tcase_add_test(tc, ip_subjects);
    suite_add_tcase(s, tc);
    return dps_check_run(s);
}
