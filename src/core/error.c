/* Error objects and status names. */
#include "core/error.h"
#include "core/alloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static envd_error oom_error = {ENVD_E_NOMEM, 0, ENVD_TRANSPORT_NONE, (char *)"out of memory",
                               0, 0, -1};

envd_error *envd_error_newv(envd_status code, envd_transport_kind transport, int http_status,
                            const char *fmt, va_list ap)
{
    envd_error *e = envd_calloc(1, sizeof(*e));
    if (!e)
        return &oom_error;
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        n = 0;
    e->message = envd_malloc((size_t)n + 1);
    if (!e->message) {
        free(e);
        return &oom_error;
    }
    vsnprintf(e->message, (size_t)n + 1, fmt, ap);
    e->code = code;
    e->transport = transport;
    e->http_status = http_status;
    e->retry_after_ms = -1;
    return e;
}

envd_error *envd_error_new(envd_status code, envd_transport_kind transport, int http_status,
                           const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    envd_error *e = envd_error_newv(code, transport, http_status, fmt, ap);
    va_end(ap);
    return e;
}

void envd_error_set_failure(envd_error *e, int failure)
{
    if (e && e != &oom_error)
        e->failure = failure;
}

void envd_error_set_retry_after(envd_error *e, int64_t ms)
{
    if (e && e != &oom_error)
        e->retry_after_ms = ms;
}

envd_error *envd_error_dup(const envd_error *e)
{
    if (!e)
        return NULL;
    envd_error *d = envd_error_new(e->code, e->transport, e->http_status, "%s", e->message);
    if (d != &oom_error) {
        d->exit_code = e->exit_code;
        d->failure = e->failure;
        d->retry_after_ms = e->retry_after_ms;
    }
    return d;
}

envd_error *envd_error_wrap(envd_error *e, const char *prefix)
{
    if (!e || e == &oom_error || !prefix)
        return e;
    size_t pl = strlen(prefix), ml = strlen(e->message);
    char *m = envd_malloc(pl + 2 + ml + 1);
    if (!m)
        return e;
    memcpy(m, prefix, pl);
    memcpy(m + pl, ": ", 2);
    memcpy(m + pl + 2, e->message, ml + 1);
    free(e->message);
    e->message = m;
    return e;
}

void envd_error_free(envd_error *e)
{
    if (!e || e == &oom_error)
        return;
    free(e->message);
    free(e);
}

envd_status envd_error_code(const envd_error *e) { return e ? e->code : ENVD_OK; }
const char *envd_error_message(const envd_error *e) { return e ? e->message : ""; }
int envd_error_http_status(const envd_error *e) { return e ? e->http_status : 0; }
envd_transport_kind envd_error_transport(const envd_error *e)
{
    return e ? e->transport : ENVD_TRANSPORT_NONE;
}
int envd_error_exit_code(const envd_error *e)
{
    return e && e->code == ENVD_E_COMMAND_EXIT ? e->exit_code : 0;
}

/* Connect's names, indexed by code. */
static const char *const connect_names[] = {
    "ok",        "canceled",          "unknown",        "invalid_argument",
    "deadline_exceeded", "not_found", "already_exists", "permission_denied",
    "resource_exhausted", "failed_precondition", "aborted", "out_of_range",
    "unimplemented", "internal",      "unavailable",    "data_loss",
    "unauthenticated",
};

envd_status envd_status_from_connect_name(const char *name)
{
    if (!name)
        return ENVD_UNKNOWN;
    for (size_t i = 1; i < sizeof(connect_names) / sizeof(connect_names[0]); i++)
        if (strcmp(name, connect_names[i]) == 0)
            return (envd_status)i;
    return ENVD_UNKNOWN;
}

envd_status envd_status_from_http(int s)
{
    /* The Connect protocol's mapping for replies without a Connect body,
     * plus 507 which envd uses for a full disk. */
    switch (s) {
    case 400: return ENVD_INVALID_ARGUMENT;
    case 401: return ENVD_UNAUTHENTICATED;
    case 403: return ENVD_PERMISSION_DENIED;
    case 404: return ENVD_NOT_FOUND;
    case 408: return ENVD_DEADLINE_EXCEEDED;
    case 409: return ENVD_ABORTED;
    case 412: return ENVD_FAILED_PRECONDITION;
    case 413: return ENVD_RESOURCE_EXHAUSTED;
    case 415: return ENVD_INTERNAL;
    case 416: return ENVD_OUT_OF_RANGE;
    case 429: return ENVD_UNAVAILABLE;
    case 499: return ENVD_CANCELED;
    case 501: return ENVD_UNIMPLEMENTED;
    case 502: return ENVD_UNAVAILABLE;
    case 503: return ENVD_UNAVAILABLE;
    case 504: return ENVD_UNAVAILABLE;
    case 507: return ENVD_E_NO_SPACE;
    default: return ENVD_UNKNOWN;
    }
}

const char *envd_strerror(envd_status s)
{
    if ((int)s >= 0 && (size_t)s < sizeof(connect_names) / sizeof(connect_names[0]))
        return connect_names[s];
    switch (s) {
    case ENVD_E_TRANSPORT: return "transport failure";
    case ENVD_E_PROTOCOL: return "protocol violation";
    case ENVD_E_COMMAND_EXIT: return "command exited non-zero";
    case ENVD_E_NO_SPACE: return "not enough space in the sandbox";
    case ENVD_E_NOMEM: return "out of memory";
    case ENVD_E_BUSY: return "too many operations in flight";
    case ENVD_E_SHUTDOWN: return "runtime shutting down";
    case ENVD_E_TIMEOUT: return "wait timed out";
    case ENVD_E_IDLE_TIMEOUT: return "stream idle timeout";
    case ENVD_E_IO: return "local I/O error";
    case ENVD_E_CONFIG: return "invalid configuration";
    case ENVD_E_USAGE: return "invalid use of the API";
    default: return "unrecognised status";
    }
}
