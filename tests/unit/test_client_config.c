/* envd_config and envd_client without a server: the Go client's defaults,
 * URL assembly, and the headers every request carries, in its order. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "api/internal.h"

#include <stdlib.h>
#include <string.h>

static envd_runtime *rt;

static int setup(void **state)
{
    (void)state;
    unsetenv("SCHEME");
    envd_config *cfg = envd_config_new();
    envd_config_set_workers(cfg, 1);
    int rc = envd_runtime_new(cfg, &rt) == ENVD_OK ? 0 : -1;
    envd_config_free(cfg);
    return rc;
}

static int teardown(void **state)
{
    (void)state;
    envd_runtime_free(rt);
    return 0;
}

static const char *header(envd_kv *h, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(h[i].name, name) == 0)
            return h[i].value;
    return NULL;
}

static void defaults_and_url(void **state)
{
    (void)state;
    envd_client *c = NULL;
    assert_int_equal(envd_client_new(rt, "sbx-1", NULL, &c, NULL), ENVD_OK);
    assert_string_equal(envd_client_runtime_url(c), "http://domain.app");
    assert_string_equal(c->ep.authority, "domain.app:80");
    assert_int_equal(c->cfg->request_timeout_ms, 60000);
    assert_int_equal(c->cfg->keepalive_s, 50);
    assert_int_equal(envd_client_transport(c), ENVD_TRANSPORT_AUTO);
    envd_client_free(c);

    setenv("SCHEME", "https", 1); /* read before options, as the Go client */
    envd_config *cfg = envd_config_new();
    unsetenv("SCHEME");
    envd_config_set_domain(cfg, "gw.example:7788");
    assert_int_equal(envd_client_new(rt, "sbx-1", cfg, &c, NULL), ENVD_OK);
    assert_string_equal(envd_client_runtime_url(c), "https://gw.example:7788");
    assert_true(c->ep.tls);
    envd_client_free(c);

    /* the base URL is used as is, without the sandbox id appended */
    envd_config_set_sandbox_base_url(cfg, "http://10.1.2.3:49983/prefix/");
    assert_int_equal(envd_client_new(rt, "sbx-1", cfg, &c, NULL), ENVD_OK);
    assert_string_equal(envd_client_runtime_url(c), "http://10.1.2.3:49983/prefix/");
    assert_string_equal(c->ep.base_url, "http://10.1.2.3:49983/prefix");
    assert_string_equal(c->files_path, "/prefix/files");
    envd_client_free(c);

    envd_error *err = NULL;
    envd_config_set_sandbox_base_url(cfg, "ftp://x");
    assert_int_equal(envd_client_new(rt, "sbx-1", cfg, &c, &err), ENVD_E_CONFIG);
    assert_null(c);
    assert_non_null(strstr(envd_error_message(err), "scheme"));
    envd_error_free(err);
    envd_config_free(cfg);
}

static void headers_in_go_order(void **state)
{
    (void)state;
    envd_config *cfg = envd_config_new();
    envd_config_set_api_key(cfg, "key");
    envd_config_set_runtime_token(cfg, "tok");
    envd_config_set_runtime_port(cfg, 0); /* <= 0 means 49983 */
    const char *names[] = {"X-Custom", "x-other"};
    const char *values[] = {"1", "2"};
    assert_int_equal(envd_config_set_headers(cfg, names, values, 2), ENVD_OK);
    envd_client *c = NULL;
    assert_int_equal(envd_client_new(rt, "sbx-9", cfg, &c, NULL), ENVD_OK);
    const char *want[][2] = {{"authorization", "Basic cm9vdDo="}, {"x-api-key", "key"},
                             {"x-access-token", "tok"},           {"e2b-sandbox-id", "sbx-9"},
                             {"e2b-sandbox-port", "49983"},       {"x-custom", "1"},
                             {"x-other", "2"}};
    assert_int_equal(c->n_headers, 7);
    for (size_t i = 0; i < 7; i++) {
        assert_string_equal(c->headers[i].name, want[i][0]);
        assert_string_equal(c->headers[i].value, want[i][1]);
    }
    /* a per-call user replaces authorization only for that call */
    envd_kv h[16];
    char *owned = NULL;
    size_t n = envd_call_headers(c, "user", h, &owned);
    assert_int_equal(n, 7);
    assert_string_equal(header(h, n, "authorization"), "Basic dXNlcjo=");
    assert_string_equal(c->headers[0].value, "Basic cm9vdDo=");
    free(owned);
    envd_client_free(c);

    /* custom headers override the built-in ones */
    envd_config_set_header(cfg, "Authorization", "Bearer x");
    envd_config_set_header(cfg, "E2B-Sandbox-Port", "49999");
    assert_int_equal(envd_client_new(rt, "sbx-9", cfg, &c, NULL), ENVD_OK);
    n = envd_call_headers(c, NULL, h, &owned);
    assert_string_equal(header(h, n, "authorization"), "Bearer x");
    assert_string_equal(header(h, n, "e2b-sandbox-port"), "49999");
    size_t auths = 0;
    for (size_t i = 0; i < n; i++)
        auths += strcmp(h[i].name, "authorization") == 0;
    assert_int_equal(auths, 1);
    envd_client_free(c);
    envd_config_free(cfg);
}

static void user_follows_auth_header(void **state)
{
    (void)state;
    envd_config *cfg = envd_config_new();
    assert_string_equal(cfg->user, "root");
    assert_int_equal(envd_config_set_user(cfg, "user"), ENVD_OK);
    envd_client *c = NULL;
    assert_int_equal(envd_client_new(rt, NULL, cfg, &c, NULL), ENVD_OK);
    assert_string_equal(c->headers[0].value, "Basic dXNlcjo=");
    envd_client_free(c);
    /* an explicit Basic header names the /files user too */
    assert_int_equal(envd_config_set_auth_header(cfg, "Basic bm9kZTo="), ENVD_OK);
    assert_string_equal(cfg->user, "node");
    assert_int_equal(envd_config_set_auth_header(cfg, ""), ENVD_OK); /* back to default */
    assert_string_equal(cfg->user, "root");
    envd_config_free(cfg);
}

static void bad_values_are_refused(void **state)
{
    (void)state;
    envd_config *cfg = envd_config_new();
    assert_int_equal(envd_config_set_keepalive_s(cfg, 0), ENVD_INVALID_ARGUMENT);
    assert_int_equal(envd_config_set_keepalive_s(cfg, -5), ENVD_INVALID_ARGUMENT);
    assert_int_equal(envd_config_set_header(cfg, "X-A", "a\r\nInjected: 1"),
                     ENVD_INVALID_ARGUMENT);
    assert_int_equal(envd_config_set_header(cfg, "bad name", "v"), ENVD_INVALID_ARGUMENT);
    assert_int_equal(envd_config_set_scheme(cfg, "gopher"), ENVD_INVALID_ARGUMENT);
    assert_int_equal(envd_config_set_user(cfg, "a:b"), ENVD_INVALID_ARGUMENT);
    assert_int_equal(envd_config_set_domain(cfg, ""), ENVD_INVALID_ARGUMENT);
    assert_int_equal(envd_config_set_transport(cfg, ENVD_TRANSPORT_HTTP), ENVD_INVALID_ARGUMENT);
    assert_int_equal(envd_config_set_domain(NULL, "x"), ENVD_E_USAGE);
    assert_int_equal(envd_client_new(NULL, "x", cfg, NULL, NULL), ENVD_E_USAGE);
    envd_config_free(cfg);
    envd_config_free(NULL);
    envd_client_free(NULL);
    assert_string_equal(envd_strerror(ENVD_NOT_FOUND), "not_found");
    assert_string_equal(envd_strerror(ENVD_E_COMMAND_EXIT), "command exited non-zero");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(defaults_and_url),
        cmocka_unit_test(headers_in_go_order),
        cmocka_unit_test(user_follows_auth_header),
        cmocka_unit_test(bad_values_are_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
