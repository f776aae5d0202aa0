/* Exec credential plugins (client.authentication.k8s.io): runs the
 * kubeconfig's command, reads the ExecCredential it prints, and caches the
 * result process-wide until it expires, as client-go does, so that
 * resolving hundreds of sandboxes runs the plugin once. */
#ifndef ENVD_K8S_EXEC_PLUGIN_H
#define ENVD_K8S_EXEC_PLUGIN_H

#include "k8s/kubeconfig.h"

#include <stdatomic.h>
#include <stdint.h>

typedef struct envd_k8s_cred {
    char *token;             /* may be NULL */
    envd_k8s_blob cert, key; /* PEM, both or none */
    int64_t expires;         /* Unix seconds; 0 = no expiry given */
} envd_k8s_cred;

struct envd_k8s_worker;

/* What ends a plugin run early: the lookup's cancel flag, and the worker
 * it runs on (stopping, or woken to look at the flag). Either may be
 * NULL. */
typedef struct envd_k8s_stop {
    atomic_int *cancel;
    struct envd_k8s_worker *worker;
} envd_k8s_stop;

/* Credentials from c->exec; blocks for the plugin's run, so it runs on the
 * runtime's Kubernetes worker. fresh: ignore the cache (after a 401).
 * timeout_ms bounds the run (0: none); the plugin is killed when that
 * passes or stop says so. Errors: ENVD_E_CONFIG (plugin missing, failed,
 * bad output; the message carries its stderr and installHint),
 * ENVD_CANCELED, ENVD_DEADLINE_EXCEEDED. Caller clears *out with
 * envd_k8s_cred_clear. */
envd_status envd_k8s_exec_credential(const envd_k8s_conn *c, int fresh, int64_t timeout_ms,
                                     const envd_k8s_stop *stop, envd_k8s_cred *out,
                                     envd_error **err);
void envd_k8s_cred_clear(envd_k8s_cred *cr);

/* Parses an ExecCredential document (exposed for tests). */
envd_status envd_k8s_parse_exec_credential(const char *json, size_t len, const char *api_version,
                                           envd_k8s_cred *out, char **problem);

#endif
