/* envd_pb_count_field (core/pb_scan.c), which counts a list reply's entries
 * before protobuf-c decodes it, must agree with protobuf-c: on every
 * message protobuf-c decodes, it succeeds with the decoder's count; what it
 * refuses, protobuf-c refuses too. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "core/alloc.h"
#include "core/pb_arena.h"
#include "core/pb_scan.h"
#include "filesystem.pb-c.h"
#include "process.pb-c.h"

/* Checks agreement on msg; returns the count, or -1 when refused. */
static long agree(const uint8_t *msg, size_t len)
{
    size_t n = 0;
    int rc = envd_pb_count_field(msg, len, 1, &n);
    Filesystem__ListDirResponse *r = filesystem__list_dir_response__unpack(NULL, len, msg);
    if (r) {
        assert_int_equal(rc, 0); /* refused what protobuf-c decodes */
        assert_int_equal(n, r->n_entries);
        filesystem__list_dir_response__free_unpacked(r, NULL);
    }
    Process__ListResponse *p = process__list_response__unpack(NULL, len, msg);
    if (p) {
        assert_int_equal(rc, 0);
        assert_int_equal(n, p->n_processes);
        process__list_response__free_unpacked(p, NULL);
    }
    return rc == 0 ? (long)n : -1;
}

/* A ListDirResponse of n entries, packed by protobuf-c. */
static uint8_t *packed_list(size_t n, size_t *len)
{
    Filesystem__ListDirResponse r = FILESYSTEM__LIST_DIR_RESPONSE__INIT;
    Filesystem__EntryInfo *es = calloc(n ? n : 1, sizeof(*es));
    Filesystem__EntryInfo **ps = calloc(n ? n : 1, sizeof(*ps));
    assert_non_null(es);
    assert_non_null(ps);
    char names[64][24];
    for (size_t i = 0; i < n; i++) {
        filesystem__entry_info__init(&es[i]);
        snprintf(names[i % 64], sizeof names[0], "f%zu", i);
        es[i].name = names[i % 64];
        es[i].path = names[i % 64];
        es[i].type = FILESYSTEM__FILE_TYPE__FILE_TYPE_FILE;
        es[i].size = (int64_t)i * 1000003;
        ps[i] = &es[i];
    }
    r.n_entries = n;
    r.entries = ps;
    *len = filesystem__list_dir_response__get_packed_size(&r);
    uint8_t *buf = malloc(*len ? *len : 1);
    assert_non_null(buf);
    filesystem__list_dir_response__pack(&r, buf);
    free(es);
    free(ps);
    return buf;
}

static void canonical_lists(void **state)
{
    (void)state;
    const size_t ns[] = {0, 1, 2, 63, 300};
    for (size_t k = 0; k < sizeof ns / sizeof ns[0]; k++) {
        size_t len;
        uint8_t *m = packed_list(ns[k], &len);
        assert_int_equal(agree(m, len), (long)ns[k]);
        free(m);
    }
    /* empty entries, the amplifying shape: two bytes each */
    static const uint8_t empties[] = {0x0a, 0, 0x0a, 0, 0x0a, 0};
    assert_int_equal(agree(empties, sizeof empties), 3);
    assert_int_equal(agree(NULL, 0), 0);
}

/* Other fields and wire types between the entries are skipped, not counted. */
static void other_fields(void **state)
{
    (void)state;
    static const uint8_t m[] = {
        0x0a, 0x02, 0x0a, 0x00,                         /* entry{name ""} */
        0x10, 0x96, 0x01,                               /* field 2, varint */
        0x1d, 1, 2, 3, 4,                               /* field 3, fixed32 */
        0x21, 1, 2, 3, 4, 5, 6, 7, 8,                   /* field 4, fixed64 */
        0x2a, 0x03, 'a', 'b', 'c',                      /* field 5, bytes */
        0x0a, 0x00,                                     /* entry{} */
        0x80, 0x01, 0x01,                               /* field 16, varint */
    };
    assert_int_equal(agree(m, sizeof m), 2);
}

/* Cut-off and over-long framing: refused, as protobuf-c refuses it. */
static void malformed(void **state)
{
    (void)state;
    static const uint8_t cut_len[] = {0x0a, 0x05, 0x0a};
    static const uint8_t cut_varint[] = {0x10, 0x96};
    static const uint8_t cut_fixed[] = {0x1d, 1, 2};
    static const uint8_t long_len[] = {0x0a, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00};
    static const uint8_t group[] = {0x0b, 0x0c};
    static const uint8_t field0[] = {0x02, 0x00};
    /* field 0 spelt in two bytes: protobuf-c takes it (an unknown field),
     * so the count must not refuse it (found by fuzz_fs_proto) */
    static const uint8_t field0_long[] = {0x85, 0x00, 0, 0, 0, 0};
    assert_int_equal(agree(cut_len, sizeof cut_len), -1);
    assert_int_equal(agree(cut_varint, sizeof cut_varint), -1);
    assert_int_equal(agree(cut_fixed, sizeof cut_fixed), -1);
    assert_int_equal(agree(long_len, sizeof long_len), -1);
    assert_int_equal(agree(group, sizeof group), -1);
    assert_int_equal(agree(field0, sizeof field0), -1);
    assert_int_equal(agree(field0_long, sizeof field0_long), 0);
}

/* Every single-byte change and every cut of a real reply: agreement holds
 * (the fuzz target fuzz_fs_proto checks the same on arbitrary inputs). */
static void mutations(void **state)
{
    (void)state;
    size_t len;
    uint8_t *m = packed_list(5, &len);
    uint8_t *w = malloc(len);
    assert_non_null(w);
    for (size_t cut = 0; cut <= len; cut++)
        agree(m, cut);
    for (size_t i = 0; i < len; i++)
        for (int b = 0; b < 256; b += 7) {
            memcpy(w, m, len);
            w[i] = (uint8_t)b;
            agree(w, len);
        }
    free(w);
    free(m);
}

/* The unpack arena (core/pb_arena.c): a list decoded through it equals
 * protobuf-c's own decoding, whether it fits the arena (4 entries) or
 * spills to the heap (300; ASan checks the spilled parts are freed and
 * nothing in the buffer is); out of memory while spilling is NULL with
 * nomem set, malformed bytes NULL without. */
static void unpack_arena(void **state)
{
    (void)state;
    const size_t sizes[] = {0, 4, 300};
    for (size_t k = 0; k < 3; k++) {
        size_t len;
        uint8_t *msg = packed_list(sizes[k], &len);
        Filesystem__ListDirResponse *ref = filesystem__list_dir_response__unpack(NULL, len, msg);
        assert_non_null(ref);
        envd_pb_arena a;
        envd_pb_arena_init(&a);
        Filesystem__ListDirResponse *r = filesystem__list_dir_response__unpack(&a.alloc, len, msg);
        assert_non_null(r);
        assert_int_equal(r->n_entries, ref->n_entries);
        for (size_t i = 0; i < r->n_entries; i++) {
            assert_string_equal(r->entries[i]->name, ref->entries[i]->name);
            assert_int_equal(r->entries[i]->size, ref->entries[i]->size);
        }
        assert_true(a.used <= ENVD_PB_ARENA_BYTES);
        filesystem__list_dir_response__free_unpacked(r, &a.alloc);
        filesystem__list_dir_response__free_unpacked(ref, NULL);
        if (sizes[k] == 300) {
            envd_pb_arena_init(&a);
            envd_alloc_test_fail(1);
            r = filesystem__list_dir_response__unpack(&a.alloc, len, msg);
            envd_alloc_test_fail(0);
            assert_null(r);
            assert_true(a.nomem);
        }
        free(msg);
    }
    static const uint8_t bad[] = {0x0a, 0x7f, 0x01};
    envd_pb_arena a;
    envd_pb_arena_init(&a);
    assert_null(filesystem__list_dir_response__unpack(&a.alloc, sizeof bad, bad));
    assert_false(a.nomem);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(canonical_lists),
        cmocka_unit_test(other_fields),
        cmocka_unit_test(malformed),
        cmocka_unit_test(mutations),
        cmocka_unit_test(unpack_arena),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
