/* envd_config and envd_client without a server: the Go client's defaults,
 * URL assembly, and the headers every request carries, in its order. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "api/internal.h"
#include "core/alloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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
    /* joined to base_url, which carries the prefix: /prefix/files on the
     * wire (test_base_url_path checks the request line) */
    assert_string_equal(c->files_path, "/files");
    envd_client_free(c);

    /* an IPv6 domain keeps its brackets in the URL and the authority */
    envd_config_set_sandbox_base_url(cfg, NULL);
    assert_int_equal(envd_config_set_domain(cfg, "[::1]:49983"), ENVD_OK);
    assert_int_equal(envd_client_new(rt, "sbx-1", cfg, &c, NULL), ENVD_OK);
    assert_string_equal(envd_client_runtime_url(c), "https://[::1]:49983");
    assert_string_equal(c->ep.authority, "[::1]:49983");
    envd_client_free(c);
    envd_config_free(cfg);

    /* $SCHEME is taken as given (no error can be returned from
     * envd_config_new); the client refuses it, naming it */
    setenv("SCHEME", "ftp", 1);
    cfg = envd_config_new();
    unsetenv("SCHEME");
    envd_error *err = NULL;
    /* c still holds the address of the client freed above: *out must be reset */
    assert_int_equal(envd_client_new(rt, "sbx-1", cfg, &c, &err), ENVD_E_CONFIG);
    assert_null(c);
    assert_string_equal(envd_error_message(err),
                        "runtime URL 'ftp://domain.app': scheme must be http or https");
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

/* st is ENVD_INVALID_ARGUMENT and the reason is exactly want. */
#define assert_refused(cfg, call, want)                                                            \
    do {                                                                                           \
        assert_int_equal((call), ENVD_INVALID_ARGUMENT);                                           \
        assert_string_equal(envd_config_last_error(cfg), (want));                                  \
    } while (0)

/* st is ENVD_INVALID_ARGUMENT and the reason contains want. */
#define assert_refused_with(cfg, call, want)                                                       \
    do {                                                                                           \
        assert_int_equal((call), ENVD_INVALID_ARGUMENT);                                           \
        if (!strstr(envd_config_last_error(cfg), (want)))                                          \
            fail_msg("'%s' lacks '%s'", envd_config_last_error(cfg), (want));                      \
    } while (0)

#define assert_accepted(cfg, call)                                                                 \
    do {                                                                                           \
        envd_status st_ = (call);                                                                  \
        if (st_ != ENVD_OK)                                                                        \
            fail_msg("%s: %s", #call, envd_config_last_error(cfg));                                \
        assert_string_equal(envd_config_last_error(cfg), "");                                      \
    } while (0)

static void numbers_have_ranges(void **state)
{
    (void)state;
    envd_config *cfg = envd_config_new();
    /* runtime port: 1..65535; <= 0 is the Go client's default; above is an
     * error, never a silent 49983 */
    assert_accepted(cfg, envd_config_set_runtime_port(cfg, 65535));
    assert_int_equal(cfg->runtime_port, 65535);
    assert_refused(cfg, envd_config_set_runtime_port(cfg, 65536),
                   "port: must be between 1 and 65535 (0 or less: the default 49983), got 65536");
    assert_refused_with(cfg, envd_config_set_runtime_port(cfg, 70000), "got 70000");
    assert_int_equal(cfg->runtime_port, 65535); /* unchanged */
    assert_accepted(cfg, envd_config_set_runtime_port(cfg, 1));
    assert_int_equal(cfg->runtime_port, 1);
    assert_accepted(cfg, envd_config_set_runtime_port(cfg, 0));
    assert_int_equal(cfg->runtime_port, 49983);
    envd_config_set_runtime_port(cfg, 2);
    assert_accepted(cfg, envd_config_set_runtime_port(cfg, -7));
    assert_int_equal(cfg->runtime_port, 49983);

    /* keepalive: 1..86400 */
    assert_accepted(cfg, envd_config_set_keepalive_s(cfg, 1));
    assert_accepted(cfg, envd_config_set_keepalive_s(cfg, 86400));
    assert_refused(cfg, envd_config_set_keepalive_s(cfg, 0),
                   "seconds: must be a positive number of seconds up to 86400 (envd crashes on 0 "
                   "or less), got 0");
    assert_refused_with(cfg, envd_config_set_keepalive_s(cfg, -5), "got -5");
    assert_refused_with(cfg, envd_config_set_keepalive_s(cfg, 86401), "got 86401");
    assert_int_equal(cfg->keepalive_s, 86400);

    /* timeouts: >= 0 */
    assert_accepted(cfg, envd_config_set_request_timeout_ms(cfg, 0));
    assert_int_equal(cfg->request_timeout_ms, 0);
    assert_refused(cfg, envd_config_set_request_timeout_ms(cfg, -1),
                   "ms: must be >= 0 (0: none), got -1");
    assert_accepted(cfg, envd_config_set_idle_timeout_ms(cfg, INT64_MAX));
    assert_refused(cfg, envd_config_set_idle_timeout_ms(cfg, INT64_MIN),
                   "ms: must be >= 0 (0: none), got -9223372036854775808");
    assert_int_equal(cfg->idle_timeout_ms, INT64_MAX);

    /* workers: <= 0 online CPUs, at most 1024 */
    assert_accepted(cfg, envd_config_set_workers(cfg, 1024));
    assert_int_equal(cfg->workers, 1024);
    assert_refused(cfg, envd_config_set_workers(cfg, 1025),
                   "workers: must be at most 1024 (0 or less: one per online CPU), got 1025");
    assert_refused_with(cfg, envd_config_set_workers(cfg, 100000), "got 100000");
    assert_int_equal(cfg->workers, 1024);
    assert_accepted(cfg, envd_config_set_workers(cfg, -3));
    assert_int_equal(cfg->workers, 0);

    /* in-flight cap: 1..1,000,000 */
    assert_accepted(cfg, envd_config_set_max_inflight(cfg, 1000000, 1));
    assert_int_equal(cfg->max_inflight, 1000000);
    assert_int_equal(cfg->fail_fast, 1);
    assert_refused(cfg, envd_config_set_max_inflight(cfg, 1000001, 0),
                   "max_inflight: must be between 1 and 1000000, got 1000001");
    assert_refused_with(cfg, envd_config_set_max_inflight(cfg, 0, 0), "got 0");
    assert_refused_with(cfg, envd_config_set_max_inflight(cfg, -1, 0), "got -1");
    assert_int_equal(cfg->fail_fast, 1); /* a refusal changes nothing */
    assert_accepted(cfg, envd_config_set_max_inflight(cfg, 1, 0));
    assert_int_equal(cfg->max_inflight, 1);
    assert_int_equal(cfg->fail_fast, 0);

    /* retries: 0..10, default 3 */
    assert_int_equal(cfg->retries, 3);
    assert_accepted(cfg, envd_config_set_retries(cfg, 0));
    assert_int_equal(cfg->retries, 0);
    assert_refused(cfg, envd_config_set_retries(cfg, 11),
                   "retries: must be between 0 and 10, got 11");
    assert_refused_with(cfg, envd_config_set_retries(cfg, -1), "got -1");
    assert_int_equal(cfg->retries, 0); /* a refusal changes nothing */
    assert_accepted(cfg, envd_config_set_retries(cfg, 10));
    assert_int_equal(cfg->retries, 10);
    assert_int_equal(envd_config_set_retries(NULL, 1), ENVD_E_USAGE);

    /* connection pools: streams per connection 1..10000 (100), connections
     * per endpoint 1..100000 (200) */
    assert_int_equal(cfg->streams_per_connection, 100);
    assert_int_equal(cfg->max_connections, 200);
    assert_refused(cfg, envd_config_set_connection_limits(cfg, 0, 10),
                   "streams_per_connection: must be between 1 and 10000, got 0");
    assert_refused(cfg, envd_config_set_connection_limits(cfg, 10, 100001),
                   "max_connections: must be between 1 and 100000, got 100001");
    assert_int_equal(cfg->max_connections, 200); /* a refusal changes nothing */
    assert_accepted(cfg, envd_config_set_connection_limits(cfg, 1, 100000));
    assert_int_equal(cfg->streams_per_connection, 1);
    assert_int_equal(cfg->max_connections, 100000);
    assert_int_equal(envd_config_set_connection_limits(NULL, 1, 1), ENVD_E_USAGE);

    /* limits: the largest reply message, 1 KiB .. 1 GiB, default 16 MiB */
    assert_int_equal(cfg->max_message_bytes, ENVD_DEFAULT_MAX_MESSAGE_BYTES);
    assert_refused(cfg, envd_config_set_max_message_bytes(cfg, 1023),
                   "bytes: must be between 1024 (1 KiB) and 1073741824 (1 GiB), got 1023");
    assert_refused_with(cfg, envd_config_set_max_message_bytes(cfg, ((int64_t)1 << 30) + 1),
                        "got 1073741825");
    assert_refused_with(cfg, envd_config_set_max_message_bytes(cfg, -5), "got -5");
    assert_int_equal(cfg->max_message_bytes, ENVD_DEFAULT_MAX_MESSAGE_BYTES);
    assert_accepted(cfg, envd_config_set_max_message_bytes(cfg, 1024));
    assert_int_equal(cfg->max_message_bytes, 1024);
    /* entries of a list reply: 1 .. 2^30, default 2^18 */
    assert_int_equal(cfg->max_list_entries, 262144);
    assert_refused(cfg, envd_config_set_max_list_entries(cfg, 0),
                   "entries: must be between 1 and 1073741824, got 0");
    assert_refused_with(cfg, envd_config_set_max_list_entries(cfg, ((int64_t)1 << 30) + 1),
                        "got 1073741825");
    assert_int_equal(cfg->max_list_entries, 262144);
    assert_accepted(cfg, envd_config_set_max_list_entries(cfg, 1));
    assert_int_equal(cfg->max_list_entries, 1);
    assert_int_equal(envd_config_set_max_list_entries(NULL, 5), ENVD_E_USAGE);
    /* the /files minimum rate: bytes >= 0 (0 = none), window 100 ms .. 1 h */
    assert_int_equal(cfg->files_min_bytes, ENVD_DEFAULT_FILES_MIN_BYTES);
    assert_int_equal(cfg->files_min_window_ms, ENVD_DEFAULT_FILES_MIN_WINDOW_MS);
    assert_refused(cfg, envd_config_set_files_min_rate(cfg, -1, 1000),
                   "bytes: must be 0 (no minimum) or more, got -1");
    assert_refused(cfg, envd_config_set_files_min_rate(cfg, 10, 99),
                   "window_ms: must be between 100 and 3600000, got 99");
    assert_refused_with(cfg, envd_config_set_files_min_rate(cfg, 10, 3600001), "got 3600001");
    assert_int_equal(cfg->files_min_bytes, ENVD_DEFAULT_FILES_MIN_BYTES);
    assert_accepted(cfg, envd_config_set_files_min_rate(cfg, 0, 100));
    assert_int_equal(cfg->files_min_bytes, 0);
    assert_int_equal(cfg->files_min_window_ms, 100);
    assert_int_equal(envd_config_set_max_message_bytes(NULL, 4096), ENVD_E_USAGE);
    assert_int_equal(envd_config_set_files_min_rate(NULL, 1, 1000), ENVD_E_USAGE);

    /* transport: the three kinds a config may hold */
    assert_refused(cfg, envd_config_set_transport(cfg, ENVD_TRANSPORT_NONE),
                   "kind: must be ENVD_TRANSPORT_GRPC, ENVD_TRANSPORT_CONNECT or "
                   "ENVD_TRANSPORT_AUTO, got 0");
    assert_refused_with(cfg, envd_config_set_transport(cfg, (envd_transport_kind)99), "got 99");
    assert_accepted(cfg, envd_config_set_transport(cfg, ENVD_TRANSPORT_GRPC));
    assert_int_equal(cfg->transport, ENVD_TRANSPORT_GRPC);
    assert_accepted(cfg, envd_config_set_h2c(cfg, 7));
    assert_int_equal(cfg->h2c, 1);
    envd_config_free(cfg);
}

static void domain_is_host_and_port(void **state)
{
    (void)state;
    envd_config *cfg = envd_config_new();
    const char *good[] = {"gw.example", "gw.example:7788",  "127.0.0.1:49983",  "[::1]:49983",
                          "[::1]",      "localhost:1",      "h:65535",          "xn--bcher-kva.ch",
                          "[fe80::1%eth0]:80"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        assert_accepted(cfg, envd_config_set_domain(cfg, good[i]));
        assert_string_equal(cfg->domain, good[i]);
    }
    const char *const url_hint = "(for a URL use envd_config_set_sandbox_base_url)";
    struct {
        const char *domain, *why;
    } bad[] = {
        {"http://127.0.0.1:5", "'http://127.0.0.1:5' is a URL"},
        {"https://gw.example", "is a URL"},
        {"gw.example/prefix", "holds a character a host name cannot"},
        {"gw.example?x=1", "holds a character a host name cannot"},
        {"user@gw.example", "holds a character a host name cannot"},
        {"gw example", "holds a space or a control character"},
        {"gw.example\t", "holds a space or a control character"},
        {":80", "has an empty host"},
        {"gw.example:", "has a port that is not a number between 1 and 65535"},
        {"gw.example:0", "has a port that is not a number"},
        {"gw.example:65536", "has a port that is not a number"},
        {"gw.example:8x", "has a port that is not a number"},
        {"gw.example:+80", "has a port that is not a number"},
        {"gw.example:123456", "has a port that is not a number"},
        {"::1", "looks like an IPv6 address: write it in brackets, as [::1]:49983"},
        {"[::1", "has an unterminated or empty [IPv6] host"},
        {"[]:80", "has an unterminated or empty [IPv6] host"},
        {"[::1]x", "has text after the [IPv6] host that is not ':port'"},
        {"[::1]:0", "has a port that is not a number"},
        {"[g_h]:1", "has a bad [IPv6] host"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_refused_with(cfg, envd_config_set_domain(cfg, bad[i].domain), bad[i].why);
        assert_refused_with(cfg, envd_config_set_domain(cfg, bad[i].domain), url_hint);
        assert_string_equal(cfg->domain, good[sizeof(good) / sizeof(good[0]) - 1]);
    }
    assert_refused(cfg, envd_config_set_domain(cfg, "http://127.0.0.1:5"),
                   "domain: must be host[:port]; 'http://127.0.0.1:5' is a URL (for a URL use "
                   "envd_config_set_sandbox_base_url)");
    assert_refused(cfg, envd_config_set_domain(cfg, ""), "domain: must not be empty");
    assert_int_equal(envd_config_set_domain(cfg, NULL), ENVD_E_USAGE);
    assert_string_equal(envd_config_last_error(cfg), "domain: must not be NULL");

    /* the base URL: http:// or https:// and a host */
    assert_accepted(cfg, envd_config_set_sandbox_base_url(cfg, "HTTPS://gw.example/kruise/x/"));
    const char *bad_urls[] = {"ftp://x", "127.0.0.1:80", "http://", "http:///x", "http://a b",
                              "https//x"};
    for (size_t i = 0; i < sizeof(bad_urls) / sizeof(bad_urls[0]); i++)
        assert_refused_with(cfg, envd_config_set_sandbox_base_url(cfg, bad_urls[i]),
                            "url: must be an http:// or https:// URL with a host and no spaces");
    assert_refused(cfg, envd_config_set_sandbox_base_url(cfg, "ftp://x"),
                   "url: must be an http:// or https:// URL with a host and no spaces, got "
                   "'ftp://x'");
    assert_string_equal(cfg->sandbox_base_url, "HTTPS://gw.example/kruise/x/");
    assert_accepted(cfg, envd_config_set_sandbox_base_url(cfg, ""));
    assert_null(cfg->sandbox_base_url);

    /* scheme */
    assert_refused(cfg, envd_config_set_scheme(cfg, "ftp"),
                   "scheme: must be http or https, got 'ftp'");
    assert_refused_with(cfg, envd_config_set_scheme(cfg, "HTTPS"), "got 'HTTPS'");
    assert_accepted(cfg, envd_config_set_scheme(cfg, "https"));
    assert_accepted(cfg, envd_config_set_scheme(cfg, NULL));
    assert_string_equal(cfg->scheme, "http");
    envd_config_free(cfg);
}

static void values_sent_as_headers_are_checked(void **state)
{
    (void)state;
    envd_config *cfg = envd_config_new();
    const char *why = ": is sent as a header value, so it must not hold CR, LF or other control "
                      "characters";
    char want[256];
    snprintf(want, sizeof(want), "token%s", why);
    assert_refused(cfg, envd_config_set_runtime_token(cfg, "t\r\nX-Evil: 1"), want);
    snprintf(want, sizeof(want), "key%s", why);
    assert_refused(cfg, envd_config_set_api_key(cfg, "k\n"), want);
    snprintf(want, sizeof(want), "value%s", why);
    assert_refused(cfg, envd_config_set_auth_header(cfg, "Basic x\r"), want);
    assert_null(cfg->runtime_token);
    assert_null(cfg->api_key);
    assert_null(cfg->auth_header);
    assert_accepted(cfg, envd_config_set_runtime_token(cfg, "tok\twith tab"));
    assert_accepted(cfg, envd_config_set_runtime_token(cfg, ""));
    assert_null(cfg->runtime_token);

    assert_refused(cfg, envd_config_set_user(cfg, "a:b"),
                   "user: must be a user name without ':', spaces or control characters, got "
                   "'a:b'");
    assert_refused_with(cfg, envd_config_set_user(cfg, "a b"), "got 'a b'");
    assert_refused_with(cfg, envd_config_set_user(cfg, ""), "got ''");
    assert_int_equal(envd_config_set_user(cfg, NULL), ENVD_E_USAGE);
    assert_string_equal(envd_config_last_error(cfg), "user: must not be NULL");
    assert_string_equal(cfg->user, "root");
    assert_accepted(cfg, envd_config_set_ca_file(cfg, "/etc/ca.pem"));
    assert_accepted(cfg, envd_config_set_ca_file(cfg, NULL));
    assert_null(cfg->ca_file);
    envd_config_free(cfg);
}

static void reserved_and_bad_headers_are_refused(void **state)
{
    (void)state;
    envd_config *cfg = envd_config_new();
    assert_refused(cfg, envd_config_set_header(cfg, "Connect-Timeout-Ms", "300"),
                   "name: 'Connect-Timeout-Ms' is reserved: envd takes it as the lifetime of a "
                   "process it starts and kills the process when it runs out, so it is sent only "
                   "when starting a process, from envd_cmd_opts_set_timeout_ms");
    assert_refused(cfg, envd_config_set_header(cfg, "Keepalive-Ping-Interval", "0"),
                   "name: 'Keepalive-Ping-Interval' is reserved: envd crashes on an interval of 0 "
                   "or less; it is sent on streams from envd_config_set_keepalive_s");
    /* any case */
    assert_refused_with(cfg, envd_config_set_header(cfg, "connect-timeout-ms", "1"),
                        "'connect-timeout-ms' is reserved: envd takes it as the lifetime");
    assert_refused_with(cfg, envd_config_set_header(cfg, "KEEPALIVE-PING-INTERVAL", "50"),
                        "is reserved: envd crashes on an interval of 0");
    const char *owned[] = {"Content-Type",      "content-length", "TE",
                           "Host",              "Connection",     "Transfer-Encoding",
                           "Upgrade",           "Keep-Alive",     "Proxy-Connection",
                           "Connect-Protocol-Version", "grpc-timeout", "Grpc-Encoding",
                           "GRPC-Accept-Encoding",    "connect-content-encoding"};
    for (size_t i = 0; i < sizeof(owned) / sizeof(owned[0]); i++)
        assert_refused_with(cfg, envd_config_set_header(cfg, owned[i], "x"),
                            "is set by the transport");
    assert_refused(cfg, envd_config_set_header(cfg, "grpc-timeout", "1S"),
                   "name: 'grpc-timeout' is set by the transport (the gRPC and Connect protocols "
                   "own grpc-* and connect-*), not by the caller");
    assert_refused(cfg, envd_config_set_header(cfg, "TE", "trailers"),
                   "name: 'TE' is set by the transport (HTTP framing), not by the caller");

    /* names are tokens, values have no line breaks or controls */
    const char *bad_names[] = {"", "bad name", "X-A:", ":path", "X-\xc3\xa9", "X(1)", "a\"b"};
    for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++)
        assert_refused_with(cfg, envd_config_set_header(cfg, bad_names[i], "v"),
                            "name: not a valid HTTP header name (a token of letters, digits and "
                            "!#$%&'*+-.^_`|~), got");
    assert_refused(cfg, envd_config_set_header(cfg, "X-A", "a\r\nInjected: 1"),
                   "value: not a valid HTTP header value (CR, LF and other control characters "
                   "are not allowed)");
    assert_refused_with(cfg, envd_config_set_header(cfg, "X-A", "a\nb"), "value: not a valid");
    assert_refused_with(cfg, envd_config_set_header(cfg, "X-A", "\x01"), "value: not a valid");
    assert_refused_with(cfg, envd_config_set_header(cfg, "X-A", "\x7f"), "value: not a valid");
    assert_int_equal(cfg->headers.n, 0); /* nothing refused was kept */
    assert_accepted(cfg, envd_config_set_header(cfg, "X-Tok_en.~!#$%&'*+^`|9", "a\tb \xc3\xa9"));
    assert_accepted(cfg, envd_config_set_header(cfg, "X-Connect-Timeout-Ms", "ok"));
    assert_accepted(cfg, envd_config_set_header(cfg, "X-Grpc-Like", "ok"));
    assert_int_equal(cfg->headers.n, 3);
    assert_string_equal(cfg->headers.names[0], "x-tok_en.~!#$%&'*+^`|9");

    /* NULL arguments are usage errors naming the argument */
    assert_int_equal(envd_config_set_header(cfg, NULL, "v"), ENVD_E_USAGE);
    assert_string_equal(envd_config_last_error(cfg), "name: must not be NULL");
    assert_int_equal(envd_config_set_header(cfg, "X-A", NULL), ENVD_E_USAGE);
    assert_string_equal(envd_config_last_error(cfg), "value: must not be NULL");

    /* set_headers: the failing pair is named; those before it are kept */
    const char *names[] = {"X-One", "Keepalive-Ping-Interval", "X-Three"};
    const char *values[] = {"1", "0", "3"};
    assert_refused_with(cfg, envd_config_set_headers(cfg, names, values, 3),
                        "names[1]: 'Keepalive-Ping-Interval' is reserved");
    assert_int_equal(cfg->headers.n, 4);
    assert_string_equal(cfg->headers.names[3], "x-one");
    const char *vals2[] = {"1", "ok", "x\ny"};
    const char *names2[] = {"X-One", "X-Two", "X-Three"};
    assert_refused_with(cfg, envd_config_set_headers(cfg, names2, vals2, 3),
                        "values[2]: not a valid HTTP header value");
    const char *nulls[] = {"X-One", NULL};
    assert_int_equal(envd_config_set_headers(cfg, nulls, values, 2), ENVD_E_USAGE);
    assert_string_equal(envd_config_last_error(cfg), "names[1]: must not be NULL");
    assert_int_equal(envd_config_set_headers(cfg, NULL, values, 1), ENVD_E_USAGE);
    assert_string_equal(envd_config_last_error(cfg), "names: must not be NULL when n > 0");
    assert_int_equal(envd_config_set_headers(cfg, names, NULL, 1), ENVD_E_USAGE);
    assert_string_equal(envd_config_last_error(cfg), "values: must not be NULL when n > 0");
    assert_accepted(cfg, envd_config_set_headers(cfg, NULL, NULL, 0));

    /* a client built from it carries none of the refused names */
    envd_client *c = NULL;
    assert_int_equal(envd_client_new(rt, "s", cfg, &c, NULL), ENVD_OK);
    for (size_t i = 0; i < c->n_headers; i++) {
        assert_int_not_equal(strcasecmp(c->headers[i].name, "keepalive-ping-interval"), 0);
        assert_int_not_equal(strcasecmp(c->headers[i].name, "connect-timeout-ms"), 0);
    }
    envd_client_free(c);
    envd_config_free(cfg);
}

static void last_error_lifetime_and_usage(void **state)
{
    (void)state;
    envd_config *cfg = envd_config_new();
    assert_string_equal(envd_config_last_error(cfg), "");
    assert_int_equal(envd_config_set_workers(cfg, 5000), ENVD_INVALID_ARGUMENT);
    assert_string_not_equal(envd_config_last_error(cfg), "");
    /* a copy starts clean; the next setter call on cfg clears it */
    envd_config *dup = envd_config_dup(cfg);
    assert_string_equal(envd_config_last_error(dup), "");
    envd_config_free(dup);
    assert_int_equal(envd_config_set_workers(cfg, 4), ENVD_OK);
    assert_string_equal(envd_config_last_error(cfg), "");
    assert_string_equal(envd_config_last_error(NULL), "cfg: is NULL");

    /* every setter refuses a NULL cfg with E_USAGE */
    assert_int_equal(envd_config_set_scheme(NULL, "http"), ENVD_E_USAGE);
    assert_int_equal(envd_config_set_runtime_token(NULL, "t"), ENVD_E_USAGE);
    assert_int_equal(envd_config_set_runtime_port(NULL, 1), ENVD_E_USAGE);
    assert_int_equal(envd_config_set_api_key(NULL, "k"), ENVD_E_USAGE);
    assert_int_equal(envd_config_set_auth_header(NULL, "a"), ENVD_E_USAGE);
    assert_int_equal(envd_config_set_user(NULL, "u"), ENVD_E_USAGE);
    assert_int_equal(envd_config_set_sandbox_base_url(NULL, "http://x"), ENVD_E_USAGE);
    assert_int_equal(envd_config_set_header(NULL, "a", "b"), ENVD_E_USAGE);
    assert_int_equal(envd_config_set_headers(NULL, NULL, NULL, 0), ENVD_E_USAGE);
    assert_int_equal(envd_config_set_request_timeout_ms(NULL, 1), ENVD_E_USAGE);
    assert_int_equal(envd_config_set_transport(NULL, ENVD_TRANSPORT_AUTO), ENVD_E_USAGE);
    assert_int_equal(envd_config_set_keepalive_s(NULL, 1), ENVD_E_USAGE);
    assert_int_equal(envd_config_set_idle_timeout_ms(NULL, 1), ENVD_E_USAGE);
    assert_int_equal(envd_config_set_h2c(NULL, 1), ENVD_E_USAGE);
    assert_int_equal(envd_config_set_ca_file(NULL, "x"), ENVD_E_USAGE);
    assert_int_equal(envd_config_set_workers(NULL, 1), ENVD_E_USAGE);
    assert_int_equal(envd_config_set_max_inflight(NULL, 1, 0), ENVD_E_USAGE);

    /* envd_client_new names the NULL argument */
    envd_error *err = NULL;
    envd_client *c = NULL;
    assert_int_equal(envd_client_new(NULL, "x", cfg, &c, &err), ENVD_E_USAGE);
    assert_int_equal(envd_error_code(err), ENVD_E_USAGE);
    assert_string_equal(envd_error_message(err), "envd_client_new: rt must not be NULL");
    envd_error_free(err);
    err = NULL;
    assert_int_equal(envd_client_new(rt, "x", cfg, NULL, &err), ENVD_E_USAGE);
    assert_string_equal(envd_error_message(err), "envd_client_new: out must not be NULL");
    envd_error_free(err);
    envd_config_free(cfg);
}

/* Every allocation of building a config and a client from it fails in
 * turn: a clean ENVD_E_NOMEM (with an error for envd_client_new), the
 * option left as it was, nothing leaked (ASan). */
static void allocation_failures(void **state)
{
    (void)state;
    long n = 1;
    for (;; n++) {
        envd_alloc_test_fail(n);
        envd_config *cfg = envd_config_new();
        envd_status st = cfg ? ENVD_OK : ENVD_E_NOMEM;
        if (st == ENVD_OK)
            st = envd_config_set_domain(cfg, "gw.example:7788");
        if (st == ENVD_OK)
            st = envd_config_set_auth_header(cfg, "Basic bm9kZTo=");
        if (st == ENVD_OK)
            st = envd_config_set_header(cfg, "X-A", "1");
        if (st == ENVD_OK)
            st = envd_config_set_api_key(cfg, "key");
        envd_client *c = NULL;
        envd_error *err = NULL;
        if (st == ENVD_OK) {
            st = envd_client_new(rt, "sbx", cfg, &c, &err);
            if (st != ENVD_OK) {
                assert_non_null(err);
                assert_int_equal(envd_error_code(err), st);
                assert_null(c);
            }
        }
        int fired = envd_alloc_test_fired();
        envd_alloc_test_fail(0);
        if (cfg && st == ENVD_E_NOMEM) /* all or nothing: user and header agree */
            assert_true(cfg->auth_header ? strcmp(cfg->user, "node") == 0
                                         : strcmp(cfg->user, "root") == 0);
        envd_error_free(err);
        envd_client_free(c);
        envd_config_free(cfg);
        if (!fired) {
            assert_int_equal(st, ENVD_OK);
            break;
        }
        assert_int_equal(st, ENVD_E_NOMEM);
    }
    assert_true(n > 15);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(defaults_and_url),
        cmocka_unit_test(headers_in_go_order),
        cmocka_unit_test(user_follows_auth_header),
        cmocka_unit_test(bad_values_are_refused),
        cmocka_unit_test(numbers_have_ranges),
        cmocka_unit_test(domain_is_host_and_port),
        cmocka_unit_test(values_sent_as_headers_are_checked),
        cmocka_unit_test(reserved_and_bad_headers_are_refused),
        cmocka_unit_test(last_error_lifetime_and_usage),
        cmocka_unit_test(allocation_failures),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
