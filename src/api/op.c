/* The operation base, the one RPC starter and the one header policy (the
 * model is described in op.h). */
#include "api/op.h"
#include "api/traffic.h"
#include "core/alloc.h"

#include <stdio.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>

void envd_op_init(envd_op *op, const envd_op_class *cls, envd_runtime *rt)
{
    op->cls = cls;
    atomic_init(&op->refs, 1);
    op->rt = rt;
    op->t = NULL;
    atomic_init(&op->rpc, NULL);
    atomic_init(&op->stop, 0);
    atomic_init(&op->slot, 0);
    atomic_init(&op->live, 0);
    op->live_prev = op->live_next = NULL;
}

void envd_op_ref(envd_op *op)
{
    atomic_fetch_add(&op->refs, 1);
}

void envd_op_unref(envd_op *op)
{
    if (atomic_fetch_sub(&op->refs, 1) != 1)
        return;
    envd_op_release(op); /* only a starter that failed can still hold one */
    envd_rpc *rpc = atomic_load(&op->rpc);
    if (rpc)
        op->t->ops->release(rpc);
    op->cls->destroy(op);
}

envd_status envd_op_acquire(envd_op *op)
{
    envd_status s = envd_rt_acquire(op->rt);
    if (s == ENVD_OK)
        atomic_store(&op->slot, 1);
    return s;
}

void envd_op_release(envd_op *op)
{
    if (atomic_exchange(&op->slot, 0))
        envd_rt_release(op->rt);
    /* Only tracked ops take the lock: a kill started by envd_ops_shutdown
     * (under it) may fail and release at once. */
    if (!atomic_load(&op->live))
        return;
    envd_runtime *rt = op->rt;
    pthread_mutex_lock(&rt->mu);
    if (atomic_load(&op->live)) {
        if (op->live_prev)
            op->live_prev->live_next = op->live_next;
        else
            rt->live = op->live_next;
        if (op->live_next)
            op->live_next->live_prev = op->live_prev;
        atomic_store(&op->live, 0);
    }
    pthread_mutex_unlock(&rt->mu);
}

void envd_op_track(envd_op *op)
{
    envd_runtime *rt = op->rt;
    pthread_mutex_lock(&rt->mu);
    atomic_store(&op->live, 1);
    op->live_prev = NULL;
    op->live_next = rt->live;
    if (rt->live)
        rt->live->live_prev = op;
    rt->live = op;
    pthread_mutex_unlock(&rt->mu);
}

/* How long envd_runtime_free waits for the kills of runs in flight. */
#define SHUTDOWN_WAIT_MS 5000

/* The kills that cancelled runs sent and nobody waits for: let them reach
 * envd (bounded) before the engines that carry them are freed. */
static void wait_for_kills(envd_runtime *rt)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += SHUTDOWN_WAIT_MS / 1000;
    pthread_mutex_lock(&rt->mu);
    while (rt->kills_pending > 0)
        if (pthread_cond_timedwait(&rt->kills_cv, &rt->mu, &until) != 0)
            break;
    pthread_mutex_unlock(&rt->mu);
}

void envd_ops_shutdown(envd_runtime *rt)
{
    /* The tracked ops, each with a reference so that their hooks run
     * outside the lock (a hook starts an RPC). */
    size_t n = 0;
    pthread_mutex_lock(&rt->mu);
    for (envd_op *op = rt->live; op; op = op->live_next)
        n++;
    envd_op **ops = n ? envd_calloc(n, sizeof(*ops)) : NULL;
    n = 0;
    for (envd_op *op = rt->live; ops && op; op = op->live_next) {
        envd_op_ref(op);
        ops[n++] = op;
    }
    pthread_mutex_unlock(&rt->mu);
    envd_future **fs = n ? envd_calloc(n, sizeof(*fs)) : NULL;
    size_t nf = 0;
    for (size_t i = 0; i < n; i++) {
        envd_future *f = ops[i]->cls->shutdown ? ops[i]->cls->shutdown(ops[i]) : NULL;
        if (f && fs)
            fs[nf++] = f;
        else
            envd_future_free(f); /* cannot wait for it (no memory): it is cancelled */
        envd_op_unref(ops[i]);
    }
    if (nf)
        envd_future_wait_all(fs, nf, SHUTDOWN_WAIT_MS);
    for (size_t i = 0; i < nf; i++)
        envd_future_free(fs[i]);
    free(fs);
    free(ops);
    wait_for_kills(rt);
}


void envd_op_stop(envd_op *op)
{
    atomic_store(&op->stop, 1);
    envd_rpc *rpc = atomic_load(&op->rpc);
    if (rpc)
        op->t->ops->cancel(rpc);
    if (op->cls->stop)
        op->cls->stop(op);
}

int envd_op_stopped(envd_op *op)
{
    return atomic_load(&op->stop);
}

static void hook_ref(void *p)
{
    envd_op_ref(p);
}

static void hook_unref(void *p)
{
    envd_op_unref(p);
}

static void hook_cancel(void *p)
{
    envd_op *op = p;
    if (op->cls->cancel)
        op->cls->cancel(op);
    else
        envd_op_stop(op);
}

void envd_op_bind(envd_op *op, envd_future *f)
{
    envd_cancel_hook hook = {hook_cancel, hook_ref, hook_unref, op};
    envd_future_set_cancel(f, &hook);
}

void envd_future_discard(envd_future *f)
{
    if (!f)
        return;
    envd_future_complete(f, NULL, NULL, NULL);
    envd_future_free(f);
}

/* ---- headers ------------------------------------------------------------ */

static int reserved(const char *name)
{
    /* Header names are lower case in the client's list. */
    return strcmp(name, "connect-timeout-ms") == 0 || strcmp(name, "keepalive-ping-interval") == 0;
}

size_t envd_op_headers(envd_client *c, const char *method, envd_call_kind kind, const char *user,
                       int64_t process_timeout_ms, envd_kv *out, envd_header_scratch *scratch)
{
    memset(scratch, 0, sizeof(*scratch));
    size_t n = 0;
    for (size_t i = 0; i < c->n_headers; i++)
        if (!reserved(c->headers[i].name))
            out[n++] = c->headers[i];
    if (user && *user && (scratch->auth = envd_basic_auth(user))) {
        /* auth_index counts the client's own headers, which come before
         * the custom ones and are never dropped. */
        if (c->auth_index != SIZE_MAX)
            out[c->auth_index].value = scratch->auth;
        else
            out[n++] = (envd_kv){"authorization", scratch->auth};
    }
    /* envd reads this as the interval of its keepalive messages on server
     * streams; 0 or a negative value crashes it. */
    if (kind == ENVD_CALL_SERVER_STREAM && c->cfg->keepalive_s > 0)
        out[n++] = (envd_kv){"keepalive-ping-interval", c->keepalive};
    /* envd reads this on Start as the process lifetime. */
    if (process_timeout_ms > 0 && method && strcmp(method, "/process.Process/Start") == 0) {
        snprintf(scratch->timeout, sizeof(scratch->timeout), "%lld",
                 (long long)process_timeout_ms);
        out[n++] = (envd_kv){"connect-timeout-ms", scratch->timeout};
    }
    return envd_traffic_header(c, out, n, scratch);
}

void envd_headers_done(envd_header_scratch *scratch)
{
    free(scratch->auth);
    scratch->auth = NULL;
    free(scratch->traffic);
    scratch->traffic = NULL;
}

size_t envd_call_headers(envd_client *c, const char *user, envd_kv *out, char **owned)
{
    envd_header_scratch hs;
    size_t n = envd_op_headers(c, NULL, ENVD_CALL_FILES, user, 0, out, &hs);
    *owned = hs.auth;
    return n;
}

/* ---- transport ---------------------------------------------------------- */

envd_rpc_transport *envd_client_rpc_transport(envd_client *c)
{
    envd_runtime *rt = c->rt;
    int k = atomic_load(&c->transport);
    if (k == ENVD_TRANSPORT_AUTO) {
        envd_kv hdrs[ENVD_OP_HEADERS_CAP(c)];
        envd_header_scratch hs;
        size_t nh = envd_op_headers(c, "/process.Process/List", ENVD_CALL_UNARY, NULL, 0, hdrs, &hs);
        k = envd_transport_choose(rt->choice, envd_grpc_engine_transport(rt->grpc), &c->ep, hdrs,
                                  nh, c->cfg->request_timeout_ms);
        envd_headers_done(&hs);
        if (k == ENVD_TRANSPORT_AUTO) /* unreachable for now: Connect gives the clearer error */
            return envd_curl_engine_connect(rt->curl);
        atomic_store(&c->transport, k);
    }
    return k == ENVD_TRANSPORT_GRPC ? envd_grpc_engine_transport(rt->grpc)
                                    : envd_curl_engine_connect(rt->curl);
}

/* ---- starting an RPC ------------------------------------------------------ */

static envd_status pack(const ProtobufCMessage *msg, uint8_t **buf, size_t *len)
{
    *len = msg ? protobuf_c_message_get_packed_size(msg) : 0;
    *buf = envd_malloc(*len ? *len : 1);
    if (!*buf)
        return ENVD_E_NOMEM;
    if (msg)
        protobuf_c_message_pack(msg, *buf);
    return ENVD_OK;
}

envd_status envd_op_start_rpc(envd_op *op, envd_client *c, const envd_call *call,
                              int (*on_message)(void *ud, const uint8_t *msg, size_t len),
                              void (*on_done)(void *ud, envd_error *err))
{
    uint8_t *body;
    size_t len;
    envd_status s = pack(call->msg, &body, &len);
    if (s != ENVD_OK)
        return s;
    if (!call->urgent && (s = envd_op_acquire(op)) != ENVD_OK) {
        free(body);
        return s;
    }
    op->t = envd_client_rpc_transport(c);
    envd_kv hdrs[ENVD_OP_HEADERS_CAP(c)];
    envd_header_scratch hs;
    size_t nh = envd_op_headers(c, call->method, (envd_call_kind)call->kind, call->user,
                                call->process_timeout_ms, hdrs, &hs);
    envd_rpc_request req = {
        .ep = &c->ep,
        .method = call->method,
        .kind = call->kind,
        .headers = hdrs,
        .n_headers = nh,
        .body = body,
        .body_len = len,
        .timeout_ms = call->timeout_ms,
        .idle_timeout_ms = call->idle_timeout_ms,
    };
    envd_rpc_callbacks cb = {on_message, on_done, op};
    envd_rpc *rpc = NULL;
    envd_op_ref(op); /* the transport's, if it starts */
    s = hs.status != ENVD_OK ? hs.status : op->t->ops->start(op->t, &req, &cb, &rpc);
    envd_headers_done(&hs);
    free(body);
    if (s != ENVD_OK) {
        atomic_fetch_sub(&op->refs, 1); /* the caller's is still held */
        envd_op_release(op);
        return s;
    }
    atomic_store(&op->rpc, rpc);
    if (atomic_load(&op->stop)) /* a stop came before the call existed */
        op->t->ops->cancel(rpc);
    return ENVD_OK;
}
