/* A worker's side of the shared limiters: local leases in a small set-associative table, the lease
 * sizing, and the header values (limits.h). The shared side is migration 007 (limits_pg.c). */
#include "depsera/limits.h"
#include "depsera/ratelimit.h"
#include "depsera/util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SUBJECT_MAX 64 /* a key id (36) or an IPv6 address with its zone (<= 46) */
#define PROBES 8
#define WARN_LOG_INTERVAL_MS (15 * 60 * 1000) /* §5.2 */
#define RELEASE_BUDGET_MS 250                 /* giving leases back at a stop takes at most about this */
/* A key's lease is dropped (not given back) once it is as old as the time the bucket takes to refill
 * from empty to full (capacity / rate, OTLP_RATE_LIMIT_BURST_SECONDS): by then the bucket may be full
 * again under it, and tokens given back to a full bucket, or used on top of it, would let a burst take
 * more than the capacity. Only a worker that spends less than a lease per that time drops anything. */
static int64_t key_lease_ttl_ms(const dps_limit_policy_t *p)
{
    double ms = (double)p->aux * 60000.0 / (double)p->limit;

    return ms < 1000 ? 1000 : ms > 3600000 ? 3600000 : (int64_t)ms;
}

typedef struct {
    char subject[SUBJECT_MAX]; /* "" = free slot */
    int kind;
    int64_t limit, aux;      /* the policy the lease was taken under */
    int64_t local;           /* leased, not spent yet */
    int64_t local_start_ms;  /* window: start of the window the lease belongs to (state clock) */
    int64_t window_end_mono; /* window: when that window ends */
    int64_t blocked_until;   /* nothing to lease before this (mono) */
    double state;            /* the last reply's state (tokens left / hits used) */
    int64_t reply_mono;      /* when it came */
    int64_t offset_ms;       /* state clock − mono clock at that reply */
    int64_t touched;         /* last hit (mono), for eviction */
    int64_t warned_mono;     /* last §5.2 log line; 0 = never */
} entry_t;

struct dps_limits {
    entry_t *slots;
    size_t nslots;
    dps_lease_fn lease;
    void *arg;
};

dps_limits_t *dps_limits_create(size_t slots, dps_lease_fn lease, void *arg)
{
    dps_limits_t *l = calloc(1, sizeof(*l));

    if (slots < PROBES)
        slots = PROBES;
    if (l == NULL || (l->slots = calloc(slots, sizeof(entry_t))) == NULL) {
        free(l);
        return NULL;
    }
    l->nslots = slots, l->lease = lease, l->arg = arg;
    return l;
}

void dps_limits_destroy(dps_limits_t *l)
{
    if (l != NULL)
        free(l->slots);
    free(l);
}

static uint64_t hash(int kind, const char *s)
{
    uint64_t h = 1469598103934665603ULL ^ (uint64_t)kind; /* FNV-1a */

    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

/* The subject's entry; else a free one, else the least recently hit one of its set (a lease it held
 * is lost to the shared state: the limiter errs on refusing). */
static entry_t *find(dps_limits_t *l, int kind, const char *subject)
{
    size_t start = (size_t)(hash(kind, subject) % l->nslots);
    entry_t *victim = NULL;

    for (size_t i = 0; i < PROBES; i++) {
        entry_t *e = &l->slots[(start + i) % l->nslots];
        if (e->subject[0] != '\0' && e->kind == kind && strncmp(e->subject, subject, SUBJECT_MAX - 1) == 0)
            return e;
        if (victim == NULL || (victim->subject[0] != '\0' && (e->subject[0] == '\0' || e->touched < victim->touched)))
            victim = e;
    }
    memset(victim, 0, sizeof(*victim));
    strncpy(victim->subject, subject, SUBJECT_MAX - 1);
    victim->kind = kind;
    return victim;
}

int64_t dps_limits_lease_size(dps_limit_kind_t kind, const dps_limit_policy_t *p)
{
    int64_t n, cap;

    if (p->limit <= 0)
        return 0;
    if (kind == DPS_LIMIT_KEY)
        return dps_bucket_lease_size(p->limit, p->aux, (double)p->aux, DPS_LIMITS_LEASE_TARGET_MS, DPS_LIMITS_MAX_LEASE);
    n = p->aux > 0 ? (int64_t)((double)p->limit * DPS_LIMITS_LEASE_TARGET_MS / (double)p->aux) : p->limit;
    cap = p->limit < DPS_LIMITS_MAX_LEASE ? p->limit : DPS_LIMITS_MAX_LEASE;
    return n < 1 ? 1 : n > cap ? cap : n;
}

/* Milliseconds until a bucket holding `tokens` has one (>= 1). */
static int64_t ms_to_one_token(double tokens, int64_t rpm)
{
    double ms = (1.0 - tokens) * 60000.0 / (double)rpm;

    return ms < 1 ? 1 : ms > 3600000.0 ? 3600000 : (int64_t)ceil(ms);
}

/* Ask the shared state for a lease; -1 when it cannot be reached. */
static int renew(dps_limits_t *l, entry_t *e, dps_limit_kind_t kind, const dps_limit_policy_t *p, int64_t now, int64_t give)
{
    dps_lease_reply_t rep;
    int64_t want = dps_limits_lease_size(kind, p);

    if (l->lease(l->arg, kind, e->subject, p, want, give, e->local_start_ms, &rep) != 0)
        return -1;
    e->state = rep.state;
    e->reply_mono = now;
    e->offset_ms = rep.now_ms - now;
    e->local += rep.granted > 0 ? rep.granted : 0;
    if (kind != DPS_LIMIT_KEY) {
        e->local_start_ms = rep.start_ms;
        e->window_end_mono = now + (rep.start_ms + p->aux - rep.now_ms);
        if (rep.granted <= 0)
            e->blocked_until = e->window_end_mono;
    } else if (rep.granted < want) {
        /* The bucket is short: ask again once the shortfall has refilled, not at every token. The
         * tokens meanwhile stay in the shared bucket (nothing is lost below its capacity), and a
         * saturated fast key costs one round trip per lease-sized batch instead of per token. */
        int64_t missing = want - (rep.granted > 0 ? rep.granted : 0);
        e->blocked_until = now + (rep.granted > 0 ? 0 : ms_to_one_token(rep.state, p->limit)) +
                           (int64_t)ceil((double)(missing - (rep.granted > 0 ? 0 : 1)) * 60000.0 / (double)p->limit);
    }
    return 0;
}

/* §5.1 and §5.2 for the bucket: the tokens the shared bucket holds now (as last seen, refilled
 * since) plus this worker's lease, through the same arithmetic as the reference module. */
static void bucket_headers(entry_t *e, const dps_limit_policy_t *p, int allowed, int64_t now, dps_limit_decision_t *d)
{
    double rate = (double)p->limit / 60000.0;
    double shared = e->state + (double)(now - e->reply_mono) * rate;
    double before = (shared > (double)p->aux ? (double)p->aux : shared) + (double)e->local + (allowed ? 1.0 : 0.0);
    dps_bucket_t tmp;
    dps_bucket_decision_t bd;

    if (before > (double)p->aux)
        before = (double)p->aux;
    if (!allowed && before >= 1.0)
        before = 0.999;
    if (allowed && before < 1.0)
        before = 1.0;
    tmp.tokens = before < 0 ? 0 : before;
    tmp.last_refill_ms = now + e->offset_ms;
    bd = dps_bucket_take(&tmp, p->limit, p->aux, now + e->offset_ms, p->warn_threshold);
    d->remaining = bd.remaining, d->reset = bd.reset_s, d->retry_after_s = bd.retry_after_s;
    d->warning = bd.warning, d->warn_percent = bd.warn_percent, d->warn_used = bd.warn_used;
    if (d->warning && (e->warned_mono == 0 || now - e->warned_mono >= WARN_LOG_INTERVAL_MS)) {
        d->warn_log = 1;
        e->warned_mono = now;
    }
}

static void window_headers(entry_t *e, const dps_limit_policy_t *p, int allowed, int64_t now, dps_limit_decision_t *d)
{
    int64_t left = e->window_end_mono - now;
    int64_t remaining = p->limit - ((int64_t)e->state - e->local);

    d->remaining = allowed ? (remaining < 0 ? 0 : remaining) : 0;
    d->reset = left > 0 ? (left + 999) / 1000 : 0;
    d->retry_after_s = allowed ? 0 : d->reset > 0 ? d->reset : 1;
}

dps_limit_decision_t dps_limits_hit(dps_limits_t *l, dps_limit_kind_t kind, const char *subject, const dps_limit_policy_t *p,
                                    int64_t now)
{
    dps_limit_decision_t d;
    entry_t *e;
    int64_t give = 0;

    memset(&d, 0, sizeof(d));
    d.allowed = 1;
    if (l == NULL || p->limit <= 0 || (kind == DPS_LIMIT_KEY && p->aux <= 0))
        return d;
    e = find(l, kind, subject[0] != '\0' ? subject : "unknown"); /* "" marks a free slot */
    e->touched = now;
    if (kind != DPS_LIMIT_KEY && e->local > 0 && now >= e->window_end_mono)
        e->local = 0; /* the window of the lease is over */
    if (kind == DPS_LIMIT_KEY && e->local > 0 && e->limit == p->limit && now - e->reply_mono >= key_lease_ttl_ms(p))
        e->local = 0, e->blocked_until = 0; /* stale: dropped, a fresh lease is taken */
    if (e->limit != p->limit || e->aux != p->aux) {
        /* a new entry, or the limit changed: start over, giving back what the old lease left */
        give = e->limit != 0 ? e->local : 0;
        e->limit = p->limit, e->aux = p->aux;
        e->local = 0, e->blocked_until = 0;
    }
    if (e->local == 0 && now >= e->blocked_until && renew(l, e, kind, p, now, give) != 0)
        return d; /* state unreachable: let the request go on (and fail on its own) */
    d.limited = 1;
    d.limit = p->limit;
    d.allowed = e->local > 0;
    if (d.allowed)
        e->local--;
    if (kind == DPS_LIMIT_KEY)
        bucket_headers(e, p, d.allowed, now, &d);
    else
        window_headers(e, p, d.allowed, now, &d);
    return d;
}

size_t dps_limits_release(dps_limits_t *l, int64_t now)
{
    int64_t started = dps_mono_ms();
    size_t n = 0;

    if (l == NULL)
        return 0;
    for (size_t i = 0; i < l->nslots; i++) {
        entry_t *e = &l->slots[i];
        dps_limit_policy_t p = {e->limit, e->aux, 0};
        dps_lease_reply_t rep;

        if (e->subject[0] == '\0' || e->local <= 0 || (e->kind != DPS_LIMIT_KEY && now >= e->window_end_mono))
            continue;
        if (n > 0 && n % 16 == 0 && dps_mono_ms() - started > RELEASE_BUDGET_MS)
            break; /* a stop is not held up by thousands of clients' leftovers: they only refuse more */
        if (l->lease(l->arg, (dps_limit_kind_t)e->kind, e->subject, &p, 0, e->local, e->local_start_ms, &rep) != 0)
            break; /* the state is gone: so is what we would give back */
        e->local = 0;
        n++;
    }
    return n;
}
