/* Unit tests of the poller's pure parts: backoff delays, breaker transitions, per-host accounting,
 * the capped body buffer, and error sanitizing (polling.md §3, §5.1). */
#include "depsera/poll_backoff.h"
#include "depsera/poll_limits.h"
#include "depsera/poll_sanitize.h"

#include <check.h>

#include "unit.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

START_TEST(backoff_delays)
{
    static const long long want[] = {1000, 2000, 4000, 8000, 16000, 32000, 64000, 128000, 256000, 300000, 300000};

    for (int n = 0; n < (int)(sizeof(want) / sizeof(want[0])); n++)
        ck_assert_int_eq(dps_poll_backoff_ms(n), want[n]);
    ck_assert_int_eq(dps_poll_backoff_ms(-3), 1000);
    ck_assert_int_eq(dps_poll_backoff_ms(1000000), 300000);
}
END_TEST

/* One poll after state (failures, circuit) with interval 30 s: the state and delay that follow. */
static const struct {
    int failures;
    dps_circuit_t circuit;
    int success;
    long long interval;
    int want_failures;
    dps_circuit_t want_circuit;
    long long want_delay;
} steps[] = {
    {0, DPS_CIRCUIT_CLOSED, 1, 30000, 0, DPS_CIRCUIT_CLOSED, 30000},
    {5, DPS_CIRCUIT_CLOSED, 1, 30000, 0, DPS_CIRCUIT_CLOSED, 30000}, /* success resets */
    {0, DPS_CIRCUIT_CLOSED, 0, 30000, 1, DPS_CIRCUIT_CLOSED, 30000}, /* max(interval, 1 s) */
    {0, DPS_CIRCUIT_CLOSED, 0, 500, 1, DPS_CIRCUIT_CLOSED, 1000},    /* max(0.5 s, 1 s) */
    {3, DPS_CIRCUIT_CLOSED, 0, 1000, 4, DPS_CIRCUIT_CLOSED, 8000},   /* backoff of the 3 before */
    {5, DPS_CIRCUIT_CLOSED, 0, 30000, 6, DPS_CIRCUIT_CLOSED, 32000},
    {8, DPS_CIRCUIT_CLOSED, 0, 5000, 9, DPS_CIRCUIT_CLOSED, 256000},
    {9, DPS_CIRCUIT_CLOSED, 0, 5000, 10, DPS_CIRCUIT_OPEN, 300000},     /* the 10th opens */
    {9, DPS_CIRCUIT_CLOSED, 0, 3600000, 10, DPS_CIRCUIT_OPEN, 3600000}, /* a longer interval still wins */
    {10, DPS_CIRCUIT_HALF_OPEN, 0, 5000, 11, DPS_CIRCUIT_OPEN, 300000}, /* failed probe re-opens */
    {10, DPS_CIRCUIT_HALF_OPEN, 1, 5000, 0, DPS_CIRCUIT_CLOSED, 5000},  /* successful probe closes */
    {2, DPS_CIRCUIT_HALF_OPEN, 0, 5000, 3, DPS_CIRCUIT_OPEN, 300000},   /* a probe is a probe whatever the count */
    {42, DPS_CIRCUIT_OPEN, 0, 5000, 43, DPS_CIRCUIT_OPEN, 300000},
};

START_TEST(breaker_steps)
{
    int64_t delay = -1;
    dps_poll_state_t st = {steps[_i].failures, steps[_i].circuit};
    dps_poll_state_t out = dps_poll_after(st, steps[_i].success, steps[_i].interval, &delay);

    ck_assert_int_eq(out.failures, steps[_i].want_failures);
    ck_assert_int_eq(out.circuit, steps[_i].want_circuit);
    ck_assert_int_eq(delay, steps[_i].want_delay);
}
END_TEST

/* From a fresh service, failures one after another: backoff grows, the 10th opens the circuit with
 * its probe 5 minutes later (D4), and a success closes it. */
START_TEST(breaker_sequence)
{
    dps_poll_state_t st = {0, DPS_CIRCUIT_CLOSED};
    int64_t delay, total = 0;

    for (int i = 1; i <= 9; i++) {
        st = dps_poll_after(st, 0, 1000, &delay);
        ck_assert_int_eq(st.failures, i);
        ck_assert_int_eq(st.circuit, DPS_CIRCUIT_CLOSED);
        ck_assert_int_eq(delay, dps_poll_backoff_ms(i - 1));
        total += delay;
    }
    ck_assert_int_eq(total, 511000);
    st = dps_poll_after(st, 0, 1000, &delay);
    ck_assert_int_eq(st.circuit, DPS_CIRCUIT_OPEN);
    ck_assert_int_eq(delay, DPS_POLL_BREAKER_COOLDOWN_MS);
    st.circuit = DPS_CIRCUIT_HALF_OPEN; /* what a claim of an open circuit makes of it */
    st = dps_poll_after(st, 1, 1000, &delay);
    ck_assert_int_eq(st.circuit, DPS_CIRCUIT_CLOSED);
    ck_assert_int_eq(st.failures, 0);
    ck_assert_int_eq(delay, 1000);
}
END_TEST

START_TEST(circuit_names)
{
    ck_assert_str_eq(dps_circuit_name(DPS_CIRCUIT_CLOSED), "closed");
    ck_assert_str_eq(dps_circuit_name(DPS_CIRCUIT_OPEN), "open");
    ck_assert_str_eq(dps_circuit_name(DPS_CIRCUIT_HALF_OPEN), "half_open");
    ck_assert_int_eq(dps_circuit_parse("half_open"), DPS_CIRCUIT_HALF_OPEN);
    ck_assert_int_eq(dps_circuit_parse("open"), DPS_CIRCUIT_OPEN);
    ck_assert_int_eq(dps_circuit_parse("bogus"), DPS_CIRCUIT_CLOSED);
    ck_assert_int_eq(dps_circuit_parse(NULL), DPS_CIRCUIT_CLOSED);
}
END_TEST

START_TEST(hosts_cap)
{
    dps_hosts_t *h = dps_hosts_create(2);

    ck_assert_ptr_nonnull(h);
    ck_assert_int_eq(dps_hosts_acquire(h, "a.example"), 0);
    ck_assert_int_eq(dps_hosts_acquire(h, "A.EXAMPLE"), 0); /* host names are case-insensitive */
    ck_assert_int_eq(dps_hosts_acquire(h, "a.example"), -1);
    ck_assert_int_eq(dps_hosts_count(h, "a.example"), 2);
    ck_assert_int_eq(dps_hosts_acquire(h, "b.example"), 0);
    ck_assert_int_eq(dps_hosts_total(h), 3);
    dps_hosts_release(h, "a.example");
    ck_assert_int_eq(dps_hosts_acquire(h, "a.example"), 0);
    dps_hosts_release(h, "a.example");
    dps_hosts_release(h, "a.example");
    dps_hosts_release(h, "a.example"); /* one too many: ignored */
    ck_assert_int_eq(dps_hosts_count(h, "a.example"), 0);
    ck_assert_int_eq(dps_hosts_total(h), 1);
    dps_hosts_release(h, "never.example");
    ck_assert_int_eq(dps_hosts_total(h), 1);
    dps_hosts_free(h);
}
END_TEST

START_TEST(hosts_many)
{
    dps_hosts_t *h = dps_hosts_create(1);
    char name[32];

    for (int i = 0; i < 300; i++) {
        snprintf(name, sizeof(name), "h%d", i);
        ck_assert_int_eq(dps_hosts_acquire(h, name), 0);
        ck_assert_int_eq(dps_hosts_acquire(h, name), -1);
    }
    ck_assert_int_eq(dps_hosts_total(h), 300);
    for (int i = 0; i < 300; i += 2) {
        snprintf(name, sizeof(name), "h%d", i);
        dps_hosts_release(h, name);
    }
    ck_assert_int_eq(dps_hosts_total(h), 150);
    ck_assert_int_eq(dps_hosts_count(h, "h1"), 1);
    ck_assert_int_eq(dps_hosts_count(h, "h2"), 0);
    dps_hosts_free(h);
}
END_TEST

START_TEST(body_cap)
{
    dps_body_t b;
    char chunk[1000];

    memset(chunk, 'x', sizeof(chunk));
    dps_body_init(&b, 2500);
    ck_assert_int_eq(b.len, 0);
    ck_assert_int_eq(dps_body_append(&b, chunk, 1000), 0);
    ck_assert_int_eq(dps_body_append(&b, chunk, 1000), 0);
    ck_assert_int_eq(dps_body_append(&b, chunk, 500), 0); /* exactly the cap */
    ck_assert_int_eq(b.len, 2500);
    ck_assert_int_eq(b.data[2500], '\0');
    ck_assert_int_eq(b.too_large, 0);
    ck_assert_int_eq(dps_body_append(&b, chunk, 1), -1);
    ck_assert_int_eq(b.too_large, 1);
    ck_assert_int_eq(b.len, 2500);
    ck_assert_uint_le(b.alloc, 2501);
    dps_body_free(&b);
    ck_assert_ptr_null(b.data);
    ck_assert_int_eq(b.cap, 2500);
    ck_assert_int_eq(dps_body_append(&b, "", 0), 0);
    dps_body_free(&b);
}
END_TEST

static const struct {
    const char *in, *want;
} sanitized[] = {
    {NULL, "Unknown poll error"},
    {"", "Unknown poll error"},
    {"connect ECONNREFUSED 10.0.0.5:80", "Connection refused"},
    {"read econnreset", "Connection reset"},
    {"getaddrinfo ENOTFOUND api.example.com", "DNS lookup failed"},
    {"The operation was aborted", "Request timed out"},
    {"unable to verify the first certificate", "TLS certificate error"},
    {"self signed certificate in chain", "TLS certificate error"},
    {"HTTP 503: Service Unavailable", "HTTP 503"},
    {"HTTP 404: Not Found at /a/b", "HTTP 404"},
    {"Request timed out", "Request timed out"},
    {"Response body too large", "Response body too large"},
    {"Invalid response: expected array", "Invalid response: expected array"},
    {"failed at https://user:pw@api.internal/x?y=1 now", "failed at [redacted-url] now"},
    {"Blocked private IP: 192.168.1.20", "Blocked private IP: [redacted-ip]"},
    {"Hostname a.example resolved to blocked private IP: 127.0.0.1",
     "Hostname a.example resolved to blocked private IP: [redacted-ip]"},
    {"ips 8.8.8.8 and 10.1.2.3 and 172.16.0.1", "ips 8.8.8.8 and [redacted-ip] and 172.16.0.1"}, /* the first only */
    {"172.32.0.1 and 169.254.1.1", "172.32.0.1 and [redacted-ip]"},
    {"version 110.0.0.1", "version 110.0.0.1"}, /* not an address on a boundary */
    {"cannot open /etc/depsera/secret.pem", "cannot open [redacted-path]"},
    {"see /single only", "see /single only"},
    {"file C:\\Users\\me\\x.txt missing", "file [redacted-path] missing"},
};

START_TEST(sanitize_table)
{
    char *out = dps_poll_sanitize_error(sanitized[_i].in);

    ck_assert_ptr_nonnull(out);
    ck_assert_str_eq(out, sanitized[_i].want);
    free(out);
}
END_TEST

START_TEST(sanitize_truncates)
{
    char in[400], *out;

    memset(in, 'a', sizeof(in) - 1);
    in[sizeof(in) - 1] = '\0';
    out = dps_poll_sanitize_error(in);
    ck_assert_int_eq(strlen(out), 203);
    ck_assert_str_eq(out + 200, "...");
    free(out);
    /* 200 characters exactly stay whole; multi-byte characters count once and are never cut */
    in[200] = '\0';
    out = dps_poll_sanitize_error(in);
    ck_assert_int_eq(strlen(out), 200);
    free(out);
    strcpy(in, "");
    for (int i = 0; i < 150; i++)
        strcat(in, "\xc3\xa9"); /* é */
    strcat(in, "tail-of-fifty-characters-0123456789-0123456789-xyzw");
    out = dps_poll_sanitize_error(in);
    ck_assert_int_eq(strlen(out), 300 + 50 + 3);
    ck_assert_str_eq(out + 350, "...");
    free(out);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("poll_schedule");
    TCase *tc = tcase_create("backoff");
    TCase *lim = tcase_create("limits");
    TCase *san = tcase_create("sanitize");

    tcase_add_test(tc, backoff_delays);
    tcase_add_loop_test(tc, breaker_steps, 0, sizeof(steps) / sizeof(steps[0]));
    tcase_add_test(tc, breaker_sequence);
    tcase_add_test(tc, circuit_names);
    tcase_add_test(lim, hosts_cap);
    tcase_add_test(lim, hosts_many);
    tcase_add_test(lim, body_cap);
    tcase_add_loop_test(san, sanitize_table, 0, sizeof(sanitized) / sizeof(sanitized[0]));
    tcase_add_test(san, sanitize_truncates);
    suite_add_tcase(s, tc);
    suite_add_tcase(s, lim);
    suite_add_tcase(s, san);
    return dps_check_run(s);
}
