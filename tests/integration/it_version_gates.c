/* Version gates (envd_config_set_envd_version): with the sandbox's envd
 * version known, a call it cannot serve is refused before any request,
 * with ENVD_UNIMPLEMENTED naming the version needed and the one set; the
 * same call on the version that added the feature, or with the version
 * unknown, reaches the server. Versions: the E2B SDKs' envd/versions
 * (ENVD_COMMANDS_STDIN 0.3.0, ENVD_ENVD_CLOSE 0.5.2,
 * ENVD_OCTET_STREAM_UPLOAD 0.5.7, ENVD_FILE_METADATA 0.6.2,
 * ENVD_VERSION_RECURSIVE_WATCH 0.1.4, ENVD_VERSION_FS_EVENT_ENTRY_INFO
 * 0.6.3, ENVD_VERSION_WATCH_NETWORK_MOUNTS 0.6.4); their JS tests reject
 * stdin:false, recursive, includeEntry and allowNetworkMounts below those,
 * and the Python SDK's octet-stream write falls back to multipart. The
 * reference server's request log shows which upload form was sent. */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static test_server srv;
static envd_runtime *rt;
static char logpath[256];

static envd_client *client_at(const char *version)
{
    envd_config *cfg = envd_config_new();
    envd_client *c = NULL;
    assert_int_equal(envd_config_set_domain(cfg, srv.addr), ENVD_OK);
    assert_int_equal(envd_config_set_transport(cfg, ENVD_TRANSPORT_CONNECT), ENVD_OK);
    assert_int_equal(envd_config_set_envd_version(cfg, version), ENVD_OK);
    assert_int_equal(envd_client_new(rt, "sbx-gates", cfg, &c, NULL), ENVD_OK);
    envd_config_free(cfg);
    return c;
}

/* st is the gate's refusal: ENVD_UNIMPLEMENTED naming both versions. The
 * call runs before err is read (argument order is unspecified). */
#define assert_gated(call, err, need, have)                                                       \
    do {                                                                                           \
        envd_status st_ = (call);                                                                  \
        check_gated(st_, (err), (need), (have));                                                   \
    } while (0)

static void check_gated(envd_status st, envd_error *err, const char *need, const char *have)
{
    const char *m = err ? envd_error_message(err) : "(no error)";
    if (st != ENVD_UNIMPLEMENTED || !strstr(m, need) || !strstr(m, have))
        fail_msg("want unimplemented naming %s and %s, got %s: %s", need, have,
                 envd_strerror(st), m);
    envd_error_free(err);
}

static void no_gate(envd_status st, envd_error *err)
{
    if (st == ENVD_UNIMPLEMENTED)
        fail_msg("refused by a gate: %s", err ? envd_error_message(err) : "");
    envd_error_free(err);
}

static envd_status run_stdin_off(envd_client *c, envd_error **err)
{
    envd_cmd_opts *o = envd_cmd_opts_new();
    assert_int_equal(envd_cmd_opts_set_stdin(o, 0), ENVD_OK);
    envd_command_result *r = NULL;
    envd_status st = envd_commands_run(c, "true", o, &r, err);
    envd_command_result_free(r);
    envd_cmd_opts_free(o);
    return st;
}

static void on_event(void *ud, const envd_fs_event *ev)
{
    (void)ud;
    (void)ev;
}

static envd_status watch(envd_client *c, unsigned flags, envd_error **err)
{
    envd_watch *w = NULL;
    envd_status st = envd_fs_watch_dir(c, "/", flags, on_event, NULL, &w, err);
    if (w) {
        envd_watch_stop(w);
        envd_watch_free(w);
    }
    return st;
}

static envd_status write_with(envd_client *c, int octet, int meta, envd_error **err)
{
    envd_files_opts *o = envd_files_opts_new();
    if (octet)
        assert_int_equal(envd_files_opts_set_octet_stream(o, 1), ENVD_OK);
    if (meta)
        assert_int_equal(envd_files_opts_set_metadata(o, "owner", "gates"), ENVD_OK);
    envd_status st = envd_files_write(c, "/tmp/gates.txt", "g", 1, o, NULL, err);
    envd_files_opts_free(o);
    return st;
}

static void commands_gates(void **state)
{
    (void)state;
    envd_client *old = client_at("0.2.9"), *ok = client_at("v0.3.0"), *unknown = client_at(NULL);
    envd_error *err = NULL;
    assert_gated(run_stdin_off(old, &err), err, "0.3.0", "0.2.9");
    /* stdin left at its default is not a request to disable it */
    envd_command_result *r = NULL;
    err = NULL;
    assert_int_equal(envd_commands_run(old, "true", NULL, &r, &err), ENVD_OK);
    envd_command_result_free(r);
    err = NULL;
    assert_int_equal(run_stdin_off(ok, &err), ENVD_OK);
    assert_int_equal(run_stdin_off(unknown, &err), ENVD_OK);

    envd_client *close_old = client_at("0.5.1"), *close_ok = client_at("0.5.2-rc.1");
    err = NULL;
    assert_gated(envd_commands_close_stdin(close_old, ENVD_PID(999999), &err), err, "0.5.2",
                 "0.5.1");
    err = NULL; /* reaches envd: no such process */
    envd_status st = envd_commands_close_stdin(close_ok, ENVD_PID(999999), &err);
    assert_int_equal(st, ENVD_NOT_FOUND);
    no_gate(st, err);
    envd_client_free(old);
    envd_client_free(ok);
    envd_client_free(unknown);
    envd_client_free(close_old);
    envd_client_free(close_ok);
}

static void watch_gates(void **state)
{
    (void)state;
    static const struct {
        unsigned flag;
        const char *below, *at;
    } rows[] = {{ENVD_WATCH_RECURSIVE, "0.1.3", "0.1.4"},
                {ENVD_WATCH_INCLUDE_ENTRY, "0.6.2", "0.6.3"},
                {ENVD_WATCH_ALLOW_NETWORK_MOUNTS, "0.6.3", "0.6.4"}};
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        envd_client *below = client_at(rows[i].below), *at = client_at(rows[i].at);
        envd_error *err = NULL;
        assert_gated(watch(below, rows[i].flag, &err), err, rows[i].at, rows[i].below);
        err = NULL;
        envd_status st = watch(at, rows[i].flag, &err);
        assert_int_equal(st, ENVD_OK);
        no_gate(st, err);
        envd_client_free(below);
        envd_client_free(at);
    }
}

/* The media type of the last upload the server logged. */
static void last_upload_type(char *out, size_t n)
{
    FILE *fp = fopen(logpath, "r");
    assert_non_null(fp);
    char line[512], method[16], path[256], ct[128];
    out[0] = 0;
    while (fgets(line, sizeof line, fp))
        if (sscanf(line, "%15s %255s %*s %*s content-type=%127s", method, path, ct) == 3 &&
            strcmp(method, "POST") == 0 && strcmp(path, "/files") == 0)
            snprintf(out, n, "%s", ct);
    fclose(fp);
}

static void files_gates(void **state)
{
    (void)state;
    envd_client *c561 = client_at("0.5.6"), *c601 = client_at("0.6.1"), *c62 = client_at("0.6.2");
    envd_error *err = NULL;
    char ct[128];
    /* octet-stream on an envd that predates it: multipart instead */
    assert_int_equal(write_with(c561, 1, 0, &err), ENVD_OK);
    last_upload_type(ct, sizeof ct);
    assert_string_equal(ct, "multipart/form-data");
    assert_int_equal(write_with(c62, 1, 0, &err), ENVD_OK);
    last_upload_type(ct, sizeof ct);
    assert_string_equal(ct, "application/octet-stream");
    /* metadata would be dropped by an older envd: refused */
    assert_gated(write_with(c601, 0, 1, &err), err, "0.6.2", "0.6.1");
    err = NULL;
    assert_int_equal(write_with(c62, 0, 1, &err), ENVD_OK);
    envd_client_free(c561);
    envd_client_free(c601);
    envd_client_free(c62);
}

static void bad_versions_are_refused(void **state)
{
    (void)state;
    envd_config *cfg = envd_config_new();
    static const char *const bad[] = {"0.6", "x.1.2", "0.6.3.1", "1..2", "0.6.3 ", "-1.0.0"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(envd_config_set_envd_version(cfg, bad[i]), ENVD_INVALID_ARGUMENT);
        assert_non_null(strstr(envd_config_last_error(cfg), "MAJOR.MINOR.PATCH"));
    }
    static const char *const good[] = {"0.6.3", "v1.0.0", "0.6.2-rc.1", "0.6.2+build.5", "", NULL};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        assert_int_equal(envd_config_set_envd_version(cfg, good[i]), ENVD_OK);
    assert_int_equal(envd_config_set_envd_version(NULL, "0.1.0"), ENVD_E_USAGE);
    envd_config_free(cfg);
}

static int setup(void **state)
{
    (void)state;
    snprintf(logpath, sizeof logpath, "/tmp/envd-it-gates-%d.log", (int)getpid());
    unlink(logpath);
    setenv("PEER_HEADER_LOG", logpath, 1);
    int rc = test_server_start(&srv, "h1", NULL);
    unsetenv("PEER_HEADER_LOG");
    return rc == 0 && envd_runtime_new(NULL, &rt) == ENVD_OK ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    envd_runtime_free(rt);
    test_server_stop(&srv);
    unlink(logpath);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(commands_gates),
        cmocka_unit_test(watch_gates),
        cmocka_unit_test(files_gates),
        cmocka_unit_test(bad_versions_are_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
