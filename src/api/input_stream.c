/* StreamInput: ordered stdin (or terminal input) over one client stream.
 * The first message selects the process, then data messages follow in the
 * order written; envd answers once the input ends. While the stream is
 * open, a keepalive message goes out every keepalive interval so that
 * proxies do not close a quiet input stream. */
#include "api/commands.h"
#include "core/alloc.h"
#include "api/op.h"
#include "api/sync.h"
#include "core/thread.h"
#include "process.pb-c.h"

#include <stdlib.h>
#include <string.h>

/* One message carries at most this much input; longer writes are split. */
#define INPUT_CHUNK ((size_t)1 << 20)

/* An operation (op.h). References: the caller (envd_input_stream_free),
 * the transport (until on_done returned), the armed keepalive timer. */
struct envd_input_stream {
    envd_op op;     /* first: the transport's ud is the op */
    envd_future *f; /* the outcome; the stream holds the caller's reference */
    int pty;
    pthread_mutex_t mu;
    int ended;      /* no more input: end() called or the stream is over */
    int end_called; /* the caller ended the input */
    envd_timer *ka; /* the armed keepalive timer, or NULL */
    int64_t ka_ms;
};

static void is_destroy(envd_op *op)
{
    envd_input_stream *s = (envd_input_stream *)op;
    envd_future_free(s->f);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

static const envd_op_class input_class = {.destroy = is_destroy};

static void is_unref(envd_input_stream *s)
{
    envd_op_unref(&s->op);
}

static void is_ref(envd_input_stream *s)
{
    envd_op_ref(&s->op);
}

static envd_rpc *is_rpc(envd_input_stream *s)
{
    return atomic_load(&s->op.rpc);
}

/* Whoever takes s->ka out disposes of that timer: cancel, and drop the
 * timer's reference if it had not fired (a firing callback that finds
 * itself taken returns without touching it). */
static void stop_keepalive(envd_input_stream *s)
{
    pthread_mutex_lock(&s->mu);
    envd_timer *t = s->ka;
    s->ka = NULL;
    s->ended = 1;
    pthread_mutex_unlock(&s->mu);
    if (t)
        envd_timer_cancel(t);
    if (t)
        is_unref(s);
}

static envd_status send_msg(envd_input_stream *s, const Process__StreamInputRequest *m)
{
    size_t len = protobuf_c_message_get_packed_size(&m->base);
    uint8_t stackbuf[64];
    uint8_t *buf = len <= sizeof(stackbuf) ? stackbuf : envd_malloc(len);
    if (!buf)
        return ENVD_E_NOMEM;
    protobuf_c_message_pack(&m->base, buf);
    envd_status st = s->op.t->ops->send(is_rpc(s), buf, len); /* copies */
    if (buf != stackbuf)
        free(buf);
    return st;
}

static void on_keepalive(void *ud)
{
    envd_input_stream *s = ud;
    pthread_mutex_lock(&s->mu);
    envd_timer *me = s->ka;
    if (!me || s->ended) {
        /* taken by stop_keepalive, which disposes of it */
        pthread_mutex_unlock(&s->mu);
        return;
    }
    Process__StreamInputRequest m = PROCESS__STREAM_INPUT_REQUEST__INIT;
    Process__StreamInputRequest__KeepAlive ka = PROCESS__STREAM_INPUT_REQUEST__KEEP_ALIVE__INIT;
    m.event_case = PROCESS__STREAM_INPUT_REQUEST__EVENT_KEEPALIVE;
    m.keepalive = &ka;
    envd_status st = send_msg(s, &m);
    envd_timer *next = NULL;
    if (st == ENVD_OK) {
        is_ref(s); /* the next timer's */
        next = envd_timer_start(s->op.rt->timers, s->ka_ms, on_keepalive, s);
        if (!next)
            atomic_fetch_sub(&s->op.refs, 1); /* cannot be the last: ours is held */
    }
    s->ka = next;
    pthread_mutex_unlock(&s->mu);
    envd_timer_cancel(me); /* from inside its own callback: freed on return */
    is_unref(s);           /* this timer's reference */
}

static int on_response(void *ud, const uint8_t *msg, size_t len)
{
    (void)ud, (void)msg, (void)len; /* StreamInputResponse is empty */
    return 0;
}

static void on_done(void *ud, envd_error *err)
{
    envd_input_stream *s = ud;
    envd_op_release(&s->op);
    pthread_mutex_lock(&s->mu);
    s->ended = 1; /* the keepalive timer stops at its next tick */
    pthread_mutex_unlock(&s->mu);
    if (err)
        envd_error_wrap(err, s->pty ? "failed to stream pty input" : "failed to stream input");
    envd_future_complete(s->f, NULL, NULL, err);
    is_unref(s);
}

/* The first message: which process the input goes to. */
static void send_start(envd_input_stream *s, const envd_proc *p)
{
    Process__StreamInputRequest m = PROCESS__STREAM_INPUT_REQUEST__INIT;
    Process__StreamInputRequest__StartEvent se = PROCESS__STREAM_INPUT_REQUEST__START_EVENT__INIT;
    Process__ProcessSelector ps;
    envd_proc_selector(&ps, p);
    se.process = &ps;
    m.event_case = PROCESS__STREAM_INPUT_REQUEST__EVENT_START;
    m.start = &se;
    /* If this fails the stream is already over; on_done says why. */
    (void)send_msg(s, &m);
}

envd_status envd_commands_open_input(envd_client *c, const envd_proc *p, envd_input kind,
                                     envd_input_stream **out)
{
    if (out)
        *out = NULL;
    envd_status st = envd_proc_begin(c, 1, p, out != NULL);
    if (st != ENVD_OK)
        return st;
    if (kind != ENVD_INPUT_STDIN && kind != ENVD_INPUT_PTY)
        return envd_start_error(ENVD_INVALID_ARGUMENT, "kind %d is not an envd_input", (int)kind);
    envd_input_stream *s = envd_calloc(1, sizeof(*s));
    if (!s)
        return ENVD_E_NOMEM;
    envd_op_init(&s->op, &input_class, c->rt); /* the caller's reference */
    pthread_mutex_init(&s->mu, NULL);
    s->pty = kind == ENVD_INPUT_PTY;
    s->ka_ms = (int64_t)c->cfg->keepalive_s * 1000;
    s->f = envd_future_create(ENVD_FK_NONE);
    st = ENVD_E_NOMEM;
    if (s->f) {
        envd_call call = {.method = "/process.Process/StreamInput",
                          .kind = ENVD_RPC_CLIENT_STREAM,
                          /* from the end of input to envd's answer */
                          .timeout_ms = c->cfg->request_timeout_ms};
        st = envd_op_start_rpc(&s->op, c, &call, on_response, on_done);
    }
    if (st != ENVD_OK) {
        envd_future_discard(s->f);
        s->f = NULL;
        is_unref(s);
        return st;
    }
    envd_op_bind(&s->op, s->f);
    send_start(s, p);
    pthread_mutex_lock(&s->mu);
    if (!s->ended && s->ka_ms > 0) {
        is_ref(s);
        s->ka = envd_timer_start(c->rt->timers, s->ka_ms, on_keepalive, s);
        if (!s->ka)
            atomic_fetch_sub(&s->op.refs, 1);
    }
    pthread_mutex_unlock(&s->mu);
    *out = s;
    return ENVD_OK;
}

/* The stream is over: its error, once on_done delivered it. */
static envd_status over(envd_input_stream *s, envd_error **err)
{
    envd_future_wait(s->f, 10000); /* on_done is running or about to */
    envd_status st = envd_future_status(s->f);
    if (st == ENVD_OK || st == ENVD_E_TIMEOUT)
        st = ENVD_CANCELED;
    if (err)
        *err = envd_future_take_error(s->f);
    return st;
}

envd_status envd_input_stream_write(envd_input_stream *s, const void *data, size_t len,
                                    envd_error **err)
{
    if (err)
        *err = NULL;
    if (!s || (!data && len))
        return envd_usage_error(err, __func__, s ? "data is NULL" : "stream is NULL");
    pthread_mutex_lock(&s->mu);
    int ended = s->ended, end_called = s->end_called;
    pthread_mutex_unlock(&s->mu);
    if (end_called)
        return envd_usage_error(err, __func__, "the input was ended already");
    if (ended)
        return over(s, err);
    const uint8_t *p = data;
    do {
        size_t n = len < INPUT_CHUNK ? len : INPUT_CHUNK;
        Process__StreamInputRequest m = PROCESS__STREAM_INPUT_REQUEST__INIT;
        Process__StreamInputRequest__DataEvent de = PROCESS__STREAM_INPUT_REQUEST__DATA_EVENT__INIT;
        Process__ProcessInput in = PROCESS__PROCESS_INPUT__INIT;
        if (s->pty) {
            in.input_case = PROCESS__PROCESS_INPUT__INPUT_PTY;
            in.pty.data = (uint8_t *)p;
            in.pty.len = n;
        } else {
            in.input_case = PROCESS__PROCESS_INPUT__INPUT_STDIN;
            in.stdin.data = (uint8_t *)p;
            in.stdin.len = n;
        }
        de.input = &in;
        m.event_case = PROCESS__STREAM_INPUT_REQUEST__EVENT_DATA;
        m.data = &de;
        envd_status st = send_msg(s, &m);
        if (st == ENVD_CANCELED)
            return over(s, err);
        if (st != ENVD_OK)
            return st;
        p += n;
        len -= n;
    } while (len > 0);
    return ENVD_OK;
}

envd_status envd_input_stream_end(envd_input_stream *s)
{
    if (!s)
        return ENVD_E_USAGE;
    pthread_mutex_lock(&s->mu);
    int was = s->end_called;
    s->end_called = 1;
    pthread_mutex_unlock(&s->mu);
    if (was)
        return ENVD_OK;
    stop_keepalive(s);
    envd_status st = s->op.t->ops->close_send(is_rpc(s));
    /* ENVD_CANCELED: the stream is over already; its future says why. */
    return st == ENVD_CANCELED ? ENVD_OK : st;
}

envd_future *envd_input_stream_future(envd_input_stream *s)
{
    return s ? s->f : NULL;
}

envd_status envd_input_stream_close(envd_input_stream *s, envd_error **err)
{
    if (err)
        *err = NULL;
    if (!s)
        return envd_usage_error(err, __func__, "stream is NULL");
    envd_status st = envd_input_stream_end(s);
    if (st != ENVD_OK)
        return st;
    if (envd_future_wait(s->f, -1) != ENVD_OK) { /* on an engine thread */
        if (err)
            *err = envd_thread_refusal(__func__);
        return ENVD_E_USAGE;
    }
    if (err)
        *err = envd_future_take_error(s->f);
    return envd_future_status(s->f);
}

void envd_input_stream_free(envd_input_stream *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    int end_called = s->end_called;
    pthread_mutex_unlock(&s->mu);
    stop_keepalive(s);
    /* Ended input completes on its own; abandoned input is cut off (envd
     * may have applied part of it). */
    if (!end_called)
        envd_op_stop(&s->op);
    is_unref(s);
}
