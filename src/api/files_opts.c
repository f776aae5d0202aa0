/* Options of the /files transfers. Setters validate: NULL options are a
 * usage error, a value out of range is ENVD_INVALID_ARGUMENT. */
#include "api/files_internal.h"
#include "core/alloc.h"

#include <stdlib.h>
#include <string.h>

const envd_files_opts envd_files_opts_default = {.sink = ENVD_SINK_MEM, .sink_fd = -1};

envd_files_opts *envd_files_opts_new(void)
{
    envd_files_opts *o = envd_malloc(sizeof *o);
    if (o)
        *o = envd_files_opts_default;
    return o;
}

void envd_files_opts_free(envd_files_opts *o)
{
    if (!o)
        return;
    free(o->user);
    envd_kvlist_free(&o->meta);
    free(o);
}

envd_status envd_files_opts_set_user(envd_files_opts *o, const char *user)
{
    if (!o)
        return ENVD_E_USAGE;
    return envd_str_set(&o->user, user && *user ? user : NULL) == 0 ? ENVD_OK : ENVD_E_NOMEM;
}

envd_status envd_files_opts_set_gzip(envd_files_opts *o, int enabled)
{
    if (!o)
        return ENVD_E_USAGE;
    o->gzip = enabled != 0;
    return ENVD_OK;
}

envd_status envd_files_opts_set_octet_stream(envd_files_opts *o, int enabled)
{
    if (!o)
        return ENVD_E_USAGE;
    o->octet = enabled != 0;
    return ENVD_OK;
}

/* An HTTP token character (RFC 9110), the only ones a header name may hold. */
static int is_tchar(unsigned char ch)
{
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
           (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

static int valid_metadata(const char *key, const char *value)
{
    if (!*key)
        return 0;
    for (const unsigned char *p = (const unsigned char *)key; *p; p++)
        if (!is_tchar(*p))
            return 0;
    for (const unsigned char *p = (const unsigned char *)value; *p; p++)
        if (*p < 0x20 || *p > 0x7e)
            return 0; /* envd takes printable ASCII only */
    return 1;
}

envd_status envd_files_opts_set_metadata(envd_files_opts *o, const char *key, const char *value)
{
    if (!o || !key || !value)
        return ENVD_E_USAGE;
    if (!valid_metadata(key, value))
        return ENVD_INVALID_ARGUMENT;
    return envd_kvlist_set(&o->meta, key, value, ENVD_KV_NOCASE) == 0 ? ENVD_OK : ENVD_E_NOMEM;
}

envd_status envd_files_opts_set_range(envd_files_opts *o, int64_t offset, int64_t length)
{
    if (!o)
        return ENVD_E_USAGE;
    if (offset < 0 || length == 0)
        return ENVD_INVALID_ARGUMENT;
    o->has_range = 1;
    o->range_off = offset;
    o->range_len = length < 0 ? -1 : length;
    return ENVD_OK;
}

envd_status envd_files_opts_on_progress(envd_files_opts *o, envd_progress_cb cb, void *ud)
{
    if (!o)
        return ENVD_E_USAGE;
    o->progress = cb;
    o->progress_ud = ud;
    return ENVD_OK;
}

envd_status envd_files_opts_set_idle_timeout_ms(envd_files_opts *o, int64_t ms)
{
    if (!o)
        return ENVD_E_USAGE;
    if (ms < 0)
        return ENVD_INVALID_ARGUMENT;
    o->idle_set = 1;
    o->idle_timeout_ms = ms;
    return ENVD_OK;
}

envd_status envd_files_opts_set_timeout_ms(envd_files_opts *o, int64_t ms)
{
    if (!o)
        return ENVD_E_USAGE;
    if (ms < 0)
        return ENVD_INVALID_ARGUMENT;
    o->timeout_ms = ms;
    return ENVD_OK;
}

envd_status envd_files_opts_set_sink_fd(envd_files_opts *o, int fd)
{
    if (!o)
        return ENVD_E_USAGE;
    if (fd < 0)
        return ENVD_INVALID_ARGUMENT;
    o->sink = ENVD_SINK_FD;
    o->sink_fd = fd;
    o->sink_cb = NULL;
    o->sink_ud = NULL;
    return ENVD_OK;
}

envd_status envd_files_opts_set_sink(envd_files_opts *o, envd_data_cb cb, void *ud)
{
    if (!o)
        return ENVD_E_USAGE;
    o->sink = cb ? ENVD_SINK_CB : ENVD_SINK_MEM;
    o->sink_fd = -1;
    o->sink_cb = cb;
    o->sink_ud = cb ? ud : NULL;
    return ENVD_OK;
}

envd_status envd_files_opts_set_parallel(envd_files_opts *o, int max_parts, int64_t min_part_size)
{
    if (!o)
        return ENVD_E_USAGE;
    if (max_parts < 0 || max_parts > ENVD_FILES_MAX_PARTS || min_part_size < 1)
        return ENVD_INVALID_ARGUMENT;
    o->parts = max_parts;
    o->part_min = min_part_size;
    return ENVD_OK;
}
