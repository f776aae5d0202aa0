/* The engine as a user meets it, on both RPC transports: wrong token,
 * nobody listening, a server that stops answering, cancel mid-call, a
 * server killed mid-stream, thousands of futures at once, and freeing the
 * runtime with calls in flight. */
#include "harness.h"
#include "../test_clock.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const envd_transport_kind kinds[2] = {ENVD_TRANSPORT_GRPC, ENVD_TRANSPORT_CONNECT};

static envd_client *client_at(envd_runtime *rt, const char *addr, envd_transport_kind k,
                               const char *token, int64_t timeout_ms)
{
    envd_config *cfg = envd_config_new();
    envd_config_set_domain(cfg, addr);
    envd_config_set_transport(cfg, k);
    envd_config_set_request_timeout_ms(cfg, timeout_ms);
    if (token)
        envd_config_set_runtime_token(cfg, token);
    envd_client *c = NULL;
    assert_int_equal(envd_client_new(rt, "sbx", cfg, &c, NULL), ENVD_OK);
    envd_config_free(cfg);
    return c;
}

static void wrong_token_is_unauthenticated(void **state)
{
    (void)state;
    test_server s;
    assert_int_equal(test_server_start(&s, "both", "s3cret"), 0);
    envd_runtime *rt;
    assert_int_equal(envd_runtime_new(NULL, &rt), ENVD_OK);
    for (int i = 0; i < 2; i++) {
        envd_client *bad = client_at(rt, s.addr, kinds[i], "wrong", 10000);
        envd_entry_info *e = NULL;
        envd_error *err = NULL;
        envd_status st = envd_fs_get_info(bad, "/", &e, &err);
        assert_int_equal(st, ENVD_UNAUTHENTICATED);
        assert_int_equal(envd_error_http_status(err), 401);
        assert_int_equal(envd_error_transport(err), kinds[i]);
        envd_error_free(err);
        /* streams too: run reports it rather than hanging */
        envd_command_result *r = NULL;
        st = envd_commands_run(bad, "true", NULL, &r, &err);
        assert_int_equal(st, ENVD_UNAUTHENTICATED);
        assert_null(r);
        envd_error_free(err);
        envd_client_free(bad);

        envd_client *good = client_at(rt, s.addr, kinds[i], "s3cret", 10000);
        st = envd_fs_get_info(good, "/", &e, &err);
        assert_envd_ok(st, err);
        envd_entry_info_free(e);
        envd_client_free(good);
    }
    envd_runtime_free(rt);
    test_server_stop(&s);
}

static void nobody_listening(void **state)
{
    (void)state;
    envd_runtime *rt;
    assert_int_equal(envd_runtime_new(NULL, &rt), ENVD_OK);
    for (int i = 0; i < 2; i++) {
        envd_client *c = client_at(rt, "127.0.0.1:1", kinds[i], NULL, 5000);
        envd_entry_info *e = NULL;
        envd_error *err = NULL;
        int64_t t0 = test_now_ms();
        envd_status st = envd_fs_get_info(c, "/", &e, &err);
        assert_int_equal(st, ENVD_UNAVAILABLE); /* one error model: every transport */
        assert_true(test_now_ms() - t0 < 5000);
        assert_non_null(strstr(envd_error_message(err), "127.0.0.1:1"));
        envd_error_free(err);
        envd_client_free(c);
    }
    envd_runtime_free(rt);
}

static void stopped_server_hits_the_deadline(void **state)
{
    (void)state;
    test_server s;
    assert_int_equal(test_server_start(&s, "both", NULL), 0);
    envd_runtime *rt;
    assert_int_equal(envd_runtime_new(NULL, &rt), ENVD_OK);
    envd_client *c[2];
    for (int i = 0; i < 2; i++) {
        c[i] = client_at(rt, s.addr, kinds[i], NULL, 400);
        /* warm: connected before the server stops. Under a sanitizer on a
         * busy machine the first call may need more than 400 ms. */
        int exists, tries = 0;
        envd_status st;
        while ((st = envd_fs_exists(c[i], "/", &exists, NULL)) == ENVD_DEADLINE_EXCEEDED &&
               ++tries < 20)
            ;
        assert_int_equal(st, ENVD_OK);
    }
    if (test_server_signal(&s, SIGSTOP) != 0)
        skip();
    for (int i = 0; i < 2; i++) {
        envd_error *err = NULL;
        envd_entry_info *e = NULL;
        int64_t t0 = test_now_ms();
        envd_status st = envd_fs_get_info(c[i], "/", &e, &err);
        int64_t took = test_now_ms() - t0;
        assert_int_equal(st, ENVD_DEADLINE_EXCEEDED);
        assert_true(took >= 350 && took < 3000);
        envd_error_free(err);
        /* a stream's start is bounded by the same request timeout */
        envd_command_result *r = NULL;
        t0 = test_now_ms();
        st = envd_commands_run(c[i], "true", NULL, &r, &err);
        assert_int_equal(st, ENVD_DEADLINE_EXCEEDED);
        assert_true(test_now_ms() - t0 < 3000);
        envd_error_free(err);
    }
    test_server_signal(&s, SIGCONT);
    for (int i = 0; i < 2; i++)
        envd_client_free(c[i]);
    envd_runtime_free(rt);
    test_server_stop(&s);
}

static void mark_up(void *ud, const uint8_t *data, size_t len)
{
    (void)data, (void)len;
    __atomic_store_n((int *)ud, 1, __ATOMIC_SEQ_CST);
}

static void cancel_and_server_death_mid_stream(void **state)
{
    (void)state;
    test_server s;
    assert_int_equal(test_server_start(&s, "both", NULL), 0);
    envd_runtime *rt;
    assert_int_equal(envd_runtime_new(NULL, &rt), ENVD_OK);
    envd_client *c[2];
    envd_future *f[2], *g[2];
    int up[2] = {0, 0}; /* g[i] printed: its stream is established */
    for (int i = 0; i < 2; i++) {
        c[i] = client_at(rt, s.addr, kinds[i], NULL, 10000);
        assert_int_equal(envd_commands_run_async(c[i], "sleep 30", NULL, &f[i]), ENVD_OK);
        envd_cmd_opts *o = envd_cmd_opts_new();
        envd_cmd_opts_on_stdout(o, mark_up, &up[i]);
        assert_int_equal(envd_commands_run_async(c[i], "echo up; sleep 30", o, &g[i]), ENVD_OK);
        envd_cmd_opts_free(o);
    }
    for (int i = 0; i < 2; i++) {
        assert_int_equal(envd_future_wait(f[i], 300), ENVD_E_TIMEOUT);
        int64_t t0 = test_now_ms();
        envd_future_cancel(f[i]);
        assert_int_equal(envd_future_wait(f[i], 5000), ENVD_OK);
        assert_true(test_now_ms() - t0 < 2000);
        assert_int_equal(envd_future_status(f[i]), ENVD_CANCELED);
        envd_future_cancel(f[i]); /* after completion: a no-op */
        assert_int_equal(envd_future_status(f[i]), ENVD_CANCELED);
        envd_future_free(f[i]);
    }
    /* the server dies mid-stream (not while a start is still on its way,
     * which a slow sanitizer build could otherwise make it): streams end
     * with an error, promptly */
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 2000 && !__atomic_load_n(&up[i], __ATOMIC_SEQ_CST); j++)
            usleep(10000);
    assert_true(__atomic_load_n(&up[0], __ATOMIC_SEQ_CST));
    assert_true(__atomic_load_n(&up[1], __ATOMIC_SEQ_CST));
    if (test_server_signal(&s, SIGKILL) != 0)
        skip();
    for (int i = 0; i < 2; i++) {
        assert_int_equal(envd_future_wait(g[i], 10000), ENVD_OK);
        envd_status st = envd_future_status(g[i]);
        if (st == ENVD_OK || st == ENVD_E_COMMAND_EXIT || st == ENVD_CANCELED)
            fail_msg("transport %d: unexpected %s", kinds[i], envd_strerror(st));
        const char *msg = envd_error_message(envd_future_error(g[i]));
        if (!strstr(msg, "stream error"))
            fail_msg("transport %d: %s: %s", kinds[i], envd_strerror(st), msg);
        envd_future_free(g[i]);
        envd_client_free(c[i]);
    }
    envd_runtime_free(rt);
    test_server_stop(&s);
}

static void thousands_of_futures(void **state)
{
    (void)state;
    test_server s;
    assert_int_equal(test_server_start(&s, "both", NULL), 0);
    envd_runtime *rt;
    assert_int_equal(envd_runtime_new(NULL, &rt), ENVD_OK);
    enum { N = 2000 };
    envd_future **fs = calloc(N, sizeof(*fs));
    for (int i = 0; i < 2; i++) {
        envd_client *c = client_at(rt, s.addr, kinds[i], NULL, 60000);
        for (int j = 0; j < N; j++)
            assert_int_equal(envd_fs_get_info_async(c, j % 2 ? "/" : "/nope", &fs[j]), ENVD_OK);
        /* collect them in completion order with wait-any */
        size_t left = N, ok = 0, missing = 0;
        while (left > 0) {
            size_t idx;
            assert_int_equal(envd_future_wait_any(fs, left, 60000, &idx), ENVD_OK);
            envd_status st = envd_future_status(fs[idx]);
            if (st == ENVD_OK) {
                assert_int_equal(envd_future_entry(fs[idx])->type, ENVD_FILE_TYPE_DIRECTORY);
                ok++;
            } else {
                if (st != ENVD_NOT_FOUND)
                    fail_msg("transport %d: %s: %s", kinds[i], envd_strerror(st),
                             envd_error_message(envd_future_error(fs[idx])));
                missing++;
            }
            envd_future_free(fs[idx]);
            fs[idx] = fs[--left];
        }
        assert_int_equal(ok, N / 2);
        assert_int_equal(missing, N / 2);
        envd_client_free(c);
    }
    free(fs);
    envd_runtime_free(rt);
    test_server_stop(&s);
}

static void counting(envd_future *f, void *ud)
{
    (void)f;
    __atomic_add_fetch((int *)ud, 1, __ATOMIC_SEQ_CST);
}

static void runtime_free_with_calls_in_flight(void **state)
{
    (void)state;
    test_server s;
    assert_int_equal(test_server_start(&s, "both", NULL), 0);
    envd_runtime *rt;
    assert_int_equal(envd_runtime_new(NULL, &rt), ENVD_OK);
    enum { PER = 50 };
    envd_client *c[2];
    envd_future *fs[2 * PER];
    int callbacks = 0;
    for (int i = 0; i < 2; i++) {
        c[i] = client_at(rt, s.addr, kinds[i], NULL, 10000);
        for (int j = 0; j < PER; j++) {
            assert_int_equal(envd_commands_run_async(c[i], "sleep 30", NULL, &fs[i * PER + j]),
                             ENVD_OK);
            envd_future_on_complete(fs[i * PER + j], counting, &callbacks);
        }
    }
    envd_future *pending_stat;
    assert_int_equal(envd_fs_get_info_async(c[0], "/", &pending_stat), ENVD_OK);
    envd_future_wait(pending_stat, 5000);
    envd_future_free(pending_stat);
    int64_t t0 = test_now_ms();
    envd_runtime_free(rt);
    assert_true(test_now_ms() - t0 < 10000);
    /* every future completed exactly once, with CANCELED */
    assert_int_equal(__atomic_load_n(&callbacks, __ATOMIC_SEQ_CST), 2 * PER);
    for (int j = 0; j < 2 * PER; j++) {
        assert_true(envd_future_done(fs[j]));
        assert_int_equal(envd_future_status(fs[j]), ENVD_CANCELED);
        envd_future_free(fs[j]);
    }
    envd_client_free(c[0]);
    envd_client_free(c[1]);
    test_server_stop(&s);
}

/* A future may outlive its client: free the client with calls in flight. */
static void futures_outlive_their_client(void **state)
{
    (void)state;
    test_server s;
    assert_int_equal(test_server_start(&s, "both", NULL), 0);
    envd_runtime *rt;
    assert_int_equal(envd_runtime_new(NULL, &rt), ENVD_OK);
    for (int i = 0; i < 2; i++) {
        envd_client *c = client_at(rt, s.addr, kinds[i], NULL, 10000);
        envd_future *fs[4];
        assert_int_equal(envd_commands_run_async(c, "sleep 0.3; echo late", NULL, &fs[0]), ENVD_OK);
        assert_int_equal(envd_fs_get_info_async(c, "/", &fs[1]), ENVD_OK);
        envd_write_batch *b = envd_write_batch_new();
        assert_int_equal(envd_write_batch_add(b, "/tmp/outlive.txt", "x", 1), ENVD_OK);
        assert_int_equal(envd_files_write_batch_async(c, b, NULL, &fs[2]), ENVD_OK);
        envd_write_batch_free(b);
        assert_int_equal(envd_files_read_async(c, "/nope", NULL, &fs[3]), ENVD_OK);
        envd_client_free(c);
        assert_int_equal(envd_future_wait_all(fs, 4, 20000), ENVD_OK);
        assert_int_equal(envd_future_status(fs[0]), ENVD_OK);
        assert_string_equal((envd_future_command_result(fs[0]))->stdout_data,
                            "late\n");
        assert_int_equal(envd_future_status(fs[1]), ENVD_OK);
        assert_int_equal(envd_future_status(fs[2]), ENVD_OK);
        assert_int_equal(envd_future_status(fs[3]), ENVD_NOT_FOUND);
        for (int j = 0; j < 4; j++)
            envd_future_free(fs[j]);
    }
    envd_runtime_free(rt);
    test_server_stop(&s);
}

/* What a callback sees when it tries to block: a refusal, at once, from a
 * completion callback and from an output callback, on both transports. */
typedef struct blocker {
    envd_runtime *rt;
    envd_future *pending; /* a command that sleeps while the probes run */
    envd_status wait, any, all, rt_free;
    int64_t took_ms;
    int ran;
} blocker;

static void try_to_block(blocker *b)
{
    if (__atomic_load_n(&b->ran, __ATOMIC_SEQ_CST))
        return; /* output may come in several pieces; probe once */
    int64_t t0 = test_now_ms();
    size_t idx;
    b->wait = envd_future_wait(b->pending, -1);
    b->any = envd_future_wait_any(&b->pending, 1, -1, &idx);
    b->all = envd_future_wait_all(&b->pending, 1, -1);
    b->rt_free = envd_runtime_free(b->rt);
    b->took_ms = test_now_ms() - t0;
    __atomic_store_n(&b->ran, 1, __ATOMIC_SEQ_CST);
}

static void blocking_completion(envd_future *f, void *ud)
{
    (void)f;
    try_to_block(ud);
}

static void blocking_output(void *ud, const uint8_t *data, size_t len)
{
    (void)data, (void)len;
    try_to_block(ud);
}

static void assert_refused_in_time(blocker *b)
{
    for (int i = 0; i < 1000 && !__atomic_load_n(&b->ran, __ATOMIC_SEQ_CST); i++)
        usleep(10000);
    assert_int_equal(__atomic_load_n(&b->ran, __ATOMIC_SEQ_CST), 1);
    assert_int_equal(b->wait, ENVD_E_USAGE);
    assert_int_equal(b->any, ENVD_E_USAGE);
    assert_int_equal(b->all, ENVD_E_USAGE);
    assert_int_equal(b->rt_free, ENVD_E_USAGE);
    assert_true(b->took_ms < 1000);
    __atomic_store_n(&b->ran, 0, __ATOMIC_SEQ_CST);
}

static void callbacks_cannot_block(void **state)
{
    (void)state;
    test_server s;
    assert_int_equal(test_server_start(&s, "both", NULL), 0);
    blocker b = {0};
    assert_int_equal(envd_runtime_new(NULL, &b.rt), ENVD_OK);
    for (int i = 0; i < 2; i++) {
        envd_client *c = client_at(b.rt, s.addr, kinds[i], NULL, 10000);
        assert_int_equal(envd_commands_run_async(c, "sleep 30", NULL, &b.pending), ENVD_OK);
        envd_future *f;
        assert_int_equal(envd_fs_get_info_async(c, "/", &f), ENVD_OK);
        assert_int_equal(envd_future_on_complete(f, blocking_completion, &b), ENVD_OK);
        assert_refused_in_time(&b);
        envd_future_free(f);

        envd_cmd_opts *o = envd_cmd_opts_new();
        assert_int_equal(envd_cmd_opts_on_stdout(o, blocking_output, &b), ENVD_OK);
        assert_int_equal(envd_commands_run_async(c, "echo hi", o, &f), ENVD_OK);
        envd_cmd_opts_free(o);
        assert_refused_in_time(&b);
        assert_int_equal(envd_future_wait(f, 10000), ENVD_OK);
        assert_int_equal(envd_future_status(f), ENVD_OK);
        envd_future_free(f);
        envd_future_free(b.pending); /* cancels the sleep */
        envd_client_free(c);
    }
    assert_int_equal(envd_runtime_free(b.rt), ENVD_OK);
    test_server_stop(&s);
}

/* envd_config_set_max_message_bytes against the reference server, on both
 * transports: a reply or a stream message over the limit fails (gRPC core
 * with RESOURCE_EXHAUSTED, Connect's frame parser with ENVD_E_PROTOCOL, as
 * envd.h says), and the same calls under a limit they fit in succeed. On
 * gRPC the limit is core's (GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH): this is
 * what says it still holds with the channel arguments grpc.c sets
 * (GRPC_ARG_MINIMAL_STACK among them). */
static void reply_over_max_message_fails(void **state)
{
    (void)state;
    test_server s;
    assert_int_equal(test_server_start(&s, "both", NULL), 0);
    /* 64 files with 100-byte names: a ListDir reply of ~16 KiB */
    char dir[512], path[700], name[101];
    snprintf(dir, sizeof dir, "%s/big", s.root);
    assert_int_equal(mkdir(dir, 0755), 0);
    memset(name, 'n', 100);
    name[100] = 0;
    for (int i = 0; i < 64; i++) {
        snprintf(path, sizeof path, "%s/%02d%s", dir, i, name + 2);
        int fd = open(path, O_CREAT | O_WRONLY, 0644);
        assert_true(fd >= 0);
        close(fd);
    }
    envd_runtime *rt = NULL;
    assert_int_equal(envd_runtime_new(NULL, &rt), ENVD_OK);
    for (int i = 0; i < 2; i++) {
        for (int small = 1; small >= 0; small--) {
            envd_config *cfg = envd_config_new();
            envd_config_set_domain(cfg, s.addr);
            envd_config_set_transport(cfg, kinds[i]);
            envd_config_set_request_timeout_ms(cfg, 10000);
            assert_int_equal(envd_config_set_max_message_bytes(cfg, small ? 4096 : 1 << 20),
                             ENVD_OK);
            envd_client *c = NULL;
            assert_int_equal(envd_client_new(rt, "sbx", cfg, &c, NULL), ENVD_OK);
            envd_config_free(cfg);
            envd_status want = !small ? ENVD_OK
                               : kinds[i] == ENVD_TRANSPORT_GRPC ? ENVD_RESOURCE_EXHAUSTED
                                                                 : ENVD_E_PROTOCOL;
            print_message("  %s, limit %s\n", kinds[i] == ENVD_TRANSPORT_GRPC ? "gRPC" : "Connect",
                          small ? "4 KiB" : "1 MiB");

            envd_entry_list *l = NULL;
            envd_error *err = NULL;
            envd_status st = envd_fs_list(c, "/big", 1, &l, &err);
            if (st != want)
                fail_msg("ListDir: %s (%s), want %s", envd_strerror(st),
                         err ? envd_error_message(err) : "-", envd_strerror(want));
            if (!small)
                assert_int_equal(l->count, 64);
            envd_entry_list_free(l);
            envd_error_free(err);

            /* DataEvents of 8 KiB or more (head writes 8 KiB at a time): stream
             * messages over 4 KiB */
            envd_command_result *res = NULL;
            err = NULL;
            st = envd_commands_run(c, "head -c 65536 /dev/zero", NULL, &res, &err);
            if (st != want)
                fail_msg("Start stream: %s (%s), want %s", envd_strerror(st),
                         err ? envd_error_message(err) : "-", envd_strerror(want));
            if (!small)
                assert_int_equal(res->stdout_len, 65536);
            envd_command_result_free(res);
            envd_error_free(err);
            envd_client_free(c);
        }
    }
    assert_int_equal(envd_runtime_free(rt), ENVD_OK);
    test_server_stop(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(wrong_token_is_unauthenticated),
        cmocka_unit_test(nobody_listening),
        cmocka_unit_test(stopped_server_hits_the_deadline),
        cmocka_unit_test(cancel_and_server_death_mid_stream),
        cmocka_unit_test(thousands_of_futures),
        cmocka_unit_test(runtime_free_with_calls_in_flight),
        cmocka_unit_test(futures_outlive_their_client),
        cmocka_unit_test(callbacks_cannot_block),
        cmocka_unit_test(reply_over_max_message_fails),
    };
    return cmocka_run_group_tests_name("engine", tests, NULL, NULL);
}
