/* envdctl run: a command in the sandbox with its output streamed live,
 * stdin forwarded (-i) or a terminal (-t: raw mode, resize on SIGWINCH),
 * and envdctl's exit status the command's (128+N for signal N, as a
 * shell reports it). */
#include "envdctl.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

/* envdctl's own failure to run the command or to see its end (no sandbox,
 * the transport broke): 255, as ssh does, so it is not mistaken for the
 * command's status. */
#define RUN_EXIT_LOST 255

static const char run_usage[] =
    "usage: envdctl run [-i] [-t] [--env K=V]... [--cwd DIR] [--timeout DUR] [--tag TAG]\n"
    "                   -- CMD [ARGS...]\n"
    "Runs CMD in the sandbox: one argument goes through the shell (bash -l -c), several\n"
    "run as argv. stdout and stderr are streamed as they come; the exit status is the\n"
    "command's, 128+N when signal N killed it, 255 when envdctl could not start it or\n"
    "lost the sandbox.\n"
    "  -i, --stdin       forward standard input (its end closes the command's stdin)\n"
    "  -t, --tty         a terminal: raw mode, window size followed; without CMD, a\n"
    "                    login shell\n"
    "  --env K=V         an environment variable (repeatable)\n"
    "  --cwd DIR         the working directory\n"
    "  --timeout DUR     kill the command after DUR (500ms, 10s, 2m)\n"
    "  --tag TAG         tag the process (for ps and kill --tag)\n"
    "SIGINT/SIGTERM to envdctl send SIGTERM to the command (a second one SIGKILL).\n";

typedef struct run_io {
    int out_failed; /* our stdout or stderr is gone: drop further output */
} run_io;

/* Engine thread: the bytes as they come, straight to our fd. A slow reader
 * of our stdout slows the command down through envd, which is the point. */
static void on_stdout(void *ud, const uint8_t *data, size_t len)
{
    run_io *io = ud;
    if (!io->out_failed && cli_write_all(STDOUT_FILENO, data, len) != 0)
        io->out_failed = 1;
}

static void on_stderr(void *ud, const uint8_t *data, size_t len)
{
    run_io *io = ud;
    if (!io->out_failed && cli_write_all(STDERR_FILENO, data, len) != 0)
        io->out_failed = 1;
}

typedef struct run_args {
    int stdin_on, tty;
    int64_t timeout_ms;
    const char *cwd, *tag;
    char **cmd;
    int ncmd;
} run_args;

static int add_env(cli_ctx *ctx, envd_cmd_opts *o, const char *kv)
{
    const char *eq = strchr(kv, '=');
    if (!eq || eq == kv)
        return cli_usage_error(ctx, "--env: expected K=V, got '%s'", kv);
    char *name = strndup(kv, (size_t)(eq - kv));
    envd_status st = name ? envd_cmd_opts_set_env(o, name, eq + 1) : ENVD_E_NOMEM;
    free(name);
    if (st == ENVD_E_NOMEM)
        return cli_errorf(ctx, "out of memory");
    return st == ENVD_OK ? 0 : cli_usage_error(ctx, "--env: '%s' is not usable", kv);
}

static int parse_run(cli_ctx *ctx, int argc, char **argv, envd_cmd_opts *o, run_args *a)
{
    static const cli_opt opts[] = {{"stdin", 'i', 0, 1}, {"tty", 't', 0, 2},
                                   {"env", 'e', 1, 3},   {"cwd", 0, 1, 4},
                                   {"timeout", 0, 1, 5}, {"tag", 0, 1, 6},
                                   {NULL, 0, 0, 0}};
    cli_parser p;
    cli_parser_init(&p, ctx, argc, argv, opts, run_usage);
    p.stop_at_arg = 1; /* "run ls -l": -l is the command's */
    int o_id, rc = 0;
    while (rc == 0 && (o_id = cli_next(&p)) != CLI_DONE) {
        if (o_id < CLI_DONE)
            return cli_stop(o_id) + 100;
        if (o_id == 1)
            a->stdin_on = 1;
        else if (o_id == 2)
            a->tty = 1;
        else if (o_id == 3)
            rc = add_env(ctx, o, p.value);
        else if (o_id == 4)
            a->cwd = p.value;
        else if (o_id == 5 && (cli_parse_duration(p.value, &a->timeout_ms) != 0 ||
                               a->timeout_ms == 0))
            rc = cli_usage_error(ctx, "--timeout: expected a duration (500ms, 10s, 2m), got '%s'",
                                 p.value);
        else if (o_id == 6)
            a->tag = p.value;
    }
    a->cmd = p.args;
    a->ncmd = p.nargs;
    if (rc == 0 && a->ncmd == 0 && !a->tty)
        rc = cli_usage_error(ctx, "missing CMD (write: envdctl run -- CMD [ARGS...])");
    return rc;
}

/* ------------------------------------------------------------- terminal */

static struct termios saved_tio;
static int raw_on;

static void tty_raw(void)
{
    struct termios t;
    if (!isatty(STDIN_FILENO) || tcgetattr(STDIN_FILENO, &saved_tio) != 0)
        return;
    t = saved_tio;
    cfmakeraw(&t);
    if (tcsetattr(STDIN_FILENO, TCSANOW, &t) == 0)
        raw_on = 1;
}

static void tty_restore(void)
{
    if (raw_on)
        tcsetattr(STDIN_FILENO, TCSANOW, &saved_tio);
    raw_on = 0;
}

static void tty_size(uint32_t *cols, uint32_t *rows)
{
    struct winsize ws;
    *cols = 80;
    *rows = 24;
    int fd = isatty(STDIN_FILENO) ? STDIN_FILENO : STDOUT_FILENO;
    if (ioctl(fd, TIOCGWINSZ, &ws) == 0 && ws.ws_col && ws.ws_row) {
        *cols = ws.ws_col;
        *rows = ws.ws_row;
    }
}

static volatile sig_atomic_t winch;
static void on_winch(int sig) { winch = sig; }

/* ----------------------------------------------------------------- run */

/* The shell's status for a process envd reports killed: envd gives Go's
 * ProcessState text ("signal: killed", "signal: terminated"), whose names
 * are the C library's strsignal() texts in lower case. */
static int signal_status(const char *error)
{
    const char *name = strstr(error, "signal: ");
    if (!name)
        return 128 + 9; /* killed by envd: the process timeout is SIGKILL */
    name += 8;
    for (int s = 1; s < 65; s++) {
        const char *t = strsignal(s);
        size_t n = t ? strlen(t) : 0;
        if (n && strncasecmp(name, t, n) == 0 && (name[n] == '\0' || name[n] == ' '))
            return 128 + s;
    }
    return 128 + 9;
}

/* Forwards what arrives on stdin: a chunk per SendInput call, each waited
 * for, so input is ordered and never piles up in memory. */
static int forward_input(cli_ctx *ctx, envd_client *c, uint32_t pid, int tty, int *eof)
{
    char buf[65536];
    ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return 0;
    envd_error *err = NULL;
    envd_status st;
    if (n <= 0) {
        *eof = 1;
        /* a terminal has no stdin to close; the shell takes Ctrl-D */
        st = tty ? ENVD_OK : envd_commands_close_stdin(c, ENVD_PID(pid), &err);
    } else {
        st = envd_commands_send_input(c, ENVD_PID(pid), tty ? ENVD_INPUT_PTY : ENVD_INPUT_STDIN,
                                      buf, (size_t)n, &err);
    }
    /* the process may have ended meanwhile: its end event tells the story */
    if (st == ENVD_NOT_FOUND) {
        envd_error_free(err);
        *eof = 1;
        return 0;
    }
    return st == ENVD_OK ? 0 : cli_fail(ctx, "stdin", st, err);
}

/* Until the process ends: input, window size changes, our signals. */
static int pump(cli_ctx *ctx, envd_client *c, envd_handle *h, const run_args *a)
{
    uint32_t pid = envd_handle_pid(h);
    int eof = !(a->stdin_on || a->tty), interrupts = 0, rc = 0;
    envd_future *done = envd_handle_future(h);
    while (!envd_future_done(done)) {
        struct pollfd pfd = {STDIN_FILENO, POLLIN, 0};
        int ready = eof ? (poll(NULL, 0, 20), 0) : poll(&pfd, 1, 20);
        if (ready > 0) {
            int r = forward_input(ctx, c, pid, a->tty, &eof);
            if (r) {
                eof = 1; /* input is lost; the command's own end still decides */
                rc = rc ? rc : r;
            }
        }
        if (winch) {
            winch = 0;
            uint32_t cols, rows;
            tty_size(&cols, &rows);
            envd_commands_resize(c, ENVD_PID(pid), cols, rows, NULL);
        }
        if (cli_interrupted) {
            cli_interrupted = 0;
            envd_signal sig = interrupts++ ? ENVD_SIGNAL_SIGKILL : ENVD_SIGNAL_SIGTERM;
            envd_commands_signal(c, ENVD_PID(pid), sig, NULL, NULL);
        }
    }
    return rc;
}

static int set_opts(cli_ctx *ctx, envd_cmd_opts *o, const run_args *a, run_io *io)
{
    envd_status st = envd_cmd_opts_on_stdout(o, on_stdout, io);
    if (st == ENVD_OK)
        st = envd_cmd_opts_on_stderr(o, on_stderr, io);
    if (st == ENVD_OK) /* the output is streamed, not kept: memory stays flat */
        st = envd_cmd_opts_set_max_output(o, 0);
    if (st == ENVD_OK && a->stdin_on && !a->tty)
        st = envd_cmd_opts_set_stdin(o, 1);
    if (st == ENVD_OK && a->timeout_ms)
        st = envd_cmd_opts_set_timeout_ms(o, a->timeout_ms);
    if (st != ENVD_OK)
        return cli_errorf(ctx, "options: %s", envd_strerror(st));
    if (a->cwd && envd_cmd_opts_set_cwd(o, a->cwd) != ENVD_OK)
        return cli_usage_error(ctx, "--cwd: '%s' is not usable", a->cwd);
    if (a->tag && envd_cmd_opts_set_tag(o, a->tag) != ENVD_OK)
        return cli_usage_error(ctx, "--tag: '%s' is not usable", a->tag);
    if (a->ncmd > 1) {
        /* p.args is not NULL-terminated: it lives in argv's slots */
        const char **v = calloc((size_t)a->ncmd + 1, sizeof(*v));
        if (!v)
            return cli_errorf(ctx, "out of memory");
        memcpy(v, a->cmd, (size_t)a->ncmd * sizeof(*v));
        st = envd_cmd_opts_set_argv(o, v);
        free(v);
        if (st != ENVD_OK)
            return cli_usage_error(ctx, "CMD: an argument is not usable");
    }
    if (a->tty) {
        uint32_t cols, rows;
        tty_size(&cols, &rows);
        if (envd_cmd_opts_set_pty(o, cols, rows) != ENVD_OK)
            return cli_errorf(ctx, "options: pty refused");
    }
    return 0;
}

/* The exit status from the end of the process. */
static int finish(cli_ctx *ctx, envd_handle *h)
{
    envd_command_result *res = NULL;
    envd_error *err = NULL;
    envd_status st = envd_handle_wait(h, -1, &res, &err);
    int rc;
    if (st == ENVD_OK)
        rc = res ? res->exit_code : 0;
    else if (st == ENVD_E_COMMAND_EXIT && res)
        rc = res->exit_code >= 0 ? res->exit_code & 0xff : signal_status(res->error);
    else {
        cli_fail(ctx, "command", st, err);
        err = NULL;
        rc = RUN_EXIT_LOST;
    }
    envd_error_free(err);
    envd_command_result_free(res);
    return rc;
}

int cmd_run(cli_ctx *ctx, int argc, char **argv)
{
    envd_cmd_opts *o = envd_cmd_opts_new();
    if (!o)
        return cli_errorf(ctx, "out of memory");
    run_args a;
    memset(&a, 0, sizeof(a));
    run_io io = {0};
    int rc = parse_run(ctx, argc, argv, o, &a);
    if (rc) {
        envd_cmd_opts_free(o);
        return rc >= 100 ? rc - 100 : rc;
    }
    envd_client *c = NULL;
    envd_handle *h = NULL;
    if ((rc = set_opts(ctx, o, &a, &io)) == 0 && (rc = cli_open(ctx, NULL, &c)) == CLI_EXIT_FAIL)
        rc = RUN_EXIT_LOST;
    if (rc == 0) {
        cli_catch_interrupts();
        envd_error *err = NULL;
        const char *cmd = a.ncmd == 1 ? a.cmd[0] : NULL;
        envd_status st = envd_commands_start(c, cmd, o, &h, &err);
        if (st != ENVD_OK) {
            cli_fail(ctx, "start", st, err);
            rc = st == ENVD_E_USAGE ? CLI_EXIT_USAGE : RUN_EXIT_LOST;
        }
    }
    if (rc == 0) {
        if (a.tty) {
            signal(SIGWINCH, on_winch);
            tty_raw();
        }
        int r = pump(ctx, c, h, &a);
        tty_restore();
        rc = finish(ctx, h);
        (void)r; /* a lost input is reported; the status is the command's */
    }
    envd_handle_free(h);
    envd_client_free(c);
    envd_cmd_opts_free(o);
    return rc;
}
