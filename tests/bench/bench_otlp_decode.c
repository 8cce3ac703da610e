/* make bench-decode: how long decoding a default collector batch (8192 spans, 10 attributes each)
 * takes in each encoding, in-process, median of BENCH_DECODE_RUNS runs (default 7). */
#include "depsera/otlp_decode.h"
#include "depsera/otlp_encode.h"
#include "depsera/util.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define SPANS 8192
#define RESOURCES 8
#define ATTRS 10

typedef Opentelemetry__Proto__Common__V1__AnyValue any_t;
typedef Opentelemetry__Proto__Common__V1__KeyValue kv_t;
typedef Opentelemetry__Proto__Trace__V1__Span span_t;

static kv_t *kv_str(dps_arena_t *a, const char *key, const char *value)
{
    kv_t *kv = dps_arena_alloc(a, sizeof(*kv));
    any_t *v = dps_arena_alloc(a, sizeof(*v));

    opentelemetry__proto__common__v1__key_value__init(kv);
    opentelemetry__proto__common__v1__any_value__init(v);
    kv->key = (char *)key, kv->value = v;
    v->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE;
    v->string_value = dps_arena_strndup(a, value, strlen(value));
    return kv;
}

static kv_t *kv_int(dps_arena_t *a, const char *key, int64_t value)
{
    kv_t *kv = kv_str(a, key, "");

    kv->value->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE;
    kv->value->int_value = value;
    return kv;
}

static uint8_t *random_bytes(dps_arena_t *a, size_t n)
{
    uint8_t *p = dps_arena_alloc(a, n);

    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)rand();
    return p;
}

/* A batch shaped like a collector's: 8 services, CLIENT spans of HTTP calls and database queries. */
static dps_otlp_traces_t *make_batch(dps_arena_t *a)
{
    dps_otlp_traces_t *req = dps_arena_alloc(a, sizeof(*req));
    char buf[256];

    opentelemetry__proto__collector__trace__v1__export_trace_service_request__init(req);
    req->n_resource_spans = RESOURCES;
    req->resource_spans = dps_arena_alloc(a, RESOURCES * sizeof(void *));
    for (int r = 0; r < RESOURCES; r++) {
        Opentelemetry__Proto__Trace__V1__ResourceSpans *rs = dps_arena_alloc(a, sizeof(*rs));
        Opentelemetry__Proto__Trace__V1__ScopeSpans *ss = dps_arena_alloc(a, sizeof(*ss));
        Opentelemetry__Proto__Resource__V1__Resource *res = dps_arena_alloc(a, sizeof(*res));
        Opentelemetry__Proto__Common__V1__InstrumentationScope *scope = dps_arena_alloc(a, sizeof(*scope));
        opentelemetry__proto__trace__v1__resource_spans__init(rs);
        opentelemetry__proto__trace__v1__scope_spans__init(ss);
        opentelemetry__proto__resource__v1__resource__init(res);
        opentelemetry__proto__common__v1__instrumentation_scope__init(scope);
        snprintf(buf, sizeof(buf), "service-%d", r);
        res->n_attributes = 3;
        res->attributes = dps_arena_alloc(a, 3 * sizeof(void *));
        res->attributes[0] = kv_str(a, "service.name", buf);
        res->attributes[1] = kv_str(a, "telemetry.sdk.language", "nodejs");
        res->attributes[2] = kv_str(a, "host.name", "ip-10-0-12-34.eu-west-1.compute.internal");
        scope->name = "@opentelemetry/instrumentation-http", scope->version = "0.52.1";
        ss->scope = scope;
        ss->n_spans = SPANS / RESOURCES;
        ss->spans = dps_arena_alloc(a, ss->n_spans * sizeof(void *));
        for (size_t i = 0; i < ss->n_spans; i++) {
            span_t *sp = dps_arena_alloc(a, sizeof(*sp));
            Opentelemetry__Proto__Trace__V1__Status *st = dps_arena_alloc(a, sizeof(*st));
            int db = i % 3 == 0;
            opentelemetry__proto__trace__v1__span__init(sp);
            opentelemetry__proto__trace__v1__status__init(st);
            sp->trace_id.data = random_bytes(a, 16), sp->trace_id.len = 16;
            sp->span_id.data = random_bytes(a, 8), sp->span_id.len = 8;
            sp->parent_span_id.data = random_bytes(a, 8), sp->parent_span_id.len = 8;
            sp->flags = 257;
            sp->kind = OPENTELEMETRY__PROTO__TRACE__V1__SPAN__SPAN_KIND__SPAN_KIND_CLIENT;
            sp->start_time_unix_nano = 1760000000000000000ull + i * 1000003;
            sp->end_time_unix_nano = sp->start_time_unix_nano + 1500000 + (uint64_t)rand() % 50000000;
            sp->n_attributes = ATTRS;
            sp->attributes = dps_arena_alloc(a, ATTRS * sizeof(void *));
            if (db) {
                sp->name = "SELECT orders";
                sp->attributes[0] = kv_str(a, "db.system", "postgresql");
                sp->attributes[1] = kv_str(a, "db.namespace", "shop");
                sp->attributes[2] = kv_str(a, "db.collection.name", "orders");
                sp->attributes[3] = kv_str(a, "db.operation.name", "SELECT");
                snprintf(buf, sizeof(buf), "SELECT id, total, status FROM orders WHERE customer_id = $1 LIMIT %zu", i % 50 + 1);
                sp->attributes[4] = kv_str(a, "db.query.text", buf);
                sp->attributes[5] = kv_str(a, "server.address", "orders-db.internal");
                sp->attributes[6] = kv_int(a, "server.port", 5432);
                sp->attributes[7] = kv_str(a, "network.peer.address", "10.0.3.17");
                sp->attributes[8] = kv_int(a, "db.response.returned_rows", (int64_t)(i % 50));
                sp->attributes[9] = kv_str(a, "db.user", "app");
            } else {
                sp->name = "GET";
                sp->attributes[0] = kv_str(a, "http.request.method", "GET");
                snprintf(buf, sizeof(buf), "https://inventory.internal:8443/v1/items/%zu?include=stock", i);
                sp->attributes[1] = kv_str(a, "url.full", buf);
                sp->attributes[2] = kv_str(a, "server.address", "inventory.internal");
                sp->attributes[3] = kv_int(a, "server.port", 8443);
                sp->attributes[4] = kv_int(a, "http.response.status_code", i % 17 == 0 ? 503 : 200);
                sp->attributes[5] = kv_str(a, "network.protocol.version", "1.1");
                sp->attributes[6] = kv_str(a, "url.scheme", "https");
                sp->attributes[7] = kv_str(a, "user_agent.original", "node-fetch/1.0 (+https://github.com/bitinn/node-fetch)");
                sp->attributes[8] = kv_str(a, "url.path", buf + strlen("https://inventory.internal:8443"));
                sp->attributes[9] = kv_str(a, "peer.service", "inventory");
            }
            if (i % 17 == 0)
                st->code = OPENTELEMETRY__PROTO__TRACE__V1__STATUS__STATUS_CODE__STATUS_CODE_ERROR,
                st->message = "Service Unavailable";
            sp->status = st;
            ss->spans[i] = sp;
        }
        rs->resource = res;
        rs->n_scope_spans = 1;
        rs->scope_spans = dps_arena_alloc(a, sizeof(void *));
        rs->scope_spans[0] = ss;
        req->resource_spans[r] = rs;
    }
    return req;
}

static void hex(dps_jsonbuf_t *b, ProtobufCBinaryData id)
{
    char h[64];

    dps_hex_encode(id.data, id.len, h);
    dps_jsonbuf_string(b, h, strlen(h));
}

static void u64(dps_jsonbuf_t *b, uint64_t v)
{
    char n[32];

    dps_jsonbuf_raw(b, n, (size_t)snprintf(n, sizeof(n), "\"%" PRIu64 "\"", v));
}

/* The same batch in OTLP JSON, as the JS SDK's JSON exporter writes it. */
static void to_json(dps_jsonbuf_t *b, const dps_otlp_traces_t *req)
{
    dps_jsonbuf_lit(b, "{\"resourceSpans\":[");
    for (size_t r = 0; r < req->n_resource_spans; r++) {
        const Opentelemetry__Proto__Trace__V1__ScopeSpans *ss = req->resource_spans[r]->scope_spans[0];
        dps_jsonbuf_raw(b, ",", r > 0);
        dps_jsonbuf_lit(b, "{\"resource\":{\"attributes\":");
        dps_otlp_attributes_json(b, req->resource_spans[r]->resource->attributes, req->resource_spans[r]->resource->n_attributes);
        dps_jsonbuf_lit(b, ",\"droppedAttributesCount\":0},\"scopeSpans\":[{\"scope\":{\"name\":");
        dps_jsonbuf_string(b, ss->scope->name, strlen(ss->scope->name));
        dps_jsonbuf_lit(b, ",\"version\":");
        dps_jsonbuf_string(b, ss->scope->version, strlen(ss->scope->version));
        dps_jsonbuf_lit(b, "},\"spans\":[");
        for (size_t i = 0; i < ss->n_spans; i++) {
            const span_t *sp = ss->spans[i];
            char n[64];
            dps_jsonbuf_raw(b, ",", i > 0);
            dps_jsonbuf_lit(b, "{\"traceId\":");
            hex(b, sp->trace_id);
            dps_jsonbuf_lit(b, ",\"spanId\":");
            hex(b, sp->span_id);
            dps_jsonbuf_lit(b, ",\"parentSpanId\":");
            hex(b, sp->parent_span_id);
            dps_jsonbuf_lit(b, ",\"name\":");
            dps_jsonbuf_string(b, sp->name, strlen(sp->name));
            dps_jsonbuf_raw(
                b, n, (size_t)snprintf(n, sizeof(n), ",\"kind\":%d,\"flags\":%u,\"startTimeUnixNano\":", sp->kind, sp->flags));
            u64(b, sp->start_time_unix_nano);
            dps_jsonbuf_lit(b, ",\"endTimeUnixNano\":");
            u64(b, sp->end_time_unix_nano);
            dps_jsonbuf_lit(b, ",\"attributes\":");
            dps_otlp_attributes_json(b, sp->attributes, sp->n_attributes);
            dps_jsonbuf_lit(b, ",\"droppedAttributesCount\":0,\"events\":[],\"droppedEventsCount\":0,\"links\":[],"
                               "\"droppedLinksCount\":0,\"status\":{");
            if (sp->status->code != 0) {
                dps_jsonbuf_raw(b, n, (size_t)snprintf(n, sizeof(n), "\"code\":%d,\"message\":", sp->status->code));
                dps_jsonbuf_string(b, sp->status->message, strlen(sp->status->message));
            }
            dps_jsonbuf_lit(b, "}}");
        }
        dps_jsonbuf_lit(b, "]}]}");
    }
    dps_jsonbuf_lit(b, "]}");
}

static uint8_t *gzip(const void *data, size_t len, size_t *out_len)
{
    z_stream z;
    size_t cap = len + len / 100 + 1024;
    uint8_t *out = malloc(cap);

    memset(&z, 0, sizeof(z));
    if (out == NULL || deflateInit2(&z, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        abort();
    z.next_in = (Bytef *)data, z.avail_in = (uInt)len, z.next_out = out, z.avail_out = (uInt)cap;
    if (deflate(&z, Z_FINISH) != Z_STREAM_END)
        abort();
    *out_len = z.total_out;
    deflateEnd(&z);
    return out;
}

static int cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

/* Decode `body` `runs` times; the median in ms, and the arena's size after one decode. */
static double time_decode(const dps_otlp_body_t *body, int runs, size_t *arena_bytes, const uint8_t *want, size_t want_len)
{
    double t[64];

    for (int r = 0; r < runs; r++) {
        dps_arena_t a;
        dps_otlp_traces_t *req;
        const char *err;
        int64_t t0 = dps_mono_us();
        dps_arena_init(&a, 0);
        if (dps_otlp_decode_traces(&a, body, &req, &err) != DPS_OTLP_OK) {
            fprintf(stderr, "bench_otlp_decode: %s\n", err);
            exit(1);
        }
        t[r] = (double)(dps_mono_us() - t0) / 1000.0;
        *arena_bytes = a.total;
        if (r == 0 && want != NULL) { /* same request whatever the encoding */
            uint8_t *p = malloc(want_len + 1);
            if (protobuf_c_message_get_packed_size(&req->base) != want_len || protobuf_c_message_pack(&req->base, p) != want_len ||
                memcmp(p, want, want_len) != 0) {
                fprintf(stderr, "bench_otlp_decode: decoded request differs\n");
                exit(1);
            }
            free(p);
        }
        t0 = dps_mono_us();
        dps_arena_free(&a);
        t[r] += (double)(dps_mono_us() - t0) / 1000.0;
    }
    qsort(t, (size_t)runs, sizeof(t[0]), cmp_double);
    return t[runs / 2];
}

static void report(const char *name, size_t body_len, double ms, size_t arena)
{
    printf("%-22s %10zu %10.1f %12.0f %10.1f\n", name, body_len, ms, SPANS / (ms / 1000.0), (double)arena / (1024 * 1024));
}

int main(void)
{
    const char *env = getenv("BENCH_DECODE_RUNS");
    int runs = env != NULL ? atoi(env) : 7;
    dps_arena_t build;
    dps_otlp_traces_t *req;
    dps_jsonbuf_t json, attrs;
    size_t pb_len, pbz_len, jz_len, arena;
    uint8_t *pb, *pbz, *jz;
    double t[64];

    if (runs < 1 || runs > 63)
        runs = 7;
    srand(42);
    dps_arena_init(&build, 0);
    req = make_batch(&build);
    pb_len = protobuf_c_message_get_packed_size(&req->base);
    pb = malloc(pb_len);
    protobuf_c_message_pack(&req->base, pb);
    dps_jsonbuf_init(&json, 0);
    to_json(&json, req);
    if (json.oom)
        abort();
    pbz = gzip(pb, pb_len, &pbz_len);
    jz = gzip(json.data, json.len, &jz_len);

    printf("OTLP decode, %d spans x %d attributes, median of %d runs (decode + arena free)\n", SPANS, ATTRS, runs);
    printf("%-22s %10s %10s %12s %10s\n", "body", "bytes", "ms", "spans/s", "arena MiB");
    {
        const struct {
            const char *name;
            dps_otlp_format_t format;
            dps_otlp_encoding_t encoding;
            const void *data;
            size_t len;
        } bodies[] = {
            {"protobuf", DPS_OTLP_PROTOBUF, DPS_OTLP_IDENTITY, pb, pb_len},
            {"protobuf+gzip", DPS_OTLP_PROTOBUF, DPS_OTLP_GZIP, pbz, pbz_len},
            {"json", DPS_OTLP_JSON, DPS_OTLP_IDENTITY, json.data, json.len},
            {"json+gzip", DPS_OTLP_JSON, DPS_OTLP_GZIP, jz, jz_len},
        };
        for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
            dps_otlp_body_t b = {bodies[i].format, bodies[i].encoding, bodies[i].data, bodies[i].len, 64u << 20};
            double ms = time_decode(&b, runs, &arena, pb, pb_len);
            report(bodies[i].name, bodies[i].len, ms, arena);
        }
    }

    /* what storing every span's attributes as jsonb text costs on top */
    dps_jsonbuf_init(&attrs, 1 << 20);
    for (int r = 0; r < runs; r++) {
        int64_t t0 = dps_mono_us();
        for (size_t i = 0; i < req->n_resource_spans; i++)
            for (size_t j = 0; j < req->resource_spans[i]->scope_spans[0]->n_spans; j++) {
                span_t *sp = req->resource_spans[i]->scope_spans[0]->spans[j];
                attrs.len = 0;
                dps_otlp_attributes_json(&attrs, sp->attributes, sp->n_attributes);
            }
        t[r] = (double)(dps_mono_us() - t0) / 1000.0;
    }
    qsort(t, (size_t)runs, sizeof(t[0]), cmp_double);
    printf("%-22s %10s %10.1f %12.0f\n", "attributes->json text", "-", t[runs / 2], SPANS / (t[runs / 2] / 1000.0));

    dps_jsonbuf_free(&attrs);
    dps_jsonbuf_free(&json);
    free(pb), free(pbz), free(jz);
    dps_arena_free(&build);
    return 0;
}
