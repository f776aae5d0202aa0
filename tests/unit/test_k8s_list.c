/* envd_k8s_sandbox_list against the HTTPS Kubernetes API stub
 * (tests/k8s/stub.mjs): label selectors (equality, inequality, existence),
 * the context's namespace, the async form on a runtime, and the errors a
 * user acts on (403, a namespace without the CRD, bad arguments). */
/* cmocka.h needs these first */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include "../k8s/k8s_stub.h"
#include "envd/envd_k8s.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static k8s_stub stub;
static envd_runtime *rt;
static envd_k8s_options *alice, *mallory;

static envd_k8s_options *opts_for(const char *file, const char *user_yaml)
{
    char path[512];
    k8s_write_kubeconfig(&stub, file, user_yaml);
    envd_k8s_options *o = envd_k8s_options_new();
    envd_k8s_options_set_kubeconfig(o, k8s_path(&stub, file, path, sizeof(path)));
    return o;
}

static int setup(void **state)
{
    (void)state;
    unsetenv("KUBECONFIG");
    unsetenv("KUBERNETES_SERVICE_HOST");
    if (k8s_stub_start(&stub) != 0)
        return -1;
    setenv("HOME", stub.dir, 1);
    alice = opts_for("alice.yaml", "    token: tok-alice\n");
    mallory = opts_for("mallory.yaml", "    token: tok-mallory\n");
    return envd_runtime_new(NULL, &rt) == ENVD_OK ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    envd_runtime_free(rt);
    envd_k8s_options_free(alice);
    envd_k8s_options_free(mallory);
    k8s_stub_stop(&stub);
    return 0;
}

static envd_k8s_sandboxes *list(const char *ns, const char *selector)
{
    envd_k8s_sandboxes *l = NULL;
    envd_error *err = NULL;
    envd_status st = envd_k8s_sandbox_list(rt, alice, ns, selector, &l, &err);
    assert_int_equal(st, ENVD_OK);
    assert_null(err);
    assert_non_null(l);
    return l;
}

static void selectors(void **state)
{
    (void)state;
    envd_k8s_sandboxes *l = list("bulk", "app=bulk,shard=1");
    assert_int_equal(l->count, 100); /* 400 bulk sandboxes, shard = index mod 4 */
    for (size_t i = 0; i < l->count; i++) {
        const envd_k8s_sandbox *s = &l->items[i];
        int n = -1;
        assert_int_equal(sscanf(s->name, "sbx-%d", &n), 1);
        assert_int_equal(n % 4, 1);
        assert_string_equal(s->namespace_, "bulk");
        char want[64];
        snprintf(want, sizeof(want), "bulk--sbx-%d", n);
        assert_string_equal(s->id, want);
        snprintf(want, sizeof(want), "bulk-token-%d", n);
        assert_string_equal(s->token, want);
        assert_int_equal(s->running, 1);
    }
    envd_k8s_sandboxes_free(l);
    l = list("bulk", "shard!=0,app");
    assert_int_equal(l->count, 300);
    envd_k8s_sandboxes_free(l);
    l = list("bulk", "!app");
    assert_int_equal(l->count, 0);
    envd_k8s_sandboxes_free(l);
    /* no selector: every Sandbox of the namespace, running or not */
    l = list("default", NULL);
    assert_int_equal(l->count, 6);
    int running = 0;
    for (size_t i = 0; i < l->count; i++)
        running += l->items[i].running;
    assert_true(running > 0 && running < 6);
    envd_k8s_sandboxes_free(l);
}

static void async_and_context_namespace(void **state)
{
    (void)state;
    envd_k8s_options *o = opts_for("ctx.yaml", "    token: tok-alice\n");
    envd_future *f = NULL;
    /* NULL namespace: the kubeconfig context's (default here) */
    assert_int_equal(envd_k8s_sandbox_list_async(rt, o, NULL, "", &f), ENVD_OK);
    assert_int_equal(envd_future_wait(f, 30000), ENVD_OK);
    assert_int_equal(envd_future_status(f), ENVD_OK);
    const envd_k8s_sandboxes *l = envd_future_k8s_sandboxes(f);
    assert_non_null(l);
    assert_int_equal(l->count, 6);
    int web = 0;
    for (size_t i = 0; i < l->count; i++)
        web += strcmp(l->items[i].name, "web") == 0 &&
               strcmp(l->items[i].token, "tok-web-runtime") == 0;
    assert_int_equal(web, 1);
    envd_future_free(f);
    envd_k8s_options_free(o);
}

static void errors(void **state)
{
    (void)state;
    envd_k8s_sandboxes *l = (envd_k8s_sandboxes *)1;
    envd_error *err = NULL;
    assert_int_equal(envd_k8s_sandbox_list(rt, mallory, "bulk", "app", &l, &err),
                     ENVD_PERMISSION_DENIED);
    assert_null(l);
    assert_non_null(strstr(envd_error_message(err), "failed to list sandboxes in bulk"));
    envd_error_free(err);
    err = NULL;
    assert_int_equal(envd_k8s_sandbox_list(rt, alice, "nocrd", "app", &l, &err), ENVD_NOT_FOUND);
    envd_error_free(err);
    err = NULL;
    assert_int_equal(envd_k8s_sandbox_list(NULL, alice, "bulk", "app", &l, &err), ENVD_E_USAGE);
    assert_non_null(strstr(envd_error_message(err), "runtime is NULL"));
    envd_error_free(err);
    envd_future *f = (envd_future *)1;
    assert_int_equal(envd_k8s_sandbox_list_async(rt, alice, "Bad_NS", "app", &f),
                     ENVD_INVALID_ARGUMENT);
    assert_null(f);
    envd_k8s_sandboxes_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(selectors),
        cmocka_unit_test(async_and_context_namespace),
        cmocka_unit_test(errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
