/* The unary process calls: SendSignal (kill and other signals), SendInput
 * (stdin or terminal), CloseStdin, Update (terminal size) and List. Each is
 * one future on the unary starter; the blocking forms are rows of sync.c. */
#include "api/commands.h"
#include "core/alloc.h"
#include "api/sync.h"

#include <stdlib.h>
#include <string.h>

envd_status envd_proc_check(const envd_proc *p)
{
    if (!p)
        return envd_start_error(ENVD_E_USAGE, "process is NULL");
    if (p->tag && !*p->tag)
        return envd_start_error(ENVD_E_USAGE, "process tag is empty");
    return ENVD_OK;
}

envd_status envd_usage_error(envd_error **err, const char *fn, const char *what)
{
    if (err)
        *err = envd_error_new(ENVD_E_USAGE, ENVD_TRANSPORT_NONE, 0, "%s: %s", fn, what);
    return ENVD_E_USAGE;
}

void envd_proc_selector(Process__ProcessSelector *ps, const envd_proc *p)
{
    process__process_selector__init(ps);
    if (p->tag) {
        ps->selector_case = PROCESS__PROCESS_SELECTOR__SELECTOR_TAG;
        ps->tag = (char *)p->tag;
    } else {
        ps->selector_case = PROCESS__PROCESS_SELECTOR__SELECTOR_PID;
        ps->pid = p->pid;
    }
}

envd_status envd_proc_begin(const envd_client *c, int has_p, const envd_proc *p, int has_out)
{
    if (!has_out)
        return envd_start_error(ENVD_E_USAGE, "out is NULL");
    if (!c)
        return envd_start_error(ENVD_E_USAGE, "client is NULL");
    return has_p ? envd_proc_check(p) : ENVD_OK;
}

static envd_status begin(envd_client *c, int has_p, const envd_proc *p, envd_future **out)
{
    if (out)
        *out = NULL;
    return envd_proc_begin(c, has_p, p, out != NULL);
}

/* ---- signals ------------------------------------------------------------- */

static void signal_finish(void *ctx, const uint8_t *resp, size_t len, envd_error *err,
                          void **result, envd_free_fn *free_fn, envd_error **out_err)
{
    (void)resp, (void)len;
    envd_finish_bool(err, ENVD_NOT_FOUND, ctx ? "failed to kill process" : "failed to send signal",
                     result, free_fn, out_err); /* not_found: the process is already gone */
}

envd_status envd_proc_signal_start(envd_client *c, const envd_proc *p, int signal, int urgent,
                                   envd_future **out)
{
    Process__SendSignalRequest req = PROCESS__SEND_SIGNAL_REQUEST__INIT;
    Process__ProcessSelector ps;
    envd_proc_selector(&ps, p);
    req.process = &ps;
    req.signal = (Process__Signal)signal;
    /* ctx only says which message to wrap errors in: kill is SIGKILL. */
    envd_unary_spec spec = {.method = "/process.Process/SendSignal",
                            .kind = ENVD_FK_BOOL,
                            .finish = signal_finish,
                            .ctx = signal == ENVD_SIGNAL_SIGKILL ? (void *)1 : NULL,
                            .urgent = urgent};
    return envd_unary_start(c, &spec, &req.base, out);
}

envd_status envd_commands_signal_async(envd_client *c, const envd_proc *p, envd_signal sig,
                                       envd_future **out)
{
    envd_status s = begin(c, 1, p, out);
    if (s != ENVD_OK)
        return s;
    if ((int)sig <= 0)
        return envd_start_error(ENVD_INVALID_ARGUMENT, "signal %d is not a signal", (int)sig);
    return envd_proc_signal_start(c, p, (int)sig, 0, out);
}

/* ---- input, close stdin, resize ------------------------------------------ */

static void empty_finish(void *ctx, const uint8_t *resp, size_t len, envd_error *err, void **result,
                         envd_free_fn *free_fn, envd_error **out_err)
{
    (void)resp, (void)len, (void)result, (void)free_fn;
    if (err)
        *out_err = envd_error_wrap(err, ctx);
}

envd_status envd_commands_send_input_async(envd_client *c, const envd_proc *p, envd_input kind,
                                           const void *data, size_t len, envd_future **out)
{
    envd_status s = begin(c, 1, p, out);
    if (s != ENVD_OK)
        return s;
    if (!data && len)
        return envd_start_error(ENVD_E_USAGE, "data is NULL");
    if (kind != ENVD_INPUT_STDIN && kind != ENVD_INPUT_PTY)
        return envd_start_error(ENVD_INVALID_ARGUMENT, "kind %d is not an envd_input", (int)kind);
    Process__SendInputRequest req = PROCESS__SEND_INPUT_REQUEST__INIT;
    Process__ProcessSelector ps;
    Process__ProcessInput in = PROCESS__PROCESS_INPUT__INIT;
    envd_proc_selector(&ps, p);
    if (kind == ENVD_INPUT_PTY) {
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
    envd_unary_spec spec = {
        .method = "/process.Process/SendInput",
        .kind = ENVD_FK_NONE,
        .finish = empty_finish,
        .ctx = kind == ENVD_INPUT_PTY ? "failed to send pty input" : "failed to send stdin"};
    return envd_unary_start(c, &spec, &req.base, out); /* packs (copies) data */
}

envd_status envd_commands_close_stdin_async(envd_client *c, const envd_proc *p, envd_future **out)
{
    envd_status s = begin(c, 1, p, out);
    if (s == ENVD_OK)
        s = envd_client_gate(c, ENVD_GATE_CLOSE_STDIN);
    if (s != ENVD_OK)
        return s;
    Process__CloseStdinRequest req = PROCESS__CLOSE_STDIN_REQUEST__INIT;
    Process__ProcessSelector ps;
    envd_proc_selector(&ps, p);
    req.process = &ps;
    envd_unary_spec spec = {.method = "/process.Process/CloseStdin",
                            .kind = ENVD_FK_NONE,
                            .finish = empty_finish,
                            .ctx = "failed to close stdin"};
    return envd_unary_start(c, &spec, &req.base, out);
}

envd_status envd_commands_resize_async(envd_client *c, const envd_proc *p, uint32_t cols,
                                       uint32_t rows, envd_future **out)
{
    envd_status s = begin(c, 1, p, out);
    if (s != ENVD_OK)
        return s;
    if (cols == 0 || rows == 0)
        return envd_start_error(ENVD_INVALID_ARGUMENT, "a terminal of %ux%u", cols, rows);
    Process__UpdateRequest req = PROCESS__UPDATE_REQUEST__INIT;
    Process__ProcessSelector ps;
    Process__PTY pty = PROCESS__PTY__INIT;
    Process__PTY__Size size = PROCESS__PTY__SIZE__INIT;
    envd_proc_selector(&ps, p);
    size.cols = cols;
    size.rows = rows;
    pty.size = &size;
    req.process = &ps;
    req._pty_case = PROCESS__UPDATE_REQUEST___PTY_PTY;
    req.pty = &pty;
    envd_unary_spec spec = {.method = "/process.Process/Update",
                            .kind = ENVD_FK_NONE,
                            .finish = empty_finish,
                            .ctx = "failed to resize pty"};
    return envd_unary_start(c, &spec, &req.base, out);
}

/* ---- list ----------------------------------------------------------------- */

/* The public list first; the strings point into the decoded response. */
typedef struct plist {
    envd_process_list pub;
    Process__ListResponse *resp;
    envd_process_info *items;
    envd_kv *envs; /* every process's, one block */
} plist;

void envd_process_list_free(envd_process_list *pub)
{
    plist *l = (plist *)pub;
    if (!l)
        return;
    if (l->resp)
        process__list_response__free_unpacked(l->resp, NULL);
    free(l->items);
    free(l->envs);
    free(l);
}

static void plist_free(void *p)
{
    envd_process_list_free(p);
}

static void fill_info(envd_process_info *it, const Process__ProcessInfo *p, envd_kv *envs)
{
    const Process__ProcessConfig *cfg = p->config;
    it->pid = p->pid;
    it->tag = p->_tag_case == PROCESS__PROCESS_INFO___TAG_TAG && p->tag ? p->tag : "";
    it->cmd = cfg && cfg->cmd ? cfg->cmd : "";
    it->args = cfg ? (const char *const *)cfg->args : NULL;
    it->n_args = cfg ? cfg->n_args : 0;
    it->cwd = cfg && cfg->_cwd_case == PROCESS__PROCESS_CONFIG___CWD_CWD && cfg->cwd ? cfg->cwd : "";
    it->envs = envs;
    it->n_envs = 0;
    for (size_t j = 0; cfg && j < cfg->n_envs; j++) {
        const Process__ProcessConfig__EnvsEntry *e = cfg->envs[j];
        if (e)
            envs[it->n_envs++] = (envd_kv){e->key ? e->key : "", e->value ? e->value : ""};
    }
}

/* NULL when out of memory. */
static plist *plist_from(Process__ListResponse *resp)
{
    plist *l = envd_calloc(1, sizeof(*l));
    size_t n_envs = 0, n = 0;
    for (size_t i = 0; i < resp->n_processes; i++)
        if (resp->processes[i] && resp->processes[i]->config)
            n_envs += resp->processes[i]->config->n_envs;
    if (l) {
        l->resp = resp;
        l->items = envd_calloc(resp->n_processes ? resp->n_processes : 1, sizeof(*l->items));
        l->envs = envd_calloc(n_envs ? n_envs : 1, sizeof(*l->envs));
    }
    if (!l || !l->items || !l->envs) {
        if (l)
            l->resp = NULL; /* the caller frees it */
        envd_process_list_free(l ? &l->pub : NULL);
        return NULL;
    }
    envd_kv *envs = l->envs;
    for (size_t i = 0; i < resp->n_processes; i++) {
        if (!resp->processes[i])
            continue;
        fill_info(&l->items[n], resp->processes[i], envs);
        envs += l->items[n++].n_envs;
    }
    l->pub.count = n;
    l->pub.items = l->items;
    return l;
}

static void list_finish(void *ctx, const uint8_t *resp, size_t len, envd_error *err, void **result,
                        envd_free_fn *free_fn, envd_error **out_err)
{
    (void)ctx;
    if (err) {
        *out_err = envd_error_wrap(err, "failed to list processes");
        return;
    }
    Process__ListResponse *r = process__list_response__unpack(NULL, len, resp);
    if (!r) {
        *out_err =
            envd_error_new(ENVD_E_PROTOCOL, ENVD_TRANSPORT_NONE, 0, "malformed List response");
        return;
    }
    plist *l = plist_from(r);
    if (!l) {
        process__list_response__free_unpacked(r, NULL);
        *out_err = envd_error_new(ENVD_E_NOMEM, ENVD_TRANSPORT_NONE, 0, "out of memory");
        return;
    }
    *result = &l->pub;
    *free_fn = plist_free;
}

envd_status envd_commands_list_async(envd_client *c, envd_future **out)
{
    envd_status s = begin(c, 0, NULL, out);
    if (s != ENVD_OK)
        return s;
    Process__ListRequest req = PROCESS__LIST_REQUEST__INIT;
    envd_unary_spec spec = {.method = "/process.Process/List",
                            .kind = ENVD_FK_PROCESS_LIST,
                            .finish = list_finish,
                            .list_field = 1 /* processes */};
    return envd_unary_start(c, &spec, &req.base, out);
}

const envd_process_list *envd_future_process_list(const envd_future *f)
{
    return envd_future_result(f, ENVD_FK_PROCESS_LIST);
}
