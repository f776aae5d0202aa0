/*
 * libenvd: a C11 client for envd, the process and filesystem daemon inside
 * E2B-style and OpenKruise agent sandboxes.
 *
 * Shape of the API
 *   envd_runtime  the engine: worker threads draining gRPC completion queues,
 *                 one libcurl I/O thread and a timer thread. Share one per
 *                 process; any number of clients use it from any thread.
 *   envd_config   every option, behind setters. Copied by whoever takes it.
 *   envd_client   one sandbox (or one sandbox behind a gateway).
 *   envd_future   the result of an asynchronous operation. Every call has an
 *                 asynchronous form returning a future; the synchronous forms
 *                 start the future and wait for it.
 *
 * Conventions
 *   - Functions that can fail return envd_status; ENVD_OK is 0.
 *   - A function that starts an operation and returns an error produced no
 *     future, and no callback of it will ever run.
 *   - Strings passed in are copied; the caller keeps ownership.
 *   - Ownership of what is returned is written above each function.
 *   - Every *_free function accepts NULL.
 *   - Callbacks run on engine threads, in order for one stream and never
 *     concurrently for one stream. They must not block for long: a slow
 *     callback stalls that stream (and, through envd, the process writing
 *     to it).
 *
 * Teardown order: free handles and futures, then clients, then the runtime.
 * Freeing the runtime cancels whatever is still in flight: those futures
 * complete with ENVD_CANCELED.
 */
#ifndef ENVD_ENVD_H
#define ENVD_ENVD_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) && __GNUC__ >= 4
#define ENVD_API __attribute__((visibility("default")))
#else
#define ENVD_API
#endif

#define ENVD_VERSION_MAJOR 0
#define ENVD_VERSION_MINOR 1
#define ENVD_VERSION_PATCH 0
#define ENVD_VERSION_STRING "0.1.0"

/* Library version, "0.1.0". */
ENVD_API const char *envd_version(void);

/* ---------------------------------------------------------------- status */

/* 1..16 are the Connect/gRPC codes with their canonical numbers; 100 and up
 * are produced by the client itself. */
typedef enum envd_status {
    ENVD_OK = 0,
    ENVD_CANCELED = 1,
    ENVD_UNKNOWN = 2,
    ENVD_INVALID_ARGUMENT = 3,
    ENVD_DEADLINE_EXCEEDED = 4,
    ENVD_NOT_FOUND = 5,
    ENVD_ALREADY_EXISTS = 6,
    ENVD_PERMISSION_DENIED = 7,
    ENVD_RESOURCE_EXHAUSTED = 8,
    ENVD_FAILED_PRECONDITION = 9,
    ENVD_ABORTED = 10,
    ENVD_OUT_OF_RANGE = 11,
    ENVD_UNIMPLEMENTED = 12,
    ENVD_INTERNAL = 13,
    ENVD_UNAVAILABLE = 14,
    ENVD_DATA_LOSS = 15,
    ENVD_UNAUTHENTICATED = 16,

    ENVD_E_TRANSPORT = 100,    /* connection refused, reset, TLS, DNS ... */
    ENVD_E_PROTOCOL = 101,     /* the peer broke the protocol (bad frame, ...) */
    ENVD_E_COMMAND_EXIT = 102, /* a command ran and exited non-zero */
    ENVD_E_NO_SPACE = 103,     /* the sandbox is out of disk (HTTP 507) */
    ENVD_E_NOMEM = 104,        /* out of memory in the client */
    ENVD_E_BUSY = 105,         /* in-flight cap reached (fail-fast mode) */
    ENVD_E_SHUTDOWN = 106,     /* the runtime is shutting down */
    ENVD_E_TIMEOUT = 107,      /* a wait ran out of time; the operation goes on */
    ENVD_E_IDLE_TIMEOUT = 108, /* a stream went silent past the idle timeout */
    ENVD_E_IO = 109,           /* a local file or callback failed */
    ENVD_E_CONFIG = 110,       /* bad configuration */
    ENVD_E_USAGE = 111         /* called in a way the contract forbids */
} envd_status;

/* Static text for a status: "not_found", "command exited non-zero" ... */
ENVD_API const char *envd_strerror(envd_status status);

typedef enum envd_transport_kind {
    ENVD_TRANSPORT_NONE = 0, /* the error did not come from the wire */
    ENVD_TRANSPORT_GRPC = 1,
    ENVD_TRANSPORT_CONNECT = 2,
    ENVD_TRANSPORT_HTTP = 3, /* plain HTTP: /files */
    ENVD_TRANSPORT_AUTO = 4  /* config only: probe gRPC, fall back to Connect */
} envd_transport_kind;

/* ----------------------------------------------------------------- error */

/* An error: code, message, HTTP status where one exists, and the transport
 * that produced it. Errors returned through an `envd_error **` out-parameter
 * belong to the caller (free with envd_error_free). */
typedef struct envd_error envd_error;

ENVD_API envd_status envd_error_code(const envd_error *e);
/* Never NULL for a non-NULL e; valid as long as e. */
ENVD_API const char *envd_error_message(const envd_error *e);
/* The HTTP status of the response behind the error, or 0. */
ENVD_API int envd_error_http_status(const envd_error *e);
ENVD_API envd_transport_kind envd_error_transport(const envd_error *e);
/* For ENVD_E_COMMAND_EXIT: the exit code; otherwise 0. */
ENVD_API int envd_error_exit_code(const envd_error *e);
ENVD_API void envd_error_free(envd_error *e);

/* ---------------------------------------------------------------- config */

typedef struct envd_config envd_config;

/* A config holding the Go client's defaults: domain "domain.app", scheme
 * "http" (or $SCHEME), runtime port 49983, Authorization "Basic cm9vdDo="
 * (user root), request timeout 60 s, transport auto, keepalive 50 s, idle
 * timeout 110 s, workers = online CPUs, in-flight cap 4096 (blocking).
 * Caller frees with envd_config_free. NULL on out of memory. */
ENVD_API envd_config *envd_config_new(void);
ENVD_API envd_config *envd_config_dup(const envd_config *cfg);
ENVD_API void envd_config_free(envd_config *cfg);

/* "host[:port]" of the gateway or envd. */
ENVD_API envd_status envd_config_set_domain(envd_config *cfg, const char *domain);
/* "http" or "https". */
ENVD_API envd_status envd_config_set_scheme(envd_config *cfg, const char *scheme);
/* Sent as X-Access-Token when non-empty. */
ENVD_API envd_status envd_config_set_runtime_token(envd_config *cfg, const char *token);
/* Sent as e2b-sandbox-port; <= 0 means 49983. */
ENVD_API envd_status envd_config_set_runtime_port(envd_config *cfg, int port);
/* Sent as X-API-Key when non-empty. */
ENVD_API envd_status envd_config_set_api_key(envd_config *cfg, const char *key);
/* The whole Authorization header value; NULL or "" restores the default. */
ENVD_API envd_status envd_config_set_auth_header(envd_config *cfg, const char *value);
/* The Linux user for RPCs (Authorization: Basic base64("user:")) and for
 * /files (username=). Default "root". Replaces any auth header. */
ENVD_API envd_status envd_config_set_user(envd_config *cfg, const char *user);
/* When set, used as is as the runtime URL instead of scheme://domain. */
ENVD_API envd_status envd_config_set_sandbox_base_url(envd_config *cfg, const char *url);
/* Adds or replaces one custom header, sent last (it overrides built-ins). */
ENVD_API envd_status envd_config_set_header(envd_config *cfg, const char *name,
                                            const char *value);
/* Unary calls and the start of a stream; 0 = none. Default 60000. */
ENVD_API envd_status envd_config_set_request_timeout_ms(envd_config *cfg, int64_t ms);
ENVD_API envd_status envd_config_set_transport(envd_config *cfg, envd_transport_kind kind);
/* Keepalive-Ping-Interval in seconds, must be > 0 (envd crashes on 0). */
ENVD_API envd_status envd_config_set_keepalive_s(envd_config *cfg, int seconds);
/* A stream with no message for this long is dead; 0 = none. */
ENVD_API envd_status envd_config_set_idle_timeout_ms(envd_config *cfg, int64_t ms);
/* PEM bundle to trust for https instead of the system store. */
ENVD_API envd_status envd_config_set_ca_file(envd_config *cfg, const char *path);
/* Runtime options (read by envd_runtime_new). workers <= 0: online CPUs. */
ENVD_API envd_status envd_config_set_workers(envd_config *cfg, int workers);
/* Most operations in flight per runtime; past it a start call blocks, or
 * with fail_fast returns ENVD_E_BUSY. */
ENVD_API envd_status envd_config_set_max_inflight(envd_config *cfg, int max_inflight,
                                                  int fail_fast);

/* Reads back the effective runtime URL the config would produce. */

/* --------------------------------------------------------------- runtime */

typedef struct envd_runtime envd_runtime;

/* Starts the engine threads. cfg may be NULL (defaults); only the runtime
 * options (workers, in-flight cap) are read. Caller frees with
 * envd_runtime_free. */
ENVD_API envd_status envd_runtime_new(const envd_config *cfg, envd_runtime **out);
/* Cancels what is in flight, joins the threads. Must not be called from a
 * callback. */
ENVD_API void envd_runtime_free(envd_runtime *rt);

/* ---------------------------------------------------------------- future */

typedef struct envd_future envd_future;
typedef void (*envd_future_cb)(envd_future *f, void *ud);

/* Waits until f completes or timeout_ms passes (< 0: forever). Returns ENVD_OK
 * once complete (whatever the outcome) or ENVD_E_TIMEOUT. */
ENVD_API envd_status envd_future_wait(envd_future *f, int64_t timeout_ms);
/* Waits for the first of n futures; *index gets its position. */
ENVD_API envd_status envd_future_wait_any(envd_future *const *fs, size_t n, int64_t timeout_ms,
                                          size_t *index);
/* Waits until all n futures completed. */
ENVD_API envd_status envd_future_wait_all(envd_future *const *fs, size_t n, int64_t timeout_ms);
ENVD_API int envd_future_done(const envd_future *f);
/* The outcome once done: ENVD_OK or the error's code. */
ENVD_API envd_status envd_future_status(const envd_future *f);
/* The error once done, or NULL. Valid until the future is freed. */
ENVD_API const envd_error *envd_future_error(const envd_future *f);
/* Takes the error out of the future; caller frees it. */
ENVD_API envd_error *envd_future_take_error(envd_future *f);
/* Runs cb exactly once when f completes, on the completing thread; if f is
 * already complete, runs it now on this thread. One callback per future. */
ENVD_API envd_status envd_future_on_complete(envd_future *f, envd_future_cb cb, void *ud);
/* Asks the operation to stop; it completes with ENVD_CANCELED unless it
 * completed first. A no-op after completion. */
ENVD_API void envd_future_cancel(envd_future *f);
/* Releases f. A pending operation is cancelled; its callback still runs
 * (with ENVD_CANCELED) but must not touch f after... it receives f only for
 * reading the status. */
ENVD_API void envd_future_free(envd_future *f);

#ifdef __cplusplus
}
#endif
#endif
