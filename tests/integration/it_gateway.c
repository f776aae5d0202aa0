/* Through nginx as a sandbox gateway (tests/gateway): routing by
 * e2b-sandbox-id to several reference servers, transport auto on each kind
 * of gateway port, one HTTP/2 connection for many sandboxes, and the
 * gateway's own 401 and 502 as clear errors. */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { NSRV = 3 };
static const char *const ids[NSRV] = {"sbx-a", "sbx-b", "sbx-c"};

typedef struct world {
    test_server srv[NSRV];
    test_gateway gw;
    envd_runtime *rt;
} world;

static int setup(void **state)
{
    world *w = calloc(1, sizeof(*w));
    *state = w;
    for (int i = 0; i < NSRV; i++) {
        if (test_server_start(&w->srv[i], "both", NULL) != 0)
            return -1;
        /* a marker only this sandbox has */
        char path[300];
        snprintf(path, sizeof(path), "%s/whoami", w->srv[i].root);
        FILE *f = fopen(path, "w");
        if (!f)
            return -1;
        fputs(ids[i], f);
        fclose(f);
    }
    if (test_gateway_start(&w->gw, w->srv, ids, NSRV) != 0)
        return -1;
    return envd_runtime_new(NULL, &w->rt) == ENVD_OK ? 0 : -1;
}

static int teardown(void **state)
{
    world *w = *state;
    envd_runtime_free(w->rt);
    test_gateway_stop(&w->gw);
    for (int i = 0; i < NSRV; i++)
        test_server_stop(&w->srv[i]);
    free(w);
    return 0;
}

/* Every sandbox answers as itself through one port, by RPC and by /files. */
static void route_all(world *w, int port, int h2c, envd_transport_kind kind,
                      envd_transport_kind want)
{
    envd_client *c[NSRV];
    for (int i = 0; i < NSRV; i++) {
        c[i] = test_gateway_client(w->rt, port, ids[i], kind, h2c);
        assert_non_null(c[i]);
    }
    envd_future *runs[NSRV];
    for (int i = 0; i < NSRV; i++)
        assert_int_equal(envd_commands_run_async(c[i], "cat /proc/self/cmdline >/dev/null; echo ok",
                                                 NULL, &runs[i]),
                         ENVD_OK);
    assert_int_equal(envd_future_wait_all(runs, NSRV, 30000), ENVD_OK);
    for (int i = 0; i < NSRV; i++) {
        if (envd_future_status(runs[i]) != ENVD_OK)
            fail_msg("%s: %s", ids[i], envd_error_message(envd_future_error(runs[i])));
        assert_string_equal((envd_future_command_result(runs[i]))->stdout_data,
                            "ok\n");
        envd_future_free(runs[i]);
        assert_int_equal(envd_client_transport(c[i]), want);
        uint8_t *data = NULL;
        size_t len = 0;
        envd_error *err = NULL;
        envd_status st = envd_files_read(c[i], "/whoami", NULL, &data, &len, &err);
        assert_envd_ok(st, err);
        assert_string_equal((char *)data, ids[i]);
        free(data);
        envd_entry_info *e = NULL;
        st = envd_fs_get_info(c[i], "/whoami", &e, &err);
        assert_envd_ok(st, err);
        assert_int_equal(e->size, (int64_t)strlen(ids[i]));
        envd_entry_info_free(e);
        envd_client_free(c[i]);
    }
}

static void http1_gateway_uses_connect(void **state)
{
    world *w = *state;
    route_all(w, w->gw.h1_port, 0, ENVD_TRANSPORT_AUTO, ENVD_TRANSPORT_CONNECT);
}

/* h2c from the client, HTTP/1.1 to the sandbox (the OpenKruise gateway's
 * shape): gRPC's trailers are lost on the way, so auto must settle on
 * Connect, here over h2c. */
static void h2c_to_http1_gateway_uses_connect(void **state)
{
    world *w = *state;
    route_all(w, w->gw.h2_port, 1, ENVD_TRANSPORT_AUTO, ENVD_TRANSPORT_CONNECT);
}

static void grpc_gateway_uses_grpc(void **state)
{
    world *w = *state;
    route_all(w, w->gw.grpc_port, 1, ENVD_TRANSPORT_AUTO, ENVD_TRANSPORT_GRPC);
}

static long log_size(world *w)
{
    char path[300];
    snprintf(path, sizeof(path), "%s/access.log", w->gw.dir);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fclose(f);
    return n;
}

/* Counts the distinct nginx connections that served requests on port,
 * in the log past offset. */
static int connections_on(world *w, int port, long offset)
{
    char path[300];
    snprintf(path, sizeof(path), "%s/access.log", w->gw.dir);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    fseek(f, offset, SEEK_SET);
    long seen[256];
    int n = 0, p;
    long conn;
    char id[64];
    int status;
    while (fscanf(f, "%d %ld %63s %d", &p, &conn, id, &status) == 4) {
        if (p != port)
            continue;
        int dup = 0;
        for (int i = 0; i < n; i++)
            dup |= seen[i] == conn;
        if (!dup && n < 256)
            seen[n++] = conn;
    }
    fclose(f);
    return n;
}

static void one_connection_for_many_sandboxes(void **state)
{
    world *w = *state;
    long offset = log_size(w);
    envd_client *c[NSRV];
    for (int i = 0; i < NSRV; i++)
        c[i] = test_gateway_client(w->rt, w->gw.grpc_port, ids[i], ENVD_TRANSPORT_GRPC, 0);
    enum { PER = 20 };
    envd_future *fs[NSRV * PER];
    for (int k = 0; k < PER; k++)
        for (int i = 0; i < NSRV; i++)
            assert_int_equal(envd_fs_get_info_async(c[i], "/whoami", &fs[k * NSRV + i]), ENVD_OK);
    assert_int_equal(envd_future_wait_all(fs, NSRV * PER, 30000), ENVD_OK);
    for (int j = 0; j < NSRV * PER; j++) {
        assert_int_equal(envd_future_status(fs[j]), ENVD_OK);
        envd_future_free(fs[j]);
    }
    for (int i = 0; i < NSRV; i++)
        envd_client_free(c[i]);
    /* nginx writes the log line when a request ends; all have ended */
    assert_int_equal(connections_on(w, w->gw.grpc_port, offset), 1);
}

static void gateway_errors_are_clear(void **state)
{
    world *w = *state;
    int ports[2] = {w->gw.h1_port, w->gw.grpc_port};
    envd_transport_kind kinds[2] = {ENVD_TRANSPORT_CONNECT, ENVD_TRANSPORT_GRPC};
    for (int i = 0; i < 2; i++) {
        envd_client *c = test_gateway_client(w->rt, ports[i], "sbx-locked", kinds[i], 0);
        envd_entry_info *e = NULL;
        envd_error *err = NULL;
        envd_status st = envd_fs_get_info(c, "/whoami", &e, &err);
        assert_int_equal(st, ENVD_UNAUTHENTICATED);
        assert_int_equal(envd_error_http_status(err), 401);
        if (kinds[i] == ENVD_TRANSPORT_CONNECT)
            assert_non_null(strstr(envd_error_message(err), "gateway: sandbox access denied"));
        envd_error_free(err);
        envd_client_free(c);

        c = test_gateway_client(w->rt, ports[i], "sbx-nowhere", kinds[i], 0);
        st = envd_fs_get_info(c, "/whoami", &e, &err);
        assert_int_equal(st, ENVD_UNAVAILABLE);
        assert_int_equal(envd_error_http_status(err), 502);
        if (kinds[i] == ENVD_TRANSPORT_CONNECT)
            assert_non_null(strstr(envd_error_message(err), "The sandbox was not found"));
        envd_error_free(err);
        /* /files through the gateway gets the same treatment */
        uint8_t *data = NULL;
        size_t len;
        if (kinds[i] == ENVD_TRANSPORT_CONNECT) {
            st = envd_files_read(c, "/whoami", NULL, &data, &len, &err);
            assert_int_equal(st, ENVD_UNAVAILABLE);
            assert_non_null(strstr(envd_error_message(err), "502"));
            envd_error_free(err);
        }
        envd_client_free(c);
    }
}

/* Transport auto against the grpc_pass port, first call for an unknown
 * sandbox: the gateway's 502 comes back as such (not an HTTP/1.1 error
 * from a fallback), and the endpoint is remembered as gRPC. */
static void auto_first_call_to_unknown_sandbox(void **state)
{
    world *w = *state;
    envd_runtime *rt;
    assert_int_equal(envd_runtime_new(NULL, &rt), ENVD_OK);
    envd_client *c =
        test_gateway_client(rt, w->gw.grpc_port, "sbx-nowhere", ENVD_TRANSPORT_AUTO, 0);
    envd_entry_info *e = NULL;
    envd_error *err = NULL;
    envd_status st = envd_fs_get_info(c, "/whoami", &e, &err);
    assert_int_equal(st, ENVD_UNAVAILABLE);
    assert_int_equal(envd_error_http_status(err), 502);
    assert_int_equal(envd_client_transport(c), ENVD_TRANSPORT_GRPC);
    envd_error_free(err);
    envd_client_free(c);
    envd_runtime_free(rt);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(http1_gateway_uses_connect),
        cmocka_unit_test(h2c_to_http1_gateway_uses_connect),
        cmocka_unit_test(grpc_gateway_uses_grpc),
        cmocka_unit_test(one_connection_for_many_sandboxes),
        cmocka_unit_test(gateway_errors_are_clear),
        cmocka_unit_test(auto_first_call_to_unknown_sandbox),
    };
    return cmocka_run_group_tests_name("gateway", tests, setup, teardown);
}
