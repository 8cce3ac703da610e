/* libFuzzer target: arbitrary bytes as OTLP JSON trace and metrics requests. What decodes must mean the
 * same in protobuf, and its attributes must survive being written as OTLP JSON and read back. */
#include "otlp_fuzz.h"

#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_decode_both(DPS_OTLP_JSON, data, size, 1, "Invalid ");
}
