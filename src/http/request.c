/* What handlers ask of a request: cookies, query and path parameters, SQL with cleanup, rows as JSON. */
#include "depsera/db.h"
#include "depsera/http.h"
#include "depsera/log.h"
#include "depsera/util.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int hexval(int c)
{
    return isdigit(c) ? c - '0' : (tolower(c) >= 'a' && tolower(c) <= 'f') ? tolower(c) - 'a' + 10 : -1;
}

/* Percent-decode (and '+' as space when `plus`) into the pool. */
static char *decode(h2o_mem_pool_t *pool, const char *s, size_t len, int plus)
{
    char *out = h2o_mem_alloc_pool(pool, len + 1), *o = out;

    for (size_t i = 0; i < len; i++) {
        int hi, lo;
        if (s[i] == '%' && i + 2 < len && (hi = hexval((unsigned char)s[i + 1])) >= 0 &&
            (lo = hexval((unsigned char)s[i + 2])) >= 0) {
            *o++ = (char)(hi << 4 | lo);
            i += 2;
        } else {
            *o++ = plus && s[i] == '+' ? ' ' : s[i];
        }
    }
    *o = '\0';
    return out;
}

const char *dps_req_header(dps_req_t *r, const char *name)
{
    ssize_t i = h2o_find_header_by_str(&r->h2o->headers, name, strlen(name), -1);
    if (i < 0)
        return NULL;
    return h2o_strdup(&r->h2o->pool, r->h2o->headers.entries[i].value.base, r->h2o->headers.entries[i].value.len).base;
}

const char *dps_req_cookie(dps_req_t *r, const char *name)
{
    size_t nlen = strlen(name);

    /* several Cookie headers may be present (HTTP/2 splits them) */
    for (ssize_t i = -1; (i = h2o_find_header(&r->h2o->headers, H2O_TOKEN_COOKIE, i)) >= 0;) {
        const char *p = r->h2o->headers.entries[i].value.base, *end = p + r->h2o->headers.entries[i].value.len;
        while (p < end) {
            const char *semi = memchr(p, ';', (size_t)(end - p)), *eq;
            const char *item_end = semi != NULL ? semi : end;
            while (p < item_end && *p == ' ')
                p++;
            eq = memchr(p, '=', (size_t)(item_end - p));
            if (eq != NULL && (size_t)(eq - p) == nlen && memcmp(p, name, nlen) == 0)
                return h2o_strdup(&r->h2o->pool, eq + 1, (size_t)(item_end - eq - 1)).base;
            p = item_end + 1;
        }
    }
    return NULL;
}

const char *dps_req_query_param(dps_req_t *r, const char *name)
{
    h2o_req_t *req = r->h2o;
    size_t nlen = strlen(name);
    const char *p, *end;

    if (req->query_at == SIZE_MAX)
        return NULL;
    p = req->path.base + req->query_at + 1;
    end = req->path.base + req->path.len;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p)), *item_end = amp != NULL ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(item_end - p)), *key_end = eq != NULL ? eq : item_end;
        char *key = decode(&req->pool, p, (size_t)(key_end - p), 1);
        if (strlen(key) == nlen && memcmp(key, name, nlen) == 0)
            return eq != NULL ? decode(&req->pool, eq + 1, (size_t)(item_end - eq - 1), 1) : "";
        p = item_end + 1;
    }
    return NULL;
}

const char *dps_req_param(dps_req_t *r, const char *name)
{
    size_t nlen = strlen(name);

    for (size_t i = 0; i < r->nparams; i++)
        if (r->params[i].name_len == nlen && memcmp(r->params[i].name, name, nlen) == 0)
            return decode(&r->h2o->pool, r->params[i].value, r->params[i].len, 0);
    return NULL;
}

void dps_req_set_cookie(dps_req_t *r, const char *name, const char *value, const char *attrs)
{
    size_t len = strlen(name) + strlen(value) + strlen(attrs) + 4;
    char *v = h2o_mem_alloc_pool(&r->h2o->pool, len);

    snprintf(v, len, "%s=%s; %s", name, value, attrs);
    h2o_add_header(&r->h2o->pool, &r->h2o->res.headers, H2O_TOKEN_SET_COOKIE, NULL, v, strlen(v));
}

/* Results and open transactions are released with the request, whatever path the handler took. */
static void on_result_dispose(void *p)
{
    PQclear(*(PGresult **)p);
}

static void track(dps_req_t *r, PGresult *res)
{
    PGresult **slot = h2o_mem_alloc_shared(&r->h2o->pool, sizeof(*slot), on_result_dispose);
    *slot = res;
    h2o_mem_link_shared(&r->h2o->pool, slot);
}

static int state_allowed(const char *allow, const char *state)
{
    size_t n;

    if (allow == NULL || state == NULL)
        return 0;
    n = strlen(state);
    for (const char *p = allow; (p = strstr(p, state)) != NULL; p += n)
        if ((p == allow || p[-1] == ',') && (p[n] == '\0' || p[n] == ','))
            return 1;
    return 0;
}

static void answer_db_error(dps_req_t *r, PGresult *res)
{
    dps_db_t *db = dps_worker_db(r->worker);
    const char *msg = res != NULL ? PQresultErrorMessage(res) : "no connection";

    r->responded = 1;
    if (dps_db_check(db) || res == NULL) {
        dps_http_set_header(r, "retry-after", "5"); /* OTLP clients wait that long before retrying */
        dps_http_json(r, 503, json_pack("{s:s}", "error", "Database unavailable"));
        return;
    }
    /* the statement failed on a good connection: a bug or a constraint we did not expect; log the
     * server's message, never send it */
    DPS_LOG(DPS_LOG_ERROR, "query failed", DPS_F_STR("error", msg),
            DPS_F_STR("sqlstate", PQresultErrorField(res, PG_DIAG_SQLSTATE)));
    if (PQtransactionStatus(dps_db_conn(db)) == PQTRANS_INERROR)
        PQclear(PQexec(dps_db_conn(db), "ROLLBACK"));
    dps_http_error(r, 500, "Internal server error");
}

PGresult *dps_req_sql(dps_req_t *r, const char *allow, const char *sql, int n, const char *const *params)
{
    PGconn *conn = dps_db_conn(dps_worker_db(r->worker));
    PGresult *res;
    ExecStatusType st;

    if (conn == NULL) {
        answer_db_error(r, NULL);
        return NULL;
    }
    res = PQexecParams(conn, sql, n, NULL, params, NULL, NULL, 0);
    track(r, res);
    st = PQresultStatus(res);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
        return res;
    if (state_allowed(allow, PQresultErrorField(res, PG_DIAG_SQLSTATE)))
        return res;
    answer_db_error(r, res);
    return NULL;
}

/* A transaction the handler leaves open is rolled back by the worker as soon as the handler returns
 * (end_transaction in worker.c), before any other request can use the connection. */
int dps_req_begin(dps_req_t *r)
{
    return dps_req_sql(r, NULL, "BEGIN", 0, NULL) == NULL ? -1 : 0;
}

int dps_req_commit(dps_req_t *r)
{
    return dps_req_sql(r, NULL, "COMMIT", 0, NULL) == NULL ? -1 : 0;
}

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian), without timegm's locale/TZ games. */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

int dps_pg_timestamp_iso(const char *pg, char *out, size_t cap)
{
    int y, mo, d, h, mi, s, n = 0, oh = 0, om = 0;
    double frac = 0;
    const char *p;
    int64_t ms;

    if (sscanf(pg, "%4d-%2d-%2d %2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &s, &n) != 6)
        return -1;
    p = pg + n;
    if (*p == '.') {
        char *end;
        frac = strtod(p, &end);
        p = end;
    }
    if (*p == '+' || *p == '-') {
        int sign = *p == '-' ? -1 : 1;
        if (sscanf(p + 1, "%2d", &oh) != 1)
            return -1;
        if (strlen(p) >= 4 && p[3] == ':' && sscanf(p + 4, "%2d", &om) != 1)
            return -1;
        oh *= sign, om *= sign;
    }
    ms = ((days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 + s) - (oh * 3600 + om * 60)) * 1000 +
         (int64_t)(frac * 1000 + 1e-9);
    dps_time_iso8601(ms, out, cap);
    return 0;
}

static json_t *value_json(PGresult *res, int row, int col)
{
    const char *v = PQgetvalue(res, row, col);
    char iso[32];

    if (PQgetisnull(res, row, col))
        return json_null();
    switch (PQftype(res, col)) {
    case 16: /* bool */
        return json_boolean(v[0] == 't');
    case 20: /* int8 */
    case 21: /* int2 */
    case 23: /* int4 */
        return json_integer(strtoll(v, NULL, 10));
    case 700:  /* float4 */
    case 701:  /* float8 */
    case 1700: /* numeric */
        return json_real(strtod(v, NULL));
    case 114:  /* json */
    case 3802: /* jsonb */
        return json_loads(v, JSON_DECODE_ANY, NULL);
    case 1184: /* timestamptz */
        if (dps_pg_timestamp_iso(v, iso, sizeof(iso)) == 0)
            return json_string(iso);
        break;
    }
    return json_string(v);
}

json_t *dps_row_json(PGresult *res, int row)
{
    json_t *obj = json_object();

    for (int c = 0; c < PQnfields(res); c++)
        json_object_set_new(obj, PQfname(res, c), value_json(res, row, c));
    return obj;
}

json_t *dps_rows_json(PGresult *res)
{
    json_t *arr = json_array();

    for (int i = 0; i < PQntuples(res); i++)
        json_array_append_new(arr, dps_row_json(res, i));
    return arr;
}
