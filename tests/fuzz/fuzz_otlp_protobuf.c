/* libFuzzer target: arbitrary bytes as protobuf ExportTraceServiceRequest and ExportMetricsServiceRequest. */
#include "otlp_fuzz.h"

#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dps_otlp_body_t body = {DPS_OTLP_PROTOBUF, DPS_OTLP_IDENTITY, data, size, 20u * 1024 * 1024};
    dps_otlp_traces_t *traces;
    dps_otlp_metrics_t *metrics;
    const char *err;
    dps_arena_t a;

    dps_arena_init(&a, FUZZ_ARENA_LIMIT);
    if (dps_otlp_decode_traces(&a, &body, &traces, &err) == DPS_OTLP_OK) {
        fuzz_check_repack(&traces->base, 0);
        fuzz_walk_attributes(&traces->base, 0);
    } else if (err == NULL || strncmp(err, "Invalid OTLP payload: ", 22) != 0) {
        __builtin_trap();
    }
    dps_arena_free(&a);
    if (dps_otlp_decode_metrics(&a, &body, &metrics, &err) == DPS_OTLP_OK) {
        fuzz_check_repack(&metrics->base, 1);
        fuzz_walk_attributes(&metrics->base, 0);
    }
    dps_arena_free(&a);
    return 0;
}
