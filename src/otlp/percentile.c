/* Explicit-bounds histogram percentiles (otlp-ingestion.md §6), with every float edge case made finite. */
#include "depsera/otlp_percentile.h"

#include <math.h>
#include <strings.h>

/* 2^52: from here on every double is a whole number (and ×100 may no longer be exact). */
#define WHOLE_FROM 4503599627370496.0

double dps_percentile_round(double v)
{
    double r;

    if (!isfinite(v))
        return 0;
    if (fabs(v) >= WHOLE_FROM)
        return v;
    r = floor(v);
    if (v - r >= 0.5) /* exact: v and floor(v) are within 2^52 of each other */
        r += 1;
    return r == 0 ? 0 : r; /* no -0 */
}

double dps_percentile_round2(double v)
{
    double r;

    if (!isfinite(v))
        return 0;
    if (fabs(v) >= WHOLE_FROM)
        return v;
    r = dps_percentile_round(v * 100) / 100;
    return r == 0 ? 0 : r;
}

double dps_percentile_unit_multiplier(const char *unit)
{
    if (unit == NULL)
        return 1000;
    if (strcasecmp(unit, "ms") == 0 || strcasecmp(unit, "milliseconds") == 0)
        return 1;
    if (strcasecmp(unit, "us") == 0 || strcasecmp(unit, "microseconds") == 0)
        return 0.001;
    if (strcasecmp(unit, "ns") == 0 || strcasecmp(unit, "nanoseconds") == 0)
        return 0.000001;
    return 1000;
}

/* bounds[k] with k clamped to the last bound: buckets past the bounds collapse onto it (the original read
 * `undefined` there and produced NaN); no bounds at all reads as 0. */
static double bound(const dps_histogram_t *h, size_t k)
{
    if (h->n_bounds == 0 || h->bounds == NULL)
        return 0;
    return h->bounds[k < h->n_bounds ? k : h->n_bounds - 1];
}

/* §6.3 for one quantile; cum[] is not stored: the running sum is recomputed per quantile (three passes). */
static double quantile(const dps_histogram_t *h, double total, double q, double u)
{
    double rank = total * q, cum = 0, prev, in_bucket, lower, upper;

    for (size_t i = 0; i < h->n_counts; i++) {
        prev = cum;
        cum += (double)h->counts[i];
        if (!(cum >= rank))
            continue;
        lower = i == 0 ? 0 : bound(h, i - 1);
        upper = bound(h, i);
        in_bucket = cum - prev;
        if (in_bucket == 0) /* unreachable while rank > 0, kept as the spec writes it */
            return lower * u;
        return (lower + ((rank - prev) / in_bucket) * (upper - lower)) * u;
    }
    return h->n_bounds > 0 ? bound(h, h->n_bounds - 1) * u : 0;
}

void dps_percentile_compute(const dps_histogram_t *h, double u, dps_percentiles_t *out)
{
    double total = 0, p50, p99, v;
    uint64_t sum_counts = 0;

    *out = (dps_percentiles_t){0};
    if (h->counts == NULL && h->n_counts > 0)
        return;
    for (size_t i = 0; i < h->n_counts; i++) {
        total += (double)h->counts[i];
        if (__builtin_add_overflow(sum_counts, h->counts[i], &sum_counts))
            sum_counts = UINT64_MAX; /* saturate: only reported, never used for arithmetic */
    }
    if (h->has_count)
        total = (double)h->count;
    if (total == 0)
        return;
    out->count = h->has_count ? h->count : sum_counts;
    p50 = quantile(h, total, 0.50, u);
    p99 = quantile(h, total, 0.99, u);
    out->p50 = dps_percentile_round2(p50);
    out->p95 = dps_percentile_round2(quantile(h, total, 0.95, u));
    out->p99 = dps_percentile_round2(p99);
    out->min = dps_percentile_round2(h->has_min ? h->min * u : p50);
    out->max = dps_percentile_round2(h->has_max ? h->max * u : p99);
    v = h->has_sum ? (h->sum / total) * u : p50;
    out->avg = dps_percentile_round2(v);
}
