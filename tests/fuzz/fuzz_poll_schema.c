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
    rc = dps_poll_parse_schema(body, len, cfg != NULL ? cfg : configs[data[0] % (n + 1)], &r);
    poll_fuzz_check(&r, rc);
    dps_poll_result_free(&r);
    rc = dps_poll_parse("schema", cfg != NULL ? cfg : configs[data[0] % (n + 1)], body, len, &r);
    poll_fuzz_check(&r, rc);
    dps_poll_result_free(&r);
    free(cfg);
    return 0;
}
