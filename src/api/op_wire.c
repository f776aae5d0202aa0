/* The transfer of a non-RPC operation against its stop (op_wire.h). */
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

void envd_op_wire_stop(envd_op_wire *w)
{
    pthread_mutex_lock(&w->mu);
    if (w->http && !w->http_done)
        envd_http_cancel(w->http);
    pthread_mutex_unlock(&w->mu);
}
