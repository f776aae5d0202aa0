/* envd_cmd_opts and envd_command_result. */
#include "api/commands.h"
#include "core/alloc.h"

#include <stdlib.h>
#include <string.h>

envd_cmd_opts *envd_cmd_opts_new(void)
{
    envd_cmd_opts *o = envd_calloc(1, sizeof(*o));
    if (o) {
        o->max_output = ENVD_DEFAULT_MAX_OUTPUT;
        o->request_timeout_ms = -1;
        o->idle_timeout_ms = -1;
    }
    return o;
}

void envd_cmd_opts_free(envd_cmd_opts *o)
{
    if (!o)
        return;
    envd_kvlist_free(&o->env);
    free(o->cwd);
    free(o->tag);
    free(o->user);
    free(o);
}

static envd_status set_str(char **slot, const char *v)
{
    return envd_str_set(slot, v) ? ENVD_E_NOMEM : ENVD_OK;
}

envd_status envd_cmd_opts_set_env(envd_cmd_opts *o, const char *name, const char *value)
{
    if (!o || !name || !*name || !value)
        return ENVD_E_USAGE;
    return envd_kvlist_set(&o->env, name, value, ENVD_KV_EXACT) ? ENVD_E_NOMEM : ENVD_OK;
}

envd_status envd_cmd_opts_set_cwd(envd_cmd_opts *o, const char *cwd)
{
    return o ? set_str(&o->cwd, cwd && *cwd ? cwd : NULL) : ENVD_E_USAGE;
}

envd_status envd_cmd_opts_set_stdin(envd_cmd_opts *o, int enabled)
{
    if (!o)
        return ENVD_E_USAGE;
    o->stdin_enabled = enabled != 0;
    return ENVD_OK;
}

envd_status envd_cmd_opts_set_tag(envd_cmd_opts *o, const char *tag)
{
    return o ? set_str(&o->tag, tag && *tag ? tag : NULL) : ENVD_E_USAGE;
}

envd_status envd_cmd_opts_set_user(envd_cmd_opts *o, const char *user)
{
    if (!o)
        return ENVD_E_USAGE;
    if (user && strchr(user, ':'))
        return ENVD_INVALID_ARGUMENT;
    return set_str(&o->user, user && *user ? user : NULL);
}

envd_status envd_cmd_opts_set_timeout_ms(envd_cmd_opts *o, int64_t ms)
{
    if (!o)
        return ENVD_E_USAGE;
    if (ms < 0 || ms > 9999999999LL) /* Connect-Timeout-Ms takes at most 10 digits */
        return ENVD_INVALID_ARGUMENT;
    o->timeout_ms = ms;
    return ENVD_OK;
}

static envd_status set_ms(envd_cmd_opts *o, int64_t *slot, int64_t ms)
{
    if (!o)
        return ENVD_E_USAGE;
    if (ms < 0)
        return ENVD_INVALID_ARGUMENT;
    *slot = ms;
    return ENVD_OK;
}

envd_status envd_cmd_opts_set_request_timeout_ms(envd_cmd_opts *o, int64_t ms)
{
    return set_ms(o, o ? &o->request_timeout_ms : NULL, ms);
}

envd_status envd_cmd_opts_set_idle_timeout_ms(envd_cmd_opts *o, int64_t ms)
{
    return set_ms(o, o ? &o->idle_timeout_ms : NULL, ms);
}

envd_status envd_cmd_opts_set_pty(envd_cmd_opts *o, uint32_t cols, uint32_t rows)
{
    if (!o)
        return ENVD_E_USAGE;
    if ((cols == 0) != (rows == 0))
        return ENVD_INVALID_ARGUMENT;
    o->pty = cols != 0;
    o->pty_cols = cols;
    o->pty_rows = rows;
    return ENVD_OK;
}

envd_status envd_cmd_opts_on_pty(envd_cmd_opts *o, envd_output_cb cb, void *ud)
{
    if (!o)
        return ENVD_E_USAGE;
    o->on_pty = cb;
    o->pty_ud = ud;
    return ENVD_OK;
}

envd_status envd_cmd_opts_on_stdout(envd_cmd_opts *o, envd_output_cb cb, void *ud)
{
    if (!o)
        return ENVD_E_USAGE;
    o->on_stdout = cb;
    o->stdout_ud = ud;
    return ENVD_OK;
}

envd_status envd_cmd_opts_on_stderr(envd_cmd_opts *o, envd_output_cb cb, void *ud)
{
    if (!o)
        return ENVD_E_USAGE;
    o->on_stderr = cb;
    o->stderr_ud = ud;
    return ENVD_OK;
}

envd_status envd_cmd_opts_set_max_output(envd_cmd_opts *o, size_t bytes)
{
    if (!o)
        return ENVD_E_USAGE;
    o->max_output = bytes;
    return ENVD_OK;
}

const char *envd_command_result_stdout(const envd_command_result *r, size_t *len)
{
    if (len)
        *len = r ? r->out.len : 0;
    return r && r->out.data ? r->out.data : "";
}

const char *envd_command_result_stderr(const envd_command_result *r, size_t *len)
{
    if (len)
        *len = r ? r->err.len : 0;
    return r && r->err.data ? r->err.data : "";
}

int envd_command_result_exit_code(const envd_command_result *r)
{
    return r ? r->exit_code : 0;
}

const char *envd_command_result_error(const envd_command_result *r)
{
    return r && r->error ? r->error : "";
}

int envd_command_result_truncated(const envd_command_result *r)
{
    return r ? r->truncated : 0;
}

void envd_command_result_free(envd_command_result *r)
{
    if (!r)
        return;
    free(r->out.data);
    free(r->err.data);
    free(r->error);
    free(r);
}
