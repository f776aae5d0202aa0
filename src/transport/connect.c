/* The Connect protocol with the binary proto codec over libcurl (spec §4), as
 * envd's connect-go serves it:
 *   unary          POST application/proto, raw message both ways;
 *   server stream  POST application/connect+proto, one envelope up, envelopes
 *                  down ending with the end-of-stream JSON frame;
 *   client stream  a chunked body of envelopes fed by send(), then one
 *                  message envelope and the end-of-stream frame down.
 * No Connect-Accept-Encoding is sent, so frames are never compressed, and no
 * Connect-Timeout-Ms (envd would turn it into a process lifetime): timeouts
 * are enforced by the engine on this side.
 */
#include "transport/connect_frame.h"
#include "core/alloc.h"
#include "transport/curl_engine.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Bytes of a non-200 body kept for the error message. */
#define ERR_BODY_MAX ((size_t)64 << 10)

typedef struct send_buf {
    struct send_buf *next;
    size_t len, off;
    uint8_t data[];
} send_buf;

struct envd_rpc {
    envd_curl_xfer x; /* first: the engine hands back &x */
    envd_rpc_kind kind;
    envd_rpc_callbacks cb;
    /* These four point into the same allocation, after the struct. */
    char *method;
    char *url;
    struct curl_slist *hdrs;
    uint8_t *req; /* the request body (unary, server stream) */
    size_t req_len;
    size_t max_message; /* largest reply message (unary body, envelope) */

    /* I/O thread. */
    int headers_done;
    long status;
    int body_ok; /* status 200 with the expected content type */
    char ctype[96];
    uint8_t *body; /* unary message, or a non-200 body excerpt */
    size_t body_len, body_cap;
    envd_frame_parser fp;
    envd_error *err;     /* decided inside a callback; wins in done */
    envd_error *end_err; /* from the end-of-stream frame */

    /* Client stream: messages waiting for the read callback. */
    pthread_mutex_t smu;
    send_buf *shead, *stail;
    int send_closed;
    int read_paused;
};

static envd_rpc *rpc_of(envd_curl_xfer *x)
{
    return (envd_rpc *)x;
}

/* ---- response side (I/O thread) ------------------------------------------ */

static int body_append(envd_rpc *r, const uint8_t *p, size_t n, size_t limit)
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

static void headers_complete(envd_rpc *r, long code)
{
    r->headers_done = 1;
    r->status = code;
    char *ct = NULL;
    curl_easy_getinfo(r->x.easy, CURLINFO_CONTENT_TYPE, &ct);
    snprintf(r->ctype, sizeof r->ctype, "%s", ct ? ct : "");
    const char *want =
        r->kind == ENVD_RPC_UNARY ? "application/proto" : "application/connect+proto";
    r->body_ok = code == 200 && ctype_is(r->ctype, want);
    if (r->body_ok && r->kind == ENVD_RPC_UNARY) {
        curl_off_t cl = -1;
        curl_easy_getinfo(r->x.easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
        if (cl > 0 && (size_t)cl <= r->max_message) {
            r->body = envd_malloc((size_t)cl);
            r->body_cap = r->body ? (size_t)cl : 0;
        }
    }
}

static size_t on_header(char *buf, size_t size, size_t n, void *ud)
{
    envd_rpc *r = ud;
    size_t len = size * n;
    envd_curl_xfer_touch(&r->x);
    if (!r->headers_done && len <= 2 && (buf[0] == '\r' || buf[0] == '\n')) {
        long code = 0;
        curl_easy_getinfo(r->x.easy, CURLINFO_RESPONSE_CODE, &code);
        if (code >= 200) /* skip 1xx blocks */
            headers_complete(r, code);
    }
    return len;
}

static int on_frame(void *ud, unsigned flags, const uint8_t *payload, size_t len)
{
    envd_rpc *r = ud;
    envd_curl_xfer_first_seen(&r->x);
    envd_curl_xfer_touch(&r->x); /* a stream's idle clock counts whole messages */
    if (flags & ENVD_FRAME_END_STREAM) {
        r->end_err = envd_error_from_connect_end(payload, len);
        return 0;
    }
    if (atomic_load_explicit(&r->x.cancel_requested, memory_order_acquire))
        return 1;
    if (r->cb.on_message && r->cb.on_message(r->cb.ud, payload, len) != 0) {
        atomic_store_explicit(&r->x.cancel_requested, 1, memory_order_release);
        return 1;
    }
    return 0;
}

static void set_err(envd_rpc *r, envd_status code, const char *why)
{
    if (!r->err)
        r->err =
            envd_error_new(code, ENVD_TRANSPORT_CONNECT, (int)r->status, "%s: %s", r->method, why);
}

static size_t on_write(char *ptr, size_t size, size_t n, void *ud)
{
    envd_rpc *r = ud;
    size_t len = size * n;
    /* Stream bodies feed the idle clock per complete envelope (on_frame),
     * as gRPC does per message: a server trickling one byte at a time
     * would otherwise keep a stream that delivers nothing alive forever. */
    if (!(r->headers_done && r->body_ok && r->kind != ENVD_RPC_UNARY))
        envd_curl_xfer_touch(&r->x);
    if (atomic_load_explicit(&r->x.cancel_requested, memory_order_acquire))
        return 0;
    if (!r->headers_done) {
        long code = 0;
        curl_easy_getinfo(r->x.easy, CURLINFO_RESPONSE_CODE, &code);
        headers_complete(r, code);
    }
    if (!r->body_ok) {
        /* An error body: keep an excerpt, drop the rest. */
        size_t room = ERR_BODY_MAX - r->body_len;
        if (room > 0 &&
            body_append(r, (const uint8_t *)ptr, len < room ? len : room, ERR_BODY_MAX) == -2) {
            set_err(r, ENVD_E_NOMEM, "out of memory");
            return 0;
        }
        return len;
    }
    if (r->kind == ENVD_RPC_UNARY) {
        int rc = body_append(r, (const uint8_t *)ptr, len, r->max_message);
        if (rc == -1) {
            char why[160];
            snprintf(why, sizeof why,
                     "response message over the %zu-byte limit (envd_config_set_max_message_bytes)",
                     r->max_message);
            set_err(r, envd_failure_status(ENVD_FAILURE_PROTOCOL, 0), why);
            return 0;
        }
        if (rc == -2) {
            set_err(r, ENVD_E_NOMEM, "out of memory");
            return 0;
        }
        return len;
    }
    char why[160];
    envd_status st =
        envd_frame_parser_feed(&r->fp, (const uint8_t *)ptr, len, on_frame, r, why, sizeof why);
    if (st == ENVD_OK)
        return len;
    if (st != ENVD_CANCELED)
        set_err(r, st, why);
    return 0;
}

static envd_error *http_failure(envd_rpc *r)
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

static void rpc_done(envd_curl_xfer *x, CURLcode rc, envd_status abort, const char *why)
{
    envd_rpc *r = rpc_of(x);
    envd_error *err = NULL;
    if (abort != ENVD_OK) {
        err = envd_error_new(abort, ENVD_TRANSPORT_CONNECT, 0, "%s: %s", r->method, why);
    } else if (r->err) {
        err = r->err;
        r->err = NULL;
    } else if (rc != CURLE_OK) {
        if (r->headers_done && !r->body_ok) {
            err = http_failure(r);
        } else {
            char buf[CURL_ERROR_SIZE + 512];
            envd_status st = envd_curl_describe(x, rc, buf, sizeof buf);
            if (r->kind != ENVD_RPC_UNARY && r->headers_done)
                err = envd_error_new(st, ENVD_TRANSPORT_CONNECT, (int)r->status,
                                     "%s: stream broken after %llu message%s: %s", r->method,
                                     (unsigned long long)r->fp.messages,
                                     r->fp.messages == 1 ? "" : "s", buf);
            else
                err = envd_error_new(st, ENVD_TRANSPORT_CONNECT, 0, "%s: %s", r->method, buf);
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
    envd_curl_annotate(x, rc, err); /* for the retry rule (failure.c) */
    r->cb.on_done(r->cb.ud, err);
}

/* ---- request side ---------------------------------------------------------- */

/* Client stream: hand queued envelopes to curl; pause while the queue is
 * empty and the caller has not closed the stream. */
static size_t on_read(char *buf, size_t size, size_t n, void *ud)
{
    envd_rpc *r = ud;
    size_t cap = size * n, out = 0;
    pthread_mutex_lock(&r->smu);
    while (out < cap && r->shead) {
        send_buf *b = r->shead;
        size_t k = b->len - b->off;
        if (k > cap - out)
            k = cap - out;
        memcpy(buf + out, b->data + b->off, k);
        out += k;
        b->off += k;
        if (b->off == b->len) {
            r->shead = b->next;
            if (!r->shead)
                r->stail = NULL;
            free(b);
        }
    }
    if (out == 0 && !r->send_closed) {
        r->read_paused = 1;
        pthread_mutex_unlock(&r->smu);
        return CURL_READFUNC_PAUSE;
    }
    pthread_mutex_unlock(&r->smu);
    return out; /* 0 once closed and drained: end of body */
}

static void rpc_destroy(envd_curl_xfer *x)
{
    envd_rpc *r = rpc_of(x);
    if (r->x.easy)
        curl_easy_cleanup(r->x.easy);
    free(r->body);
    envd_frame_parser_free(&r->fp);
    envd_error_free(r->err);
    envd_error_free(r->end_err);
    while (r->shead) {
        send_buf *b = r->shead;
        r->shead = b->next;
        free(b);
    }
    pthread_mutex_destroy(&r->smu);
    free(r);
}

/* I/O thread, when the engine admits the call: its easy handle (taken only
 * now, so a call queued behind the connection bound holds none). */
static envd_status rpc_setup(envd_curl_xfer *x)
{
    envd_rpc *r = rpc_of(x);
    CURL *easy = x->easy;
    CURLU *u = envd_curl_url(x->eng, r->url);
    if (u)
        curl_easy_setopt(easy, CURLOPT_CURLU, u);
    else
        ENVD_CURL_COPYOPT(x, CURLOPT_URL, r->url);
    curl_easy_setopt(easy, CURLOPT_POST, 1L);
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, r->hdrs);
    curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(easy, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, r);
    if (r->kind == ENVD_RPC_CLIENT_STREAM) {
        /* No size: a chunked body on HTTP/1.1, DATA frames on h2. */
        curl_easy_setopt(easy, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(easy, CURLOPT_READDATA, r);
    } else {
        curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->req_len);
        curl_easy_setopt(easy, CURLOPT_POSTFIELDS, (char *)r->req);
    }
    return ENVD_OK;
}

static const envd_curl_xfer_vt rpc_vt = {rpc_done, rpc_destroy, rpc_setup};

static envd_status connect_start(envd_rpc_transport *t, const envd_rpc_request *req,
                                 const envd_rpc_callbacks *cb, envd_rpc **out)
{
    *out = NULL;
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
    envd_curl_engine *eng = envd_curl_engine_from_connect(t);

    /* Expect: 100-continue would stall uploads by a round trip (or a second
     * on servers that never answer it). Accept (curl's "* / *") is not
     * needed: connect-go sends none, and every header byte costs curl's
     * formatter ~130 instructions. */
    static const char *const fixed[] = {NULL, "Connect-Protocol-Version: 1", "Expect:",
                                        "Accept:"};
    const char *ctype[] = {"Content-Type: application/proto",
                           "Content-Type: application/connect+proto"};
    const char *lines[4];
    memcpy(lines, fixed, sizeof lines);
    lines[0] = ctype[req->kind != ENVD_RPC_UNARY];
    size_t nfixed = sizeof lines / sizeof lines[0];

    /* One allocation: the call, its header list, URL, method, CA file path
     * (the easy handle is configured later, see rpc_setup) and body. */
    size_t hb, bl = strlen(req->ep->base_url), ml = strlen(req->method);
    size_t cl = req->ep->ca_file ? strlen(req->ep->ca_file) + 1 : 0;
    envd_status st = envd_curl_headers_size(req->headers, req->n_headers, nfixed, &hb);
    if (st != ENVD_OK)
        return st;
    size_t body = req->kind == ENVD_RPC_UNARY           ? req->body_len
                  : req->kind == ENVD_RPC_SERVER_STREAM ? ENVD_FRAME_HEADER_LEN + req->body_len
                                                        : 0;
    if (req->body_len > SIZE_MAX / 2)
        return ENVD_E_NOMEM;
    envd_rpc *r = envd_calloc(1, sizeof *r + hb + bl + ml + 1 + ml + 1 + cl + body);
    if (!r)
        return ENVD_E_NOMEM;
    pthread_mutex_init(&r->smu, NULL);
    r->max_message = req->ep->max_message ? req->ep->max_message : ENVD_FRAME_MAX_DEFAULT;
    envd_frame_parser_init(&r->fp, r->max_message);
    r->kind = req->kind;
    r->cb = *cb;
    char *p = (char *)(r + 1);
    r->hdrs = envd_curl_headers_fill(p, lines, nfixed, req->headers, req->n_headers);
    p += hb;
    r->url = p;
    memcpy(p, req->ep->base_url, bl);
    memcpy(p + bl, req->method, ml + 1);
    p += bl + ml + 1;
    r->method = p;
    memcpy(p, req->method, ml + 1);
    p += ml + 1;
    envd_endpoint ep = *req->ep;
    if (cl) {
        memcpy(p, req->ep->ca_file, cl);
        ep.ca_file = p;
        p += cl;
    }
    r->req = (uint8_t *)p;
    envd_curl_xfer_init(&r->x, &rpc_vt, eng, NULL, &ep, r->url);

    switch (req->kind) {
    case ENVD_RPC_UNARY:
        r->req_len = req->body_len;
        if (r->req_len)
            memcpy(r->req, req->body, r->req_len);
        r->x.timeout_ms = req->timeout_ms;
        r->x.timeout_whole = 1;
        break;
    case ENVD_RPC_SERVER_STREAM:
        r->req_len = ENVD_FRAME_HEADER_LEN + req->body_len;
        envd_frame_header(r->req, 0, (uint32_t)req->body_len);
        if (req->body_len)
            memcpy(r->req + ENVD_FRAME_HEADER_LEN, req->body, req->body_len);
        r->x.timeout_ms = req->timeout_ms;
        r->x.idle_timeout_ms = req->idle_timeout_ms;
        r->x.idle_before_first = req->timeout_ms <= 0;
        break;
    default:
        /* Client stream. The response cannot start before close_send(), so
         * both clocks start there. Before it, the call waits on the caller,
         * not the server. */
        r->x.timeout_ms = req->timeout_ms;
        r->x.idle_timeout_ms = req->idle_timeout_ms;
        r->x.idle_before_first = req->timeout_ms <= 0;
        r->x.timers_deferred = 1;
        break;
    }

    if ((st = envd_curl_engine_submit(eng, &r->x)) != ENVD_OK) {
        rpc_destroy(&r->x);
        return st;
    }
    *out = r;
    return ENVD_OK;
}

static envd_status connect_send(envd_rpc *r, const uint8_t *msg, size_t len)
{
    if (!r || r->kind != ENVD_RPC_CLIENT_STREAM || (len > 0 && !msg))
        return ENVD_E_USAGE;
    if (len > ENVD_FRAME_MAX_DEFAULT)
        return ENVD_INVALID_ARGUMENT;
    if (atomic_load_explicit(&r->x.finished, memory_order_acquire))
        return ENVD_CANCELED;
    send_buf *b = envd_malloc(sizeof *b + ENVD_FRAME_HEADER_LEN + len);
    if (!b)
        return ENVD_E_NOMEM;
    b->next = NULL;
    b->off = 0;
    b->len = ENVD_FRAME_HEADER_LEN + len;
    envd_frame_header(b->data, 0, (uint32_t)len);
    if (len)
        memcpy(b->data + ENVD_FRAME_HEADER_LEN, msg, len);
    pthread_mutex_lock(&r->smu);
    if (r->send_closed) {
        pthread_mutex_unlock(&r->smu);
        free(b);
        return ENVD_E_USAGE;
    }
    if (r->stail)
        r->stail->next = b;
    else
        r->shead = b;
    r->stail = b;
    int wake = r->read_paused;
    r->read_paused = 0;
    pthread_mutex_unlock(&r->smu);
    if (wake)
        envd_curl_xfer_resume(&r->x);
    return ENVD_OK;
}

static envd_status connect_close_send(envd_rpc *r)
{
    if (!r || r->kind != ENVD_RPC_CLIENT_STREAM)
        return ENVD_E_USAGE;
    pthread_mutex_lock(&r->smu);
    if (r->send_closed) {
        pthread_mutex_unlock(&r->smu);
        return ENVD_E_USAGE;
    }
    r->send_closed = 1;
    int wake = r->read_paused;
    r->read_paused = 0;
    pthread_mutex_unlock(&r->smu);
    if (wake)
        envd_curl_xfer_resume(&r->x);
    envd_curl_xfer_arm_timers(&r->x);
    return ENVD_OK;
}

static void connect_cancel(envd_rpc *r)
{
    if (r)
        envd_curl_xfer_cancel(&r->x);
}

static void connect_release(envd_rpc *r)
{
    if (r)
        envd_curl_xfer_unref(&r->x);
}

const envd_rpc_ops envd_connect_ops = {
    ENVD_TRANSPORT_CONNECT, connect_start,  connect_send,
    connect_close_send,     connect_cancel, connect_release,
};
