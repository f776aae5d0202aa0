/* Shared by the commands files: options, results, and the unary process
 * calls the handle functions reuse. */
#ifndef ENVD_API_COMMANDS_H
#define ENVD_API_COMMANDS_H

#include "api/internal.h"
#include "core/kv.h"

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
    int stdin_enabled;
    int64_t timeout_ms;         /* process timeout; 0 = none */
    int64_t request_timeout_ms; /* < 0: the client's */
    int64_t idle_timeout_ms;    /* < 0: the client's */
    int pty;                    /* start with a terminal of pty_cols x pty_rows */
    uint32_t pty_cols, pty_rows;
    envd_output_cb on_stdout;
    void *stdout_ud;
    envd_output_cb on_stderr;
    void *stderr_ud;
    envd_output_cb on_pty;
    void *pty_ud;
    size_t max_output;
};

typedef struct envd_obuf {
    char *data; /* NUL-terminated when non-NULL */
    size_t len, cap;
} envd_obuf;

struct envd_command_result {
    envd_obuf out;
    envd_obuf err;
    int exit_code;
    char *error;
    int truncated;
};

/* The process a unary call or a Connect stream addresses: by pid, or by
 * tag when tag is non-NULL. */
typedef struct envd_proc_sel {
    uint32_t pid;
    const char *tag;
} envd_proc_sel;

/* Unary process calls (process_calls.c), as futures. */
envd_status envd_proc_signal_async(envd_client *c, envd_proc_sel sel, int signal,
                                   envd_future **out);
envd_status envd_proc_input_async(envd_client *c, envd_proc_sel sel, int pty, const void *data,
                                  size_t len, envd_future **out);
envd_status envd_proc_close_stdin_async(envd_client *c, envd_proc_sel sel, envd_future **out);
envd_status envd_proc_resize_async(envd_client *c, envd_proc_sel sel, uint32_t cols, uint32_t rows,
                                   envd_future **out);

#endif
