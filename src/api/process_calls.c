/* The unary process calls: SendSignal (kill and other signals, by pid or
 * tag), SendInput (stdin or terminal), CloseStdin, Update (terminal size)
 * and List. Each is one future; the synchronous forms wait for it. */
#include "api/commands.h"
#include "process.pb-c.h"

#include <stdlib.h>
#include <string.h>

static void fill_selector(Process__ProcessSelector *ps, envd_proc_sel sel)
{
    process__process_selector__init(ps);
    if (sel.tag) {
        ps->selector_case = PROCESS__PROCESS_SELECTOR__SELECTOR_TAG;
        ps->tag = (char *)sel.tag;
    } else {
        ps->selector_case = PROCESS__PROCESS_SELECTOR__SELECTOR_PID;
        ps->pid = sel.pid;
    }
}

static envd_status sel_ok(envd_client *c, envd_proc_sel sel, envd_future **out)
{
    if (out)
        *out = NULL;
    if (!c || !out)
        return ENVD_E_USAGE;
    if (sel.tag && !*sel.tag)
        return ENVD_INVALID_ARGUMENT;
    return ENVD_OK;
}

/* ---- signals ------------------------------------------------------------- */

static void signal_finish(void *ctx, const uint8_t *resp, size_t len, envd_error *err,
                          void **result, envd_free_fn *free_fn, envd_error **out_err)
{
    (void)resp, (void)len;
    int is_kill = ctx != NULL;
    if (err && err->code != ENVD_NOT_FOUND) {
        *out_err =
            envd_error_wrap(err, is_kill ? "failed to kill process" : "failed to send signal");
        return;
    }
    int *sent = malloc(sizeof(int));
    if (!sent) {
        envd_error_free(err);
        *out_err = envd_error_new(ENVD_E_NOMEM, ENVD_TRANSPORT_NONE, 0, "out of memory");
        return;
    }
    *sent = err == NULL; /* not_found: the process is already gone */
    *result = sent;
    *free_fn = free;
    envd_error_free(err);
}

envd_status envd_proc_signal_async(envd_client *c, envd_proc_sel sel, int signal, envd_future **out)
{
    envd_status s = sel_ok(c, sel, out);
    if (s != ENVD_OK)
        return s;
    if (signal <= 0)
        return ENVD_INVALID_ARGUMENT;
    Process__SendSignalRequest req = PROCESS__SEND_SIGNAL_REQUEST__INIT;
    Process__ProcessSelector ps;
    fill_selector(&ps, sel);
    req.process = &ps;
    req.signal = (Process__Signal)signal;
    /* ctx only says which message to wrap errors in: kill is SIGKILL. */
    envd_unary_spec spec = {"/process.Process/SendSignal",
                            ENVD_FK_BOOL,
                            signal_finish,
                            signal == ENVD_SIGNAL_SIGKILL ? (void *)1 : NULL,
                            NULL,
                            NULL};
    return envd_unary_start(c, &spec, &req.base, out);
}

static envd_status sync_sent(envd_status s, envd_future **fp, int *sent, envd_error **err)
{
    if (s != ENVD_OK)
        return s;
    int *b = NULL;
    s = envd_sync_finish(*fp, (void **)&b, err);
    if (b && sent)
        *sent = *b;
    free(b);
    return s;
}

envd_status envd_commands_kill_async(envd_client *c, uint32_t pid, envd_future **out)
{
    return envd_proc_signal_async(c, (envd_proc_sel){pid, NULL}, ENVD_SIGNAL_SIGKILL, out);
}

envd_status envd_commands_kill(envd_client *c, uint32_t pid, int *killed, envd_error **err)
{
    return envd_commands_signal(c, pid, ENVD_SIGNAL_SIGKILL, killed, err);
}

envd_status envd_commands_kill_tag(envd_client *c, const char *tag, int *killed, envd_error **err)
{
    return envd_commands_signal_tag(c, tag, ENVD_SIGNAL_SIGKILL, killed, err);
}

envd_status envd_commands_signal_async(envd_client *c, uint32_t pid, envd_signal signal,
                                       envd_future **out)
{
    return envd_proc_signal_async(c, (envd_proc_sel){pid, NULL}, (int)signal, out);
}

envd_status envd_commands_signal_tag_async(envd_client *c, const char *tag, envd_signal signal,
                                           envd_future **out)
{
    if (!tag)
        return out ? (*out = NULL, ENVD_E_USAGE) : ENVD_E_USAGE;
    return envd_proc_signal_async(c, (envd_proc_sel){0, tag}, (int)signal, out);
}

envd_status envd_commands_signal(envd_client *c, uint32_t pid, envd_signal signal, int *sent,
                                 envd_error **err)
{
    if (err)
        *err = NULL;
    if (sent)
        *sent = 0;
    envd_future *f = NULL;
    return sync_sent(envd_commands_signal_async(c, pid, signal, &f), &f, sent, err);
}

envd_status envd_commands_signal_tag(envd_client *c, const char *tag, envd_signal signal, int *sent,
                                     envd_error **err)
{
    if (err)
        *err = NULL;
    if (sent)
        *sent = 0;
    envd_future *f = NULL;
    return sync_sent(envd_commands_signal_tag_async(c, tag, signal, &f), &f, sent, err);
}

/* ---- input, close stdin, resize ------------------------------------------ */

static void empty_finish(void *ctx, const uint8_t *resp, size_t len, envd_error *err, void **result,
                         envd_free_fn *free_fn, envd_error **out_err)
{
    (void)resp, (void)len, (void)result, (void)free_fn;
    if (err)
        *out_err = envd_error_wrap(err, ctx);
}

envd_status envd_proc_input_async(envd_client *c, envd_proc_sel sel, int pty, const void *data,
                                  size_t len, envd_future **out)
{
    envd_status s = sel_ok(c, sel, out);
    if (s != ENVD_OK)
        return s;
    if (!data && len)
        return ENVD_E_USAGE;
    Process__SendInputRequest req = PROCESS__SEND_INPUT_REQUEST__INIT;
    Process__ProcessSelector ps;
    Process__ProcessInput in = PROCESS__PROCESS_INPUT__INIT;
    fill_selector(&ps, sel);
    if (pty) {
        in.input_case = PROCESS__PROCESS_INPUT__INPUT_PTY;
        in.pty.data = (uint8_t *)data;
        in.pty.len = len;
    } else {
        in.input_case = PROCESS__PROCESS_INPUT__INPUT_STDIN;
        in.stdin.data = (uint8_t *)data;
        in.stdin.len = len;
    }
    req.process = &ps;
    req.input = &in;
    envd_unary_spec spec = {"/process.Process/SendInput",
                            ENVD_FK_NONE,
                            empty_finish,
                            pty ? "failed to send pty input" : "failed to send stdin",
                            NULL,
                            NULL};
    return envd_unary_start(c, &spec, &req.base, out); /* packs (copies) data */
}

envd_status envd_proc_close_stdin_async(envd_client *c, envd_proc_sel sel, envd_future **out)
{
    envd_status s = sel_ok(c, sel, out);
    if (s != ENVD_OK)
        return s;
    Process__CloseStdinRequest req = PROCESS__CLOSE_STDIN_REQUEST__INIT;
    Process__ProcessSelector ps;
    fill_selector(&ps, sel);
    req.process = &ps;
    envd_unary_spec spec = {"/process.Process/CloseStdin", ENVD_FK_NONE, empty_finish,
                            "failed to close stdin",       NULL,         NULL};
    return envd_unary_start(c, &spec, &req.base, out);
}

envd_status envd_proc_resize_async(envd_client *c, envd_proc_sel sel, uint32_t cols, uint32_t rows,
                                   envd_future **out)
{
    envd_status s = sel_ok(c, sel, out);
    if (s != ENVD_OK)
        return s;
    if (cols == 0 || rows == 0)
        return ENVD_INVALID_ARGUMENT;
    Process__UpdateRequest req = PROCESS__UPDATE_REQUEST__INIT;
    Process__ProcessSelector ps;
    Process__PTY pty = PROCESS__PTY__INIT;
    Process__PTY__Size size = PROCESS__PTY__SIZE__INIT;
    fill_selector(&ps, sel);
    size.cols = cols;
    size.rows = rows;
    pty.size = &size;
    req.process = &ps;
    req._pty_case = PROCESS__UPDATE_REQUEST___PTY_PTY;
    req.pty = &pty;
    envd_unary_spec spec = {"/process.Process/Update", ENVD_FK_NONE, empty_finish,
                            "failed to resize pty",    NULL,         NULL};
    return envd_unary_start(c, &spec, &req.base, out);
}

static envd_status sync_none(envd_status s, envd_future **fp, envd_error **err)
{
    return s != ENVD_OK ? s : envd_sync_finish(*fp, NULL, err);
}

envd_status envd_commands_send_stdin_async(envd_client *c, uint32_t pid, const void *data,
                                           size_t len, envd_future **out)
{
    return envd_proc_input_async(c, (envd_proc_sel){pid, NULL}, 0, data, len, out);
}

envd_status envd_commands_send_stdin(envd_client *c, uint32_t pid, const void *data, size_t len,
                                     envd_error **err)
{
    if (err)
        *err = NULL;
    envd_future *f = NULL;
    return sync_none(envd_commands_send_stdin_async(c, pid, data, len, &f), &f, err);
}

envd_status envd_commands_close_stdin_async(envd_client *c, uint32_t pid, envd_future **out)
{
    return envd_proc_close_stdin_async(c, (envd_proc_sel){pid, NULL}, out);
}

envd_status envd_commands_close_stdin(envd_client *c, uint32_t pid, envd_error **err)
{
    if (err)
        *err = NULL;
    envd_future *f = NULL;
    return sync_none(envd_commands_close_stdin_async(c, pid, &f), &f, err);
}

envd_status envd_pty_send_input_async(envd_client *c, uint32_t pid, const void *data, size_t len,
                                      envd_future **out)
{
    return envd_proc_input_async(c, (envd_proc_sel){pid, NULL}, 1, data, len, out);
}

envd_status envd_pty_send_input(envd_client *c, uint32_t pid, const void *data, size_t len,
                                envd_error **err)
{
    if (err)
        *err = NULL;
    envd_future *f = NULL;
    return sync_none(envd_pty_send_input_async(c, pid, data, len, &f), &f, err);
}

envd_status envd_pty_resize_async(envd_client *c, uint32_t pid, uint32_t cols, uint32_t rows,
                                  envd_future **out)
{
    return envd_proc_resize_async(c, (envd_proc_sel){pid, NULL}, cols, rows, out);
}

envd_status envd_pty_resize(envd_client *c, uint32_t pid, uint32_t cols, uint32_t rows,
                            envd_error **err)
{
    if (err)
        *err = NULL;
    envd_future *f = NULL;
    return sync_none(envd_pty_resize_async(c, pid, cols, rows, &f), &f, err);
}

/* ---- list ----------------------------------------------------------------- */

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

envd_status envd_commands_list_async(envd_client *c, envd_future **out)
{
    if (out)
        *out = NULL;
    if (!c || !out)
        return ENVD_E_USAGE;
    Process__ListRequest req = PROCESS__LIST_REQUEST__INIT;
    envd_unary_spec spec = {
        "/process.Process/List", ENVD_FK_PROCESS_LIST, list_finish, NULL, NULL, NULL};
    return envd_unary_start(c, &spec, &req.base, out);
}

const envd_process_list *envd_future_process_list(const envd_future *f)
{
    return envd_future_result(f, ENVD_FK_PROCESS_LIST);
}

envd_status envd_commands_list(envd_client *c, envd_process_list **out, envd_error **err)
{
    if (err)
        *err = NULL;
    if (!out)
        return ENVD_E_USAGE;
    *out = NULL;
    envd_future *f = NULL;
    envd_status s = envd_commands_list_async(c, &f);
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

size_t envd_process_list_envc(const envd_process_list *l, size_t i)
{
    const Process__ProcessInfo *p = pinfo(l, i);
    return p && p->config ? p->config->n_envs : 0;
}

static const Process__ProcessConfig__EnvsEntry *penv(const envd_process_list *l, size_t i, size_t j)
{
    const Process__ProcessInfo *p = pinfo(l, i);
    return p && p->config && j < p->config->n_envs ? p->config->envs[j] : NULL;
}

const char *envd_process_list_env_name(const envd_process_list *l, size_t i, size_t j)
{
    const Process__ProcessConfig__EnvsEntry *e = penv(l, i, j);
    return e ? (e->key ? e->key : "") : NULL;
}

const char *envd_process_list_env_value(const envd_process_list *l, size_t i, size_t j)
{
    const Process__ProcessConfig__EnvsEntry *e = penv(l, i, j);
    return e ? (e->value ? e->value : "") : NULL;
}

const char *envd_process_list_getenv(const envd_process_list *l, size_t i, const char *name)
{
    if (!name)
        return NULL;
    for (size_t j = 0; j < envd_process_list_envc(l, i); j++) {
        const Process__ProcessConfig__EnvsEntry *e = penv(l, i, j);
        if (e && e->key && strcmp(e->key, name) == 0)
            return e->value ? e->value : "";
    }
    return NULL;
}

const char *envd_process_list_cwd(const envd_process_list *l, size_t i)
{
    const Process__ProcessInfo *p = pinfo(l, i);
    return p && p->config && p->config->_cwd_case == PROCESS__PROCESS_CONFIG___CWD_CWD &&
                   p->config->cwd
               ? p->config->cwd
               : "";
}
