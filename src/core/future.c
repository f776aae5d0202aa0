/* Futures: a mutex and condition variable each, plus a list of wait-any
 * waiters. Nothing here knows what the operation is. */
#include "core/future.h"
#include "core/alloc.h"
#include "core/error.h"
#include "core/thread.h"
#include "core/timer.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

typedef struct waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int fired;
} waiter;

typedef struct waiter_node {
    waiter *w;
    struct waiter_node *next, *prev;
} waiter_node;

struct envd_future {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    atomic_int refs;
    int kind;
    int done;    /* the outcome is set: accessors answer */
    int settled; /* and the completion callback returned: waits end */
    envd_status status; /* the outcome, kept when the error is taken out */
    int cancel_requested;
    envd_cancel_hook hook;
    int has_hook;
    void *result;
    envd_free_fn result_free;
    envd_error *err;
    envd_future_cb cb;
    void *cb_ud;
    waiter_node *waiters;
    atomic_ullong aux; /* envd_future_set_aux */
};

static void cond_init_monotonic(pthread_cond_t *cv)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(cv, &ca);
    pthread_condattr_destroy(&ca);
}

static void deadline_ts(int64_t deadline_ms, struct timespec *ts)
{
    ts->tv_sec = deadline_ms / 1000;
    ts->tv_nsec = (long)(deadline_ms % 1000) * 1000000L;
}

envd_future *envd_future_create(int kind)
{
    envd_future *f = envd_calloc(1, sizeof(*f));
    if (!f)
        return NULL;
    pthread_mutex_init(&f->mu, NULL);
    cond_init_monotonic(&f->cv);
    atomic_init(&f->refs, 2);
    f->kind = kind;
    return f;
}

/* A callback must not wait for the library, whichever thread runs it. */
static void run_callback(envd_future_cb cb, envd_future *f, void *ud)
{
    envd_thread_callback_enter();
    cb(f, ud);
    envd_thread_callback_leave();
}

static void future_unref(envd_future *f)
{
    if (atomic_fetch_sub(&f->refs, 1) != 1)
        return;
    if (f->result && f->result_free)
        f->result_free(f->result);
    envd_error_free(f->err);
    pthread_mutex_destroy(&f->mu);
    pthread_cond_destroy(&f->cv);
    free(f);
}

void envd_future_set_cancel(envd_future *f, const envd_cancel_hook *hook)
{
    pthread_mutex_lock(&f->mu);
    if (f->done) {
        pthread_mutex_unlock(&f->mu);
        return;
    }
    f->hook = *hook;
    f->has_hook = 1;
    int now = f->cancel_requested;
    if (now)
        f->hook.ref(f->hook.op);
    pthread_mutex_unlock(&f->mu);
    if (now) {
        hook->cancel(hook->op);
        hook->unref(hook->op);
    }
}

void envd_future_complete(envd_future *f, void *result, envd_free_fn free_fn, envd_error *err)
{
    pthread_mutex_lock(&f->mu);
    if (f->done) { /* never twice: keep the first outcome */
        pthread_mutex_unlock(&f->mu);
        if (result && free_fn)
            free_fn(result);
        envd_error_free(err);
        return;
    }
    f->done = 1;
    f->has_hook = 0;
    f->result = result; /* kept with an error too: a failed command has output */
    f->result_free = free_fn;
    f->err = err;
    f->status = err ? err->code : ENVD_OK;
    envd_future_cb cb = f->cb;
    void *cb_ud = f->cb_ud;
    f->cb = NULL;
    pthread_mutex_unlock(&f->mu);
    /* Waiters go only once the callback returned: whoever waited may rely
     * on what it did. */
    if (cb)
        run_callback(cb, f, cb_ud);
    pthread_mutex_lock(&f->mu);
    f->settled = 1;
    pthread_cond_broadcast(&f->cv);
    for (waiter_node *n = f->waiters; n; n = n->next) {
        pthread_mutex_lock(&n->w->mu);
        n->w->fired = 1;
        pthread_cond_signal(&n->w->cv);
        pthread_mutex_unlock(&n->w->mu);
    }
    pthread_mutex_unlock(&f->mu);
    future_unref(f);
}

void *envd_future_result(const envd_future *f, int kind)
{
    if (!f)
        return NULL;
    envd_future *m = (envd_future *)f;
    pthread_mutex_lock(&m->mu);
    void *r = (m->done && m->kind == kind) ? m->result : NULL;
    pthread_mutex_unlock(&m->mu);
    return r;
}

void *envd_future_take_result(envd_future *f, int kind)
{
    if (!f)
        return NULL;
    pthread_mutex_lock(&f->mu);
    void *r = NULL;
    if (f->done && f->kind == kind) {
        r = f->result;
        f->result = NULL;
    }
    pthread_mutex_unlock(&f->mu);
    return r;
}

int envd_future_kind(const envd_future *f) { return f ? f->kind : -1; }

envd_status envd_future_wait(envd_future *f, int64_t timeout_ms)
{
    if (!f || envd_thread_is_engine())
        return ENVD_E_USAGE;
    int64_t deadline = timeout_ms >= 0 ? envd_now_ms() + timeout_ms : 0;
    pthread_mutex_lock(&f->mu);
    while (!f->settled) {
        if (timeout_ms < 0) {
            pthread_cond_wait(&f->cv, &f->mu);
        } else {
            struct timespec ts;
            deadline_ts(deadline, &ts);
            if (pthread_cond_timedwait(&f->cv, &f->mu, &ts) == ETIMEDOUT && !f->settled)
                break;
        }
    }
    int done = f->settled;
    pthread_mutex_unlock(&f->mu);
    return done ? ENVD_OK : ENVD_E_TIMEOUT;
}

envd_status envd_future_wait_any(envd_future *const *fs, size_t n, int64_t timeout_ms,
                                 size_t *index)
{
    if (!fs || n == 0 || envd_thread_is_engine())
        return ENVD_E_USAGE;
    for (size_t i = 0; i < n; i++)
        if (!fs[i])
            return ENVD_E_USAGE;
    waiter w;
    pthread_mutex_init(&w.mu, NULL);
    cond_init_monotonic(&w.cv);
    w.fired = 0;
    waiter_node *nodes = envd_calloc(n, sizeof(*nodes));
    if (!nodes) {
        pthread_mutex_destroy(&w.mu);
        pthread_cond_destroy(&w.cv);
        return ENVD_E_NOMEM;
    }
    size_t found = SIZE_MAX;
    size_t registered = 0;
    for (size_t i = 0; i < n && found == SIZE_MAX; i++) {
        envd_future *f = fs[i];
        pthread_mutex_lock(&f->mu);
        if (f->settled) {
            found = i;
        } else {
            nodes[i].w = &w;
            nodes[i].next = f->waiters;
            if (f->waiters)
                f->waiters->prev = &nodes[i];
            f->waiters = &nodes[i];
            registered = i + 1;
        }
        pthread_mutex_unlock(&f->mu);
    }
    if (found == SIZE_MAX) {
        int64_t deadline = timeout_ms >= 0 ? envd_now_ms() + timeout_ms : 0;
        pthread_mutex_lock(&w.mu);
        while (!w.fired) {
            if (timeout_ms < 0) {
                pthread_cond_wait(&w.cv, &w.mu);
            } else {
                struct timespec ts;
                deadline_ts(deadline, &ts);
                if (pthread_cond_timedwait(&w.cv, &w.mu, &ts) == ETIMEDOUT)
                    break;
            }
        }
        pthread_mutex_unlock(&w.mu);
    }
    for (size_t i = 0; i < registered; i++) {
        envd_future *f = fs[i];
        pthread_mutex_lock(&f->mu);
        if (nodes[i].w) {
            if (nodes[i].prev)
                nodes[i].prev->next = nodes[i].next;
            else
                f->waiters = nodes[i].next;
            if (nodes[i].next)
                nodes[i].next->prev = nodes[i].prev;
        }
        if (found == SIZE_MAX && f->settled)
            found = i;
        pthread_mutex_unlock(&f->mu);
    }
    free(nodes);
    pthread_mutex_destroy(&w.mu);
    pthread_cond_destroy(&w.cv);
    if (found == SIZE_MAX)
        return ENVD_E_TIMEOUT;
    if (index)
        *index = found;
    return ENVD_OK;
}

envd_status envd_future_wait_all(envd_future *const *fs, size_t n, int64_t timeout_ms)
{
    if (!fs || envd_thread_is_engine())
        return ENVD_E_USAGE;
    int64_t deadline = timeout_ms >= 0 ? envd_now_ms() + timeout_ms : 0;
    for (size_t i = 0; i < n; i++) {
        int64_t left = -1;
        if (timeout_ms >= 0) {
            left = deadline - envd_now_ms();
            if (left < 0)
                left = 0;
        }
        envd_status s = envd_future_wait(fs[i], left);
        if (s != ENVD_OK)
            return s;
    }
    return ENVD_OK;
}

int envd_future_done(const envd_future *f)
{
    if (!f)
        return 0;
    envd_future *m = (envd_future *)f;
    pthread_mutex_lock(&m->mu);
    int d = m->done;
    pthread_mutex_unlock(&m->mu);
    return d;
}

envd_status envd_future_status(const envd_future *f)
{
    if (!f)
        return ENVD_E_USAGE;
    envd_future *m = (envd_future *)f;
    pthread_mutex_lock(&m->mu);
    envd_status s = m->done ? m->status : ENVD_E_TIMEOUT;
    pthread_mutex_unlock(&m->mu);
    return s;
}

const envd_error *envd_future_error(const envd_future *f)
{
    if (!f)
        return NULL;
    envd_future *m = (envd_future *)f;
    pthread_mutex_lock(&m->mu);
    const envd_error *e = m->done ? m->err : NULL;
    pthread_mutex_unlock(&m->mu);
    return e;
}

envd_error *envd_future_take_error(envd_future *f)
{
    if (!f)
        return NULL;
    pthread_mutex_lock(&f->mu);
    envd_error *e = NULL;
    if (f->done) {
        e = f->err;
        f->err = NULL;
    }
    pthread_mutex_unlock(&f->mu);
    return e;
}

envd_status envd_future_get(envd_future *f, int64_t timeout_ms, envd_error **err)
{
    if (err)
        *err = NULL;
    if (!f) {
        if (err)
            *err = envd_error_new(ENVD_E_USAGE, ENVD_TRANSPORT_NONE, 0, "%s: f is NULL", __func__);
        return ENVD_E_USAGE;
    }
    if (envd_thread_is_engine()) {
        if (err)
            *err = envd_thread_refusal(__func__);
        return ENVD_E_USAGE;
    }
    envd_status s = envd_future_wait(f, timeout_ms);
    if (s != ENVD_OK)
        return s;
    s = envd_future_status(f);
    if (err)
        *err = envd_future_take_error(f);
    return s;
}

envd_status envd_future_on_complete(envd_future *f, envd_future_cb cb, void *ud)
{
    if (!f || !cb)
        return ENVD_E_USAGE;
    pthread_mutex_lock(&f->mu);
    if (f->cb) {
        pthread_mutex_unlock(&f->mu);
        return ENVD_E_USAGE;
    }
    if (!f->done) {
        f->cb = cb;
        f->cb_ud = ud;
        pthread_mutex_unlock(&f->mu);
        return ENVD_OK;
    }
    pthread_mutex_unlock(&f->mu);
    run_callback(cb, f, ud);
    return ENVD_OK;
}

void envd_future_cancel(envd_future *f)
{
    if (!f)
        return;
    pthread_mutex_lock(&f->mu);
    if (f->done || f->cancel_requested) {
        pthread_mutex_unlock(&f->mu);
        return;
    }
    f->cancel_requested = 1;
    if (!f->has_hook) {
        pthread_mutex_unlock(&f->mu);
        return;
    }
    envd_cancel_hook h = f->hook;
    h.ref(h.op);
    pthread_mutex_unlock(&f->mu);
    h.cancel(h.op);
    h.unref(h.op);
}

void envd_future_free(envd_future *f)
{
    if (!f)
        return;
    envd_future_cancel(f);
    future_unref(f);
}

void envd_future_set_aux(envd_future *f, uint64_t v)
{
    atomic_store(&f->aux, v);
}

uint64_t envd_future_aux(const envd_future *f)
{
    return f ? atomic_load(&((envd_future *)f)->aux) : 0;
}
