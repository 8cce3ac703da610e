/* Open addressing with linear probing over 2 * capacity slots; an expired entry is dropped when the
 * table fills, by emptying it. Keys and values live in one malloc'd block per entry. */
#include "depsera/ttlcache.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    uint64_t hash;
    int64_t expires;
    size_t key_len, len;
    unsigned char *data; /* key then value; NULL = empty slot */
} slot_t;

struct dps_ttlcache {
    slot_t *slots;
    size_t nslots, used, capacity;
    int64_t ttl;
};

static uint64_t hash_of(const void *key, size_t n)
{
    const unsigned char *p = key;
    uint64_t h = 1469598103934665603ULL;

    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ULL;
    return h;
}

dps_ttlcache_t *dps_ttlcache_create(size_t capacity, int64_t ttl_ms)
{
    dps_ttlcache_t *c = calloc(1, sizeof(*c));
    size_t n = 16;

    while (n < 2 * capacity)
        n *= 2;
    if (c == NULL || (c->slots = calloc(n, sizeof(slot_t))) == NULL) {
        free(c);
        return NULL;
    }
    c->nslots = n, c->capacity = capacity, c->ttl = ttl_ms;
    return c;
}

void dps_ttlcache_clear(dps_ttlcache_t *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->nslots; i++) {
        free(c->slots[i].data);
        c->slots[i].data = NULL;
    }
    c->used = 0;
}

void dps_ttlcache_destroy(dps_ttlcache_t *c)
{
    if (c == NULL)
        return;
    dps_ttlcache_clear(c);
    free(c->slots);
    free(c);
}

/* The slot holding key, or the empty slot where it would go. */
static slot_t *probe(dps_ttlcache_t *c, const void *key, size_t key_len, uint64_t h)
{
    for (size_t i = h & (c->nslots - 1);; i = (i + 1) & (c->nslots - 1)) {
        slot_t *s = &c->slots[i];
        if (s->data == NULL || (s->hash == h && s->key_len == key_len && memcmp(s->data, key, key_len) == 0))
            return s;
    }
}

const void *dps_ttlcache_get(dps_ttlcache_t *c, const void *key, size_t key_len, int64_t now_ms, size_t *len)
{
    slot_t *s;

    if (c == NULL)
        return NULL;
    s = probe(c, key, key_len, hash_of(key, key_len));
    if (s->data == NULL || now_ms >= s->expires)
        return NULL;
    *len = s->len;
    return s->data + s->key_len;
}

int dps_ttlcache_put(dps_ttlcache_t *c, const void *key, size_t key_len, const void *value, size_t len, int64_t now_ms)
{
    uint64_t h = hash_of(key, key_len);
    unsigned char *data;
    slot_t *s;

    if (c == NULL || (data = malloc(key_len + len + 1)) == NULL)
        return -1;
    memcpy(data, key, key_len);
    memcpy(data + key_len, value, len);
    data[key_len + len] = '\0';
    s = probe(c, key, key_len, h);
    if (s->data == NULL && c->used >= c->capacity) {
        dps_ttlcache_clear(c); /* full: the cheap way out for a cache whose entries live seconds */
        s = probe(c, key, key_len, h);
    }
    if (s->data == NULL)
        c->used++;
    free(s->data);
    *s = (slot_t){h, now_ms + c->ttl, key_len, len, data};
    return 0;
}
