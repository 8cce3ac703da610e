/* What OTLP handlers write: Export*ServiceResponse bodies, attributes as OTLP JSON text, ids as hex. */
#ifndef DEPSERA_OTLP_ENCODE_H
#define DEPSERA_OTLP_ENCODE_H

#include <stddef.h>
#include <stdint.h>

#include "depsera/arena.h"
#include "depsera/jsonbuf.h"
#include "depsera/otlp_decode.h"

typedef enum {
    DPS_OTLP_TRACES = 0,  /* ExportTraceServiceResponse, rejectedSpans */
    DPS_OTLP_METRICS = 1, /* ExportMetricsServiceResponse, rejectedDataPoints */
} dps_otlp_signal_t;

/* An Export{Trace,Metrics}ServiceResponse as protobuf bytes in the arena (*out, *len; 0 bytes for a
 * full success). partial_success is set when `rejected` is not 0 or `message` (may be NULL) is not
 * empty; OTLP defines an empty partial_success as equal to none. 0, or -1 when the arena refuses. */
int dps_otlp_response_protobuf(dps_arena_t *a, dps_otlp_signal_t signal, int64_t rejected, const char *message, const uint8_t **out,
                               size_t *len) __attribute__((warn_unused_result));
/* The same response as JSON, always with partialSuccess, counts as numbers (otlp-ingestion.md §9):
 * {"partialSuccess":{"rejectedSpans":N,"errorMessage":"..."}} (metrics: "rejectedDataPoints").
 * `message` NULL is "". Appended to b (check b->oom once at the end). */
void dps_otlp_response_json(dps_jsonbuf_t *b, dps_otlp_signal_t signal, int64_t rejected, const char *message);

/* Append a KeyValue array as OTLP JSON text, whatever the request's encoding:
 * [{"key":"k","value":{"stringValue":"v"}},...]. intValue is a decimal string, doubleValue a number
 * (NaN and the infinities as the strings "NaN", "Infinity", "-Infinity"), bytesValue base64, arrays
 * and kvlists nested as {"arrayValue":{"values":[...]}} / {"kvlistValue":{"values":[...]}}, an
 * unset value as {} and a missing one left out. Strings are expected to be UTF-8 (the decoders
 * guarantee it). n == 0 gives []. */
void dps_otlp_attributes_json(dps_jsonbuf_t *b, Opentelemetry__Proto__Common__V1__KeyValue *const *kvs, size_t n);

/* Lower-case hex of an id (trace, span, parent span) as a NUL-terminated string in the arena ("" for
 * an empty id), or NULL when the arena refuses. */
char *dps_otlp_id_hex(dps_arena_t *a, ProtobufCBinaryData id) __attribute__((warn_unused_result));

#endif
