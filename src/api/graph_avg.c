/* The 24-hour averages of the full graph from a per-worker snapshot of the window (graph_avg.h). */
#include "depsera/graph_avg.h"
#include "depsera/util.h"

#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A snapshot is used for a minute: the rows a request reads besides it are those of the last
 * eleven minutes or so, however dense the history. */
#define MAX_AGE_MS 60000

/* Each dependency's count and sum over [B - 24 h, B), B ten minutes before now() (whole seconds),
 * with the epoch they belong to, in one statement (one MVCC snapshot). One row at least: the first
 * two columns are B and the epoch. Sums travel as the hex of their IEEE bytes (DPS_GRAPH_AVG_HEX), exact
 * whatever extra_float_digits says. */
#define SUM_HEX DPS_GRAPH_AVG_HEX("sum(h.latency_ms)")
#define SNAPSHOT_SQL                                                                                                               \
    "SELECT m.bound, m.epoch, a.dependency_id, a.n, a.sum FROM (SELECT extract(epoch FROM date_trunc('second', now()) - "          \
    "interval '10 minutes')::bigint AS bound, (SELECT epoch FROM latency_history_epoch) AS epoch) m LEFT JOIN LATERAL ("           \
    "SELECT h.dependency_id, count(*) AS n, " SUM_HEX " AS sum FROM dependency_latency_history h "                                 \
    "WHERE h.recorded_at >= to_timestamp(m.bound) - interval '24 hours' AND h.recorded_at < to_timestamp(m.bound) GROUP BY 1) a "  \
    "ON true"

typedef struct {
    char id[37]; /* "" = free slot */
    int64_t n;
    double sum;
} entry_t;

static struct {
    int64_t taken; /* mono ms, 0 = none */
    char bound[24], epoch[24];
    int nonfinite; /* some dependency's sum is not finite */
    entry_t *slot;
    size_t mask;
} snap;

/* A float8 from the hex of its big-endian bytes (DPS_GRAPH_AVG_HEX). */
static double hex_double(const char *hex)
{
    uint64_t bits = 0;
    double x;

    for (int i = 0; i < 16 && hex[i] != '\0'; i++)
        bits = bits << 4 | (uint64_t)(hex[i] <= '9' ? hex[i] - '0' : (hex[i] | 0x20) - 'a' + 10);
    memcpy(&x, &bits, sizeof(x));
    return x;
}

static void drop(void)
{
    free(snap.slot);
    memset(&snap, 0, sizeof(snap));
}

/* The slot of an id (uuid text, 36 bytes), or the free one where it goes. Its first and last eight
 * hex digits are random enough to hash (a row costs one lookup: no byte-by-byte hash). */
static entry_t *find(const char *id)
{
    uint64_t a, b, h;

    memcpy(&a, id, 8), memcpy(&b, id + 28, 8);
    h = (a * 0x9e3779b97f4a7c15u) ^ (b * 0xc2b2ae3d27d4eb4fu);
    h ^= h >> 29;
    for (size_t i = (size_t)h & snap.mask;; i = (i + 1) & snap.mask)
        if (snap.slot[i].id[0] == '\0' || memcmp(snap.slot[i].id, id, 37) == 0)
            return &snap.slot[i];
}

/* Copies the snapshot result into the worker's memory. 0, or -1 when memory runs out. */
static int keep(const PGresult *res)
{
    int rows = PQntuples(res);
    size_t cap = 16;

    while (cap < (size_t)rows * 2)
        cap *= 2;
    if ((snap.slot = calloc(cap, sizeof(*snap.slot))) == NULL)
        return -1;
    snap.mask = cap - 1;
    snprintf(snap.bound, sizeof(snap.bound), "%s", PQgetvalue(res, 0, 0));
    snprintf(snap.epoch, sizeof(snap.epoch), "%s", PQgetvalue(res, 0, 1));
    for (int i = 0; i < rows; i++) {
        entry_t *e;
        if (PQgetisnull(res, i, 2) || PQgetlength(res, i, 2) != 36)
            continue;
        e = find(PQgetvalue(res, i, 2));
        memcpy(e->id, PQgetvalue(res, i, 2), 37);
        e->n = strtoll(PQgetvalue(res, i, 3), NULL, 10);
        e->sum = hex_double(PQgetvalue(res, i, 4));
        snap.nonfinite |= !isfinite(e->sum);
    }
    return 0;
}

int dps_graph_avg_prepare(dps_req_t *r, dps_graph_avg_params_t *p)
{
    int64_t now = dps_mono_ms();
    PGresult *res;

    if (snap.taken == 0 || now - snap.taken >= MAX_AGE_MS) {
        drop();
        if ((res = dps_req_sql(r, NULL, SNAPSHOT_SQL, 0, NULL)) == NULL)
            return -1;
        if (keep(res) != 0) {
            drop();
            dps_http_error(r, 500, "Internal server error");
            return -1;
        }
        snap.taken = now > 0 ? now : 1;
    }
    memcpy(p->bound, snap.bound, sizeof(p->bound));
    memcpy(p->epoch, snap.epoch, sizeof(p->epoch));
    p->usable = !snap.nonfinite;
    return 0;
}

int dps_graph_avg_held(const PGresult *res, int ok)
{
    if (PQntuples(res) == 0 || PQgetvalue(res, 0, ok)[0] == 't')
        return 1;
    drop();
    return 0;
}

/* The digits of round(x) for the 15 significant digits of |x| (d: "d.dddddddddddddd", exp: x's
 * decimal exponent), half away from zero, at o; returns the end. */
static char *round_digits(char *o, const char *d, int exp)
{
    char *start = o, *p;

    if (exp < -1 || (exp == -1 && d[0] < '5'))
        return *o++ = '0', o;
    if (exp == -1)
        return *o++ = '1', o;
    for (int i = 0; i <= exp; i++) /* the integer part: digits, then zeros past the 15th */
        *o++ = i == 0 ? d[0] : i <= 14 ? d[i + 1] : '0';
    if (exp + 1 <= 14 && d[exp + 2] >= '5') { /* the first dropped digit; d[1] is the point */
        for (p = o - 1; p >= start && *p == '9'; p--)
            *p = '0';
        if (p < start) {
            memmove(start + 1, start, (size_t)(o - start));
            *start = '1', o++;
        } else {
            (*p)++;
        }
    }
    return o;
}

/* The digits of a whole number below 2^53 at o; returns the end. */
static char *whole_digits(char *o, uint64_t v)
{
    char tmp[24];
    int n = 0;

    do
        tmp[n++] = (char)('0' + v % 10);
    while ((v /= 10) > 0);
    while (n > 0)
        *o++ = tmp[--n];
    return o;
}

void dps_graph_avg_round(double x, char out[DPS_GRAPH_AVG_TEXT_MAX])
{
    double ax = fabs(x), whole = floor(ax), frac = ax - whole;
    char d[40], *o = out;

    if (!isfinite(x)) {
        strcpy(out, "null");
        return;
    }
    if (x < 0)
        *o++ = '-';
    /* Below 10^14, keeping 15 significant digits moves x by less than 10^-14 * x, which can only
     * matter when x is that close to a half: elsewhere the double itself decides (and printf, slow
     * for doubles, is not needed). */
    if (ax < 1e14 && fabs(frac - 0.5) > 1e-13 * (ax + 1)) {
        o = whole_digits(o, (uint64_t)whole + (frac > 0.5));
    } else { /* PostgreSQL's float8 to numeric prints %.15g: the digits of %.14e */
        snprintf(d, sizeof(d), "%.14e", ax);
        o = round_digits(o, d, atoi(d + 17));
    }
    *o = '\0';
    if (strcmp(out, "-0") == 0) /* numeric has no negative zero */
        strcpy(out, "0");
}

void dps_graph_avg_write(dps_jsonbuf_t *b, const PGresult *res, int row, int dep, int raw, int ok, int dn, int ds)
{
    const entry_t *e;
    int64_t n;
    double sum;
    char text[DPS_GRAPH_AVG_TEXT_MAX];

    if (PQgetisnull(res, row, ok) || snap.slot == NULL) {
        dps_jsonbuf_value(b, res, row, raw);
        return;
    }
    e = find(PQgetvalue(res, row, dep));
    n = (e->id[0] != '\0' ? e->n : 0) + (PQgetisnull(res, row, dn) ? 0 : strtoll(PQgetvalue(res, row, dn), NULL, 10));
    sum = (e->id[0] != '\0' ? e->sum : 0) + (PQgetisnull(res, row, ds) ? 0 : hex_double(PQgetvalue(res, row, ds)));
    if (n <= 0) {
        dps_jsonbuf_lit(b, "null");
        return;
    }
    dps_graph_avg_round(sum / (double)n, text);
    dps_jsonbuf_raw(b, text, strlen(text));
}
