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
    envd_cmd_opts_set_argv(o, NULL);
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
    o->stdin_set = 1;
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

envd_status envd_cmd_opts_set_argv(envd_cmd_opts *o, const char *const *argv)
{
    if (!o)
        return ENVD_E_USAGE;
    if (argv && (!argv[0] || !*argv[0]))
        return ENVD_INVALID_ARGUMENT; /* no program */
    size_t n = 0;
    while (argv && argv[n])
        n++;
    char **copy = argv ? envd_calloc(n + 1, sizeof(*copy)) : NULL;
    if (argv && !copy)
        return ENVD_E_NOMEM;
    for (size_t i = 0; i < n; i++) {
        if (!(copy[i] = envd_strdup(argv[i]))) {
            while (i--)
                free(copy[i]);
            free(copy);
            return ENVD_E_NOMEM;
        }
    }
    for (size_t i = 0; o->argv && o->argv[i]; i++)
        free(o->argv[i]);
    free(o->argv);
    o->argv = copy;
    return ENVD_OK;
}

envd_status envd_cmd_opts_set_detach(envd_cmd_opts *o, int detach)
{
    if (!o)
        return ENVD_E_USAGE;
    o->detach = detach != 0;
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

void envd_cmd_result_publish(envd_cmd_result *r)
{
    r->pub.stdout_data = r->out.data ? r->out.data : "";
    r->pub.stdout_len = r->out.len;
    r->pub.stderr_data = r->err.data ? r->err.data : "";
    r->pub.stderr_len = r->err.len;
    r->pub.error = r->error ? r->error : "";
}

void envd_command_result_free(envd_command_result *pub)
{
    envd_cmd_result *r = (envd_cmd_result *)pub;
    if (!r)
        return;
    free(r->out.data);
    free(r->err.data);
    free(r->error);
    free(r);
}
