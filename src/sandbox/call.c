/* One call to the sandbox API as an operation of the runtime.
 *
 * References on the call: the starter's, one while it waits in the
 * limiter's FIFO, one per transfer (until its on_done), one per retry
 * timer (op_wire.h: until Retry-After passed or a stop disarmed it), and the
 * future's around each cancel. Cancel sets the op's stop flag and ends
 * whichever stage the call is in: leaves the FIFO, disarms the retry timer,
 * or cancels the transfer; each of those completes the future
 * ENVD_CANCELED. The runtime's free reaches the same stop through
 * cls->shutdown (the call is tracked), so no future is left pending when
 * the timers go. */
#include "sandbox/sandbox_internal.h"

#include "core/alloc.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_REPLY (8u << 20)

static sbx_call *of_op(envd_op *b)
{
    return (sbx_call *)b;
}

static void call_destroy(envd_op *b)
{
    sbx_call *c = of_op(b);
    envd_op_wire_destroy(&c->wire);
    if (c->ctx_free)
        c->ctx_free(c->ctx);
    free(c->what);
    free(c->path);
    free(c->body);
    free(c->next_token);
    envd_error_free(c->cleanup_err);
    envd_buf_free(&c->reply);
    envd_sandbox_api *api = c->api;
    free(c);
    sbx_api_unref(api);
}

/* Ends the stage the call is in; every path completes it ENVD_CANCELED. */
static void call_stop(envd_op *b)
{
    sbx_call *c = of_op(b);
    if (c->limited && sbx_limiter_leave(c)) {
        sbx_call_complete(c, NULL, NULL, NULL);
        sbx_call_unref(c); /* the FIFO's */
        return;
    }
    envd_op_wire_stop(&c->wire);
}

static envd_future *call_shutdown(envd_op *b)
{
    envd_op_stop(b);
    return NULL;
}

static const envd_op_class call_class = {
    .destroy = call_destroy, .stop = call_stop, .shutdown = call_shutdown};

sbx_call *sbx_call_new(envd_sandbox_api *api, const char *method)
{
    sbx_call *c = envd_calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    envd_op_init(&c->base, &call_class, api->rt);
    atomic_init(&c->completed, 0);
    envd_op_wire_init(&c->wire);
    envd_buf_init_capped(&c->reply, MAX_REPLY);
    sbx_api_ref(api);
    c->api = api;
    c->method = method;
    return c;
}

void sbx_call_unref(sbx_call *c)
{
    envd_op_unref(&c->base);
}

/* A stopped call ends ENVD_CANCELED whatever err said (err NULL too). */
void sbx_call_complete(sbx_call *c, void *result, envd_free_fn free_fn, envd_error *err)
{
    if (envd_op_stopped(&c->base) && (!err || envd_error_code(err) != ENVD_CANCELED)) {
        if (result && free_fn)
            free_fn(result);
        result = NULL;
        envd_error_free(err);
        err = envd_error_new(ENVD_CANCELED, ENVD_TRANSPORT_NONE, 0, "%s: canceled", c->what);
    }
    if (atomic_exchange(&c->completed, 1)) {
        if (result && free_fn)
            free_fn(result);
        envd_error_free(err);
        return;
    }
    if (c->limited)
        sbx_limiter_done(c);
    /* The slot goes first: the future's caller may free the runtime. */
    envd_op_release(&c->base);
    envd_future_complete(c->f, result, free_fn, err);
}

/* ------------------------------------------------------------ the reply */

static envd_status tune(void *ud, void *easy)
{
    ((sbx_call *)ud)->easy = easy; /* the transfer's until its on_done */
    return ENVD_OK;
}

static int on_status(void *ud, int status, int64_t content_length)
{
    sbx_call *c = ud;
    (void)content_length;
    c->status = status;
    curl_off_t ra = 0;
    if (curl_easy_getinfo(c->easy, CURLINFO_RETRY_AFTER, &ra) != CURLE_OK)
        ra = 0;
    c->retry_after_s = (int64_t)ra;
    struct curl_header *h = NULL;
    free(c->next_token);
    c->next_token = NULL;
    if (curl_easy_header(c->easy, "x-next-token", 0, CURLH_HEADER, -1, &h) == CURLHE_OK &&
        h->value[0] && !(c->next_token = envd_strdup(h->value)))
        c->reply_nomem = 1;
    return c->reply_nomem;
}

static int on_data(void *ud, const uint8_t *p, size_t n)
{
    sbx_call *c = ud;
    if (envd_buf_append(&c->reply, p, n) != 0)
        c->reply_nomem = 1;
    return c->reply_nomem || c->reply.truncated;
}

/* The status for an API reply (E2B's and the sandbox-manager's). */
static envd_status status_of(long s)
{
    switch (s) {
    case 409: return ENVD_FAILED_PRECONDITION; /* already paused, not running ... */
    case 429: return ENVD_RESOURCE_EXHAUSTED;
    case 500: return ENVD_INTERNAL;
    default: break;
    }
    envd_status st = envd_status_from_http((int)s);
    return st == ENVD_UNKNOWN && s >= 500 ? ENVD_UNAVAILABLE : st;
}

/* The message of a non-2xx reply: {"code":N,"message":"..."} as both APIs
 * answer, else the start of the body. */
static envd_error *reply_error(sbx_call *c)
{
    const char *msg = NULL;
    json_t *j = json_loadb(envd_buf_str(&c->reply), c->reply.len, 0, NULL);
    if (j && json_is_string(json_object_get(j, "message")))
        msg = json_string_value(json_object_get(j, "message"));
    char quoted[300];
    if (!msg) {
        size_t n = c->reply.len < 256 ? c->reply.len : 256, k = 0;
        for (size_t i = 0; i < n; i++) {
            unsigned char ch = (unsigned char)c->reply.data[i];
            quoted[k++] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
        }
        quoted[k] = 0;
        msg = k ? quoted : "(no body)";
    }
    const char *why;
    switch (c->status) {
    case 401: why = "the API key was refused"; break;
    case 403: why = "forbidden (a quota or permission error: final, not retried)"; break;
    case 404: why = "not found"; break;
    case 429: why = "rate limited"; break;
    default: why = "the API answered"; break;
    }
    envd_error *e = envd_error_new(status_of(c->status), ENVD_TRANSPORT_HTTP, (int)c->status,
                                   "%s: %s (HTTP %ld): %s", c->what, why, c->status, msg);
    json_decref(j);
    return e;
}

/* The transfer's own failure (no reply in full). */
static envd_error *transfer_error(sbx_call *c, envd_error *err)
{
    envd_error *e;
    if (c->reply.truncated)
        e = envd_error_new(ENVD_E_PROTOCOL, ENVD_TRANSPORT_HTTP, (int)c->status,
                           "%s: the reply is larger than %u bytes", c->what, MAX_REPLY);
    else if (c->reply_nomem)
        e = envd_error_new(ENVD_E_NOMEM, ENVD_TRANSPORT_HTTP, 0, "%s: out of memory", c->what);
    else
        e = envd_error_new(envd_error_code(err), ENVD_TRANSPORT_HTTP, 0, "%s: %s", c->what,
                           envd_error_message(err));
    envd_error_free(err);
    return e;
}

/* Retry-After has passed (or the call was stopped while waiting). */
static void retry_due(envd_op *b, int stopped)
{
    sbx_call *c = of_op(b);
    if (stopped)
        sbx_call_complete(c, NULL, NULL, NULL);
    else if (c->limited)
        sbx_limiter_enter(c);
    else
        sbx_call_send(c);
    envd_op_unref(b); /* the timer's */
}

/* A 429: wait Retry-After, then again (a create asks the limiter for a
 * token first), unless the bounds are spent. */
static void rate_limited(sbx_call *c)
{
    pthread_mutex_lock(&c->api->mu);
    int retries = c->api->retries;
    int64_t max_wait = c->api->max_wait_ms;
    pthread_mutex_unlock(&c->api->mu);
    int64_t wait_ms = (c->retry_after_s > 0 ? c->retry_after_s : 1) * 1000;
    if (c->attempts > retries || wait_ms > max_wait) {
        envd_error *e = reply_error(c);
        envd_error *r = envd_error_new(
            ENVD_RESOURCE_EXHAUSTED, ENVD_TRANSPORT_HTTP, 429,
            "%s (after %d attempt%s; Retry-After %lld s, limits: %d retries, %lld ms a wait)",
            envd_error_message(e), c->attempts, c->attempts == 1 ? "" : "s",
            (long long)c->retry_after_s, retries, (long long)max_wait);
        envd_error_free(e);
        sbx_call_complete(c, NULL, NULL, r);
        return;
    }
    envd_op_ref(&c->base); /* the timer's, dropped by retry_due */
    envd_status st = envd_op_later(&c->base, wait_ms, retry_due);
    if (st != ENVD_OK) {
        envd_op_unref(&c->base);
        sbx_call_complete(c, NULL, NULL, envd_error_new(st, ENVD_TRANSPORT_NONE, 0, "%s", envd_strerror(st)));
    }
}

/* The end of a clean-up request: the create's own error, saying whether
 * the sandbox it made is gone. Takes err (the clean-up's, or NULL). */
static void cleanup_over(sbx_call *c, envd_error *err)
{
    envd_error *e = c->cleanup_err;
    c->cleanup_err = NULL;
    envd_error *r = envd_error_new(envd_error_code(e), envd_error_transport(e),
                                   envd_error_http_status(e), "%s (%s%s)", envd_error_message(e),
                                   err ? "deleting that sandbox failed too: " : "the sandbox was deleted",
                                   err ? envd_error_message(err) : "");
    envd_error_free(e);
    envd_error_free(err);
    sbx_call_complete(c, NULL, NULL, r);
}

static void on_done(void *ud, envd_error *err)
{
    sbx_call *c = ud;
    envd_op_wire_finished(&c->wire);
    if (c->cleanup_err) {
        if (err || c->reply.truncated || c->reply_nomem)
            err = transfer_error(c, err);
        else if ((c->status < 200 || c->status > 299) && c->status != 404)
            err = reply_error(c);
        cleanup_over(c, err);
    } else if (err || c->reply.truncated || c->reply_nomem) {
        sbx_call_complete(c, NULL, NULL, transfer_error(c, err));
    } else if (c->status == 429) {
        rate_limited(c);
    } else if ((c->status < 200 || c->status > 299) &&
               !(c->status == 404 && c->done == sbx_kill_done)) {
        sbx_call_complete(c, NULL, NULL, reply_error(c));
    } else {
        void *result = NULL;
        envd_free_fn free_fn = NULL;
        int again = 0;
        envd_error *e = c->done(c, &result, &free_fn, &again);
        if (again && !e)
            sbx_call_send(c);
        else
            sbx_call_complete(c, result, free_fn, e);
    }
    sbx_call_unref(c); /* the transfer's */
}

/* ---------------------------------------------------------- the request */

void sbx_call_send(sbx_call *c)
{
    envd_sandbox_api *api = c->api;
    envd_endpoint ep = {0};
    pthread_mutex_lock(&api->mu);
    ep.base_url = envd_strdup(api->url);
    pthread_mutex_unlock(&api->mu);
    ep.tls = ep.base_url && strncmp(ep.base_url, "https:", 6) == 0;
    ep.ca_file = api->cfg->ca_file;
    envd_kv h[4];
    size_t n = 0;
    h[n++] = (envd_kv){"Accept", "application/json"};
    if (api->cfg->api_key)
        h[n++] = (envd_kv){"X-API-Key", api->cfg->api_key};
    envd_http_part raw = {.content_type = "application/json"};
    if (c->body) {
        raw.data = (const uint8_t *)c->body;
        raw.len = strlen(c->body);
    }
    int64_t timeout = api->cfg->request_timeout_ms;
    envd_http_request req = {.ep = &ep,
                             .method = c->method,
                             .path = c->path,
                             .tune = tune,
                             .tune_ud = c,
                             .headers = h,
                             .n_headers = n,
                             .raw = c->body ? &raw : NULL,
                             .accept_gzip = 1,
                             .timeout_ms = timeout,
                             .idle_timeout_ms = timeout,
                             .deadline_ms = timeout};
    envd_http_callbacks cb = {on_status, on_data, NULL, on_done, c};
    c->attempts++;
    c->status = 0;
    c->retry_after_s = 0;
    c->reply_nomem = 0;
    envd_buf_clear(&c->reply);
    envd_status st = ep.base_url ? envd_op_wire_send(&c->wire, &c->base, api->rt->curl, &req, &cb)
                                 : ENVD_E_NOMEM;
    free(ep.base_url);
    if (st != ENVD_OK)
        sbx_call_complete(c, NULL, NULL,
                          envd_error_new(st == ENVD_E_SHUTDOWN ? ENVD_CANCELED : st,
                                         ENVD_TRANSPORT_NONE, 0, "%s: cannot send the request: %s",
                                         c->what, envd_strerror(st)));
}

envd_status sbx_call_start(sbx_call *c, int kind, envd_future **out)
{
    *out = NULL;
    envd_future *f = envd_future_create(kind);
    envd_status st = f ? envd_op_acquire(&c->base) : ENVD_E_NOMEM;
    if (st != ENVD_OK) {
        envd_future_discard(f);
        sbx_call_unref(c);
        return st;
    }
    c->f = f;
    envd_op_bind(&c->base, f);
    envd_op_track(&c->base);
    if (c->limited)
        sbx_limiter_enter(c);
    else
        sbx_call_send(c);
    sbx_call_unref(c); /* the starter's */
    *out = f;
    return ENVD_OK;
}
