/* NewFromK8s against the HTTPS Kubernetes API stub (tests/k8s/stub.mjs) on
 * loopback, with a PKI generated for the run: every kubeconfig credential
 * form, TLS settings and failures, merged $KUBECONFIG, in-cluster with an
 * overridden directory, exec plugins (caching, refresh after 401,
 * failures), the token and sandbox-ID rules, 401/403/404, sandboxes that
 * are not running, a malformed kubeconfig, hundreds of async resolutions,
 * cancellation, and clients named by a configuration file. */
/* cmocka.h needs these first */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include "../k8s/k8s_stub.h"
#include "api/internal.h"
#include "envd/envd_k8s.h"

#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static k8s_stub stub;
static envd_runtime *rt;

static const char *at(const char *name)
{
    static char buf[8][512];
    static int i;
    i = (i + 1) % 8;
    return k8s_path(&stub, name, buf[i], sizeof(buf[i]));
}

static int setup(void **state)
{
    (void)state;
    unsetenv("KUBECONFIG");
    unsetenv("KUBERNETES_SERVICE_HOST");
    unsetenv("KUBERNETES_SERVICE_PORT");
    if (k8s_stub_start(&stub) != 0)
        return -1;
    setenv("HOME", stub.dir, 1); /* no ~/.kube/config */
    return envd_runtime_new(NULL, &rt) == ENVD_OK ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    envd_runtime_free(rt);
    k8s_stub_stop(&stub);
    return 0;
}

static envd_k8s_options *opts_for(const char *file)
{
    envd_k8s_options *o = envd_k8s_options_new();
    envd_k8s_options_set_kubeconfig(o, at(file));
    envd_k8s_options_set_timeout_ms(o, 10000);
    return o;
}

#define assert_ok(st, err)                                                                         \
    do {                                                                                           \
        if ((st) != ENVD_OK)                                                                       \
            fail_msg("%s: %s", envd_strerror(st), (err) ? envd_error_message(err) : "(no error)"); \
    } while (0)

#define assert_contains(hay, needle)                                                               \
    do {                                                                                           \
        if (!strstr((hay), (needle)))                                                              \
            fail_msg("'%s' does not contain '%s'", (hay), (needle));                               \
    } while (0)

/* Reads default/web with the kubeconfig `file` and checks what it says. */
static void expect_web(const char *file)
{
    envd_k8s_options *o = opts_for(file);
    envd_k8s_sandbox *s = NULL;
    envd_error *err = NULL;
    envd_status st = envd_k8s_sandbox_get(o, "default", "web", &s, &err);
    assert_ok(st, err);
    assert_string_equal(s->id, "default--web");
    assert_string_equal(s->token, "tok-web-runtime");
    assert_string_equal(s->phase, "Running");
    assert_string_equal(s->ready, "True");
    assert_string_equal(s->pod_ip, "10.0.0.7");
    assert_string_equal(s->namespace_, "default");
    assert_true(s->running);
    envd_k8s_sandbox_free(s);
    envd_k8s_options_free(o);
}

/* The error of reading ns/name with kubeconfig `file`; caller frees. */
static envd_error *lookup_error(const char *file, const char *ns, const char *name,
                                envd_status want)
{
    envd_k8s_options *o = opts_for(file);
    envd_k8s_sandbox *s = NULL;
    envd_error *err = NULL;
    envd_status st = envd_k8s_sandbox_get(o, ns, name, &s, &err);
    envd_k8s_options_free(o);
    if (st != want)
        fail_msg("want %s, got %s: %s", envd_strerror(want), envd_strerror(st),
                 err ? envd_error_message(err) : "(no error)");
    assert_null(s);
    assert_non_null(err);
    assert_int_equal(envd_error_code(err), want);
    return err;
}

static void static_credentials(void **state)
{
    (void)state;
    k8s_write(at("token.txt"), "tok-file\n");
    k8s_write_kubeconfig(&stub, "token.yaml", "    token: tok-alice\n");
    k8s_write_kubeconfig(&stub, "tokenfile.yaml", "    tokenFile: token.txt\n");
    k8s_write_kubeconfig(&stub, "basic.yaml", "    username: bob\n    password: s3cret\n");
    k8s_write_kubeconfig(&stub, "cert.yaml",
                         "    client-certificate: client.crt\n    client-key: client.key\n");
    expect_web("token.yaml");
    expect_web("tokenfile.yaml");
    expect_web("basic.yaml");
    expect_web("cert.yaml");

    /* -data forms for the CA and the client certificate */
    char *ca = k8s_file_b64(at("ca.crt")), *crt = k8s_file_b64(at("client.crt")),
         *key = k8s_file_b64(at("client.key"));
    k8s_write(at("data.yaml"),
              "clusters:\n- name: s\n  cluster:\n    server: %s\n"
              "    certificate-authority-data: %s\n"
              "users:\n- name: u\n  user:\n    client-certificate-data: %s\n"
              "    client-key-data: %s\n"
              "contexts: [{name: c, context: {cluster: s, user: u}}]\ncurrent-context: c\n",
              stub.server, ca, crt, key);
    free(ca);
    free(crt);
    free(key);
    expect_web("data.yaml");

    /* no CA but insecure-skip-tls-verify */
    k8s_write(at("insecure.yaml"),
              "clusters:\n- name: s\n  cluster:\n    server: %s\n"
              "    insecure-skip-tls-verify: true\n"
              "users: [{name: u, user: {token: tok-alice}}]\n"
              "contexts: [{name: c, context: {cluster: s, user: u}}]\ncurrent-context: c\n",
              stub.server);
    expect_web("insecure.yaml");
}

static void tls_failure(void **state)
{
    (void)state;
    k8s_write(at("othca.yaml"),
              "clusters:\n- name: s\n  cluster:\n    server: %s\n"
              "    certificate-authority: other-ca.crt\n"
              "users: [{name: u, user: {token: tok-alice}}]\n"
              "contexts: [{name: c, context: {cluster: s, user: u}}]\ncurrent-context: c\n",
              stub.server);
    envd_error *err = lookup_error("othca.yaml", "default", "web", ENVD_UNAVAILABLE);
    const char *m = envd_error_message(err);
    assert_contains(m, "failed to get sandbox default/web: TLS with the Kubernetes API server");
    assert_contains(m, "other-ca.crt");
    envd_error_free(err);

    /* tls-server-name: the name the certificate is checked against */
    for (int good = 0; good < 2; good++) {
        k8s_write(at("sni.yaml"),
                  "clusters:\n- name: s\n  cluster:\n    server: %s\n"
                  "    certificate-authority: ca.crt\n    tls-server-name: %s\n"
                  "users: [{name: u, user: {token: tok-alice}}]\n"
                  "contexts: [{name: c, context: {cluster: s, user: u}}]\ncurrent-context: c\n",
                  stub.server, good ? "localhost" : "elsewhere.example");
        if (good) {
            expect_web("sni.yaml");
        } else {
            err = lookup_error("sni.yaml", "default", "web", ENVD_UNAVAILABLE);
            assert_contains(envd_error_message(err), "elsewhere.example");
            envd_error_free(err);
        }
    }

    /* a refused port is a transport error too */
    k8s_write(at("refused.yaml"),
              "clusters: [{name: s, cluster: {server: 'https://127.0.0.1:1'}}]\n"
              "contexts: [{name: c, context: {cluster: s}}]\n"
              "current-context: c\n");
    err = lookup_error("refused.yaml", "default", "web", ENVD_UNAVAILABLE);
    assert_contains(envd_error_message(err), "cannot reach the Kubernetes API server");
    envd_error_free(err);
}

/* The sandbox ID and token a client ended up with. */
static void expect_client(envd_client *c, const char *id, const char *token)
{
    assert_non_null(c);
    assert_string_equal(c->sandbox_id, id);
    if (token)
        assert_string_equal(c->cfg->runtime_token, token);
    else
        assert_null(c->cfg->runtime_token);
}

static void merged_kubeconfig_env(void **state)
{
    (void)state;
    /* cluster and context in one file, the user in another */
    k8s_write(at("m-cluster.yaml"),
              "clusters:\n- name: s\n  cluster:\n    server: %s\n"
              "    certificate-authority: ca.crt\n"
              "contexts: [{name: c, context: {cluster: s, user: u, namespace: default}}]\n"
              "current-context: c\n",
              stub.server);
    k8s_write(at("m-user.yaml"), "users: [{name: u, user: {token: tok-alice}}]\n"
                                 "current-context: ignored-second\n");
    char list[1200];
    snprintf(list, sizeof(list), "%s:%s", at("m-cluster.yaml"), at("m-user.yaml"));
    setenv("KUBECONFIG", list, 1);
    envd_client *c = NULL;
    envd_error *err = NULL;
    /* the plain Go-style call: default resolution, namespace from the context */
    envd_status st = envd_client_from_k8s(rt, NULL, "web", NULL, NULL, &c, &err);
    unsetenv("KUBECONFIG");
    assert_ok(st, err);
    expect_client(c, "default--web", "tok-web-runtime");
    envd_client_free(c);
}

static void in_cluster(void **state)
{
    (void)state;
    mkdir(at("sa"), 0700);
    k8s_write(at("sa/token"), "tok-sa\n");
    k8s_write(at("sa/namespace"), "agents\n");
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", at("ca.crt"), at("sa/ca.crt"));
    assert_int_equal(system(cmd), 0);
    char port[16];
    snprintf(port, sizeof(port), "%d", stub.port);
    setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1", 1);
    setenv("KUBERNETES_SERVICE_PORT", port, 1);
    envd_k8s_options *o = envd_k8s_options_new();
    envd_k8s_options_set_in_cluster_dir(o, at("sa"));
    envd_client *c = NULL;
    envd_error *err = NULL;
    /* auto: no kubeconfig, so in-cluster; the namespace file names agents */
    envd_status st = envd_client_from_k8s(rt, NULL, "runner", NULL, o, &c, &err);
    assert_ok(st, err);
    expect_client(c, "agents--runner", "tok-runner");
    envd_client_free(c);
    /* forced, with a kubeconfig present that would otherwise win */
    k8s_write_kubeconfig(&stub, "ic-token.yaml", "    token: tok-mallory\n");
    envd_k8s_options_set_kubeconfig(o, at("ic-token.yaml"));
    envd_k8s_options_set_source(o, ENVD_K8S_SOURCE_IN_CLUSTER);
    st = envd_client_from_k8s(rt, "agents", "runner", NULL, o, &c, &err);
    assert_ok(st, err);
    envd_client_free(c);
    envd_k8s_options_free(o);
    unsetenv("KUBERNETES_SERVICE_HOST");
    unsetenv("KUBERNETES_SERVICE_PORT");
}

/* An exec plugin script: counts its runs in `count`, checks it was given
 * KUBERNETES_EXEC_INFO with the cluster, prints tokens[min(run, 1)]. */
static void write_plugin(const char *file, const char *count, const char *first, const char *later)
{
    k8s_write(at(file),
              "#!/bin/sh\n"
              "echo run >> '%s'\n"
              "case \"$KUBERNETES_EXEC_INFO\" in *'\"server\":\"https://127.0.0.1'*) ;; *)\n"
              "  echo \"no cluster info: $KUBERNETES_EXEC_INFO\" >&2; exit 3;; esac\n"
              "[ \"$PLUGIN_ENV\" = yes ] || { echo 'env not passed' >&2; exit 4; }\n"
              "if [ $(wc -l < '%s') -le 1 ]; then t='%s'; else t='%s'; fi\n"
              "printf '{\"apiVersion\":\"client.authentication.k8s.io/v1beta1\","
              "\"kind\":\"ExecCredential\",\"status\":{\"token\":\"%%s\","
              "\"expirationTimestamp\":\"2099-01-01T00:00:00Z\"}}' \"$t\"\n",
              at(count), at(count), first, later);
    chmod(at(file), 0755);
}

static int lines(const char *path)
{
    FILE *fp = fopen(path, "r");
    int n = 0, ch;
    while (fp && (ch = fgetc(fp)) != EOF)
        n += ch == '\n';
    if (fp)
        fclose(fp);
    return n;
}

static void exec_plugin_user(const char *file, const char *plugin, const char *extra)
{
    char user[1024];
    snprintf(user, sizeof(user),
             "    exec:\n"
             "      apiVersion: client.authentication.k8s.io/v1beta1\n"
             "      command: ./%s\n"
             "      env: [{name: PLUGIN_ENV, value: 'yes'}]\n"
             "      provideClusterInfo: true\n"
             "      installHint: see the test's write_plugin\n%s",
             plugin, extra ? extra : "");
    k8s_write_kubeconfig(&stub, file, user);
}

static void exec_plugins(void **state)
{
    (void)state;
    /* a good token; the second lookup takes it from the cache */
    write_plugin("plugin-good.sh", "count-good", "tok-exec-good", "tok-exec-good");
    exec_plugin_user("exec-good.yaml", "plugin-good.sh", NULL);
    expect_web("exec-good.yaml");
    expect_web("exec-good.yaml");
    assert_int_equal(lines(at("count-good")), 1);

    /* a stale token: 401, the plugin runs again, the new token works */
    write_plugin("plugin-stale.sh", "count-stale", "stale-token", "tok-exec-good");
    exec_plugin_user("exec-stale.yaml", "plugin-stale.sh", NULL);
    expect_web("exec-stale.yaml");
    assert_int_equal(lines(at("count-stale")), 2);

    /* a failing plugin: its stderr and installHint in the message */
    k8s_write(at("plugin-bad.sh"), "#!/bin/sh\necho 'boom: no credentials' >&2\nexit 1\n");
    chmod(at("plugin-bad.sh"), 0755);
    exec_plugin_user("exec-bad.yaml", "plugin-bad.sh", NULL);
    envd_error *err = lookup_error("exec-bad.yaml", "default", "web", ENVD_E_CONFIG);
    const char *m = envd_error_message(err);
    assert_contains(m, "failed to create k8s client: exec credential plugin");
    assert_contains(m, "exit status 1");
    assert_contains(m, "boom: no credentials");
    assert_contains(m, "see the test's write_plugin");
    envd_error_free(err);

    /* a plugin that is not installed */
    k8s_write_kubeconfig(&stub, "exec-none.yaml",
                         "    exec: {apiVersion: client.authentication.k8s.io/v1, "
                         "command: envd-test-no-such-plugin}\n");
    err = lookup_error("exec-none.yaml", "default", "web", ENVD_E_CONFIG);
    assert_contains(envd_error_message(err), "not found in PATH");
    envd_error_free(err);
}

static void tokens_and_ids(void **state)
{
    (void)state;
    k8s_write_kubeconfig(&stub, "ids.yaml", "    token: tok-alice\n");
    envd_k8s_options *o = opts_for("ids.yaml");
    envd_config *cfg = envd_config_new();
    envd_config_set_runtime_token(cfg, "caller-token");
    static const struct {
        const char *name, *id, *token;
    } cases[] = {
        {"web", "default--web", "tok-web-runtime"},      /* the annotation wins */
        {"notoken", "default--notoken", "caller-token"}, /* no annotation: the caller's */
        {"legacy", "default--legacy", "tok-legacy"},     /* the legacy annotation */
        {"short", "sbx-abc123", "tok-short"},            /* the short-ID label */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        envd_client *c = NULL;
        envd_error *err = NULL;
        envd_status st = envd_client_from_k8s(rt, "default", cases[i].name, cfg, o, &c, &err);
        assert_ok(st, err);
        expect_client(c, cases[i].id, cases[i].token);
        assert_string_equal(envd_client_runtime_url(c), "http://domain.app");
        envd_client_free(c);
    }
    /* no caller config and no annotation: no token at all */
    envd_client *c = NULL;
    envd_error *err = NULL;
    envd_status st = envd_client_from_k8s(rt, "default", "notoken", NULL, o, &c, &err);
    assert_ok(st, err);
    expect_client(c, "default--notoken", NULL);
    envd_client_free(c);
    /* names are checked before anything is sent */
    st = envd_client_from_k8s(rt, "Bad_NS", "web", cfg, o, &c, &err);
    assert_int_equal(st, ENVD_INVALID_ARGUMENT);
    assert_contains(envd_error_message(err), "invalid sandbox namespace 'Bad_NS'");
    envd_error_free(err);
    assert_int_equal(envd_client_from_k8s(rt, "default", "../x", cfg, o, &c, &err),
                     ENVD_INVALID_ARGUMENT);
    envd_error_free(err);
    envd_config_free(cfg);
    envd_k8s_options_free(o);
}

static void http_errors(void **state)
{
    (void)state;
    k8s_write_kubeconfig(&stub, "e-alice.yaml", "    token: tok-alice\n");
    k8s_write_kubeconfig(&stub, "e-badtoken.yaml", "    token: not-a-token\n");
    k8s_write_kubeconfig(&stub, "e-mallory.yaml", "    token: tok-mallory\n");
    k8s_write_kubeconfig(&stub, "e-as.yaml", "    token: tok-alice\n    as: nobody\n");

    envd_error *err = lookup_error("e-badtoken.yaml", "default", "web", ENVD_UNAUTHENTICATED);
    assert_int_equal(envd_error_http_status(err), 401);
    assert_contains(envd_error_message(err), "failed to get sandbox default/web: 401 Unauthorized");
    assert_contains(envd_error_message(err), "a bearer token of user 'tester'");
    envd_error_free(err);

    err = lookup_error("e-mallory.yaml", "default", "web", ENVD_PERMISSION_DENIED);
    assert_int_equal(envd_error_http_status(err), 403);
    const char *m = envd_error_message(err);
    assert_contains(m, "403 Forbidden");
    assert_contains(m, "User \"mallory\" cannot get resource");
    assert_contains(m, "needs the RBAC verb \"get\" on resource \"sandboxes\" in API group "
                       "\"agents.kruise.io\" in namespace \"default\"");
    envd_error_free(err);

    /* impersonation headers are sent: as nobody, alice is refused */
    err = lookup_error("e-as.yaml", "default", "web", ENVD_PERMISSION_DENIED);
    assert_contains(envd_error_message(err), "User \"nobody\"");
    envd_error_free(err);

    err = lookup_error("e-alice.yaml", "default", "missing", ENVD_NOT_FOUND);
    assert_int_equal(envd_error_http_status(err), 404);
    assert_contains(envd_error_message(err), "sandbox default/missing not found");
    envd_error_free(err);

    err = lookup_error("e-alice.yaml", "nocrd", "web", ENVD_NOT_FOUND);
    assert_contains(envd_error_message(err), "does not serve agents.kruise.io/v1alpha1 sandboxes");
    envd_error_free(err);
}

static void not_running(void **state)
{
    (void)state;
    k8s_write_kubeconfig(&stub, "nr.yaml", "    token: tok-alice\n");
    envd_k8s_options *o = opts_for("nr.yaml");
    envd_client *c = NULL;
    envd_error *err = NULL;
    envd_status st = envd_client_from_k8s(rt, "default", "pending", NULL, o, &c, &err);
    assert_int_equal(st, ENVD_FAILED_PRECONDITION);
    assert_null(c);
    const char *m = envd_error_message(err);
    assert_contains(m, "sandbox default/pending is not running: status.phase is \"Pending\"");
    assert_contains(m, "Ready condition is \"False\" (reason: PodNotReady, message: containers "
                       "not ready)");
    envd_error_free(err);

    st = envd_client_from_k8s(rt, "default", "pooled", NULL, o, &c, &err);
    assert_int_equal(st, ENVD_FAILED_PRECONDITION);
    assert_contains(envd_error_message(err), "SandboxSet 'pool-a'");
    envd_error_free(err);

    /* the Go client's behaviour on request */
    envd_k8s_options_set_require_running(o, 0);
    st = envd_client_from_k8s(rt, "default", "pending", NULL, o, &c, &err);
    assert_ok(st, err);
    expect_client(c, "default--pending", "tok-pending");
    envd_client_free(c);
    envd_k8s_options_free(o);
}

static void malformed_kubeconfig(void **state)
{
    (void)state;
    k8s_write(at("broken.yaml"), "clusters:\n- name: s\n  cluster: [unterminated\n");
    envd_client *c = NULL;
    envd_error *err = NULL;
    setenv("KUBECONFIG", at("broken.yaml"), 1);
    envd_status st = envd_client_from_k8s(rt, "default", "web", NULL, NULL, &c, &err);
    unsetenv("KUBECONFIG");
    assert_int_equal(st, ENVD_E_CONFIG);
    char want[600];
    snprintf(want, sizeof(want), "failed to create k8s client: %s:4:", at("broken.yaml"));
    assert_contains(envd_error_message(err), want);
    envd_error_free(err);
}

static void async_many(void **state)
{
    (void)state;
    enum { N = 300 };
    k8s_write_kubeconfig(&stub, "bulk.yaml",
                         "    client-certificate: client.crt\n"
                         "    client-key: client.key\n");
    envd_k8s_options *o = opts_for("bulk.yaml");
    envd_future **fs = calloc(N, sizeof(*fs));
    int64_t t0 = envd_now_ms();
    for (int i = 0; i < N; i++) {
        char name[32];
        snprintf(name, sizeof(name), "sbx-%d", i);
        assert_int_equal(envd_client_from_k8s_async(rt, "bulk", name, NULL, o, &fs[i]),
                         ENVD_OK);
    }
    envd_k8s_options_free(o); /* copied by each call */
    assert_int_equal(envd_future_wait_all(fs, N, 20000), ENVD_OK);
    for (int i = 0; i < N; i++) {
        if (envd_future_status(fs[i]) != ENVD_OK)
            fail_msg("%d: %s", i, envd_error_message(envd_future_error(fs[i])));
        envd_client *c = envd_future_take_client(fs[i]);
        char id[32], tok[32];
        snprintf(id, sizeof(id), "bulk--sbx-%d", i);
        snprintf(tok, sizeof(tok), "bulk-token-%d", i);
        expect_client(c, id, tok);
        assert_null(envd_future_take_client(fs[i])); /* taken once */
        envd_client_free(c);
        envd_future_free(fs[i]);
    }
    print_message("%d sandboxes resolved in %lld ms\n", N, (long long)(envd_now_ms() - t0));
    free(fs);
}

/* A loopback port that accepts connections (the kernel completes the
 * handshake) and never says a word. Returns the listening socket. */
static int silent_server(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(fd, 16), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

/* Starts a lookup on a runtime of its own, checks it is still pending,
 * frees the runtime and checks that this was prompt and that the future
 * completed ENVD_CANCELED. */
static void free_runtime_under(const char *kubeconfig, const char *ns, const char *name)
{
    envd_runtime *own = NULL;
    assert_int_equal(envd_runtime_new(NULL, &own), ENVD_OK);
    envd_k8s_options *o = envd_k8s_options_new();
    envd_k8s_options_set_kubeconfig(o, at(kubeconfig));
    envd_k8s_options_set_timeout_ms(o, 60000);
    envd_future *f = NULL;
    assert_int_equal(envd_client_from_k8s_async(own, ns, name, NULL, o, &f), ENVD_OK);
    envd_k8s_options_free(o);
    assert_int_equal(envd_future_wait(f, 400), ENVD_E_TIMEOUT); /* stuck, as wanted */
    int64_t t0 = envd_now_ms();
    envd_runtime_free(own);
    int64_t took = envd_now_ms() - t0;
    print_message("%s: envd_runtime_free took %lld ms\n", kubeconfig, (long long)took);
    assert_true(took < 2000);
    assert_int_equal(envd_future_wait(f, 0), ENVD_OK);
    assert_int_equal(envd_future_status(f), ENVD_CANCELED);
    assert_null(envd_future_take_client(f));
    envd_future_free(f);
}

/* The exec plugin that never finishes: records its pid, then sleeps. */
static void write_sleeping_plugin(const char *file, const char *pidfile)
{
    k8s_write(at(file), "#!/bin/sh\necho $$ > '%s'\nexec sleep 60\n", at(pidfile));
    chmod(at(file), 0755);
}

/* The pid the plugin wrote, once it did. */
static pid_t plugin_pid(const char *pidfile)
{
    for (int i = 0; i < 200; i++) {
        FILE *fp = fopen(at(pidfile), "r");
        int pid = 0;
        if (fp) {
            int got = fscanf(fp, "%d", &pid);
            fclose(fp);
            if (got == 1 && pid > 0)
                return (pid_t)pid;
        }
        usleep(10000);
    }
    fail_msg("the plugin did not start");
    return 0;
}

static void runtime_free_cancels_lookups(void **state)
{
    (void)state;
    /* an API server that accepts and never answers */
    int port = 0;
    int ls = silent_server(&port);
    k8s_write(at("silent.yaml"),
              "clusters: [{name: s, cluster: {server: 'https://127.0.0.1:%d', "
              "insecure-skip-tls-verify: true}}]\n"
              "users: [{name: u, user: {token: tok-alice}}]\n"
              "contexts: [{name: c, context: {cluster: s, user: u}}]\ncurrent-context: c\n",
              port);
    free_runtime_under("silent.yaml", "default", "web");
    /* the same server and a short timeout: the lookup ends at it */
    envd_k8s_options *o = opts_for("silent.yaml");
    envd_k8s_options_set_timeout_ms(o, 300);
    envd_k8s_sandbox *s = NULL;
    envd_error *err = NULL;
    int64_t t0 = envd_now_ms();
    assert_int_equal(envd_k8s_sandbox_get(o, "default", "web", &s, &err), ENVD_DEADLINE_EXCEEDED);
    int64_t took = envd_now_ms() - t0;
    assert_true(took >= 250 && took < 2000);
    assert_null(s);
    assert_contains(envd_error_message(err), "did not answer within 300 ms");
    envd_error_free(err);
    envd_k8s_options_free(o);
    close(ls);

    /* the stub holds slow/ for 5 s after reading the request */
    k8s_write_kubeconfig(&stub, "hold.yaml", "    token: tok-alice\n");
    free_runtime_under("hold.yaml", "slow", "slow");

    /* an exec plugin that sleeps: killed, and nothing is left running */
    write_sleeping_plugin("plugin-sleep.sh", "sleep.pid");
    unlink(at("sleep.pid"));
    exec_plugin_user("exec-sleep.yaml", "plugin-sleep.sh", NULL);
    free_runtime_under("exec-sleep.yaml", "default", "web");
    pid_t pid = plugin_pid("sleep.pid");
    assert_int_equal(kill(pid, 0), -1);
    assert_int_equal(errno, ESRCH);
}

/* A plugin that outlives the lookup's timeout is killed at the timeout. */
static void exec_plugin_timeout(void **state)
{
    (void)state;
    write_sleeping_plugin("plugin-slow.sh", "slow.pid");
    unlink(at("slow.pid"));
    exec_plugin_user("exec-slow.yaml", "plugin-slow.sh", NULL);
    envd_k8s_options *o = envd_k8s_options_new();
    envd_k8s_options_set_kubeconfig(o, at("exec-slow.yaml"));
    envd_k8s_options_set_timeout_ms(o, 500);
    envd_client *c = NULL;
    envd_error *err = NULL;
    int64_t t0 = envd_now_ms();
    envd_status st = envd_client_from_k8s(rt, "default", "web", NULL, o, &c, &err);
    int64_t took = envd_now_ms() - t0;
    envd_k8s_options_free(o);
    assert_int_equal(st, ENVD_DEADLINE_EXCEEDED);
    assert_null(c);
    assert_contains(envd_error_message(err), "did not finish within 500 ms");
    envd_error_free(err);
    assert_true(took >= 450 && took < 2500);
    pid_t pid = plugin_pid("slow.pid");
    assert_int_equal(kill(pid, 0), -1);
    assert_int_equal(errno, ESRCH);

    /* cancelling the future kills it too */
    write_sleeping_plugin("plugin-slow.sh", "slow.pid");
    unlink(at("slow.pid"));
    o = envd_k8s_options_new();
    envd_k8s_options_set_kubeconfig(o, at("exec-slow.yaml"));
    envd_future *f = NULL;
    assert_int_equal(envd_client_from_k8s_async(rt, "default", "web", NULL, o, &f), ENVD_OK);
    envd_k8s_options_free(o);
    pid = plugin_pid("slow.pid");
    t0 = envd_now_ms();
    envd_future_cancel(f);
    assert_int_equal(envd_future_wait(f, 3000), ENVD_OK);
    assert_true(envd_now_ms() - t0 < 2000);
    assert_int_equal(envd_future_status(f), ENVD_CANCELED);
    envd_future_free(f);
    /* the worker reaps it before it takes the next job: a lookup after it
     * finds it gone */
    k8s_write_kubeconfig(&stub, "after.yaml", "    token: tok-alice\n");
    expect_web("after.yaml");
    assert_int_equal(kill(pid, 0), -1);
}

static void async_errors_and_cancel(void **state)
{
    (void)state;
    k8s_write_kubeconfig(&stub, "async.yaml", "    token: tok-alice\n");
    envd_k8s_options *o = opts_for("async.yaml");
    envd_future *f = NULL;
    assert_int_equal(envd_client_from_k8s_async(rt, "default", "missing", NULL, o, &f),
                     ENVD_OK);
    assert_int_equal(envd_future_wait(f, 10000), ENVD_OK);
    assert_int_equal(envd_future_status(f), ENVD_NOT_FOUND);
    assert_null(envd_future_take_client(f));
    assert_contains(envd_error_message(envd_future_error(f)), "not found");
    envd_future_free(f);

    /* the stub answers slow/ after 5 s: cancel ends it at once */
    int64_t t0 = envd_now_ms();
    assert_int_equal(envd_client_from_k8s_async(rt, "slow", "slow", NULL, o, &f), ENVD_OK);
    assert_int_equal(envd_future_wait(f, 200), ENVD_E_TIMEOUT);
    envd_future_cancel(f);
    assert_int_equal(envd_future_wait(f, 3000), ENVD_OK);
    assert_int_equal(envd_future_status(f), ENVD_CANCELED);
    assert_true(envd_now_ms() - t0 < 3000);
    envd_future_free(f);

    /* freeing a pending future cancels it; nothing leaks (ASan) */
    assert_int_equal(envd_client_from_k8s_async(rt, "slow", "slow", NULL, o, &f), ENVD_OK);
    envd_future_free(f);
    /* the async call's own argument checks */
    assert_int_equal(envd_client_from_k8s_async(NULL, "a", "b", NULL, NULL, &f), ENVD_E_USAGE);
    assert_int_equal(envd_client_from_k8s_async(rt, "a", NULL, NULL, NULL, &f), ENVD_E_USAGE);
    assert_null(f);
    /* the blocking forms name the argument */
    envd_client *c = (envd_client *)&f;
    envd_error *err = NULL;
    assert_int_equal(envd_client_from_k8s(NULL, "a", "b", NULL, NULL, &c, &err), ENVD_E_USAGE);
    assert_null(c);
    assert_string_equal(envd_error_message(err), "envd_client_from_k8s: runtime is NULL");
    envd_error_free(err);
    assert_int_equal(envd_config_file_client(rt, NULL, "x", &c, &err), ENVD_E_USAGE);
    assert_string_equal(envd_error_message(err), "envd_config_file_client: file is NULL");
    envd_error_free(err);
    envd_k8s_sandbox *sb = (envd_k8s_sandbox *)&f;
    assert_int_equal(envd_k8s_sandbox_get(o, "default", NULL, &sb, &err), ENVD_E_USAGE);
    assert_null(sb);
    assert_string_equal(envd_error_message(err), "envd_k8s_sandbox_get: name is NULL");
    envd_error_free(err);
    envd_k8s_options_free(o);
}

static void config_file_clients(void **state)
{
    (void)state;
    k8s_write_kubeconfig(&stub, "cf-kube.yaml", "    token: tok-alice\n");
    k8s_write(at("envd.yaml"), "domain: 127.0.0.1:7788\n"
                               "runtime_token: file-token\n"
                               "kubernetes:\n  kubeconfig: cf-kube.yaml\n  timeout_ms: 10000\n"
                               "sandboxes:\n"
                               "  - {name: agent, k8s: default/short}\n"
                               "  - {name: plain, k8s: notoken}\n"
                               "  - {name: direct, id: sbx-direct, runtime_token: own-token}\n");
    envd_config_file *f = NULL;
    envd_error *err = NULL;
    envd_status st = envd_config_file_load(at("envd.yaml"), NULL, &f, &err);
    assert_ok(st, err);
    envd_client *c = NULL;
    st = envd_config_file_client(rt, f, "agent", &c, &err);
    assert_ok(st, err);
    expect_client(c, "sbx-abc123", "tok-short");
    assert_string_equal(envd_client_runtime_url(c), "http://127.0.0.1:7788");
    envd_client_free(c);
    /* namespace from the kubeconfig context ("default"), token from the file */
    st = envd_config_file_client(rt, f, "plain", &c, &err);
    assert_ok(st, err);
    expect_client(c, "default--notoken", "file-token");
    envd_client_free(c);
    st = envd_config_file_client(rt, f, "direct", &c, &err);
    assert_ok(st, err);
    expect_client(c, "sbx-direct", "own-token");
    envd_client_free(c);
    /* NULL: the first entry */
    st = envd_config_file_client(rt, f, NULL, &c, &err);
    assert_ok(st, err);
    expect_client(c, "sbx-abc123", "tok-short");
    envd_client_free(c);
    assert_int_equal(envd_config_file_client(rt, f, "nope", &c, &err), ENVD_NOT_FOUND);
    assert_contains(envd_error_message(err), "no sandbox named 'nope'");
    envd_error_free(err);

    envd_future *fa = NULL, *fd = NULL;
    assert_int_equal(envd_config_file_client_async(rt, f, "agent", &fa), ENVD_OK);
    assert_int_equal(envd_config_file_client_async(rt, f, "direct", &fd), ENVD_OK);
    envd_config_file_free(f); /* the futures do not need it */
    envd_future *both[2] = {fa, fd};
    assert_int_equal(envd_future_wait_all(both, 2, 10000), ENVD_OK);
    c = envd_future_take_client(fa);
    expect_client(c, "sbx-abc123", "tok-short");
    envd_client_free(c);
    c = envd_future_take_client(fd);
    expect_client(c, "sbx-direct", "own-token");
    envd_client_free(c);
    envd_future_free(fa);
    envd_future_free(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(static_credentials),
        cmocka_unit_test(tls_failure),
        cmocka_unit_test(merged_kubeconfig_env),
        cmocka_unit_test(in_cluster),
        cmocka_unit_test(exec_plugins),
        cmocka_unit_test(tokens_and_ids),
        cmocka_unit_test(http_errors),
        cmocka_unit_test(not_running),
        cmocka_unit_test(malformed_kubeconfig),
        cmocka_unit_test(async_many),
        cmocka_unit_test(async_errors_and_cancel),
        cmocka_unit_test(runtime_free_cancels_lookups),
        cmocka_unit_test(exec_plugin_timeout),
        cmocka_unit_test(config_file_clients),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
