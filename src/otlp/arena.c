/* Request memory comes from here: bump allocation in growing chunks, everything freed at once. */
#include "depsera/arena.h"

#include <stdalign.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(DPS_ARENA_ALIGN >= alignof(void *) && DPS_ARENA_ALIGN >= alignof(double) && DPS_ARENA_ALIGN >= alignof(uint64_t),
               "arena alignment too small for the types stored in it");

#define FIRST_CHUNK (8 * 1024)
#define MAX_CHUNK (1024 * 1024)

/* The header is a multiple of DPS_ARENA_ALIGN, so the data after it starts aligned. */
struct dps_arena_chunk {
    dps_arena_chunk_t *next;
    size_t size; /* bytes of data after the header */
};

#define HEADER ((sizeof(dps_arena_chunk_t) + DPS_ARENA_ALIGN - 1) & ~(size_t)(DPS_ARENA_ALIGN - 1))

static void *pb_alloc(void *data, size_t size)
{
    return dps_arena_alloc(data, size);
}

static void pb_free(void *data, void *ptr)
{
    (void)data, (void)ptr; /* released with the arena */
}

void dps_arena_init(dps_arena_t *a, size_t limit)
{
    memset(a, 0, sizeof(*a));
    a->limit = limit;
    a->next_size = FIRST_CHUNK;
    a->pb.alloc = pb_alloc;
    a->pb.free = pb_free;
    a->pb.allocator_data = a;
}

void dps_arena_free(dps_arena_t *a)
{
    dps_arena_chunk_t *c = a->chunks, *next;

    for (; c != NULL; c = next) {
        next = c->next;
        free(c);
    }
    dps_arena_init(a, a->limit);
}

/* A new chunk with `size` bytes of data, counted against the limit; NULL (a->failed set) if refused. */
static dps_arena_chunk_t *new_chunk(dps_arena_t *a, size_t size)
{
    dps_arena_chunk_t *c;

    if (size > SIZE_MAX - HEADER || (a->limit != 0 && (HEADER + size > a->limit || a->total > a->limit - HEADER - size))) {
        a->failed = DPS_ARENA_LIMIT;
        return NULL;
    }
    if ((c = malloc(HEADER + size)) == NULL) {
        a->failed = DPS_ARENA_NOMEM;
        return NULL;
    }
    c->size = size;
    a->total += HEADER + size;
    return c;
}

/* Slow path: the head chunk has no room for n (already rounded) bytes. A large request gets a chunk of
 * its own behind the head, so the head's free space is not abandoned for it (or, in an empty arena, a
 * full head). */
static void *alloc_slow(dps_arena_t *a, size_t n)
{
    dps_arena_chunk_t *c;

    if (n > a->next_size / 4) {
        if ((c = new_chunk(a, n)) == NULL)
            return NULL;
        if (a->chunks != NULL) {
            c->next = a->chunks->next;
            a->chunks->next = c;
        } else {
            c->next = NULL;
            a->chunks = c;
            a->ptr = a->end = (char *)c + HEADER + n;
        }
        return (char *)c + HEADER;
    }
    if ((c = new_chunk(a, a->next_size)) == NULL)
        return NULL;
    if (a->next_size < MAX_CHUNK)
        a->next_size *= 2;
    c->next = a->chunks;
    a->chunks = c;
    a->ptr = (char *)c + HEADER + n;
    a->end = (char *)c + HEADER + c->size;
    return (char *)c + HEADER;
}

void *dps_arena_alloc(dps_arena_t *a, size_t n)
{
    void *p;

    if (n > SIZE_MAX - DPS_ARENA_ALIGN) {
        a->failed = DPS_ARENA_NOMEM;
        return NULL;
    }
    n = (n + DPS_ARENA_ALIGN - 1) & ~(size_t)(DPS_ARENA_ALIGN - 1);
    if (n == 0)
        n = DPS_ARENA_ALIGN;
    if ((uintptr_t)a->end - (uintptr_t)a->ptr >= n) {
        p = a->ptr;
        a->ptr += n;
        return p;
    }
    return alloc_slow(a, n);
}

void *dps_arena_calloc(dps_arena_t *a, size_t n)
{
    void *p = dps_arena_alloc(a, n);

    if (p != NULL)
        memset(p, 0, n);
    return p;
}

char *dps_arena_strndup(dps_arena_t *a, const char *s, size_t n)
{
    char *p;

    if (n == SIZE_MAX || (p = dps_arena_alloc(a, n + 1)) == NULL)
        return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}
