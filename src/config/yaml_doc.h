/* A YAML file loaded into libyaml's document tree, with typed accessors that
 * report file:line:column. Shared by the configuration file and the
 * kubeconfig reader. libyaml leaves every scalar untyped; the accessors
 * resolve plain scalars the way YAML 1.1 loaders (kubectl's included) do
 * for the few types we need: null, bool, integer, string. */
#ifndef ENVD_CONFIG_YAML_DOC_H
#define ENVD_CONFIG_YAML_DOC_H

#include "envd/envd.h"

#include <stddef.h>
#include <stdint.h>
#include <yaml.h>

typedef struct envd_yaml {
    char *path; /* as given, for messages */
    yaml_document_t doc;
    int loaded;
} envd_yaml;

/* Loads the first document of the file. Errors (ENVD_E_CONFIG, or
 * ENVD_E_IO when the file cannot be opened) name the file and, for syntax
 * errors, the line and column libyaml reports. *y is cleared on entry and
 * must be released with envd_yaml_free whatever the result. */
envd_status envd_yaml_load_file(envd_yaml *y, const char *path, envd_error **err);
/* The same from memory; `name` is used in messages. */
envd_status envd_yaml_load_string(envd_yaml *y, const char *name, const char *text, size_t len,
                                  envd_error **err);
void envd_yaml_free(envd_yaml *y);

/* The root node, or NULL for an empty document. */
yaml_node_t *envd_yaml_root(envd_yaml *y);

/* Mapping lookup by key (exact). NULL when absent or map is not a mapping. */
yaml_node_t *envd_yaml_get(envd_yaml *y, yaml_node_t *map, const char *key);

/* Iteration over a mapping's pairs or a sequence's items. */
size_t envd_yaml_len(yaml_node_t *n);
yaml_node_t *envd_yaml_key_at(envd_yaml *y, yaml_node_t *map, size_t i);
yaml_node_t *envd_yaml_value_at(envd_yaml *y, yaml_node_t *map, size_t i);
yaml_node_t *envd_yaml_item_at(envd_yaml *y, yaml_node_t *seq, size_t i);

/* Scalar text (NUL-terminated; libyaml keeps it so) or NULL if n is not a
 * scalar. */
const char *envd_yaml_text(yaml_node_t *n);
int envd_yaml_is_null(yaml_node_t *n);
/* Plain scalars only: 0 on success. */
int envd_yaml_as_bool(yaml_node_t *n, int *out);
int envd_yaml_as_int(yaml_node_t *n, int64_t *out);
/* What a node is, for "expected X, got Y" messages: "null", "a boolean",
 * "an integer", "a string", "a list", "a mapping". */
const char *envd_yaml_describe(yaml_node_t *n);

/* An ENVD_E_CONFIG error "<path>:<line>:<col>: <message>" at n (1-based; the
 * file alone when n is NULL). */
envd_error *envd_yaml_error(const envd_yaml *y, const yaml_node_t *n, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

#endif
