/* Internal side of envd_error: constructors used by transports and the API
 * layer. The public accessors live in include/envd/envd.h. */
#ifndef ENVD_CORE_ERROR_H
#define ENVD_CORE_ERROR_H

#include "envd/envd.h"

#include <stdarg.h>
#include <stdint.h>

struct envd_error {
    envd_status code;
    int http_status;             /* 0 when no HTTP response was involved */
    envd_transport_kind transport;
    char *message;               /* never NULL */
    /* Set for ENVD_E_COMMAND_EXIT: the command's exit code. */
    int exit_code;
    /* For the retry decision (envd_retry_delay_ms, transport.h): the
     * envd_failure kind the transport saw, 0 when unknown or when the
     * server itself answered; and the reply's Retry-After in ms, -1 none. */
    int failure;
    int64_t retry_after_ms;
};

/* Allocates an error; the message is formatted with printf rules. Never
 * returns NULL: on allocation failure a static "out of memory" error is
 * returned, which envd_error_free ignores. */
envd_error *envd_error_new(envd_status code, envd_transport_kind transport, int http_status,
                           const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

envd_error *envd_error_newv(envd_status code, envd_transport_kind transport, int http_status,
                            const char *fmt, va_list ap);

/* Sets e->failure and e->retry_after_ms (-1: none); a no-op on the static
 * out-of-memory error. */
void envd_error_set_failure(envd_error *e, int failure);
void envd_error_set_retry_after(envd_error *e, int64_t ms);

/* Copy of e (NULL for NULL). */
envd_error *envd_error_dup(const envd_error *e);

/* Prefixes e's message with "<prefix>: " in place, as the Go client wraps
 * errors ("failed to kill process: ..."). Returns e. */
envd_error *envd_error_wrap(envd_error *e, const char *prefix);

/* Maps a lower-case Connect code name ("not_found") to the status; returns
 * ENVD_UNKNOWN for names it does not know. */
envd_status envd_status_from_connect_name(const char *name);

/* Maps a bare HTTP status of a response that carried no usable error body,
 * e.g. from a proxy or gateway (401, 403, 404, 429, 502, 503, 504, 507...). */
envd_status envd_status_from_http(int http_status);

#endif
