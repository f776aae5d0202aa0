/* The Connect call logic both carriers share (see connect_call.h). */
#include "transport/connect_call.h"
#include "core/alloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

const char *envd_connect_content_type(envd_rpc_kind kind)
{
    return kind == ENVD_RPC_UNARY ? "application/proto" : "application/connect+proto";
}

size_t envd_connect_body_size(envd_rpc_kind kind, size_t msg_len)
{
    return kind == ENVD_RPC_UNARY           ? msg_len
           : kind == ENVD_RPC_SERVER_STREAM ? ENVD_FRAME_HEADER_LEN + msg_len
                                            : 0;
}

void envd_connect_body_fill(uint8_t *dst, envd_rpc_kind kind, const uint8_t *msg, size_t len)
{
    if (kind == ENVD_RPC_SERVER_STREAM) {
        envd_frame_header(dst, 0, (uint32_t)len);
        dst += ENVD_FRAME_HEADER_LEN;
    } else if (kind != ENVD_RPC_UNARY) {
        return;
    }
    if (len)
        memcpy(dst, msg, len);
}

envd_status envd_connect_check(const envd_rpc_request *req, const envd_rpc_callbacks *cb)
{
    if (!req || !cb || !cb->on_done || !req->ep || !req->ep->base_url || !req->method ||
        req->method[0] != '/')
        return ENVD_E_USAGE;
    if (req->kind != ENVD_RPC_CLIENT_STREAM && req->body_len > 0 && !req->body)
        return ENVD_E_USAGE;
    if (req->kind == ENVD_RPC_SERVER_STREAM && req->body_len > UINT32_MAX)
        return ENVD_INVALID_ARGUMENT;
    if (req->kind != ENVD_RPC_UNARY && req->kind != ENVD_RPC_SERVER_STREAM &&
        req->kind != ENVD_RPC_CLIENT_STREAM)
        return ENVD_E_USAGE;
    if (req->body_len > SIZE_MAX / 2)
        return ENVD_E_NOMEM;
    return ENVD_OK;
}

void envd_connect_reply_init(envd_connect_reply *r, envd_rpc_kind kind, const char *method,
                             size_t max_message, const envd_rpc_callbacks *cb, atomic_int *cancel,
                             void (*activity)(void *ud, int whole), void *activity_ud)
{
    memset(r, 0, sizeof *r);
    r->kind = kind;
    r->method = method;
    r->max_message = max_message ? max_message : ENVD_FRAME_MAX_DEFAULT;
    r->cb = *cb;
    r->cancel = cancel;
    r->activity = activity;
    r->activity_ud = activity_ud;
    envd_frame_parser_init(&r->fp, r->max_message);
}

static int body_append(envd_connect_reply *r, const uint8_t *p, size_t n, size_t limit)
{
    if (r->body_len + n > limit)
        return -1;
    if (r->body_len + n > r->body_cap) {
        size_t cap = r->body_cap ? r->body_cap : 4096;
        while (cap < r->body_len + n)
            cap *= 2;
        if (cap > limit)
            cap = limit;
        uint8_t *b = envd_realloc(r->body, cap);
        if (!b)
            return -2;
        r->body = b;
        r->body_cap = cap;
    }
    memcpy(r->body + r->body_len, p, n);
    r->body_len += n;
    return 0;
}

static int ctype_is(const char *ct, const char *want)
{
    size_t n = strlen(want);
    if (strncasecmp(ct, want, n) != 0)
        return 0;
    return ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ';
}

void envd_connect_reply_headers(envd_connect_reply *r, long status, const char *ctype,
                                int64_t content_length)
{
    r->headers_done = 1;
    r->status = status;
    snprintf(r->ctype, sizeof r->ctype, "%s", ctype ? ctype : "");
    r->body_ok = status == 200 && ctype_is(r->ctype, envd_connect_content_type(r->kind));
    if (r->body_ok && r->kind == ENVD_RPC_UNARY && content_length > 0 &&
        (uint64_t)content_length <= r->max_message && !r->body) {
        r->body = envd_malloc((size_t)content_length);
        r->body_cap = r->body ? (size_t)content_length : 0;
    }
}

static void set_err(envd_connect_reply *r, envd_status code, const char *why)
{
    if (!r->err)
        r->err =
            envd_error_new(code, ENVD_TRANSPORT_CONNECT, (int)r->status, "%s: %s", r->method, why);
}

static int canceled(const envd_connect_reply *r)
{
    return atomic_load_explicit(r->cancel, memory_order_acquire) != 0;
}

static int on_frame(void *ud, unsigned flags, const uint8_t *payload, size_t len)
{
    envd_connect_reply *r = ud;
    r->activity(r->activity_ud, 1); /* a stream's idle clock counts whole messages */
    if (flags & ENVD_FRAME_END_STREAM) {
        r->end_err = envd_error_from_connect_end(payload, len);
        return 0;
    }
    if (canceled(r))
        return 1;
    if (r->cb.on_message && r->cb.on_message(r->cb.ud, payload, len) != 0) {
        atomic_store_explicit(r->cancel, 1, memory_order_release);
        return 1;
    }
    return 0;
}

int envd_connect_reply_body(envd_connect_reply *r, const uint8_t *p, size_t n)
{
    /* Stream bodies feed the idle clock per complete envelope (on_frame),
     * as gRPC does per message: a server trickling one byte at a time
     * would otherwise keep a stream that delivers nothing alive forever. */
    if (!(r->body_ok && r->kind != ENVD_RPC_UNARY))
        r->activity(r->activity_ud, 0);
    if (canceled(r))
        return -1;
    if (!r->body_ok) {
        /* An error body: keep an excerpt, drop the rest. */
        size_t room = ENVD_CONNECT_ERR_BODY_MAX - r->body_len;
        if (room > 0 && body_append(r, p, n < room ? n : room, ENVD_CONNECT_ERR_BODY_MAX) == -2) {
            set_err(r, ENVD_E_NOMEM, "out of memory");
            return -1;
        }
        return 0;
    }
    if (r->kind == ENVD_RPC_UNARY) {
        int rc = body_append(r, p, n, r->max_message);
        if (rc == -1) {
            char why[160];
            snprintf(why, sizeof why,
                     "response message over the %zu-byte limit (envd_config_set_max_message_bytes)",
                     r->max_message);
            set_err(r, envd_failure_status(ENVD_FAILURE_PROTOCOL, 0), why);
            return -1;
        }
        if (rc == -2) {
            set_err(r, ENVD_E_NOMEM, "out of memory");
            return -1;
        }
        return 0;
    }
    char why[160];
    envd_status st = envd_frame_parser_feed(&r->fp, p, n, on_frame, r, why, sizeof why);
    if (st == ENVD_OK)
        return 0;
    if (st != ENVD_CANCELED)
        set_err(r, st, why);
    return -1;
}

envd_error *envd_connect_reply_broken(const envd_connect_reply *r, envd_status st,
                                      const char *detail)
{
    if (r->kind != ENVD_RPC_UNARY && r->headers_done)
        return envd_error_new(st, ENVD_TRANSPORT_CONNECT, (int)r->status,
                              "%s: stream broken after %llu message%s: %s", r->method,
                              (unsigned long long)r->fp.messages, r->fp.messages == 1 ? "" : "s",
                              detail);
    return envd_error_new(st, ENVD_TRANSPORT_CONNECT, 0, "%s: %s", r->method, detail);
}

static envd_error *http_failure(envd_connect_reply *r)
{
    if (r->status != 200)
        return envd_error_from_http_body((int)r->status, r->body, r->body_len,
                                         ENVD_TRANSPORT_CONNECT);
    /* 200 but not a Connect response: a proxy page or a different server. */
    char excerpt[161];
    size_t n = r->body_len < 160 ? r->body_len : 160;
    for (size_t i = 0; i < n; i++)
        excerpt[i] = (r->body[i] >= 0x20 && r->body[i] < 0x7f) ? (char)r->body[i] : ' ';
    excerpt[n] = '\0';
    return envd_error_new(envd_failure_status(ENVD_FAILURE_PROTOCOL, 0), ENVD_TRANSPORT_CONNECT,
                          200,
                          "%s: HTTP 200 with unexpected content-type '%s' (not a Connect "
                          "response)%s%s",
                          r->method, r->ctype, n ? ": " : "", excerpt);
}

envd_error *envd_connect_reply_finish(envd_connect_reply *r, envd_error *failed, int aborted)
{
    envd_error *err = NULL;
    if (failed && aborted) {
        err = failed;
    } else if (r->err) {
        envd_error_free(failed);
        err = r->err;
        r->err = NULL;
    } else if (failed) {
        if (r->headers_done && !r->body_ok) {
            envd_error_free(failed);
            err = http_failure(r);
        } else {
            err = failed;
        }
    } else if (!r->headers_done) {
        /* The body "ended" before the blank line that closes the headers:
         * a cut-off response, not a wrong content type. */
        err = envd_error_new(envd_failure_status(ENVD_FAILURE_BROKEN, 0), ENVD_TRANSPORT_CONNECT,
                             0, "%s: the connection closed inside the response headers",
                             r->method);
    } else if (!r->body_ok) {
        err = http_failure(r);
    } else if (r->kind == ENVD_RPC_UNARY) {
        static const uint8_t empty[1];
        if (r->cb.on_message &&
            r->cb.on_message(r->cb.ud, r->body ? r->body : empty, r->body_len) != 0)
            err =
                envd_error_new(ENVD_CANCELED, ENVD_TRANSPORT_CONNECT, 0, "%s: canceled", r->method);
    } else if (r->fp.ended) {
        /* envd's own error, message untouched (the API layer wraps it). */
        err = r->end_err;
        r->end_err = NULL;
    } else {
        char buf[160];
        envd_status st = envd_frame_parser_finish(&r->fp, buf, sizeof buf);
        err = envd_error_new(st, ENVD_TRANSPORT_CONNECT, 200, "%s: %s", r->method, buf);
    }
    /* Nothing of the response is needed any more. */
    free(r->body);
    r->body = NULL;
    r->body_len = r->body_cap = 0;
    envd_frame_parser_free(&r->fp);
    return err;
}

void envd_connect_reply_free(envd_connect_reply *r)
{
    free(r->body);
    r->body = NULL;
    envd_frame_parser_free(&r->fp);
    envd_error_free(r->err);
    envd_error_free(r->end_err);
    r->err = r->end_err = NULL;
}

/* ---- client stream send queue ------------------------------------------------ */

struct envd_connect_sendbuf {
    envd_connect_sendbuf *next;
    size_t len, off;
    uint8_t data[];
};

void envd_connect_sendq_init(envd_connect_sendq *q)
{
    pthread_mutex_init(&q->mu, NULL);
    q->head = q->tail = NULL;
    q->closed = q->paused = 0;
}

void envd_connect_sendq_free(envd_connect_sendq *q)
{
    while (q->head) {
        envd_connect_sendbuf *b = q->head;
        q->head = b->next;
        free(b);
    }
    q->tail = NULL;
    pthread_mutex_destroy(&q->mu);
}

envd_status envd_connect_sendq_push(envd_connect_sendq *q, const uint8_t *msg, size_t len,
                                    int *wake)
{
    *wake = 0;
    if (len > ENVD_FRAME_MAX_DEFAULT)
        return ENVD_INVALID_ARGUMENT;
    envd_connect_sendbuf *b = envd_malloc(sizeof *b + ENVD_FRAME_HEADER_LEN + len);
    if (!b)
        return ENVD_E_NOMEM;
    b->next = NULL;
    b->off = 0;
    b->len = ENVD_FRAME_HEADER_LEN + len;
    envd_frame_header(b->data, 0, (uint32_t)len);
    if (len)
        memcpy(b->data + ENVD_FRAME_HEADER_LEN, msg, len);
    pthread_mutex_lock(&q->mu);
    if (q->closed) {
        pthread_mutex_unlock(&q->mu);
        free(b);
        return ENVD_E_USAGE;
    }
    if (q->tail)
        q->tail->next = b;
    else
        q->head = b;
    q->tail = b;
    *wake = q->paused;
    q->paused = 0;
    pthread_mutex_unlock(&q->mu);
    return ENVD_OK;
}

envd_status envd_connect_sendq_close(envd_connect_sendq *q, int *wake)
{
    *wake = 0;
    pthread_mutex_lock(&q->mu);
    if (q->closed) {
        pthread_mutex_unlock(&q->mu);
        return ENVD_E_USAGE;
    }
    q->closed = 1;
    *wake = q->paused;
    q->paused = 0;
    pthread_mutex_unlock(&q->mu);
    return ENVD_OK;
}

size_t envd_connect_sendq_pull(envd_connect_sendq *q, uint8_t *buf, size_t cap)
{
    size_t out = 0;
    pthread_mutex_lock(&q->mu);
    while (out < cap && q->head) {
        envd_connect_sendbuf *b = q->head;
        size_t k = b->len - b->off;
        if (k > cap - out)
            k = cap - out;
        memcpy(buf + out, b->data + b->off, k);
        out += k;
        b->off += k;
        if (b->off == b->len) {
            q->head = b->next;
            if (!q->head)
                q->tail = NULL;
            free(b);
        }
    }
    if (out == 0 && !q->closed) {
        q->paused = 1;
        out = ENVD_SENDQ_PAUSE;
    }
    pthread_mutex_unlock(&q->mu);
    return out;
}
