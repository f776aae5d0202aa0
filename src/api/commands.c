/* Commands: run, start, connect and their handles (one Start/Connect stream
 * each), plus the unary process calls (list, kill, send_stdin). */
#include "api/commands.h"
#include "process.pb-c.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One Start or Connect stream. References: the transport (until on_done
 * finished), the caller's handle (envd_handle_free), the cancel hooks of the
 * two futures while they run, and the starting thread. */
struct envd_handle {
    atomic_int refs;
    envd_client *c;
    envd_rpc_transport *t;
    _Atomic(envd_rpc *) rpc; /* set once start() returned */
    envd_future *start_f;    /* completes with the handle at the first event */
    envd_future *done_f;     /* completes with the command result; for
                              * start/connect the handle holds its caller's
                              * reference, for run the caller does */
    int has_user_ref;        /* start/connect: the caller's handle reference */
    const char *what;        /* "start" or "connect", for messages */
    envd_output_cb on_stdout, on_stderr;
    void *stdout_ud, *stderr_ud;
    size_t max_output;
    atomic_int disconnected;
    uint32_t pid;
    int started;
    int got_end;
    int bad_first; /* event case of a first event that was not start */
    envd_command_result *res;
};

static void handle_unref(envd_handle *h)
{
    if (atomic_fetch_sub(&h->refs, 1) != 1)
        return;
    envd_rpc *rpc = atomic_load(&h->rpc);
    if (rpc)
        h->t->ops->release(rpc);
    envd_command_result_free(h->res);
    free(h);
}

static void hook_ref(void *p)
{
    atomic_fetch_add(&((envd_handle *)p)->refs, 1);
}
static void hook_unref(void *p)
{
    handle_unref(p);
}
static void hook_cancel(void *p)
{
    envd_handle *h = p;
    envd_rpc *rpc = atomic_load(&h->rpc);
    if (rpc)
        h->t->ops->cancel(rpc);
}

static void result_free_fn(void *p)
{
    envd_command_result_free(p);
}

/* The start future owns the caller's reference until it is taken. */
static void handle_result_free(void *p)
{
    envd_handle_free(p);
}

static int obuf_append(envd_obuf *b, const uint8_t *d, size_t n, size_t cap, int *truncated)
{
    if (b->len + n > cap) {
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

static int on_event(void *ud, const uint8_t *msg, size_t len)
{
    envd_handle *h = ud;
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
            h->bad_first = (int)ev->event_case;
            rc = -1; /* on_done reports it */
        } else {
            h->pid = ev->start->pid;
            h->started = 1;
            if (h->start_f) /* run has no start future */
                envd_future_complete(h->start_f, h, handle_result_free, NULL);
            h->start_f = NULL;
        }
    } else if (ev->event_case == PROCESS__PROCESS_EVENT__EVENT_DATA && ev->data) {
        Process__ProcessEvent__DataEvent *d = ev->data;
        int off = atomic_load(&h->disconnected);
        if (d->output_case == PROCESS__PROCESS_EVENT__DATA_EVENT__OUTPUT_STDOUT) {
            if (h->on_stdout && !off && d->stdout.len)
                h->on_stdout(h->stdout_ud, d->stdout.data, d->stdout.len);
            if (obuf_append(&h->res->out, d->stdout.data, d->stdout.len, h->max_output,
                            &h->res->truncated))
                rc = -1;
        } else if (d->output_case == PROCESS__PROCESS_EVENT__DATA_EVENT__OUTPUT_STDERR) {
            if (h->on_stderr && !off && d->stderr.len)
                h->on_stderr(h->stderr_ud, d->stderr.data, d->stderr.len);
            if (obuf_append(&h->res->err, d->stderr.data, d->stderr.len, h->max_output,
                            &h->res->truncated))
                rc = -1;
        }
    } else if (ev->event_case == PROCESS__PROCESS_EVENT__EVENT_END && ev->end) {
        h->got_end = 1;
        h->res->exit_code = ev->end->exit_code;
        if (ev->end->_error_case == PROCESS__PROCESS_EVENT__END_EVENT___ERROR_ERROR &&
            ev->end->error && !(h->res->error = strdup(ev->end->error)))
            rc = -1;
    }
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

static void on_stream_done(void *ud, envd_error *err)
{
    envd_handle *h = ud;
    envd_transport_kind tk = h->t->ops->kind;
    /* Free the slot first: once a future completes its caller may free the
     * client. */
    envd_rt_release(h->c->rt);
    if (!h->started && h->bad_first) {
        envd_error_free(err);
        err = envd_error_new(ENVD_E_PROTOCOL, tk, 0, "expected start event, got event %d",
                             h->bad_first);
        if (h->start_f)
            envd_future_complete(h->start_f, NULL, NULL, envd_error_dup(err));
        h->start_f = NULL;
        envd_future_complete(h->done_f, NULL, NULL, err);
    } else if (!h->started) {
        if (!err)
            err = envd_error_new(ENVD_E_PROTOCOL, tk, 0, "stream closed without %s event", h->what);
        else
            envd_error_wrap(err, strcmp(h->what, "start") == 0 ? "failed to start command"
                                                               : "failed to connect to process");
        if (h->start_f)
            envd_future_complete(h->start_f, NULL, NULL, envd_error_dup(err));
        h->start_f = NULL;
        envd_future_complete(h->done_f, NULL, NULL, err);
    } else if (err) {
        if (atomic_load(&h->disconnected) && err->code == ENVD_CANCELED) {
            envd_error_free(err);
            err = envd_error_new(ENVD_CANCELED, tk, 0, "disconnected from process %u", h->pid);
        } else {
            envd_error_wrap(err, "stream error");
        }
        envd_future_complete(h->done_f, NULL, NULL, err);
    } else if (!h->got_end) {
        envd_future_complete(
            h->done_f, NULL, NULL,
            envd_error_new(ENVD_E_PROTOCOL, tk, 0, "command ended without an end event"));
    } else {
        envd_command_result *r = h->res;
        h->res = NULL;
        envd_future_complete(h->done_f, r, result_free_fn,
                             r->exit_code != 0 ? exit_error(r, tk) : NULL);
    }
    int drop_user = !h->started && h->has_user_ref;
    if (drop_user) { /* no handle reached the caller */
        envd_future_free(h->done_f);
        handle_unref(h);
    }
    handle_unref(h);
}

typedef struct stream_args {
    const char *method;
    const char *what;
    const ProtobufCMessage *msg;
    const envd_cmd_opts *opts;
    int want_start_future; /* start/connect: yes; run: no */
} stream_args;

static envd_status stream_start(envd_client *c, const stream_args *a, envd_handle **out_h)
{
    if (!c || !out_h)
        return ENVD_E_USAGE;
    const envd_cmd_opts *o = a->opts;
    envd_handle *h = calloc(1, sizeof(*h));
    if (!h)
        return ENVD_E_NOMEM;
    /* the transport + this function (+ the caller's handle) */
    atomic_init(&h->refs, a->want_start_future ? 3 : 2);
    h->has_user_ref = a->want_start_future;
    h->c = c;
    h->what = a->what;
    h->max_output = o ? o->max_output : ENVD_DEFAULT_MAX_OUTPUT;
    if (o) {
        h->on_stdout = o->on_stdout;
        h->stdout_ud = o->stdout_ud;
        h->on_stderr = o->on_stderr;
        h->stderr_ud = o->stderr_ud;
    }
    h->res = calloc(1, sizeof(*h->res));
    h->done_f = envd_future_create(ENVD_FK_COMMAND);
    if (a->want_start_future)
        h->start_f = envd_future_create(ENVD_FK_HANDLE);
    size_t len = protobuf_c_message_get_packed_size(a->msg);
    uint8_t *body = malloc(len ? len : 1);
    envd_status s = ENVD_E_NOMEM;
    if (!h->res || !h->done_f || (a->want_start_future && !h->start_f) || !body)
        goto fail;
    protobuf_c_message_pack(a->msg, body);
    if ((s = envd_rt_acquire(c->rt)) != ENVD_OK)
        goto fail;
    h->t = envd_client_rpc_transport(c);
    {
        envd_kv hdrs[c->n_headers + 4];
        char *owned = NULL;
        size_t nh = envd_call_headers(c, o ? o->user : NULL, hdrs, &owned);
        hdrs[nh++] = (envd_kv){"keepalive-ping-interval", c->keepalive};
        char tbuf[24];
        if (o && o->timeout_ms > 0 && strcmp(a->what, "start") == 0) {
            /* The process timeout: envd kills the process when it fires. The
             * only place this header is ever sent. */
            snprintf(tbuf, sizeof(tbuf), "%lld", (long long)o->timeout_ms);
            hdrs[nh++] = (envd_kv){"connect-timeout-ms", tbuf};
        }
        envd_rpc_request req = {
            .ep = &c->ep,
            .method = a->method,
            .kind = ENVD_RPC_SERVER_STREAM,
            .headers = hdrs,
            .n_headers = nh,
            .body = body,
            .body_len = len,
            .timeout_ms = c->cfg->request_timeout_ms,
            .idle_timeout_ms = c->cfg->idle_timeout_ms,
        };
        envd_rpc_callbacks cb = {on_event, on_stream_done, h};
        envd_rpc *rpc = NULL;
        s = h->t->ops->start(h->t, &req, &cb, &rpc);
        free(owned);
        free(body);
        body = NULL;
        if (s != ENVD_OK) {
            envd_rt_release(c->rt);
            goto fail;
        }
        atomic_store(&h->rpc, rpc);
    }
    if (atomic_load(&h->disconnected)) /* disconnect raced with start */
        h->t->ops->cancel(atomic_load(&h->rpc));
    *out_h = h;
    return ENVD_OK;
fail:
    free(body);
    if (h->done_f) {
        envd_future_complete(h->done_f, NULL, NULL, NULL);
        envd_future_free(h->done_f);
    }
    if (h->start_f) {
        envd_future_complete(h->start_f, NULL, NULL, NULL);
        envd_future_free(h->start_f);
    }
    envd_command_result_free(h->res);
    free(h);
    return s;
}

/* The StartRequest the Go client sends: /bin/bash -l -c cmd, stdin always
 * encoded (false unless asked), envs, cwd; plus our tag. */
typedef struct start_msg {
    Process__StartRequest req;
    Process__ProcessConfig cfg;
    char *args[3];
    Process__ProcessConfig__EnvsEntry *envs;
    Process__ProcessConfig__EnvsEntry **env_ptrs;
} start_msg;

static envd_status fill_start(start_msg *m, const char *cmd, const envd_cmd_opts *o)
{
    memset(m, 0, sizeof(*m));
    process__start_request__init(&m->req);
    process__process_config__init(&m->cfg);
    m->args[0] = "-l";
    m->args[1] = "-c";
    m->args[2] = (char *)cmd;
    m->cfg.cmd = "/bin/bash";
    m->cfg.args = m->args;
    m->cfg.n_args = 3;
    if (o && o->n_envs) {
        m->envs = calloc(o->n_envs, sizeof(*m->envs));
        m->env_ptrs = calloc(o->n_envs, sizeof(*m->env_ptrs));
        if (!m->envs || !m->env_ptrs) {
            free(m->envs);
            free(m->env_ptrs);
            return ENVD_E_NOMEM;
        }
        for (size_t i = 0; i < o->n_envs; i++) {
            process__process_config__envs_entry__init(&m->envs[i]);
            m->envs[i].key = o->env_names[i];
            m->envs[i].value = o->env_values[i];
            m->env_ptrs[i] = &m->envs[i];
        }
        m->cfg.envs = m->env_ptrs;
        m->cfg.n_envs = o->n_envs;
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
    return ENVD_OK;
}

static void free_start(start_msg *m)
{
    free(m->envs);
    free(m->env_ptrs);
}

static envd_status launch(envd_client *c, const char *cmd, const envd_cmd_opts *o, int want_start,
                          envd_handle **h)
{
    if (!c || !cmd)
        return ENVD_E_USAGE;
    start_msg m;
    envd_status s = fill_start(&m, cmd, o);
    if (s != ENVD_OK)
        return s;
    stream_args a = {"/process.Process/Start", "start", &m.req.base, o, want_start};
    s = stream_start(c, &a, h);
    free_start(&m);
    return s;
}

/* Publishes the futures' cancel hooks and drops the starter's reference. */
static void publish(envd_handle *h, envd_future *start_f, envd_future *done_f)
{
    envd_cancel_hook hook = {hook_cancel, hook_ref, hook_unref, h};
    if (start_f)
        envd_future_set_cancel(start_f, &hook);
    envd_future_set_cancel(done_f, &hook);
}

envd_status envd_commands_run_async(envd_client *c, const char *cmd, const envd_cmd_opts *o,
                                    envd_future **out)
{
    if (!out)
        return ENVD_E_USAGE;
    *out = NULL;
    envd_handle *h;
    envd_status s = launch(c, cmd, o, 0, &h);
    if (s != ENVD_OK)
        return s;
    envd_future *f = h->done_f;
    publish(h, NULL, f);
    *out = f;
    handle_unref(h);
    return ENVD_OK;
}

const envd_command_result *envd_future_command_result(const envd_future *f)
{
    return envd_future_result(f, ENVD_FK_COMMAND);
}

envd_status envd_commands_run(envd_client *c, const char *cmd, const envd_cmd_opts *o,
                              envd_command_result **res, envd_error **err)
{
    if (res)
        *res = NULL;
    if (err)
        *err = NULL;
    envd_future *f;
    envd_status s = envd_commands_run_async(c, cmd, o, &f);
    if (s != ENVD_OK)
        return s;
    return envd_sync_finish(f, (void **)res, err);
}

/* start/connect: the caller gets the start future, whose result (the
 * handle) carries the caller's reference to the handle. */
static envd_status start_like(envd_handle *h, envd_future **out)
{
    envd_future *sf = h->start_f;
    publish(h, sf, h->done_f);
    *out = sf;
    handle_unref(h);
    return ENVD_OK;
}

envd_status envd_commands_start_async(envd_client *c, const char *cmd, const envd_cmd_opts *o,
                                      envd_future **out)
{
    if (!out)
        return ENVD_E_USAGE;
    *out = NULL;
    envd_handle *h;
    envd_status s = launch(c, cmd, o, 1, &h);
    if (s != ENVD_OK)
        return s;
    return start_like(h, out);
}

envd_status envd_commands_connect_async(envd_client *c, uint32_t pid, const envd_cmd_opts *o,
                                        envd_future **out)
{
    if (!c || !out)
        return ENVD_E_USAGE;
    *out = NULL;
    Process__ConnectRequest req = PROCESS__CONNECT_REQUEST__INIT;
    Process__ProcessSelector sel = PROCESS__PROCESS_SELECTOR__INIT;
    sel.selector_case = PROCESS__PROCESS_SELECTOR__SELECTOR_PID;
    sel.pid = pid;
    req.process = &sel;
    stream_args a = {"/process.Process/Connect", "connect", &req.base, o, 1};
    envd_handle *h;
    envd_status s = stream_start(c, &a, &h);
    if (s != ENVD_OK)
        return s;
    return start_like(h, out);
}

envd_handle *envd_future_take_handle(envd_future *f)
{
    return envd_future_take_result(f, ENVD_FK_HANDLE);
}

static envd_status sync_handle(envd_status s, envd_future *f, envd_handle **out, envd_error **err)
{
    if (s != ENVD_OK)
        return s;
    return envd_sync_finish(f, (void **)out, err);
}

envd_status envd_commands_start(envd_client *c, const char *cmd, const envd_cmd_opts *o,
                                envd_handle **out, envd_error **err)
{
    if (err)
        *err = NULL;
    if (!out)
        return ENVD_E_USAGE;
    *out = NULL;
    envd_future *f = NULL;
    envd_status s = envd_commands_start_async(c, cmd, o, &f);
    return sync_handle(s, f, out, err);
}

envd_status envd_commands_connect(envd_client *c, uint32_t pid, const envd_cmd_opts *o,
                                  envd_handle **out, envd_error **err)
{
    if (err)
        *err = NULL;
    if (!out)
        return ENVD_E_USAGE;
    *out = NULL;
    envd_future *f = NULL;
    envd_status s = envd_commands_connect_async(c, pid, o, &f);
    return sync_handle(s, f, out, err);
}

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
    envd_rpc *rpc = atomic_load(&h->rpc);
    if (rpc)
        h->t->ops->cancel(rpc);
}

void envd_handle_free(envd_handle *h)
{
    if (!h)
        return;
    envd_handle_disconnect(h);
    envd_future_free(h->done_f);
    handle_unref(h);
}

int envd_handle_kill(envd_handle *h)
{
    int killed = 0;
    if (h)
        envd_commands_kill(h->c, h->pid, &killed, NULL);
    return killed;
}

/* ---- unary process calls -------------------------------------------------- */

static void selector_pid(Process__ProcessSelector *sel, uint32_t pid)
{
    process__process_selector__init(sel);
    sel->selector_case = PROCESS__PROCESS_SELECTOR__SELECTOR_PID;
    sel->pid = pid;
}

static int *new_bool(int v)
{
    int *b = malloc(sizeof(int));
    if (b)
        *b = v;
    return b;
}

static void kill_finish(void *ctx, const uint8_t *resp, size_t len, envd_error *err, void **result,
                        envd_free_fn *free_fn, envd_error **out_err)
{
    (void)ctx, (void)resp, (void)len;
    if (err && err->code != ENVD_NOT_FOUND) {
        *out_err = envd_error_wrap(err, "failed to kill process");
        return;
    }
    *result = new_bool(err == NULL); /* not_found: already gone */
    *free_fn = free;
    envd_error_free(err);
}

envd_status envd_commands_kill_async(envd_client *c, uint32_t pid, envd_future **out);
envd_status envd_commands_kill_async(envd_client *c, uint32_t pid, envd_future **out)
{
    Process__SendSignalRequest req = PROCESS__SEND_SIGNAL_REQUEST__INIT;
    Process__ProcessSelector sel;
    selector_pid(&sel, pid);
    req.process = &sel;
    req.signal = PROCESS__SIGNAL__SIGNAL_SIGKILL;
    envd_unary_spec spec = {
        "/process.Process/SendSignal", ENVD_FK_BOOL, kill_finish, NULL, NULL, NULL};
    return envd_unary_start(c, &spec, &req.base, out);
}

envd_status envd_commands_kill(envd_client *c, uint32_t pid, int *killed, envd_error **err)
{
    if (err)
        *err = NULL;
    if (killed)
        *killed = 0;
    envd_future *f;
    envd_status s = envd_commands_kill_async(c, pid, &f);
    if (s != ENVD_OK)
        return s;
    int *b = NULL;
    s = envd_sync_finish(f, (void **)&b, err);
    if (b && killed)
        *killed = *b;
    free(b);
    return s;
}

static void empty_finish_stdin(void *ctx, const uint8_t *resp, size_t len, envd_error *err,
                               void **result, envd_free_fn *free_fn, envd_error **out_err)
{
    (void)ctx, (void)resp, (void)len, (void)result, (void)free_fn;
    if (err)
        *out_err = envd_error_wrap(err, "failed to send stdin");
}

envd_status envd_commands_send_stdin(envd_client *c, uint32_t pid, const void *data, size_t len,
                                     envd_error **err)
{
    if (err)
        *err = NULL;
    if (!data && len)
        return ENVD_E_USAGE;
    Process__SendInputRequest req = PROCESS__SEND_INPUT_REQUEST__INIT;
    Process__ProcessSelector sel;
    Process__ProcessInput in = PROCESS__PROCESS_INPUT__INIT;
    selector_pid(&sel, pid);
    in.input_case = PROCESS__PROCESS_INPUT__INPUT_STDIN;
    in.stdin.data = (uint8_t *)data;
    in.stdin.len = len;
    req.process = &sel;
    req.input = &in;
    envd_unary_spec spec = {
        "/process.Process/SendInput", ENVD_FK_NONE, empty_finish_stdin, NULL, NULL, NULL};
    envd_future *f;
    envd_status s = envd_unary_start(c, &spec, &req.base, &f);
    if (s != ENVD_OK)
        return s;
    return envd_sync_finish(f, NULL, err);
}

/* ---- list --------------------------------------------------------------- */

struct envd_process_list {
    Process__ListResponse *resp;
};

static void plist_free(void *p)
{
    envd_process_list *l = p;
    if (!l)
        return;
    if (l->resp)
        process__list_response__free_unpacked(l->resp, NULL);
    free(l);
}

void envd_process_list_free(envd_process_list *l)
{
    plist_free(l);
}

static void list_finish(void *ctx, const uint8_t *resp, size_t len, envd_error *err, void **result,
                        envd_free_fn *free_fn, envd_error **out_err)
{
    (void)ctx;
    if (err) {
        *out_err = envd_error_wrap(err, "failed to list processes");
        return;
    }
    envd_process_list *l = calloc(1, sizeof(*l));
    if (!l) {
        *out_err = envd_error_new(ENVD_E_NOMEM, ENVD_TRANSPORT_NONE, 0, "out of memory");
        return;
    }
    l->resp = process__list_response__unpack(NULL, len, resp);
    if (!l->resp) {
        free(l);
        *out_err =
            envd_error_new(ENVD_E_PROTOCOL, ENVD_TRANSPORT_NONE, 0, "malformed List response");
        return;
    }
    *result = l;
    *free_fn = plist_free;
}

envd_status envd_commands_list(envd_client *c, envd_process_list **out, envd_error **err)
{
    if (err)
        *err = NULL;
    if (!out)
        return ENVD_E_USAGE;
    *out = NULL;
    Process__ListRequest req = PROCESS__LIST_REQUEST__INIT;
    envd_unary_spec spec = {
        "/process.Process/List", ENVD_FK_PROCESS_LIST, list_finish, NULL, NULL, NULL};
    envd_future *f;
    envd_status s = envd_unary_start(c, &spec, &req.base, &f);
    if (s != ENVD_OK)
        return s;
    return envd_sync_finish(f, (void **)out, err);
}

static const Process__ProcessInfo *pinfo(const envd_process_list *l, size_t i)
{
    return l && l->resp && i < l->resp->n_processes ? l->resp->processes[i] : NULL;
}

size_t envd_process_list_count(const envd_process_list *l)
{
    return l && l->resp ? l->resp->n_processes : 0;
}

uint32_t envd_process_list_pid(const envd_process_list *l, size_t i)
{
    const Process__ProcessInfo *p = pinfo(l, i);
    return p ? p->pid : 0;
}

const char *envd_process_list_tag(const envd_process_list *l, size_t i)
{
    const Process__ProcessInfo *p = pinfo(l, i);
    return p && p->_tag_case == PROCESS__PROCESS_INFO___TAG_TAG && p->tag ? p->tag : "";
}

const char *envd_process_list_cmd(const envd_process_list *l, size_t i)
{
    const Process__ProcessInfo *p = pinfo(l, i);
    return p && p->config && p->config->cmd ? p->config->cmd : "";
}

size_t envd_process_list_argc(const envd_process_list *l, size_t i)
{
    const Process__ProcessInfo *p = pinfo(l, i);
    return p && p->config ? p->config->n_args : 0;
}

const char *envd_process_list_arg(const envd_process_list *l, size_t i, size_t j)
{
    const Process__ProcessInfo *p = pinfo(l, i);
    return p && p->config && j < p->config->n_args ? p->config->args[j] : NULL;
}

const char *envd_process_list_cwd(const envd_process_list *l, size_t i)
{
    const Process__ProcessInfo *p = pinfo(l, i);
    return p && p->config && p->config->_cwd_case == PROCESS__PROCESS_CONFIG___CWD_CWD &&
                   p->config->cwd
               ? p->config->cwd
               : "";
}
