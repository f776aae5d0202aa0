/* envdctl: the subcommand table, the global options before the
 * subcommand's name, and the dispatch. */
#include "envdctl.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

static const struct {
    const char *name;
    cli_cmd_fn fn;
    const char *summary;
} commands[] = {
    {"run", cmd_run, "run a command in the sandbox, streaming its output"},
    {"code", cmd_code, "run code in the sandbox's code interpreter, printing its events"},
    {"batch", cmd_batch, "run a file of jobs over a pool of sandboxes"},
    {"cp", cmd_cp, "copy files and directories between here and sandboxes"},
    {"ls", cmd_ls, "list a directory"},
    {"stat", cmd_stat, "show a file's metadata"},
    {"rm", cmd_rm, "remove files or directories (recursively)"},
    {"mkdir", cmd_mkdir, "make a directory"},
    {"mv", cmd_mv, "move or rename a file"},
    {"cat", cmd_cat, "print a file"},
    {"ps", cmd_ps, "list the sandbox's processes"},
    {"kill", cmd_kill, "signal a process by pid or tag"},
    {"watch", cmd_watch, "print a directory's changes as JSON lines"},
    {"sandbox", cmd_sandbox, "get sandboxes (Kubernetes claims, the E2B API), list and release them"},
};
#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static void usage(FILE *to)
{
    fprintf(to, "usage: envdctl [GLOBAL OPTIONS] COMMAND [OPTIONS] [ARGS]\n\nCommands:\n");
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(to, "  %-7s %s\n", commands[i].name, commands[i].summary);
    fprintf(to, "\n%s\nRun 'envdctl COMMAND --help' for a command's options.\n",
            cli_globals_help);
}

static int dispatch(cli_ctx *ctx, int argc, char **argv)
{
    for (size_t i = 0; i < N_COMMANDS; i++) {
        if (strcmp(argv[0], commands[i].name) == 0) {
            ctx->cmd = commands[i].name;
            return commands[i].fn(ctx, argc, argv);
        }
    }
    return cli_usage_error(ctx, "unknown command '%s'", argv[0]);
}

int main(int argc, char **argv)
{
    /* A closed pipe on stdout is an error to report, not a silent death. */
    signal(SIGPIPE, SIG_IGN);
    cli_ctx ctx;
    cli_ctx_init(&ctx);
    int i = 1, rc;
    /* Global options before the subcommand's name. */
    for (;;) {
        if (i >= argc) {
            usage(stderr);
            rc = CLI_EXIT_USAGE;
            goto out;
        }
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            rc = CLI_EXIT_OK;
            goto out;
        }
        if (strcmp(a, "--version") == 0) {
            printf("envdctl (libenvd %s)\n", envd_version());
            rc = CLI_EXIT_OK;
            goto out;
        }
        int g = cli_take_global(&ctx, argc, argv, &i);
        if (g < 0) {
            rc = CLI_EXIT_USAGE;
            goto out;
        }
        if (g == 0)
            break;
    }
    if (argv[i][0] == '-') {
        rc = cli_usage_error(&ctx, "unknown flag %s before the command", argv[i]);
        goto out;
    }
    if (strcmp(argv[i], "help") == 0 && i + 1 < argc) {
        /* "envdctl help CMD" is "envdctl CMD --help" */
        char *help_argv[] = {argv[i + 1], "--help", NULL};
        rc = dispatch(&ctx, 2, help_argv);
        goto out;
    }
    rc = dispatch(&ctx, argc - i, argv + i);
out:
    fflush(stdout);
    cli_ctx_free(&ctx);
    return rc;
}
