/* The operation model: one base every operation embeds, one way to start
 * an RPC, one header policy.
 *
 * An operation (a unary call, a command's Start/Connect stream, a WatchDir
 * stream, a StreamInput client stream, a /files transfer, a Kubernetes
 * lookup) is a struct whose first member is an envd_op. The base carries
 * what every operation needs and used to be written six times:
 *
 *   - a reference count. The starter holds one while it runs; the transport
 *     holds one from a successful start until on_done returned; a caller's
 *     handle (envd_handle, envd_watch, envd_input_stream) holds one; a
 *     future's cancel hook takes one for the length of each cancel call.
 *     The last envd_op_unref releases the RPC and calls cls->destroy.
 *   - the runtime (not the client: a future may outlive its client), the
 *     transport and the RPC handle. Non-RPC work (/files, Kubernetes HTTP)
 *     has no RPC handle; its class's stop function cancels it instead.
 *   - a stop flag. envd_op_stop may come before the RPC exists (a cancel
 *     racing with the start); the starter checks the flag after publishing
 *     the handle, so whichever comes second cancels.
 *   - the in-flight slot of the runtime's cap: taken by the starter,
 *     given back exactly once by envd_op_release (on_done calls it before
 *     completing any future, because a completed future's caller may free
 *     the client and the runtime right away).
 *   - one set of cancel hooks for its futures (envd_op_bind). Cancelling a
 *     future calls cls->cancel, which is envd_op_stop unless the operation
 *     gives cancel a further meaning (a run kills its process: "cancel
 *     means stop").
 *
 * Starting an RPC is always envd_op_start_rpc: slot, transport choice,
 * headers, packing, start, publish. envd_unary_start (internal.h) is the
 * one unary starter on top of it; commands, watch and input streams call
 * it directly with their message and callbacks.
 *
 * Headers: envd_op_headers is the only place a call's header list is built.
 * Connect-Timeout-Ms is sent only on /process.Process/Start and only from
 * the process timeout; Keepalive-Ping-Interval only on server streams and
 * only from the keepalive setting (never 0 or negative: envd crashes on 0).
 * Custom headers of either name are dropped there whatever the config
 * setters let through. */
#ifndef ENVD_API_OP_H
#define ENVD_API_OP_H

#include "api/internal.h"

typedef struct envd_op envd_op;

typedef struct envd_op_class {
    /* The last reference is gone (the RPC is released already): free the
     * embedding operation. Required. */
    void (*destroy)(envd_op *op);
    /* Non-RPC work: cancel it. Called by envd_op_stop after the flag is set;
     * may run before the work started (check envd_op_stopped after
     * publishing the work's handle). May be NULL. */
    void (*stop)(envd_op *op);
    /* What cancelling one of the operation's futures does; NULL means
     * envd_op_stop. */
    void (*cancel)(envd_op *op);
    /* The runtime is being freed while the op is tracked (envd_op_track):
     * start what must reach the server before the engines go (a run's
     * SIGKILL) and return its future, or NULL. Called with a reference
     * held, outside the runtime's lock; must not block. */
    envd_future *(*shutdown)(envd_op *op);
} envd_op_class;

struct envd_op {
    const envd_op_class *cls;
    atomic_int refs;
    envd_runtime *rt;
    envd_rpc_transport *t;   /* set by envd_op_start_rpc */
    _Atomic(envd_rpc *) rpc; /* set once start() returned */
    atomic_int stop;
    atomic_int slot; /* 1 while an in-flight slot is held */
    /* The runtime's list of tracked ops (its lock guards these). */
    envd_op *live_prev, *live_next;
    atomic_int live;
    /* envd_op_start_rpc's copy of the call, for a retry (op.c); NULL for
     * work that is not an RPC. Freed with the op. */
    struct envd_op_call *call;
    /* envd_op_later's timer and what it runs (rt->mu guards both). */
    envd_timer *later;
    void (*later_fn)(envd_op *op, int stopped);
};

/* One reference (the starter's). */
void envd_op_init(envd_op *op, const envd_op_class *cls, envd_runtime *rt);
void envd_op_ref(envd_op *op);
void envd_op_unref(envd_op *op);

/* Takes an in-flight slot (ENVD_E_BUSY when fail-fast and full,
 * ENVD_E_SHUTDOWN while the runtime closes). */
envd_status envd_op_acquire(envd_op *op);
/* Gives the slot back; later calls do nothing. */
void envd_op_release(envd_op *op);

/* Puts op on the runtime's list for cls->shutdown, until envd_op_release. */
void envd_op_track(envd_op *op);
/* envd_runtime_free, before the engines go: runs cls->shutdown of every
 * tracked op and waits (bounded) for what they started. */
void envd_ops_shutdown(envd_runtime *rt);

/* Sets the stop flag and cancels the RPC (or cls->stop's work). Any thread,
 * any number of times. */
void envd_op_stop(envd_op *op);
int envd_op_stopped(envd_op *op);

/* The retry count of c's config (envd_config_set_retries). */
int envd_op_max_retries(const envd_client *c);

/* Names c's sandbox in err's message when a gateway answered instead of
 * the sandbox and the message does not name it yet; rewrites Envoy's gRPC
 * form of a gateway reply (errmap.c). Returns err. */
envd_error *envd_op_gateway_error(const envd_client *c, envd_error *err);

/* The one timer of an op (a retry's back-off, a poll's wait): fn(op,
 * stopped) runs exactly once, on the timer thread after delay_ms, or at
 * once on the stopping thread when envd_op_stop comes first. stopped is 1
 * when op was stopped or the runtime is closing: fn then ends op without
 * starting work. envd_runtime_free waits for a running fn before the
 * engines go, and stops ops whose timer is armed. The caller's reference to
 * op passes to fn. ENVD_E_SHUTDOWN while the runtime closes, ENVD_E_NOMEM
 * without a timer: fn will not run. Used by RPC retries here, /files reads
 * (files_xfer.c), Kubernetes polls (k8s/lookup.c) and sandbox-API waits
 * (sandbox/call.c). */
typedef void (*envd_op_later_fn)(envd_op *op, int stopped);
envd_status envd_op_later(envd_op *op, int64_t delay_ms, envd_op_later_fn fn);

/* Installs the op's cancel hooks on f (before f can complete). */
void envd_op_bind(envd_op *op, envd_future *f);

/* A future the caller never saw: drop both its references. NULL is fine. */
void envd_future_discard(envd_future *f);

/* ---- starting an RPC ------------------------------------------------------ */

typedef struct envd_call {
    const char *method; /* "/process.Process/Start" */
    envd_rpc_kind kind;
    const ProtobufCMessage *msg; /* the request; NULL for a client stream */
    const char *user;            /* per-call user, NULL = the client's */
    int64_t timeout_ms;          /* see envd_rpc_request */
    int64_t idle_timeout_ms;
    int64_t process_timeout_ms; /* Start only: the process lifetime; 0 = none */
    int urgent; /* no in-flight slot: a kill sent while stopping */
} envd_call;

/* Retries: a failed attempt that the one retry rule allows (failure.c:
 * nothing of the request reached the sandbox, the retry count and the
 * request timeout not used up) is started again by op.c after its delay,
 * on the timer thread, with the same slot, message and headers; on_done
 * sees only the last attempt's outcome, on_message only messages of the
 * attempt that delivers them (an attempt that delivered one is never
 * retried). A stop while waiting for the next attempt ends the call with
 * ENVD_CANCELED at once. Client streams are never retried (their messages
 * are not kept). Every error on_done gets from a gateway names the
 * client's sandbox.
 *
 * Takes a slot (unless urgent), picks the transport, builds the headers, packs the message
 * and starts the call with callbacks whose ud is op. On success the
 * transport holds a new reference to op: on_done must call envd_op_release
 * before completing futures and envd_op_unref last. On failure nothing
 * started, no callback will run, the slot is given back and the caller
 * still holds its own reference. */
envd_status envd_op_start_rpc(envd_op *op, envd_client *c, const envd_call *call,
                              int (*on_message)(void *ud, const uint8_t *msg, size_t len),
                              void (*on_done)(void *ud, envd_error *err));

/* ---- headers ------------------------------------------------------------ */

/* What a call is, for the header policy. */
typedef enum envd_call_kind {
    ENVD_CALL_UNARY = ENVD_RPC_UNARY,
    ENVD_CALL_SERVER_STREAM = ENVD_RPC_SERVER_STREAM,
    ENVD_CALL_CLIENT_STREAM = ENVD_RPC_CLIENT_STREAM,
    ENVD_CALL_FILES /* plain HTTP to /files */
} envd_call_kind;

/* Storage the header list points into; free with envd_headers_done after
 * the call started. */
typedef struct envd_header_scratch {
    char *auth;        /* Authorization for a per-call user */
    char timeout[24];  /* Connect-Timeout-Ms */
    char *traffic;     /* the traffic token (api/traffic.h) */
    uint64_t traffic_gen;
    envd_status status; /* not OK: no token could be had; do not send */
} envd_header_scratch;

/* Room envd_op_headers needs in out (callers add their own extras). */
#define ENVD_OP_HEADERS_CAP(c) ((c)->n_headers + 4)

/* The headers of one call, in order: the client's (the Go client's set,
 * custom headers last) with Authorization for `user` (NULL = the
 * client's), minus custom Connect-Timeout-Ms / Keepalive-Ping-Interval,
 * then the reserved ones this call may carry, then the traffic token
 * (scratch->status says when there is none to be had). Returns the count. */
size_t envd_op_headers(envd_client *c, const char *method, envd_call_kind kind, const char *user,
                       int64_t process_timeout_ms, envd_kv *out, envd_header_scratch *scratch);
void envd_headers_done(envd_header_scratch *scratch);

#endif
