/* The Connect envelope parser on its own: frames split at every byte,
 * several frames per chunk, empty frames, and every malformed shape. */
#include "transport/connect_frame.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

typedef struct got {
    size_t n;
    unsigned flags[64];
    size_t len[64];
    uint8_t first[64];
    uint64_t sum;
    int stop_at; /* return 1 at this frame (1-based); 0 = never */
    int null_payloads; /* frames delivered as NULL: consumers do p + len */
} got;

static int on_frame(void *ud, unsigned flags, const uint8_t *p, size_t len)
{
    got *g = ud;
    if (!p)
        g->null_payloads++;
    if (g->n < 64) {
        g->flags[g->n] = flags;
        g->len[g->n] = len;
        g->first[g->n] = len ? p[0] : 0;
    }
    for (size_t i = 0; i < len; i++)
        g->sum += p[i];
    g->n++;
    return g->stop_at && g->n == (size_t)g->stop_at;
}

/* Appends a frame to buf at *off. */
static void put_frame(uint8_t *buf, size_t *off, unsigned flags, const void *payload, size_t len)
{
    envd_frame_header(buf + *off, flags, (uint32_t)len);
    if (len)
        memcpy(buf + *off + 5, payload, len);
    *off += 5 + len;
}

static size_t sample_stream(uint8_t *buf)
{
    size_t off = 0;
    uint8_t big[3000];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (uint8_t)(i * 7 + 1);
    put_frame(buf, &off, 0,
              "\x0a\x03"
              "abc",
              5);
    put_frame(buf, &off, 0, NULL, 0); /* an empty message is valid proto */
    put_frame(buf, &off, 0, big, sizeof big);
    put_frame(buf, &off, ENVD_FRAME_END_STREAM, "{}", 2);
    return off;
}

static void check_sample(const got *g)
{
    assert_int_equal(g->n, 4);
    assert_int_equal(g->flags[0], 0);
    assert_int_equal(g->len[0], 5);
    assert_int_equal(g->first[0], 0x0a);
    assert_int_equal(g->len[1], 0);
    assert_int_equal(g->len[2], 3000);
    assert_int_equal(g->first[2], 1);
    assert_int_equal(g->flags[3], ENVD_FRAME_END_STREAM);
    assert_int_equal(g->len[3], 2);
}

static void test_whole_buffer(void **state)
{
    (void)state;
    uint8_t buf[4096];
    size_t n = sample_stream(buf);
    envd_frame_parser p;
    envd_frame_parser_init(&p, 0);
    got g = {0};
    char why[160] = "";
    assert_int_equal(envd_frame_parser_feed(&p, buf, n, on_frame, &g, why, sizeof why), ENVD_OK);
    check_sample(&g);
    assert_int_equal(envd_frame_parser_finish(&p, why, sizeof why), ENVD_OK);
    assert_int_equal(p.messages, 3);
    envd_frame_parser_free(&p);
}

static void test_byte_by_byte(void **state)
{
    (void)state;
    uint8_t buf[4096];
    size_t n = sample_stream(buf);
    envd_frame_parser p;
    envd_frame_parser_init(&p, 0);
    got g = {0};
    char why[160] = "";
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(envd_frame_parser_feed(&p, buf + i, 1, on_frame, &g, why, sizeof why),
                         ENVD_OK);
        if (i + 1 < n)
            assert_int_not_equal(envd_frame_parser_finish(&p, why, sizeof why), ENVD_OK);
    }
    check_sample(&g);
    assert_int_equal(envd_frame_parser_finish(&p, why, sizeof why), ENVD_OK);
    envd_frame_parser_free(&p);
}

/* Every split point of the stream into two chunks, and odd chunk sizes. */
static void test_all_splits(void **state)
{
    (void)state;
    uint8_t buf[4096];
    size_t n = sample_stream(buf);
    char why[160];
    for (size_t cut = 0; cut <= n; cut++) {
        envd_frame_parser p;
        envd_frame_parser_init(&p, 0);
        got g = {0};
        assert_int_equal(envd_frame_parser_feed(&p, buf, cut, on_frame, &g, why, sizeof why),
                         ENVD_OK);
        assert_int_equal(
            envd_frame_parser_feed(&p, buf + cut, n - cut, on_frame, &g, why, sizeof why), ENVD_OK);
        check_sample(&g);
        envd_frame_parser_free(&p);
    }
    for (size_t step = 2; step < 40; step += 3) {
        envd_frame_parser p;
        envd_frame_parser_init(&p, 0);
        got g = {0};
        for (size_t off = 0; off < n; off += step) {
            size_t k = n - off < step ? n - off : step;
            assert_int_equal(
                envd_frame_parser_feed(&p, buf + off, k, on_frame, &g, why, sizeof why), ENVD_OK);
        }
        check_sample(&g);
        envd_frame_parser_free(&p);
    }
}

static void expect_protocol(const uint8_t *data, size_t len, size_t max, const char *needle)
{
    envd_frame_parser p;
    envd_frame_parser_init(&p, max);
    got g = {0};
    char why[160] = "";
    envd_status st = envd_frame_parser_feed(&p, data, len, on_frame, &g, why, sizeof why);
    assert_int_equal(st, ENVD_E_PROTOCOL);
    if (!strstr(why, needle))
        fail_msg("'%s' does not mention '%s'", why, needle);
    envd_frame_parser_free(&p);
}

static void test_malformed(void **state)
{
    (void)state;
    /* compressed flag without negotiation */
    expect_protocol((const uint8_t *)"\x01\x00\x00\x00\x01x", 6, 0, "compressed");
    /* unknown flag bits */
    expect_protocol((const uint8_t *)"\x80\x00\x00\x00\x00", 5, 0, "unknown flags");
    /* end-stream with compression */
    expect_protocol((const uint8_t *)"\x03\x00\x00\x00\x02{}", 7, 0, "compressed");
    /* a length over the limit: refused before any allocation */
    expect_protocol((const uint8_t *)"\x00\xff\xff\xff\xff", 5, 0, "limit");
    expect_protocol((const uint8_t *)"\x00\x00\x00\x04\x01", 5, 1024, "limit");
    /* bytes after the end-of-stream frame */
    expect_protocol((const uint8_t *)"\x02\x00\x00\x00\x02{}\x00", 8, 0, "after the end");
}

static void test_malformed_split(void **state)
{
    (void)state;
    /* An oversized header arriving one byte at a time fails at its 5th byte. */
    const uint8_t h[] = {0x00, 0x7f, 0xff, 0xff, 0xff};
    envd_frame_parser p;
    envd_frame_parser_init(&p, 0);
    got g = {0};
    char why[160];
    for (int i = 0; i < 4; i++)
        assert_int_equal(envd_frame_parser_feed(&p, h + i, 1, on_frame, &g, why, sizeof why),
                         ENVD_OK);
    assert_int_equal(envd_frame_parser_feed(&p, h + 4, 1, on_frame, &g, why, sizeof why),
                     ENVD_E_PROTOCOL);
    assert_null(p.buf); /* nothing was allocated for it */
    envd_frame_parser_free(&p);
}

static void test_truncated(void **state)
{
    (void)state;
    char why[160];
    envd_frame_parser p;
    got g = {0};

    envd_frame_parser_init(&p, 0);
    assert_int_equal(
        envd_frame_parser_feed(&p, (const uint8_t *)"\x00\x00", 2, on_frame, &g, why, sizeof why),
        ENVD_OK);
    assert_int_equal(envd_frame_parser_finish(&p, why, sizeof why), ENVD_E_PROTOCOL);
    assert_non_null(strstr(why, "frame header"));
    envd_frame_parser_free(&p);

    envd_frame_parser_init(&p, 0);
    assert_int_equal(envd_frame_parser_feed(&p,
                                            (const uint8_t *)"\x00\x00\x00\x00\x09"
                                                             "abc",
                                            8, on_frame, &g, why, sizeof why),
                     ENVD_OK);
    assert_int_equal(envd_frame_parser_finish(&p, why, sizeof why), ENVD_E_PROTOCOL);
    assert_non_null(strstr(why, "3 of 9"));
    envd_frame_parser_free(&p);

    /* Whole messages but no end-of-stream frame. */
    envd_frame_parser_init(&p, 0);
    assert_int_equal(envd_frame_parser_feed(&p, (const uint8_t *)"\x00\x00\x00\x00\x00", 5,
                                            on_frame, &g, why, sizeof why),
                     ENVD_OK);
    assert_int_equal(envd_frame_parser_finish(&p, why, sizeof why), ENVD_E_PROTOCOL);
    assert_non_null(strstr(why, "without the end-of-stream frame"));
    envd_frame_parser_free(&p);
}

static void test_stop_from_callback(void **state)
{
    (void)state;
    uint8_t buf[4096];
    size_t n = sample_stream(buf);
    envd_frame_parser p;
    envd_frame_parser_init(&p, 0);
    got g = {0};
    g.stop_at = 2;
    char why[160];
    assert_int_equal(envd_frame_parser_feed(&p, buf, n, on_frame, &g, why, sizeof why),
                     ENVD_CANCELED);
    assert_int_equal(g.n, 2);
    envd_frame_parser_free(&p);
}

/* A frame bigger than the kept buffer, fed in 1000-byte chunks: delivered
 * whole, and the big buffer is released afterwards. */
/* An empty frame whose header arrives in pieces still comes with a real
 * pointer: it once came as (NULL, 0), and every consumer computes
 * payload + len, undefined on NULL (UBSan with clang aborts). */
static void test_empty_frame_split_header(void **state)
{
    (void)state;
    uint8_t buf[16];
    size_t off = 0;
    put_frame(buf, &off, 0, NULL, 0);
    put_frame(buf, &off, ENVD_FRAME_END_STREAM, NULL, 0);
    for (size_t cut = 1; cut < off; cut++) {
        envd_frame_parser p;
        envd_frame_parser_init(&p, 0);
        got g = {0};
        char why[128];
        assert_int_equal(envd_frame_parser_feed(&p, buf, cut, on_frame, &g, why, sizeof why),
                         ENVD_OK);
        assert_int_equal(
            envd_frame_parser_feed(&p, buf + cut, off - cut, on_frame, &g, why, sizeof why),
            ENVD_OK);
        assert_int_equal(g.n, 2);
        assert_int_equal(g.null_payloads, 0);
        assert_int_equal(envd_frame_parser_finish(&p, why, sizeof why), ENVD_OK);
        envd_frame_parser_free(&p);
    }
}

static void test_large_frame(void **state)
{
    (void)state;
    size_t len = (size_t)1 << 20;
    uint8_t *buf = malloc(len + 5 + 7);
    envd_frame_header(buf, 0, (uint32_t)len);
    uint64_t sum = 0;
    for (size_t i = 0; i < len; i++) {
        buf[5 + i] = (uint8_t)(i ^ (i >> 8));
        sum += buf[5 + i];
    }
    envd_frame_header(buf + 5 + len, ENVD_FRAME_END_STREAM, 2);
    memcpy(buf + 10 + len, "{}", 2);
    size_t total = len + 12;
    envd_frame_parser p;
    envd_frame_parser_init(&p, 0);
    got g = {0};
    char why[160];
    for (size_t off = 0; off < total; off += 1000) {
        size_t k = total - off < 1000 ? total - off : 1000;
        assert_int_equal(envd_frame_parser_feed(&p, buf + off, k, on_frame, &g, why, sizeof why),
                         ENVD_OK);
    }
    assert_int_equal(g.n, 2);
    assert_int_equal(g.len[0], len);
    assert_true(g.sum == sum + '{' + '}');
    assert_null(p.buf);
    assert_int_equal(envd_frame_parser_finish(&p, why, sizeof why), ENVD_OK);
    envd_frame_parser_free(&p);
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_whole_buffer),       cmocka_unit_test(test_byte_by_byte),
        cmocka_unit_test(test_all_splits),         cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_malformed_split),    cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_stop_from_callback), cmocka_unit_test(test_large_frame),
        cmocka_unit_test(test_empty_frame_split_header),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
