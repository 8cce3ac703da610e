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
    size_t n = sizeof(configs) / sizeof(configs[0]);
    dps_poll_result_t r;
    const char *body;
    char *cfg = NULL;
    size_t len;
    int rc;

    if (size < 1)
        return 0;
    body = (const char *)data + 1, len = size - 1;
    if (data[0] % (n + 1) == n) {
        const char *nl = memchr(body, '\n', len);

        if (nl == NULL)
            return 0;
        cfg = strndup(body, (size_t)(nl - body));
        len -= (size_t)(nl + 1 - body), body = nl + 1;
    }
    rc = dps_poll_parse_prometheus(body, len, cfg != NULL ? cfg : configs[data[0] % (n + 1)], &r);
    if (rc != 0)
        __builtin_trap(); /* only out of memory fails, and libFuzzer's limits are far above what a parse needs */
    poll_fuzz_check(&r, rc);
    dps_poll_result_free(&r);
    free(cfg);
    return 0;
}
