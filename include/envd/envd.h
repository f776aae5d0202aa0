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
/* Speak cleartext HTTP/2 with prior knowledge (h2c) for Connect and /files
 * on http:// URLs, for gateways that accept only HTTP/2. Default off: stock
 * envd speaks HTTP/1.1 only. (gRPC is always HTTP/2.) */
ENVD_API envd_status envd_config_set_h2c(envd_config *cfg, int enabled);
/* PEM bundle to trust for https instead of the system store. */
ENVD_API envd_status envd_config_set_ca_file(envd_config *cfg, const char *path);
/* Runtime options (read by envd_runtime_new). workers <= 0: online CPUs. */
ENVD_API envd_status envd_config_set_workers(envd_config *cfg, int workers);
/* Most operations in flight per runtime; past it a start call blocks, or
 * with fail_fast returns ENVD_E_BUSY. */
ENVD_API envd_status envd_config_set_max_inflight(envd_config *cfg, int max_inflight,
                                                  int fail_fast);

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


/* ---------------------------------------------------------------- client */

typedef struct envd_client envd_client;

/* A client for one sandbox. sandbox_id is sent as e2b-sandbox-id (may be
 * NULL or "" for a direct envd). cfg may be NULL (defaults); it is copied.
 * Caller frees with envd_client_free, before the runtime. */
ENVD_API envd_status envd_client_new(envd_runtime *rt, const char *sandbox_id,
                                     const envd_config *cfg, envd_client **out,
                                     envd_error **err);
ENVD_API void envd_client_free(envd_client *c);
/* <scheme>://<domain>, or the sandbox base URL when set, as the Go client's
 * SandboxURL. Valid as long as the client. */
ENVD_API const char *envd_client_runtime_url(const envd_client *c);
/* The RPC transport calls use: GRPC or CONNECT once known; AUTO while the
 * endpoint has not been probed yet. */
ENVD_API envd_transport_kind envd_client_transport(const envd_client *c);

/* -------------------------------------------------------------- commands */

/* Output callback: raw bytes (not NUL-terminated), valid only during the
 * call. Runs on an engine thread. */
typedef void (*envd_output_cb)(void *ud, const uint8_t *data, size_t len);

typedef struct envd_cmd_opts envd_cmd_opts;

/* Options for run/start. Caller frees with envd_cmd_opts_free; the options
 * are copied by the call that takes them. */
ENVD_API envd_cmd_opts *envd_cmd_opts_new(void);
ENVD_API void envd_cmd_opts_free(envd_cmd_opts *o);
ENVD_API envd_status envd_cmd_opts_set_env(envd_cmd_opts *o, const char *name, const char *value);
ENVD_API envd_status envd_cmd_opts_set_cwd(envd_cmd_opts *o, const char *cwd);
/* Pipe stdin (default off: /dev/null, encoded explicitly as envd needs). */
ENVD_API envd_status envd_cmd_opts_set_stdin(envd_cmd_opts *o, int enabled);
ENVD_API envd_status envd_cmd_opts_set_tag(envd_cmd_opts *o, const char *tag);
/* Run as this user instead of the client's. */
ENVD_API envd_status envd_cmd_opts_set_user(envd_cmd_opts *o, const char *user);
/* Process timeout: envd SIGKILLs the process after ms (sent as
 * Connect-Timeout-Ms on Start). 0 (default) = none. */
ENVD_API envd_status envd_cmd_opts_set_timeout_ms(envd_cmd_opts *o, int64_t ms);
ENVD_API envd_status envd_cmd_opts_on_stdout(envd_cmd_opts *o, envd_output_cb cb, void *ud);
ENVD_API envd_status envd_cmd_opts_on_stderr(envd_cmd_opts *o, envd_output_cb cb, void *ud);
/* Keep at most this many bytes of stdout and of stderr in the result
 * (callbacks still see everything). Default 64 MiB each; 0 = keep none. */
ENVD_API envd_status envd_cmd_opts_set_max_output(envd_cmd_opts *o, size_t bytes);

typedef struct envd_command_result envd_command_result;

/* Output kept in the result; *len gets its length. NUL-terminated. */
ENVD_API const char *envd_command_result_stdout(const envd_command_result *r, size_t *len);
ENVD_API const char *envd_command_result_stderr(const envd_command_result *r, size_t *len);
ENVD_API int envd_command_result_exit_code(const envd_command_result *r);
/* envd's error text for a non-zero exit ("exit status 1"), or "". */
ENVD_API const char *envd_command_result_error(const envd_command_result *r);
/* Non-zero if output beyond the max-output cap was dropped from r. */
ENVD_API int envd_command_result_truncated(const envd_command_result *r);
ENVD_API void envd_command_result_free(envd_command_result *r);

/* Runs `/bin/bash -l -c cmd` and waits for it. On a non-zero exit both *res
 * and *err are set (ENVD_E_COMMAND_EXIT), as the Go client returns both.
 * Caller frees *res and *err. */
ENVD_API envd_status envd_commands_run(envd_client *c, const char *cmd, const envd_cmd_opts *o,
                                       envd_command_result **res, envd_error **err);
/* The future's result: envd_future_command_result. */
ENVD_API envd_status envd_commands_run_async(envd_client *c, const char *cmd,
                                             const envd_cmd_opts *o, envd_future **out);
/* The result of a run or handle-wait future, also when it failed with
 * ENVD_E_COMMAND_EXIT. Valid until the future is freed. */
ENVD_API const envd_command_result *envd_future_command_result(const envd_future *f);

typedef struct envd_handle envd_handle;

/* Starts a command and returns once envd reported its pid. Output goes to
 * the callbacks in o and into the result of envd_handle_wait. */
ENVD_API envd_status envd_commands_start(envd_client *c, const char *cmd, const envd_cmd_opts *o,
                                         envd_handle **out, envd_error **err);
ENVD_API envd_status envd_commands_start_async(envd_client *c, const char *cmd,
                                               const envd_cmd_opts *o, envd_future **out);
/* Attaches to a running process by pid (output from now on). */
ENVD_API envd_status envd_commands_connect(envd_client *c, uint32_t pid, const envd_cmd_opts *o,
                                           envd_handle **out, envd_error **err);
ENVD_API envd_status envd_commands_connect_async(envd_client *c, uint32_t pid,
                                                 const envd_cmd_opts *o, envd_future **out);
/* Moves the handle out of a start/connect future; caller frees it. */
ENVD_API envd_handle *envd_future_take_handle(envd_future *f);

ENVD_API uint32_t envd_handle_pid(const envd_handle *h);
/* Waits for the end of the process (timeout_ms < 0: forever; ENVD_E_TIMEOUT
 * leaves the handle usable). Same result/error rules as envd_commands_run.
 * The result can be taken once. */
ENVD_API envd_status envd_handle_wait(envd_handle *h, int64_t timeout_ms,
                                      envd_command_result **res, envd_error **err);
/* A future that completes when the process ends (owned by the handle: do
 * not free it; valid until the handle is freed). */
ENVD_API envd_future *envd_handle_future(envd_handle *h);
/* Stops receiving output; the process keeps running. */
ENVD_API void envd_handle_disconnect(envd_handle *h);
/* SIGKILL. Returns 1 if killed, 0 if it was already gone. */
ENVD_API int envd_handle_kill(envd_handle *h);
/* Disconnects if needed and frees. */
ENVD_API void envd_handle_free(envd_handle *h);

/* SIGKILL to pid: *killed = 0 when envd does not know the pid. */
ENVD_API envd_status envd_commands_kill(envd_client *c, uint32_t pid, int *killed,
                                        envd_error **err);
ENVD_API envd_status envd_commands_send_stdin(envd_client *c, uint32_t pid, const void *data,
                                              size_t len, envd_error **err);

typedef struct envd_process_list envd_process_list;
ENVD_API envd_status envd_commands_list(envd_client *c, envd_process_list **out,
                                        envd_error **err);
ENVD_API size_t envd_process_list_count(const envd_process_list *l);
ENVD_API uint32_t envd_process_list_pid(const envd_process_list *l, size_t i);
/* "" when the process has no tag. */
ENVD_API const char *envd_process_list_tag(const envd_process_list *l, size_t i);
ENVD_API const char *envd_process_list_cmd(const envd_process_list *l, size_t i);
ENVD_API size_t envd_process_list_argc(const envd_process_list *l, size_t i);
ENVD_API const char *envd_process_list_arg(const envd_process_list *l, size_t i, size_t j);
ENVD_API const char *envd_process_list_cwd(const envd_process_list *l, size_t i);
ENVD_API void envd_process_list_free(envd_process_list *l);

/* ------------------------------------------------------------ filesystem */

typedef enum envd_file_type {
    ENVD_FILE_TYPE_UNKNOWN = 0,
    ENVD_FILE_TYPE_FILE = 1,
    ENVD_FILE_TYPE_DIRECTORY = 2,
    ENVD_FILE_TYPE_SYMLINK = 3
} envd_file_type;

/* One file's metadata. Strings are valid as long as the entry. */
typedef struct envd_entry_info {
    const char *name;
    envd_file_type type;
    const char *path;
    int64_t size;
    uint32_t mode;           /* permission bits */
    const char *permissions; /* "-rw-r--r--" */
    const char *owner;
    const char *group;
    int64_t modified_sec;    /* Unix time; 0 when unknown */
    int32_t modified_nsec;
    const char *symlink_target; /* NULL when not a symlink */
} envd_entry_info;

ENVD_API void envd_entry_info_free(envd_entry_info *e);

/* Stat. Caller frees *out with envd_entry_info_free. */
ENVD_API envd_status envd_fs_get_info(envd_client *c, const char *path, envd_entry_info **out,
                                      envd_error **err);
ENVD_API envd_status envd_fs_get_info_async(envd_client *c, const char *path,
                                            envd_future **out);
/* The entry of a get_info future; valid until the future is freed. */
ENVD_API const envd_entry_info *envd_future_entry(const envd_future *f);
/* *exists = 0 on not_found (no error). */
ENVD_API envd_status envd_fs_exists(envd_client *c, const char *path, int *exists,
                                    envd_error **err);

/* ----------------------------------------------------------------- files */

/* Reads a whole file into memory (*data is NUL-terminated for convenience;
 * caller frees with free()). user NULL = the client's user. */
ENVD_API envd_status envd_files_read(envd_client *c, const char *path, const char *user,
                                     uint8_t **data, size_t *len, envd_error **err);
ENVD_API envd_status envd_files_read_async(envd_client *c, const char *path, const char *user,
                                           envd_future **out);
/* The bytes of a read future (NUL-terminated); valid until it is freed. */
ENVD_API const uint8_t *envd_future_bytes(const envd_future *f, size_t *len);
/* Writes (creates or overwrites; parents are created). */
ENVD_API envd_status envd_files_write(envd_client *c, const char *path, const void *data,
                                      size_t len, const char *user, envd_error **err);
/* data must stay valid until the future completes (it is not copied). */
ENVD_API envd_status envd_files_write_async(envd_client *c, const char *path, const void *data,
                                            size_t len, const char *user, envd_future **out);

#ifdef __cplusplus
}
#endif
/* Kubernetes lookup (NewFromK8s) and configuration files. */
#include "envd_k8s.h"

#endif
