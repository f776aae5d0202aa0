/* The code interpreter (envd_code.h): each call is one plain HTTP request on
 * the runtime's curl engine (envd_http_start, as /files), wrapped in an
 * envd_op for its lifetime, slot and cancel, and completing one future.
 *
 * Requests follow openkruise/agents-api's runtime CodeInterpreter (Go):
 * POST <base>/execute with a JSON body, the reply read as NDJSON with a
 * line cap; POST/GET <base>/contexts, DELETE <base>/contexts/<id>; the
 * client's headers with e2b-sandbox-port set to the code port; an error
 * reply quoted up to 4096 bytes in "... failed (status N): <body>". */
#include "api/code_internal.h"
#include "api/op.h"
#include "api/sync.h"
#include "core/alloc.h"

#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ERROR_BODY_MAX 4096          /* the Go client's codeInterpreterErrorLimit */
#define REPLY_MAX ((size_t)4 << 20)  /* a context or a list of them */

typedef enum code_call {
    CALL_RUN,
    CALL_STREAM,
    CALL_CREATE,
    CALL_LIST,
    CALL_REMOVE,
    CALL_RESTART
} code_call;

static const char *const CALL_WHAT[] = {"code execution",  "code execution",
                                        "create context",  "list contexts",
                                        "remove context",  "restart context"};

typedef struct code_op {
    envd_op op; /* first: lifetime, slot, stop, cancel hooks */
    envd_future *f;
    _Atomic(envd_http *) http;
    code_call call;
    envd_endpoint ep; /* owned: the code interpreter's base URL */
    int status, ok;
    envd_buf body; /* a context reply, or an error excerpt */
    envd_code_reader reader;
    envd_code_event_cb cb;
    void *ud;
    code_exec *exec; /* CALL_RUN: what is collected */
    size_t max_output;
} code_op;

/* ---- the operation -------------------------------------------------------- */

static void endpoint_free(envd_endpoint *ep)
{
    free(ep->base_url);
    free(ep->authority);
    free(ep->ca_file);
}

static void code_destroy(envd_op *op)
{
    code_op *x = (code_op *)op;
    envd_http *h = atomic_load(&x->http);
    if (h)
        envd_http_release(h);
    endpoint_free(&x->ep);
    envd_buf_free(&x->body);
    envd_code_reader_done(&x->reader);
    envd_code_execution_free(x->exec ? &x->exec->pub : NULL);
    free(x);
}

static void code_stop(envd_op *op)
{
    envd_http *h = atomic_load(&((code_op *)op)->http);
    if (h)
        envd_http_cancel(h);
}

static const envd_op_class code_class = {.destroy = code_destroy, .stop = code_stop};

/* ---- the transport's callbacks (I/O thread) ------------------------------- */

/* The collected form's own callback: keeps the event, then the caller's. */
static int collect(void *ud, const envd_code_event *ev)
{
    code_op *x = ud;
    if (envd_code_execution_add(x->exec, ev, x->max_output) != 0)
        return -1; /* reported as the callback's stop; on_done says out of memory */
    return x->cb ? x->cb(x->ud, ev) : 0;
}

static int on_status(void *ud, int status, int64_t content_length)
{
    code_op *x = ud;
    x->status = status;
    x->ok = status >= 200 && status < 300; /* the Go client's isSuccessStatus */
    envd_buf_init_capped(&x->body, x->ok ? REPLY_MAX : ERROR_BODY_MAX);
    return 0;
}

static int on_data(void *ud, const uint8_t *d, size_t n)
{
    code_op *x = ud;
    if (x->ok && (x->call == CALL_RUN || x->call == CALL_STREAM))
        return envd_code_reader_feed(&x->reader, d, n) != 0;
    if (envd_buf_append(&x->body, d, n) != 0)
        return 1;
    return x->ok && x->body.truncated; /* a reply past REPLY_MAX: stop, report it */
}

static envd_error *status_error(code_op *x)
{
    envd_error *e = envd_error_from_http_body(x->status, (const uint8_t *)x->body.data,
                                              x->body.len, ENVD_TRANSPORT_HTTP);
    envd_status code = e->code;
    /* E2B's server answers 400 for a request naming both a language and a
     * context (main.py post_execute): the caller's mistake. */
    if (x->status == 400)
        code = ENVD_INVALID_ARGUMENT;
    envd_error *out = envd_error_new(code, ENVD_TRANSPORT_HTTP, x->status,
                                     "%s failed (status %d): %.*s", CALL_WHAT[x->call],
                                     x->status, (int)x->body.len,
                                     x->body.data ? x->body.data : "");
    envd_error_free(e);
    return out;
}

/* The error the call ends with, or NULL; sets the result. Takes err. */
static envd_error *outcome(code_op *x, envd_error *err, void **result, envd_free_fn *free_fn)
{
    int streamed = x->call == CALL_RUN || x->call == CALL_STREAM;
    if (streamed && x->reader.err) { /* what stopped it, rather than the abort */
        envd_error_free(err);
        err = x->reader.err;
        x->reader.err = NULL;
        if (x->exec && x->exec->oom) {
            envd_error_free(err);
            err = envd_error_new(ENVD_E_NOMEM, ENVD_TRANSPORT_NONE, 0,
                                 "code execution: out of memory collecting the output");
        }
        return err;
    }
    if (err) {
        char prefix[64];
        snprintf(prefix, sizeof prefix, "%s failed", CALL_WHAT[x->call]);
        return envd_error_wrap(err, prefix);
    }
    if (!x->ok)
        return status_error(x);
    if (streamed) {
        if (envd_code_reader_finish(&x->reader) != 0) {
            err = x->reader.err;
            x->reader.err = NULL;
            return err;
        }
        if (x->call == CALL_RUN) {
            *result = &x->exec->pub;
            *free_fn = (envd_free_fn)envd_code_execution_free;
            x->exec = NULL;
        }
        return NULL;
    }
    if (x->body.truncated)
        return envd_error_new(ENVD_E_PROTOCOL, ENVD_TRANSPORT_HTTP, x->status,
                              "%s: reply longer than %zu bytes", CALL_WHAT[x->call], REPLY_MAX);
    if (x->call == CALL_CREATE)
        return envd_code_context_parse(x->body.data, x->body.len, result, free_fn);
    if (x->call == CALL_LIST)
        return envd_code_context_list_parse(x->body.data, x->body.len, result, free_fn);
    return NULL;
}

static void on_done(void *ud, envd_error *err)
{
    code_op *x = ud;
    void *result = NULL;
    envd_free_fn free_fn = NULL;
    err = outcome(x, err, &result, &free_fn);
    envd_op_release(&x->op); /* before the future: its caller may free the runtime */
    envd_future_complete(x->f, result, free_fn, err);
    envd_op_unref(&x->op);
}

/* ---- starting a call ------------------------------------------------------ */

typedef struct code_request {
    code_call call;
    const char *method;
    char *path; /* owned */
    char *body; /* owned JSON, or NULL */
    const envd_code_opts *o;
    envd_code_event_cb cb;
    void *ud;
} code_request;

/* The code interpreter's base URL: its own, or the runtime URL. */
static envd_status code_endpoint(envd_client *c, envd_endpoint *ep)
{
    const char *url = c->cfg->code_base_url ? c->cfg->code_base_url : c->runtime_url;
    char *files_path = NULL;
    envd_error *err = NULL;
    envd_status s = envd_endpoint_parse(url, ep, &files_path, &err);
    free(files_path);
    if (s != ENVD_OK) {
        s = envd_start_error(s, "%s", err ? envd_error_message(err) : "bad code interpreter URL");
        envd_error_free(err);
        return s;
    }
    if (c->ep.ca_file && !(ep->ca_file = envd_strdup(c->ep.ca_file)))
        return ENVD_E_NOMEM;
    ep->insecure = c->ep.insecure;
    ep->h2c_prior_knowledge = c->ep.h2c_prior_knowledge;
    ep->max_message = c->ep.max_message;
    return ENVD_OK;
}

static code_op *op_new(envd_client *c, const code_request *rq)
{
    code_op *x = envd_calloc(1, sizeof *x);
    if (!x)
        return NULL;
    envd_op_init(&x->op, &code_class, c->rt);
    x->call = rq->call;
    x->cb = rq->cb;
    x->ud = rq->ud;
    int kind = rq->call == CALL_RUN      ? ENVD_FK_CODE_EXECUTION
               : rq->call == CALL_CREATE ? ENVD_FK_CODE_CONTEXT
               : rq->call == CALL_LIST   ? ENVD_FK_CODE_CONTEXT_LIST
                                         : ENVD_FK_NONE;
    const envd_code_opts *o = rq->o ? rq->o : &envd_code_opts_default;
    x->max_output = o->max_output;
    envd_code_reader_init(&x->reader, o->max_line, rq->call == CALL_RUN ? collect : rq->cb,
                          rq->call == CALL_RUN ? (void *)x : rq->ud);
    x->f = envd_future_create(kind);
    if (!x->f || (rq->call == CALL_RUN && !(x->exec = envd_code_execution_new()))) {
        envd_future_discard(x->f);
        envd_op_unref(&x->op);
        return NULL;
    }
    return x;
}

/* The client's headers by the one header policy, with e2b-sandbox-port
 * naming the code interpreter's port (the Go client's
 * CodeInterpreterHeaders: the same map, that one header replaced), plus
 * Content-Type for a JSON body. */
static envd_status launch(envd_client *c, code_op *x, const code_request *rq, int64_t deadline_ms)
{
    envd_kv *hdrs = envd_malloc((ENVD_OP_HEADERS_CAP(c) + 2) * sizeof *hdrs);
    if (!hdrs)
        return ENVD_E_NOMEM;
    envd_header_scratch hs;
    size_t n = envd_op_headers(c, NULL, ENVD_CALL_FILES, NULL, 0, hdrs, &hs);
    char port[16];
    snprintf(port, sizeof port, "%d", c->cfg->code_port);
    int has_port = 0;
    for (size_t i = 0; i < n; i++)
        if (strcmp(hdrs[i].name, "e2b-sandbox-port") == 0) {
            hdrs[i].value = port;
            has_port = 1;
        }
    if (!has_port)
        hdrs[n++] = (envd_kv){"e2b-sandbox-port", port};
    if (rq->body)
        hdrs[n++] = (envd_kv){"content-type", "application/json"};
    envd_http_part raw = {.content_type = "application/json",
                          .data = (const uint8_t *)rq->body,
                          .len = rq->body ? strlen(rq->body) : 0,
                          .size = -1};
    envd_http_request req = {
        .ep = &x->ep,
        .method = rq->method,
        .path = rq->path,
        .headers = hdrs,
        .n_headers = n,
        .raw = rq->body ? &raw : NULL,
        .timeout_ms = c->cfg->request_timeout_ms,
        .deadline_ms = deadline_ms,
    };
    envd_http_callbacks cb = {on_status, on_data, NULL, on_done, x};
    envd_http *h = NULL;
    envd_op_ref(&x->op); /* the transport's, until on_done */
    /* No traffic token to be had: nothing is sent (api/traffic.h). */
    envd_status s = hs.status != ENVD_OK ? hs.status : envd_http_start(c->rt->curl, &req, &cb, &h);
    envd_headers_done(&hs);
    free(hdrs);
    if (s != ENVD_OK) {
        envd_op_unref(&x->op);
        return s;
    }
    atomic_store(&x->http, h);
    if (envd_op_stopped(&x->op)) /* a cancel that came before the store */
        envd_http_cancel(h);
    return ENVD_OK;
}

/* Starts rq (whose path and body it frees). */
static envd_status code_start(envd_client *c, code_request *rq, envd_future **out)
{
    envd_status s = ENVD_OK;
    code_op *x = NULL;
    if (!rq->path || (rq->call <= CALL_CREATE && !rq->body))
        s = ENVD_E_NOMEM;
    else if (!(x = op_new(c, rq)))
        s = ENVD_E_NOMEM;
    else if ((s = code_endpoint(c, &x->ep)) == ENVD_OK &&
             (s = envd_op_acquire(&x->op)) == ENVD_OK) {
        const envd_code_opts *o = rq->o ? rq->o : &envd_code_opts_default;
        s = launch(c, x, rq, rq->call <= CALL_STREAM ? o->timeout_ms : c->cfg->request_timeout_ms);
    }
    free(rq->path);
    free(rq->body);
    if (s != ENVD_OK) {
        if (x) { /* nothing runs: the last reference gives the slot back */
            envd_future_discard(x->f);
            envd_op_unref(&x->op);
        }
        return s;
    }
    envd_op_bind(&x->op, x->f);
    *out = x->f;
    envd_op_unref(&x->op);
    return ENVD_OK;
}

/* ---- the calls ------------------------------------------------------------ */

static envd_status begin(envd_client *c, envd_future **out)
{
    if (!out)
        return envd_start_error(ENVD_E_USAGE, "out is NULL");
    *out = NULL;
    if (!c)
        return envd_start_error(ENVD_E_USAGE, "client is NULL");
    return ENVD_OK;
}

static envd_status run_start(envd_client *c, const char *code, const envd_code_opts *o,
                             code_call call, envd_code_event_cb cb, void *ud, envd_future **out)
{
    envd_status s = begin(c, out);
    if (s != ENVD_OK)
        return s;
    if (!code || !*code)
        return envd_start_error(ENVD_E_USAGE, "code is %s", code ? "empty" : "NULL");
    if (call == CALL_STREAM && !cb)
        return envd_start_error(ENVD_E_USAGE, "the event callback is NULL");
    code_request rq = {.call = call, .method = "POST", .path = envd_strdup("/execute"),
                       .body = envd_code_request_json(code, o), .o = o, .cb = cb, .ud = ud};
    return code_start(c, &rq, out);
}

envd_status envd_code_run_async(envd_client *c, const char *code, const envd_code_opts *o,
                                envd_code_event_cb cb, void *ud, envd_future **out)
{
    return run_start(c, code, o, CALL_RUN, cb, ud, out);
}

envd_status envd_code_run_stream_async(envd_client *c, const char *code, const envd_code_opts *o,
                                       envd_code_event_cb cb, void *ud, envd_future **out)
{
    return run_start(c, code, o, CALL_STREAM, cb, ud, out);
}

envd_status envd_code_context_create_async(envd_client *c, const char *language,
                                           const char *cwd, envd_future **out)
{
    envd_status s = begin(c, out);
    if (s != ENVD_OK)
        return s;
    code_request rq = {.call = CALL_CREATE, .method = "POST", .path = envd_strdup("/contexts"),
                       .body = envd_code_context_request_json(language, cwd)};
    return code_start(c, &rq, out);
}

envd_status envd_code_context_list_async(envd_client *c, envd_future **out)
{
    envd_status s = begin(c, out);
    if (s != ENVD_OK)
        return s;
    code_request rq = {.call = CALL_LIST, .method = "GET", .path = envd_strdup("/contexts")};
    return code_start(c, &rq, out);
}

/* "/contexts/<id, escaped><suffix>" */
static envd_status context_call(envd_client *c, const char *id, code_call call,
                                envd_future **out)
{
    envd_status s = begin(c, out);
    if (s != ENVD_OK)
        return s;
    if (!id || !*id) /* the Go client: "context ID cannot be empty" */
        return envd_start_error(ENVD_E_USAGE, "context id is %s", id ? "empty" : "NULL");
    char *e = curl_easy_escape(NULL, id, 0);
    code_request rq = {.call = call,
                       .method = call == CALL_REMOVE ? "DELETE" : "POST",
                       .path = e ? envd_strdup_printf("/contexts/%s%s", e,
                                                      call == CALL_RESTART ? "/restart" : "")
                                 : NULL};
    curl_free(e);
    return code_start(c, &rq, out);
}

envd_status envd_code_context_remove_async(envd_client *c, const char *id, envd_future **out)
{
    return context_call(c, id, CALL_REMOVE, out);
}

envd_status envd_code_context_restart_async(envd_client *c, const char *id, envd_future **out)
{
    return context_call(c, id, CALL_RESTART, out);
}

/* ---- results -------------------------------------------------------------- */

const envd_code_execution *envd_future_code_execution(const envd_future *f)
{
    return envd_future_status(f) == ENVD_OK ? envd_future_result(f, ENVD_FK_CODE_EXECUTION)
                                            : NULL;
}

const envd_code_context *envd_future_code_context(const envd_future *f)
{
    return envd_future_status(f) == ENVD_OK ? envd_future_result(f, ENVD_FK_CODE_CONTEXT) : NULL;
}

const envd_code_contexts *envd_future_code_contexts(const envd_future *f)
{
    return envd_future_status(f) == ENVD_OK ? envd_future_result(f, ENVD_FK_CODE_CONTEXT_LIST)
                                            : NULL;
}
