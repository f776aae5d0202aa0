/* Kubeconfig loading and merging (kubectl's rules), context selection, and
 * the in-cluster configuration. */
#include "k8s/kubeconfig.h"
#include "core/alloc.h"
#include "core/buf.h"
#include "config/yaml_doc.h"
#include "core/file.h"
#include "core/error.h"

#include <errno.h>
#include <openssl/evp.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------- helpers */

int envd_k8s_read_file(const char *path, envd_k8s_blob *out)
{
    envd_buf b = {0};
    int e = envd_file_read(path, 64u << 20, &b); /* nothing we read is that large */
    size_t len = 0;
    out->data = e ? NULL : (unsigned char *)envd_buf_take(&b, &len);
    out->len = len;
    envd_buf_free(&b);
    if (!out->data) {
        errno = e ? e : ENOMEM;
        return -1;
    }
    return 0;
}

int envd_k8s_b64decode(const char *in, envd_k8s_blob *out)
{
    out->data = NULL;
    out->len = 0;
    size_t n = strlen(in);
    unsigned char *buf = envd_malloc(n / 4 * 3 + 4);
    EVP_ENCODE_CTX *ctx = EVP_ENCODE_CTX_new();
    if (!buf || !ctx) {
        free(buf);
        EVP_ENCODE_CTX_free(ctx);
        return -1;
    }
    EVP_DecodeInit(ctx);
    int l1 = 0, l2 = 0;
    int ok = n <= INT32_MAX &&
             EVP_DecodeUpdate(ctx, buf, &l1, (const unsigned char *)in, (int)n) >= 0 &&
             EVP_DecodeFinal(ctx, buf + l1, &l2) == 1;
    EVP_ENCODE_CTX_free(ctx);
    if (!ok || (n > 0 && l1 + l2 == 0)) {
        free(buf);
        return -1;
    }
    out->data = buf;
    out->len = (size_t)(l1 + l2);
    buf[out->len] = 0;
    return 0;
}

static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return envd_strdup(".");
    if (slash == path)
        return envd_strdup("/");
    return envd_strndup(path, (size_t)(slash - path));
}

static char *join_dir(const char *dir, const char *p)
{
    if (p[0] == '/' || !dir)
        return envd_strdup(p);
    size_t n = strlen(dir) + 1 + strlen(p) + 1;
    char *r = envd_malloc(n);
    if (r)
        snprintf(r, n, "%s/%s", dir, p);
    return r;
}

static char *fmt(const char *f, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;
static char *fmt(const char *f, ...)
{
    va_list ap;
    va_start(ap, f);
    char *s = envd_strdup_vprintf(f, ap);
    va_end(ap);
    return s;
}

static int push_str(char ***arr, size_t *n, char *s)
{
    if (!s)
        return -1;
    char **na = envd_realloc(*arr, (*n + 1) * sizeof(char *));
    if (!na) {
        free(s);
        return -1;
    }
    na[(*n)++] = s;
    *arr = na;
    return 0;
}

static void free_strs(char **a, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(a[i]);
    free(a);
}

static void exec_free(envd_k8s_exec *x)
{
    if (!x)
        return;
    free(x->command);
    free_strs(x->args, x->n_args);
    free_strs(x->env, x->n_env);
    free(x->api_version);
    free(x->install_hint);
    free(x);
}

void envd_k8s_conn_free(envd_k8s_conn *c)
{
    if (!c)
        return;
    free(c->origin);
    free(c->user_desc);
    free(c->server);
    free(c->tls_server_name);
    free(c->ca.data);
    free(c->ca_desc);
    free(c->proxy_url);
    free(c->cert.data);
    free(c->key.data);
    if (c->token)
        OPENSSL_cleanse(c->token, strlen(c->token));
    free(c->token);
    free(c->username);
    if (c->password)
        OPENSSL_cleanse(c->password, strlen(c->password));
    free(c->password);
    exec_free(c->exec);
    free(c->as_user);
    free(c->as_uid);
    free_strs(c->as_groups, c->n_as_groups);
    free_strs(c->as_extra, c->n_as_extra);
    free(c->ns);
    free(c);
}

static void trim_right(char *s)
{
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t'))
        s[--n] = 0;
}

/* ---------------------------------------------------------- kubeconfig */

typedef struct kc_file {
    envd_yaml y;
    char *dir;
} kc_file;

typedef struct kc_entry {
    const char *name;
    yaml_node_t *body; /* the cluster/user/context mapping, or NULL */
    yaml_node_t *item; /* the list item, for positions */
    kc_file *file;
    size_t seq; /* order of definition across the merged files */
} kc_entry;

typedef struct kc_list {
    kc_entry *v; /* sorted by name once loaded (kc_index) */
    size_t n, cap;
} kc_list;

typedef struct kc_set {
    kc_file *files;
    size_t n_files;
    kc_list clusters, users, contexts;
    const char *current;
    char *names; /* "a:b" for messages */
} kc_set;

static void kc_set_free(kc_set *s)
{
    for (size_t i = 0; i < s->n_files; i++) {
        envd_yaml_free(&s->files[i].y);
        free(s->files[i].dir);
    }
    free(s->files);
    free(s->clusters.v);
    free(s->users.v);
    free(s->contexts.v);
    free(s->names);
}

static int kc_name_cmp(const void *pa, const void *pb)
{
    return strcmp(((const kc_entry *)pa)->name, ((const kc_entry *)pb)->name);
}

static kc_entry *kc_find(kc_list *l, const char *name)
{
    kc_entry key = {.name = name};
    return l->n ? bsearch(&key, l->v, l->n, sizeof *l->v, kc_name_cmp) : NULL;
}

static int kc_entry_cmp(const void *pa, const void *pb)
{
    const kc_entry *a = pa, *b = pb;
    int c = strcmp(a->name, b->name);
    return c ? c : (a->seq > b->seq) - (a->seq < b->seq);
}

/* Sorts l by name, keeping only the first definition of each (files in
 * order, then position): the kubectl merge rule. Sorting once instead of
 * searching the list for every new entry keeps 20,000 contexts linear-log
 * (they took seconds pairwise). */
static void kc_index(kc_list *l)
{
    if (l->n < 2)
        return;
    qsort(l->v, l->n, sizeof *l->v, kc_entry_cmp);
    size_t o = 1;
    for (size_t i = 1; i < l->n; i++)
        if (strcmp(l->v[i].name, l->v[o - 1].name) != 0)
            l->v[o++] = l->v[i];
    l->n = o;
}

/* Collects `section` (a list of {name, <inner>: {...}}) from one file, the
 * first definition of a name winning. */
static envd_status kc_collect(kc_file *f, yaml_node_t *root, const char *section, const char *inner,
                              kc_list *l, envd_error **err)
{
    yaml_node_t *sec = envd_yaml_get(&f->y, root, section);
    if (!sec || envd_yaml_is_null(sec))
        return ENVD_OK;
    if (sec->type != YAML_SEQUENCE_NODE) {
        *err = envd_yaml_error(&f->y, sec, "'%s' must be a list, got %s", section,
                               envd_yaml_describe(sec));
        return ENVD_E_CONFIG;
    }
    for (size_t i = 0; i < envd_yaml_len(sec); i++) {
        yaml_node_t *item = envd_yaml_item_at(&f->y, sec, i);
        if (!item || item->type != YAML_MAPPING_NODE) {
            *err = envd_yaml_error(&f->y, item, "%s[%zu] must be a mapping, got %s", section, i,
                                   envd_yaml_describe(item));
            return ENVD_E_CONFIG;
        }
        yaml_node_t *nn = envd_yaml_get(&f->y, item, "name");
        const char *name = envd_yaml_text(nn);
        if (!name || !*name || envd_yaml_is_null(nn)) {
            *err = envd_yaml_error(&f->y, item, "%s[%zu] has no name", section, i);
            return ENVD_E_CONFIG;
        }
        yaml_node_t *body = envd_yaml_get(&f->y, item, inner);
        if (body && envd_yaml_is_null(body))
            body = NULL;
        if (body && body->type != YAML_MAPPING_NODE) {
            *err = envd_yaml_error(&f->y, body, "%s '%s': '%s' must be a mapping, got %s", section,
                                   name, inner, envd_yaml_describe(body));
            return ENVD_E_CONFIG;
        }
        if (l->n == l->cap) {
            size_t cap = l->cap ? l->cap * 2 : 16;
            kc_entry *nv = envd_realloc(l->v, cap * sizeof(*nv));
            if (!nv)
                return ENVD_E_NOMEM;
            l->v = nv;
            l->cap = cap;
        }
        l->v[l->n] = (kc_entry){name, body, item, f, l->n};
        l->n++;
    }
    return ENVD_OK;
}

static envd_status kc_load(kc_set *s, char **paths, size_t n, envd_error **err)
{
    s->files = envd_calloc(n, sizeof(kc_file));
    if (!s->files)
        return ENVD_E_NOMEM;
    for (size_t i = 0; i < n; i++) {
        kc_file *f = &s->files[s->n_files++];
        envd_status st = envd_yaml_load_file(&f->y, paths[i], err);
        if (st != ENVD_OK)
            return st;
        if (!(f->dir = dir_of(paths[i])))
            return ENVD_E_NOMEM;
        yaml_node_t *root = envd_yaml_root(&f->y);
        if (!root || envd_yaml_is_null(root))
            continue; /* an empty file is an empty config, as for kubectl */
        if (root->type != YAML_MAPPING_NODE) {
            *err = envd_yaml_error(&f->y, root, "a kubeconfig must be a mapping, got %s",
                                   envd_yaml_describe(root));
            return ENVD_E_CONFIG;
        }
        if ((st = kc_collect(f, root, "clusters", "cluster", &s->clusters, err)) != ENVD_OK ||
            (st = kc_collect(f, root, "users", "user", &s->users, err)) != ENVD_OK ||
            (st = kc_collect(f, root, "contexts", "context", &s->contexts, err)) != ENVD_OK)
            return st;
        yaml_node_t *cur = envd_yaml_get(&f->y, root, "current-context");
        if (cur && !envd_yaml_is_null(cur)) {
            if (cur->type != YAML_SCALAR_NODE) {
                *err = envd_yaml_error(&f->y, cur, "current-context must be a string, got %s",
                                       envd_yaml_describe(cur));
                return ENVD_E_CONFIG;
            }
            if (!s->current && *envd_yaml_text(cur))
                s->current = envd_yaml_text(cur);
        }
    }
    kc_index(&s->clusters);
    kc_index(&s->users);
    kc_index(&s->contexts);
    return ENVD_OK;
}

/* Typed field readers. Absent or null fields leave *out untouched. */
static envd_status get_str(kc_entry *e, const char *key, const char *what, char **out,
                           envd_error **err)
{
    yaml_node_t *n = envd_yaml_get(&e->file->y, e->body, key);
    if (!n || envd_yaml_is_null(n))
        return ENVD_OK;
    if (n->type != YAML_SCALAR_NODE) {
        *err = envd_yaml_error(&e->file->y, n, "%s '%s': '%s' must be a string, got %s", what,
                               e->name, key, envd_yaml_describe(n));
        return ENVD_E_CONFIG;
    }
    if (!*envd_yaml_text(n))
        return ENVD_OK;
    char *v = envd_strdup(envd_yaml_text(n));
    if (!v)
        return ENVD_E_NOMEM;
    free(*out);
    *out = v;
    return ENVD_OK;
}

static envd_status get_bool(kc_entry *e, const char *key, const char *what, int *out,
                            envd_error **err)
{
    yaml_node_t *n = envd_yaml_get(&e->file->y, e->body, key);
    if (!n || envd_yaml_is_null(n))
        return ENVD_OK;
    if (envd_yaml_as_bool(n, out) != 0) {
        *err = envd_yaml_error(&e->file->y, n, "%s '%s': '%s' must be true or false, got %s", what,
                               e->name, key, envd_yaml_describe(n));
        return ENVD_E_CONFIG;
    }
    return ENVD_OK;
}

/* A path field: resolved against the file's directory and read now. */
static envd_status get_file(kc_entry *e, const char *key, const char *what, envd_k8s_blob *out,
                            char **desc, envd_error **err)
{
    char *p = NULL;
    envd_status st = get_str(e, key, what, &p, err);
    if (st != ENVD_OK || !p)
        return st;
    char *full = join_dir(e->file->dir, p);
    free(p);
    if (!full)
        return ENVD_E_NOMEM;
    envd_k8s_blob b;
    if (envd_k8s_read_file(full, &b) != 0) {
        int en = errno;
        if (en == ENOMEM) { /* ours, not the file's */
            free(full);
            return ENVD_E_NOMEM;
        }
        yaml_node_t *n = envd_yaml_get(&e->file->y, e->body, key);
        *err = envd_yaml_error(&e->file->y, n, "%s '%s': cannot read %s '%s': %s", what, e->name,
                               key, full, strerror(en));
        free(full);
        return ENVD_E_CONFIG;
    }
    free(out->data);
    *out = b;
    if (desc) {
        free(*desc);
        *desc = full;
    } else {
        free(full);
    }
    return ENVD_OK;
}

static envd_status get_b64(kc_entry *e, const char *key, const char *what, envd_k8s_blob *out,
                           char **desc, envd_error **err)
{
    char *v = NULL;
    envd_status st = get_str(e, key, what, &v, err);
    if (st != ENVD_OK || !v)
        return st;
    envd_k8s_blob b;
    int bad = envd_k8s_b64decode(v, &b);
    free(v);
    if (bad) {
        yaml_node_t *n = envd_yaml_get(&e->file->y, e->body, key);
        *err = envd_yaml_error(&e->file->y, n, "%s '%s': '%s' is not valid base64", what, e->name,
                               key);
        return ENVD_E_CONFIG;
    }
    free(out->data);
    *out = b;
    if (desc) {
        free(*desc);
        *desc = fmt("%s of %s '%s' in %s", key, what, e->name, e->file->y.path);
    }
    return ENVD_OK;
}

static envd_status get_str_list(kc_entry *e, yaml_node_t *n, const char *what, const char *key,
                                char ***arr, size_t *cnt, envd_error **err)
{
    if (!n || envd_yaml_is_null(n))
        return ENVD_OK;
    if (n->type != YAML_SEQUENCE_NODE) {
        *err = envd_yaml_error(&e->file->y, n, "%s '%s': '%s' must be a list, got %s", what,
                               e->name, key, envd_yaml_describe(n));
        return ENVD_E_CONFIG;
    }
    for (size_t i = 0; i < envd_yaml_len(n); i++) {
        yaml_node_t *it = envd_yaml_item_at(&e->file->y, n, i);
        if (!it || it->type != YAML_SCALAR_NODE) {
            *err = envd_yaml_error(&e->file->y, it, "%s '%s': '%s' must hold strings, got %s", what,
                                   e->name, key, envd_yaml_describe(it));
            return ENVD_E_CONFIG;
        }
        if (push_str(arr, cnt, envd_strdup(envd_yaml_text(it))))
            return ENVD_E_NOMEM;
    }
    return ENVD_OK;
}

static envd_status read_cluster(kc_entry *e, envd_k8s_conn *c, envd_error **err)
{
    static const char *W = "cluster";
    envd_status st;
    if ((st = get_str(e, "server", W, &c->server, err)) ||
        (st = get_str(e, "tls-server-name", W, &c->tls_server_name, err)) ||
        (st = get_str(e, "proxy-url", W, &c->proxy_url, err)) ||
        (st = get_bool(e, "insecure-skip-tls-verify", W, &c->insecure, err)) ||
        (st = get_file(e, "certificate-authority", W, &c->ca, &c->ca_desc, err)) ||
        (st = get_b64(e, "certificate-authority-data", W, &c->ca, &c->ca_desc, err)))
        return st;
    if (!c->server) {
        *err = envd_yaml_error(&e->file->y, e->item, "cluster '%s' has no server", e->name);
        return ENVD_E_CONFIG;
    }
    if (c->insecure && c->ca.data) {
        *err = envd_yaml_error(&e->file->y, e->item,
                               "cluster '%s': a certificate authority together with "
                               "insecure-skip-tls-verify is not allowed (as in kubectl)",
                               e->name);
        return ENVD_E_CONFIG;
    }
    size_t n = strlen(c->server);
    while (n > 0 && c->server[n - 1] == '/')
        c->server[--n] = 0;
    if (strncmp(c->server, "https://", 8) != 0 && strncmp(c->server, "http://", 7) != 0) {
        /* kubectl takes a bare host[:port] as https */
        char *s = fmt("https://%s", c->server);
        if (!s)
            return ENVD_E_NOMEM;
        free(c->server);
        c->server = s;
    }
    return ENVD_OK;
}

static envd_status read_exec(kc_entry *e, yaml_node_t *x, envd_k8s_conn *c, envd_error **err)
{
    envd_yaml *y = &e->file->y;
    if (x->type != YAML_MAPPING_NODE) {
        *err = envd_yaml_error(y, x, "user '%s': 'exec' must be a mapping, got %s", e->name,
                               envd_yaml_describe(x));
        return ENVD_E_CONFIG;
    }
    envd_k8s_exec *ex = envd_calloc(1, sizeof(*ex));
    if (!ex)
        return ENVD_E_NOMEM;
    c->exec = ex;
    kc_entry sub = {e->name, x, e->item, e->file, e->seq};
    static const char *W = "exec plugin of user";
    envd_status st;
    char *mode = NULL;
    if ((st = get_str(&sub, "command", W, &ex->command, err)) ||
        (st = get_str(&sub, "apiVersion", W, &ex->api_version, err)) ||
        (st = get_str(&sub, "installHint", W, &ex->install_hint, err)) ||
        (st = get_str(&sub, "interactiveMode", W, &mode, err)) ||
        (st = get_bool(&sub, "provideClusterInfo", W, &ex->provide_cluster_info, err)) ||
        (st = get_str_list(&sub, envd_yaml_get(y, x, "args"), W, "args", &ex->args, &ex->n_args,
                           err)))
        goto out;
    if (!ex->command) {
        *err = envd_yaml_error(y, x, "user '%s': exec plugin has no command", e->name);
        st = ENVD_E_CONFIG;
        goto out;
    }
    if (!ex->api_version ||
        (strcmp(ex->api_version, "client.authentication.k8s.io/v1") != 0 &&
         strcmp(ex->api_version, "client.authentication.k8s.io/v1beta1") != 0)) {
        *err = envd_yaml_error(y, x,
                               "user '%s': exec plugin apiVersion '%s' is not supported (use "
                               "client.authentication.k8s.io/v1 or v1beta1)",
                               e->name, ex->api_version ? ex->api_version : "");
        st = ENVD_E_CONFIG;
        goto out;
    }
    if (mode && strcmp(mode, "Always") == 0) {
        *err = envd_yaml_error(y, x,
                               "user '%s': exec plugin wants interactiveMode Always, but libenvd "
                               "runs plugins without a terminal",
                               e->name);
        st = ENVD_E_CONFIG;
        goto out;
    }
    /* A command with a '/' is a path relative to the kubeconfig; a bare
     * name is looked up in PATH (as client-go does). */
    if (strchr(ex->command, '/') && ex->command[0] != '/') {
        char *full = join_dir(e->file->dir, ex->command);
        if (!full) {
            st = ENVD_E_NOMEM;
            goto out;
        }
        free(ex->command);
        ex->command = full;
    }
    yaml_node_t *env = envd_yaml_get(y, x, "env");
    if (env && !envd_yaml_is_null(env)) {
        if (env->type != YAML_SEQUENCE_NODE) {
            *err = envd_yaml_error(y, env, "user '%s': exec env must be a list, got %s", e->name,
                                   envd_yaml_describe(env));
            st = ENVD_E_CONFIG;
            goto out;
        }
        for (size_t i = 0; i < envd_yaml_len(env); i++) {
            yaml_node_t *it = envd_yaml_item_at(y, env, i);
            const char *nm = envd_yaml_text(envd_yaml_get(y, it, "name"));
            const char *val = envd_yaml_text(envd_yaml_get(y, it, "value"));
            if (!nm || !*nm || !val || strchr(nm, '=')) {
                *err = envd_yaml_error(y, it, "user '%s': exec env entries need a name and a value",
                                       e->name);
                st = ENVD_E_CONFIG;
                goto out;
            }
            if (push_str(&ex->env, &ex->n_env, fmt("%s=%s", nm, val))) {
                st = ENVD_E_NOMEM;
                goto out;
            }
        }
    }
out:
    free(mode);
    return st;
}

static envd_status read_user(kc_entry *e, envd_k8s_conn *c, envd_error **err)
{
    static const char *W = "user";
    envd_yaml *y = &e->file->y;
    envd_status st;
    yaml_node_t *ap = envd_yaml_get(y, e->body, "auth-provider");
    if (ap && !envd_yaml_is_null(ap)) {
        const char *pname = envd_yaml_text(envd_yaml_get(y, ap, "name"));
        *err = envd_yaml_error(y, ap,
                               "user '%s' authenticates with auth-provider '%s', which libenvd "
                               "does not support; use an exec credential plugin, a token or a "
                               "client certificate",
                               e->name, pname ? pname : "?");
        return ENVD_E_CONFIG;
    }
    char *token_file = NULL;
    if ((st = get_file(e, "client-certificate", W, &c->cert, NULL, err)) ||
        (st = get_b64(e, "client-certificate-data", W, &c->cert, NULL, err)) ||
        (st = get_file(e, "client-key", W, &c->key, NULL, err)) ||
        (st = get_b64(e, "client-key-data", W, &c->key, NULL, err)) ||
        (st = get_str(e, "token", W, &c->token, err)) ||
        (st = get_str(e, "tokenFile", W, &token_file, err)) ||
        (st = get_str(e, "username", W, &c->username, err)) ||
        (st = get_str(e, "password", W, &c->password, err)) ||
        (st = get_str(e, "as", W, &c->as_user, err)) ||
        (st = get_str(e, "as-uid", W, &c->as_uid, err)) ||
        (st = get_str_list(e, envd_yaml_get(y, e->body, "as-groups"), W, "as-groups", &c->as_groups,
                           &c->n_as_groups, err))) {
        free(token_file);
        return st;
    }
    /* tokenFile is read only when no token is given, and read now (each
     * resolution reads it again, so a rotated token is picked up). */
    if (token_file && !c->token) {
        char *full = join_dir(e->file->dir, token_file);
        envd_k8s_blob b;
        if (!full || envd_k8s_read_file(full, &b) != 0) {
            int en = full ? errno : ENOMEM;
            if (en == ENOMEM) {
                free(full);
                free(token_file);
                return ENVD_E_NOMEM;
            }
            *err = envd_yaml_error(y, envd_yaml_get(y, e->body, "tokenFile"),
                                   "user '%s': cannot read tokenFile '%s': %s", e->name,
                                   full ? full : token_file, strerror(en));
            free(full);
            free(token_file);
            return ENVD_E_CONFIG;
        }
        free(full);
        c->token = (char *)b.data;
        trim_right(c->token);
    }
    free(token_file);
    yaml_node_t *extra = envd_yaml_get(y, e->body, "as-user-extra");
    if (extra && !envd_yaml_is_null(extra)) {
        if (extra->type != YAML_MAPPING_NODE) {
            *err =
                envd_yaml_error(y, extra, "user '%s': 'as-user-extra' must be a mapping", e->name);
            return ENVD_E_CONFIG;
        }
        for (size_t i = 0; i < envd_yaml_len(extra); i++) {
            const char *k = envd_yaml_text(envd_yaml_key_at(y, extra, i));
            char **vals = NULL;
            size_t nv = 0;
            st = get_str_list(e, envd_yaml_value_at(y, extra, i), W, "as-user-extra", &vals, &nv,
                              err);
            for (size_t j = 0; st == ENVD_OK && j < nv; j++)
                if (push_str(&c->as_extra, &c->n_as_extra,
                             fmt("Impersonate-Extra-%s: %s", k ? k : "", vals[j])))
                    st = ENVD_E_NOMEM;
            free_strs(vals, nv);
            if (st != ENVD_OK)
                return st;
        }
    }
    if (c->token && (c->username || c->password)) {
        *err = envd_yaml_error(y, e->item,
                               "user '%s' sets both a bearer token and username/password; "
                               "only one may be set",
                               e->name);
        return ENVD_E_CONFIG;
    }
    if (!c->cert.data != !c->key.data) {
        *err = envd_yaml_error(y, e->item, "user '%s' has a client %s but no client %s", e->name,
                               c->cert.data ? "certificate" : "key",
                               c->cert.data ? "key" : "certificate");
        return ENVD_E_CONFIG;
    }
    yaml_node_t *x = envd_yaml_get(y, e->body, "exec");
    if (x && !envd_yaml_is_null(x) && (st = read_exec(e, x, c, err)) != ENVD_OK)
        return st;
    return ENVD_OK;
}

static int file_exists(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* Splits a colon-separated list, dropping empty and repeated entries. */
static int split_paths(const char *list, char ***out, size_t *n)
{
    char *copy = envd_strdup(list);
    if (!copy)
        return -1;
    int rc = 0;
    char *save = NULL;
    for (char *p = strtok_r(copy, ":", &save); p && rc == 0; p = strtok_r(NULL, ":", &save)) {
        int dup = 0;
        for (size_t i = 0; i < *n; i++)
            dup |= strcmp((*out)[i], p) == 0;
        if (!dup)
            rc = push_str(out, n, envd_strdup(p));
    }
    free(copy);
    return rc;
}

static char *home_dir(void)
{
    const char *h = getenv("HOME");
    if (h && *h)
        return envd_strdup(h);
    struct passwd pw, *res = NULL;
    char buf[4096];
    if (getpwuid_r(getuid(), &pw, buf, sizeof(buf), &res) == 0 && res && res->pw_dir)
        return envd_strdup(res->pw_dir);
    return NULL;
}

static envd_status from_kubeconfig(const envd_k8s_options *o, char **paths, size_t n,
                                   envd_k8s_conn *c, envd_error **err)
{
    kc_set s;
    memset(&s, 0, sizeof(s));
    size_t nl = 1;
    for (size_t i = 0; i < n; i++)
        nl += strlen(paths[i]) + 1;
    if (!(s.names = envd_calloc(1, nl)))
        return ENVD_E_NOMEM;
    for (size_t i = 0; i < n; i++) {
        if (i)
            strcat(s.names, ":");
        strcat(s.names, paths[i]);
    }
    envd_status st = kc_load(&s, paths, n, err);
    if (st != ENVD_OK)
        goto out;
    const char *ctx_name = o && o->context ? o->context : s.current;
    if (!ctx_name) {
        *err = envd_error_new(ENVD_E_CONFIG, ENVD_TRANSPORT_NONE, 0,
                              "kubeconfig %s: no current-context is set and no context was "
                              "named",
                              s.names);
        st = ENVD_E_CONFIG;
        goto out;
    }
    kc_entry *ctx = kc_find(&s.contexts, ctx_name);
    if (!ctx) {
        *err = envd_error_new(ENVD_E_CONFIG, ENVD_TRANSPORT_NONE, 0,
                              "kubeconfig %s: context '%s' is not defined", s.names, ctx_name);
        st = ENVD_E_CONFIG;
        goto out;
    }
    char *cluster = NULL, *user = NULL;
    if ((st = get_str(ctx, "cluster", "context", &cluster, err)) ||
        (st = get_str(ctx, "user", "context", &user, err)) ||
        (st = get_str(ctx, "namespace", "context", &c->ns, err))) {
        free(cluster);
        free(user);
        goto out;
    }
    kc_entry *cl = cluster ? kc_find(&s.clusters, cluster) : NULL;
    kc_entry *us = user ? kc_find(&s.users, user) : NULL;
    if (!cl) {
        *err = envd_yaml_error(&ctx->file->y, ctx->item,
                               cluster ? "context '%s' names cluster '%s', which is not defined "
                                         "in %s"
                                       : "context '%s' names no cluster%s%s",
                               ctx_name, cluster ? cluster : "", cluster ? s.names : "");
        st = ENVD_E_CONFIG;
    } else if (user && !us) {
        *err = envd_yaml_error(&ctx->file->y, ctx->item,
                               "context '%s' names user '%s', which is not defined in %s", ctx_name,
                               user, s.names);
        st = ENVD_E_CONFIG;
    }
    if (st == ENVD_OK) {
        c->origin = fmt("kubeconfig %s, context '%s'", s.names, ctx_name);
        c->user_desc = user ? fmt("user '%s'", user) : envd_strdup("no user (anonymous)");
        if (!c->origin || !c->user_desc)
            st = ENVD_E_NOMEM;
    }
    free(cluster);
    free(user);
    if (st == ENVD_OK)
        st = read_cluster(cl, c, err);
    if (st == ENVD_OK && us && us->body)
        st = read_user(us, c, err);
out:
    kc_set_free(&s);
    return st;
}

static envd_status from_in_cluster(const envd_k8s_options *o, envd_k8s_conn *c, envd_error **err)
{
    const char *host = getenv("KUBERNETES_SERVICE_HOST");
    const char *port = getenv("KUBERNETES_SERVICE_PORT");
    const char *dir = o && o->in_cluster_dir ? o->in_cluster_dir : ENVD_K8S_DEFAULT_SA_DIR;
    if (!host || !*host || !port || !*port) {
        *err = envd_error_new(ENVD_E_CONFIG, ENVD_TRANSPORT_NONE, 0,
                              "in-cluster configuration: KUBERNETES_SERVICE_HOST and "
                              "KUBERNETES_SERVICE_PORT must be set");
        return ENVD_E_CONFIG;
    }
    int v6 = strchr(host, ':') != NULL;
    c->server = fmt("https://%s%s%s:%s", v6 ? "[" : "", host, v6 ? "]" : "", port);
    c->origin = fmt("in-cluster configuration (%s)", dir);
    c->user_desc = envd_strdup("the pod's service account");
    char *tok = fmt("%s/token", dir), *ca = fmt("%s/ca.crt", dir), *nsf = fmt("%s/namespace", dir);
    envd_status st = ENVD_OK;
    envd_k8s_blob b;
    if (!c->server || !c->origin || !c->user_desc || !tok || !ca || !nsf) {
        st = ENVD_E_NOMEM;
        goto out;
    }
    if (envd_k8s_read_file(tok, &b) != 0) {
        if (errno == ENOMEM) {
            st = ENVD_E_NOMEM;
            goto out;
        }
        *err = envd_error_new(ENVD_E_CONFIG, ENVD_TRANSPORT_NONE, 0,
                              "in-cluster configuration: cannot read the service account token "
                              "%s: %s",
                              tok, strerror(errno));
        st = ENVD_E_CONFIG;
        goto out;
    }
    c->token = (char *)b.data;
    trim_right(c->token);
    /* As client-go: without a readable ca.crt the system trust store is used. */
    if (envd_k8s_read_file(ca, &c->ca) == 0) {
        c->ca_desc = ca;
        ca = NULL;
    }
    if (envd_k8s_read_file(nsf, &b) == 0) {
        trim_right((char *)b.data);
        if (*(char *)b.data)
            c->ns = (char *)b.data;
        else
            free(b.data);
    }
out:
    free(tok);
    free(ca);
    free(nsf);
    return st;
}

envd_status envd_k8s_conn_load(const envd_k8s_options *o, envd_k8s_conn **out, envd_error **err)
{
    *out = NULL;
    envd_k8s_conn *c = envd_calloc(1, sizeof(*c));
    if (!c)
        return ENVD_E_NOMEM;
    envd_k8s_source src = o ? o->source : ENVD_K8S_SOURCE_AUTO;
    envd_status st = ENVD_OK;
    char **listed = NULL, **found = NULL;
    size_t n_listed = 0, n_found = 0;
    char *home_cfg = NULL;
    const char *why_none = NULL; /* what was tried, for the error */

    if (src != ENVD_K8S_SOURCE_IN_CLUSTER) {
        const char *list = o && o->kubeconfig ? o->kubeconfig : getenv("KUBECONFIG");
        const char *from = o && o->kubeconfig ? "the kubeconfig option" : "$KUBECONFIG";
        if (list && *list) {
            if (split_paths(list, &listed, &n_listed)) {
                st = ENVD_E_NOMEM;
                goto out;
            }
            for (size_t i = 0; i < n_listed; i++)
                if (file_exists(listed[i]) && push_str(&found, &n_found, envd_strdup(listed[i]))) {
                    st = ENVD_E_NOMEM;
                    goto out;
                }
            if (!n_found) {
                /* An explicit option must be usable; an unusable $KUBECONFIG
                 * falls back to in-cluster as in the Go client. */
                int fallback = !(o && o->kubeconfig) && src == ENVD_K8S_SOURCE_AUTO &&
                               getenv("KUBERNETES_SERVICE_HOST");
                if (!fallback) {
                    *err = envd_error_new(ENVD_E_CONFIG, ENVD_TRANSPORT_NONE, 0,
                                          "kubeconfig missing: %s names %s, and no such file "
                                          "exists",
                                          from, list);
                    st = ENVD_E_CONFIG;
                    goto out;
                }
            }
        } else {
            char *home = home_dir();
            if (home) {
                home_cfg = fmt("%s/.kube/config", home);
                free(home);
                if (!home_cfg) {
                    st = ENVD_E_NOMEM;
                    goto out;
                }
                if (file_exists(home_cfg) && push_str(&found, &n_found, envd_strdup(home_cfg))) {
                    st = ENVD_E_NOMEM;
                    goto out;
                }
            }
            why_none = "$KUBECONFIG is not set and ~/.kube/config does not exist";
        }
    }
    if (n_found) {
        st = from_kubeconfig(o, found, n_found, c, err);
    } else if (src == ENVD_K8S_SOURCE_KUBECONFIG) {
        *err = envd_error_new(ENVD_E_CONFIG, ENVD_TRANSPORT_NONE, 0, "kubeconfig missing: %s",
                              why_none ? why_none : "no file");
        st = ENVD_E_CONFIG;
    } else {
        if (src == ENVD_K8S_SOURCE_AUTO && why_none && !getenv("KUBERNETES_SERVICE_HOST")) {
            *err = envd_error_new(ENVD_E_CONFIG, ENVD_TRANSPORT_NONE, 0,
                                  "no Kubernetes configuration: %s (%s), and this is not a pod "
                                  "(KUBERNETES_SERVICE_HOST is not set)",
                                  why_none, home_cfg ? home_cfg : "no home directory");
            st = ENVD_E_CONFIG;
        } else {
            st = from_in_cluster(o, c, err);
        }
    }
    if (st == ENVD_OK && !c->ns && !(c->ns = envd_strdup("default")))
        st = ENVD_E_NOMEM;
out:
    free_strs(listed, n_listed);
    free_strs(found, n_found);
    free(home_cfg);
    if (st != ENVD_OK) {
        envd_k8s_conn_free(c);
        return st;
    }
    *out = c;
    return ENVD_OK;
}
