/* libFuzzer target: the schema health format (polling.md §2.2). The first byte picks a SchemaMapping
 * (or, for the last choice, the input up to its first newline is the config); the rest is the body. */
#include "poll_fuzz.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char *const configs[] = {
    "{\"root\":\"checks\",\"fields\":{\"name\":\"name\",\"healthy\":\"status\"}}",
    "{\"root\":\"checks\",\"fields\":{\"name\":\"$key\",\"healthy\":{\"field\":\"status\",\"equals\":\"UP\"},\"latency\":\"t.ms\","
    "\"skipped\":\"s\",\"type\":\"type\",\"impact\":\"i\",\"description\":\"d\",\"checkDetails\":\"details\",\"contact\":\"owner\","
    "\"error\":\"err\",\"errorMessage\":\"msg\"}}",
    "{\"root\":\"a.0.b\",\"fields\":{\"name\":\"x.1\",\"healthy\":{\"field\":\"v\",\"equals\":\"1,2\"},\"skipped\":{\"field\":"
    "\"k\","
    "\"equals\":\"\\u212a\"}}}",
    "{\"root\":\"c\",\"fields\":{\"name\":\"n\",\"healthy\":\"h\",\"latency\":{\"field\":\"l\",\"equals\":\"1e+21\"}}}",
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
    rc = dps_poll_parse_schema(body, len, cfg, &r);
    poll_fuzz_check(&r, rc);
    dps_poll_result_free(&r);
    rc = dps_poll_parse("schema", cfg, body, len, &r);
    poll_fuzz_check(&r, rc);
    dps_poll_result_free(&r);
    free(owned);
    return 0;
}
