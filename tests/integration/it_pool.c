/* The connection pools of gRPC and of Connect over h2c (issue 11): a peer that allows 100 streams per
 * connection (server.mjs --max-streams 100, nginx's
 * http2_max_concurrent_streams 100) and long commands that each hold a
 * stream for their whole life.
 *
 * Every bound below is a correctness bound, not a speed test: a command
 * sleeps LONG_S, so a start event, a Stat or a List that had to wait for a
 * stream behind the running commands could not arrive before the sleeps
 * end; the waits are far below LONG_S and far above what the calls need.
 * Connections are counted in /proc/net/tcp{,6} (what ss reads), among this
 * process's own sockets, so two pooled channels sharing one TCP connection
 * would show. */
#include "harness.h"
#include "../test_clock.h"
#include "api/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define STREAMS 100
#define LONG_S "300" /* the commands' sleep; they are killed long before */
#define START_WAIT_MS 120000
#define RUNS 1000
#define KILL_BATCH 50

/* ENVD_TEST_LOAD_RUNS lowers the 1,000 (the TSan stage: same paths, slower);
 * never below 3 waves' worth, or one wave would prove nothing. */
static int load_runs(void)
{
    const char *env = getenv("ENVD_TEST_LOAD_RUNS");
    int n = env && atoi(env) > 0 ? atoi(env) : RUNS;
    return n < 3 * STREAMS ? 3 * STREAMS : n;
}

/* The pool under test is gRPC's unless the runtime's Connect runs over
 * h2c (the nghttp2 engine): connections and the calls on them. */
static size_t pool_channels(envd_runtime *rt, size_t *active)
{
    size_t ch = 0;
    envd_h2c_engine *h = envd_curl_engine_h2c(rt->curl);
    if (h)
        envd_h2c_engine_stats(h, &ch, NULL, active);
    else
        envd_grpc_engine_pool_stats(rt->grpc, &ch, active);
    return ch;
}

/* The pool with no call counted on it. A stream's count drops just after
 * its on_done (which completed the caller's future), so poll briefly. */
static void assert_pool_clean(envd_runtime *rt)
{
    size_t active = 1;
    for (int64_t end = test_now_ms() + 10000; test_now_ms() < end; usleep(10000)) {
        pool_channels(rt, &active);
        if (active == 0)
            break;
    }
    assert_int_equal(active, 0);
}

typedef struct pool_fx {
    test_server srv;
    test_gateway gw;
    int has_gw;
    envd_runtime *rt;
    envd_client *c;
    /* Another runtime's client, for kills that must not wait for a stream
     * of the pool under test (at its ceiling every stream is held). */
    envd_runtime *rt2;
    envd_client *killer;
    int port; /* where the client connects */
} pool_fx;

/* Whether fx_start makes a Connect-over-h2c client instead of gRPC. */
static int g_h2c;

/* A reference server advertising 100 streams (and nginx in front when
 * gw), a runtime with the given connection limits (0: defaults) and a
 * gRPC client (Connect over h2c with g_h2c) with a 3 s request timeout. */
static void fx_start(pool_fx *fx, int gw, int streams, int max_conns)
{
    memset(fx, 0, sizeof(*fx));
    static const char *const extra[] = {"--max-streams", "100", NULL};
    assert_int_equal(test_server_start_args(&fx->srv, "both", NULL, extra), 0);
    fx->port = fx->srv.port;
    if (gw) {
        static const char *const ids[1] = {"sbx-pool"};
        assert_int_equal(test_gateway_start(&fx->gw, &fx->srv, ids, 1), 0);
        fx->has_gw = 1;
        fx->port = g_h2c ? fx->gw.h2_port : fx->gw.grpc_port;
    }
    envd_config *cfg = envd_config_new();
    if (streams)
        assert_int_equal(envd_config_set_connection_limits(cfg, streams, max_conns), ENVD_OK);
    assert_int_equal(envd_runtime_new(cfg, &fx->rt), ENVD_OK);
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", fx->port);
    envd_config_set_domain(cfg, addr);
    envd_config_set_transport(cfg, g_h2c ? ENVD_TRANSPORT_CONNECT : ENVD_TRANSPORT_GRPC);
    envd_config_set_h2c(cfg, g_h2c);
    envd_config_set_request_timeout_ms(cfg, 3000);
    envd_error *err = NULL;
    envd_status st = envd_client_new(fx->rt, "sbx-pool", cfg, &fx->c, &err);
    assert_envd_ok(st, err);
    envd_config_set_transport(cfg, ENVD_TRANSPORT_GRPC);
    envd_config_set_h2c(cfg, 0);
    /* The killer goes straight to the server (never through nginx, whose
     * connections the running streams nearly use up) with time to spare. */
    assert_int_equal(envd_runtime_new(NULL, &fx->rt2), ENVD_OK);
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", fx->srv.port);
    envd_config_set_domain(cfg, addr);
    envd_config_set_request_timeout_ms(cfg, 60000);
    st = envd_client_new(fx->rt2, "sbx-pool", cfg, &fx->killer, &err);
    assert_envd_ok(st, err);
    envd_config_free(cfg);
}

static void fx_stop(pool_fx *fx)
{
    envd_client_free(fx->c);
    envd_client_free(fx->killer);
    if (fx->rt)
        envd_runtime_free(fx->rt);
    if (fx->rt2)
        envd_runtime_free(fx->rt2);
    if (fx->has_gw)
        test_gateway_stop(&fx->gw);
    test_server_stop(&fx->srv);
}

/* Starts n `sleep LONG_S` (no shell) whose start may wait START_WAIT_MS. */
static envd_future **start_long(pool_fx *fx, int n)
{
    static const char *const argv[] = {"sleep", LONG_S, NULL};
    envd_cmd_opts *o = envd_cmd_opts_new();
    assert_int_equal(envd_cmd_opts_set_argv(o, argv), ENVD_OK);
    assert_int_equal(envd_cmd_opts_set_request_timeout_ms(o, START_WAIT_MS), ENVD_OK);
    envd_future **fs = calloc((size_t)n, sizeof(*fs));
    assert_non_null(fs);
    for (int i = 0; i < n; i++)
        assert_int_equal(envd_commands_start_async(fx->c, NULL, o, &fs[i]), ENVD_OK);
    envd_cmd_opts_free(o);
    return fs;
}

/* Fails unless future i completed with a started process. */
static void assert_started(envd_future *f, int i)
{
    if (envd_future_status(f) != ENVD_OK)
        fail_msg("command %d: %s", i,
                 envd_future_error(f) ? envd_error_message(envd_future_error(f)) : "?");
    assert_true(envd_future_pid(f) > 0);
}

/* kill_all's batch: the signals at once, then each end. */
static void kill_batch(pool_fx *fx, envd_future **fs, int from, int to)
{
    int n = to - from;
    envd_handle **hs = calloc((size_t)n, sizeof(*hs));
    envd_future **ks = calloc((size_t)n, sizeof(*ks));
    assert_true(hs && ks);
    for (int i = 0; i < n; i++) {
        hs[i] = envd_future_take_handle(fs[from + i]);
        assert_non_null(hs[i]);
        assert_int_equal(envd_commands_signal_async(fx->killer, ENVD_PID(envd_handle_pid(hs[i])),
                                                    ENVD_SIGNAL_SIGKILL, &ks[i]),
                         ENVD_OK);
    }
    assert_int_equal(envd_future_wait_all(ks, (size_t)n, 60000), ENVD_OK);
    for (int i = 0; i < n; i++) {
        if (envd_future_bool(ks[i]) != 1)
            fail_msg("kill %d: %s", from + i,
                     envd_future_error(ks[i]) ? envd_error_message(envd_future_error(ks[i]))
                                              : "not known to the server");
        envd_future_free(ks[i]);
        envd_command_result *r = NULL;
        envd_error *err = NULL;
        envd_status st = envd_handle_wait(hs[i], 30000, &r, &err);
        if (st != ENVD_E_COMMAND_EXIT)
            fail_msg("command %d after kill: %s (%s)", from + i, envd_strerror(st),
                     err ? envd_error_message(err) : "no error");
        assert_int_equal(r->exit_code, -1);
        envd_command_result_free(r);
        envd_error_free(err);
        envd_handle_free(hs[i]);
        envd_future_free(fs[from + i]);
        fs[from + i] = NULL;
    }
    free(hs);
    free(ks);
}

/* Kills the started commands fs[from..to) (through fx->killer, not the
 * pool under test; KILL_BATCH signals at a time) and waits for each end: a
 * killed process, not a cut stream. */
static void kill_all(pool_fx *fx, envd_future **fs, int from, int to)
{
    for (int b = from; b < to; b += KILL_BATCH)
        kill_batch(fx, fs, b, b + KILL_BATCH < to ? b + KILL_BATCH : to);
}

/* Connections to the server (or gateway) port from the pool under test:
 * all of them less the killer's (its own runtime's channels). */
static int pool_tcp_conns(pool_fx *fx)
{
    size_t kch = 0;
    envd_grpc_engine_pool_stats(fx->rt2->grpc, &kch, NULL);
    int killer = fx->has_gw ? 0 : (int)kch;
    int n = test_tcp_conns_to(fx->port);
    assert_true(n >= 0);
    return n - killer;
}

static void assert_conns(pool_fx *fx, size_t want)
{
    size_t ch = pool_channels(fx->rt, NULL);
    int tcp = pool_tcp_conns(fx);
    fprintf(stderr, "  channels %zu, TCP connections to :%d %d (want %zu)\n", ch, fx->port, tcp,
            want);
    if (tcp != (int)want) { /* who holds them, for the log */
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "ss -tnoi dst 127.0.0.1:%d >&2", fx->port);
        if (system(cmd) != 0)
            fprintf(stderr, "  (ss failed)\n");
    }
    assert_int_equal(ch, want);
    assert_int_equal(tcp, (int)want);
}

/* (a) While 100 long commands hold every stream of the first connection,
 * a Stat, a List and one more Start answer within the 3 s request
 * timeout: they go to a second connection instead of queueing. */
static void calls_pass_long_streams(void **state)
{
    pool_fx *fx = *state;
    fx_start(fx, 0, 0, 0);
    envd_future **fs = start_long(fx, STREAMS);
    assert_int_equal(envd_future_wait_all(fs, STREAMS, START_WAIT_MS), ENVD_OK);
    for (int i = 0; i < STREAMS; i++)
        assert_started(fs[i], i);
    assert_conns(fx, 1);

    envd_error *err = NULL;
    envd_entry_info *info = NULL;
    envd_status st = envd_fs_get_info(fx->c, "/", &info, &err);
    assert_envd_ok(st, err);
    envd_entry_info_free(info);
    envd_process_list *l = NULL;
    st = envd_commands_list(fx->c, &l, &err);
    assert_envd_ok(st, err);
    envd_process_list_free(l);
    static const char *const argv[] = {"sleep", LONG_S, NULL};
    envd_cmd_opts *o = envd_cmd_opts_new();
    assert_int_equal(envd_cmd_opts_set_argv(o, argv), ENVD_OK);
    envd_handle *h = NULL;
    st = envd_commands_start(fx->c, NULL, o, &h, &err); /* the client's 3 s */
    assert_envd_ok(st, err);
    envd_cmd_opts_free(o);
    assert_conns(fx, 2);
    assert_int_equal(envd_handle_kill(h), 1);
    envd_handle_free(h);

    kill_all(fx, fs, 0, STREAMS);
    free(fs);
    assert_pool_clean(fx->rt);
}

/* (b, c) load_runs() long commands at once all report their start while
 * every one of them is still running (one wave, not one per 100), on
 * ceil(n / 100) connections; then they are killed and nothing stays
 * counted. */
static void one_wave(pool_fx *fx, int gw)
{
    fx_start(fx, gw, 0, 0);
    int n = load_runs();
    int64_t t0 = test_now_ms();
    envd_future **fs = start_long(fx, n);
    assert_int_equal(envd_future_wait_all(fs, (size_t)n, START_WAIT_MS), ENVD_OK);
    fprintf(stderr, "  %d starts in %lld ms\n", n, (long long)(test_now_ms() - t0));
    for (int i = 0; i < n; i++)
        assert_started(fs[i], i);
    assert_conns(fx, (size_t)(n + STREAMS - 1) / STREAMS);
    kill_all(fx, fs, 0, n);
    free(fs);
    assert_pool_clean(fx->rt);
}

static void thousand_long_in_one_wave(void **state)
{
    one_wave(*state, 0);
}

static void thousand_long_through_nginx(void **state)
{
    one_wave(*state, 1);
}

/* How many of fs[0..n) completed. */
static int count_done(envd_future **fs, int n)
{
    int k = 0;
    for (int i = 0; i < n; i++)
        k += fs[i] && envd_future_done(fs[i]);
    return k;
}

/* The first few of fs[0..n) that ended with an error, on stderr: what a
 * count that came out wrong was made of. */
static void print_failed(envd_future **fs, int n)
{
    for (int i = 0, shown = 0; i < n && shown < 3; i++)
        if (fs[i] && envd_future_done(fs[i]) && envd_future_status(fs[i]) != ENVD_OK) {
            fprintf(stderr, "  command %d: %s\n", i, envd_error_message(envd_future_error(fs[i])));
            shown++;
        }
}

/* Kills the started commands among fs[0..n) (those done) and waits for
 * each end; returns how many. Moves them to the front of fs first. */
static int kill_done(pool_fx *fx, envd_future **fs, int n)
{
    int k = 0;
    for (int i = 0; i < n; i++) {
        if (fs[i] && envd_future_done(fs[i])) {
            assert_started(fs[i], i);
            envd_future *t = fs[k];
            fs[k++] = fs[i];
            fs[i] = t;
        }
    }
    kill_all(fx, fs, 0, k);
    return k;
}

/* (d) At the ceiling (2 connections of 100 streams), 250 commands: 200
 * start, the other 50 wait on the full connections (over gRPC which 50 is
 * core's choice: a connection sends its queued streams in its own order;
 * over h2c the first 200) and start once the first 200 are killed. */
static void ceiling_queues_the_rest(void **state)
{
    pool_fx *fx = *state;
    fx_start(fx, 0, STREAMS, 2);
    enum { N = 250, FIRST = 200 };
    envd_future **fs = start_long(fx, N);
    for (int64_t end = test_now_ms() + START_WAIT_MS; test_now_ms() < end && count_done(fs, N) < FIRST;)
        usleep(20000);
    /* The queued ones cannot start while every stream is held; give them
     * time to show it if they could. */
    usleep(1000 * 1000);
    if (count_done(fs, N) != FIRST)
        print_failed(fs, N);
    assert_int_equal(count_done(fs, N), FIRST);
    if (g_h2c) /* the engine's own queue is first come, first served */
        assert_int_equal(count_done(fs, FIRST), FIRST);
    assert_conns(fx, 2);
    assert_int_equal(kill_done(fx, fs, N), FIRST);
    for (int64_t end = test_now_ms() + START_WAIT_MS; test_now_ms() < end && count_done(fs, N) < N - FIRST;)
        usleep(20000);
    assert_conns(fx, 2);
    assert_int_equal(kill_done(fx, fs, N), N - FIRST);
    free(fs);
    assert_pool_clean(fx->rt);
}

/* (e) With a short idle period: a connection past the first with a call on
 * it stays however long it is otherwise idle; once its last call ends it
 * is closed, and the first connection stays. */
static void idle_connections_close(void **state)
{
    pool_fx *fx = *state;
    fx_start(fx, 0, 0, 0);
    envd_grpc_engine_set_idle_ms(fx->rt->grpc, 200);
    enum { N = 150 };
    envd_future **fs = start_long(fx, N);
    assert_int_equal(envd_future_wait_all(fs, N, START_WAIT_MS), ENVD_OK);
    for (int i = 0; i < N; i++)
        assert_started(fs[i], i);
    assert_conns(fx, 2);
    /* Calls took connections in order: the last one runs on the second,
     * which must outlive many idle periods while it does. */
    kill_all(fx, fs, 0, N - 1);
    size_t active = 0;
    usleep(1000 * 1000);
    assert_int_equal(pool_channels(fx->rt, &active), 2);
    assert_int_equal(active, 1);
    assert_int_equal(pool_tcp_conns(fx), 2);
    kill_all(fx, fs, N - 1, N); /* its stream was not cut: it reports the kill */
    free(fs);
    assert_pool_clean(fx->rt);
    /* Now the second connection closes; the first stays. */
    size_t ch = 2;
    for (int64_t end = test_now_ms() + 10000; test_now_ms() < end && ch != 1; usleep(20000))
        ch = pool_channels(fx->rt, NULL);
    int tcp = 2;
    for (int64_t end = test_now_ms() + 10000; test_now_ms() < end && tcp != 1; usleep(20000))
        tcp = pool_tcp_conns(fx);
    assert_int_equal(ch, 1);
    assert_int_equal(tcp, 1);
    /* and the pool still serves */
    envd_error *err = NULL;
    envd_entry_info *info = NULL;
    envd_status st = envd_fs_get_info(fx->c, "/", &info, &err);
    assert_envd_ok(st, err);
    envd_entry_info_free(info);
    assert_conns(fx, 1);
}

/* The same over Connect/h2c: the nghttp2 engine's pool. */
static void h2c_calls_pass_long_streams(void **state)
{
    g_h2c = 1;
    calls_pass_long_streams(state);
}

static void h2c_thousand_long_in_one_wave(void **state)
{
    g_h2c = 1;
    one_wave(*state, 0);
}

static void h2c_thousand_long_through_nginx(void **state)
{
    g_h2c = 1;
    one_wave(*state, 1);
}

/* At the ceiling the h2c engine queues in order: the first 200 start. */
static void h2c_ceiling_queues_the_rest(void **state)
{
    g_h2c = 1;
    ceiling_queues_the_rest(state);
}

/* The fixture is stopped here, so that a failed test leaves no server,
 * gateway or process behind. */
static int setup(void **state)
{
    g_h2c = 0;
    *state = calloc(1, sizeof(pool_fx));
    return *state ? 0 : -1;
}

static int teardown(void **state)
{
    pool_fx *fx = *state;
    fx_stop(fx);
    free(fx);
    return 0;
}

int main(void)
{
    if (getenv("ENVD_TEST_FILTER")) /* e.g. ENVD_TEST_FILTER=ceiling_queues_the_rest */
        cmocka_set_test_filter(getenv("ENVD_TEST_FILTER"));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(calls_pass_long_streams, setup, teardown),
        cmocka_unit_test_setup_teardown(thousand_long_in_one_wave, setup, teardown),
        cmocka_unit_test_setup_teardown(thousand_long_through_nginx, setup, teardown),
        cmocka_unit_test_setup_teardown(ceiling_queues_the_rest, setup, teardown),
        cmocka_unit_test_setup_teardown(idle_connections_close, setup, teardown),
        cmocka_unit_test_setup_teardown(h2c_calls_pass_long_streams, setup, teardown),
        cmocka_unit_test_setup_teardown(h2c_thousand_long_in_one_wave, setup, teardown),
        cmocka_unit_test_setup_teardown(h2c_thousand_long_through_nginx, setup, teardown),
        cmocka_unit_test_setup_teardown(h2c_ceiling_queues_the_rest, setup, teardown),
    };
    return cmocka_run_group_tests_name("grpc connection pool (peer allows 100 streams)", tests,
                                       NULL, NULL);
}
