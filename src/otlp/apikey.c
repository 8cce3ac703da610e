/* Who is pushing: API keys from the request headers, checked through a per-worker cache, uses recorded in bulk. */
#include "depsera/apikey.h"
#include "depsera/log.h"
#include "depsera/util.h"
#include "depsera/worker_listen.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CACHE_SETS 256 /* indexed by the first byte of the hash (SHA-256 output: uniform) */
#define CACHE_WAYS 4
#define MARKS_CAP 1024 /* open addressing, power of two */
#define MARKS_MAX (MARKS_CAP * 3 / 4)

/* One cached lookup. Everything is per process: a worker is one process (the supervisor forks them
 * before any request), so nothing here is shared. */
typedef struct {
    unsigned char hash[DPS_APIKEY_HASH_LEN];
    int64_t expires_ms; /* monotonic; 0 = free slot */
    int64_t hit_ms;     /* last use, to choose a victim */
    uint64_t gen;       /* cache generation when loaded */
    int found;          /* 0: no key has this hash */
    dps_apikey_t key;
} entry_t;

/* A key used since this worker last wrote its last_used_at. */
typedef struct {
    char id[DPS_APIKEY_ID_LEN + 1]; /* "" = free slot */
    int dirty;                      /* used since the last write */
    int written;                    /* written_ms is set */
    int64_t used_ms;                /* wall clock of the latest use */
    int64_t written_ms;             /* monotonic time of the last write */
} mark_t;

static entry_t cache[CACHE_SETS][CACHE_WAYS];
static mark_t marks[MARKS_CAP];
static size_t nmarks;
static int64_t next_flush_ms;

/* The keys are locked in id order first: two workers writing overlapping keys never deadlock. */
#define LAST_USED_SQL                                                                                                              \
    "WITH locked AS (SELECT id FROM team_api_keys WHERE id = ANY ($1::uuid[]) ORDER BY id FOR NO KEY UPDATE) "                     \
    "UPDATE team_api_keys k SET last_used_at = u.used_at FROM unnest($1::uuid[], $2::timestamptz[]) AS u(id, used_at), locked l "  \
    "WHERE k.id = u.id AND l.id = k.id AND (k.last_used_at IS NULL OR k.last_used_at < u.used_at)"

/* ---- key material ------------------------------------------------------------------------------ */

void dps_apikey_hash(const char *token, size_t len, unsigned char out[DPS_APIKEY_HASH_LEN])
{
    SHA256((const unsigned char *)token, len, out);
}

int dps_apikey_generate(dps_apikey_material_t *out)
{
    unsigned char rnd[16], md[DPS_APIKEY_HASH_LEN];

    if (dps_random_bytes(rnd, sizeof(rnd)) != 0)
        return -1;
    memcpy(out->raw, "dps_", 4);
    dps_hex_encode(rnd, sizeof(rnd), out->raw + 4);
    dps_apikey_hash(out->raw, DPS_APIKEY_RAW_LEN, md);
    dps_hex_encode(md, sizeof(md), out->hash);
    memcpy(out->prefix, out->raw, DPS_APIKEY_PREFIX_LEN);
    out->prefix[DPS_APIKEY_PREFIX_LEN] = '\0';
    OPENSSL_cleanse(rnd, sizeof(rnd));
    return 0;
}

int dps_apikey_well_formed(const char *token, size_t len)
{
    if (len != DPS_APIKEY_RAW_LEN || memcmp(token, "dps_", 4) != 0)
        return 0;
    for (size_t i = 4; i < len; i++)
        if (!((token[i] >= '0' && token[i] <= '9') || (token[i] >= 'a' && token[i] <= 'f')))
            return 0;
    return 1;
}

/* The original: `if (!header)`, then header.split(' ') must give exactly ['Bearer', token] with token
 * starting with dps_. An empty header is no header (JavaScript falsiness). */
dps_apikey_hdr_t dps_apikey_parse_headers(const char *authorization, size_t auth_len, const char *x_api_key, size_t x_len,
                                          const char **token, size_t *token_len)
{
    const char *sp;

    if (authorization != NULL && auth_len > 0) {
        sp = memchr(authorization, ' ', auth_len);
        if (sp == NULL || sp - authorization != 6 || memcmp(authorization, "Bearer", 6) != 0)
            return DPS_APIKEY_HDR_MALFORMED;
        *token = sp + 1;
        *token_len = auth_len - 7;
        if (memchr(*token, ' ', *token_len) != NULL || *token_len < 4 || memcmp(*token, "dps_", 4) != 0)
            return DPS_APIKEY_HDR_MALFORMED;
        return DPS_APIKEY_HDR_TOKEN;
    }
    if (x_api_key != NULL && x_len > 0) {
        *token = x_api_key;
        *token_len = x_len;
        return DPS_APIKEY_HDR_TOKEN;
    }
    return DPS_APIKEY_HDR_MISSING;
}

/* ---- the cache --------------------------------------------------------------------------------- */

static int entry_valid(const entry_t *e, int64_t now, uint64_t gen)
{
    return e->expires_ms != 0 && now < e->expires_ms && e->gen == gen;
}

int dps_apikey_cache_get(const unsigned char hash[DPS_APIKEY_HASH_LEN], int64_t mono_ms, uint64_t gen, dps_apikey_t *out)
{
    entry_t *set = cache[hash[0]];

    for (int i = 0; i < CACHE_WAYS; i++) {
        entry_t *e = &set[i];
        if (entry_valid(e, mono_ms, gen) && memcmp(e->hash, hash, DPS_APIKEY_HASH_LEN) == 0) {
            e->hit_ms = mono_ms;
            if (e->found)
                *out = e->key;
            return e->found;
        }
    }
    return -1;
}

/* Where a lookup of `hash` goes: its own slot, else a free or dead one, else the least recently used
 * (for an unknown key: the least recently used unknown one, or nowhere). */
static entry_t *victim(entry_t *set, const unsigned char *hash, int found, int64_t now, uint64_t gen)
{
    entry_t *lru = NULL;

    for (int i = 0; i < CACHE_WAYS; i++)
        if (set[i].expires_ms != 0 && memcmp(set[i].hash, hash, DPS_APIKEY_HASH_LEN) == 0)
            return &set[i];
    for (int i = 0; i < CACHE_WAYS; i++)
        if (!entry_valid(&set[i], now, gen))
            return &set[i];
    for (int i = 0; i < CACHE_WAYS; i++)
        if ((found || !set[i].found) && (lru == NULL || set[i].hit_ms < lru->hit_ms))
            lru = &set[i];
    return lru;
}

void dps_apikey_cache_put(const unsigned char hash[DPS_APIKEY_HASH_LEN], const dps_apikey_t *key, int64_t mono_ms, uint64_t gen)
{
    entry_t *e = victim(cache[hash[0]], hash, key != NULL, mono_ms, gen);

    if (e == NULL)
        return;
    memset(e, 0, sizeof(*e));
    memcpy(e->hash, hash, DPS_APIKEY_HASH_LEN);
    e->expires_ms = mono_ms + (key != NULL ? DPS_APIKEY_TTL_MS : DPS_APIKEY_NEGATIVE_TTL_MS);
    e->hit_ms = mono_ms;
    e->gen = gen;
    e->found = key != NULL;
    if (key != NULL)
        e->key = *key;
}

/* ---- authentication ---------------------------------------------------------------------------- */

static h2o_iovec_t header(dps_req_t *r, const char *name, size_t len)
{
    ssize_t i = h2o_find_header_by_str(&r->h2o->headers, name, len, -1);

    return i >= 0 ? r->h2o->headers.entries[i].value : h2o_iovec_init(NULL, 0);
}

static void copy_text(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src);
}

/* The key whose hash is `hash` from team_api_keys: 1 (copied to *out), 0 (none), -1 after answering 503/500. */
static int lookup(dps_req_t *r, const unsigned char *hash, dps_apikey_t *out)
{
    char hex[2 * DPS_APIKEY_HASH_LEN + 1];
    const char *params[1] = {hex};
    PGresult *res;

    dps_hex_encode(hash, DPS_APIKEY_HASH_LEN, hex);
    if ((res = dps_req_sql(r, NULL,
                           "SELECT id, team_id, key_prefix, rate_limit_rpm, rate_limit_admin_locked FROM team_api_keys "
                           "WHERE key_hash = $1",
                           1, params)) == NULL)
        return -1;
    if (PQntuples(res) == 0)
        return 0;
    memset(out, 0, sizeof(*out));
    copy_text(out->id, sizeof(out->id), PQgetvalue(res, 0, 0));
    copy_text(out->team_id, sizeof(out->team_id), PQgetvalue(res, 0, 1));
    copy_text(out->prefix, sizeof(out->prefix), PQgetvalue(res, 0, 2));
    out->has_rate_limit = !PQgetisnull(res, 0, 3);
    out->rate_limit_rpm = out->has_rate_limit ? strtoll(PQgetvalue(res, 0, 3), NULL, 10) : 0;
    out->admin_locked = PQgetvalue(res, 0, 4)[0] == 't';
    return 1;
}

int dps_apikey_authenticate(dps_req_t *r, dps_apikey_t *out)
{
    h2o_iovec_t auth = header(r, H2O_STRLIT("authorization")), x = header(r, H2O_STRLIT("x-api-key"));
    unsigned char hash[DPS_APIKEY_HASH_LEN];
    int64_t now = dps_mono_ms();
    uint64_t gen = dps_worker_listen_generation(); /* before the query: a NOTIFY handled later makes it stale */
    const char *token = NULL;
    size_t len = 0;
    int known;

    switch (dps_apikey_parse_headers(auth.base, auth.len, x.base, x.len, &token, &len)) {
    case DPS_APIKEY_HDR_MISSING:
        dps_http_error(r, 401, "Missing Authorization header");
        return -1;
    case DPS_APIKEY_HDR_MALFORMED:
        dps_http_error(r, 401, "Invalid Authorization header format");
        return -1;
    case DPS_APIKEY_HDR_TOKEN:
        break;
    }
    if (!dps_apikey_well_formed(token, len)) {
        dps_http_error(r, 401, "Invalid API key");
        return -1;
    }
    dps_apikey_hash(token, len, hash);
    if ((known = dps_apikey_cache_get(hash, now, gen, out)) < 0) {
        if ((known = lookup(r, hash, out)) < 0)
            return -1;
        dps_apikey_cache_put(hash, known ? out : NULL, now, gen);
    }
    if (!known) {
        dps_http_error(r, 401, "Invalid API key");
        return -1;
    }
    dps_apikey_mark_used(out->id, dps_now_ms(), now);
    return 0;
}

/* ---- last_used_at ------------------------------------------------------------------------------ */

static size_t mark_slot(const char *id)
{
    uint32_t h = 2166136261u; /* FNV-1a */

    for (const char *p = id; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    return h & (MARKS_CAP - 1);
}

/* The mark of `id`, or the free slot where it would go. */
static mark_t *mark_find(const char *id)
{
    size_t i = mark_slot(id);

    while (marks[i].id[0] != '\0' && strcmp(marks[i].id, id) != 0)
        i = (i + 1) & (MARKS_CAP - 1);
    return &marks[i];
}

/* Drop the marks that no longer matter: written, not used since, and written long enough ago that a
 * new use may be written at once anyway. */
static void marks_compact(int64_t mono_ms)
{
    static mark_t keep[MARKS_MAX];
    size_t n = 0;

    for (size_t i = 0; i < MARKS_CAP; i++)
        if (marks[i].id[0] != '\0' &&
            (marks[i].dirty || !marks[i].written || mono_ms - marks[i].written_ms < DPS_APIKEY_LAST_USED_INTERVAL_MS))
            keep[n++] = marks[i];
    memset(marks, 0, sizeof(marks));
    for (size_t i = 0; i < n; i++)
        *mark_find(keep[i].id) = keep[i];
    nmarks = n;
}

void dps_apikey_mark_used(const char *key_id, int64_t wall_ms, int64_t mono_ms)
{
    mark_t *m = mark_find(key_id);

    if (m->id[0] == '\0') {
        if (nmarks >= MARKS_MAX) {
            marks_compact(mono_ms);
            m = mark_find(key_id);
        }
        if (nmarks >= MARKS_MAX) /* that many keys used within a minute: this use goes unrecorded */
            return;
        copy_text(m->id, sizeof(m->id), key_id);
        nmarks++;
    }
    m->dirty = 1;
    if (wall_ms > m->used_ms)
        m->used_ms = wall_ms;
}

static int mark_due(const mark_t *m, int64_t mono_ms, int force)
{
    return m->id[0] != '\0' && m->dirty && (force || !m->written || mono_ms - m->written_ms >= DPS_APIKEY_LAST_USED_INTERVAL_MS);
}

size_t dps_apikey_flush_with(int64_t mono_ms, int force, dps_apikey_writer_t write, void *arg)
{
    char *ids = NULL, *times = NULL, *pi, *pt;
    size_t n = 0;

    if (!force && mono_ms < next_flush_ms)
        return 0;
    next_flush_ms = mono_ms + DPS_APIKEY_FLUSH_CHECK_MS;
    for (size_t i = 0; i < MARKS_CAP; i++)
        n += mark_due(&marks[i], mono_ms, force);
    if (n == 0)
        return 0;
    if ((ids = malloc(n * (DPS_APIKEY_ID_LEN + 1) + 3)) == NULL || (times = malloc(n * 32 + 3)) == NULL) {
        free(ids);
        return 0;
    }
    pi = ids, pt = times;
    *pi++ = '{', *pt++ = '{';
    for (size_t i = 0; i < MARKS_CAP; i++) {
        if (!mark_due(&marks[i], mono_ms, force))
            continue;
        if (pi[-1] != '{')
            *pi++ = ',', *pt++ = ',';
        pi += sprintf(pi, "%s", marks[i].id);
        dps_time_iso8601(marks[i].used_ms, pt, 32);
        pt += strlen(pt);
    }
    strcpy(pi, "}"), strcpy(pt, "}");
    if (write(ids, times, arg) != 0) {
        n = 0; /* kept dirty: the next check tries again */
    } else {
        for (size_t i = 0; i < MARKS_CAP; i++)
            if (mark_due(&marks[i], mono_ms, force))
                marks[i].dirty = 0, marks[i].written = 1, marks[i].written_ms = mono_ms;
    }
    free(ids);
    free(times);
    return n;
}

typedef struct {
    dps_db_t *db;
    int failed;
} writer_ctx_t;

static int write_last_used(const char *ids, const char *times, void *arg)
{
    writer_ctx_t *w = arg;
    PGconn *conn = dps_db_conn(w->db);
    const char *params[2] = {ids, times};
    PGresult *res;
    int in_txn;

    /* idle, or inside the usage flush's transaction (usage.c), which handles a failure itself */
    if (conn == NULL || (PQtransactionStatus(conn) != PQTRANS_IDLE && PQtransactionStatus(conn) != PQTRANS_INTRANS)) {
        w->failed = 1;
        return -1;
    }
    in_txn = PQtransactionStatus(conn) == PQTRANS_INTRANS;
    res = PQexecParams(conn, LAST_USED_SQL, 2, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        char err[512];
        snprintf(err, sizeof(err), "%s", PQresultErrorMessage(res));
        err[strcspn(err, "\n")] = '\0';
        DPS_LOG(DPS_LOG_WARN, "last_used_at not written", DPS_F_STR("error", err));
        if (!in_txn) /* the caller's connection must stay as it is until its transaction ends */
            dps_db_check(w->db);
        w->failed = 1;
    }
    PQclear(res);
    return w->failed ? -1 : 0;
}

int dps_apikey_flush_due(dps_db_t *db)
{
    next_flush_ms = 0;
    return dps_apikey_flush(db, 0);
}

int dps_apikey_flush(dps_db_t *db, int force)
{
    writer_ctx_t w = {db, 0};

    if (force && !dps_db_is_connected(db))
        return 0; /* exiting: not worth a connection attempt that may block */
    dps_apikey_flush_with(dps_mono_ms(), force, write_last_used, &w);
    return w.failed ? -1 : 0;
}

void dps_apikey_reset(void)
{
    memset(cache, 0, sizeof(cache));
    memset(marks, 0, sizeof(marks));
    nmarks = 0;
    next_flush_ms = 0;
}
