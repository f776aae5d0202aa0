/*
 * envdctl: the command line program over libenvd's public API.
 *
 * Shared declarations of the subcommands: the context holding the global
 * options (main.c parses them, globals.c turns them into a config, a
 * runtime and clients), the option parser every subcommand uses, and small
 * helpers (util.c). Only the headers in include/envd are used: the program is also the
 * proof that the public API is enough.
 *
 * Exit status: 0 success, 1 failure, 2 usage error (the message names the
 * flag or the argument at fault); `run` exits with the command's code.
 */
#ifndef ENVDCTL_H
#define ENVDCTL_H

#include <envd/envd.h>
#include <envd/envd_k8s.h>
#include <envd/envd_sandbox.h>

#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#define CLI_EXIT_OK 0
#define CLI_EXIT_FAIL 1
#define CLI_EXIT_USAGE 2

/* ----------------------------------------------------------- the context */

/* The global options, as given (NULL when absent). Accepted before or after
 * the subcommand's name; the environment fills what the flags leave out
 * (ENVD_DOMAIN, ENVD_SANDBOX_ID, ENVD_RUNTIME_TOKEN). */
typedef struct cli_globals {
    const char *config;    /* --config FILE */
    const char *domain;    /* --domain HOST:PORT */
    const char *scheme;    /* --scheme http|https */
    const char *token;     /* --token T */
    const char *transport; /* --transport grpc|connect|auto */
    const char *user;      /* --user U */
    const char *sandbox;   /* --sandbox ID|NAME */
    const char *k8s;       /* --k8s NS/NAME */
} cli_globals;

typedef struct cli_ctx {
    const char *cmd; /* the subcommand's name, for messages ("envdctl: ls: ...") */
    cli_globals g;
    /* Built on first use by cli_ctx_ready (under `lock`, so batch's threads
     * may race to it): the options (file, then environment, then flags), the
     * loaded file, and the one runtime every client of the process shares. */
    pthread_mutex_t lock;
    int ready;
    envd_config *cfg;
    envd_config_file *file;
    envd_runtime *rt;
    int token_explicit; /* a token came from --token or ENVD_RUNTIME_TOKEN */
    /* Set by a subcommand that talks to Kubernetes only (sandbox claim,
     * release): no --domain needed. */
    int no_sandbox_needed;
} cli_ctx;

void cli_ctx_init(cli_ctx *ctx);
/* Frees the runtime, config and file (clients must be freed before). */
void cli_ctx_free(cli_ctx *ctx);
/* Builds cfg, file and rt once. 0, or CLI_EXIT_USAGE / CLI_EXIT_FAIL with
 * the message printed. */
int cli_ctx_ready(cli_ctx *ctx);

/* Which sandbox: an ID or a config-file name, or a Kubernetes NS/NAME (or
 * NAME, the context's namespace). Both NULL: the global options' choice
 * (--k8s, else --sandbox, else ENVD_SANDBOX_ID, else the config file's first
 * sandbox, else none: a direct envd). */
typedef struct cli_sandbox {
    const char *id_or_name;
    const char *k8s;
    /* An ID's own address and token (a line of `envdctl sandbox create`),
     * used instead of the global ones (--token still wins); NULL: none. */
    const char *domain;
    const char *token;
} cli_sandbox;

/* The one way a sandbox spec becomes a client (envdctl's subcommands and
 * batch's pool): on ctx's runtime, with ctx's options and, for a config-file
 * entry, its own token (unless --token/ENVD_RUNTIME_TOKEN gave one). spec may
 * be NULL. Returns 0 and *out (caller frees with envd_client_free before
 * cli_ctx_free), or CLI_EXIT_FAIL / CLI_EXIT_USAGE with *errmsg (caller
 * frees with free()) saying what failed. Nothing is printed, except by the
 * first call when the global options themselves are unusable (a bad --domain,
 * a broken --config file: cli_ctx_ready prints that once). Blocks for a
 * Kubernetes lookup. Thread-safe. */
int cli_client_open(cli_ctx *ctx, const cli_sandbox *spec, envd_client **out, char **errmsg);
/* The same without blocking: either *out is set at once (an ID), or *pending
 * gets a future whose client is taken with envd_future_take_client (a
 * Kubernetes lookup; caller frees the future). */
int cli_client_open_async(cli_ctx *ctx, const cli_sandbox *spec, envd_client **out,
                          envd_future **pending, char **errmsg);
/* cli_client_open for a subcommand: sandbox NULL means the global choice;
 * the error is printed. 0 or the exit status. */
int cli_open(cli_ctx *ctx, const char *sandbox, envd_client **out);

/* ------------------------------------------------------ option parsing */

/* One option of a subcommand. The global options and --help/-h are known
 * to every parser and never reach the caller. */
typedef struct cli_opt {
    const char *name; /* long name without "--"; NULL ends the table */
    char short_name;  /* 0: none */
    int has_value;    /* takes a value: "--name V", "--name=V", "-n V", "-nV" */
    int id;           /* returned by cli_next; > 0 */
} cli_opt;

enum {
    CLI_ARG = 0,    /* a positional argument, in p->value */
    CLI_DONE = -1,  /* no more arguments */
    CLI_BAD = -2,   /* usage error, already printed: exit CLI_EXIT_USAGE */
    CLI_HELP = -3   /* --help was given and the usage printed: exit 0 */
};

typedef struct cli_parser {
    cli_ctx *ctx;
    const cli_opt *opts;
    const char *usage; /* printed by --help, and pointed to on errors */
    int argc;
    char **argv;
    int i;
    int short_at;      /* position inside a cluster of short options */
    int stop_at_arg;   /* the first positional ends option parsing (run) */
    int only_args;     /* after "--" (or stop_at_arg): the rest is positional */
    const char *value; /* the option's value, or the positional argument */
    char **args;       /* the positional arguments so far, gathered in argv's slots */
    int nargs;
    char flag[64];     /* the option as written, for messages ("--depth") */
} cli_parser;

/* argv[0] is the subcommand's name and is skipped. */
void cli_parser_init(cli_parser *p, cli_ctx *ctx, int argc, char **argv, const cli_opt *opts,
                     const char *usage);
/* The next option id (> 0), CLI_ARG (also appended to p->args), CLI_DONE,
 * CLI_BAD or CLI_HELP. */
int cli_next(cli_parser *p);
/* The exit status for CLI_BAD (CLI_EXIT_USAGE) or CLI_HELP (CLI_EXIT_OK):
 *   if (o < CLI_DONE) return cli_stop(o);
 * straight out of the subcommand. A parsing helper whose 0 means "go on"
 * must pass CLI_HELP up as such: cli_stop's 0 would run the command. */
int cli_stop(int o);
/* Recognises a global option at argv[*i] (and its value, "--x V" or
 * "--x=V"), stores it in g and advances *i past it. 1 if it was one, 0 if
 * not, -1 when its value is missing (printed). */
int cli_take_global(cli_ctx *ctx, int argc, char **argv, int *i);
/* The global options' help text. */
extern const char cli_globals_help[];

/* ------------------------------------------------------------- messages */

/* "envdctl: <cmd>: <fmt...>" on stderr, plus "(see envdctl <cmd> --help)";
 * returns CLI_EXIT_USAGE. */
int cli_usage_error(const cli_ctx *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* "envdctl: <cmd>: <fmt...>" on stderr; returns CLI_EXIT_FAIL. */
int cli_errorf(const cli_ctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* "envdctl: <cmd>: <what>: <error message or status text>"; frees err;
 * returns CLI_EXIT_FAIL (CLI_EXIT_USAGE for ENVD_E_USAGE). */
int cli_fail(const cli_ctx *ctx, const char *what, envd_status st, envd_error *err);
/* malloc'd "<what>: <message>" from an error (err may be NULL; not freed). */
char *cli_error_text(const char *what, envd_status st, const envd_error *err);
/* malloc'd printf; NULL on out of memory. */
char *cli_strdupf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* -------------------------------------------------------------- helpers */

/* SIGINT, SIGTERM and SIGHUP set cli_interrupted (to the signal's number)
 * instead of killing the program, so that a subcommand can stop its stream
 * and free what it holds; the waiting thread polls it. */
extern volatile sig_atomic_t cli_interrupted;
void cli_catch_interrupts(void);

/* "500ms", "10s", "2m", "1h", "1.5s" or plain (possibly fractional)
 * seconds into milliseconds. -1 on a malformed or negative value. */
int cli_parse_duration(const char *s, int64_t *ms);
/* A non-negative decimal integer up to max. -1 when malformed. */
int cli_parse_uint(const char *s, uint64_t max, uint64_t *out);
/* RFC 3339 UTC with milliseconds: "2026-12-02T05:50:25.123Z". buf >= 32. */
void cli_format_time(int64_t sec, int32_t nsec, char *buf, size_t cap);
/* Monotonic milliseconds. */
int64_t cli_now_ms(void);
/* JSON string literal of s (len bytes) appended to out; invalid UTF-8 and
 * control bytes are escaped so the line stays valid JSON. */
typedef struct cli_buf {
    char *data;
    size_t len, cap;
} cli_buf;
int cli_buf_append(cli_buf *b, const void *data, size_t len);
int cli_buf_appendf(cli_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int cli_buf_json_string(cli_buf *b, const char *s, size_t len);
void cli_buf_free(cli_buf *b);
/* Writes all of data to fd (retrying short writes and EINTR). 0 or -1. */
int cli_write_all(int fd, const void *data, size_t len);

/* A sandbox path argument: ":PATH" or "SANDBOX:PATH" (the part before the
 * first ':' holds no '/'); anything else is local. Returns 1 for a sandbox
 * path with *sandbox (NULL for ":PATH", else a malloc'd name) and *path
 * pointing into arg, 0 for a local one. */
int cli_split_remote(const char *arg, char **sandbox, const char **path);

/* ---------------------------------------------------------- subcommands */

typedef int (*cli_cmd_fn)(cli_ctx *ctx, int argc, char **argv);

int cmd_ls(cli_ctx *ctx, int argc, char **argv);
int cmd_stat(cli_ctx *ctx, int argc, char **argv);
int cmd_rm(cli_ctx *ctx, int argc, char **argv);
int cmd_mkdir(cli_ctx *ctx, int argc, char **argv);
int cmd_mv(cli_ctx *ctx, int argc, char **argv);
int cmd_cat(cli_ctx *ctx, int argc, char **argv);
int cmd_watch(cli_ctx *ctx, int argc, char **argv);
int cmd_ps(cli_ctx *ctx, int argc, char **argv);
int cmd_kill(cli_ctx *ctx, int argc, char **argv);
int cmd_run(cli_ctx *ctx, int argc, char **argv);
int cmd_code(cli_ctx *ctx, int argc, char **argv);
int cmd_cp(cli_ctx *ctx, int argc, char **argv);
int cmd_batch(cli_ctx *ctx, int argc, char **argv);
int cmd_sandbox(cli_ctx *ctx, int argc, char **argv);
/* sandbox create / list / kill (cmd_sandbox_api.c); argv[0] is the verb. */
int cmd_sandbox_api(cli_ctx *ctx, int argc, char **argv);
extern const char cli_sandbox_api_usage[];

/* batch --create TEMPLATE --count N (cmd_sandbox_api.c): sandboxes made
 * through the E2B-compatible API ($E2B_API_URL, $E2B_API_KEY or the
 * config's), 16 creates in flight, taken as each completes. */
typedef struct cli_created cli_created;
/* Starts the count creates. 0 with *out, or the exit status, printed (then
 * *out, when set, may hold creates that started: release and free it). */
int cli_create_start(cli_ctx *ctx, const char *template_id, int count, cli_created **out);
/* Hands each create completed since the last call to made() (which may
 * take the sandbox's client); a failed one is said on stderr and counted in
 * *failed (made NULL: only remembered). Never waits. Returns how many are
 * still in flight. Every sandbox made is remembered for the release. */
size_t cli_create_poll(cli_ctx *ctx, cli_created *c, int (*made)(void *ud, const envd_sandbox *s),
                       void *ud, size_t *failed);
/* Drops the creates still waiting for the limits (those sent go on). */
void cli_create_stop(cli_created *c);
/* Stops, waits for the creates sent, then kills every sandbox made, also
 * those never handed on (keep: kills none). *killed: how many. 0 or the
 * exit status, printed. */
int cli_create_release(cli_ctx *ctx, cli_created *c, int keep, size_t *killed);
/* How many sandboxes were made. */
size_t cli_created_count(const cli_created *c);
void cli_created_free(cli_created *c);

/* batch --claim NS/TEMPLATE (cmd_sandbox.c): a SandboxClaim being filled. */
typedef struct cli_claim {
    envd_future *f; /* envd_k8s_claim_async's: done once the claim completed */
    char *ns;       /* NULL: the context's namespace */
    char name[300]; /* the SandboxClaim, named here so that it can be released */
    char *template_name;
    int replicas;
} cli_claim;
/* Creates the claim for `replicas` sandboxes of NS/TEMPLATE (Ctrl-C is
 * caught from here on). 0, or the exit status, printed; either way free it
 * with cli_claim_free (release it first when f is set). */
int cli_claim_start(cli_ctx *ctx, const char *ref, int replicas, int quiet, cli_claim *out);
/* Deletes the claim and every Sandbox labelled with it, by name (a claim
 * that was never made is no error). 0 or the exit status, printed. */
int cli_claim_release(cli_ctx *ctx, const cli_claim *c);
void cli_claim_free(cli_claim *c);
/* The config file's Kubernetes options, or NULL. */
const envd_k8s_options *cli_k8s_options(const cli_ctx *ctx);

#endif
