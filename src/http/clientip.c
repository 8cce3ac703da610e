/* Client address resolution through trusted proxies (TRUST_PROXY), as Express's "trust proxy" does. */
#include "depsera/clientip.h"
#include "depsera/util.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

/* Parses an address into the 128-bit form (IPv4 mapped into ::ffff:0:0/96); -1 if not an address. */
static int to16(const char *text, unsigned char out[16], int *is_v4)
{
    unsigned char v4[4];

    if (inet_pton(AF_INET, text, v4) == 1) {
        memset(out, 0, 10);
        out[10] = out[11] = 0xff;
        memcpy(out + 12, v4, 4);
        *is_v4 = 1;
        return 0;
    }
    *is_v4 = 0;
    return inet_pton(AF_INET6, text, out) == 1 ? 0 : -1;
}

static int add_net(dps_trust_t *t, const char *text, int bits)
{
    int v4;

    if (t->nnets == DPS_TRUST_MAX_NETS || to16(text, t->nets[t->nnets].addr, &v4) != 0 || bits > (v4 ? 32 : 128))
        return -1;
    if (bits < 0)
        bits = v4 ? 32 : 128;
    t->nets[t->nnets++].bits = v4 ? bits + 96 : bits;
    return 0;
}

/* Express's named ranges. */
static int add_keyword(dps_trust_t *t, const char *kw)
{
    if (strcmp(kw, "loopback") == 0)
        return add_net(t, "127.0.0.0", 8) | add_net(t, "::1", 128);
    if (strcmp(kw, "linklocal") == 0)
        return add_net(t, "169.254.0.0", 16) | add_net(t, "fe80::", 10);
    if (strcmp(kw, "uniquelocal") == 0)
        return add_net(t, "10.0.0.0", 8) | add_net(t, "172.16.0.0", 12) | add_net(t, "192.168.0.0", 16) |
               add_net(t, "fc00::", 7);
    return 1; /* not a keyword */
}

int dps_trust_parse(const char *value, dps_trust_t *out)
{
    char buf[1024], *save = NULL;
    long long hops;

    memset(out, 0, sizeof(*out));
    if (*value == '\0' || strcmp(value, "false") == 0)
        return 0;
    if (strcmp(value, "true") == 0) {
        out->mode = 1;
        return 0;
    }
    if (dps_parse_int(value, 0, 1000, &hops) == 0) {
        out->mode = hops > 0 ? 2 : 0;
        out->hops = (int)hops;
        return 0;
    }
    if (strlen(value) >= sizeof(buf))
        return -1;
    strcpy(buf, value);
    out->mode = 3;
    for (char *tok = strtok_r(buf, ", ", &save); tok != NULL; tok = strtok_r(NULL, ", ", &save)) {
        char *slash = strchr(tok, '/');
        long long bits = -1;
        int r = add_keyword(out, tok);
        if (r == 0)
            continue;
        if (r < 0)
            return -1;
        if (slash != NULL) {
            *slash = '\0';
            if (dps_parse_int(slash + 1, 0, 128, &bits) != 0)
                return -1;
        }
        if (add_net(out, tok, (int)bits) != 0)
            return -1;
    }
    return 0;
}

static int in_net(const unsigned char *a, const unsigned char *net, int bits)
{
    int full = bits / 8, rest = bits % 8;

    if (memcmp(a, net, (size_t)full) != 0)
        return 0;
    return rest == 0 || ((a[full] ^ net[full]) & (0xff << (8 - rest))) == 0;
}

int dps_trust_contains(const dps_trust_t *t, const char *addr)
{
    unsigned char a[16];
    int v4;

    if (t->mode == 1)
        return 1;
    if (t->mode != 3 || to16(addr, a, &v4) != 0)
        return 0;
    for (size_t i = 0; i < t->nnets; i++)
        if (in_net(a, t->nets[i].addr, t->nets[i].bits))
            return 1;
    return 0;
}

/* Copies the i-th comma-separated entry from the right (0 = last) of xff, trimmed; -1 if none. */
static int xff_from_right(const char *xff, size_t len, int i, char *out, size_t cap)
{
    size_t end = len;

    while (1) {
        size_t start = end;
        while (start > 0 && xff[start - 1] != ',')
            start--;
        if (i-- == 0) {
            size_t b = start, e = end;
            while (b < e && (xff[b] == ' ' || xff[b] == '\t'))
                b++;
            while (e > b && (xff[e - 1] == ' ' || xff[e - 1] == '\t'))
                e--;
            if (e == b || e - b >= cap)
                return -1;
            memcpy(out, xff + b, e - b);
            out[e - b] = '\0';
            return 0;
        }
        if (start == 0)
            return -1;
        end = start - 1;
    }
}

void dps_client_ip(const dps_trust_t *t, const char *peer, const char *xff, size_t xff_len, char *out, size_t cap)
{
    char hop[64];
    unsigned char tmp[16];
    int v4;

    snprintf(out, cap, "%s", peer);
    if (t->mode == 0 || xff == NULL || xff_len == 0)
        return;
    /* walk from the nearest hop outwards while the current one is a trusted proxy */
    for (int i = 0, n = 0;; i++, n++) {
        int trusted = t->mode == 1 || (t->mode == 2 ? n < t->hops : dps_trust_contains(t, out));
        if (!trusted || xff_from_right(xff, xff_len, i, hop, sizeof(hop)) != 0 || to16(hop, tmp, &v4) != 0)
            return;
        snprintf(out, cap, "%s", hop);
    }
}
