/* /api/services: services with their dependencies and health, read by team members, changed by leads (graph-and-api.md §4). */
#include "depsera/api_services.h"
#include "depsera/api_guards.h"
#include "depsera/audit.h"
#include "depsera/config.h"
#include "depsera/http.h"
#include "depsera/jsonbuf.h"
#include "depsera/session.h"
#include "depsera/util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char not_found[] = "Service not found";

/* Timestamps inside json_build_object are formatted here, as dps_row_json does for top-level columns
 * (ISO-8601 UTC, milliseconds truncated, Z). */
#define ISO(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

#define SERVICE_COLUMNS DPS_SERVICE_COLUMNS
/* `team` of the detail shape: the last DETAIL_TEAM_COLUMNS columns, written as an object by
 * write_detail (cheaper than json_build_object). The full team row of the mutation shape. */
#define DETAIL_TEAM "t.id, t.name, t.description, t.created_at, t.updated_at"
#define DETAIL_TEAM_COLUMNS 5
#define FULL_TEAM                                                                                                                  \
    "json_build_object('id', t.id, 'name', t.name, 'key', t.key, 'description', t.description, 'contact', t.contact, "             \
    "'created_at', " ISO("t.created_at") ", 'updated_at', " ISO("t.updated_at") ") AS team"
#define DEP_COLUMNS DPS_DEPENDENCY_COLUMNS

/* Which services a read covers. List: $1 = team filter or NULL, $2 = only teams of this user or NULL;
 * external services are never listed. One: $1 = the service id. */
#define SCOPE_LIST                                                                                                                 \
    "NOT s.is_external AND ($1::uuid IS NULL OR s.team_id = $1::uuid) AND "                                                        \
    "($2::uuid IS NULL OR s.team_id IN (SELECT m.team_id FROM team_members m WHERE m.user_id = $2::uuid))"
#define SCOPE_ONE "s.id = $1::uuid"

#define SERVICES_SQL(scope)                                                                                                        \
    "SELECT " SERVICE_COLUMNS ", " DETAIL_TEAM " FROM services s JOIN teams t ON t.id = s.team_id WHERE " scope

/* data-model.md §8: the canonical override of a dependency is the owning team's row for its
 * canonical_name if there is one, else the global row; effective_contact merges the objects among
 * contact, that override's contact and the instance override (later keys win), NULL if none is one.
 * The merge is only computed where an override is an object (the last column, merged_contact);
 * otherwise effective_contact is the contact itself, written by write_rows without PostgreSQL
 * printing the same jsonb twice. */
#define AS_OBJECT(x) "CASE WHEN jsonb_typeof(" x ") = 'object' THEN " x " ELSE '{}'::jsonb END"
#define IS_OBJECT(x) "jsonb_typeof(" x ") = 'object'"
#define ANY_OVERRIDE IS_OBJECT("co.contact_override") " OR " IS_OBJECT("d.contact_override")
#define MERGED AS_OBJECT("d.contact") " || " AS_OBJECT("co.contact_override") " || " AS_OBJECT("d.contact_override")
#define MERGED_CONTACT "CASE WHEN " ANY_OVERRIDE " THEN " MERGED " END"
#define CANONICAL_OVERRIDE                                                                                                         \
    "LEFT JOIN dependency_canonical_overrides ct ON ct.team_id = s.team_id AND ct.canonical_name = d.canonical_name "              \
    "LEFT JOIN dependency_canonical_overrides cg ON cg.team_id IS NULL AND cg.canonical_name = d.canonical_name "                  \
    "CROSS JOIN LATERAL (SELECT "                                                                                                  \
    "CASE WHEN ct.id IS NULL THEN cg.contact_override ELSE ct.contact_override END AS contact_override, "                          \
    "CASE WHEN ct.id IS NULL THEN cg.impact_override ELSE ct.impact_override END AS impact_override) co "
#define DEPS_SQL(scope)                                                                                                            \
    "SELECT " DEP_COLUMNS ", COALESCE(d.impact_override, co.impact_override, d.impact) AS effective_impact, " MERGED_CONTACT       \
    " AS merged_contact "                                                                                                          \
    "FROM services s JOIN dependencies d ON d.service_id = s.id " CANONICAL_OVERRIDE "WHERE " scope

/* Dependencies of active services associated with each service. Dismissed suggestions are not
 * associations (open-questions.md A). The first column (`target`) is not output. Ordered by
 * report_order (newest last_checked first), not here. */
#define REPORTS_SQL(scope)                                                                                                         \
    "SELECT s.id AS target, d.id AS dependency_id, d.name AS dependency_name, rs.id AS reporting_service_id, "                     \
    "rs.name AS reporting_service_name, d.healthy, d.health_state, d.latency_ms, d.last_checked, d.impact "                        \
    "FROM services s JOIN dependency_associations a ON a.linked_service_id = s.id AND NOT a.is_dismissed "                         \
    "JOIN dependencies d ON d.id = a.dependency_id JOIN services rs ON rs.id = d.service_id AND rs.is_active "                     \
    "WHERE " scope

typedef struct {
    const char *deps, *reports;
    int nparams;
} scope_sql_t;

static const scope_sql_t list_scope = {DEPS_SQL(SCOPE_LIST), REPORTS_SQL(SCOPE_LIST), 2};
static const scope_sql_t one_scope = {DEPS_SQL(SCOPE_ONE), REPORTS_SQL(SCOPE_ONE), 1};

/* orderBy values (the original also took them with its "s." alias) and what they sort by. Names sort
 * by bytes, as SQLite's BINARY collation; NULLs sort first ascending, last descending, as in SQLite. */
static const struct {
    const char *name, *sql;
} order_columns[] = {
    {"name", "s.name COLLATE \"C\""},
    {"team_id", "s.team_id"},
    {"health_endpoint", "s.health_endpoint COLLATE \"C\""},
    {"poll_interval_ms", "s.poll_interval_ms"},
    {"is_active", "s.is_active"},
    {"last_poll_success", "s.last_poll_success"},
    {"created_at", "s.created_at"},
    {"updated_at", "s.updated_at"},
};

/* ---- small helpers ---------------------------------------------------------------------------- */

/* printf into the request pool. */
__attribute__((format(printf, 2, 3))) static char *pool_printf(dps_req_t *r, const char *fmt, ...)
{
    va_list ap;
    int n;
    char *out;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    out = h2o_mem_alloc_pool(&r->h2o->pool, (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(out, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return out;
}

/* JavaScript falsiness of a body member: absent, null, false, 0, "". */
static int falsy(json_t *v)
{
    return v == NULL || json_is_null(v) || json_is_false(v) || (json_is_string(v) && json_string_length(v) == 0) ||
           (json_is_number(v) && json_number_value(v) == 0);
}

static void on_allowlist_dispose(void *p)
{
    dps_ssrf_allowlist_free(*(dps_ssrf_allowlist_t **)p);
}

/* The SSRF allowlist in force (polling.md §4.1): the admin setting if non-empty, else SSRF_ALLOWLIST.
 * Freed with the request. 0, or -1 after answering 503/500. */
int dps_api_load_allowlist(dps_req_t *r, dps_ssrf_allowlist_t **out)
{
    PGresult *res = dps_req_sql(r, NULL, "SELECT value FROM settings WHERE key = 'ssrf_allowlist'", 0, NULL);
    const char *text = dps_worker_config(r->worker)->ssrf_allowlist;
    dps_ssrf_allowlist_t **slot;

    if (res == NULL)
        return -1;
    if (PQntuples(res) > 0 && !PQgetisnull(res, 0, 0) && PQgetvalue(res, 0, 0)[0] != '\0')
        text = PQgetvalue(res, 0, 0);
    if ((*out = dps_ssrf_allowlist_parse(text)) == NULL) {
        dps_http_error(r, 500, "Internal server error");
        return -1;
    }
    slot = h2o_mem_alloc_shared(&r->h2o->pool, sizeof(*slot), on_allowlist_dispose);
    *slot = *out;
    h2o_mem_link_shared(&r->h2o->pool, slot);
    return 0;
}

static void on_input_dispose(void *p)
{
    dps_service_input_clear(p);
}

/* A zeroed validation result, cleared with the request whatever path the handler takes. */
static dps_service_input_t *new_input(dps_req_t *r)
{
    dps_service_input_t *in = h2o_mem_alloc_shared(&r->h2o->pool, sizeof(*in), on_input_dispose);

    memset(in, 0, sizeof(*in));
    h2o_mem_link_shared(&r->h2o->pool, in);
    return in;
}

static void answer_invalid(dps_req_t *r, const dps_service_input_t *in)
{
    dps_api_error_field(r, 400, in->error != NULL ? in->error : "Invalid request body", in->field);
}

/* The canonical schema_config as text for a ::jsonb parameter (in the pool), or NULL for SQL NULL. */
static const char *schema_text(dps_req_t *r, const dps_service_input_t *in)
{
    char *text;
    const char *copy;

    if (in->schema_config == NULL || (text = json_dumps(in->schema_config, JSON_COMPACT)) == NULL)
        return NULL;
    copy = h2o_strdup(&r->h2o->pool, text, strlen(text)).base;
    free(text);
    return copy;
}

/* Pollers and caches learn of the change at COMMIT (polling.md §0). 0, or -1 after answering. */
static int notify_change(dps_req_t *r, const char *id)
{
    char payload[64];
    const char *params[1] = {payload};

    snprintf(payload, sizeof(payload), "service:%s", id);
    return dps_req_sql(r, NULL, "SELECT pg_notify('depsera_poll', $1), pg_notify('depsera_cache', $1)", 1, params) == NULL ? -1 : 0;
}

/* ---- health (§4.1, §4.4) ---------------------------------------------------------------------------- */

/* The rows of a result in an order: position k is row perm[k] (perm NULL: the result's own order),
 * with its output columns prepared. */
typedef struct {
    const PGresult *res;
    int *perm;
    dps_jsonbuf_cols_t cols, team; /* team: SERVICES_SQL's DETAIL_TEAM columns */
    int c_contact, c_merged;       /* DEPS_SQL: columns of effective_contact (see MERGED_CONTACT); else -1 */
} view_t;

#define ROW(v, k) ((v)->perm != NULL ? (v)->perm[k] : (k))

/* Positions [from, to) of a view. */
typedef struct {
    int from, to;
} range_t;

/* §4.4 classification counts over some rows. */
typedef struct {
    int healthy, warning, critical;
} tally_t;

static void tally_row(tally_t *t, const PGresult *res, int row, int c_healthy, int c_state)
{
    int has_h = !PQgetisnull(res, row, c_healthy), has_st = !PQgetisnull(res, row, c_state);
    char h = has_h ? PQgetvalue(res, row, c_healthy)[0] : 0;
    long st = has_st ? strtol(PQgetvalue(res, row, c_state), NULL, 10) : -1;

    if (st == 2 || h == 'f')
        t->critical++;
    else if (st == 1)
        t->warning++;
    else if (h == 't')
        t->healthy++;
}

/* The row of the latest last_checked in a range (timestamps all print in UTC, so their text orders
 * like their values); -1 if none has one. */
static int latest_row(const view_t *v, range_t rg, int col)
{
    int best = -1;

    for (int k = rg.from; k < rg.to; k++) {
        int row = ROW(v, k);
        if (!PQgetisnull(v->res, row, col) && (best < 0 || strcmp(PQgetvalue(v->res, row, col), PQgetvalue(v->res, best, col)) > 0))
            best = row;
    }
    return best;
}

static int str_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* How many distinct reporting services the reports in a range come from. */
static int dependent_count(const view_t *v, range_t rg)
{
    int n = rg.to - rg.from, c = PQfnumber(v->res, "reporting_service_id"), distinct = 0;
    const char **ids = malloc(sizeof(*ids) * (size_t)(n > 0 ? n : 1));

    if (ids == NULL)
        return 0;
    for (int k = 0; k < n; k++)
        ids[k] = PQgetvalue(v->res, ROW(v, rg.from + k), c);
    qsort(ids, (size_t)n, sizeof(*ids), str_cmp);
    for (int k = 0; k < n; k++)
        distinct += k == 0 || strcmp(ids[k], ids[k - 1]) != 0;
    free(ids);
    return distinct;
}

/* The health of §4.4: over the dependent reports if there are any (`reps`: REPORTS_SQL rows), else
 * over the service's own dependencies (`deps`: DEPS_SQL rows), else unknown. */
static void write_health(dps_jsonbuf_t *b, const view_t *deps, range_t d, const view_t *reps, range_t rp)
{
    int reports = rp.to > rp.from, dependents = reports ? dependent_count(reps, rp) : 0, counted, last_col, last_row;
    const view_t *v = reports ? reps : deps;
    const PGresult *res = v->res;
    range_t rg = reports ? rp : d;
    int c_healthy = PQfnumber(res, "healthy"), c_state = PQfnumber(res, "health_state");
    tally_t t = {0, 0, 0};
    char text[256];

    for (int k = rg.from; k < rg.to; k++)
        tally_row(&t, res, ROW(v, k), c_healthy, c_state);
    counted = t.healthy + t.warning + t.critical;
    snprintf(text, sizeof(text),
             "{\"status\":\"%s\",\"healthy_reports\":%d,\"warning_reports\":%d,\"critical_reports\":%d,"
             "\"total_reports\":%d,\"dependent_count\":%d,\"last_report\":",
             counted == 0                      ? "unknown"
             : t.healthy * 100 >= 80 * counted ? "healthy"
             : t.healthy * 100 >= 50 * counted ? "warning"
                                               : "critical",
             t.healthy, t.warning, t.critical, rg.to - rg.from, dependents);
    dps_jsonbuf_raw(b, text, strlen(text));
    /* reports: the first (newest) one's last_checked; dependencies: the latest of theirs */
    last_col = PQfnumber(res, "last_checked");
    last_row = reports ? ROW(v, rg.from) : latest_row(v, rg, last_col);
    if (last_row >= 0)
        dps_jsonbuf_value(b, res, last_row, last_col);
    else
        dps_jsonbuf_lit(b, "null");
    dps_jsonbuf_lit(b, "}");
}

/* The mutation shape's health: from the service's own dependencies' healthy flags. */
static json_t *local_health(json_t *deps)
{
    size_t i, n = json_array_size(deps), up = 0, down = 0;
    json_t *d;

    json_array_foreach(deps, i, d)
    {
        up += json_is_true(json_object_get(d, "healthy"));
        down += json_is_false(json_object_get(d, "healthy"));
    }
    return json_pack("{s:s,s:I,s:I,s:I}", "status",
                     n == 0     ? "unknown"
                     : down > 0 ? "unhealthy"
                     : up == n  ? "healthy"
                                : "degraded",
                     "healthy_count", (json_int_t)up, "unhealthy_count", (json_int_t)down, "total_dependencies", (json_int_t)n);
}

/* ---- detail shape --------------------------------------------------------------------------------- */

/* Sort key of a row: three of its texts (NULL for SQL NULL) and its number. */
typedef struct {
    const char *a, *b, *c;
    int row;
} sort_key_t;

/* Dependencies in list order: service, then name by bytes as SQLite's BINARY collation, then id.
 * Sorting here rather than in SQL spares PostgreSQL a sort of wide rows. */
static int dep_order(const void *x, const void *y)
{
    const sort_key_t *p = x, *q = y;
    int c = strcmp(p->a, q->a);

    if (c == 0)
        c = strcmp(p->b, q->b);
    return c != 0 ? c : strcmp(p->c, q->c);
}

/* Reports in output order: target, newest last_checked first (NULLs last), then dependency id.
 * last_checked text is PostgreSQL's UTC output, which orders like the time. */
static int report_order(const void *x, const void *y)
{
    const sort_key_t *p = x, *q = y;
    int c = strcmp(p->a, q->a);

    if (c == 0 && (p->b == NULL) != (q->b == NULL))
        c = p->b == NULL ? 1 : -1;
    if (c == 0 && p->b != NULL)
        c = strcmp(q->b, p->b);
    return c != 0 ? c : strcmp(p->c, q->c);
}

/* `res` viewed in the order `cmp` gives over the columns named in `cols`; 0, or -1 when memory runs
 * out. */
static int sorted_view(view_t *v, const PGresult *res, const char *const cols[3], int (*cmp)(const void *, const void *))
{
    int n = PQntuples(res), c[3];
    sort_key_t *keys = malloc(sizeof(*keys) * (size_t)(n > 0 ? n : 1));

    v->res = res;
    if (keys == NULL || (v->perm = malloc(sizeof(int) * (size_t)(n > 0 ? n : 1))) == NULL) {
        free(keys);
        return -1;
    }
    for (int k = 0; k < 3; k++)
        c[k] = PQfnumber(res, cols[k]);
    for (int i = 0; i < n; i++) {
        const char *t[3];
        for (int k = 0; k < 3; k++)
            t[k] = PQgetisnull(res, i, c[k]) ? NULL : PQgetvalue(res, i, c[k]);
        keys[i] = (sort_key_t){t[0], t[1], t[2], i};
    }
    qsort(keys, (size_t)n, sizeof(*keys), cmp);
    for (int i = 0; i < n; i++)
        v->perm[i] = keys[i].row;
    free(keys);
    return 0;
}

static const char *const dep_sort_columns[3] = {"service_id", "name", "id"};
static const char *const report_sort_columns[3] = {"target", "last_checked", "dependency_id"};

static void view_free(view_t *v)
{
    free(v->perm);
    dps_jsonbuf_cols_free(&v->cols);
    dps_jsonbuf_cols_free(&v->team);
}

/* The positions of `v` whose column `col` is `id`; the view is sorted on that column (uuid text sorts
 * as uuid). */
static range_t rows_of(const view_t *v, int col, const char *id)
{
    int lo = 0, hi = PQntuples(v->res);
    range_t r;

    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (strcmp(PQgetvalue(v->res, ROW(v, mid), col), id) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    r.from = r.to = lo;
    while (r.to < PQntuples(v->res) && strcmp(PQgetvalue(v->res, ROW(v, r.to), col), id) == 0)
        r.to++;
    return r;
}

/* effective_contact: the merge where one was computed, else the contact when it is an object. */
static void write_effective_contact(dps_jsonbuf_t *b, const view_t *v, int row)
{
    dps_jsonbuf_lit(b, ",\"effective_contact\":");
    if (!PQgetisnull(v->res, row, v->c_merged))
        dps_jsonbuf_value(b, v->res, row, v->c_merged);
    else if (!PQgetisnull(v->res, row, v->c_contact) && PQgetvalue(v->res, row, v->c_contact)[0] == '{')
        dps_jsonbuf_value(b, v->res, row, v->c_contact);
    else
        dps_jsonbuf_lit(b, "null");
}

/* Rows as JSON objects of the view's prepared columns, comma-separated (with is_muted:false when `muted`). */
static void write_rows(dps_jsonbuf_t *b, const view_t *v, range_t rows, int muted)
{
    for (int k = rows.from; k < rows.to; k++) {
        if (k > rows.from)
            dps_jsonbuf_lit(b, ",");
        dps_jsonbuf_lit(b, "{");
        dps_jsonbuf_row(b, &v->cols, v->res, ROW(v, k));
        if (v->c_merged >= 0)
            write_effective_contact(b, v, ROW(v, k));
        if (muted) /* alert mutes are out of scope */
            dps_jsonbuf_lit(b, ",\"is_muted\":false");
        dps_jsonbuf_lit(b, "}");
    }
}

/* One service of a SERVICES_SQL result in the detail shape, from the DEPS_SQL and REPORTS_SQL views
 * of the same scope. */
static void write_detail(dps_jsonbuf_t *b, const view_t *svc, int i, const view_t *deps, const view_t *reps, int one)
{
    const char *id = PQgetvalue(svc->res, i, 0);
    range_t d = rows_of(deps, PQfnumber(deps->res, "service_id"), id), rp = rows_of(reps, 0, id);

    dps_jsonbuf_lit(b, "{");
    dps_jsonbuf_row(b, &svc->cols, svc->res, i);
    dps_jsonbuf_lit(b, ",\"team\":{");
    dps_jsonbuf_row(b, &svc->team, svc->res, i);
    dps_jsonbuf_lit(b, "},\"dependencies\":[");
    write_rows(b, deps, d, one);
    dps_jsonbuf_lit(b, "],\"health\":");
    write_health(b, deps, d, reps, rp);
    dps_jsonbuf_lit(b, ",\"dependent_reports\":[");
    write_rows(b, reps, rp, 0);
    dps_jsonbuf_lit(b, "]}");
}

/* Every service of `services` (a SERVICES_SQL result of the scope) in the detail shape, as an array
 * (or the one object when `one`): three statements whatever the number of services, and the text
 * written straight from the results. 0, or -1 after answering 503/500. */
static int write_details(dps_req_t *r, dps_jsonbuf_t *b, const PGresult *services, const scope_sql_t *scope,
                         const char *const *params, int one)
{
    view_t svc = {.res = services, .c_contact = -1, .c_merged = -1}, deps = {.c_contact = -1, .c_merged = -1},
           reps = {.c_contact = -1, .c_merged = -1};
    int nsvc = PQnfields(services) - DETAIL_TEAM_COLUMNS;
    PGresult *res;
    int ok;

    if ((res = dps_req_sql(r, NULL, scope->deps, scope->nparams, params)) == NULL)
        return -1;
    deps.c_contact = PQfnumber(res, "contact"), deps.c_merged = PQnfields(res) - 1;
    ok = sorted_view(&deps, res, dep_sort_columns, dep_order) == 0 && dps_jsonbuf_cols_init(&deps.cols, res, 0, deps.c_merged) == 0;
    if (ok && (res = dps_req_sql(r, NULL, scope->reports, scope->nparams, params)) == NULL) {
        view_free(&deps);
        return -1;
    }
    /* reports are written without their first column (target) */
    ok = ok && sorted_view(&reps, res, report_sort_columns, report_order) == 0 &&
         dps_jsonbuf_cols_init(&reps.cols, res, 1, PQnfields(res)) == 0 &&
         dps_jsonbuf_cols_init(&svc.cols, services, 0, nsvc) == 0 &&
         dps_jsonbuf_cols_init(&svc.team, services, nsvc, PQnfields(services)) == 0;
    if (ok) {
        dps_jsonbuf_init(b, 4096 + (size_t)PQntuples(services) * 1024 + (size_t)PQntuples(deps.res) * 900);
        if (!one)
            dps_jsonbuf_lit(b, "[");
        for (int i = 0; i < PQntuples(services); i++) {
            if (i > 0)
                dps_jsonbuf_lit(b, ",");
            write_detail(b, &svc, i, &deps, &reps, one);
        }
        if (!one)
            dps_jsonbuf_lit(b, "]");
    }
    view_free(&svc), view_free(&deps), view_free(&reps);
    if (!ok)
        dps_http_error(r, 500, "Internal server error");
    return ok ? 0 : -1;
}

/* ---- list ----------------------------------------------------------------------------------------- */

/* The SQL of the orderBy column (default name); NULL after answering 400. */
static const char *order_column(dps_req_t *r)
{
    const char *by = dps_req_query_param(r, "orderBy");

    by = by != NULL && by[0] != '\0' ? by : "name";
    for (size_t i = 0; i < DPS_ARRAY_SIZE(order_columns); i++)
        if (strcmp(by, order_columns[i].name) == 0 || (strncmp(by, "s.", 2) == 0 && strcmp(by + 2, order_columns[i].name) == 0))
            return order_columns[i].sql;
    dps_http_error(r, 400,
                   pool_printf(r,
                               "Invalid orderBy column: \"%s\". Allowed columns: name, team_id, health_endpoint, "
                               "poll_interval_ms, is_active, last_poll_success, created_at, updated_at",
                               by));
    return NULL;
}

/* orderDirection, case-insensitive (default ASC): "ASC" or "DESC"; NULL after answering 400. */
static const char *order_direction(dps_req_t *r)
{
    const char *dir = dps_req_query_param(r, "orderDirection");
    char *upper;
    size_t len;

    dir = dir != NULL && dir[0] != '\0' ? dir : "ASC";
    len = strlen(dir);
    upper = h2o_mem_alloc_pool(&r->h2o->pool, len + 1);
    for (size_t i = 0; i <= len; i++)
        upper[i] = (char)(dir[i] >= 'a' && dir[i] <= 'z' ? dir[i] - 32 : dir[i]);
    if (strcmp(upper, "ASC") == 0 || strcmp(upper, "DESC") == 0)
        return upper;
    dps_http_error(r, 400, pool_printf(r, "Invalid orderDirection: \"%s\". Must be ASC or DESC", upper));
    return NULL;
}

/* The ORDER BY of the list; NULL after answering 400. */
static const char *order_clause(dps_req_t *r)
{
    const char *col, *dir;

    if ((col = order_column(r)) == NULL || (dir = order_direction(r)) == NULL)
        return NULL;
    return pool_printf(r, "%s %s NULLS %s, s.id", col, dir, dir[0] == 'A' ? "FIRST" : "LAST");
}

void dps_api_services_list(dps_req_t *r)
{
    const char *team = dps_req_query_param(r, "team_id"), *params[2] = {NULL, NULL}, *order, *role;
    PGresult *res;
    dps_jsonbuf_t b;
    char *sql;

    if (dps_require_user(r) != 0)
        return;
    if (team != NULL && team[0] != '\0') {
        if (!r->user->is_admin && ((role = dps_api_team_role(r, team)) == NULL || role[0] == '\0')) {
            if (role != NULL)
                dps_http_error(r, 403, "Team access required");
            return;
        }
        params[0] = team;
    } else if (!r->user->is_admin) {
        params[1] = r->user->id; /* the caller's teams; none => [] */
    }
    if ((order = order_clause(r)) == NULL)
        return;
    if (params[0] != NULL && !dps_is_uuid(params[0])) { /* an admin naming no team */
        dps_http_json(r, 200, json_array());
        return;
    }
    sql = pool_printf(r, "%s ORDER BY %s", SERVICES_SQL(SCOPE_LIST), order);
    if ((res = dps_req_sql(r, NULL, sql, 2, params)) == NULL || write_details(r, &b, res, &list_scope, params, 0) != 0)
        return;
    dps_http_json_buf(r, 200, &b);
}

/* ---- get one -------------------------------------------------------------------------------------- */

void dps_api_services_get(dps_req_t *r)
{
    const char *id;
    PGresult *res;
    dps_jsonbuf_t b;

    if (dps_require_user(r) != 0 || (id = dps_api_uuid_param(r, "id", not_found)) == NULL)
        return;
    if ((res = dps_req_sql(r, NULL, SERVICES_SQL(SCOPE_ONE), 1, &id)) == NULL)
        return;
    if (PQntuples(res) == 0) {
        dps_http_error(r, 404, not_found);
        return;
    }
    if (dps_api_require_team_role(r, PQgetvalue(res, 0, 2), 0) != 0 || write_details(r, &b, res, &one_scope, &id, 1) != 0)
        return;
    dps_http_json_buf(r, 200, &b);
}

/* ---- mutations ------------------------------------------------------------------------------------ */

/* The mutation shape of the service in row 0 of `res` (base columns + FULL_TEAM): its raw dependency
 * rows (none for a new service) and their local health. NULL after answering 503/500. */
static json_t *mutation_json(dps_req_t *r, PGresult *res, int fresh)
{
    const char *id = PQgetvalue(res, 0, 0);
    PGresult *deps = NULL;
    json_t *out, *list;

    if (!fresh && (deps = dps_req_sql(r, NULL,
                                      "SELECT " DEP_COLUMNS " FROM dependencies d WHERE d.service_id = $1 "
                                      "ORDER BY d.name COLLATE \"C\", d.id",
                                      1, &id)) == NULL)
        return NULL;
    list = deps != NULL ? dps_rows_json(deps) : json_array();
    out = dps_row_json(res, 0);
    json_object_set_new(out, "dependencies", list);
    json_object_set_new(out, "health", local_health(list));
    return out;
}

/* POST guard (requireBodyTeamLead): a team_id in the body, led by the caller unless admin. */
static int create_guard(dps_req_t *r)
{
    json_t *team = json_object_get(r->body, "team_id");

    if (falsy(team)) {
        dps_http_error(r, 400, "team_id required in request body");
        return -1;
    }
    return dps_api_require_team_role(r, json_string_value(team), 1);
}

/* INSERT the validated service with its audit row and notifications; the created row or NULL. */
static PGresult *insert_service(dps_req_t *r, const dps_service_input_t *in)
{
    char poll[24];
    const char *params[7] = {in->name, in->team_id,        in->health_endpoint, in->metrics_endpoint,
                             poll,     schema_text(r, in), in->format};
    PGresult *res;

    snprintf(poll, sizeof(poll), "%lld", in->poll_interval_ms);
    if (dps_req_begin(r) != 0 ||
        (res = dps_req_sql(r, "23503",
                           "WITH s AS (INSERT INTO services (name, team_id, health_endpoint, metrics_endpoint, poll_interval_ms, "
                           "schema_config, health_endpoint_format) VALUES ($1, $2, $3, $4, $5, $6::jsonb, COALESCE($7, 'default')) "
                           "RETURNING *) SELECT " SERVICE_COLUMNS ", " FULL_TEAM " FROM s JOIN teams t ON t.id = s.team_id",
                           7, params)) == NULL)
        return NULL;
    if (PQresultStatus(res) != PGRES_TUPLES_OK) { /* the team does not exist (any more) */
        dps_api_error_field(r, 400, "Team not found", "team_id");
        return NULL;
    }
    dps_audit(r, "service.created", "service", PQgetvalue(res, 0, 0),
              json_pack("{s:s,s:s}", "name", PQgetvalue(res, 0, 1), "teamId", PQgetvalue(res, 0, 2)));
    return notify_change(r, PQgetvalue(res, 0, 0)) == 0 && dps_req_commit(r) == 0 ? res : NULL;
}

void dps_api_services_create(dps_req_t *r)
{
    dps_service_input_t *in;
    dps_ssrf_allowlist_t *al;
    PGresult *res;
    json_t *out;

    if (dps_require_user(r) != 0 || create_guard(r) != 0 || dps_api_load_allowlist(r, &al) != 0)
        return;
    in = new_input(r);
    if (dps_service_validate_create(r->body, al, in) != 0) {
        answer_invalid(r, in);
        return;
    }
    if (!dps_is_uuid(in->team_id)) {
        dps_api_error_field(r, 400, "Team not found", "team_id");
        return;
    }
    if ((res = insert_service(r, in)) == NULL || (out = mutation_json(r, res, 1)) == NULL)
        return;
    dps_http_json(r, 201, out);
}

/* The service :id locked for the transaction, after the lead guard; columns name, team_id, format.
 * NULL after answering 404/403 (or 503/500). */
static PGresult *lock_service(dps_req_t *r, const char *id)
{
    PGresult *res;

    if (dps_req_begin(r) != 0 ||
        (res = dps_req_sql(r, NULL, "SELECT name, team_id, health_endpoint_format FROM services WHERE id = $1 FOR UPDATE", 1,
                           &id)) == NULL)
        return NULL;
    if (PQntuples(res) == 0) {
        dps_http_error(r, 404, not_found);
        return NULL;
    }
    return dps_api_require_team_role(r, PQgetvalue(res, 0, 1), 1) == 0 ? res : NULL;
}

/* A move to another team: it must exist (400), and a lead must lead it too (open-questions.md C). */
static int check_move(dps_req_t *r, const dps_service_input_t *in, const char *current)
{
    PGresult *res;

    if (!in->has_team_id || strcasecmp(in->team_id, current) == 0)
        return 0;
    if (dps_is_uuid(in->team_id)) {
        if ((res = dps_req_sql(r, NULL, "SELECT 1 FROM teams WHERE id = $1", 1, &in->team_id)) == NULL)
            return -1;
        if (PQntuples(res) > 0)
            return dps_api_require_team_role(r, in->team_id, 1);
    }
    dps_api_error_field(r, 400, "Team not found", "team_id");
    return -1;
}

/* UPDATE with the members the body names (absent ones keep their value); the updated row or NULL. */
static PGresult *update_service(dps_req_t *r, const char *id, const dps_service_input_t *in)
{
    char poll[24];
    const char *params[11] = {id,
                              in->has_name ? in->name : NULL,
                              in->has_team_id ? in->team_id : NULL,
                              in->has_health_endpoint ? in->health_endpoint : NULL,
                              in->has_metrics_endpoint ? "t" : "f",
                              in->metrics_endpoint,
                              in->has_poll_interval ? poll : NULL,
                              in->has_schema_config ? "t" : "f",
                              schema_text(r, in),
                              in->has_is_active ? (in->is_active ? "t" : "f") : NULL,
                              in->has_format ? in->format : NULL};
    PGresult *res;

    snprintf(poll, sizeof(poll), "%lld", in->poll_interval_ms);
    if ((res = dps_req_sql(r, "23503",
                           "WITH s AS (UPDATE services SET name = COALESCE($2, name), team_id = COALESCE($3::uuid, team_id), "
                           "health_endpoint = COALESCE($4, health_endpoint), "
                           "metrics_endpoint = CASE WHEN $5::boolean THEN $6 ELSE metrics_endpoint END, "
                           "poll_interval_ms = COALESCE($7::integer, poll_interval_ms), "
                           "schema_config = CASE WHEN $8::boolean THEN $9::jsonb ELSE schema_config END, "
                           "is_active = COALESCE($10::boolean, is_active), "
                           "health_endpoint_format = COALESCE($11, health_endpoint_format), updated_at = now() "
                           "WHERE id = $1 RETURNING *) SELECT " SERVICE_COLUMNS ", " FULL_TEAM
                           " FROM s JOIN teams t ON t.id = s.team_id",
                           11, params)) == NULL)
        return NULL;
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        dps_api_error_field(r, 400, "Team not found", "team_id");
        return NULL;
    }
    return res;
}

void dps_api_services_update(dps_req_t *r)
{
    const char *id;
    dps_service_input_t *in;
    dps_ssrf_allowlist_t *al;
    PGresult *old, *res;
    json_t *out;

    if (dps_require_user(r) != 0 || (id = dps_api_uuid_param(r, "id", not_found)) == NULL || dps_api_load_allowlist(r, &al) != 0 ||
        (old = lock_service(r, id)) == NULL)
        return;
    in = new_input(r);
    if (dps_service_validate_update(r->body, al, PQgetvalue(old, 0, 2), in) != 0) {
        answer_invalid(r, in);
        return;
    }
    if (check_move(r, in, PQgetvalue(old, 0, 1)) != 0 || (res = update_service(r, id, in)) == NULL)
        return;
    dps_audit(r, "service.updated", "service", id, json_pack("{s:s}", "name", PQgetvalue(old, 0, 0)));
    if (notify_change(r, id) != 0 || (out = mutation_json(r, res, 0)) == NULL)
        return;
    if (dps_req_commit(r) != 0) {
        json_decref(out);
        return;
    }
    dps_http_json(r, 200, out);
}

void dps_api_services_delete(dps_req_t *r)
{
    const char *id;
    PGresult *old;

    if (dps_require_user(r) != 0 || (id = dps_api_uuid_param(r, "id", not_found)) == NULL || (old = lock_service(r, id)) == NULL)
        return;
    if (dps_req_sql(r, NULL, "DELETE FROM services WHERE id = $1", 1, &id) == NULL)
        return;
    dps_audit(r, "service.deleted", "service", id,
              json_pack("{s:s,s:s}", "name", PQgetvalue(old, 0, 0), "teamId", PQgetvalue(old, 0, 1)));
    if (notify_change(r, id) == 0 && dps_req_commit(r) == 0)
        dps_http_json(r, 204, NULL);
}
