/* The blocking layer: the prologue and epilogue every blocking function
 * shares (the contract is in sync.h), then the table of blocking forms, one
 * row each, one section per area. A blocking form is added here and nowhere
 * else; its _async starter lives with its area. */
#include "api/sync.h"
#include "api/files_internal.h"
#include "envd/envd_code.h"
#include "envd/envd_k8s.h"
#include "envd/envd_sandbox.h"
#include "api/commands.h"
#include "core/thread.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

/* Why this thread's last start refused; read by the blocking form that
 * called the starter (same thread, right after). */
static _Thread_local char start_msg[256];

envd_status envd_start_error(envd_status code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(start_msg, sizeof start_msg, fmt, ap);
    va_end(ap);
    return code;
}

envd_status envd_sync_begin(const char *fn, envd_error **err)
{
    if (err)
        *err = NULL;
    start_msg[0] = '\0';
    if (!envd_thread_is_engine())
        return ENVD_OK;
    if (err)
        *err = envd_thread_refusal(fn);
    return ENVD_E_USAGE;
}

static envd_error *start_refusal(const char *fn, envd_status st)
{
    const char *why = start_msg[0] ? start_msg : envd_strerror(st);
    envd_error *e = envd_error_new(st, ENVD_TRANSPORT_NONE, 0, "%s: %s", fn, why);
    start_msg[0] = '\0';
    return e;
}

envd_status envd_sync_call(const char *fn, envd_status st, envd_future *f, int kind, void **out,
                           envd_error **err)
{
    if (out)
        *out = NULL;
    if (err)
        *err = NULL;
    if (st != ENVD_OK || !f) {
        /* A starter that failed made no future (envd.h's convention). */
        if (st == ENVD_OK)
            st = ENVD_E_USAGE;
        if (err)
            *err = start_refusal(fn, st);
        return st;
    }
    envd_future_wait(f, -1);
    st = envd_future_status(f);
    if (out && (st == ENVD_OK || st == ENVD_E_COMMAND_EXIT))
        *out = envd_future_take_result(f, kind);
    if (err)
        *err = envd_future_take_error(f);
    envd_future_free(f);
    return st;
}

envd_status envd_sync_bool(const char *fn, envd_status st, envd_future *f, int *out,
                           envd_error **err)
{
    void *r = NULL;
    st = envd_sync_call(fn, st, f, ENVD_FK_BOOL, &r, err);
    int *b = r;
    if (out)
        *out = b ? *b : 0;
    free(b);
    return st;
}

int envd_future_bool(const envd_future *f)
{
    if (envd_future_status(f) != ENVD_OK) /* pending, failed, or NULL */
        return -1;
    const int *b = envd_future_result(f, ENVD_FK_BOOL);
    return b ? *b != 0 : -1;
}

/* ---- commands and processes (commands.c, process_calls.c) ---------------- */

ENVD_SYNC_TAKE(envd_commands_run, envd_command_result *, ENVD_FK_COMMAND, (c, cmd, o, &f_),
               envd_client *c, const char *cmd, const envd_cmd_opts *o)
ENVD_SYNC_TAKE(envd_commands_start, envd_handle *, ENVD_FK_HANDLE, (c, cmd, o, &f_),
               envd_client *c, const char *cmd, const envd_cmd_opts *o)
ENVD_SYNC_TAKE(envd_commands_connect, envd_handle *, ENVD_FK_HANDLE, (c, p, o, &f_),
               envd_client *c, const envd_proc *p, const envd_cmd_opts *o)
ENVD_SYNC_BOOL(envd_commands_signal, (c, p, sig, &f_), envd_client *c, const envd_proc *p,
               envd_signal sig)
ENVD_SYNC_BOOL_VIA(envd_commands_kill, envd_commands_signal_async,
                   (c, p, ENVD_SIGNAL_SIGKILL, &f_), envd_client *c, const envd_proc *p)
ENVD_SYNC_NONE(envd_commands_send_input, (c, p, kind, data, len, &f_), envd_client *c,
               const envd_proc *p, envd_input kind, const void *data, size_t len)
ENVD_SYNC_NONE(envd_commands_close_stdin, (c, p, &f_), envd_client *c, const envd_proc *p)
ENVD_SYNC_NONE(envd_commands_resize, (c, p, cols, rows, &f_), envd_client *c, const envd_proc *p,
               uint32_t cols, uint32_t rows)
ENVD_SYNC_TAKE(envd_commands_list, envd_process_list *, ENVD_FK_PROCESS_LIST, (c, &f_),
               envd_client *c)
ENVD_SYNC_NONE_VIA(envd_handle_send_input, envd_handle_input_async, (h, data, len, &f_),
                   envd_handle *h, const void *data, size_t len)
ENVD_SYNC_NONE_VIA(envd_handle_close_stdin, envd_handle_close_stdin_async, (h, &f_),
                   envd_handle *h)
ENVD_SYNC_NONE_VIA(envd_handle_resize, envd_handle_resize_async, (h, cols, rows, &f_),
                   envd_handle *h, uint32_t cols, uint32_t rows)
ENVD_SYNC_TAKE(envd_handle_reconnect, envd_handle *, ENVD_FK_HANDLE, (h, &f_), envd_handle *h)

/* ---- input streams (input_stream.c) -------------------------------------- */

/* ---- filesystem RPCs (fs.c, fs_watcher.c) -------------------------------- */

ENVD_SYNC_TAKE(envd_fs_get_info, envd_entry_info *, ENVD_FK_ENTRY, (c, path, &f_), envd_client *c,
               const char *path)
ENVD_SYNC_BOOL(envd_fs_exists, (c, path, &f_), envd_client *c, const char *path)
ENVD_SYNC_TAKE(envd_fs_list, envd_entry_list *, ENVD_FK_ENTRY_LIST, (c, path, depth, &f_),
               envd_client *c, const char *path, uint32_t depth)
ENVD_SYNC_BOOL(envd_fs_make_dir, (c, path, &f_), envd_client *c, const char *path)
ENVD_SYNC_TAKE(envd_fs_rename, envd_entry_info *, ENVD_FK_ENTRY, (c, old_path, new_path, &f_),
               envd_client *c, const char *old_path, const char *new_path)
ENVD_SYNC_NONE(envd_fs_remove, (c, path, &f_), envd_client *c, const char *path)
ENVD_SYNC_TAKE(envd_fs_watcher_create, char *, ENVD_FK_WATCHER_ID, (c, path, flags, &f_),
               envd_client *c, const char *path, unsigned flags)
ENVD_SYNC_TAKE(envd_fs_watcher_events, envd_fs_event_list *, ENVD_FK_EVENT_LIST, (c, id, &f_),
               envd_client *c, const char *id)
ENVD_SYNC_NONE(envd_fs_watcher_remove, (c, id, &f_), envd_client *c, const char *id)

/* ---- watches (watch.c) ---------------------------------------------------- */

ENVD_SYNC_TAKE(envd_fs_watch_dir, envd_watch *, ENVD_FK_WATCH, (c, path, flags, cb, ud, &f_),
               envd_client *c, const char *path, unsigned flags, envd_fs_event_cb cb, void *ud)

/* ---- /files transfers (files_read.c, files_write.c) ---------------------- */

ENVD_SYNC_TAKE(envd_files_write_batch, envd_write_info *, ENVD_FK_WRITE_INFO, (c, b, o, &f_),
               envd_client *c, const envd_write_batch *b, const envd_files_opts *o)
ENVD_SYNC_TAKE_VIA(envd_files_write, envd_files_write_one, envd_write_info *, ENVD_FK_WRITE_INFO,
                   (c, path, data, len, o, &f_), envd_client *c, const char *path,
                   const void *data, size_t len, const envd_files_opts *o)
ENVD_SYNC_TAKE_VIA(envd_files_write_text, envd_files_write_text_start, envd_write_info *,
                   ENVD_FK_WRITE_INFO, (c, path, text, o, &f_), envd_client *c, const char *path,
                   const char *text, const envd_files_opts *o)
ENVD_SYNC_TAKE(envd_files_compose, envd_write_info *, ENVD_FK_WRITE_INFO,
               (c, sources, n, destination, o, &f_), envd_client *c,
               const char *const *sources, size_t n, const char *destination,
               const envd_files_opts *o)

/* A read has two outputs (the bytes and their count) and a result whose
 * kind follows the sink: the rows' contract, written out. `refused`: a
 * usage error found by the blocking form itself. */
static envd_status files_read(const char *fn, envd_client *c, const char *path,
                              const envd_files_opts *o, uint8_t **data, size_t *len,
                              const char *refused, envd_error **err)
{
    envd_status s = envd_sync_begin(fn, err);
    if (s != ENVD_OK)
        return s;
    envd_future *f = NULL;
    void *r = NULL;
    if (!refused && (!data || !len))
        refused = data ? "len is NULL" : "data is NULL";
    if (refused)
        s = envd_start_error(ENVD_E_USAGE, "%s", refused);
    else
        s = envd_files_read_async(c, path, o, &f);
    int kind = f ? envd_future_kind(f) : ENVD_FK_NONE;
    s = envd_sync_call(fn, s, f, kind, data ? &r : NULL, err);
    if (data && len)
        envd_files_read_out(r, kind, data, len);
    return s;
}

envd_status envd_files_read(envd_client *c, const char *path, const envd_files_opts *o,
                            uint8_t **data, size_t *len, envd_error **err)
{
    if (data)
        *data = NULL;
    if (len)
        *len = 0;
    return files_read(__func__, c, path, o, data, len, NULL, err);
}

envd_status envd_files_read_text(envd_client *c, const char *path, const envd_files_opts *o,
                                 char **text, envd_error **err)
{
    uint8_t *d = NULL;
    size_t n = 0;
    const char *refused = !text                              ? "text is NULL"
                          : o && o->sink != ENVD_SINK_MEM ? "the options name another sink"
                                                            : NULL;
    envd_status s = files_read(__func__, c, path, o, &d, &n, refused, err);
    if (text)
        *text = (char *)d;
    else
        free(d);
    return s;
}

/* ---- clients from Kubernetes (k8s) ---------------------------------------- */

ENVD_SYNC_TAKE(envd_client_from_k8s, envd_client *, ENVD_FK_CLIENT, (rt, ns, name, cfg, k8s, &f_),
               envd_runtime *rt, const char *ns, const char *name, const envd_config *cfg,
               const envd_k8s_options *k8s)
ENVD_SYNC_TAKE(envd_config_file_client, envd_client *, ENVD_FK_CLIENT, (rt, file, name, &f_),
               envd_runtime *rt, const envd_config_file *file, const char *name)

/* ---- the code interpreter (code.c) ----------------------------------------- */

/* The blocking run collects every event into the execution: no callback. */
static envd_status code_run_collect_async(envd_client *c, const char *code,
                                          const envd_code_opts *o, envd_future **out)
{
    return envd_code_run_async(c, code, o, NULL, NULL, out);
}

ENVD_SYNC_TAKE_VIA(envd_code_run, code_run_collect_async, envd_code_execution *,
                   ENVD_FK_CODE_EXECUTION, (c, code, o, &f_), envd_client *c, const char *code,
                   const envd_code_opts *o)
ENVD_SYNC_TAKE(envd_code_context_create, envd_code_context *, ENVD_FK_CODE_CONTEXT,
               (c, language, cwd, &f_), envd_client *c, const char *language, const char *cwd)
ENVD_SYNC_TAKE(envd_code_context_list, envd_code_contexts *, ENVD_FK_CODE_CONTEXT_LIST,
               (c, &f_), envd_client *c)
ENVD_SYNC_NONE(envd_code_context_remove, (c, id, &f_), envd_client *c, const char *id)
ENVD_SYNC_NONE(envd_code_context_restart, (c, id, &f_), envd_client *c, const char *id)

/* ---- sandboxes from the E2B-compatible API (sandbox/calls.c) -------------- */

ENVD_SYNC_TAKE(envd_sandbox_create, envd_sandbox *, ENVD_FK_SANDBOX, (api, template_id, o, &f_),
               envd_sandbox_api *api, const char *template_id, const envd_sandbox_opts *o)
ENVD_SYNC_TAKE(envd_sandbox_connect, envd_sandbox *, ENVD_FK_SANDBOX, (api, sandbox_id, o, &f_),
               envd_sandbox_api *api, const char *sandbox_id, const envd_sandbox_opts *o)
ENVD_SYNC_BOOL(envd_sandbox_kill, (api, sandbox_id, &f_), envd_sandbox_api *api,
               const char *sandbox_id)
ENVD_SYNC_NONE(envd_sandbox_set_timeout, (api, sandbox_id, seconds, &f_), envd_sandbox_api *api,
               const char *sandbox_id, int seconds)
ENVD_SYNC_TAKE(envd_sandbox_list, envd_sandboxes *, ENVD_FK_SANDBOX_LIST,
               (api, metadata, n, &f_), envd_sandbox_api *api, const envd_kv *metadata, size_t n)
