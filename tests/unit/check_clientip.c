/* Unit tests of TRUST_PROXY parsing, trusted-network matching and client address resolution. */
#include "depsera/clientip.h"

#include <arpa/inet.h>
#include <check.h>

#include "unit.h"
#include <stdio.h>
#include <string.h>

/* ---------------------------------------------------------------- dps_trust_parse */

static const struct {
    const char *value;
    int rc;    /* 0 or -1 */
    int mode;  /* when rc == 0 */
    int hops;  /* when mode == 2 */
    int nnets; /* when mode == 3 */
} parse_cases[] = {
    {"", 0, 0, 0, 0},
    {"false", 0, 0, 0, 0},
    {"true", 0, 1, 0, 0},
    {"0", 0, 0, 0, 0},
    {"1", 0, 2, 1, 0},
    {"2", 0, 2, 2, 0},
    {"loopback", 0, 3, 0, 2},
    {"linklocal", 0, 3, 0, 2},
    {"uniquelocal", 0, 3, 0, 4},
    {"linklocal,uniquelocal", 0, 3, 0, 6},
    {"10.0.0.0/8, fd00::/8", 0, 3, 0, 2},
    {"10.0.0.0/8,fd00::/8", 0, 3, 0, 2},
    {"loopback, 10.0.0.0/8", 0, 3, 0, 3},
    {"192.168.1.1", 0, 3, 0, 1},
    {"2001:db8::/33", 0, 3, 0, 1},
    {"0.0.0.0/0", 0, 3, 0, 1},
    {"10.0.0.0/32", 0, 3, 0, 1},
    {"::/128", 0, 3, 0, 1},
    /* malformed */
    {"abc", -1, 0, 0, 0},
    {"10.0.0.0/99", -1, 0, 0, 0},
    {"10.0.0.0/33", -1, 0, 0, 0},
    {"fd00::/129", -1, 0, 0, 0},
    {"10.0.0.0/", -1, 0, 0, 0},
    {"10.0.0.0/-1", -1, 0, 0, 0},
    {"10.0.0.0/x", -1, 0, 0, 0},
    {"10.0.0.256", -1, 0, 0, 0},
    {"1.2.3.4, abc", -1, 0, 0, 0},
    {"loopback,nonsense", -1, 0, 0, 0},
    {"/8", -1, 0, 0, 0},
};

START_TEST(parse_table)
{
    dps_trust_t t;
    int rc = dps_trust_parse(parse_cases[_i].value, &t);

    ck_assert_msg(rc == parse_cases[_i].rc, "\"%s\": rc %d, want %d", parse_cases[_i].value, rc, parse_cases[_i].rc);
    if (rc != 0)
        return;
    ck_assert_msg(t.mode == parse_cases[_i].mode, "\"%s\": mode %d, want %d", parse_cases[_i].value, t.mode,
                  parse_cases[_i].mode);
    if (t.mode == 2)
        ck_assert_msg(t.hops == parse_cases[_i].hops, "\"%s\": hops %d, want %d", parse_cases[_i].value, t.hops,
                      parse_cases[_i].hops);
    if (t.mode == 3)
        ck_assert_msg((int)t.nnets == parse_cases[_i].nnets, "\"%s\": %zu nets, want %d", parse_cases[_i].value, t.nnets,
                      parse_cases[_i].nnets);
}
END_TEST

/* The documented representation: IPv4 networks mapped into ::ffff:0:0/96, bits over 128. */
START_TEST(parse_representation)
{
    dps_trust_t t;
    unsigned char want[16];

    ck_assert_int_eq(dps_trust_parse("10.0.0.0/8, fd00::/8", &t), 0);
    ck_assert_int_eq((int)t.nnets, 2);
    ck_assert_int_eq(inet_pton(AF_INET6, "::ffff:10.0.0.0", want), 1);
    ck_assert(memcmp(t.nets[0].addr, want, 16) == 0);
    ck_assert_int_eq(t.nets[0].bits, 104);
    ck_assert_int_eq(inet_pton(AF_INET6, "fd00::", want), 1);
    ck_assert(memcmp(t.nets[1].addr, want, 16) == 0);
    ck_assert_int_eq(t.nets[1].bits, 8);

    ck_assert_int_eq(dps_trust_parse("192.168.1.1", &t), 0);
    ck_assert_int_eq(t.nets[0].bits, 128); /* a bare address is a /32 */
    ck_assert_int_eq(dps_trust_parse("2001:db8::1", &t), 0);
    ck_assert_int_eq(t.nets[0].bits, 128);
}
END_TEST

START_TEST(parse_too_many_networks)
{
    char value[1024] = "";
    dps_trust_t t;

    /* exactly DPS_TRUST_MAX_NETS fit */
    for (int i = 0; i < DPS_TRUST_MAX_NETS; i++) {
        char item[32];
        snprintf(item, sizeof(item), "%s10.0.%d.0/24", i ? "," : "", i);
        strcat(value, item);
    }
    ck_assert_int_eq(dps_trust_parse(value, &t), 0);
    ck_assert_int_eq((int)t.nnets, DPS_TRUST_MAX_NETS);
    strcat(value, ",10.1.0.0/24");
    ck_assert_int_eq(dps_trust_parse(value, &t), -1);
    /* keywords count against the limit too */
    ck_assert_int_eq(dps_trust_parse("uniquelocal,uniquelocal,uniquelocal,uniquelocal,uniquelocal,uniquelocal,uniquelocal,"
                                     "uniquelocal,uniquelocal",
                                     &t),
                     -1);
}
END_TEST

/* A value longer than any internal buffer is either refused or parsed in full, never overrun. */
START_TEST(parse_overlong)
{
    char value[4096];
    dps_trust_t t;
    int rc;

    memset(value, ' ', sizeof(value) - 1);
    value[sizeof(value) - 1] = '\0';
    memcpy(value, "loopback", 8);
    memcpy(value + sizeof(value) - 12, "10.0.0.0/8", 10);
    rc = dps_trust_parse(value, &t);
    ck_assert_msg(rc == -1 || (rc == 0 && t.mode == 3 && t.nnets == 3), "rc %d mode %d nnets %zu", rc, t.mode, t.nnets);
}
END_TEST

/* ---------------------------------------------------------------- dps_trust_contains */

static const struct {
    const char *trust, *addr;
    int want;
} contains_cases[] = {
    /* IPv4 prefix edges */
    {"10.0.0.0/8", "10.0.0.0", 1},
    {"10.0.0.0/8", "10.0.0.1", 1},
    {"10.0.0.0/8", "10.255.255.255", 1},
    {"10.0.0.0/8", "11.0.0.0", 0},
    {"10.0.0.0/8", "9.255.255.255", 0},
    {"10.0.0.0/8", "::ffff:10.1.2.3", 1}, /* IPv4-mapped IPv6 form of a 10/8 address */
    {"10.0.0.0/8", "::ffff:11.1.2.3", 0},
    {"10.0.0.0/8", "::a01:203", 0}, /* IPv4-compatible, not mapped: a different address */
    {"10.0.0.0/8", "not-an-ip", 0},
    {"10.0.0.0/8", "", 0},
    {"10.0.0.0/8", "10.0.0.1/8", 0},
    {"10.0.0.0/9", "10.127.255.255", 1},
    {"10.0.0.0/9", "10.128.0.0", 0},
    {"172.16.0.0/12", "172.16.0.0", 1},
    {"172.16.0.0/12", "172.31.255.255", 1},
    {"172.16.0.0/12", "172.32.0.0", 0},
    {"172.16.0.0/12", "172.15.255.255", 0},
    {"10.1.2.3/8", "10.9.9.9", 1}, /* host bits of the network are ignored */
    {"1.2.3.4", "1.2.3.4", 1},
    {"1.2.3.4", "1.2.3.5", 0},
    {"1.2.3.4", "::ffff:1.2.3.4", 1},
    {"1.2.3.4/32", "1.2.3.4", 1},
    {"1.2.3.4/31", "1.2.3.5", 1},
    {"1.2.3.4/31", "1.2.3.6", 0},
    {"0.0.0.0/0", "8.8.8.8", 1},
    {"0.0.0.0/0", "255.255.255.255", 1},
    {"0.0.0.0/0", "2001:db8::1", 0}, /* all of IPv4, not IPv6 */
    /* IPv6 */
    {"fd00::/8", "fd00::1", 1},
    {"fd00::/8", "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 1},
    {"fd00::/8", "fe00::", 0},
    {"fd00::/8", "fc00::", 0},
    {"fd00::/8", "FD12::1", 1},
    {"fd00::/8", "10.0.0.1", 0},
    {"2001:db8::/33", "2001:db8:7fff::1", 1},
    {"2001:db8::/33", "2001:db8:8000::1", 0},
    {"2001:db8::1", "2001:db8::1", 1},
    {"2001:db8::1", "2001:db8::2", 0},
    {"::/0", "2001:db8::1", 1},
    {"::/0", "8.8.8.8", 1},
    /* keywords */
    {"loopback", "127.0.0.1", 1},
    {"loopback", "127.255.255.254", 1},
    {"loopback", "128.0.0.1", 0},
    {"loopback", "126.255.255.255", 0},
    {"loopback", "::1", 1},
    {"loopback", "::2", 0},
    {"loopback", "::", 0},
    {"loopback", "::ffff:127.0.0.1", 1},
    {"linklocal", "169.254.0.0", 1},
    {"linklocal", "169.254.255.255", 1},
    {"linklocal", "169.255.0.0", 0},
    {"linklocal", "fe80::1", 1},
    {"linklocal", "febf:ffff::1", 1},
    {"linklocal", "fec0::1", 0},
    {"uniquelocal", "10.20.30.40", 1},
    {"uniquelocal", "172.20.0.1", 1},
    {"uniquelocal", "192.168.0.1", 1},
    {"uniquelocal", "192.169.0.1", 0},
    {"uniquelocal", "fc00::1", 1},
    {"uniquelocal", "fdff::1", 1},
    {"uniquelocal", "fe00::1", 0},
    {"uniquelocal", "127.0.0.1", 0},
    {"loopback, 10.0.0.0/8", "10.0.0.5", 1},
    {"loopback, 10.0.0.0/8", "127.0.0.1", 1},
    {"loopback, 10.0.0.0/8", "9.9.9.9", 0},
    /* modes without networks */
    {"true", "8.8.8.8", 1},
    {"true", "2001:db8::1", 1},
    {"false", "127.0.0.1", 0},
    {"", "127.0.0.1", 0},
};

START_TEST(contains_table)
{
    dps_trust_t t;
    int got;

    ck_assert_int_eq(dps_trust_parse(contains_cases[_i].trust, &t), 0);
    got = dps_trust_contains(&t, contains_cases[_i].addr);
    ck_assert_msg(got == contains_cases[_i].want, "trust \"%s\" contains \"%s\": %d, want %d", contains_cases[_i].trust,
                  contains_cases[_i].addr, got, contains_cases[_i].want);
}
END_TEST

/* ---------------------------------------------------------------- dps_client_ip */

#define NO_XFF ((const char *)0)

static const struct {
    const char *trust, *peer, *xff, *want;
} client_cases[] = {
    /* nothing trusted: the peer, whatever the header says */
    {"", "127.0.0.1", "1.1.1.1", "127.0.0.1"},
    {"false", "127.0.0.1", "1.1.1.1, 2.2.2.2", "127.0.0.1"},
    {"0", "127.0.0.1", "1.1.1.1", "127.0.0.1"},
    {"10.0.0.0/8", "127.0.0.1", "1.1.1.1", "127.0.0.1"}, /* peer not in the list */
    /* trust everything: the furthest (leftmost) address */
    {"true", "127.0.0.1", "1.1.1.1, 2.2.2.2", "1.1.1.1"},
    {"true", "127.0.0.1", "3.3.3.3", "3.3.3.3"},
    {"true", "127.0.0.1", "  3.3.3.3\t", "3.3.3.3"},
    {"true", "127.0.0.1", "2001:db8::5, 2.2.2.2", "2001:db8::5"},
    /* hop counts */
    {"1", "127.0.0.1", "1.1.1.1, 2.2.2.2", "2.2.2.2"},
    {"2", "127.0.0.1", "1.1.1.1, 2.2.2.2", "1.1.1.1"},
    {"2", "127.0.0.1", "1.1.1.1, 2.2.2.2, 3.3.3.3", "2.2.2.2"},
    {"5", "127.0.0.1", "1.1.1.1, 2.2.2.2", "1.1.1.1"},
    /* lists: walk while the current hop is trusted */
    {"loopback", "127.0.0.1", "9.9.9.9, 10.0.0.5", "10.0.0.5"},
    {"loopback,10.0.0.0/8", "127.0.0.1", "9.9.9.9, 10.0.0.5", "9.9.9.9"},
    {"loopback, 10.0.0.0/8", "127.0.0.1", "9.9.9.9, 10.0.0.5 , 10.0.0.6", "9.9.9.9"},
    {"loopback,10.0.0.0/8", "127.0.0.1", "10.0.0.9, 10.0.0.5", "10.0.0.9"}, /* all trusted: the furthest */
    {"loopback,10.0.0.0/8", "127.0.0.1", "8.8.8.8, 9.9.9.9, 10.0.0.5", "9.9.9.9"},
    {"loopback", "10.0.0.7", "9.9.9.9", "10.0.0.7"}, /* peer itself untrusted */
    {"loopback", "::1", "2001:db8::5", "2001:db8::5"},
    {"loopback", "::ffff:127.0.0.1", "9.9.9.9", "9.9.9.9"},
    {"loopback", "127.0.0.1", "::ffff:10.0.0.1", "::ffff:10.0.0.1"},
    /* no or empty header */
    {"true", "127.0.0.1", NO_XFF, "127.0.0.1"},
    {"true", "127.0.0.1", "", "127.0.0.1"},
    {"true", "127.0.0.1", "   ", "127.0.0.1"},
    {"loopback", "127.0.0.1", "", "127.0.0.1"},
    /* garbage entries stop the walk: what was resolved so far is kept */
    {"true", "127.0.0.1", "1.1.1.1, garbage", "127.0.0.1"},
    {"true", "127.0.0.1", "garbage, 2.2.2.2", "2.2.2.2"},
    {"true", "127.0.0.1", "1.1.1.1,,2.2.2.2", "2.2.2.2"},
    {"true", "127.0.0.1", "1.1.1.1,", "127.0.0.1"},
    {"true", "127.0.0.1", "1.1.1.1:8080", "127.0.0.1"},
    {"true", "127.0.0.1", "[2001:db8::1]", "127.0.0.1"},
    {"loopback,10.0.0.0/8", "127.0.0.1", "9.9.9.9, 10.0.0.300, 10.0.0.5", "10.0.0.5"},
    {"2", "127.0.0.1", "1.1.1.1, unknown", "127.0.0.1"},
    {"true", "127.0.0.1",
     "1.1.1.1, aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
     "127.0.0.1"},
};

START_TEST(client_table)
{
    dps_trust_t t;
    char out[INET6_ADDRSTRLEN];
    const char *xff = client_cases[_i].xff;

    ck_assert_int_eq(dps_trust_parse(client_cases[_i].trust, &t), 0);
    memset(out, 'x', sizeof(out));
    dps_client_ip(&t, client_cases[_i].peer, xff, xff ? strlen(xff) : 0, out, sizeof(out));
    ck_assert_msg(strcmp(out, client_cases[_i].want) == 0, "trust \"%s\", peer %s, XFF \"%s\": got \"%s\", want \"%s\"",
                  client_cases[_i].trust, client_cases[_i].peer, xff ? xff : "(none)", out, client_cases[_i].want);
}
END_TEST

/* The header is not NUL-terminated: only xff_len bytes count. */
START_TEST(client_xff_length_respected)
{
    static const char buf[] = "1.1.1.1, 2.2.2.2, 3.3.3.3";
    size_t len = strlen("1.1.1.1, 2.2.2.2");
    dps_trust_t t;
    char out[INET6_ADDRSTRLEN];

    ck_assert_int_eq(dps_trust_parse("1", &t), 0);
    dps_client_ip(&t, "127.0.0.1", buf, len, out, sizeof(out));
    ck_assert_str_eq(out, "2.2.2.2");
    ck_assert_int_eq(dps_trust_parse("true", &t), 0);
    dps_client_ip(&t, "127.0.0.1", buf, len, out, sizeof(out));
    ck_assert_str_eq(out, "1.1.1.1");
    /* a cut inside the last entry: "2.2" is not an address */
    dps_client_ip(&t, "127.0.0.1", buf, strlen("1.1.1.1, 2.2"), out, sizeof(out));
    ck_assert_str_eq(out, "127.0.0.1");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("clientip");
    TCase *tc = tcase_create("core");

    tcase_add_loop_test(tc, parse_table, 0, sizeof(parse_cases) / sizeof(parse_cases[0]));
    tcase_add_test(tc, parse_representation);
    tcase_add_test(tc, parse_too_many_networks);
    tcase_add_test(tc, parse_overlong);
    tcase_add_loop_test(tc, contains_table, 0, sizeof(contains_cases) / sizeof(contains_cases[0]));
    tcase_add_loop_test(tc, client_table, 0, sizeof(client_cases) / sizeof(client_cases[0]));
    tcase_add_test(tc, client_xff_length_respected);
    suite_add_tcase(s, tc);
    return dps_check_run(s);
}
