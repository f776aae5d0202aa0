/* One unary RPC as one future: the unary starter every unary call goes
 * through, on the operation base (op.h). */
#include "api/op.h"
#include "core/alloc.h"
#include "core/pb_scan.h"

#include <stdlib.h>
#include <string.h>

typedef struct unary_op {
    envd_op op; /* first: the transport's ud is the op */
    envd_future *f;
    envd_unary_spec spec;
    uint8_t *resp;
    size_t resp_len;
    int got_resp;
    int oom; /* keeping the reply failed: the call was stopped for that */
    int64_t list_cap; /* spec.list_field: the client's max_list_entries */
    size_t listed;    /* over list_cap: the call was stopped for that */
    int counted; /* an urgent fire-and-forget call, counted in kills_pending */
} unary_op;

static void unary_destroy(envd_op *op)
{
    unary_op *u = (unary_op *)op;
    if (u->spec.ctx_free)
        u->spec.ctx_free(u->spec.ctx);
    free(u->resp);
    free(u);
}

static const envd_op_class unary_class = {.destroy = unary_destroy};

static int on_message(void *ud, const uint8_t *msg, size_t len)
{
    unary_op *u = ud;
    if (u->got_resp)
        return 0; /* a unary call has one response; ignore extras */
    /* A list reply's entries are counted before anything is decoded (a
     * malformed one is left to the decoder to report). */
    size_t n = 0;
    if (u->spec.list_field && envd_pb_count_field(msg, len, u->spec.list_field, &n) == 0 &&
        n > (uint64_t)u->list_cap) {
        u->listed = n;
        return -1;
    }
    u->resp = envd_malloc(len ? len : 1);
    if (!u->resp) {
        u->oom = 1;
        return -1;
    }
    memcpy(u->resp, msg, len);
    u->resp_len = len;
    u->got_resp = 1;
    return 0;
}

static void on_done(void *ud, envd_error *err)
{
    unary_op *u = ud;
    if (u->oom) { /* the transport saw a callback stop the call: say why */
        envd_error_free(err);
        err = envd_error_new(ENVD_E_NOMEM, ENVD_TRANSPORT_NONE, 0,
                             "%s: out of memory keeping the reply", u->spec.method);
    } else if (u->listed) {
        envd_error_free(err);
        err = envd_error_new(ENVD_RESOURCE_EXHAUSTED, u->op.t->ops->kind, 0,
                             "%s: the reply lists %zu entries, over the limit of %lld "
                             "(envd_config_set_max_list_entries)",
                             u->spec.method, u->listed, (long long)u->list_cap);
    } else if (!err && !u->got_resp)
        err = envd_error_new(ENVD_E_PROTOCOL, u->op.t->ops->kind, 0,
                             "%s: the call succeeded without a response message", u->spec.method);
    void *result = NULL;
    envd_free_fn free_fn = NULL;
    envd_error *out_err = NULL;
    u->spec.finish(u->spec.ctx, u->resp, u->resp_len, err, &result, &free_fn, &out_err);
    envd_op_release(&u->op); /* before completing: the caller may free the client */
    if (u->f) {
        envd_future_complete(u->f, result, free_fn, out_err);
    } else { /* fire and forget */
        if (result && free_fn)
            free_fn(result);
        envd_error_free(out_err);
    }
    if (u->counted) {
        envd_runtime *rt = u->op.rt;
        pthread_mutex_lock(&rt->mu);
        if (--rt->kills_pending == 0)
            pthread_cond_broadcast(&rt->kills_cv);
        pthread_mutex_unlock(&rt->mu);
    }
    envd_op_unref(&u->op);
}

envd_status envd_unary_start(envd_client *c, const envd_unary_spec *spec,
                             const ProtobufCMessage *msg, envd_future **out)
{
    if (out)
        *out = NULL;
    unary_op *u = c ? envd_calloc(1, sizeof(*u)) : NULL;
    envd_future *f = u && out ? envd_future_create(spec->kind) : NULL;
    if (!u || (out && !f)) {
        if (spec->ctx_free)
            spec->ctx_free(spec->ctx);
        free(u);
        return c ? ENVD_E_NOMEM : ENVD_E_USAGE;
    }
    envd_op_init(&u->op, &unary_class, c->rt);
    u->spec = *spec;
    u->f = f;
    u->list_cap = c->cfg->max_list_entries;
    if (spec->urgent && !out) { /* counted before it can finish */
        u->counted = 1;
        pthread_mutex_lock(&c->rt->mu);
        c->rt->kills_pending++;
        pthread_mutex_unlock(&c->rt->mu);
    }
    envd_call call = {.method = spec->method,
                      .kind = ENVD_RPC_UNARY,
                      .msg = msg,
                      .user = spec->user,
                      .timeout_ms = c->cfg->request_timeout_ms,
                      .urgent = spec->urgent};
    envd_status s = envd_op_start_rpc(&u->op, c, &call, on_message, on_done);
    if (s != ENVD_OK) {
        if (u->counted) {
            pthread_mutex_lock(&c->rt->mu);
            if (--c->rt->kills_pending == 0)
                pthread_cond_broadcast(&c->rt->kills_cv);
            pthread_mutex_unlock(&c->rt->mu);
        }
        envd_future_discard(f);
        envd_op_unref(&u->op);
        return s;
    }
    if (f) {
        envd_op_bind(&u->op, f);
        *out = f;
    }
    envd_op_unref(&u->op);
    return ENVD_OK;
}

void envd_finish_bool(envd_error *err, envd_status no, const char *prefix, void **result,
                      envd_free_fn *free_fn, envd_error **out_err)
{
    if (err && err->code != no) {
        *out_err = envd_error_wrap(err, prefix);
        return;
    }
    int *yes = envd_malloc(sizeof(int));
    if (!yes) {
        envd_error_free(err);
        *out_err = envd_error_new(ENVD_E_NOMEM, ENVD_TRANSPORT_NONE, 0, "out of memory");
        return;
    }
    *yes = err == NULL;
    *result = yes;
    *free_fn = free;
    envd_error_free(err);
}
