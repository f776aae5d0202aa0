/* The three timeouts of a command, never confused, on gRPC and Connect and
 * through the HTTP/1.1 gateway: the process timeout kills a sleep (and is
 * sent only when asked, only on Start); the request timeout bounds only the
 * start of a stream; the idle timeout is fed by keepalives and fires against
 * a server that stops sending, after which the handle re-attaches. The
 * server is frozen with SIGSTOP to make it stop sending. */
#include "cmd_util.h"

#include <signal.h>

/* keepalive every second; a stream silent for 2.5 s is dead */
static const fx_tuning tuning = {.keepalive_s = 1, .idle_ms = 2500, .request_ms = 20000};

static int setup_grpc(void **state)
{
    return fx_setup(state, FX_GRPC, &tuning);
}
static int setup_connect(void **state)
{
    return fx_setup(state, FX_CONNECT, &tuning);
}
static int setup_gw_h1(void **state)
{
    return fx_setup(state, FX_GW_H1, &tuning);
}
static int teardown(void **state)
{
    return fx_teardown(state);
}

static void freeze(fixture *fx, int on)
{
    if (test_server_signal(&fx->srv, on ? SIGSTOP : SIGCONT) != 0)
        skip();
}

static void process_timeout_kills_a_sleep(void **state)
{
    fixture *fx = *state;
    envd_cmd_opts *o = envd_cmd_opts_new();
    envd_cmd_opts_set_timeout_ms(o, 1000);
    envd_cmd_opts_set_tag(o, "lifetime");
    int64_t t0 = now_ms();
    envd_command_result *r = NULL;
    envd_error *err = NULL;
    envd_status st = envd_commands_run(fx->c, "echo started; sleep 30; echo never", o, &r, &err);
    int64_t took = now_ms() - t0;
    assert_true(took >= 900 && took < 10000);
    /* one outcome whatever the transport: killed, result kept */
    assert_int_equal(st, ENVD_E_COMMAND_EXIT);
    assert_non_null(r);
    assert_int_equal(r->exit_code, -1);
    assert_string_equal(r->stdout_data, "started\n");
    assert_int_equal(envd_error_exit_code(err), -1);
    assert_non_null(strstr(envd_error_message(err), "process timeout of 1000 ms reached: "));
    envd_command_result_free(r);
    envd_error_free(err);

    /* the same through a future */
    envd_future *f = NULL;
    assert_int_equal(envd_commands_run_async(fx->c, "echo again; sleep 30", o, &f), ENVD_OK);
    assert_int_equal(envd_future_wait(f, 10000), ENVD_OK);
    assert_int_equal(envd_future_status(f), ENVD_E_COMMAND_EXIT);
    const envd_command_result *fr = envd_future_command_result(f);
    assert_non_null(fr);
    assert_int_equal(fr->exit_code, -1);
    assert_string_equal(fr->stdout_data, "again\n");
    assert_non_null(strstr(envd_error_message(envd_future_error(f)), "process timeout"));
    envd_future_free(f);
    /* gone (once reaped: the stream may end first) */
    int gone = 0;
    for (int tries = 0; tries < 50 && !gone; tries++) {
        envd_process_list *l = NULL;
        st = envd_commands_list(fx->c, &l, &err);
        assert_envd_ok(st, err);
        gone = 1;
        for (size_t i = 0; i < l->count; i++)
            gone &= strcmp(l->items[i].tag, "lifetime") != 0;
        envd_process_list_free(l);
        if (!gone)
            usleep(100000);
    }
    assert_true(gone);
    assert_int_equal(envd_cmd_opts_set_timeout_ms(o, -1), ENVD_INVALID_ARGUMENT);
    assert_int_equal(envd_cmd_opts_set_timeout_ms(o, 10000000000LL), ENVD_INVALID_ARGUMENT);
    envd_cmd_opts_free(o);
}

/* Nothing but the process timeout may become a process lifetime: not the
 * request timeout, not a custom header, not a timeout in Connect's opts. */
static void only_the_process_timeout_kills(void **state)
{
    fixture *fx = *state;
    fx_tuning t = tuning;
    t.request_ms = 800;
    envd_client *c = fx_client(fx, &t);
    assert_non_null(c);
    envd_command_result *r = NULL;
    envd_error *err = NULL;
    envd_status st = envd_commands_run(c, "sleep 1.5; echo alive", NULL, &r, &err);
    assert_envd_ok(st, err);
    assert_string_equal(r->stdout_data, "alive\n");
    envd_command_result_free(r);
    envd_client_free(c);

    /* a custom Connect-Timeout-Ms header cannot become a lifetime */
    envd_config *cfg = envd_config_new();
    char addr[64];
    int port = fx->route == FX_GW_H1 ? fx->gw.h1_port : fx->srv.port;
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    envd_config_set_domain(cfg, addr);
    envd_config_set_transport(cfg, fx->kind);
    /* refused by the setters (and dropped from every request if one got
     * through: it_headers) */
    assert_int_equal(envd_config_set_header(cfg, "Connect-Timeout-Ms", "300"),
                     ENVD_INVALID_ARGUMENT);
    assert_int_equal(envd_config_set_header(cfg, "Keepalive-Ping-Interval", "0"),
                     ENVD_INVALID_ARGUMENT);
    st = envd_client_new(fx->rt, "sbx-cmd", cfg, &c, &err);
    assert_envd_ok(st, err);
    envd_config_free(cfg);
    st = envd_commands_run(c, "sleep 0.8; echo alive", NULL, &r, &err);
    assert_envd_ok(st, err);
    assert_string_equal(r->stdout_data, "alive\n");
    envd_command_result_free(r);
    envd_client_free(c);

    /* Connect carries no lifetime, whatever its opts say */
    envd_handle *h = NULL;
    st = envd_commands_start(fx->c, "sleep 1; echo finished", NULL, &h, &err);
    assert_envd_ok(st, err);
    envd_cmd_opts *o = envd_cmd_opts_new();
    envd_cmd_opts_set_timeout_ms(o, 200);
    envd_handle *h2 = NULL;
    st = envd_commands_connect(fx->c, ENVD_PID(envd_handle_pid(h)), o, &h2, &err);
    assert_envd_ok(st, err);
    st = envd_handle_wait(h2, 20000, &r, &err);
    assert_envd_ok(st, err);
    assert_string_equal(r->stdout_data, "finished\n");
    envd_command_result_free(r);
    envd_handle_free(h2);
    envd_handle_free(h);
    envd_cmd_opts_free(o);
}

static void keepalives_feed_the_idle_timeout(void **state)
{
    fixture *fx = *state;
    /* 3.5 s without output, idle timeout 2.5 s: the keepalives keep it alive */
    envd_command_result *r = NULL;
    envd_error *err = NULL;
    envd_status st = envd_commands_run(fx->c, "sleep 3.5; echo quiet-but-alive", NULL, &r, &err);
    assert_envd_ok(st, err);
    assert_string_equal(r->stdout_data, "quiet-but-alive\n");
    envd_command_result_free(r);

    /* an idle timeout under the keepalive interval is raised, not obeyed */
    envd_cmd_opts *o = envd_cmd_opts_new();
    envd_cmd_opts_set_idle_timeout_ms(o, 500);
    st = envd_commands_run(fx->c, "sleep 1.5; echo ok", o, &r, &err);
    assert_envd_ok(st, err);
    envd_command_result_free(r);
    envd_cmd_opts_free(o);
}

static void idle_timeout_then_reconnect(void **state)
{
    fixture *fx = *state;
    sink out;
    sink_init(&out, 0);
    envd_cmd_opts *o = envd_cmd_opts_new();
    envd_cmd_opts_on_stdout(o, sink_cb, &out);
    envd_handle *h = NULL;
    envd_error *err = NULL;
    envd_status st =
        envd_commands_start(fx->c, "echo first; sleep 4.5; echo second; sleep 30", o, &h, &err);
    assert_envd_ok(st, err);
    assert_true(sink_wait_for(&out, "first\n", 5000));
    freeze(fx, 1);
    int64_t t0 = now_ms();
    envd_command_result *r = NULL;
    st = envd_handle_wait(h, 15000, &r, &err);
    int64_t took = now_ms() - t0;
    freeze(fx, 0);
    assert_int_equal(st, ENVD_E_IDLE_TIMEOUT);
    assert_null(r);
    assert_true(took >= 1500 && took < 8000);
    assert_non_null(strstr(envd_error_message(err), "stream error: "));
    envd_error_free(err);

    /* the process lived on; the handle re-attaches with its callbacks */
    envd_handle *h2 = NULL;
    st = envd_handle_reconnect(h, &h2, &err);
    assert_envd_ok(st, err);
    assert_int_equal(envd_handle_pid(h2), envd_handle_pid(h));
    assert_true(sink_wait_for(&out, "second\n", 15000));
    assert_int_equal(envd_handle_kill(h2), 1);
    st = envd_handle_wait(h2, 20000, &r, &err);
    assert_int_equal(st, ENVD_E_COMMAND_EXIT);
    assert_int_equal(r->exit_code, -1);
    assert_string_equal(r->stdout_data, "second\n");
    envd_command_result_free(r);
    envd_error_free(err);
    envd_handle_free(h2);
    envd_handle_free(h);
    envd_cmd_opts_free(o);
    sink_free(&out);
}

static void request_timeout_bounds_the_start(void **state)
{
    fixture *fx = *state;
    envd_cmd_opts *o = envd_cmd_opts_new();
    envd_cmd_opts_set_request_timeout_ms(o, 1000);
    envd_cmd_opts_set_idle_timeout_ms(o, 0);
    /* warm the connection up, then freeze the server */
    envd_command_result *r = NULL;
    envd_error *err = NULL;
    envd_status st = envd_commands_run(fx->c, "true", o, &r, &err);
    assert_envd_ok(st, err);
    envd_command_result_free(r);
    freeze(fx, 1);
    int64_t t0 = now_ms();
    envd_handle *h = NULL;
    st = envd_commands_start(fx->c, "true", o, &h, &err);
    int64_t took = now_ms() - t0;
    freeze(fx, 0);
    assert_int_equal(st, ENVD_DEADLINE_EXCEEDED);
    assert_null(h);
    assert_true(took >= 900 && took < 5000);
    assert_non_null(strstr(envd_error_message(err), "failed to start command: "));
    envd_error_free(err);
    envd_cmd_opts_free(o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(process_timeout_kills_a_sleep),
        cmocka_unit_test(only_the_process_timeout_kills),
        cmocka_unit_test(keepalives_feed_the_idle_timeout),
        cmocka_unit_test(idle_timeout_then_reconnect),
        cmocka_unit_test(request_timeout_bounds_the_start),
    };
    int failed = 0;
    failed += cmocka_run_group_tests_name("grpc (h2c; envd-compatible server, not stock envd)",
                                          tests, setup_grpc, teardown);
    failed += cmocka_run_group_tests_name("connect (http/1.1)", tests, setup_connect, teardown);
    failed +=
        cmocka_run_group_tests_name("gateway http/1.1 (connect)", tests, setup_gw_h1, teardown);
    return failed;
}
