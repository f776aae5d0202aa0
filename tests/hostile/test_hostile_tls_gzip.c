/* Two more hostile peers (issue 13), beside test_hostile.c:
 *   - a TLS peer that accepts the connection and never answers the
 *     ClientHello: over Connect and gRPC the call ends with the request
 *     timeout, and the runtime keeps serving;
 *   - a gzip bomb on /files: 1 GiB of zeros in about 1 MiB on the wire,
 *     gzip-encoded although the client did not ask for it. libcurl decodes
 *     it; into a callback sink the client's memory stays flat, and the
 *     whole 1 GiB is counted as the file (it is the file the server sent).
 *     The same over h2c, where the nghttp2 engine decodes it itself. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <zlib.h>

#include "../unit/fault_server.h"
#include "envd/envd.h"
#include "../test_clock.h"

#define BOMB_BYTES ((int64_t)1 << 30)

static envd_runtime *g_rt;
static uint8_t *g_bomb;
static size_t g_bomb_len;

static envd_client *client_on(envd_runtime *rt, const char *scheme, envd_transport_kind kind)
{
    envd_config *cfg = envd_config_new();
    char dom[64];
    snprintf(dom, sizeof dom, "127.0.0.1:%d", g_fs.port);
    envd_client *c = NULL;
    if (envd_config_set_domain(cfg, dom) || envd_config_set_scheme(cfg, scheme) ||
        envd_config_set_transport(cfg, kind) || envd_config_set_request_timeout_ms(cfg, 3000) ||
        envd_config_set_idle_timeout_ms(cfg, 1500) || envd_client_new(rt, "sbx-h", cfg, &c, NULL))
        fail_msg("cannot make a %s client", scheme);
    envd_config_free(cfg);
    return c;
}

static envd_client *client(const char *scheme, envd_transport_kind kind)
{
    return client_on(g_rt, scheme, kind);
}

/* ---- a TLS peer that stalls the handshake -------------------------------------- */

static void stall_handshake(int fd)
{
    /* Reads the ClientHello and answers nothing, until a second after the
     * client's request timeout (a gRPC channel would keep trying for its
     * own 20 s handshake bound). */
    fs_drain(fd, 4000);
}

static void good_list(int fd)
{
    static const char body[] = "\x0a\x03\x0a\x01"
                               "a";
    char h[200];
    snprintf(h, sizeof h,
             "HTTP/1.1 200 OK\r\nContent-Type: application/proto\r\nContent-Length: %zu\r\n"
             "Connection: close\r\n\r\n",
             sizeof body - 1);
    fs_puts(fd, h);
    fs_write_all(fd, body, sizeof body - 1);
}

static void stalled_tls_handshake(void **state)
{
    (void)state;
    envd_client *plain = client("http", ENVD_TRANSPORT_CONNECT);
    const envd_transport_kind kinds[] = {ENVD_TRANSPORT_CONNECT, ENVD_TRANSPORT_GRPC};
    for (size_t i = 0; i < 2; i++) {
        /* a runtime of its own: its gRPC channel would go on reconnecting
         * to the fault server after the case */
        envd_runtime *rt = NULL;
        assert_int_equal(envd_runtime_new(NULL, &rt), ENVD_OK);
        envd_client *c = client_on(rt, "https", kinds[i]);
        fs_set_raw(stall_handshake);
        int64_t t0 = test_now_ms();
        envd_entry_list *l = NULL;
        envd_error *err = NULL;
        envd_status st = envd_fs_list(c, "/tmp", 1, &l, &err);
        int64_t dt = test_now_ms() - t0;
        print_message("  stalled TLS (%s): %lld ms, %s: %s\n", i ? "gRPC" : "Connect",
                      (long long)dt, envd_strerror(st), err ? envd_error_message(err) : "");
        assert_int_equal(st, ENVD_DEADLINE_EXCEEDED);
        assert_null(l);
        /* the 3 s request timeout, and slack for sanitizer builds */
        assert_true(dt >= 2500 && dt < 8000);
        envd_error_free(err);
        envd_client_free(c);
        envd_runtime_free(rt);

        /* the runtime still serves */
        fs_set(good_list);
        err = NULL;
        if (envd_fs_list(plain, "/tmp", 1, &l, &err) != ENVD_OK)
            fail_msg("the next call failed: %s", envd_error_message(err));
        envd_entry_list_free(l);
    }
    envd_client_free(plain);
}

/* ---- a gzip bomb on /files ------------------------------------------------------ */

static void make_bomb(void)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    /* windowBits 15 + 16: a gzip wrapper */
    assert_int_equal(deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 9, Z_DEFAULT_STRATEGY), Z_OK);
    static uint8_t zeros[1 << 20];
    size_t cap = 2 << 20;
    g_bomb = malloc(cap);
    assert_non_null(g_bomb);
    z.next_out = g_bomb;
    z.avail_out = (uInt)cap;
    for (int64_t left = BOMB_BYTES; left > 0; left -= (int64_t)sizeof zeros) {
        z.next_in = zeros;
        z.avail_in = sizeof zeros;
        assert_int_equal(deflate(&z, left > (int64_t)sizeof zeros ? Z_NO_FLUSH : Z_FINISH),
                         left > (int64_t)sizeof zeros ? Z_OK : Z_STREAM_END);
        assert_true(z.avail_out > 0);
    }
    g_bomb_len = cap - z.avail_out;
    deflateEnd(&z);
}

/* The bomb as an HTTP/2 response, in 16 KiB DATA frames. The client's
 * windows (1 MiB a stream, 16 MiB the connection) take the ~1 MiB whole;
 * the server writes without reading their updates. */
static void bomb_reply_h2(int fd)
{
    int sid = fs_h2_accept(fd);
    if (sid < 0)
        return;
    unsigned char block[256];
    char cl[32];
    snprintf(cl, sizeof cl, "%zu", g_bomb_len);
    size_t n = fs_hpack_literal(block, ":status", "200");
    n += fs_hpack_literal(block + n, "content-type", "application/octet-stream");
    n += fs_hpack_literal(block + n, "content-encoding", "gzip");
    n += fs_hpack_literal(block + n, "content-length", cl);
    if (fs_h2_frame(fd, 0x1, 0x4, (uint32_t)sid, block, n))
        return;
    for (size_t o = 0; o < g_bomb_len; o += 16384) {
        size_t k = g_bomb_len - o < 16384 ? g_bomb_len - o : 16384;
        if (fs_h2_data(fd, (uint32_t)sid, g_bomb + o, k, o + k == g_bomb_len))
            return;
    }
    fs_drain(fd, 1000);
}

static void bomb_reply(int fd)
{
    char h[256];
    snprintf(h, sizeof h,
             "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
             "Content-Encoding: gzip\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
             g_bomb_len);
    if (fs_puts(fd, h) == 0)
        fs_write_all(fd, g_bomb, g_bomb_len);
}

typedef struct counted {
    int64_t bytes;
    int nonzero;
} counted;

static int count_sink(void *ud, const uint8_t *data, size_t len)
{
    static const uint8_t zeros[1 << 16];
    counted *c = ud;
    c->bytes += (int64_t)len;
    for (size_t o = 0; o < len; o += sizeof zeros) {
        size_t k = len - o < sizeof zeros ? len - o : sizeof zeros;
        c->nonzero |= memcmp(data + o, zeros, k) != 0;
    }
    return 0;
}

static void bomb_read(int h2c)
{
    make_bomb();
    print_message("  bomb: %lld bytes in %zu on the wire\n", (long long)BOMB_BYTES, g_bomb_len);
    envd_client *c = client("http", ENVD_TRANSPORT_CONNECT);
    if (h2c) {
        envd_client_free(c);
        envd_config *cfg = envd_config_new();
        char dom[64];
        snprintf(dom, sizeof dom, "127.0.0.1:%d", g_fs.port);
        c = NULL;
        if (envd_config_set_domain(cfg, dom) || envd_config_set_h2c(cfg, 1) ||
            envd_config_set_transport(cfg, ENVD_TRANSPORT_CONNECT) ||
            envd_config_set_idle_timeout_ms(cfg, 1500) ||
            envd_client_new(g_rt, "sbx-h", cfg, &c, NULL))
            fail_msg("cannot make an h2c client");
        envd_config_free(cfg);
        fs_set_raw(bomb_reply_h2);
    } else {
        fs_set(bomb_reply);
    }
    envd_files_opts *o = envd_files_opts_new();
    counted n = {0, 0};
    assert_int_equal(envd_files_opts_set_sink(o, count_sink, &n), ENVD_OK);
    long rss0 = test_rss_kb();
    uint8_t *data = NULL;
    size_t len = 0;
    envd_error *err = NULL;
    envd_status st = envd_files_read(c, "/tmp/bomb", o, &data, &len, &err);
    long rss1 = test_rss_kb();
    print_message("  read%s: %s, %lld bytes, RSS %ld -> %ld kB%s%s\n", h2c ? " (h2c)" : "",
                  envd_strerror(st), (long long)n.bytes, rss0, rss1, err ? ": " : "",
                  err ? envd_error_message(err) : "");
    assert_int_equal(st, ENVD_OK);
    assert_null(data);
    assert_int_equal((int64_t)len, BOMB_BYTES);
    assert_int_equal(n.bytes, BOMB_BYTES);
    assert_false(n.nonzero);
    /* decoded in pieces: nothing of the 1 GiB is held */
    assert_true(rss1 - rss0 < 32 * 1024);
    envd_files_opts_free(o);
    envd_client_free(c);
    fs_join_conns(); /* the server's thread is done with the bomb */
    free(g_bomb);
    g_bomb = NULL;
}

static void gzip_bomb_on_files(void **state)
{
    (void)state;
    bomb_read(0);
}

static void gzip_bomb_on_files_h2c(void **state)
{
    (void)state;
    bomb_read(1);
}

static int setup(void **state)
{
    (void)state;
    return fs_start() == 0 && envd_runtime_new(NULL, &g_rt) == ENVD_OK ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    envd_runtime_free(g_rt);
    fs_stop();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(stalled_tls_handshake),
                                       cmocka_unit_test(gzip_bomb_on_files),
                                       cmocka_unit_test(gzip_bomb_on_files_h2c)};
    return cmocka_run_group_tests(tests, setup, teardown);
}
