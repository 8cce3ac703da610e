/* Which address is the client: the peer, or an X-Forwarded-For hop when the peer is a trusted proxy. */
#ifndef DEPSERA_CLIENTIP_H
#define DEPSERA_CLIENTIP_H

#include <netinet/in.h>
#include <stddef.h>

#define DPS_TRUST_MAX_NETS 32

typedef struct {
    int mode; /* 0 trust nothing, 1 trust everything, 2 trust `hops` proxies, 3 trust the listed networks */
    int hops;
    size_t nnets;
    struct {
        unsigned char addr[16]; /* IPv4 as IPv4-mapped IPv6 */
        int bits;               /* prefix length over the 128-bit form */
    } nets[DPS_TRUST_MAX_NETS];
} dps_trust_t;

/* Compile a TRUST_PROXY value (already validated by the configuration). 0, or -1 if malformed. */
int dps_trust_parse(const char *value, dps_trust_t *out) __attribute__((warn_unused_result));

/* The client address as text into out (INET6_ADDRSTRLEN bytes): `peer` is the socket's peer address
 * text, `xff` the X-Forwarded-For header (may be NULL, not NUL-terminated: length xff_len). */
void dps_client_ip(const dps_trust_t *t, const char *peer, const char *xff, size_t xff_len, char *out, size_t cap);

/* 1 if the address text is trusted as a proxy. */
int dps_trust_contains(const dps_trust_t *t, const char *addr);

#endif
