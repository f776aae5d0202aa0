/*
 * libenvd: the code interpreter (the Go client's CodeInterpreter).
 *
 * E2B's code-interpreter server runs beside envd in the sandbox, on its own
 * port (49999 by default), and is reached like envd: the runtime URL (or a
 * base URL of its own) with the client's headers, e2b-sandbox-port carrying
 * the code interpreter's port instead of envd's.
 *
 *   POST /execute            {"code", "language" | "context_id", "env_vars",
 *                             "cwd", "timeout"} -> a stream of JSON lines
 *                             (NDJSON), one event per line, ending with
 *                             {"type": "end_of_execution"}
 *   POST /contexts           {"language", "cwd"} -> {"id", "language", "cwd"}
 *   GET /contexts            -> [{"id", "language", "cwd"}, ...]
 *   DELETE /contexts/{id}
 *   POST /contexts/{id}/restart
 *
 * A context is one interpreter process: state (variables, imports) persists
 * from one execution to the next in the same context. Without a context an
 * execution goes to the server's default context of its language.
 *
 * Errors. A transport failure, an HTTP error status (400 for a request
 * naming both a language and a context, 404 for an unknown context, 5xx)
 * or a broken stream fails the future. An exception raised by the executed
 * code does not: the execution completed, the future is ENVD_OK, and
 * envd_code_execution.error holds its name, value and traceback (the Go
 * client's Execution.Error). Check that field, or use the blocking form's
 * *raised out-parameter.
 *
 * The stream is read incrementally and bounded: a line longer than the cap
 * (envd_code_opts_set_max_line, default ENVD_CODE_MAX_LINE_DEFAULT, as the
 * Go client) fails the execution with ENVD_RESOURCE_EXHAUSTED, naming the
 * cap. Lines of an unknown type (the server's {"type": "keepalive"}) are
 * skipped, as the Go client skips them. Unlike the Go client, a line that
 * is not a JSON object, or an event whose fields have the wrong JSON type,
 * fails the execution with ENVD_E_PROTOCOL instead of being dropped, and so
 * does a stream that ends without end_of_execution.
 */
#ifndef ENVD_ENVD_CODE_H
#define ENVD_ENVD_CODE_H

#include "envd.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ENVD_CODE_DEFAULT_PORT 49999
/* The Go client's cap on one line of the execution stream: 16 MiB. */
#define ENVD_CODE_MAX_LINE_DEFAULT ((int64_t)16 << 20)
/* What the collected form keeps of stdout and of stderr each, by default:
 * past it the text is cut and *_truncated set. */
#define ENVD_CODE_MAX_OUTPUT_DEFAULT ((int64_t)64 << 20)

/* ---------------------------------------------------------------- config */

/* Sent as e2b-sandbox-port on code-interpreter calls. 1..65535; 0 or less
 * means the default 49999 (as the Go client); above 65535 is refused. */
ENVD_API envd_status envd_config_set_code_port(envd_config *cfg, int port);
/* When set, the code interpreter's base URL instead of the runtime URL
 * (same rules as envd_config_set_sandbox_base_url). NULL or "" unsets. */
ENVD_API envd_status envd_config_set_code_base_url(envd_config *cfg, const char *url);

/* --------------------------------------------------------------- options */

typedef struct envd_code_opts envd_code_opts;

/* Options of one execution; strings are copied. Caller frees with
 * envd_code_opts_free (NULL is fine). NULL on out of memory. The setters
 * return ENVD_E_USAGE for a NULL o, ENVD_INVALID_ARGUMENT for a bad value,
 * ENVD_E_NOMEM. */
ENVD_API envd_code_opts *envd_code_opts_new(void);
ENVD_API void envd_code_opts_free(envd_code_opts *o);
/* "python" (the default when neither a language nor a context is set),
 * "javascript", "typescript", "r", "java", "bash": whatever the server has a
 * kernel for. NULL or "" unsets. The server refuses a request with both a
 * language and a context (HTTP 400), so the request carries only the
 * context when both are set, as the Go client sends it. */
ENVD_API envd_status envd_code_opts_set_language(envd_code_opts *o, const char *language);
/* Runs in this context (envd_code_context_create). NULL or "" unsets. */
ENVD_API envd_status envd_code_opts_set_context(envd_code_opts *o, const char *context_id);
/* Sent as "cwd" (the Go client sends it; E2B's server ignores it: a
 * context's directory is set when the context is created). */
ENVD_API envd_status envd_code_opts_set_cwd(envd_code_opts *o, const char *cwd);
/* Adds or replaces one environment variable for this execution only. The
 * name must be non-empty. */
ENVD_API envd_status envd_code_opts_set_env(envd_code_opts *o, const char *name,
                                            const char *value);
/* The whole execution, on the client (the request is cancelled when it runs
 * out: ENVD_DEADLINE_EXCEEDED); also sent as "timeout" in seconds as the Go
 * client does. 0 (default) = none. Negative: ENVD_INVALID_ARGUMENT. */
ENVD_API envd_status envd_code_opts_set_timeout_ms(envd_code_opts *o, int64_t ms);
/* The longest line accepted on the stream, 1 KiB .. 1 GiB. */
ENVD_API envd_status envd_code_opts_set_max_line(envd_code_opts *o, int64_t bytes);
/* What the collected form keeps of stdout and of stderr, each (0 keeps
 * nothing; the streaming callback still sees everything). */
ENVD_API envd_status envd_code_opts_set_max_output(envd_code_opts *o, int64_t bytes);

/* ---------------------------------------------------------------- events */

/* One result (a Jupyter display or the value of the last expression), every
 * representation the server sent; NULL where absent. text ... javascript
 * are the strings as sent (png, jpeg: base64; pdf as sent); json, data,
 * chart and extra are JSON objects, given as their JSON text. extra holds
 * the MIME types without a field of their own. */
typedef struct envd_code_result {
    const char *text, *html, *markdown, *svg, *png, *jpeg, *pdf, *latex, *javascript;
    const char *json, *data, *chart, *extra;
    int is_main_result; /* 1: the value of the last expression; 0: a display */
} envd_code_result;

/* An exception the executed code raised. traceback may hold ANSI colours
 * (IPython's). Never NULL members ("" when the server sent none). */
typedef struct envd_code_error {
    const char *name, *value, *traceback;
} envd_code_error;

typedef enum envd_code_event_type {
    ENVD_CODE_EVENT_EXECUTION_COUNT = 0, /* number_of_executions */
    ENVD_CODE_EVENT_STDOUT = 1,
    ENVD_CODE_EVENT_STDERR = 2,
    ENVD_CODE_EVENT_RESULT = 3,
    ENVD_CODE_EVENT_ERROR = 4,
    ENVD_CODE_EVENT_END = 5 /* end_of_execution, always the last */
} envd_code_event_type;

typedef struct envd_code_event {
    envd_code_event_type type;
    const char *text;               /* STDOUT, STDERR: the chunk; else NULL */
    size_t text_len;
    const char *timestamp;          /* STDOUT, STDERR: as sent, or NULL */
    const envd_code_result *result; /* RESULT */
    const envd_code_error *error;   /* ERROR */
    int64_t execution_count;        /* EXECUTION_COUNT */
} envd_code_event;

/* Called on the runtime's I/O thread, once per event, in stream order, never
 * concurrently for one execution; everything in ev is valid only during the
 * call. Must not block for long. Return 0 to go on; non-zero stops the
 * execution (the future fails with ENVD_CANCELED). */
typedef int (*envd_code_event_cb)(void *ud, const envd_code_event *ev);

/* ------------------------------------------------------------- execution */

/* What an execution produced, in arrival order. */
typedef struct envd_code_execution {
    const char *stdout_text; /* every stdout chunk, concatenated; "" if none */
    size_t stdout_len;
    const char *stderr_text;
    size_t stderr_len;
    int stdout_truncated, stderr_truncated; /* past envd_code_opts_set_max_output */
    const envd_code_result *results;
    size_t n_results;
    const envd_code_error *error; /* the code raised; NULL when it did not */
    int64_t execution_count;      /* -1 when the server sent none */
} envd_code_execution;

/* Runs code (non-empty; ENVD_E_USAGE otherwise, as for a NULL client) and
 * collects every event into the future's result (envd_future_code_execution).
 * cb may be NULL; when set it also sees every event as it arrives (the Go
 * client's OnStdout/OnResult/... on RunCode). o may be NULL (defaults) and
 * is not needed after the call. Cancelling the future closes the request;
 * E2B's server then interrupts the kernel. */
ENVD_API envd_status envd_code_run_async(envd_client *c, const char *code,
                                         const envd_code_opts *o, envd_code_event_cb cb,
                                         void *ud, envd_future **out);
/* The streaming form (RunCodeStreaming): events go to cb (required) and
 * nothing is collected, so memory stays bounded by the line cap. The
 * future has no result; it is ENVD_OK once end_of_execution came (an
 * exception in the code is an ERROR event, not a failure). */
ENVD_API envd_status envd_code_run_stream_async(envd_client *c, const char *code,
                                                const envd_code_opts *o, envd_code_event_cb cb,
                                                void *ud, envd_future **out);
/* The result of envd_code_run_async; NULL unless the future is ENVD_OK.
 * Owned by the future. */
ENVD_API const envd_code_execution *envd_future_code_execution(const envd_future *f);
ENVD_API void envd_code_execution_free(envd_code_execution *x);

/* Blocking: *out (caller frees with envd_code_execution_free) on ENVD_OK,
 * whether or not the code raised ((*out)->error says). */
ENVD_API envd_status envd_code_run(envd_client *c, const char *code, const envd_code_opts *o,
                                   envd_code_execution **out, envd_error **err);

/* -------------------------------------------------------------- contexts */

typedef struct envd_code_context {
    const char *id, *language, *cwd;
} envd_code_context;

typedef struct envd_code_contexts {
    const envd_code_context *items;
    size_t n;
} envd_code_contexts;

/* Creates a context. language NULL or "": the server's default, python;
 * cwd NULL or "": the server's default, /home/user (the reply's fields
 * default to those when omitted, as the Go client does). The future's
 * result: envd_future_code_context. */
ENVD_API envd_status envd_code_context_create_async(envd_client *c, const char *language,
                                                    const char *cwd, envd_future **out);
/* The future's result: envd_future_code_contexts. */
ENVD_API envd_status envd_code_context_list_async(envd_client *c, envd_future **out);
/* Removes a context (a non-empty id; ENVD_NOT_FOUND when the server has no
 * such context). No result. */
ENVD_API envd_status envd_code_context_remove_async(envd_client *c, const char *id,
                                                    envd_future **out);
/* Restarts a context's interpreter (its state is lost). No result. */
ENVD_API envd_status envd_code_context_restart_async(envd_client *c, const char *id,
                                                     envd_future **out);

/* Owned by the future; NULL unless it is ENVD_OK. */
ENVD_API const envd_code_context *envd_future_code_context(const envd_future *f);
ENVD_API const envd_code_contexts *envd_future_code_contexts(const envd_future *f);

/* Blocking forms; *out is the caller's (free with the matching _free). */
ENVD_API envd_status envd_code_context_create(envd_client *c, const char *language,
                                              const char *cwd, envd_code_context **out,
                                              envd_error **err);
ENVD_API envd_status envd_code_context_list(envd_client *c, envd_code_contexts **out,
                                            envd_error **err);
ENVD_API envd_status envd_code_context_remove(envd_client *c, const char *id, envd_error **err);
ENVD_API envd_status envd_code_context_restart(envd_client *c, const char *id,
                                               envd_error **err);
ENVD_API void envd_code_context_free(envd_code_context *x);
ENVD_API void envd_code_contexts_free(envd_code_contexts *x);

#ifdef __cplusplus
}
#endif

#endif
