/* Kubeconfig files and their merge (k8s/kubeconfig.c): the input is split
 * at "\n---8<---\n" into two files loaded as one KUBECONFIG list, with the
 * current context and with a named one. Either a connection or an error. */
#include "fuzz_util.h"

#include "config/k8s_options.h"
#include "envd/envd_k8s.h"
#include "k8s/kubeconfig.h"

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
    size_t a = fuzz_split(data, size, "\n---8<---\n");
    size_t b_off = a < size ? a + 10 : size;
    char pa[64], pb[64], list[160];
    int fa = fuzz_memfile(data, a, pa, sizeof pa);
    int fb = fuzz_memfile(data + b_off, size - b_off, pb, sizeof pb);
    if (fa >= 0 && fb >= 0) {
        snprintf(list, sizeof list, "%s:%s", pa, pb);
        load(list, NULL);
        load(list, "ctx");
    }
    if (fa >= 0)
        close(fa);
    if (fb >= 0)
        close(fb);
    return 0;
}
