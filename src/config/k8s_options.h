/* The fields of envd_k8s_options (options live with the other options; the
 * k8s layer reads them). */
#ifndef ENVD_CONFIG_K8S_OPTIONS_H
#define ENVD_CONFIG_K8S_OPTIONS_H

#include "envd/envd_k8s.h"

#include <stdint.h>

#define ENVD_K8S_DEFAULT_SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"

struct envd_k8s_options {
    envd_k8s_source source;
    char *kubeconfig;     /* NULL: $KUBECONFIG, else ~/.kube/config */
    char *context;        /* NULL: current-context */
    char *in_cluster_dir; /* NULL: ENVD_K8S_DEFAULT_SA_DIR */
    int64_t timeout_ms;
    int require_running;
    const char *why; /* why the last setter failed, "" if it did not */
};

/* The last setter's reason for a refusal ("" if none), for the YAML loader. */
const char *envd_k8s_options_last_reason(const envd_k8s_options *o);

#endif
