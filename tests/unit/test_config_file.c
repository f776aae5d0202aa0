/* The YAML configuration file: every option lands in envd_config and the
 * Kubernetes options, named sandboxes, environment overlays and their
 * selection, ${VAR} expansion, relative paths, and every kind of mistake
 * reported at file:line:column. */
/* cmocka.h needs these first */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include "config/config.h"
#include "core/alloc.h"
#include "config/k8s_options.h"
#include "envd/envd_k8s.h"
#include "../test_clock.h"

#include <stdio.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>

static char tmp[256];

static const char *at(const char *name)
{
    static char buf[4][512];
    static int i;
    i = (i + 1) % 4;
    snprintf(buf[i], sizeof(buf[i]), "%s/%s", tmp, name);
    return buf[i];
}

static void write_file(const char *name, const char *text)
{
    FILE *fp = fopen(at(name), "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

static int setup(void **state)
{
    (void)state;
    snprintf(tmp, sizeof(tmp), "/tmp/envd-cf-XXXXXX");
    unsetenv("ENVD_ENVIRONMENT");
    unsetenv("SCHEME");
    return mkdtemp(tmp) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
    return system(cmd) == 0 ? 0 : -1;
}

#define assert_ok(st, err)                                                                         \
    do {                                                                                           \
        if ((st) != ENVD_OK)                                                                       \
            fail_msg("%s: %s", envd_strerror(st), (err) ? envd_error_message(err) : "(no error)"); \
    } while (0)

static void every_option(void **state)
{
    (void)state;
    setenv("CF_TEST_TOKEN", "tok-from-env", 1);
    unsetenv("CF_TEST_UNSET");
    write_file("all.yaml", "# every option\n"
                           "domain: gw.example:7788\n"
                           "scheme: https\n"
                           "runtime_token: ${CF_TEST_TOKEN}\n"
                           "runtime-port: 5000\n" /* '-' and '_' are the same */
                           "api_key: key-${CF_TEST_UNSET:-dflt}-$$x\n"
                           "user: node\n"
                           "sandbox_base_url: http://base.example/x\n"
                           "ca_file: certs/ca.pem\n"
                           "headers:\n  X-Team: infra\n  X-Empty: ''\n"
                           "request_timeout_ms: 1500\n"
                           "transport: connect\n"
                           "h2c: true\n"
                           "keepalive_s: 20\n"
                           "idle_timeout_ms: 0\n"
                           "workers: 3\n"
                           "max_inflight: 77\n"
                           "fail_fast: yes\n"
                           "retries: 5\n"
                           "max_message_bytes: 2048\n"
                           "max_list_entries: 4096\n"
                           "files_min_bytes: 0\n"
                           "files_min_window_ms: 500\n"
                           "streams_per_connection: 7\n"
                           "max_connections: 9\n"
                           "envd_version: 0.5.1\n"
                           "kubernetes:\n"
                           "  source: in-cluster\n"
                           "  kubeconfig: a.yaml:/abs/b.yaml\n"
                           "  context: prod\n"
                           "  in_cluster_dir: sa\n"
                           "  timeout_ms: 1234\n"
                           "  require_running: false\n"
                           "sandboxes:\n"
                           "  - name: builder\n    id: sbx-1\n"
                           "  - name: agent\n    k8s: team-a/agent-7\n    runtime_token: own\n"
                           "  - {name: local, k8s: solo}\n");
    envd_config *cfg = NULL;
    envd_config_file *f = NULL;
    envd_error *err = NULL;
    envd_status st = envd_config_load_file(at("all.yaml"), &cfg, &f, &err);
    assert_ok(st, err);
    assert_string_equal(cfg->domain, "gw.example:7788");
    assert_string_equal(cfg->scheme, "https");
    assert_string_equal(cfg->runtime_token, "tok-from-env");
    assert_int_equal(cfg->runtime_port, 5000);
    assert_string_equal(cfg->api_key, "key-dflt-$x");
    assert_string_equal(cfg->user, "node");
    assert_null(cfg->auth_header);
    assert_string_equal(cfg->sandbox_base_url, "http://base.example/x");
    assert_string_equal(cfg->ca_file, at("certs/ca.pem")); /* relative to the file */
    assert_int_equal(cfg->headers.n, 2);
    assert_string_equal(cfg->headers.names[0], "x-team");
    assert_string_equal(cfg->headers.values[0], "infra");
    assert_string_equal(cfg->headers.values[1], "");
    assert_int_equal(cfg->request_timeout_ms, 1500);
    assert_int_equal(cfg->transport, ENVD_TRANSPORT_CONNECT);
    assert_int_equal(cfg->h2c, 1);
    assert_int_equal(cfg->keepalive_s, 20);
    assert_int_equal(cfg->idle_timeout_ms, 0);
    assert_int_equal(cfg->max_message_bytes, 2048);
    assert_int_equal(cfg->max_list_entries, 4096);
    assert_int_equal(cfg->files_min_bytes, 0);
    assert_int_equal(cfg->files_min_window_ms, 500);
    assert_int_equal(cfg->streams_per_connection, 7);
    assert_int_equal(cfg->max_connections, 9);
    assert_int_equal(cfg->envd_version[0], 0);
    assert_int_equal(cfg->envd_version[1], 5);
    assert_int_equal(cfg->envd_version[2], 1);
    assert_int_equal(cfg->workers, 3);
    assert_int_equal(cfg->max_inflight, 77);
    assert_int_equal(cfg->fail_fast, 1);
    assert_int_equal(cfg->retries, 5);
    envd_config_free(cfg);

    const envd_k8s_options *k = envd_config_file_k8s_options(f);
    assert_int_equal(k->source, ENVD_K8S_SOURCE_IN_CLUSTER);
    char want[1200];
    snprintf(want, sizeof(want), "%s:/abs/b.yaml", at("a.yaml"));
    assert_string_equal(k->kubeconfig, want);
    assert_string_equal(k->context, "prod");
    assert_string_equal(k->in_cluster_dir, at("sa"));
    assert_int_equal(k->timeout_ms, 1234);
    assert_int_equal(k->require_running, 0);

    size_t n = 0;
    const envd_sandbox_entry *all = envd_config_file_sandboxes(f, &n);
    assert_int_equal(n, 3);
    const envd_sandbox_entry *e = &all[0];
    assert_string_equal(e->name, "builder");
    assert_string_equal(e->id, "sbx-1");
    assert_null(e->k8s_name);
    assert_null(e->runtime_token);
    e = envd_config_file_sandbox_find(f, "agent");
    assert_ptr_equal(e, &all[1]);
    assert_null(e->id);
    assert_string_equal(e->k8s_namespace, "team-a");
    assert_string_equal(e->k8s_name, "agent-7");
    assert_string_equal(e->runtime_token, "own");
    e = envd_config_file_sandbox_find(f, "local");
    assert_null(e->k8s_namespace); /* the context's */
    assert_string_equal(e->k8s_name, "solo");
    assert_null(envd_config_file_sandbox_find(f, "nope"));
    envd_config_file_free(f);

    /* an empty file: the defaults */
    write_file("empty.yaml", "# nothing\n");
    assert_int_equal(envd_config_load_file(at("empty.yaml"), &cfg, NULL, &err), ENVD_OK);
    assert_string_equal(cfg->domain, "domain.app");
    assert_int_equal(cfg->runtime_port, 49983);
    envd_config_free(cfg);
    envd_config_file_free(NULL);
}

static void environments(void **state)
{
    (void)state;
    write_file("env.yaml", "domain: base:1\n"
                           "auth_header: Basic dXNlcjo=\n" /* user: */
                           "headers: {X-A: a, X-B: b}\n"
                           "kubernetes: {context: base-ctx, timeout_ms: 5}\n"
                           "sandboxes:\n"
                           "  - {name: one, id: base-one}\n"
                           "  - {name: two, id: base-two}\n"
                           "environment: staging\n"
                           "environments:\n"
                           "  staging:\n"
                           "    domain: staging:2\n"
                           "    headers: {x-b: B2, X-C: c}\n"
                           "    kubernetes: {context: staging-ctx}\n"
                           "    sandboxes: [{name: two, k8s: ns/two}, {name: three, id: s3}]\n"
                           "  prod:\n"
                           "    domain: prod:3\n"
                           "    user: deploy\n"
                           "  bare:\n"
                           "  secret: {api_key: '${CF_TEST_UNSET}'}\n"); /* unused: not expanded */
    unsetenv("CF_TEST_UNSET");
    envd_config_file *f = NULL;
    envd_error *err = NULL;
    /* the file's default: staging */
    envd_status st = envd_config_file_load(at("env.yaml"), NULL, &f, &err);
    assert_ok(st, err);
    const envd_config *c = envd_config_file_config(f);
    /* (the overlay shows in the values it set) */
    assert_string_equal(c->domain, "staging:2");
    assert_string_equal(c->auth_header, "Basic dXNlcjo=");
    assert_string_equal(c->user, "user");
    assert_int_equal(c->headers.n, 3);
    assert_string_equal(c->headers.names[1], "x-b"); /* merged by name */
    assert_string_equal(c->headers.values[1], "B2");
    assert_string_equal(envd_config_file_k8s_options(f)->context, "staging-ctx");
    assert_int_equal(envd_config_file_k8s_options(f)->timeout_ms, 5);
    size_t n = 0;
    assert_non_null(envd_config_file_sandboxes(f, &n));
    assert_int_equal(n, 3);
    const envd_sandbox_entry *two = envd_config_file_sandbox_find(f, "two");
    assert_null(two->id);
    assert_string_equal(two->k8s_name, "two");
    envd_config_file_free(f);

    /* $ENVD_ENVIRONMENT wins over the file; user replaces the auth header */
    setenv("ENVD_ENVIRONMENT", "prod", 1);
    st = envd_config_file_load(at("env.yaml"), NULL, &f, &err);
    assert_ok(st, err);
    c = envd_config_file_config(f);
    assert_string_equal(c->domain, "prod:3");
    assert_string_equal(c->user, "deploy");
    assert_null(c->auth_header);
    assert_non_null(envd_config_file_sandboxes(f, &n));
    assert_int_equal(n, 2);
    envd_config_file_free(f);
    /* the argument wins over both; an empty overlay is allowed */
    st = envd_config_file_load(at("env.yaml"), "bare", &f, &err);
    assert_ok(st, err);
    assert_string_equal(envd_config_file_config(f)->domain, "base:1");
    envd_config_file_free(f);
    unsetenv("ENVD_ENVIRONMENT");

    st = envd_config_file_load(at("env.yaml"), "qa", &f, &err);
    assert_int_equal(st, ENVD_E_CONFIG);
    assert_null(f);
    assert_non_null(
        strstr(envd_error_message(err),
               "environment 'qa' is not defined (defined: staging, prod, bare, secret)"));
    envd_error_free(err);
}

/* Loading `text` fails with ENVD_E_CONFIG at "file:pos: " + message. */
static void expect_error(const char *text, const char *pos, const char *message)
{
    write_file("err.yaml", text);
    envd_config *cfg = NULL;
    envd_error *err = NULL;
    envd_status st = envd_config_load_file(at("err.yaml"), &cfg, NULL, &err);
    if (st != ENVD_E_CONFIG)
        fail_msg("%s: want invalid configuration, got %s", text, envd_strerror(st));
    assert_null(cfg);
    char want[1200];
    snprintf(want, sizeof(want), "%s:%s: %s", at("err.yaml"), pos, message);
    if (!strstr(envd_error_message(err), want))
        fail_msg("'%s' does not contain '%s'", envd_error_message(err), want);
    envd_error_free(err);
}

/* The code interpreter's two settings (envd_code.h), checked by their
 * setters like every option. */
static void code_interpreter_options(void **state)
{
    (void)state;
    write_file("code.yaml", "domain: gw.example:7788\n"
                            "code_port: 50001\n"
                            "code-base-url: http://ci.example:49999/p\n");
    envd_config *cfg = NULL;
    envd_config_file *f = NULL;
    envd_error *err = NULL;
    assert_ok(envd_config_load_file(at("code.yaml"), &cfg, &f, &err), err);
    assert_int_equal(cfg->code_port, 50001);
    assert_string_equal(cfg->code_base_url, "http://ci.example:49999/p");
    envd_config_free(cfg);
    envd_config_file_free(f);
    cfg = envd_config_new();
    assert_int_equal(cfg->code_port, 49999); /* the Go client's default */
    assert_null(cfg->code_base_url);
    envd_config_free(cfg);
    expect_error("code_port: 70000\n", "1:12", "code_port: must be between 1 and 65535");
    expect_error("code_base_url: ftp://x\n", "1:16", "code_base_url: must be an http:// or https://");
}

static void mistakes(void **state)
{
    (void)state;
    expect_error("domain: a\ndomian: b\n", "2:1", "unknown key 'domian'");
    expect_error("kubernetes:\n  contxt: x\n", "2:3", "unknown key 'kubernetes.contxt'");
    expect_error("runtime_port: '80'\n", "1:15", "runtime_port: expected an integer, got a string");
    expect_error("runtime_port: 70000\n", "1:15", "runtime_port: must be between 1 and 65535");
    expect_error("fail_fast: 2\n", "1:12", "fail_fast: expected true or false, got an integer");
    expect_error("domain: [a]\n", "1:9", "domain: expected a string, got a list");
    expect_error("domain:\n", "1:8", "domain: expected a string, got null");
    expect_error("scheme: ftp\n", "1:9", "scheme: must be http or https");
    expect_error("keepalive_s: 0\n", "1:14", "keepalive_s: must be a positive number");
    expect_error("transport: h3\n", "1:12", "transport: must be grpc, connect or auto");
    expect_error("user: 'a:b'\n", "1:7", "user: must be a user name");
    expect_error("headers: [x]\n", "1:10", "headers: expected a mapping, got a list");
    expect_error("headers: {'bad name': x}\n", "1:11",
                 "headers.bad name: not a valid HTTP header name");
    expect_error("headers:\n  X-A: \"a\\nb\"\n", "2:8",
                 "headers.X-A: not a valid HTTP header value");
    expect_error("kubernetes: {source: cloud}\n", "1:22", "kubernetes.source: must be auto,");
    expect_error("domain: a\nrun-time: x\ndomain: b\n", "3:1", "duplicate key 'domain'");
    expect_error("domain: a\nx: 1\n", "2:1", "unknown key 'x'");
    expect_error("api_key: a\napi-key: b\n", "2:1", "duplicate key 'api-key' (first at line 1)");
    expect_error("sandboxes: {a: b}\n", "1:12", "sandboxes: expected a list, got a mapping");
    expect_error("sandboxes:\n  - id: x\n", "2:5", "sandboxes[0]: every sandbox needs a name");
    expect_error("sandboxes:\n  - {name: a, id: x, k8s: n/s}\n", "2:27",
                 "sandbox 'a': give exactly one of id and k8s");
    expect_error("sandboxes:\n  - {name: a}\n", "2:5",
                 "sandbox 'a': give exactly one of id and k8s");
    expect_error("sandboxes:\n  - {name: a, k8s: a/b/c}\n", "2:20",
                 "sandboxes[0].k8s: expected NAMESPACE/NAME or NAME, got 'a/b/c'");
    expect_error("sandboxes:\n  - {name: a, id: x}\n  - {name: a, id: y}\n", "3:5",
                 "sandbox name 'a' is used twice");
    expect_error("sandboxes:\n  - {name: a, id: x, tag: y}\n", "2:22",
                 "unknown key 'tag' in sandboxes[0]");
    unsetenv("CF_TEST_UNSET");
    expect_error("runtime_token: ${CF_TEST_UNSET}\n", "1:16",
                 "environment variable CF_TEST_UNSET is not set");
    expect_error("runtime_token: ${BAD-NAME}\n", "1:16", "bad variable reference ${BAD-NAME}");
    expect_error("environment: x\nenvironments:\n  x: {environment: y}\n", "3:7",
                 "unknown key 'environment' (environment 'x')");
    expect_error("environments:\n  x: {domian: y}\n", "2:7", "unknown key 'domian'");
    expect_error("domain: a\n  b: c\n", "2:4", "syntax error");
    expect_error("- a\n- b\n", "1:1", "the file: expected a mapping, got a list");

    /* a missing file is an I/O error naming it */
    envd_config_file *f = NULL;
    envd_error *err = NULL;
    assert_int_equal(envd_config_file_load(at("nope.yaml"), NULL, &f, &err), ENVD_E_IO);
    assert_non_null(strstr(envd_error_message(err), "nope.yaml: No such file"));
    envd_error_free(err);
    assert_int_equal(envd_config_file_load(NULL, NULL, &f, &err), ENVD_E_USAGE);
    assert_string_equal(envd_error_message(err), "envd_config_file_load: path must not be NULL");
    envd_error_free(err);
    assert_int_equal(envd_config_file_load(at("x.yaml"), NULL, NULL, &err), ENVD_E_USAGE);
    assert_string_equal(envd_error_message(err), "envd_config_file_load: out must not be NULL");
    envd_error_free(err);
    envd_config *cfg = NULL;
    assert_int_equal(envd_config_load_file(NULL, &cfg, NULL, &err), ENVD_E_USAGE);
    assert_string_equal(envd_error_message(err), "envd_config_load_file: path must not be NULL");
    envd_error_free(err);
    assert_int_equal(envd_config_load_file(at("x.yaml"), NULL, &f, &err), ENVD_E_USAGE);
    assert_string_equal(envd_error_message(err), "envd_config_load_file: out must not be NULL");
    assert_null(f);
    envd_error_free(err);
    /* read whole and bounded: an endless file fails with a message */
    assert_int_equal(envd_config_file_load("/dev/zero", NULL, &f, &err), ENVD_E_IO);
    assert_string_equal(envd_error_message(err), "/dev/zero: larger than the 16777216-byte limit");
    envd_error_free(err);
    assert_int_equal(envd_config_file_load(tmp, NULL, &f, &err), ENVD_E_IO);
    assert_non_null(strstr(envd_error_message(err), ": Is a directory"));
    envd_error_free(err);
}

/* A sandbox entry of n keys and two repeats after them, checked: the first
 * repeat is named, at its line (k-7 reads as k_7, at line 10). */
static void check_keys(void *ud, size_t n)
{
    (void)ud;
    char *text = malloc(n * 24 + 256);
    assert_non_null(text);
    size_t o = (size_t)sprintf(text, "sandboxes:\n  - name: a\n");
    for (size_t i = 0; i < n; i++)
        o += (size_t)sprintf(text + o, "    k_%zu: %zu\n", i, i);
    o += (size_t)sprintf(text + o, "    k-7: x\n    k_3: y\n");
    char line[32];
    snprintf(line, sizeof line, "%zu:5", n + 3);
    expect_error(text, line, "duplicate key 'k-7' (first at line 10)");
    free(text);
}

/* Duplicate keys are found by sorting: 50,000 keys took seconds when each
 * was compared with every earlier one (found by fuzzing). The one named is
 * still the first repeat in the file, with the line of its first use; 8x
 * the keys cost about 8x (the pairwise search: 64x). */
static void many_keys(void **state)
{
    (void)state;
    check_keys(NULL, 50000);
    assert_true(test_growth(check_keys, NULL, 4000, 32000, 3) < 24.0);
    expect_error("sandboxes:\n  - {b: 1, a: 1, c: 1, a: 2, b: 2}\n", "2:24",
                 "duplicate key 'a' (first at line 2)");
}

static void setters_decide(void **state)
{
    (void)state;
    expect_error("runtime_port: 99999999999\n", "1:15",
                 "runtime_port: must be between 1 and 65535 (0 or less: the default 49983), got "
                 "2147483647");
    expect_error("keepalive_s: 86401\n", "1:14",
                 "keepalive_s: must be a positive number of seconds up to 86400 (envd crashes on "
                 "0 or less), got 86401");
    expect_error("workers: 1025\n", "1:10",
                 "workers: must be at most 1024 (0 or less: one per online CPU), got 1025");
    expect_error("max_inflight: 0\n", "1:15", "max_inflight: must be between 1 and 1000000, got 0");
    expect_error("max_inflight: 1000001\n", "1:15", "max_inflight: must be between 1 and 1000000");
    expect_error("request_timeout_ms: -1\n", "1:21", "request_timeout_ms: must be >= 0 (0: none)");
    expect_error("idle_timeout_ms: -5\n", "1:18",
                 "idle_timeout_ms: must be >= 0 (0: none), got -5");
    expect_error("kubernetes: {timeout_ms: -1}\n", "1:26", "kubernetes.timeout_ms: must be >= 0");
    expect_error("domain: http://127.0.0.1:5\n", "1:9",
                 "domain: must be host[:port]; 'http://127.0.0.1:5' is a URL (for a URL use "
                 "envd_config_set_sandbox_base_url)");
    expect_error("domain: 'gw:0'\n", "1:9", "domain: must be host[:port]; 'gw:0' has a port");
    expect_error("sandbox_base_url: ftp://x\n", "1:19",
                 "sandbox_base_url: must be an http:// or https:// URL");
    expect_error("runtime_token: \"a\\r\\nb\"\n", "1:16",
                 "runtime_token: is sent as a header value, so it must not hold CR, LF");
    expect_error("transport: GRPC\n", "1:12",
                 "transport: must be grpc, connect or auto, got 'GRPC'");

    /* the reserved headers, any case, at the key */
    expect_error("headers:\n  Connect-Timeout-Ms: '300'\n", "2:3",
                 "headers.Connect-Timeout-Ms: 'Connect-Timeout-Ms' is reserved: envd takes it as "
                 "the lifetime of a process it starts");
    expect_error("headers:\n  X-A: a\n  keepalive-ping-interval: '0'\n", "3:3",
                 "headers.keepalive-ping-interval: 'keepalive-ping-interval' is reserved: envd "
                 "crashes on an interval of 0 or less; it is sent on streams from "
                 "envd_config_set_keepalive_s");
    expect_error("headers: {grpc-timeout: 1S}\n", "1:11",
                 "headers.grpc-timeout: 'grpc-timeout' is set by the transport");
    expect_error("headers: {Content-Type: text/plain}\n", "1:11",
                 "headers.Content-Type: 'Content-Type' is set by the transport (HTTP framing)");
    /* in the selected overlay, and in one not in use: found before it is */
    expect_error("environment: x\nenvironments:\n  x:\n    headers: {KEEPALIVE-PING-INTERVAL: "
                 "'0'}\n",
                 "4:15", "headers.KEEPALIVE-PING-INTERVAL (environment 'x'): "
                         "'KEEPALIVE-PING-INTERVAL' is reserved");
    expect_error("environments:\n  prod:\n    headers: {Connect-Timeout-Ms: '1'}\n", "3:15",
                 "headers.Connect-Timeout-Ms (environment 'prod'): 'Connect-Timeout-Ms' is "
                 "reserved");
    expect_error("environments:\n  prod: {headers: {Keepalive-Ping-Interval: '${X}'}}\n", "2:20",
                 "headers.Keepalive-Ping-Interval (environment 'prod'): 'Keepalive-Ping-Interval' "
                 "is reserved");
    expect_error("environments:\n  prod: {workers: 5000}\n", "2:19",
                 "workers (environment 'prod'): must be at most 1024");
    expect_error("environments:\n  prod: {kubernetes: {timeout_ms: -2}}\n", "2:35",
                 "kubernetes.timeout_ms (environment 'prod'): must be >= 0");
    /* a header value is checked where the value is */
    expect_error("headers:\n  X-A: \"a\\rb\"\n", "2:8",
                 "headers.X-A: not a valid HTTP header value (CR, LF and other control "
                 "characters are not allowed)");

    /* what the setters accept, the file accepts: <= 0 means the default */
    write_file("ok.yaml", "runtime_port: 0\n"
                          "workers: -1\n"
                          "fail_fast: true\n" /* without max_inflight: the default cap */
                          "keepalive_s: 86400\n"
                          "domain: '[::1]:49983'\n"
                          "headers: {X-Connect-Timeout-Ms: ok}\n"
                          "environments:\n"
                          /* not expanded, so not checked */
                          "  later: {domain: '${CF_TEST_UNSET}',\n"
                          "          headers: {X-T: '${CF_TEST_UNSET}'}}\n");
    unsetenv("CF_TEST_UNSET");
    envd_config *cfg = NULL;
    envd_error *err = NULL;
    envd_status st = envd_config_load_file(at("ok.yaml"), &cfg, NULL, &err);
    assert_ok(st, err);
    assert_int_equal(cfg->runtime_port, 49983);
    assert_int_equal(cfg->workers, 0);
    assert_int_equal(cfg->fail_fast, 1);
    assert_int_equal(cfg->max_inflight, 4096);
    assert_int_equal(cfg->keepalive_s, 86400);
    assert_string_equal(cfg->domain, "[::1]:49983");
    assert_string_equal(cfg->headers.names[0], "x-connect-timeout-ms");
    envd_config_free(cfg);

    /* fail_fast and max_inflight together, in either order in the file */
    write_file("ok2.yaml", "fail_fast: yes\nmax_inflight: 9\n");
    st = envd_config_load_file(at("ok2.yaml"), &cfg, NULL, &err);
    assert_ok(st, err);
    assert_int_equal(cfg->max_inflight, 9);
    assert_int_equal(cfg->fail_fast, 1);
    envd_config_free(cfg);
}

/* Every allocation of a load fails in turn: each time a clean
 * ENVD_E_NOMEM, no output, nothing leaked (ASan), until the load runs
 * through. */
static void allocation_failures(void **state)
{
    (void)state;
    setenv("CF_TEST_TOKEN", "tok", 1);
    write_file("oom.yaml", "domain: gw:1\n"
                           "runtime_token: ${CF_TEST_TOKEN}\n"
                           "auth_header: Basic dXNlcjo=\n"
                           "ca_file: certs/ca.pem\n"
                           "headers: {X-A: a, X-B: b}\n"
                           "max_inflight: 7\n"
                           "kubernetes: {kubeconfig: 'a.yaml:~/b.yaml', context: c}\n"
                           "sandboxes: [{name: a, id: x}, {name: b, k8s: ns/n}]\n"
                           "environment: one\n"
                           "environments:\n"
                           "  one: {domain: 'gw:2', headers: {x-b: B}, user: node}\n"
                           "  two: {workers: 3, sandboxes: [{name: c, id: y}]}\n");
    long n = 1;
    for (;; n++) {
        envd_config *cfg = NULL;
        envd_config_file *f = NULL;
        envd_error *err = NULL;
        envd_alloc_test_fail(n);
        envd_status st = envd_config_load_file(at("oom.yaml"), &cfg, &f, &err);
        int fired = envd_alloc_test_fired();
        envd_alloc_test_fail(0);
        if (!fired) {
            assert_ok(st, err);
            assert_string_equal(cfg->domain, "gw:2");
            assert_string_equal(cfg->user, "node");
            assert_int_equal(cfg->headers.n, 2);
            envd_config_free(cfg);
            envd_config_file_free(f);
            break;
        }
        if (st != ENVD_E_NOMEM)
            fail_msg("allocation %ld: %s (%s)", n, envd_strerror(st),
                     err ? envd_error_message(err) : "no error");
        assert_null(cfg);
        assert_null(f);
        envd_error_free(err);
    }
    assert_true(n > 30); /* the seam is really in the loader's path */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_option),
        cmocka_unit_test(environments),
        cmocka_unit_test(code_interpreter_options),
        cmocka_unit_test(mistakes),
        cmocka_unit_test(many_keys),
        cmocka_unit_test(setters_decide),
        cmocka_unit_test(allocation_failures),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
