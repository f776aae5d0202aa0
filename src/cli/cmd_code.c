/* envdctl code: runs code in the sandbox's code interpreter (envd_code.h)
 * and prints its events as they come. */
#include "envdctl.h"

#include <envd/envd_code.h>

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* As `run`: envdctl could not run the code or lost the sandbox. */
#define CODE_EXIT_LOST 255
/* The code file is read whole; more is a mistake (the server takes one
 * JSON body). */
#define CODE_FILE_MAX ((size_t)64 << 20)

static const char code_usage[] =
    "usage: envdctl code [--language L] [--context ID] [--env K=V]... [--timeout DUR] FILE|-\n"
    "Runs the code in FILE (- for standard input) in the sandbox's code interpreter\n"
    "(port 49999 through the same gateway headers) and prints its events as they come:\n"
    "stdout to stdout, stderr to stderr, each result as text on stdout, an error with\n"
    "its traceback on stderr. Exit status: 0, 1 when the code raised an error, 2 for a\n"
    "usage error, 255 when envdctl could not run it.\n"
    "  --language L      python (default), javascript, r, ... (what the server has)\n"
    "  --context ID      run in this context (its state persists); not with --language\n"
    "  --env K=V         an environment variable for this execution (repeatable)\n"
    "  --timeout DUR     stop after DUR (500ms, 10s, 2m)\n";

typedef struct code_io {
    atomic_int raised;
    atomic_int out_failed;
} code_io;

static void put(code_io *io, int fd, const char *s, size_t n)
{
    if (!atomic_load(&io->out_failed) && cli_write_all(fd, s, n) != 0)
        atomic_store(&io->out_failed, 1);
}

/* A result as text: its text/plain, else the formats it has. */
static void put_result(code_io *io, const envd_code_result *r)
{
    if (r->text) {
        put(io, STDOUT_FILENO, r->text, strlen(r->text));
        put(io, STDOUT_FILENO, "\n", 1);
        return;
    }
    const char *names[] = {"html", "markdown", "svg", "png", "jpeg", "pdf", "latex",
                           "json", "javascript", "data", "chart"};
    const char *vals[] = {r->html, r->markdown, r->svg,        r->png,  r->jpeg, r->pdf,
                          r->latex, r->json,   r->javascript, r->data, r->chart};
    char line[160] = "[result:";
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (vals[i])
            snprintf(line + strlen(line), sizeof line - strlen(line), " %s", names[i]);
    snprintf(line + strlen(line), sizeof line - strlen(line), "]\n");
    put(io, STDOUT_FILENO, line, strlen(line));
}

/* On the runtime's I/O thread, in order. */
static int on_event(void *ud, const envd_code_event *ev)
{
    code_io *io = ud;
    switch (ev->type) {
    case ENVD_CODE_EVENT_STDOUT:
        put(io, STDOUT_FILENO, ev->text, ev->text_len);
        break;
    case ENVD_CODE_EVENT_STDERR:
        put(io, STDERR_FILENO, ev->text, ev->text_len);
        break;
    case ENVD_CODE_EVENT_RESULT:
        put_result(io, ev->result);
        break;
    case ENVD_CODE_EVENT_ERROR: {
        atomic_store(&io->raised, 1);
        const envd_code_error *e = ev->error;
        if (*e->traceback) { /* Python's ends with "Name: value" already */
            put(io, STDERR_FILENO, e->traceback, strlen(e->traceback));
            if (e->traceback[strlen(e->traceback) - 1] != '\n')
                put(io, STDERR_FILENO, "\n", 1);
        } else {
            char *s = cli_strdupf("%s: %s\n", e->name, e->value);
            if (s)
                put(io, STDERR_FILENO, s, strlen(s));
            free(s);
        }
        break;
    }
    case ENVD_CODE_EVENT_EXECUTION_COUNT:
    case ENVD_CODE_EVENT_END:
        break;
    }
    return 0;
}

/* The whole of FILE or stdin; NULL with the message printed. */
static char *read_code(cli_ctx *ctx, const char *path)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!f) {
        cli_errorf(ctx, "%s: %s", path, strerror(errno));
        return NULL;
    }
    cli_buf b = {0};
    char chunk[65536];
    size_t n;
    int bad = 0;
    while (!bad && (n = fread(chunk, 1, sizeof chunk, f)) > 0)
        bad = b.len + n > CODE_FILE_MAX || cli_buf_append(&b, chunk, n) != 0;
    bad = bad || ferror(f) || cli_buf_append(&b, "", 1) != 0;
    if (f != stdin)
        fclose(f);
    if (bad) {
        cli_errorf(ctx, "%s: %s", path,
                   b.len > CODE_FILE_MAX ? "larger than 64 MiB" : "cannot be read");
        cli_buf_free(&b);
        return NULL;
    }
    return b.data;
}

static int add_env(cli_ctx *ctx, envd_code_opts *o, const char *kv)
{
    const char *eq = strchr(kv, '=');
    if (!eq || eq == kv)
        return cli_usage_error(ctx, "--env: expected K=V, got '%s'", kv);
    char *name = strndup(kv, (size_t)(eq - kv));
    envd_status st = name ? envd_code_opts_set_env(o, name, eq + 1) : ENVD_E_NOMEM;
    free(name);
    return st == ENVD_OK ? 0 : cli_errorf(ctx, "--env: %s", envd_strerror(st));
}

static int parse_code(cli_ctx *ctx, int argc, char **argv, envd_code_opts *o, const char **file)
{
    static const cli_opt opts[] = {{"language", 'l', 1, 1}, {"context", 'c', 1, 2},
                                   {"env", 'e', 1, 3},      {"timeout", 0, 1, 4},
                                   {NULL, 0, 0, 0}};
    cli_parser p;
    cli_parser_init(&p, ctx, argc, argv, opts, code_usage);
    int id, rc = 0, lang = 0, context = 0;
    int64_t ms = 0;
    while (rc == 0 && (id = cli_next(&p)) != CLI_DONE) {
        if (id < CLI_DONE)
            return cli_stop(id) + 100;
        if (id == 1)
            lang = envd_code_opts_set_language(o, p.value) == ENVD_OK;
        else if (id == 2)
            context = envd_code_opts_set_context(o, p.value) == ENVD_OK;
        else if (id == 3)
            rc = add_env(ctx, o, p.value);
        else if (id == 4 && (cli_parse_duration(p.value, &ms) != 0 ||
                             envd_code_opts_set_timeout_ms(o, ms) != ENVD_OK))
            rc = cli_usage_error(ctx, "--timeout: expected a duration (500ms, 10s, 2m), got '%s'",
                                 p.value);
    }
    if (rc == 0 && lang && context) /* the server refuses both (HTTP 400) */
        rc = cli_usage_error(ctx, "--language and --context exclude each other");
    if (rc == 0 && p.nargs != 1)
        rc = cli_usage_error(ctx, p.nargs ? "expected one FILE" : "missing FILE (- for stdin)");
    *file = p.nargs == 1 ? p.args[0] : NULL;
    return rc;
}

/* Waits for the end or a signal (which cancels the execution). */
static int code_wait(cli_ctx *ctx, envd_future *f, code_io *io)
{
    while (envd_future_wait(f, 100) == ENVD_E_TIMEOUT)
        if (cli_interrupted)
            envd_future_cancel(f);
    envd_status st = envd_future_status(f);
    if (st != ENVD_OK) {
        cli_fail(ctx, "code", st, envd_future_take_error(f));
        return CODE_EXIT_LOST;
    }
    if (atomic_load(&io->out_failed)) {
        cli_errorf(ctx, "writing the output failed");
        return CODE_EXIT_LOST;
    }
    return atomic_load(&io->raised) ? CLI_EXIT_FAIL : CLI_EXIT_OK;
}

int cmd_code(cli_ctx *ctx, int argc, char **argv)
{
    envd_code_opts *o = envd_code_opts_new();
    if (!o)
        return cli_errorf(ctx, "out of memory");
    const char *file = NULL;
    int rc = parse_code(ctx, argc, argv, o, &file);
    if (rc >= 100) { /* --help, or a usage error the parser printed */
        envd_code_opts_free(o);
        return rc - 100;
    }
    char *code = NULL;
    envd_client *c = NULL;
    if (rc == 0 && !(code = read_code(ctx, file)))
        rc = CLI_EXIT_FAIL;
    else if (rc == 0 && !*code)
        rc = cli_usage_error(ctx, "%s: no code in it", file);
    if (rc == 0 && (rc = cli_open(ctx, NULL, &c)) == 0) {
        cli_catch_interrupts();
        fflush(stdout); /* events go to the fds directly */
        code_io io = {0};
        envd_future *f = NULL;
        envd_status st = envd_code_run_stream_async(c, code, o, on_event, &io, &f);
        if (st != ENVD_OK)
            rc = cli_fail(ctx, "code", st, NULL);
        else
            rc = code_wait(ctx, f, &io);
        envd_future_free(f);
        envd_client_free(c);
    }
    free(code);
    envd_code_opts_free(o);
    return rc;
}
