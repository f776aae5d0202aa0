/* Commands end to end, as a user calls them, on gRPC and Connect, straight
 * to the reference server and through the HTTP/1.1 gateway: exit codes,
 * signals, output (interleaved, unicode, binary, capped), envs, cwd, users,
 * argv, stdin (unary, ordered stream, EOF), tags, kill of unknown
 * processes, disconnect and re-attach, PTY sessions, futures, and
 * different methods back to back on one connection. */
#include "cmd_util.h"

static int setup_grpc(void **state)
{
    return fx_setup(state, FX_GRPC, NULL);
}
static int setup_connect(void **state)
{
    return fx_setup(state, FX_CONNECT, NULL);
}
static int setup_gw_h1(void **state)
{
    return fx_setup(state, FX_GW_H1, NULL);
}
static int setup_gw_tls(void **state)
{
    return fx_setup(state, FX_GW_TLS, NULL);
}
static int setup_gw_grpc(void **state)
{
    return fx_setup(state, FX_GW_GRPC, NULL);
}
static int setup_h2c(void **state)
{
    return fx_setup(state, FX_H2C, NULL);
}
static int teardown(void **state)
{
    return fx_teardown(state);
}

static envd_command_result *run_ok(envd_client *c, const char *cmd, const envd_cmd_opts *o)
{
    envd_command_result *r = NULL;
    envd_error *err = NULL;
    envd_status st = envd_commands_run(c, cmd, o, &r, &err);
    assert_envd_ok(st, err);
    assert_non_null(r);
    return r;
}

static void exit_codes(void **state)
{
    fixture *fx = *state;
    envd_command_result *r = run_ok(fx->c, "echo zero", NULL);
    assert_int_equal(r->exit_code, 0);
    assert_string_equal(r->stdout_data, "zero\n");
    assert_string_equal(r->error, "");
    envd_command_result_free(r);

    envd_error *err = NULL;
    envd_status st = envd_commands_run(fx->c, "echo one; echo why >&2; exit 1", NULL, &r, &err);
    assert_int_equal(st, ENVD_E_COMMAND_EXIT);
    assert_non_null(r);
    assert_int_equal(r->exit_code, 1);
    assert_string_equal(r->stdout_data, "one\n");
    assert_string_equal(r->stderr_data, "why\n");
    assert_string_equal(r->error, "exit status 1");
    assert_int_equal(envd_error_code(err), ENVD_E_COMMAND_EXIT);
    assert_int_equal(envd_error_exit_code(err), 1);
    assert_string_equal(envd_error_message(err),
                        "command exited with code 1: exit status 1\nstderr: why\n");
    envd_command_result_free(r);
    envd_error_free(err);

    st = envd_commands_run(fx->c, "definitely-not-a-command-42", NULL, &r, &err);
    assert_int_equal(st, ENVD_E_COMMAND_EXIT);
    assert_int_equal(r->exit_code, 127);
    assert_non_null(strstr(r->stderr_data, "not found"));
    assert_int_equal(envd_error_exit_code(err), 127);
    envd_command_result_free(r);
    envd_error_free(err);

    /* the same through the future */
    envd_future *f = NULL;
    assert_int_equal(envd_commands_run_async(fx->c, "exit 3", NULL, &f), ENVD_OK);
    assert_int_equal(envd_future_wait(f, 20000), ENVD_OK);
    assert_int_equal(envd_future_status(f), ENVD_E_COMMAND_EXIT);
    assert_int_equal((envd_future_command_result(f))->exit_code, 3);
    assert_int_equal(envd_error_exit_code(envd_future_error(f)), 3);
    envd_future_free(f);
}

static void killed_by_signals(void **state)
{
    fixture *fx = *state;
    envd_error *err = NULL;
    envd_handle *h = NULL;
    envd_status st = envd_commands_start(fx->c, "sleep 30", NULL, &h, &err);
    assert_envd_ok(st, err);
    int64_t t0 = now_ms();
    assert_int_equal(envd_handle_kill(h), 1);
    envd_command_result *r = NULL;
    st = envd_handle_wait(h, 20000, &r, &err);
    assert_int_equal(st, ENVD_E_COMMAND_EXIT);
    assert_int_equal(r->exit_code, -1);
    assert_string_equal(r->error, "signal: killed");
    assert_int_equal(envd_error_exit_code(err), -1);
    assert_true(now_ms() - t0 < 10000);
    envd_command_result_free(r);
    envd_error_free(err);
    /* killing it again: gone, not an error */
    assert_int_equal(envd_handle_kill(h), 0);
    envd_handle_free(h);

    /* SIGTERM */
    st = envd_commands_start(fx->c, "sleep 30", NULL, &h, &err);
    assert_envd_ok(st, err);
    int sent = 0;
    st = envd_commands_signal(fx->c, ENVD_PID(envd_handle_pid(h)), ENVD_SIGNAL_SIGTERM, &sent, &err);
    assert_envd_ok(st, err);
    assert_int_equal(sent, 1);
    st = envd_handle_wait(h, 20000, &r, &err);
    assert_int_equal(st, ENVD_E_COMMAND_EXIT);
    assert_int_equal(r->exit_code, -1);
    assert_string_equal(r->error, "signal: terminated");
    envd_command_result_free(r);
    envd_error_free(err);
    envd_handle_free(h);

    /* a signal envd does not support: its answer, as an error */
    st = envd_commands_start(fx->c, "sleep 30", NULL, &h, &err);
    assert_envd_ok(st, err);
    st = envd_commands_signal(fx->c, ENVD_PID(envd_handle_pid(h)), (envd_signal)2, &sent, &err);
    assert_int_equal(st, ENVD_UNIMPLEMENTED);
    assert_non_null(strstr(envd_error_message(err), "failed to send signal: "));
    envd_error_free(err);
    envd_future *kf = NULL;
    assert_int_equal(envd_commands_signal_async(fx->c, ENVD_PID(envd_handle_pid(h)), ENVD_SIGNAL_SIGKILL, &kf), ENVD_OK);
    assert_int_equal(envd_future_wait(kf, 20000), ENVD_OK);
    assert_int_equal(envd_future_status(kf), ENVD_OK);
    assert_int_equal(envd_future_bool(kf), 1);
    envd_future_free(kf);
    st = envd_handle_wait(h, 20000, NULL, NULL);
    assert_int_equal(st, ENVD_E_COMMAND_EXIT);
    envd_handle_free(h);
}

static void interleaved_output(void **state)
{
    fixture *fx = *state;
    sink out, errs;
    sink_init(&out, 0);
    sink_init(&errs, 0);
    envd_cmd_opts *o = envd_cmd_opts_new();
    envd_cmd_opts_on_stdout(o, sink_cb, &out);
    envd_cmd_opts_on_stderr(o, sink_cb, &errs);
    envd_command_result *r =
        run_ok(fx->c, "for i in $(seq 1 300); do echo out$i; echo err$i >&2; done", o);
    char want_out[8192] = "", want_err[8192] = "";
    for (int i = 1; i <= 300; i++) {
        char line[32];
        snprintf(line, sizeof(line), "out%d\n", i);
        strcat(want_out, line);
        snprintf(line, sizeof(line), "err%d\n", i);
        strcat(want_err, line);
    }
    /* order is kept within each stream, and callbacks see what the result
     * keeps */
    assert_string_equal(r->stdout_data, want_out);
    assert_string_equal(r->stderr_data, want_err);
    assert_string_equal(out.buf, want_out);
    assert_string_equal(errs.buf, want_err);
    assert_true(out.calls >= 1 && errs.calls >= 1);
    envd_command_result_free(r);
    envd_cmd_opts_free(o);
    sink_free(&out);
    sink_free(&errs);
}

static void unicode_and_binary_output(void **state)
{
    fixture *fx = *state;
    envd_command_result *r =
        run_ok(fx->c, "printf 'h\\xc3\\xa9llo \\xe2\\x9c\\x93 \\xf0\\x9f\\x9a\\x80\\n'", NULL);
    assert_string_equal(r->stdout_data,
                        "h\xc3\xa9llo \xe2\x9c\x93 \xf0\x9f\x9a\x80\n");
    envd_command_result_free(r);

    /* every byte value, NUL and invalid UTF-8 included, on both streams */
    sink out;
    sink_init(&out, 0);
    envd_cmd_opts *o = envd_cmd_opts_new();
    envd_cmd_opts_on_stdout(o, sink_cb, &out);
    r = run_ok(fx->c,
               "for i in $(seq 0 255); do printf \"\\\\$(printf %03o $i)\"; done; "
               "printf '\\000\\377\\376' >&2",
               o);
    size_t n;
    const char *bytes = (n = r->stdout_len, r->stdout_data);
    assert_int_equal(n, 256);
    for (int i = 0; i < 256; i++)
        assert_int_equal((unsigned char)bytes[i], i);
    assert_int_equal(out.len, 256);
    assert_memory_equal(out.buf, bytes, 256);
    const char *eb = (n = r->stderr_len, r->stderr_data);
    assert_int_equal(n, 3);
    assert_memory_equal(eb, "\0\377\376", 3);
    envd_command_result_free(r);
    envd_cmd_opts_free(o);
    sink_free(&out);
}

static void capped_output(void **state)
{
    fixture *fx = *state;
    sink out;
    sink_init(&out, 16);
    envd_cmd_opts *o = envd_cmd_opts_new();
    envd_cmd_opts_on_stdout(o, sink_cb, &out);
    envd_cmd_opts_set_max_output(o, 1000);
    envd_command_result *r = run_ok(fx->c, "head -c 300000 /dev/zero | tr '\\0' x; echo e >&2", o);
    assert_int_equal(r->stdout_len, 1000);
    assert_true(r->truncated);
    assert_string_equal(r->stderr_data, "e\n");
    assert_int_equal(out.total, 300000); /* the callback saw everything */
    envd_command_result_free(r);

    envd_cmd_opts_set_max_output(o, 0);
    r = run_ok(fx->c, "echo hidden", o);
    assert_int_equal(r->stdout_len, 0);
    assert_string_equal(r->stdout_data, "");
    assert_true(r->truncated);
    envd_command_result_free(r);
    envd_cmd_opts_free(o);
    sink_free(&out);
}

static void envs_cwd_user(void **state)
{
    fixture *fx = *state;
    envd_cmd_opts *o = envd_cmd_opts_new();
    envd_cmd_opts_set_env(o, "GREETING", "hi there");
    envd_cmd_opts_set_env(o, "EMPTY", "");
    envd_cmd_opts_set_cwd(o, "/tmp");
    envd_command_result *r =
        run_ok(fx->c, "echo \"$GREETING|${EMPTY-unset}|$(basename $(pwd))|$USER\"", o);
    assert_string_equal(r->stdout_data, "hi there||tmp|root\n");
    envd_command_result_free(r);

    /* per-command user, as envd reads it (Basic auth) */
    envd_cmd_opts_set_user(o, "user");
    envd_cmd_opts_set_cwd(o, NULL);
    r = run_ok(fx->c, "echo $USER $(basename $HOME)", o);
    assert_string_equal(r->stdout_data, "user user\n");
    envd_command_result_free(r);
    assert_int_equal(envd_cmd_opts_set_user(o, "a:b"), ENVD_INVALID_ARGUMENT);

    /* a missing cwd fails the start: the call's error, wrapped */
    envd_cmd_opts_set_user(o, NULL);
    envd_cmd_opts_set_cwd(o, "/no/such/dir");
    envd_error *err = NULL;
    envd_status st = envd_commands_run(fx->c, "true", o, &r, &err);
    assert_int_equal(st, ENVD_INVALID_ARGUMENT);
    assert_null(r);
    assert_non_null(strstr(envd_error_message(err), "failed to start command: "));
    envd_error_free(err);
    envd_handle *h = NULL;
    st = envd_commands_start(fx->c, "true", o, &h, &err);
    assert_int_equal(st, ENVD_INVALID_ARGUMENT);
    assert_null(h);
    envd_error_free(err);

    /* list: pid, tag, cmd, args, envs, cwd */
    envd_cmd_opts_set_cwd(o, "/tmp");
    envd_cmd_opts_set_tag(o, "listed");
    st = envd_commands_start(fx->c, "sleep 30", o, &h, &err);
    assert_envd_ok(st, err);
    envd_future *lf = NULL;
    assert_int_equal(envd_commands_list_async(fx->c, &lf), ENVD_OK);
    assert_int_equal(envd_future_wait(lf, 20000), ENVD_OK);
    const envd_process_list *l = envd_future_process_list(lf);
    assert_non_null(l);
    int seen = 0;
    for (size_t i = 0; i < l->count; i++) {
        if (l->items[i].pid != envd_handle_pid(h))
            continue;
        seen = 1;
        assert_string_equal(l->items[i].tag, "listed");
        assert_string_equal(l->items[i].cmd, "/bin/bash");
        assert_int_equal(l->items[i].n_args, 3);
        assert_string_equal(l->items[i].args[0], "-l");
        assert_string_equal(l->items[i].args[2], "sleep 30");
        assert_string_equal(l->items[i].cwd, "/tmp");
        assert_int_equal(l->items[i].n_envs, 2);
        int names = 0;
        for (size_t j = 0; j < 2; j++) {
            const envd_kv *e = &l->items[i].envs[j];
            names += strcmp(e->name, "GREETING") == 0 && strcmp(e->value, "hi there") == 0;
            names += strcmp(e->name, "EMPTY") == 0 && strcmp(e->value, "") == 0;
        }
        assert_int_equal(names, 2);
    }
    assert_true(seen);
    envd_future_free(lf);
    assert_int_equal(envd_handle_kill(h), 1);
    envd_handle_wait(h, 20000, NULL, NULL);
    envd_handle_free(h);
    envd_cmd_opts_free(o);
}

static void argv_without_shell(void **state)
{
    fixture *fx = *state;
    const char *const argv[] = {"/bin/echo", "a  b", "$HOME", "'q'", NULL};
    envd_command_result *r = NULL;
    envd_error *err = NULL;
    envd_cmd_opts *o = envd_cmd_opts_new();
    assert_int_equal(envd_cmd_opts_set_argv(o, argv), ENVD_OK);
    envd_status st = envd_commands_run(fx->c, NULL, o, &r, &err);
    assert_envd_ok(st, err);
    assert_string_equal(r->stdout_data, "a  b $HOME 'q'\n");
    envd_command_result_free(r);

    const char *const missing[] = {"/no/such/program", NULL};
    assert_int_equal(envd_cmd_opts_set_argv(o, missing), ENVD_OK);
    st = envd_commands_run(fx->c, NULL, o, &r, &err);
    if (st == ENVD_E_COMMAND_EXIT) /* the peer's sh reports it: 127 */
        assert_int_equal(r->exit_code, 127);
    else /* envd's exec fails the start */
        assert_int_equal(st, ENVD_INVALID_ARGUMENT);
    envd_command_result_free(r);
    envd_error_free(err);

    const char *const sleeper[] = {"sleep", "30", NULL};
    envd_handle *h = NULL;
    assert_int_equal(envd_cmd_opts_set_argv(o, sleeper), ENVD_OK);
    st = envd_commands_start(fx->c, NULL, o, &h, &err);
    assert_envd_ok(st, err);
    envd_process_list *l = NULL;
    st = envd_commands_list(fx->c, &l, &err);
    assert_envd_ok(st, err);
    int seen = 0;
    for (size_t i = 0; i < l->count; i++)
        if (l->items[i].pid == envd_handle_pid(h)) {
            seen = 1;
            assert_string_equal(l->items[i].cmd, "sleep");
            assert_int_equal(l->items[i].n_args, 1);
        }
    assert_true(seen);
    envd_process_list_free(l);
    assert_int_equal(envd_handle_kill(h), 1);
    envd_handle_free(h);

    /* a cmd and an argv, or neither: usage errors that say so */
    assert_int_equal(envd_commands_run(fx->c, "echo", o, &r, &err), ENVD_E_USAGE);
    assert_null(r);
    assert_non_null(strstr(envd_error_message(err), "envd_commands_run: cmd is not NULL"));
    envd_error_free(err);
    assert_int_equal(envd_cmd_opts_set_argv(o, NULL), ENVD_OK);
    assert_int_equal(envd_commands_run(fx->c, NULL, o, &r, &err), ENVD_E_USAGE);
    assert_string_equal(envd_error_message(err), "envd_commands_run: cmd is NULL");
    envd_error_free(err);
    const char *const empty[] = {NULL};
    assert_int_equal(envd_cmd_opts_set_argv(o, empty), ENVD_INVALID_ARGUMENT);
    envd_cmd_opts_free(o);
}

static void stdin_then_eof(void **state)
{
    fixture *fx = *state;
    envd_cmd_opts *o = envd_cmd_opts_new();
    envd_cmd_opts_set_stdin(o, 1);
    envd_handle *h = NULL;
    envd_error *err = NULL;
    envd_status st = envd_commands_start(fx->c, "cat; echo eof", o, &h, &err);
    assert_envd_ok(st, err);
    uint32_t pid = envd_handle_pid(h);
    st = envd_commands_send_input(fx->c, ENVD_PID(pid), ENVD_INPUT_STDIN, "hello ", 6, &err);
    assert_envd_ok(st, err);
    envd_future *f = NULL;
    assert_int_equal(envd_commands_send_input_async(fx->c, ENVD_PID(pid), ENVD_INPUT_STDIN, "world\n", 6, &f), ENVD_OK);
    assert_int_equal(envd_future_wait(f, 20000), ENVD_OK);
    assert_int_equal(envd_future_status(f), ENVD_OK);
    envd_future_free(f);
    st = envd_handle_send_input(h, "\0bin\n", 5, &err);
    assert_envd_ok(st, err);
    /* still running: cat waits for EOF */
    assert_int_equal(envd_handle_wait(h, 300, NULL, NULL), ENVD_E_TIMEOUT);
    st = envd_handle_close_stdin(h, &err);
    assert_envd_ok(st, err);
    envd_command_result *r = NULL;
    st = envd_handle_wait(h, 20000, &r, &err);
    assert_envd_ok(st, err);
    size_t n;
    const char *out = (n = r->stdout_len, r->stdout_data);
    assert_int_equal(n, 21);
    assert_memory_equal(out, "hello world\n\0bin\neof\n", 21);
    envd_command_result_free(r);
    envd_handle_free(h);

    /* stdin off (the default): /dev/null, so cat ends at once; input is
     * refused */
    r = run_ok(fx->c, "cat; echo done", NULL);
    assert_string_equal(r->stdout_data, "done\n");
    envd_command_result_free(r);
    st = envd_commands_start(fx->c, "sleep 30", NULL, &h, &err);
    assert_envd_ok(st, err);
    /* closing a stdin that was never open is fine, twice */
    for (int i = 0; i < 2; i++) {
        st = envd_commands_close_stdin(fx->c, ENVD_PID(envd_handle_pid(h)), &err);
        assert_envd_ok(st, err);
    }
    st = envd_commands_send_input(fx->c, ENVD_PID(envd_handle_pid(h)), ENVD_INPUT_STDIN, "x", 1, &err);
    assert_int_equal(st, ENVD_INTERNAL);
    assert_non_null(strstr(envd_error_message(err), "failed to send stdin: "));
    envd_error_free(err);
    envd_handle_kill(h);
    envd_handle_free(h);
    envd_cmd_opts_free(o);
}

static void ordered_input_stream(void **state)
{
    fixture *fx = *state;
    envd_cmd_opts *o = envd_cmd_opts_new();
    envd_cmd_opts_set_stdin(o, 1);
    envd_handle *h = NULL;
    envd_error *err = NULL;
    envd_status st = envd_commands_start(fx->c, "cat", o, &h, &err);
    assert_envd_ok(st, err);
    envd_input_stream *in = NULL;
    assert_int_equal(envd_commands_open_input(fx->c, ENVD_PID(envd_handle_pid(h)), ENVD_INPUT_STDIN, &in), ENVD_OK);
    char want[16384] = "";
    for (int i = 0; i < 500; i++) {
        char line[32];
        int n = snprintf(line, sizeof(line), "line %d\n", i);
        strcat(want, line);
        st = envd_input_stream_write(in, line, (size_t)n, &err);
        assert_envd_ok(st, err);
    }
    /* one write larger than a message */
    size_t big = (size_t)3 << 20;
    char *blob = malloc(big);
    memset(blob, 'z', big);
    st = envd_input_stream_write(in, blob, big, &err);
    assert_envd_ok(st, err);
    free(blob);
    st = envd_input_stream_close(in, &err);
    assert_envd_ok(st, err);
    assert_int_equal(envd_input_stream_write(in, "x", 1, &err), ENVD_E_USAGE);
    assert_string_equal(envd_error_message(err),
                        "envd_input_stream_write: the input was ended already");
    envd_error_free(err);
    envd_input_stream_free(in);
    st = envd_handle_close_stdin(h, &err);
    assert_envd_ok(st, err);
    envd_command_result *r = NULL;
    st = envd_handle_wait(h, 20000, &r, &err);
    assert_envd_ok(st, err);
    size_t n;
    const char *out = (n = r->stdout_len, r->stdout_data);
    size_t wl = strlen(want);
    assert_int_equal(n, wl + big);
    assert_memory_equal(out, want, wl);
    assert_int_equal(out[wl], 'z');
    assert_int_equal(out[n - 1], 'z');
    envd_command_result_free(r);
    envd_handle_free(h);

    /* input for an unknown pid: envd's error when the input ends */
    assert_int_equal(envd_commands_open_input(fx->c, ENVD_PID(999999), ENVD_INPUT_STDIN, &in), ENVD_OK);
    st = envd_input_stream_write(in, "x", 1, &err);
    if (st == ENVD_OK)
        st = envd_input_stream_close(in, &err);
    assert_int_equal(st, ENVD_NOT_FOUND);
    assert_non_null(strstr(envd_error_message(err), "failed to stream input: "));
    envd_error_free(err);
    envd_input_stream_free(in);

    /* more than 256 KiB after the error: envd (connect-go closing the body,
     * net/http reading at most 256 KiB of it) answers mid-stream and closes
     * the connection; the answer is still envd's error, not a transport one */
    assert_int_equal(envd_commands_open_input(fx->c, ENVD_PID(999999), ENVD_INPUT_STDIN, &in), ENVD_OK);
    {
        static char chunk[64 * 1024];
        memset(chunk, 'q', sizeof(chunk));
        st = ENVD_OK;
        for (int i = 0; i < 8 && st == ENVD_OK; i++)
            st = envd_input_stream_write(in, chunk, sizeof(chunk), &err);
        if (st == ENVD_OK)
            st = envd_input_stream_close(in, &err);
    }
    assert_int_equal(st, ENVD_NOT_FOUND);
    assert_non_null(strstr(envd_error_message(err), "process with pid 999999 not found"));
    envd_error_free(err);
    err = NULL;
    envd_input_stream_free(in);

    /* abandoned without ending: freed cleanly */
    assert_int_equal(envd_commands_open_input(fx->c, ENVD_PID(999999), ENVD_INPUT_STDIN, &in), ENVD_OK);
    envd_input_stream_free(in);
    envd_cmd_opts_free(o);
}

static void tags(void **state)
{
    fixture *fx = *state;
    char tag[64];
    snprintf(tag, sizeof(tag), "job-%d-%d", (int)getpid(), fx->route);
    envd_cmd_opts *o = envd_cmd_opts_new();
    envd_cmd_opts_set_tag(o, tag);
    envd_handle *h = NULL;
    envd_error *err = NULL;
    envd_status st = envd_commands_start(
        fx->c, "for i in $(seq 1 100); do echo $i; sleep 0.2; done", o, &h, &err);
    assert_envd_ok(st, err);
    uint32_t pid = envd_handle_pid(h);

    sink s;
    sink_init(&s, 0);
    envd_cmd_opts *co = envd_cmd_opts_new();
    envd_cmd_opts_on_stdout(co, sink_cb, &s);
    envd_handle *byt = NULL;
    st = envd_commands_connect(fx->c, ENVD_TAG(tag), co, &byt, &err);
    assert_envd_ok(st, err);
    assert_int_equal(envd_handle_pid(byt), pid);
    assert_true(sink_wait_for(&s, "\n", 5000)); /* it streams */

    int killed = 0;
    st = envd_commands_kill(fx->c, ENVD_TAG(tag), &killed, &err);
    assert_envd_ok(st, err);
    assert_int_equal(killed, 1);
    envd_command_result *r = NULL;
    st = envd_handle_wait(byt, 20000, &r, &err);
    assert_int_equal(st, ENVD_E_COMMAND_EXIT);
    assert_int_equal(r->exit_code, -1);
    envd_command_result_free(r);
    envd_error_free(err);
    st = envd_handle_wait(h, 20000, NULL, NULL);
    assert_int_equal(st, ENVD_E_COMMAND_EXIT);
    envd_handle_free(byt);
    envd_handle_free(h);

    /* unknown tags */
    st = envd_commands_kill(fx->c, ENVD_TAG("no-such-tag"), &killed, &err);
    assert_envd_ok(st, err);
    assert_int_equal(killed, 0);
    st = envd_commands_connect(fx->c, ENVD_TAG("no-such-tag"), NULL, &byt, &err);
    assert_int_equal(st, ENVD_NOT_FOUND);
    assert_null(byt);
    envd_error_free(err);
    assert_int_equal(envd_commands_connect(fx->c, ENVD_TAG(""), NULL, &byt, &err), ENVD_E_USAGE);
    assert_string_equal(envd_error_message(err), "envd_commands_connect: process tag is empty");
    envd_error_free(err);
    assert_int_equal(envd_commands_connect(fx->c, NULL, NULL, &byt, &err), ENVD_E_USAGE);
    assert_string_equal(envd_error_message(err), "envd_commands_connect: process is NULL");
    envd_error_free(err);
    sink_free(&s);
    envd_cmd_opts_free(co);
    envd_cmd_opts_free(o);
}

static void unknown_processes(void **state)
{
    fixture *fx = *state;
    envd_error *err = NULL;
    int killed = 1;
    envd_status st = envd_commands_kill(fx->c, ENVD_PID(999999), &killed, &err);
    assert_envd_ok(st, err);
    assert_int_equal(killed, 0);
    int sent = 1;
    st = envd_commands_signal(fx->c, ENVD_PID(999999), ENVD_SIGNAL_SIGTERM, &sent, &err);
    assert_envd_ok(st, err);
    assert_int_equal(sent, 0);
    envd_future *f = NULL;
    assert_int_equal(envd_commands_signal_async(fx->c, ENVD_TAG("nope"), ENVD_SIGNAL_SIGKILL, &f),
                     ENVD_OK);
    envd_future_wait(f, 20000);
    assert_int_equal(envd_future_status(f), ENVD_OK);
    assert_int_equal(envd_future_bool(f), 0);
    envd_future_free(f);

    envd_handle *h = NULL;
    st = envd_commands_connect(fx->c, ENVD_PID(999999), NULL, &h, &err);
    assert_int_equal(st, ENVD_NOT_FOUND);
    assert_null(h);
    assert_non_null(strstr(envd_error_message(err), "failed to connect to process: "));
    envd_error_free(err);

    st = envd_commands_send_input(fx->c, ENVD_PID(999999), ENVD_INPUT_STDIN, "x", 1, &err);
    assert_int_equal(st, ENVD_NOT_FOUND);
    envd_error_free(err);
    st = envd_commands_close_stdin(fx->c, ENVD_PID(999999), &err);
    assert_int_equal(st, ENVD_NOT_FOUND);
    envd_error_free(err);
    st = envd_commands_resize(fx->c, ENVD_PID(999999), 80, 24, &err);
    assert_int_equal(st, ENVD_NOT_FOUND);
    envd_error_free(err);
}

static void disconnect_then_connect(void **state)
{
    fixture *fx = *state;
    sink s1, s2;
    sink_init(&s1, 0);
    sink_init(&s2, 0);
    envd_cmd_opts *o = envd_cmd_opts_new();
    envd_cmd_opts_on_stdout(o, sink_cb, &s1);
    envd_handle *h = NULL;
    envd_error *err = NULL;
    envd_status st = envd_commands_start(
        fx->c, "for i in $(seq 1 15); do echo tick$i; sleep 0.1; done; exit 4", o, &h, &err);
    assert_envd_ok(st, err);
    uint32_t pid = envd_handle_pid(h);
    assert_true(sink_wait_for(&s1, "tick1\n", 5000));
    envd_handle_disconnect(h);
    envd_command_result *r = NULL;
    st = envd_handle_wait(h, 5000, &r, &err);
    assert_int_equal(st, ENVD_CANCELED);
    assert_null(r);
    assert_non_null(strstr(envd_error_message(err), "disconnected"));
    envd_error_free(err);
    pthread_mutex_lock(&s1.mu);
    size_t frozen = s1.total;
    pthread_mutex_unlock(&s1.mu);

    /* the process went on */
    assert_true(listed(fx->c, pid));
    envd_cmd_opts_on_stdout(o, sink_cb, &s2);
    envd_handle *h2 = NULL;
    st = envd_commands_connect(fx->c, ENVD_PID(pid), o, &h2, &err);
    assert_envd_ok(st, err);
    assert_int_equal(envd_handle_pid(h2), pid);
    st = envd_handle_wait(h2, 20000, &r, &err);
    assert_int_equal(st, ENVD_E_COMMAND_EXIT);
    assert_int_equal(r->exit_code, 4);
    assert_non_null(strstr(r->stdout_data, "tick15\n"));
    assert_string_equal(r->stdout_data, s2.buf);
    envd_command_result_free(r);
    envd_error_free(err);
    /* nothing reached the first handle's callback after disconnect */
    assert_int_equal(s1.total, frozen);

    /* after the end: re-attaching learns the exit code (envd keeps it 30 s) */
    envd_handle *h3 = NULL;
    st = envd_handle_reconnect(h, &h3, &err);
    assert_envd_ok(st, err);
    assert_int_equal(envd_handle_pid(h3), pid);
    st = envd_handle_wait(h3, 20000, &r, &err);
    assert_int_equal(st, ENVD_E_COMMAND_EXIT);
    assert_int_equal(r->exit_code, 4);
    assert_string_equal(r->stdout_data, "");
    envd_command_result_free(r);
    envd_error_free(err);
    envd_handle_free(h3);
    envd_handle_free(h2);
    envd_handle_free(h);
    envd_cmd_opts_free(o);
    sink_free(&s1);
    sink_free(&s2);
}

static void pty_session(void **state)
{
    fixture *fx = *state;
    sink term;
    sink_init(&term, 0);
    envd_cmd_opts *o = envd_cmd_opts_new();
    envd_cmd_opts_on_stdout(o, sink_cb, &term);
    envd_cmd_opts_set_env(o, "MARK", "pty-mark");
    envd_handle *h = NULL;
    envd_error *err = NULL;
    envd_cmd_opts_set_pty(o, 80, 24);
    envd_status st = envd_commands_start(fx->c, NULL, o, &h, &err); /* the login shell */
    assert_envd_ok(st, err);
    uint32_t pid = envd_handle_pid(h);
    const char *cmd = "echo \"$((6*7))-$TERM-$MARK\"; tty >/dev/null && echo is-a-tty\n";
    st = envd_handle_send_input(h, cmd, strlen(cmd), &err);
    assert_envd_ok(st, err);
    assert_true(sink_wait_for(&term, "42-xterm-256color-pty-mark", 10000));
    assert_true(sink_wait_for(&term, "is-a-tty", 10000));

    st = envd_handle_resize(h, 100, 30, &err);
    assert_envd_ok(st, err);
    const char *size = "stty size\n";
    st = envd_commands_send_input(fx->c, ENVD_PID(pid), ENVD_INPUT_PTY, size, strlen(size), &err);
    assert_envd_ok(st, err);
    assert_true(sink_wait_for(&term, "30 100", 10000));

    /* a second attachment sees the same terminal */
    sink term2;
    sink_init(&term2, 0);
    envd_cmd_opts *o2 = envd_cmd_opts_new();
    envd_cmd_opts_on_stdout(o2, sink_cb, &term2);
    envd_handle *h2 = NULL;
    envd_cmd_opts_set_pty(o2, 1, 1); /* a PTY handle: input goes to the terminal */
    st = envd_commands_connect(fx->c, ENVD_PID(pid), o2, &h2, &err);
    assert_envd_ok(st, err);
    const char *again = "echo second-$((1+1))\n";
    st = envd_handle_send_input(h2, again, strlen(again), &err);
    assert_envd_ok(st, err);
    assert_true(sink_wait_for(&term2, "second-2", 10000));
    assert_true(sink_wait_for(&term, "second-2", 10000));

    /* close_stdin is not for a terminal */
    st = envd_handle_close_stdin(h, &err);
    assert_int_not_equal(st, ENVD_OK);
    envd_error_free(err);

    const char *bye = "exit 5\n";
    st = envd_handle_send_input(h, bye, strlen(bye), &err);
    assert_envd_ok(st, err);
    envd_command_result *r = NULL;
    st = envd_handle_wait(h, 20000, &r, &err);
    assert_int_equal(st, ENVD_E_COMMAND_EXIT);
    assert_int_equal(r->exit_code, 5);
    /* the result keeps the terminal's output as stdout */
    assert_non_null(strstr(r->stdout_data, "42-xterm"));
    envd_command_result_free(r);
    envd_error_free(err);
    envd_handle_wait(h2, 20000, NULL, NULL);
    envd_handle_free(h2);
    envd_handle_free(h);

    /* kill a PTY session */
    envd_cmd_opts *ko = envd_cmd_opts_new();
    envd_cmd_opts_set_pty(ko, 40, 10);
    st = envd_commands_start(fx->c, NULL, ko, &h, &err);
    envd_cmd_opts_free(ko);
    assert_envd_ok(st, err);
    assert_int_equal(envd_handle_kill(h), 1);
    st = envd_handle_wait(h, 20000, &r, &err);
    assert_int_equal(st, ENVD_E_COMMAND_EXIT);
    assert_int_equal(r->exit_code, -1);
    envd_command_result_free(r);
    envd_error_free(err);
    envd_handle_free(h);

    /* a command in a terminal through the ordinary start, input by stream */
    envd_cmd_opts *o3 = envd_cmd_opts_new();
    envd_cmd_opts_set_pty(o3, 50, 20);
    st = envd_commands_start(fx->c, "read a; echo got-$a; stty size", o3, &h, &err);
    assert_envd_ok(st, err);
    envd_input_stream *in = NULL;
    assert_int_equal(envd_commands_open_input(fx->c, ENVD_PID(envd_handle_pid(h)), ENVD_INPUT_PTY, &in), ENVD_OK);
    st = envd_input_stream_write(in, "abc\n", 4, &err);
    assert_envd_ok(st, err);
    st = envd_input_stream_close(in, &err);
    assert_envd_ok(st, err);
    envd_input_stream_free(in);
    st = envd_handle_wait(h, 20000, &r, &err);
    assert_envd_ok(st, err);
    assert_non_null(strstr(r->stdout_data, "got-abc"));
    assert_non_null(strstr(r->stdout_data, "20 50"));
    envd_command_result_free(r);
    envd_handle_free(h);
    assert_int_equal(envd_cmd_opts_set_pty(o3, 10, 0), ENVD_INVALID_ARGUMENT);

    envd_cmd_opts_free(o3);
    envd_cmd_opts_free(o2);
    envd_cmd_opts_free(o);
    sink_free(&term);
    sink_free(&term2);
}

static void futures_and_wait_timeouts(void **state)
{
    fixture *fx = *state;
    enum { N = 24 };
    envd_future *starts[N];
    for (int i = 0; i < N; i++) {
        char cmd[64];
        snprintf(cmd, sizeof(cmd), "sleep 0.%d; exit %d", i % 5, i);
        assert_int_equal(envd_commands_start_async(fx->c, cmd, NULL, &starts[i]), ENVD_OK);
    }
    assert_int_equal(envd_future_wait_all(starts, N, 30000), ENVD_OK);
    envd_handle *hs[N];
    envd_future *ends[N];
    for (int i = 0; i < N; i++) {
        assert_int_equal(envd_future_status(starts[i]), ENVD_OK);
        hs[i] = envd_future_take_handle(starts[i]);
        assert_non_null(hs[i]);
        assert_true(envd_handle_pid(hs[i]) > 0);
        envd_future_free(starts[i]);
        ends[i] = envd_handle_future(hs[i]);
    }
    /* wait-any until all are done */
    int done[N] = {0}, left = N;
    while (left > 0) {
        envd_future *pending[N];
        int map[N], np = 0;
        for (int i = 0; i < N; i++)
            if (!done[i]) {
                map[np] = i;
                pending[np++] = ends[i];
            }
        size_t idx = 0;
        assert_int_equal(envd_future_wait_any(pending, (size_t)np, 30000, &idx), ENVD_OK);
        int i = map[idx];
        done[i] = 1;
        left--;
        const envd_command_result *r = envd_future_command_result(ends[i]);
        assert_non_null(r);
        assert_int_equal(r->exit_code, i);
        assert_int_equal(envd_future_status(ends[i]), i ? ENVD_E_COMMAND_EXIT : ENVD_OK);
    }
    for (int i = 0; i < N; i++)
        envd_handle_free(hs[i]);

    /* a wait with a timeout leaves the handle usable */
    envd_handle *h = NULL;
    envd_error *err = NULL;
    envd_status st = envd_commands_start(fx->c, "sleep 1; echo late", NULL, &h, &err);
    assert_envd_ok(st, err);
    envd_command_result *r = NULL;
    assert_int_equal(envd_handle_wait(h, 50, &r, &err), ENVD_E_TIMEOUT);
    assert_null(r);
    st = envd_handle_wait(h, 20000, &r, &err);
    assert_envd_ok(st, err);
    assert_string_equal(r->stdout_data, "late\n");
    envd_command_result_free(r);
    /* taken once */
    st = envd_handle_wait(h, 0, &r, &err);
    assert_int_equal(st, ENVD_OK);
    assert_null(r);
    envd_handle_free(h);

    /* a start future freed untaken frees its handle; a run future freed
     * early stops its stream (the process goes on) */
    envd_future *sf = NULL;
    assert_int_equal(envd_commands_start_async(fx->c, "sleep 0.2", NULL, &sf), ENVD_OK);
    envd_future_wait(sf, 20000);
    envd_future_free(sf);
    envd_future *rf = NULL;
    assert_int_equal(envd_commands_run_async(fx->c, "sleep 0.2", NULL, &rf), ENVD_OK);
    envd_future_free(rf);
}

/* Different methods one after the other on one connection: each must
 * reach its own handler (gRPC once sent a SendSignal under the :path index
 * of an earlier Stat, through a stale method slice in the HPACK encoder). */
static void alternating_methods(void **state)
{
    fixture *fx = *state;
    for (int i = 0; i < 100; i++) {
        envd_error *err = NULL;
        envd_entry_info *e = NULL;
        envd_status st = envd_fs_get_info(fx->c, "/", &e, &err);
        assert_envd_ok(st, err);
        envd_entry_info_free(e);
        int killed = 1;
        st = envd_commands_kill(fx->c, ENVD_PID(999999), &killed, &err);
        assert_envd_ok(st, err);
        assert_int_equal(killed, 0);
        envd_process_list *l = NULL;
        st = envd_commands_list(fx->c, &l, &err);
        assert_envd_ok(st, err);
        envd_process_list_free(l);
    }
}

/* Usage errors say which argument, and every starter leaves *out NULL. */
static void usage_errors_name_the_argument(void **state)
{
    fixture *fx = *state;
    envd_error *err = NULL;
    envd_command_result *r = (envd_command_result *)1;
    assert_int_equal(envd_commands_run(NULL, "true", NULL, &r, &err), ENVD_E_USAGE);
    assert_null(r);
    assert_string_equal(envd_error_message(err), "envd_commands_run: client is NULL");
    envd_error_free(err);
    assert_int_equal(envd_commands_run_async(fx->c, "true", NULL, NULL), ENVD_E_USAGE);
    envd_future *f = (envd_future *)1;
    assert_int_equal(envd_commands_signal_async(fx->c, ENVD_PID(1), (envd_signal)0, &f),
                     ENVD_INVALID_ARGUMENT);
    assert_null(f);
    int sent = 1;
    assert_int_equal(envd_commands_signal(fx->c, NULL, ENVD_SIGNAL_SIGTERM, &sent, &err),
                     ENVD_E_USAGE);
    assert_int_equal(sent, 0);
    assert_string_equal(envd_error_message(err), "envd_commands_signal: process is NULL");
    envd_error_free(err);
    assert_int_equal(envd_commands_send_input(fx->c, ENVD_PID(1), ENVD_INPUT_STDIN, NULL, 3, &err),
                     ENVD_E_USAGE);
    assert_string_equal(envd_error_message(err), "envd_commands_send_input: data is NULL");
    envd_error_free(err);
    assert_int_equal(envd_commands_resize(fx->c, ENVD_TAG("t"), 0, 10, &err),
                     ENVD_INVALID_ARGUMENT);
    assert_non_null(strstr(envd_error_message(err), "envd_commands_resize: "));
    envd_error_free(err);
    envd_input_stream *in = (envd_input_stream *)1;
    assert_int_equal(envd_commands_open_input(fx->c, ENVD_TAG(""), ENVD_INPUT_STDIN, &in),
                     ENVD_E_USAGE);
    assert_null(in);
    assert_int_equal(envd_input_stream_write(NULL, "x", 1, &err), ENVD_E_USAGE);
    assert_string_equal(envd_error_message(err), "envd_input_stream_write: stream is NULL");
    envd_error_free(err);
    assert_int_equal(envd_handle_wait(NULL, 0, &r, &err), ENVD_E_USAGE);
    assert_string_equal(envd_error_message(err), "envd_handle_wait: handle is NULL");
    envd_error_free(err);
    envd_handle *h = (envd_handle *)1;
    assert_int_equal(envd_handle_reconnect(NULL, &h, &err), ENVD_E_USAGE);
    assert_null(h);
    assert_string_equal(envd_error_message(err), "envd_handle_reconnect: handle is NULL");
    envd_error_free(err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(exit_codes),           cmocka_unit_test(killed_by_signals),
        cmocka_unit_test(interleaved_output),   cmocka_unit_test(unicode_and_binary_output),
        cmocka_unit_test(capped_output),        cmocka_unit_test(envs_cwd_user),
        cmocka_unit_test(argv_without_shell),   cmocka_unit_test(stdin_then_eof),
        cmocka_unit_test(ordered_input_stream), cmocka_unit_test(tags),
        cmocka_unit_test(unknown_processes),    cmocka_unit_test(disconnect_then_connect),
        cmocka_unit_test(pty_session),          cmocka_unit_test(futures_and_wait_timeouts),
        cmocka_unit_test(alternating_methods),  cmocka_unit_test(usage_errors_name_the_argument),
    };
    int failed = 0;
    failed += cmocka_run_group_tests_name("grpc (h2c; envd-compatible server, not stock envd)",
                                          tests, setup_grpc, teardown);
    failed += cmocka_run_group_tests_name("connect (http/1.1)", tests, setup_connect, teardown);
    failed +=
        cmocka_run_group_tests_name("gateway http/1.1 (connect)", tests, setup_gw_h1, teardown);
    failed += cmocka_run_group_tests_name("gateway grpc (h2c to an envd-compatible server)",
                                          tests, setup_gw_grpc, teardown);
    failed += cmocka_run_group_tests_name("gateway tls h2 (connect, nghttp2 after the first call)",
                                          tests, setup_gw_tls, teardown);
    failed += cmocka_run_group_tests_name("connect (h2c, nghttp2)", tests, setup_h2c, teardown);
    return failed;
}
