/* Watching a directory: the WatchDir server stream (events to a callback,
 * a handle to stop it). The polling watchers are in fs_watcher.c. */
#include "api/fs_internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* ---- WatchDir stream --------------------------------------------------------- */

/* References: the transport (until on_done has run), the caller's (the
 * handle, dropped by envd_watch_free; until the handle is delivered, the
 * start future's result holds it), the cancel hooks while they run, and the
 * starting function. */
/* The watch whose cb this thread is running, if any: envd_watch_stop from
 * inside cb must not wait for itself. */
static _Thread_local const envd_watch *tl_in_cb;

struct envd_watch {
    atomic_int refs;
    envd_runtime *rt; /* not the client: it may be freed while this runs */
    envd_rpc_transport *t;
    _Atomic(envd_rpc *) rpc;
    envd_future *start_f; /* I/O side: completed at the start event */
    envd_future *done_f;  /* completes when the stream ends; the watch holds
                           * the caller's reference */
    envd_fs_event_cb cb;
    void *ud;

    /* Held while cb runs, so envd_watch_stop can wait out a running cb. */
    pthread_mutex_t cb_mu;
    atomic_int stopped;

    int started;
    int bad_first;
};

static void watch_unref(envd_watch *w)
{
    if (atomic_fetch_sub(&w->refs, 1) != 1)
        return;
    envd_rpc *rpc = atomic_load(&w->rpc);
    if (rpc)
        w->t->ops->release(rpc);
    envd_future_free(w->done_f);
    pthread_mutex_destroy(&w->cb_mu);
    free(w);
}

static void hook_ref(void *p)
{
    atomic_fetch_add(&((envd_watch *)p)->refs, 1);
}
static void hook_unref(void *p)
{
    watch_unref(p);
}
static void hook_cancel(void *p)
{
    envd_watch *w = p;
    envd_rpc *rpc = atomic_load(&w->rpc);
    if (rpc)
        w->t->ops->cancel(rpc);
}

/* The start future's result until taken: freeing it frees the watch. */
static void watch_result_free(void *p)
{
    envd_watch_free(p);
}

static int on_watch_message(void *ud, const uint8_t *msg, size_t len)
{
    envd_watch *w = ud;
    Filesystem__WatchDirResponse *r = filesystem__watch_dir_response__unpack(NULL, len, msg);
    if (!r)
        return -1; /* on_done reports the protocol error */
    int rc = 0;
    if (!w->started) {
        if (r->event_case != FILESYSTEM__WATCH_DIR_RESPONSE__EVENT_START) {
            w->bad_first = r->event_case ? (int)r->event_case : -1;
            rc = -1;
        } else {
            w->started = 1;
            envd_future *sf = w->start_f;
            w->start_f = NULL;
            envd_future_complete(sf, w, watch_result_free, NULL);
        }
    } else if (r->event_case == FILESYSTEM__WATCH_DIR_RESPONSE__EVENT_FILESYSTEM && r->filesystem &&
               !atomic_load(&w->stopped)) {
        envd_fs_event ev;
        if (envd_fs_event_from_proto(r->filesystem, &ev) != ENVD_OK) {
            rc = -1;
        } else {
            pthread_mutex_lock(&w->cb_mu);
            if (!atomic_load(&w->stopped)) {
                tl_in_cb = w;
                w->cb(w->ud, &ev);
                tl_in_cb = NULL;
            }
            pthread_mutex_unlock(&w->cb_mu);
            envd_fs_event_clear(&ev);
        }
    }
    /* keepalives only feed the idle clock */
    filesystem__watch_dir_response__free_unpacked(r, NULL);
    return rc;
}

static void on_watch_done(void *ud, envd_error *err)
{
    envd_watch *w = ud;
    envd_transport_kind tk = w->t->ops->kind;
    envd_rt_release(w->rt);
    if (!w->started) {
        if (w->bad_first) {
            envd_error_free(err);
            err = envd_error_new(ENVD_E_PROTOCOL, tk, 0, "expected start event, got event %d",
                                 w->bad_first);
        } else if (!err) {
            err = envd_error_new(ENVD_E_PROTOCOL, tk, 0, "stream closed without start event");
        } else {
            envd_error_wrap(err, "failed to watch directory");
        }
        envd_future *sf = w->start_f;
        w->start_f = NULL;
        envd_future_complete(w->done_f, NULL, NULL, envd_error_dup(err));
        envd_future_complete(sf, NULL, NULL, err);
    } else if (err && atomic_load(&w->stopped) && err->code == ENVD_CANCELED) {
        envd_error_free(err); /* stopped by the caller: a normal end */
        envd_future_complete(w->done_f, NULL, NULL, NULL);
    } else {
        if (err)
            envd_error_wrap(err, "watch stream error");
        envd_future_complete(w->done_f, NULL, NULL, err);
    }
    if (!w->started)
        watch_unref(w); /* the caller's reference: no handle was delivered */
    watch_unref(w);     /* the transport's */
}

static void fill_watch_request(Filesystem__WatchDirRequest *req, const char *path, unsigned flags)
{
    req->path = (char *)path;
    req->recursive = (flags & ENVD_WATCH_RECURSIVE) != 0;
    req->include_entry = (flags & ENVD_WATCH_INCLUDE_ENTRY) != 0;
    req->allow_network_mounts = (flags & ENVD_WATCH_ALLOW_NETWORK_MOUNTS) != 0;
}

envd_status envd_fs_watch_dir_async(envd_client *c, const char *path, unsigned flags,
                                    envd_fs_event_cb cb, void *ud, envd_future **out)
{
    if (out)
        *out = NULL;
    if (!c || !path || !cb || !out)
        return ENVD_E_USAGE;
    Filesystem__WatchDirRequest req = FILESYSTEM__WATCH_DIR_REQUEST__INIT;
    fill_watch_request(&req, path, flags);
    size_t len = protobuf_c_message_get_packed_size(&req.base);
    uint8_t *body = malloc(len ? len : 1);
    envd_watch *w = calloc(1, sizeof(*w));
    envd_status s = ENVD_E_NOMEM;
    if (!body || !w) {
        free(body);
        free(w);
        return s;
    }
    protobuf_c_message_pack(&req.base, body);
    atomic_init(&w->refs, 3); /* transport + caller + this function */
    w->rt = c->rt;
    w->cb = cb;
    w->ud = ud;
    pthread_mutex_init(&w->cb_mu, NULL);
    w->start_f = envd_future_create(ENVD_FK_WATCH);
    w->done_f = envd_future_create(ENVD_FK_NONE);
    if (!w->start_f || !w->done_f)
        goto fail;
    if ((s = envd_rt_acquire(c->rt)) != ENVD_OK)
        goto fail;
    w->t = envd_client_rpc_transport(c);
    {
        envd_kv hdrs[c->n_headers + 2];
        char *owned = NULL;
        size_t nh = envd_call_headers(c, NULL, hdrs, &owned);
        hdrs[nh++] = (envd_kv){"keepalive-ping-interval", c->keepalive};
        envd_rpc_request rr = {
            .ep = &c->ep,
            .method = "/filesystem.Filesystem/WatchDir",
            .kind = ENVD_RPC_SERVER_STREAM,
            .headers = hdrs,
            .n_headers = nh,
            .body = body,
            .body_len = len,
            .timeout_ms = c->cfg->request_timeout_ms,
            .idle_timeout_ms = c->cfg->idle_timeout_ms,
        };
        envd_rpc_callbacks rcb = {on_watch_message, on_watch_done, w};
        envd_rpc *rpc = NULL;
        envd_future *sf = w->start_f; /* on_done may complete and clear it */
        s = w->t->ops->start(w->t, &rr, &rcb, &rpc);
        free(owned);
        free(body);
        body = NULL;
        if (s != ENVD_OK) {
            envd_rt_release(c->rt);
            goto fail;
        }
        atomic_store(&w->rpc, rpc);
        if (atomic_load(&w->stopped)) /* a stop raced with the start */
            w->t->ops->cancel(rpc);
        envd_cancel_hook hook = {hook_cancel, hook_ref, hook_unref, w};
        envd_future_set_cancel(sf, &hook);
        envd_future_set_cancel(w->done_f, &hook);
        *out = sf;
    }
    watch_unref(w);
    return ENVD_OK;
fail:
    free(body);
    if (w->start_f) {
        envd_future_complete(w->start_f, NULL, NULL, NULL);
        envd_future_free(w->start_f);
    }
    if (w->done_f) {
        envd_future_complete(w->done_f, NULL, NULL, NULL);
        envd_future_free(w->done_f);
    }
    pthread_mutex_destroy(&w->cb_mu);
    free(w);
    return s;
}

envd_watch *envd_future_take_watch(envd_future *f)
{
    return envd_future_take_result(f, ENVD_FK_WATCH);
}

envd_status envd_fs_watch_dir(envd_client *c, const char *path, unsigned flags, envd_fs_event_cb cb,
                              void *ud, envd_watch **out, envd_error **err)
{
    if (err)
        *err = NULL;
    if (out)
        *out = NULL;
    if (!out)
        return ENVD_E_USAGE;
    envd_future *f;
    envd_status s = envd_fs_watch_dir_async(c, path, flags, cb, ud, &f);
    if (s != ENVD_OK)
        return s;
    envd_future_wait(f, -1);
    s = envd_future_status(f);
    if (s == ENVD_OK)
        *out = envd_future_take_watch(f);
    else if (err)
        *err = envd_future_take_error(f);
    envd_future_free(f);
    return s;
}

void envd_watch_stop(envd_watch *w)
{
    if (!w)
        return;
    if (tl_in_cb == w) {
        /* from cb itself: it holds cb_mu; no further call after it returns */
        atomic_store(&w->stopped, 1);
    } else {
        pthread_mutex_lock(&w->cb_mu); /* waits out a cb running elsewhere */
        atomic_store(&w->stopped, 1);
        pthread_mutex_unlock(&w->cb_mu);
    }
    envd_rpc *rpc = atomic_load(&w->rpc);
    if (rpc)
        w->t->ops->cancel(rpc);
}

envd_future *envd_watch_future(envd_watch *w)
{
    return w ? w->done_f : NULL;
}

void envd_watch_free(envd_watch *w)
{
    if (!w)
        return;
    envd_watch_stop(w);
    watch_unref(w);
}
