/* Shared by the commands files: options, results, the unary process calls
 * the handle functions reuse, and the fast path of the output stream. */
#ifndef ENVD_API_COMMANDS_H
#define ENVD_API_COMMANDS_H

#include "api/internal.h"
#include "core/kv.h"
#include "process.pb-c.h"

#define ENVD_DEFAULT_MAX_OUTPUT ((size_t)64 << 20)

struct envd_cmd_opts {
    /* The environment, names matched exactly. env_names, env_values and
     * n_envs are the same storage under the names commands.c still reads;
     * drop the alias once it reads env.names, env.values and env.n. */
    union {
        envd_kvlist env;
        struct {
            char **env_names;
            char **env_values;
            size_t n_envs;
            size_t env_cap_;
        };
    };
    char *cwd;
    char *tag;
    char *user;
    char **argv; /* NULL-terminated, or NULL: run through the shell */
    int stdin_enabled;
    int stdin_set; /* set explicitly (a version gate applies to disabling it) */
    int detach;                 /* cancel does not kill */
    int64_t timeout_ms;         /* process timeout; 0 = none */
    int64_t request_timeout_ms; /* < 0: the client's */
    int64_t idle_timeout_ms;    /* < 0: the client's */
    int pty;                    /* a terminal of pty_cols x pty_rows */
    uint32_t pty_cols, pty_rows;
    envd_output_cb on_stdout;
    void *stdout_ud;
    envd_output_cb on_stderr;
    void *stderr_ud;
    size_t max_output;
};

typedef struct envd_obuf {
    char *data; /* NUL-terminated when non-NULL */
    size_t len, cap;
} envd_obuf;

/* The public result is the first member; the buffers behind it follow. */
typedef struct envd_cmd_result {
    envd_command_result pub;
    envd_obuf out;
    envd_obuf err;
    char *error;
} envd_cmd_result;

/* Points pub's fields at the buffers ("" for empty ones). */
void envd_cmd_result_publish(envd_cmd_result *r);

/* SendSignal (process_calls.c). urgent: takes no in-flight slot (a kill
 * sent while stopping); out NULL: fire and forget. */
envd_status envd_proc_signal_start(envd_client *c, const envd_proc *p, int signal, int urgent,
                                   envd_future **out);

/* Starters behind the handle's blocking rows (sync.c). */
envd_status envd_handle_input_async(envd_handle *h, const void *data, size_t len,
                                    envd_future **out);
envd_status envd_handle_close_stdin_async(envd_handle *h, envd_future **out);
envd_status envd_handle_resize_async(envd_handle *h, uint32_t cols, uint32_t rows,
                                     envd_future **out);

/* A usage error for a process reference: NULL, or an empty tag (the
 * message names it, see envd_start_error). */
envd_status envd_proc_check(const envd_proc *p);
/* The checks a starter addressing a process begins with, in this order:
 * out (has_out), the client, p (when has_p). *out is the caller's to
 * clear. */
envd_status envd_proc_begin(const envd_client *c, int has_p, const envd_proc *p, int has_out);
/* A usage error of a call with an err parameter: ENVD_E_USAGE, and *err
 * (when err is not NULL) says "<fn>: <what>". */
envd_status envd_usage_error(envd_error **err, const char *fn, const char *what);
/* The wire selector of a checked reference (points into p). */
void envd_proc_selector(Process__ProcessSelector *ps, const envd_proc *p);

/* The output fast path (commands.c): the hot message read in place, exactly
 * StartResponse{event: ProcessEvent{data: DataEvent{stdout|stderr|pty}}}
 * with nothing else in it. Returns 1 and sets *field (1 stdout, 2 stderr,
 * 3 pty), *data and *n when msg is that; 0 for anything else, which the
 * full decoder then handles (or rejects). Exposed for its unit test. */
int envd_peek_output(const uint8_t *msg, size_t len, int *field, const uint8_t **data, size_t *n);

#endif
