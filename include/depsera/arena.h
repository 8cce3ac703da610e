/* Per-request arenas: a bump allocator over malloc'd chunks, released with one free. */
#ifndef DEPSERA_ARENA_H
#define DEPSERA_ARENA_H

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>

/* Every allocation is aligned to this many bytes: enough for pointers, int64 and double (what
 * protobuf-c messages, jansson and zlib store), not for long double or vector types. */
#define DPS_ARENA_ALIGN 8

typedef struct dps_arena_chunk dps_arena_chunk_t;

/* Why the last failed allocation failed (a failure is sticky only in this record: later smaller
 * allocations may still succeed). */
typedef enum {
    DPS_ARENA_OK = 0,    /* no allocation has failed */
    DPS_ARENA_LIMIT = 1, /* the arena's byte limit would have been exceeded */
    DPS_ARENA_NOMEM = 2, /* malloc failed */
} dps_arena_failure_t;

typedef struct {
    dps_arena_chunk_t *chunks; /* newest first; the head is the one being filled */
    char *ptr, *end;           /* free space left in the head chunk */
    size_t total;              /* bytes malloc'd for chunks (headers included) */
    size_t limit;              /* most `total` may reach; 0 = no limit */
    size_t next_size;          /* size of the next regular chunk */
    dps_arena_failure_t failed;
    ProtobufCAllocator pb; /* protobuf-c adapter: allocates here, free is a no-op */
} dps_arena_t;

/* Start an empty arena (no memory is allocated before the first dps_arena_alloc). `limit` caps the
 * bytes the arena may take from malloc (0: no cap). */
void dps_arena_init(dps_arena_t *a, size_t limit);
/* Release every allocation at once; the arena is empty again and may be reused (safe twice). */
void dps_arena_free(dps_arena_t *a);

/* n bytes (DPS_ARENA_ALIGN-aligned, uninitialised, valid until dps_arena_free), or NULL when the
 * limit would be exceeded or memory runs out (a->failed says which). n == 0 gives a valid pointer. */
void *dps_arena_alloc(dps_arena_t *a, size_t n) __attribute__((warn_unused_result, malloc));
/* As dps_arena_alloc, zero-filled. */
void *dps_arena_calloc(dps_arena_t *a, size_t n) __attribute__((warn_unused_result, malloc));
/* A copy of n bytes of s followed by a NUL, or NULL as dps_arena_alloc. */
char *dps_arena_strndup(dps_arena_t *a, const char *s, size_t n) __attribute__((warn_unused_result));

/* The protobuf-c allocator of this arena (for *_unpack): what it allocates lives until
 * dps_arena_free, and protobuf_c_message_free_unpacked through it frees nothing. */
static inline ProtobufCAllocator *dps_arena_pb(dps_arena_t *a)
{
    return &a->pb;
}

#endif
