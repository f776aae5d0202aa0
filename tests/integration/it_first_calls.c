/* The first calls end to end on every transport, sync and async: Stat,
 * exists, List, Run, /files write and read, and errors a user meets. */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct fixture {
    test_server srv;
    envd_runtime *rt;
    envd_client *c;
    envd_transport_kind kind;
    int h2;
} fixture;

static int setup(void **state, const char *http, envd_transport_kind kind)
{
    fixture *fx = calloc(1, sizeof(*fx));
    if (test_server_start(&fx->srv, http, NULL) != 0)
        return -1;
    if (envd_runtime_new(NULL, &fx->rt) != ENVD_OK)
        return -1;
    fx->kind = kind;
    fx->h2 = strcmp(http, "both") == 0;
    fx->c = test_client(fx->rt, &fx->srv, kind, NULL);
    *state = fx;
    return fx->c ? 0 : -1;
}

static int setup_grpc(void **state) { return setup(state, "both", ENVD_TRANSPORT_GRPC); }
static int setup_connect(void **state) { return setup(state, "h1", ENVD_TRANSPORT_CONNECT); }
static int setup_auto_h1(void **state) { return setup(state, "h1", ENVD_TRANSPORT_AUTO); }
static int setup_auto_h2(void **state) { return setup(state, "both", ENVD_TRANSPORT_AUTO); }

static int teardown(void **state)
{
    fixture *fx = *state;
    if (!fx)
        return 0;
    envd_client_free(fx->c);
    envd_runtime_free(fx->rt);
    test_server_stop(&fx->srv);
    free(fx);
    return 0;
}

static void stat_and_exists(void **state)
{
    fixture *fx = *state;
    envd_error *err = NULL;
    envd_entry_info *e = NULL;
    envd_status st = envd_fs_get_info(fx->c, "/", &e, &err);
    assert_envd_ok(st, err);
    assert_int_equal(e->type, ENVD_FILE_TYPE_DIRECTORY);
    assert_string_equal(e->path, "/");
    envd_entry_info_free(e);

    st = envd_fs_get_info(fx->c, "/no/such/file", &e, &err);
    assert_int_equal(st, ENVD_NOT_FOUND);
    assert_null(e);
    assert_non_null(err);
    assert_non_null(strstr(envd_error_message(err), "not found"));
    envd_error_free(err);

    int exists = -1;
    st = envd_fs_exists(fx->c, "/no/such/file", &exists, &err);
    assert_int_equal(st, ENVD_OK);
    assert_int_equal(exists, 0);
    st = envd_fs_exists(fx->c, "/", &exists, &err);
    assert_envd_ok(st, err);
    assert_int_equal(exists, 1);

    /* after a call the transport is known: auto picked what the endpoint
     * speaks (gRPC on h2c, Connect on an HTTP/1.1-only server) */
    envd_transport_kind want = fx->kind;
    if (want == ENVD_TRANSPORT_AUTO)
        want = fx->h2 ? ENVD_TRANSPORT_GRPC : ENVD_TRANSPORT_CONNECT;
    assert_int_equal(envd_client_transport(fx->c), want);
}

static void run_outputs_and_exit_codes(void **state)
{
    fixture *fx = *state;
    envd_command_result *r = NULL;
    envd_error *err = NULL;
    envd_status st = envd_commands_run(fx->c, "echo hello; echo oops >&2", NULL, &r, &err);
    assert_envd_ok(st, err);
    size_t n;
    assert_string_equal((n = r->stdout_len, r->stdout_data), "hello\n");
    assert_int_equal(n, 6);
    assert_string_equal(r->stderr_data, "oops\n");
    assert_int_equal(r->exit_code, 0);
    assert_string_equal(r->error, "");
    envd_command_result_free(r);

    /* non-zero exit: the result and a command-exit error, both */
    st = envd_commands_run(fx->c, "echo out; echo bad >&2; exit 3", NULL, &r, &err);
    assert_int_equal(st, ENVD_E_COMMAND_EXIT);
    assert_non_null(r);
    assert_non_null(err);
    assert_int_equal(r->exit_code, 3);
    assert_string_equal(r->stdout_data, "out\n");
    assert_int_equal(envd_error_exit_code(err), 3);
    assert_string_equal(envd_error_message(err),
                        "command exited with code 3: exit status 3\nstderr: bad\n");
    envd_command_result_free(r);
    envd_error_free(err);

    st = envd_commands_run(fx->c, "no-such-command-xyz", NULL, &r, &err);
    assert_int_equal(st, ENVD_E_COMMAND_EXIT);
    assert_int_equal(r->exit_code, 127);
    envd_command_result_free(r);
    envd_error_free(err);
}

static void run_many_async(void **state)
{
    fixture *fx = *state;
    enum { N = 64 };
    envd_future *fs[N];
    for (int i = 0; i < N; i++) {
        char cmd[64];
        snprintf(cmd, sizeof(cmd), "echo run-%d", i);
        assert_int_equal(envd_commands_run_async(fx->c, cmd, NULL, &fs[i]), ENVD_OK);
    }
    assert_int_equal(envd_future_wait_all(fs, N, 60000), ENVD_OK);
    for (int i = 0; i < N; i++) {
        char want[64];
        snprintf(want, sizeof(want), "run-%d\n", i);
        if (envd_future_status(fs[i]) != ENVD_OK)
            fail_msg("run %d: %s", i, envd_error_message(envd_future_error(fs[i])));
        const envd_command_result *r = envd_future_command_result(fs[i]);
        assert_non_null(r);
        assert_string_equal(r->stdout_data, want);
        envd_future_free(fs[i]);
    }
}

static void list_sees_a_running_process(void **state)
{
    fixture *fx = *state;
    envd_error *err = NULL;
    envd_handle *h = NULL;
    envd_status st = envd_commands_start(fx->c, "sleep 30", NULL, &h, &err);
    assert_envd_ok(st, err);
    uint32_t pid = envd_handle_pid(h);
    assert_true(pid > 0);
    envd_process_list *l = NULL;
    st = envd_commands_list(fx->c, &l, &err);
    assert_envd_ok(st, err);
    int seen = 0;
    for (size_t i = 0; i < l->count; i++) {
        if (l->items[i].pid == pid) {
            seen = 1;
            assert_string_equal(l->items[i].cmd, "/bin/bash");
            assert_int_equal(l->items[i].n_args, 3);
            assert_string_equal(l->items[i].args[2], "sleep 30");
        }
    }
    envd_process_list_free(l);
    assert_true(seen);
    assert_int_equal(envd_handle_kill(h), 1);
    envd_command_result *r = NULL;
    st = envd_handle_wait(h, 20000, &r, &err);
    assert_int_equal(st, ENVD_E_COMMAND_EXIT);
    assert_int_equal(r->exit_code, -1); /* killed by a signal */
    envd_command_result_free(r);
    envd_error_free(err);
    envd_handle_free(h);
    int killed = 1;
    st = envd_commands_kill(fx->c, ENVD_PID(999999), &killed, &err);
    assert_envd_ok(st, err);
    assert_int_equal(killed, 0);
}

static void files_round_trip(void **state)
{
    fixture *fx = *state;
    envd_error *err = NULL;
    const char *text = "hello, files\n";
    const char *path = "/tmp/dir with space/a&b?#%.txt";
    envd_status st = envd_files_write(fx->c, path, text, strlen(text), NULL, NULL, &err);
    assert_envd_ok(st, err);
    uint8_t *data = NULL;
    size_t len = 0;
    st = envd_files_read(fx->c, path, NULL, &data, &len, &err);
    assert_envd_ok(st, err);
    assert_int_equal(len, strlen(text));
    assert_memory_equal(data, text, len);
    free(data);

    envd_future *f;
    assert_int_equal(envd_files_read_async(fx->c, "/tmp/missing.txt", NULL, &f), ENVD_OK);
    envd_future_wait(f, -1);
    assert_int_equal(envd_future_status(f), ENVD_NOT_FOUND);
    assert_string_equal(envd_error_message(envd_future_error(f)),
                        "file not found: /tmp/missing.txt");
    assert_int_equal(envd_error_http_status(envd_future_error(f)), 404);
    envd_future_free(f);
}

int main(void)
{
    const struct CMUnitTest grpc[] = {
        cmocka_unit_test(stat_and_exists), cmocka_unit_test(run_outputs_and_exit_codes),
        cmocka_unit_test(run_many_async), cmocka_unit_test(list_sees_a_running_process),
        cmocka_unit_test(files_round_trip),
    };
    int failed = 0;
    failed += cmocka_run_group_tests_name("grpc (h2c; envd-compatible server, not stock envd)",
                                          grpc, setup_grpc, teardown);
    failed += cmocka_run_group_tests_name("connect (http/1.1)", grpc, setup_connect, teardown);
    failed += cmocka_run_group_tests_name("auto on http/1.1", grpc, setup_auto_h1, teardown);
    failed += cmocka_run_group_tests_name("auto on h2c (envd-compatible server)",
                                          grpc, setup_auto_h2, teardown);
    return failed;
}
