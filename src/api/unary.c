/* One unary RPC as one future, and transport selection for a client. */
#include "api/internal.h"
#include "process.pb-c.h"

#include <stdlib.h>
#include <string.h>

typedef struct unary_op {
    atomic_int refs;
    envd_client *c;
    envd_runtime *rt; /* on_done may run after the client is freed */
    envd_rpc_transport *t;
    envd_rpc *rpc;
    envd_future *f;
    envd_unary_spec spec;
    uint8_t *resp;
    size_t resp_len;
    int got_resp;
} unary_op;

static void op_unref(void *p)
{
    unary_op *op = p;
    if (atomic_fetch_sub(&op->refs, 1) != 1)
        return;
    if (op->rpc)
        op->t->ops->release(op->rpc);
    if (op->spec.ctx_free)
        op->spec.ctx_free(op->spec.ctx);
    free(op->resp);
    free(op);
}

static void op_ref(void *p)
{
    atomic_fetch_add(&((unary_op *)p)->refs, 1);
}

static void op_cancel(void *p)
{
    unary_op *op = p;
    if (op->rpc)
        op->t->ops->cancel(op->rpc);
}

static int on_message(void *ud, const uint8_t *msg, size_t len)
{
    unary_op *op = ud;
    if (op->got_resp)
        return 0; /* a unary call has one response; ignore extras */
    op->resp = malloc(len ? len : 1);
    if (!op->resp)
        return -1;
    memcpy(op->resp, msg, len);
    op->resp_len = len;
    op->got_resp = 1;
    return 0;
}

static void on_done(void *ud, envd_error *err)
{
    unary_op *op = ud;
    if (!err && !op->got_resp)
        err = envd_error_new(ENVD_E_PROTOCOL, op->t->ops->kind, 0,
                             "%s: the call succeeded without a response message", op->spec.method);
    void *result = NULL;
    envd_free_fn free_fn = NULL;
    envd_error *out_err = NULL;
    op->spec.finish(op->spec.ctx, op->resp, op->resp_len, err, &result, &free_fn, &out_err);
    envd_rt_release(op->rt); /* before completing: the caller may free the client */
    envd_future_complete(op->f, result, free_fn, out_err);
    op_unref(op);
}

static envd_status pack(const ProtobufCMessage *msg, uint8_t **buf, size_t *len)
{
    *len = protobuf_c_message_get_packed_size(msg);
    *buf = malloc(*len ? *len : 1);
    if (!*buf)
        return ENVD_E_NOMEM;
    protobuf_c_message_pack(msg, *buf);
    return ENVD_OK;
}

envd_status envd_unary_start(envd_client *c, const envd_unary_spec *spec,
                             const ProtobufCMessage *msg, envd_future **out)
{
    envd_status s = ENVD_E_USAGE;
    uint8_t *body = NULL;
    size_t body_len = 0;
    unary_op *op = NULL;
    char *owned = NULL;
    int acquired = 0;
    if (!c || !out)
        goto fail;
    *out = NULL;
    if ((s = pack(msg, &body, &body_len)) != ENVD_OK)
        goto fail;
    op = calloc(1, sizeof(*op));
    if (!op) {
        s = ENVD_E_NOMEM;
        goto fail;
    }
    atomic_init(&op->refs, 2); /* this function + the transport's on_done */
    op->c = c;
    op->rt = c->rt;
    op->spec = *spec;
    op->f = envd_future_create(spec->kind);
    if (!op->f) {
        s = ENVD_E_NOMEM;
        goto fail;
    }
    if ((s = envd_rt_acquire(c->rt)) != ENVD_OK)
        goto fail;
    acquired = 1;
    op->t = envd_client_rpc_transport(c);
    {
        envd_kv hdrs[c->n_headers + 2];
        size_t nh = envd_call_headers(c, spec->user, hdrs, &owned);
        envd_rpc_request req = {
            .ep = &c->ep,
            .method = spec->method,
            .kind = ENVD_RPC_UNARY,
            .headers = hdrs,
            .n_headers = nh,
            .body = body,
            .body_len = body_len,
            .timeout_ms = c->cfg->request_timeout_ms,
        };
        envd_rpc_callbacks cb = {on_message, on_done, op};
        envd_rpc *rpc = NULL;
        s = op->t->ops->start(op->t, &req, &cb, &rpc);
        free(owned);
        owned = NULL;
        free(body);
        body = NULL;
        if (s != ENVD_OK)
            goto fail;
        op->rpc = rpc; /* before the hook: cancel needs it */
    }
    envd_future *f = op->f;
    envd_cancel_hook hook = {op_cancel, op_ref, op_unref, op};
    envd_future_set_cancel(f, &hook);
    *out = f;
    op_unref(op);
    return ENVD_OK;
fail:
    if (acquired)
        envd_rt_release(c->rt);
    free(body);
    free(owned);
    if (op) {
        if (op->f) {
            /* never seen by the caller: drop both of its references */
            envd_future_complete(op->f, NULL, NULL, NULL);
            envd_future_free(op->f);
        }
        if (op->spec.ctx_free)
            op->spec.ctx_free(op->spec.ctx);
        free(op);
    } else if (spec && spec->ctx_free) {
        spec->ctx_free(spec->ctx);
    }
    return s;
}

envd_status envd_sync_finish(envd_future *f, void **result, envd_error **err)
{
    envd_future_wait(f, -1);
    envd_status s = envd_future_status(f);
    if (result)
        *result = envd_future_take_result(f, envd_future_kind(f));
    if (err)
        *err = envd_future_take_error(f);
    envd_future_free(f);
    return s;
}

/* ---- transport choice ---------------------------------------------------- */

static envd_transport_kind remembered(envd_runtime *rt, const char *key)
{
    for (envd_endpoint_choice *ch = rt->choices; ch; ch = ch->next)
        if (strcmp(ch->key, key) == 0)
            return ch->kind;
    return ENVD_TRANSPORT_AUTO;
}

typedef struct probe_state {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
    envd_error *err;
} probe_state;

static int probe_msg(void *ud, const uint8_t *m, size_t n)
{
    (void)ud, (void)m, (void)n;
    return 0;
}

static void probe_done(void *ud, envd_error *err)
{
    probe_state *ps = ud;
    pthread_mutex_lock(&ps->mu);
    ps->err = err;
    ps->done = 1;
    pthread_cond_signal(&ps->cv);
    pthread_mutex_unlock(&ps->mu);
}

/* A gRPC List with the client's headers: does the endpoint speak gRPC end
 * to end? List is read-only, so trying it costs nothing but a round trip,
 * while a real call could run twice if it reached envd through a gateway
 * that then dropped the trailers. Returns GRPC, CONNECT, or AUTO when it
 * could not tell (the endpoint is unreachable). */
static envd_transport_kind probe(envd_client *c)
{
    envd_rpc_transport *t = envd_grpc_engine_transport(c->rt->grpc);
    Process__ListRequest lr = PROCESS__LIST_REQUEST__INIT;
    uint8_t *body;
    size_t len;
    if (pack(&lr.base, &body, &len) != ENVD_OK)
        return ENVD_TRANSPORT_AUTO;
    envd_kv hdrs[c->n_headers + 1];
    char *owned;
    size_t nh = envd_call_headers(c, NULL, hdrs, &owned);
    envd_rpc_request req = {
        .ep = &c->ep,
        .method = "/process.Process/List",
        .kind = ENVD_RPC_UNARY,
        .headers = hdrs,
        .n_headers = nh,
        .body = body,
        .body_len = len,
        .timeout_ms = c->cfg->request_timeout_ms > 0 && c->cfg->request_timeout_ms < 10000
                          ? c->cfg->request_timeout_ms
                          : 10000,
    };
    probe_state ps = {.done = 0, .err = NULL};
    pthread_mutex_init(&ps.mu, NULL);
    pthread_cond_init(&ps.cv, NULL);
    envd_rpc_callbacks cb = {probe_msg, probe_done, &ps};
    envd_rpc *rpc = NULL;
    envd_transport_kind kind = ENVD_TRANSPORT_AUTO;
    if (t->ops->start(t, &req, &cb, &rpc) == ENVD_OK) {
        pthread_mutex_lock(&ps.mu);
        while (!ps.done)
            pthread_cond_wait(&ps.cv, &ps.mu);
        pthread_mutex_unlock(&ps.mu);
        t->ops->release(rpc);
        if (!ps.err)
            kind = ENVD_TRANSPORT_GRPC;
        else if (envd_grpc_error_is_protocol_mismatch(ps.err))
            kind = ENVD_TRANSPORT_CONNECT;
        else if (ps.err->http_status > 0)
            /* An HTTP/2 reply that is not a mismatch (a gateway's 502 for an
             * unknown sandbox, a 401): the endpoint speaks HTTP/2 and the
             * caller should see that reply, not a Connect error from an
             * HTTP/1.1 attempt at an h2-only port. */
            kind = ENVD_TRANSPORT_GRPC;
        else if (ps.err->code == ENVD_UNAVAILABLE || ps.err->code == ENVD_E_TRANSPORT ||
                 ps.err->code == ENVD_DEADLINE_EXCEEDED)
            kind = ENVD_TRANSPORT_AUTO; /* nothing learned */
        else
            kind = ENVD_TRANSPORT_GRPC; /* a real answer over gRPC (401, ...) */
        envd_error_free(ps.err);
    }
    pthread_mutex_destroy(&ps.mu);
    pthread_cond_destroy(&ps.cv);
    free(body);
    free(owned);
    return kind;
}

envd_rpc_transport *envd_client_rpc_transport(envd_client *c)
{
    envd_runtime *rt = c->rt;
    int k = atomic_load(&c->transport);
    if (k == ENVD_TRANSPORT_GRPC)
        return envd_grpc_engine_transport(rt->grpc);
    if (k == ENVD_TRANSPORT_CONNECT)
        return envd_curl_engine_connect(rt->curl);
    pthread_mutex_lock(&rt->mu);
    envd_transport_kind known;
    while ((known = remembered(rt, c->ep.base_url)) == ENVD_TRANSPORT_AUTO && rt->probing)
        pthread_cond_wait(&rt->probe_cv, &rt->mu);
    if (known == ENVD_TRANSPORT_AUTO) {
        rt->probing = 1;
        pthread_mutex_unlock(&rt->mu);
        known = probe(c);
        pthread_mutex_lock(&rt->mu);
        rt->probing = 0;
        if (known != ENVD_TRANSPORT_AUTO) {
            envd_endpoint_choice *ch = calloc(1, sizeof(*ch));
            if (ch && (ch->key = strdup(c->ep.base_url))) {
                ch->kind = known;
                ch->next = rt->choices;
                rt->choices = ch;
            } else {
                free(ch);
            }
        }
        pthread_cond_broadcast(&rt->probe_cv);
    }
    pthread_mutex_unlock(&rt->mu);
    if (known == ENVD_TRANSPORT_AUTO) /* unreachable for now: Connect gives the clearer error */
        return envd_curl_engine_connect(rt->curl);
    atomic_store(&c->transport, known);
    return known == ENVD_TRANSPORT_GRPC ? envd_grpc_engine_transport(rt->grpc)
                                        : envd_curl_engine_connect(rt->curl);
}
