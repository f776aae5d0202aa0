/* YAML documents with positions, on top of libyaml's loader. */
#include "config/yaml_doc.h"
#include "core/alloc.h"
#include "core/error.h"
#include "core/file.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* libyaml 0.2.5's composer fails without setting an error when it cannot
 * copy a node's default tag (yaml_strdup in yaml_parser_load_scalar,
 * _sequence and _mapping, loader.c): no error there is out of memory. */
static int out_of_memory(const yaml_parser_t *p)
{
    return p->error == YAML_MEMORY_ERROR || p->error == YAML_NO_ERROR;
}

static envd_error *parser_error(const char *path, const yaml_parser_t *p)
{
    if (out_of_memory(p))
        return envd_error_new(ENVD_E_NOMEM, ENVD_TRANSPORT_NONE, 0, "%s: out of memory", path);
    const char *what = p->error == YAML_READER_ERROR     ? "cannot read"
                       : p->error == YAML_SCANNER_ERROR  ? "syntax error"
                       : p->error == YAML_PARSER_ERROR   ? "syntax error"
                       : p->error == YAML_COMPOSER_ERROR ? "malformed document"
                                                         : "cannot parse";
    const char *problem = p->problem ? p->problem : "unknown problem";
    if (p->error == YAML_READER_ERROR)
        return envd_error_new(ENVD_E_CONFIG, ENVD_TRANSPORT_NONE, 0, "%s: %s: %s (byte offset %zu)",
                              path, what, problem, p->problem_offset);
    size_t line = p->problem_mark.line + 1, col = p->problem_mark.column + 1;
    if (p->context)
        return envd_error_new(ENVD_E_CONFIG, ENVD_TRANSPORT_NONE, 0,
                              "%s:%zu:%zu: %s: %s %s (started at line %zu, column %zu)", path, line,
                              col, what, p->context, problem, p->context_mark.line + 1,
                              p->context_mark.column + 1);
    return envd_error_new(ENVD_E_CONFIG, ENVD_TRANSPORT_NONE, 0, "%s:%zu:%zu: %s: %s", path, line,
                          col, what, problem);
}

static envd_status load(envd_yaml *y, yaml_parser_t *p, envd_error **err)
{
    if (!yaml_parser_load(p, &y->doc)) {
        envd_status s = out_of_memory(p) ? ENVD_E_NOMEM : ENVD_E_CONFIG;
        if (err)
            *err = parser_error(y->path, p);
        yaml_parser_delete(p);
        return s;
    }
    y->loaded = 1;
    yaml_parser_delete(p);
    return ENVD_OK;
}

/* Read whole first, and bounded: configuration files and kubeconfigs are
 * small, and a path naming /dev/zero or a large log by mistake must fail
 * with a message instead of filling the memory. */
#define YAML_MAX_BYTES (16u << 20)

envd_status envd_yaml_load_file(envd_yaml *y, const char *path, envd_error **err)
{
    memset(y, 0, sizeof(*y));
    envd_buf b = {0};
    envd_status s = envd_file_read_err(path, YAML_MAX_BYTES, &b, err);
    if (s == ENVD_OK)
        s = envd_yaml_load_string(y, path, envd_buf_str(&b), b.len, err);
    envd_buf_free(&b);
    return s;
}

envd_status envd_yaml_load_string(envd_yaml *y, const char *name, const char *text, size_t len,
                                  envd_error **err)
{
    memset(y, 0, sizeof(*y));
    if (!(y->path = envd_strdup(name)))
        return ENVD_E_NOMEM;
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p))
        return ENVD_E_NOMEM;
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    return load(y, &p, err);
}

void envd_yaml_free(envd_yaml *y)
{
    if (!y)
        return;
    if (y->loaded)
        yaml_document_delete(&y->doc);
    y->loaded = 0;
    free(y->path);
    y->path = NULL;
}

yaml_node_t *envd_yaml_root(envd_yaml *y)
{
    return y->loaded ? yaml_document_get_root_node(&y->doc) : NULL;
}

size_t envd_yaml_len(yaml_node_t *n)
{
    if (!n)
        return 0;
    if (n->type == YAML_MAPPING_NODE)
        return (size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
    if (n->type == YAML_SEQUENCE_NODE)
        return (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    return 0;
}

yaml_node_t *envd_yaml_key_at(envd_yaml *y, yaml_node_t *map, size_t i)
{
    if (!map || map->type != YAML_MAPPING_NODE || i >= envd_yaml_len(map))
        return NULL;
    return yaml_document_get_node(&y->doc, map->data.mapping.pairs.start[i].key);
}

yaml_node_t *envd_yaml_value_at(envd_yaml *y, yaml_node_t *map, size_t i)
{
    if (!map || map->type != YAML_MAPPING_NODE || i >= envd_yaml_len(map))
        return NULL;
    return yaml_document_get_node(&y->doc, map->data.mapping.pairs.start[i].value);
}

yaml_node_t *envd_yaml_item_at(envd_yaml *y, yaml_node_t *seq, size_t i)
{
    if (!seq || seq->type != YAML_SEQUENCE_NODE || i >= envd_yaml_len(seq))
        return NULL;
    return yaml_document_get_node(&y->doc, seq->data.sequence.items.start[i]);
}

const char *envd_yaml_text(yaml_node_t *n)
{
    return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

yaml_node_t *envd_yaml_get(envd_yaml *y, yaml_node_t *map, const char *key)
{
    size_t n = envd_yaml_len(map);
    if (!map || map->type != YAML_MAPPING_NODE)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        const char *k = envd_yaml_text(envd_yaml_key_at(y, map, i));
        if (k && strcmp(k, key) == 0)
            return envd_yaml_value_at(y, map, i);
    }
    return NULL;
}

static int plain(yaml_node_t *n)
{
    return n && n->type == YAML_SCALAR_NODE && n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
}

int envd_yaml_is_null(yaml_node_t *n)
{
    if (!plain(n))
        return 0;
    const char *t = envd_yaml_text(n);
    return !*t || strcmp(t, "~") == 0 || strcmp(t, "null") == 0 || strcmp(t, "Null") == 0 ||
           strcmp(t, "NULL") == 0;
}

int envd_yaml_as_bool(yaml_node_t *n, int *out)
{
    static const char *const yes[] = {"true", "True", "TRUE", "yes", "Yes",
                                      "YES",  "on",   "On",   "ON"};
    static const char *const no[] = {"false", "False", "FALSE", "no", "No",
                                     "NO",    "off",   "Off",   "OFF"};
    if (!plain(n))
        return -1;
    const char *t = envd_yaml_text(n);
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        if (strcmp(t, yes[i]) == 0) {
            *out = 1;
            return 0;
        }
        if (strcmp(t, no[i]) == 0) {
            *out = 0;
            return 0;
        }
    }
    return -1;
}

int envd_yaml_as_int(yaml_node_t *n, int64_t *out)
{
    if (!plain(n))
        return -1;
    const char *t = envd_yaml_text(n);
    if (!*t)
        return -1;
    char *end = NULL;
    errno = 0;
    long long v = strtoll(t, &end, 10);
    if (errno || *end || end == t)
        return -1;
    *out = v;
    return 0;
}

const char *envd_yaml_describe(yaml_node_t *n)
{
    if (!n)
        return "nothing";
    if (n->type == YAML_MAPPING_NODE)
        return "a mapping";
    if (n->type == YAML_SEQUENCE_NODE)
        return "a list";
    if (envd_yaml_is_null(n))
        return "null";
    int b;
    int64_t i;
    if (envd_yaml_as_bool(n, &b) == 0)
        return "a boolean";
    if (envd_yaml_as_int(n, &i) == 0)
        return "an integer";
    return "a string";
}

envd_error *envd_yaml_error(const envd_yaml *y, const yaml_node_t *n, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (!n)
        return envd_error_new(ENVD_E_CONFIG, ENVD_TRANSPORT_NONE, 0, "%s: %s", y->path, msg);
    return envd_error_new(ENVD_E_CONFIG, ENVD_TRANSPORT_NONE, 0, "%s:%zu:%zu: %s", y->path,
                          n->start_mark.line + 1, n->start_mark.column + 1, msg);
}
