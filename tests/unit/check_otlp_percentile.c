/* Unit tests of the explicit-bounds histogram percentiles (otlp-ingestion.md §6), rounding and units (§5.2). */
#include "depsera/otlp_percentile.h"

#include <check.h>

#include "unit.h"
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#define MAXB 6
#define NaN (0.0 / 0.0)
#define INF (1.0 / 0.0)

/* One histogram and what §6 makes of it. Unset optional members are "not given". */
/* clang-format off */
static const struct {
    const char *what;
    double bounds[MAXB];
    size_t n;
    uint64_t counts[MAXB];
    size_t m;
    int has_count;
    uint64_t count;
    int has_sum, has_min, has_max;
    double sum, min, max;
    double u;
    double p50, p95, p99, min_out, max_out, avg;
    uint64_t count_out;
} cases[] = {
    /* the worked example: seconds (unit absent, u = 1000) */
    {"worked example", {0.005, 0.01, 0.025}, 3, {10, 60, 25, 5}, 4, 0, 0, 0, 0, 0, 0, 0, 0, 1000,
     8.33, 25, 25, 8.33, 25, 8.33, 100},
    {"worked example, sum/min/max given", {0.005, 0.01, 0.025}, 3, {10, 60, 25, 5}, 4, 0, 0, 1, 1, 1, 1.5, 0.001, 0.2, 1000,
     8.33, 25, 25, 1, 200, 15, 100},
    {"count given equal to the buckets", {0.005, 0.01, 0.025}, 3, {10, 60, 25, 5}, 4, 1, 100, 0, 0, 0, 0, 0, 0, 1000,
     8.33, 25, 25, 8.33, 25, 8.33, 100},
    {"total 0: every bucket empty", {1, 2}, 2, {0, 0, 0}, 3, 0, 0, 1, 1, 1, 5, 1, 2, 1, 0, 0, 0, 0, 0, 0, 0},
    {"total 0: count 0 wins over the buckets", {1, 2}, 2, {3, 4, 5}, 3, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0},
    {"no buckets at all", {1, 2}, 2, {0}, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0},
    {"count > sum of counts: unreached ranks take the last bound", {1, 2}, 2, {1, 1, 0}, 3, 1, 10, 0, 0, 0, 0, 0, 0, 1,
     2, 2, 2, 2, 2, 2, 10},
    {"count > sum of counts, p50 reached", {1, 2}, 2, {6, 1, 0}, 3, 1, 10, 0, 0, 0, 0, 0, 0, 1,
     0.83, 2, 2, 0.83, 2, 0.83, 10},
    {"count < sum of counts", {10, 20}, 2, {5, 5, 5}, 3, 1, 4, 0, 0, 0, 0, 0, 0, 1, 4, 7.6, 7.92, 4, 7.92, 4, 4},
    {"everything in the overflow bucket", {1, 2}, 2, {0, 0, 10}, 3, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 2, 2, 2, 2, 2, 10},
    {"overflow bucket reached by p99 only", {1, 2}, 2, {0, 98, 2}, 3, 0, 0, 0, 0, 0, 0, 0, 0, 1,
     1.51, 1.97, 2, 1.51, 2, 1.51, 100},
    {"empty buckets are passed over", {1, 2, 3}, 3, {5, 0, 5, 0}, 4, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 2.9, 2.98, 1, 2.98, 1, 10},
    {"leading empty buckets", {1, 2, 3}, 3, {0, 0, 4, 0}, 4, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2.5, 2.95, 2.99, 2.5, 2.99, 2.5, 4},
    {"fewer counts than bounds + 1", {1, 2, 3, 4}, 4, {2, 2}, 2, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1.9, 1.98, 1, 1.98, 1, 4},
    {"fewer counts, count beyond them", {1, 2, 3, 4}, 4, {2, 2}, 2, 1, 8, 0, 0, 0, 0, 0, 0, 1, 2, 4, 4, 2, 4, 2, 8},
    {"more counts than bounds + 1: extra buckets collapse onto the last bound", {1}, 1, {1, 1, 1, 1}, 4, 0, 0, 0, 0, 0, 0, 0, 0,
     1, 1, 1, 1, 1, 1, 1, 4},
    {"no bounds, one bucket: 0, not NaN", {0}, 0, {7}, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1000, 0, 0, 0, 0, 0, 0, 7},
    {"no bounds, one bucket, sum given", {0}, 0, {7}, 1, 0, 0, 1, 0, 0, 14, 0, 0, 1000, 0, 0, 0, 0, 0, 2000, 7},
    {"no bounds, count but no buckets", {0}, 0, {0}, 0, 1, 5, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 5},
    {"milliseconds", {5, 10, 25}, 3, {10, 60, 25, 5}, 4, 0, 0, 0, 0, 0, 0, 0, 0, 1, 8.33, 25, 25, 8.33, 25, 8.33, 100},
    {"microseconds", {5000, 10000, 25000}, 3, {10, 60, 25, 5}, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0.001,
     8.33, 25, 25, 8.33, 25, 8.33, 100},
    {"nanoseconds", {5e6, 1e7, 2.5e7}, 3, {10, 60, 25, 5}, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0.000001, 8.33, 25, 25, 8.33, 25, 8.33, 100},
    {"min and max given, in the unit", {1, 2}, 2, {1, 1, 0}, 3, 0, 0, 0, 1, 1, 0, 0.25, 1.75, 1000, 1000, 1900, 1980, 250, 1750,
     1000, 2},
    {"rounding half up on value x 100", {1}, 1, {1, 0}, 2, 0, 0, 1, 1, 1, -1.125, 1.005, 1.125, 1, 0.5, 0.95, 0.99, 1, 1.13,
     -1.12, 1},
    {"NaN bound: NaN results are 0", {NaN, 1}, 2, {1, 1, 0}, 3, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 2},
    {"infinite bound: infinite results are 0", {INF}, 1, {1, 0}, 2, 0, 0, 1, 1, 1, INF, -INF, NaN, 1, 0, 0, 0, 0, 0, 0, 1},
    {"huge values keep their magnitude", {1e300}, 1, {2, 0}, 2, 0, 0, 0, 0, 0, 0, 0, 0, 1000, 5e302, 9.5e302, 9.9e302, 5e302,
     9.9e302, 5e302, 2},
    {"negative bounds", {-10, 0}, 2, {2, 2, 0}, 3, 0, 0, 0, 0, 0, 0, 0, 0, 1, -10, -1, -0.2, -10, -0.2, -10, 4},
    {"counts near 2^64 saturate the reported count", {1}, 1, {UINT64_MAX, 1}, 2, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0.5, 0.95, 0.99,
     0.5, 0.99, 0.5, UINT64_MAX},
};
/* clang-format on */

START_TEST(histogram)
{
    dps_histogram_t h = {
        .bounds = cases[_i].bounds,
        .n_bounds = cases[_i].n,
        .counts = cases[_i].counts,
        .n_counts = cases[_i].m,
        .has_count = cases[_i].has_count,
        .count = cases[_i].count,
        .has_sum = cases[_i].has_sum,
        .sum = cases[_i].sum,
        .has_min = cases[_i].has_min,
        .min = cases[_i].min,
        .has_max = cases[_i].has_max,
        .max = cases[_i].max,
    };
    dps_percentiles_t p;
    const double tol = 1e-9 * (1 + fabs(cases[_i].p99));

    dps_percentile_compute(&h, cases[_i].u, &p);
    ck_assert_msg(fabs(p.p50 - cases[_i].p50) < tol, "%s: p50 %.17g", cases[_i].what, p.p50);
    ck_assert_msg(fabs(p.p95 - cases[_i].p95) < tol, "%s: p95 %.17g", cases[_i].what, p.p95);
    ck_assert_msg(fabs(p.p99 - cases[_i].p99) < tol, "%s: p99 %.17g", cases[_i].what, p.p99);
    ck_assert_msg(fabs(p.min - cases[_i].min_out) < tol, "%s: min %.17g", cases[_i].what, p.min);
    ck_assert_msg(fabs(p.max - cases[_i].max_out) < tol, "%s: max %.17g", cases[_i].what, p.max);
    ck_assert_msg(fabs(p.avg - cases[_i].avg) < tol, "%s: avg %.17g", cases[_i].what, p.avg);
    ck_assert_msg(p.count == cases[_i].count_out, "%s: count %llu", cases[_i].what, (unsigned long long)p.count);
    ck_assert(isfinite(p.p50) && isfinite(p.p95) && isfinite(p.p99) && isfinite(p.min) && isfinite(p.max) && isfinite(p.avg));
}
END_TEST

/* Out-of-range reads would show under ASan: arrays exactly as long as their lengths say. */
START_TEST(exact_lengths)
{
    double *bounds = malloc(sizeof(double));
    uint64_t *counts = malloc(3 * sizeof(uint64_t));
    dps_histogram_t h = {.bounds = bounds, .n_bounds = 1, .counts = counts, .n_counts = 3};
    dps_percentiles_t p;

    bounds[0] = 4, counts[0] = 0, counts[1] = 0, counts[2] = 9;
    dps_percentile_compute(&h, 1, &p);
    ck_assert_double_eq(p.p50, 4);
    h.n_bounds = 0; /* bounds present but empty */
    dps_percentile_compute(&h, 1, &p);
    ck_assert_double_eq(p.p99, 0);
    h.bounds = NULL, h.counts = NULL, h.n_counts = 0, h.has_count = 1, h.count = 3;
    dps_percentile_compute(&h, 1, &p);
    ck_assert_double_eq(p.p50, 0);
    ck_assert_uint_eq(p.count, 3);
    free(bounds);
    free(counts);
}
END_TEST

/* Math.round(v * 100) / 100 as JavaScript computes it (expected values from node). */
/* clang-format off */
static const struct {
    double in, want;
} round2s[] = {
    {1.005, 1},     {1.125, 1.13},   {-1.125, -1.12}, {2.675, 2.68},    {0.125, 0.13},   {8.333333, 8.33}, {-0.001, 0},
    {0.285, 0.28},  {1.255, 1.25},   {10.005, 10.01}, {4.345, 4.35},    {0.615, 0.62},   {0, 0},           {25, 25},
    {1e300, 1e300}, {-1e300, -1e300}, {4503599627370497.0, 4503599627370497.0},              {NaN, 0},         {INF, 0},
    {-INF, 0},
};
/* clang-format on */

START_TEST(round2)
{
    double got = dps_percentile_round2(round2s[_i].in);

    ck_assert_msg(got == round2s[_i].want && !signbit(got) == !signbit(round2s[_i].want), "%.17g -> %.17g", round2s[_i].in, got);
}
END_TEST

/* Math.round: halves towards +Infinity, no v + 0.5 error; -0 and non-finite become 0. */
/* clang-format off */
static const struct {
    double in, want;
} rounds[] = {
    {2.5, 3},  {-2.5, -2}, {-0.5, 0}, {0.49999999999999994, 0}, {1.4999999999999998, 1}, {-1.5000000000000002, -2},
    {0.5, 1},  {-0.4, 0},  {7, 7},    {4503599627370495.5, 4503599627370496},           {1e20, 1e20},
    {NaN, 0},  {INF, 0},
};
/* clang-format on */

START_TEST(round0)
{
    double got = dps_percentile_round(rounds[_i].in);

    ck_assert_msg(got == rounds[_i].want && !signbit(got) == !signbit(rounds[_i].want), "%.17g -> %.17g", rounds[_i].in, got);
}
END_TEST

/* clang-format off */
static const struct {
    const char *unit;
    double want;
} units[] = {
    {NULL, 1000},        {"", 1000},          {"ms", 1},        {"MS", 1},         {"Ms", 1},          {"milliseconds", 1},
    {"MilliSeconds", 1}, {"us", 0.001},       {"US", 0.001},    {"microseconds", 0.001},               {"ns", 0.000001},
    {"NanoSeconds", 0.000001},                {"s", 1000},      {"seconds", 1000}, {"sec", 1000},      {" ms", 1000},
    {"ms ", 1000},       {"\xC2\xB5s", 1000}, {"millisecond", 1000},               {"{request}", 1000},
};
/* clang-format on */

START_TEST(unit_multiplier)
{
    ck_assert_msg(dps_percentile_unit_multiplier(units[_i].unit) == units[_i].want, "%s",
                  units[_i].unit != NULL ? units[_i].unit : "(absent)");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("otlp_percentile");
    TCase *tc = tcase_create("core");

    tcase_add_loop_test(tc, histogram, 0, sizeof(cases) / sizeof(cases[0]));
    tcase_add_test(tc, exact_lengths);
    tcase_add_loop_test(tc, round2, 0, sizeof(round2s) / sizeof(round2s[0]));
    tcase_add_loop_test(tc, round0, 0, sizeof(rounds) / sizeof(rounds[0]));
    tcase_add_loop_test(tc, unit_multiplier, 0, sizeof(units) / sizeof(units[0]));
    suite_add_tcase(s, tc);
    return dps_check_run(s);
}
