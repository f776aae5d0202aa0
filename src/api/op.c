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
    op->call = NULL;
    op->later = NULL;
    op->later_fn = NULL;
}

static void call_free(struct envd_op_call *k);

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
    call_free(op->call);
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

static int later_pending(envd_op *op)
{
    pthread_mutex_lock(&op->rt->mu);
    int pending = op->later != NULL;
    pthread_mutex_unlock(&op->rt->mu);
    return pending;
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
        if (later_pending(ops[i])) { /* nothing of it is on the wire: it ends here */
            envd_op_stop(ops[i]);
            envd_op_unref(ops[i]);
            continue;
        }
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
    /* A timer callback that began before the runtime was closing may be
     * starting work on an engine: the engines stay until it returned. */
    pthread_mutex_lock(&rt->mu);
    while (rt->later_running > 0)
        pthread_cond_wait(&rt->later_cv, &rt->mu);
    pthread_mutex_unlock(&rt->mu);
}


/* ---- an op's timer ------------------------------------------------------ */

/* Takes the armed timer, if any (the one who gets it runs later_fn). */
static envd_timer *take_later(envd_op *op)
{
    pthread_mutex_lock(&op->rt->mu);
    envd_timer *t = op->later;
    op->later = NULL;
    pthread_mutex_unlock(&op->rt->mu);
    return t;
}

/* Timer thread. While fn runs, later_running holds envd_runtime_free back
 * from the engines; once the runtime is closing, fn is told to stop. */
static void later_fire(void *ud)
{
    envd_op *op = ud;
    envd_runtime *rt = op->rt;
    pthread_mutex_lock(&rt->mu);
    envd_timer *t = op->later;
    op->later = NULL;
    int closing = rt->closing;
    if (t)
        rt->later_running++;
    pthread_mutex_unlock(&rt->mu);
    if (!t)
        return; /* envd_op_stop took it and runs later_fn */
    envd_timer_cancel(t); /* from inside the callback: freed after it */
    op->later_fn(op, closing || atomic_load(&op->stop));
    pthread_mutex_lock(&rt->mu); /* rt outlives op: its free waits here */
    if (--rt->later_running == 0)
        pthread_cond_broadcast(&rt->later_cv);
    pthread_mutex_unlock(&rt->mu);
}

envd_status envd_op_later(envd_op *op, int64_t delay_ms, envd_op_later_fn fn)
{
    envd_runtime *rt = op->rt;
    envd_status st = ENVD_OK;
    envd_timer *mine = NULL;
    pthread_mutex_lock(&rt->mu);
    if (rt->closing) {
        st = ENVD_E_SHUTDOWN;
    } else {
        op->later_fn = fn;
        op->later = envd_timer_start(rt->timers, delay_ms, later_fire, op);
        if (!op->later)
            st = ENVD_E_NOMEM;
        else if (!atomic_load(&op->live)) { /* envd_ops_shutdown must see it */
            atomic_store(&op->live, 1);
            op->live_prev = NULL;
            op->live_next = rt->live;
            if (rt->live)
                rt->live->live_prev = op;
            rt->live = op;
        }
        /* A stop that came before the timer was there found none: this
         * takes it back and ends the op below. A later stop finds it. */
        if (op->later && atomic_load(&op->stop)) {
            mine = op->later;
            op->later = NULL;
        }
    }
    pthread_mutex_unlock(&rt->mu);
    /* Only with the timer taken back is op ours to touch here: otherwise
     * the timer or a stop may have ended it already. */
    if (mine) {
        envd_timer_cancel(mine);
        fn(op, 1);
    }
    return st;
}

void envd_op_stop(envd_op *op)
{
    atomic_store(&op->stop, 1);
    envd_rpc *rpc = atomic_load(&op->rpc);
    if (rpc)
        op->t->ops->cancel(rpc);
    if (op->cls->stop)
        op->cls->stop(op);
    envd_timer *t = take_later(op);
    if (t) { /* waiting for its timer: it ends now, canceled */
        envd_timer_cancel(t);
        op->later_fn(op, 1);
    }
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
            return envd_curl_engine_connect_for(rt->curl, &c->ep);
        atomic_store(&c->transport, k);
    }
    return k == ENVD_TRANSPORT_GRPC ? envd_grpc_engine_transport(rt->grpc)
                                    : envd_curl_engine_connect_for(rt->curl, &c->ep);
}

/* ---- starting an RPC ------------------------------------------------------ */

/* What a retry needs to send the call again: the client (a reference),
 * the call's parameters, the packed message and the caller's callbacks. */
typedef struct envd_op_call {
    envd_client *c;
    envd_call call; /* .msg unused; .user points into data */
    int (*on_message)(void *ud, const uint8_t *msg, size_t len);
    void (*on_done)(void *ud, envd_error *err);
    int64_t started_ms;
    int attempts;  /* failed so far */
    int responded; /* the current attempt delivered a message */
    size_t len;
    uint8_t data[]; /* the message, then the user ('\0'-ended) */
} envd_op_call;

static void call_free(envd_op_call *k)
{
    if (!k)
        return;
    envd_client_free(k->c);
    free(k);
}

int envd_op_max_retries(const envd_client *c)
{
    return c->cfg->retries;
}

envd_error *envd_op_gateway_error(const envd_client *c, envd_error *err)
{
    if (!err)
        return NULL;
    envd_gateway_classify(err);
    if (err->failure == ENVD_FAILURE_HTTP && c->sandbox_id && c->sandbox_id[0] &&
        !strstr(err->message, c->sandbox_id)) {
        char prefix[300];
        snprintf(prefix, sizeof prefix, "sandbox %s", c->sandbox_id);
        envd_error_wrap(err, prefix);
    }
    return err;
}

/* Sending these twice does what sending them once does. */
static int idempotent(const char *method)
{
    static const char *const m[] = {"/filesystem.Filesystem/Stat",
                                    "/filesystem.Filesystem/ListDir", "/process.Process/List"};
    for (size_t i = 0; i < sizeof m / sizeof m[0]; i++)
        if (strcmp(method, m[i]) == 0)
            return 1;
    return 0;
}

static uint64_t jitter_seed(const void *p)
{
    /* Different per call and per attempt; not for anything secret. */
    uint64_t x = (uint64_t)(uintptr_t)p ^ (uint64_t)envd_now_ms() * 0x9e3779b97f4a7c15ULL;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    return x ^ (x >> 33);
}

static envd_status start_attempt(envd_op *op, envd_op_call *k);

static int rpc_message(void *ud, const uint8_t *msg, size_t len)
{
    envd_op *op = ud;
    op->call->responded = 1;
    return op->call->on_message ? op->call->on_message(ud, msg, len) : 0;
}

/* The retry timer ran out, or the op was stopped (or the runtime is
 * closing) while it waited: the next attempt, or the end. */
static void retry_now(envd_op *op, int stopped)
{
    envd_op_call *k = op->call;
    /* The timer's reference passes to the transport, and the attempt may
     * end before start returns: hold one of our own meanwhile. */
    envd_op_ref(op);
    envd_status st = stopped ? ENVD_CANCELED : start_attempt(op, k);
    if (st == ENVD_OK) {
        envd_op_unref(op);
        return;
    }
    envd_error *err =
        st == ENVD_CANCELED
            ? envd_error_new(ENVD_CANCELED, ENVD_TRANSPORT_NONE, 0,
                             "%s: canceled while waiting to retry (%d attempt%s failed)",
                             k->call.method, k->attempts, k->attempts == 1 ? "" : "s")
            : envd_error_new(st, ENVD_TRANSPORT_NONE, 0, "%s: could not retry: %s",
                             k->call.method, envd_strerror(st));
    k->on_done(op, err); /* takes the timer's reference */
    envd_op_unref(op);
}

static void rpc_done(void *ud, envd_error *err)
{
    envd_op *op = ud;
    envd_op_call *k = op->call;
    /* A 401 (the gateway's, on any RPC, streams too): renew the traffic
     * token before the next call. */
    if (err && envd_error_http_status(err) == 401)
        envd_traffic_rejected(k->c->traffic, 0);
    err = envd_op_gateway_error(k->c, err);
    if (err && !atomic_load(&op->stop)) {
        k->attempts++;
        int64_t timeout = k->call.timeout_ms;
        envd_retry_ctx ctx = {
            .attempt = k->attempts,
            .max_retries = envd_op_max_retries(k->c),
            .remaining_ms = timeout > 0 ? timeout - (envd_now_ms() - k->started_ms) : -1,
            .replayable = k->call.kind != ENVD_RPC_CLIENT_STREAM,
            .idempotent = idempotent(k->call.method),
            .responded = k->responded,
        };
        int64_t delay = envd_retry_delay_ms(err, &ctx, jitter_seed(op));
        if (delay >= 0) {
            envd_rpc *old = atomic_exchange(&op->rpc, NULL);
            if (old)
                op->t->ops->release(old);
            /* The transport's reference passes to the timer. */
            if (envd_op_later(op, delay, retry_now) == ENVD_OK) {
                envd_error_free(err);
                return;
            }
        }
        if (k->attempts > 1) {
            char prefix[64];
            snprintf(prefix, sizeof prefix, "after %d attempts", k->attempts);
            envd_error_wrap(err, prefix);
        }
    }
    k->on_done(ud, err);
}

/* One attempt of op's call: transport, headers, start, publish. */
static envd_status start_attempt(envd_op *op, envd_op_call *k)
{
    envd_client *c = k->c;
    if (!k->attempts) /* a retry goes the way the first attempt went */
        op->t = envd_client_rpc_transport(c);
    envd_kv hdrs[ENVD_OP_HEADERS_CAP(c)];
    envd_header_scratch hs;
    size_t nh = envd_op_headers(c, k->call.method, (envd_call_kind)k->call.kind, k->call.user,
                                k->call.process_timeout_ms, hdrs, &hs);
    int64_t timeout = k->call.timeout_ms;
    if (timeout > 0 && k->attempts > 0) { /* what is left of the call's */
        timeout -= envd_now_ms() - k->started_ms;
        if (timeout < 1)
            timeout = 1;
    }
    envd_rpc_request req = {
        .ep = &c->ep,
        .method = k->call.method,
        .kind = k->call.kind,
        .headers = hdrs,
        .n_headers = nh,
        .body = k->data,
        .body_len = k->len,
        .timeout_ms = timeout,
        .idle_timeout_ms = k->call.idle_timeout_ms,
    };
    envd_rpc_callbacks cb = {rpc_message, rpc_done, op};
    envd_rpc *rpc = NULL;
    k->responded = 0;
    envd_status s = hs.status != ENVD_OK ? hs.status : op->t->ops->start(op->t, &req, &cb, &rpc);
    envd_headers_done(&hs);
    if (s != ENVD_OK)
        return s;
    /* An earlier attempt that ended before its starter published it is
     * released here (its on_done found nothing to release). */
    envd_rpc *prev = atomic_exchange(&op->rpc, rpc);
    if (prev)
        op->t->ops->release(prev);
    if (atomic_load(&op->stop)) /* a stop came before the call existed */
        op->t->ops->cancel(rpc);
    return ENVD_OK;
}

envd_status envd_op_start_rpc(envd_op *op, envd_client *c, const envd_call *call,
                              int (*on_message)(void *ud, const uint8_t *msg, size_t len),
                              void (*on_done)(void *ud, envd_error *err))
{
    size_t len = call->msg ? protobuf_c_message_get_packed_size(call->msg) : 0;
    size_t ul = call->user ? strlen(call->user) + 1 : 0;
    envd_op_call *k = envd_malloc(sizeof(*k) + len + ul);
    if (!k)
        return ENVD_E_NOMEM;
    if (call->msg)
        protobuf_c_message_pack(call->msg, k->data);
    k->len = len;
    k->call = *call;
    k->call.msg = NULL;
    if (ul) {
        memcpy(k->data + len, call->user, ul);
        k->call.user = (const char *)k->data + len;
    }
    k->on_message = on_message;
    k->on_done = on_done;
    k->started_ms = envd_now_ms();
    k->attempts = 0;
    k->responded = 0;
    envd_client_ref(c);
    k->c = c;
    envd_status s;
    if (!call->urgent && (s = envd_op_acquire(op)) != ENVD_OK) {
        call_free(k);
        return s;
    }
    call_free(op->call); /* a starter that failed before may have left one */
    op->call = k;
    envd_op_ref(op); /* the transport's, if it starts */
    s = start_attempt(op, k);
    if (s != ENVD_OK) {
        atomic_fetch_sub(&op->refs, 1); /* the caller's is still held */
        envd_op_release(op);
        return s;
    }
    return ENVD_OK;
}
