/* The Sandbox lookup: one GET of agents.kruise.io/v1alpha1 sandboxes over
 * libcurl with the kubeconfig's TLS and credentials, the answer read with
 * jansson. Used by the public entry points in k8s_client.c. */
#ifndef ENVD_K8S_K8S_H
#define ENVD_K8S_K8S_H

#include "config/k8s_options.h"
#include "k8s/kubeconfig.h"

#include <curl/curl.h>
#include <stdatomic.h>

struct envd_k8s_sandbox {
    char *ns, *name;
    char *id;
    char *token; /* NULL when neither annotation is set */
    char *phase; /* "" when absent */
    char *ready; /* the Ready condition's status, "" when absent */
    char *ready_reason, *ready_message;
    char *pod_ip;
    char *deleting; /* metadata.deletionTimestamp, or NULL */
    int paused;
    char *pool; /* the controlling SandboxSet's name, or NULL */
};

#define ENVD_K8S_ANN_TOKEN "agents.kruise.io/runtime-access-token"
#define ENVD_K8S_ANN_TOKEN_LEGACY "e2b.agents.kruise.io/envd-access-token"
#define ENVD_K8S_LABEL_ID "agents.kruise.io/sandbox-id"

/* Resolves the options, reads the Sandbox and parses it. easy: a handle to
 * reuse (kept connections; reset here), or NULL for a temporary one.
 * cancel: aborts the request when set (may be NULL). Errors carry the Go
 * client's prefixes ("failed to create k8s client: ...", "failed to get
 * sandbox ns/name: ..."). Caller frees *out. */
envd_status envd_k8s_lookup(const envd_k8s_options *o, const char *ns, const char *name, CURL *easy,
                            atomic_int *cancel, envd_k8s_sandbox **out, envd_error **err);

/* Parses a Sandbox object (exposed for tests). NULL on a body that is not
 * a JSON object (*problem says why) or on out of memory. */
envd_k8s_sandbox *envd_k8s_sandbox_parse(const char *ns, const char *name, const char *json,
                                         size_t len, char **problem);

/* ENVD_FAILED_PRECONDITION describing why s is not routable, or NULL. */
envd_error *envd_k8s_not_running_error(const envd_k8s_sandbox *s);

/* Starts libcurl's global state once (thread-safe). */
void envd_k8s_curl_init(void);

#endif
