/* Latency percentiles from an OTLP explicit-bounds histogram (otlp-ingestion.md §5.2, §6). Pure functions. */
#ifndef DEPSERA_OTLP_PERCENTILE_H
#define DEPSERA_OTLP_PERCENTILE_H

#include <stddef.h>
#include <stdint.h>

/* One histogram data point, as decoded. Arrays are borrowed; any lengths are accepted (normally
 * n_counts = n_bounds + 1) and nothing outside them is ever read. Bucket counts the decoder could not
 * read as an integer (or negative ones from JSON) are passed as 0. */
typedef struct {
    const double *bounds; /* explicitBounds, seconds or the metric's unit */
    size_t n_bounds;
    const uint64_t *counts; /* bucketCounts */
    size_t n_counts;
    int has_count; /* `count` given: it is the total, even if it disagrees with Σcounts */
    uint64_t count;
    int has_sum, has_min, has_max; /* `sum`, `min`, `max` given */
    double sum, min, max;
} dps_histogram_t;

/* The result, in milliseconds: every value rounded to 2 decimals and always finite (a value that would be
 * NaN or ±Infinity, from non-finite inputs, is 0: the original stored such values as NULL). */
typedef struct {
    double p50, p95, p99;
    double min;     /* `min`×u if given, else p50 */
    double max;     /* `max`×u if given, else p99 */
    double avg;     /* (`sum`/total)×u if `sum` given, else p50 */
    uint64_t count; /* the total: `count` if given, else Σcounts (saturating) */
} dps_percentiles_t;

/* §6: linear interpolation inside the bucket holding each rank; the overflow bucket (and any bucket past
 * the last bound) collapses to the last bound; no bounds at all makes every bound 0 (the original's NaN,
 * decided as 0). `u` is the unit multiplier (dps_percentile_unit_multiplier). A total of 0 gives all 0. */
void dps_percentile_compute(const dps_histogram_t *h, double u, dps_percentiles_t *out);

/* §5.2: the multiplier to milliseconds for `metric.unit` (case-insensitive): NULL or "" → 1000 (seconds
 * assumed), "ms"/"milliseconds" → 1, "us"/"microseconds" → 0.001, "ns"/"nanoseconds" → 0.000001, anything
 * else (including "s") → 1000. */
double dps_percentile_unit_multiplier(const char *unit);

/* JavaScript's Math.round (nearest integer, halves towards +Infinity), computed exactly (no v+0.5 error).
 * NaN and ±Infinity give 0, and -0 gives 0. Used for latency = round(avg) and round(value×1000). */
double dps_percentile_round(double v);
/* Math.round(v×100)/100: round half up on the double product v×100, so 1.005 (whose product is
 * 100.49999999999999) gives 1.00, as in the original; 1.125 gives 1.13, -1.125 gives -1.12. Values too large
 * to have decimals are returned unchanged; non-finite gives 0. */
double dps_percentile_round2(double v);

#endif
