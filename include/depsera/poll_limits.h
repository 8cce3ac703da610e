/* The poller's bounded resources, as pure data structures: polls in flight per target host, and a
 * response body that may not grow past its cap. */
#ifndef DEPSERA_POLL_LIMITS_H
#define DEPSERA_POLL_LIMITS_H

#include <stddef.h>

/* Polls in flight per host name (case-insensitive), each host at most `cap`. */
typedef struct dps_hosts dps_hosts_t;

/* NULL only when out of memory. Free with dps_hosts_free. */
dps_hosts_t *dps_hosts_create(int cap);
void dps_hosts_free(dps_hosts_t *h);
/* Take a slot of `host`: 0, or -1 when the host is at its cap (or memory ran out): nothing taken. */
int dps_hosts_acquire(dps_hosts_t *h, const char *host) __attribute__((warn_unused_result));
/* Give back a slot taken by dps_hosts_acquire. */
void dps_hosts_release(dps_hosts_t *h, const char *host);
/* Polls in flight to `host`, and in all. */
int dps_hosts_count(const dps_hosts_t *h, const char *host);
int dps_hosts_total(const dps_hosts_t *h);

/* A response body of at most `cap` bytes, always NUL-terminated (data may be NULL while len is 0). */
typedef struct {
    char *data;
    size_t len, alloc, cap;
    int too_large; /* a write would have passed the cap: the body is incomplete */
} dps_body_t;

void dps_body_init(dps_body_t *b, size_t cap);
/* Append n bytes: 0, or -1 when they do not fit under the cap (too_large set) or memory ran out. */
int dps_body_append(dps_body_t *b, const void *p, size_t n) __attribute__((warn_unused_result));
void dps_body_free(dps_body_t *b);

#endif
