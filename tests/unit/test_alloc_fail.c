/* Allocation failures, every one in turn: for each operation below, make the
 * 1st, 2nd, ... allocation of the library (envd_malloc and friends, on any
 * thread) fail, until the operation runs with no failure injected. Each run
 * must end in ENVD_OK or a clean ENVD_E_NOMEM, never hang, and leak nothing
 * (LSan checks at exit in the ASan build). Allocation sites that still call
 * libc directly are not reached yet; once their area switches to
 * envd_malloc this test covers them with no change here.
 *
 * To cover another operation: write `static envd_status op_x(void)` that
 * does it and undoes it whatever happens (return its status, ENVD_E_TIMEOUT
 * when something hung), and add a row to `ops`. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/future.h"
#include "envd/envd.h"
#include "peer_server.h"
#include "../k8s/k8s_stub.h"

#include <stdio.h>

static peer_proc peer; /* the reference server the unary calls talk to */
static k8s_stub stub;  /* the Kubernetes API for the lookup */
static char kubeconfig[512];

/* Config: new and a few setters that copy strings into lists. */
static envd_status op_config(void)
{
    envd_config *cfg = envd_config_new();
    if (!cfg)
        return ENVD_E_NOMEM;
    envd_status s = envd_config_set_domain(cfg, "127.0.0.1:1234");
    if (s == ENVD_OK)
        s = envd_config_set_header(cfg, "X-Trace", "abc");
    if (s == ENVD_OK)
        s = envd_config_set_header(cfg, "X-Trace", "def"); /* replaces */
    if (s == ENVD_OK)
        s = envd_config_set_user(cfg, "user");
    if (s == ENVD_OK)
        s = envd_config_set_runtime_token(cfg, "token");
    envd_config_free(cfg);
    return s;
}

/* Runtime: every thread and engine, started and stopped. */
static envd_status op_runtime(void)
{
    envd_config *cfg = envd_config_new();
    if (!cfg)
        return ENVD_E_NOMEM;
    envd_status s = envd_config_set_workers(cfg, 2);
    envd_runtime *rt = NULL;
    if (s == ENVD_OK)
        s = envd_runtime_new(cfg, &rt);
    envd_config_free(cfg);
    if (s == ENVD_OK)
        s = envd_runtime_free(rt);
    return s;
}

static void note_cb(envd_future *f, void *ud)
{
    (void)f;
    ++*(int *)ud;
}

/* Futures: callback, wait-any bookkeeping, an error moved out. */
static envd_status op_future(void)
{
    envd_future *fs[2] = {envd_future_create(0), envd_future_create(0)};
    envd_status s = fs[0] && fs[1] ? ENVD_OK : ENVD_E_NOMEM;
    int calls = 0;
    if (s == ENVD_OK)
        s = envd_future_on_complete(fs[1], note_cb, &calls);
    if (fs[1])
        envd_future_complete(fs[1], NULL, NULL,
                             envd_error_new(ENVD_NOT_FOUND, ENVD_TRANSPORT_NONE, 0, "gone"));
    size_t idx = 0;
    if (s == ENVD_OK)
        s = envd_future_wait_any(fs, 2, 1000, &idx);
    envd_error *err = NULL;
    if (s == ENVD_OK) {
        s = envd_future_get(fs[1], 0, &err);
        /* the error is the operation's or the one kept when there was no
         * memory for it: either way it arrives */
        s = s == ENVD_NOT_FOUND && err && calls == 1 ? ENVD_OK : s;
    }
    envd_error_free(err);
    if (fs[0])
        envd_future_complete(fs[0], NULL, NULL, NULL);
    envd_future_free(fs[0]);
    envd_future_free(fs[1]);
    return s;
}

/* A new runtime and client on the peer over one transport, as an operation
 * that needs a server starts; both NULL unless ENVD_OK. */
static envd_status connect_peer(envd_transport_kind kind, envd_runtime **rt, envd_client **c)
{
    *rt = NULL;
    *c = NULL;
    envd_config *cfg = envd_config_new();
    if (!cfg)
        return ENVD_E_NOMEM;
    envd_status s = envd_config_set_domain(cfg, peer.addr);
    if (s == ENVD_OK)
        s = envd_config_set_transport(cfg, kind);
    if (s == ENVD_OK)
        s = envd_config_set_workers(cfg, 1);
    if (s == ENVD_OK)
        s = envd_runtime_new(cfg, rt);
    if (s == ENVD_OK)
        s = envd_client_new(*rt, NULL, cfg, c, NULL);
    envd_config_free(cfg);
    if (s != ENVD_OK) {
        envd_runtime_free(*rt);
        *rt = NULL;
    }
    return s;
}

/* A unary call over one transport, from a new runtime and client. */
static envd_status unary_over(envd_transport_kind kind)
{
    envd_runtime *rt;
    envd_client *c;
    envd_status s = connect_peer(kind, &rt, &c);
    envd_future *f = NULL;
    if (s == ENVD_OK)
        s = envd_fs_exists_async(c, "/", &f);
    if (s == ENVD_OK) {
        s = envd_future_get(f, 20000, NULL); /* ENVD_E_TIMEOUT: it hung */
        if (s == ENVD_OK && envd_future_bool(f) != 1)
            s = ENVD_E_USAGE;
    }
    envd_future_free(f);
    envd_client_free(c);
    envd_runtime_free(rt);
    return s;
}

static envd_status op_unary_grpc(void) { return unary_over(ENVD_TRANSPORT_GRPC); }
static envd_status op_unary_connect(void) { return unary_over(ENVD_TRANSPORT_CONNECT); }

/* A /files write then a read of it into memory (Connect transport, plain
 * HTTP for the files), from a new runtime and client. */
static envd_status op_files(void)
{
    envd_runtime *rt;
    envd_client *c;
    envd_status s = connect_peer(ENVD_TRANSPORT_CONNECT, &rt, &c);
    if (s == ENVD_OK)
        s = envd_files_write(c, "/alloc-fail.txt", "seam", 4, NULL, NULL, NULL);
    uint8_t *d = NULL;
    size_t n = 0;
    if (s == ENVD_OK)
        s = envd_files_read(c, "/alloc-fail.txt", NULL, &d, &n, NULL);
    if (s == ENVD_OK && (n != 4 || memcmp(d, "seam", 4) != 0))
        s = ENVD_E_USAGE;
    free(d);
    envd_client_free(c);
    envd_runtime_free(rt);
    return s;
}

/* A command run with output on both streams, from a new runtime and
 * client; a non-zero exit would be ENVD_E_COMMAND_EXIT, so the command
 * exits 0 and the output is checked. */
static envd_status run_over(envd_transport_kind kind)
{
    envd_runtime *rt;
    envd_client *c;
    envd_status s = connect_peer(kind, &rt, &c);
    envd_command_result *res = NULL;
    if (s == ENVD_OK)
        s = envd_commands_run(c, "echo out; echo err >&2", NULL, &res, NULL);
    if (s == ENVD_OK && (res->exit_code != 0 || strcmp(res->stdout_data, "out\n") != 0 ||
                         strcmp(res->stderr_data, "err\n") != 0))
        s = ENVD_E_USAGE;
    envd_command_result_free(res);
    envd_client_free(c);
    envd_runtime_free(rt);
    return s;
}

static envd_status op_run_grpc(void) { return run_over(ENVD_TRANSPORT_GRPC); }
static envd_status op_run_connect(void) { return run_over(ENVD_TRANSPORT_CONNECT); }

/* A Sandbox lookup over HTTPS with a kubeconfig token, on the runtime's
 * Kubernetes worker and curl engine, ending in a client. */
static envd_status op_k8s_lookup(void)
{
    envd_runtime *rt = NULL;
    envd_status s = envd_runtime_new(NULL, &rt);
    envd_k8s_options *o = s == ENVD_OK ? envd_k8s_options_new() : NULL;
    if (s == ENVD_OK && !o)
        s = ENVD_E_NOMEM;
    if (s == ENVD_OK)
        s = envd_k8s_options_set_kubeconfig(o, kubeconfig);
    envd_client *c = NULL;
    envd_error *err = NULL;
    if (s == ENVD_OK)
        s = envd_client_from_k8s(rt, "default", "web", NULL, o, &c, &err);
    if (s != ENVD_OK && s != ENVD_E_NOMEM)
        printf("Kubernetes lookup: %s\n", err ? envd_error_message(err) : "(no error)");
    envd_error_free(err);
    if (s == ENVD_OK && !c)
        s = ENVD_E_USAGE;
    envd_client_free(c);
    envd_k8s_options_free(o);
    envd_runtime_free(rt);
    return s;
}

static const struct {
    const char *name;
    envd_status (*run)(void);
} ops[] = {
    {"config new + setters", op_config},
    {"runtime new + free", op_runtime},
    {"future lifecycle", op_future},
    {"unary call (gRPC)", op_unary_grpc},
    {"unary call (Connect)", op_unary_connect},
    {"/files write + read", op_files},
    {"run with output (gRPC)", op_run_grpc},
    {"run with output (Connect)", op_run_connect},
    {"Kubernetes lookup", op_k8s_lookup},
};

static void every_allocation_fails_in_turn(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        long n = 1;
        for (;; n++) {
            envd_alloc_test_fail(n);
            envd_status s = ops[i].run();
            int injected = envd_alloc_test_fired();
            envd_alloc_test_fail(0);
            if (!injected) {
                if (s != ENVD_OK)
                    fail_msg("%s: %s with no failure injected", ops[i].name, envd_strerror(s));
                break;
            }
            if (s != ENVD_OK && s != ENVD_E_NOMEM)
                fail_msg("%s: allocation %ld failed: got %s, want ENVD_E_NOMEM", ops[i].name, n,
                         envd_strerror(s));
        }
        /* sites seen: the last n ran clean, so n - 1 allocations failed */
        printf("%-24s %ld allocation sites failed in turn\n", ops[i].name, n - 1);
        if (n == 1)
            fail_msg("%s: no allocation went through the seam", ops[i].name);
    }
}

static int start_peer(void **state)
{
    (void)state;
    if (k8s_stub_start(&stub) != 0 ||
        k8s_write_kubeconfig(&stub, "token.yaml", "    token: tok-alice\n") != 0)
        return -1;
    k8s_path(&stub, "token.yaml", kubeconfig, sizeof kubeconfig);
    return peer_spawn(&peer, "both", NULL, NULL);
}

static int stop_peer(void **state)
{
    (void)state;
    peer_stop(&peer);
    k8s_stub_stop(&stub);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_allocation_fails_in_turn),
    };
    return cmocka_run_group_tests(tests, start_peer, stop_peer);
}
