/* Unit tests of OTLP decoding and encoding: the JSON mapping, protobuf, gzip, responses, attributes as JSON. */
#include "depsera/otlp_decode.h"
#include "depsera/otlp_encode.h"

#include <check.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "unit.h"

#define LIMIT (20 * 1024 * 1024)

typedef Opentelemetry__Proto__Common__V1__AnyValue any_t;
typedef Opentelemetry__Proto__Common__V1__KeyValue kv_t;
typedef Opentelemetry__Proto__Trace__V1__Span span_t;
typedef Opentelemetry__Proto__Metrics__V1__Metric metric_t;

/* ---- helpers ---- */

static dps_otlp_status_t traces(dps_arena_t *a, dps_otlp_format_t f, dps_otlp_encoding_t e, const void *data, size_t len,
                                dps_otlp_traces_t **out, const char **err)
{
    dps_otlp_body_t body = {f, e, data, len, LIMIT};
    return dps_otlp_decode_traces(a, &body, out, err);
}

static dps_otlp_status_t metrics(dps_arena_t *a, dps_otlp_format_t f, dps_otlp_encoding_t e, const void *data, size_t len,
                                 dps_otlp_metrics_t **out, const char **err)
{
    dps_otlp_body_t body = {f, e, data, len, LIMIT};
    return dps_otlp_decode_metrics(a, &body, out, err);
}

static dps_otlp_traces_t *traces_json_ok(dps_arena_t *a, const char *json)
{
    dps_otlp_traces_t *req = NULL;
    const char *err = NULL;
    dps_otlp_status_t st = traces(a, DPS_OTLP_JSON, DPS_OTLP_IDENTITY, json, strlen(json), &req, &err);

    ck_assert_msg(st == DPS_OTLP_OK, "%s: %s", json, err);
    return req;
}

/* The packed bytes of a message (malloc'd), for byte-for-byte comparisons. */
static uint8_t *packed(const ProtobufCMessage *m, size_t *len)
{
    uint8_t *buf = malloc(protobuf_c_message_get_packed_size(m) + 1);

    ck_assert_ptr_nonnull(buf);
    *len = protobuf_c_message_pack(m, buf);
    return buf;
}

static void assert_same(const ProtobufCMessage *got, const uint8_t *want, size_t want_len)
{
    size_t n;
    uint8_t *bytes = packed(got, &n);

    ck_assert_uint_eq(n, want_len);
    ck_assert_int_eq(memcmp(bytes, want, n), 0);
    free(bytes);
}

/* gzip of data (malloc'd). */
static uint8_t *gzip(const void *data, size_t len, size_t *out_len)
{
    z_stream z;
    size_t cap = len + len / 100 + 1024;
    uint8_t *out = malloc(cap);

    memset(&z, 0, sizeof(z));
    ck_assert_int_eq(deflateInit2(&z, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
    z.next_in = (Bytef *)data, z.avail_in = (uInt)len;
    z.next_out = out, z.avail_out = (uInt)cap;
    ck_assert_int_eq(deflate(&z, Z_FINISH), Z_STREAM_END);
    *out_len = z.total_out;
    deflateEnd(&z);
    return out;
}

static const any_t *attr(kv_t **kvs, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(kvs[i]->key, key) == 0)
            return kvs[i]->value;
    ck_abort_msg("no attribute %s", key);
    return NULL;
}

static const uint8_t TRACE_ID[16] = {0x5b, 0x8e, 0xff, 0xf7, 0x98, 0x03, 0x81, 0x03,
                                     0xd2, 0x69, 0xb6, 0x33, 0x81, 0x3f, 0xc6, 0x0c};
static const uint8_t SPAN_ID[8] = {0xee, 0xe1, 0x9b, 0x7e, 0xc3, 0xc1, 0xb1, 0x74};
static const uint8_t PARENT_ID[8] = {0xee, 0xe1, 0x9b, 0x7e, 0xc3, 0xc1, 0xb1, 0x73};

/* ---- the same request built by hand, in JSON and in protobuf ---- */

/* A trace request using every span field and every AnyValue variant, in OTLP JSON... */
static const char TRACE_JSON[] =
    "{\"resourceSpans\":[{\"resource\":{\"attributes\":[{\"key\":\"service.name\",\"value\":{\"stringValue\":\"checkout\"}}],"
    "\"droppedAttributesCount\":1},\"scopeSpans\":[{\"scope\":{\"name\":\"lib\",\"version\":\"1.0\"},\"spans\":[{"
    "\"traceId\":\"5b8efff798038103d269b633813fc60c\",\"spanId\":\"eee19b7ec3c1b174\",\"parentSpanId\":\"eee19b7ec3c1b173\","
    "\"traceState\":\"k=v\",\"flags\":257,\"name\":\"GET /x\",\"kind\":3,"
    "\"startTimeUnixNano\":\"1544712660000000000\",\"endTimeUnixNano\":\"1544712661000000000\","
    "\"attributes\":["
    "{\"key\":\"s\",\"value\":{\"stringValue\":\"\\u00e9 \\\"q\\\"\"}},"
    "{\"key\":\"b\",\"value\":{\"boolValue\":true}},"
    "{\"key\":\"i\",\"value\":{\"intValue\":\"-42\"}},"
    "{\"key\":\"d\",\"value\":{\"doubleValue\":2.5}},"
    "{\"key\":\"a\",\"value\":{\"arrayValue\":{\"values\":[{\"stringValue\":\"x\"},{\"intValue\":\"7\"}]}}},"
    "{\"key\":\"kv\",\"value\":{\"kvlistValue\":{\"values\":[{\"key\":\"inner\",\"value\":{\"boolValue\":false}}]}}},"
    "{\"key\":\"by\",\"value\":{\"bytesValue\":\"AQID\"}},"
    "{\"key\":\"empty\",\"value\":{}}],"
    "\"droppedAttributesCount\":2,"
    "\"events\":[{\"timeUnixNano\":\"1544712660500000000\",\"name\":\"ev\",\"attributes\":[{\"key\":\"e\",\"value\":{\"intValue\":"
    "\"1\"}}]}],"
    "\"links\":[{\"traceId\":\"5b8efff798038103d269b633813fc60c\",\"spanId\":\"eee19b7ec3c1b173\",\"flags\":1}],"
    "\"status\":{\"code\":2,\"message\":\"boom\"}}],\"schemaUrl\":\"https://s\"}],\"schemaUrl\":\"https://r\"}]}";

/* ...the same with snake_case names, enum names, numbers as JSON numbers, upper-case hex, nulls and
 * unknown members... */
static const char TRACE_JSON_ALT[] =
    "{\"unknown\":{\"x\":[1,2]},\"resource_spans\":[{\"resource\":{\"attributes\":[{\"key\":\"service.name\",\"value\":{"
    "\"string_value\":\"checkout\"}}],\"dropped_attributes_count\":\"1\",\"entityRefs\":null},\"scope_spans\":[{\"scope\":{"
    "\"name\":\"lib\",\"version\":\"1.0\",\"future\":true},\"spans\":[{"
    "\"trace_id\":\"5B8EFFF798038103D269B633813FC60C\",\"span_id\":\"EEE19B7EC3C1B174\",\"parent_span_id\":\"eee19b7ec3c1b173\","
    "\"trace_state\":\"k=v\",\"flags\":\"257\",\"name\":\"GET /x\",\"kind\":\"SPAN_KIND_CLIENT\","
    "\"start_time_unix_nano\":1544712660000000000,\"end_time_unix_nano\":1.544712661e18,"
    "\"attributes\":["
    "{\"key\":\"s\",\"value\":{\"string_value\":\"\xc3\xa9 \\\"q\\\"\"}},"
    "{\"key\":\"b\",\"value\":{\"bool_value\":true,\"intValue\":null}},"
    "{\"key\":\"i\",\"value\":{\"int_value\":-42}},"
    "{\"key\":\"d\",\"value\":{\"double_value\":\"2.5\"}},"
    "{\"key\":\"a\",\"value\":{\"array_value\":{\"values\":[{\"string_value\":\"x\"},{\"int_value\":7}]}}},"
    "{\"key\":\"kv\",\"value\":{\"kvlist_value\":{\"values\":[{\"key\":\"inner\",\"value\":{\"bool_value\":false}}]}}},"
    "{\"key\":\"by\",\"value\":{\"bytes_value\":\"AQID\"}},"
    "{\"key\":\"empty\",\"value\":{}}],"
    "\"dropped_attributes_count\":2,\"dropped_events_count\":null,"
    "\"events\":[{\"time_unix_nano\":\"1544712660500000000\",\"name\":\"ev\",\"attributes\":[{\"key\":\"e\",\"value\":{"
    "\"intValue\":1}}]}],"
    "\"links\":[{\"trace_id\":\"5b8efff798038103d269b633813fc60c\",\"span_id\":\"eee19b7ec3c1b173\",\"flags\":1,"
    "\"attributes\":[]}],"
    "\"status\":{\"code\":\"STATUS_CODE_ERROR\",\"message\":\"boom\"}}],\"schema_url\":\"https://s\"}],\"schema_url\":"
    "\"https://r\"}]}";

/* ...and built as structs. The pack of this is the protobuf form. */
static uint8_t *trace_expected(size_t *len)
{
    static uint8_t bytes3[] = {1, 2, 3};
    any_t v[13];
    kv_t kv[12], *span_attrs[8], *res_attrs[1], *inner_kvs[1], *event_attrs[1];
    any_t *array_items[2];
    Opentelemetry__Proto__Common__V1__ArrayValue array = OPENTELEMETRY__PROTO__COMMON__V1__ARRAY_VALUE__INIT;
    Opentelemetry__Proto__Common__V1__KeyValueList kvlist = OPENTELEMETRY__PROTO__COMMON__V1__KEY_VALUE_LIST__INIT;
    Opentelemetry__Proto__Resource__V1__Resource resource = OPENTELEMETRY__PROTO__RESOURCE__V1__RESOURCE__INIT;
    Opentelemetry__Proto__Common__V1__InstrumentationScope scope = OPENTELEMETRY__PROTO__COMMON__V1__INSTRUMENTATION_SCOPE__INIT;
    Opentelemetry__Proto__Trace__V1__Span__Event event = OPENTELEMETRY__PROTO__TRACE__V1__SPAN__EVENT__INIT, *events[1];
    Opentelemetry__Proto__Trace__V1__Span__Link link = OPENTELEMETRY__PROTO__TRACE__V1__SPAN__LINK__INIT, *links[1];
    Opentelemetry__Proto__Trace__V1__Status status = OPENTELEMETRY__PROTO__TRACE__V1__STATUS__INIT;
    span_t span = OPENTELEMETRY__PROTO__TRACE__V1__SPAN__INIT, *spans[1];
    Opentelemetry__Proto__Trace__V1__ScopeSpans ss = OPENTELEMETRY__PROTO__TRACE__V1__SCOPE_SPANS__INIT, *sss[1];
    Opentelemetry__Proto__Trace__V1__ResourceSpans rs = OPENTELEMETRY__PROTO__TRACE__V1__RESOURCE_SPANS__INIT, *rss[1];
    dps_otlp_traces_t req = OPENTELEMETRY__PROTO__COLLECTOR__TRACE__V1__EXPORT_TRACE_SERVICE_REQUEST__INIT;
    static const char *keys[] = {"service.name", "s", "b", "i", "d", "a", "kv", "by", "empty", "inner", "e"};

    for (int i = 0; i < 13; i++) {
        opentelemetry__proto__common__v1__any_value__init(&v[i]);
        if (i < 12)
            opentelemetry__proto__common__v1__key_value__init(&kv[i]);
        if (i < 11)
            kv[i].key = (char *)keys[i], kv[i].value = &v[i];
    }
    v[0].value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE, v[0].string_value = "checkout";
    v[1].value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE, v[1].string_value = "\xc3\xa9 \"q\"";
    v[2].value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BOOL_VALUE, v[2].bool_value = 1;
    v[3].value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE, v[3].int_value = -42;
    v[4].value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_DOUBLE_VALUE, v[4].double_value = 2.5;
    v[5].value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_ARRAY_VALUE, v[5].array_value = &array;
    v[6].value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_KVLIST_VALUE, v[6].kvlist_value = &kvlist;
    v[7].value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BYTES_VALUE;
    v[7].bytes_value.data = bytes3, v[7].bytes_value.len = 3;
    /* v[8] stays unset: {"key":"empty","value":{}} */
    v[9].value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BOOL_VALUE, v[9].bool_value = 0;
    v[10].value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE, v[10].int_value = 1;
    v[11].value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE, v[11].string_value = "x";
    v[12].value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE, v[12].int_value = 7;
    array_items[0] = &v[11], array_items[1] = &v[12];
    array.n_values = 2, array.values = array_items;
    inner_kvs[0] = &kv[9];
    kvlist.n_values = 1, kvlist.values = inner_kvs;

    res_attrs[0] = &kv[0];
    resource.n_attributes = 1, resource.attributes = res_attrs, resource.dropped_attributes_count = 1;
    scope.name = "lib", scope.version = "1.0";
    for (int i = 0; i < 8; i++)
        span_attrs[i] = &kv[1 + i];
    event_attrs[0] = &kv[10];
    event.time_unix_nano = 1544712660500000000ull, event.name = "ev", event.n_attributes = 1, event.attributes = event_attrs;
    events[0] = &event;
    link.trace_id.data = (uint8_t *)TRACE_ID, link.trace_id.len = 16;
    link.span_id.data = (uint8_t *)PARENT_ID, link.span_id.len = 8;
    link.flags = 1;
    links[0] = &link;
    status.code = OPENTELEMETRY__PROTO__TRACE__V1__STATUS__STATUS_CODE__STATUS_CODE_ERROR, status.message = "boom";

    span.trace_id.data = (uint8_t *)TRACE_ID, span.trace_id.len = 16;
    span.span_id.data = (uint8_t *)SPAN_ID, span.span_id.len = 8;
    span.parent_span_id.data = (uint8_t *)PARENT_ID, span.parent_span_id.len = 8;
    span.trace_state = "k=v", span.flags = 257, span.name = "GET /x";
    span.kind = OPENTELEMETRY__PROTO__TRACE__V1__SPAN__SPAN_KIND__SPAN_KIND_CLIENT;
    span.start_time_unix_nano = 1544712660000000000ull, span.end_time_unix_nano = 1544712661000000000ull;
    span.n_attributes = 8, span.attributes = span_attrs, span.dropped_attributes_count = 2;
    span.n_events = 1, span.events = events, span.n_links = 1, span.links = links, span.status = &status;
    spans[0] = &span;
    ss.scope = &scope, ss.n_spans = 1, ss.spans = spans, ss.schema_url = "https://s";
    sss[0] = &ss;
    rs.resource = &resource, rs.n_scope_spans = 1, rs.scope_spans = sss, rs.schema_url = "https://r";
    rss[0] = &rs;
    req.n_resource_spans = 1, req.resource_spans = rss;
    return packed(&req.base, len);
}

static const char METRICS_JSON[] =
    "{\"resourceMetrics\":[{\"resource\":{\"attributes\":[{\"key\":\"service.name\",\"value\":{\"stringValue\":\"api\"}}]},"
    "\"scopeMetrics\":[{\"scope\":{\"name\":\"m\"},\"metrics\":["
    "{\"name\":\"g\",\"unit\":\"ms\",\"gauge\":{\"dataPoints\":["
    "{\"attributes\":[{\"key\":\"dependency.name\",\"value\":{\"stringValue\":\"db\"}}],\"timeUnixNano\":\"1700000000000000000\","
    "\"asDouble\":12.5},{\"asInt\":\"7\",\"timeUnixNano\":\"1700000000000000001\",\"exemplars\":[{\"asDouble\":1,"
    "\"spanId\":\"eee19b7ec3c1b174\",\"traceId\":\"5b8efff798038103d269b633813fc60c\",\"timeUnixNano\":\"5\"}]}]}},"
    "{\"name\":\"s\",\"sum\":{\"dataPoints\":[{\"asInt\":\"-3\",\"flags\":1}],\"aggregationTemporality\":2,\"isMonotonic\":true}},"
    "{\"name\":\"h\",\"histogram\":{\"dataPoints\":[{\"count\":\"6\",\"sum\":30.5,\"bucketCounts\":[\"1\",\"2\",\"3\"],"
    "\"explicitBounds\":[10,20],\"min\":1,\"max\":25,\"startTimeUnixNano\":\"1\",\"timeUnixNano\":\"2\"},"
    "{\"count\":\"0\",\"sum\":0}],\"aggregationTemporality\":1}},"
    "{\"name\":\"eh\",\"exponentialHistogram\":{\"dataPoints\":[{\"count\":\"3\",\"scale\":-2,\"zeroCount\":\"1\","
    "\"positive\":{\"offset\":-1,\"bucketCounts\":[\"1\",\"1\"]},\"zeroThreshold\":0.001,\"max\":4}],"
    "\"aggregationTemporality\":2}},"
    "{\"name\":\"su\",\"summary\":{\"dataPoints\":[{\"count\":\"2\",\"sum\":3,\"quantileValues\":[{\"quantile\":0.5,"
    "\"value\":1},{\"quantile\":1,\"value\":2}]}]}}]}]}]}";

static const char METRICS_JSON_ALT[] =
    "{\"resource_metrics\":[{\"resource\":{\"attributes\":[{\"key\":\"service.name\",\"value\":{\"string_value\":\"api\"}}]},"
    "\"scope_metrics\":[{\"scope\":{\"name\":\"m\"},\"metrics\":["
    "{\"name\":\"g\",\"unit\":\"ms\",\"gauge\":{\"data_points\":["
    "{\"attributes\":[{\"key\":\"dependency.name\",\"value\":{\"string_value\":\"db\"}}],\"time_unix_nano\":1700000000000000000,"
    "\"as_double\":\"12.5\"},{\"as_int\":7,\"time_unix_nano\":1700000000000000001,\"exemplars\":[{\"as_double\":1.0,"
    "\"span_id\":\"EEE19B7EC3C1B174\",\"trace_id\":\"5b8efff798038103d269b633813fc60c\",\"time_unix_nano\":5}]}]}},"
    "{\"name\":\"s\",\"sum\":{\"data_points\":[{\"as_int\":-3,\"flags\":\"1\"}],"
    "\"aggregation_temporality\":\"AGGREGATION_TEMPORALITY_CUMULATIVE\",\"is_monotonic\":true}},"
    "{\"name\":\"h\",\"histogram\":{\"data_points\":[{\"count\":6,\"sum\":\"30.5\",\"bucket_counts\":[1,2,3],"
    "\"explicit_bounds\":[\"10\",20.0],\"min\":1,\"max\":25,\"start_time_unix_nano\":1,\"time_unix_nano\":2},"
    "{\"count\":0,\"sum\":0.0,\"min\":null}],\"aggregation_temporality\":\"AGGREGATION_TEMPORALITY_DELTA\"}},"
    "{\"name\":\"eh\",\"exponential_histogram\":{\"data_points\":[{\"count\":3,\"scale\":\"-2\",\"zero_count\":1,"
    "\"positive\":{\"offset\":\"-1\",\"bucket_counts\":[1,\"1\"]},\"zero_threshold\":1e-3,\"max\":4}],"
    "\"aggregation_temporality\":2}},"
    "{\"name\":\"su\",\"summary\":{\"data_points\":[{\"count\":2,\"sum\":3,\"quantile_values\":[{\"quantile\":0.5,"
    "\"value\":1},{\"quantile\":1,\"value\":2}]}]}}]}]}]}";

static uint8_t *metrics_expected(size_t *len)
{
    typedef Opentelemetry__Proto__Metrics__V1__NumberDataPoint ndp_t;
    typedef Opentelemetry__Proto__Metrics__V1__HistogramDataPoint hdp_t;
    static uint64_t buckets[] = {1, 2, 3}, ebuckets[] = {1, 1};
    static double bounds[] = {10, 20};
    any_t v[2];
    kv_t kv[2], *res_attrs[1], *dp_attrs[1];
    Opentelemetry__Proto__Resource__V1__Resource resource = OPENTELEMETRY__PROTO__RESOURCE__V1__RESOURCE__INIT;
    Opentelemetry__Proto__Common__V1__InstrumentationScope scope = OPENTELEMETRY__PROTO__COMMON__V1__INSTRUMENTATION_SCOPE__INIT;
    ndp_t g1 = OPENTELEMETRY__PROTO__METRICS__V1__NUMBER_DATA_POINT__INIT, g2 = g1, s1 = g1, *gdps[2], *sdps[1];
    Opentelemetry__Proto__Metrics__V1__Exemplar ex = OPENTELEMETRY__PROTO__METRICS__V1__EXEMPLAR__INIT, *exs[1];
    Opentelemetry__Proto__Metrics__V1__Gauge gauge = OPENTELEMETRY__PROTO__METRICS__V1__GAUGE__INIT;
    Opentelemetry__Proto__Metrics__V1__Sum sum = OPENTELEMETRY__PROTO__METRICS__V1__SUM__INIT;
    hdp_t h1 = OPENTELEMETRY__PROTO__METRICS__V1__HISTOGRAM_DATA_POINT__INIT, h2 = h1, *hdps[2];
    Opentelemetry__Proto__Metrics__V1__Histogram hist = OPENTELEMETRY__PROTO__METRICS__V1__HISTOGRAM__INIT;
    Opentelemetry__Proto__Metrics__V1__ExponentialHistogramDataPoint
        e1 = OPENTELEMETRY__PROTO__METRICS__V1__EXPONENTIAL_HISTOGRAM_DATA_POINT__INIT,
        *edps[1];
    Opentelemetry__Proto__Metrics__V1__ExponentialHistogramDataPoint__Buckets pos =
        OPENTELEMETRY__PROTO__METRICS__V1__EXPONENTIAL_HISTOGRAM_DATA_POINT__BUCKETS__INIT;
    Opentelemetry__Proto__Metrics__V1__ExponentialHistogram ehist = OPENTELEMETRY__PROTO__METRICS__V1__EXPONENTIAL_HISTOGRAM__INIT;
    Opentelemetry__Proto__Metrics__V1__SummaryDataPoint u1 = OPENTELEMETRY__PROTO__METRICS__V1__SUMMARY_DATA_POINT__INIT, *udps[1];
    Opentelemetry__Proto__Metrics__V1__SummaryDataPoint__ValueAtQuantile
        q1 = OPENTELEMETRY__PROTO__METRICS__V1__SUMMARY_DATA_POINT__VALUE_AT_QUANTILE__INIT,
        q2 = q1, *qs[2];
    Opentelemetry__Proto__Metrics__V1__Summary summary = OPENTELEMETRY__PROTO__METRICS__V1__SUMMARY__INIT;
    metric_t m[5], *ms[5];
    Opentelemetry__Proto__Metrics__V1__ScopeMetrics sm = OPENTELEMETRY__PROTO__METRICS__V1__SCOPE_METRICS__INIT, *sms[1];
    Opentelemetry__Proto__Metrics__V1__ResourceMetrics rm = OPENTELEMETRY__PROTO__METRICS__V1__RESOURCE_METRICS__INIT, *rms[1];
    dps_otlp_metrics_t req = OPENTELEMETRY__PROTO__COLLECTOR__METRICS__V1__EXPORT_METRICS_SERVICE_REQUEST__INIT;
    static const char *names[] = {"g", "s", "h", "eh", "su"};

    for (int i = 0; i < 2; i++) {
        opentelemetry__proto__common__v1__any_value__init(&v[i]);
        opentelemetry__proto__common__v1__key_value__init(&kv[i]);
        kv[i].value = &v[i];
        v[i].value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE;
    }
    kv[0].key = "service.name", v[0].string_value = "api";
    kv[1].key = "dependency.name", v[1].string_value = "db";
    res_attrs[0] = &kv[0], dp_attrs[0] = &kv[1];
    resource.n_attributes = 1, resource.attributes = res_attrs;
    scope.name = "m";

    g1.n_attributes = 1, g1.attributes = dp_attrs, g1.time_unix_nano = 1700000000000000000ull;
    g1.value_case = OPENTELEMETRY__PROTO__METRICS__V1__NUMBER_DATA_POINT__VALUE_AS_DOUBLE, g1.as_double = 12.5;
    g2.time_unix_nano = 1700000000000000001ull;
    g2.value_case = OPENTELEMETRY__PROTO__METRICS__V1__NUMBER_DATA_POINT__VALUE_AS_INT, g2.as_int = 7;
    ex.value_case = OPENTELEMETRY__PROTO__METRICS__V1__EXEMPLAR__VALUE_AS_DOUBLE, ex.as_double = 1;
    ex.span_id.data = (uint8_t *)SPAN_ID, ex.span_id.len = 8, ex.trace_id.data = (uint8_t *)TRACE_ID, ex.trace_id.len = 16;
    ex.time_unix_nano = 5;
    exs[0] = &ex, g2.n_exemplars = 1, g2.exemplars = exs;
    gdps[0] = &g1, gdps[1] = &g2, gauge.n_data_points = 2, gauge.data_points = gdps;
    s1.value_case = OPENTELEMETRY__PROTO__METRICS__V1__NUMBER_DATA_POINT__VALUE_AS_INT, s1.as_int = -3, s1.flags = 1;
    sdps[0] = &s1, sum.n_data_points = 1, sum.data_points = sdps;
    sum.aggregation_temporality = OPENTELEMETRY__PROTO__METRICS__V1__AGGREGATION_TEMPORALITY__AGGREGATION_TEMPORALITY_CUMULATIVE;
    sum.is_monotonic = 1;

    h1.count = 6, h1.n_bucket_counts = 3, h1.bucket_counts = buckets, h1.n_explicit_bounds = 2, h1.explicit_bounds = bounds;
    h1._sum_case = OPENTELEMETRY__PROTO__METRICS__V1__HISTOGRAM_DATA_POINT___SUM_SUM, h1.sum = 30.5;
    h1._min_case = OPENTELEMETRY__PROTO__METRICS__V1__HISTOGRAM_DATA_POINT___MIN_MIN, h1.min = 1;
    h1._max_case = OPENTELEMETRY__PROTO__METRICS__V1__HISTOGRAM_DATA_POINT___MAX_MAX, h1.max = 25;
    h1.start_time_unix_nano = 1, h1.time_unix_nano = 2;
    h2._sum_case = OPENTELEMETRY__PROTO__METRICS__V1__HISTOGRAM_DATA_POINT___SUM_SUM, h2.sum = 0; /* present though 0 */
    hdps[0] = &h1, hdps[1] = &h2, hist.n_data_points = 2, hist.data_points = hdps;
    hist.aggregation_temporality = OPENTELEMETRY__PROTO__METRICS__V1__AGGREGATION_TEMPORALITY__AGGREGATION_TEMPORALITY_DELTA;

    e1.count = 3, e1.scale = -2, e1.zero_count = 1, e1.zero_threshold = 0.001;
    e1._max_case = OPENTELEMETRY__PROTO__METRICS__V1__EXPONENTIAL_HISTOGRAM_DATA_POINT___MAX_MAX, e1.max = 4;
    pos.offset = -1, pos.n_bucket_counts = 2, pos.bucket_counts = ebuckets, e1.positive = &pos;
    edps[0] = &e1, ehist.n_data_points = 1, ehist.data_points = edps;
    ehist.aggregation_temporality = OPENTELEMETRY__PROTO__METRICS__V1__AGGREGATION_TEMPORALITY__AGGREGATION_TEMPORALITY_CUMULATIVE;

    q1.quantile = 0.5, q1.value = 1, q2.quantile = 1, q2.value = 2, qs[0] = &q1, qs[1] = &q2;
    u1.count = 2, u1.sum = 3, u1.n_quantile_values = 2, u1.quantile_values = qs;
    udps[0] = &u1, summary.n_data_points = 1, summary.data_points = udps;

    for (int i = 0; i < 5; i++) {
        opentelemetry__proto__metrics__v1__metric__init(&m[i]);
        m[i].name = (char *)names[i];
        ms[i] = &m[i];
    }
    m[0].unit = "ms";
    m[0].data_case = OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_GAUGE, m[0].gauge = &gauge;
    m[1].data_case = OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_SUM, m[1].sum = &sum;
    m[2].data_case = OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_HISTOGRAM, m[2].histogram = &hist;
    m[3].data_case = OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_EXPONENTIAL_HISTOGRAM, m[3].exponential_histogram = &ehist;
    m[4].data_case = OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_SUMMARY, m[4].summary = &summary;
    sm.scope = &scope, sm.n_metrics = 5, sm.metrics = ms, sms[0] = &sm;
    rm.resource = &resource, rm.n_scope_metrics = 1, rm.scope_metrics = sms, rms[0] = &rm;
    req.n_resource_metrics = 1, req.resource_metrics = rms;
    return packed(&req.base, len);
}

/* JSON (both spellings), protobuf, gzip+JSON and gzip+protobuf all decode to the hand-built request. */
START_TEST(traces_json_and_protobuf_agree)
{
    const char *jsons[] = {TRACE_JSON, TRACE_JSON_ALT};
    size_t plen, glen;
    uint8_t *pb = trace_expected(&plen), *gz;
    dps_otlp_traces_t *req;
    const char *err;
    dps_arena_t a;

    dps_arena_init(&a, 0);
    for (int i = 0; i < 2; i++) {
        assert_same(&traces_json_ok(&a, jsons[i])->base, pb, plen);
        gz = gzip(jsons[i], strlen(jsons[i]), &glen);
        ck_assert_int_eq(traces(&a, DPS_OTLP_JSON, DPS_OTLP_GZIP, gz, glen, &req, &err), DPS_OTLP_OK);
        assert_same(&req->base, pb, plen);
        free(gz);
    }
    ck_assert_int_eq(traces(&a, DPS_OTLP_PROTOBUF, DPS_OTLP_IDENTITY, pb, plen, &req, &err), DPS_OTLP_OK);
    assert_same(&req->base, pb, plen);
    gz = gzip(pb, plen, &glen);
    ck_assert_int_eq(traces(&a, DPS_OTLP_PROTOBUF, DPS_OTLP_GZIP, gz, glen, &req, &err), DPS_OTLP_OK);
    assert_same(&req->base, pb, plen);
    free(gz);
    free(pb);
    dps_arena_free(&a);
}
END_TEST

START_TEST(metrics_json_and_protobuf_agree)
{
    const char *jsons[] = {METRICS_JSON, METRICS_JSON_ALT};
    size_t plen, glen;
    uint8_t *pb = metrics_expected(&plen), *gz;
    dps_otlp_metrics_t *req;
    const char *err = NULL;
    dps_arena_t a;

    dps_arena_init(&a, 0);
    for (int i = 0; i < 2; i++) {
        ck_assert_msg(metrics(&a, DPS_OTLP_JSON, DPS_OTLP_IDENTITY, jsons[i], strlen(jsons[i]), &req, &err) == DPS_OTLP_OK, "%s",
                      err);
        assert_same(&req->base, pb, plen);
    }
    ck_assert_int_eq(metrics(&a, DPS_OTLP_PROTOBUF, DPS_OTLP_IDENTITY, pb, plen, &req, &err), DPS_OTLP_OK);
    assert_same(&req->base, pb, plen);
    gz = gzip(pb, plen, &glen);
    ck_assert_int_eq(metrics(&a, DPS_OTLP_PROTOBUF, DPS_OTLP_GZIP, gz, glen, &req, &err), DPS_OTLP_OK);
    assert_same(&req->base, pb, plen);
    free(gz);
    free(pb);
    dps_arena_free(&a);
}
END_TEST

/* The decoded structs hold what the handlers read, including presence. */
START_TEST(trace_fields)
{
    dps_arena_t a;
    dps_otlp_traces_t *req;
    span_t *sp;

    dps_arena_init(&a, 0);
    req = traces_json_ok(&a, TRACE_JSON);
    ck_assert_uint_eq(req->n_resource_spans, 1);
    ck_assert_str_eq(attr(req->resource_spans[0]->resource->attributes, 1, "service.name")->string_value, "checkout");
    sp = req->resource_spans[0]->scope_spans[0]->spans[0];
    ck_assert_uint_eq(sp->trace_id.len, 16);
    ck_assert_int_eq(memcmp(sp->trace_id.data, TRACE_ID, 16), 0);
    ck_assert_str_eq(dps_otlp_id_hex(&a, sp->span_id), "eee19b7ec3c1b174");
    ck_assert_str_eq(dps_otlp_id_hex(&a, sp->parent_span_id), "eee19b7ec3c1b173");
    ck_assert_int_eq(sp->kind, 3);
    ck_assert_uint_eq(sp->start_time_unix_nano, 1544712660000000000ull);
    ck_assert_ptr_nonnull(sp->status);
    ck_assert_int_eq(sp->status->code, 2);
    ck_assert_str_eq(sp->status->message, "boom");
    ck_assert_int_eq(attr(sp->attributes, sp->n_attributes, "i")->int_value, -42);
    ck_assert_int_eq(attr(sp->attributes, sp->n_attributes, "empty")->value_case,
                     OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE__NOT_SET);
    ck_assert_int_eq(attr(sp->attributes, sp->n_attributes, "kv")->kvlist_value->values[0]->value->value_case,
                     OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BOOL_VALUE);

    /* absent: no status message, no parent, no status at all, empty strings */
    req = traces_json_ok(&a, "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"name\":\"n\"}]}]}]}");
    sp = req->resource_spans[0]->scope_spans[0]->spans[0];
    ck_assert_ptr_null(req->resource_spans[0]->resource);
    ck_assert_ptr_null(sp->status);
    ck_assert_uint_eq(sp->parent_span_id.len, 0);
    ck_assert_str_eq(sp->trace_state, "");
    ck_assert_str_eq(dps_otlp_id_hex(&a, sp->parent_span_id), "");
    dps_arena_free(&a);
}
END_TEST

START_TEST(metric_fields)
{
    dps_arena_t a;
    dps_otlp_metrics_t *req;
    metric_t **m;
    const char *err;
    Opentelemetry__Proto__Metrics__V1__HistogramDataPoint *h1, *h2;
    static const char empty_point[] =
        "{\"resourceMetrics\":[{\"scopeMetrics\":[{\"metrics\":[{\"gauge\":{\"dataPoints\":[{}]}}]}]}]}";

    dps_arena_init(&a, 0);
    ck_assert_int_eq(metrics(&a, DPS_OTLP_JSON, DPS_OTLP_IDENTITY, METRICS_JSON, strlen(METRICS_JSON), &req, &err), DPS_OTLP_OK);
    m = req->resource_metrics[0]->scope_metrics[0]->metrics;
    ck_assert_int_eq(m[0]->data_case, OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_GAUGE);
    ck_assert_int_eq(m[0]->gauge->data_points[0]->value_case,
                     OPENTELEMETRY__PROTO__METRICS__V1__NUMBER_DATA_POINT__VALUE_AS_DOUBLE);
    ck_assert_double_eq(m[0]->gauge->data_points[0]->as_double, 12.5);
    ck_assert_int_eq(m[0]->gauge->data_points[1]->value_case, OPENTELEMETRY__PROTO__METRICS__V1__NUMBER_DATA_POINT__VALUE_AS_INT);
    ck_assert_int_eq(m[0]->gauge->data_points[1]->as_int, 7);
    ck_assert_int_eq(m[1]->sum->aggregation_temporality, 2);
    ck_assert(m[1]->sum->is_monotonic);
    h1 = m[2]->histogram->data_points[0];
    h2 = m[2]->histogram->data_points[1];
    ck_assert(DPS_OTLP_HAS(h1, sum) && DPS_OTLP_HAS(h1, min) && DPS_OTLP_HAS(h1, max));
    ck_assert_double_eq(h1->sum, 30.5);
    ck_assert_uint_eq(h1->n_bucket_counts, 3);
    ck_assert_uint_eq(h1->bucket_counts[2], 3);
    ck_assert_double_eq(h1->explicit_bounds[1], 20);
    ck_assert(DPS_OTLP_HAS(h2, sum) && !DPS_OTLP_HAS(h2, min) && !DPS_OTLP_HAS(h2, max));
    ck_assert_int_eq(m[3]->exponential_histogram->data_points[0]->scale, -2);
    ck_assert_int_eq(m[3]->exponential_histogram->data_points[0]->positive->offset, -1);
    ck_assert_double_eq(m[4]->summary->data_points[0]->quantile_values[1]->value, 2);

    /* a point without a value: neither asInt nor asDouble */
    ck_assert_int_eq(metrics(&a, DPS_OTLP_JSON, DPS_OTLP_IDENTITY, empty_point, strlen(empty_point), &req, &err), DPS_OTLP_OK);
    ck_assert_int_eq(req->resource_metrics[0]->scope_metrics[0]->metrics[0]->gauge->data_points[0]->value_case, 0);
    dps_arena_free(&a);
}
END_TEST

/* One span member (or the whole body) and what decoding it gives: an error naming the field, or a
 * value checked on the first span. */
static const struct {
    const char *span; /* members of the span object, or a whole body when it starts with '!' */
    const char *err;  /* expected error (substring), or NULL */
    int field;        /* 0 none, 1 kind, 3 status code, 4 first attribute's int, 5 double, 6 bytes len */
    double want;
} span_cases[] = {
    {"\"kind\":3", NULL, 1, 3},
    {"\"kind\":\"SPAN_KIND_CLIENT\"", NULL, 1, 3},
    {"\"kind\":\"SPAN_KIND_PRODUCER\"", NULL, 1, 4},
    {"\"kind\":\"SPAN_KIND_INTERNAL\"", NULL, 1, 1},
    {"\"kind\":9", NULL, 1, 9}, /* open enum: unknown numbers are kept */
    {"\"kind\":\"CLIENT\"", "spans[0].kind: unknown enum value name", 0, 0},
    {"\"kind\":\"span_kind_client\"", "kind: unknown enum value name", 0, 0},
    {"\"kind\":true", "kind: expected an enum name or integer", 0, 0},
    {"\"kind\":1.5", "kind: expected an enum name or integer", 0, 0},
    {"\"status\":{\"code\":\"STATUS_CODE_ERROR\"}", NULL, 3, 2},
    {"\"status\":{\"code\":\"STATUS_CODE_OK\"}", NULL, 3, 1},
    {"\"status\":{\"code\":2}", NULL, 3, 2},
    {"\"status\":{\"code\":\"ERROR\"}", "status.code: unknown enum value name", 0, 0},
    {"\"traceId\":\"5B8eFFF798038103d269b633813fc60c\"", NULL, 0, 0},
    {"\"traceId\":\"5b8efff798038103d269b633813fc60g\"", "resourceSpans[0].scopeSpans[0].spans[0].traceId: invalid hex", 0, 0},
    {"\"spanId\":\"eee19b7ec3c1b17\"", "spans[0].spanId: invalid hex (odd length)", 0, 0},
    {"\"parentSpanId\":\"AQIDBA==\"", "parentSpanId: invalid hex", 0, 0},
    {"\"traceId\":12", "traceId: expected a hex string", 0, 0},
    {"\"parentSpanId\":\"\"", NULL, 0, 0},
    {"\"name\":5", "spans[0].name: expected a string", 0, 0},
    {"\"name\":null", NULL, 0, 0},
    {"\"attributes\":{}", "spans[0].attributes: expected an array", 0, 0},
    {"\"attributes\":[null]", "spans[0].attributes[0]: null in an array", 0, 0},
    {"\"attributes\":[5]", "spans[0].attributes[0]: expected an object", 0, 0},
    {"\"attributes\":[{\"key\":\"k\",\"value\":{\"intValue\":\"123\"}}]", NULL, 4, 123},
    {"\"attributes\":[{\"key\":\"k\",\"value\":{\"intValue\":-9223372036854775808}}]", NULL, 4, -9223372036854775808.0},
    {"\"attributes\":[{\"key\":\"k\",\"value\":{\"intValue\":\"9223372036854775808\"}}]",
     "attributes[0].value.intValue: expected a 64-bit integer", 0, 0},
    {"\"attributes\":[{\"key\":\"k\",\"value\":{\"intValue\":\"1e3\"}}]", "intValue: expected a 64-bit", 0, 0},
    {"\"attributes\":[{\"key\":\"k\",\"value\":{\"intValue\":1e3}}]", NULL, 4, 1000},
    {"\"attributes\":[{\"key\":\"k\",\"value\":{\"doubleValue\":\"NaN\"}}]", NULL, 5, NAN},
    {"\"attributes\":[{\"key\":\"k\",\"value\":{\"doubleValue\":\"-Infinity\"}}]", NULL, 5, -INFINITY},
    {"\"attributes\":[{\"key\":\"k\",\"value\":{\"doubleValue\":3}}]", NULL, 5, 3},
    {"\"attributes\":[{\"key\":\"k\",\"value\":{\"doubleValue\":\"0x10\"}}]", "doubleValue: expected a number", 0, 0},
    {"\"attributes\":[{\"key\":\"k\",\"value\":{\"doubleValue\":\"inf\"}}]", "doubleValue: expected a number", 0, 0},
    {"\"attributes\":[{\"key\":\"k\",\"value\":{\"boolValue\":\"true\"}}]", "boolValue: expected true or false", 0, 0},
    {"\"attributes\":[{\"key\":\"k\",\"value\":{\"stringValue\":\"a\",\"intValue\":\"1\"}}]",
     "attributes[0].value.intValue: more than one member of a oneof is set", 0, 0},
    {"\"attributes\":[{\"key\":\"k\",\"value\":{\"bytesValue\":\"AQIDBA==\"}}]", NULL, 6, 4},
    {"\"attributes\":[{\"key\":\"k\",\"value\":{\"bytesValue\":\"AQIDBA\"}}]", NULL, 6, 4},
    {"\"attributes\":[{\"key\":\"k\",\"value\":{\"bytesValue\":\"-_8\"}}]", NULL, 6, 2},
    {"\"attributes\":[{\"key\":\"k\",\"value\":{\"bytesValue\":\"\"}}]", NULL, 6, 0},
    {"\"attributes\":[{\"key\":\"k\",\"value\":{\"bytesValue\":\"AQIDB\"}}]", "bytesValue: invalid base64", 0, 0},
    {"\"attributes\":[{\"key\":\"k\",\"value\":{\"bytesValue\":\"AQ=D\"}}]", "bytesValue: invalid base64", 0, 0},
    {"\"attributes\":[{\"key\":\"k\",\"value\":{\"bytesValue\":\"AQI===\"}}]", "bytesValue: invalid base64", 0, 0},
    {"\"attributes\":[{\"key\":\"k\",\"value\":{\"bytesValue\":\"A QI\"}}]", "bytesValue: invalid base64", 0, 0},
    {"\"attributes\":[{\"key\":\"k\",\"value\":\"v\"}]", "attributes[0].value: expected an object", 0, 0},
    {"\"droppedAttributesCount\":4294967296", "droppedAttributesCount: expected an unsigned 32-bit", 0, 0},
    {"\"flags\":\"4294967295\"", NULL, 0, 0},
    {"\"unknownField\":{\"deep\":[1,{}]},\"AlsoUnknown\":1,\"trace_Id\":5", NULL, 0, 0},
    {"!{\"resourceSpans\":[]}", NULL, 0, 0},
    {"!{\"resourceSpans\":[{}],\"resourceSpans\":[]}", NULL, 0, 0},
    {"!{}", "Invalid OTLP payload: expected object with resourceSpans array", 0, 0},
    {"![]", "Invalid OTLP payload: expected object with resourceSpans array", 0, 0},
    {"!{\"resourceSpans\":{}}", "Invalid OTLP payload: expected object with resourceSpans array", 0, 0},
    {"!{\"resourceSpans\":null}", "Invalid OTLP payload: expected object with resourceSpans array", 0, 0},
    {"!{\"resourceMetrics\":[]}", "Invalid OTLP payload: expected object with resourceSpans array", 0, 0},
    {"!{\"resourceSpans\":[5]}", "Invalid OTLP payload: resourceSpans[0]: expected an object", 0, 0},
    {"!{\"resourceSpans\":[]", "Invalid JSON: ", 0, 0},
    {"!", "Invalid JSON: ", 0, 0},
    {"!{\"resourceSpans\":[]} x", "Invalid JSON: ", 0, 0},
    {"!{\"resourceSpans\":[{\"schemaUrl\":\"\\u0000\"}]}", "Invalid JSON: ", 0, 0},
    {"!{\"resourceSpans\":[{\"schemaUrl\":\"\xff\"}]}", "Invalid JSON: ", 0, 0},
};

START_TEST(json_span_members)
{
    char body[1024];
    dps_arena_t a;
    dps_otlp_traces_t *req = NULL;
    const char *err = NULL;
    dps_otlp_status_t st;
    span_t *sp;

    if (span_cases[_i].span[0] == '!')
        snprintf(body, sizeof(body), "%s", span_cases[_i].span + 1);
    else
        snprintf(body, sizeof(body), "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{%s}]}]}]}", span_cases[_i].span);
    dps_arena_init(&a, 0);
    st = traces(&a, DPS_OTLP_JSON, DPS_OTLP_IDENTITY, body, strlen(body), &req, &err);
    if (span_cases[_i].err != NULL) {
        ck_assert_msg(st == DPS_OTLP_UNDECODABLE, "%s decoded", body);
        ck_assert_msg(strstr(err, span_cases[_i].err) != NULL, "%s: got \"%s\"", body, err);
        ck_assert_msg(strncmp(err, "Invalid ", 8) == 0, "%s", err);
    } else {
        ck_assert_msg(st == DPS_OTLP_OK, "%s: %s", body, err);
    }
    if (span_cases[_i].field != 0) {
        const any_t *v;
        sp = req->resource_spans[0]->scope_spans[0]->spans[0];
        v = sp->n_attributes > 0 ? sp->attributes[0]->value : NULL;
        switch (span_cases[_i].field) {
        case 1:
            ck_assert_int_eq(sp->kind, (int)span_cases[_i].want);
            break;
        case 3:
            ck_assert_int_eq(sp->status->code, (int)span_cases[_i].want);
            break;
        case 4:
            ck_assert_int_eq(v->value_case, OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE);
            ck_assert(v->int_value == (int64_t)span_cases[_i].want);
            break;
        case 5:
            ck_assert_int_eq(v->value_case, OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_DOUBLE_VALUE);
            if (isnan(span_cases[_i].want))
                ck_assert(isnan(v->double_value));
            else
                ck_assert_double_eq(v->double_value, span_cases[_i].want);
            break;
        case 6:
            ck_assert_int_eq(v->value_case, OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BYTES_VALUE);
            ck_assert_uint_eq(v->bytes_value.len, (size_t)span_cases[_i].want);
            break;
        }
    }
    dps_arena_free(&a);
}
END_TEST

/* 64-bit unsigned values (fixed64 times): decimal strings, JSON numbers, integral reals. */
static const struct {
    const char *member, *err;
    uint64_t want;
} nanos_cases[] = {
    {"\"startTimeUnixNano\":\"1700000000123456789\"", NULL, 1700000000123456789ull},
    {"\"startTimeUnixNano\":1700000000123456789", NULL, 1700000000123456789ull},
    {"\"start_time_unix_nano\":\"18446744073709551615\"", NULL, UINT64_MAX},
    {"\"startTimeUnixNano\":1.7e18", NULL, 1700000000000000000ull},
    {"\"startTimeUnixNano\":\"18446744073709551616\"", "startTimeUnixNano: expected an unsigned 64-bit integer", 0},
    {"\"startTimeUnixNano\":\"-1\"", "startTimeUnixNano: expected an unsigned", 0},
    {"\"startTimeUnixNano\":-1", "startTimeUnixNano: expected an unsigned", 0},
    {"\"startTimeUnixNano\":\"12ab\"", "startTimeUnixNano: expected an unsigned", 0},
    {"\"startTimeUnixNano\":\" 12\"", "startTimeUnixNano: expected an unsigned", 0},
    {"\"startTimeUnixNano\":1.5", "startTimeUnixNano: expected an unsigned", 0},
    {"\"startTimeUnixNano\":true", "startTimeUnixNano: expected an unsigned", 0},
};

START_TEST(json_fixed64)
{
    char body[256];
    dps_arena_t a;
    dps_otlp_traces_t *req = NULL;
    const char *err = NULL;
    dps_otlp_status_t st;

    snprintf(body, sizeof(body), "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{%s}]}]}]}", nanos_cases[_i].member);
    dps_arena_init(&a, 0);
    st = traces(&a, DPS_OTLP_JSON, DPS_OTLP_IDENTITY, body, strlen(body), &req, &err);
    if (nanos_cases[_i].err != NULL) {
        ck_assert_int_eq(st, DPS_OTLP_UNDECODABLE);
        ck_assert_msg(strstr(err, nanos_cases[_i].err) != NULL, "%s: got \"%s\"", body, err);
    } else {
        ck_assert_msg(st == DPS_OTLP_OK, "%s: %s", body, err);
        ck_assert_uint_eq(req->resource_spans[0]->scope_spans[0]->spans[0]->start_time_unix_nano, nanos_cases[_i].want);
    }
    dps_arena_free(&a);
}
END_TEST

static const struct {
    const char *body, *err;
} metric_cases[] = {
    {"{\"resourceMetrics\":[]}", NULL},
    {"{\"resource_metrics\":[]}", NULL},
    {"{\"resourceSpans\":[]}", "Invalid OTLP payload: expected object with resourceMetrics array"},
    {"{\"resourceMetrics\":\"x\"}", "Invalid OTLP payload: expected object with resourceMetrics array"},
    {"{\"resourceMetrics\":[{\"scopeMetrics\":[{\"metrics\":[{\"gauge\":{},\"sum\":{}}]}]}]}",
     "resourceMetrics[0].scopeMetrics[0].metrics[0].sum: more than one member of a oneof is set"},
    {"{\"resourceMetrics\":[{\"scopeMetrics\":[{\"metrics\":[{\"gauge\":{\"dataPoints\":[{\"asInt\":\"1\",\"asDouble\":1}]}}]}]}]}",
     "dataPoints[0].asDouble: more than one member of a oneof is set"},
    {"{\"resourceMetrics\":[{\"scopeMetrics\":[{\"metrics\":[{\"sum\":{\"aggregationTemporality\":\"CUMULATIVE\"}}]}]}]}",
     "sum.aggregationTemporality: unknown enum value name"},
    {"{\"resourceMetrics\":[{\"scopeMetrics\":[{\"metrics\":[{\"histogram\":{\"dataPoints\":[{\"bucketCounts\":[\"1\",\"x\"]}]}}]}]"
     "}]}",
     "histogram.dataPoints[0].bucketCounts[1]: expected an unsigned 64-bit integer"},
    {"{\"resourceMetrics\":[{\"scopeMetrics\":[{\"metrics\":[{\"histogram\":{\"dataPoints\":[{\"explicitBounds\":[true]}]}}]}]}]}",
     "explicitBounds[0]: expected a number"},
    {"{\"resourceMetrics\":[{\"scopeMetrics\":[{\"metrics\":[{\"exponentialHistogram\":{\"dataPoints\":[{\"scale\":2147483648}]}}]}"
     "]}]}",
     "scale: expected a 32-bit integer"},
    {"{\"resourceMetrics\":[{\"scopeMetrics\":[{\"metrics\":[{\"gauge\":{\"dataPoints\":[{\"exemplars\":[{\"spanId\":\"xyz0\"}]}]}}"
     "]}]}]}",
     "exemplars[0].spanId: invalid hex"},
};

START_TEST(json_metric_cases)
{
    dps_arena_t a;
    dps_otlp_metrics_t *req;
    const char *err = NULL;
    dps_otlp_status_t st;

    dps_arena_init(&a, 0);
    st = metrics(&a, DPS_OTLP_JSON, DPS_OTLP_IDENTITY, metric_cases[_i].body, strlen(metric_cases[_i].body), &req, &err);
    if (metric_cases[_i].err == NULL) {
        ck_assert_msg(st == DPS_OTLP_OK, "%s: %s", metric_cases[_i].body, err);
    } else {
        ck_assert_int_eq(st, DPS_OTLP_UNDECODABLE);
        ck_assert_msg(strstr(err, metric_cases[_i].err) != NULL, "got \"%s\"", err);
    }
    dps_arena_free(&a);
}
END_TEST

/* ---- nesting: protobuf-c recurses without a limit, so both decoders stop at DPS_OTLP_MAX_DEPTH ---- */

/* A buffer written from its end towards its start, so nested messages are wrapped inside out. */
typedef struct {
    uint8_t *buf;
    size_t cap, start;
} rbuf_t;

static void prepend_varint(rbuf_t *r, uint64_t v)
{
    uint8_t tmp[10];
    size_t n = 0;

    do {
        tmp[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v != 0);
    if (r->start < n) /* not ck_assert: it costs a write per call, and this runs a million times */
        abort();
    r->start -= n;
    memcpy(r->buf + r->start, tmp, n);
}

/* Wrap everything written so far as length-delimited field `number`. */
static void wrap(rbuf_t *r, unsigned number)
{
    prepend_varint(r, r->cap - r->start);
    prepend_varint(r, (uint64_t)number << 3 | 2);
}

/* A trace request whose first span has one attribute nested `levels` arrayValues deep. */
static uint8_t *nested_protobuf(int levels, size_t *len)
{
    rbuf_t r = {malloc(16 * 1024 * 1024), 16 * 1024 * 1024, 16 * 1024 * 1024};
    r.start -= 1, r.buf[r.start] = 'x';
    wrap(&r, 1); /* AnyValue.string_value */
    for (int i = 0; i < levels; i++) {
        wrap(&r, 1); /* ArrayValue.values */
        wrap(&r, 5); /* AnyValue.array_value */
    }
    wrap(&r, 2); /* KeyValue.value */
    wrap(&r, 9); /* Span.attributes */
    wrap(&r, 2); /* ScopeSpans.spans */
    wrap(&r, 2); /* ResourceSpans.scope_spans */
    wrap(&r, 1); /* ExportTraceServiceRequest.resource_spans */
    *len = r.cap - r.start;
    memmove(r.buf, r.buf + r.start, *len);
    return r.buf;
}

static char *nested_json(int levels)
{
    size_t cap = (size_t)levels * 40 + 256, o = 0;
    char *s = malloc(cap);

    o += (size_t)sprintf(s + o, "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"attributes\":[{\"value\":");
    for (int i = 0; i < levels; i++)
        o += (size_t)sprintf(s + o, "{\"arrayValue\":{\"values\":[");
    o += (size_t)sprintf(s + o, "{\"stringValue\":\"x\"}");
    for (int i = 0; i < levels; i++)
        o += (size_t)sprintf(s + o, "]}}");
    sprintf(s + o, "}]}]}]}]}");
    return s;
}

/* request 1, resource spans 2, scope spans 3, span 4, key value 5, any value 6, then 2 per level */
START_TEST(nesting_limit)
{
    const int ok_levels = (DPS_OTLP_MAX_DEPTH - 6) / 2, bad_levels = ok_levels + 1;
    dps_arena_t a;
    dps_otlp_traces_t *req;
    const char *err;
    size_t len;
    uint8_t *pb;
    char *json;

    dps_arena_init(&a, 0);
    pb = nested_protobuf(ok_levels, &len);
    ck_assert_int_eq(traces(&a, DPS_OTLP_PROTOBUF, DPS_OTLP_IDENTITY, pb, len, &req, &err), DPS_OTLP_OK);
    json = nested_json(ok_levels);
    ck_assert_int_eq(traces(&a, DPS_OTLP_JSON, DPS_OTLP_IDENTITY, json, strlen(json), &req, &err), DPS_OTLP_OK);
    assert_same(&req->base, pb, len);
    free(pb), free(json);

    pb = nested_protobuf(bad_levels, &len);
    ck_assert_int_eq(traces(&a, DPS_OTLP_PROTOBUF, DPS_OTLP_IDENTITY, pb, len, &req, &err), DPS_OTLP_UNDECODABLE);
    ck_assert_str_eq(err, "Invalid OTLP payload: messages nested more than 100 levels deep");
    json = nested_json(bad_levels);
    ck_assert_int_eq(traces(&a, DPS_OTLP_JSON, DPS_OTLP_IDENTITY, json, strlen(json), &req, &err), DPS_OTLP_UNDECODABLE);
    ck_assert_msg(strstr(err, "messages nested more than 100 levels deep") != NULL, "%s", err);
    free(pb), free(json);

    /* deep enough to overflow the stack inside protobuf-c if it were let through */
    pb = nested_protobuf(500000, &len);
    ck_assert_int_eq(traces(&a, DPS_OTLP_PROTOBUF, DPS_OTLP_IDENTITY, pb, len, &req, &err), DPS_OTLP_UNDECODABLE);
    free(pb);
    json = nested_json(5000); /* jansson's own limit (2048) answers first */
    ck_assert_int_eq(traces(&a, DPS_OTLP_JSON, DPS_OTLP_IDENTITY, json, strlen(json), &req, &err), DPS_OTLP_UNDECODABLE);
    free(json);
    dps_arena_free(&a);
}
END_TEST

/* ---- protobuf specifics ---- */

START_TEST(protobuf_malformed_and_utf8)
{
    static const uint8_t truncated[] = {0x0a, 0x05, 0x12, 0x03};
    static const uint8_t group[] = {0x0b, 0x0c};
    static const uint8_t zero_tag[] = {0x00, 0x01};
    static const uint8_t long_zero_tag[] = {0x80, 0x00, 0x00};       /* field 0 in two bytes: protobuf-c would keep it */
    static const uint8_t unknown[] = {0xf8, 0x07, 0x01, 0x0a, 0x00}; /* field 127 varint, then an empty ResourceSpans */
    /* ResourceSpans { schema_url (3) = "a\xff\xc3(b" } : invalid UTF-8 repaired */
    static const uint8_t bad_utf8[] = {0x0a, 0x07, 0x1a, 0x05, 'a', 0xff, 0xc3, '(', 'b'};
    static const uint8_t nul[] = {0x0a, 0x05, 0x1a, 0x03, 'a', 0x00, 'b'};
    dps_arena_t a;
    dps_otlp_traces_t *req;
    const char *err;

    dps_arena_init(&a, 0);
    ck_assert_int_eq(traces(&a, DPS_OTLP_PROTOBUF, DPS_OTLP_IDENTITY, "", 0, &req, &err), DPS_OTLP_OK);
    ck_assert_uint_eq(req->n_resource_spans, 0);
    ck_assert_int_eq(traces(&a, DPS_OTLP_PROTOBUF, DPS_OTLP_IDENTITY, truncated, sizeof(truncated), &req, &err),
                     DPS_OTLP_UNDECODABLE);
    ck_assert_str_eq(err, "Invalid OTLP payload: malformed protobuf");
    ck_assert_int_eq(traces(&a, DPS_OTLP_PROTOBUF, DPS_OTLP_IDENTITY, group, sizeof(group), &req, &err), DPS_OTLP_UNDECODABLE);
    ck_assert_int_eq(traces(&a, DPS_OTLP_PROTOBUF, DPS_OTLP_IDENTITY, zero_tag, sizeof(zero_tag), &req, &err),
                     DPS_OTLP_UNDECODABLE);
    ck_assert_int_eq(traces(&a, DPS_OTLP_PROTOBUF, DPS_OTLP_IDENTITY, long_zero_tag, sizeof(long_zero_tag), &req, &err),
                     DPS_OTLP_UNDECODABLE);
    ck_assert_int_eq(traces(&a, DPS_OTLP_PROTOBUF, DPS_OTLP_IDENTITY, unknown, sizeof(unknown), &req, &err), DPS_OTLP_OK);
    ck_assert_uint_eq(req->n_resource_spans, 1);
    ck_assert_int_eq(traces(&a, DPS_OTLP_PROTOBUF, DPS_OTLP_IDENTITY, bad_utf8, sizeof(bad_utf8), &req, &err), DPS_OTLP_OK);
    ck_assert_str_eq(req->resource_spans[0]->schema_url, "a\xef\xbf\xbd\xef\xbf\xbd(b");
    ck_assert_int_eq(traces(&a, DPS_OTLP_PROTOBUF, DPS_OTLP_IDENTITY, nul, sizeof(nul), &req, &err), DPS_OTLP_OK);
    ck_assert_str_eq(req->resource_spans[0]->schema_url, "a"); /* C strings end at a NUL */
    /* a JSON body is not protobuf */
    ck_assert_int_eq(traces(&a, DPS_OTLP_PROTOBUF, DPS_OTLP_IDENTITY, TRACE_JSON, strlen(TRACE_JSON), &req, &err),
                     DPS_OTLP_UNDECODABLE);
    dps_arena_free(&a);
}
END_TEST

/* ---- gzip ---- */

START_TEST(gzip_round_trip_and_corruption)
{
    dps_arena_t a;
    const uint8_t *out;
    size_t glen, olen, n = 300000;
    uint8_t *data = malloc(n), *gz, *two;
    const char *err;

    for (size_t i = 0; i < n; i++)
        data[i] = (uint8_t)(i * 7 + i / 1000);
    gz = gzip(data, n, &glen);
    dps_arena_init(&a, 0);
    ck_assert_int_eq(dps_otlp_inflate(&a, gz, glen, LIMIT, &out, &olen, &err), DPS_OTLP_OK);
    ck_assert_uint_eq(olen, n);
    ck_assert_int_eq(memcmp(out, data, n), 0);

    /* exactly at the limit is fine, one byte more is too large */
    ck_assert_int_eq(dps_otlp_inflate(&a, gz, glen, n, &out, &olen, &err), DPS_OTLP_OK);
    ck_assert_int_eq(dps_otlp_inflate(&a, gz, glen, n - 1, &out, &olen, &err), DPS_OTLP_TOO_LARGE);
    ck_assert_str_eq(err, "Payload too large: more than 299999 bytes once decompressed");

    /* a trailer announcing a wrong size only changes the first buffer's size */
    gz[glen - 1] ^= 0x40;
    ck_assert_int_eq(dps_otlp_inflate(&a, gz, glen, LIMIT, &out, &olen, &err), DPS_OTLP_UNDECODABLE);
    ck_assert_msg(strstr(err, "Invalid gzip body: ") == err, "%s", err); /* the length check fails */
    gz[glen - 1] ^= 0x40;
    gz[glen - 8] ^= 1; /* CRC */
    ck_assert_int_eq(dps_otlp_inflate(&a, gz, glen, LIMIT, &out, &olen, &err), DPS_OTLP_UNDECODABLE);
    gz[glen - 8] ^= 1;

    for (size_t cut = 0; cut < glen; cut += glen / 7 + 1) {
        ck_assert_int_eq(dps_otlp_inflate(&a, gz, cut, LIMIT, &out, &olen, &err), DPS_OTLP_UNDECODABLE);
        ck_assert_msg(strncmp(err, "Invalid gzip body: ", 19) == 0, "%s", err);
    }
    ck_assert_int_eq(dps_otlp_inflate(&a, gz, glen - 1, LIMIT, &out, &olen, &err), DPS_OTLP_UNDECODABLE);
    ck_assert_str_eq(err, "Invalid gzip body: truncated");
    ck_assert_int_eq(dps_otlp_inflate(&a, "not gzip at all", 15, LIMIT, &out, &olen, &err), DPS_OTLP_UNDECODABLE);
    ck_assert_str_eq(err, "Invalid gzip body: incorrect header check");

    /* two members are one body; garbage after a member is not */
    two = malloc(glen * 2 + 1);
    memcpy(two, gz, glen), memcpy(two + glen, gz, glen);
    ck_assert_int_eq(dps_otlp_inflate(&a, two, glen * 2, LIMIT, &out, &olen, &err), DPS_OTLP_OK);
    ck_assert_uint_eq(olen, 2 * n);
    ck_assert_int_eq(memcmp(out + n, data, n), 0);
    two[glen] = 'x';
    ck_assert_int_eq(dps_otlp_inflate(&a, two, glen + 1, LIMIT, &out, &olen, &err), DPS_OTLP_UNDECODABLE);
    free(two);
    dps_arena_free(&a);
    free(gz);
    free(data);
}
END_TEST

/* 1 GiB of zeros in about 1 MiB of gzip, made from one deflate block repeated (each block back-
 * references only itself), so the test never holds the gigabyte. */
static uint8_t *gzip_bomb(size_t *len, uint64_t *inflated)
{
    const size_t block = 1024 * 1024, copies = 1024;
    uint8_t *zeros = calloc(1, block), *raw = malloc(block), *out, fin[16];
    z_stream z;
    size_t rawlen, finlen, o = 0;
    uLong crc = crc32(0, NULL, 0), crc_block;

    memset(&z, 0, sizeof(z));
    ck_assert_int_eq(deflateInit2(&z, 9, Z_DEFLATED, -MAX_WBITS, 9, Z_DEFAULT_STRATEGY), Z_OK);
    z.next_in = zeros, z.avail_in = (uInt)block, z.next_out = raw, z.avail_out = (uInt)block;
    ck_assert_int_eq(deflate(&z, Z_FULL_FLUSH), Z_OK);
    rawlen = block - z.avail_out;
    z.next_out = fin, z.avail_out = sizeof(fin);
    ck_assert_int_eq(deflate(&z, Z_FINISH), Z_STREAM_END);
    finlen = sizeof(fin) - z.avail_out;
    deflateEnd(&z);

    out = malloc(10 + rawlen * copies + finlen + 8);
    memcpy(out, "\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03", 10), o = 10;
    crc_block = crc32(0, zeros, (uInt)block);
    for (size_t i = 0; i < copies; i++) {
        memcpy(out + o, raw, rawlen), o += rawlen;
        crc = crc32_combine(crc, crc_block, (z_off_t)block);
    }
    memcpy(out + o, fin, finlen), o += finlen;
    for (int i = 0; i < 4; i++)
        out[o++] = (uint8_t)(crc >> (8 * i));
    for (int i = 0; i < 4; i++)
        out[o++] = (uint8_t)((uint64_t)block * copies >> (8 * i)); /* ISIZE: 2^30 */
    free(zeros), free(raw);
    *len = o;
    *inflated = (uint64_t)block * copies;
    return out;
}

START_TEST(gzip_bomb_is_too_large)
{
    dps_arena_t a;
    const uint8_t *out;
    size_t len, olen;
    uint64_t inflated, total = 0;
    uint8_t *bomb = gzip_bomb(&len, &inflated), *sink = malloc(1 << 20);
    dps_otlp_traces_t *req;
    const char *err;
    z_stream z;
    int rc;

    ck_assert_uint_lt(len, 2 * 1024 * 1024);
    /* the bomb is real: a streaming inflate (into a 1 MiB window, not kept) yields zeros well past the
     * limit (inflating the whole GiB, which ends with a valid trailer, takes seconds: checked once by hand) */
    memset(&z, 0, sizeof(z));
    ck_assert_int_eq(inflateInit2(&z, 16 + MAX_WBITS), Z_OK);
    z.next_in = bomb, z.avail_in = (uInt)len;
    do {
        z.next_out = sink, z.avail_out = 1 << 20;
        rc = inflate(&z, Z_NO_FLUSH);
        total += (1 << 20) - z.avail_out;
        ck_assert(sink[0] == 0 && memcmp(sink, sink + 1, (1 << 20) - 1) == 0);
    } while (rc == Z_OK && total < 3 * (uint64_t)LIMIT);
    ck_assert_int_eq(rc, Z_OK);
    ck_assert_uint_eq(total, 3 * (uint64_t)LIMIT);
    ck_assert_uint_eq(inflated, 1u << 30);
    inflateEnd(&z);

    dps_arena_init(&a, 0);
    ck_assert_int_eq(dps_otlp_inflate(&a, bomb, len, LIMIT, &out, &olen, &err), DPS_OTLP_TOO_LARGE);
    ck_assert_uint_le(a.total, LIMIT + 1 + 64 * 1024); /* one buffer (the trailer's size, capped), never the gigabyte */
    dps_arena_free(&a);
    /* a trailer announcing less than the truth: buffers grow, never past twice the limit in all */
    for (uint32_t lie = 1000; lie < LIMIT; lie *= 3) {
        for (int i = 0; i < 4; i++)
            bomb[len - 4 + i] = (uint8_t)(lie >> (8 * i));
        ck_assert_int_eq(dps_otlp_inflate(&a, bomb, len, LIMIT, &out, &olen, &err), DPS_OTLP_TOO_LARGE);
        ck_assert_uint_le(a.total, 2 * (LIMIT + 1) + 64 * 1024);
        dps_arena_free(&a);
    }
    ck_assert_int_eq(traces(&a, DPS_OTLP_PROTOBUF, DPS_OTLP_GZIP, bomb, len, &req, &err), DPS_OTLP_TOO_LARGE);
    ck_assert_str_eq(err, "Payload too large: more than 20971520 bytes once decompressed");
    dps_arena_free(&a);
    free(sink), free(bomb);
}
END_TEST

START_TEST(limits)
{
    dps_otlp_body_t body = {DPS_OTLP_JSON, DPS_OTLP_IDENTITY, TRACE_JSON, strlen(TRACE_JSON), 100};
    dps_otlp_traces_t *req;
    const char *err;
    dps_arena_t a;

    /* an identity body over the limit */
    dps_arena_init(&a, 0);
    ck_assert_int_eq(dps_otlp_decode_traces(&a, &body, &req, &err), DPS_OTLP_TOO_LARGE);
    ck_assert_str_eq(err, "Payload too large: more than 100 bytes");
    dps_arena_free(&a);

    /* an arena too small for the decoded request: too large as well, for both decoders */
    dps_arena_init(&a, 8 * 1024 + 64);
    body.limit = LIMIT;
    ck_assert_int_eq(dps_otlp_decode_traces(&a, &body, &req, &err), DPS_OTLP_TOO_LARGE);
    ck_assert_str_eq(err, "Payload too large to decode");
    dps_arena_free(&a);
    {
        size_t plen;
        uint8_t *pb = trace_expected(&plen);
        dps_otlp_body_t pbody = {DPS_OTLP_PROTOBUF, DPS_OTLP_IDENTITY, pb, plen, LIMIT};
        dps_arena_init(&a, 1024);
        ck_assert_int_eq(dps_otlp_decode_traces(&a, &pbody, &req, &err), DPS_OTLP_TOO_LARGE);
        dps_arena_free(&a);
        free(pb);
    }
}
END_TEST

/* ---- header helpers ---- */

static const struct {
    const char *value;
    int format, encoding;
} headers[] = {
    {"application/x-protobuf", DPS_OTLP_PROTOBUF, DPS_OTLP_ENCODING_UNSUPPORTED},
    {"Application/X-Protobuf ; foo=bar", DPS_OTLP_PROTOBUF, DPS_OTLP_ENCODING_UNSUPPORTED},
    {"application/json", DPS_OTLP_JSON, DPS_OTLP_ENCODING_UNSUPPORTED},
    {"application/json; charset=utf-8", DPS_OTLP_JSON, DPS_OTLP_ENCODING_UNSUPPORTED},
    {"application/protobuf", DPS_OTLP_FORMAT_UNSUPPORTED, DPS_OTLP_ENCODING_UNSUPPORTED},
    {"text/plain", DPS_OTLP_FORMAT_UNSUPPORTED, DPS_OTLP_ENCODING_UNSUPPORTED},
    {"application/jsonx", DPS_OTLP_FORMAT_UNSUPPORTED, DPS_OTLP_ENCODING_UNSUPPORTED},
    {"", DPS_OTLP_FORMAT_UNSUPPORTED, DPS_OTLP_IDENTITY},
    {"gzip", DPS_OTLP_FORMAT_UNSUPPORTED, DPS_OTLP_GZIP},
    {" GZIP ", DPS_OTLP_FORMAT_UNSUPPORTED, DPS_OTLP_GZIP},
    {"x-gzip", DPS_OTLP_FORMAT_UNSUPPORTED, DPS_OTLP_GZIP},
    {"identity", DPS_OTLP_FORMAT_UNSUPPORTED, DPS_OTLP_IDENTITY},
    {"deflate", DPS_OTLP_FORMAT_UNSUPPORTED, DPS_OTLP_ENCODING_UNSUPPORTED},
    {"br", DPS_OTLP_FORMAT_UNSUPPORTED, DPS_OTLP_ENCODING_UNSUPPORTED},
    {"gzip, br", DPS_OTLP_FORMAT_UNSUPPORTED, DPS_OTLP_ENCODING_UNSUPPORTED},
};

START_TEST(header_values)
{
    const char *v = headers[_i].value;

    ck_assert_int_eq(dps_otlp_content_type(v, strlen(v)), headers[_i].format);
    ck_assert_int_eq(dps_otlp_content_encoding(v, strlen(v)), headers[_i].encoding);
    ck_assert_int_eq(dps_otlp_content_encoding(NULL, 0), DPS_OTLP_IDENTITY);
    ck_assert_int_eq(dps_otlp_content_type(NULL, 0), DPS_OTLP_FORMAT_UNSUPPORTED);
}
END_TEST

/* ---- responses ---- */

START_TEST(responses)
{
    dps_arena_t a;
    dps_jsonbuf_t b;
    const uint8_t *out;
    size_t len;
    Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceResponse *tr;
    Opentelemetry__Proto__Collector__Metrics__V1__ExportMetricsServiceResponse *mr;

    dps_arena_init(&a, 0);
    ck_assert_int_eq(dps_otlp_response_protobuf(&a, DPS_OTLP_TRACES, 3, "Span \"x\" skipped", &out, &len), 0);
    tr = opentelemetry__proto__collector__trace__v1__export_trace_service_response__unpack(dps_arena_pb(&a), len, out);
    ck_assert_ptr_nonnull(tr);
    ck_assert_ptr_nonnull(tr->partial_success);
    ck_assert_int_eq(tr->partial_success->rejected_spans, 3);
    ck_assert_str_eq(tr->partial_success->error_message, "Span \"x\" skipped");

    ck_assert_int_eq(dps_otlp_response_protobuf(&a, DPS_OTLP_METRICS, -1, "Invalid OTLP payload", &out, &len), 0);
    mr = opentelemetry__proto__collector__metrics__v1__export_metrics_service_response__unpack(dps_arena_pb(&a), len, out);
    ck_assert_ptr_nonnull(mr);
    ck_assert_int_eq(mr->partial_success->rejected_data_points, -1);
    ck_assert_str_eq(mr->partial_success->error_message, "Invalid OTLP payload");

    ck_assert_int_eq(dps_otlp_response_protobuf(&a, DPS_OTLP_METRICS, 0, "warning only", &out, &len), 0);
    mr = opentelemetry__proto__collector__metrics__v1__export_metrics_service_response__unpack(dps_arena_pb(&a), len, out);
    ck_assert_int_eq(mr->partial_success->rejected_data_points, 0);
    ck_assert_str_eq(mr->partial_success->error_message, "warning only");

    ck_assert_int_eq(dps_otlp_response_protobuf(&a, DPS_OTLP_TRACES, 0, NULL, &out, &len), 0);
    ck_assert_uint_eq(len, 0); /* full success: an empty message */
    tr = opentelemetry__proto__collector__trace__v1__export_trace_service_response__unpack(dps_arena_pb(&a), len, out);
    ck_assert_ptr_nonnull(tr);
    ck_assert_ptr_null(tr->partial_success);
    dps_arena_free(&a);

    dps_jsonbuf_init(&b, 0);
    dps_otlp_response_json(&b, DPS_OTLP_METRICS, 0, "Service \"api\" exists with format \"default\" \xe2\x80\x94 x");
    dps_jsonbuf_lit(&b, "\n");
    dps_otlp_response_json(&b, DPS_OTLP_TRACES, -1, "Invalid OTLP payload: expected object with resourceSpans array");
    dps_jsonbuf_lit(&b, "\n");
    dps_otlp_response_json(&b, DPS_OTLP_TRACES, 2, NULL);
    dps_jsonbuf_raw(&b, "", 1);
    ck_assert(!b.oom);
    ck_assert_str_eq(b.data,
                     "{\"partialSuccess\":{\"rejectedDataPoints\":0,\"errorMessage\":\"Service \\\"api\\\" exists with format "
                     "\\\"default\\\" \xe2\x80\x94 x\"}}\n"
                     "{\"partialSuccess\":{\"rejectedSpans\":-1,\"errorMessage\":\"Invalid OTLP payload: expected object "
                     "with resourceSpans array\"}}\n"
                     "{\"partialSuccess\":{\"rejectedSpans\":2,\"errorMessage\":\"\"}}");
    dps_jsonbuf_free(&b);
}
END_TEST

/* ---- attributes as OTLP JSON ---- */

START_TEST(attributes_json)
{
    static const char want[] =
        "[{\"key\":\"s\",\"value\":{\"stringValue\":\"\xc3\xa9 \\\"q\\\"\"}},"
        "{\"key\":\"b\",\"value\":{\"boolValue\":true}},"
        "{\"key\":\"i\",\"value\":{\"intValue\":\"-42\"}},"
        "{\"key\":\"d\",\"value\":{\"doubleValue\":2.5}},"
        "{\"key\":\"a\",\"value\":{\"arrayValue\":{\"values\":[{\"stringValue\":\"x\"},{\"intValue\":\"7\"}]}}},"
        "{\"key\":\"kv\",\"value\":{\"kvlistValue\":{\"values\":[{\"key\":\"inner\",\"value\":{\"boolValue\":"
        "false}}]}}},"
        "{\"key\":\"by\",\"value\":{\"bytesValue\":\"AQID\"}},"
        "{\"key\":\"empty\",\"value\":{}}]";
    static const char odd[] = "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"attributes\":["
                              "{\"key\":\"nan\",\"value\":{\"doubleValue\":\"NaN\"}},"
                              "{\"key\":\"inf\",\"value\":{\"doubleValue\":\"-Infinity\"}},"
                              "{\"key\":\"tenth\",\"value\":{\"doubleValue\":0.1}},"
                              "{\"key\":\"big\",\"value\":{\"doubleValue\":1e300}},"
                              "{\"key\":\"max\",\"value\":{\"intValue\":\"9223372036854775807\"}},"
                              "{\"key\":\"b1\",\"value\":{\"bytesValue\":\"AQ==\"}},"
                              "{\"key\":\"b2\",\"value\":{\"bytesValue\":\"AQI=\"}},"
                              "{\"key\":\"nokey\"},"
                              "{\"key\":\"ctl\\n\\u0001\",\"value\":{\"arrayValue\":{}}},"
                              "{\"key\":\"kvl\",\"value\":{\"kvlistValue\":{\"values\":[]}}}]}]}]}]}";
    dps_arena_t a;
    dps_jsonbuf_t b;
    dps_otlp_traces_t *req;
    span_t *sp;
    json_t *parsed;

    dps_arena_init(&a, 0);
    req = traces_json_ok(&a, TRACE_JSON);
    sp = req->resource_spans[0]->scope_spans[0]->spans[0];
    dps_jsonbuf_init(&b, 0);
    dps_otlp_attributes_json(&b, sp->attributes, sp->n_attributes);
    dps_jsonbuf_raw(&b, "", 1);
    ck_assert_str_eq(b.data, want);
    dps_jsonbuf_free(&b);

    /* the text decodes back to the same attributes */
    {
        char body[2048];
        dps_otlp_traces_t *again;
        size_t n1, n2;
        uint8_t *p1, *p2;
        snprintf(body, sizeof(body), "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"attributes\":%s}]}]}]}", want);
        again = traces_json_ok(&a, body);
        p1 = packed(&sp->attributes[3]->base, &n1);
        p2 = packed(&again->resource_spans[0]->scope_spans[0]->spans[0]->attributes[3]->base, &n2);
        ck_assert(n1 == n2 && memcmp(p1, p2, n1) == 0);
        free(p1), free(p2);
    }

    req = traces_json_ok(&a, odd);
    sp = req->resource_spans[0]->scope_spans[0]->spans[0];
    dps_jsonbuf_init(&b, 0);
    dps_otlp_attributes_json(&b, sp->attributes, sp->n_attributes);
    dps_jsonbuf_raw(&b, "", 1);
    ck_assert_str_eq(b.data, "[{\"key\":\"nan\",\"value\":{\"doubleValue\":\"NaN\"}},"
                             "{\"key\":\"inf\",\"value\":{\"doubleValue\":\"-Infinity\"}},"
                             "{\"key\":\"tenth\",\"value\":{\"doubleValue\":0.1}},"
                             "{\"key\":\"big\",\"value\":{\"doubleValue\":1e+300}},"
                             "{\"key\":\"max\",\"value\":{\"intValue\":\"9223372036854775807\"}},"
                             "{\"key\":\"b1\",\"value\":{\"bytesValue\":\"AQ==\"}},"
                             "{\"key\":\"b2\",\"value\":{\"bytesValue\":\"AQI=\"}},"
                             "{\"key\":\"nokey\"},"
                             "{\"key\":\"ctl\\n\\u0001\",\"value\":{\"arrayValue\":{}}},"
                             "{\"key\":\"kvl\",\"value\":{\"kvlistValue\":{}}}]");
    parsed = json_loads(b.data, 0, NULL);
    ck_assert_ptr_nonnull(parsed);
    json_decref(parsed);
    dps_jsonbuf_free(&b);

    dps_jsonbuf_init(&b, 0);
    dps_otlp_attributes_json(&b, NULL, 0);
    dps_jsonbuf_raw(&b, "", 1);
    ck_assert_str_eq(b.data, "[]");
    dps_jsonbuf_free(&b);
    dps_arena_free(&a);
}
END_TEST

/* Decoding JSON must leave jansson's allocator as it was for the rest of the process. */
START_TEST(jansson_allocator_restored)
{
    json_malloc_t m1, m2;
    json_free_t f1, f2;
    dps_arena_t a;
    json_t *j;

    json_get_alloc_funcs(&m1, &f1);
    dps_arena_init(&a, 0);
    (void)traces_json_ok(&a, TRACE_JSON);
    dps_arena_free(&a);
    json_get_alloc_funcs(&m2, &f2);
    ck_assert(m1 == m2 && f1 == f2);
    j = json_pack("{s:s}", "a", "b"); /* ordinary malloc'd objects still work */
    ck_assert_ptr_nonnull(j);
    json_decref(j);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("otlp_decode");
    TCase *tc = tcase_create("core");

    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, traces_json_and_protobuf_agree);
    tcase_add_test(tc, metrics_json_and_protobuf_agree);
    tcase_add_test(tc, trace_fields);
    tcase_add_test(tc, metric_fields);
    tcase_add_loop_test(tc, json_span_members, 0, sizeof(span_cases) / sizeof(span_cases[0]));
    tcase_add_loop_test(tc, json_fixed64, 0, sizeof(nanos_cases) / sizeof(nanos_cases[0]));
    tcase_add_loop_test(tc, json_metric_cases, 0, sizeof(metric_cases) / sizeof(metric_cases[0]));
    tcase_add_test(tc, nesting_limit);
    tcase_add_test(tc, protobuf_malformed_and_utf8);
    tcase_add_test(tc, gzip_round_trip_and_corruption);
    tcase_add_test(tc, gzip_bomb_is_too_large);
    tcase_add_test(tc, limits);
    tcase_add_loop_test(tc, header_values, 0, sizeof(headers) / sizeof(headers[0]));
    tcase_add_test(tc, responses);
    tcase_add_test(tc, attributes_json);
    tcase_add_test(tc, jansson_allocator_restored);
    suite_add_tcase(s, tc);
    return dps_check_run(s);
}
