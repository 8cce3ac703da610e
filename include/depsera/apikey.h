/* Team API keys on the ingestion side: key material, the credential headers, authentication through a
 * per-worker cache, and last_used_at (api-keys-and-rate-limits.md §0, §1, §3). */
#ifndef DEPSERA_APIKEY_H
#define DEPSERA_APIKEY_H

#include <stddef.h>
#include <stdint.h>

#include "depsera/db.h"
#include "depsera/http.h"

#define DPS_APIKEY_RAW_LEN 36   /* "dps_" + 32 lower-case hex characters */
#define DPS_APIKEY_PREFIX_LEN 8 /* key_prefix: "dps_" + 4 hex characters */
#define DPS_APIKEY_HASH_LEN 32  /* SHA-256 */
#define DPS_APIKEY_ID_LEN 36    /* a UUID as text */

/* How long a lookup is trusted, NOTIFY or not: a revoked key is refused within this time even when
 * the notification was lost. A healthy listener makes it immediate (worker_listen.h). */
#define DPS_APIKEY_TTL_MS 1000
/* Unknown keys are cached too, so that a client retrying a wrong key does not cost a query each time.
 * A key is random and shown only after its creation committed: an unknown hash never becomes valid
 * (and creation notifies anyway), so this only bounds memory of dead keys. */
#define DPS_APIKEY_NEGATIVE_TTL_MS 1000
/* last_used_at is written at most once per this interval per key and worker. */
#define DPS_APIKEY_LAST_USED_INTERVAL_MS 60000
/* How often dps_apikey_flush looks for marks to write. */
#define DPS_APIKEY_FLUSH_CHECK_MS 5000

/* An authenticated key, as the request context needs it. */
typedef struct {
    char id[DPS_APIKEY_ID_LEN + 1];
    char team_id[DPS_APIKEY_ID_LEN + 1];
    char prefix[DPS_APIKEY_PREFIX_LEN + 1];
    int has_rate_limit;       /* 0: rate_limit_rpm is NULL, the system default applies */
    long long rate_limit_rpm; /* when has_rate_limit: 0 = unlimited, else requests per minute */
    int admin_locked;         /* rate_limit_admin_locked */
} dps_apikey_t;

/* A new key: the raw key (shown once), what is stored of it, and its prefix. */
typedef struct {
    char raw[DPS_APIKEY_RAW_LEN + 1];
    char hash[2 * DPS_APIKEY_HASH_LEN + 1]; /* key_hash: lower-case hex SHA-256 of raw */
    char prefix[DPS_APIKEY_PREFIX_LEN + 1];
} dps_apikey_material_t;

/* What the credential headers hold. */
typedef enum {
    DPS_APIKEY_HDR_TOKEN,     /* *token is the credential to look up */
    DPS_APIKEY_HDR_MISSING,   /* no (non-empty) Authorization nor X-API-Key: "Missing Authorization header" */
    DPS_APIKEY_HDR_MALFORMED, /* Authorization is not "Bearer dps_..." split on single spaces:
                               * "Invalid Authorization header format" */
} dps_apikey_hdr_t;

/* Fill `out` with a fresh key: 16 bytes from OpenSSL's CSPRNG. 0, or -1 if the generator failed. */
int dps_apikey_generate(dps_apikey_material_t *out) __attribute__((warn_unused_result));
/* SHA-256 of the `len` bytes of token. */
void dps_apikey_hash(const char *token, size_t len, unsigned char out[DPS_APIKEY_HASH_LEN]);
/* 1 if token has the shape of the keys depsera issues ("dps_" + 32 lower-case hex); only those can
 * match a stored hash, so nothing else is looked up. */
int dps_apikey_well_formed(const char *token, size_t len);
/* Which credential a request carries (§3). `authorization` and `x_api_key` are the header values
 * (NULL if absent; not NUL-terminated). Authorization wins when present and non-empty; X-API-Key is
 * taken as the token itself. *token points into one of the values. Pure: no allocation. */
dps_apikey_hdr_t dps_apikey_parse_headers(const char *authorization, size_t auth_len, const char *x_api_key, size_t x_len,
                                          const char **token, size_t *token_len);

/* Step 7 of the OTLP chain (§3): on success fills `out` (key, team, limits), marks the key used and
 * returns 0. Otherwise answers the request (401 with the exact §3 error, or 503/500 when the database
 * fails) and returns -1. Lookups are cached per worker by key hash for DPS_APIKEY_TTL_MS, and dropped
 * at once when the worker's cache generation moves (NOTIFY depsera_cache). No CSRF, no session. */
int dps_apikey_authenticate(dps_req_t *r, dps_apikey_t *out) __attribute__((warn_unused_result));

/* Write the last_used_at marks that are due (first use since the worker wrote the key, or a use at
 * least DPS_APIKEY_LAST_USED_INTERVAL_MS after it last did) in one UPDATE on the worker's query
 * connection; with `force` (graceful shutdown) every pending mark, if the connection is open. Looks at most every
 * DPS_APIKEY_FLUSH_CHECK_MS unless forced; call it once per loop turn. Must be called outside any
 * request (the connection idle). Failures are logged; the marks are kept for the next attempt. */
int dps_apikey_flush(dps_db_t *db, int force);
/* dps_apikey_flush without waiting for its check interval: the usage flush (usage.h) writes the
 * due marks in its own transaction, on its own interval. Both return 0, or -1 when the marks could
 * not be written (kept for the next attempt; inside a transaction, the transaction is aborted and
 * the connection left as it is). */
int dps_apikey_flush_due(dps_db_t *db);

/* ---- exposed for tests ------------------------------------------------------------------------- */

/* A cached lookup of `hash` at mono_ms under cache generation gen: 1 (known key, copied to *out), 0
 * (known to be no key), -1 (not cached, expired or stale). */
int dps_apikey_cache_get(const unsigned char hash[DPS_APIKEY_HASH_LEN], int64_t mono_ms, uint64_t gen, dps_apikey_t *out);
/* Cache a lookup made at mono_ms under gen; key NULL = no such key. The cache is bounded (set
 * associative): the least recently used entry of the set makes room, but an unknown key only ever
 * replaces an unknown key, so floods of wrong keys cannot push real ones out. */
void dps_apikey_cache_put(const unsigned char hash[DPS_APIKEY_HASH_LEN], const dps_apikey_t *key, int64_t mono_ms, uint64_t gen);
/* Record a use of key_id at wall_ms (epoch) / mono_ms. Bounded: when full of recent marks, a new key's
 * use is not recorded. */
void dps_apikey_mark_used(const char *key_id, int64_t wall_ms, int64_t mono_ms);
/* dps_apikey_flush with the clock and the writer given: write(ids, times, arg) gets two PostgreSQL
 * array literals ("{uuid,...}", "{iso-time,...}") and returns 0 when written. Returns how many marks
 * were written. */
typedef int (*dps_apikey_writer_t)(const char *ids, const char *times, void *arg);
size_t dps_apikey_flush_with(int64_t mono_ms, int force, dps_apikey_writer_t write, void *arg);
/* Forget every cached lookup and mark. */
void dps_apikey_reset(void);

#endif
