/* Unit tests of the request arena: alignment, growth, large blocks, the limit, the protobuf-c adapter. */
#include "depsera/arena.h"

#include <check.h>
#include <stdint.h>
#include <string.h>

#include "opentelemetry/proto/common/v1/common.pb-c.h"
#include "unit.h"

START_TEST(alignment_and_independence)
{
    dps_arena_t a;
    char *prev = NULL;

    dps_arena_init(&a, 0);
    ck_assert_ptr_null(a.chunks);
    for (size_t n = 0; n < 3000; n++) {
        char *p = dps_arena_alloc(&a, n % 97);
        ck_assert_ptr_nonnull(p);
        ck_assert_uint_eq((uintptr_t)p % DPS_ARENA_ALIGN, 0);
        memset(p, (int)(n & 0xff), n % 97);
        if (prev != NULL)
            ck_assert(p != prev);
        prev = p;
    }
    ck_assert(a.total > 0 && a.failed == DPS_ARENA_OK);
    dps_arena_free(&a);
    ck_assert_ptr_null(a.chunks);
    ck_assert_uint_eq(a.total, 0);
    dps_arena_free(&a); /* twice is fine */
}
END_TEST

/* A large block gets its own chunk and does not waste the current one. */
START_TEST(large_blocks)
{
    dps_arena_t a;
    char *small, *big, *after;

    dps_arena_init(&a, 0);
    small = dps_arena_alloc(&a, 16);
    big = dps_arena_alloc(&a, 5 * 1024 * 1024);
    after = dps_arena_alloc(&a, 16);
    ck_assert_ptr_nonnull(small);
    ck_assert_ptr_nonnull(big);
    ck_assert_ptr_eq(after, small + 16); /* still bumping in the first chunk */
    memset(big, 1, 5 * 1024 * 1024);
    ck_assert_ptr_nonnull(dps_arena_calloc(&a, 64));
    ck_assert_str_eq(dps_arena_strndup(&a, "abcdef", 3), "abc");
    dps_arena_free(&a);

    /* first allocation large: a full chunk, then ordinary ones */
    dps_arena_init(&a, 0);
    big = dps_arena_alloc(&a, 3 * 1024 * 1024);
    small = dps_arena_alloc(&a, 8);
    ck_assert(big != NULL && small != NULL);
    ck_assert_uint_le(a.next_size, 1024 * 1024);
    dps_arena_free(&a);
}
END_TEST

START_TEST(limit)
{
    dps_arena_t a;
    size_t got = 0;

    dps_arena_init(&a, 100 * 1024);
    ck_assert_ptr_null(dps_arena_alloc(&a, 200 * 1024));
    ck_assert_int_eq(a.failed, DPS_ARENA_LIMIT);
    while (dps_arena_alloc(&a, 1000) != NULL)
        got += 1000;
    ck_assert_int_eq(a.failed, DPS_ARENA_LIMIT);
    ck_assert_uint_le(a.total, 100 * 1024);
    ck_assert_uint_ge(got, 40 * 1024);
    ck_assert_ptr_null(dps_arena_alloc(&a, SIZE_MAX));
    dps_arena_free(&a);
    ck_assert_uint_eq(a.limit, 100 * 1024); /* kept for reuse */
    ck_assert_ptr_nonnull(dps_arena_alloc(&a, 10));
    dps_arena_free(&a);
}
END_TEST

/* protobuf-c unpacks into the arena and its free does nothing (the arena releases everything). */
START_TEST(protobuf_allocator)
{
    Opentelemetry__Proto__Common__V1__KeyValue kv = OPENTELEMETRY__PROTO__COMMON__V1__KEY_VALUE__INIT, *back;
    Opentelemetry__Proto__Common__V1__AnyValue v = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__INIT;
    uint8_t buf[64];
    size_t n;
    dps_arena_t a;

    kv.key = "service.name";
    kv.value = &v;
    v.value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE;
    v.string_value = "checkout";
    n = opentelemetry__proto__common__v1__key_value__pack(&kv, buf);
    dps_arena_init(&a, 0);
    back = opentelemetry__proto__common__v1__key_value__unpack(dps_arena_pb(&a), n, buf);
    ck_assert_ptr_nonnull(back);
    ck_assert_str_eq(back->key, "service.name");
    ck_assert_str_eq(back->value->string_value, "checkout");
    ck_assert(a.total > 0);
    opentelemetry__proto__common__v1__key_value__free_unpacked(back, dps_arena_pb(&a)); /* no-op */
    dps_arena_free(&a);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("arena");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, alignment_and_independence);
    tcase_add_test(tc, large_blocks);
    tcase_add_test(tc, limit);
    tcase_add_test(tc, protobuf_allocator);
    suite_add_tcase(s, tc);
    return dps_check_run(s);
}
