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
#include "transport/connect_call.h"
#include "core/alloc.h"
#include "transport/curl_engine.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct envd_rpc {
    envd_curl_xfer x; /* first: the engine hands back &x */
    envd_connect_reply rep;
    /* These four point into the same allocation, after the struct. */
    char *method;
    char *url;
    struct curl_slist *hdrs;
    uint8_t *req; /* the request body (unary, server stream) */
    size_t req_len;

    envd_connect_sendq sq; /* client stream: envelopes for the read callback */
};

static envd_rpc *rpc_of(envd_curl_xfer *x)
{
    return (envd_rpc *)x;
}

/* ---- response side (I/O thread) ------------------------------------------ */

static void on_activity(void *ud, int whole)
{
    envd_rpc *r = ud;
    if (whole)
        envd_curl_xfer_first_seen(&r->x);
    envd_curl_xfer_touch(&r->x);
}

static void headers_complete(envd_rpc *r, long code)
{
    char *ct = NULL;
    curl_off_t cl = -1;
    curl_easy_getinfo(r->x.easy, CURLINFO_CONTENT_TYPE, &ct);
    curl_easy_getinfo(r->x.easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
    envd_curl_xfer_learn_proto(&r->x);
    envd_connect_reply_headers(&r->rep, code, ct, (int64_t)cl);
}

static size_t on_header(char *buf, size_t size, size_t n, void *ud)
{
    envd_rpc *r = ud;
    size_t len = size * n;
    envd_curl_xfer_touch(&r->x);
    if (!r->rep.headers_done && len <= 2 && (buf[0] == '\r' || buf[0] == '\n')) {
        long code = 0;
        curl_easy_getinfo(r->x.easy, CURLINFO_RESPONSE_CODE, &code);
        if (code >= 200) /* skip 1xx blocks */
            headers_complete(r, code);
    }
    return len;
}

static size_t on_write(char *ptr, size_t size, size_t n, void *ud)
{
    envd_rpc *r = ud;
    size_t len = size * n;
    if (!r->rep.headers_done) {
        long code = 0;
        curl_easy_getinfo(r->x.easy, CURLINFO_RESPONSE_CODE, &code);
        headers_complete(r, code);
    }
    return envd_connect_reply_body(&r->rep, (const uint8_t *)ptr, len) == 0 ? len : 0;
}

static void rpc_done(envd_curl_xfer *x, CURLcode rc, envd_status abort, const char *why)
{
    envd_rpc *r = rpc_of(x);
    envd_error *failed = NULL;
    if (abort != ENVD_OK) {
        failed = envd_error_new(abort, ENVD_TRANSPORT_CONNECT, 0, "%s: %s", r->method, why);
    } else if (rc != CURLE_OK && !r->rep.err) {
        char buf[CURL_ERROR_SIZE + 512];
        envd_status st = envd_curl_describe(x, rc, buf, sizeof buf);
        failed = envd_connect_reply_broken(&r->rep, st, buf);
    }
    envd_error *err = envd_connect_reply_finish(&r->rep, failed, abort != ENVD_OK);
    envd_curl_annotate(x, rc, err); /* for the retry rule (failure.c) */
    r->rep.cb.on_done(r->rep.cb.ud, err);
}

/* ---- request side ---------------------------------------------------------- */

/* Client stream: hand queued envelopes to curl; pause while the queue is
 * empty and the caller has not closed the stream. */
static size_t on_read(char *buf, size_t size, size_t n, void *ud)
{
    envd_rpc *r = ud;
    size_t got = envd_connect_sendq_pull(&r->sq, (uint8_t *)buf, size * n);
    return got == ENVD_SENDQ_PAUSE ? CURL_READFUNC_PAUSE : got; /* 0: end of body */
}

static void rpc_destroy(envd_curl_xfer *x)
{
    envd_rpc *r = rpc_of(x);
    if (r->x.easy)
        curl_easy_cleanup(r->x.easy);
    envd_connect_reply_free(&r->rep);
    envd_connect_sendq_free(&r->sq);
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
    if (r->rep.kind == ENVD_RPC_CLIENT_STREAM) {
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
    envd_status st = envd_connect_check(req, cb);
    if (st != ENVD_OK)
        return st;
    envd_curl_engine *eng = envd_curl_engine_from_connect(t);

    /* Expect: 100-continue would stall uploads by a round trip (or a second
     * on servers that never answer it). Accept (curl's "* / *") is not
     * needed: connect-go sends none, and every header byte costs curl's
     * formatter ~130 instructions. */
    static const char *const fixed[] = {NULL, "Connect-Protocol-Version: 1", "Expect:",
                                        "Accept:"};
    static const char *const ctype[] = {"Content-Type: application/proto",
                                        "Content-Type: application/connect+proto"};
    const char *lines[4];
    memcpy(lines, fixed, sizeof lines);
    lines[0] = ctype[req->kind != ENVD_RPC_UNARY];
    size_t nfixed = sizeof lines / sizeof lines[0];

    /* One allocation: the call, its header list, URL, method, CA file path
     * (the easy handle is configured later, see rpc_setup) and body. */
    size_t hb, bl = strlen(req->ep->base_url), ml = strlen(req->method);
    size_t cl = req->ep->ca_file ? strlen(req->ep->ca_file) + 1 : 0;
    if ((st = envd_curl_headers_size(req->headers, req->n_headers, nfixed, &hb)) != ENVD_OK)
        return st;
    size_t body = envd_connect_body_size(req->kind, req->body_len);
    envd_rpc *r = envd_calloc(1, sizeof *r + hb + bl + ml + 1 + ml + 1 + cl + body);
    if (!r)
        return ENVD_E_NOMEM;
    envd_connect_sendq_init(&r->sq);
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
    r->req_len = body;
    envd_connect_body_fill(r->req, req->kind, req->body, req->body_len);
    envd_curl_xfer_init(&r->x, &rpc_vt, eng, NULL, &ep, r->url);
    envd_connect_reply_init(&r->rep, req->kind, r->method, req->ep->max_message, cb,
                            &r->x.cancel_requested, on_activity, r);

    switch (req->kind) {
    case ENVD_RPC_UNARY:
        r->x.timeout_ms = req->timeout_ms;
        r->x.timeout_whole = 1;
        break;
    case ENVD_RPC_SERVER_STREAM:
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
    if (!r || r->rep.kind != ENVD_RPC_CLIENT_STREAM || (len > 0 && !msg))
        return ENVD_E_USAGE;
    if (atomic_load_explicit(&r->x.finished, memory_order_acquire))
        return ENVD_CANCELED;
    int wake;
    envd_status st = envd_connect_sendq_push(&r->sq, msg, len, &wake);
    if (wake)
        envd_curl_xfer_resume(&r->x);
    return st;
}

static envd_status connect_close_send(envd_rpc *r)
{
    if (!r || r->rep.kind != ENVD_RPC_CLIENT_STREAM)
        return ENVD_E_USAGE;
    int wake;
    envd_status st = envd_connect_sendq_close(&r->sq, &wake);
    if (st != ENVD_OK)
        return st;
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
