/* Unit tests of API keys: credential headers (§3), key material, the lookup cache, last_used_at marks. */
#include "depsera/apikey.h"
#include "depsera/util.h"

#include <check.h>

#include "unit.h"
#include <stdio.h>
#include <string.h>

/* ---- headers ------------------------------------------------------------------------------------ */

#define TOKEN DPS_APIKEY_HDR_TOKEN
#define MISSING DPS_APIKEY_HDR_MISSING
#define MALFORMED DPS_APIKEY_HDR_MALFORMED

static const struct {
    const char *auth, *x; /* NULL: header absent */
    dps_apikey_hdr_t want;
    const char *token;
} headers[] = {
    {NULL, NULL, MISSING, NULL},
    {"", NULL, MISSING, NULL}, /* an empty header is no header (JavaScript falsiness) */
    {NULL, "", MISSING, NULL},
    {"", "", MISSING, NULL},
    {"Bearer dps_abc", NULL, TOKEN, "dps_abc"},
    {"Bearer dps_", NULL, TOKEN, "dps_"},         /* the format holds; the lookup refuses it */
    {"Bearer dps_a\tb", NULL, TOKEN, "dps_a\tb"}, /* split on spaces only */
    {"bearer dps_abc", NULL, MALFORMED, NULL},    /* case-sensitive */
    {"BEARER dps_abc", NULL, MALFORMED, NULL},
    {"Bearer", NULL, MALFORMED, NULL},               /* one part */
    {"Bearer ", NULL, MALFORMED, NULL},              /* empty token */
    {"Bearer  dps_abc", NULL, MALFORMED, NULL},      /* double space: three parts */
    {"Bearer dps_abc extra", NULL, MALFORMED, NULL}, /* three parts */
    {"Bearer dps_abc ", NULL, MALFORMED, NULL},      /* trailing space */
    {" Bearer dps_abc", NULL, MALFORMED, NULL},      /* leading space */
    {"Bearer\tdps_abc", NULL, MALFORMED, NULL},      /* tab is no separator */
    {"Bearer abc", NULL, MALFORMED, NULL},           /* no dps_ prefix */
    {"Bearer DPS_abc", NULL, MALFORMED, NULL},
    {"Bearer dps", NULL, MALFORMED, NULL},
    {"Basic dXNlcjpwYXNz", NULL, MALFORMED, NULL},
    {"Bearerx dps_abc", NULL, MALFORMED, NULL},
    {"Bearer dps_abc", "dps_other", TOKEN, "dps_abc"}, /* Authorization wins */
    {"Bearer abc", "dps_other", MALFORMED, NULL},      /* even when malformed */
    {NULL, "dps_abc", TOKEN, "dps_abc"},               /* X-API-Key: the token itself */
    {"", "dps_abc", TOKEN, "dps_abc"},
    {NULL, "abc", TOKEN, "abc"}, /* not a key depsera issues: refused as an invalid key */
    {NULL, "Bearer dps_abc", TOKEN, "Bearer dps_abc"},
};

START_TEST(parse_headers)
{
    const char *auth = headers[_i].auth, *x = headers[_i].x, *token = NULL;
    size_t len = 0;
    dps_apikey_hdr_t got = dps_apikey_parse_headers(auth, auth ? strlen(auth) : 0, x, x ? strlen(x) : 0, &token, &len);

    ck_assert_msg(got == headers[_i].want, "case %d (\"%s\", \"%s\"): %d, want %d", _i, auth ? auth : "(none)", x ? x : "(none)",
                  got, headers[_i].want);
    if (got == TOKEN) {
        ck_assert_uint_eq(len, strlen(headers[_i].token));
        ck_assert(memcmp(token, headers[_i].token, len) == 0);
    }
}
END_TEST

/* Values are not NUL-terminated: only `len` bytes may be read. */
START_TEST(parse_headers_uses_lengths)
{
    const char buf[] = "Bearer dps_abcXYZ";
    const char *token;
    size_t len;

    ck_assert_int_eq(dps_apikey_parse_headers(buf, 14, NULL, 0, &token, &len), TOKEN);
    ck_assert_uint_eq(len, 7);
    ck_assert(memcmp(token, "dps_abc", 7) == 0);
    ck_assert_int_eq(dps_apikey_parse_headers(buf, 6, NULL, 0, &token, &len), MALFORMED);
    ck_assert_int_eq(dps_apikey_parse_headers(NULL, 0, buf + 7, 3, &token, &len), TOKEN);
    ck_assert_uint_eq(len, 3);
}
END_TEST

static const struct {
    const char *token;
    int ok;
} shapes[] = {
    {"dps_0123456789abcdef0123456789abcdef", 1}, {"dps_0123456789ABCDEF0123456789abcdef", 0},
    {"dps_0123456789abcdef0123456789abcde", 0},  {"dps_0123456789abcdef0123456789abcdef0", 0},
    {"dpx_0123456789abcdef0123456789abcdef", 0}, {"dps_0123456789abcdef0123456789abcdeg", 0},
    {"dps_0123456789abcdef 123456789abcdef", 0}, {"", 0},
};

START_TEST(well_formed)
{
    ck_assert_int_eq(dps_apikey_well_formed(shapes[_i].token, strlen(shapes[_i].token)), shapes[_i].ok);
}
END_TEST

/* ---- key material ------------------------------------------------------------------------------- */

START_TEST(hash_is_sha256)
{
    unsigned char md[DPS_APIKEY_HASH_LEN];
    char hex[2 * DPS_APIKEY_HASH_LEN + 1];

    dps_apikey_hash("dps_0123456789abcdef0123456789abcdef", 36, md);
    dps_hex_encode(md, sizeof(md), hex);
    ck_assert_str_eq(hex, "b880067814978491a782669ca2b9414cbb1104c0b69003bfd68d76ea3db1c08b");
}
END_TEST

START_TEST(generate)
{
    dps_apikey_material_t a, b;
    unsigned char md[DPS_APIKEY_HASH_LEN];
    char hex[2 * DPS_APIKEY_HASH_LEN + 1];

    ck_assert_int_eq(dps_apikey_generate(&a), 0);
    ck_assert_int_eq(dps_apikey_generate(&b), 0);
    ck_assert_uint_eq(strlen(a.raw), 36);
    ck_assert(dps_apikey_well_formed(a.raw, strlen(a.raw)));
    ck_assert_str_ne(a.raw, b.raw);
    ck_assert(strncmp(a.prefix, a.raw, 8) == 0 && strlen(a.prefix) == 8);
    dps_apikey_hash(a.raw, strlen(a.raw), md);
    dps_hex_encode(md, sizeof(md), hex);
    ck_assert_str_eq(a.hash, hex);
}
END_TEST

/* ---- cache -------------------------------------------------------------------------------------- */

/* A hash landing in cache set `set`, told apart by `n`. */
static void fake_hash(unsigned char *h, int set, int n)
{
    memset(h, 0, DPS_APIKEY_HASH_LEN);
    h[0] = (unsigned char)set;
    h[1] = (unsigned char)n;
    h[31] = 0x5a;
}

static dps_apikey_t fake_key(int n)
{
    dps_apikey_t k;

    memset(&k, 0, sizeof(k));
    snprintf(k.id, sizeof(k.id), "00000000-0000-4000-8000-%012d", n);
    snprintf(k.team_id, sizeof(k.team_id), "11111111-0000-4000-8000-%012d", n);
    snprintf(k.prefix, sizeof(k.prefix), "dps_%04u", (unsigned)n % 10000u);
    k.has_rate_limit = n % 2;
    k.rate_limit_rpm = n;
    return k;
}

START_TEST(cache_ttl_and_generation)
{
    unsigned char h[DPS_APIKEY_HASH_LEN];
    dps_apikey_t k = fake_key(7), got;

    dps_apikey_reset();
    fake_hash(h, 3, 1);
    ck_assert_int_eq(dps_apikey_cache_get(h, 1000, 1, &got), -1);
    dps_apikey_cache_put(h, &k, 1000, 1);
    memset(&got, 0, sizeof(got));
    ck_assert_int_eq(dps_apikey_cache_get(h, 1000 + DPS_APIKEY_TTL_MS - 1, 1, &got), 1);
    ck_assert_str_eq(got.id, k.id);
    ck_assert_str_eq(got.team_id, k.team_id);
    ck_assert_str_eq(got.prefix, k.prefix);
    ck_assert_int_eq(got.rate_limit_rpm, 7);
    ck_assert_int_eq(dps_apikey_cache_get(h, 1000 + DPS_APIKEY_TTL_MS, 1, &got), -1); /* expired */
    ck_assert_int_eq(dps_apikey_cache_get(h, 1001, 2, &got), -1);                     /* NOTIFY: stale */
    /* reloaded as unknown (revoked): the same slot now says so */
    dps_apikey_cache_put(h, NULL, 1002, 2);
    ck_assert_int_eq(dps_apikey_cache_get(h, 1003, 2, &got), 0);
    ck_assert_int_eq(dps_apikey_cache_get(h, 1002 + DPS_APIKEY_NEGATIVE_TTL_MS, 2, &got), -1);
}
END_TEST

START_TEST(cache_bounded_lru)
{
    unsigned char h[8][DPS_APIKEY_HASH_LEN];
    dps_apikey_t k, got;

    dps_apikey_reset();
    for (int i = 0; i < 8; i++) {
        fake_hash(h[i], 9, i); /* eight keys, one set */
        k = fake_key(i);
        dps_apikey_cache_put(h[i], &k, 100 + i, 1);
        ck_assert_int_eq(dps_apikey_cache_get(h[0], 100 + i, 1, &got), 1); /* h[0] stays the most recently used */
    }
    ck_assert_str_eq(got.id, fake_key(0).id);
    ck_assert_int_eq(dps_apikey_cache_get(h[7], 200, 1, &got), 1);  /* the newest */
    ck_assert_int_eq(dps_apikey_cache_get(h[1], 200, 1, &got), -1); /* the least recently used went first */
}
END_TEST

START_TEST(cache_unknown_keys_do_not_evict_known_ones)
{
    unsigned char known[8][DPS_APIKEY_HASH_LEN], bad[DPS_APIKEY_HASH_LEN];
    dps_apikey_t k, got;
    int kept = 0;

    dps_apikey_reset();
    for (int i = 0; i < 8; i++) {
        fake_hash(known[i], 20, i);
        k = fake_key(i);
        dps_apikey_cache_put(known[i], &k, 100, 1);
    }
    for (int i = 0; i < 8; i++)
        kept += dps_apikey_cache_get(known[i], 101, 1, &got) == 1;
    ck_assert_int_ge(kept, 2);
    for (int n = 100; n < 200; n++) { /* a flood of wrong keys in the same set */
        fake_hash(bad, 20, n);
        dps_apikey_cache_put(bad, NULL, 102, 1);
    }
    int still = 0;
    for (int i = 0; i < 8; i++)
        still += dps_apikey_cache_get(known[i], 103, 1, &got) == 1;
    ck_assert_int_eq(still, kept);
    /* in a set of unknown keys, unknown keys replace each other */
    fake_hash(bad, 21, 1);
    dps_apikey_cache_put(bad, NULL, 100, 1);
    for (int n = 2; n < 50; n++) {
        unsigned char other[DPS_APIKEY_HASH_LEN];
        fake_hash(other, 21, n);
        dps_apikey_cache_put(other, NULL, 100 + n, 1);
        ck_assert_int_eq(dps_apikey_cache_get(other, 100 + n, 1, &got), 0);
    }
}
END_TEST

/* ---- last_used_at marks ------------------------------------------------------------------------- */

static char written_ids[64 * 1024], written_times[64 * 1024];
static int writes, fail_writes;

static int fake_writer(const char *ids, const char *times, void *arg)
{
    (void)arg;
    writes++;
    if (fail_writes)
        return -1;
    snprintf(written_ids, sizeof(written_ids), "%s", ids);
    snprintf(written_times, sizeof(written_times), "%s", times);
    return 0;
}

static void reset_marks(void)
{
    dps_apikey_reset();
    writes = fail_writes = 0;
    written_ids[0] = written_times[0] = '\0';
}

START_TEST(marks_first_use_then_once_a_minute)
{
    dps_apikey_t a = fake_key(1);
    const int64_t t0 = 1000000;

    reset_marks();
    ck_assert_uint_eq(dps_apikey_flush_with(t0, 0, fake_writer, NULL), 0); /* nothing to write: no statement */
    ck_assert_int_eq(writes, 0);
    dps_apikey_mark_used(a.id, 1775527800123LL, t0 + 1);
    dps_apikey_mark_used(a.id, 1775527800100LL, t0 + 2);                        /* an older wall time does not go back */
    ck_assert_uint_eq(dps_apikey_flush_with(t0 + 10, 0, fake_writer, NULL), 0); /* checked at most every 5 s */
    ck_assert_uint_eq(dps_apikey_flush_with(t0 + DPS_APIKEY_FLUSH_CHECK_MS, 0, fake_writer, NULL), 1);
    ck_assert_str_eq(written_ids, "{00000000-0000-4000-8000-000000000001}");
    ck_assert_str_eq(written_times, "{2026-04-07T02:10:00.123Z}");
    /* used again at once: not written again before a minute has passed */
    for (int64_t t = t0 + 2 * DPS_APIKEY_FLUSH_CHECK_MS; t < t0 + DPS_APIKEY_FLUSH_CHECK_MS + DPS_APIKEY_LAST_USED_INTERVAL_MS;
         t += DPS_APIKEY_FLUSH_CHECK_MS) {
        dps_apikey_mark_used(a.id, 1775527801000LL, t);
        ck_assert_uint_eq(dps_apikey_flush_with(t, 0, fake_writer, NULL), 0);
    }
    ck_assert_int_eq(writes, 1);
    ck_assert_uint_eq(
        dps_apikey_flush_with(t0 + DPS_APIKEY_FLUSH_CHECK_MS + DPS_APIKEY_LAST_USED_INTERVAL_MS, 0, fake_writer, NULL), 1);
    ck_assert_str_eq(written_times, "{2026-04-07T02:10:01.000Z}");
    /* not used since: nothing more */
    ck_assert_uint_eq(dps_apikey_flush_with(t0 + 10 * DPS_APIKEY_LAST_USED_INTERVAL_MS, 0, fake_writer, NULL), 0);
    ck_assert_int_eq(writes, 2);
}
END_TEST

START_TEST(marks_force_and_failure)
{
    dps_apikey_t a = fake_key(1), b = fake_key(2);
    const int64_t t0 = 5000000;

    reset_marks();
    dps_apikey_mark_used(a.id, 1000, t0);
    ck_assert_uint_eq(dps_apikey_flush_with(t0, 0, fake_writer, NULL), 1);
    dps_apikey_mark_used(a.id, 2000, t0 + 1);
    dps_apikey_mark_used(b.id, 3000, t0 + 1);
    /* shutdown: every pending mark, even one written a moment ago */
    ck_assert_uint_eq(dps_apikey_flush_with(t0 + 2, 1, fake_writer, NULL), 2);
    ck_assert(strstr(written_ids, a.id) != NULL && strstr(written_ids, b.id) != NULL && strchr(written_ids, ',') != NULL);
    ck_assert(strstr(written_times, "1970-01-01T00:00:02.000Z") != NULL &&
              strstr(written_times, "1970-01-01T00:00:03.000Z") != NULL);
    /* a failed write keeps the marks for the next check */
    dps_apikey_mark_used(b.id, 4000, t0 + DPS_APIKEY_LAST_USED_INTERVAL_MS);
    fail_writes = 1;
    ck_assert_uint_eq(dps_apikey_flush_with(t0 + DPS_APIKEY_LAST_USED_INTERVAL_MS + 10, 0, fake_writer, NULL), 0);
    fail_writes = 0;
    ck_assert_uint_eq(
        dps_apikey_flush_with(t0 + DPS_APIKEY_LAST_USED_INTERVAL_MS + 10 + DPS_APIKEY_FLUSH_CHECK_MS, 0, fake_writer, NULL), 1);
    ck_assert_str_eq(written_ids, "{00000000-0000-4000-8000-000000000002}");
}
END_TEST

START_TEST(marks_bounded)
{
    char id[40];
    const int64_t t0 = 9000000;
    size_t n;

    reset_marks();
    for (int i = 0; i < 5000; i++) {
        snprintf(id, sizeof(id), "00000000-0000-4000-8000-%012d", i);
        dps_apikey_mark_used(id, 1000, t0);
    }
    n = dps_apikey_flush_with(t0, 0, fake_writer, NULL);
    ck_assert_uint_gt(n, 100);
    ck_assert_uint_lt(n, 5000);
    /* a minute after that write, those marks are dropped to make room for new keys */
    snprintf(id, sizeof(id), "00000000-0000-4000-8000-%012d", 99999);
    dps_apikey_mark_used(id, 1000, t0 + DPS_APIKEY_LAST_USED_INTERVAL_MS);
    ck_assert_uint_eq(dps_apikey_flush_with(t0 + DPS_APIKEY_LAST_USED_INTERVAL_MS, 0, fake_writer, NULL), 1);
    ck_assert_str_eq(written_ids, "{00000000-0000-4000-8000-000000099999}");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("apikey");
    TCase *tc = tcase_create("core");

    tcase_add_loop_test(tc, parse_headers, 0, (int)(sizeof(headers) / sizeof(headers[0])));
    tcase_add_test(tc, parse_headers_uses_lengths);
    tcase_add_loop_test(tc, well_formed, 0, (int)(sizeof(shapes) / sizeof(shapes[0])));
    tcase_add_test(tc, hash_is_sha256);
    tcase_add_test(tc, generate);
    tcase_add_test(tc, cache_ttl_and_generation);
    tcase_add_test(tc, cache_bounded_lru);
    tcase_add_test(tc, cache_unknown_keys_do_not_evict_known_ones);
    tcase_add_test(tc, marks_first_use_then_once_a_minute);
    tcase_add_test(tc, marks_force_and_failure);
    tcase_add_test(tc, marks_bounded);
    suite_add_tcase(s, tc);
    return dps_check_run(s);
}
