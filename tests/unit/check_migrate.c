/* Unit tests of migration bookkeeping: classification, checksums, the compiled-in list. */
#include "depsera/migrate.h"

#include <check.h>

#include "unit.h"
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const dps_migration_t known[] = {
    {"001", "core", "CREATE TABLE a ();", "DROP TABLE a;"},
    {"002", "more", "CREATE TABLE b ();", "DROP TABLE b;"},
    {"003", "last", "CREATE TABLE c ();", "DROP TABLE c;"},
};

static dps_mig_row_t row(const dps_migration_t *m, const char *sum)
{
    dps_mig_row_t r;
    memset(&r, 0, sizeof(r));
    snprintf(r.id, sizeof(r.id), "%s", m->id);
    snprintf(r.name, sizeof(r.name), "%s", m->name);
    if (sum != NULL)
        snprintf(r.checksum, sizeof(r.checksum), "%s", sum);
    else
        dps_migration_checksum(m, r.checksum);
    snprintf(r.applied_at, sizeof(r.applied_at), "2026-01-01T00:00:00.000Z");
    return r;
}

START_TEST(checksum_is_sha256_hex)
{
    char sum[65];
    dps_migration_t m = {"001", "x", "abc", ""};

    dps_migration_checksum(&m, sum);
    ck_assert_str_eq(sum, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}
END_TEST

START_TEST(all_pending_on_empty_db)
{
    dps_mig_status_t out[8];
    size_t n = dps_migrate_classify(known, 3, NULL, 0, out);

    ck_assert_int_eq(n, 3);
    for (size_t i = 0; i < n; i++) {
        ck_assert_int_eq(out[i].state, DPS_MIG_PENDING);
        ck_assert_str_eq(out[i].applied_at, "");
    }
}
END_TEST

START_TEST(applied_modified_unknown)
{
    dps_migration_t future = {"007", "future", "x", "y"};
    dps_mig_row_t rows[] = {row(&known[0], NULL), row(&known[1], "deadbeef"), row(&future, NULL)};
    dps_mig_status_t out[8];
    size_t n = dps_migrate_classify(known, 3, rows, 3, out);

    ck_assert_int_eq(n, 4);
    ck_assert_str_eq(out[0].id, "001");
    ck_assert_int_eq(out[0].state, DPS_MIG_APPLIED);
    ck_assert_str_eq(out[0].applied_at, "2026-01-01T00:00:00.000Z");
    ck_assert_int_eq(out[1].state, DPS_MIG_MODIFIED);
    ck_assert_str_eq(out[2].id, "003");
    ck_assert_int_eq(out[2].state, DPS_MIG_PENDING);
    ck_assert_str_eq(out[3].id, "007");
    ck_assert_str_eq(out[3].name, "future");
    ck_assert_int_eq(out[3].state, DPS_MIG_UNKNOWN);
}
END_TEST

/* The compiled-in list: ordered ids, both directions present, no transaction control
 * (the runner wraps each file in its own transaction). */
START_TEST(compiled_list_is_sane)
{
    ck_assert(dps_migrations_count >= 4);
    for (size_t i = 0; i < dps_migrations_count; i++) {
        const dps_migration_t *m = &dps_migrations[i];
        ck_assert_int_eq(strlen(m->id), 3);
        if (i > 0)
            ck_assert(strcmp(dps_migrations[i - 1].id, m->id) < 0);
        ck_assert(strlen(m->up_sql) > 0);
        ck_assert(strlen(m->down_sql) > 0);
        ck_assert_ptr_null(strcasestr(m->up_sql, "\nBEGIN;"));
        ck_assert_ptr_null(strcasestr(m->up_sql, "\nCOMMIT;"));
        ck_assert_ptr_null(strcasestr(m->down_sql, "\nCOMMIT;"));
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("migrate");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, checksum_is_sha256_hex);
    tcase_add_test(tc, all_pending_on_empty_db);
    tcase_add_test(tc, applied_modified_unknown);
    tcase_add_test(tc, compiled_list_is_sane);
    suite_add_tcase(s, tc);
    return dps_check_run(s);
}
