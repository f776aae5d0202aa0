/* The YAML configuration file: every envd_config option, the Kubernetes
 * options, named sandboxes, environment overlays, ${VAR} expansion. Strict:
 * unknown keys, duplicate keys and wrong types are errors at
 * file:line:column.
 *
 * Options are rows of one table (key, YAML type, setter). The loader only
 * reads types; whether a value is in range is the setter's business, and
 * its reason (envd_config_last_error) is what the error says after
 * "file:line:column: key: ". */
#include "config/config_file.h"
#include "envd/envd_code.h"
#include "core/alloc.h"
#include "config/config.h"
#include "config/k8s_options.h"
#include "config/yaml_doc.h"
#include "core/buf.h"
#include "core/error.h"
#include "core/kv.h"

#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* -------------------------------------------------------- option table */

enum kind { K_STR, K_PATH, K_PATHLIST, K_INT, K_BOOL, K_ENUM };

typedef struct enum_word {
    const char *word;
    int value;
} enum_word;

/* One option. Exactly one setter is set; its type says what the YAML value
 * becomes (string, int, int64) and which object it lands in. */
typedef struct opt_def {
    int k8s; /* under "kubernetes:" */
    const char *key;
    enum kind kind;
    const enum_word *words; /* K_ENUM: the accepted words, NULL-terminated */
    const char *expect;     /* K_ENUM: them, for "must be ..." */
    envd_status (*cfg_str)(envd_config *, const char *);
    envd_status (*cfg_int)(envd_config *, int);
    envd_status (*cfg_i64)(envd_config *, int64_t);
    envd_status (*k8s_str)(envd_k8s_options *, const char *);
    envd_status (*k8s_int)(envd_k8s_options *, int);
    envd_status (*k8s_i64)(envd_k8s_options *, int64_t);
} opt_def;

/* Setters whose C signature is not (object, scalar). */
static envd_status set_transport(envd_config *cfg, int kind)
{
    return envd_config_set_transport(cfg, (envd_transport_kind)kind);
}
static envd_status set_max_inflight(envd_config *cfg, int n)
{
    return envd_config_set_max_inflight(cfg, n, cfg->fail_fast);
}
static envd_status set_fail_fast(envd_config *cfg, int on)
{
    return envd_config_set_max_inflight(cfg, cfg->max_inflight, on);
}
static envd_status set_streams_per_connection(envd_config *cfg, int n)
{
    return envd_config_set_connection_limits(cfg, n, cfg->max_connections);
}
static envd_status set_max_connections(envd_config *cfg, int n)
{
    return envd_config_set_connection_limits(cfg, cfg->streams_per_connection, n);
}
static envd_status set_files_min_bytes(envd_config *cfg, int64_t n)
{
    return envd_config_set_files_min_rate(cfg, n, cfg->files_min_window_ms);
}
static envd_status set_files_min_window_ms(envd_config *cfg, int64_t ms)
{
    return envd_config_set_files_min_rate(cfg, cfg->files_min_bytes, ms);
}
static envd_status set_k8s_source(envd_k8s_options *o, int source)
{
    return envd_k8s_options_set_source(o, (envd_k8s_source)source);
}

static const enum_word TRANSPORTS[] = {{"grpc", ENVD_TRANSPORT_GRPC},
                                       {"connect", ENVD_TRANSPORT_CONNECT},
                                       {"auto", ENVD_TRANSPORT_AUTO},
                                       {NULL, 0}};
static const enum_word SOURCES[] = {{"auto", ENVD_K8S_SOURCE_AUTO},
                                    {"kubeconfig", ENVD_K8S_SOURCE_KUBECONFIG},
                                    {"in-cluster", ENVD_K8S_SOURCE_IN_CLUSTER},
                                    {"in_cluster", ENVD_K8S_SOURCE_IN_CLUSTER},
                                    {NULL, 0}};

#define CFG(k, kd, field, fn) {.key = k, .kind = kd, .field = fn}
#define K8S(k, kd, field, fn) {.k8s = 1, .key = k, .kind = kd, .field = fn}

/* In the order they are applied (user before auth_header: each replaces
 * what the other implies; max_inflight before fail_fast). */
static const opt_def OPTS[] = {
    CFG("domain", K_STR, cfg_str, envd_config_set_domain),
    CFG("scheme", K_STR, cfg_str, envd_config_set_scheme),
    CFG("runtime_token", K_STR, cfg_str, envd_config_set_runtime_token),
    CFG("runtime_port", K_INT, cfg_int, envd_config_set_runtime_port),
    CFG("api_key", K_STR, cfg_str, envd_config_set_api_key),
    CFG("user", K_STR, cfg_str, envd_config_set_user),
    CFG("auth_header", K_STR, cfg_str, envd_config_set_auth_header),
    CFG("sandbox_base_url", K_STR, cfg_str, envd_config_set_sandbox_base_url),
    CFG("code_port", K_INT, cfg_int, envd_config_set_code_port),
    CFG("code_base_url", K_STR, cfg_str, envd_config_set_code_base_url),
    CFG("ca_file", K_PATH, cfg_str, envd_config_set_ca_file),
    CFG("envd_version", K_STR, cfg_str, envd_config_set_envd_version),
    CFG("request_timeout_ms", K_INT, cfg_i64, envd_config_set_request_timeout_ms),
    {.key = "transport",
     .kind = K_ENUM,
     .words = TRANSPORTS,
     .expect = "grpc, connect or auto",
     .cfg_int = set_transport},
    CFG("h2c", K_BOOL, cfg_int, envd_config_set_h2c),
    CFG("keepalive_s", K_INT, cfg_int, envd_config_set_keepalive_s),
    CFG("idle_timeout_ms", K_INT, cfg_i64, envd_config_set_idle_timeout_ms),
    CFG("workers", K_INT, cfg_int, envd_config_set_workers),
    CFG("max_inflight", K_INT, cfg_int, set_max_inflight),
    CFG("fail_fast", K_BOOL, cfg_int, set_fail_fast),
    CFG("retries", K_INT, cfg_int, envd_config_set_retries),
    CFG("max_message_bytes", K_INT, cfg_i64, envd_config_set_max_message_bytes),
    CFG("max_list_entries", K_INT, cfg_i64, envd_config_set_max_list_entries),
    CFG("files_min_bytes", K_INT, cfg_i64, set_files_min_bytes),
    CFG("files_min_window_ms", K_INT, cfg_i64, set_files_min_window_ms),
    CFG("streams_per_connection", K_INT, cfg_int, set_streams_per_connection),
    CFG("max_connections", K_INT, cfg_int, set_max_connections),
    {.k8s = 1,
     .key = "source",
     .kind = K_ENUM,
     .words = SOURCES,
     .expect = "auto, kubeconfig or in-cluster",
     .k8s_int = set_k8s_source},
    K8S("kubeconfig", K_PATHLIST, k8s_str, envd_k8s_options_set_kubeconfig),
    K8S("context", K_STR, k8s_str, envd_k8s_options_set_context),
    K8S("in_cluster_dir", K_PATH, k8s_str, envd_k8s_options_set_in_cluster_dir),
    K8S("timeout_ms", K_INT, k8s_i64, envd_k8s_options_set_timeout_ms),
    K8S("require_running", K_BOOL, k8s_int, envd_k8s_options_set_require_running),
};

#define N_OPTS (sizeof(OPTS) / sizeof(OPTS[0]))

/* a and b are the same key, '-' read as '_' (b may be NULL). */
static int same_key(const char *a, const char *b)
{
    for (; b && *a && *b; a++, b++)
        if (*a != *b && !(strchr("-_", *a) && strchr("-_", *b)))
            return 0;
    return b && *a == *b;
}

static const opt_def *find_opt(int k8s, const char *key)
{
    for (size_t i = 0; i < N_OPTS; i++)
        if (OPTS[i].k8s == k8s && same_key(OPTS[i].key, key))
            return &OPTS[i];
    return NULL;
}

/* A value read from the file, with where it was (for errors found when it
 * is applied). */
typedef struct val {
    int set;
    int layered; /* set by the environment overlay */
    char *s;
    int64_t i;
    const envd_yaml *y;
    yaml_node_t *node;
    const char *layer; /* as ctx.layer when read */
} val;

typedef struct header_at {
    yaml_node_t *key, *value;
    const char *layer;
} header_at;

typedef struct ctx {
    envd_yaml y;
    char *dir;
    val v[N_OPTS];
    envd_kvlist headers; /* merged ignoring case, first spelling kept */
    envd_buf header_at;  /* header_at[headers.n]: where each was written */
    struct envd_sbx_own *sbx;
    size_t n_sbx;
    yaml_node_t *environments;
    char *default_env;
    const char *layer; /* "" or " (environment 'x')" for messages */
    int no_expand;     /* checking an overlay not in use: leave ${...} alone */
} ctx;

static void entry_clear(struct envd_sbx_own *e)
{
    free(e->name);
    free(e->id);
    free(e->k8s_ns);
    free(e->k8s_name);
    free(e->runtime_token);
    memset(e, 0, sizeof(*e));
}

static void ctx_free(ctx *cx)
{
    envd_yaml_free(&cx->y);
    free(cx->dir);
    for (size_t i = 0; i < N_OPTS; i++)
        free(cx->v[i].s);
    envd_kvlist_free(&cx->headers);
    envd_buf_free(&cx->header_at);
    for (size_t i = 0; i < cx->n_sbx; i++)
        entry_clear(&cx->sbx[i]);
    free(cx->sbx);
    free(cx->default_env);
}

/* ------------------------------------------------------------- scalars */

/* One ${...} reference starting at p ("${"), appended to out; *end gets the
 * character after it. */
static envd_status expand_ref(ctx *cx, yaml_node_t *n, const char *in, const char *p,
                              const char **end, envd_buf *out, envd_error **err)
{
    const char *close = strchr(p + 2, '}');
    if (!close) {
        *err = envd_yaml_error(&cx->y, n, "unterminated ${ in '%s'", in);
        return ENVD_E_CONFIG;
    }
    char *name = envd_strndup(p + 2, (size_t)(close - p - 2));
    if (!name)
        return ENVD_E_NOMEM;
    char *dflt = strstr(name, ":-");
    if (dflt) {
        *dflt = 0;
        dflt += 2;
    }
    int ok = *name != 0;
    for (char *q = name; *q && ok; q++)
        ok = isalnum((unsigned char)*q) || *q == '_';
    const char *v = ok ? getenv(name) : NULL;
    if (!ok || (!v && !dflt)) {
        *err = envd_yaml_error(&cx->y, n,
                               ok ? "environment variable %s is not set"
                                  : "bad variable reference ${%s}",
                               name);
        free(name);
        return ENVD_E_CONFIG;
    }
    if (!v || (!*v && dflt))
        v = dflt;
    int rc = envd_buf_append_str(out, v);
    free(name);
    *end = close + 1;
    return rc ? ENVD_E_NOMEM : ENVD_OK;
}

/* ${VAR}, ${VAR:-default} and $$. */
static envd_status expand(ctx *cx, yaml_node_t *n, const char *in, char **out, envd_error **err)
{
    envd_buf b = {0};
    envd_status st = ENVD_OK;
    for (const char *p = in; *p && st == ENVD_OK;) {
        if (!cx->no_expand && p[0] == '$' && p[1] == '$') {
            st = envd_buf_append(&b, "$", 1) ? ENVD_E_NOMEM : ENVD_OK;
            p += 2;
        } else if (!cx->no_expand && p[0] == '$' && p[1] == '{') {
            st = expand_ref(cx, n, in, p, &p, &b, err);
        } else {
            st = envd_buf_append(&b, p, 1) ? ENVD_E_NOMEM : ENVD_OK;
            p++;
        }
    }
    if (st == ENVD_OK && !(*out = envd_buf_take(&b, NULL)))
        st = ENVD_E_NOMEM;
    envd_buf_free(&b);
    return st;
}

static envd_status get_string(ctx *cx, yaml_node_t *n, const char *key, char **out,
                              envd_error **err)
{
    if (!n || n->type != YAML_SCALAR_NODE || envd_yaml_is_null(n)) {
        *err = envd_yaml_error(&cx->y, n, "%s%s: expected a string, got %s", key, cx->layer,
                               envd_yaml_describe(n));
        return ENVD_E_CONFIG;
    }
    return expand(cx, n, envd_yaml_text(n), out, err);
}

/* ~/ and relative paths (to the file's directory), appended to out. */
static envd_status resolve_path(ctx *cx, yaml_node_t *n, const char *p, envd_buf *out,
                                envd_error **err)
{
    int rc;
    if (p[0] == '~' && (p[1] == '/' || !p[1])) {
        const char *home = getenv("HOME");
        if (!home || !*home) {
            *err = envd_yaml_error(&cx->y, n, "'%s': ~ used but $HOME is not set", p);
            return ENVD_E_CONFIG;
        }
        rc = envd_buf_appendf(out, "%s%s", home, p + 1);
    } else if (p[0] == '/') {
        rc = envd_buf_append_str(out, p);
    } else {
        rc = envd_buf_appendf(out, "%s/%s", cx->dir, p);
    }
    return rc ? ENVD_E_NOMEM : ENVD_OK;
}

/* A path, or a ':'-separated list of them when list; "" stays "". */
static envd_status get_paths(ctx *cx, yaml_node_t *n, const char *shown, int list, char **out,
                             envd_error **err)
{
    char *raw = NULL;
    envd_status st = get_string(cx, n, shown, &raw, err);
    envd_buf acc = {0};
    char *save = NULL;
    for (char *p = st == ENVD_OK ? (list ? strtok_r(raw, ":", &save) : raw) : NULL;
         p && *p && st == ENVD_OK; p = list ? strtok_r(NULL, ":", &save) : NULL) {
        if (acc.len && envd_buf_append(&acc, ":", 1))
            st = ENVD_E_NOMEM;
        else
            st = resolve_path(cx, n, p, &acc, err);
    }
    free(raw);
    if (st == ENVD_OK && !(*out = envd_buf_take(&acc, NULL)))
        st = ENVD_E_NOMEM;
    envd_buf_free(&acc);
    return st;
}

/* Reads n as d's YAML type into (*s, *iv). No range checks: the setter
 * does those when the value is applied. */
static envd_status read_typed(ctx *cx, const opt_def *d, const char *shown, yaml_node_t *n,
                              char **s, int64_t *iv, envd_error **err)
{
    int bv = 0;
    switch (d->kind) {
    case K_INT:
        if (envd_yaml_as_int(n, iv) == 0)
            return ENVD_OK;
        *err = envd_yaml_error(&cx->y, n, "%s%s: expected an integer, got %s", shown, cx->layer,
                               envd_yaml_describe(n));
        return ENVD_E_CONFIG;
    case K_BOOL:
        if (envd_yaml_as_bool(n, &bv) == 0) {
            *iv = bv;
            return ENVD_OK;
        }
        *err = envd_yaml_error(&cx->y, n, "%s%s: expected true or false, got %s", shown,
                               cx->layer, envd_yaml_describe(n));
        return ENVD_E_CONFIG;
    case K_STR: return get_string(cx, n, shown, s, err);
    case K_PATH: return get_paths(cx, n, shown, 0, s, err);
    case K_PATHLIST: return get_paths(cx, n, shown, 1, s, err);
    case K_ENUM: break;
    }
    envd_status st = get_string(cx, n, shown, s, err);
    if (st != ENVD_OK || cx->no_expand)
        return st;
    const enum_word *w = d->words;
    while (w->word && strcmp(w->word, *s) != 0)
        w++;
    if (w->word) {
        *iv = w->value;
        return ENVD_OK;
    }
    *err = envd_yaml_error(&cx->y, n, "%s%s: must be %s, got '%s'", shown, cx->layer, d->expect,
                           *s);
    return ENVD_E_CONFIG;
}

static envd_status read_value(ctx *cx, const opt_def *d, const char *shown, yaml_node_t *n,
                              envd_error **err)
{
    val *v = &cx->v[d - OPTS];
    char *s = NULL;
    int64_t iv = 0;
    envd_status st = read_typed(cx, d, shown, n, &s, &iv, err);
    if (st != ENVD_OK) {
        free(s);
        return st;
    }
    if (cx->no_expand && s && strstr(s, "${")) {
        free(s); /* types checked; the value cannot be until it is expanded */
        return ENVD_OK;
    }
    free(v->s);
    v->s = s;
    v->i = iv;
    v->set = 1;
    /* user and auth_header each replace what the other implies: an overlay
     * setting one drops the other from the base. */
    int is_user = strcmp(d->key, "user") == 0;
    if (cx->layer[0] && !d->k8s && (is_user || strcmp(d->key, "auth_header") == 0)) {
        val *other = &cx->v[find_opt(0, is_user ? "auth_header" : "user") - OPTS];
        if (other->set && other->layered == 0) {
            free(other->s);
            other->s = NULL;
            other->set = 0;
        }
    }
    v->layered = cx->layer[0] != 0;
    v->y = &cx->y;
    v->node = n;
    v->layer = cx->layer;
    return ENVD_OK;
}
/* Orders keys as same_key matches them ('-' and '_' alike), then by
 * position, so equal keys sit together, earliest first. */
typedef struct key_ref {
    const char *text;
    size_t idx;
} key_ref;

static int key_ref_cmp(const void *pa, const void *pb)
{
    const key_ref *a = pa, *b = pb;
    const unsigned char *x = (const unsigned char *)a->text, *y = (const unsigned char *)b->text;
    for (;; x++, y++) {
        unsigned cx = *x == '-' ? '_' : *x, cy = *y == '-' ? '_' : *y;
        if (cx != cy)
            return cx < cy ? -1 : 1;
        if (!cx)
            break;
    }
    return a->idx < b->idx ? -1 : a->idx > b->idx;
}

/* Checks map is a mapping of scalar keys without duplicates. Sorted, not
 * pairwise: a file of 20,000 keys took 9 s when every key was compared with
 * every earlier one. The duplicate reported is the earliest in the file that
 * repeats a key, as a reader scanning top down would find it. */
static envd_status check_map(ctx *cx, yaml_node_t *map, const char *what, envd_error **err)
{
    if (!map || map->type != YAML_MAPPING_NODE) {
        *err = envd_yaml_error(&cx->y, map, "%s%s: expected a mapping, got %s", what, cx->layer,
                               envd_yaml_describe(map));
        return ENVD_E_CONFIG;
    }
    size_t n = envd_yaml_len(map);
    key_ref *refs = n > 1 ? envd_malloc(n * sizeof *refs) : NULL;
    if (n > 1 && !refs)
        return ENVD_E_NOMEM;
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *k = envd_yaml_key_at(&cx->y, map, i);
        if (!envd_yaml_text(k)) {
            free(refs);
            *err = envd_yaml_error(&cx->y, k, "%s%s: keys must be strings", what, cx->layer);
            return ENVD_E_CONFIG;
        }
        if (refs)
            refs[i] = (key_ref){envd_yaml_text(k), i};
    }
    size_t dup = n, first = 0;
    if (refs)
        qsort(refs, n, sizeof *refs, key_ref_cmp);
    for (size_t i = 1; refs && i < n; i++)
        if (same_key(refs[i].text, refs[i - 1].text) && refs[i].idx < dup) {
            /* the second of its run (later ones come after it in the file) */
            dup = refs[i].idx;
            first = refs[i - 1].idx;
        }
    free(refs);
    if (dup == n)
        return ENVD_OK;
    yaml_node_t *k = envd_yaml_key_at(&cx->y, map, dup);
    yaml_node_t *k2 = envd_yaml_key_at(&cx->y, map, first);
    *err = envd_yaml_error(&cx->y, k, "duplicate key '%s'%s (first at line %zu)", envd_yaml_text(k),
                           cx->layer, k2->start_mark.line + 1);
    return ENVD_E_CONFIG;
}

/* -------------------------------------------------------------- sections */

/* Collected here, checked when applied (by envd_config_set_header). */
static envd_status read_headers(ctx *cx, yaml_node_t *map, envd_error **err)
{
    envd_status st = check_map(cx, map, "headers", err);
    for (size_t i = 0; st == ENVD_OK && i < envd_yaml_len(map); i++) {
        yaml_node_t *kn = envd_yaml_key_at(&cx->y, map, i);
        yaml_node_t *vn = envd_yaml_value_at(&cx->y, map, i);
        const char *name = envd_yaml_text(kn);
        char *value = NULL;
        char shown[300];
        snprintf(shown, sizeof(shown), "headers.%s", name);
        if ((st = get_string(cx, vn, shown, &value, err)) != ENVD_OK)
            break;
        if (cx->no_expand && strstr(value, "${"))
            value[0] = 0; /* the name can be checked now, the value only once expanded */
        size_t j = envd_kvlist_find(&cx->headers, name, ENVD_KV_NOCASE);
        header_at at = {kn, vn, cx->layer};
        if (envd_kvlist_set(&cx->headers, name, value, ENVD_KV_NOCASE) != 0 ||
            (j == cx->header_at.len / sizeof(at) &&
             envd_buf_append(&cx->header_at, &at, sizeof(at)) != 0))
            st = ENVD_E_NOMEM;
        else
            memcpy(cx->header_at.data + j * sizeof(at), &at, sizeof(at));
        free(value);
    }
    return st;
}

static envd_status read_k8s(ctx *cx, yaml_node_t *map, envd_error **err)
{
    envd_status st = check_map(cx, map, "kubernetes", err);
    for (size_t i = 0; st == ENVD_OK && i < envd_yaml_len(map); i++) {
        yaml_node_t *k = envd_yaml_key_at(&cx->y, map, i);
        const char *key = envd_yaml_text(k); /* a string: check_map saw to it */
        const opt_def *d = find_opt(1, key);
        if (!d) {
            *err = envd_yaml_error(&cx->y, k, "unknown key 'kubernetes.%s'%s", envd_yaml_text(k),
                                   cx->layer);
            st = ENVD_E_CONFIG;
        } else {
            char shown[128];
            snprintf(shown, sizeof(shown), "kubernetes.%s", d->key);
            st = read_value(cx, d, shown, envd_yaml_value_at(&cx->y, map, i), err);
        }
    }
    return st;
}

static envd_status read_entry(ctx *cx, yaml_node_t *item, size_t idx, struct envd_sbx_own *e,
                              envd_error **err)
{
    char what[64];
    snprintf(what, sizeof(what), "sandboxes[%zu]", idx);
    envd_status st = check_map(cx, item, what, err);
    yaml_node_t *k8s_node = NULL, *id_node = NULL;
    for (size_t i = 0; st == ENVD_OK && i < envd_yaml_len(item); i++) {
        yaml_node_t *k = envd_yaml_key_at(&cx->y, item, i);
        yaml_node_t *vn = envd_yaml_value_at(&cx->y, item, i);
        const char *key = envd_yaml_text(k); /* a string: check_map saw to it */
        char shown[128];
        snprintf(shown, sizeof(shown), "%s.%s", what, key);
        char **slot = same_key("name", key)            ? &e->name
                      : same_key("id", key)            ? &e->id
                      : same_key("runtime_token", key) ? &e->runtime_token
                                                          : NULL;
        if (slot) {
            free(*slot);
            *slot = NULL;
            st = get_string(cx, vn, shown, slot, err);
            if (slot == &e->id)
                id_node = vn;
        } else if (strcmp(key, "k8s") == 0) {
            char *ref = NULL;
            k8s_node = vn;
            st = get_string(cx, vn, shown, &ref, err);
            if (st == ENVD_OK) {
                char *slash = strchr(ref, '/');
                if (slash && slash != ref && slash[1] && !strchr(slash + 1, '/')) {
                    e->k8s_ns = envd_strndup(ref, (size_t)(slash - ref));
                    e->k8s_name = envd_strdup(slash + 1);
                } else if (!slash && *ref) {
                    e->k8s_name = envd_strdup(ref);
                } else {
                    *err = envd_yaml_error(
                        &cx->y, vn, "%s: expected NAMESPACE/NAME or NAME, got '%s'", shown, ref);
                    st = ENVD_E_CONFIG;
                }
                if (st == ENVD_OK && (!e->k8s_name || (slash && !e->k8s_ns)))
                    st = ENVD_E_NOMEM;
            }
            free(ref);
        } else {
            *err = envd_yaml_error(&cx->y, k,
                                   "unknown key '%s' in %s%s (expected name, id, k8s, "
                                   "runtime_token)",
                                   envd_yaml_text(k), what, cx->layer);
            st = ENVD_E_CONFIG;
        }
    }
    if (st != ENVD_OK)
        return st;
    if (!e->name || !*e->name) {
        *err = envd_yaml_error(&cx->y, item, "%s%s: every sandbox needs a name", what, cx->layer);
        return ENVD_E_CONFIG;
    }
    if (!!e->id == !!e->k8s_name) {
        *err =
            envd_yaml_error(&cx->y, e->id ? k8s_node : item,
                            "sandbox '%s'%s: give exactly one of id and k8s", e->name, cx->layer);
        return ENVD_E_CONFIG;
    }
    if (e->id && !*e->id) {
        *err = envd_yaml_error(&cx->y, id_node, "sandbox '%s'%s: empty id", e->name, cx->layer);
        return ENVD_E_CONFIG;
    }
    return ENVD_OK;
}

static envd_status read_sandboxes(ctx *cx, yaml_node_t *seq, envd_error **err)
{
    if (!seq || seq->type != YAML_SEQUENCE_NODE) {
        *err = envd_yaml_error(&cx->y, seq, "sandboxes%s: expected a list, got %s", cx->layer,
                               envd_yaml_describe(seq));
        return ENVD_E_CONFIG;
    }
    size_t first_new = cx->n_sbx; /* names must be unique within one layer */
    for (size_t i = 0; i < envd_yaml_len(seq); i++) {
        yaml_node_t *item = envd_yaml_item_at(&cx->y, seq, i);
        struct envd_sbx_own e;
        memset(&e, 0, sizeof(e));
        envd_status st = read_entry(cx, item, i, &e, err);
        if (st != ENVD_OK) {
            entry_clear(&e);
            return st;
        }
        size_t j = 0;
        while (j < cx->n_sbx && strcmp(cx->sbx[j].name, e.name) != 0)
            j++;
        if (j < cx->n_sbx && j >= first_new) {
            *err = envd_yaml_error(&cx->y, item, "sandbox name '%s' is used twice%s", e.name,
                                   cx->layer);
            entry_clear(&e);
            return ENVD_E_CONFIG;
        }
        if (j < cx->n_sbx) { /* an overlay replaces the base entry */
            entry_clear(&cx->sbx[j]);
            cx->sbx[j] = e;
            continue;
        }
        struct envd_sbx_own *ns = envd_realloc(cx->sbx, (cx->n_sbx + 1) * sizeof(*ns));
        if (!ns) {
            entry_clear(&e);
            return ENVD_E_NOMEM;
        }
        cx->sbx = ns;
        cx->sbx[cx->n_sbx++] = e;
    }
    return ENVD_OK;
}

static envd_status read_layer(ctx *cx, yaml_node_t *map, int overlay, envd_error **err)
{
    envd_status st = check_map(cx, map, overlay ? "environment" : "the file", err);
    for (size_t i = 0; st == ENVD_OK && i < envd_yaml_len(map); i++) {
        yaml_node_t *k = envd_yaml_key_at(&cx->y, map, i);
        yaml_node_t *vn = envd_yaml_value_at(&cx->y, map, i);
        const char *key = envd_yaml_text(k); /* a string: check_map saw to it */
        const opt_def *d = find_opt(0, key);
        if (d) {
            st = read_value(cx, d, d->key, vn, err);
        } else if (same_key("headers", key)) {
            st = read_headers(cx, vn, err);
        } else if (same_key("kubernetes", key)) {
            st = read_k8s(cx, vn, err);
        } else if (same_key("sandboxes", key)) {
            st = read_sandboxes(cx, vn, err);
        } else if (!overlay && same_key("environment", key)) {
            st = get_string(cx, vn, "environment", &cx->default_env, err);
        } else if (!overlay && same_key("environments", key)) {
            st = check_map(cx, vn, "environments", err);
            cx->environments = vn;
        } else {
            *err = envd_yaml_error(&cx->y, k, "unknown key '%s'%s", envd_yaml_text(k), cx->layer);
            st = ENVD_E_CONFIG;
        }
    }
    return st;
}

/* ------------------------------------------------------------- applying */

static int sat_int(int64_t v)
{
    return v > INT_MAX ? INT_MAX : v < INT_MIN ? INT_MIN : (int)v;
}

/* Calls d's setter with v; on a refusal *why gets the setter's reason. */
static envd_status call_setter(const opt_def *d, const val *v, envd_config *cfg,
                               envd_k8s_options *k8s, const char **why)
{
    envd_status st;
    if (d->cfg_str)
        st = d->cfg_str(cfg, v->s);
    else if (d->cfg_int)
        st = d->cfg_int(cfg, sat_int(v->i));
    else if (d->cfg_i64)
        st = d->cfg_i64(cfg, v->i);
    else if (d->k8s_str)
        st = d->k8s_str(k8s, v->s);
    else if (d->k8s_int)
        st = d->k8s_int(k8s, sat_int(v->i));
    else
        st = d->k8s_i64(k8s, v->i);
    *why = d->k8s ? envd_k8s_options_last_reason(k8s) : envd_config_last_reason(cfg);
    return st;
}

/* Every value read, through the setters, in table order; then the headers. */
static envd_status apply(ctx *cx, envd_config *cfg, envd_k8s_options *k8s, envd_error **err)
{
    for (size_t t = 0; t < N_OPTS; t++) {
        const opt_def *d = &OPTS[t];
        const val *v = &cx->v[t];
        if (!v->set)
            continue;
        const char *why = NULL;
        envd_status st = call_setter(d, v, cfg, k8s, &why);
        if (st == ENVD_INVALID_ARGUMENT) {
            *err = envd_yaml_error(v->y, v->node, "%s%s%s: %s", d->k8s ? "kubernetes." : "",
                                   d->key, v->layer, why);
            return ENVD_E_CONFIG;
        }
        if (st != ENVD_OK)
            return st;
    }
    const header_at *at = (const header_at *)(void *)cx->header_at.data;
    for (size_t i = 0; i < cx->headers.n; i++) {
        envd_status st = envd_config_set_header(cfg, cx->headers.names[i], cx->headers.values[i]);
        if (st == ENVD_INVALID_ARGUMENT) {
            int bad_name = envd_config_last_bad_arg(cfg) == 1;
            *err = envd_yaml_error(&cx->y, bad_name ? at[i].key : at[i].value, "headers.%s%s: %s",
                                   cx->headers.names[i], at[i].layer,
                                   envd_config_last_reason(cfg));
            return ENVD_E_CONFIG;
        }
        if (st != ENVD_OK)
            return st;
    }
    return ENVD_OK;
}
/* ------------------------------------------------------------------ API */

void envd_config_file_free(envd_config_file *f)
{
    if (!f)
        return;
    free(f->path);
    free(f->environment);
    envd_config_free(f->cfg);
    envd_k8s_options_free(f->k8s);
    for (size_t i = 0; i < f->n_sandboxes; i++)
        entry_clear(&f->own[i]);
    free(f->own);
    free(f->sandboxes);
    free(f);
}


/* ENVD_E_CONFIG naming the environments the file defines, to catch typos. */
static envd_status no_such_environment(ctx *cx, const char *path, const char *env,
                                       envd_error **err)
{
    envd_buf names = {0};
    for (size_t i = 0; i < envd_yaml_len(cx->environments); i++)
        envd_buf_appendf(&names, "%s%s", i ? ", " : "",
                         envd_yaml_text(envd_yaml_key_at(&cx->y, cx->environments, i)));
    *err = envd_error_new(ENVD_E_CONFIG, ENVD_TRANSPORT_NONE, 0,
                          "%s: environment '%s' is not defined (defined: %s)", path, env,
                          names.len ? names.data : "none");
    envd_buf_free(&names);
    return ENVD_E_CONFIG;
}

/* " (environment 'x')": what messages about an overlay add. NULL on out of
 * memory. */
static char *layer_suffix(const char *env)
{
    return envd_strdup_printf(" (environment '%s')", env);
}

/* The overlays not in use are checked too, keys, types and values (through
 * the setters, on a scratch config), so a mistake in one is found before the
 * day it is selected. Their ${VAR}s are not expanded: a value holding one
 * is checked for its type only. */
static envd_status check_unused_overlay(ctx *cx, const char *name, yaml_node_t *ov,
                                        envd_error **err)
{
    ctx scratch;
    memset(&scratch, 0, sizeof(scratch));
    scratch.y = cx->y; /* shared, not owned */
    scratch.dir = cx->dir;
    scratch.no_expand = 1;
    char *lb = layer_suffix(name);
    envd_config *cfg = envd_config_new();
    envd_k8s_options *k8s = envd_k8s_options_new();
    envd_status st = ENVD_E_NOMEM;
    if (cfg && k8s && lb) {
        scratch.layer = lb;
        st = read_layer(&scratch, ov, 1, err);
        if (st == ENVD_OK)
            st = apply(&scratch, cfg, k8s, err);
    }
    envd_config_free(cfg);
    envd_k8s_options_free(k8s);
    scratch.y.loaded = 0;
    scratch.y.path = NULL;
    scratch.dir = NULL;
    ctx_free(&scratch);
    free(lb);
    return st;
}

/* Reads the file's layers into cx: the base, the selected overlay (*env),
 * and checks the others. layer_buf keeps the overlay's message suffix. */
static envd_status read_file(ctx *cx, const char *path, const char *environment,
                             const char **env, char **layer_buf, envd_error **err)
{
    envd_status st = envd_yaml_load_file(&cx->y, path, err);
    if (st != ENVD_OK)
        return st;
    const char *slash = strrchr(path, '/');
    cx->dir = !slash         ? envd_strdup(".")
              : slash == path ? envd_strdup("/")
                              : envd_strndup(path, (size_t)(slash - path));
    if (!cx->dir)
        return ENVD_E_NOMEM;
    yaml_node_t *root = envd_yaml_root(&cx->y);
    if (root && !envd_yaml_is_null(root) && (st = read_layer(cx, root, 0, err)) != ENVD_OK)
        return st;
    *env = environment && *environment ? environment : getenv("ENVD_ENVIRONMENT");
    if (!*env || !**env)
        *env = cx->default_env;
    if (*env && **env) {
        yaml_node_t *overlay = envd_yaml_get(&cx->y, cx->environments, *env);
        if (!overlay)
            return no_such_environment(cx, path, *env, err);
        if (!(*layer_buf = layer_suffix(*env)))
            return ENVD_E_NOMEM;
        cx->layer = *layer_buf;
        if (!envd_yaml_is_null(overlay) && (st = read_layer(cx, overlay, 1, err)) != ENVD_OK)
            return st;
    }
    for (size_t i = 0; i < envd_yaml_len(cx->environments); i++) {
        const char *name = envd_yaml_text(envd_yaml_key_at(&cx->y, cx->environments, i));
        yaml_node_t *ov = envd_yaml_value_at(&cx->y, cx->environments, i);
        if ((*env && strcmp(name, *env) == 0) || envd_yaml_is_null(ov))
            continue;
        if ((st = check_unused_overlay(cx, name, ov, err)) != ENVD_OK)
            return st;
    }
    return ENVD_OK;
}

/* The public view of the loader's entries. */
static envd_status publish_entries(envd_config_file *f)
{
    if (f->n_sandboxes == 0)
        return ENVD_OK;
    f->sandboxes = envd_calloc(f->n_sandboxes, sizeof(*f->sandboxes));
    if (!f->sandboxes)
        return ENVD_E_NOMEM;
    for (size_t i = 0; i < f->n_sandboxes; i++) {
        const struct envd_sbx_own *o = &f->own[i];
        f->sandboxes[i] = (envd_sandbox_entry){o->name, o->id, o->k8s_ns, o->k8s_name,
                                               o->runtime_token};
    }
    return ENVD_OK;
}

static envd_status load(const char *path, const char *environment, envd_config_file **out,
                        envd_error **err)
{
    ctx cx;
    memset(&cx, 0, sizeof(cx));
    cx.layer = "";
    envd_config_file *f = NULL;
    char *layer_buf = NULL;
    const char *env = NULL;
    envd_status st = read_file(&cx, path, environment, &env, &layer_buf, err);
    if (st != ENVD_OK)
        goto out;
    f = envd_calloc(1, sizeof(*f));
    if (!f || !(f->path = envd_strdup(path)) ||
        (env && *env && !(f->environment = envd_strdup(env))) ||
        !(f->cfg = envd_config_new()) || !(f->k8s = envd_k8s_options_new())) {
        st = ENVD_E_NOMEM;
        goto out;
    }
    if ((st = apply(&cx, f->cfg, f->k8s, err)) != ENVD_OK)
        goto out;
    f->own = cx.sbx;
    f->n_sandboxes = cx.n_sbx;
    cx.sbx = NULL;
    cx.n_sbx = 0;
    if ((st = publish_entries(f)) != ENVD_OK)
        goto out;
    *out = f;
    f = NULL;
out:
    envd_config_file_free(f);
    free(layer_buf);
    ctx_free(&cx);
    return st;
}

static envd_status usage(envd_error **err, const char *fn, const char *arg)
{
    if (err)
        *err = envd_error_new(ENVD_E_USAGE, ENVD_TRANSPORT_NONE, 0, "%s: %s must not be NULL", fn,
                              arg);
    return ENVD_E_USAGE;
}

envd_status envd_config_file_load(const char *path, const char *environment, envd_config_file **out,
                                  envd_error **err)
{
    if (err)
        *err = NULL;
    if (out)
        *out = NULL;
    if (!path || !out)
        return usage(err, "envd_config_file_load", !path ? "path" : "out");
    envd_error *e = NULL;
    envd_status st = load(path, environment, out, &e);
    if (st != ENVD_OK && !e)
        e = envd_error_new(st, ENVD_TRANSPORT_NONE, 0, "%s: %s", path, envd_strerror(st));
    if (err)
        *err = e;
    else
        envd_error_free(e);
    return st;
}

envd_status envd_config_load_file(const char *path, envd_config **out, envd_config_file **file,
                                  envd_error **err)
{
    if (err)
        *err = NULL;
    if (file)
        *file = NULL;
    if (out)
        *out = NULL;
    if (!path || !out)
        return usage(err, "envd_config_load_file", !path ? "path" : "out");
    envd_config_file *f = NULL;
    envd_status st = envd_config_file_load(path, NULL, &f, err);
    if (st != ENVD_OK)
        return st;
    if (!(*out = envd_config_dup(f->cfg))) {
        envd_config_file_free(f);
        if (err)
            *err = envd_error_new(ENVD_E_NOMEM, ENVD_TRANSPORT_NONE, 0, "%s: %s", path,
                                  envd_strerror(ENVD_E_NOMEM));
        return ENVD_E_NOMEM;
    }
    if (file)
        *file = f;
    else
        envd_config_file_free(f);
    return ENVD_OK;
}

const envd_config *envd_config_file_config(const envd_config_file *f)
{
    return f ? f->cfg : NULL;
}
const envd_k8s_options *envd_config_file_k8s_options(const envd_config_file *f)
{
    return f ? f->k8s : NULL;
}
const envd_sandbox_entry *envd_config_file_sandboxes(const envd_config_file *f, size_t *n)
{
    if (n)
        *n = f ? f->n_sandboxes : 0;
    return f && f->n_sandboxes ? f->sandboxes : NULL;
}
const envd_sandbox_entry *envd_config_file_sandbox_find(const envd_config_file *f, const char *name)
{
    for (size_t i = 0; f && name && i < f->n_sandboxes; i++)
        if (strcmp(f->sandboxes[i].name, name) == 0)
            return &f->sandboxes[i];
    return NULL;
}
