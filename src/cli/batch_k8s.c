/* envdctl batch on Kubernetes: --k8s-job prints an Indexed Job (and a
 * ConfigMap holding the jobs file) that runs the same batch spread over N
 * pods, each taking the shard JOB_COMPLETION_INDEX of JOB_COMPLETIONS and
 * writing its results to its stdout (kubectl logs); --k8s-selector fills
 * the pool with every Sandbox object matching a label selector. */
#include "batch.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* The API server refuses objects over about 1 MiB. */
#define CONFIGMAP_MAX (1000 * 1000)

/* "envdctl-batch-" and the file's base name as a Kubernetes name. */
static void object_name(const char *path, char *out, size_t cap)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t n = (size_t)snprintf(out, cap, "envdctl-batch-");
    for (const char *c = base; *c && *c != '.' && n + 1 < cap && n < 52; c++)
        out[n++] = isalnum((unsigned char)*c) ? (char)tolower((unsigned char)*c) : '-';
    while (n > 0 && out[n - 1] == '-')
        n--;
    out[n] = '\0';
}

/* The file as one YAML double-quoted scalar (JSON escapes are YAML ones),
 * streamed a line at a time. */
static int print_file_scalar(FILE *f)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    cli_buf b = {0};
    fputc('"', stdout);
    while ((n = getline(&line, &cap, f)) >= 0) {
        b.len = 0;
        if (cli_buf_json_string(&b, line, (size_t)n) != 0)
            break;
        fwrite(b.data + 1, 1, b.len - 2, stdout); /* without its quotes */
    }
    fputs("\"\n", stdout);
    int rc = ferror(f) ? -1 : 0;
    cli_buf_free(&b);
    free(line);
    return rc;
}

static void print_arg(const char *s)
{
    cli_buf b = {0};
    if (cli_buf_json_string(&b, s, strlen(s)) == 0)
        printf("        - %.*s\n", (int)b.len, b.data);
    cli_buf_free(&b);
}

static void print_job(const cli_ctx *ctx, const char *name, const char *key, const char *image,
                      uint64_t completions, uint64_t parallelism, int argc, char **argv)
{
    printf("---\napiVersion: batch/v1\nkind: Job\nmetadata:\n  name: %s\nspec:\n"
           "  completionMode: Indexed\n  completions: %llu\n  parallelism: %llu\n"
           "  backoffLimitPerIndex: 2\n  template:\n    spec:\n      restartPolicy: Never\n"
           "      containers:\n      - name: batch\n        image: \"%s\"\n        command:\n",
           name, (unsigned long long)completions, (unsigned long long)parallelism, image);
    const char *fixed[] = {"envdctl", "batch", "--results", "-", "--quiet"};
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
        print_arg(fixed[i]);
    const char *g[][2] = {{"--domain", ctx->g.domain}, {"--scheme", ctx->g.scheme},
                          {"--transport", ctx->g.transport}, {"--user", ctx->g.user}};
    for (size_t i = 0; i < sizeof(g) / sizeof(g[0]); i++)
        if (g[i][1]) {
            print_arg(g[i][0]);
            print_arg(g[i][1]);
        }
    for (int i = 0; i < argc; i++)
        print_arg(argv[i]);
    char path[300];
    snprintf(path, sizeof(path), "/jobs/%s", key);
    print_arg(path);
    /* JOB_COMPLETION_INDEX comes from Kubernetes; the count does not. The
     * token comes from a Secret, never from the manifest. */
    printf("        env:\n        - name: JOB_COMPLETIONS\n          value: \"%llu\"\n"
           "        - name: ENVD_RUNTIME_TOKEN\n          valueFrom:\n            secretKeyRef:\n"
           "              name: envdctl-token\n              key: token\n"
           "              optional: true\n"
           "        volumeMounts:\n        - name: jobs\n          mountPath: /jobs\n"
           "      volumes:\n      - name: jobs\n        configMap:\n          name: %s\n",
           (unsigned long long)completions, name);
}

int batch_k8s_job(cli_ctx *ctx, const char *jobs_path, const char *image, uint64_t completions,
                  uint64_t parallelism, int argc, char **argv)
{
    if (strcmp(jobs_path, "-") == 0)
        return cli_usage_error(ctx, "--k8s-job needs a jobs file, not standard input");
    struct stat st;
    FILE *f = fopen(jobs_path, "r");
    if (!f || fstat(fileno(f), &st) != 0) {
        if (f)
            fclose(f);
        return cli_errorf(ctx, "%s: %s", jobs_path, strerror(errno));
    }
    if (st.st_size > CONFIGMAP_MAX) {
        fclose(f);
        return cli_errorf(ctx, "%s: %lld bytes is more than a ConfigMap holds (1 MB); split it "
                               "or put it in the image",
                          jobs_path, (long long)st.st_size);
    }
    size_t plen = strlen(jobs_path);
    int yaml = (plen > 5 && strcmp(jobs_path + plen - 5, ".yaml") == 0) ||
               (plen > 4 && strcmp(jobs_path + plen - 4, ".yml") == 0);
    const char *key = yaml ? "jobs.yaml" : "jobs.jsonl";
    char name[64];
    object_name(jobs_path, name, sizeof(name));
    printf("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: %s\ndata:\n  %s: ", name, key);
    int rc = print_file_scalar(f);
    fclose(f);
    if (rc != 0)
        return cli_errorf(ctx, "%s: %s", jobs_path, strerror(errno));
    print_job(ctx, name, key, image, completions, parallelism, argc, argv);
    return fflush(stdout) == 0 ? 0 : cli_errorf(ctx, "stdout: %s", strerror(errno));
}

int batch_pool_add_selector(batch_pool *p, const char *ns_selector)
{
    const char *colon = strchr(ns_selector, ':');
    if (!colon)
        return cli_usage_error(p->ctx, "--k8s-selector: expected NAMESPACE:SELECTOR, got '%s'",
                               ns_selector);
    int rc = cli_ctx_ready(p->ctx);
    if (rc)
        return rc;
    char *ns = strndup(ns_selector, (size_t)(colon - ns_selector));
    const envd_config_file *file = p->ctx->file;
    envd_k8s_sandboxes *l = NULL;
    envd_error *err = NULL;
    envd_status st = ns ? envd_k8s_sandbox_list(p->ctx->rt,
                                                file ? envd_config_file_k8s_options(file) : NULL,
                                                ns, colon + 1, &l, &err)
                        : ENVD_E_NOMEM;
    free(ns);
    if (st != ENVD_OK)
        return cli_fail(p->ctx, "--k8s-selector", st, err);
    size_t skipped = 0;
    for (size_t i = 0; i < l->count && rc == 0; i++) {
        const envd_k8s_sandbox *s = &l->items[i];
        if (!s->running) {
            skipped++; /* the gateway would not route to it */
            continue;
        }
        char *spec = cli_strdupf("%s/%s", s->namespace_, s->name);
        if (!spec || batch_pool_add(p, NULL, spec, 0) != 0)
            rc = cli_errorf(p->ctx, "out of memory");
        free(spec);
    }
    if (rc == 0 && l->count == skipped)
        rc = cli_errorf(p->ctx, "--k8s-selector %s: no running Sandbox matches (%zu found)",
                        ns_selector, l->count);
    else if (rc == 0 && skipped)
        cli_errorf(p->ctx, "--k8s-selector %s: %zu of %zu are not running, left out", ns_selector,
                   skipped, l->count);
    envd_k8s_sandboxes_free(l);
    return rc;
}
