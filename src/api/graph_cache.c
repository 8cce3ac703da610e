/* A few recent graph answers per worker (graph_cache.h): plain text, and its gzip made on first need. */
#include "depsera/graph_cache.h"
#include "depsera/compress.h"
#include "depsera/config.h"
#include "depsera/util.h"
#include "depsera/worker_listen.h"

#include <stdlib.h>
#include <string.h>

#define SLOTS 8
#define KEY_MAX 96
#define GZIP_LEVEL 1

typedef struct {
    char key[KEY_MAX]; /* "" = free */
    char *plain, *gz;
    size_t plain_len, gz_len;
    int64_t at; /* mono ms */
    uint64_t gen;
} entry_t;

static entry_t slots[SLOTS];

static void drop(entry_t *e)
{
    free(e->plain);
    free(e->gz);
    memset(e, 0, sizeof(*e));
}

static int64_t ttl_of(dps_req_t *r)
{
    return dps_worker_config(r->worker)->graph_cache_ttl_ms;
}

static entry_t *live(dps_req_t *r, const char *key)
{
    int64_t now = dps_mono_ms(), ttl = ttl_of(r);
    uint64_t gen = dps_worker_listen_generation();

    for (int i = 0; i < SLOTS; i++) {
        entry_t *e = &slots[i];
        if (e->key[0] != '\0' && (e->gen != gen || now - e->at >= ttl))
            drop(e);
        else if (e->key[0] != '\0' && strcmp(e->key, key) == 0)
            return e;
    }
    return NULL;
}

/* Send a copy of the entry, gzip'd when the client takes it (the gzip is made once per entry). */
static void send_entry(dps_req_t *r, entry_t *e)
{
    int gz = e->plain_len >= DPS_GZIP_MIN_BYTES && dps_accepts_gzip(dps_req_header(r, "accept-encoding"));
    const char *src;
    size_t len;
    char *copy;

    dps_http_header(r, "vary", "Accept-Encoding");
    if (gz && e->gz == NULL && dps_gzip(e->plain, e->plain_len, GZIP_LEVEL, &e->gz, &e->gz_len) != 0)
        gz = 0;
    src = gz ? e->gz : e->plain, len = gz ? e->gz_len : e->plain_len;
    if ((copy = malloc(len ? len : 1)) == NULL) {
        dps_http_error(r, 500, "Internal server error");
        return;
    }
    memcpy(copy, src, len);
    if (gz)
        dps_http_header(r, "content-encoding", "gzip");
    dps_http_send_owned(r, 200, "application/json; charset=utf-8", copy, len);
}

int dps_graph_cache_answer(dps_req_t *r, const char *key)
{
    entry_t *e;

    if (ttl_of(r) <= 0 || (e = live(r, key)) == NULL)
        return 0;
    send_entry(r, e);
    return 1;
}

void dps_graph_cache_send(dps_req_t *r, const char *key, dps_jsonbuf_t *b)
{
    entry_t *e = NULL;

    if (ttl_of(r) <= 0 || b->oom || strlen(key) >= KEY_MAX) {
        dps_http_json_buf_negotiated(r, 200, b);
        return;
    }
    (void)live(r, key); /* drops what expired */
    for (int i = 0; i < SLOTS && e == NULL; i++)
        if (slots[i].key[0] == '\0' || strcmp(slots[i].key, key) == 0)
            e = &slots[i];
    if (e == NULL) { /* full: the oldest goes */
        e = &slots[0];
        for (int i = 1; i < SLOTS; i++)
            if (slots[i].at < e->at)
                e = &slots[i];
    }
    drop(e);
    snprintf(e->key, sizeof(e->key), "%s", key);
    e->plain = b->data, e->plain_len = b->len;
    e->at = dps_mono_ms(), e->gen = dps_worker_listen_generation();
    b->data = NULL, b->len = 0, b->cap = 0; /* taken */
    dps_jsonbuf_free(b);
    send_entry(r, e);
}
