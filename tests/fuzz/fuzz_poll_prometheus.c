/* libFuzzer target: the Prometheus health format (polling.md §2.3). The first byte picks a
 * MetricSchemaConfig (or, for the last choice, the input up to its first newline is the config); the rest
 * is the body. It never fails but when out of memory. */
#include "poll_fuzz.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char *const configs[] = {
    NULL,
    "{\"metrics\":{\"up\":\"healthy\",\"dependency_health_code\":\"latency\",\"x\":\"bogus\"},\"labels\":{\"job\":\"name\","
    "\"type\":\"description\"},\"latency_unit\":\"s\",\"healthy_value\":0}",
    "{\"labels\":{\"n\":\"name\",\"t\":\"type\",\"i\":\"impact\",\"d\":\"description\",\"e\":\"errorMessage\"},\"metrics\":{\"a\":"
    "\"state\",\"b\":\"healthy\",\"c\":\"latency\",\"d\":\"code\",\"e\":\"skipped\"}}",
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dps_poll_result_t r;
    const char *cfg, *body;
    char *owned;
    size_t len;
    int rc;

    if (poll_fuzz_input(data, size, configs, sizeof(configs) / sizeof(configs[0]), &cfg, &owned, &body, &len) != 0)
        return 0;
    rc = dps_poll_parse_prometheus(body, len, cfg, &r);
    if (rc != 0)
        __builtin_trap(); /* only out of memory fails, and libFuzzer's limits are far above what a parse needs */
    poll_fuzz_check(&r, rc);
    dps_poll_result_free(&r);
    free(owned);
    return 0;
}
