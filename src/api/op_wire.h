/* What an operation that is not an RPC has on the wire: one plain-HTTP
 * transfer at a time (a Kubernetes request, a sandbox-API call), or a
 * timer until its next request is due (a poll, a retry after 429). The
 * op's stop races both; this is the one place that race is settled.
 *
 *   envd_op_wire_send   starts a transfer for op: a reference on op for
 *                       it (the caller's on_done drops it, after calling
 *                       envd_op_wire_finished first), the handle published,
 *                       and cancelled at once if op was stopped meanwhile.
 *   envd_op_wire_later  calls fn(op, stopped) once, after delay_ms, with a
 *                       reference on op held until fn returned; stopped is
 *                       1 when the op was stopped (fn completes it then).
 *   envd_op_wire_stop   from the op's stop: cancels the transfer (its
 *                       on_done reports ENVD_CANCELED), or disarms the
 *                       timer and runs fn(op, 1) at once. */
#ifndef ENVD_API_OP_WIRE_H
#define ENVD_API_OP_WIRE_H

#include "api/op.h"

typedef void (*envd_op_later_fn)(envd_op *op, int stopped);

typedef struct envd_op_wire {
    pthread_mutex_t mu;
    envd_http *http; /* the last transfer, released by destroy */
    int http_done;
    envd_timer *timer;
    envd_op *op; /* while a timer is armed */
    envd_op_later_fn fn;
} envd_op_wire;

void envd_op_wire_init(envd_op_wire *w);
void envd_op_wire_destroy(envd_op_wire *w);

/* Not OK: nothing started, no reference held, no callback will run. */
envd_status envd_op_wire_send(envd_op_wire *w, envd_op *op, envd_curl_engine *e,
                              const envd_http_request *req, const envd_http_callbacks *cb);
void envd_op_wire_finished(envd_op_wire *w);

/* ENVD_E_NOMEM when the timer cannot be had (fn not called). */
envd_status envd_op_wire_later(envd_op_wire *w, envd_op *op, envd_timers *ts, int64_t delay_ms,
                               envd_op_later_fn fn);
void envd_op_wire_stop(envd_op_wire *w);

#endif
