/* POST /v1/traces and /v1/metrics (otlp-ingestion.md §0-§2): authenticate, decode, process every
 * resource entry in one transaction (each in a savepoint), answer like the request was encoded, and
 * only after COMMIT. */
#include "depsera/otlp_ingest.h"
#include "depsera/apikey.h"
#include "depsera/config.h"
#include "depsera/db.h"
#include "depsera/http.h"
#include "depsera/limit_req.h"
#include "depsera/log.h"
#include "depsera/otlp_encode.h"
#include "depsera/usage.h"
#include "depsera/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Warnings beyond this many are counted, not listed: a batch of 8,192 spans without a target must
 * not make a megabyte of errorMessage (and poll_warnings). */
#define MAX_WARNINGS 50
/* Attempts of a request's transaction when PostgreSQL aborts it for a deadlock or a serialization
 * failure, or a span partition had to be created first. */
#define MAX_ATTEMPTS 3
/* The decoded form of a request may take this many times its decompressed size. */
#define ARENA_FACTOR 8

typedef enum { SIG_TRACES, SIG_METRICS } signal_t;

static const char *const entry_names[] = {"resourceSpans", "resourceMetrics"};

/* ---- helpers shared with traces.c and metrics.c ------------------------------------------------ */

void dps_ingest_warn(dps_ingest_t *in, const char *text)
{
    if (++in->nwarnings > MAX_WARNINGS)
        return;
    dps_jsonbuf_raw(&in->warnings, in->nwarnings > 1 ? "," : "[", 1);
    dps_jsonbuf_string(&in->warnings, text, strlen(text));
    if (in->nwarnings > 1)
        dps_jsonbuf_lit(&in->joined, "; ");
    dps_jsonbuf_raw(&in->joined, text, strlen(text));
}

int dps_ingest_fail(dps_ingest_t *in, const char *message)
{
    in->entry_error = message;
    return -1;
}

static PGresult *checked(dps_ingest_t *in, PGresult *res)
{
    ExecStatusType st = PQresultStatus(res);

    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
        return res;
    PQclear(in->failed);
    in->failed = res;
    return NULL;
}

PGresult *dps_ingest_sql(dps_ingest_t *in, const char *sql, int n, const char *const *params)
{
    return checked(in, PQexecParams(in->conn, sql, n, NULL, params, NULL, NULL, 0));
}

PGresult *dps_ingest_stmt(dps_ingest_t *in, dps_stmt_t *st, const char *const *params)
{
    return checked(in, dps_stmt_exec(in->db, st, params));
}

const char *dps_ingest_warnings_so_far(dps_ingest_t *in)
{
    char *closed;

    if (in->nwarnings == 0 || in->warnings.oom || (closed = dps_arena_alloc(in->arena, in->warnings.len + 2)) == NULL)
        return NULL;
    memcpy(closed, in->warnings.data, in->warnings.len);
    memcpy(closed + in->warnings.len, "]", 2);
    return closed;
}

struct dps_cache_later {
    dps_ttlcache_t *cache;
    void *key, *value;
    size_t key_len, len;
};

void dps_ingest_cache_later(dps_ingest_t *in, dps_ttlcache_t *c, const void *key, size_t key_len, const void *value, size_t len)
{
    struct dps_cache_later *e;

    if (in->nlater == in->caplater) {
        size_t cap = in->caplater ? in->caplater * 2 : 16;
        struct dps_cache_later *v = dps_arena_alloc(in->arena, cap * sizeof(*v));
        if (v == NULL)
            return; /* only a cache */
        if (in->nlater > 0)
            memcpy(v, in->later, in->nlater * sizeof(*v));
        in->later = v, in->caplater = cap;
    }
    e = &in->later[in->nlater];
    if ((e->key = dps_arena_alloc(in->arena, key_len + 1)) == NULL || (e->value = dps_arena_alloc(in->arena, len + 1)) == NULL)
        return;
    memcpy(e->key, key, key_len);
    memcpy(e->value, value, len);
    e->cache = c, e->key_len = key_len, e->len = len;
    in->nlater++;
}

static void caches_commit(dps_ingest_t *in)
{
    int64_t now = dps_mono_ms();

    for (size_t i = 0; i < in->nlater; i++)
        (void)dps_ttlcache_put(in->later[i].cache, in->later[i].key, in->later[i].key_len, in->later[i].value, in->later[i].len,
                               now);
    in->nlater = 0;
}

/* ---- responses -------------------------------------------------------------------------------------- */

/* A google.rpc.Status (code, message) as protobuf: what OTLP/HTTP clients read from a 4xx/5xx body
 * of a protobuf request. Fields 1 (int32) and 2 (string), written by hand: two fields do not
 * warrant vendoring status.proto. */
static char *rpc_status(int code, const char *message, size_t *len)
{
    size_t n = strlen(message), at = 0;
    char *out = malloc(n + 16);

    if (out == NULL)
        return NULL;
    out[at++] = 0x08, out[at++] = (char)code;
    out[at++] = 0x12;
    for (size_t v = n;; v >>= 7) {
        out[at++] = (char)((v & 0x7f) | (v >= 0x80 ? 0x80 : 0));
        if (v < 0x80)
            break;
    }
    memcpy(out + at, message, n);
    *len = at + n;
    return out;
}

/* An error of the request as a whole, in the request's encoding: JSON {"error": ...} (or the
 * partialSuccess shape for 400/413, §2.2 and open-questions Q-BODY), or a google.rpc.Status. */
static void answer_error(dps_req_t *r, signal_t sig, dps_otlp_format_t format, int status, const char *message)
{
    if (format == DPS_OTLP_PROTOBUF) {
        size_t len;
        /* gRPC codes: 3 INVALID_ARGUMENT, 8 RESOURCE_EXHAUSTED, 13 INTERNAL, 14 UNAVAILABLE */
        char *body = rpc_status(status == 503 ? 14 : status == 413 || status == 429 ? 8 : status >= 500 ? 13 : 3, message, &len);
        if (body != NULL) {
            dps_http_send_owned(r, status, "application/x-protobuf", body, len);
            return;
        }
    } else if (status == 400 || status == 413) {
        dps_jsonbuf_t b;
        dps_jsonbuf_init(&b, 256);
        dps_otlp_response_json(&b, sig == SIG_TRACES ? DPS_OTLP_TRACES : DPS_OTLP_METRICS, -1, message);
        dps_http_json_buf(r, status, &b);
        return;
    }
    dps_http_error(r, status, message);
}

static void answer_unavailable(dps_req_t *r, signal_t sig, dps_otlp_format_t format)
{
    dps_http_set_header(r, "retry-after", "5");
    answer_error(r, sig, format, 503, "Database unavailable");
}

static void answer_ok(dps_req_t *r, signal_t sig, dps_otlp_format_t format, dps_arena_t *a, long long rejected, const char *msg)
{
    dps_otlp_signal_t s = sig == SIG_TRACES ? DPS_OTLP_TRACES : DPS_OTLP_METRICS;

    if (format == DPS_OTLP_PROTOBUF) {
        const uint8_t *out;
        size_t len;
        char *copy;
        if (dps_otlp_response_protobuf(a, s, rejected, msg, &out, &len) != 0 || (copy = malloc(len ? len : 1)) == NULL) {
            answer_error(r, sig, format, 500, "Internal server error");
            return;
        }
        memcpy(copy, out, len);
        dps_http_send_owned(r, 200, "application/x-protobuf", copy, len);
    } else {
        dps_jsonbuf_t b;
        dps_jsonbuf_init(&b, 256);
        dps_otlp_response_json(&b, s, rejected, msg);
        dps_http_json_buf(r, 200, &b);
    }
}

/* ---- the transaction ---------------------------------------------------------------------------- */

typedef enum { RUN_DONE, RUN_RETRY, RUN_NEED_PARTITION, RUN_UNAVAILABLE } run_result_t;

/* What a failed statement means for the whole request. PostgreSQL short of resources, shutting
 * down, or cancelling on a timeout is an outage the client should retry (503), not a bad entry. */
static run_result_t classify(dps_ingest_t *in, const PGresult *failed)
{
    const char *state = failed != NULL ? PQresultErrorField(failed, PG_DIAG_SQLSTATE) : NULL;

    if (PQstatus(in->conn) != CONNECTION_OK)
        return RUN_UNAVAILABLE;
    if (in->need_partition)
        return RUN_NEED_PARTITION;
    if (state == NULL)
        return RUN_DONE;
    /* deadlock, serialization failure, a prepared statement a pooler lost (dps_stmt_exec then
     * stops preparing) */
    if (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0 || strcmp(state, "26000") == 0)
        return RUN_RETRY;
    if (strncmp(state, "53", 2) == 0 || strncmp(state, "57", 2) == 0 || strncmp(state, "08", 2) == 0 || strcmp(state, "55P03") == 0)
        return RUN_UNAVAILABLE;
    return RUN_DONE;
}

static int exec_simple(PGconn *conn, const char *sql)
{
    PGresult *res = PQexec(conn, sql);
    int ok = PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK;

    PQclear(res);
    return ok ? 0 : -1;
}

typedef struct {
    signal_t sig;
    const void *request; /* dps_otlp_traces_t or dps_otlp_metrics_t */
    long long rejected;
    const char *message; /* joined warnings */
} outcome_t;

/* The rejected entry's reason, as a warning (§2.4e). A database error is logged, never sent: its
 * text may describe the schema (open-questions.md C); the client gets its SQLSTATE. */
static void entry_rejected(dps_ingest_t *in)
{
    const char *msg = in->entry_error;
    char text[96];
    char *copy;

    if (msg == NULL && in->failed != NULL) {
        const char *state = PQresultErrorField(in->failed, PG_DIAG_SQLSTATE);
        DPS_LOG(DPS_LOG_WARN, "OTLP entry rejected", DPS_F_STR("error", PQresultErrorMessage(in->failed)),
                DPS_F_STR("sqlstate", state));
        snprintf(text, sizeof(text), "Entry could not be stored (database error %s)", state != NULL ? state : "unknown");
        msg = text;
    }
    if (msg == NULL)
        msg = "Internal error while processing the entry";
    copy = dps_arena_strndup(in->arena, msg, strlen(msg));
    dps_ingest_warn(in, copy != NULL ? copy : "Entry could not be stored");
}

/* The items of an entry as OTLP counts rejections (§0): spans, or metric data points. */
static long long entry_items(signal_t sig, const void *entry)
{
    long long n = 0;

    if (sig == SIG_TRACES) {
        const Opentelemetry__Proto__Trace__V1__ResourceSpans *rs = entry;
        for (size_t i = 0; i < rs->n_scope_spans; i++)
            n += (long long)rs->scope_spans[i]->n_spans;
        return n;
    }
    const Opentelemetry__Proto__Metrics__V1__ResourceMetrics *rm = entry;
    for (size_t i = 0; i < rm->n_scope_metrics; i++) {
        for (size_t j = 0; j < rm->scope_metrics[i]->n_metrics; j++) {
            const Opentelemetry__Proto__Metrics__V1__Metric *m = rm->scope_metrics[i]->metrics[j];
            switch (m->data_case) {
            case OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_GAUGE:
                n += m->gauge != NULL ? (long long)m->gauge->n_data_points : 0;
                break;
            case OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_SUM:
                n += m->sum != NULL ? (long long)m->sum->n_data_points : 0;
                break;
            case OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_HISTOGRAM:
                n += m->histogram != NULL ? (long long)m->histogram->n_data_points : 0;
                break;
            case OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_EXPONENTIAL_HISTOGRAM:
                n += m->exponential_histogram != NULL ? (long long)m->exponential_histogram->n_data_points : 0;
                break;
            case OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_SUMMARY:
                n += m->summary != NULL ? (long long)m->summary->n_data_points : 0;
                break;
            default:
                break;
            }
        }
    }
    return n;
}

/* One entry, in a savepoint when the request has others (`savepoint`): RUN_DONE whether accepted or
 * rejected (*rejected: its items when it was rejected, or skipped for want of a service name: nothing
 * of it is kept). Without a savepoint a rejected entry rolls the transaction back (*aborted). */
static run_result_t run_entry(dps_ingest_t *in, signal_t sig, const void *entry,
                              const Opentelemetry__Proto__Resource__V1__Resource *res, int savepoint, long long *rejected,
                              int *aborted)
{
    const char *name = dps_ingest_service_name(in, res);
    dps_ingest_service_t svc;
    char skip[96];
    int rc;
    run_result_t why;

    *rejected = 0;
    if (name == NULL) {
        snprintf(skip, sizeof(skip), "Skipping %s entry: missing service.name resource attribute", entry_names[sig]);
        dps_ingest_warn(in, skip);
        *rejected = entry_items(sig, entry);
        return RUN_DONE;
    }
    size_t changes_mark = in->changes.n, later_mark = in->nlater;

    if (savepoint && exec_simple(in->conn, "SAVEPOINT entry") != 0)
        return classify(in, NULL) == RUN_UNAVAILABLE ? RUN_UNAVAILABLE : RUN_RETRY;
    in->entry_error = NULL;
    rc = dps_ingest_resolve_service(in, name, &svc);
    if (rc == 0)
        rc = sig == SIG_TRACES ? dps_ingest_trace_entry(in, &svc, entry) : dps_ingest_metric_entry(in, &svc, entry);
    if (rc == 0)
        rc = dps_ingest_push_result(in, &svc);
    if (rc == 0)
        return RUN_DONE;
    dps_ingest_service_cache_clear();
    dps_ingest_trace_cache_clear();
    if ((why = classify(in, in->failed)) != RUN_DONE)
        return why;
    if (exec_simple(in->conn, savepoint ? "ROLLBACK TO SAVEPOINT entry" : "ROLLBACK") != 0)
        return classify(in, NULL) == RUN_UNAVAILABLE ? RUN_UNAVAILABLE : RUN_RETRY;
    *aborted = !savepoint;
    /* what the rolled-back entry queued goes with it */
    dps_status_changes_truncate(&in->changes, changes_mark);
    in->nlater = later_mark;
    entry_rejected(in);
    PQclear(in->failed);
    in->failed = NULL;
    *rejected = entry_items(sig, entry);
    return RUN_DONE;
}

static run_result_t run_once(dps_ingest_t *in, outcome_t *out)
{
    size_t n;
    void *const *entries;
    run_result_t why;

    if (out->sig == SIG_TRACES) {
        const dps_otlp_traces_t *t = out->request;
        n = t->n_resource_spans, entries = (void *const *)t->resource_spans;
    } else {
        const dps_otlp_metrics_t *m = out->request;
        n = m->n_resource_metrics, entries = (void *const *)m->resource_metrics;
    }
    int aborted = 0;

    out->rejected = 0;
    if (exec_simple(in->conn, "BEGIN") != 0)
        return RUN_UNAVAILABLE;
    for (size_t i = 0; i < n; i++) {
        const Opentelemetry__Proto__Resource__V1__Resource *res =
            out->sig == SIG_TRACES ? ((Opentelemetry__Proto__Trace__V1__ResourceSpans *)entries[i])->resource
                                   : ((Opentelemetry__Proto__Metrics__V1__ResourceMetrics *)entries[i])->resource;
        long long rejected;
        /* a savepoint costs a round trip and a subtransaction: only when other entries must survive */
        if ((why = run_entry(in, out->sig, entries[i], res, n > 1, &rejected, &aborted)) != RUN_DONE)
            return why;
        out->rejected += rejected;
    }
    if (aborted)
        return RUN_DONE; /* the only entry was rejected: nothing to commit */
    if (dps_upsert_write_changes(in->db, &in->changes, &in->failed) != 0) {
        why = classify(in, in->failed);
        DPS_LOG(DPS_LOG_ERROR, "status changes not written",
                DPS_F_STR("error", in->failed != NULL ? PQresultErrorMessage(in->failed) : "out of memory"));
        return why == RUN_DONE ? RUN_UNAVAILABLE : why;
    }
    if (exec_simple(in->conn, "COMMIT") != 0)
        return classify(in, NULL) == RUN_UNAVAILABLE ? RUN_UNAVAILABLE : RUN_RETRY;
    caches_commit(in);
    return RUN_DONE;
}

/* Creates the span partition of today (UTC) in its own transaction (the function's contract). */
static int ensure_partition(PGconn *conn)
{
    return exec_simple(conn, "SELECT depsera_ensure_span_partition((now() AT TIME ZONE 'UTC')::date)");
}

static void reset_state(dps_ingest_t *in)
{
    if (PQtransactionStatus(in->conn) != PQTRANS_IDLE)
        exec_simple(in->conn, "ROLLBACK");
    dps_jsonbuf_free(&in->warnings);
    dps_jsonbuf_init(&in->warnings, 0);
    dps_jsonbuf_free(&in->joined);
    dps_jsonbuf_init(&in->joined, 0);
    in->nwarnings = 0;
    dps_status_changes_free(&in->changes);
    PQclear(in->failed);
    in->failed = NULL;
    in->entry_error = NULL;
    in->need_partition = 0;
    in->nlater = 0;
}

/* The errorMessage: the warnings joined with "; " (§2.6), plus how many were not listed. */
static const char *joined_warnings(dps_ingest_t *in)
{
    char more[64];
    char *out;

    if (in->nwarnings > MAX_WARNINGS) {
        snprintf(more, sizeof(more), "; ... and %zu more", in->nwarnings - MAX_WARNINGS);
        dps_jsonbuf_raw(&in->joined, more, strlen(more));
    }
    if (in->joined.oom || in->joined.len == 0 || (out = dps_arena_strndup(in->arena, in->joined.data, in->joined.len)) == NULL)
        return "";
    return out;
}

static int process(dps_req_t *r, dps_ingest_t *in, outcome_t *out)
{
    dps_db_t *db = dps_worker_db(r->worker);
    run_result_t why = RUN_RETRY;

    for (int attempt = 0; attempt < MAX_ATTEMPTS && why != RUN_DONE; attempt++) {
        if ((in->conn = dps_db_conn(db)) == NULL)
            return -1;
        reset_state(in);
        why = run_once(in, out);
        if (why == RUN_NEED_PARTITION) {
            reset_state(in);
            if (ensure_partition(in->conn) != 0)
                return -1;
        } else if (why == RUN_UNAVAILABLE) {
            dps_db_check(db);
            return -1;
        }
    }
    if (why != RUN_DONE)
        return -1;
    out->message = joined_warnings(in);
    return 0;
}

/* ---- the handlers ------------------------------------------------------------------------------ */

static const char *header(dps_req_t *r, const h2o_token_t *token, size_t *len)
{
    ssize_t i = h2o_find_header(&r->h2o->headers, token, -1);

    if (i < 0) {
        *len = 0;
        return NULL;
    }
    *len = r->h2o->headers.entries[i].value.len;
    return r->h2o->headers.entries[i].value.base;
}

static dps_otlp_status_t decode(dps_arena_t *a, signal_t sig, const dps_otlp_body_t *body, const void **out, const char **err)
{
    if (sig == SIG_TRACES)
        return dps_otlp_decode_traces(a, body, (dps_otlp_traces_t **)out, err);
    return dps_otlp_decode_metrics(a, body, (dps_otlp_metrics_t **)out, err);
}

/* Steps 6-9 of the chain (api-keys-and-rate-limits.md §3-§6): the per-IP limiter of the endpoint,
 * authentication, the key's token bucket, usage. 0 to go on, -1 when answered. */
static int admit(dps_req_t *r, signal_t sig, dps_otlp_format_t format, dps_apikey_t *key)
{
    dps_limit_decision_t d;
    char msg[160];

    d = dps_limit_request(r, sig == SIG_TRACES ? DPS_LIMIT_OTLP_TRACES : DPS_LIMIT_OTLP_METRICS, NULL);
    if (!d.allowed) {
        answer_error(r, sig, format, 429, "Too many requests to OTLP endpoint, please try again later");
        return -1;
    }
    if (dps_apikey_authenticate(r, key) != 0)
        return -1;
    d = dps_limit_request(r, DPS_LIMIT_KEY, key);
    /* every authenticated request is a push, a refused one is also a rejection (§0) */
    dps_usage_count(key->id, dps_now_ms(), !d.allowed);
    if (d.allowed)
        return 0;
    snprintf(msg, sizeof(msg), "Rate limit exceeded for API key %s. Limit: %lld req/min. Retry-After: %llds.", key->prefix,
             (long long)d.limit, (long long)d.retry_after_s);
    if (format == DPS_OTLP_PROTOBUF) {
        answer_error(r, sig, format, 429, msg);
    } else { /* §5: the partialSuccess shape, nothing of the batch counted as rejected (it is to be retried) */
        dps_jsonbuf_t b;
        dps_jsonbuf_init(&b, 256);
        dps_otlp_response_json(&b, sig == SIG_TRACES ? DPS_OTLP_TRACES : DPS_OTLP_METRICS, 0, msg);
        dps_http_json_buf(r, 429, &b);
    }
    return -1;
}

static void ingest(dps_req_t *r, signal_t sig)
{
    const dps_config_t *cfg = dps_worker_config(r->worker);
    dps_otlp_body_t body = {0};
    dps_apikey_t key;
    dps_arena_t arena;
    dps_ingest_t in;
    outcome_t out = {sig, NULL, 0, NULL};
    const char *value, *err = NULL;
    size_t len;

    value = header(r, H2O_TOKEN_CONTENT_TYPE, &len);
    body.format = value != NULL ? dps_otlp_content_type(value, len) : DPS_OTLP_FORMAT_UNSUPPORTED;
    if (admit(r, sig, body.format, &key) != 0)
        return;
    if (body.format == DPS_OTLP_FORMAT_UNSUPPORTED) {
        dps_http_error(r, 415, "Unsupported Content-Type: send application/x-protobuf or application/json");
        return;
    }
    value = header(r, H2O_TOKEN_CONTENT_ENCODING, &len);
    if ((body.encoding = dps_otlp_content_encoding(value, len)) == DPS_OTLP_ENCODING_UNSUPPORTED) {
        answer_error(r, sig, body.format, 415, "Unsupported Content-Encoding: send gzip or identity");
        return;
    }
    body.data = r->h2o->entity.base != NULL ? r->h2o->entity.base : "";
    body.len = r->h2o->entity.len;
    body.limit = (size_t)cfg->otlp_max_body_bytes;
    dps_arena_init(&arena, body.limit * ARENA_FACTOR + (1 << 20));
    switch (decode(&arena, sig, &body, &out.request, &err)) {
    case DPS_OTLP_OK:
        break;
    case DPS_OTLP_TOO_LARGE:
        answer_error(r, sig, body.format, 413, err != NULL ? err : "Request body too large");
        dps_arena_free(&arena);
        return;
    case DPS_OTLP_UNDECODABLE:
        answer_error(r, sig, body.format, 400, err != NULL ? err : "Invalid OTLP payload");
        dps_arena_free(&arena);
        return;
    default:
        answer_error(r, sig, body.format, 500, "Internal server error");
        dps_arena_free(&arena);
        return;
    }
    memset(&in, 0, sizeof(in));
    in.db = dps_worker_db(r->worker);
    in.arena = &arena;
    in.team_id = key.team_id;
    dps_jsonbuf_init(&in.warnings, 0);
    dps_jsonbuf_init(&in.joined, 0);
    if (process(r, &in, &out) != 0)
        answer_unavailable(r, sig, body.format);
    else
        answer_ok(r, sig, body.format, &arena, out.rejected, out.message);
    reset_state(&in);
    dps_jsonbuf_free(&in.warnings);
    dps_jsonbuf_free(&in.joined);
    dps_arena_free(&arena);
}

void dps_otlp_traces(dps_req_t *r)
{
    ingest(r, SIG_TRACES);
}

void dps_otlp_metrics(dps_req_t *r)
{
    ingest(r, SIG_METRICS);
}
