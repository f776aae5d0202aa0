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
#include "core/timer.h"
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

/* One request of a multi-request operation (a claim, a release): what
 * step asks the lookup to send next. */
typedef struct envd_k8s_req {
    const char *method; /* a literal: "GET", "POST", "DELETE" */
    char *path;         /* owned by the lookup once step returned */
    char *body;         /* JSON to send, or NULL; owned likewise */
    int64_t delay_ms;   /* send it after this long (a poll's back-off) */
} envd_k8s_req;

/* What step sees: the namespace in use and, after a request, its answer. */
typedef struct envd_k8s_answer {
    const envd_k8s_conn *conn;
    const char *cred_kind; /* what authenticated, for 401 messages */
    const char *ns;
    long status; /* 0: before the first request */
    const char *body;
    size_t len;
} envd_k8s_answer;

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
    /* Set: a multi-request operation instead (name and selector unused).
     * Called once before the first request (a->status 0) and once per
     * answer, on an engine thread; returns 1 with *next filled to send
     * another request, or 0 when done with *result / *free_fn and/or *err
     * (owned by the future). Transport failures do not come here: they
     * complete the future, their message prefixed with `what`. The lookup
     * needs timers for a delayed request and a runtime (it is tracked, so
     * that freeing the runtime stops it). */
    int (*step)(void *ctx, const envd_k8s_answer *a, envd_k8s_req *next, void **result,
                envd_free_fn *free_fn, envd_error **err);
    const char *what;
    envd_timers *timers;
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

/* What a request was, for the messages of its error answers. */
typedef struct envd_k8s_what {
    const char *verb;     /* the RBAC verb: "get", "list", "create", ... */
    const char *resource; /* "sandboxes", "sandboxclaims" */
    const char *noun;     /* "sandbox", "sandbox claim" */
} envd_k8s_what;

/* The error for a non-2xx answer: a metav1.Status when the server made it.
 * cred_kind says what authenticated ("a bearer token" ...); name is the
 * object's ("" for a collection). 401 and 403 name the credentials and the
 * RBAC verb and resource, 404 tells a missing object from a missing CRD,
 * 409 and 422 carry the server's message. */
envd_error *envd_k8s_status_error(const envd_k8s_conn *c, const char *cred_kind, long code,
                                  const char *body, size_t len, const char *ns, const char *name,
                                  const envd_k8s_what *w);

/* 1 when s is a DNS-1123 label (label) or subdomain. */
int envd_k8s_valid_name(const char *s, int label);

#endif
