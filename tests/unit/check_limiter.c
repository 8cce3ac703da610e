/* Unit tests of the fixed-window limiter: counting, window reset, key independence, eviction. */
#include "depsera/limiter.h"

#include <check.h>

#include "unit.h"
#include <stdio.h>

START_TEST(counts_and_resets)
{
    dps_limiter_t *l = dps_limiter_create(3, 1000, 64);
    dps_limit_result_t r;

    for (int i = 0; i < 3; i++) {
        r = dps_limiter_hit(l, "1.2.3.4", 100 + i);
        ck_assert(r.allowed);
        ck_assert_int_eq(r.remaining, 2 - i);
        ck_assert_int_eq(r.limit, 3);
    }
    r = dps_limiter_hit(l, "1.2.3.4", 500);
    ck_assert(!r.allowed);
    ck_assert_int_eq(r.remaining, 0);
    ck_assert_int_eq(r.reset_ms, 600); /* window started at 100, lasts 1000 */
    r = dps_limiter_hit(l, "5.6.7.8", 500);
    ck_assert(r.allowed);
    r = dps_limiter_hit(l, "1.2.3.4", 1100);
    ck_assert(r.allowed);
    ck_assert_int_eq(r.remaining, 2);
    dps_limiter_destroy(l);
}
END_TEST

START_TEST(many_keys_small_table)
{
    dps_limiter_t *l = dps_limiter_create(1, 60000, 16);
    char key[32];

    /* more keys than slots: old ones are forgotten, nothing crashes, a fresh key is always allowed */
    for (int i = 0; i < 1000; i++) {
        snprintf(key, sizeof(key), "10.0.%d.%d", i / 256, i % 256);
        ck_assert(dps_limiter_hit(l, key, i).allowed);
    }
    ck_assert(!dps_limiter_hit(l, key, 1000).allowed); /* the newest is remembered */
    dps_limiter_destroy(l);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("limiter");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, counts_and_resets);
    tcase_add_test(tc, many_keys_small_table);
    suite_add_tcase(s, tc);
    return dps_check_run(s);
}
