/* Shared by the Check suites: run one suite and turn its result into an exit status. */
#ifndef DEPSERA_TESTS_UNIT_H
#define DEPSERA_TESTS_UNIT_H

#include <check.h>

static inline int dps_check_run(Suite *s)
{
    SRunner *sr = srunner_create(s);
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}

#endif
