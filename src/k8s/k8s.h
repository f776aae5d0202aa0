/* The Sandbox lookup: one GET of agents.kruise.io/v1alpha1 sandboxes over
 * the runtime's curl engine with the kubeconfig's TLS and credentials, an
 * exec plugin (when the kubeconfig names one) on the runtime's Kubernetes
 * worker, the answer read with jansson. Used by the public entry points in
 * k8s_client.c and config_client.c. */
#ifndef ENVD_K8S_K8S_H
#define ENVD_K8S_K8S_H

#include "config/k8s_options.h"
#include "core/future.h"
#include "k8s/kubeconfig.h"
#include "k8s/worker.h"
#include "transport/transport.h"

/* Every envd_k8s_sandbox the library hands out is the first member of
 * this: what the not-running message needs and the public struct does not
 * carry. The public strings point at the owned copies below. */
typedef struct envd_k8s_sb {
    envd_k8s_sandbox pub;
    char *ns, *name, *id, *token, *phase, *ready, *pod_ip;
    char *ready_reason, *ready_message; /* NULL when absent */
    char *deleting;                     /* metadata.deletionTimestamp, or NULL */
    int paused;
    char *pool; /* the controlling SandboxSet's name, or NULL */
} envd_k8s_sb;

#define ENVD_K8S_ANN_TOKEN "agents.kruise.io/runtime-access-token"
#define ENVD_K8S_ANN_TOKEN_LEGACY "e2b.agents.kruise.io/envd-access-token"
#define ENVD_K8S_LABEL_ID "agents.kruise.io/sandbox-id"

/* What a lookup does with the Sandbox it read: make the future's result.
 * Runs once on an engine thread (curl I/O or the worker) for a sandbox
 * that was read; owns s; sets *result and *free_fn, or returns an error. */
typedef struct envd_k8s_finish {
    int kind; /* ENVD_FK_* of the future */
    envd_error *(*make)(void *ctx, envd_k8s_sb *s, void **result, envd_free_fn *free_fn);
    void *ctx;
    envd_free_fn ctx_free; /* runs when the lookup is gone; may be NULL */
    /* Set: list the Sandbox objects of the namespace matching this label
     * selector ("" all) instead of reading one (name NULL); the result is
     * an envd_k8s_sandboxes and make is not called. */
    const char *selector;
} envd_k8s_finish;

/* Starts reading the Sandbox <ns>/<name> (ns NULL or "": the context's)
 * with options o (NULL: defaults). rt: the runtime whose in-flight cap the
 * lookup counts against (ENVD_E_BUSY, ENVD_E_SHUTDOWN), or NULL. The HTTPS request goes to curl, an exec
 * plugin to worker. *out: a future of fin->kind; cancelling it, or stopping
 * the worker and then freeing the engine, completes it ENVD_CANCELED.
 * Kubeconfig problems complete the future with the error. Returns
 * ENVD_INVALID_ARGUMENT for a name that is not a Kubernetes name,
 * ENVD_E_NOMEM (with fin->ctx freed and *out NULL). Errors carry the Go
 * client's prefixes ("failed to create k8s client: ...", "failed to get
 * sandbox ns/name: ..."). */
envd_status envd_k8s_lookup_start(envd_runtime *rt, envd_curl_engine *curl,
                                  envd_k8s_worker *worker, const envd_k8s_options *o,
                                  const char *ns, const char *name, const envd_k8s_finish *fin,
                                  envd_future **out);

/* The runtime's worker, made on first use. NULL on OOM. */
envd_k8s_worker *envd_k8s_runtime_worker(envd_runtime *rt);

/* Parses a Sandbox object (exposed for tests). NULL on a body that is not
 * a JSON object (*problem says why) or on out of memory. */
envd_k8s_sb *envd_k8s_sandbox_parse(const char *ns, const char *name, const char *json,
                                    size_t len, char **problem);

/* Parses a SandboxList: each item as envd_k8s_sandbox_parse does. */
envd_k8s_sandboxes *envd_k8s_sandboxes_parse(const char *ns, const char *json, size_t len,
                                                   char **problem);

/* ENVD_FAILED_PRECONDITION describing why s is not routable, or NULL. */
envd_error *envd_k8s_not_running_error(const envd_k8s_sb *s);

/* The error for a non-200 answer: a metav1.Status when the server made it.
 * cred_kind says what authenticated ("a bearer token" ...). */
envd_error *envd_k8s_status_error(const envd_k8s_conn *c, const char *cred_kind, long code,
                                  const char *body, size_t len, const char *ns, const char *name);

/* 1 when s is a DNS-1123 label (label) or subdomain. */
int envd_k8s_valid_name(const char *s, int label);

#endif
