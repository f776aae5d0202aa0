/* The transfer or timer of a non-RPC operation against its stop (op_wire.h). */
#include "api/op_wire.h"

#include <string.h>

void envd_op_wire_init(envd_op_wire *w)
{
    memset(w, 0, sizeof(*w));
    pthread_mutex_init(&w->mu, NULL);
}

void envd_op_wire_destroy(envd_op_wire *w)
{
    envd_http_release(w->http);
    pthread_mutex_destroy(&w->mu);
}

envd_status envd_op_wire_send(envd_op_wire *w, envd_op *op, envd_curl_engine *e,
                              const envd_http_request *req, const envd_http_callbacks *cb)
{
    envd_http *h = NULL;
    envd_op_ref(op); /* the transfer's, dropped by the caller's on_done */
    envd_status st = envd_http_start(e, req, cb, &h);
    if (st != ENVD_OK) {
        envd_op_unref(op);
        return st;
    }
    pthread_mutex_lock(&w->mu);
    envd_http *old = w->http;
    w->http = h;
    w->http_done = 0;
    pthread_mutex_unlock(&w->mu);
    envd_http_release(old);
    if (envd_op_stopped(op)) /* stopped before w->http was there */
        envd_http_cancel(h);
    return ENVD_OK;
}

void envd_op_wire_finished(envd_op_wire *w)
{
    pthread_mutex_lock(&w->mu);
    w->http_done = 1;
    pthread_mutex_unlock(&w->mu);
}

/* Timer thread. No timer left: a stop took it (its cancel found it fired)
 * and leaves fn to this callback. */
static void fired(void *ud)
{
    envd_op_wire *w = ud;
    pthread_mutex_lock(&w->mu);
    envd_timer *t = w->timer;
    envd_op *op = w->op;
    envd_op_later_fn fn = w->fn;
    w->timer = NULL;
    pthread_mutex_unlock(&w->mu);
    if (t)
        envd_timer_cancel(t); /* from inside its callback: frees it */
    fn(op, !t || envd_op_stopped(op));
    envd_op_unref(op); /* the timer's */
}

envd_status envd_op_wire_later(envd_op_wire *w, envd_op *op, envd_timers *ts, int64_t delay_ms,
                               envd_op_later_fn fn)
{
    envd_op_ref(op); /* the timer's */
    pthread_mutex_lock(&w->mu); /* before fired can look */
    w->op = op;
    w->fn = fn;
    w->timer = envd_timer_start(ts, delay_ms, fired, w);
    int armed = w->timer != NULL;
    pthread_mutex_unlock(&w->mu);
    if (!armed) {
        envd_op_unref(op);
        return ENVD_E_NOMEM;
    }
    if (envd_op_stopped(op)) /* a stop that came before the timer existed */
        envd_op_wire_stop(w);
    return ENVD_OK;
}

void envd_op_wire_stop(envd_op_wire *w)
{
    pthread_mutex_lock(&w->mu);
    if (w->http && !w->http_done)
        envd_http_cancel(w->http);
    envd_timer *t = w->timer; /* whoever takes it cancels it */
    w->timer = NULL;
    envd_op *op = w->op;
    envd_op_later_fn fn = w->fn;
    pthread_mutex_unlock(&w->mu);
    /* Disarmed before it fired: fn runs here, and the timer's reference
     * goes. Fired: the callback runs fn. Not under mu: a running callback
     * takes it. */
    if (t && envd_timer_cancel(t)) {
        fn(op, 1);
        envd_op_unref(op);
    }
}
