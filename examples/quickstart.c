/* quickstart: the shortest useful libenvd program. Prints the runtime URL,
 * runs `uname -a` in the sandbox, writes a file and reads it back.
 *
 *   quickstart --domain HOST:PORT [--scheme http|https] [--sandbox ID]
 *              [--token T] [--transport grpc|connect|auto] [--user U]
 *              [--k8s NAMESPACE/NAME] [--config FILE]
 *
 * --k8s finds the sandbox through the Kubernetes API (the OpenKruise Agents
 * Sandbox object, with the usual kubeconfig resolution: $KUBECONFIG,
 * ~/.kube/config, in-cluster); its ID and token come from the object, and
 * --domain names the gateway or envd address. --config reads a libenvd
 * configuration file; the flags override it, and --sandbox then names one
 * of its sandboxes (or is taken as an ID).
 *
 * ENVD_DOMAIN, ENVD_SANDBOX_ID and ENVD_RUNTIME_TOKEN are read when the
 * flags are absent. Exits 0 on success. */
#include <envd/envd.h>
#include <envd/envd_k8s.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int usage(const char *argv0)
{
    fprintf(stderr,
            "usage: %s --domain HOST:PORT [--scheme http|https] [--sandbox ID] [--token T]\n"
            "       [--transport grpc|connect|auto] [--user U] [--k8s NAMESPACE/NAME]\n"
            "       [--config FILE]\n",
            argv0);
    return 2;
}

static int fail(const char *what, envd_status st, envd_error *err)
{
    fprintf(stderr, "quickstart: %s failed: %s%s%s\n", what, envd_strerror(st), err ? ": " : "",
            err ? envd_error_message(err) : "");
    envd_error_free(err);
    return 1;
}

int main(int argc, char **argv)
{
    const char *domain = getenv("ENVD_DOMAIN");
    const char *sandbox = getenv("ENVD_SANDBOX_ID");
    const char *token = getenv("ENVD_RUNTIME_TOKEN");
    const char *scheme = NULL, *transport = NULL, *user = NULL, *k8s = NULL, *config = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            return usage(argv[0]);
        if (strcmp(a, "--domain") == 0)
            domain = v;
        else if (strcmp(a, "--scheme") == 0)
            scheme = v;
        else if (strcmp(a, "--sandbox") == 0)
            sandbox = v;
        else if (strcmp(a, "--token") == 0)
            token = v;
        else if (strcmp(a, "--transport") == 0)
            transport = v;
        else if (strcmp(a, "--user") == 0)
            user = v;
        else if (strcmp(a, "--k8s") == 0)
            k8s = v;
        else if (strcmp(a, "--config") == 0)
            config = v;
        else
            return usage(argv[0]);
        i++;
    }
    if ((!domain || !*domain) && !config)
        return usage(argv[0]);
    envd_transport_kind kind = !transport                          ? ENVD_TRANSPORT_AUTO
                               : strcmp(transport, "grpc") == 0    ? ENVD_TRANSPORT_GRPC
                               : strcmp(transport, "connect") == 0 ? ENVD_TRANSPORT_CONNECT
                               : strcmp(transport, "auto") == 0    ? ENVD_TRANSPORT_AUTO
                                                                   : ENVD_TRANSPORT_NONE;
    if (kind == ENVD_TRANSPORT_NONE)
        return usage(argv[0]);
    char *k8s_ns = NULL;
    const char *k8s_name = NULL;
    if (k8s) {
        const char *slash = strchr(k8s, '/');
        if (!slash || slash == k8s || !slash[1])
            return usage(argv[0]);
        k8s_ns = strndup(k8s, (size_t)(slash - k8s));
        k8s_name = slash + 1;
    }

    /* The options: the configuration file's, or the defaults; flags on top. */
    envd_config_file *file = NULL;
    envd_config *cfg = NULL;
    envd_error *err = NULL;
    envd_status st = ENVD_OK;
    if (config && (st = envd_config_load_file(config, &cfg, &file, &err)) != ENVD_OK) {
        free(k8s_ns);
        return fail("config file", st, err);
    }
    if (!cfg && !(cfg = envd_config_new())) {
        free(k8s_ns);
        return fail("config", ENVD_E_NOMEM, NULL);
    }
    if (domain && *domain)
        st = envd_config_set_domain(cfg, domain);
    if (st == ENVD_OK && scheme)
        st = envd_config_set_scheme(cfg, scheme);
    if (st == ENVD_OK && token)
        st = envd_config_set_runtime_token(cfg, token);
    if (st == ENVD_OK && user)
        st = envd_config_set_user(cfg, user);
    if (st == ENVD_OK && (transport || !config))
        st = envd_config_set_transport(cfg, kind);
    if (st != ENVD_OK) {
        envd_config_free(cfg);
        envd_config_file_free(file);
        free(k8s_ns);
        return fail("config", st, NULL);
    }
    /* Which sandbox: --k8s, else the file's entry named by --sandbox (or
     * its first entry), else --sandbox as an ID. */
    const envd_sandbox_entry *entry = NULL;
    if (file && !k8s) {
        entry = sandbox ? envd_config_file_sandbox_find(file, sandbox)
                        : envd_config_file_sandboxes(file, NULL);
        if (entry && entry->runtime_token && !token)
            st = envd_config_set_runtime_token(cfg, entry->runtime_token);
        if (entry && entry->k8s_name) {
            k8s_name = entry->k8s_name;
            if (entry->k8s_namespace)
                k8s_ns = strdup(entry->k8s_namespace);
        } else if (entry) {
            sandbox = entry->id;
        }
    }

    envd_runtime *rt = NULL;
    envd_client *c = NULL;
    int rc = 1;
    if ((st = envd_runtime_new(cfg, &rt)) != ENVD_OK) {
        rc = fail("runtime", st, NULL);
        goto out;
    }
    if (k8s_name) {
        /* NewFromK8s: the sandbox ID and token come from the Sandbox object */
        const envd_k8s_options *ko = file ? envd_config_file_k8s_options(file) : NULL;
        st = envd_client_from_k8s(rt, k8s_ns, k8s_name, cfg, ko, &c, &err);
        if (st != ENVD_OK) {
            rc = fail("k8s lookup", st, err);
            goto out;
        }
        printf("sandbox %s%s%s resolved through Kubernetes\n", k8s_ns ? k8s_ns : "",
               k8s_ns ? "/" : "", k8s_name);
    } else if ((st = envd_client_new(rt, sandbox, cfg, &c, &err)) != ENVD_OK) {
        rc = fail("client", st, err);
        goto out;
    }
    printf("runtime URL: %s\n", envd_client_runtime_url(c));

    envd_command_result *res = NULL;
    st = envd_commands_run(c, "uname -a", NULL, &res, &err);
    if (st != ENVD_OK) {
        envd_command_result_free(res);
        rc = fail("run 'uname -a'", st, err);
        goto out;
    }
    const char *tname = envd_client_transport(c) == ENVD_TRANSPORT_GRPC ? "grpc" : "connect";
    printf("transport: %s\n", tname);
    printf("uname -a: %s", res->stdout_data);
    envd_command_result_free(res);

    const char *path = "/tmp/libenvd-quickstart.txt";
    const char *text = "hello from libenvd\n";
    if ((st = envd_files_write(c, path, text, strlen(text), NULL, NULL, &err)) != ENVD_OK) {
        rc = fail("write", st, err);
        goto out;
    }
    uint8_t *data = NULL;
    size_t len = 0;
    if ((st = envd_files_read(c, path, NULL, &data, &len, &err)) != ENVD_OK) {
        rc = fail("read", st, err);
        goto out;
    }
    int same = len == strlen(text) && memcmp(data, text, len) == 0;
    printf("read back %s: %s", path, (char *)data);
    free(data);
    if (!same) {
        fprintf(stderr, "quickstart: the file read back differs from what was written\n");
        goto out;
    }
    rc = 0;
out:
    envd_client_free(c);
    envd_runtime_free(rt);
    envd_config_free(cfg);
    envd_config_file_free(file);
    free(k8s_ns);
    return rc;
}
