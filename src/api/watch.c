/* Watching a directory: the WatchDir server stream (events to a callback,
 * a handle to stop it). The polling watchers are in fs_watcher.c. */
#include "api/fs_internal.h"
#include "core/alloc.h"
#include "api/op.h"
#include "api/sync.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* ---- WatchDir stream --------------------------------------------------------- */

/* The watch whose cb this thread is running, if any: envd_watch_stop from
 * inside cb must not wait for itself. */
static _Thread_local const envd_watch *tl_in_cb;

/* An operation (op.h). References: the transport (until on_done has run),
 * the caller's (the handle, dropped by envd_watch_free; until the handle
 * is delivered, the start future's result holds it), the cancel hooks
 * while they run, and the starting function. */
struct envd_watch {
    envd_op op;           /* first: the transport's ud is the op */
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

static void watch_destroy(envd_op *op)
{
    envd_watch *w = (envd_watch *)op;
    envd_future_free(w->done_f);
    pthread_mutex_destroy(&w->cb_mu);
    free(w);
}

static const envd_op_class watch_class = {.destroy = watch_destroy};

static void watch_unref(envd_watch *w)
{
    envd_op_unref(&w->op);
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
    envd_transport_kind tk = w->op.t->ops->kind;
    envd_op_release(&w->op);
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
    if (!out)
        return envd_start_error(ENVD_E_USAGE, "out is NULL");
    *out = NULL;
    if (!c)
        return envd_start_error(ENVD_E_USAGE, "client is NULL");
    envd_status s = envd_fs_check_str("path", path);
    if (s != ENVD_OK)
        return s;
    if (!cb)
        return envd_start_error(ENVD_E_USAGE, "cb is NULL");
    static const struct {
        unsigned flag;
        envd_gate gate;
    } gated[] = {{ENVD_WATCH_RECURSIVE, ENVD_GATE_RECURSIVE_WATCH},
                 {ENVD_WATCH_INCLUDE_ENTRY, ENVD_GATE_WATCH_ENTRY},
                 {ENVD_WATCH_ALLOW_NETWORK_MOUNTS, ENVD_GATE_WATCH_NETWORK}};
    for (size_t i = 0; i < sizeof gated / sizeof gated[0]; i++)
        if ((flags & gated[i].flag) && (s = envd_client_gate(c, gated[i].gate)) != ENVD_OK)
            return s;
    envd_watch *w = envd_calloc(1, sizeof(*w));
    if (!w)
        return ENVD_E_NOMEM;
    envd_op_init(&w->op, &watch_class, c->rt);
    envd_op_ref(&w->op); /* the caller's */
    w->cb = cb;
    w->ud = ud;
    pthread_mutex_init(&w->cb_mu, NULL);
    envd_future *sf = w->start_f = envd_future_create(ENVD_FK_WATCH);
    w->done_f = envd_future_create(ENVD_FK_NONE);
    s = ENVD_E_NOMEM;
    if (sf && w->done_f) {
        Filesystem__WatchDirRequest req = FILESYSTEM__WATCH_DIR_REQUEST__INIT;
        fill_watch_request(&req, path, flags);
        envd_call call = {.method = "/filesystem.Filesystem/WatchDir",
                          .kind = ENVD_RPC_SERVER_STREAM,
                          .msg = &req.base,
                          .timeout_ms = c->cfg->request_timeout_ms,
                          .idle_timeout_ms = c->cfg->idle_timeout_ms};
        s = envd_op_start_rpc(&w->op, c, &call, on_watch_message, on_watch_done);
    }
    if (s != ENVD_OK) {
        envd_future_discard(sf);
        envd_future_discard(w->done_f);
        w->done_f = NULL;
        watch_unref(w);
        watch_unref(w);
        return s;
    }
    /* sf: on_done may have completed it, but its caller reference is ours */
    envd_op_bind(&w->op, sf);
    envd_op_bind(&w->op, w->done_f);
    *out = sf;
    watch_unref(w);
    return ENVD_OK;
}

envd_watch *envd_future_take_watch(envd_future *f)
{
    return envd_future_take_result(f, ENVD_FK_WATCH);
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
    envd_op_stop(&w->op);
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
