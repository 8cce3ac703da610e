/* libFuzzer target: the default health format (polling.md §2.1) and lastChecked parsing; bodies come
 * from any health endpoint. */
#include "poll_fuzz.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dps_poll_result_t r;
    char *s = malloc(size + 1);
    int64_t ms;
    int rc = dps_poll_parse_default((const char *)data, size, &r);

    poll_fuzz_check(&r, rc);
    dps_poll_result_free(&r);
    /* the same bytes through the dispatch of a default service */
    rc = dps_poll_parse("default", NULL, (const char *)data, size, &r);
    poll_fuzz_check(&r, rc);
    dps_poll_result_free(&r);
    memcpy(s, data, size);
    s[size] = '\0';
    if (dps_poll_parse_iso8601(s, &ms) == 0 &&
        (ms < -62167219200000LL - 86400000 || ms > 253402387199999LL)) /* years 0000-9999 ± a day */
        __builtin_trap();
    free(s);
    return 0;
}
