/* The reserved headers, from what the reference server received: custom
 * Connect-Timeout-Ms and Keepalive-Ping-Interval headers (refused by the
 * config setters, or slipped past them) never reach envd; Connect-Timeout-Ms
 * is sent only on Process.Start and only from the process timeout;
 * Keepalive-Ping-Interval only on server streams (Start, Connect, WatchDir)
 * and only from the keepalive setting. Checked over gRPC and Connect, for a
 * unary call, server streams, a client stream and /files both ways. */
#include "cmd_util.h"

#include "api/internal.h"

#define KEEPALIVE_S 7
#define PROCESS_TIMEOUT "30000"

typedef struct hx {
    fixture fx;
    char log[300];
} hx;

/* The client's header list gets the reserved names as custom headers, as a
 * config that let them through would have them (a YAML file of 0.1, a
 * future setter with a bug): the last line of defence, in the one place
 * that builds a call's headers, is what the requests below exercise. */
static void inject_custom(envd_client *c)
{
    envd_kv *h = realloc(c->headers, (c->n_headers + 2) * sizeof(*h));
    assert_non_null(h);
    h[c->n_headers++] = (envd_kv){"connect-timeout-ms", "1"};
    h[c->n_headers++] = (envd_kv){"keepalive-ping-interval", "0"};
    c->headers = h;
}

static int setup(void **state, envd_transport_kind kind)
{
    hx *x = calloc(1, sizeof(*x));
    *state = x;
    snprintf(x->log, sizeof(x->log), "/tmp/envd-it-headers-%d-%d.log", (int)getpid(), (int)kind);
    unlink(x->log);
    setenv("PEER_HEADER_LOG", x->log, 1);
    int rc = test_server_start(&x->fx.srv, "both", NULL);
    unsetenv("PEER_HEADER_LOG");
    if (rc != 0 || envd_runtime_new(NULL, &x->fx.rt) != ENVD_OK)
        return -1;
    envd_config *cfg = envd_config_new();
    envd_config_set_domain(cfg, x->fx.srv.addr);
    envd_config_set_transport(cfg, kind);
    envd_config_set_keepalive_s(cfg, KEEPALIVE_S);
    /* The setters refuse both names, saying why. */
    static const char *const names[2] = {"Connect-Timeout-Ms", "Keepalive-Ping-Interval"};
    static const char *const values[2] = {"1", "0"};
    for (int i = 0; i < 2; i++) {
        envd_status st = envd_config_set_header(cfg, names[i], values[i]);
        const char *why = envd_config_last_error(cfg);
        if (st != ENVD_INVALID_ARGUMENT || !why || !strstr(why, "is reserved")) {
            fprintf(stderr, "%s: %s (%s)\n", names[i], envd_strerror(st), why ? why : "");
            return -1;
        }
    }
    assert_int_equal(envd_config_set_headers(cfg, names, values, 2), ENVD_INVALID_ARGUMENT);
    envd_error *err = NULL;
    envd_status st = envd_client_new(x->fx.rt, "sbx-hdr", cfg, &x->fx.c, &err);
    envd_config_free(cfg);
    envd_error_free(err);
    if (st != ENVD_OK)
        return -1;
    inject_custom(x->fx.c);
    return 0;
}

static int setup_grpc(void **state)
{
    return setup(state, ENVD_TRANSPORT_GRPC);
}
static int setup_connect(void **state)
{
    return setup(state, ENVD_TRANSPORT_CONNECT);
}

static int teardown(void **state)
{
    hx *x = *state;
    if (!x)
        return 0;
    envd_client_free(x->fx.c);
    envd_runtime_free(x->fx.rt);
    test_server_stop(&x->fx.srv);
    unlink(x->log);
    free(x);
    return 0;
}

static void on_event(void *ud, const envd_fs_event *ev)
{
    (void)ud, (void)ev;
}

/* One of every kind of request. */
static void make_requests(envd_client *c)
{
    envd_error *err = NULL;
    envd_process_list *l = NULL;
    envd_status st = envd_commands_list(c, &l, &err); /* unary */
    assert_envd_ok(st, err);
    envd_process_list_free(l);

    envd_command_result *r = NULL;
    st = envd_commands_run(c, "true", NULL, &r, &err); /* Start, no timeout */
    assert_envd_ok(st, err);
    envd_command_result_free(r);
    envd_cmd_opts *o = envd_cmd_opts_new();
    assert_int_equal(envd_cmd_opts_set_timeout_ms(o, atoi(PROCESS_TIMEOUT)), ENVD_OK);
    assert_int_equal(envd_cmd_opts_set_stdin(o, 1), ENVD_OK);
    envd_handle *h = NULL;
    st = envd_commands_start(c, "cat >/dev/null", o, &h, &err); /* Start with a timeout */
    assert_envd_ok(st, err);
    envd_cmd_opts_free(o);

    envd_handle *h2 = NULL;
    st = envd_commands_connect(c, ENVD_PID(envd_handle_pid(h)), NULL, &h2, &err); /* Connect */
    assert_envd_ok(st, err);
    envd_handle_free(h2);

    envd_input_stream *in = NULL; /* StreamInput: a client stream */
    assert_int_equal(envd_commands_open_input(c, ENVD_PID(envd_handle_pid(h)), ENVD_INPUT_STDIN, &in), ENVD_OK);
    st = envd_input_stream_write(in, "x\n", 2, &err);
    assert_envd_ok(st, err);
    st = envd_input_stream_close(in, &err);
    assert_envd_ok(st, err);
    envd_input_stream_free(in);
    int killed = 0;
    st = envd_commands_kill(c, ENVD_PID(envd_handle_pid(h)), &killed, &err);
    assert_envd_ok(st, err);
    envd_handle_free(h);

    envd_watch *w = NULL;
    st = envd_fs_watch_dir(c, "/", 0, on_event, NULL, &w, &err); /* WatchDir */
    assert_envd_ok(st, err);
    envd_watch_free(w);

    st = envd_files_write_text(c, "/hdr.txt", "hello", NULL, NULL, &err); /* POST /files */
    assert_envd_ok(st, err);
    char *text = NULL;
    st = envd_files_read_text(c, "/hdr.txt", NULL, &text, &err); /* GET /files */
    assert_envd_ok(st, err);
    assert_string_equal(text, "hello");
    free(text);
}

enum { SEEN_LIST, SEEN_START, SEEN_START_TIMEOUT, SEEN_CONNECT, SEEN_INPUT, SEEN_WATCH, SEEN_FILES_GET,
       SEEN_FILES_POST, SEEN_N };

static int is_server_stream(const char *path)
{
    return strcmp(path, "/process.Process/Start") == 0 ||
           strcmp(path, "/process.Process/Connect") == 0 ||
           strcmp(path, "/filesystem.Filesystem/WatchDir") == 0;
}

static void check_line(const char *method, const char *path, const char *ct, const char *ka,
                       int *seen)
{
    int start = strcmp(path, "/process.Process/Start") == 0;
    if (strcmp(ct, "-") != 0 && !(start && strcmp(ct, PROCESS_TIMEOUT) == 0))
        fail_msg("%s %s carried connect-timeout-ms=%s", method, path, ct);
    if (is_server_stream(path)) {
        if (strcmp(ka, "7") != 0)
            fail_msg("%s %s carried keepalive-ping-interval=%s, not the setting", method, path, ka);
    } else if (strcmp(ka, "-") != 0) {
        fail_msg("%s %s carried keepalive-ping-interval=%s", method, path, ka);
    }
    if (strcmp(path, "/process.Process/List") == 0)
        seen[SEEN_LIST]++;
    else if (start)
        seen[strcmp(ct, "-") == 0 ? SEEN_START : SEEN_START_TIMEOUT]++;
    else if (strcmp(path, "/process.Process/Connect") == 0)
        seen[SEEN_CONNECT]++;
    else if (strcmp(path, "/process.Process/StreamInput") == 0)
        seen[SEEN_INPUT]++;
    else if (strcmp(path, "/filesystem.Filesystem/WatchDir") == 0)
        seen[SEEN_WATCH]++;
    else if (strcmp(path, "/files") == 0)
        seen[strcmp(method, "GET") == 0 ? SEEN_FILES_GET : SEEN_FILES_POST]++;
}

static void reserved_headers(void **state)
{
    hx *x = *state;
    make_requests(x->fx.c);
    FILE *fp = fopen(x->log, "r");
    assert_non_null(fp);
    char line[512], method[16], path[256], ct[64], ka[64];
    int seen[SEEN_N] = {0};
    while (fgets(line, sizeof(line), fp)) {
        if (sscanf(line, "%15s %255s connect-timeout-ms=%63s keepalive-ping-interval=%63s", method,
                   path, ct, ka) != 4)
            fail_msg("unreadable log line: %s", line);
        check_line(method, path, ct, ka, seen);
    }
    fclose(fp);
    for (int i = 0; i < SEEN_N; i++)
        if (!seen[i])
            fail_msg("no request of kind %d reached the server", i);
    assert_int_equal(seen[SEEN_START_TIMEOUT], 1); /* only the start that set one */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(reserved_headers, setup_grpc, teardown),
        cmocka_unit_test_setup_teardown(reserved_headers, setup_connect, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
