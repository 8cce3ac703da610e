/* libFuzzer target: a log line built from arbitrary client bytes is always one line of valid JSON. */
#include "depsera/log.h"

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1), buf[4096];
    json_error_t err;
    json_t *j;
    size_t n;

    if (text == NULL)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    dps_log_set_request_id(text);
    n = dps_log_format(buf, sizeof(buf), 1, DPS_LOG_INFO, text,
                       (const dps_log_field_t[]){DPS_F_STR("path", text), DPS_F_INT("n", size), {NULL, DPS_LF_END, NULL, 0, 0}});
    dps_log_set_request_id(NULL);
    if (n == 0 || n > sizeof(buf) || buf[n - 1] != '\n' || memchr(buf, '\n', n - 1) != NULL)
        __builtin_trap();
    if ((j = json_loadb(buf, n - 1, 0, &err)) == NULL)
        __builtin_trap();
    json_decref(j);
    free(text);
    return 0;
}
