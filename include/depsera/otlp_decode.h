/* OTLP/HTTP request bodies to protobuf-c messages: bounded gzip, protobuf, and the OTLP JSON mapping. */
#ifndef DEPSERA_OTLP_DECODE_H
#define DEPSERA_OTLP_DECODE_H

#include <stddef.h>
#include <stdint.h>

#include "depsera/arena.h"
#include "opentelemetry/proto/collector/metrics/v1/metrics_service.pb-c.h"
#include "opentelemetry/proto/collector/trace/v1/trace_service.pb-c.h"

/* The one representation of a request, whatever its encoding: the generated protobuf-c structs, all
 * allocated in the request's arena. Absent proto3 scalars and strings hold their defaults (0, ""),
 * absent messages are NULL, and oneof members carry their *_case. */
typedef Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceRequest dps_otlp_traces_t;
typedef Opentelemetry__Proto__Collector__Metrics__V1__ExportMetricsServiceRequest dps_otlp_metrics_t;

/* Whether a proto3 `optional` field (HistogramDataPoint and ExponentialHistogramDataPoint sum, min,
 * max) was sent. protoc-c cannot generate such fields, so the build turns each into the one-field
 * oneof `_<field>` protoc makes of it (proto/README.md): DPS_OTLP_HAS(dp, sum). */
#define DPS_OTLP_HAS(msg, field) ((msg)->_##field##_case != 0)

/* Messages nested deeper than this (request = 1) are refused by both decoders: protobuf-c recurses
 * without a limit, so a deep AnyValue would otherwise overflow the stack. */
#define DPS_OTLP_MAX_DEPTH 100

typedef enum {
    DPS_OTLP_PROTOBUF = 0, /* application/x-protobuf */
    DPS_OTLP_JSON = 1,     /* application/json (OTLP JSON mapping) */
    DPS_OTLP_FORMAT_UNSUPPORTED = 2,
} dps_otlp_format_t;

typedef enum {
    DPS_OTLP_IDENTITY = 0, /* no Content-Encoding, or identity */
    DPS_OTLP_GZIP = 1,
    DPS_OTLP_ENCODING_UNSUPPORTED = 2,
} dps_otlp_encoding_t;

typedef enum {
    DPS_OTLP_OK = 0,          /* decoded */
    DPS_OTLP_UNDECODABLE = 1, /* 400: corrupt gzip, malformed protobuf or JSON, not an OTLP request */
    DPS_OTLP_TOO_LARGE = 2,   /* 413: more than the limit once inflated, or past the arena's limit */
    DPS_OTLP_NOMEM = 3,       /* malloc failed (a server error, not the client's) */
} dps_otlp_status_t;

/* A request body as received. */
typedef struct {
    dps_otlp_format_t format;
    dps_otlp_encoding_t encoding;
    const void *data;
    size_t len;
    size_t limit; /* OTLP_MAX_BODY_BYTES: the most bytes the body may have after decompression */
} dps_otlp_body_t;

/* The format named by a Content-Type value (len bytes, not NUL-terminated; parameters such as
 * "; charset=utf-8" and case are ignored); anything but the two OTLP types is unsupported (415). */
dps_otlp_format_t dps_otlp_content_type(const char *value, size_t len);
/* The coding named by a Content-Encoding value (NULL or empty = identity; gzip, x-gzip, identity);
 * anything else is unsupported (415). */
dps_otlp_encoding_t dps_otlp_content_encoding(const char *value, size_t len);

/* Inflate a gzip body (one or more members) into the arena. More than `limit` bytes of output is
 * DPS_OTLP_TOO_LARGE, detected after writing at most limit + 1 bytes (the output buffers take at most
 * 2 x (limit + 1) of the arena, zlib's state about 40 KiB more); a corrupt or truncated stream is
 * DPS_OTLP_UNDECODABLE. *out (not NUL-terminated) and *err (a message for the client, static or in
 * the arena) live until dps_arena_free. */
dps_otlp_status_t dps_otlp_inflate(dps_arena_t *a, const void *in, size_t len, size_t limit, const uint8_t **out, size_t *out_len,
                                   const char **err) __attribute__((warn_unused_result));

/* Decode an ExportTraceServiceRequest body: inflated when gzip, then protobuf or JSON. On DPS_OTLP_OK
 * *out is the request (never NULL); otherwise *err says why, in words for the client, e.g.
 * "Invalid OTLP payload: expected object with resourceSpans array" or
 * "Invalid OTLP payload: resourceSpans[0].scopeSpans[0].spans[2].traceId: invalid hex". Both live in
 * the arena until dps_arena_free. The body itself is not referenced afterwards. Every string is
 * UTF-8 without NUL: in a protobuf body each byte that does not start a valid UTF-8 sequence becomes
 * U+FFFD and a NUL ends the string (protobuf-c's C strings); a JSON body with either is refused. The
 * format and encoding must be supported ones. Not thread-safe: the JSON parser's allocator is
 * switched to the arena for the duration of the call. */
dps_otlp_status_t dps_otlp_decode_traces(dps_arena_t *a, const dps_otlp_body_t *body, dps_otlp_traces_t **out, const char **err)
    __attribute__((warn_unused_result));
/* The same for an ExportMetricsServiceRequest ("... with resourceMetrics array"). */
dps_otlp_status_t dps_otlp_decode_metrics(dps_arena_t *a, const dps_otlp_body_t *body, dps_otlp_metrics_t **out, const char **err)
    __attribute__((warn_unused_result));

#endif
