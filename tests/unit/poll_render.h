/* Shared by the poll parser suites: a parse result rendered as one line of text, so that table rows can
 * state every field of every status at once. */
#ifndef DEPSERA_TESTS_POLL_RENDER_H
#define DEPSERA_TESTS_POLL_RENDER_H

#include "depsera/poll_parse.h"

#include <stdio.h>
#include <string.h>

/* "name type=… h=… st=… code=… lat=… skip=…" then, only when present, " last=<ms> desc=… impact=… msg=…
 * contact=… details=… error=…"; statuses joined by "; ". Truncated to cap. */
static inline void poll_render(const dps_poll_result_t *r, char *buf, size_t cap)
{
    size_t len = 0;

    buf[0] = '\0';
#define PUT(...)                                                                                                                   \
    do {                                                                                                                           \
        if (len < cap)                                                                                                             \
            len += (size_t)snprintf(buf + len, cap - len, __VA_ARGS__);                                                            \
    } while (0)
#define OPT(label, s)                                                                                                              \
    do {                                                                                                                           \
        if ((s) != NULL)                                                                                                           \
            PUT(" " label "=%s", (s));                                                                                             \
    } while (0)
    for (size_t i = 0; i < r->n_deps; i++) {
        const dps_dep_status_t *d = &r->deps[i];

        PUT("%s%s type=%s h=%d st=%d code=%d lat=%.17g skip=%d", i ? "; " : "", d->name, d->type ? d->type : "(null)", d->healthy,
            d->health_state, d->health_code, d->latency_ms, d->skipped);
        if (d->has_last_checked)
            PUT(" last=%lld", (long long)d->last_checked_ms);
        OPT("desc", d->description);
        OPT("impact", d->impact);
        OPT("msg", d->error_message);
        OPT("contact", d->contact);
        OPT("details", d->check_details);
        OPT("error", d->error);
    }
#undef PUT
#undef OPT
}

/* The warnings joined by " | ". */
static inline void poll_render_warnings(const dps_poll_result_t *r, char *buf, size_t cap)
{
    size_t len = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < r->n_warnings && len < cap; i++)
        len += (size_t)snprintf(buf + len, cap - len, "%s%s", i ? " | " : "", r->warnings[i]);
}

#endif
