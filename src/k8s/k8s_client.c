/* NewFromK8s, sync and async, and the sandbox accessors.
 *
 * Async resolutions queue on one process-wide pool of at most MAX_WORKERS
 * threads. A worker is started when work is queued and fewer than the cap
 * run; it keeps one curl handle (so connections to the API server are
 * reused across lookups) and exits when the queue is empty, so no thread
 * lingers once a batch is done. */
#include "api/internal.h"
#include "k8s/k8s.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define MAX_WORKERS 16

/* ------------------------------------------------------------ accessors */

envd_status envd_k8s_sandbox_get(const envd_k8s_options *o, const char *ns, const char *name,
                                 envd_k8s_sandbox **out, envd_error **err)
{
    if (err)
        *err = NULL;
    if (!out)
        return ENVD_E_USAGE;
    envd_error *e = NULL;
    envd_status st = envd_k8s_lookup(o, ns, name, NULL, NULL, out, &e);
    if (err)
        *err = e;
    else
        envd_error_free(e);
    return st;
}

const char *envd_k8s_sandbox_namespace(const envd_k8s_sandbox *s)
{
    return s ? s->ns : NULL;
}
const char *envd_k8s_sandbox_name(const envd_k8s_sandbox *s)
{
    return s ? s->name : NULL;
}
const char *envd_k8s_sandbox_id(const envd_k8s_sandbox *s)
{
    return s ? s->id : NULL;
}
const char *envd_k8s_sandbox_token(const envd_k8s_sandbox *s)
{
    return s ? s->token : NULL;
}
const char *envd_k8s_sandbox_phase(const envd_k8s_sandbox *s)
{
    return s ? s->phase : NULL;
}
const char *envd_k8s_sandbox_ready(const envd_k8s_sandbox *s)
{
    return s ? s->ready : NULL;
}
const char *envd_k8s_sandbox_pod_ip(const envd_k8s_sandbox *s)
{
    return s ? s->pod_ip : NULL;
}

/* ------------------------------------------------------------ resolving */

/* Lookup, running check, and the client: the whole of NewFromK8s. */
static envd_status resolve(envd_runtime *rt, const char *ns, const char *name,
                           const envd_config *cfg, const envd_k8s_options *o, CURL *easy,
                           atomic_int *cancel, envd_client **out, envd_error **err)
{
    envd_k8s_sandbox *s = NULL;
    envd_status st = envd_k8s_lookup(o, ns, name, easy, cancel, &s, err);
    if (st != ENVD_OK)
        return st;
    int require = o ? o->require_running : 1;
    envd_error *nr = require ? envd_k8s_not_running_error(s) : NULL;
    if (nr) {
        envd_k8s_sandbox_free(s);
        *err = nr;
        return envd_error_code(nr);
    }
    envd_config *c = envd_config_dup(cfg);
    if (!c) {
        envd_k8s_sandbox_free(s);
        return ENVD_E_NOMEM;
    }
    /* The annotation's token wins over the caller's, as in the Go client. */
    if (s->token && (st = envd_config_set_runtime_token(c, s->token)) != ENVD_OK) {
        envd_config_free(c);
        envd_k8s_sandbox_free(s);
        return st;
    }
    st = envd_client_new(rt, s->id, c, out, err);
    envd_config_free(c);
    envd_k8s_sandbox_free(s);
    return st;
}

envd_status envd_client_from_k8s_opts(envd_runtime *rt, const char *ns, const char *name,
                                      const envd_config *cfg, const envd_k8s_options *k8s,
                                      envd_client **out, envd_error **err)
{
    if (err)
        *err = NULL;
    if (!rt || !out || !name)
        return ENVD_E_USAGE;
    *out = NULL;
    envd_error *e = NULL;
    envd_status st = resolve(rt, ns, name, cfg, k8s, NULL, NULL, out, &e);
    if (err)
        *err = e;
    else
        envd_error_free(e);
    return st;
}

envd_status envd_client_from_k8s(envd_runtime *rt, const char *ns, const char *name,
                                 const envd_config *cfg, envd_client **out, envd_error **err)
{
    return envd_client_from_k8s_opts(rt, ns, name, cfg, NULL, out, err);
}

/* ----------------------------------------------------------------- async */

typedef struct k8s_job {
    atomic_int refs;
    atomic_int cancel;
    envd_future *f;
    envd_runtime *rt;
    char *ns, *name;
    envd_config *cfg;
    envd_k8s_options *opts;
    struct k8s_job *next;
} k8s_job;

static pthread_mutex_t pool_mu = PTHREAD_MUTEX_INITIALIZER;
static k8s_job *q_head, *q_tail;
static int n_workers;

static void job_unref(void *op)
{
    k8s_job *j = op;
    if (atomic_fetch_sub(&j->refs, 1) != 1)
        return;
    free(j->ns);
    free(j->name);
    envd_config_free(j->cfg);
    envd_k8s_options_free(j->opts);
    free(j);
}

static void job_ref(void *op)
{
    atomic_fetch_add(&((k8s_job *)op)->refs, 1);
}
static void job_cancel(void *op)
{
    atomic_store(&((k8s_job *)op)->cancel, 1);
}
static void client_free_fn(void *p)
{
    envd_client_free(p);
}

static void job_run(k8s_job *j, CURL *easy)
{
    envd_client *c = NULL;
    envd_error *e = NULL;
    envd_status st;
    if (atomic_load(&j->cancel)) {
        st = ENVD_CANCELED;
    } else {
        st = resolve(j->rt, j->ns, j->name, j->cfg, j->opts, easy, &j->cancel, &c, &e);
        if (st != ENVD_OK && atomic_load(&j->cancel)) {
            envd_error_free(e);
            e = NULL;
            st = ENVD_CANCELED;
        }
    }
    if (st != ENVD_OK && !e)
        e = envd_error_new(st, ENVD_TRANSPORT_NONE, 0, "%s", envd_strerror(st));
    envd_future_complete(j->f, c, c ? client_free_fn : NULL, st == ENVD_OK ? NULL : e);
    job_unref(j);
}

static void *worker_main(void *arg)
{
    (void)arg;
    envd_k8s_curl_init();
    CURL *easy = curl_easy_init(); /* NULL: each lookup makes its own */
    for (;;) {
        pthread_mutex_lock(&pool_mu);
        k8s_job *j = q_head;
        if (j) {
            q_head = j->next;
            if (!q_head)
                q_tail = NULL;
        } else {
            n_workers--;
        }
        pthread_mutex_unlock(&pool_mu);
        if (!j)
            break;
        job_run(j, easy);
    }
    if (easy)
        curl_easy_cleanup(easy);
    return NULL;
}

/* Queues j; starts a worker if under the cap. ENVD_OK, or an error with j
 * not queued. */
static envd_status submit(k8s_job *j)
{
    pthread_mutex_lock(&pool_mu);
    j->next = NULL;
    if (q_tail)
        q_tail->next = j;
    else
        q_head = j;
    q_tail = j;
    envd_status st = ENVD_OK;
    if (n_workers < MAX_WORKERS) {
        pthread_t t;
        pthread_attr_t a;
        pthread_attr_init(&a);
        pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&t, &a, worker_main, NULL) == 0) {
            n_workers++;
        } else if (n_workers == 0) {
            /* Nobody would ever run it: take it back. */
            k8s_job **pp = &q_head;
            while (*pp != j)
                pp = &(*pp)->next;
            *pp = NULL;
            q_tail = NULL;
            for (k8s_job *p = q_head; p; p = p->next)
                q_tail = p;
            st = ENVD_E_NOMEM;
        }
        pthread_attr_destroy(&a);
    }
    pthread_mutex_unlock(&pool_mu);
    return st;
}

envd_status envd_client_from_k8s_opts_async(envd_runtime *rt, const char *ns, const char *name,
                                            const envd_config *cfg, const envd_k8s_options *k8s,
                                            envd_future **out)
{
    if (!rt || !name || !out)
        return ENVD_E_USAGE;
    *out = NULL;
    k8s_job *j = calloc(1, sizeof(*j));
    if (!j)
        return ENVD_E_NOMEM;
    atomic_init(&j->refs, 1);
    atomic_init(&j->cancel, 0);
    j->rt = rt;
    j->name = strdup(name);
    j->ns = ns && *ns ? strdup(ns) : NULL;
    j->cfg = envd_config_dup(cfg);
    j->opts = envd_k8s_options_dup(k8s);
    j->f = envd_future_create(ENVD_FK_CLIENT);
    if (!j->name || (ns && *ns && !j->ns) || !j->cfg || !j->opts || !j->f) {
        if (j->f) { /* complete it so its operation reference goes */
            envd_future_complete(j->f, NULL, NULL, NULL);
            envd_future_free(j->f);
        }
        job_unref(j);
        return ENVD_E_NOMEM;
    }
    envd_future *f = j->f;
    envd_cancel_hook hook = {job_cancel, job_ref, job_unref, j};
    envd_future_set_cancel(f, &hook);
    envd_status st = submit(j);
    if (st != ENVD_OK) {
        envd_future_complete(f, NULL, NULL, NULL);
        envd_future_free(f);
        job_unref(j);
        return st;
    }
    *out = f;
    return ENVD_OK;
}

envd_status envd_client_from_k8s_async(envd_runtime *rt, const char *ns, const char *name,
                                       const envd_config *cfg, envd_future **out)
{
    return envd_client_from_k8s_opts_async(rt, ns, name, cfg, NULL, out);
}

envd_client *envd_future_take_client(envd_future *f)
{
    return envd_future_take_result(f, ENVD_FK_CLIENT);
}
