/* Exec credential plugins: spawn, collect, parse, cache. */
#include "k8s/exec_plugin.h"
#include "core/alloc.h"
#include "k8s/worker.h"
#include "core/buf.h"
#include "core/error.h"
#include "core/timer.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define MAX_STDOUT (1u << 20)
#define MAX_STDERR 2048u

void envd_k8s_cred_clear(envd_k8s_cred *cr)
{
    if (!cr)
        return;
    if (cr->token)
        OPENSSL_cleanse(cr->token, strlen(cr->token));
    free(cr->token);
    if (cr->key.data)
        OPENSSL_cleanse(cr->key.data, cr->key.len);
    free(cr->key.data);
    free(cr->cert.data);
    memset(cr, 0, sizeof(*cr));
}

static int blob_dup(envd_k8s_blob *dst, const envd_k8s_blob *src)
{
    dst->data = NULL;
    dst->len = 0;
    if (!src->data)
        return 0;
    if (!(dst->data = envd_malloc(src->len + 1)))
        return -1;
    memcpy(dst->data, src->data, src->len);
    dst->data[src->len] = 0;
    dst->len = src->len;
    return 0;
}

static int cred_dup(envd_k8s_cred *dst, const envd_k8s_cred *src)
{
    memset(dst, 0, sizeof(*dst));
    dst->expires = src->expires;
    if ((src->token && !(dst->token = envd_strdup(src->token))) || blob_dup(&dst->cert, &src->cert) ||
        blob_dup(&dst->key, &src->key)) {
        envd_k8s_cred_clear(dst);
        return -1;
    }
    return 0;
}

/* RFC 3339 ("2026-01-02T03:04:05Z", fractions and offsets allowed). */
static int parse_rfc3339(const char *s, int64_t *out)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    const char *p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!p)
        return -1;
    if (*p == '.')
        for (p++; *p >= '0' && *p <= '9'; p++)
            ;
    int64_t off = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        /* Exactly "+hh:mm": each byte is checked before the next is read,
         * so a short offset such as "-0:3" stops at its NUL instead of
         * stepping past it. */
        static const char shape[] = "d:dd"; /* after the first digit */
        if (p[1] < '0' || p[1] > '9')
            return -1;
        for (int i = 0; i < 4; i++) {
            char c = p[2 + i];
            if (shape[i] == ':' ? c != ':' : (c < '0' || c > '9'))
                return -1;
        }
        int hh = (p[1] - '0') * 10 + (p[2] - '0'), mm = (p[4] - '0') * 10 + (p[5] - '0');
        if (hh > 23 || mm > 59)
            return -1;
        off = (int64_t)(hh * 3600 + mm * 60) * (*p == '+' ? 1 : -1);
        p += 6;
    } else {
        return -1;
    }
    if (*p)
        return -1;
    *out = (int64_t)timegm(&tm) - off;
    return 0;
}

envd_status envd_k8s_parse_exec_credential(const char *text, size_t len, const char *api_version,
                                           envd_k8s_cred *out, char **problem)
{
    memset(out, 0, sizeof(*out));
    *problem = NULL;
    json_error_t je;
    json_t *root = json_loadb(text, len, 0, &je);
    if (!root || !json_is_object(root)) {
        *problem = envd_strdup_printf("its output is not a JSON object (%s)",
                                      root ? "another JSON value" : je.text);
        json_decref(root);
        return ENVD_E_CONFIG;
    }
    const char *av = json_string_value(json_object_get(root, "apiVersion"));
    const char *kind = json_string_value(json_object_get(root, "kind"));
    json_t *status = json_object_get(root, "status");
    const char *bad = NULL;
    char buf[256];
    if (!kind || strcmp(kind, "ExecCredential") != 0) {
        bad = "its output is not an ExecCredential (kind)";
    } else if (!av || strcmp(av, api_version) != 0) {
        snprintf(buf, sizeof(buf), "it answered apiVersion '%s' where '%s' was configured",
                 av ? av : "", api_version);
        bad = buf;
    } else if (!json_is_object(status)) {
        bad = "its ExecCredential has no status";
    }
    if (!bad) {
        const char *tok = json_string_value(json_object_get(status, "token"));
        const char *cert = json_string_value(json_object_get(status, "clientCertificateData"));
        const char *key = json_string_value(json_object_get(status, "clientKeyData"));
        const char *exp = json_string_value(json_object_get(status, "expirationTimestamp"));
        if (tok && *tok && !(out->token = envd_strdup(tok)))
            bad = "out of memory";
        if (!bad && !cert != !key)
            bad = "its ExecCredential has a client certificate without a key, or a key without "
                  "a certificate";
        if (!bad && cert && key) {
            out->cert.data = (unsigned char *)envd_strdup(cert);
            out->key.data = (unsigned char *)envd_strdup(key);
            out->cert.len = strlen(cert);
            out->key.len = strlen(key);
            if (!out->cert.data || !out->key.data)
                bad = "out of memory";
        }
        if (!bad && !out->token && !out->cert.data)
            bad = "its ExecCredential holds neither a token nor a client certificate";
        if (!bad && exp && parse_rfc3339(exp, &out->expires) != 0) {
            snprintf(buf, sizeof(buf), "its expirationTimestamp '%.64s' is not RFC 3339", exp);
            bad = buf;
        }
    }
    json_decref(root);
    if (bad) {
        envd_k8s_cred_clear(out);
        *problem = envd_strdup(bad);
        return ENVD_E_CONFIG;
    }
    return ENVD_OK;
}

/* ---------------------------------------------------------------- cache */

typedef struct cache_entry {
    char *key;
    envd_k8s_cred cred;
    struct cache_entry *next;
} cache_entry;

static pthread_mutex_t cache_mu = PTHREAD_MUTEX_INITIALIZER;
static cache_entry *cache;

/* Everything that makes two plugin configurations the same. */
static char *cache_key(const envd_k8s_conn *c)
{
    const envd_k8s_exec *x = c->exec;
    size_t n = strlen(x->command) + strlen(x->api_version) + 8;
    for (size_t i = 0; i < x->n_args; i++)
        n += strlen(x->args[i]) + 1;
    for (size_t i = 0; i < x->n_env; i++)
        n += strlen(x->env[i]) + 1;
    if (x->provide_cluster_info)
        n += strlen(c->server) + 1;
    char *k = envd_malloc(n);
    if (!k)
        return NULL;
    /* \x1f cannot appear in a kubeconfig string that matters here */
    char *p = k + sprintf(k, "%s\x1f%s", x->api_version, x->command);
    for (size_t i = 0; i < x->n_args; i++)
        p += sprintf(p, "\x1f%s", x->args[i]);
    *p++ = '\x1e';
    for (size_t i = 0; i < x->n_env; i++)
        p += sprintf(p, "\x1f%s", x->env[i]);
    *p++ = '\x1e';
    if (x->provide_cluster_info)
        p += sprintf(p, "%s", c->server);
    *p = 0;
    return k;
}

static int cache_get(const char *key, envd_k8s_cred *out)
{
    int found = 0;
    pthread_mutex_lock(&cache_mu);
    for (cache_entry *e = cache; e; e = e->next) {
        if (strcmp(e->key, key) != 0)
            continue;
        /* expired a little early rather than used past the end */
        if (e->cred.expires == 0 || (int64_t)time(NULL) + 10 < e->cred.expires)
            found = cred_dup(out, &e->cred) == 0;
        break;
    }
    pthread_mutex_unlock(&cache_mu);
    return found;
}

static void cache_put(char *key, const envd_k8s_cred *cred)
{
    envd_k8s_cred copy;
    if (cred_dup(&copy, cred) != 0) {
        free(key);
        return;
    }
    pthread_mutex_lock(&cache_mu);
    cache_entry *e = cache;
    for (; e; e = e->next)
        if (strcmp(e->key, key) == 0)
            break;
    if (e) {
        envd_k8s_cred_clear(&e->cred);
        e->cred = copy;
        free(key);
    } else if ((e = envd_calloc(1, sizeof(*e)))) {
        e->key = key;
        e->cred = copy;
        e->next = cache;
        cache = e;
    } else {
        envd_k8s_cred_clear(&copy);
        free(key);
    }
    pthread_mutex_unlock(&cache_mu);
}

/* ------------------------------------------------------------------ run */

static char *exec_info(const envd_k8s_conn *c)
{
    const envd_k8s_exec *x = c->exec;
    json_t *spec = json_pack("{s:b}", "interactive", 0);
    if (spec && x->provide_cluster_info) {
        json_t *cl =
            json_pack("{s:s, s:b}", "server", c->server, "insecure-skip-tls-verify", c->insecure);
        if (cl && c->ca.data) {
            size_t bl = 4 * ((c->ca.len + 2) / 3) + 1;
            char *b64 = envd_malloc(bl);
            if (b64) {
                EVP_EncodeBlock((unsigned char *)b64, c->ca.data, (int)c->ca.len);
                json_object_set_new(cl, "certificate-authority-data", json_string(b64));
                free(b64);
            }
        }
        if (cl && c->tls_server_name)
            json_object_set_new(cl, "tls-server-name", json_string(c->tls_server_name));
        if (cl && c->proxy_url)
            json_object_set_new(cl, "proxy-url", json_string(c->proxy_url));
        if (cl)
            json_object_set_new(spec, "cluster", cl);
    }
    json_t *info = spec ? json_pack("{s:s, s:s, s:o}", "apiVersion", x->api_version, "kind",
                                    "ExecCredential", "spec", spec)
                        : NULL;
    char *s = info ? json_dumps(info, JSON_COMPACT) : NULL;
    json_decref(info);
    return s;
}

/* environ, minus the names the plugin config sets, plus those and
 * KUBERNETES_EXEC_INFO. The strings are borrowed except info. */
static char **build_env(const envd_k8s_exec *x, char *info)
{
    size_t n = 0;
    while (environ && environ[n])
        n++;
    char **env = envd_calloc(n + x->n_env + 2, sizeof(char *));
    if (!env)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const char *eq = strchr(environ[i], '=');
        size_t nl = eq ? (size_t)(eq - environ[i]) : strlen(environ[i]);
        int over = nl == strlen("KUBERNETES_EXEC_INFO") &&
                   strncmp(environ[i], "KUBERNETES_EXEC_INFO", nl) == 0;
        for (size_t j = 0; j < x->n_env && !over; j++)
            over = strncmp(x->env[j], environ[i], nl) == 0 && x->env[j][nl] == '=';
        if (!over)
            env[k++] = environ[i];
    }
    for (size_t j = 0; j < x->n_env; j++)
        env[k++] = x->env[j];
    env[k++] = info;
    env[k] = NULL;
    return env;
}

static void tidy_stderr(envd_buf *b)
{
    if (!b->data)
        return;
    while (b->len > 0 && (b->data[b->len - 1] == '\n' || b->data[b->len - 1] == ' '))
        b->data[--b->len] = 0;
    for (size_t i = 0; i < b->len; i++)
        if (b->data[i] == '\n')
            b->data[i] = ' ';
}

static envd_error *plugin_error(envd_status code, const envd_k8s_conn *c, const char *what,
                                const envd_buf *err_out)
{
    const envd_k8s_exec *x = c->exec;
    const char *se = err_out && err_out->len ? err_out->data : NULL;
    return envd_error_new(code, ENVD_TRANSPORT_NONE, 0,
                          "exec credential plugin '%s' of %s %s%s%s%s%s", x->command, c->user_desc,
                          what, se ? "; stderr: " : "", se ? se : "", x->install_hint ? "; " : "",
                          x->install_hint ? x->install_hint : "");
}

/* The spawned plugin and what it printed. */
typedef struct plugin_run {
    pid_t pid;
    int out_fd, err_fd; /* read ends */
    envd_buf out, err;
    int status; /* waitpid's */
} plugin_run;

/* Starts x->command with stdin from /dev/null and both outputs piped.
 * ENVD_OK, or an error in *err (nothing left running). */
static envd_status spawn_plugin(const envd_k8s_conn *c, char **argv, char **env, plugin_run *r,
                                envd_error **err)
{
    const envd_k8s_exec *x = c->exec;
    int po[2] = {-1, -1}, pe[2] = {-1, -1};
    posix_spawn_file_actions_t fa;
    if (pipe2(po, O_CLOEXEC) != 0 || pipe2(pe, O_CLOEXEC) != 0 ||
        posix_spawn_file_actions_init(&fa) != 0) {
        *err =
            envd_error_new(ENVD_E_IO, ENVD_TRANSPORT_NONE, 0, "exec plugin: %s", strerror(errno));
        for (int i = 0; i < 2; i++) {
            if (po[i] >= 0)
                close(po[i]);
            if (pe[i] >= 0)
                close(pe[i]);
        }
        return ENVD_E_IO;
    }
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, po[1], 1);
    posix_spawn_file_actions_adddup2(&fa, pe[1], 2);
    int rc = posix_spawnp(&r->pid, x->command, &fa, NULL, argv, env);
    posix_spawn_file_actions_destroy(&fa);
    close(po[1]);
    close(pe[1]);
    r->out_fd = po[0];
    r->err_fd = pe[0];
    if (rc == 0)
        return ENVD_OK;
    close(po[0]);
    close(pe[0]);
    r->out_fd = r->err_fd = -1;
    r->pid = -1;
    char what[256];
    snprintf(what, sizeof(what), "could not be started: %s%s", strerror(rc),
             rc == ENOENT && !strchr(x->command, '/') ? " (not found in PATH)" : "");
    *err = plugin_error(ENVD_E_CONFIG, c, what, NULL);
    return ENVD_E_CONFIG;
}

/* Reads both outputs until they close. Wakes on the worker's descriptor
 * too: a canceled lookup or a stopping runtime ends the wait at once.
 * Returns ENVD_OK, ENVD_CANCELED, ENVD_DEADLINE_EXCEEDED, ENVD_E_IO or
 * ENVD_E_NOMEM; the caller kills the plugin on anything but OK. */
static envd_status collect(plugin_run *r, int64_t timeout_ms, const envd_k8s_stop *stop)
{
    int64_t deadline = timeout_ms > 0 ? envd_now_ms() + timeout_ms : 0;
    struct pollfd pf[3] = {{r->out_fd, POLLIN, 0}, {r->err_fd, POLLIN, 0}, {-1, POLLIN, 0}};
    if (stop && stop->worker)
        pf[2].fd = envd_k8s_worker_wake_fd(stop->worker);
    int open_fds = 2;
    while (open_fds > 0) {
        if (stop && ((stop->cancel && atomic_load(stop->cancel)) ||
                     (stop->worker && envd_k8s_worker_stopping(stop->worker))))
            return ENVD_CANCELED;
        int wait = -1;
        if (deadline) {
            int64_t left = deadline - envd_now_ms();
            if (left <= 0)
                return ENVD_DEADLINE_EXCEEDED;
            wait = left > INT32_MAX ? INT32_MAX : (int)left;
        }
        int n = poll(pf, 3, wait);
        if (n < 0 && errno != EINTR)
            return ENVD_E_IO;
        if (n > 0 && pf[2].revents)
            envd_k8s_worker_drain(stop->worker);
        for (int i = 0; n > 0 && i < 2; i++) {
            if (pf[i].fd < 0 || !pf[i].revents)
                continue;
            char buf[4096];
            ssize_t got = read(pf[i].fd, buf, sizeof(buf));
            if (got > 0) {
                if (envd_buf_append(i == 0 ? &r->out : &r->err, buf, (size_t)got) != 0)
                    return ENVD_E_NOMEM;
            } else if (got == 0 || (errno != EINTR && errno != EAGAIN)) {
                pf[i].fd = -1;
                open_fds--;
            }
        }
    }
    return ENVD_OK;
}

/* What the plugin's exit and output amount to. */
static envd_status judge(const envd_k8s_conn *c, plugin_run *r, envd_status st,
                         int64_t timeout_ms, envd_k8s_cred *out, envd_error **err)
{
    char what[512];
    tidy_stderr(&r->err);
    if (st == ENVD_CANCELED) {
        *err = envd_error_new(ENVD_CANCELED, ENVD_TRANSPORT_NONE, 0, "canceled");
        return st;
    }
    if (st == ENVD_DEADLINE_EXCEEDED) {
        snprintf(what, sizeof(what), "did not finish within %lld ms", (long long)timeout_ms);
        *err = plugin_error(ENVD_DEADLINE_EXCEEDED, c, what, &r->err);
        return st;
    }
    if (st != ENVD_OK)
        return st;
    int ws = r->status;
    if (WIFEXITED(ws) && WEXITSTATUS(ws) != 0) {
        snprintf(what, sizeof(what), "failed with exit status %d", WEXITSTATUS(ws));
        *err = plugin_error(ENVD_E_CONFIG, c, what, &r->err);
        return ENVD_E_CONFIG;
    }
    if (WIFSIGNALED(ws)) {
        snprintf(what, sizeof(what), "was killed by signal %d", WTERMSIG(ws));
        *err = plugin_error(ENVD_E_CONFIG, c, what, &r->err);
        return ENVD_E_CONFIG;
    }
    char *problem = NULL;
    st = envd_k8s_parse_exec_credential(r->out.data ? r->out.data : "", r->out.len,
                                        c->exec->api_version, out, &problem);
    if (st != ENVD_OK) {
        snprintf(what, sizeof(what), "gave no usable credential: %s",
                 problem ? problem : "out of memory");
        *err = plugin_error(ENVD_E_CONFIG, c, what, &r->err);
        free(problem);
    }
    return st;
}

static envd_status run_plugin(const envd_k8s_conn *c, int64_t timeout_ms,
                              const envd_k8s_stop *stop, envd_k8s_cred *out, envd_error **err)
{
    const envd_k8s_exec *x = c->exec;
    plugin_run r = {.pid = -1, .out_fd = -1, .err_fd = -1};
    envd_buf_init_capped(&r.out, MAX_STDOUT);
    envd_buf_init_capped(&r.err, MAX_STDERR);
    char *info_json = exec_info(c), *info = NULL;
    char **env = NULL, **argv = NULL;
    envd_status st = ENVD_E_NOMEM;
    if (info_json)
        info = envd_strdup_printf("KUBERNETES_EXEC_INFO=%s", info_json);
    if (info) {
        env = build_env(x, info);
        argv = envd_calloc(x->n_args + 2, sizeof(char *));
    }
    if (env && argv) {
        argv[0] = x->command;
        for (size_t i = 0; i < x->n_args; i++)
            argv[i + 1] = x->args[i];
        st = spawn_plugin(c, argv, env, &r, err);
    }
    if (st == ENVD_OK) {
        st = collect(&r, timeout_ms, stop);
        if (st != ENVD_OK)
            kill(r.pid, SIGKILL); /* hung, or nobody waits for it any more */
        while (waitpid(r.pid, &r.status, 0) < 0 && errno == EINTR)
            ;
        close(r.out_fd);
        close(r.err_fd);
        st = judge(c, &r, st, timeout_ms, out, err);
    }
    if (r.out.data)
        OPENSSL_cleanse(r.out.data, r.out.len);
    free(r.out.data);
    free(r.err.data);
    free(argv);
    free(env);
    free(info);
    free(info_json);
    return st;
}

envd_status envd_k8s_exec_credential(const envd_k8s_conn *c, int fresh, int64_t timeout_ms,
                                     const envd_k8s_stop *stop, envd_k8s_cred *out,
                                     envd_error **err)
{
    memset(out, 0, sizeof(*out));
    char *key = cache_key(c);
    if (!key)
        return ENVD_E_NOMEM;
    if (!fresh && cache_get(key, out)) {
        free(key);
        return ENVD_OK;
    }
    /* Each runtime runs its plugins on its one worker, one at a time, so the
     * lookups queued behind a run find its result in the cache. */
    envd_status st = run_plugin(c, timeout_ms, stop, out, err);
    if (st == ENVD_OK)
        cache_put(key, out);
    else
        free(key);
    return st;
}
