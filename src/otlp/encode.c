/* OTLP output: Export*ServiceResponse bodies in both encodings, span attributes as OTLP JSON text. */
#include "depsera/otlp_encode.h"
#include "depsera/util.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef Opentelemetry__Proto__Common__V1__AnyValue any_value_t;
typedef Opentelemetry__Proto__Common__V1__KeyValue key_value_t;

/* Pack m into the arena. */
static int pack(dps_arena_t *a, const ProtobufCMessage *m, const uint8_t **out, size_t *len)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = dps_arena_alloc(a, n);

    if (buf == NULL)
        return -1;
    *len = protobuf_c_message_pack(m, buf);
    *out = buf;
    return 0;
}

int dps_otlp_response_protobuf(dps_arena_t *a, dps_otlp_signal_t signal, int64_t rejected, const char *message, const uint8_t **out,
                               size_t *len)
{
    int partial = rejected != 0 || (message != NULL && *message != '\0');
    char *text = (char *)(message != NULL ? message : ""); /* protobuf-c's field is not const; pack only reads it */

    if (signal == DPS_OTLP_TRACES) {
        Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceResponse r =
            OPENTELEMETRY__PROTO__COLLECTOR__TRACE__V1__EXPORT_TRACE_SERVICE_RESPONSE__INIT;
        Opentelemetry__Proto__Collector__Trace__V1__ExportTracePartialSuccess ps =
            OPENTELEMETRY__PROTO__COLLECTOR__TRACE__V1__EXPORT_TRACE_PARTIAL_SUCCESS__INIT;
        ps.rejected_spans = rejected, ps.error_message = text;
        r.partial_success = partial ? &ps : NULL;
        return pack(a, &r.base, out, len);
    } else {
        Opentelemetry__Proto__Collector__Metrics__V1__ExportMetricsServiceResponse r =
            OPENTELEMETRY__PROTO__COLLECTOR__METRICS__V1__EXPORT_METRICS_SERVICE_RESPONSE__INIT;
        Opentelemetry__Proto__Collector__Metrics__V1__ExportMetricsPartialSuccess ps =
            OPENTELEMETRY__PROTO__COLLECTOR__METRICS__V1__EXPORT_METRICS_PARTIAL_SUCCESS__INIT;
        ps.rejected_data_points = rejected, ps.error_message = text;
        r.partial_success = partial ? &ps : NULL;
        return pack(a, &r.base, out, len);
    }
}

void dps_otlp_response_json(dps_jsonbuf_t *b, dps_otlp_signal_t signal, int64_t rejected, const char *message)
{
    char num[24];

    if (signal == DPS_OTLP_TRACES)
        dps_jsonbuf_lit(b, "{\"partialSuccess\":{\"rejectedSpans\":");
    else
        dps_jsonbuf_lit(b, "{\"partialSuccess\":{\"rejectedDataPoints\":");
    dps_jsonbuf_raw(b, num, (size_t)snprintf(num, sizeof(num), "%" PRId64, rejected));
    dps_jsonbuf_lit(b, ",\"errorMessage\":");
    message = message != NULL ? message : "";
    dps_jsonbuf_string(b, message, strlen(message));
    dps_jsonbuf_lit(b, "}}");
}

/* A double as JSON: the shortest of %.15g..%.17g that reads back exactly; proto3 JSON's strings for
 * the values JSON has no number for. */
static void json_double(dps_jsonbuf_t *b, double d)
{
    char num[32];
    int n = 0;

    if (isnan(d)) {
        dps_jsonbuf_lit(b, "\"NaN\"");
        return;
    }
    if (isinf(d)) {
        if (d > 0)
            dps_jsonbuf_lit(b, "\"Infinity\"");
        else
            dps_jsonbuf_lit(b, "\"-Infinity\"");
        return;
    }
    if (d == 0 && signbit(d)) { /* "-0" would read back as the integer 0 */
        dps_jsonbuf_lit(b, "-0.0");
        return;
    }
    for (int prec = 15; prec <= 17; prec++) {
        n = snprintf(num, sizeof(num), "%.*g", prec, d);
        if (strtod(num, NULL) == d)
            break;
    }
    dps_jsonbuf_raw(b, num, (size_t)n);
}

static void base64(dps_jsonbuf_t *b, const uint8_t *p, size_t len)
{
    static const char digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char quad[4];

    dps_jsonbuf_lit(b, "\"");
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < len ? (uint32_t)p[i + 1] << 8 : 0) | (i + 2 < len ? p[i + 2] : 0);
        quad[0] = digits[v >> 18], quad[1] = digits[v >> 12 & 63];
        quad[2] = i + 1 < len ? digits[v >> 6 & 63] : '=';
        quad[3] = i + 2 < len ? digits[v & 63] : '=';
        dps_jsonbuf_raw(b, quad, 4);
    }
    dps_jsonbuf_lit(b, "\"");
}

static void any_value(dps_jsonbuf_t *b, const any_value_t *v);

static void key_values(dps_jsonbuf_t *b, key_value_t *const *kvs, size_t n)
{
    dps_jsonbuf_lit(b, "[");
    for (size_t i = 0; i < n; i++) {
        const key_value_t *kv = kvs[i];
        if (i > 0)
            dps_jsonbuf_lit(b, ",");
        dps_jsonbuf_lit(b, "{\"key\":");
        dps_jsonbuf_string(b, kv->key, strlen(kv->key));
        if (kv->value != NULL) {
            dps_jsonbuf_lit(b, ",\"value\":");
            any_value(b, kv->value);
        }
        dps_jsonbuf_lit(b, "}");
    }
    dps_jsonbuf_lit(b, "]");
}

static void any_value(dps_jsonbuf_t *b, const any_value_t *v)
{
    char num[24];

    switch (v->value_case) {
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE:
        dps_jsonbuf_lit(b, "{\"stringValue\":");
        dps_jsonbuf_string(b, v->string_value, strlen(v->string_value));
        break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BOOL_VALUE:
        if (v->bool_value)
            dps_jsonbuf_lit(b, "{\"boolValue\":true");
        else
            dps_jsonbuf_lit(b, "{\"boolValue\":false");
        break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE:
        dps_jsonbuf_lit(b, "{\"intValue\":\"");
        dps_jsonbuf_raw(b, num, (size_t)snprintf(num, sizeof(num), "%" PRId64, v->int_value));
        dps_jsonbuf_lit(b, "\"");
        break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_DOUBLE_VALUE:
        dps_jsonbuf_lit(b, "{\"doubleValue\":");
        json_double(b, v->double_value);
        break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_ARRAY_VALUE:
        dps_jsonbuf_lit(b, "{\"arrayValue\":{");
        if (v->array_value != NULL && v->array_value->n_values > 0) {
            dps_jsonbuf_lit(b, "\"values\":[");
            for (size_t i = 0; i < v->array_value->n_values; i++) {
                if (i > 0)
                    dps_jsonbuf_lit(b, ",");
                any_value(b, v->array_value->values[i]);
            }
            dps_jsonbuf_lit(b, "]");
        }
        dps_jsonbuf_lit(b, "}");
        break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_KVLIST_VALUE:
        dps_jsonbuf_lit(b, "{\"kvlistValue\":{");
        if (v->kvlist_value != NULL && v->kvlist_value->n_values > 0) {
            dps_jsonbuf_lit(b, "\"values\":");
            key_values(b, v->kvlist_value->values, v->kvlist_value->n_values);
        }
        dps_jsonbuf_lit(b, "}");
        break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BYTES_VALUE:
        dps_jsonbuf_lit(b, "{\"bytesValue\":");
        base64(b, v->bytes_value.data, v->bytes_value.len);
        break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE_STRINDEX:
        dps_jsonbuf_lit(b, "{\"stringValueStrindex\":");
        dps_jsonbuf_raw(b, num, (size_t)snprintf(num, sizeof(num), "%" PRId32, v->string_value_strindex));
        break;
    default:
        dps_jsonbuf_lit(b, "{");
    }
    dps_jsonbuf_lit(b, "}");
}

void dps_otlp_attributes_json(dps_jsonbuf_t *b, key_value_t *const *kvs, size_t n)
{
    key_values(b, kvs, n);
}

char *dps_otlp_id_hex(dps_arena_t *a, ProtobufCBinaryData id)
{
    char *hex = dps_arena_alloc(a, id.len * 2 + 1);

    if (hex == NULL)
        return NULL;
    dps_hex_encode(id.data, id.len, hex);
    return hex;
}
