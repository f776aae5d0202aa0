/* SandboxClaims end to end: envd_k8s_claim against the Kubernetes API stub
 * (tests/k8s/stub.mjs), whose claim "controller" makes Sandboxes that all
 * point at the reference server, which accepts only the token the stub
 * puts in their annotation (the config's token is a wrong one).
 *
 * Facts relied on, from openkruise/agents api/v1alpha1/sandboxclaim_types.go
 * and the agents-api examples (the stub implements them; these tests see
 * them through the library):
 *   - SandboxClaim, agents.kruise.io/v1alpha1, plural sandboxclaims,
 *     namespaced; spec.templateName (required: the SandboxSet), replicas
 *     (default 1, minimum 1, immutable), claimTimeout (default 1m, a Go
 *     duration), waitReadyTimeout (30s), ttlAfterCompleted, labels,
 *     annotations, envVars;
 *   - status.phase Claiming | Completed; Completed also when claimTimeout
 *     ran out, then condition TimedOut is True; claimedReplicas; message;
 *   - claimed Sandboxes carry label agents.kruise.io/claim-name=<claim>
 *     (found with a labelSelector list), the token annotation
 *     agents.kruise.io/runtime-access-token and label
 *     agents.kruise.io/sandbox-id;
 *   - deleting the claim does not delete its Sandboxes ("only the
 *     SandboxClaim resource will be deleted"): release deletes them by
 *     label when asked. */
#include "harness.h"

#include "../k8s/k8s_stub.h"
#include "envd/envd_k8s.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define RUNTIME_TOKEN "e2e-runtime-token" /* tests/k8s/fixtures.json, claims.token */
#define NS "claims"

typedef struct fixture {
    test_server srv;
    k8s_stub stub;
    envd_runtime *rt;
    envd_config *cfg;      /* the server's address, and a token envd refuses */
    envd_k8s_options *k8s; /* alice */
    envd_k8s_options *mallory;
} fixture;

static envd_k8s_options *k8s_for(fixture *fx, const char *file, const char *token)
{
    char yaml[128], path[512];
    snprintf(yaml, sizeof(yaml), "    token: %s\n", token);
    if (k8s_write_kubeconfig(&fx->stub, file, yaml) != 0)
        return NULL;
    envd_k8s_options *o = envd_k8s_options_new();
    envd_k8s_options_set_kubeconfig(o, k8s_path(&fx->stub, file, path, sizeof(path)));
    envd_k8s_options_set_source(o, ENVD_K8S_SOURCE_KUBECONFIG);
    return o;
}

static int setup(void **state)
{
    fixture *fx = calloc(1, sizeof(*fx));
    *state = fx;
    if (test_server_start(&fx->srv, "h1", RUNTIME_TOKEN) != 0 || k8s_stub_start(&fx->stub) != 0)
        return -1;
    fx->k8s = k8s_for(fx, "alice", "tok-alice");
    fx->mallory = k8s_for(fx, "mallory", "tok-mallory");
    fx->cfg = envd_config_new();
    envd_config_set_domain(fx->cfg, fx->srv.addr);
    envd_config_set_transport(fx->cfg, ENVD_TRANSPORT_CONNECT);
    envd_config_set_request_timeout_ms(fx->cfg, 30000);
    envd_config_set_runtime_token(fx->cfg, "not-the-token");
    if (!fx->k8s || !fx->mallory)
        return -1;
    return envd_runtime_new(NULL, &fx->rt) == ENVD_OK ? 0 : -1;
}

static int teardown(void **state)
{
    fixture *fx = *state;
    if (!fx)
        return 0;
    envd_runtime_free(fx->rt);
    envd_config_free(fx->cfg);
    envd_k8s_options_free(fx->k8s);
    envd_k8s_options_free(fx->mallory);
    k8s_stub_stop(&fx->stub);
    test_server_stop(&fx->srv);
    free(fx);
    return 0;
}

static void run_echo(envd_client *c, int i)
{
    char cmd[64], want[64];
    snprintf(cmd, sizeof(cmd), "echo claimed-%d", i);
    snprintf(want, sizeof(want), "claimed-%d\n", i);
    envd_error *err = NULL;
    envd_command_result *res = NULL;
    envd_status st = envd_commands_run(c, cmd, NULL, &res, &err);
    assert_envd_ok(st, err);
    assert_string_equal(res->stdout_data, want);
    envd_command_result_free(res);
}

/* How many Sandboxes of NS carry the selector's labels. */
static size_t count_sandboxes(fixture *fx, const char *selector)
{
    envd_k8s_sandboxes *l = NULL;
    envd_error *err = NULL;
    envd_status st = envd_k8s_sandbox_list(fx->rt, fx->k8s, NS, selector, &l, &err);
    assert_envd_ok(st, err);
    size_t n = l->count;
    envd_k8s_sandboxes_free(l);
    return n;
}

static void release_all(fixture *fx, const envd_k8s_claimed *c)
{
    envd_error *err = NULL;
    envd_status st = envd_k8s_claim_release(fx->rt, fx->k8s, NS, c->name, 1, &err);
    assert_envd_ok(st, err);
    char sel[300];
    snprintf(sel, sizeof(sel), "agents.kruise.io/claim-name=%s", c->name);
    assert_int_equal(count_sandboxes(fx, sel), 0);
}

static void claim_fifty_and_run_in_each(void **state)
{
    fixture *fx = *state;
    envd_k8s_claim_options *co = envd_k8s_claim_options_new();
    assert_int_equal(envd_k8s_claim_options_set_replicas(co, 50), ENVD_OK);
    assert_int_equal(envd_k8s_claim_options_set_label(co, "team", "eval"), ENVD_OK);
    assert_int_equal(envd_k8s_claim_options_set_env(co, "MODE", "batch"), ENVD_OK);
    envd_k8s_claimed *c = NULL;
    envd_error *err = NULL;
    envd_status st = envd_k8s_claim(fx->rt, fx->k8s, NS, "pool-a", co, fx->cfg, &c, &err);
    envd_k8s_claim_options_free(co);
    assert_envd_ok(st, err);
    assert_non_null(c);
    assert_string_equal(c->namespace_, NS);
    assert_string_equal(c->template_name, "pool-a");
    assert_int_equal(strncmp(c->name, "pool-a-", 7), 0); /* the generated name */
    assert_int_equal(c->replicas, 50);
    assert_int_equal(c->claimed, 50);
    assert_int_equal(c->count, 50);
    for (size_t i = 0; i < c->count; i++) {
        assert_string_equal(c->sandboxes[i].token, RUNTIME_TOKEN);
        assert_int_equal(strncmp(c->sandboxes[i].id, "sbx-pool-a-", 11), 0);
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(c->sandboxes[i].id, c->sandboxes[j].id);
        run_echo(c->clients[i], (int)i);
    }
    /* the spec's labels went onto the claimed Sandboxes */
    char sel[300];
    snprintf(sel, sizeof(sel), "agents.kruise.io/claim-name=%s,team=eval", c->name);
    assert_int_equal(count_sandboxes(fx, sel), 50);
    /* a client taken out of the result outlives it */
    envd_client *kept = c->clients[7];
    c->clients[7] = NULL;
    char name[256];
    snprintf(name, sizeof(name), "%s", c->name);
    envd_k8s_claimed_free(c);
    run_echo(kept, 7);
    envd_client_free(kept);

    /* release without the Sandboxes: the claim goes, they stay */
    st = envd_k8s_claim_release(fx->rt, fx->k8s, NS, name, 0, &err);
    assert_envd_ok(st, err);
    snprintf(sel, sizeof(sel), "agents.kruise.io/claim-name=%s", name);
    assert_int_equal(count_sandboxes(fx, sel), 50);
    st = envd_k8s_claim_release(fx->rt, fx->k8s, NS, name, 0, &err);
    assert_int_equal(st, ENVD_NOT_FOUND);
    assert_non_null(strstr(envd_error_message(err), "not found"));
    envd_error_free(err);
    /* with them: a claim already gone is fine, and the Sandboxes go */
    st = envd_k8s_claim_release(fx->rt, fx->k8s, NS, name, 1, &err);
    assert_envd_ok(st, err);
    assert_int_equal(count_sandboxes(fx, sel), 0);
}

static void many_claims_in_flight(void **state)
{
    fixture *fx = *state;
    enum { N = 20 };
    envd_future *fs[N];
    envd_k8s_claim_options *co = envd_k8s_claim_options_new();
    envd_k8s_claim_options_set_replicas(co, 3);
    for (int i = 0; i < N; i++)
        assert_int_equal(envd_k8s_claim_async(fx->rt, fx->k8s, NS, "pool-b", co, fx->cfg, &fs[i]),
                         ENVD_OK);
    envd_k8s_claim_options_free(co);
    assert_int_equal(envd_future_wait_all(fs, N, 60000), ENVD_OK);
    envd_k8s_claimed *cs[N];
    envd_future *rel[N];
    for (int i = 0; i < N; i++) {
        assert_int_equal(envd_future_status(fs[i]), ENVD_OK);
        cs[i] = envd_future_take_k8s_claimed(fs[i]);
        assert_non_null(cs[i]);
        assert_int_equal(cs[i]->count, 3);
        run_echo(cs[i]->clients[i % 3], i);
        envd_future_free(fs[i]);
        for (int j = 0; j < i; j++)
            assert_string_not_equal(cs[i]->name, cs[j]->name);
        assert_int_equal(envd_k8s_claim_release_async(fx->rt, fx->k8s, NS, cs[i]->name, 1, &rel[i]),
                         ENVD_OK);
    }
    assert_int_equal(envd_future_wait_all(rel, N, 60000), ENVD_OK);
    for (int i = 0; i < N; i++) {
        assert_int_equal(envd_future_status(rel[i]), ENVD_OK);
        envd_future_free(rel[i]);
        envd_k8s_claimed_free(cs[i]);
    }
    assert_int_equal(count_sandboxes(fx, "agents.kruise.io/claim-name"), 0);
}

static void partial_claim_is_reported(void **state)
{
    fixture *fx = *state;
    envd_k8s_claim_options *co = envd_k8s_claim_options_new();
    envd_k8s_claim_options_set_replicas(co, 4);
    envd_k8s_claim_options_set_claim_timeout_ms(co, 1000);
    envd_k8s_claim_options_set_name(co, "half-claim");
    envd_k8s_claimed *c = NULL;
    envd_error *err = NULL;
    envd_status st = envd_k8s_claim(fx->rt, fx->k8s, NS, "half-fills", co, fx->cfg, &c, &err);
    envd_k8s_claim_options_free(co);
    assert_int_equal(st, ENVD_DEADLINE_EXCEEDED);
    const char *m = envd_error_message(err);
    assert_non_null(strstr(m, "claim " NS "/half-claim of template 'half-fills'"));
    assert_non_null(strstr(m, "TimedOut"));
    assert_non_null(strstr(m, "2 of 4 sandboxes claimed"));
    assert_non_null(strstr(m, "claim timeout 1s reached")); /* the controller's message */
    envd_error_free(err);
    /* what was claimed is there and works */
    assert_non_null(c);
    assert_string_equal(c->name, "half-claim");
    assert_int_equal(c->claimed, 2);
    assert_int_equal(c->count, 2);
    run_echo(c->clients[0], 0);
    run_echo(c->clients[1], 1);
    /* the name is taken while the claim exists: 409 with the server's words */
    co = envd_k8s_claim_options_new();
    envd_k8s_claim_options_set_name(co, "half-claim");
    envd_k8s_claimed *dup = NULL;
    st = envd_k8s_claim(fx->rt, fx->k8s, NS, "pool-a", co, fx->cfg, &dup, &err);
    envd_k8s_claim_options_free(co);
    assert_int_equal(st, ENVD_ALREADY_EXISTS);
    assert_null(dup);
    assert_non_null(strstr(envd_error_message(err), "\"half-claim\" already exists"));
    envd_error_free(err);
    release_all(fx, c);
    envd_k8s_claimed_free(c);
}

static void timed_out_claim(void **state)
{
    fixture *fx = *state;
    envd_k8s_claim_options *co = envd_k8s_claim_options_new();
    envd_k8s_claim_options_set_replicas(co, 3);
    envd_k8s_claim_options_set_claim_timeout_ms(co, 1500);
    envd_future *f = NULL;
    assert_int_equal(envd_k8s_claim_async(fx->rt, fx->k8s, NS, "never-fills", co, fx->cfg, &f),
                     ENVD_OK);
    envd_k8s_claim_options_free(co);
    assert_int_equal(envd_future_wait(f, 60000), ENVD_OK);
    assert_int_equal(envd_future_status(f), ENVD_DEADLINE_EXCEEDED);
    const char *m = envd_error_message(envd_future_error(f));
    assert_non_null(strstr(m, "of template 'never-fills'"));
    assert_non_null(strstr(m, "0 of 3 sandboxes claimed"));
    envd_k8s_claimed *c = envd_future_take_k8s_claimed(f);
    envd_future_free(f);
    assert_non_null(c); /* the claim exists: its name, to release it */
    assert_int_equal(c->count, 0);
    assert_int_equal(c->claimed, 0);
    release_all(fx, c);
    envd_k8s_claimed_free(c);
}

/* The client-side bound: a claim that never completes (the wait is shorter
 * than the claim timeout) ends with what it has. */
static void wait_bound(void **state)
{
    fixture *fx = *state;
    envd_k8s_claim_options *co = envd_k8s_claim_options_new();
    envd_k8s_claim_options_set_replicas(co, 2);
    envd_k8s_claim_options_set_wait_ms(co, 700);
    envd_k8s_claimed *c = NULL;
    envd_error *err = NULL;
    envd_status st = envd_k8s_claim(fx->rt, fx->k8s, NS, "never-fills", co, fx->cfg, &c, &err);
    envd_k8s_claim_options_free(co);
    assert_int_equal(st, ENVD_DEADLINE_EXCEEDED);
    assert_non_null(strstr(envd_error_message(err), "not completed after 700 ms (phase \"Claiming\")"));
    envd_error_free(err);
    assert_non_null(c);
    release_all(fx, c);
    envd_k8s_claimed_free(c);
}

static void forbidden_names_verb_and_resource(void **state)
{
    fixture *fx = *state;
    envd_k8s_claimed *c = NULL;
    envd_error *err = NULL;
    envd_status st = envd_k8s_claim(fx->rt, fx->mallory, NS, "pool-a", NULL, fx->cfg, &c, &err);
    assert_int_equal(st, ENVD_PERMISSION_DENIED);
    assert_null(c); /* nothing was created */
    const char *m = envd_error_message(err);
    assert_non_null(strstr(m, "403 Forbidden"));
    assert_non_null(strstr(m, "needs the RBAC verb \"create\" on resource \"sandboxclaims\""));
    assert_non_null(strstr(m, "of template 'pool-a'"));
    envd_error_free(err);
    st = envd_k8s_claim_release(fx->rt, fx->mallory, NS, "some-claim", 1, &err);
    assert_int_equal(st, ENVD_PERMISSION_DENIED);
    assert_non_null(strstr(envd_error_message(err), "verb \"delete\" on resource \"sandboxclaims\""));
    envd_error_free(err);
}

static void bad_arguments(void **state)
{
    fixture *fx = *state;
    envd_k8s_claimed *c = NULL;
    envd_error *err = NULL;
    envd_status st = envd_k8s_claim(fx->rt, fx->k8s, NS, "Not_A_Name", NULL, fx->cfg, &c, &err);
    assert_int_equal(st, ENVD_INVALID_ARGUMENT);
    assert_non_null(strstr(envd_error_message(err), "Not_A_Name"));
    envd_error_free(err);
    st = envd_k8s_claim(fx->rt, fx->k8s, "Bad NS", "pool-a", NULL, fx->cfg, &c, &err);
    assert_int_equal(st, ENVD_INVALID_ARGUMENT);
    envd_error_free(err);
    envd_k8s_claim_options *co = envd_k8s_claim_options_new();
    assert_int_equal(envd_k8s_claim_options_set_replicas(co, 0), ENVD_OUT_OF_RANGE);
    assert_int_equal(envd_k8s_claim_options_set_name(co, "UPPER"), ENVD_INVALID_ARGUMENT);
    assert_int_equal(envd_k8s_claim_options_set_label(co, "", "x"), ENVD_INVALID_ARGUMENT);
    assert_int_equal(envd_k8s_claim_options_set_claim_timeout_ms(co, -1), ENVD_OUT_OF_RANGE);
    envd_k8s_claim_options_free(co);
    st = envd_k8s_claim_release(fx->rt, fx->k8s, NS, NULL, 0, &err);
    assert_int_equal(st, ENVD_INVALID_ARGUMENT);
    envd_error_free(err);
    /* defaults: one replica */
    st = envd_k8s_claim(fx->rt, fx->k8s, NS, "pool-c", NULL, NULL, &c, &err);
    assert_envd_ok(st, err);
    assert_int_equal(c->count, 1);
    release_all(fx, c);
    envd_k8s_claimed_free(c);
}

/* Credentials from an exec plugin: fetched on the runtime's worker before
 * the first request of the claim, then every request carries them. */
static void claim_with_exec_plugin(void **state)
{
    fixture *fx = *state;
    char plugin[512], path[512];
    k8s_path(&fx->stub, "plugin.sh", plugin, sizeof(plugin));
    assert_int_equal(k8s_write(plugin, "#!/bin/sh\n"
                                       "printf '{\"apiVersion\":\"client.authentication.k8s.io/v1\","
                                       "\"kind\":\"ExecCredential\",\"status\":{\"token\":"
                                       "\"tok-exec-good\"}}'\n"),
                     0);
    assert_int_equal(chmod(plugin, 0755), 0);
    char yaml[800];
    snprintf(yaml, sizeof(yaml),
             "    exec:\n"
             "      apiVersion: client.authentication.k8s.io/v1\n"
             "      command: %s\n"
             "      interactiveMode: Never\n",
             plugin);
    assert_int_equal(k8s_write_kubeconfig(&fx->stub, "exec", yaml), 0);
    envd_k8s_options *o = envd_k8s_options_new();
    envd_k8s_options_set_kubeconfig(o, k8s_path(&fx->stub, "exec", path, sizeof(path)));
    envd_k8s_claim_options *co = envd_k8s_claim_options_new();
    envd_k8s_claim_options_set_replicas(co, 2);
    envd_k8s_claimed *c = NULL;
    envd_error *err = NULL;
    envd_status st = envd_k8s_claim(fx->rt, o, NS, "pool-d", co, fx->cfg, &c, &err);
    envd_k8s_claim_options_free(co);
    assert_envd_ok(st, err);
    assert_int_equal(c->count, 2);
    run_echo(c->clients[1], 1);
    st = envd_k8s_claim_release(fx->rt, o, NS, c->name, 1, &err);
    assert_envd_ok(st, err);
    envd_k8s_claimed_free(c);
    envd_k8s_options_free(o);
}

/* Cancelling stops the wait at once (between polls); freeing the runtime
 * ends a waiting claim too. */
static void cancel_and_runtime_free(void **state)
{
    fixture *fx = *state;
    envd_k8s_claim_options *co = envd_k8s_claim_options_new();
    envd_k8s_claim_options_set_claim_timeout_ms(co, 120000);
    envd_k8s_claim_options_set_name(co, "waits-long");
    envd_future *f = NULL;
    assert_int_equal(envd_k8s_claim_async(fx->rt, fx->k8s, NS, "never-fills", co, fx->cfg, &f),
                     ENVD_OK);
    usleep(600 * 1000); /* created, polling */
    envd_future_cancel(f);
    assert_int_equal(envd_future_wait(f, 20000), ENVD_OK);
    assert_int_equal(envd_future_status(f), ENVD_CANCELED);
    envd_future_free(f);

    envd_runtime *rt = NULL;
    assert_int_equal(envd_runtime_new(NULL, &rt), ENVD_OK);
    envd_k8s_claim_options_set_name(co, "waits-longer");
    assert_int_equal(envd_k8s_claim_async(rt, fx->k8s, NS, "never-fills", co, fx->cfg, &f),
                     ENVD_OK);
    envd_k8s_claim_options_free(co);
    usleep(600 * 1000);
    envd_runtime_free(rt);
    assert_int_equal(envd_future_wait(f, 20000), ENVD_OK);
    assert_int_equal(envd_future_status(f), ENVD_CANCELED);
    envd_future_free(f);
    envd_error *err = NULL;
    assert_int_equal(envd_k8s_claim_release(fx->rt, fx->k8s, NS, "waits-long", 1, &err), ENVD_OK);
    assert_int_equal(envd_k8s_claim_release(fx->rt, fx->k8s, NS, "waits-longer", 1, &err),
                     ENVD_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(claim_fifty_and_run_in_each),
        cmocka_unit_test(many_claims_in_flight),
        cmocka_unit_test(partial_claim_is_reported),
        cmocka_unit_test(timed_out_claim),
        cmocka_unit_test(wait_bound),
        cmocka_unit_test(forbidden_names_verb_and_resource),
        cmocka_unit_test(bad_arguments),
        cmocka_unit_test(claim_with_exec_plugin),
        cmocka_unit_test(cancel_and_runtime_free),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
