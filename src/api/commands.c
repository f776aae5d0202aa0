/* Commands: run, start and connect (PTY sessions are commands with a
 * terminal) and their handles. Each is one Start or Connect server stream,
 * an operation on the common base (op.h); its futures are the start
 * (completes with the handle at the StartEvent) and the end (completes with
 * the command result).
 *
 * Cancel means stop: cancelling a run (or a start before its handle was
 * delivered) SIGKILLs the process, unless detached. The pid is only known
 * at the start event; a cancel that comes earlier leaves the stream open
 * until then, kills, and only then ends it. envd_runtime_free kills the
 * runs still in flight the same way (the op's shutdown hook). */
#include "api/commands.h"
#include "core/alloc.h"
#include "core/pb_arena.h"
#include "api/op.h"
#include "api/sync.h"
#include "core/thread.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What a handle needs to read its stream, and to re-attach to the same
 * process later (envd_handle_reconnect). */
typedef struct stream_conf {
    char *user;
    envd_output_cb on_stdout, on_stderr;
    void *stdout_ud, *stderr_ud;
    size_t max_output;
    int64_t request_timeout_ms;
    int64_t idle_timeout_ms;
    int64_t process_timeout_ms; /* Start only */
    int pty;                    /* the process has a terminal */
    int detach;                 /* cancel does not kill */
} stream_conf;

/* An operation (op.h). References: the starter (until the call returns),
 * the transport (until on_done returned), and for start/connect the
 * caller's handle (held by the start future's result until taken, dropped
 * by envd_handle_free). The handle holds a reference to its client. */
struct envd_handle {
    envd_op op;              /* first: the transport's ud is the op */
    envd_client *c;          /* for the handle's calls and kills */
    atomic_int disconnected; /* no callback runs after disconnect */
    atomic_uint pid_known;   /* the pid, for threads other than the engine's */
    atomic_int kill_wanted;  /* cancelled before the pid was known */
    atomic_int kill_sent;
    atomic_int delivered; /* the start future holds the handle: the caller's now */
    envd_future *start_f; /* engine thread: NULL once completed */
    envd_future *done_f;  /* the end: the command result */
    int owns_done;        /* start/connect: the handle holds done_f's
                           * caller reference (run: the caller does) */
    int is_start;         /* Start (a process of ours), not Connect */
    stream_conf conf;
    int64_t opened_ms;
    /* Engine thread (pid is read by others only after start_f completed). */
    uint32_t pid;
    int started;
    int got_end;
    int bad_first; /* event case of a first event that was not start */
    int oom;
    envd_cmd_result *res;
};

static void conf_clear(stream_conf *cf)
{
    free(cf->user);
    cf->user = NULL;
}

/* An idle timeout at or under the keepalive interval would end every quiet
 * but healthy stream; such a value is raised to two intervals and 10 s. */
static int64_t idle_for(const envd_client *c, int64_t idle)
{
    int64_t ka = (int64_t)c->cfg->keepalive_s * 1000;
    if (idle > 0 && idle <= ka)
        idle = 2 * ka + 10000;
    return idle;
}

static envd_status conf_from(envd_client *c, const envd_cmd_opts *o, stream_conf *cf)
{
    memset(cf, 0, sizeof(*cf));
    cf->max_output = o ? o->max_output : ENVD_DEFAULT_MAX_OUTPUT;
    cf->request_timeout_ms =
        o && o->request_timeout_ms >= 0 ? o->request_timeout_ms : c->cfg->request_timeout_ms;
    cf->idle_timeout_ms =
        idle_for(c, o && o->idle_timeout_ms >= 0 ? o->idle_timeout_ms : c->cfg->idle_timeout_ms);
    if (!o)
        return ENVD_OK;
    cf->on_stdout = o->on_stdout;
    cf->stdout_ud = o->stdout_ud;
    cf->on_stderr = o->on_stderr;
    cf->stderr_ud = o->stderr_ud;
    cf->process_timeout_ms = o->timeout_ms;
    cf->pty = o->pty;
    cf->detach = o->detach;
    if (o->user && !(cf->user = envd_strdup(o->user)))
        return ENVD_E_NOMEM;
    return ENVD_OK;
}

static envd_status conf_copy(const stream_conf *from, stream_conf *to)
{
    *to = *from;
    to->user = NULL;
    to->process_timeout_ms = 0;
    if (from->user && !(to->user = envd_strdup(from->user)))
        return ENVD_E_NOMEM;
    return ENVD_OK;
}

/* ---- the operation ------------------------------------------------------- */

static void handle_destroy(envd_op *op)
{
    envd_handle *h = (envd_handle *)op;
    if (h->owns_done)
        envd_future_free(h->done_f); /* completed by now: just the reference */
    if (h->res)
        envd_command_result_free(&h->res->pub);
    conf_clear(&h->conf);
    envd_client_free(h->c);
    free(h);
}

static void handle_unref(envd_handle *h)
{
    envd_op_unref(&h->op);
}

/* SIGKILL to the handle's process, once. With out NULL fire and forget;
 * either way it takes no in-flight slot (it is sent while stopping). */
static void send_kill(envd_handle *h, envd_future **out)
{
    if (atomic_exchange(&h->kill_sent, 1))
        return;
    uint32_t pid = atomic_load(&h->pid_known);
    (void)envd_proc_signal_start(h->c, ENVD_PID(pid), ENVD_SIGNAL_SIGKILL, 1, out);
}

/* Whether stopping this operation also kills its process. */
static int kills(envd_handle *h)
{
    return h->is_start && !h->conf.detach && !atomic_load(&h->delivered);
}

static void handle_cancel(envd_op *op)
{
    envd_handle *h = (envd_handle *)op;
    if (kills(h)) {
        atomic_store(&h->kill_wanted, 1);
        if (!atomic_load(&h->pid_known))
            return; /* the start event kills and ends the stream */
        send_kill(h, NULL);
    }
    envd_op_stop(op);
}

static envd_future *handle_shutdown(envd_op *op)
{
    envd_handle *h = (envd_handle *)op;
    envd_future *f = NULL;
    if (kills(h) && atomic_load(&h->pid_known))
        send_kill(h, &f);
    return f;
}

static const envd_op_class handle_class = {
    .destroy = handle_destroy, .cancel = handle_cancel, .shutdown = handle_shutdown};

static void result_free_fn(void *p)
{
    envd_command_result_free(p);
}

/* The start future's result holds the caller's handle reference until it
 * is taken; freeing it untaken frees the handle. */
static void handle_result_free(void *p)
{
    envd_handle_free(p);
}

/* ---- output -------------------------------------------------------------- */

static int obuf_append(envd_obuf *b, const uint8_t *d, size_t n, size_t cap, int *truncated)
{
    if (n > cap - (b->len < cap ? b->len : cap)) {
        *truncated = 1;
        n = cap > b->len ? cap - b->len : 0;
    }
    if (n == 0)
        return 0;
    if (b->len + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 4096;
        while (nc < b->len + n + 1)
            nc *= 2;
        char *nd = envd_realloc(b->data, nc);
        if (!nd)
            return -1;
        b->data = nd;
        b->cap = nc;
    }
    memcpy(b->data + b->len, d, n);
    b->len += n;
    b->data[b->len] = 0;
    return 0;
}

/* DataEvent's output fields. */
enum { OUT_STDOUT = 1, OUT_STDERR = 2, OUT_PTY = 3 };

static void deliver_output(envd_handle *h, int field, const uint8_t *data, size_t len)
{
    const stream_conf *cf = &h->conf;
    /* The terminal merges stdout and stderr; it counts as stdout. */
    int err = field == OUT_STDERR;
    if (field != OUT_STDOUT && field != OUT_STDERR && field != OUT_PTY)
        return;
    if (!len)
        return;
    envd_output_cb cb = err ? cf->on_stderr : cf->on_stdout;
    if (cb && !atomic_load(&h->disconnected))
        cb(err ? cf->stderr_ud : cf->stdout_ud, data, len);
    envd_obuf *keep = err ? &h->res->err : &h->res->out;
    if (obuf_append(keep, data, len, cf->max_output, &h->res->pub.truncated))
        h->oom = 1;
}

/* A length prefix as protobuf-c reads one: at most 5 bytes, and the field
 * must fill exactly the rest of the message (anything after it is another
 * field, which the fast path leaves to the full decoder). */
static int read_len(const uint8_t **p, const uint8_t *end, size_t *out)
{
    uint64_t v = 0;
    for (int i = 0; i < 5 && *p < end; i++) {
        uint8_t b = *(*p)++;
        v |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            *out = (size_t)v;
            return v == (uint64_t)(end - *p);
        }
    }
    return 0;
}

int envd_peek_output(const uint8_t *msg, size_t len, int *field, const uint8_t **data, size_t *n)
{
    if (!msg || !len) /* msg + 0 on NULL is undefined */
        return 0;
    const uint8_t *p = msg, *end = msg + len;
    size_t l;
    if (p == end || *p++ != 0x0a || !read_len(&p, end, &l)) /* event = 1, bytes */
        return 0;
    if (p == end || *p++ != 0x12 || !read_len(&p, end, &l)) /* data = 2, bytes */
        return 0;
    if (p == end)
        return 0;
    uint8_t tag = *p++; /* stdout = 1, stderr = 2, pty = 3; bytes */
    if ((tag != 0x0a && tag != 0x12 && tag != 0x1a) || !read_len(&p, end, &l))
        return 0;
    *field = tag >> 3;
    *data = p;
    *n = l;
    return 1;
}

/* ---- events ---------------------------------------------------------------- */

/* The first event: it must be start. Returns non-zero to end the stream. */
static int on_start_event(envd_handle *h, const Process__ProcessEvent *ev)
{
    if (ev->event_case != PROCESS__PROCESS_EVENT__EVENT_START || !ev->start) {
        h->bad_first = ev->event_case ? (int)ev->event_case : -1;
        return -1; /* on_done reports it */
    }
    h->pid = ev->start->pid;
    h->started = 1;
    envd_future_set_aux(h->done_f, h->pid);
    if (h->start_f)
        envd_future_set_aux(h->start_f, h->pid);
    atomic_store(&h->pid_known, h->pid);
    if (atomic_load(&h->kill_wanted) && kills(h)) {
        send_kill(h, NULL); /* cancelled before the pid was known */
        return -1;
    }
    envd_future *sf = h->start_f;
    h->start_f = NULL;
    if (sf) { /* run has no start future */
        atomic_store(&h->delivered, 1);
        envd_future_complete(sf, h, handle_result_free, NULL);
    }
    return 0;
}

static int on_end_event(envd_handle *h, const Process__ProcessEvent__EndEvent *end)
{
    h->got_end = 1;
    h->res->pub.exit_code = end->exit_code;
    if (end->_error_case == PROCESS__PROCESS_EVENT__END_EVENT___ERROR_ERROR && end->error) {
        /* A server may send more than one end event: the last error wins,
         * the earlier one is freed rather than leaked. */
        free(h->res->error);
        if (!(h->res->error = envd_strdup(end->error))) {
            h->oom = 1;
            return -1;
        }
    }
    return 0;
}

static int on_event(void *ud, const uint8_t *msg, size_t len)
{
    envd_handle *h = ud;
    int field;
    const uint8_t *data;
    size_t n;
    if (h->started && envd_peek_output(msg, len, &field, &data, &n)) {
        deliver_output(h, field, data, n);
        return h->oom ? -1 : 0;
    }
    /* StartResponse and ConnectResponse share one layout: event = 1. */
    envd_pb_arena a;
    envd_pb_arena_init(&a);
    Process__StartResponse *r = process__start_response__unpack(&a.alloc, len, msg);
    if (!r) {
        if (a.nomem)
            h->oom = 1;
        return -1; /* on_done reports the protocol error (or running out of memory) */
    }
    Process__ProcessEvent *ev = r->event;
    int rc = 0;
    if (!ev) {
        /* the Go client skips messages without an event */
    } else if (!h->started) {
        rc = on_start_event(h, ev);
    } else if (ev->event_case == PROCESS__PROCESS_EVENT__EVENT_DATA && ev->data) {
        const Process__ProcessEvent__DataEvent *d = ev->data;
        if (d->output_case == PROCESS__PROCESS_EVENT__DATA_EVENT__OUTPUT_STDOUT)
            deliver_output(h, OUT_STDOUT, d->stdout.data, d->stdout.len);
        else if (d->output_case == PROCESS__PROCESS_EVENT__DATA_EVENT__OUTPUT_STDERR)
            deliver_output(h, OUT_STDERR, d->stderr.data, d->stderr.len);
        else if (d->output_case == PROCESS__PROCESS_EVENT__DATA_EVENT__OUTPUT_PTY)
            deliver_output(h, OUT_PTY, d->pty.data, d->pty.len);
        rc = h->oom ? -1 : 0;
    } else if (ev->event_case == PROCESS__PROCESS_EVENT__EVENT_END && ev->end) {
        rc = on_end_event(h, ev->end);
    }
    /* start again and keepalive: nothing to do (the transport fed the idle
     * clock on arrival). */
    process__start_response__free_unpacked(r, &a.alloc);
    return rc;
}

/* ---- the end --------------------------------------------------------------- */

/* "command exited with code N[: error][\nstderr: ...]", as the Go client,
 * after "process timeout of T ms reached: " when that is why it died. */
static envd_error *exit_error(const envd_handle *h, const envd_cmd_result *r,
                              envd_transport_kind tk)
{
    char pre[64] = "";
    if (r->pub.exit_code == -1 && h->conf.process_timeout_ms > 0 &&
        envd_now_ms() - h->opened_ms >= h->conf.process_timeout_ms)
        snprintf(pre, sizeof(pre), "process timeout of %lld ms reached: ",
                 (long long)h->conf.process_timeout_ms);
    const char *em = r->error ? r->error : "";
    const char *se = r->err.data ? r->err.data : "";
    envd_error *e =
        envd_error_new(ENVD_E_COMMAND_EXIT, tk, 0, "%scommand exited with code %d%s%s%s%s", pre,
                       r->pub.exit_code, *em ? ": " : "", em, *se ? "\nstderr: " : "", se);
    e->exit_code = r->pub.exit_code;
    return e;
}

/* The stream broke after the start. A process timeout ends a Connect stream
 * with deadline_exceeded before (or instead of) the end event that gRPC
 * delivers: envd killed the process either way, so it becomes the same
 * result, exit code -1 with the output kept. Returns NULL for that. */
static envd_error *stream_error(envd_handle *h, envd_error *err, envd_transport_kind tk)
{
    if (atomic_load(&h->disconnected) && err->code == ENVD_CANCELED) {
        envd_error_free(err);
        return envd_error_new(ENVD_CANCELED, tk, 0, "disconnected from process %u", h->pid);
    }
    if (err->code == ENVD_DEADLINE_EXCEEDED && h->conf.process_timeout_ms > 0 && !h->got_end) {
        envd_error_free(err);
        h->got_end = 1;
        h->res->pub.exit_code = -1;
        if (!h->res->error && !(h->res->error = envd_strdup("signal: killed")))
            h->oom = 1;
        return NULL;
    }
    return envd_error_wrap(err, "stream error");
}

static envd_error *fail_error(envd_handle *h, envd_error *err, envd_transport_kind tk)
{
    if (h->oom) {
        envd_error_free(err);
        return envd_error_new(ENVD_E_NOMEM, ENVD_TRANSPORT_NONE, 0,
                              "out of memory keeping the output of process %u", h->pid);
    }
    if (atomic_load(&h->kill_sent)) {
        /* cancelled, or the runtime is going: whatever the stream saw of
         * the kill, the caller asked for a stop */
        envd_error_free(err);
        return envd_error_new(ENVD_CANCELED, tk, 0, "cancelled: process %u killed", h->pid);
    }
    if (!h->started && h->bad_first) {
        envd_error_free(err);
        return envd_error_new(ENVD_E_PROTOCOL, tk, 0, "expected start event, got event %d",
                              h->bad_first);
    }
    if (!h->started) {
        if (!err)
            return envd_error_new(ENVD_E_PROTOCOL, tk, 0, "stream closed without %s event",
                                  h->is_start ? "start" : "connect");
        return envd_error_wrap(err, h->is_start ? "failed to start command"
                                                : "failed to connect to process");
    }
    if (err && !(err = stream_error(h, err, tk)) && h->oom)
        return fail_error(h, NULL, tk);
    if (!err && !h->got_end)
        return envd_error_new(ENVD_E_PROTOCOL, tk, 0, "command ended without an end event");
    return err;
}

static void on_stream_done(void *ud, envd_error *err)
{
    envd_handle *h = ud;
    envd_transport_kind tk = h->op.t->ops->kind;
    /* Free the slot first: once a future completes its caller may free the
     * client. */
    envd_op_release(&h->op);
    err = fail_error(h, err, tk);
    envd_future *sf = h->start_f;
    h->start_f = NULL;
    if (sf) /* the stream ended before its start event */
        envd_future_complete(sf, NULL, NULL, envd_error_dup(err));
    if (err) {
        envd_future_complete(h->done_f, NULL, NULL, err);
    } else {
        envd_cmd_result *r = h->res;
        h->res = NULL;
        envd_cmd_result_publish(r);
        envd_future_complete(h->done_f, &r->pub, result_free_fn,
                             r->pub.exit_code != 0 ? exit_error(h, r, tk) : NULL);
    }
    if (h->owns_done && !atomic_load(&h->delivered)) /* no handle reached the caller */
        handle_unref(h);
    handle_unref(h);
}

/* ---- opening a stream ------------------------------------------------------ */

typedef struct stream_args {
    const char *method;
    const ProtobufCMessage *msg;
    int is_start;
    int want_handle; /* start/connect: a start future and a handle; run: no */
} stream_args;

/* Takes cf (moved into the handle, cleared on failure too). *out gets the
 * start future (start/connect) or the done future (run). */
static envd_status stream_open(envd_client *c, const stream_args *a, stream_conf *cf,
                               envd_future **out)
{
    envd_handle *h = envd_calloc(1, sizeof(*h));
    if (!h) {
        conf_clear(cf);
        return ENVD_E_NOMEM;
    }
    envd_op_init(&h->op, &handle_class, c->rt);
    envd_client_ref(c);
    h->c = c;
    h->owns_done = a->want_handle;
    h->is_start = a->is_start;
    h->conf = *cf;
    memset(cf, 0, sizeof(*cf));
    h->opened_ms = envd_now_ms();
    h->res = envd_calloc(1, sizeof(*h->res));
    h->done_f = envd_future_create(ENVD_FK_COMMAND);
    envd_future *start_f = a->want_handle ? envd_future_create(ENVD_FK_HANDLE) : NULL;
    h->start_f = start_f;
    if (a->want_handle)
        envd_op_ref(&h->op); /* the caller's handle */
    if (a->is_start && !a->want_handle && !h->conf.detach)
        envd_op_track(&h->op); /* a run: killed if the runtime goes first */
    envd_status s = ENVD_E_NOMEM;
    if (h->res && h->done_f && (!a->want_handle || start_f)) {
        envd_call call = {.method = a->method,
                          .kind = ENVD_RPC_SERVER_STREAM,
                          .msg = a->msg,
                          .user = h->conf.user,
                          .timeout_ms = h->conf.request_timeout_ms,
                          .idle_timeout_ms = h->conf.idle_timeout_ms,
                          .process_timeout_ms = a->is_start ? h->conf.process_timeout_ms : 0};
        s = envd_op_start_rpc(&h->op, c, &call, on_event, on_stream_done);
    }
    if (s != ENVD_OK) {
        envd_op_release(&h->op); /* untracks */
        h->owns_done = 0;        /* discarded here */
        envd_future_discard(h->done_f);
        envd_future_discard(start_f);
        if (a->want_handle)
            handle_unref(h);
        handle_unref(h);
        return s;
    }
    /* The futures are alive here whatever the engine did meanwhile: the
     * caller's reference of start_f is still ours, done_f's is held by the
     * handle (start/connect) or ours (run). */
    if (start_f)
        envd_op_bind(&h->op, start_f);
    envd_op_bind(&h->op, h->done_f);
    *out = start_f ? start_f : h->done_f;
    handle_unref(h);
    return ENVD_OK;
}

/* ---- Start ------------------------------------------------------------------ */

/* The StartRequest: the program and its arguments, envs, cwd, stdin always
 * encoded (false unless asked, as the Go client), and tag and pty when set. */
typedef struct start_msg {
    Process__StartRequest req;
    Process__ProcessConfig cfg;
    Process__PTY pty;
    Process__PTY__Size size;
    Process__ProcessConfig__EnvsEntry *envs;
    Process__ProcessConfig__EnvsEntry **env_ptrs;
} start_msg;

/* extra_envs: defaults (name, value pairs, NULL-terminated) the options
 * override. */
static envd_status fill_start(start_msg *m, const char *prog, char **args, size_t n_args,
                              const envd_cmd_opts *o, const char *const *extra_envs)
{
    memset(m, 0, sizeof(*m));
    process__start_request__init(&m->req);
    process__process_config__init(&m->cfg);
    m->cfg.cmd = (char *)prog;
    m->cfg.args = args;
    m->cfg.n_args = n_args;
    size_t n_extra = 0;
    while (extra_envs && extra_envs[2 * n_extra])
        n_extra++;
    size_t n_opt = o ? o->n_envs : 0;
    if (n_opt + n_extra) {
        m->envs = envd_calloc(n_opt + n_extra, sizeof(*m->envs));
        m->env_ptrs = envd_calloc(n_opt + n_extra, sizeof(*m->env_ptrs));
        if (!m->envs || !m->env_ptrs) {
            free(m->envs);
            free(m->env_ptrs);
            return ENVD_E_NOMEM;
        }
        size_t n = 0;
        for (size_t i = 0; i < n_extra; i++) {
            int overridden = 0;
            for (size_t j = 0; j < n_opt; j++)
                overridden |= strcmp(o->env_names[j], extra_envs[2 * i]) == 0;
            if (overridden)
                continue;
            process__process_config__envs_entry__init(&m->envs[n]);
            m->envs[n].key = (char *)extra_envs[2 * i];
            m->envs[n].value = (char *)extra_envs[2 * i + 1];
            n++;
        }
        for (size_t i = 0; i < n_opt; i++) {
            process__process_config__envs_entry__init(&m->envs[n]);
            m->envs[n].key = o->env_names[i];
            m->envs[n].value = o->env_values[i];
            n++;
        }
        for (size_t i = 0; i < n; i++)
            m->env_ptrs[i] = &m->envs[i];
        m->cfg.envs = m->env_ptrs;
        m->cfg.n_envs = n;
    }
    if (o && o->cwd) {
        m->cfg._cwd_case = PROCESS__PROCESS_CONFIG___CWD_CWD;
        m->cfg.cwd = o->cwd;
    }
    m->req.process = &m->cfg;
    m->req._stdin_case = PROCESS__START_REQUEST___STDIN_STDIN;
    m->req.stdin = o ? o->stdin_enabled : 0;
    if (o && o->tag) {
        m->req._tag_case = PROCESS__START_REQUEST___TAG_TAG;
        m->req.tag = o->tag;
    }
    if (o && o->pty) {
        process__pty__init(&m->pty);
        process__pty__size__init(&m->size);
        m->size.cols = o->pty_cols;
        m->size.rows = o->pty_rows;
        m->pty.size = &m->size;
        m->req._pty_case = PROCESS__START_REQUEST___PTY_PTY;
        m->req.pty = &m->pty;
    }
    return ENVD_OK;
}

static void free_start(start_msg *m)
{
    free(m->envs);
    free(m->env_ptrs);
}

static envd_status launch_msg(envd_client *c, start_msg *m, const envd_cmd_opts *o, int want_handle,
                              envd_future **out)
{
    stream_conf cf;
    envd_status s = conf_from(c, o, &cf);
    if (s == ENVD_OK) {
        stream_args a = {"/process.Process/Start", &m->req.base, 1, want_handle};
        s = stream_open(c, &a, &cf, out);
    }
    conf_clear(&cf);
    free_start(m);
    return s;
}

/* The E2B SDKs' terminal session: an interactive login shell in a UTF-8
 * xterm-256color terminal; the options may override the variables. */
static const char *const login_envs[] = {"TERM", "xterm-256color", "LANG", "C.UTF-8",
                                         "LC_ALL", "C.UTF-8", NULL};

/* What a start runs: `/bin/bash -l -c cmd` (as the Go client), o's argv
 * without a shell, or with neither and a terminal, the login shell. */
static envd_status launch(envd_client *c, const char *cmd, const envd_cmd_opts *o,
                          int want_handle, envd_future **out)
{
    if (out)
        *out = NULL;
    envd_status s = envd_proc_begin(c, 0, NULL, out != NULL);
    if (s != ENVD_OK)
        return s;
    int has_argv = o && o->argv;
    if (cmd && has_argv)
        return envd_start_error(ENVD_E_USAGE, "cmd is not NULL, and the options set an argv");
    if (!cmd && !has_argv && !(o && o->pty))
        return envd_start_error(ENVD_E_USAGE, "cmd is NULL");
    if (o && o->stdin_set && !o->stdin_enabled &&
        (s = envd_client_gate(c, ENVD_GATE_STDIN_OFF)) != ENVD_OK)
        return s;
    start_msg m; /* points into these until sent */
    char *shell_args[3] = {"-l", "-c", (char *)cmd};
    char *login_args[2] = {"-i", "-l"};
    if (cmd) {
        s = fill_start(&m, "/bin/bash", shell_args, 3, o, NULL);
    } else if (has_argv) {
        size_t n = 0;
        while (o->argv[n + 1])
            n++;
        s = fill_start(&m, o->argv[0], o->argv + 1, n, o, NULL);
    } else {
        s = fill_start(&m, "/bin/bash", login_args, 2, o, login_envs);
    }
    if (s != ENVD_OK)
        return s;
    return launch_msg(c, &m, o, want_handle, out);
}

envd_status envd_commands_run_async(envd_client *c, const char *cmd, const envd_cmd_opts *o,
                                    envd_future **out)
{
    return launch(c, cmd, o, 0, out);
}

envd_status envd_commands_start_async(envd_client *c, const char *cmd, const envd_cmd_opts *o,
                                      envd_future **out)
{
    return launch(c, cmd, o, 1, out);
}

const envd_command_result *envd_future_command_result(const envd_future *f)
{
    return envd_future_result(f, ENVD_FK_COMMAND);
}

uint32_t envd_future_pid(const envd_future *f)
{
    int k = envd_future_kind(f);
    return k == ENVD_FK_COMMAND || k == ENVD_FK_HANDLE ? (uint32_t)envd_future_aux(f) : 0;
}

envd_handle *envd_future_take_handle(envd_future *f)
{
    return envd_future_take_result(f, ENVD_FK_HANDLE);
}

/* ---- Connect ------------------------------------------------------------------ */

static envd_status connect_conf(envd_client *c, const envd_proc *p, stream_conf *cf,
                                envd_future **out)
{
    Process__ConnectRequest req = PROCESS__CONNECT_REQUEST__INIT;
    Process__ProcessSelector ps;
    envd_proc_selector(&ps, p);
    req.process = &ps;
    stream_args a = {"/process.Process/Connect", &req.base, 0, 1};
    cf->process_timeout_ms = 0; /* Connect never carries a lifetime */
    return stream_open(c, &a, cf, out);
}

envd_status envd_commands_connect_async(envd_client *c, const envd_proc *p,
                                        const envd_cmd_opts *o, envd_future **out)
{
    if (out)
        *out = NULL;
    envd_status s = envd_proc_begin(c, 1, p, out != NULL);
    if (s != ENVD_OK)
        return s;
    stream_conf cf;
    if ((s = conf_from(c, o, &cf)) != ENVD_OK) {
        conf_clear(&cf);
        return s;
    }
    return connect_conf(c, p, &cf, out);
}

/* ---- the handle ------------------------------------------------------------------ */

uint32_t envd_handle_pid(const envd_handle *h)
{
    return h ? h->pid : 0;
}

envd_future *envd_handle_future(envd_handle *h)
{
    return h ? h->done_f : NULL;
}

envd_status envd_handle_wait(envd_handle *h, int64_t timeout_ms, envd_command_result **res,
                             envd_error **err)
{
    if (res)
        *res = NULL;
    if (err)
        *err = NULL;
    if (!h)
        return envd_usage_error(err, __func__, "handle is NULL");
    envd_status s = envd_future_wait(h->done_f, timeout_ms);
    if (s == ENVD_E_USAGE && err) /* on an engine thread */
        *err = envd_thread_refusal(__func__);
    if (s != ENVD_OK)
        return s; /* or ENVD_E_TIMEOUT: the handle goes on */
    if (res)
        *res = envd_future_take_result(h->done_f, ENVD_FK_COMMAND);
    if (err)
        *err = envd_future_take_error(h->done_f);
    return envd_future_status(h->done_f);
}

void envd_handle_disconnect(envd_handle *h)
{
    if (!h)
        return;
    atomic_store(&h->disconnected, 1);
    envd_op_stop(&h->op);
}

void envd_handle_free(envd_handle *h)
{
    if (!h)
        return;
    envd_handle_disconnect(h);
    handle_unref(h);
}

int envd_handle_kill(envd_handle *h)
{
    int killed = 0;
    if (h)
        envd_commands_kill(h->c, ENVD_PID(h->pid), &killed, NULL);
    return killed;
}

/* The checks of a starter on a handle; clears *out. */
static envd_status handle_begin(envd_handle *h, envd_future **out)
{
    if (!out)
        return envd_start_error(ENVD_E_USAGE, "out is NULL");
    *out = NULL;
    return h ? ENVD_OK : envd_start_error(ENVD_E_USAGE, "handle is NULL");
}

envd_status envd_handle_input_async(envd_handle *h, const void *data, size_t len,
                                    envd_future **out)
{
    envd_status s = handle_begin(h, out);
    if (s != ENVD_OK)
        return s;
    return envd_commands_send_input_async(h->c, ENVD_PID(h->pid),
                                          h->conf.pty ? ENVD_INPUT_PTY : ENVD_INPUT_STDIN, data,
                                          len, out);
}

envd_status envd_handle_close_stdin_async(envd_handle *h, envd_future **out)
{
    envd_status s = handle_begin(h, out);
    if (s != ENVD_OK)
        return s;
    return envd_commands_close_stdin_async(h->c, ENVD_PID(h->pid), out);
}

envd_status envd_handle_resize_async(envd_handle *h, uint32_t cols, uint32_t rows,
                                     envd_future **out)
{
    envd_status s = handle_begin(h, out);
    if (s != ENVD_OK)
        return s;
    return envd_commands_resize_async(h->c, ENVD_PID(h->pid), cols, rows, out);
}

envd_status envd_handle_reconnect_async(envd_handle *h, envd_future **out)
{
    envd_status s = handle_begin(h, out);
    if (s != ENVD_OK)
        return s;
    stream_conf cf;
    s = conf_copy(&h->conf, &cf);
    if (s != ENVD_OK) {
        conf_clear(&cf);
        return s;
    }
    return connect_conf(h->c, ENVD_PID(h->pid), &cf, out);
}
