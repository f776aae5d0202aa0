/* One /files transfer as one future: builds the HTTP request (target,
 * headers, body parts), takes the response through the read side
 * (files_read.c) or the write side (files_write.c), and turns the outcome
 * into the future's result or error.
 *
 * No timer runs here: the wait for the response headers, the idle clock and
 * the whole-transfer deadline are all the transport's, on the engine's I/O
 * loop (transport.h, envd_http_request). */
#include "api/files_internal.h"
#include "core/alloc.h"
#include "api/sync.h"
#include "api/traffic.h"

#include <curl/curl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ERROR_BODY_MAX 4096
#define REPLY_MAX ((size_t)4 << 20) /* a write's JSON reply: ~100 bytes a file */

typedef struct req_headers req_headers;
static void headers_free(req_headers *h);
static envd_status launch(files_xfer *x, const char *compose_json);

/* ---- the operation (envd_op) ---------------------------------------------------- */

static void xfer_destroy(envd_op *op)
{
    files_xfer *x = (files_xfer *)op;
    envd_http *h = atomic_load(&x->http);
    if (h)
        envd_http_release(h);
    envd_files_srcs_free(x->srcs, x->n_srcs);
    free(x->readers);
    envd_error_free(x->local_err);
    envd_traffic_unref(x->traffic);
    free(x->what);
    envd_buf_free(&x->body);
    headers_free(x->hd);
    free(x->target);
    envd_client_free(x->c);
    free(x);
}

/* envd_op_stop's work: the HTTP transfer, once it exists (the starter
 * checks the stop flag after publishing it). */
static void xfer_stop(envd_op *op)
{
    envd_http *h = atomic_load(&((files_xfer *)op)->http);
    if (h)
        envd_http_cancel(h);
}

static const envd_op_class xfer_class = {.destroy = xfer_destroy, .stop = xfer_stop};

/* ---- shared by both sides (I/O thread) ------------------------------------------- */

void envd_files_fail(files_xfer *x, envd_status code, const char *fmt, ...)
{
    if (x->local_err)
        return;
    va_list ap;
    va_start(ap, fmt);
    x->local_err = envd_error_newv(code, ENVD_TRANSPORT_NONE, 0, fmt, ap);
    va_end(ap);
}

int envd_files_keep(files_xfer *x, const uint8_t *d, size_t n)
{
    if (envd_buf_append(&x->body, d, n) == 0)
        return 0;
    envd_files_fail(x, ENVD_E_NOMEM, "failed to %s file %s: out of memory after %zu bytes",
                    x->is_read ? "read" : "write", x->what, x->body.len);
    return -1;
}

void envd_files_progress(files_xfer *x, int64_t total)
{
    if (x->o.progress && x->moved != x->reported) {
        x->reported = x->moved;
        x->o.progress(x->o.progress_ud, x->moved, total);
    }
}

/* ---- the transport's callbacks (I/O thread) --------------------------------------- */

static int on_status(void *ud, int status, int64_t content_length)
{
    files_xfer *x = ud;
    x->status = status;
    x->content_length = content_length;
    x->body_ok = x->is_read ? (status == 200 || status == 206) : (status == 200 || status == 201);
    if (!x->body_ok)
        envd_buf_init_capped(&x->body, ERROR_BODY_MAX);
    else if (!x->is_read)
        envd_buf_init_capped(&x->body, REPLY_MAX);
    return x->is_read && x->body_ok ? envd_files_on_status_read(x, content_length) : 0;
}

static int on_data(void *ud, const uint8_t *d, size_t n)
{
    files_xfer *x = ud;
    if (x->body_ok && x->is_read)
        return envd_files_sink(x, d, n);
    if (envd_files_keep(x, d, n) != 0)
        return -1;
    /* An error reply is read as far as its message is kept, and no
     * further: the rest of a proxy's page, or of a server that stalls in
     * it, would only hold the call up (the stop ends it with the reply). */
    if (!x->body_ok && x->body.len >= ERROR_BODY_MAX) {
        x->error_kept = 1;
        return -1;
    }
    return 0;
}

static void on_progress(void *ud, int64_t sent, int64_t total)
{
    files_xfer *x = ud;
    x->moved = sent;
    envd_files_progress(x, total);
}

/* The error a finished transfer ends with, or NULL. Takes err. */
static envd_error *outcome_error(files_xfer *x, envd_error *err)
{
    const char *verb = x->is_read ? "read" : "write";
    if (x->local_err) { /* what stopped it, rather than the abort it caused */
        envd_error_free(err);
        err = x->local_err;
        x->local_err = NULL;
        return err;
    }
    if (err && x->error_kept) { /* the stop after the error reply's message */
        envd_error_free(err);
        err = NULL;
    }
    if (err)
        return envd_error_wrap(err, x->is_read ? "failed to read file" : "failed to write file");
    if (x->status == 401)
        envd_traffic_rejected(x->traffic, x->traffic_gen);
    if (x->body_ok)
        return NULL;
    envd_error *e = envd_error_from_http_body(x->status, (const uint8_t *)x->body.data,
                                              x->body.len, ENVD_TRANSPORT_HTTP);
    envd_error_set_retry_after(e, x->retry_after_ms);
    /* A 404 is envd's missing file, unless a gateway said the sandbox is
     * missing (E2B's edge answers that with 404 too). */
    if (x->status == 404 && !x->compose && e->code != ENVD_UNAVAILABLE) {
        envd_error_free(e);
        return envd_error_new(ENVD_NOT_FOUND, ENVD_TRANSPORT_HTTP, 404, "file not found: %s",
                              x->what);
    }
    /* envd's /files answers 500 for its own I/O failures (open, write,
     * EnsureDirs), which its RPCs report as internal. */
    if (x->status == 500 && e->code == ENVD_UNKNOWN)
        e->code = ENVD_INTERNAL;
    err = envd_error_new(e->code, ENVD_TRANSPORT_HTTP, x->status,
                         "failed to %s file (status %d): %s", verb, x->status, e->message);
    envd_error_set_failure(err, e->failure);
    envd_error_set_retry_after(err, e->retry_after_ms);
    envd_error_free(e);
    return err;
}

static void retry_read(envd_op *op, int stopped)
{
    files_xfer *x = (files_xfer *)op;
    envd_status st = stopped ? ENVD_CANCELED : launch(x, NULL);
    if (st != ENVD_OK) {
        envd_error *err = envd_error_new(
            st, ENVD_TRANSPORT_HTTP, 0, "failed to read file %s: %s (%d attempt%s failed)", x->what,
            st == ENVD_CANCELED ? "canceled while waiting to retry" : envd_strerror(st),
            x->attempts, x->attempts == 1 ? "" : "s");
        envd_op_release(op);
        envd_future_complete(x->f, NULL, NULL, err);
    }
    envd_op_unref(op); /* the timer's: launch took the transport's own */
}

/* A read that the one retry rule (failure.c) lets go again: arms it and
 * takes err. 0: err is final. */
static int retried(files_xfer *x, envd_error **err)
{
    if (!x->is_read || !*err || envd_op_stopped(&x->op))
        return 0;
    x->attempts++;
    int64_t timeout = x->c->cfg->request_timeout_ms;
    envd_retry_ctx ctx = {
        .attempt = x->attempts,
        .max_retries = envd_op_max_retries(x->c),
        .remaining_ms = timeout > 0 ? timeout - (envd_now_ms() - x->started_ms) : -1,
        .replayable = 1,
        .idempotent = 1,
        .responded = x->moved > 0,
    };
    int64_t delay = envd_retry_delay_ms(*err, &ctx, (uint64_t)envd_now_ms() * 2654435761u);
    if (delay < 0)
        return 0;
    envd_http *h = atomic_exchange(&x->http, NULL);
    if (h)
        envd_http_release(h);
    x->status = 0;
    x->body_ok = 0;
    x->error_kept = 0;
    x->content_length = -1;
    x->retry_after_ms = -1;
    envd_buf_free(&x->body);
    /* The transport's reference passes to the timer. */
    if (envd_op_later(&x->op, delay, retry_read) != ENVD_OK)
        return 0;
    envd_error_free(*err);
    *err = NULL;
    return 1;
}

static void on_done(void *ud, envd_error *err)
{
    files_xfer *x = ud;
    void *result = NULL;
    envd_free_fn free_fn = NULL;
    err = envd_op_gateway_error(x->c, outcome_error(x, err));
    if (retried(x, &err))
        return;
    if (err && x->attempts > 1) {
        char prefix[64];
        snprintf(prefix, sizeof prefix, "after %d attempts", x->attempts);
        envd_error_wrap(err, prefix);
    }
    if (!err) {
        result = x->is_read ? envd_files_read_result(x, &free_fn)
                            : envd_files_write_result(x, &free_fn);
        if (!result)
            err = envd_error_new(ENVD_E_NOMEM, ENVD_TRANSPORT_HTTP, x->status, "out of memory");
    }
    envd_op_release(&x->op); /* before the future: its caller may free the runtime */
    envd_future_complete(x->f, result, free_fn, err);
    envd_op_unref(&x->op);
}

/* ---- building the request ----------------------------------------------------------- */

/* "<files_path>?path=<p>&username=<u>" (path omitted when NULL). */
static char *files_target(envd_client *c, const char *path, const char *user)
{
    char *ep = path ? curl_easy_escape(NULL, path, 0) : NULL;
    char *eu = curl_easy_escape(NULL, user, 0);
    char *out = NULL;
    if ((ep || !path) && eu) {
        size_t n = strlen(c->files_path) + (ep ? strlen(ep) : 0) + strlen(eu) + 32;
        if ((out = envd_malloc(n))) {
            if (ep)
                snprintf(out, n, "%s?path=%s&username=%s", c->files_path, ep, eu);
            else
                snprintf(out, n, "%s?username=%s", c->files_path, eu);
        }
    }
    curl_free(ep);
    curl_free(eu);
    return out;
}

struct req_headers {
    envd_kv *kv;
    size_t n;
    envd_header_scratch scratch;
    char *names; /* "x-metadata-<key>\0" for each key, in one block */
    char range[64];
};

static void headers_free(req_headers *h)
{
    if (!h)
        return;
    free(h->kv);
    envd_headers_done(&h->scratch);
    free(h->names);
    free(h);
}

/* The client's headers by the one header policy (Authorization following
 * the user, as the RPCs; nothing reserved), then Range for a read or
 * X-Metadata-* for a write. */
static envd_status build_headers(envd_client *c, int is_read, const envd_files_opts *o,
                                 const char *user, req_headers *h)
{
    size_t n_meta = is_read ? 0 : o->meta.n, need = 0;
    if (!(h->kv = envd_malloc((ENVD_OP_HEADERS_CAP(c) + 1 + n_meta) * sizeof *h->kv)))
        return ENVD_E_NOMEM;
    int other_user = strcmp(user, c->cfg->user) != 0;
    h->n = envd_op_headers(c, NULL, ENVD_CALL_FILES, other_user ? user : NULL, 0, h->kv,
                           &h->scratch);
    if (h->scratch.status != ENVD_OK)
        return h->scratch.status;
    if (is_read && o->has_range) {
        if (o->range_len < 0)
            snprintf(h->range, sizeof h->range, "bytes=%lld-", (long long)o->range_off);
        else
            snprintf(h->range, sizeof h->range, "bytes=%lld-%lld", (long long)o->range_off,
                     (long long)(o->range_off + o->range_len - 1));
        h->kv[h->n++] = (envd_kv){"range", h->range};
    }
    for (size_t i = 0; i < n_meta; i++)
        need += strlen(o->meta.names[i]) + sizeof("x-metadata-");
    if (n_meta && !(h->names = envd_malloc(need)))
        return ENVD_E_NOMEM;
    char *p = h->names;
    for (size_t i = 0; i < n_meta; i++) {
        int k = sprintf(p, "x-metadata-%s", o->meta.names[i]);
        h->kv[h->n++] = (envd_kv){p, o->meta.values[i]};
        p += k + 1;
    }
    return ENVD_OK;
}

/* Copies the sources (paths owned) and gives each its reader. */
static envd_status copy_srcs(files_xfer *x, const envd_files_src *srcs, size_t n)
{
    x->srcs = envd_calloc(n, sizeof *x->srcs);
    x->readers = envd_calloc(n, sizeof *x->readers);
    if (!x->srcs || !x->readers)
        return ENVD_E_NOMEM;
    for (size_t i = 0; i < n; i++) {
        x->srcs[i] = srcs[i];
        if (srcs[i].kind == ENVD_SRC_FD && srcs[i].size < 0)
            x->srcs[i].size = envd_files_fd_remaining(srcs[i].fd);
        if (!(x->srcs[i].path = envd_strdup(srcs[i].path)))
            return ENVD_E_NOMEM;
        x->n_srcs = i + 1;
        x->readers[i] = (files_reader){x, &x->srcs[i], 0};
    }
    return ENVD_OK;
}

static files_xfer *xfer_new(envd_client *c, const files_args *a, const envd_files_opts *o)
{
    files_xfer *x = envd_calloc(1, sizeof *x);
    if (!x)
        return NULL;
    envd_op_init(&x->op, &xfer_class, c->rt); /* the starter's reference */
    x->is_read = a->is_read;
    x->o = *o; /* scalars only: the strings stay the caller's */
    x->o.user = NULL;
    x->o.meta = (envd_kvlist){0};
    x->content_length = -1;
    x->retry_after_ms = -1;
    char what[32];
    snprintf(what, sizeof what, "(%zu files)", a->n_srcs);
    x->what = envd_strdup(a->path ? a->path : what);
    int fk = !a->is_read ? ENVD_FK_WRITE_INFO
             : o->sink == ENVD_SINK_MEM ? ENVD_FK_BYTES
                                        : ENVD_FK_TRANSFER;
    x->compose = a->compose_json != NULL;
    x->f = envd_future_create(fk);
    if (!x->what || !x->f || (!a->is_read && copy_srcs(x, a->srcs, a->n_srcs) != ENVD_OK)) {
        envd_future_discard(x->f);
        envd_op_unref(&x->op);
        return NULL;
    }
    return x;
}

/* Starts the request (an attempt; compose_json: a /files/compose body);
 * on failure nothing runs and x is untouched. */
static envd_status launch(files_xfer *x, const char *compose_json)
{
    envd_client *c = x->c;
    const envd_files_opts *o = &x->o;
    const req_headers *hd = x->hd;
    int is_read = x->is_read;
    int form = !is_read && !o->octet && !compose_json;
    envd_http_part *parts = NULL;
    if (!is_read && !(parts = envd_calloc(x->n_srcs ? x->n_srcs : 1, sizeof *parts)))
        return ENVD_E_NOMEM;
    if (compose_json)
        parts[0] = (envd_http_part){.content_type = "application/json",
                                    .data = (const uint8_t *)compose_json,
                                    .len = strlen(compose_json)};
    for (size_t i = 0; !is_read && i < x->n_srcs; i++)
        parts[i] = (envd_http_part){.name = "file",
                                    .filename = form ? x->srcs[i].path : NULL,
                                    .read = envd_files_src_read,
                                    .read_ud = &x->readers[i],
                                    .size = x->srcs[i].size};
    envd_http_request req = {
        .ep = &c->ep,
        .method = is_read ? "GET" : "POST",
        .path = x->target,
        .headers = hd->kv,
        .n_headers = hd->n,
        .parts = form ? parts : NULL,
        .n_parts = form ? x->n_srcs : 0,
        .raw = is_read || form ? NULL : parts,
        .gzip_request = !is_read && o->gzip,
        .accept_gzip = is_read && o->gzip,
        .timeout_ms = c->cfg->request_timeout_ms,
        .idle_timeout_ms = o->idle_set ? o->idle_timeout_ms : c->cfg->idle_timeout_ms,
        .deadline_ms = o->timeout_ms,
        .min_bytes = c->cfg->files_min_bytes,
        .min_window_ms = c->cfg->files_min_window_ms,
        .retry_after_ms = &x->retry_after_ms,
    };
    envd_http_callbacks cb = {on_status, on_data, on_progress, on_done, x};
    envd_http *h = NULL;
    envd_op_ref(&x->op); /* the transport's, until on_done */
    envd_status s = envd_http_start(c->rt->curl, &req, &cb, &h);
    free(parts);
    if (s != ENVD_OK) {
        envd_op_unref(&x->op);
        return s;
    }
    /* an earlier attempt that ended before it was published goes here */
    envd_http *prev = atomic_exchange(&x->http, h);
    if (prev)
        envd_http_release(prev);
    if (envd_op_stopped(&x->op)) /* a cancel that came before the store */
        envd_http_cancel(h);
    return ENVD_OK;
}

/* Refusals name the argument (envd_start_error: the blocking form's *err). */
static envd_status check_args(envd_client *c, const files_args *a, const envd_files_opts *o)
{
    if (!c)
        return envd_start_error(ENVD_E_USAGE, "client is NULL");
    if (a->is_read && (!a->path || !*a->path))
        return envd_start_error(ENVD_E_USAGE, "path is %s", a->path ? "empty" : "NULL");
    if (a->is_read && o->sink == ENVD_SINK_FD && o->sink_fd < 0)
        return envd_start_error(ENVD_E_USAGE, "the sink fd is negative");
    if (a->is_read || a->compose_json)
        return ENVD_OK;
    if (a->n_srcs == 0)
        return envd_start_error(ENVD_E_USAGE, "the batch is empty");
    for (size_t i = 0; i < a->n_srcs; i++)
        if (!a->srcs[i].path || !*a->srcs[i].path)
            return envd_start_error(ENVD_E_USAGE, "path is %s", a->srcs[i].path ? "empty" : "NULL");
    if (o->octet && a->n_srcs != 1)
        return envd_start_error(ENVD_E_USAGE, "an octet-stream write takes one file, not %zu",
                                a->n_srcs);
    if (o->has_range)
        return envd_start_error(ENVD_E_USAGE, "a range applies to reads, not writes");
    if (o->meta.n > 0)
        return envd_client_gate(c, ENVD_GATE_METADATA);
    return ENVD_OK;
}

envd_status envd_files_xfer_start(envd_client *c, const files_args *a, const envd_files_opts *o,
                                  envd_future **out)
{
    if (!out)
        return envd_start_error(ENVD_E_USAGE, "out is NULL");
    *out = NULL;
    if (!o)
        o = &envd_files_opts_default;
    envd_status s = check_args(c, a, o);
    if (s != ENVD_OK)
        return s;
    envd_files_opts multipart;
    if (o->octet && !envd_client_serves(c, ENVD_GATE_OCTET_UPLOAD)) {
        multipart = *o; /* too old for octet-stream: multipart, as the SDKs fall back */
        multipart.octet = 0;
        o = &multipart;
    }
    const char *user = o->user ? o->user : c->cfg->user;
    files_xfer *x = xfer_new(c, a, o);
    if (!x)
        return ENVD_E_NOMEM;
    if ((x->traffic = c->traffic))
        envd_traffic_ref(x->traffic);
    envd_client_ref(c);
    x->c = c;
    x->started_ms = envd_now_ms();
    x->target = a->compose_json ? envd_strdup_printf("%s/compose", c->files_path)
                                : files_target(c, a->path, user);
    x->hd = envd_calloc(1, sizeof *x->hd);
    s = x->target && x->hd ? build_headers(c, a->is_read, o, user, x->hd) : ENVD_E_NOMEM;
    if (x->hd)
        x->traffic_gen = x->hd->scratch.traffic_gen;
    if (s == ENVD_OK && (a->no_slot || (s = envd_op_acquire(&x->op)) == ENVD_OK))
        s = launch(x, a->compose_json);
    if (!x->is_read) { /* only a read goes again: the rest is not needed */
        headers_free(x->hd);
        x->hd = NULL;
        free(x->target);
        x->target = NULL;
    }
    envd_future *f = x->f;
    if (s != ENVD_OK) { /* nothing runs: the last reference gives the slot back */
        envd_future_discard(f);
        envd_op_unref(&x->op);
        return s;
    }
    envd_op_bind(&x->op, f);
    *out = f;
    envd_op_unref(&x->op);
    return ENVD_OK;
}
