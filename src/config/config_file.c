/* The YAML configuration file: every envd_config option, the Kubernetes
 * options, named sandboxes, environment overlays, ${VAR} expansion. Strict:
 * unknown keys, duplicate keys and wrong types are errors at
 * file:line:column. */
#include "config/config_file.h"
#include "config/config.h"
#include "config/k8s_options.h"
#include "config/yaml_doc.h"
#include "core/error.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ------------------------------------------------------- option tables */

enum kind { K_STR, K_PATH, K_PATHLIST, K_INT, K_BOOL };

enum {
    O_DOMAIN,
    O_SCHEME,
    O_RUNTIME_TOKEN,
    O_RUNTIME_PORT,
    O_API_KEY,
    O_USER,
    O_AUTH_HEADER,
    O_SANDBOX_BASE_URL,
    O_CA_FILE,
    O_REQUEST_TIMEOUT_MS,
    O_TRANSPORT,
    O_KEEPALIVE_S,
    O_IDLE_TIMEOUT_MS,
    O_WORKERS,
    O_MAX_INFLIGHT,
    O_FAIL_FAST,
    /* kubernetes: */
    O_K_SOURCE,
    O_K_KUBECONFIG,
    O_K_CONTEXT,
    O_K_IN_CLUSTER_DIR,
    O_K_TIMEOUT_MS,
    O_K_REQUIRE_RUNNING,
    O_COUNT
};

typedef struct opt_def {
    const char *key;
    enum kind kind;
    int id;
} opt_def;

/* In the order they are applied (user before auth_header: each replaces
 * what the other implies). */
static const opt_def TOP[] = {
    {"domain", K_STR, O_DOMAIN},
    {"scheme", K_STR, O_SCHEME},
    {"runtime_token", K_STR, O_RUNTIME_TOKEN},
    {"runtime_port", K_INT, O_RUNTIME_PORT},
    {"api_key", K_STR, O_API_KEY},
    {"user", K_STR, O_USER},
    {"auth_header", K_STR, O_AUTH_HEADER},
    {"sandbox_base_url", K_STR, O_SANDBOX_BASE_URL},
    {"ca_file", K_PATH, O_CA_FILE},
    {"request_timeout_ms", K_INT, O_REQUEST_TIMEOUT_MS},
    {"transport", K_STR, O_TRANSPORT},
    {"keepalive_s", K_INT, O_KEEPALIVE_S},
    {"idle_timeout_ms", K_INT, O_IDLE_TIMEOUT_MS},
    {"workers", K_INT, O_WORKERS},
    {"max_inflight", K_INT, O_MAX_INFLIGHT},
    {"fail_fast", K_BOOL, O_FAIL_FAST},
};

static const opt_def K8S[] = {
    {"source", K_STR, O_K_SOURCE},         {"kubeconfig", K_PATHLIST, O_K_KUBECONFIG},
    {"context", K_STR, O_K_CONTEXT},       {"in_cluster_dir", K_PATH, O_K_IN_CLUSTER_DIR},
    {"timeout_ms", K_INT, O_K_TIMEOUT_MS}, {"require_running", K_BOOL, O_K_REQUIRE_RUNNING},
};

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

/* A value read from the file, with where it was (for errors found when it
 * is applied). */
typedef struct val {
    int set;
    int layered; /* set by the environment overlay */
    char *s;
    int64_t i;
    const envd_yaml *y;
    yaml_node_t *node;
} val;

typedef struct header_val {
    char *name, *value;
} header_val;

typedef struct ctx {
    envd_yaml y;
    char *dir;
    val v[O_COUNT];
    header_val *headers;
    size_t n_headers;
    struct envd_sandbox_entry *sbx;
    size_t n_sbx;
    yaml_node_t *environments;
    char *default_env;
    const char *layer; /* "" or " (environment 'x')" for messages */
    int no_expand;     /* checking an overlay not in use: leave ${...} alone */
} ctx;

static void entry_clear(struct envd_sandbox_entry *e)
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
    for (int i = 0; i < O_COUNT; i++)
        free(cx->v[i].s);
    for (size_t i = 0; i < cx->n_headers; i++) {
        free(cx->headers[i].name);
        free(cx->headers[i].value);
    }
    free(cx->headers);
    for (size_t i = 0; i < cx->n_sbx; i++)
        entry_clear(&cx->sbx[i]);
    free(cx->sbx);
    free(cx->default_env);
}

/* ------------------------------------------------------------- scalars */

/* ${VAR}, ${VAR:-default} and $$. */
static envd_status expand(ctx *cx, yaml_node_t *n, const char *in, char **out, envd_error **err)
{
    if (cx->no_expand)
        return (*out = strdup(in)) ? ENVD_OK : ENVD_E_NOMEM;
    size_t cap = strlen(in) + 1, len = 0;
    char *buf = malloc(cap);
    if (!buf)
        return ENVD_E_NOMEM;
    for (const char *p = in; *p;) {
        const char *piece = p;
        size_t plen = 1;
        char *owned = NULL;
        if (p[0] == '$' && p[1] == '$') {
            plen = 1;
            p += 2;
        } else if (p[0] == '$' && p[1] == '{') {
            const char *end = strchr(p + 2, '}');
            if (!end) {
                free(buf);
                *err = envd_yaml_error(&cx->y, n, "unterminated ${ in '%s'", in);
                return ENVD_E_CONFIG;
            }
            char *name = strndup(p + 2, (size_t)(end - p - 2));
            if (!name) {
                free(buf);
                return ENVD_E_NOMEM;
            }
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
                free(buf);
                return ENVD_E_CONFIG;
            }
            if (!v || (!*v && dflt))
                v = dflt;
            owned = strdup(v);
            free(name);
            if (!owned) {
                free(buf);
                return ENVD_E_NOMEM;
            }
            piece = owned;
            plen = strlen(owned);
            p = end + 1;
        } else {
            p++;
        }
        if (len + plen + 1 > cap) {
            while (len + plen + 1 > cap)
                cap *= 2;
            char *nb = realloc(buf, cap);
            if (!nb) {
                free(owned);
                free(buf);
                return ENVD_E_NOMEM;
            }
            buf = nb;
        }
        memcpy(buf + len, piece, plen);
        len += plen;
        free(owned);
    }
    buf[len] = 0;
    *out = buf;
    return ENVD_OK;
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

/* ~/ and relative paths (to the file's directory). */
static envd_status resolve_path(ctx *cx, yaml_node_t *n, char *p, char **out, envd_error **err)
{
    char *r = NULL;
    if (p[0] == '~' && (p[1] == '/' || !p[1])) {
        const char *home = getenv("HOME");
        if (!home || !*home) {
            *err = envd_yaml_error(&cx->y, n, "'%s': ~ used but $HOME is not set", p);
            return ENVD_E_CONFIG;
        }
        if (asprintf(&r, "%s%s", home, p + 1) < 0)
            r = NULL;
    } else if (p[0] == '/') {
        r = strdup(p);
    } else if (asprintf(&r, "%s/%s", cx->dir, p) < 0) {
        r = NULL;
    }
    if (!r)
        return ENVD_E_NOMEM;
    *out = r;
    return ENVD_OK;
}

static envd_status read_value(ctx *cx, const opt_def *d, const char *shown, yaml_node_t *n,
                              envd_error **err)
{
    val *v = &cx->v[d->id];
    char *s = NULL;
    envd_status st = ENVD_OK;
    int64_t iv = 0;
    int bv = 0;
    switch (d->kind) {
    case K_INT:
        if (envd_yaml_as_int(n, &iv) != 0) {
            *err = envd_yaml_error(&cx->y, n, "%s%s: expected an integer, got %s", shown, cx->layer,
                                   envd_yaml_describe(n));
            return ENVD_E_CONFIG;
        }
        break;
    case K_BOOL:
        if (envd_yaml_as_bool(n, &bv) != 0) {
            *err = envd_yaml_error(&cx->y, n, "%s%s: expected true or false, got %s", shown,
                                   cx->layer, envd_yaml_describe(n));
            return ENVD_E_CONFIG;
        }
        iv = bv;
        break;
    case K_STR: st = get_string(cx, n, shown, &s, err); break;
    case K_PATH: {
        char *raw = NULL;
        st = get_string(cx, n, shown, &raw, err);
        if (st == ENVD_OK && *raw)
            st = resolve_path(cx, n, raw, &s, err);
        else if (st == ENVD_OK)
            s = strdup("");
        free(raw);
        break;
    }
    case K_PATHLIST: {
        char *raw = NULL;
        st = get_string(cx, n, shown, &raw, err);
        size_t cap = 1, len = 0;
        char *acc = st == ENVD_OK ? calloc(1, 1) : NULL;
        if (st == ENVD_OK && !acc)
            st = ENVD_E_NOMEM;
        char *save = NULL;
        for (char *p = st == ENVD_OK ? strtok_r(raw, ":", &save) : NULL; p && st == ENVD_OK;
             p = strtok_r(NULL, ":", &save)) {
            char *one = NULL;
            st = resolve_path(cx, n, p, &one, err);
            if (st != ENVD_OK)
                break;
            size_t ol = strlen(one);
            char *na = realloc(acc, cap + ol + 1);
            if (!na) {
                free(one);
                st = ENVD_E_NOMEM;
                break;
            }
            acc = na;
            if (len)
                acc[len++] = ':';
            memcpy(acc + len, one, ol + 1);
            len += ol;
            cap += ol + 1;
            free(one);
        }
        free(raw);
        if (st != ENVD_OK)
            free(acc);
        else
            s = acc;
        break;
    }
    }
    if (st != ENVD_OK)
        return st;
    free(v->s);
    v->s = s;
    v->i = iv;
    v->set = 1;
    /* user and auth_header each replace what the other implies: an overlay
     * setting one drops the other from the base. */
    if (cx->layer[0] && (d->id == O_USER || d->id == O_AUTH_HEADER)) {
        val *other = &cx->v[d->id == O_USER ? O_AUTH_HEADER : O_USER];
        if (other->set && other->layered == 0) {
            free(other->s);
            other->s = NULL;
            other->set = 0;
        }
    }
    v->layered = cx->layer[0] != 0;
    v->y = &cx->y;
    v->node = n;
    return ENVD_OK;
}

/* The key as written, with '-' read as '_'; NULL if not a scalar. */
static char *norm_key(yaml_node_t *k)
{
    const char *t = envd_yaml_text(k);
    if (!t)
        return NULL;
    char *r = strdup(t);
    for (char *p = r; p && *p; p++)
        if (*p == '-')
            *p = '_';
    return r;
}

/* Checks map is a mapping of scalar keys without duplicates. */
static envd_status check_map(ctx *cx, yaml_node_t *map, const char *what, envd_error **err)
{
    if (!map || map->type != YAML_MAPPING_NODE) {
        *err = envd_yaml_error(&cx->y, map, "%s%s: expected a mapping, got %s", what, cx->layer,
                               envd_yaml_describe(map));
        return ENVD_E_CONFIG;
    }
    size_t n = envd_yaml_len(map);
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *k = envd_yaml_key_at(&cx->y, map, i);
        if (!envd_yaml_text(k)) {
            *err = envd_yaml_error(&cx->y, k, "%s%s: keys must be strings", what, cx->layer);
            return ENVD_E_CONFIG;
        }
        char *ki = norm_key(k);
        for (size_t j = 0; ki && j < i; j++) {
            yaml_node_t *k2 = envd_yaml_key_at(&cx->y, map, j);
            char *kj = norm_key(k2);
            int same = kj && strcmp(ki, kj) == 0;
            free(kj);
            if (same) {
                *err = envd_yaml_error(&cx->y, k, "duplicate key '%s'%s (first at line %zu)",
                                       envd_yaml_text(k), cx->layer, k2->start_mark.line + 1);
                free(ki);
                return ENVD_E_CONFIG;
            }
        }
        free(ki);
    }
    return ENVD_OK;
}

/* -------------------------------------------------------------- sections */

static envd_status read_headers(ctx *cx, yaml_node_t *map, envd_error **err)
{
    envd_status st = check_map(cx, map, "headers", err);
    for (size_t i = 0; st == ENVD_OK && i < envd_yaml_len(map); i++) {
        const char *name = envd_yaml_text(envd_yaml_key_at(&cx->y, map, i));
        yaml_node_t *vn = envd_yaml_value_at(&cx->y, map, i);
        char *value = NULL;
        char shown[300];
        snprintf(shown, sizeof(shown), "headers.%s", name);
        if ((st = get_string(cx, vn, shown, &value, err)) != ENVD_OK)
            break;
        size_t j = 0;
        while (j < cx->n_headers && strcasecmp(cx->headers[j].name, name) != 0)
            j++;
        if (j == cx->n_headers) {
            header_val *nh = realloc(cx->headers, (cx->n_headers + 1) * sizeof(*nh));
            char *nm = strdup(name);
            if (!nh || !nm) {
                if (nh)
                    cx->headers = nh;
                free(nm);
                free(value);
                return ENVD_E_NOMEM;
            }
            cx->headers = nh;
            cx->headers[j] = (header_val){nm, NULL};
            cx->n_headers++;
        }
        free(cx->headers[j].value);
        cx->headers[j].value = value;
        /* checked here, where the position is known */
        envd_config *probe = envd_config_new();
        envd_status hn = probe ? envd_config_set_header(probe, name, "x") : ENVD_E_NOMEM;
        envd_status hv = probe ? envd_config_set_header(probe, "x", value) : ENVD_E_NOMEM;
        envd_config_free(probe);
        if (hn == ENVD_INVALID_ARGUMENT || hv == ENVD_INVALID_ARGUMENT) {
            int bad_name = hn == ENVD_INVALID_ARGUMENT;
            *err = envd_yaml_error(&cx->y, bad_name ? envd_yaml_key_at(&cx->y, map, i) : vn,
                                   "headers.%s%s: not a valid HTTP header %s", name, cx->layer,
                                   bad_name ? "name" : "value");
            return ENVD_E_CONFIG;
        }
        st = hn != ENVD_OK ? hn : hv;
    }
    return st;
}

static envd_status read_k8s(ctx *cx, yaml_node_t *map, envd_error **err)
{
    envd_status st = check_map(cx, map, "kubernetes", err);
    for (size_t i = 0; st == ENVD_OK && i < envd_yaml_len(map); i++) {
        yaml_node_t *k = envd_yaml_key_at(&cx->y, map, i);
        char *key = norm_key(k);
        if (!key)
            return ENVD_E_NOMEM;
        const opt_def *d = NULL;
        for (size_t j = 0; j < N_OF(K8S) && !d; j++)
            if (strcmp(K8S[j].key, key) == 0)
                d = &K8S[j];
        if (!d) {
            *err = envd_yaml_error(&cx->y, k, "unknown key 'kubernetes.%s'%s", envd_yaml_text(k),
                                   cx->layer);
            st = ENVD_E_CONFIG;
        } else {
            char shown[128];
            snprintf(shown, sizeof(shown), "kubernetes.%s", d->key);
            st = read_value(cx, d, shown, envd_yaml_value_at(&cx->y, map, i), err);
        }
        free(key);
    }
    return st;
}

static envd_status read_entry(ctx *cx, yaml_node_t *item, size_t idx, struct envd_sandbox_entry *e,
                              envd_error **err)
{
    char what[64];
    snprintf(what, sizeof(what), "sandboxes[%zu]", idx);
    envd_status st = check_map(cx, item, what, err);
    yaml_node_t *k8s_node = NULL, *id_node = NULL;
    for (size_t i = 0; st == ENVD_OK && i < envd_yaml_len(item); i++) {
        yaml_node_t *k = envd_yaml_key_at(&cx->y, item, i);
        yaml_node_t *vn = envd_yaml_value_at(&cx->y, item, i);
        char *key = norm_key(k);
        if (!key)
            return ENVD_E_NOMEM;
        char shown[128];
        snprintf(shown, sizeof(shown), "%s.%s", what, key);
        char **slot = strcmp(key, "name") == 0            ? &e->name
                      : strcmp(key, "id") == 0            ? &e->id
                      : strcmp(key, "runtime_token") == 0 ? &e->runtime_token
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
                    e->k8s_ns = strndup(ref, (size_t)(slash - ref));
                    e->k8s_name = strdup(slash + 1);
                } else if (!slash && *ref) {
                    e->k8s_name = strdup(ref);
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
        free(key);
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
        struct envd_sandbox_entry e;
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
        struct envd_sandbox_entry *ns = realloc(cx->sbx, (cx->n_sbx + 1) * sizeof(*ns));
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
        char *key = norm_key(k);
        if (!key)
            return ENVD_E_NOMEM;
        const opt_def *d = NULL;
        for (size_t j = 0; j < N_OF(TOP) && !d; j++)
            if (strcmp(TOP[j].key, key) == 0)
                d = &TOP[j];
        if (d) {
            st = read_value(cx, d, d->key, vn, err);
        } else if (strcmp(key, "headers") == 0) {
            st = read_headers(cx, vn, err);
        } else if (strcmp(key, "kubernetes") == 0) {
            st = read_k8s(cx, vn, err);
        } else if (strcmp(key, "sandboxes") == 0) {
            st = read_sandboxes(cx, vn, err);
        } else if (!overlay && strcmp(key, "environment") == 0) {
            st = get_string(cx, vn, "environment", &cx->default_env, err);
        } else if (!overlay && strcmp(key, "environments") == 0) {
            st = check_map(cx, vn, "environments", err);
            cx->environments = vn;
        } else {
            *err = envd_yaml_error(&cx->y, k, "unknown key '%s'%s", envd_yaml_text(k), cx->layer);
            st = ENVD_E_CONFIG;
        }
        free(key);
    }
    return st;
}

/* ------------------------------------------------------------- applying */

static envd_error *bad_value(const val *v, const char *key, const char *why)
{
    return envd_yaml_error(v->y, v->node, "%s: %s", key, why);
}

static envd_status apply(ctx *cx, envd_config *cfg, envd_k8s_options *k8s, envd_error **err)
{
    for (size_t t = 0; t < N_OF(TOP); t++) {
        const opt_def *d = &TOP[t];
        const val *v = &cx->v[d->id];
        if (!v->set)
            continue;
        envd_status st = ENVD_OK;
        const char *why = NULL;
        switch (d->id) {
        case O_DOMAIN:
            st = envd_config_set_domain(cfg, v->s);
            why = "must not be empty";
            break;
        case O_SCHEME:
            st = envd_config_set_scheme(cfg, v->s);
            why = "must be http or https";
            break;
        case O_RUNTIME_TOKEN: st = envd_config_set_runtime_token(cfg, v->s); break;
        case O_API_KEY: st = envd_config_set_api_key(cfg, v->s); break;
        case O_USER:
            st = envd_config_set_user(cfg, v->s);
            why = "must be a user name without ':'";
            break;
        case O_AUTH_HEADER: st = envd_config_set_auth_header(cfg, v->s); break;
        case O_SANDBOX_BASE_URL: st = envd_config_set_sandbox_base_url(cfg, v->s); break;
        case O_CA_FILE: st = envd_config_set_ca_file(cfg, v->s); break;
        case O_RUNTIME_PORT:
            if (v->i < 1 || v->i > 65535)
                st = ENVD_INVALID_ARGUMENT, why = "must be between 1 and 65535";
            else
                st = envd_config_set_runtime_port(cfg, (int)v->i);
            break;
        case O_REQUEST_TIMEOUT_MS:
            st = envd_config_set_request_timeout_ms(cfg, v->i);
            why = "must be >= 0 (0: none)";
            break;
        case O_IDLE_TIMEOUT_MS:
            st = envd_config_set_idle_timeout_ms(cfg, v->i);
            why = "must be >= 0 (0: none)";
            break;
        case O_KEEPALIVE_S:
            st = v->i > 0 && v->i <= 86400 ? envd_config_set_keepalive_s(cfg, (int)v->i)
                                           : ENVD_INVALID_ARGUMENT;
            why = "must be a positive number of seconds (envd crashes on 0)";
            break;
        case O_WORKERS:
            st = v->i >= 0 && v->i <= 4096 ? envd_config_set_workers(cfg, (int)v->i)
                                           : ENVD_INVALID_ARGUMENT;
            why = "must be between 0 (online CPUs) and 4096";
            break;
        case O_MAX_INFLIGHT:
            st = v->i > 0 && v->i <= INT32_MAX
                     ? envd_config_set_max_inflight(cfg, (int)v->i, cfg->fail_fast)
                     : ENVD_INVALID_ARGUMENT;
            why = "must be positive";
            break;
        case O_FAIL_FAST: cfg->fail_fast = (int)v->i; break;
        case O_TRANSPORT: {
            envd_transport_kind k = strcmp(v->s, "grpc") == 0      ? ENVD_TRANSPORT_GRPC
                                    : strcmp(v->s, "connect") == 0 ? ENVD_TRANSPORT_CONNECT
                                    : strcmp(v->s, "auto") == 0    ? ENVD_TRANSPORT_AUTO
                                                                   : ENVD_TRANSPORT_NONE;
            st = envd_config_set_transport(cfg, k);
            why = "must be grpc, connect or auto";
            break;
        }
        }
        if (st == ENVD_INVALID_ARGUMENT) {
            *err = bad_value(v, d->key, why ? why : "invalid value");
            return ENVD_E_CONFIG;
        }
        if (st != ENVD_OK)
            return st;
    }
    for (size_t i = 0; i < cx->n_headers; i++) {
        envd_status st = envd_config_set_header(cfg, cx->headers[i].name, cx->headers[i].value);
        if (st != ENVD_OK)
            return st == ENVD_INVALID_ARGUMENT ? ENVD_E_CONFIG : st;
    }
    for (size_t t = 0; t < N_OF(K8S); t++) {
        const opt_def *d = &K8S[t];
        const val *v = &cx->v[d->id];
        if (!v->set)
            continue;
        envd_status st = ENVD_OK;
        const char *why = NULL;
        switch (d->id) {
        case O_K_SOURCE: {
            int src = strcmp(v->s, "auto") == 0                                            ? 0
                      : strcmp(v->s, "kubeconfig") == 0                                    ? 1
                      : strcmp(v->s, "in-cluster") == 0 || strcmp(v->s, "in_cluster") == 0 ? 2
                                                                                           : -1;
            st = src < 0 ? ENVD_INVALID_ARGUMENT
                         : envd_k8s_options_set_source(k8s, (envd_k8s_source)src);
            why = "must be auto, kubeconfig or in-cluster";
            break;
        }
        case O_K_KUBECONFIG: st = envd_k8s_options_set_kubeconfig(k8s, v->s); break;
        case O_K_CONTEXT: st = envd_k8s_options_set_context(k8s, v->s); break;
        case O_K_IN_CLUSTER_DIR: st = envd_k8s_options_set_in_cluster_dir(k8s, v->s); break;
        case O_K_TIMEOUT_MS:
            st = envd_k8s_options_set_timeout_ms(k8s, v->i);
            why = "must be >= 0 (0: none)";
            break;
        case O_K_REQUIRE_RUNNING: st = envd_k8s_options_set_require_running(k8s, (int)v->i); break;
        }
        if (st == ENVD_INVALID_ARGUMENT) {
            char shown[64];
            snprintf(shown, sizeof(shown), "kubernetes.%s", d->key);
            *err = bad_value(v, shown, why ? why : "invalid value");
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
        entry_clear(&f->sandboxes[i]);
    free(f->sandboxes);
    free(f);
}

static envd_status load(const char *path, const char *environment, envd_config_file **out,
                        envd_error **err)
{
    ctx cx;
    memset(&cx, 0, sizeof(cx));
    cx.layer = "";
    envd_config_file *f = NULL;
    char *layer_buf = NULL;
    envd_status st = envd_yaml_load_file(&cx.y, path, err);
    if (st != ENVD_OK)
        goto out;
    const char *slash = strrchr(path, '/');
    cx.dir =
        slash ? (slash == path ? strdup("/") : strndup(path, (size_t)(slash - path))) : strdup(".");
    if (!cx.dir) {
        st = ENVD_E_NOMEM;
        goto out;
    }
    yaml_node_t *root = envd_yaml_root(&cx.y);
    if (root && !envd_yaml_is_null(root) && (st = read_layer(&cx, root, 0, err)) != ENVD_OK)
        goto out;
    const char *env = environment && *environment ? environment : getenv("ENVD_ENVIRONMENT");
    if (!env || !*env)
        env = cx.default_env;
    if (env && *env) {
        yaml_node_t *overlay = envd_yaml_get(&cx.y, cx.environments, env);
        if (!overlay) {
            /* say which exist, to catch typos */
            char names[512] = "";
            size_t n = 0;
            for (size_t i = 0; i < envd_yaml_len(cx.environments) && n < sizeof(names); i++)
                n += (size_t)snprintf(names + n, sizeof(names) - n, "%s%s", i ? ", " : "",
                                      envd_yaml_text(envd_yaml_key_at(&cx.y, cx.environments, i)));
            *err = envd_error_new(ENVD_E_CONFIG, ENVD_TRANSPORT_NONE, 0,
                                  "%s: environment '%s' is not defined (defined: %s)", path, env,
                                  *names ? names : "none");
            st = ENVD_E_CONFIG;
            goto out;
        }
        if (asprintf(&layer_buf, " (environment '%s')", env) < 0) {
            layer_buf = NULL;
            st = ENVD_E_NOMEM;
            goto out;
        }
        cx.layer = layer_buf;
        if (!envd_yaml_is_null(overlay) && (st = read_layer(&cx, overlay, 1, err)) != ENVD_OK)
            goto out;
    }
    /* The overlays not in use are checked too (keys and types; their
     * ${VAR}s are not expanded), so a typo in one is found before the day
     * it is selected. */
    for (size_t i = 0; i < envd_yaml_len(cx.environments); i++) {
        const char *name = envd_yaml_text(envd_yaml_key_at(&cx.y, cx.environments, i));
        yaml_node_t *ov = envd_yaml_value_at(&cx.y, cx.environments, i);
        if ((env && strcmp(name, env) == 0) || envd_yaml_is_null(ov))
            continue;
        ctx scratch;
        memset(&scratch, 0, sizeof(scratch));
        scratch.y = cx.y; /* shared, not owned */
        scratch.dir = cx.dir;
        scratch.no_expand = 1;
        char *lb = NULL;
        if (asprintf(&lb, " (environment '%s')", name) < 0) {
            st = ENVD_E_NOMEM;
            goto out;
        }
        scratch.layer = lb;
        st = read_layer(&scratch, ov, 1, err);
        free(lb);
        scratch.y.loaded = 0;
        scratch.y.path = NULL;
        scratch.dir = NULL;
        ctx_free(&scratch);
        if (st != ENVD_OK)
            goto out;
    }
    f = calloc(1, sizeof(*f));
    if (!f || !(f->path = strdup(path)) || (env && *env && !(f->environment = strdup(env))) ||
        !(f->cfg = envd_config_new()) || !(f->k8s = envd_k8s_options_new())) {
        st = ENVD_E_NOMEM;
        goto out;
    }
    if ((st = apply(&cx, f->cfg, f->k8s, err)) != ENVD_OK)
        goto out;
    f->sandboxes = cx.sbx;
    f->n_sandboxes = cx.n_sbx;
    cx.sbx = NULL;
    cx.n_sbx = 0;
    *out = f;
    f = NULL;
out:
    envd_config_file_free(f);
    free(layer_buf);
    ctx_free(&cx);
    return st;
}

envd_status envd_config_file_load(const char *path, const char *environment, envd_config_file **out,
                                  envd_error **err)
{
    if (err)
        *err = NULL;
    if (!path || !out)
        return ENVD_E_USAGE;
    *out = NULL;
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
    if (!out)
        return ENVD_E_USAGE;
    *out = NULL;
    envd_config_file *f = NULL;
    envd_status st = envd_config_file_load(path, NULL, &f, err);
    if (st != ENVD_OK)
        return st;
    if (!(*out = envd_config_dup(f->cfg))) {
        envd_config_file_free(f);
        return ENVD_E_NOMEM;
    }
    if (file)
        *file = f;
    else
        envd_config_file_free(f);
    return ENVD_OK;
}

const char *envd_config_file_path(const envd_config_file *f)
{
    return f ? f->path : NULL;
}
const char *envd_config_file_environment(const envd_config_file *f)
{
    return f ? f->environment : NULL;
}
const envd_config *envd_config_file_config(const envd_config_file *f)
{
    return f ? f->cfg : NULL;
}
const envd_k8s_options *envd_config_file_k8s_options(const envd_config_file *f)
{
    return f ? f->k8s : NULL;
}
size_t envd_config_file_sandbox_count(const envd_config_file *f)
{
    return f ? f->n_sandboxes : 0;
}
const envd_sandbox_entry *envd_config_file_sandbox_at(const envd_config_file *f, size_t i)
{
    return f && i < f->n_sandboxes ? &f->sandboxes[i] : NULL;
}
const envd_sandbox_entry *envd_config_file_sandbox_find(const envd_config_file *f, const char *name)
{
    for (size_t i = 0; f && name && i < f->n_sandboxes; i++)
        if (strcmp(f->sandboxes[i].name, name) == 0)
            return &f->sandboxes[i];
    return NULL;
}
const char *envd_sandbox_entry_name(const envd_sandbox_entry *e)
{
    return e ? e->name : NULL;
}
const char *envd_sandbox_entry_id(const envd_sandbox_entry *e)
{
    return e ? e->id : NULL;
}
const char *envd_sandbox_entry_k8s_namespace(const envd_sandbox_entry *e)
{
    return e ? e->k8s_ns : NULL;
}
const char *envd_sandbox_entry_k8s_name(const envd_sandbox_entry *e)
{
    return e ? e->k8s_name : NULL;
}
const char *envd_sandbox_entry_runtime_token(const envd_sandbox_entry *e)
{
    return e ? e->runtime_token : NULL;
}
