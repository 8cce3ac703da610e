/* libFuzzer target: arbitrary bytes as a gzip body: bounded inflate, then both decoders on the result. */
#include "otlp_fuzz.h"

#include <stdint.h>

#define LIMIT (1024 * 1024)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dps_otlp_body_t body = {DPS_OTLP_PROTOBUF, DPS_OTLP_GZIP, data, size, LIMIT};
    const uint8_t *out;
    size_t len;
    dps_otlp_traces_t *traces;
    const char *err = NULL;
    dps_otlp_status_t st;
    dps_arena_t a;

    dps_arena_init(&a, FUZZ_ARENA_LIMIT);
    st = dps_otlp_inflate(&a, data, size, LIMIT, &out, &len, &err);
    if (st == DPS_OTLP_OK && len > LIMIT)
        __builtin_trap();
    if (st != DPS_OTLP_OK && (err == NULL || st == DPS_OTLP_NOMEM))
        __builtin_trap();
    if (a.total > 2 * (LIMIT + 1) + 256 * 1024) /* the output buffers, plus zlib's state */
        __builtin_trap();
    dps_arena_free(&a);
    if (st == DPS_OTLP_OK) {
        (void)dps_otlp_decode_traces(&a, &body, &traces, &err);
        dps_arena_free(&a);
        body.format = DPS_OTLP_JSON;
        (void)dps_otlp_decode_traces(&a, &body, &traces, &err);
        dps_arena_free(&a);
    }
    return 0;
}
