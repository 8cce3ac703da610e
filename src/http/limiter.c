/* Per-process fixed-window counters in a small open-addressing table. */
#include "depsera/limiter.h"

#include <stdlib.h>
#include <string.h>

#define KEY_MAX 48
#define PROBES 8

typedef struct {
    char key[KEY_MAX];
    int64_t window_start;
    long count;
} slot_t;

struct dps_limiter {
    long max;
    int64_t window_ms;
    size_t capacity;
    slot_t *slots;
};

dps_limiter_t *dps_limiter_create(long max, int64_t window_ms, size_t capacity)
{
    dps_limiter_t *l = calloc(1, sizeof(*l));

    if (l == NULL || (l->slots = calloc(capacity, sizeof(slot_t))) == NULL) {
        free(l);
        return NULL;
    }
    l->max = max;
    l->window_ms = window_ms;
    l->capacity = capacity;
    return l;
}

void dps_limiter_destroy(dps_limiter_t *l)
{
    if (l != NULL)
        free(l->slots);
    free(l);
}

static uint64_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

/* The key's slot; else an empty one, else an expired one, else the one whose window started first. */
static slot_t *find(dps_limiter_t *l, const char *key, int64_t now)
{
    size_t start = (size_t)(hash(key) % l->capacity);
    slot_t *victim = NULL;
    int victim_rank = 3; /* 0 empty, 1 expired, 2 live */

    for (size_t i = 0; i < PROBES; i++) {
        slot_t *s = &l->slots[(start + i) % l->capacity];
        int rank = s->key[0] == '\0' ? 0 : now - s->window_start >= l->window_ms ? 1 : 2;
        if (rank != 0 && strncmp(s->key, key, KEY_MAX - 1) == 0)
            return s;
        if (rank < victim_rank || (rank == 2 && victim_rank == 2 && s->window_start < victim->window_start)) {
            victim = s;
            victim_rank = rank;
        }
    }
    memset(victim, 0, sizeof(*victim));
    strncpy(victim->key, key, KEY_MAX - 1);
    victim->window_start = now;
    return victim;
}

dps_limit_result_t dps_limiter_hit(dps_limiter_t *l, const char *key, int64_t now_ms)
{
    slot_t *s = find(l, key, now_ms);
    dps_limit_result_t r;

    if (now_ms - s->window_start >= l->window_ms) {
        s->window_start = now_ms;
        s->count = 0;
    }
    s->count++;
    r.limit = l->max;
    r.allowed = s->count <= l->max;
    r.remaining = s->count >= l->max ? 0 : l->max - s->count;
    r.reset_ms = s->window_start + l->window_ms - now_ms;
    return r;
}
