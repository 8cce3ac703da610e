/* Per-host counts of polls in flight, and the capped response body buffer. */
#include "depsera/poll_limits.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Hundreds of polls at most are in flight: a list scanned linearly is as fast as a hash here. */
typedef struct {
    char *host;
    int n;
} slot_t;

struct dps_hosts {
    slot_t *v;
    size_t n, alloc;
    int cap, total;
};

dps_hosts_t *dps_hosts_create(int cap)
{
    dps_hosts_t *h = calloc(1, sizeof(*h));

    if (h != NULL)
        h->cap = cap > 0 ? cap : 1;
    return h;
}

void dps_hosts_free(dps_hosts_t *h)
{
    if (h == NULL)
        return;
    for (size_t i = 0; i < h->n; i++)
        free(h->v[i].host);
    free(h->v);
    free(h);
}

static slot_t *find(const dps_hosts_t *h, const char *host)
{
    for (size_t i = 0; i < h->n; i++)
        if (strcasecmp(h->v[i].host, host) == 0)
            return &h->v[i];
    return NULL;
}

int dps_hosts_acquire(dps_hosts_t *h, const char *host)
{
    slot_t *s = find(h, host);

    if (s == NULL) {
        if (h->n == h->alloc) {
            size_t alloc = h->alloc ? h->alloc * 2 : 16;
            slot_t *v = realloc(h->v, alloc * sizeof(*v));
            if (v == NULL)
                return -1;
            h->v = v, h->alloc = alloc;
        }
        if ((h->v[h->n].host = strdup(host)) == NULL)
            return -1;
        h->v[h->n].n = 0;
        s = &h->v[h->n++];
    }
    if (s->n >= h->cap)
        return -1;
    s->n++;
    h->total++;
    return 0;
}

void dps_hosts_release(dps_hosts_t *h, const char *host)
{
    slot_t *s = find(h, host);

    if (s == NULL || s->n == 0)
        return;
    h->total--;
    if (--s->n == 0) {
        /* hosts without polls in flight are forgotten: the list stays as long as the work */
        free(s->host);
        *s = h->v[--h->n];
    }
}

int dps_hosts_count(const dps_hosts_t *h, const char *host)
{
    const slot_t *s = find(h, host);

    return s != NULL ? s->n : 0;
}

int dps_hosts_total(const dps_hosts_t *h)
{
    return h->total;
}

void dps_body_init(dps_body_t *b, size_t cap)
{
    memset(b, 0, sizeof(*b));
    b->cap = cap;
}

int dps_body_append(dps_body_t *b, const void *p, size_t n)
{
    if (n > b->cap - b->len) {
        b->too_large = 1;
        return -1;
    }
    if (b->len + n + 1 > b->alloc) {
        size_t alloc = b->alloc ? b->alloc : 4096;
        char *d;
        while (alloc < b->len + n + 1)
            alloc *= 2;
        if (alloc > b->cap + 1)
            alloc = b->cap + 1;
        if ((d = realloc(b->data, alloc)) == NULL)
            return -1;
        b->data = d, b->alloc = alloc;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

void dps_body_free(dps_body_t *b)
{
    free(b->data);
    dps_body_init(b, b->cap);
}
