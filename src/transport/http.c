/* Plain HTTP for envd's /files over the libcurl engine.
 *
 * Bodies stream both ways: a download goes to on_data chunk by chunk as curl
 * receives it, an upload is pulled from the request body (http_body.c:
 * multipart framing, the caller's read callbacks or a copy of its bytes,
 * gzip) as the socket takes it. Memory stays flat whatever the file size.
 *
 * Every timeout belongs to the engine's I/O loop: the wait for the response
 * headers and the idle clock are the engine's transfer timers (the former
 * armed at the end of the request body for an upload) and the deadline on
 * the whole transfer, which also counts a wait for a free connection
 * (curl's CURLOPT_TIMEOUT_MS would not).
 */
#include "transport/curl_engine.h"
#include "core/alloc.h"
#include "transport/http_body.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct envd_http {
    envd_curl_xfer x; /* first */
    /* Set: the transfer runs on the nghttp2 engine (h2c.c) and nothing
     * else here is used. */
    envd_rpc *h2;
    const envd_rpc_ops *h2ops;
    envd_http_callbacks cb;
    char *label; /* "POST /files?path=..." for messages */
    char *url;
    struct curl_slist *hdrs;
    envd_http_body *body; /* NULL without a request body */
    int64_t reply_timeout_ms; /* armed when the body has gone out */
    int64_t *retry_after_ms; /* the request's */

    /* I/O thread. */
    int64_t last_progress;
    int body_eof; /* the whole body was produced (or there is none) */
    int headers_done;
    long status;
    int encoded; /* the response had a Content-Encoding */
    envd_error *err;
};

static envd_http *http_of(envd_curl_xfer *x)
{
    return (envd_http *)x;
}

static void set_err(envd_http *h, envd_status code, const char *what)
{
    if (!h->err)
        h->err =
            envd_error_new(code, ENVD_TRANSPORT_HTTP, (int)h->status, "%s: %s", h->label, what);
}

/* ---- response (I/O thread) ----------------------------------------------- */

static int headers_complete(envd_http *h, long code)
{
    h->headers_done = 1;
    h->status = code;
    if (h->body) {
        /* An error reply to a request with a body (e.g. 507 half way through
         * an upload) may come before the server read the whole body, and
         * curl would keep the connection even when it stopped sending: the
         * server, still expecting body bytes (or not draining them), then
         * reads the next request as body and both sides wait. Never reuse
         * such a connection; error replies are rare, a new connection is
         * cheap. Same for a success before the body went out in full.
         * (libcurl reads this option when the transfer is done.) */
        curl_off_t want = -1, sent = 0;
        curl_easy_getinfo(h->x.easy, CURLINFO_CONTENT_LENGTH_UPLOAD_T, &want);
        curl_easy_getinfo(h->x.easy, CURLINFO_SIZE_UPLOAD_T, &sent);
        if (code >= 300 || (!h->body_eof && (want < 0 || sent < want)))
            curl_easy_setopt(h->x.easy, CURLOPT_FORBID_REUSE, 1L);
    }
    envd_curl_xfer_first_seen(&h->x);
    curl_off_t cl = -1;
    curl_easy_getinfo(h->x.easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
    if (h->encoded)
        cl = -1; /* decoded size unknown */
    if (h->cb.on_status && h->cb.on_status(h->cb.ud, (int)code, (int64_t)cl) != 0) {
        atomic_store_explicit(&h->x.cancel_requested, 1, memory_order_release);
        return -1;
    }
    return 0;
}

static size_t on_header(char *buf, size_t size, size_t n, void *ud)
{
    envd_http *h = ud;
    size_t len = size * n;
    envd_curl_xfer_touch(&h->x);
    if (h->headers_done)
        return len; /* trailers */
    if (len >= 5 && memcmp(buf, "HTTP/", 5) == 0) {
        h->encoded = 0; /* a new header block (after a 1xx) */
    } else if (len > 17 && strncasecmp(buf, "content-encoding:", 17) == 0) {
        const char *v = buf + 17;
        while (v < buf + len && (*v == ' ' || *v == '\t'))
            v++;
        if (v < buf + len && strncasecmp(v, "identity", 8) != 0 && *v != '\r' && *v != '\n')
            h->encoded = 1;
    } else if (len <= 2 && (buf[0] == '\r' || buf[0] == '\n')) {
        long code = 0;
        curl_easy_getinfo(h->x.easy, CURLINFO_RESPONSE_CODE, &code);
        if (code >= 200 && headers_complete(h, code) != 0)
            return 0;
    }
    return len;
}

static size_t on_write(char *ptr, size_t size, size_t n, void *ud)
{
    envd_http *h = ud;
    size_t len = size * n;
    envd_curl_xfer_received(&h->x, len);
    if (atomic_load_explicit(&h->x.cancel_requested, memory_order_acquire))
        return 0;
    if (!h->headers_done) {
        long code = 0;
        curl_easy_getinfo(h->x.easy, CURLINFO_RESPONSE_CODE, &code);
        if (headers_complete(h, code) != 0)
            return 0;
    }
    if (h->cb.on_data && len > 0 && h->cb.on_data(h->cb.ud, (const uint8_t *)ptr, len) != 0) {
        atomic_store_explicit(&h->x.cancel_requested, 1, memory_order_release);
        return 0;
    }
    return len;
}

/* ---- request body (I/O thread) ------------------------------------------- */

static void body_sent(envd_http *h)
{
    h->body_eof = 1;
    envd_curl_xfer_expect_response(&h->x, h->reply_timeout_ms);
}

static size_t on_read(char *buf, size_t size, size_t n, void *ud)
{
    envd_http *h = ud;
    if (atomic_load_explicit(&h->x.cancel_requested, memory_order_acquire))
        return CURL_READFUNC_ABORT;
    size_t got = envd_http_body_read(h->body, (uint8_t *)buf, size * n);
    if (got == (size_t)-1) {
        set_err(h, ENVD_E_IO, envd_http_body_error(h->body));
        return CURL_READFUNC_ABORT;
    }
    envd_curl_xfer_touch(&h->x);
    int64_t taken = envd_http_body_taken(h->body);
    if (h->cb.on_progress && taken != h->last_progress) {
        h->last_progress = taken;
        h->cb.on_progress(h->cb.ud, taken, envd_http_body_total(h->body));
    }
    if (!h->body_eof && (got == 0 || envd_http_body_done(h->body)))
        body_sent(h);
    return got;
}

/* ---- lifecycle --------------------------------------------------------------- */

static envd_error *abort_error(envd_http *h, envd_status abort, const char *why)
{
    /* The engine's reply timeout runs from the end of an upload's body (the
     * whole-transfer deadline from the start). */
    const char *after =
        abort == ENVD_DEADLINE_EXCEEDED && h->body && strncmp(why, "no response", 11) == 0
            ? " after the upload"
            : "";
    return envd_error_new(abort, ENVD_TRANSPORT_HTTP, (int)h->status, "%s: %s%s", h->label, why,
                          after);
}

static void http_done(envd_curl_xfer *x, CURLcode rc, envd_status abort, const char *why)
{
    envd_http *h = http_of(x);
    envd_error *err = NULL;
    if (abort != ENVD_OK) {
        err = abort_error(h, abort, why);
    } else if (h->err) {
        err = h->err;
        h->err = NULL;
    } else if (rc != CURLE_OK) {
        char buf[CURL_ERROR_SIZE + 512];
        envd_status st = envd_curl_describe(x, rc, buf, sizeof buf);
        err = envd_error_new(st, ENVD_TRANSPORT_HTTP, (int)h->status, "%s: %s", h->label, buf);
    } else if (!h->headers_done) {
        /* The connection closed before the blank line ending the headers:
         * a cut-off response, whatever the status line said. */
        err = envd_error_new(envd_failure_status(ENVD_FAILURE_BROKEN, 0), ENVD_TRANSPORT_HTTP,
                             0, "%s: the connection closed inside the response headers",
                             h->label);
    }
    envd_curl_annotate(x, rc, err); /* for the retry rule (failure.c) */
    if (h->retry_after_ms)
        *h->retry_after_ms = envd_curl_retry_after_ms(x);
    h->cb.on_done(h->cb.ud, err);
}

static void http_destroy(envd_curl_xfer *x)
{
    envd_http *h = http_of(x);
    if (h->x.easy) /* never submitted */
        envd_curl_easy_put(h->x.eng, h->x.easy);
    curl_slist_free_all(h->hdrs);
    envd_http_body_free(h->body);
    free(h->label);
    free(h->url);
    envd_error_free(h->err);
    free(h);
}

static const envd_curl_xfer_vt http_vt = {http_done, http_destroy, NULL};

static envd_status add_header(struct curl_slist **l, const char *line)
{
    struct curl_slist *n = curl_slist_append(*l, line);
    if (!n)
        return ENVD_E_NOMEM;
    *l = n;
    return ENVD_OK;
}

/* The request body: one streaming reader for forms and raw bodies alike. */
static envd_status setup_body(envd_http *h, const envd_http_request *req)
{
    int form = req->n_parts > 0;
    envd_status st = envd_http_body_new(form ? req->parts : req->raw, form ? req->n_parts : 1,
                                        form, req->gzip_request, &h->body);
    if (st != ENVD_OK)
        return st;
    const char *ct = envd_http_body_content_type(h->body);
    char *line = envd_malloc(strlen(ct) + sizeof "Content-Type: ");
    if (!line)
        return ENVD_E_NOMEM;
    sprintf(line, "Content-Type: %s", ct);
    st = add_header(&h->hdrs, line);
    free(line);
    if (st == ENVD_OK && req->gzip_request)
        st = add_header(&h->hdrs, "Content-Encoding: gzip");
    if (st != ENVD_OK)
        return st;
    int64_t size = envd_http_body_wire_size(h->body);
    CURL *easy = h->x.easy;
    curl_easy_setopt(easy, CURLOPT_POST, 1L);
    curl_easy_setopt(easy, CURLOPT_READFUNCTION, on_read);
    curl_easy_setopt(easy, CURLOPT_READDATA, h);
    curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)size);
    /* An empty body is never read: it has gone out from the start. */
    h->body_eof = size == 0;
    return ENVD_OK;
}

static envd_status check_request(const envd_http_request *req, const envd_http_callbacks *cb)
{
    if (!req || !cb || !cb->on_done || !req->ep || !req->ep->base_url || !req->method ||
        !req->method[0] || !req->path || req->path[0] != '/' || (req->n_parts && !req->parts) ||
        (req->n_parts && req->raw) || (req->gzip_request && !req->raw && !req->n_parts) ||
        req->timeout_ms < 0 || req->idle_timeout_ms < 0 || req->deadline_ms < 0)
        return ENVD_E_USAGE;
    if (strpbrk(req->method, "\r\n \t") || strpbrk(req->path, "\r\n \t"))
        return ENVD_INVALID_ARGUMENT;
    if (strcmp(req->method, "GET") == 0 && (req->n_parts || req->raw))
        return ENVD_E_USAGE;
    return ENVD_OK;
}

/* The transfer object with its URL and label ("POST /files?..."). */
static envd_http *http_new(envd_curl_engine *e, const envd_http_request *req,
                           const envd_http_callbacks *cb)
{
    envd_http *h = envd_calloc(1, sizeof *h);
    if (!h)
        return NULL;
    h->cb = *cb;
    size_t bl = strlen(req->ep->base_url), pl = strlen(req->path);
    size_t ml = strlen(req->method);
    h->url = envd_malloc(bl + pl + 1);
    h->label = envd_malloc(ml + 1 + pl + 1);
    CURL *easy = envd_curl_easy_get(e);
    if (!h->url || !h->label || !easy) {
        envd_curl_easy_put(e, easy);
        http_destroy(&h->x);
        return NULL;
    }
    memcpy(h->url, req->ep->base_url, bl);
    memcpy(h->url + bl, req->path, pl + 1);
    memcpy(h->label, req->method, ml);
    h->label[ml] = ' ';
    memcpy(h->label + ml + 1, req->path, pl + 1);
    envd_curl_xfer_init(&h->x, &http_vt, e, easy, req->ep, h->url);
    return h;
}

static envd_status setup_request(envd_http *h, const envd_http_request *req)
{
    CURL *easy = h->x.easy;
    envd_status st = add_header(&h->hdrs, "Expect:");
    if (st != ENVD_OK)
        return st;
    ENVD_CURL_COPYOPT(&h->x, CURLOPT_URL, h->url);
    curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(easy, CURLOPT_HEADERDATA, h);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, h);
    /* Setting it at all makes curl decode what it can: a server that
     * compresses unasked is decoded, not handed over as the file. */
    ENVD_CURL_COPYOPT(&h->x, CURLOPT_ACCEPT_ENCODING, req->accept_gzip ? "gzip" : "identity");
    h->body_eof = 1;
    if (strcmp(req->method, "GET") == 0) {
        curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L);
    } else {
        if (req->n_parts || req->raw) {
            if ((st = setup_body(h, req)) != ENVD_OK)
                return st;
        } else {
            curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)0);
            curl_easy_setopt(easy, CURLOPT_POSTFIELDS, "");
        }
        if (strcmp(req->method, "POST") != 0)
            ENVD_CURL_COPYOPT(&h->x, CURLOPT_CUSTOMREQUEST, req->method);
    }
    if ((st = envd_curl_headers(req->headers, req->n_headers, &h->hdrs)) != ENVD_OK)
        return st;
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, h->hdrs);
    h->x.deadline_ms = req->deadline_ms;
    h->retry_after_ms = req->retry_after_ms;
    h->reply_timeout_ms = req->timeout_ms;
    h->x.timeout_ms = h->body_eof ? req->timeout_ms : 0; /* else armed in body_sent() */
    h->x.idle_timeout_ms = req->idle_timeout_ms;
    h->x.idle_before_first = 1; /* uploads stall before any response too */
    h->x.min_bytes = req->min_bytes;
    h->x.min_window_ms = req->min_window_ms;
    if (req->tune && (st = req->tune(req->tune_ud, easy)) != ENVD_OK)
        return st;
    return ENVD_OK;
}

/* The transfer as a stream of the nghttp2 engine. */
static envd_status h2_start(envd_h2c_engine *h2e, const envd_http_request *req,
                            const envd_http_callbacks *cb, envd_http **out)
{
    envd_http *h = envd_calloc(1, sizeof *h);
    if (!h)
        return ENVD_E_NOMEM;
    h->h2ops = envd_h2c_engine_connect(h2e)->ops;
    envd_status st = envd_h2c_http_start(h2e, req, cb, &h->h2);
    if (st != ENVD_OK) {
        free(h);
        return st;
    }
    *out = h;
    return ENVD_OK;
}

envd_status envd_http_start(envd_curl_engine *e, const envd_http_request *req,
                            const envd_http_callbacks *cb, envd_http **out)
{
    if (!out)
        return ENVD_E_USAGE;
    *out = NULL;
    envd_status st = e ? check_request(req, cb) : ENVD_E_USAGE;
    if (st != ENVD_OK)
        return st;
    envd_h2c_engine *h2e = req->tune ? NULL : envd_curl_engine_h2_for(e, req->ep);
    if (h2e)
        return h2_start(h2e, req, cb, out);
    envd_http *h = http_new(e, req, cb);
    if (!h)
        return ENVD_E_NOMEM;
    if ((st = setup_request(h, req)) != ENVD_OK ||
        (st = envd_curl_engine_submit(e, &h->x)) != ENVD_OK) {
        http_destroy(&h->x);
        return st;
    }
    *out = h;
    return ENVD_OK;
}

void envd_http_cancel(envd_http *h)
{
    if (h && h->h2)
        h->h2ops->cancel(h->h2);
    else if (h)
        envd_curl_xfer_cancel(&h->x);
}

void envd_http_release(envd_http *h)
{
    if (h && h->h2) {
        h->h2ops->release(h->h2);
        free(h);
    } else if (h) {
        envd_curl_xfer_unref(&h->x);
    }
}
