/* SandboxClaims (claim.c): the options' fields and the claim's body. */
#ifndef ENVD_K8S_CLAIM_H
#define ENVD_K8S_CLAIM_H

#include "envd/envd_k8s.h"

#include <stdint.h>

#define ENVD_K8S_LABEL_CLAIM "agents.kruise.io/claim-name"

typedef struct envd_k8s_kv {
    char *key, *value;
} envd_k8s_kv;

typedef struct envd_k8s_kvs {
    envd_k8s_kv *v;
    size_t n;
} envd_k8s_kvs;

struct envd_k8s_claim_options {
    char *name; /* NULL: generated */
    int replicas;
    int64_t claim_timeout_ms, wait_ready_timeout_ms; /* 0: the server's */
    int64_t wait_ms;                                 /* 0: derived */
    envd_k8s_kvs labels, env;
};

/* A copy of o (NULL: defaults) in *out. ENVD_E_NOMEM. */
envd_status envd_k8s_claim_options_copy(const envd_k8s_claim_options *o,
                                        envd_k8s_claim_options **out);
/* "<template>-<8 random hex digits>"; NULL on failure. Caller frees. */
char *envd_k8s_claim_name(const char *template_name);
/* The SandboxClaim object to POST, compact JSON; NULL on out of memory. */
char *envd_k8s_claim_body(const envd_k8s_claim_options *o, const char *ns, const char *name,
                          const char *template_name);

#endif
