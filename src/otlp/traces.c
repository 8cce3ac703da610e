/* One resourceSpans entry (otlp-ingestion.md §8): its resource stored once, every span written with
 * COPY (binary), CLIENT and PRODUCER spans turned into dependencies (§8.2-8.5) through the shared
 * upsert, and auto-associations suggested (§8.6). */
#include "depsera/log.h"
#include "depsera/otlp_discover.h"
#include "depsera/otlp_encode.h"
#include "depsera/otlp_ingest.h"
#include "depsera/pgarray.h"
#include "depsera/ttlcache.h"
#include "depsera/util.h"
#include "depsera/unicase.h"

#include <arpa/inet.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>

typedef Opentelemetry__Proto__Trace__V1__Span span_t;
typedef Opentelemetry__Proto__Common__V1__KeyValue kv_t;

/* Send the COPY data in pieces of about this size, so a batch never sits whole in memory twice. */
#define COPY_CHUNK (256 * 1024)
/* Microseconds from the Unix epoch to PostgreSQL's (2000-01-01). */
#define PG_EPOCH_US 946684800000000LL

static const char copy_sql[] = "COPY spans (start_time, end_time, duration_ms, resource_id, kind, status_code, trace_id, "
                               "span_id, parent_span_id, name, status_message, attributes) FROM STDIN (FORMAT binary)";

/* Per worker: resources by digest (a row never changes once written; kept a minute, dropped on any
 * failure of an entry), and the (service, dependency) pairs whose auto-association was looked at in
 * the last minute (a new suggestion for them can wait that long). */
static dps_ttlcache_t *resources, *associated;

void dps_ingest_trace_cache_clear(void)
{
    dps_ttlcache_clear(resources);
    dps_ttlcache_clear(associated);
}

/* ---- the resource ------------------------------------------------------------------------------- */

/* jsonb refuses the escape \u0000 that JSON text of a string with a NUL byte holds: U+FFFD instead
 * (same length). Only escapes are looked at, so an escaped backslash followed by "u0000" is left. */
static void replace_nul_escapes(char *s, size_t n)
{
    for (size_t i = 0; i + 1 < n; i++) {
        if (s[i] != '\\')
            continue;
        if (s[i + 1] == 'u' && i + 5 < n && memcmp(s + i + 2, "0000", 4) == 0)
            memcpy(s + i + 2, "fffd", 4);
        i++;
    }
}

/* The OTLP JSON text of attributes, NUL-safe for jsonb, appended to b. */
static void attributes_json(dps_jsonbuf_t *b, kv_t *const *kvs, size_t n)
{
    size_t from = b->len;

    dps_otlp_attributes_json(b, kvs, n);
    if (!b->oom)
        replace_nul_escapes(b->data + from, b->len - from);
}

static dps_stmt_t resource_stmt =
    DPS_STMT("dps_otlp_resource",
             "WITH ins AS (INSERT INTO span_resources (team_id, service_name, attributes, digest) "
             "VALUES ($1, $2, $3::jsonb, $4::bytea) ON CONFLICT (digest) DO NOTHING RETURNING id) "
             "SELECT id, true FROM ins UNION ALL SELECT id, false FROM span_resources WHERE digest = $4::bytea",
             4);

/* The span_resources row of (team, service, resource attributes): found by the SHA-256 of the three
 * (span_resources.digest), inserted when new. */
static int resource_id(dps_ingest_t *in, const char *service_name, const Opentelemetry__Proto__Resource__V1__Resource *res,
                       char *out, size_t cap)
{
    dps_jsonbuf_t attrs;
    EVP_MD_CTX *ctx;
    unsigned char digest[SHA256_DIGEST_LENGTH];
    char hex[2 + 2 * SHA256_DIGEST_LENGTH + 1];
    const char *p[4];
    PGresult *r = NULL;
    int rc = -1;

    dps_jsonbuf_init(&attrs, 256);
    if (res != NULL && res->n_attributes > 0)
        attributes_json(&attrs, res->attributes, res->n_attributes);
    dps_jsonbuf_raw(&attrs, "", 1);
    if (attrs.oom) {
        dps_jsonbuf_free(&attrs);
        return dps_ingest_fail(in, "Out of memory");
    }
    if ((ctx = EVP_MD_CTX_new()) == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1 ||
        EVP_DigestUpdate(ctx, in->team_id, strlen(in->team_id) + 1) != 1 ||
        EVP_DigestUpdate(ctx, service_name, strlen(service_name) + 1) != 1 || EVP_DigestUpdate(ctx, attrs.data, attrs.len) != 1 ||
        EVP_DigestFinal_ex(ctx, digest, NULL) != 1) {
        EVP_MD_CTX_free(ctx);
        dps_jsonbuf_free(&attrs);
        return dps_ingest_fail(in, "Digest failed");
    }
    EVP_MD_CTX_free(ctx);
    memcpy(hex, "\\x", 2);
    dps_hex_encode(digest, sizeof(digest), hex + 2);
    {
        size_t len;
        const char *id = dps_ttlcache_get(resources, digest, sizeof(digest), dps_mono_ms(), &len);
        if (id != NULL) {
            snprintf(out, cap, "%s", id);
            dps_jsonbuf_free(&attrs);
            return 0;
        }
    }
    p[0] = in->team_id, p[1] = service_name, p[2] = attrs.len > 1 ? attrs.data : NULL, p[3] = hex;
    /* a concurrent insert of the same resource is waited for by ON CONFLICT, then read by the SELECT
     * (a new snapshot) */
    for (int attempt = 0; attempt < 2 && rc != 0; attempt++) {
        PQclear(r);
        if ((r = dps_ingest_stmt(in, &resource_stmt, p)) == NULL)
            break;
        if (PQntuples(r) > 0) {
            snprintf(out, cap, "%s", PQgetvalue(r, 0, 0));
            rc = 0;
            if (resources != NULL || (resources = dps_ttlcache_create(4096, 60000)) != NULL)
                dps_ingest_cache_later(in, resources, digest, sizeof(digest), out, strlen(out));
        }
    }
    PQclear(r);
    dps_jsonbuf_free(&attrs);
    return rc;
}

/* ---- COPY --------------------------------------------------------------------------------------- */

static void put16(dps_jsonbuf_t *b, int16_t v)
{
    uint16_t n = htons((uint16_t)v);
    dps_jsonbuf_raw(b, (const char *)&n, 2);
}

static void put32(dps_jsonbuf_t *b, int32_t v)
{
    uint32_t n = htonl((uint32_t)v);
    dps_jsonbuf_raw(b, (const char *)&n, 4);
}

static void put64(dps_jsonbuf_t *b, int64_t v)
{
    uint32_t hi = htonl((uint32_t)((uint64_t)v >> 32)), lo = htonl((uint32_t)(uint64_t)v);
    dps_jsonbuf_raw(b, (const char *)&hi, 4);
    dps_jsonbuf_raw(b, (const char *)&lo, 4);
}

static void field64(dps_jsonbuf_t *b, int64_t v)
{
    put32(b, 8);
    put64(b, v);
}

static void field16(dps_jsonbuf_t *b, int64_t v)
{
    put32(b, 2);
    put16(b, (int16_t)(v < INT16_MIN ? INT16_MIN : v > INT16_MAX ? INT16_MAX : v));
}

/* floor(ns / 10^6) ms (§8.1) as a timestamptz. */
static void field_time(dps_jsonbuf_t *b, uint64_t ns)
{
    field64(b, (int64_t)(ns / 1000000) * 1000 - PG_EPOCH_US);
}

static void field_double(dps_jsonbuf_t *b, double d)
{
    int64_t bits;

    memcpy(&bits, &d, 8);
    field64(b, bits);
}

static void field_bytes(dps_jsonbuf_t *b, const void *data, size_t len)
{
    put32(b, (int32_t)len);
    dps_jsonbuf_raw(b, data, len);
}

/* Text without NUL bytes (PostgreSQL text cannot hold them): each becomes U+FFFD. The decoders
 * guarantee UTF-8 otherwise. NULL or "" with null_if_empty is SQL NULL. */
static void field_text(dps_jsonbuf_t *b, const char *s, int null_if_empty)
{
    size_t n = s != NULL ? strlen(s) : 0, at = b->len;

    if (s == NULL || (null_if_empty && n == 0)) {
        put32(b, -1);
        return;
    }
    put32(b, 0);
    dps_jsonbuf_raw(b, s, n); /* strlen stopped at the first NUL: nothing to replace */
    if (!b->oom) {
        uint32_t len = htonl((uint32_t)n);
        memcpy(b->data + at, &len, 4);
    }
}

/* The span's attributes as jsonb (version 1 + JSON text), NULL when it has none. */
static void field_attributes(dps_jsonbuf_t *b, const span_t *s)
{
    size_t at = b->len;

    if (s->n_attributes == 0) {
        put32(b, -1);
        return;
    }
    put32(b, 0);
    dps_jsonbuf_raw(b, "\1", 1);
    attributes_json(b, s->attributes, s->n_attributes);
    if (!b->oom) {
        uint32_t len = htonl((uint32_t)(b->len - at - 4));
        memcpy(b->data + at, &len, 4);
    }
}

/* NULs inside a protobuf string end it early in C; bytes after a NUL are lost (text cannot hold
 * NUL anyway). */
static void span_row(dps_jsonbuf_t *b, const span_t *s, int64_t resource)
{
    put16(b, 12);
    field_time(b, s->start_time_unix_nano);
    field_time(b, s->end_time_unix_nano);
    field_double(b, (double)dps_discover_latency_ms(s->start_time_unix_nano, s->end_time_unix_nano));
    field64(b, resource);
    field16(b, s->kind);
    field16(b, s->status != NULL ? s->status->code : 0);
    field_bytes(b, s->trace_id.data, s->trace_id.len);
    field_bytes(b, s->span_id.data, s->span_id.len);
    if (s->parent_span_id.len > 0)
        field_bytes(b, s->parent_span_id.data, s->parent_span_id.len);
    else
        put32(b, -1);
    field_text(b, s->name, 0);
    field_text(b, s->status != NULL ? s->status->message : NULL, 1);
    field_attributes(b, s);
}

/* A span the table cannot take rejects its entry (§8.1: a NOT NULL violation in the original). */
static const char *span_problem(const span_t *s)
{
    if (s->trace_id.len == 0)
        return "traceId";
    if (s->span_id.len == 0)
        return "spanId";
    if (s->name == NULL || s->name[0] == '\0')
        return "name";
    return NULL;
}

static int flush(PGconn *conn, dps_jsonbuf_t *b)
{
    int ok = PQputCopyData(conn, b->data, (int)b->len) == 1;

    b->len = 0;
    return ok ? 0 : -1;
}

/* Every span of the entry in one COPY. */
static int copy_spans(dps_ingest_t *in, const Opentelemetry__Proto__Trace__V1__ResourceSpans *rs, int64_t resource)
{
    static const char header[] = "PGCOPY\n\377\r\n\0\0\0\0\0\0\0\0\0";
    dps_jsonbuf_t b;
    PGresult *res;
    int ok = 1;

    for (size_t i = 0; i < rs->n_scope_spans; i++) {
        for (size_t j = 0; j < rs->scope_spans[i]->n_spans; j++) {
            const char *missing = span_problem(rs->scope_spans[i]->spans[j]);
            if (missing != NULL) {
                char *msg = dps_arena_alloc(in->arena, 64);
                if (msg != NULL)
                    snprintf(msg, 64, "Span without %s: entry rejected", missing);
                return dps_ingest_fail(in, msg != NULL ? msg : "Span without a required field");
            }
        }
    }
    res = PQexec(in->conn, copy_sql);
    if (PQresultStatus(res) != PGRES_COPY_IN) {
        PQclear(in->failed);
        in->failed = res;
        return -1;
    }
    PQclear(res);
    dps_jsonbuf_init(&b, COPY_CHUNK + 64 * 1024);
    dps_jsonbuf_raw(&b, header, sizeof(header) - 1);
    for (size_t i = 0; i < rs->n_scope_spans && ok; i++) {
        for (size_t j = 0; j < rs->scope_spans[i]->n_spans && ok; j++) {
            span_row(&b, rs->scope_spans[i]->spans[j], resource);
            if (b.oom || (b.len >= COPY_CHUNK && flush(in->conn, &b) != 0))
                ok = 0;
        }
    }
    if (ok) {
        put16(&b, -1);
        ok = !b.oom && flush(in->conn, &b) == 0;
    }
    dps_jsonbuf_free(&b);
    if (PQputCopyEnd(in->conn, ok ? NULL : "span data could not be written") != 1)
        ok = 0;
    /* the COPY's result, then the end of its command */
    while ((res = PQgetResult(in->conn)) != NULL) {
        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
            const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
            /* spans has no CHECK constraint: a check violation is a row without a partition */
            in->need_partition = state != NULL && strcmp(state, "23514") == 0;
            PQclear(in->failed);
            in->failed = res;
            ok = 0;
        } else {
            PQclear(res);
        }
    }
    return ok ? 0 : -1;
}

/* ---- discovery (§8.2-8.5) ----------------------------------------------------------------------- */

/* The primitive attributes of a span (§8.2; arrays, kvlists and bytes are dropped), in the arena. */
static dps_otlp_attr_t *flat_attributes(dps_arena_t *a, const span_t *s, size_t *n)
{
    dps_otlp_attr_t *out = dps_arena_alloc(a, sizeof(*out) * (s->n_attributes + 1));

    *n = 0;
    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < s->n_attributes; i++) {
        const kv_t *kv = s->attributes[i];
        const Opentelemetry__Proto__Common__V1__AnyValue *v = kv != NULL ? kv->value : NULL;
        dps_otlp_attr_t *at = &out[*n];
        if (v == NULL || kv->key == NULL)
            continue;
        at->key = kv->key;
        switch (v->value_case) {
        case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE:
            at->kind = DPS_OTLP_STRING, at->s = v->string_value;
            break;
        case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE:
            at->kind = DPS_OTLP_INT, at->i = v->int_value;
            break;
        case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_DOUBLE_VALUE:
            at->kind = DPS_OTLP_DOUBLE, at->d = v->double_value;
            break;
        case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BOOL_VALUE:
            at->kind = DPS_OTLP_BOOL, at->b = v->bool_value;
            break;
        default:
            continue;
        }
        (*n)++;
    }
    return out;
}

/* Offers every CLIENT and PRODUCER span of the entry to the aggregator. */
static int discover(dps_ingest_t *in, const Opentelemetry__Proto__Trace__V1__ResourceSpans *rs, dps_discover_t *d)
{
    for (size_t i = 0; i < rs->n_scope_spans; i++) {
        for (size_t j = 0; j < rs->scope_spans[i]->n_spans; j++) {
            const span_t *s = rs->scope_spans[i]->spans[j];
            dps_discover_span_t ds;
            size_t n;
            if (s->kind != DPS_SPAN_KIND_CLIENT && s->kind != DPS_SPAN_KIND_PRODUCER)
                continue;
            ds = (dps_discover_span_t){s->name,
                                       dps_otlp_id_hex(in->arena, s->span_id),
                                       (int)s->kind,
                                       s->start_time_unix_nano,
                                       s->end_time_unix_nano,
                                       1,
                                       s->status != NULL ? (int)s->status->code : 0,
                                       NULL,
                                       0};
            if ((ds.attrs = flat_attributes(in->arena, s, &n)) == NULL || ds.span_id == NULL)
                return dps_ingest_fail(in, "Out of memory");
            ds.n_attrs = n;
            if (dps_discover_add(d, &ds) != 0)
                return dps_ingest_fail(in, "Out of memory");
        }
    }
    return 0;
}

/* §8.5: one status per target. */
static dps_dep_status_t *bridge(dps_ingest_t *in, const dps_discover_t *d, size_t n)
{
    dps_dep_status_t *st = dps_arena_calloc(in->arena, sizeof(*st) * (n ? n : 1));

    if (st == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        const dps_discover_target_t *t = dps_discover_get(d, i);
        st[i].name = t->name;
        st[i].type = t->type;
        st[i].description = t->description;
        st[i].healthy = t->healthy;
        st[i].health_state = t->state;
        st[i].health_code = t->code;
        st[i].latency_ms = (double)t->latency_ms;
    }
    return st;
}

/* ---- auto-association (§8.6) -------------------------------------------------------------------- */

/* The first row of `res` (ordered by name) whose column `col` equals `name` case-insensitively in
 * JavaScript's sense; -1 if none. */
static int find_ci(const PGresult *res, int col, const char *name)
{
    for (int i = 0; i < PQntuples(res); i++)
        if (!PQgetisnull(res, i, col) && dps_unicase_eq(PQgetvalue(res, i, col), name))
            return i;
    return -1;
}

static const char *alias_of(const PGresult *aliases, const char *name)
{
    for (int i = 0; i < PQntuples(aliases); i++)
        if (strcmp(PQgetvalue(aliases, i, 0), name) == 0)
            return PQgetvalue(aliases, i, 1);
    return NULL;
}

static dps_stmt_t team_services_stmt =
    DPS_STMT("dps_otlp_team_services", "SELECT id, name FROM services WHERE team_id = $1 ORDER BY name COLLATE \"C\", id", 1);
static dps_stmt_t service_deps_stmt =
    DPS_STMT("dps_otlp_service_deps",
             "SELECT id, name, canonical_name FROM dependencies WHERE service_id = $1 ORDER BY name COLLATE \"C\", id", 1);
static dps_stmt_t aliases_stmt =
    DPS_STMT("dps_otlp_aliases", "SELECT alias, canonical_name FROM dependency_aliases WHERE alias = ANY ($1::text[])", 1);
/* a row for the pair in any state (suggested, confirmed, dismissed) is left alone */
static dps_stmt_t suggest_stmt =
    DPS_STMT("dps_otlp_suggest",
             "INSERT INTO dependency_associations (dependency_id, linked_service_id, association_type, "
             "is_auto_suggested) SELECT d, s, t, true FROM unnest($1::uuid[], $2::uuid[], $3::text[]) "
             "AS a(d, s, t) ON CONFLICT (dependency_id, linked_service_id) DO NOTHING",
             3);

/* 1 when (service, dependency name) was looked at in the last minute; else remembers it now. */
static int associated_recently(dps_ingest_t *in, const char *service_id, const char *name)
{
    size_t a = strlen(service_id), b = strlen(name), len;
    char *key = dps_arena_alloc(in->arena, a + b + 1);
    int64_t now = dps_mono_ms();

    if (key == NULL)
        return 0;
    memcpy(key, service_id, a + 1);
    memcpy(key + a + 1, name, b);
    if (dps_ttlcache_get(associated, key, a + 1 + b, now, &len) != NULL)
        return 1;
    if (associated != NULL || (associated = dps_ttlcache_create(16384, 60000)) != NULL)
        dps_ingest_cache_later(in, associated, key, a + 1 + b, "", 0);
    return 0;
}

static int associate(dps_ingest_t *in, const dps_ingest_service_t *svc, const dps_dep_status_t *st, size_t n)
{
    const char *p[4] = {in->team_id, svc->id, NULL, NULL};
    PGresult *services = NULL, *deps = NULL, *aliases = NULL, *res;
    dps_pgarray_t names, dep_ids, targets, types;
    int rc = -1, guarded = 0;

    dps_pgarray_init(&names), dps_pgarray_init(&dep_ids), dps_pgarray_init(&targets), dps_pgarray_init(&types);
    char *want = dps_arena_calloc(in->arena, n ? n : 1);

    if (want == NULL) {
        rc = dps_ingest_fail(in, "Out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        if ((want[i] = !associated_recently(in, svc->id, st[i].name)))
            dps_pgarray_add_str(&names, st[i].name);
    if (names.n == 0) {
        rc = 0;
        goto out;
    }
    /* §8.6.2f: an association error is logged, never the entry's: its statements run in a savepoint */
    if ((res = dps_ingest_sql(in, "SAVEPOINT association", 0, NULL)) == NULL)
        goto out;
    PQclear(res);
    guarded = 1;
    if ((p[2] = dps_pgarray_text(&names)) == NULL || (services = dps_ingest_stmt(in, &team_services_stmt, p)) == NULL ||
        (deps = dps_ingest_stmt(in, &service_deps_stmt, p + 1)) == NULL ||
        (aliases = dps_ingest_stmt(in, &aliases_stmt, p + 2)) == NULL)
        goto out;
    for (size_t i = 0; i < n; i++) {
        int r = want[i] ? find_ci(deps, 1, st[i].name) : -1, x;
        const char *canonical;
        if (r < 0)
            continue;
        if ((x = find_ci(services, 1, st[i].name)) < 0) {
            canonical = !PQgetisnull(deps, r, 2) ? PQgetvalue(deps, r, 2) : alias_of(aliases, st[i].name);
            x = canonical != NULL ? find_ci(services, 1, canonical) : -1;
        }
        if (x < 0 || strcmp(PQgetvalue(services, x, 0), svc->id) == 0)
            continue;
        dps_pgarray_add_str(&dep_ids, PQgetvalue(deps, r, 0));
        dps_pgarray_add_str(&targets, PQgetvalue(services, x, 0));
        dps_pgarray_add_str(&types, dps_discover_association_type(st[i].type));
    }
    if (dep_ids.n == 0) {
        rc = 0;
        goto out;
    }
    {
        const char *ip[3] = {dps_pgarray_text(&dep_ids), dps_pgarray_text(&targets), dps_pgarray_text(&types)};
        if (ip[0] != NULL && ip[1] != NULL && ip[2] != NULL && (res = dps_ingest_stmt(in, &suggest_stmt, ip)) != NULL) {
            PQclear(res);
            rc = 0;
        }
    }
out:
    if (rc != 0 && guarded && PQstatus(in->conn) == CONNECTION_OK) {
        DPS_LOG(DPS_LOG_WARN, "auto-association failed", DPS_F_STR("service_id", svc->id),
                DPS_F_STR("error", in->failed != NULL ? PQresultErrorMessage(in->failed) : "out of memory"));
        if ((res = dps_ingest_sql(in, "ROLLBACK TO SAVEPOINT association", 0, NULL)) != NULL) {
            PQclear(res);
            PQclear(in->failed);
            in->failed = NULL;
            rc = 0;
        }
    }
    PQclear(services), PQclear(deps), PQclear(aliases);
    dps_pgarray_free(&names), dps_pgarray_free(&dep_ids), dps_pgarray_free(&targets), dps_pgarray_free(&types);
    return rc;
}

/* ---- the entry ---------------------------------------------------------------------------------- */

int dps_ingest_trace_entry(dps_ingest_t *in, const dps_ingest_service_t *svc,
                           const Opentelemetry__Proto__Trace__V1__ResourceSpans *rs)
{
    char resource[24];
    dps_discover_t *d;
    dps_dep_status_t *st;
    size_t n;
    int rc = -1;

    if (resource_id(in, svc->name, rs->resource, resource, sizeof(resource)) != 0 ||
        copy_spans(in, rs, strtoll(resource, NULL, 10)) != 0)
        return -1;
    if ((d = dps_discover_create(64)) == NULL)
        return dps_ingest_fail(in, "Out of memory");
    if (discover(in, rs, d) != 0)
        goto out;
    for (size_t i = 0; i < dps_discover_warning_count(d); i++)
        dps_ingest_warn(in, dps_discover_warning(d, i));
    /* the aggregator keeps more warnings than a response lists: the rest are only counted */
    in->nwarnings += dps_discover_warnings_dropped(d);
    n = dps_discover_count(d);
    if (n == 0) {
        rc = 0;
        goto out;
    }
    if ((st = bridge(in, d, n)) == NULL) {
        rc = dps_ingest_fail(in, "Out of memory");
        goto out;
    }
    if (dps_upsert_statuses(in->db, svc->id, svc->name, st, n, "otlp_trace", &in->changes, &in->failed) == 0 &&
        associate(in, svc, st, n) == 0)
        rc = 0;
out:
    dps_discover_destroy(d);
    return rc;
}
