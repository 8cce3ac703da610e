/* When the pruner runs (retention.md §1) and how far back it keeps: pure functions of the clock. */
#include "depsera/prune.h"

#include <ctype.h>
#include <string.h>

int dps_prune_parse_hhmm(const char *s, int *minutes)
{
    int h, m;

    if (s == NULL || strlen(s) != 5 || !isdigit((unsigned char)s[0]) || !isdigit((unsigned char)s[1]) || s[2] != ':' ||
        !isdigit((unsigned char)s[3]) || !isdigit((unsigned char)s[4]))
        return -1;
    h = (s[0] - '0') * 10 + s[1] - '0';
    m = (s[3] - '0') * 10 + s[4] - '0';
    if (h > 23 || m > 59)
        return -1;
    *minutes = h * 60 + m;
    return 0;
}

/* A local calendar date as one comparable number. */
static long date_key(const struct tm *t)
{
    return ((long)t->tm_year * 12 + t->tm_mon) * 32 + t->tm_mday;
}

int dps_prune_is_due(const struct tm *now, const struct tm *last, int cleanup_min)
{
    if (now->tm_hour * 60 + now->tm_min < cleanup_min)
        return 0;
    /* at most one run per local day: a run today (or, after the clock went back, "later") counts */
    return last == NULL || date_key(last) < date_key(now);
}

int dps_prune_is_due_at(time_t now, time_t last_run, int cleanup_min)
{
    struct tm n, l;

    localtime_r(&now, &n);
    if (last_run < 0)
        return dps_prune_is_due(&n, NULL, cleanup_min);
    localtime_r(&last_run, &l);
    return dps_prune_is_due(&n, &l, cleanup_min);
}

time_t dps_prune_cutoff(time_t now, int days)
{
    struct tm t;

    /* calendar days in local time (retention.md §2): mktime normalises the day and, with
     * tm_isdst = -1, keeps the wall-clock time across a DST change */
    localtime_r(&now, &t);
    t.tm_mday -= days;
    t.tm_isdst = -1;
    return mktime(&t);
}

int dps_prune_more_batches(long long deleted, long long batch)
{
    return deleted >= batch;
}
