/* The configuration file's parsed form (envd_config_file_load). */
#ifndef ENVD_CONFIG_CONFIG_FILE_H
#define ENVD_CONFIG_CONFIG_FILE_H

#include "envd/envd_k8s.h"

#include <stddef.h>

/* An entry as the loader builds it (owned strings); the file hands out
 * envd_sandbox_entry views of these. */
struct envd_sbx_own {
    char *name;
    char *id;                /* an `id` entry */
    char *k8s_ns, *k8s_name; /* a `k8s` entry; k8s_ns NULL: the context's */
    char *runtime_token;     /* NULL unless the entry sets one */
};

struct envd_config_file {
    char *path;
    char *environment; /* the overlay applied, or NULL */
    envd_config *cfg;
    envd_k8s_options *k8s;
    struct envd_sbx_own *own;
    envd_sandbox_entry *sandboxes; /* the public view of own, same order */
    size_t n_sandboxes;
};

#endif
