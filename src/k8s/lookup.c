/* One Sandbox lookup as an operation of the runtime.
 *
 * Stages: the kubeconfig is read on the starting thread (local files); an
 * exec plugin, when the user has one, runs on the runtime's Kubernetes
 * worker; the GET goes to the runtime's curl engine, and its on_done (curl
 * I/O thread) parses the answer and completes the future. A 401 with a
 * cached plugin credential goes back to the worker once for a fresh one.
 *
 * The lookup is an envd_op (api/op.h). References: the starting
 * function's, one per stage in flight (a queued or running worker job, a
 * transfer until its on_done), and the future's around each cancel call.
 * On a runtime it holds an in-flight slot like every operation. Cancel
 * sets the op's stop flag, which every stage checks, stops the transfer
 * and wakes the worker (a running plugin is killed). The runtime stops the
 * worker before it frees the curl engine, so every stage ends and every
 * future completes, ENVD_CANCELED. */
#include "api/op_wire.h"
#include "core/alloc.h"
#include "api/sync.h"
#include "core/buf.h"
#include "k8s/exec_plugin.h"
#include "k8s/k8s.h"

#include <curl/curl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_BODY (8u << 20)
#define MAX_HEADERS 8

typedef struct lookup {
    envd_op base;     /* first */
    envd_k8s_job job; /* the worker's queue entry */
    atomic_int completed;
    envd_future *f;
    envd_curl_engine *curl;
    envd_k8s_worker *worker;
    envd_k8s_finish fin;
    envd_k8s_conn *conn;
    char *ns, *name; /* name NULL: a list */
    char *selector;  /* a list's label selector */
    char *path; /* "/apis/.../sandboxes/<name>", or a step's */
    const char *method; /* "GET" unless a step asks otherwise */
    char *req_body;     /* a step's JSON body, or NULL */
    char *what;         /* a step operation's error prefix */
    envd_endpoint ep;
    struct curl_slist *connect_to; /* tls-server-name */
    int64_t timeout_ms;
    int use_exec, attempt;
    envd_k8s_cred cred; /* the plugin's, for this attempt */

    envd_op_wire wire; /* the request, or a step's wait before the next one */

    /* The answer (curl I/O thread, one transfer at a time). */
    long status;
    envd_buf body; /* capped at MAX_BODY */
    int body_nomem; /* no memory to keep the answer: the abort was ours */
} lookup;

static lookup *of_op(envd_op *b)
{
    return (lookup *)b;
}

static void lookup_destroy(envd_op *b)
{
    lookup *op = of_op(b);
    envd_op_wire_destroy(&op->wire);
    envd_k8s_conn_free(op->conn);
    envd_k8s_cred_clear(&op->cred);
    curl_slist_free_all(op->connect_to);
    if (op->fin.ctx_free)
        op->fin.ctx_free(op->fin.ctx);
    free(op->ns);
    free(op->name);
    free(op->selector);
    free(op->path);
    free(op->req_body);
    free(op->what);
    free(op->ep.base_url);
    envd_buf_free(&op->body);
    free(op);
}

/* envd_op_stop's part for work that is not an RPC: the transfer (or a
 * step's wait, which then completes the op: step_due), and a plugin
 * running on the worker. */
static void lookup_stop(envd_op *b)
{
    lookup *op = of_op(b);
    envd_op_wire_stop(&op->wire);
    envd_k8s_worker_wake(op->worker);
}

/* Freeing the runtime drops pending timers without firing them: a step
 * operation waiting for its next poll is stopped first. */
static envd_future *lookup_shutdown(envd_op *b)
{
    envd_op_stop(b);
    return NULL;
}

static const envd_op_class lookup_class = {
    .destroy = lookup_destroy, .stop = lookup_stop, .shutdown = lookup_shutdown};

static void lookup_ref(lookup *op)
{
    envd_op_ref(&op->base);
}

static void lookup_unref(lookup *op)
{
    envd_op_unref(&op->base);
}

static int canceled(lookup *op)
{
    return envd_op_stopped(&op->base);
}

/* Completes the future once: with result, or with err (owned here). A
 * canceled lookup reports ENVD_CANCELED whatever its last stage said. */
static void complete(lookup *op, void *result, envd_free_fn free_fn, envd_error *err)
{
    if (err && canceled(op) && envd_error_code(err) != ENVD_CANCELED) {
        envd_error_free(err);
        err = envd_error_new(ENVD_CANCELED, ENVD_TRANSPORT_NONE, 0, "canceled");
    }
    if (atomic_exchange(&op->completed, 1)) {
        if (result && free_fn)
            free_fn(result);
        envd_error_free(err);
        return;
    }
    /* The slot goes first: the future's caller may free the runtime. */
    envd_op_release(&op->base);
    envd_future_complete(op->f, result, free_fn, err);
}

static envd_error *wrap_get(const lookup *op, envd_error *e)
{
    char prefix[600];
    if (op->fin.step)
        snprintf(prefix, sizeof(prefix), "%s", op->what);
    else if (op->name)
        snprintf(prefix, sizeof(prefix), "failed to get sandbox %s/%s", op->ns, op->name);
    else
        snprintf(prefix, sizeof(prefix), "failed to list sandboxes in %s (selector '%s')",
                 op->ns, op->selector);
    return envd_error_wrap(e, prefix);
}

/* A stage could not start: st, or ENVD_CANCELED when the runtime is going. */
static void fail_start(lookup *op, envd_status st, const char *what)
{
    if (st == ENVD_E_SHUTDOWN)
        complete(op, NULL, NULL, envd_error_new(ENVD_CANCELED, ENVD_TRANSPORT_NONE, 0,
                                                "canceled: the runtime is being freed"));
    else
        complete(op, NULL, NULL,
                 wrap_get(op, envd_error_new(st, ENVD_TRANSPORT_NONE, 0, "%s", what)));
}

/* ------------------------------------------------------------ the GET */

/* What authenticated, for 401 messages. */
static const char *cred_kind(const lookup *op)
{
    const envd_k8s_conn *c = op->conn;
    if (op->use_exec)
        return op->cred.token ? "a token from its exec plugin"
                              : "a client certificate from its exec plugin";
    if (c->token)
        return "a bearer token";
    if (c->username)
        return "username/password";
    if (c->cert.data)
        return "a client certificate";
    return "no credentials";
}

/* http.c's tune hook: the kubeconfig's TLS material, proxy and basic auth. */
static envd_status tune(void *ud, void *easy)
{
    lookup *op = ud;
    const envd_k8s_conn *c = op->conn;
    CURL *h = easy;
    int bad = 0; /* an option libcurl could not copy: out of memory */
    if (!c->insecure && c->ca.data) {
        /* Only the kubeconfig's CA, as client-go: not the system store too. */
        struct curl_blob ca = {c->ca.data, c->ca.len, CURL_BLOB_COPY};
        curl_easy_setopt(h, CURLOPT_CAINFO, NULL);
        curl_easy_setopt(h, CURLOPT_CAPATH, NULL);
        bad |= curl_easy_setopt(h, CURLOPT_CAINFO_BLOB, &ca) != CURLE_OK;
    }
    const envd_k8s_cred *cr = op->use_exec ? &op->cred : NULL;
    const envd_k8s_blob *cert = cr && cr->cert.data ? &cr->cert : &c->cert;
    const envd_k8s_blob *key = cr && cr->cert.data ? &cr->key : &c->key;
    if (cert->data && key->data) {
        struct curl_blob cb = {cert->data, cert->len, CURL_BLOB_COPY};
        struct curl_blob kb = {key->data, key->len, CURL_BLOB_COPY};
        bad |= curl_easy_setopt(h, CURLOPT_SSLCERT_BLOB, &cb) != CURLE_OK;
        bad |= curl_easy_setopt(h, CURLOPT_SSLCERTTYPE, "PEM") != CURLE_OK;
        bad |= curl_easy_setopt(h, CURLOPT_SSLKEY_BLOB, &kb) != CURLE_OK;
        bad |= curl_easy_setopt(h, CURLOPT_SSLKEYTYPE, "PEM") != CURLE_OK;
    }
    if (c->proxy_url)
        bad |= curl_easy_setopt(h, CURLOPT_PROXY, c->proxy_url) != CURLE_OK;
    if (op->connect_to)
        curl_easy_setopt(h, CURLOPT_CONNECT_TO, op->connect_to);
    if (!(cr && cr->token) && !c->token && c->username) {
        curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        bad |= curl_easy_setopt(h, CURLOPT_USERNAME, c->username) != CURLE_OK;
        bad |= curl_easy_setopt(h, CURLOPT_PASSWORD, c->password ? c->password : "") != CURLE_OK;
    }
    return bad ? ENVD_E_NOMEM : ENVD_OK;
}

static int on_status(void *ud, int status, int64_t content_length)
{
    (void)content_length;
    ((lookup *)ud)->status = status;
    return 0;
}

static int on_data(void *ud, const uint8_t *p, size_t n)
{
    lookup *op = ud;
    if (envd_buf_append(&op->body, p, n) != 0)
        op->body_nomem = 1;
    return op->body_nomem || op->body.truncated;
}

/* The transfer's failure in the words of the Kubernetes lookup. */
static envd_error *http_failure(const lookup *op, envd_error *e)
{
    const envd_k8s_conn *c = op->conn;
    envd_status code = envd_error_code(e);
    const char *why = envd_error_message(e);
    envd_error *r;
    if (op->body.truncated)
        r = envd_error_new(ENVD_E_PROTOCOL, ENVD_TRANSPORT_HTTP, (int)op->status,
                           "the answer from %s is larger than %u bytes", c->server, MAX_BODY);
    else if (op->body_nomem)
        r = envd_error_new(ENVD_E_NOMEM, ENVD_TRANSPORT_HTTP, (int)op->status,
                           "out of memory keeping the answer from %s", c->server);
    else if (code == ENVD_CANCELED || code == ENVD_E_NOMEM)
        r = envd_error_new(code, ENVD_TRANSPORT_HTTP, 0, "%s", why);
    else if (code == ENVD_DEADLINE_EXCEEDED || code == ENVD_E_IDLE_TIMEOUT)
        r = envd_error_new(ENVD_DEADLINE_EXCEEDED, ENVD_TRANSPORT_HTTP, 0,
                           "the Kubernetes API server at %s did not answer within %lld ms (%s)",
                           c->server, (long long)op->timeout_ms, why);
    else if (strstr(why, "TLS failure"))
        /* the code is the one error model's (failure.c), as for envd */
        r = envd_error_new(code, ENVD_TRANSPORT_HTTP, 0,
                           "TLS with the Kubernetes API server at %s failed: %s (trusting %s%s)",
                           c->server, why, c->ca_desc ? "the CA in " : "the system store",
                           c->ca_desc ? c->ca_desc : "");
    else
        r = envd_error_new(code, ENVD_TRANSPORT_HTTP, 0,
                           "cannot reach the Kubernetes API server at %s: %s", c->server, why);
    envd_error_free(e);
    return wrap_get(op, r);
}

static void to_worker(lookup *op);

/* A 200 answer: parse, then the caller's finish makes the result. */
static void list_free_fn(void *p)
{
    envd_k8s_sandboxes_free(p);
}

static void answered(lookup *op)
{
    char *problem = NULL;
    envd_k8s_sb *s = NULL;
    envd_k8s_sandboxes *l = NULL;
    if (op->selector)
        l = envd_k8s_sandboxes_parse(op->ns, envd_buf_str(&op->body), op->body.len, &problem);
    else
        s = envd_k8s_sandbox_parse(op->ns, op->name, envd_buf_str(&op->body), op->body.len,
                                   &problem);
    if (l) {
        complete(op, l, list_free_fn, NULL);
        return;
    }
    if (!s) {
        envd_status st = problem ? ENVD_E_PROTOCOL : ENVD_E_NOMEM;
        envd_error *e = envd_error_new(st, ENVD_TRANSPORT_HTTP, 200, "%s from %s",
                                       problem ? problem : "out of memory", op->conn->server);
        free(problem);
        complete(op, NULL, NULL, wrap_get(op, e));
        return;
    }
    void *result = NULL;
    envd_free_fn free_fn = NULL;
    envd_error *e = op->fin.make(op->fin.ctx, s, &result, &free_fn);
    complete(op, result, free_fn, e);
}

static void advance(lookup *op);

static void on_done(void *ud, envd_error *err)
{
    lookup *op = ud;
    envd_op_wire_finished(&op->wire);
    if (err || op->body.truncated || op->body_nomem) {
        complete(op, NULL, NULL, http_failure(op, err));
    } else if (op->status == 401 && op->use_exec && op->attempt == 0) {
        op->attempt = 1; /* a cached plugin credential went stale: once more, fresh */
        to_worker(op);
    } else if (op->fin.step) {
        advance(op);
    } else if (op->status != 200) {
        envd_k8s_what w = {op->name ? "get" : "list", "sandboxes", "sandbox"};
        envd_error *e = envd_k8s_status_error(op->conn, cred_kind(op), op->status, op->body.data,
                                              op->body.len, op->ns, op->name ? op->name : "", &w);
        complete(op, NULL, NULL, wrap_get(op, e));
    } else {
        answered(op);
    }
    lookup_unref(op); /* the transfer's */
}

/* Header values from the kubeconfig into h (room for MAX_HEADERS plus the
 * groups); *auth gets the Authorization value to free. Impersonate-Extra
 * lines come whole and are added by the caller. */
static size_t build_headers(const lookup *op, envd_kv *h, char **auth)
{
    const envd_k8s_conn *c = op->conn;
    size_t n = 0;
    h[n++] = (envd_kv){"Accept", "application/json"};
    const char *token = op->use_exec && op->cred.token ? op->cred.token : c->token;
    *auth = NULL;
    if (token)
        *auth = envd_strdup_printf("Bearer %s", token);
    if (*auth)
        h[n++] = (envd_kv){"Authorization", *auth};
    if (c->as_user)
        h[n++] = (envd_kv){"Impersonate-User", c->as_user};
    if (c->as_uid)
        h[n++] = (envd_kv){"Impersonate-Uid", c->as_uid};
    for (size_t i = 0; i < c->n_as_groups; i++)
        h[n++] = (envd_kv){"Impersonate-Group", c->as_groups[i]};
    return n;
}

static void http_begin(lookup *op)
{
    const envd_k8s_conn *c = op->conn;
    size_t cap = MAX_HEADERS + c->n_as_groups + c->n_as_extra;
    envd_kv *h = envd_calloc(cap, sizeof(*h));
    char **extra = envd_calloc(c->n_as_extra + 1, sizeof(char *));
    char *auth = NULL;
    envd_status st = h && extra ? ENVD_OK : ENVD_E_NOMEM;
    size_t n = st == ENVD_OK ? build_headers(op, h, &auth) : 0;
    const char *token = op->use_exec && op->cred.token ? op->cred.token : c->token;
    if (token && !auth)
        st = ENVD_E_NOMEM;
    /* "Impersonate-Extra-<key>: <value>", split at its ": " */
    for (size_t i = 0; st == ENVD_OK && i < c->n_as_extra; i++) {
        char *colon = (extra[i] = envd_strdup(c->as_extra[i])) ? strstr(extra[i], ": ") : NULL;
        if (!extra[i])
            st = ENVD_E_NOMEM;
        else if (colon) {
            *colon = 0;
            h[n++] = (envd_kv){extra[i], colon + 2};
        }
    }
    op->status = 0;
    op->body_nomem = 0;
    envd_buf_clear(&op->body);
    envd_http_part raw = {.content_type = "application/json",
                          .data = (const uint8_t *)op->req_body,
                          .len = op->req_body ? strlen(op->req_body) : 0};
    envd_http_request req = {.ep = &op->ep,
                             .method = op->method,
                             .raw = op->req_body ? &raw : NULL,
                             .path = op->path,
                             .tune = tune,
                             .tune_ud = op,
                             .headers = h,
                             .n_headers = n,
                             .accept_gzip = 1,
                             .timeout_ms = op->timeout_ms,
                             .idle_timeout_ms = op->timeout_ms};
    envd_http_callbacks cb = {on_status, on_data, NULL, on_done, op};
    if (st == ENVD_OK) /* the transfer's reference on op is dropped by on_done */
        st = envd_op_wire_send(&op->wire, &op->base, op->curl, &req, &cb);
    for (size_t i = 0; extra && i < c->n_as_extra; i++)
        free(extra[i]);
    free(extra);
    free(h);
    free(auth);
    if (st != ENVD_OK) {
        if (st == ENVD_INVALID_ARGUMENT)
            complete(op, NULL, NULL,
                     envd_error_new(ENVD_E_CONFIG, ENVD_TRANSPORT_NONE, 0,
                                    "the credentials of %s cannot be sent in an HTTP header",
                                    c->user_desc));
        else
            fail_start(op, st, envd_strerror(st));
    }
}

/* ------------------------------------------------------- the exec plugin */

static void job_run(envd_k8s_job *j, int stopping)
{
    lookup *op = (lookup *)((char *)j - offsetof(lookup, job));
    envd_error *e = NULL;
    envd_status st = ENVD_CANCELED;
    if (!stopping && !canceled(op)) {
        envd_k8s_cred_clear(&op->cred);
        envd_k8s_stop stop = {&op->base.stop, op->worker};
        st = envd_k8s_exec_credential(op->conn, op->attempt > 0, op->timeout_ms, &stop, &op->cred,
                                      &e);
    }
    if (st == ENVD_OK) {
        http_begin(op);
    } else {
        if (!e)
            e = envd_error_new(st, ENVD_TRANSPORT_NONE, 0, "%s", envd_strerror(st));
        complete(op, NULL, NULL,
                 st == ENVD_CANCELED ? e : envd_error_wrap(e, "failed to create k8s client"));
    }
    lookup_unref(op); /* the job's */
}

static void to_worker(lookup *op)
{
    lookup_ref(op);
    envd_status st = envd_k8s_worker_submit(op->worker, &op->job);
    if (st != ENVD_OK) {
        lookup_unref(op);
        fail_start(op, st, "cannot start the Kubernetes worker thread");
    }
}

/* ------------------------------------------------------ step operations */

/* Hands the start (status 0) or the answer to the step. 1: its next
 * request is in op (path, method, body, delay); 0: the op completed. */
static int step_next(lookup *op, long status, int64_t *delay_ms)
{
    if (canceled(op)) {
        complete(op, NULL, NULL, envd_error_new(ENVD_CANCELED, ENVD_TRANSPORT_NONE, 0, "canceled"));
        return 0;
    }
    envd_k8s_answer a = {op->conn,
                         cred_kind(op),
                         op->ns,
                         status,
                         status ? envd_buf_str(&op->body) : NULL,
                         status ? op->body.len : 0};
    envd_k8s_req next = {0};
    void *result = NULL;
    envd_free_fn free_fn = NULL;
    envd_error *err = NULL;
    if (!op->fin.step(op->fin.ctx, &a, &next, &result, &free_fn, &err)) {
        free(next.path);
        free(next.body);
        complete(op, result, free_fn, err);
        return 0;
    }
    free(op->path);
    free(op->req_body);
    op->path = next.path;
    op->req_body = next.body;
    op->method = next.method ? next.method : "GET";
    *delay_ms = next.delay_ms;
    if (!op->path) {
        complete(op, NULL, NULL, envd_error_new(ENVD_E_NOMEM, ENVD_TRANSPORT_NONE, 0, "out of memory"));
        return 0;
    }
    return 1;
}

/* A step's delayed request is due (timer thread), or the op was stopped
 * while it waited. */
static void step_due(envd_op *b, int stopped)
{
    lookup *op = of_op(b);
    if (stopped)
        complete(op, NULL, NULL, envd_error_new(ENVD_CANCELED, ENVD_TRANSPORT_NONE, 0, "canceled"));
    else
        http_begin(op);
    envd_op_unref(b); /* the timer's */
}

/* Sends the request step_next left in op, now or after delay_ms. */
static void step_send(lookup *op, int64_t delay_ms)
{
    if (delay_ms <= 0 || !op->fin.timers)
        http_begin(op);
    else {
        envd_op_ref(&op->base); /* the timer's, dropped by step_due */
        envd_status st = envd_op_later(&op->base, delay_ms, step_due);
        if (st != ENVD_OK) {
            envd_op_unref(&op->base);
            complete(op, NULL, NULL, envd_error_new(st, ENVD_TRANSPORT_NONE, 0, "%s", envd_strerror(st)));
        }
    }
}

/* An answer of a step operation (curl I/O thread). */
static void advance(lookup *op)
{
    int64_t delay = 0;
    if (step_next(op, op->status, &delay))
        step_send(op, delay);
}

/* ------------------------------------------------------------- starting */

/* Points the URL's host at tls-server-name and connects to the real host,
 * so that SNI and certificate verification use that name. */
static envd_status server_name_url(lookup *op)
{
    const envd_k8s_conn *c = op->conn;
    CURLU *u = curl_url();
    char *host = NULL, *port = NULL, *url = NULL;
    envd_status st = ENVD_E_CONFIG;
    if (u && curl_url_set(u, CURLUPART_URL, c->server, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK &&
        curl_url_set(u, CURLUPART_HOST, c->tls_server_name, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_URL, &url, 0) == CURLUE_OK) {
        char line[512];
        snprintf(line, sizeof(line), "%s:%s:%s:%s", c->tls_server_name, port, host, port);
        op->connect_to = curl_slist_append(NULL, line);
        size_t n = strlen(url);
        while (n > 0 && url[n - 1] == '/')
            n--; /* the path follows */
        op->ep.base_url = envd_strndup(url, n);
        st = op->connect_to && op->ep.base_url ? ENVD_OK : ENVD_E_NOMEM;
    }
    curl_free(host);
    curl_free(port);
    curl_free(url);
    curl_url_cleanup(u);
    return st;
}

/* The parts of the request that come from the kubeconfig. An error is
 * the future's. */
static envd_error *prepare(lookup *op, const envd_k8s_options *o)
{
    envd_error *e = NULL;
    envd_status st = envd_k8s_conn_load(o, &op->conn, &e);
    if (st != ENVD_OK)
        return envd_error_wrap(
            e ? e : envd_error_new(st, ENVD_TRANSPORT_NONE, 0, "%s", envd_strerror(st)),
            "failed to create k8s client");
    const envd_k8s_conn *c = op->conn;
    if (!op->ns) {
        if (!envd_k8s_valid_name(c->ns, 1))
            return envd_error_new(ENVD_E_CONFIG, ENVD_TRANSPORT_NONE, 0,
                                  "failed to create k8s client: %s: the namespace '%s' is not a "
                                  "valid Kubernetes name",
                                  c->origin, c->ns);
        if (!(op->ns = envd_strdup(c->ns)))
            return NULL;
    }
    op->ep.tls = strncmp(c->server, "https:", 6) == 0;
    op->ep.insecure = c->insecure;
    if (c->tls_server_name && server_name_url(op) != ENVD_OK)
        return envd_error_new(ENVD_E_CONFIG, ENVD_TRANSPORT_NONE, 0,
                              "cannot use tls-server-name '%s' with server %s",
                              c->tls_server_name, c->server);
    int want_sel = op->selector && *op->selector;
    char *sel = want_sel ? curl_easy_escape(NULL, op->selector, 0) : NULL;
    int n = -1;
    if ((sel || !want_sel) && (op->ep.base_url || (op->ep.base_url = envd_strdup(c->server)))) {
        if (op->fin.step)
            n = 0;
        else if (op->name)
            n = (op->path = envd_strdup_printf(
                     "/apis/agents.kruise.io/v1alpha1/namespaces/%s/sandboxes/%s", op->ns,
                     op->name)) ? 0 : -1;
        else
            n = (op->path = envd_strdup_printf(
                     "/apis/agents.kruise.io/v1alpha1/namespaces/%s/sandboxes%s%s", op->ns,
                     sel ? "?labelSelector=" : "", sel ? sel : "")) ? 0 : -1;
    }
    curl_free(sel);
    if (n < 0) {
        op->path = NULL;
        return envd_error_new(ENVD_E_NOMEM, ENVD_TRANSPORT_NONE, 0, "out of memory");
    }
    /* Static credentials win over the plugin, as in client-go. */
    op->use_exec = c->exec && !c->token && !c->username;
    return NULL;
}

static lookup *lookup_new(envd_runtime *rt, envd_curl_engine *curl, envd_k8s_worker *worker,
                          const envd_k8s_options *o, const char *ns, const char *name,
                          const char *sel)
{
    lookup *op = envd_calloc(1, sizeof(*op));
    if (!op)
        return NULL;
    envd_op_init(&op->base, &lookup_class, rt);
    atomic_init(&op->completed, 0);
    envd_op_wire_init(&op->wire);
    op->job.run = job_run;
    envd_buf_init_capped(&op->body, MAX_BODY);
    op->curl = curl;
    op->worker = worker;
    op->timeout_ms = o ? o->timeout_ms : 30000;
    op->name = name ? envd_strdup(name) : NULL;
    op->selector = name ? NULL : envd_strdup(sel ? sel : "");
    op->ns = ns && *ns ? envd_strdup(ns) : NULL;
    if (!(op->name || op->selector) || (ns && *ns && !op->ns)) {
        lookup_unref(op);
        return NULL;
    }
    return op;
}

envd_status envd_k8s_lookup_start(envd_runtime *rt, envd_curl_engine *curl,
                                  envd_k8s_worker *worker, const envd_k8s_options *o,
                                  const char *ns, const char *name, const envd_k8s_finish *fin,
                                  envd_future **out)
{
    *out = NULL;
    if (fin->selector || fin->step)
        name = NULL; /* a list, or a step operation */
    int bad_name = name && !envd_k8s_valid_name(name, 0);
    envd_status st = ENVD_OK;
    if (bad_name || (ns && *ns && !envd_k8s_valid_name(ns, 1)))
        st = envd_start_error(ENVD_INVALID_ARGUMENT,
                              "invalid sandbox %s '%s': Kubernetes names are lower-case "
                              "letters, digits, '-' (and '.' in names)",
                              bad_name ? "name" : "namespace", bad_name ? name : ns);
    lookup *op = st == ENVD_OK ? lookup_new(rt, curl, worker, o, ns, name, fin->selector) : NULL;
    envd_future *f = op ? envd_future_create(fin->kind) : NULL;
    if (st == ENVD_OK && !f)
        st = envd_start_error(ENVD_E_NOMEM, "out of memory");
    if (st == ENVD_OK && rt && (st = envd_op_acquire(&op->base)) != ENVD_OK)
        envd_start_error(st, "%s", envd_strerror(st));
    if (st != ENVD_OK) {
        envd_future_discard(f);
        if (op)
            lookup_unref(op);
        if (fin->ctx_free)
            fin->ctx_free(fin->ctx);
        return st;
    }
    op->f = f;
    op->fin = *fin;
    op->method = "GET";
    envd_op_bind(&op->base, f);
    envd_error *e = NULL;
    if (fin->step && !(op->what = envd_strdup(fin->what ? fin->what : "Kubernetes request")))
        e = envd_error_new(ENVD_E_NOMEM, ENVD_TRANSPORT_NONE, 0, "out of memory");
    if (fin->step && rt)
        envd_op_track(&op->base);
    int64_t delay = 0;
    if (!e)
        e = prepare(op, o);
    if (e || !op->ns)
        complete(op, NULL, NULL,
                 e ? e : envd_error_new(ENVD_E_NOMEM, ENVD_TRANSPORT_NONE, 0, "out of memory"));
    else if (fin->step && !step_next(op, 0, &delay)) {
        /* done before any request */
    } else if (op->use_exec)
        to_worker(op); /* the plugin's credentials first, then the request */
    else if (fin->step)
        step_send(op, delay);
    else
        http_begin(op);
    lookup_unref(op); /* this function's */
    *out = f;
    return ENVD_OK;
}

envd_k8s_worker *envd_k8s_runtime_worker(envd_runtime *rt)
{
    pthread_mutex_lock(&rt->mu);
    if (!rt->k8s)
        rt->k8s = envd_k8s_worker_new();
    envd_k8s_worker *w = rt->k8s;
    pthread_mutex_unlock(&rt->mu);
    return w;
}
