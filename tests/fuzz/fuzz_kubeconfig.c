/* Kubeconfig files and their merge (k8s/kubeconfig.c): the input is split
 * at "\n---8<---\n" into two files loaded as one KUBECONFIG list, with the
 * current context and with a named one. Either a connection or an error.
 * The two files are real ones in a private directory: loaded from
 * /proc/self/fd/N, a relative certificate path ("3") resolved to one of the
 * fuzzer's own pipes and blocked in read (the 2026-12-03 timeout). */
#include "fuzz_util.h"

#include "config/k8s_options.h"
#include "envd/envd_k8s.h"
#include "k8s/kubeconfig.h"

static int fuzz_write_file(const char *path, const uint8_t *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    int ok = fwrite(p, 1, n, f) == n;
    return fclose(f) == 0 && ok ? 0 : -1;
}

/* The private directory of the two files, removed when the fuzzer exits. */
static char g_dir[64];

static void remove_dir(void)
{
    char p[96];
    snprintf(p, sizeof p, "%s/a", g_dir);
    unlink(p);
    snprintf(p, sizeof p, "%s/b", g_dir);
    unlink(p);
    rmdir(g_dir);
}

static void load(const char *list, const char *context)
{
    envd_k8s_options *o = envd_k8s_options_new();
    if (!o)
        return;
    envd_k8s_options_set_kubeconfig(o, list);
    if (context)
        envd_k8s_options_set_context(o, context);
    envd_k8s_conn *c = NULL;
    envd_error *err = NULL;
    envd_status st = envd_k8s_conn_load(o, &c, &err);
    if (st == ENVD_OK) {
        FUZZ_CHECK(c && !err);
        envd_k8s_conn_free(c);
    } else {
        FUZZ_CHECK(!c && err);
        envd_error_free(err);
    }
    envd_k8s_options_free(o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int once;
    if (!once) {
        once = 1;
        /* no plugin may run and no in-cluster files may be read */
        unsetenv("KUBERNETES_SERVICE_HOST");
        setenv("PATH", "/nonexistent", 1);
    }
    if (!g_dir[0]) {
        /* mkdtemp's template: the six X are where it puts the unique part */
        snprintf(g_dir, sizeof g_dir, "/tmp/envd-fuzz-kc-XXXXXX");
        FUZZ_CHECK(mkdtemp(g_dir) != NULL);
        atexit(remove_dir);
    }
    size_t a = fuzz_split(data, size, "\n---8<---\n");
    size_t b_off = a < size ? a + 10 : size;
    char pa[96], pb[96], list[200];
    snprintf(pa, sizeof pa, "%s/a", g_dir);
    snprintf(pb, sizeof pb, "%s/b", g_dir);
    if (fuzz_write_file(pa, data, a) == 0 && fuzz_write_file(pb, data + b_off, size - b_off) == 0) {
        snprintf(list, sizeof list, "%s:%s", pa, pb);
        load(list, NULL);
        load(list, "ctx");
    }
    return 0;
}
