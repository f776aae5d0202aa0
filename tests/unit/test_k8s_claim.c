/* The SandboxClaim's pieces without a server: the body sent (field names
 * and Go durations of openkruise/agents' SandboxClaimSpec), the generated
 * name, the option setters' refusals, and the error answers in the words
 * of the request (RBAC verb and resource, 404, 409, 422). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "k8s/claim.h"
#include "k8s/k8s.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static json_t *body_of(const envd_k8s_claim_options *o)
{
    char *text = envd_k8s_claim_body(o, "team-a", "c-1", "pool-a");
    assert_non_null(text);
    json_t *j = json_loads(text, 0, NULL);
    free(text);
    assert_non_null(j);
    return j;
}

static const char *str(json_t *j, const char *path1, const char *path2, const char *key)
{
    json_t *o = path1 ? json_object_get(j, path1) : j;
    if (path2)
        o = json_object_get(o, path2);
    return json_string_value(json_object_get(o, key));
}

static void body_defaults(void **state)
{
    (void)state;
    envd_k8s_claim_options *o = envd_k8s_claim_options_new();
    json_t *j = body_of(o);
    assert_string_equal(str(j, NULL, NULL, "apiVersion"), "agents.kruise.io/v1alpha1");
    assert_string_equal(str(j, NULL, NULL, "kind"), "SandboxClaim");
    assert_string_equal(str(j, "metadata", NULL, "name"), "c-1");
    assert_string_equal(str(j, "metadata", NULL, "namespace"), "team-a");
    json_t *spec = json_object_get(j, "spec");
    assert_string_equal(json_string_value(json_object_get(spec, "templateName")), "pool-a");
    assert_int_equal(json_integer_value(json_object_get(spec, "replicas")), 1);
    /* the server's defaults are left to the server */
    assert_null(json_object_get(spec, "claimTimeout"));
    assert_null(json_object_get(spec, "waitReadyTimeout"));
    assert_null(json_object_get(spec, "labels"));
    assert_null(json_object_get(spec, "envVars"));
    json_decref(j);
    envd_k8s_claim_options_free(o);
}

static void body_fields(void **state)
{
    (void)state;
    envd_k8s_claim_options *o = envd_k8s_claim_options_new();
    assert_int_equal(envd_k8s_claim_options_set_replicas(o, 50), ENVD_OK);
    assert_int_equal(envd_k8s_claim_options_set_claim_timeout_ms(o, 90000), ENVD_OK);
    assert_int_equal(envd_k8s_claim_options_set_wait_ready_timeout_ms(o, 1500), ENVD_OK);
    assert_int_equal(envd_k8s_claim_options_set_label(o, "team", "x"), ENVD_OK);
    assert_int_equal(envd_k8s_claim_options_set_label(o, "team", "eval"), ENVD_OK); /* replaced */
    assert_int_equal(envd_k8s_claim_options_set_env(o, "A", "1\"quoted\""), ENVD_OK);
    envd_k8s_claim_options *copy = NULL;
    assert_int_equal(envd_k8s_claim_options_copy(o, &copy), ENVD_OK);
    envd_k8s_claim_options_free(o);
    json_t *j = body_of(copy);
    json_t *spec = json_object_get(j, "spec");
    assert_int_equal(json_integer_value(json_object_get(spec, "replicas")), 50);
    assert_string_equal(str(j, "spec", NULL, "claimTimeout"), "90s"); /* Go durations */
    assert_string_equal(str(j, "spec", NULL, "waitReadyTimeout"), "1500ms");
    assert_string_equal(str(j, "spec", "labels", "team"), "eval");
    assert_int_equal(json_object_size(json_object_get(spec, "labels")), 1);
    assert_string_equal(str(j, "spec", "envVars", "A"), "1\"quoted\"");
    json_decref(j);
    envd_k8s_claim_options_free(copy);
}

static void setters_refuse(void **state)
{
    (void)state;
    envd_k8s_claim_options *o = envd_k8s_claim_options_new();
    assert_int_equal(envd_k8s_claim_options_set_replicas(o, 0), ENVD_OUT_OF_RANGE);
    assert_int_equal(envd_k8s_claim_options_set_replicas(o, 10001), ENVD_OUT_OF_RANGE);
    assert_int_equal(envd_k8s_claim_options_set_name(o, "Bad_Name"), ENVD_INVALID_ARGUMENT);
    assert_int_equal(envd_k8s_claim_options_set_name(o, "ok.name-1"), ENVD_OK);
    assert_int_equal(envd_k8s_claim_options_set_name(o, NULL), ENVD_OK); /* generated again */
    assert_int_equal(envd_k8s_claim_options_set_env(o, NULL, "v"), ENVD_INVALID_ARGUMENT);
    assert_int_equal(envd_k8s_claim_options_set_env(o, "k", NULL), ENVD_INVALID_ARGUMENT);
    assert_int_equal(envd_k8s_claim_options_set_wait_ms(o, -5), ENVD_OUT_OF_RANGE);
    assert_int_equal(envd_k8s_claim_options_set_replicas(NULL, 1), ENVD_E_USAGE);
    envd_k8s_claim_options_free(o);
    envd_k8s_claim_options_free(NULL);
    envd_k8s_claimed_free(NULL);
}

static void generated_names(void **state)
{
    (void)state;
    char *a = envd_k8s_claim_name("pool-a"), *b = envd_k8s_claim_name("pool-a");
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(strlen(a), strlen("pool-a-") + 8);
    assert_int_equal(strncmp(a, "pool-a-", 7), 0);
    assert_string_not_equal(a, b);
    assert_true(envd_k8s_valid_name(a, 0));
    free(a);
    free(b);
    char longname[254];
    memset(longname, 'x', 253);
    longname[253] = 0;
    longname[239] = '-'; /* where the cut falls: no "--" in the name */
    char *c = envd_k8s_claim_name(longname);
    assert_non_null(c);
    assert_true(envd_k8s_valid_name(c, 0));
    free(c);
}

static envd_error *answer(long code, const char *body, const char *name, const envd_k8s_what *w)
{
    envd_k8s_conn c = {.origin = "kubeconfig /k, context 'test'",
                       .user_desc = "user 'alice'",
                       .server = "https://api:6443"};
    return envd_k8s_status_error(&c, "a bearer token", code, body, strlen(body), "team-a", name,
                                 w);
}

static void error_answers(void **state)
{
    (void)state;
    const envd_k8s_what create = {"create", "sandboxclaims", "sandbox claim"};
    envd_error *e = answer(403, "{\"kind\":\"Status\",\"message\":\"no\"}", "", &create);
    assert_int_equal(envd_error_code(e), ENVD_PERMISSION_DENIED);
    assert_non_null(strstr(envd_error_message(e),
                           "needs the RBAC verb \"create\" on resource \"sandboxclaims\""));
    envd_error_free(e);
    e = answer(409,
               "{\"kind\":\"Status\",\"reason\":\"AlreadyExists\",\"message\":"
               "\"sandboxclaims.agents.kruise.io \\\"c-1\\\" already exists\"}",
               "", &create);
    assert_int_equal(envd_error_code(e), ENVD_ALREADY_EXISTS);
    assert_non_null(strstr(envd_error_message(e), "409 Conflict: sandboxclaims.agents.kruise.io "
                                                  "\"c-1\" already exists"));
    envd_error_free(e);
    e = answer(422,
               "{\"kind\":\"Status\",\"reason\":\"Invalid\",\"message\":\"SandboxClaim "
               "\\\"c-1\\\" is invalid: spec.replicas: Invalid value\"}",
               "", &create);
    assert_int_equal(envd_error_code(e), ENVD_INVALID_ARGUMENT);
    assert_non_null(strstr(envd_error_message(e), "spec.replicas: Invalid value"));
    envd_error_free(e);
    const envd_k8s_what get = {"get", "sandboxclaims", "sandbox claim"};
    e = answer(404, "{\"kind\":\"Status\",\"details\":{\"name\":\"c-1\"}}", "c-1", &get);
    assert_int_equal(envd_error_code(e), ENVD_NOT_FOUND);
    assert_non_null(strstr(envd_error_message(e), "sandbox claim team-a/c-1 not found"));
    envd_error_free(e);
    e = answer(404, "not json", "c-1", &get);
    assert_non_null(strstr(envd_error_message(e), "does not serve agents.kruise.io/v1alpha1 "
                                                  "sandboxclaims"));
    envd_error_free(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(body_defaults),   cmocka_unit_test(body_fields),
        cmocka_unit_test(setters_refuse),  cmocka_unit_test(generated_names),
        cmocka_unit_test(error_answers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
