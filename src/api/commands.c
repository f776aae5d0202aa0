/* Commands: run, start, connect, PTY sessions and their handles. Each
 * handle is one Start or Connect server stream; its futures are the start
 * (completes with the handle at the StartEvent) and the end (completes with
 * the command result). */
#include "api/commands.h"
#include "api/op.h"
#include "process.pb-c.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What a handle needs to read its stream, and to re-attach to the same
 * process later (envd_handle_reconnect). */
typedef struct stream_conf {
    char *user;
    envd_output_cb on_stdout, on_stderr, on_pty;
    void *stdout_ud, *stderr_ud, *pty_ud;
    size_t max_output;
    int64_t request_timeout_ms;
    int64_t idle_timeout_ms;
    int64_t process_timeout_ms; /* Start only */
    int pty;                    /* the process has a terminal */
} stream_conf;

/* An operation (op.h). References: the starter (until the call returns),
 * the transport (until on_done returned), and for start/connect the
 * caller's handle (held by the start future's result until taken, dropped
 * by envd_handle_free). */
struct envd_handle {
    envd_op op;       /* first: the transport's ud is the op */
    envd_client *c;   /* for the handle's calls; the client outlives them */
    atomic_int disconnected; /* no callback runs after disconnect */
    envd_future *start_f;    /* engine thread: NULL once completed */
    envd_future *done_f;     /* the end: the command result */
    int owns_done;           /* start/connect: the handle holds done_f's
                              * caller reference (run: the caller does) */
    const char *what;        /* "start" or "connect", for messages */
    stream_conf conf;
    /* Engine thread (pid is read by others only after start_f completed). */
    uint32_t pid;
    int started;
    int got_end;
    int bad_first; /* event case of a first event that was not start */
    int oom;
    envd_command_result *res;
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
    cf->on_pty = o->on_pty;
    cf->pty_ud = o->pty_ud;
    cf->process_timeout_ms = o->timeout_ms;
    cf->pty = o->pty;
    if (o->user && !(cf->user = strdup(o->user)))
        return ENVD_E_NOMEM;
    return ENVD_OK;
}

static envd_status conf_copy(const stream_conf *from, stream_conf *to)
{
    *to = *from;
    to->user = NULL;
    to->process_timeout_ms = 0;
    if (from->user && !(to->user = strdup(from->user)))
        return ENVD_E_NOMEM;
    return ENVD_OK;
}

static void handle_destroy(envd_op *op)
{
    envd_handle *h = (envd_handle *)op;
    if (h->owns_done)
        envd_future_free(h->done_f); /* completed by now: just the reference */
    envd_command_result_free(h->res);
    conf_clear(&h->conf);
    free(h);
}

static const envd_op_class handle_class = {.destroy = handle_destroy};

static void handle_unref(envd_handle *h)
{
    envd_op_unref(&h->op);
}

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
        char *nd = realloc(b->data, nc);
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
    envd_output_cb cb;
    void *ud;
    envd_obuf *keep;
    const stream_conf *cf = &h->conf;
    switch (field) {
    case OUT_STDOUT: cb = cf->on_stdout, ud = cf->stdout_ud, keep = &h->res->out; break;
    case OUT_STDERR: cb = cf->on_stderr, ud = cf->stderr_ud, keep = &h->res->err; break;
    case OUT_PTY:
        /* The terminal merges stdout and stderr; the result keeps it as
         * stdout. */
        cb = cf->on_pty, ud = cf->pty_ud, keep = &h->res->out;
        break;
    default: return;
    }
    if (!len)
        return;
    if (cb && !atomic_load(&h->disconnected))
        cb(ud, data, len);
    if (obuf_append(keep, data, len, cf->max_output, &h->res->truncated))
        h->oom = 1;
}

static int read_len(const uint8_t **p, const uint8_t *end, size_t *out)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 64 && *p < end; shift += 7) {
        uint8_t b = *(*p)++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *out = (size_t)v;
            return v == (uint64_t)(end - *p); /* the field fills the rest */
        }
    }
    return 0;
}

/* The hot message, read in place without a copy: exactly
 * StartResponse{event: ProcessEvent{data: DataEvent{stdout|stderr|pty}}}.
 * Anything else (other events, extra fields) takes the full decoder. */
static int peek_output(const uint8_t *msg, size_t len, int *field, const uint8_t **data, size_t *n)
{
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

static int on_event(void *ud, const uint8_t *msg, size_t len)
{
    envd_handle *h = ud;
    int field;
    const uint8_t *data;
    size_t n;
    if (h->started && peek_output(msg, len, &field, &data, &n)) {
        deliver_output(h, field, data, n);
        return h->oom ? -1 : 0;
    }
    /* StartResponse and ConnectResponse share one layout: event = 1. */
    Process__StartResponse *r = process__start_response__unpack(NULL, len, msg);
    if (!r)
        return -1; /* on_done reports the protocol error */
    Process__ProcessEvent *ev = r->event;
    int rc = 0;
    if (!ev) {
        /* the Go client skips messages without an event */
    } else if (!h->started) {
        if (ev->event_case != PROCESS__PROCESS_EVENT__EVENT_START || !ev->start) {
            h->bad_first = ev->event_case ? (int)ev->event_case : -1;
            rc = -1; /* on_done reports it */
        } else {
            h->pid = ev->start->pid;
            h->started = 1;
            envd_future *sf = h->start_f;
            h->start_f = NULL;
            if (sf) /* run has no start future */
                envd_future_complete(sf, h, handle_result_free, NULL);
        }
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
        h->got_end = 1;
        h->res->exit_code = ev->end->exit_code;
        if (ev->end->_error_case == PROCESS__PROCESS_EVENT__END_EVENT___ERROR_ERROR &&
            ev->end->error && !(h->res->error = strdup(ev->end->error))) {
            h->oom = 1;
            rc = -1;
        }
    }
    /* start again and keepalive: nothing to do (the transport fed the idle
     * clock on arrival). */
    process__start_response__free_unpacked(r, NULL);
    return rc;
}

/* "command exited with code N[: error][\nstderr: ...]", as the Go client. */
static envd_error *exit_error(const envd_command_result *r, envd_transport_kind tk)
{
    const char *em = r->error ? r->error : "";
    const char *se = r->err.data ? r->err.data : "";
    envd_error *e =
        envd_error_new(ENVD_E_COMMAND_EXIT, tk, 0, "command exited with code %d%s%s%s%s",
                       r->exit_code, *em ? ": " : "", em, *se ? "\nstderr: " : "", se);
    e->exit_code = r->exit_code;
    return e;
}

static envd_error *fail_error(envd_handle *h, envd_error *err, envd_transport_kind tk)
{
    if (h->oom) {
        envd_error_free(err);
        return envd_error_new(ENVD_E_NOMEM, ENVD_TRANSPORT_NONE, 0,
                              "out of memory keeping the output of process %u", h->pid);
    }
    if (!h->started && h->bad_first) {
        envd_error_free(err);
        return envd_error_new(ENVD_E_PROTOCOL, tk, 0, "expected start event, got event %d",
                              h->bad_first);
    }
    if (!h->started) {
        if (!err)
            return envd_error_new(ENVD_E_PROTOCOL, tk, 0, "stream closed without %s event",
                                  h->what);
        return envd_error_wrap(err, strcmp(h->what, "start") == 0 ? "failed to start command"
                                                                  : "failed to connect to process");
    }
    if (err) {
        if (atomic_load(&h->disconnected) && err->code == ENVD_CANCELED) {
            envd_error_free(err);
            return envd_error_new(ENVD_CANCELED, tk, 0, "disconnected from process %u", h->pid);
        }
        if (err->code == ENVD_DEADLINE_EXCEEDED && h->conf.process_timeout_ms > 0) {
            /* envd's RPC deadline is the process lifetime: it ran out. */
            char pre[96];
            snprintf(pre, sizeof(pre), "process timeout of %lld ms reached",
                     (long long)h->conf.process_timeout_ms);
            return envd_error_wrap(err, pre);
        }
        return envd_error_wrap(err, "stream error");
    }
    if (!h->got_end)
        return envd_error_new(ENVD_E_PROTOCOL, tk, 0, "command ended without an end event");
    return NULL;
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
        envd_command_result *r = h->res;
        h->res = NULL;
        envd_future_complete(h->done_f, r, result_free_fn,
                             r->exit_code != 0 ? exit_error(r, tk) : NULL);
    }
    if (!h->started && h->owns_done) /* no handle reached the caller */
        handle_unref(h);
    handle_unref(h);
}

/* ---- opening a stream ------------------------------------------------------ */

typedef struct stream_args {
    const char *method;
    const char *what;
    const ProtobufCMessage *msg;
    int want_handle; /* start/connect: a start future and a handle; run: no */
} stream_args;

/* Takes cf (moved into the handle, cleared on failure too). *out gets the
 * start future (start/connect) or the done future (run). */
static envd_status stream_open(envd_client *c, const stream_args *a, stream_conf *cf,
                               envd_future **out)
{
    envd_handle *h = calloc(1, sizeof(*h));
    if (!h) {
        conf_clear(cf);
        return ENVD_E_NOMEM;
    }
    envd_op_init(&h->op, &handle_class, c->rt);
    h->owns_done = a->want_handle;
    h->c = c;
    h->what = a->what;
    h->conf = *cf;
    memset(cf, 0, sizeof(*cf));
    h->res = calloc(1, sizeof(*h->res));
    h->done_f = envd_future_create(ENVD_FK_COMMAND);
    envd_future *start_f = a->want_handle ? envd_future_create(ENVD_FK_HANDLE) : NULL;
    h->start_f = start_f;
    if (a->want_handle)
        envd_op_ref(&h->op); /* the caller's handle */
    envd_status s = ENVD_E_NOMEM;
    if (h->res && h->done_f && (!a->want_handle || start_f)) {
        envd_call call = {.method = a->method,
                          .kind = ENVD_RPC_SERVER_STREAM,
                          .msg = a->msg,
                          .user = h->conf.user,
                          .timeout_ms = h->conf.request_timeout_ms,
                          .idle_timeout_ms = h->conf.idle_timeout_ms,
                          .process_timeout_ms = h->conf.process_timeout_ms};
        s = envd_op_start_rpc(&h->op, c, &call, on_event, on_stream_done);
    }
    if (s != ENVD_OK) {
        h->owns_done = 0; /* discarded here */
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
    char *shell_args[3];
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
        m->envs = calloc(n_opt + n_extra, sizeof(*m->envs));
        m->env_ptrs = calloc(n_opt + n_extra, sizeof(*m->env_ptrs));
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
        stream_args a = {"/process.Process/Start", "start", &m->req.base, want_handle};
        s = stream_open(c, &a, &cf, out);
    }
    conf_clear(&cf);
    free_start(m);
    return s;
}

/* /bin/bash -l -c cmd, as the Go client. */
static envd_status launch_shell(envd_client *c, const char *cmd, const envd_cmd_opts *o,
                                int want_handle, envd_future **out)
{
    if (out)
        *out = NULL;
    if (!c || !cmd || !out)
        return ENVD_E_USAGE;
    start_msg m;
    char *args[3] = {"-l", "-c", (char *)cmd};
    envd_status s = fill_start(&m, "/bin/bash", args, 3, o, NULL);
    if (s != ENVD_OK)
        return s;
    return launch_msg(c, &m, o, want_handle, out);
}

static envd_status launch_argv(envd_client *c, const char *const *argv, const envd_cmd_opts *o,
                               int want_handle, envd_future **out)
{
    if (out)
        *out = NULL;
    if (!c || !argv || !argv[0] || !*argv[0] || !out)
        return ENVD_E_USAGE;
    size_t n = 0;
    while (argv[n + 1])
        n++;
    start_msg m;
    envd_status s = fill_start(&m, argv[0], (char **)(argv + 1), n, o, NULL);
    if (s != ENVD_OK)
        return s;
    return launch_msg(c, &m, o, want_handle, out);
}

envd_status envd_commands_run_async(envd_client *c, const char *cmd, const envd_cmd_opts *o,
                                    envd_future **out)
{
    return launch_shell(c, cmd, o, 0, out);
}

envd_status envd_commands_run_argv_async(envd_client *c, const char *const *argv,
                                         const envd_cmd_opts *o, envd_future **out)
{
    return launch_argv(c, argv, o, 0, out);
}

const envd_command_result *envd_future_command_result(const envd_future *f)
{
    return envd_future_result(f, ENVD_FK_COMMAND);
}

static envd_status sync_run(envd_status s, envd_future **fp, envd_command_result **res,
                            envd_error **err)
{
    if (s != ENVD_OK)
        return s;
    return envd_sync_finish(*fp, (void **)res, err);
}

envd_status envd_commands_run(envd_client *c, const char *cmd, const envd_cmd_opts *o,
                              envd_command_result **res, envd_error **err)
{
    if (res)
        *res = NULL;
    if (err)
        *err = NULL;
    envd_future *f = NULL;
    return sync_run(envd_commands_run_async(c, cmd, o, &f), &f, res, err);
}

envd_status envd_commands_run_argv(envd_client *c, const char *const *argv, const envd_cmd_opts *o,
                                   envd_command_result **res, envd_error **err)
{
    if (res)
        *res = NULL;
    if (err)
        *err = NULL;
    envd_future *f = NULL;
    return sync_run(envd_commands_run_argv_async(c, argv, o, &f), &f, res, err);
}

envd_status envd_commands_start_async(envd_client *c, const char *cmd, const envd_cmd_opts *o,
                                      envd_future **out)
{
    return launch_shell(c, cmd, o, 1, out);
}

envd_status envd_commands_start_argv_async(envd_client *c, const char *const *argv,
                                           const envd_cmd_opts *o, envd_future **out)
{
    return launch_argv(c, argv, o, 1, out);
}

envd_handle *envd_future_take_handle(envd_future *f)
{
    return envd_future_take_result(f, ENVD_FK_HANDLE);
}

static envd_status sync_handle(envd_status s, envd_future **fp, envd_handle **out, envd_error **err)
{
    if (s != ENVD_OK)
        return s;
    return envd_sync_finish(*fp, (void **)out, err);
}

#define SYNC_PROLOGUE(out, err)                                                                    \
    do {                                                                                           \
        if (err)                                                                                   \
            *(err) = NULL;                                                                         \
        if (!(out))                                                                                \
            return ENVD_E_USAGE;                                                                   \
        *(out) = NULL;                                                                             \
    } while (0)

envd_status envd_commands_start(envd_client *c, const char *cmd, const envd_cmd_opts *o,
                                envd_handle **out, envd_error **err)
{
    SYNC_PROLOGUE(out, err);
    envd_future *f = NULL;
    return sync_handle(envd_commands_start_async(c, cmd, o, &f), &f, out, err);
}

envd_status envd_commands_start_argv(envd_client *c, const char *const *argv,
                                     const envd_cmd_opts *o, envd_handle **out, envd_error **err)
{
    SYNC_PROLOGUE(out, err);
    envd_future *f = NULL;
    return sync_handle(envd_commands_start_argv_async(c, argv, o, &f), &f, out, err);
}

/* ---- PTY sessions ------------------------------------------------------------ */

envd_status envd_pty_create_async(envd_client *c, uint32_t cols, uint32_t rows,
                                  const envd_cmd_opts *o, envd_future **out)
{
    if (out)
        *out = NULL;
    if (!c || !out)
        return ENVD_E_USAGE;
    if (cols == 0 || rows == 0)
        return ENVD_INVALID_ARGUMENT;
    /* The E2B SDKs' session: an interactive login shell in a UTF-8
     * xterm-256color terminal; the options may override the variables. */
    static const char *const defaults[] = {"TERM",   "xterm-256color", "LANG", "C.UTF-8",
                                           "LC_ALL", "C.UTF-8",        NULL};
    envd_cmd_opts po;
    if (o)
        po = *o; /* shallow: only read while the call runs */
    else {
        memset(&po, 0, sizeof(po));
        po.max_output = ENVD_DEFAULT_MAX_OUTPUT;
        po.request_timeout_ms = po.idle_timeout_ms = -1;
    }
    po.pty = 1;
    po.pty_cols = cols;
    po.pty_rows = rows;
    char *args[2] = {"-i", "-l"};
    start_msg m;
    envd_status s = fill_start(&m, "/bin/bash", args, 2, &po, defaults);
    if (s != ENVD_OK)
        return s;
    return launch_msg(c, &m, &po, 1, out);
}

envd_status envd_pty_create(envd_client *c, uint32_t cols, uint32_t rows, const envd_cmd_opts *o,
                            envd_handle **out, envd_error **err)
{
    SYNC_PROLOGUE(out, err);
    envd_future *f = NULL;
    return sync_handle(envd_pty_create_async(c, cols, rows, o, &f), &f, out, err);
}

/* ---- Connect ------------------------------------------------------------------ */

static envd_status connect_conf(envd_client *c, envd_proc_sel sel, stream_conf *cf,
                                envd_future **out)
{
    Process__ConnectRequest req = PROCESS__CONNECT_REQUEST__INIT;
    Process__ProcessSelector ps = PROCESS__PROCESS_SELECTOR__INIT;
    if (sel.tag) {
        ps.selector_case = PROCESS__PROCESS_SELECTOR__SELECTOR_TAG;
        ps.tag = (char *)sel.tag;
    } else {
        ps.selector_case = PROCESS__PROCESS_SELECTOR__SELECTOR_PID;
        ps.pid = sel.pid;
    }
    req.process = &ps;
    stream_args a = {"/process.Process/Connect", "connect", &req.base, 1};
    cf->process_timeout_ms = 0; /* Connect never carries a lifetime */
    return stream_open(c, &a, cf, out);
}

static envd_status connect_opts(envd_client *c, envd_proc_sel sel, const envd_cmd_opts *o, int pty,
                                envd_future **out)
{
    if (out)
        *out = NULL;
    if (!c || !out)
        return ENVD_E_USAGE;
    if (sel.tag && !*sel.tag)
        return ENVD_INVALID_ARGUMENT;
    stream_conf cf;
    envd_status s = conf_from(c, o, &cf);
    if (s != ENVD_OK) {
        conf_clear(&cf);
        return s;
    }
    cf.pty |= pty;
    return connect_conf(c, sel, &cf, out);
}

envd_status envd_commands_connect_async(envd_client *c, uint32_t pid, const envd_cmd_opts *o,
                                        envd_future **out)
{
    return connect_opts(c, (envd_proc_sel){pid, NULL}, o, 0, out);
}

envd_status envd_commands_connect_tag_async(envd_client *c, const char *tag, const envd_cmd_opts *o,
                                            envd_future **out)
{
    if (!tag)
        return out ? (*out = NULL, ENVD_E_USAGE) : ENVD_E_USAGE;
    return connect_opts(c, (envd_proc_sel){0, tag}, o, 0, out);
}

envd_status envd_pty_connect_async(envd_client *c, uint32_t pid, const envd_cmd_opts *o,
                                   envd_future **out)
{
    return connect_opts(c, (envd_proc_sel){pid, NULL}, o, 1, out);
}

envd_status envd_commands_connect(envd_client *c, uint32_t pid, const envd_cmd_opts *o,
                                  envd_handle **out, envd_error **err)
{
    SYNC_PROLOGUE(out, err);
    envd_future *f = NULL;
    return sync_handle(envd_commands_connect_async(c, pid, o, &f), &f, out, err);
}

envd_status envd_commands_connect_tag(envd_client *c, const char *tag, const envd_cmd_opts *o,
                                      envd_handle **out, envd_error **err)
{
    SYNC_PROLOGUE(out, err);
    envd_future *f = NULL;
    return sync_handle(envd_commands_connect_tag_async(c, tag, o, &f), &f, out, err);
}

envd_status envd_pty_connect(envd_client *c, uint32_t pid, const envd_cmd_opts *o,
                             envd_handle **out, envd_error **err)
{
    SYNC_PROLOGUE(out, err);
    envd_future *f = NULL;
    return sync_handle(envd_pty_connect_async(c, pid, o, &f), &f, out, err);
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
        return ENVD_E_USAGE;
    if (envd_future_wait(h->done_f, timeout_ms) != ENVD_OK)
        return ENVD_E_TIMEOUT;
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
        envd_commands_kill(h->c, h->pid, &killed, NULL);
    return killed;
}

envd_status envd_handle_signal(envd_handle *h, envd_signal signal, int *sent, envd_error **err)
{
    if (err)
        *err = NULL;
    if (sent)
        *sent = 0;
    if (!h)
        return ENVD_E_USAGE;
    return envd_commands_signal(h->c, h->pid, signal, sent, err);
}

static envd_status handle_call(envd_status s, envd_future **fp, envd_error **err)
{
    return s != ENVD_OK ? s : envd_sync_finish(*fp, NULL, err);
}

envd_status envd_handle_send_input(envd_handle *h, const void *data, size_t len, envd_error **err)
{
    if (err)
        *err = NULL;
    if (!h)
        return ENVD_E_USAGE;
    envd_future *f = NULL;
    return handle_call(
        envd_proc_input_async(h->c, (envd_proc_sel){h->pid, NULL}, h->conf.pty, data, len, &f), &f,
        err);
}

envd_status envd_handle_close_stdin(envd_handle *h, envd_error **err)
{
    if (err)
        *err = NULL;
    if (!h)
        return ENVD_E_USAGE;
    envd_future *f = NULL;
    return handle_call(envd_proc_close_stdin_async(h->c, (envd_proc_sel){h->pid, NULL}, &f), &f,
                       err);
}

envd_status envd_handle_resize(envd_handle *h, uint32_t cols, uint32_t rows, envd_error **err)
{
    if (err)
        *err = NULL;
    if (!h)
        return ENVD_E_USAGE;
    envd_future *f = NULL;
    return handle_call(envd_proc_resize_async(h->c, (envd_proc_sel){h->pid, NULL}, cols, rows, &f),
                       &f, err);
}

envd_status envd_handle_reconnect_async(envd_handle *h, envd_future **out)
{
    if (out)
        *out = NULL;
    if (!h || !out)
        return ENVD_E_USAGE;
    stream_conf cf;
    envd_status s = conf_copy(&h->conf, &cf);
    if (s != ENVD_OK) {
        conf_clear(&cf);
        return s;
    }
    return connect_conf(h->c, (envd_proc_sel){h->pid, NULL}, &cf, out);
}

envd_status envd_handle_reconnect(envd_handle *h, envd_handle **out, envd_error **err)
{
    SYNC_PROLOGUE(out, err);
    envd_future *f = NULL;
    return sync_handle(envd_handle_reconnect_async(h, &f), &f, out, err);
}
