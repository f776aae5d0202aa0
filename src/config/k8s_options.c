/* envd_k8s_options: where Kubernetes credentials come from. */
#include "config/k8s_options.h"
#include "core/alloc.h"
#include "core/kv.h"

#include <stdlib.h>
#include <string.h>

/* "" unsets: the default applies. */
static int set_str(char **slot, const char *v)
{
    return envd_str_set(slot, v && *v ? v : NULL);
}

const char *envd_k8s_options_last_reason(const envd_k8s_options *o)
{
    return o && o->why ? o->why : "";
}

envd_k8s_options *envd_k8s_options_new(void)
{
    envd_k8s_options *o = envd_calloc(1, sizeof(*o));
    if (!o)
        return NULL;
    o->source = ENVD_K8S_SOURCE_AUTO;
    o->timeout_ms = 30000;
    o->require_running = 1;
    o->why = "";
    return o;
}

void envd_k8s_options_free(envd_k8s_options *o)
{
    if (!o)
        return;
    free(o->kubeconfig);
    free(o->context);
    free(o->in_cluster_dir);
    free(o);
}

envd_status envd_k8s_options_set_source(envd_k8s_options *o, envd_k8s_source source)
{
    if (!o)
        return ENVD_E_USAGE;
    o->why = "";
    if (source != ENVD_K8S_SOURCE_AUTO && source != ENVD_K8S_SOURCE_KUBECONFIG &&
        source != ENVD_K8S_SOURCE_IN_CLUSTER) {
        o->why = "must be ENVD_K8S_SOURCE_AUTO, _KUBECONFIG or _IN_CLUSTER";
        return ENVD_INVALID_ARGUMENT;
    }
    o->source = source;
    return ENVD_OK;
}

envd_status envd_k8s_options_set_kubeconfig(envd_k8s_options *o, const char *paths)
{
    if (!o)
        return ENVD_E_USAGE;
    o->why = "";
    return set_str(&o->kubeconfig, paths) ? ENVD_E_NOMEM : ENVD_OK;
}

envd_status envd_k8s_options_set_context(envd_k8s_options *o, const char *context)
{
    if (!o)
        return ENVD_E_USAGE;
    o->why = "";
    return set_str(&o->context, context) ? ENVD_E_NOMEM : ENVD_OK;
}

envd_status envd_k8s_options_set_in_cluster_dir(envd_k8s_options *o, const char *dir)
{
    if (!o)
        return ENVD_E_USAGE;
    o->why = "";
    return set_str(&o->in_cluster_dir, dir) ? ENVD_E_NOMEM : ENVD_OK;
}

envd_status envd_k8s_options_set_timeout_ms(envd_k8s_options *o, int64_t ms)
{
    if (!o)
        return ENVD_E_USAGE;
    o->why = "";
    if (ms < 0) {
        o->why = "must be >= 0 (0: none)";
        return ENVD_INVALID_ARGUMENT;
    }
    o->timeout_ms = ms;
    return ENVD_OK;
}

envd_status envd_k8s_options_set_require_running(envd_k8s_options *o, int on)
{
    if (!o)
        return ENVD_E_USAGE;
    o->why = "";
    o->require_running = on != 0;
    return ENVD_OK;
}
