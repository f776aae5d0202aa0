/* NewFromK8s end to end: the sandbox is resolved through the Kubernetes API
 * stub (tests/k8s), and a command runs on the reference envd server, which
 * only accepts the token that came from the Sandbox's annotation. */
#include "harness.h"

#include "../k8s/k8s_stub.h"
#include "envd/envd_k8s.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RUNTIME_TOKEN "e2e-runtime-token" /* tests/k8s/fixtures.json, e2e/runner */

typedef struct fixture {
    test_server srv;
    k8s_stub stub;
    envd_runtime *rt;
    envd_config *cfg; /* the server's address, and a token envd refuses */
    char kubeconfig[512];
} fixture;

static int setup(void **state)
{
    fixture *fx = calloc(1, sizeof(*fx));
    *state = fx;
    unsetenv("KUBERNETES_SERVICE_HOST");
    if (test_server_start(&fx->srv, "h1", RUNTIME_TOKEN) != 0 || k8s_stub_start(&fx->stub) != 0)
        return -1;
    if (k8s_write_kubeconfig(&fx->stub, "kubeconfig", "    token: tok-alice\n") != 0)
        return -1;
    k8s_path(&fx->stub, "kubeconfig", fx->kubeconfig, sizeof(fx->kubeconfig));
    fx->cfg = envd_config_new();
    envd_config_set_domain(fx->cfg, fx->srv.addr);
    envd_config_set_transport(fx->cfg, ENVD_TRANSPORT_CONNECT);
    envd_config_set_request_timeout_ms(fx->cfg, 20000);
    envd_config_set_runtime_token(fx->cfg, "not-the-token");
    return envd_runtime_new(NULL, &fx->rt) == ENVD_OK ? 0 : -1;
}

static int teardown(void **state)
{
    fixture *fx = *state;
    if (!fx)
        return 0;
    envd_runtime_free(fx->rt);
    envd_config_free(fx->cfg);
    k8s_stub_stop(&fx->stub);
    test_server_stop(&fx->srv);
    free(fx);
    return 0;
}

static void run_echo(envd_client *c, const char *word)
{
    char cmd[128], want[128];
    snprintf(cmd, sizeof(cmd), "echo %s", word);
    snprintf(want, sizeof(want), "%s\n", word);
    envd_error *err = NULL;
    envd_entry_info *e = NULL;
    envd_status st = envd_fs_get_info(c, "/", &e, &err); /* a unary call first */
    assert_envd_ok(st, err);
    envd_entry_info_free(e);
    envd_command_result *res = NULL;
    st = envd_commands_run(c, cmd, NULL, &res, &err);
    assert_envd_ok(st, err);
    assert_string_equal(res->stdout_data, want);
    assert_int_equal(res->exit_code, 0);
    envd_command_result_free(res);
}

static void resolve_then_run(void **state)
{
    fixture *fx = *state;
    /* the Go-style call: $KUBECONFIG, the context's namespace unused */
    setenv("KUBECONFIG", fx->kubeconfig, 1);
    envd_client *c = NULL;
    envd_error *err = NULL;
    envd_status st = envd_client_from_k8s(fx->rt, "e2e", "runner", fx->cfg, NULL, &c, &err);
    unsetenv("KUBECONFIG");
    assert_envd_ok(st, err);
    run_echo(c, "resolved-through-k8s");
    envd_client_free(c);

    /* the caller's own token is refused: it was the annotation's that worked */
    st = envd_client_new(fx->rt, "e2e--runner", fx->cfg, &c, &err);
    assert_envd_ok(st, err);
    envd_entry_info *e = NULL;
    st = envd_fs_get_info(c, "/", &e, &err);
    assert_int_equal(st, ENVD_UNAUTHENTICATED);
    assert_null(e);
    envd_error_free(err);
    envd_client_free(c);
}

static void async_then_run(void **state)
{
    fixture *fx = *state;
    envd_k8s_options *o = envd_k8s_options_new();
    envd_k8s_options_set_kubeconfig(o, fx->kubeconfig);
    envd_future *f = NULL;
    assert_int_equal(envd_client_from_k8s_async(fx->rt, "e2e", "runner", fx->cfg, o, &f),
                     ENVD_OK);
    envd_k8s_options_free(o);
    assert_int_equal(envd_future_wait(f, 15000), ENVD_OK);
    if (envd_future_status(f) != ENVD_OK)
        fail_msg("%s", envd_error_message(envd_future_error(f)));
    envd_client *c = envd_future_take_client(f);
    envd_future_free(f);
    run_echo(c, "async-through-k8s");
    envd_client_free(c);
}

static void config_file_then_run(void **state)
{
    fixture *fx = *state;
    char path[512];
    k8s_path(&fx->stub, "envd.yaml", path, sizeof(path));
    k8s_write(path,
              "domain: %s\n"
              "transport: connect\n"
              "request_timeout_ms: 20000\n"
              "runtime_token: not-the-token\n"
              "kubernetes: {kubeconfig: kubeconfig}\n"
              "sandboxes:\n"
              "  - {name: runner, k8s: e2e/runner}\n",
              fx->srv.addr);
    envd_config *cfg = NULL;
    envd_config_file *file = NULL;
    envd_error *err = NULL;
    envd_status st = envd_config_load_file(path, &cfg, &file, &err);
    assert_envd_ok(st, err);
    envd_client *c = NULL;
    st = envd_config_file_client(fx->rt, file, "runner", &c, &err);
    assert_envd_ok(st, err);
    run_echo(c, "configured-through-a-file");
    envd_client_free(c);
    envd_config_file_free(file);
    envd_config_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(resolve_then_run),
        cmocka_unit_test(async_then_run),
        cmocka_unit_test(config_file_then_run),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
