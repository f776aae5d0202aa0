/* quickstart: the shortest useful libenvd program. Prints the runtime URL,
 * runs `uname -a` in the sandbox, writes a file and reads it back.
 *
 *   quickstart --domain HOST:PORT [--scheme http|https] [--sandbox ID]
 *              [--token T] [--transport grpc|connect|auto] [--user U]
 *
 * ENVD_DOMAIN, ENVD_SANDBOX_ID and ENVD_RUNTIME_TOKEN are read when the
 * flags are absent. Exits 0 on success. */
#include <envd/envd.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int usage(const char *argv0)
{
    fprintf(stderr,
            "usage: %s --domain HOST:PORT [--scheme http|https] [--sandbox ID] [--token T]\n"
            "       [--transport grpc|connect|auto] [--user U]\n",
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
    const char *scheme = NULL, *transport = "auto", *user = NULL;
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
        else
            return usage(argv[0]);
        i++;
    }
    if (!domain || !*domain)
        return usage(argv[0]);
    envd_transport_kind kind = strcmp(transport, "grpc") == 0      ? ENVD_TRANSPORT_GRPC
                               : strcmp(transport, "connect") == 0 ? ENVD_TRANSPORT_CONNECT
                               : strcmp(transport, "auto") == 0    ? ENVD_TRANSPORT_AUTO
                                                                   : ENVD_TRANSPORT_NONE;
    if (kind == ENVD_TRANSPORT_NONE)
        return usage(argv[0]);

    envd_config *cfg = envd_config_new();
    if (!cfg)
        return fail("config", ENVD_E_NOMEM, NULL);
    envd_status st = envd_config_set_domain(cfg, domain);
    if (st == ENVD_OK && scheme)
        st = envd_config_set_scheme(cfg, scheme);
    if (st == ENVD_OK && token)
        st = envd_config_set_runtime_token(cfg, token);
    if (st == ENVD_OK && user)
        st = envd_config_set_user(cfg, user);
    if (st == ENVD_OK)
        st = envd_config_set_transport(cfg, kind);
    if (st != ENVD_OK) {
        envd_config_free(cfg);
        return fail("config", st, NULL);
    }

    envd_runtime *rt = NULL;
    envd_client *c = NULL;
    envd_error *err = NULL;
    int rc = 1;
    if ((st = envd_runtime_new(cfg, &rt)) != ENVD_OK) {
        rc = fail("runtime", st, NULL);
        goto out;
    }
    if ((st = envd_client_new(rt, sandbox, cfg, &c, &err)) != ENVD_OK) {
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
    printf("uname -a: %s", envd_command_result_stdout(res, NULL));
    envd_command_result_free(res);

    const char *path = "/tmp/libenvd-quickstart.txt";
    const char *text = "hello from libenvd\n";
    if ((st = envd_files_write(c, path, text, strlen(text), NULL, &err)) != ENVD_OK) {
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
    return rc;
}
