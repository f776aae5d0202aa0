/* Cancel means stop, on gRPC and Connect: cancelling run futures (before
 * and after their pid is known) kills the processes; freeing the runtime
 * with runs in flight kills them too; a detached run and a delivered start
 * handle keep running. Checked from envd's own process list. */
#include "cmd_util.h"

#define RUNS 100

static int setup_grpc(void **state)
{
    return fx_setup(state, FX_GRPC, NULL);
}
static int setup_connect(void **state)
{
    return fx_setup(state, FX_CONNECT, NULL);
}
static int teardown(void **state)
{
    return fx_teardown(state);
}

/* How many processes carry tag, after waiting up to ms for it to drop to
 * zero (kills are asynchronous, and envd reaps after the signal). */
static size_t alive_with_tag(envd_client *c, const char *tag, int ms)
{
    size_t alive = 0;
    for (int waited = 0; waited <= ms; waited += 100) {
        envd_process_list *l = NULL;
        envd_error *err = NULL;
        envd_status st = envd_commands_list(c, &l, &err);
        assert_envd_ok(st, err);
        alive = 0;
        for (size_t i = 0; i < l->count; i++)
            alive += strcmp(l->items[i].tag, tag) == 0;
        envd_process_list_free(l);
        if (!alive)
            break;
        usleep(100000);
    }
    return alive;
}

static envd_cmd_opts *tagged(const char *tag, int detach)
{
    envd_cmd_opts *o = envd_cmd_opts_new();
    assert_non_null(o);
    assert_int_equal(envd_cmd_opts_set_tag(o, tag), ENVD_OK);
    assert_int_equal(envd_cmd_opts_set_detach(o, detach), ENVD_OK);
    return o;
}

static int wait_pid(envd_future *f, int ms)
{
    for (int waited = 0; waited <= ms && !envd_future_pid(f); waited += 10)
        usleep(10000);
    return envd_future_pid(f) != 0;
}

static void cancelled_runs_are_killed(void **state)
{
    fixture *fx = *state;
    char tag[64];
    snprintf(tag, sizeof(tag), "cancel-%d-%d", (int)getpid(), fx->route);
    envd_cmd_opts *o = tagged(tag, 0);
    envd_future *fs[RUNS];
    for (int i = 0; i < RUNS; i++)
        assert_int_equal(envd_commands_run_async(fx->c, "sleep 30", o, &fs[i]), ENVD_OK);
    /* half at once (most before their start event), half once running */
    for (int i = 0; i < RUNS; i += 2)
        envd_future_cancel(fs[i]);
    for (int i = 1; i < RUNS; i += 2) {
        assert_true(wait_pid(fs[i], 20000));
        envd_future_cancel(fs[i]);
    }
    assert_int_equal(envd_future_wait_all(fs, RUNS, 20000), ENVD_OK);
    for (int i = 0; i < RUNS; i++) {
        assert_int_equal(envd_future_status(fs[i]), ENVD_CANCELED);
        envd_future_free(fs[i]);
    }
    assert_int_equal(alive_with_tag(fx->c, tag, 10000), 0);

    /* a start cancelled before its handle came: killed, no handle */
    envd_future *ss[10];
    for (int i = 0; i < 10; i++)
        assert_int_equal(envd_commands_start_async(fx->c, "sleep 30", o, &ss[i]), ENVD_OK);
    for (int i = 0; i < 10; i++) {
        if (i % 2)
            assert_true(wait_pid(ss[i], 20000));
        envd_future_cancel(ss[i]);
    }
    assert_int_equal(envd_future_wait_all(ss, 10, 20000), ENVD_OK);
    for (int i = 0; i < 10; i++) {
        /* the odd ones may have been delivered first: then the handle is ours */
        envd_handle *h = envd_future_take_handle(ss[i]);
        if (h) { /* (the cancel may have killed it already) */
            envd_handle_kill(h);
            envd_handle_free(h);
        } else {
            assert_int_equal(envd_future_status(ss[i]), ENVD_CANCELED);
        }
        envd_future_free(ss[i]);
    }
    assert_int_equal(alive_with_tag(fx->c, tag, 10000), 0);

    /* freeing a pending run future is a cancel too */
    envd_future *f = NULL;
    assert_int_equal(envd_commands_run_async(fx->c, "sleep 30", o, &f), ENVD_OK);
    assert_true(wait_pid(f, 20000));
    envd_future_free(f);
    assert_int_equal(alive_with_tag(fx->c, tag, 10000), 0);
    envd_cmd_opts_free(o);
}

static void detached_and_started_keep_running(void **state)
{
    fixture *fx = *state;
    char tag[64];
    snprintf(tag, sizeof(tag), "detach-%d-%d", (int)getpid(), fx->route);
    envd_cmd_opts *o = tagged(tag, 1);
    envd_future *f = NULL;
    assert_int_equal(envd_commands_run_async(fx->c, "sleep 30", o, &f), ENVD_OK);
    assert_true(wait_pid(f, 20000));
    envd_future_cancel(f);
    assert_int_equal(envd_future_wait(f, 20000), ENVD_OK);
    assert_int_equal(envd_future_status(f), ENVD_CANCELED);
    envd_future_free(f);
    /* a start's handle, once delivered, is the caller's: freeing it disconnects */
    envd_cmd_opts *so = tagged(tag, 0);
    envd_handle *h = NULL;
    envd_error *err = NULL;
    envd_status st = envd_commands_start(fx->c, "sleep 30", so, &h, &err);
    assert_envd_ok(st, err);
    envd_handle_free(h);
    usleep(300000);
    envd_process_list *l = NULL;
    st = envd_commands_list(fx->c, &l, &err);
    assert_envd_ok(st, err);
    int alive = 0;
    for (size_t i = 0; i < l->count; i++) {
        if (strcmp(l->items[i].tag, tag) != 0)
            continue;
        alive++;
        int killed = 0;
        st = envd_commands_kill(fx->c, ENVD_PID(l->items[i].pid), &killed, &err);
        assert_envd_ok(st, err);
        assert_int_equal(killed, 1);
    }
    envd_process_list_free(l);
    assert_int_equal(alive, 2);
    assert_int_equal(alive_with_tag(fx->c, tag, 10000), 0);
    envd_cmd_opts_free(so);
    envd_cmd_opts_free(o);
}

/* N runs of `sleep 30` on a runtime of their own, pids known; then (when
 * cancel_first) every future is cancelled and freed, and the runtime is freed
 * at once. Either way no process may survive: freeing the runtime kills
 * runs in flight, and must not drop the fire-and-forget kills that cancels
 * sent (envdctl batch does exactly this on Ctrl-C). */
static void free_runtime_with_runs(fixture *fx, const char *what, int cancel_first)
{
    char tag[64];
    snprintf(tag, sizeof(tag), "%s-%d-%d", what, (int)getpid(), fx->route);
    envd_runtime *rt = NULL;
    assert_int_equal(envd_runtime_new(NULL, &rt), ENVD_OK);
    envd_runtime *keep = fx->rt;
    fx->rt = rt;
    envd_client *c = fx_client(fx, NULL);
    fx->rt = keep;
    assert_non_null(c);
    envd_cmd_opts *o = tagged(tag, 0);
    enum { N = 20 };
    envd_future *fs[N];
    for (int i = 0; i < N; i++) {
        assert_int_equal(envd_commands_run_async(c, "sleep 30", o, &fs[i]), ENVD_OK);
        assert_true(wait_pid(fs[i], 20000));
    }
    assert_int_equal(alive_with_tag(fx->c, tag, 0), N);
    for (int i = 0; cancel_first && i < N; i++) {
        envd_future_cancel(fs[i]);
        envd_future_free(fs[i]);
    }
    envd_client_free(c); /* the caller's; the runs keep what they need */
    assert_int_equal(envd_runtime_free(rt), ENVD_OK);
    for (int i = 0; !cancel_first && i < N; i++) {
        assert_true(envd_future_done(fs[i]));
        envd_future_free(fs[i]);
    }
    assert_int_equal(alive_with_tag(fx->c, tag, 10000), 0);
    envd_cmd_opts_free(o);
}

static void runtime_free_kills_runs(void **state)
{
    free_runtime_with_runs(*state, "rtfree", 0);
}

static void cancel_then_runtime_free(void **state)
{
    free_runtime_with_runs(*state, "cxfree", 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(cancelled_runs_are_killed, setup_grpc, teardown),
        cmocka_unit_test_setup_teardown(cancelled_runs_are_killed, setup_connect, teardown),
        cmocka_unit_test_setup_teardown(detached_and_started_keep_running, setup_grpc, teardown),
        cmocka_unit_test_setup_teardown(detached_and_started_keep_running, setup_connect,
                                        teardown),
        cmocka_unit_test_setup_teardown(runtime_free_kills_runs, setup_grpc, teardown),
        cmocka_unit_test_setup_teardown(runtime_free_kills_runs, setup_connect, teardown),
        cmocka_unit_test_setup_teardown(cancel_then_runtime_free, setup_grpc, teardown),
        cmocka_unit_test_setup_teardown(cancel_then_runtime_free, setup_connect, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
