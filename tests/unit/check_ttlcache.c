/* Unit tests of the per-process TTL cache: hits, expiry, replacement, binary keys, filling up. */
#include "depsera/ttlcache.h"

#include <check.h>
#include <stdio.h>
#include <string.h>

#include "unit.h"

START_TEST(hit_expiry_and_replacement)
{
    dps_ttlcache_t *c = dps_ttlcache_create(8, 1000);
    size_t len;
    const char *v;

    ck_assert_ptr_nonnull(c);
    ck_assert_ptr_null(dps_ttlcache_get(c, "a", 1, 0, &len));
    ck_assert_int_eq(dps_ttlcache_put(c, "a", 1, "one", 3, 100), 0);
    v = dps_ttlcache_get(c, "a", 1, 1099, &len);
    ck_assert_ptr_nonnull(v);
    ck_assert_uint_eq(len, 3);
    ck_assert_str_eq(v, "one");                                  /* values are NUL-terminated */
    ck_assert_ptr_null(dps_ttlcache_get(c, "a", 1, 1100, &len)); /* expired */
    ck_assert_int_eq(dps_ttlcache_put(c, "a", 1, "two!", 4, 2000), 0);
    ck_assert_str_eq(dps_ttlcache_get(c, "a", 1, 2000, &len), "two!");
    dps_ttlcache_clear(c);
    ck_assert_ptr_null(dps_ttlcache_get(c, "a", 1, 2000, &len));
    dps_ttlcache_destroy(c);
    dps_ttlcache_destroy(NULL); /* caches are created on first use: NULL is an empty cache */
    dps_ttlcache_clear(NULL);
    ck_assert_ptr_null(dps_ttlcache_get(NULL, "a", 1, 0, &len));
    ck_assert_int_eq(dps_ttlcache_put(NULL, "a", 1, "", 0, 0), -1);
}
END_TEST

START_TEST(binary_keys_are_distinct)
{
    dps_ttlcache_t *c = dps_ttlcache_create(8, 1000);
    size_t len;

    ck_assert_int_eq(dps_ttlcache_put(c, "team\0ab", 7, "1", 1, 0), 0);
    ck_assert_int_eq(dps_ttlcache_put(c, "team\0a", 6, "2", 1, 0), 0);
    ck_assert_str_eq(dps_ttlcache_get(c, "team\0ab", 7, 1, &len), "1");
    ck_assert_str_eq(dps_ttlcache_get(c, "team\0a", 6, 1, &len), "2");
    ck_assert_ptr_null(dps_ttlcache_get(c, "team", 4, 1, &len));
    dps_ttlcache_destroy(c);
}
END_TEST

START_TEST(full_cache_starts_over)
{
    dps_ttlcache_t *c = dps_ttlcache_create(4, 1000);
    char key[16];
    size_t len, live = 0;

    for (int i = 0; i < 100; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        ck_assert_int_eq(dps_ttlcache_put(c, key, strlen(key), "", 0, 0), 0);
        ck_assert_ptr_nonnull(dps_ttlcache_get(c, key, strlen(key), 0, &len)); /* the newest is always there */
    }
    for (int i = 0; i < 100; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        live += dps_ttlcache_get(c, key, strlen(key), 0, &len) != NULL;
    }
    ck_assert_uint_le(live, 4);
    dps_ttlcache_destroy(c);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("ttlcache");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, hit_expiry_and_replacement);
    tcase_add_test(tc, binary_keys_are_distinct);
    tcase_add_test(tc, full_cache_starts_over);
    suite_add_tcase(s, tc);
    return dps_check_run(s);
}
