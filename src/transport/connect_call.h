/* The Connect protocol's side of a call that does not depend on what carries
 * it: the request body and content type, and the reading of the reply (status
 * and content type, the unary body or the envelope stream, the end-of-stream
 * frame, the error a failed reply turns into). connect.c carries calls over
 * libcurl, h2c.c over its own HTTP/2 connections; both feed the reply here,
 * so a reply reads the same whichever carried it.
 *
 * Everything below runs on the carrying engine's I/O thread. */
#ifndef ENVD_TRANSPORT_CONNECT_CALL_H
#define ENVD_TRANSPORT_CONNECT_CALL_H

#include "transport/connect_frame.h"
#include "transport/transport.h"

#include <pthread.h>
#include <stdatomic.h>

/* Bytes of a non-200 body kept for the error message. */
#define ENVD_CONNECT_ERR_BODY_MAX ((size_t)64 << 10)

typedef struct envd_connect_reply {
    envd_rpc_kind kind;
    const char *method; /* for messages; outlives the reply */
    size_t max_message; /* largest reply message (unary body, envelope) */
    envd_rpc_callbacks cb;
    atomic_int *cancel; /* the call's cancel flag: set by on_message's veto, read before each */
    /* Activity, for the carrier's clocks: whole = 0 for bytes of a body
     * that is not an envelope stream, 1 for one complete envelope (which
     * also counts as the first response event). */
    void (*activity)(void *ud, int whole);
    void *activity_ud;

    int headers_done;
    long status;
    int body_ok; /* status 200 with the expected content type */
    char ctype[96];
    uint8_t *body; /* unary message, or a non-200 body excerpt */
    size_t body_len, body_cap;
    envd_frame_parser fp;
    envd_error *err;     /* decided while reading; wins at the end */
    envd_error *end_err; /* from the end-of-stream frame */
} envd_connect_reply;

/* The request's content type and body size for a kind (client stream: 0,
 * its envelopes go one by one). */
const char *envd_connect_content_type(envd_rpc_kind kind);
size_t envd_connect_body_size(envd_rpc_kind kind, size_t msg_len);
/* Writes the body (the message, enveloped for a server stream) to dst,
 * envd_connect_body_size bytes. */
void envd_connect_body_fill(uint8_t *dst, envd_rpc_kind kind, const uint8_t *msg, size_t len);
/* Checks the request a transport's start() was given (ENVD_E_USAGE,
 * ENVD_INVALID_ARGUMENT). */
envd_status envd_connect_check(const envd_rpc_request *req, const envd_rpc_callbacks *cb);

void envd_connect_reply_init(envd_connect_reply *r, envd_rpc_kind kind, const char *method,
                             size_t max_message, const envd_rpc_callbacks *cb, atomic_int *cancel,
                             void (*activity)(void *ud, int whole), void *activity_ud);
/* The final response headers: status, content type (NULL: none) and
 * content length (-1: unknown). */
void envd_connect_reply_headers(envd_connect_reply *r, long status, const char *ctype,
                                int64_t content_length);
/* Response body bytes. 0: taken; -1: stop the transfer (r->err says why, or
 * the call was canceled). Headers must be done. */
int envd_connect_reply_body(envd_connect_reply *r, const uint8_t *p, size_t n);
/* The error for a transfer that failed on the way (detail: what the carrier
 * saw, with st from the error model): "stream broken after N messages" once
 * a stream's headers came. */
envd_error *envd_connect_reply_broken(const envd_connect_reply *r, envd_status st,
                                      const char *detail);
/* The call's outcome once its transfer is over: failed is the carrier's
 * error (NULL when the response arrived whole), aborted says the carrier
 * stopped it itself (cancel, timeout: that wins over everything). Delivers
 * a unary message through on_message; returns the error for on_done (NULL:
 * success) and releases what the reply held. */
envd_error *envd_connect_reply_finish(envd_connect_reply *r, envd_error *failed, int aborted);
void envd_connect_reply_free(envd_connect_reply *r);

/* A client stream's envelopes between the caller's send() and the carrier's
 * reader. Any thread may push and close; the reader runs on the I/O thread. */
typedef struct envd_connect_sendbuf envd_connect_sendbuf;
typedef struct envd_connect_sendq {
    pthread_mutex_t mu;
    envd_connect_sendbuf *head, *tail;
    int closed;
    int paused; /* the reader found nothing and waits to be resumed */
} envd_connect_sendq;

#define ENVD_SENDQ_PAUSE ((size_t)-1)

void envd_connect_sendq_init(envd_connect_sendq *q);
void envd_connect_sendq_free(envd_connect_sendq *q);
/* Queues msg as one envelope (copied). *wake: the reader is paused and must
 * be resumed. ENVD_E_USAGE once closed, ENVD_INVALID_ARGUMENT past the
 * largest envelope, ENVD_E_NOMEM. */
envd_status envd_connect_sendq_push(envd_connect_sendq *q, const uint8_t *msg, size_t len,
                                    int *wake);
/* No more messages (ENVD_E_USAGE when already closed). */
envd_status envd_connect_sendq_close(envd_connect_sendq *q, int *wake);
/* Reader: up to cap queued bytes into buf; 0 once closed and drained (the
 * end of the body); ENVD_SENDQ_PAUSE when nothing is queued yet (the
 * reader is marked paused). */
size_t envd_connect_sendq_pull(envd_connect_sendq *q, uint8_t *buf, size_t cap);

#endif
