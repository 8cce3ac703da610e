/* libFuzzer target: SSRF URL parsing and allowlist parsing (URLs and the allowlist come from users). */
#include "depsera/ssrf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Input: the allowlist text, a newline, the URL. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nl = memchr(data, '\n', size);
    size_t alen = nl != NULL ? (size_t)(nl - data) : 0, ulen = nl != NULL ? size - alen - 1 : size;
    char *allow = strndup((const char *)data, alen), *url = strndup(nl != NULL ? (const char *)nl + 1 : (const char *)data, ulen);
    dps_ssrf_allowlist_t *al = dps_ssrf_allowlist_parse(allow);
    dps_url_t u;
    dps_ip_t ip;
    char why[512];

    if (dps_url_parse(url, &u) == 0) {
        /* a parsed host is never empty, and an IP host is the canonical text of its address */
        if (u.host[0] == '\0' || u.port < 0 || u.port > 65535)
            __builtin_trap();
        if (u.is_ip && (dps_ip_parse(u.host, &ip) != 0 || memcmp(ip.b, u.ip.b, 16) != 0))
            __builtin_trap();
        if (dps_ssrf_check_url(url, al, why, sizeof(why)) == DPS_SSRF_BAD_URL)
            __builtin_trap();
        if (u.is_ip)
            (void)dps_ssrf_check_address(u.host, &u.ip, al, why, sizeof(why));
    } else if (dps_ssrf_check_url(url, al, why, sizeof(why)) != DPS_SSRF_BAD_URL) {
        __builtin_trap();
    }
    dps_ssrf_allowlist_free(al);
    free(allow);
    free(url);
    return 0;
}
