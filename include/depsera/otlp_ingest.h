/* OTLP/HTTP ingestion (otlp-ingestion.md): the /v1/traces and /v1/metrics handlers and what they
 * share. One transaction per request; each resource entry in a savepoint, so that a failing entry is
 * rejected alone (§2.4e) and a 200 means everything accepted is committed. */
#ifndef DEPSERA_OTLP_INGEST_H
#define DEPSERA_OTLP_INGEST_H
#include <libpq-fe.h>
#include <stddef.h>

#include "depsera/arena.h"
#include "depsera/jsonbuf.h"
#include "depsera/otlp_decode.h"
#include "depsera/router.h"
#include "depsera/stmt.h"
#include "depsera/ttlcache.h"
#include "depsera/upsert.h"

void dps_otlp_traces(dps_req_t *r);
void dps_otlp_metrics(dps_req_t *r);

/* The state of one request's processing, shared by the signal-specific code. */
typedef struct {
    dps_db_t *db;
    PGconn *conn; /* dps_db_conn(db) for this attempt */
    dps_arena_t *arena;
    const char *team_id;
    dps_jsonbuf_t warnings; /* JSON array text of every warning so far (§2.3), without its ']' */
    dps_jsonbuf_t joined;   /* the same warnings joined with "; " (errorMessage, §2.6) */
    size_t nwarnings;
    dps_status_changes_t changes;  /* §7.3, written at the end */
    PGresult *failed;              /* the statement that failed an entry (cleared by the caller) */
    const char *entry_error;       /* or a message of ours for a rejected entry (arena or static) */
    int need_partition;            /* the COPY found no span partition for today */
    struct dps_cache_later *later; /* cache entries to store once the transaction committed */
    size_t nlater, caplater;
} dps_ingest_t;

/* The resolved service of an entry (§3). Strings in the arena. */
typedef struct {
    const char *id, *name, *format, *schema_config; /* schema_config NULL when unset */
} dps_ingest_service_t;

/* Append a warning (UTF-8 text). */
void dps_ingest_warn(dps_ingest_t *in, const char *text);
/* The warnings so far as JSON array text (in the arena), NULL when none (§2.4d). */
const char *dps_ingest_warnings_so_far(dps_ingest_t *in);
/* Fail the current entry with a message of ours; returns -1. */
int dps_ingest_fail(dps_ingest_t *in, const char *message);
/* Run a statement for the current entry: the result (the caller clears it), or NULL with in->failed
 * set. */
PGresult *dps_ingest_sql(dps_ingest_t *in, const char *sql, int n, const char *const *params);
/* The same with a statement prepared once per connection. */
PGresult *dps_ingest_stmt(dps_ingest_t *in, dps_stmt_t *st, const char *const *params);

/* §3.1: the service.name of a resource, or NULL when absent or empty. */
const char *dps_ingest_service_name(dps_ingest_t *in, const Opentelemetry__Proto__Resource__V1__Resource *resource);
/* §3.2: find or create the service `name` of the key's team. 0, or -1 (entry failed). */
int dps_ingest_resolve_service(dps_ingest_t *in, const char *name, dps_ingest_service_t *out);
/* §2.4d: the push result of an entry's service. 0, or -1. */
int dps_ingest_push_result(dps_ingest_t *in, const dps_ingest_service_t *svc);

/* Store key -> value in cache c (not NULL) once this request's transaction has committed: what a
 * request wrote, or read after an earlier entry of it wrote, may yet be rolled back. */
void dps_ingest_cache_later(dps_ingest_t *in, dps_ttlcache_t *c, const void *key, size_t key_len, const void *value, size_t len);

/* Forget the per-worker lookups (after a failure that a stale one may have caused). */
void dps_ingest_service_cache_clear(void);
void dps_ingest_trace_cache_clear(void);

/* One resource entry of each signal (§2.4c): 0, or -1 when the entry is rejected. */
int dps_ingest_trace_entry(dps_ingest_t *in, const dps_ingest_service_t *svc,
                           const Opentelemetry__Proto__Trace__V1__ResourceSpans *rs);
int dps_ingest_metric_entry(dps_ingest_t *in, const dps_ingest_service_t *svc,
                            const Opentelemetry__Proto__Metrics__V1__ResourceMetrics *rm);

#endif
