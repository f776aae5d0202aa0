/*
 * libenvd: sandboxes found through Kubernetes, and configuration files.
 *
 *   envd_client_from_k8s   the Go client's NewFromK8s: reads the OpenKruise
 *                          Agents Sandbox object <namespace>/<name> from the
 *                          Kubernetes API and returns a client for it, with
 *                          the runtime access token from its annotations.
 *   envd_k8s_options       where the Kubernetes credentials come from
 *                          (kubeconfig files, context, in-cluster) and how
 *                          strict the lookup is.
 *   envd_config_file       a YAML file holding every envd_config option,
 *                          the Kubernetes options, named sandboxes and
 *                          per-environment overrides.
 *
 * Kubeconfig resolution (ENVD_K8S_SOURCE_AUTO, the default):
 *   1. the files named by envd_k8s_options_set_kubeconfig, else by
 *      $KUBECONFIG (a colon-separated list, merged as kubectl merges it:
 *      the first file to define a cluster, user or context name wins, the
 *      first current-context wins, missing files are skipped);
 *   2. else ~/.kube/config if it exists;
 *   3. else the in-cluster configuration: $KUBERNETES_SERVICE_HOST and
 *      $KUBERNETES_SERVICE_PORT, the service-account token and ca.crt under
 *      /var/run/secrets/kubernetes.io/serviceaccount/ (overridable).
 * Unlike the Go client, a kubeconfig that exists but cannot be used is an
 * error (with the file and line) rather than a silent fall-back.
 *
 * Supported kubeconfig credentials: client certificates (files or -data),
 * bearer token, tokenFile, username/password, exec credential plugins
 * (client.authentication.k8s.io v1 and v1beta1; their results are cached
 * until they expire), and impersonation (as, as-groups, as-uid). An
 * auth-provider entry is rejected with an error naming it.
 *
 * Environment variables are read when a lookup starts (on the calling
 * thread, the async forms too); do not change them concurrently.
 */
#ifndef ENVD_ENVD_K8S_H
#define ENVD_ENVD_K8S_H

#include "envd.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ----------------------------------------------------------- k8s options */

typedef enum envd_k8s_source {
    ENVD_K8S_SOURCE_AUTO = 0,       /* kubeconfig files, else in-cluster */
    ENVD_K8S_SOURCE_KUBECONFIG = 1, /* kubeconfig files only */
    ENVD_K8S_SOURCE_IN_CLUSTER = 2  /* the in-cluster service account only */
} envd_k8s_source;

typedef struct envd_k8s_options envd_k8s_options;

/* Defaults: source auto, $KUBECONFIG, the kubeconfig's current context,
 * the standard service-account directory, a 30 s timeout, and a sandbox
 * that is not running is an error. Caller frees with envd_k8s_options_free.
 * NULL on out of memory. */
ENVD_API envd_k8s_options *envd_k8s_options_new(void);
ENVD_API void envd_k8s_options_free(envd_k8s_options *o);

ENVD_API envd_status envd_k8s_options_set_source(envd_k8s_options *o, envd_k8s_source source);
/* Kubeconfig file(s), colon-separated, used instead of $KUBECONFIG and
 * ~/.kube/config. NULL or "" restores the default. */
ENVD_API envd_status envd_k8s_options_set_kubeconfig(envd_k8s_options *o, const char *paths);
/* The kubeconfig context to use instead of current-context. NULL or ""
 * restores the default. */
ENVD_API envd_status envd_k8s_options_set_context(envd_k8s_options *o, const char *context);
/* The directory holding the service account's token, ca.crt and namespace
 * for the in-cluster configuration. NULL or "" restores
 * /var/run/secrets/kubernetes.io/serviceaccount. */
ENVD_API envd_status envd_k8s_options_set_in_cluster_dir(envd_k8s_options *o, const char *dir);
/* Bound on one resolution: the API request, and an exec plugin's run.
 * 0 = none. Default 30000. */
ENVD_API envd_status envd_k8s_options_set_timeout_ms(envd_k8s_options *o, int64_t ms);
/* When on (default), envd_client_from_k8s fails with
 * ENVD_FAILED_PRECONDITION for a sandbox the gateway would not route (not
 * phase Running, Ready condition not True, being deleted, paused, or still
 * in a SandboxSet pool), reporting what it found, instead of failing later
 * at the gateway. Off: the Go client's behaviour (no check). */
ENVD_API envd_status envd_k8s_options_set_require_running(envd_k8s_options *o, int on);

/* -------------------------------------------------------- sandbox lookup */

/* What one Sandbox object says, as read from the API server: a plain
 * read-only struct, freed with envd_k8s_sandbox_free. */
typedef struct envd_k8s_sandbox {
    const char *namespace_; /* (namespace_: `namespace` is a C++ keyword) */
    const char *name;
    /* The ID the gateway routes by: label agents.kruise.io/sandbox-id when
     * set, else "<namespace>--<name>". */
    const char *id;
    /* Annotation agents.kruise.io/runtime-access-token, else the legacy
     * e2b.agents.kruise.io/envd-access-token; NULL when neither is set. */
    const char *token;
    const char *phase;  /* status.phase ("Running", "Pending", ...), "" when absent */
    const char *ready;  /* the Ready condition's status: "True", "False", "Unknown", "" */
    const char *pod_ip; /* status.podInfo.podIP, "" when absent */
    /* 1 if the gateway would route to it (see set_require_running), else 0. */
    int running;
} envd_k8s_sandbox;

/* Reads the Sandbox <ns>/<name> (ns NULL or "": the context's namespace,
 * else "default"). o may be NULL (defaults). Does not check that it runs.
 * Blocks for up to the options' timeout; needs no runtime (it makes a
 * short-lived I/O thread of its own). Errors: ENVD_E_CONFIG / ENVD_E_IO
 * (kubeconfig), ENVD_UNAVAILABLE (connection or TLS, as for envd),
 * ENVD_DEADLINE_EXCEEDED, ENVD_UNAUTHENTICATED (401), ENVD_PERMISSION_DENIED
 * (403), ENVD_NOT_FOUND (404), others by HTTP status. Caller frees *out
 * with envd_k8s_sandbox_free and *err with envd_error_free. */
ENVD_API envd_status envd_k8s_sandbox_get(const envd_k8s_options *o, const char *ns,
                                          const char *name, envd_k8s_sandbox **out,
                                          envd_error **err);
ENVD_API void envd_k8s_sandbox_free(envd_k8s_sandbox *s);

/* Every Sandbox object of a namespace matching a label selector
 * ("app=eval,tier!=gpu"; NULL or "": all of them): read-only, freed with
 * envd_k8s_sandboxes_free. */
typedef struct envd_k8s_sandboxes {
    size_t count;
    const envd_k8s_sandbox *items;
} envd_k8s_sandboxes;

/* Lists them (ns NULL or "": the context's namespace) with the options o
 * (NULL: defaults), on the runtime as envd_client_from_k8s_async does (the
 * same connections, exec plugin worker and in-flight slot). The future's
 * result: envd_future_k8s_sandboxes. Errors as for envd_k8s_sandbox_get
 * (listing needs the RBAC verb "list"). Caller frees *out with
 * envd_future_free. */
ENVD_API envd_status envd_k8s_sandbox_list_async(envd_runtime *rt, const envd_k8s_options *o,
                                                 const char *ns, const char *selector,
                                                 envd_future **out);
/* The blocking form. Caller frees *out with envd_k8s_sandboxes_free. */
ENVD_API envd_status envd_k8s_sandbox_list(envd_runtime *rt, const envd_k8s_options *o,
                                           const char *ns, const char *selector,
                                           envd_k8s_sandboxes **out, envd_error **err);
/* Valid until the future is freed; NULL unless it succeeded. */
ENVD_API const envd_k8s_sandboxes *envd_future_k8s_sandboxes(const envd_future *f);
ENVD_API void envd_k8s_sandboxes_free(envd_k8s_sandboxes *l);

/* ------------------------------------------------------- client from k8s */

/* NewFromK8s: reads the Sandbox <ns>/<name> with the options k8s (NULL:
 * defaults; copied) and returns a client for its sandbox ID
 * (envd_k8s_sandbox.id). cfg may be NULL (defaults); it is copied, and the
 * token from the annotation, when there is one, replaces its runtime token
 * (as in the Go client). Errors are those of envd_k8s_sandbox_get plus
 * ENVD_FAILED_PRECONDITION for a sandbox that is not running and
 * ENVD_INVALID_ARGUMENT for a name that is not a Kubernetes name; messages
 * start "failed to create k8s client:" or "failed to get sandbox
 * <ns>/<name>:" as the Go client's do. Blocks for up to the options'
 * timeout. Caller frees *out with envd_client_free (before the runtime) and
 * *err with envd_error_free. */
ENVD_API envd_status envd_client_from_k8s(envd_runtime *rt, const char *ns, const char *name,
                                          const envd_config *cfg, const envd_k8s_options *k8s,
                                          envd_client **out, envd_error **err);

/* The same as a future, for resolving many sandboxes at once. The lookups
 * run on the runtime: the kubeconfig is read by this call, the HTTPS
 * request goes to the runtime's curl I/O thread (connections to the API
 * server are kept and reused across lookups), and an exec credential
 * plugin runs on the runtime's one Kubernetes worker thread (started on
 * first use; plugins run one at a time and their credentials are cached
 * until they expire). The future completes on one of those threads; take
 * the client with envd_future_take_client. Cancelling it, or freeing the
 * runtime, ends the lookup (a running plugin is killed) and completes it
 * ENVD_CANCELED. A kubeconfig problem fails the future. Returns an error
 * (and no future) only for bad arguments (NULL rt, name or out, a name
 * that is not a Kubernetes name) or out of memory. Caller frees *out with
 * envd_future_free. */
ENVD_API envd_status envd_client_from_k8s_async(envd_runtime *rt, const char *ns, const char *name,
                                                const envd_config *cfg,
                                                const envd_k8s_options *k8s, envd_future **out);
/* Moves the client out of a completed from_k8s (or config-file client)
 * future; NULL if it failed, is pending, or was taken. Caller frees it with
 * envd_client_free. */
ENVD_API envd_client *envd_future_take_client(envd_future *f);

/* ------------------------------------------------------- sandbox claims */

/*
 * A SandboxClaim (agents.kruise.io/v1alpha1, short name sbc) asks the
 * OpenKruise Agents controller for `replicas` sandboxes of a SandboxSet
 * (its templateName). The controller takes them from the warm pool (or
 * creates them), labels each agents.kruise.io/claim-name=<claim>, and sets
 * the claim's status.phase to Completed, also when claimTimeout ran out
 * before all were claimed (then the TimedOut condition is True and
 * status.message says why). Deleting the claim, or its ttlAfterCompleted
 * running out, does not delete the claimed Sandboxes.
 *
 * envd_k8s_claim_async creates the claim, polls it (back-off from 100 ms
 * to 2 s) until Completed, lists its Sandboxes by that label and makes a
 * client for each one that is running (token from its annotation, as
 * envd_client_from_k8s does). The RBAC verbs it needs on
 * sandboxclaims.agents.kruise.io: create, get; on sandboxes: list.
 */
typedef struct envd_k8s_claim_options envd_k8s_claim_options;

/* Defaults: one replica, a generated name ("<template>-<8 hex digits>"),
 * the server's claimTimeout (1m) and waitReadyTimeout (30s), no labels, no
 * environment variables, and a client-side bound on the wait of claim
 * timeout + wait-ready timeout + 30 s. Caller frees with
 * envd_k8s_claim_options_free. NULL on out of memory. */
ENVD_API envd_k8s_claim_options *envd_k8s_claim_options_new(void);
ENVD_API void envd_k8s_claim_options_free(envd_k8s_claim_options *o);
/* The SandboxClaim's name (a DNS-1123 subdomain); NULL or "" restores the
 * generated one. */
ENVD_API envd_status envd_k8s_claim_options_set_name(envd_k8s_claim_options *o, const char *name);
/* spec.replicas, 1..10000 (the field is immutable once created). */
ENVD_API envd_status envd_k8s_claim_options_set_replicas(envd_k8s_claim_options *o, int replicas);
/* spec.claimTimeout and spec.waitReadyTimeout in ms (sent as Go durations);
 * 0 leaves the field out (the server's default). */
ENVD_API envd_status envd_k8s_claim_options_set_claim_timeout_ms(envd_k8s_claim_options *o,
                                                                 int64_t ms);
ENVD_API envd_status envd_k8s_claim_options_set_wait_ready_timeout_ms(envd_k8s_claim_options *o,
                                                                      int64_t ms);
/* How long to poll before giving up on a claim that never completes (no
 * controller, say); 0 restores the default above. */
ENVD_API envd_status envd_k8s_claim_options_set_wait_ms(envd_k8s_claim_options *o, int64_t ms);
/* Adds spec.labels[key] (put on every claimed Sandbox) or spec.envVars[key]
 * (given to envd's /init by the controller); a key set twice keeps the
 * last value. Keys and values are copied. */
ENVD_API envd_status envd_k8s_claim_options_set_label(envd_k8s_claim_options *o, const char *key,
                                                      const char *value);
ENVD_API envd_status envd_k8s_claim_options_set_env(envd_k8s_claim_options *o, const char *key,
                                                    const char *value);

/* What a claim got: a plain struct, freed with envd_k8s_claimed_free. */
typedef struct envd_k8s_claimed {
    const char *namespace_;
    const char *name;     /* the SandboxClaim (for envd_k8s_claim_release) */
    const char *template_name;
    int replicas;         /* asked for */
    int claimed;          /* status.claimedReplicas */
    /* The claimed Sandboxes that run, and a ready client for each (same
     * index). The clients belong to this struct; take one by copying the
     * pointer and setting the entry to NULL (then free it yourself, with
     * envd_client_free, before the runtime). */
    size_t count;
    const envd_k8s_sandbox *sandboxes;
    envd_client **clients;
} envd_k8s_claimed;

/* Creates the claim for `template_name` (the SandboxSet) in ns (NULL or "":
 * the context's namespace) with the Kubernetes options k8s and the claim
 * options co (either may be NULL: defaults; both copied), and returns a
 * future. cfg (copied; NULL: defaults) is the configuration of the clients
 * made; each one's runtime token is its Sandbox's annotation. Many claims
 * may be in flight on one runtime; each holds one in-flight slot.
 *
 * The future fails with the whole story when not every replica became a
 * client, and still holds what was obtained (partial success is reported,
 * not hidden): take it with envd_future_take_k8s_claimed whatever the
 * status. Errors: those of envd_k8s_sandbox_get for the requests
 * (ENVD_PERMISSION_DENIED naming the verb and resource, ENVD_ALREADY_EXISTS
 * for a 409, ENVD_INVALID_ARGUMENT for a 422 with the server's message);
 * ENVD_DEADLINE_EXCEEDED when the TimedOut condition is True or the wait
 * bound ran out; ENVD_RESOURCE_EXHAUSTED when the claim completed with
 * fewer than asked; ENVD_FAILED_PRECONDITION when claimed Sandboxes do not
 * run. The message names the claim, the template and "N of M" claimed.
 * Once the claim exists the future has a result (count may be 0), so that
 * it can be released. Cancelling stops the wait (the claim stays). Caller
 * frees *out with envd_future_free. */
ENVD_API envd_status envd_k8s_claim_async(envd_runtime *rt, const envd_k8s_options *k8s,
                                          const char *ns, const char *template_name,
                                          const envd_k8s_claim_options *co,
                                          const envd_config *cfg, envd_future **out);
/* The blocking form. *out is set whenever the future has a result, also
 * when the status is not ENVD_OK (a partial claim). Caller frees *out with
 * envd_k8s_claimed_free (before the runtime) and *err with
 * envd_error_free. */
ENVD_API envd_status envd_k8s_claim(envd_runtime *rt, const envd_k8s_options *k8s, const char *ns,
                                    const char *template_name, const envd_k8s_claim_options *co,
                                    const envd_config *cfg, envd_k8s_claimed **out,
                                    envd_error **err);
/* Moves the result out of a finished claim future (NULL: none, or taken
 * already). Caller frees it with envd_k8s_claimed_free. */
ENVD_API envd_k8s_claimed *envd_future_take_k8s_claimed(envd_future *f);
/* Frees the clients still in it, then the rest. NULL is fine. */
ENVD_API void envd_k8s_claimed_free(envd_k8s_claimed *c);

/* Deletes the SandboxClaim <ns>/<name> and, when delete_sandboxes is
 * non-zero, every Sandbox labelled agents.kruise.io/claim-name=<name> (one
 * deletecollection request), so that the pool's capacity comes back. With
 * delete_sandboxes a claim that is gone already (its TTL ran out) is not an
 * error. RBAC verbs: delete on sandboxclaims, deletecollection on
 * sandboxes. The future has no result. Caller frees *out with
 * envd_future_free. */
ENVD_API envd_status envd_k8s_claim_release_async(envd_runtime *rt, const envd_k8s_options *k8s,
                                                  const char *ns, const char *name,
                                                  int delete_sandboxes, envd_future **out);
/* The blocking form. Caller frees *err with envd_error_free. */
ENVD_API envd_status envd_k8s_claim_release(envd_runtime *rt, const envd_k8s_options *k8s,
                                            const char *ns, const char *name,
                                            int delete_sandboxes, envd_error **err);

/* ---------------------------------------------------- configuration file */

/*
 * A YAML configuration file. Every key is optional; '-' and '_' are
 * interchangeable in key names; unknown keys and values of the wrong type
 * are errors reported as file:line:column. Relative paths are relative to
 * the file's directory. In string values ${VAR} is replaced by the
 * environment variable VAR (an error when unset), ${VAR:-default} by VAR or
 * the default, and $$ by $.
 *
 *   domain: sandbox-gateway.sandbox-system.svc:7788
 *   scheme: http                      # http | https
 *   runtime_token: ${ENVD_TOKEN}
 *   runtime_port: 49983
 *   api_key: ...
 *   auth_header: Basic cm9vdDo=        # or user: root
 *   sandbox_base_url: ...
 *   ca_file: ca.pem
 *   headers: {X-Team: infra}
 *   request_timeout_ms: 60000
 *   transport: auto                   # grpc | connect | auto
 *   h2c: false                        # Connect over cleartext HTTP/2
 *   keepalive_s: 50
 *   idle_timeout_ms: 110000
 *   workers: 0
 *   max_inflight: 4096
 *   fail_fast: false
 *   retries: 3
 *   max_message_bytes: 16777216
 *   max_list_entries: 262144
 *   files_min_bytes: 1024             # in every files_min_window_ms
 *   files_min_window_ms: 30000
 *   streams_per_connection: 100
 *   max_connections: 200
 *   envd_version: 0.6.13              # what the sandbox runs, if known
 *   kubernetes:
 *     source: auto                    # auto | kubeconfig | in-cluster
 *     kubeconfig: ~/.kube/config      # colon-separated list allowed
 *     context: prod
 *     in_cluster_dir: /var/run/secrets/kubernetes.io/serviceaccount
 *     timeout_ms: 30000
 *     require_running: true
 *   sandboxes:
 *     - name: builder                 # required, unique
 *       id: sbx-1234                  # a sandbox ID, or:
 *     - name: agent
 *       k8s: team-a/agent-7           # namespace/name of a Sandbox object
 *       runtime_token: ...            # optional, this sandbox only
 *   environment: staging              # the overlay used by default
 *   environments:
 *     staging: {domain: gw.staging:7788, kubernetes: {context: staging}}
 *     prod:    {domain: gw.prod:7788, sandboxes: [{name: agent, id: x}]}
 *
 * An environment overlay may hold any top-level key but environment and
 * environments; its values replace the base ones, headers merge by name,
 * sandboxes merge by name. The overlay used is, in order: the one named
 * when loading, $ENVD_ENVIRONMENT, the file's `environment`, none.
 *
 * Every value goes through its setter (envd_config_set_*,
 * envd_k8s_options_set_*), so the ranges and refusals are the setters'
 * (headers: Connect-Timeout-Ms is refused as by envd_config_set_header),
 * reported as "file:line:column: key: <the setter's reason>". Overlays not
 * in use are checked the same way, except values holding a ${VAR}. The
 * file is read whole, at most 16 MiB.
 */
typedef struct envd_config_file envd_config_file;

/* Loads and checks the file. environment NULL: the default selection
 * above. Caller frees *out with envd_config_file_free and *err with
 * envd_error_free. */
ENVD_API envd_status envd_config_file_load(const char *path, const char *environment,
                                           envd_config_file **out, envd_error **err);
/* Shortcut: loads the file (default environment) and returns a copy of its
 * options in *out (caller frees with envd_config_free), and the file
 * itself in *file when file is not NULL (caller frees with
 * envd_config_file_free). */
ENVD_API envd_status envd_config_load_file(const char *path, envd_config **out,
                                           envd_config_file **file, envd_error **err);
ENVD_API void envd_config_file_free(envd_config_file *f);

/* The following results are valid as long as f. */
ENVD_API const envd_config *envd_config_file_config(const envd_config_file *f);
ENVD_API const envd_k8s_options *envd_config_file_k8s_options(const envd_config_file *f);

/* One entry of `sandboxes`, a plain read-only struct. */
typedef struct envd_sandbox_entry {
    const char *name;
    const char *id; /* the sandbox ID for an `id` entry, NULL for a `k8s` one */
    /* Namespace and name for a `k8s` entry (NULL for an `id` one; the
     * namespace is also NULL when the entry gives only a name: the
     * context's is used). */
    const char *k8s_namespace;
    const char *k8s_name;
    const char *runtime_token; /* the entry's own runtime token, or NULL */
} envd_sandbox_entry;

/* The entries in file order (after the environment overlay): *n of them
 * (n may be NULL); NULL when there are none. */
ENVD_API const envd_sandbox_entry *envd_config_file_sandboxes(const envd_config_file *f,
                                                              size_t *n);
/* NULL when no entry has that name. */
ENVD_API const envd_sandbox_entry *envd_config_file_sandbox_find(const envd_config_file *f,
                                                                 const char *name);

/* A client for the sandbox named `name` in f (NULL: the first entry; a
 * client without sandbox ID when the file lists none), with the file's
 * options: an `id` entry directly, a `k8s` entry through
 * envd_client_from_k8s with the file's kubernetes options. Caller
 * frees *out with envd_client_free and *err with envd_error_free. */
ENVD_API envd_status envd_config_file_client(envd_runtime *rt, const envd_config_file *f,
                                             const char *name, envd_client **out, envd_error **err);
/* The same as a future (envd_future_take_client); f may be freed once this
 * returns. */
ENVD_API envd_status envd_config_file_client_async(envd_runtime *rt, const envd_config_file *f,
                                                   const char *name, envd_future **out);

#ifdef __cplusplus
}
#endif
#endif
