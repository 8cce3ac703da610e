/* Token bucket arithmetic, lease sizing and usage bucket starts: the pure half of the limiter. */
#include "depsera/ratelimit.h"

#include <math.h>
#include <stdio.h>

/* Float noise below this never adds a whole second (or token) to a header value. */
#define EPS 1e-9

/* ceil() that ignores float noise just above an integer: 1.0000000000002 ⇒ 1, not 2. */
static int64_t ceil_tol(double x)
{
    double f = floor(x);

    if (x - f < EPS)
        return (int64_t)f;
    return (int64_t)f + 1;
}

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;

    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* Restores the invariant 0 <= tokens <= capacity (and finite) whatever the caller stored. */
static void clamp_tokens(dps_bucket_t *b, int64_t capacity)
{
    if (!(b->tokens >= 0)) /* also NaN */
        b->tokens = 0;
    if (b->tokens > (double)capacity)
        b->tokens = (double)capacity;
}

int64_t dps_bucket_effective_rpm(const int64_t *key_rpm, int64_t default_rpm)
{
    int64_t rpm = key_rpm ? *key_rpm : default_rpm;

    return rpm > 0 ? rpm : 0;
}

int64_t dps_bucket_capacity(int64_t rpm, int64_t burst_seconds)
{
    int64_t q, r, cap;

    if (rpm <= 0)
        return 0;
    if (burst_seconds < 1)
        burst_seconds = 1;
    /* ceil(rpm × burst / 60) = (rpm/60)×burst + ceil((rpm%60)×burst / 60), without overflow
     * in the second term (rpm%60 < 60) and with a checked first term. */
    q = rpm / 60;
    r = rpm % 60;
    if (__builtin_mul_overflow(q, burst_seconds, &cap) || cap >= DPS_BUCKET_MAX_CAPACITY)
        return DPS_BUCKET_MAX_CAPACITY;
    if (burst_seconds > DPS_BUCKET_MAX_CAPACITY / 60) /* r × burst would overflow: cap wins */
        return DPS_BUCKET_MAX_CAPACITY;
    cap += (r * burst_seconds + 59) / 60;
    if (cap > DPS_BUCKET_MAX_CAPACITY)
        cap = DPS_BUCKET_MAX_CAPACITY;
    return cap < 1 ? 1 : cap;
}

void dps_bucket_init(dps_bucket_t *b, int64_t capacity, int64_t now_ms)
{
    b->tokens = capacity > 0 ? (double)capacity : 0;
    b->last_refill_ms = now_ms;
}

void dps_bucket_refill(dps_bucket_t *b, int64_t rpm, int64_t capacity, int64_t now_ms)
{
    int64_t elapsed;

    clamp_tokens(b, capacity);
    if (rpm <= 0 || now_ms <= b->last_refill_ms)
        return; /* nothing elapsed, or the clock stepped back: keep the later timestamp */
    if (__builtin_sub_overflow(now_ms, b->last_refill_ms, &elapsed))
        b->tokens = (double)capacity; /* more than 292 million years: full */
    else                              /* elapsed × rpm stays finite in a double for any int64 inputs (< 2^126) */
        b->tokens += (double)elapsed * (double)rpm / 60000.0;
    if (b->tokens > (double)capacity)
        b->tokens = (double)capacity;
    b->last_refill_ms = now_ms;
}

int64_t dps_bucket_retry_after_s(double tokens, int64_t rpm)
{
    int64_t s;

    if (rpm <= 0 || tokens >= 1)
        return 0;
    if (!(tokens >= 0))
        tokens = 0;
    s = ceil_tol((1.0 - tokens) * 60.0 / (double)rpm); /* = (1 − t) / (rpm/60000) / 1000 */
    return s < 1 ? 1 : s;
}

/* RateLimit-Reset (§5.1): ceil(now_ms/1000 + (capacity − tokens) / (rpm/60000) / 1000), with
 * whole seconds split off first so that the fraction keeps full precision. */
static int64_t reset_s(const dps_bucket_t *b, int64_t rpm, int64_t capacity, int64_t now_ms)
{
    int64_t sec = floor_div(now_ms, 1000);
    double rem_ms = (double)(now_ms - sec * 1000);
    double deficit_ms = ((double)capacity - b->tokens) * 60000.0 / (double)rpm;

    return sec + ceil_tol((rem_ms + deficit_ms) / 1000.0);
}

static void set_warning(dps_bucket_decision_t *d, const dps_bucket_t *b, int64_t capacity, double threshold)
{
    double ratio = ((double)capacity - b->tokens) / (double)capacity;

    /* NaN threshold compares false: no warning. */
    if (!(ratio >= threshold))
        return;
    d->warning = 1;
    d->warn_percent = (int)lround(ratio * 100.0);
    d->warn_used = capacity - (int64_t)floor(b->tokens);
}

dps_bucket_decision_t dps_bucket_take(dps_bucket_t *b, int64_t rpm, int64_t capacity, int64_t now_ms, double warn_threshold)
{
    dps_bucket_decision_t d = {0};

    if (rpm <= 0 || capacity <= 0) {
        d.allowed = 1; /* unlimited: §5 "skip entirely" */
        return d;
    }
    dps_bucket_refill(b, rpm, capacity, now_ms);
    d.limited = 1;
    d.limit = rpm;
    if (b->tokens < 1) {
        d.retry_after_s = dps_bucket_retry_after_s(b->tokens, rpm);
    } else {
        d.allowed = 1;
        b->tokens -= 1;
        set_warning(&d, b, capacity, warn_threshold);
    }
    d.remaining = b->tokens > 0 ? (int64_t)floor(b->tokens) : 0;
    d.reset_s = reset_s(b, rpm, capacity, now_ms);
    return d;
}

int64_t dps_bucket_lease_size(int64_t rpm, int64_t capacity, double available, int64_t target_ms, int64_t max_lease)
{
    double want;
    int64_t n, cap = capacity;

    if (rpm <= 0 || capacity <= 0 || !(available >= 1))
        return 0;
    if (max_lease >= 1 && max_lease < cap)
        cap = max_lease;
    want = target_ms > 0 ? floor((double)rpm * (double)target_ms / 60000.0) : 0;
    n = want >= (double)cap ? cap : (int64_t)want; /* compare as doubles: no int overflow */
    if (n < 1)
        n = 1;
    if ((double)n > available) /* never more than the bucket holds */
        n = (int64_t)floor(available);
    return n;
}

int64_t dps_bucket_lease(dps_bucket_t *b, int64_t rpm, int64_t capacity, int64_t now_ms, int64_t target_ms, int64_t max_lease)
{
    int64_t n;

    dps_bucket_refill(b, rpm, capacity, now_ms);
    n = dps_bucket_lease_size(rpm, capacity, b->tokens, target_ms, max_lease);
    b->tokens -= (double)n;
    return n;
}

int64_t dps_usage_bucket_start_ms(int64_t epoch_ms, dps_usage_granularity_t g)
{
    int64_t unit = g == DPS_USAGE_HOUR ? 3600000 : 60000;

    return floor_div(epoch_ms, unit) * unit;
}

/* Days since 1970-01-01 to a proleptic Gregorian date (H. Hinnant's civil_from_days). */
static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    int64_t era, yoe, doy, mp;
    int64_t doe;

    z += 719468;
    era = floor_div(z, 146097);
    doe = z - era * 146097;
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

int dps_usage_bucket_start(int64_t epoch_ms, dps_usage_granularity_t g, char *out, size_t out_len)
{
    int64_t start, days, secs, y;
    int m, d;

    if (out == NULL || out_len < DPS_USAGE_BUCKET_START_LEN) {
        if (out != NULL && out_len > 0)
            out[0] = '\0';
        return -1;
    }
    /* Keep the day count far from overflow: years 0..9999 are within ±2^48 ms anyway. */
    if (epoch_ms < -((int64_t)1 << 50) || epoch_ms > ((int64_t)1 << 50))
        goto fail;
    start = dps_usage_bucket_start_ms(epoch_ms, g) / 1000;
    days = floor_div(start, 86400);
    secs = start - days * 86400;
    civil_from_days(days, &y, &m, &d);
    if (y < 0 || y > 9999)
        goto fail;
    snprintf(out, out_len, "%04d-%02d-%02dT%02d:%02d:00", (int)y, m, d, (int)(secs / 3600), (int)(secs % 3600 / 60));
    return 0;
fail:
    out[0] = '\0';
    return -1;
}
