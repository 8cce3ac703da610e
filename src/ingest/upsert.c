/* The shared upsert pipeline (otlp-ingestion.md §7, data-model.md §5): four statements per call. */
#include "depsera/upsert.h"
#include "depsera/pgarray.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Locks the existing rows in name order (so concurrent writers of one service queue instead of
 * deadlocking) and reads their health before the change. */
static const char lock_sql[] =
    "SELECT name, healthy FROM dependencies WHERE service_id = $1 AND name = ANY ($2::text[]) "
    "ORDER BY name COLLATE \"C\" FOR UPDATE";

/* data-model.md §5. discovery_source: a manual row stays manual; otlp_trace is not downgraded to
 * otlp_metric (open-questions.md Q-DISC). */
static const char upsert_sql[] =
    "INSERT INTO dependencies AS d (service_id, name, canonical_name, description, impact, type, healthy, health_state, "
    "health_code, latency_ms, contact, check_details, error, error_message, skipped, last_checked, last_status_change, "
    "discovery_source) "
    "SELECT $1, i.name, al.canonical_name, i.description, i.impact, COALESCE(i.type, 'other'), i.healthy, i.health_state, "
    "i.health_code, i.latency_ms, i.contact, i.check_details, i.error, i.error_message, i.skipped, "
    "COALESCE(to_timestamp(i.checked_ms / 1000.0), now()), now(), $2 "
    "FROM unnest($3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::boolean[], $9::int[], $10::int[], "
    "$11::float8[], $12::jsonb[], $13::jsonb[], $14::jsonb[], $15::boolean[], $16::bigint[]) WITH ORDINALITY "
    "AS i(name, type, description, impact, error_message, healthy, health_state, health_code, latency_ms, contact, "
    "check_details, error, skipped, checked_ms, ord) "
    "LEFT JOIN dependency_aliases al ON al.alias = i.name ORDER BY i.ord "
    "ON CONFLICT (service_id, name) DO UPDATE SET canonical_name = EXCLUDED.canonical_name, "
    "description = EXCLUDED.description, impact = EXCLUDED.impact, type = EXCLUDED.type, healthy = EXCLUDED.healthy, "
    "health_state = EXCLUDED.health_state, health_code = EXCLUDED.health_code, latency_ms = EXCLUDED.latency_ms, "
    "contact = EXCLUDED.contact, check_details = EXCLUDED.check_details, error = EXCLUDED.error, "
    "error_message = EXCLUDED.error_message, skipped = EXCLUDED.skipped, last_checked = EXCLUDED.last_checked, "
    "updated_at = now(), "
    "last_status_change = CASE WHEN d.healthy IS DISTINCT FROM EXCLUDED.healthy THEN now() ELSE d.last_status_change END, "
    "discovery_source = CASE WHEN d.discovery_source = 'manual' OR (d.discovery_source = 'otlp_trace' AND "
    "EXCLUDED.discovery_source = 'otlp_metric') THEN d.discovery_source ELSE EXCLUDED.discovery_source END "
    "RETURNING d.id, d.name";

/* §7.4: a recovery row after an error; an error row when there was none, after a recovery, or when
 * the error value changed (the message alone does not count). Rows carry the wall clock so that two
 * calls in one transaction still order. */
static const char errors_sql[] =
    "WITH i AS (SELECT * FROM unnest($1::uuid[], $2::boolean[], $3::jsonb[], $4::text[]) AS i(dep, healthy, error, message)), "
    "last AS (SELECT DISTINCT ON (h.dependency_id) h.dependency_id, h.error FROM dependency_error_history h "
    "WHERE h.dependency_id = ANY ($1::uuid[]) ORDER BY h.dependency_id, h.recorded_at DESC, h.id DESC) "
    "INSERT INTO dependency_error_history (dependency_id, error, error_message, recorded_at) "
    "SELECT i.dep, CASE WHEN i.healthy THEN NULL ELSE i.error END, CASE WHEN i.healthy THEN NULL ELSE i.message END, "
    "clock_timestamp() FROM i LEFT JOIN last l ON l.dependency_id = i.dep "
    "WHERE CASE WHEN i.healthy THEN l.error IS NOT NULL ELSE l.error IS NULL OR l.error <> i.error END";

/* §7.5: one recorded_at for every row of the call. */
static const char latency_sql[] =
    "INSERT INTO dependency_latency_history (dependency_id, latency_ms, recorded_at, p50_ms, p95_ms, p99_ms, min_ms, "
    "max_ms, request_count, source) "
    "SELECT dep, latency, statement_timestamp(), p50, p95, p99, mn, mx, rc, src FROM unnest($1::uuid[], $2::float8[], "
    "$3::float8[], $4::float8[], $5::float8[], $6::float8[], $7::float8[], $8::bigint[], $9::text[]) "
    "AS t(dep, latency, p50, p95, p99, mn, mx, rc, src)";

static const char changes_sql[] =
    "INSERT INTO status_change_events (service_id, service_name, dependency_name, previous_healthy, current_healthy) "
    "SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::boolean[], $5::boolean[])";

/* Runs a statement; 0, or -1 with the failed result in *failed. */
static int run(PGconn *conn, const char *sql, int n, const char *const *params, PGresult **out, PGresult **failed)
{
    PGresult *res = PQexecParams(conn, sql, n, NULL, params, NULL, NULL, 0);
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

/* The healthy flag a row had before (1/0), -1 for NULL, -2 when the row did not exist; `old` is
 * ordered by name in bytes. */
static int old_health(const PGresult *old, const char *name)
{
    int lo = 0, hi = PQntuples(old);

    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (strcmp(PQgetvalue(old, mid, 0), name) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == PQntuples(old) || strcmp(PQgetvalue(old, lo, 0), name) != 0)
        return -2;
    return PQgetisnull(old, lo, 1) ? -1 : PQgetvalue(old, lo, 1)[0] == 't';
}

static char *dup(const char *s)
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
    *ch = (dps_status_change_t){dup(sid), dup(sname), dup(dep), prev, cur};
    if (ch->service_id == NULL || ch->service_name == NULL || ch->dependency_name == NULL) {
        free(ch->service_id), free(ch->service_name), free(ch->dependency_name);
        return -1;
    }
    c->n++;
    return 0;
}

enum { A_NAME, A_TYPE, A_DESC, A_IMPACT, A_EMSG, A_HEALTHY, A_STATE, A_CODE, A_LAT, A_CONTACT, A_DETAILS, A_ERROR, A_SKIPPED,
       A_CHECKED, A_N };

static void status_row(dps_pgarray_t *a, const dps_dep_status_t *s)
{
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
}

/* Error and latency history of the upserted rows (`ids[i]` is the row of sorted[i]). */
static int write_history(PGconn *conn, const dps_dep_status_t *const *sorted, const char *const *ids, size_t n,
                         PGresult **failed)
{
    dps_pgarray_t e[4], l[9];
    const char *ep[4], *lp[9];
    size_t nlat = 0;
    int rc = -1;

    for (size_t i = 0; i < 4; i++)
        dps_pgarray_init(&e[i]);
    for (size_t i = 0; i < 9; i++)
        dps_pgarray_init(&l[i]);
    for (size_t i = 0; i < n; i++) {
        const dps_dep_status_t *s = sorted[i];
        int pct = s->has_histogram || s->has_request_count;

        dps_pgarray_add_str(&e[0], ids[i]);
        dps_pgarray_add_bool(&e[1], s->healthy);
        dps_pgarray_add_str(&e[2], s->error != NULL ? s->error : "{\"unhealthy\":true}");
        dps_pgarray_add_str(&e[3], s->error_message != NULL ? s->error_message : "Unhealthy");
        if (!pct && !(s->latency_ms > 0))
            continue;
        nlat++;
        dps_pgarray_add_str(&l[0], ids[i]);
        dps_pgarray_add_double(&l[1], isfinite(s->latency_ms) ? s->latency_ms : 0);
        for (int k = 0; k < 5; k++) {
            const double v[5] = {s->p50, s->p95, s->p99, s->min, s->max};
            if (s->has_histogram)
                dps_pgarray_add_double(&l[2 + k], v[k]);
            else
                dps_pgarray_add_null(&l[2 + k]);
        }
        if (s->has_request_count && isfinite(s->request_count) && fabs(s->request_count) < 9.2e18)
            dps_pgarray_add_int(&l[7], llround(s->request_count));
        else
            dps_pgarray_add_null(&l[7]);
        dps_pgarray_add_str(&l[8], pct ? "otlp_histogram" : "poll");
    }
    *failed = NULL;
    if (texts(e, 4, ep) == 0 && texts(l, 9, lp) == 0 && run(conn, errors_sql, 4, ep, NULL, failed) == 0 &&
        (nlat == 0 || run(conn, latency_sql, 9, lp, NULL, failed) == 0))
        rc = 0;
    free_arrays(e, 4);
    free_arrays(l, 9);
    return rc;
}

int dps_upsert_statuses(PGconn *conn, const char *service_id, const char *service_name, const dps_dep_status_t *st,
                        size_t n, const char *source, dps_status_changes_t *changes, PGresult **failed)
{
    const dps_dep_status_t **sorted = malloc(sizeof(*sorted) * (n ? n : 1));
    const char **ids = malloc(sizeof(*ids) * (n ? n : 1));
    dps_pgarray_t a[A_N];
    const char *p[A_N + 2];
    PGresult *old = NULL, *up = NULL;
    int rc = -1;

    *failed = NULL;
    for (size_t i = 0; i < A_N; i++)
        dps_pgarray_init(&a[i]);
    if (n == 0 || sorted == NULL || ids == NULL)
        goto out;
    for (size_t i = 0; i < n; i++)
        sorted[i] = &st[i];
    qsort(sorted, n, sizeof(*sorted), by_name);
    for (size_t i = 0; i < n; i++)
        status_row(a, sorted[i]);
    p[0] = service_id, p[1] = source;
    if (texts(a, A_N, p + 2) != 0)
        goto out;
    {
        const char *lp[2] = {service_id, p[2 + A_NAME]};
        if (run(conn, lock_sql, 2, lp, &old, failed) != 0 || run(conn, upsert_sql, A_N + 2, p, &up, failed) != 0)
            goto out;
    }
    if ((size_t)PQntuples(up) != n)
        goto out;
    for (int row = 0; row < PQntuples(up); row++) {
        const char *name = PQgetvalue(up, row, 1);
        size_t lo = 0, hi = n;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (strcmp(sorted[mid]->name, name) < 0)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo == n || strcmp(sorted[lo]->name, name) != 0)
            goto out;
        ids[lo] = PQgetvalue(up, row, 0);
    }
    for (size_t i = 0; i < n; i++) {
        int prev = old_health(old, sorted[i]->name);
        if (prev >= 0 && prev != (sorted[i]->healthy != 0) &&
            add_change(changes, service_id, service_name, sorted[i]->name, prev, sorted[i]->healthy != 0) != 0)
            goto out;
    }
    rc = write_history(conn, sorted, ids, n, failed);
out:
    if (n == 0 && *failed == NULL)
        rc = 0;
    PQclear(old);
    PQclear(up);
    free_arrays(a, A_N);
    free(sorted);
    free(ids);
    return rc;
}

int dps_upsert_write_changes(PGconn *conn, const dps_status_changes_t *changes, PGresult **failed)
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
        dps_pgarray_add_bool(&a[3], c->previous_healthy);
        dps_pgarray_add_bool(&a[4], c->current_healthy);
    }
    if (texts(a, 5, p) == 0)
        rc = run(conn, changes_sql, 5, p, NULL, failed);
    free_arrays(a, 5);
    return rc;
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
