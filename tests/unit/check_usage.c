/* Unit tests of the usage accumulator: counts per (key, minute), one minute row and one hour row
 * each, as the PostgreSQL arrays of the flush statement. */
#include "depsera/usage.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "unit.h"

#define K1 "11111111-1111-4111-8111-111111111111"
#define K2 "22222222-2222-4222-8222-222222222222"

/* 2026-11-26T10:15:30Z */
#define T0 1795688130000LL

START_TEST(counts_become_minute_and_hour_rows)
{
    char *v[5];
    int rows;

    dps_usage_clear();
    ck_assert_int_eq(dps_usage_arrays(&v[0], &v[1], &v[2], &v[3], &v[4]), 0);
    dps_usage_count(K1, T0, 0);
    dps_usage_count(K1, T0 + 20000, 1); /* 10:15:50, same minute */
    dps_usage_count(K1, T0 + 40000, 0); /* 10:16:10 */
    dps_usage_count(K2, T0, 1);
    dps_usage_count("not-a-key-id", T0, 0); /* ignored */
    rows = dps_usage_arrays(&v[0], &v[1], &v[2], &v[3], &v[4]);
    ck_assert_int_eq(rows, 6); /* 3 (key, minute) pairs × 2 granularities */
    ck_assert_ptr_nonnull(strstr(v[1], "\"2026-11-26T10:15:00\""));
    ck_assert_ptr_nonnull(strstr(v[1], "\"2026-11-26T10:16:00\""));
    ck_assert_ptr_nonnull(strstr(v[1], "\"2026-11-26T10:00:00\""));
    ck_assert_ptr_nonnull(strstr(v[2], "\"minute\""));
    ck_assert_ptr_nonnull(strstr(v[2], "\"hour\""));
    /* totals: pushes 4, rejections 2, each counted once per granularity */
    long push = 0, rej = 0;
    for (char *p = v[3] + 1; *p && *p != '}'; p++)
        push += strtol(p, &p, 10);
    for (char *p = v[4] + 1; *p && *p != '}'; p++)
        rej += strtol(p, &p, 10);
    ck_assert_int_eq(push, 8);
    ck_assert_int_eq(rej, 4);
    for (int k = 0; k < 5; k++)
        free(v[k]);
    dps_usage_clear();
    ck_assert_int_eq(dps_usage_arrays(&v[0], &v[1], &v[2], &v[3], &v[4]), 0);
}
END_TEST

START_TEST(many_keys_grow_the_table)
{
    char id[40], *v[5];

    dps_usage_clear();
    for (int i = 0; i < 5000; i++) {
        snprintf(id, sizeof(id), "%08d-0000-4000-8000-000000000000", i);
        dps_usage_count(id, T0, 0);
        dps_usage_count(id, T0, 0);
    }
    ck_assert_int_eq(dps_usage_arrays(&v[0], &v[1], &v[2], &v[3], &v[4]), 10000);
    ck_assert_ptr_null(strstr(v[3], "1,"));
    for (int k = 0; k < 5; k++)
        free(v[k]);
    dps_usage_clear();
}
END_TEST

int main(void)
{
    Suite *s = suite_create("usage");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, counts_become_minute_and_hour_rows);
    tcase_add_test(tc, many_keys_grow_the_table);
    suite_add_tcase(s, tc);
    return dps_check_run(s);
}
