/* NewFromK8s (a client for a Sandbox object) and the plain Sandbox read,
 * both on the lookup in lookup.c. */
#include "api/internal.h"
#include "core/alloc.h"
#include "api/sync.h"
#include "k8s/k8s.h"

#include <stdlib.h>

/* ------------------------------------------------------ client from k8s */

typedef struct client_ctx {
    envd_runtime *rt;
    envd_config *cfg;
    int require_running;
} client_ctx;

static void client_ctx_free(void *p)
{
    client_ctx *cx = p;
    if (!cx)
        return;
    envd_config_free(cx->cfg);
    free(cx);
}

static void client_free_fn(void *p)
{
    envd_client_free(p);
}

/* The running check and the client: the rest of NewFromK8s. */
static envd_error *make_client(void *ctx, envd_k8s_sb *s, void **result, envd_free_fn *free_fn)
{
    client_ctx *cx = ctx;
    envd_error *e = cx->require_running ? envd_k8s_not_running_error(s) : NULL;
    envd_client *c = NULL;
    envd_status st = ENVD_OK;
    if (!e) {
        /* The annotation's token wins over the caller's, as in the Go client. */
        if (s->token)
            st = envd_config_set_runtime_token(cx->cfg, s->token);
        if (st == ENVD_OK)
            st = envd_client_new(cx->rt, s->id, cx->cfg, &c, &e);
        if (st != ENVD_OK && !e)
            e = envd_error_new(st, ENVD_TRANSPORT_NONE, 0, "%s", envd_strerror(st));
    }
    envd_k8s_sandbox_free(&s->pub);
    if (c) {
        *result = c;
        *free_fn = client_free_fn;
    }
    return e;
}

envd_status envd_client_from_k8s_async(envd_runtime *rt, const char *ns, const char *name,
                                       const envd_config *cfg, const envd_k8s_options *k8s,
                                       envd_future **out)
{
    if (!out)
        return envd_start_error(ENVD_E_USAGE, "out is NULL");
    *out = NULL;
    if (!rt)
        return envd_start_error(ENVD_E_USAGE, "runtime is NULL");
    if (!name)
        return envd_start_error(ENVD_E_USAGE, "name is NULL");
    envd_k8s_worker *w = envd_k8s_runtime_worker(rt);
    client_ctx *cx = w ? envd_calloc(1, sizeof(*cx)) : NULL;
    if (cx) {
        cx->rt = rt;
        cx->require_running = k8s ? k8s->require_running : 1;
        cx->cfg = envd_config_dup(cfg); /* NULL: defaults */
    }
    if (!cx || !cx->cfg) {
        client_ctx_free(cx);
        return envd_start_error(ENVD_E_NOMEM, "out of memory");
    }
    envd_k8s_finish fin = {
        .kind = ENVD_FK_CLIENT, .make = make_client, .ctx = cx, .ctx_free = client_ctx_free};
    return envd_k8s_lookup_start(rt, rt->curl, w, k8s, ns, name, &fin, out);
}

envd_client *envd_future_take_client(envd_future *f)
{
    return envd_future_take_result(f, ENVD_FK_CLIENT);
}

/* ------------------------------------------------------- the Sandbox read */

static void sandbox_free_fn(void *p)
{
    envd_k8s_sandbox_free(p);
}

static envd_error *take_sandbox(void *ctx, envd_k8s_sb *s, void **result, envd_free_fn *free_fn)
{
    (void)ctx;
    *result = &s->pub;
    *free_fn = sandbox_free_fn;
    return NULL;
}

/* No runtime here: the lookup gets a curl engine and a worker of its own
 * for the call, so that it runs the same way as on a runtime. */
envd_status envd_k8s_sandbox_get(const envd_k8s_options *o, const char *ns, const char *name,
                                 envd_k8s_sandbox **out, envd_error **err)
{
    if (out)
        *out = NULL;
    envd_status st = envd_sync_begin(__func__, err);
    if (st != ENVD_OK)
        return st;
    envd_timers *timers = NULL;
    envd_curl_engine *curl = NULL;
    envd_k8s_worker *w = envd_k8s_worker_new();
    envd_future *f = NULL;
    if (!name)
        st = envd_start_error(ENVD_E_USAGE, "name is NULL");
    else if (!w || envd_timers_new(&timers) != 0 ||
             envd_curl_engine_new(timers, NULL, &curl) != ENVD_OK)
        st = envd_start_error(ENVD_E_NOMEM, "cannot start the lookup's I/O thread");
    if (st == ENVD_OK) {
        envd_k8s_finish fin = {.kind = ENVD_FK_K8S_SANDBOX, .make = take_sandbox};
        st = envd_k8s_lookup_start(NULL, curl, w, o, ns, name, &fin, &f);
    }
    void *r = NULL;
    st = envd_sync_call(__func__, st, f, ENVD_FK_K8S_SANDBOX, &r, err);
    if (out)
        *out = r;
    else
        envd_k8s_sandbox_free(r);
    envd_k8s_worker_stop(w);
    if (curl)
        envd_curl_engine_free(curl);
    envd_k8s_worker_free(w);
    if (timers)
        envd_timers_free(timers);
    return st;
}

/* ------------------------------------------------------ the Sandbox list */

envd_status envd_k8s_sandbox_list_async(envd_runtime *rt, const envd_k8s_options *o,
                                        const char *ns, const char *selector, envd_future **out)
{
    if (!out)
        return envd_start_error(ENVD_E_USAGE, "out is NULL");
    *out = NULL;
    if (!rt)
        return envd_start_error(ENVD_E_USAGE, "runtime is NULL");
    envd_k8s_worker *w = envd_k8s_runtime_worker(rt);
    if (!w)
        return envd_start_error(ENVD_E_NOMEM, "out of memory");
    envd_k8s_finish fin = {.kind = ENVD_FK_K8S_SANDBOX_LIST,
                           .selector = selector ? selector : ""};
    return envd_k8s_lookup_start(rt, rt->curl, w, o, ns, NULL, &fin, out);
}

ENVD_SYNC_TAKE(envd_k8s_sandbox_list, envd_k8s_sandboxes *, ENVD_FK_K8S_SANDBOX_LIST,
               (rt, o, ns, selector, &f_), envd_runtime *rt, const envd_k8s_options *o,
               const char *ns, const char *selector)

const envd_k8s_sandboxes *envd_future_k8s_sandboxes(const envd_future *f)
{
    return envd_future_result(f, ENVD_FK_K8S_SANDBOX_LIST);
}
