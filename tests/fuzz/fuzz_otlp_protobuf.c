/* libFuzzer target: arbitrary bytes as protobuf ExportTraceServiceRequest and ExportMetricsServiceRequest. */
#include "otlp_fuzz.h"

#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_decode_both(DPS_OTLP_PROTOBUF, data, size, 0, "Invalid OTLP payload: ");
}
