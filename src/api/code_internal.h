/* What the code interpreter's sources share (code.c: the calls;
 * code_data.c: options, request bodies, results; code_stream.c: the
 * execution stream). */
#ifndef ENVD_API_CODE_INTERNAL_H
#define ENVD_API_CODE_INTERNAL_H

#include "api/code_stream.h"
#include "api/internal.h"
#include "core/kv.h"

struct envd_code_opts {
    char *language;
    char *context_id;
    char *cwd;
    envd_kvlist env; /* names exact */
    int64_t timeout_ms;
    size_t max_line;
    size_t max_output;
};

extern const envd_code_opts envd_code_opts_default;

/* The /execute body as the Go client builds it (buildRunCodePayload):
 * code; context_id, or else language ("python" when unset); cwd, env_vars
 * and timeout (seconds) when set. NULL on out of memory. Caller frees. */
char *envd_code_request_json(const char *code, const envd_code_opts *o);
/* The POST /contexts body: cwd and language when non-empty. */
char *envd_code_context_request_json(const char *language, const char *cwd);

/* The collected execution: the public struct first, then its storage. */
typedef struct code_exec {
    envd_code_execution pub;
    envd_buf out, err;
    envd_code_result *results;
    size_t cap;
    envd_code_error error;
    int oom;
} code_exec;

code_exec *envd_code_execution_new(void);
/* Keeps one event (stdout and stderr up to max_output each). 0, or -1 on
 * out of memory (x->oom set). */
int envd_code_execution_add(code_exec *x, const envd_code_event *ev, size_t max_output);

/* Replies of the context calls: an envd_code_context, a list of them. On
 * error the result is untouched and an ENVD_E_PROTOCOL error returned. */
envd_error *envd_code_context_parse(const char *body, size_t len, void **result,
                                    envd_free_fn *free_fn);
envd_error *envd_code_context_list_parse(const char *body, size_t len, void **result,
                                         envd_free_fn *free_fn);

#endif
