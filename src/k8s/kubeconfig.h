/* Where and how to reach the Kubernetes API: kubeconfig files (merged as
 * kubectl merges them) or the in-cluster service account, resolved into
 * one connection description. */
#ifndef ENVD_K8S_KUBECONFIG_H
#define ENVD_K8S_KUBECONFIG_H

#include "config/k8s_options.h"

#include <stddef.h>

typedef struct envd_k8s_blob {
    unsigned char *data;
    size_t len;
} envd_k8s_blob;

/* An exec credential plugin as the kubeconfig describes it. */
typedef struct envd_k8s_exec {
    char *command; /* relative paths with a '/' already resolved */
    char **args;
    size_t n_args;
    char **env; /* "NAME=value" */
    size_t n_env;
    char *api_version;
    char *install_hint; /* may be NULL */
    int provide_cluster_info;
} envd_k8s_exec;

typedef struct envd_k8s_conn {
    char *origin;    /* for messages: "kubeconfig /a:/b, context 'x'" */
    char *user_desc; /* for messages: "user 'alice'", "the service account" */
    char *server;    /* scheme://host[:port][/prefix], no trailing '/' */
    char *tls_server_name;
    envd_k8s_blob ca; /* PEM; empty: the system's trust store */
    char *ca_desc;    /* where ca came from, for TLS messages; NULL if none */
    int insecure;
    char *proxy_url;
    envd_k8s_blob cert, key; /* PEM client certificate and key, both or none */
    char *token;             /* bearer token (token, tokenFile read now) */
    char *username, *password;
    envd_k8s_exec *exec; /* NULL, or a plugin to run for credentials */
    char *as_user, *as_uid;
    char **as_groups;
    size_t n_as_groups;
    char **as_extra; /* "Impersonate-Extra-<key>: <value>" header lines */
    size_t n_as_extra;
    char *ns; /* the context's namespace, "default" when unset */
} envd_k8s_conn;

/* Resolves o (NULL: defaults) against the environment and files. Errors are
 * ENVD_E_CONFIG (missing, malformed or unusable configuration; file:line
 * where one applies) or ENVD_E_IO. Caller frees with envd_k8s_conn_free. */
envd_status envd_k8s_conn_load(const envd_k8s_options *o, envd_k8s_conn **out, envd_error **err);
void envd_k8s_conn_free(envd_k8s_conn *c);

/* Standard base64 (whitespace ignored) into a new buffer. 0 or -1. */
int envd_k8s_b64decode(const char *in, envd_k8s_blob *out);
/* Reads a whole (small) file; NUL-terminated. 0, or -1 with errno set. */
int envd_k8s_read_file(const char *path, envd_k8s_blob *out);

#endif
