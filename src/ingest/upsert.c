/* The shared upsert pipeline (otlp-ingestion.md §7, data-model.md §5): one or two statements per call. */
#include "depsera/upsert.h"
#include "depsera/pgarray.h"
#include "depsera/stmt.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The upsert and the latency history in one statement:
 *   up     the upsert of data-model.md §5 (discovery_source: a manual row stays manual; otlp_trace
 *          is not downgraded to otlp_metric, open-questions.md Q-DISC), rows taken in name order
 *          (the caller sorts them) so that concurrent writers of one service queue instead of
 *          deadlocking; a row whose health changed gets last_status_change = statement_timestamp(),
 *          which is how the result tells a change: no other statement can have written that value
 *          (now() could: an earlier entry of the same request); xmax = 0 is a new row, whose
 *          appearance is a change from nothing (open-questions.md D12: previous_healthy NULL);
 *   lat    §7.5: one recorded_at for every row of the call.
 * The result: each row's id, name, and whether its health changed (§7.3). */
static const char upsert_sql[] =
    "WITH input AS MATERIALIZED (SELECT * FROM unnest($3::text[], $4::text[], $5::text[], $6::text[], $7::text[], "
    "$8::boolean[], $9::int[], $10::int[], $11::float8[], $12::jsonb[], $13::jsonb[], $14::jsonb[], $15::boolean[], "
    "$16::bigint[], $17::text[], $18::float8[], $19::float8[], $20::float8[], $21::float8[], $22::float8[], $23::float8[], "
    "$24::bigint[]) WITH ORDINALITY AS i(name, type, description, impact, error_message, healthy, health_state, "
    "health_code, latency_ms, contact, check_details, error, skipped, checked_ms, lat_source, lat_ms, p50, p95, p99, mn, "
    "mx, rc, ord)), "
    "up AS (INSERT INTO dependencies AS d (service_id, name, canonical_name, description, impact, type, healthy, "
    "health_state, health_code, latency_ms, contact, check_details, error, error_message, skipped, last_checked, "
    "last_status_change, discovery_source) "
    "SELECT $1, i.name, al.canonical_name, i.description, i.impact, COALESCE(i.type, 'other'), i.healthy, i.health_state, "
    "i.health_code, i.latency_ms, i.contact, i.check_details, i.error, i.error_message, i.skipped, "
    "COALESCE(to_timestamp(i.checked_ms / 1000.0), now()), statement_timestamp(), $2 "
    "FROM input i LEFT JOIN dependency_aliases al ON al.alias = i.name ORDER BY i.ord "
    "ON CONFLICT (service_id, name) DO UPDATE SET canonical_name = EXCLUDED.canonical_name, "
    "description = EXCLUDED.description, impact = EXCLUDED.impact, type = EXCLUDED.type, healthy = EXCLUDED.healthy, "
    "health_state = EXCLUDED.health_state, health_code = EXCLUDED.health_code, latency_ms = EXCLUDED.latency_ms, "
    "contact = EXCLUDED.contact, check_details = EXCLUDED.check_details, error = EXCLUDED.error, "
    "error_message = EXCLUDED.error_message, skipped = EXCLUDED.skipped, last_checked = EXCLUDED.last_checked, "
    "updated_at = now(), "
    "last_status_change = CASE WHEN d.healthy IS DISTINCT FROM EXCLUDED.healthy THEN statement_timestamp() "
    "ELSE d.last_status_change END, "
    "discovery_source = CASE WHEN d.discovery_source = 'manual' OR (d.discovery_source = 'otlp_trace' AND "
    "EXCLUDED.discovery_source = 'otlp_metric') THEN d.discovery_source ELSE EXCLUDED.discovery_source END "
    "RETURNING d.id, d.name, d.xmax <> 0 AND d.last_status_change = statement_timestamp() AS changed, d.xmax = 0 AS created), "
    "lat AS (INSERT INTO dependency_latency_history (dependency_id, latency_ms, recorded_at, p50_ms, p95_ms, p99_ms, "
    "min_ms, max_ms, request_count, source) SELECT up.id, i.lat_ms, statement_timestamp(), i.p50, i.p95, i.p99, i.mn, "
    "i.mx, i.rc, i.lat_source FROM up JOIN input i ON i.name = up.name WHERE i.lat_source IS NOT NULL) "
    "SELECT up.id, up.name, up.changed, up.created FROM up";

/* §7.4, against each dependency's latest history row: a recovery row after an error; an error row
 * when there was none, after a recovery, or when the error value changed (the message alone does
 * not count). A statement of its own, after the upsert: the upsert waited for concurrent writers of
 * the same rows, and only a new statement sees the history rows they committed. Rows carry the
 * wall clock so that two calls in one transaction still order. Only for the rows that can need a
 * row: unhealthy ones, and healthy ones that were not (a healthy row that stays healthy follows a
 * recovery row or none). */
static const char errors_sql[] =
    "INSERT INTO dependency_error_history (dependency_id, error, error_message, recorded_at) "
    "SELECT i.dep, CASE WHEN i.healthy THEN NULL ELSE i.error END, CASE WHEN i.healthy THEN NULL ELSE i.message END, "
    "clock_timestamp() FROM unnest($1::uuid[], $2::boolean[], $3::jsonb[], $4::text[]) AS i(dep, healthy, error, message) "
    "LEFT JOIN LATERAL (SELECT h.error FROM dependency_error_history h WHERE h.dependency_id = i.dep "
    "ORDER BY h.recorded_at DESC, h.id DESC LIMIT 1) l ON true "
    "WHERE CASE WHEN i.healthy THEN l.error IS NOT NULL ELSE l.error IS NULL OR l.error <> i.error END";

static const char changes_sql[] =
    "INSERT INTO status_change_events (service_id, service_name, dependency_name, previous_healthy, current_healthy) "
    "SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::boolean[], $5::boolean[])";

static dps_stmt_t upsert_stmt = DPS_STMT("dps_upsert_statuses", upsert_sql, 24);
static dps_stmt_t errors_stmt = DPS_STMT("dps_upsert_errors", errors_sql, 4);
static dps_stmt_t changes_stmt = DPS_STMT("dps_upsert_changes", changes_sql, 5);

/* Runs a statement; 0, or -1 with the failed result in *failed (NULL: no connection). */
static int run(dps_db_t *db, dps_stmt_t *stmt, const char *const *params, PGresult **out, PGresult **failed)
{
    PGresult *res = dps_stmt_exec(db, stmt, params);
    ExecStatusType st = PQresultStatus(res);

    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        *failed = res;
        return -1;
    }
    if (out != NULL)
        *out = res;
    else
        PQclear(res);
    return 0;
}

/* Array literals: every one built or *failed NULL (memory). */
static int texts(dps_pgarray_t *a, size_t n, const char **out)
{
    for (size_t i = 0; i < n; i++)
        if ((out[i] = dps_pgarray_text(&a[i])) == NULL)
            return -1;
    return 0;
}

static void free_arrays(dps_pgarray_t *a, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dps_pgarray_free(&a[i]);
}

static int by_name(const void *x, const void *y)
{
    return strcmp((*(const dps_dep_status_t *const *)x)->name, (*(const dps_dep_status_t *const *)y)->name);
}

static char *dup_or_empty(const char *s)
{
    return strdup(s != NULL ? s : "");
}

static int add_change(dps_status_changes_t *c, const char *sid, const char *sname, const char *dep, int prev, int cur)
{
    dps_status_change_t *ch;

    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 8;
        dps_status_change_t *v = realloc(c->v, cap * sizeof(*v));
        if (v == NULL)
            return -1;
        c->v = v, c->cap = cap;
    }
    ch = &c->v[c->n];
    *ch = (dps_status_change_t){dup_or_empty(sid), dup_or_empty(sname), dup_or_empty(dep), prev, cur};
    if (ch->service_id == NULL || ch->service_name == NULL || ch->dependency_name == NULL) {
        free(ch->service_id), free(ch->service_name), free(ch->dependency_name);
        return -1;
    }
    c->n++;
    return 0;
}

enum {
    A_NAME,
    A_TYPE,
    A_DESC,
    A_IMPACT,
    A_EMSG,
    A_HEALTHY,
    A_STATE,
    A_CODE,
    A_LAT,
    A_CONTACT,
    A_DETAILS,
    A_ERROR,
    A_SKIPPED,
    A_CHECKED,
    A_LAT_SOURCE,
    A_LAT_MS,
    A_P50,
    A_P95,
    A_P99,
    A_MIN,
    A_MAX,
    A_RC,
    A_N
};

static void add_opt_double(dps_pgarray_t *a, int present, double v)
{
    if (present)
        dps_pgarray_add_double(a, v);
    else
        dps_pgarray_add_null(a);
}

static void status_row(dps_pgarray_t *a, const dps_dep_status_t *s)
{
    /* §7.5: a latency row with percentiles when the status has them, else one with the latency alone
     * when it is positive, else none */
    int pct = s->has_histogram || s->has_request_count, lat = pct || s->latency_ms > 0;

    dps_pgarray_add_str(&a[A_NAME], s->name);
    dps_pgarray_add_str(&a[A_TYPE], s->type);
    dps_pgarray_add_str(&a[A_DESC], s->description);
    dps_pgarray_add_str(&a[A_IMPACT], s->impact);
    dps_pgarray_add_str(&a[A_EMSG], s->error_message);
    dps_pgarray_add_bool(&a[A_HEALTHY], s->healthy);
    dps_pgarray_add_int(&a[A_STATE], s->health_state);
    dps_pgarray_add_int(&a[A_CODE], s->health_code);
    dps_pgarray_add_double(&a[A_LAT], s->latency_ms);
    dps_pgarray_add_str(&a[A_CONTACT], s->contact);
    dps_pgarray_add_str(&a[A_DETAILS], s->check_details);
    dps_pgarray_add_str(&a[A_ERROR], s->error);
    dps_pgarray_add_bool(&a[A_SKIPPED], s->skipped);
    if (s->has_last_checked)
        dps_pgarray_add_int(&a[A_CHECKED], s->last_checked_ms);
    else
        dps_pgarray_add_null(&a[A_CHECKED]);
    dps_pgarray_add_str(&a[A_LAT_SOURCE], !lat ? NULL : pct ? "otlp_histogram" : "poll");
    dps_pgarray_add_double(&a[A_LAT_MS], isfinite(s->latency_ms) ? s->latency_ms : 0);
    add_opt_double(&a[A_P50], s->has_histogram, s->p50);
    add_opt_double(&a[A_P95], s->has_histogram, s->p95);
    add_opt_double(&a[A_P99], s->has_histogram, s->p99);
    add_opt_double(&a[A_MIN], s->has_histogram, s->min);
    add_opt_double(&a[A_MAX], s->has_histogram, s->max);
    if (s->has_request_count && isfinite(s->request_count) && fabs(s->request_count) < 9.2e18)
        dps_pgarray_add_int(&a[A_RC], llround(s->request_count));
    else
        dps_pgarray_add_null(&a[A_RC]);
}

/* The position of `name` in sorted (by name), or n. */
static size_t find_sorted(const dps_dep_status_t *const *sorted, size_t n, const char *name)
{
    size_t lo = 0, hi = n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(sorted[mid]->name, name) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && strcmp(sorted[lo]->name, name) == 0 ? lo : n;
}

/* From the upsert's result `up`: §7.3 changes (a row that existed and whose health differs now; a
 * row that had no health at all counts as having had the opposite one: the upsert always writes
 * one; a new row, from nothing: previous_healthy NULL, open-questions D12), then §7.4 history for
 * the rows that can need it. 0, or -1 as dps_upsert_statuses. */
static int changes_and_errors(dps_db_t *db, const PGresult *up, const dps_dep_status_t *const *sorted, size_t n,
                              const char *service_id, const char *service_name, dps_status_changes_t *changes, PGresult **failed)
{
    dps_pgarray_t e[4];
    const char *p[4];
    int rc = -1;

    for (size_t i = 0; i < 4; i++)
        dps_pgarray_init(&e[i]);
    for (int row = 0; row < PQntuples(up); row++) {
        const char *name = PQgetvalue(up, row, 1);
        size_t k = find_sorted(sorted, n, name);
        int changed = PQgetvalue(up, row, 2)[0] == 't', created = PQgetvalue(up, row, 3)[0] == 't', cur;
        if (k == n)
            continue;
        cur = sorted[k]->healthy != 0;
        if ((changed || created) &&
            add_change(changes, service_id, service_name, name, created ? DPS_HEALTH_NONE : !cur, cur) != 0)
            goto out;
        if (cur && !changed)
            continue;
        dps_pgarray_add_str(&e[0], PQgetvalue(up, row, 0));
        dps_pgarray_add_bool(&e[1], cur);
        /* what an unhealthy report counts as when it carries no error */
        dps_pgarray_add_str(&e[2], sorted[k]->error != NULL ? sorted[k]->error : "{\"unhealthy\":true}");
        dps_pgarray_add_str(&e[3], sorted[k]->error_message != NULL ? sorted[k]->error_message : "Unhealthy");
    }
    rc = e[0].n == 0 ? 0 : texts(e, 4, p) != 0 ? -1 : run(db, &errors_stmt, p, NULL, failed);
out:
    free_arrays(e, 4);
    return rc;
}

int dps_upsert_statuses(dps_db_t *db, const char *service_id, const char *service_name, const dps_dep_status_t *st, size_t n,
                        const char *source, dps_status_changes_t *changes, PGresult **failed)
{
    const dps_dep_status_t **sorted = malloc(sizeof(*sorted) * (n ? n : 1));
    dps_pgarray_t a[A_N];
    const char *p[A_N + 2];
    PGresult *up = NULL;
    int rc = -1;

    *failed = NULL;
    if (n == 0) {
        free(sorted);
        return 0;
    }
    for (size_t i = 0; i < A_N; i++)
        dps_pgarray_init(&a[i]);
    if (sorted == NULL)
        goto out;
    for (size_t i = 0; i < n; i++)
        sorted[i] = &st[i];
    qsort(sorted, n, sizeof(*sorted), by_name);
    for (size_t i = 0; i < n; i++)
        status_row(a, sorted[i]);
    p[0] = service_id, p[1] = source;
    if (texts(a, A_N, p + 2) != 0 || run(db, &upsert_stmt, p, &up, failed) != 0)
        goto out;
    rc = changes_and_errors(db, up, sorted, n, service_id, service_name, changes, failed);
out:
    PQclear(up);
    free_arrays(a, A_N);
    free(sorted);
    return rc;
}

int dps_upsert_write_changes(dps_db_t *db, const dps_status_changes_t *changes, PGresult **failed)
{
    dps_pgarray_t a[5];
    const char *p[5];
    int rc = -1;

    *failed = NULL;
    if (changes->n == 0)
        return 0;
    for (size_t i = 0; i < 5; i++)
        dps_pgarray_init(&a[i]);
    for (size_t i = 0; i < changes->n; i++) {
        const dps_status_change_t *c = &changes->v[i];
        dps_pgarray_add_str(&a[0], c->service_id);
        dps_pgarray_add_str(&a[1], c->service_name);
        dps_pgarray_add_str(&a[2], c->dependency_name);
        if (c->previous_healthy == DPS_HEALTH_NONE)
            dps_pgarray_add_null(&a[3]);
        else
            dps_pgarray_add_bool(&a[3], c->previous_healthy);
        dps_pgarray_add_bool(&a[4], c->current_healthy);
    }
    if (texts(a, 5, p) == 0)
        rc = run(db, &changes_stmt, p, NULL, failed);
    free_arrays(a, 5);
    return rc;
}

void dps_status_changes_truncate(dps_status_changes_t *c, size_t n)
{
    while (c->n > n) {
        c->n--;
        free(c->v[c->n].service_id);
        free(c->v[c->n].service_name);
        free(c->v[c->n].dependency_name);
    }
}

void dps_status_changes_free(dps_status_changes_t *c)
{
    for (size_t i = 0; i < c->n; i++) {
        free(c->v[i].service_id);
        free(c->v[i].service_name);
        free(c->v[i].dependency_name);
    }
    free(c->v);
    memset(c, 0, sizeof(*c));
}
