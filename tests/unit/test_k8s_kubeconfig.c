/* Kubeconfig resolution without a server: merging of a colon-separated
 * list, context choice, every credential form read into the connection,
 * relative paths, the in-cluster directory, and the errors a user meets
 * (missing, malformed with file:line, unsupported auth-provider ...). Also
 * the ExecCredential and Sandbox parsers. */
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
#include "k8s/exec_plugin.h"
#include "k8s/k8s.h"
#include "k8s/kubeconfig.h"
#include "../test_clock.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static char tmp[256];

static const char *at(const char *name)
{
    static char buf[4][512];
    static int i;
    i = (i + 1) % 4;
    snprintf(buf[i], sizeof(buf[i]), "%s/%s", tmp, name);
    return buf[i];
}

static int setup(void **state)
{
    (void)state;
    snprintf(tmp, sizeof(tmp), "/tmp/envd-kc-XXXXXX");
    if (!mkdtemp(tmp))
        return -1;
    unsetenv("KUBECONFIG");
    unsetenv("KUBERNETES_SERVICE_HOST");
    unsetenv("KUBERNETES_SERVICE_PORT");
    setenv("HOME", tmp, 1); /* no ~/.kube/config unless a test writes one */
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
    return system(cmd) == 0 ? 0 : -1;
}

/* Loads with a kubeconfig list; returns the status, *c and *err set. */
static envd_status load(const char *kubeconfig, const char *context, envd_k8s_conn **c,
                        envd_error **err)
{
    envd_k8s_options *o = envd_k8s_options_new();
    if (kubeconfig)
        envd_k8s_options_set_kubeconfig(o, kubeconfig);
    if (context)
        envd_k8s_options_set_context(o, context);
    *err = NULL;
    envd_status st = envd_k8s_conn_load(o, c, err);
    envd_k8s_options_free(o);
    return st;
}

static void expect_error(const char *kubeconfig, const char *context, envd_status code,
                         const char *needle1, const char *needle2)
{
    envd_k8s_conn *c = NULL;
    envd_error *err = NULL;
    envd_status st = load(kubeconfig, context, &c, &err);
    assert_int_equal(st, code);
    assert_null(c);
    assert_non_null(err);
    const char *m = envd_error_message(err);
    if (!strstr(m, needle1) || (needle2 && !strstr(m, needle2)))
        fail_msg("message '%s' lacks '%s' / '%s'", m, needle1, needle2 ? needle2 : "");
    envd_error_free(err);
}

static void merged_list(void **state)
{
    (void)state;
    /* a: cluster c1 -> A, user u1, context ca, current-context cb.
     * b: cluster c1 -> B (loses), cluster c2, user u2, contexts ca (loses)
     *    and cb, current-context ca (loses). */
    k8s_write(at("a.yaml"), "clusters:\n"
                            "- name: c1\n  cluster: {server: 'https://a.example:6443'}\n"
                            "users:\n- name: u1\n  user: {token: tok-u1}\n"
                            "contexts:\n- name: ca\n  context: {cluster: c1, user: u1}\n"
                            "current-context: cb\n");
    k8s_write(at("b.yaml"), "clusters:\n"
                            "- name: c1\n  cluster: {server: 'https://b.example'}\n"
                            "- name: c2\n  cluster: {server: 'https://c2.example/'}\n"
                            "users:\n- name: u2\n  user: {username: bob, password: pw}\n"
                            "contexts:\n"
                            "- name: ca\n  context: {cluster: c2, user: u2}\n"
                            "- name: cb\n  context: {cluster: c1, user: u2, namespace: team}\n"
                            "current-context: ca\n");
    char list[1200];
    snprintf(list, sizeof(list), "%s::%s:%s:%s", at("a.yaml"), at("missing.yaml"), at("b.yaml"),
             at("a.yaml"));
    envd_k8s_conn *c = NULL;
    envd_error *err = NULL;
    assert_int_equal(load(list, NULL, &c, &err), ENVD_OK);
    assert_string_equal(c->server, "https://a.example:6443"); /* first c1 wins */
    assert_string_equal(c->username, "bob");                  /* u2 from b */
    assert_string_equal(c->password, "pw");
    assert_null(c->token);
    assert_string_equal(c->ns, "team");
    assert_non_null(strstr(c->origin, "context 'cb'"));
    envd_k8s_conn_free(c);

    /* a named context wins over current-context; ca is a's */
    assert_int_equal(load(list, "ca", &c, &err), ENVD_OK);
    assert_string_equal(c->token, "tok-u1");
    assert_string_equal(c->ns, "default");
    envd_k8s_conn_free(c);

    /* the same list through $KUBECONFIG */
    setenv("KUBECONFIG", list, 1);
    assert_int_equal(load(NULL, NULL, &c, &err), ENVD_OK);
    assert_string_equal(c->server, "https://a.example:6443");
    envd_k8s_conn_free(c);
    /* the option replaces $KUBECONFIG */
    assert_int_equal(load(at("b.yaml"), NULL, &c, &err), ENVD_OK);
    assert_string_equal(c->server, "https://c2.example"); /* trailing '/' dropped */
    envd_k8s_conn_free(c);
    unsetenv("KUBECONFIG");

    expect_error(list, "nope", ENVD_E_CONFIG, "context 'nope' is not defined", NULL);
}

/* A kubeconfig of n contexts, written to at(name). */
static void write_contexts(const char *name, size_t n)
{
    char *text = malloc(n * 96 + 256);
    assert_non_null(text);
    size_t o = (size_t)sprintf(text, "clusters:\n- name: c\n  cluster: {server: 'https://m.example'}\n"
                                     "users:\n- name: u\n  user: {token: t}\ncontexts:\n");
    for (size_t i = 0; i < n; i++)
        o += (size_t)sprintf(text + o, "- name: x%zu\n  context: {cluster: c, user: u, namespace: n%zu}\n", i, i);
    k8s_write(at(name), "%s", text);
    free(text);
}

/* One load of n contexts, the last one asked for (test_growth). */
static void load_contexts(void *ud, size_t n)
{
    (void)ud;
    write_contexts("grow.yaml", n);
    char name[32];
    snprintf(name, sizeof name, "x%zu", n - 1);
    envd_k8s_conn *c = NULL;
    envd_error *err = NULL;
    assert_int_equal(load(at("grow.yaml"), name, &c, &err), ENVD_OK);
    envd_k8s_conn_free(c);
}

/* 20,000 contexts over two files: found by sorting once (a pairwise search
 * per entry took seconds), the first definition of a name still wins. The
 * cost grows as the file does, not as its square: 8x the contexts cost
 * about 8x (the pairwise search: 64x). */
static void many_contexts(void **state)
{
    (void)state;
    const size_t n = 20000;
    write_contexts("many.yaml", n);
    k8s_write(at("first.yaml"), "contexts:\n- name: x777\n  context: {cluster: c, user: u, namespace: won}\n");
    char list[1100];
    snprintf(list, sizeof(list), "%s:%s", at("first.yaml"), at("many.yaml"));
    envd_k8s_conn *c = NULL;
    envd_error *err = NULL;
    assert_int_equal(load(list, "x777", &c, &err), ENVD_OK);
    assert_string_equal(c->ns, "won");
    envd_k8s_conn_free(c);
    assert_int_equal(load(list, "x19999", &c, &err), ENVD_OK);
    assert_string_equal(c->ns, "n19999");
    envd_k8s_conn_free(c);
    assert_true(test_growth(load_contexts, NULL, 1000, 8000, 3) < 24.0);
}

static void home_config_and_missing(void **state)
{
    (void)state;
    /* nothing anywhere */
    expect_error(NULL, NULL, ENVD_E_CONFIG, "no Kubernetes configuration",
                 "KUBERNETES_SERVICE_HOST");
    /* $KUBECONFIG names files that do not exist, and this is not a pod */
    setenv("KUBECONFIG", at("nope1:nope2"), 1);
    expect_error(NULL, NULL, ENVD_E_CONFIG, "kubeconfig missing", "nope1");
    unsetenv("KUBECONFIG");
    /* ~/.kube/config */
    mkdir(at(".kube"), 0700);
    k8s_write(at(".kube/config"), "clusters: [{name: h, cluster: {server: 'home.example:443'}}]\n"
                                  "contexts: [{name: h, context: {cluster: h}}]\n"
                                  "current-context: h\n");
    envd_k8s_conn *c = NULL;
    envd_error *err = NULL;
    assert_int_equal(load(NULL, NULL, &c, &err), ENVD_OK);
    assert_string_equal(c->server, "https://home.example:443"); /* bare host: https */
    assert_null(c->token);
    assert_null(c->cert.data);
    envd_k8s_conn_free(c);
    remove(at(".kube/config"));
}

static void malformed_and_wrong_types(void **state)
{
    (void)state;
    k8s_write(at("bad.yaml"), "apiVersion: v1\n"
                              "clusters:\n"
                              "- name: x\n"
                              "  cluster: {server: 'https://x'\n"
                              "users: []\n");
    char want[600];
    snprintf(want, sizeof(want), "%s:5:", at("bad.yaml"));
    expect_error(at("bad.yaml"), NULL, ENVD_E_CONFIG, want, "syntax error");

    k8s_write(at("types.yaml"), "clusters: {a: b}\n");
    snprintf(want, sizeof(want), "%s:1:11: 'clusters' must be a list", at("types.yaml"));
    expect_error(at("types.yaml"), NULL, ENVD_E_CONFIG, want, NULL);

    k8s_write(at("nocluster.yaml"), "contexts: [{name: c, context: {cluster: gone}}]\n"
                                    "current-context: c\n");
    expect_error(at("nocluster.yaml"), NULL, ENVD_E_CONFIG, "cluster 'gone', which is not defined",
                 NULL);
    k8s_write(at("nocur.yaml"), "clusters: []\n");
    expect_error(at("nocur.yaml"), NULL, ENVD_E_CONFIG, "no current-context", NULL);
}

static void write_user(const char *file, const char *user)
{
    k8s_write(at(file),
              "clusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:1\n"
              "    certificate-authority: ca.pem\n"
              "users:\n- name: u\n  user:\n%s"
              "contexts:\n- name: x\n  context: {cluster: c, user: u}\n"
              "current-context: x\n",
              user);
}

static void credential_forms(void **state)
{
    (void)state;
    k8s_write(at("ca.pem"), "CA PEM\n");
    k8s_write(at("client.pem"), "CERT PEM\n");
    k8s_write(at("client.key"), "KEY PEM\n");
    k8s_write(at("token.txt"), "tok-from-file\n");
    envd_k8s_conn *c = NULL;
    envd_error *err = NULL;

    /* files, relative to the kubeconfig's directory */
    write_user("files.yaml", "    client-certificate: client.pem\n"
                             "    client-key: client.key\n"
                             "    tokenFile: token.txt\n"
                             "    as: someone\n    as-groups: [g1, g2]\n");
    assert_int_equal(load(at("files.yaml"), NULL, &c, &err), ENVD_OK);
    assert_string_equal((char *)c->ca.data, "CA PEM\n");
    assert_string_equal((char *)c->cert.data, "CERT PEM\n");
    assert_string_equal((char *)c->key.data, "KEY PEM\n");
    assert_string_equal(c->token, "tok-from-file"); /* trailing newline dropped */
    assert_string_equal(c->as_user, "someone");
    assert_int_equal(c->n_as_groups, 2);
    assert_non_null(strstr(c->ca_desc, "ca.pem"));
    envd_k8s_conn_free(c);

    /* -data forms win over the files; a token wins over tokenFile */
    write_user("data.yaml", "    client-certificate-data: Q0VSVCBEQVRB\n" /* CERT DATA */
                            "    client-key-data: S0VZIERBVEE=\n"         /* KEY DATA */
                            "    token: tok-inline\n    tokenFile: token.txt\n");
    assert_int_equal(load(at("data.yaml"), NULL, &c, &err), ENVD_OK);
    assert_string_equal((char *)c->cert.data, "CERT DATA");
    assert_int_equal(c->key.len, 8);
    assert_string_equal(c->token, "tok-inline");
    envd_k8s_conn_free(c);

    /* exec: a command with a '/' is relative to the file; env kept */
    write_user("exec.yaml", "    exec:\n"
                            "      apiVersion: client.authentication.k8s.io/v1\n"
                            "      command: ./bin/plugin\n"
                            "      args: [a, b]\n"
                            "      env: [{name: FOO, value: bar}]\n"
                            "      provideClusterInfo: true\n"
                            "      installHint: install the plugin\n");
    assert_int_equal(load(at("exec.yaml"), NULL, &c, &err), ENVD_OK);
    assert_non_null(c->exec);
    char want[600];
    snprintf(want, sizeof(want), "%s/./bin/plugin", tmp);
    assert_string_equal(c->exec->command, want);
    assert_int_equal(c->exec->n_args, 2);
    assert_string_equal(c->exec->env[0], "FOO=bar");
    assert_true(c->exec->provide_cluster_info);
    envd_k8s_conn_free(c);

    /* errors, each with its position */
    write_user("ap.yaml", "    auth-provider:\n      name: gcp\n      config: {}\n");
    snprintf(want, sizeof(want), "%s:10:7: user 'u' authenticates with auth-provider 'gcp'",
             at("ap.yaml"));
    expect_error(at("ap.yaml"), NULL, ENVD_E_CONFIG, want, "not support");
    write_user("both.yaml", "    token: t\n    username: u\n");
    expect_error(at("both.yaml"), NULL, ENVD_E_CONFIG, "both a bearer token and username", NULL);
    write_user("halfcert.yaml", "    client-certificate: client.pem\n");
    expect_error(at("halfcert.yaml"), NULL, ENVD_E_CONFIG, "client certificate but no client key",
                 NULL);
    write_user("b64.yaml", "    client-certificate-data: '!!!'\n    client-key-data: eA==\n");
    expect_error(at("b64.yaml"), NULL, ENVD_E_CONFIG, "not valid base64", NULL);
    write_user("nofile.yaml", "    tokenFile: /no/such/token\n");
    expect_error(at("nofile.yaml"), NULL, ENVD_E_CONFIG, "cannot read tokenFile", "/no/such/token");
    write_user("v1a1.yaml", "    exec: {apiVersion: client.authentication.k8s.io/v1alpha1, "
                            "command: x}\n");
    expect_error(at("v1a1.yaml"), NULL, ENVD_E_CONFIG, "v1alpha1' is not supported", NULL);
    write_user("always.yaml", "    exec: {apiVersion: client.authentication.k8s.io/v1, "
                              "command: x, interactiveMode: Always}\n");
    expect_error(at("always.yaml"), NULL, ENVD_E_CONFIG, "interactiveMode Always", NULL);

    /* a CA with insecure-skip-tls-verify is refused, as kubectl does */
    k8s_write(at("insec.yaml"), "clusters:\n- name: c\n  cluster:\n    server: https://h\n"
                                "    certificate-authority-data: Q0E=\n"
                                "    insecure-skip-tls-verify: true\n"
                                "contexts: [{name: x, context: {cluster: c}}]\n"
                                "current-context: x\n");
    expect_error(at("insec.yaml"), NULL, ENVD_E_CONFIG, "insecure-skip-tls-verify", NULL);
}

static void in_cluster_dir(void **state)
{
    (void)state;
    mkdir(at("sa"), 0700);
    k8s_write(at("sa/token"), "sa-token\n");
    k8s_write(at("sa/ca.crt"), "SA CA\n");
    k8s_write(at("sa/namespace"), "agents\n");
    envd_k8s_options *o = envd_k8s_options_new();
    envd_k8s_options_set_in_cluster_dir(o, at("sa"));
    envd_k8s_conn *c = NULL;
    envd_error *err = NULL;

    /* auto: no kubeconfig anywhere and a pod's environment */
    setenv("KUBERNETES_SERVICE_HOST", "fd00::1", 1);
    setenv("KUBERNETES_SERVICE_PORT", "443", 1);
    assert_int_equal(envd_k8s_conn_load(o, &c, &err), ENVD_OK);
    assert_string_equal(c->server, "https://[fd00::1]:443");
    assert_string_equal(c->token, "sa-token");
    assert_string_equal((char *)c->ca.data, "SA CA\n");
    assert_string_equal(c->ns, "agents");
    envd_k8s_conn_free(c);

    /* an unusable $KUBECONFIG falls back to in-cluster, as in the Go client */
    setenv("KUBECONFIG", at("does-not-exist"), 1);
    assert_int_equal(envd_k8s_conn_load(o, &c, &err), ENVD_OK);
    assert_string_equal(c->token, "sa-token");
    envd_k8s_conn_free(c);
    unsetenv("KUBECONFIG");

    /* forced in-cluster without the token file */
    envd_k8s_options_set_source(o, ENVD_K8S_SOURCE_IN_CLUSTER);
    envd_k8s_options_set_in_cluster_dir(o, at("empty"));
    assert_int_equal(envd_k8s_conn_load(o, &c, &err), ENVD_E_CONFIG);
    assert_non_null(strstr(envd_error_message(err), "service account token"));
    envd_error_free(err);
    /* and without the environment */
    unsetenv("KUBERNETES_SERVICE_HOST");
    assert_int_equal(envd_k8s_conn_load(o, &c, &err), ENVD_E_CONFIG);
    assert_non_null(strstr(envd_error_message(err), "KUBERNETES_SERVICE_HOST"));
    envd_error_free(err);
    unsetenv("KUBERNETES_SERVICE_PORT");
    envd_k8s_options_free(o);
}

static void exec_credential_parser(void **state)
{
    (void)state;
    const char *v1 = "client.authentication.k8s.io/v1";
    envd_k8s_cred cr;
    char *problem = NULL;
    const char *ok = "{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":"
                     "\"ExecCredential\",\"status\":{\"token\":\"t1\","
                     "\"expirationTimestamp\":\"2030-01-02T03:04:05.5+01:00\"}}";
    assert_int_equal(envd_k8s_parse_exec_credential(ok, strlen(ok), v1, &cr, &problem), ENVD_OK);
    assert_string_equal(cr.token, "t1");
    assert_int_equal(cr.expires, 1893553445 - 3600); /* 02:04:05Z */
    envd_k8s_cred_clear(&cr);

    const char *cert = "{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":"
                       "\"ExecCredential\",\"status\":{\"clientCertificateData\":\"C\","
                       "\"clientKeyData\":\"K\"}}";
    assert_int_equal(envd_k8s_parse_exec_credential(cert, strlen(cert), v1, &cr, &problem),
                     ENVD_OK);
    assert_null(cr.token);
    assert_string_equal((char *)cr.cert.data, "C");
    envd_k8s_cred_clear(&cr);

    static const char *const bad[] = {
        "not json",
        "{\"apiVersion\":\"client.authentication.k8s.io/v1beta1\",\"kind\":\"ExecCredential\","
        "\"status\":{\"token\":\"t\"}}",
        "{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"Other\"}",
        "{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\","
        "\"status\":{}}",
        "{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\","
        "\"status\":{\"token\":\"t\",\"expirationTimestamp\":\"tomorrow\"}}",
        /* short offsets: the parser once stepped 6 bytes past the sign
         * whatever sscanf had read, over the string's NUL (found by fuzzing) */
        "{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\","
        "\"status\":{\"token\":\"t\",\"expirationTimestamp\":\"2030-01-02T03:04:05-0:3\"}}",
        "{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\","
        "\"status\":{\"token\":\"t\",\"expirationTimestamp\":\"2030-01-02T03:04:05+1:00\"}}",
        "{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\","
        "\"status\":{\"token\":\"t\",\"expirationTimestamp\":\"2030-01-02T03:04:05+01:0\"}}",
        "{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\","
        "\"status\":{\"token\":\"t\",\"expirationTimestamp\":\"2030-01-02T03:04:05+99:00\"}}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(envd_k8s_parse_exec_credential(bad[i], strlen(bad[i]), v1, &cr, &problem),
                         ENVD_E_CONFIG);
        assert_non_null(problem);
        free(problem);
        assert_null(cr.token);
    }
}

/* The option setters: NULL options are a usage error, bad values are
 * refused (with a reason) and leave the option as it was. */
static void option_setters(void **state)
{
    (void)state;
    assert_int_equal(envd_k8s_options_set_source(NULL, ENVD_K8S_SOURCE_AUTO), ENVD_E_USAGE);
    assert_int_equal(envd_k8s_options_set_kubeconfig(NULL, "x"), ENVD_E_USAGE);
    assert_int_equal(envd_k8s_options_set_context(NULL, "x"), ENVD_E_USAGE);
    assert_int_equal(envd_k8s_options_set_in_cluster_dir(NULL, "x"), ENVD_E_USAGE);
    assert_int_equal(envd_k8s_options_set_timeout_ms(NULL, 1), ENVD_E_USAGE);
    assert_int_equal(envd_k8s_options_set_require_running(NULL, 1), ENVD_E_USAGE);
    envd_k8s_options *o = envd_k8s_options_new();
    assert_int_equal(envd_k8s_options_set_timeout_ms(o, -1), ENVD_INVALID_ARGUMENT);
    assert_true(strstr(envd_k8s_options_last_reason(o), ">= 0") != NULL);
    assert_int_equal(o->timeout_ms, 30000);
    assert_int_equal(envd_k8s_options_set_timeout_ms(o, 0), ENVD_OK); /* none */
    assert_int_equal(o->timeout_ms, 0);
    assert_int_equal(envd_k8s_options_set_source(o, (envd_k8s_source)7), ENVD_INVALID_ARGUMENT);
    assert_int_equal(o->source, ENVD_K8S_SOURCE_AUTO);
    assert_int_equal(envd_k8s_options_set_context(o, "prod"), ENVD_OK);
    assert_int_equal(envd_k8s_options_set_require_running(o, 0), ENVD_OK);
    assert_string_equal(o->context, "prod");
    assert_int_equal(o->require_running, 0);
    assert_int_equal(envd_k8s_options_set_context(o, ""), ENVD_OK); /* back to the default */
    assert_null(o->context);
    envd_k8s_options_free(o);
}

static void sandbox_parser(void **state)
{
    (void)state;
    char *problem = NULL;
    const char *js = "{\"metadata\":{\"labels\":{\"agents.kruise.io/sandbox-id\":\"short\"},"
                     "\"annotations\":{\"e2b.agents.kruise.io/envd-access-token\":\"legacy\"}},"
                     "\"status\":{\"phase\":\"Running\",\"podInfo\":{\"podIP\":\"10.1.2.3\"},"
                     "\"conditions\":[{\"type\":\"PodScheduled\",\"status\":\"True\"},"
                     "{\"type\":\"Ready\",\"status\":\"True\"}]}}";
    envd_k8s_sb *s = envd_k8s_sandbox_parse("ns", "n", js, strlen(js), &problem);
    assert_non_null(s);
    assert_string_equal(s->pub.id, "short");
    assert_string_equal(s->pub.token, "legacy");
    assert_string_equal(s->pub.pod_ip, "10.1.2.3");
    assert_true(s->pub.running);
    assert_null(envd_k8s_not_running_error(s));
    envd_k8s_sandbox_free(&s->pub);

    /* both annotations: the current one wins; no label: ns--name */
    js = "{\"metadata\":{\"annotations\":{\"e2b.agents.kruise.io/envd-access-token\":\"old\","
         "\"agents.kruise.io/runtime-access-token\":\"new\"},\"deletionTimestamp\":\"2026-01-01T"
         "00:00:00Z\"},\"spec\":{\"paused\":true},\"status\":{}}";
    s = envd_k8s_sandbox_parse("ns", "n", js, strlen(js), &problem);
    assert_string_equal(s->pub.id, "ns--n");
    assert_string_equal(s->pub.token, "new");
    assert_string_equal(s->pub.phase, "");
    assert_false(s->pub.running);
    envd_error *e = envd_k8s_not_running_error(s);
    assert_int_equal(envd_error_code(e), ENVD_FAILED_PRECONDITION);
    const char *m = envd_error_message(e);
    assert_non_null(strstr(m, "sandbox ns/n is not running: status.phase is \"(unset)\""));
    assert_non_null(strstr(m, "Ready condition is absent"));
    assert_non_null(strstr(m, "being deleted"));
    assert_non_null(strstr(m, "spec.paused"));
    envd_error_free(e);
    envd_k8s_sandbox_free(&s->pub);

    assert_null(envd_k8s_sandbox_parse("ns", "n", "[1]", 3, &problem));
    assert_non_null(problem);
    free(problem);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(merged_list),
        cmocka_unit_test(many_contexts),
        cmocka_unit_test(home_config_and_missing),
        cmocka_unit_test(malformed_and_wrong_types),
        cmocka_unit_test(credential_forms),
        cmocka_unit_test(in_cluster_dir),
        cmocka_unit_test(exec_credential_parser),
        cmocka_unit_test(sandbox_parser),
        cmocka_unit_test(option_setters),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
