/* Unit tests of the shared connection counts: who is crowded, stale and foreign slots, reuse. */
#include "depsera/balance.h"

#include <check.h>
#include <sys/wait.h>
#include <unistd.h>

#include "unit.h"

START_TEST(crowded_only_above_the_least_loaded)
{
    dps_balance_t *b = dps_balance_create(4);
    pid_t me = getpid();

    ck_assert_ptr_nonnull(b);
    dps_balance_assign(b, 0, me);
    ck_assert(!dps_balance_crowded(b, 0)); /* alone */
    dps_balance_add(b, 0, 1);
    ck_assert(!dps_balance_crowded(b, 0));
    dps_balance_assign(b, 1, me + 100000); /* another live worker with no connection */
    ck_assert(dps_balance_crowded(b, 0));
    dps_balance_add(b, 1, 1); /* not ours: ignored */
    ck_assert(dps_balance_crowded(b, 0));
    dps_balance_release(b, 1, me + 100000); /* gone: no longer counted */
    ck_assert(!dps_balance_crowded(b, 0));
    dps_balance_add(b, 0, -1);
    ck_assert(!dps_balance_crowded(b, 0));
    ck_assert(!dps_balance_crowded(b, 3)); /* a slot we do not own is never crowded */
    ck_assert(!dps_balance_crowded(b, 7)); /* out of range */
    ck_assert(!dps_balance_crowded(NULL, 0));
}
END_TEST

START_TEST(release_of_a_replaced_owner_is_ignored)
{
    dps_balance_t *b = dps_balance_create(2);
    pid_t me = getpid();

    dps_balance_assign(b, 0, me);
    dps_balance_add(b, 0, 3);
    dps_balance_assign(b, 1, me + 1);
    dps_balance_release(b, 1, me + 2); /* an older owner of slot 1 exits after its replacement started */
    ck_assert(dps_balance_crowded(b, 0));
    dps_balance_assign(b, 0, me); /* a new owner starts with no connection */
    ck_assert(!dps_balance_crowded(b, 0));
}
END_TEST

START_TEST(shared_across_fork)
{
    dps_balance_t *b = dps_balance_create(2);
    pid_t child;
    int status;

    dps_balance_assign(b, 0, getpid());
    if ((child = fork()) == 0) {
        dps_balance_assign(b, 1, getpid());
        dps_balance_add(b, 1, 2);
        _exit(dps_balance_crowded(b, 1) ? 0 : 1);
    }
    ck_assert_int_eq(waitpid(child, &status, 0), child);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0); /* the child saw the parent's 0 */
    dps_balance_add(b, 0, 1);
    ck_assert(!dps_balance_crowded(b, 0)); /* the parent sees the child's 2 */
}
END_TEST

int main(void)
{
    Suite *s = suite_create("balance");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, crowded_only_above_the_least_loaded);
    tcase_add_test(tc, release_of_a_replaced_owner_is_ignored);
    tcase_add_test(tc, shared_across_fork);
    suite_add_tcase(s, tc);
    return dps_check_run(s);
}
