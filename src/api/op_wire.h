/* What an operation that is not an RPC has on the wire: one plain-HTTP
 * transfer at a time (a Kubernetes request, a sandbox-API call). The op's
 * stop races it; this is the one place that race is settled. The wait
 * until a next request is due (a poll, a retry after 429) is the op's own
 * timer (envd_op_later, op.h), which envd_op_stop ends.
 *
 *   envd_op_wire_send   starts a transfer for op: a reference on op for
 *                       it (the caller's on_done drops it, after calling
 *                       envd_op_wire_finished first), the handle published,
 *                       and cancelled at once if op was stopped meanwhile.
 *   envd_op_wire_stop   from the op's stop: cancels the transfer (its
 *                       on_done reports ENVD_CANCELED). */
#ifndef ENVD_API_OP_WIRE_H
#define ENVD_API_OP_WIRE_H

#include "api/op.h"

typedef struct envd_op_wire {
    pthread_mutex_t mu;
    envd_http *http; /* the last transfer, released by destroy */
    int http_done;
} envd_op_wire;

void envd_op_wire_init(envd_op_wire *w);
void envd_op_wire_destroy(envd_op_wire *w);

/* Not OK: nothing started, no reference held, no callback will run. */
envd_status envd_op_wire_send(envd_op_wire *w, envd_op *op, envd_curl_engine *e,
                              const envd_http_request *req, const envd_http_callbacks *cb);
void envd_op_wire_finished(envd_op_wire *w);

void envd_op_wire_stop(envd_op_wire *w);

#endif
