/* Unit tests of response compression: which Accept-Encoding values take gzip, and that the gzip member
 * inflates back to its input. */
#include "depsera/compress.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "unit.h"

static const struct {
    const char *header;
    int gzip;
} accepts[] = {
    {NULL, 0},
    {"", 0},
    {"gzip", 1},
    {"GZip", 1},
    {"x-gzip", 1},
    {"deflate, gzip, br", 1},
    {"br;q=1.0, gzip;q=0.8", 1},
    {"gzip;q=0", 0},
    {"gzip; q=0.000", 0},
    {"gzip;Q=0.", 0},
    {"gzip;q=0.001", 1},
    {"identity", 0},
    {"deflate, br", 0},
    {"gzipx", 0},
    {"xgzip, gzip2", 0},
    {"*", 1},
    {"*;q=0", 0},
    {"*, gzip;q=0", 0},
    {"gzip;q=0, *", 0},
    {"br, *;q=0.1", 1},
    {"  gzip  ;  q=1  ", 1},
    {",,gzip,,", 1},
    {"identity;q=0.5, x-gzip;q=0.2", 1},
};

START_TEST(accept_encoding)
{
    ck_assert_msg(dps_accepts_gzip(accepts[_i].header) == accepts[_i].gzip, "%s",
                  accepts[_i].header ? accepts[_i].header : "(null)");
}
END_TEST

/* Inflates a gzip member of at most `cap` bytes; the text (malloc'd) and its length. */
static char *gunzip(const char *in, size_t len, size_t cap, size_t *out_len)
{
    char *out = malloc(cap);
    z_stream zs;

    memset(&zs, 0, sizeof(zs));
    ck_assert_int_eq(inflateInit2(&zs, 15 + 16), Z_OK);
    zs.next_in = (Bytef *)in, zs.avail_in = (uInt)len;
    zs.next_out = (Bytef *)out, zs.avail_out = (uInt)cap;
    ck_assert_int_eq(inflate(&zs, Z_FINISH), Z_STREAM_END);
    *out_len = cap - zs.avail_out;
    inflateEnd(&zs);
    return out;
}

START_TEST(round_trip)
{
    static const size_t sizes[] = {0, 1, 1024, 100000, 3000000};
    char *text = malloc(3000000), *packed, *back;
    size_t n, back_len;

    for (size_t i = 0; i < 3000000; i++) /* repetitive JSON-like text with some noise */
        text[i] = (char)("{\"name\":\"service-\",\"healthy\":true}"[i % 35] + (i % 997 == 0));
    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        ck_assert_int_eq(dps_gzip(text, sizes[k], 1, &packed, &n), 0);
        ck_assert((unsigned char)packed[0] == 0x1f && (unsigned char)packed[1] == 0x8b);
        if (sizes[k] >= 100000)
            ck_assert_uint_lt(n, sizes[k] / 5);
        back = gunzip(packed, n, sizes[k] + 1, &back_len);
        ck_assert_uint_eq(back_len, sizes[k]);
        ck_assert(memcmp(back, text, sizes[k]) == 0);
        free(back);
        free(packed);
    }
    free(text);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("compress");
    TCase *tc = tcase_create("core");

    tcase_add_loop_test(tc, accept_encoding, 0, sizeof(accepts) / sizeof(accepts[0]));
    tcase_add_test(tc, round_trip);
    suite_add_tcase(s, tc);
    return dps_check_run(s);
}
