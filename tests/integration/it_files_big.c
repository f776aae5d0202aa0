/* /files at scale: a large round trip (2 GiB by default) generated on the
 * fly and checked by SHA-256 while it streams, with the client's memory
 * staying flat; and 500 transfers in flight at once, directly and through
 * through the gateway.
 *
 * ENVD_TEST_BIG_MB sets the size of the round trip (default 2048; 0 skips
 * it). The data never touches the client's disk; on the server's side the
 * file is removed right after the check. */
#include "fs_test_util.h"
#include "files_calls.h"

typedef struct fixture {
    test_server srv;
    test_gateway gw;
    envd_runtime *rt;
    envd_client *c;
} fixture;

static int setup(void **state)
{
    fixture *fx = calloc(1, sizeof(*fx));
    *state = fx;
    if (test_server_start(&fx->srv, "h1", NULL) != 0)
        return -1;
    const char *ids[] = {"sbx-big"};
    if (test_gateway_start(&fx->gw, &fx->srv, ids, 1) != 0)
        return -1;
    if (envd_runtime_new(NULL, &fx->rt) != ENVD_OK)
        return -1;
    fx->c = test_client(fx->rt, &fx->srv, ENVD_TRANSPORT_CONNECT, NULL);
    return fx->c ? 0 : -1;
}

static int teardown(void **state)
{
    fixture *fx = *state;
    if (!fx)
        return 0;
    envd_client_free(fx->c);
    envd_runtime_free(fx->rt);
    test_gateway_stop(&fx->gw);
    test_server_stop(&fx->srv);
    free(fx);
    return 0;
}

typedef struct gen {
    prng r;
    int64_t left;
    sha h;
} gen;

static size_t gen_read(void *ud, uint8_t *buf, size_t cap)
{
    gen *g = ud;
    size_t n = (int64_t)cap < g->left ? cap : (size_t)g->left;
    prng_fill(&g->r, buf, n);
    sha_update(&g->h, buf, n);
    g->left -= (int64_t)n;
    return n;
}

typedef struct sink {
    sha h;
    int64_t n;
} sink;

static int sink_data(void *ud, const uint8_t *d, size_t n)
{
    sink *s = ud;
    sha_update(&s->h, d, n);
    s->n += (int64_t)n;
    return 0;
}

static void big_round_trip(void **state)
{
    fixture *fx = *state;
    const char *env = getenv("ENVD_TEST_BIG_MB");
    int64_t mb = env ? atoll(env) : 2048;
    if (mb <= 0)
        skip();
    int64_t len = mb << 20;
    long rss0 = cur_rss_kib();
    envd_files_opts *o = envd_files_opts_new();
    envd_files_opts_set_idle_timeout_ms(o, 30000);
    envd_error *err = NULL;

    gen g = {.r = {.s = 0x243F6A8885A308D3ULL}, .left = len};
    sha_init(&g.h);
    int64_t t0 = now_ms();
    envd_write_info *wi = NULL;
    envd_status st =
        write_cb(fx->c, "/big/blob.bin", gen_read, &g, len, o, &wi, &err);
    int64_t t1 = now_ms();
    assert_envd_ok(st, err);
    assert_string_equal((wi)->items[0].path, "/big/blob.bin");
    envd_write_info_free(wi);
    char want[65], got[65];
    sha_final(&g.h, want);

    envd_entry_info *e = NULL;
    st = envd_fs_get_info(fx->c, "/big/blob.bin", &e, &err);
    assert_envd_ok(st, err);
    assert_int_equal(e->size, len);
    envd_entry_info_free(e);

    sink s = {0};
    sha_init(&s.h);
    int64_t t2 = now_ms();
    st = read_cb(fx->c, "/big/blob.bin", sink_data, &s, o, &err);
    int64_t t3 = now_ms();
    envd_error *err2 = NULL;
    envd_status st2 = envd_fs_remove(fx->c, "/big/blob.bin", &err2); /* free the disk first */
    assert_envd_ok(st, err);
    assert_envd_ok(st2, err2);
    assert_false(disk_exists(&fx->srv, "/big/blob.bin"));
    sha_final(&s.h, got);
    assert_int_equal(s.n, len);
    assert_string_equal(got, want);

    long grown = max_rss_kib() - rss0;
    print_message("    %lld MiB: upload %.0f MB/s, download %.0f MB/s, sha256 %.16s..., peak RSS "
                  "growth %ld KiB\n",
                  (long long)mb, (double)len / 1e6 / ((double)(t1 - t0) / 1000.0),
                  (double)len / 1e6 / ((double)(t3 - t2) / 1000.0), want, grown);
    assert_true(grown < 64 * 1024);
    envd_files_opts_free(o);
}

/* n writes in flight, then n reads in flight; every byte checked. */
static void many_at_once(envd_client *c, int n, const char *dir)
{
    /* The directory first: the reference server's EnsureDirs is not safe
     * against itself (concurrent uploads creating the same new directory
     * fail with "mkdir ...: file exists"). */
    envd_error *err = NULL;
    envd_status st = envd_fs_make_dir(c, dir, NULL, &err);
    assert_envd_ok(st, err);
    envd_future **fs = calloc((size_t)n, sizeof(*fs));
    char(*bodies)[64] = calloc((size_t)n, sizeof(*bodies));
    for (int i = 0; i < n; i++) {
        char p[128];
        snprintf(p, sizeof p, "%s/f%04d.txt", dir, i);
        snprintf(bodies[i], sizeof bodies[i], "body of file %d in %s", i, dir);
        assert_int_equal(write_mem_async(c, p, bodies[i], strlen(bodies[i]), NULL, &fs[i]),
                         ENVD_OK);
    }
    assert_int_equal(envd_future_wait_all(fs, (size_t)n, 120000), ENVD_OK);
    for (int i = 0; i < n; i++) {
        if (envd_future_status(fs[i]) != ENVD_OK)
            fail_msg("write %d: %s", i, envd_error_message(envd_future_error(fs[i])));
        envd_future_free(fs[i]);
    }
    for (int i = 0; i < n; i++) {
        char p[128];
        snprintf(p, sizeof p, "%s/f%04d.txt", dir, i);
        assert_int_equal(envd_files_read_async(c, p, NULL, &fs[i]), ENVD_OK);
    }
    assert_int_equal(envd_future_wait_all(fs, (size_t)n, 120000), ENVD_OK);
    for (int i = 0; i < n; i++) {
        if (envd_future_status(fs[i]) != ENVD_OK)
            fail_msg("read %d: %s", i, envd_error_message(envd_future_error(fs[i])));
        assert_string_equal((const char *)envd_future_bytes(fs[i], NULL), bodies[i]);
        envd_future_free(fs[i]);
    }
    free(fs);
    free(bodies);
}

static void five_hundred_direct(void **state)
{
    fixture *fx = *state;
    int64_t t0 = now_ms();
    many_at_once(fx->c, 500, "/many/direct");
    print_message("    500 writes + 500 reads over HTTP/1.1 in %lld ms\n",
                  (long long)(now_ms() - t0));
}

/* Through nginx on HTTP/1.1, which holds a client and an upstream
 * connection per transfer in flight: the test gateway's 1024
 * worker_connections cannot take 500 of each, so this runtime caps what is
 * in flight at 200 and the other submissions wait for a slot (the
 * back-pressure a batch runner uses against a gateway's limits). (Not the
 * h2c port: with libcurl < 8.0 the engine opens one h2c connection per
 * call, see curl_engine.c, so the load would be the same.) */
static void five_hundred_through_gateway(void **state)
{
    fixture *fx = *state;
    envd_config *cfg = envd_config_new();
    envd_config_set_max_inflight(cfg, 200, 0);
    envd_runtime *rt = NULL;
    assert_int_equal(envd_runtime_new(cfg, &rt), ENVD_OK);
    envd_config_free(cfg);
    envd_client *c = test_gateway_client(rt, fx->gw.h1_port, "sbx-big", ENVD_TRANSPORT_CONNECT, 0);
    assert_non_null(c);
    int64_t t0 = now_ms();
    many_at_once(c, 500, "/many/gateway");
    print_message("    500 writes + 500 reads through the gateway (HTTP/1.1, at most 200 in "
                  "flight) in %lld ms\n",
                  (long long)(now_ms() - t0));
    envd_client_free(c);
    envd_runtime_free(rt);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(big_round_trip),
        cmocka_unit_test(five_hundred_direct),
        cmocka_unit_test(five_hundred_through_gateway),
    };
    return cmocka_run_group_tests_name("files at scale", tests, setup, teardown);
}
