/* Shared by the commands files: options and results. */
#ifndef ENVD_API_COMMANDS_H
#define ENVD_API_COMMANDS_H

#include "api/internal.h"

#define ENVD_DEFAULT_MAX_OUTPUT ((size_t)64 << 20)

struct envd_cmd_opts {
    char **env_names;
    char **env_values;
    size_t n_envs;
    char *cwd;
    char *tag;
    char *user;
    int stdin_enabled;
    int64_t timeout_ms;
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

struct envd_command_result {
    envd_obuf out;
    envd_obuf err;
    int exit_code;
    char *error;
    int truncated;
};

#endif
