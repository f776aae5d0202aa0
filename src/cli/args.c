/* envdctl's option parser: one for every subcommand, knowing the global
 * options (accepted anywhere, as kubectl does) and --help, so that each
 * subcommand only lists its own flags and every usage error names the flag
 * at fault the same way. */
#include "envdctl.h"

#include <stdio.h>
#include <string.h>

const char cli_globals_help[] =
    "Global options (before or after the subcommand):\n"
    "  --config FILE        libenvd configuration file (YAML)\n"
    "  --domain HOST:PORT   envd or gateway address        [$ENVD_DOMAIN]\n"
    "  --scheme http|https\n"
    "  --token T            runtime access token           [$ENVD_RUNTIME_TOKEN]\n"
    "  --transport grpc|connect|auto\n"
    "  --user U             Linux user for commands and files (default root)\n"
    "  --sandbox ID|NAME    sandbox ID, or a name from the config file [$ENVD_SANDBOX_ID]\n"
    "  --k8s NS/NAME        an OpenKruise Sandbox object, found through Kubernetes\n";

static const struct {
    const char *name;
    size_t offset;
} globals[] = {
    {"config", offsetof(cli_globals, config)},
    {"domain", offsetof(cli_globals, domain)},
    {"scheme", offsetof(cli_globals, scheme)},
    {"token", offsetof(cli_globals, token)},
    {"transport", offsetof(cli_globals, transport)},
    {"user", offsetof(cli_globals, user)},
    {"sandbox", offsetof(cli_globals, sandbox)},
    {"k8s", offsetof(cli_globals, k8s)},
};

/* Splits "--name=value" / "--name": *name_len is the name's length, *eq the
 * value after '=' or NULL. */
static void split_long(const char *arg, size_t *name_len, const char **eq)
{
    const char *e = strchr(arg + 2, '=');
    *name_len = e ? (size_t)(e - (arg + 2)) : strlen(arg + 2);
    *eq = e ? e + 1 : NULL;
}

int cli_take_global(cli_ctx *ctx, int argc, char **argv, int *i)
{
    const char *arg = argv[*i];
    if (strncmp(arg, "--", 2) != 0 || !arg[2])
        return 0;
    size_t n;
    const char *eq;
    split_long(arg, &n, &eq);
    for (size_t k = 0; k < sizeof(globals) / sizeof(globals[0]); k++) {
        if (strlen(globals[k].name) != n || strncmp(arg + 2, globals[k].name, n) != 0)
            continue;
        const char *v = eq;
        if (!v) {
            if (*i + 1 >= argc) {
                cli_usage_error(ctx, "--%s needs a value", globals[k].name);
                return -1;
            }
            v = argv[++*i];
        }
        *(const char **)((char *)&ctx->g + globals[k].offset) = v;
        (*i)++;
        return 1;
    }
    return 0;
}

void cli_parser_init(cli_parser *p, cli_ctx *ctx, int argc, char **argv, const cli_opt *opts,
                     const char *usage)
{
    memset(p, 0, sizeof(*p));
    p->ctx = ctx;
    p->opts = opts;
    p->usage = usage;
    p->argc = argc;
    p->argv = argv;
    p->i = 1;
    /* Positional k is stored in argv[1 + k], a slot already read. */
    p->args = argv + 1;
}

int cli_stop(int o) { return o == CLI_HELP ? CLI_EXIT_OK : CLI_EXIT_USAGE; }

static int help(cli_parser *p)
{
    fputs(p->usage, stdout);
    fputs("\n", stdout);
    fputs(cli_globals_help, stdout);
    return CLI_HELP;
}

/* The value of an option that takes one: the rest of the word, or the next
 * argument. */
static int take_value(cli_parser *p, const cli_opt *o, const char *inline_value)
{
    if (inline_value) {
        p->value = inline_value;
    } else if (p->i < p->argc) {
        p->value = p->argv[p->i++];
    } else {
        cli_usage_error(p->ctx, "%s needs a value", p->flag);
        return CLI_BAD;
    }
    return o->id;
}

static int next_short(cli_parser *p)
{
    const char *word = p->argv[p->i];
    char c = word[p->short_at++];
    int last = word[p->short_at] == '\0';
    snprintf(p->flag, sizeof(p->flag), "-%c", c);
    if (c == 'h') {
        p->i++;
        return help(p);
    }
    for (const cli_opt *o = p->opts; o && o->name; o++) {
        if (o->short_name != c)
            continue;
        if (!o->has_value) {
            if (last) {
                p->i++;
                p->short_at = 0;
            }
            return o->id;
        }
        const char *inline_value = last ? NULL : word + p->short_at;
        p->i++;
        p->short_at = 0;
        return take_value(p, o, inline_value);
    }
    cli_usage_error(p->ctx, "unknown flag %s", p->flag);
    return CLI_BAD;
}

static int next_long(cli_parser *p)
{
    const char *word = p->argv[p->i];
    size_t n;
    const char *eq;
    split_long(word, &n, &eq);
    snprintf(p->flag, sizeof(p->flag), "--%.*s", (int)(n < 50 ? n : 50), word + 2);
    if (n == 4 && strncmp(word + 2, "help", 4) == 0) {
        p->i++;
        return help(p);
    }
    for (const cli_opt *o = p->opts; o && o->name; o++) {
        if (strlen(o->name) != n || strncmp(word + 2, o->name, n) != 0)
            continue;
        p->i++;
        if (!o->has_value) {
            if (eq) {
                cli_usage_error(p->ctx, "%s takes no value", p->flag);
                return CLI_BAD;
            }
            return o->id;
        }
        return take_value(p, o, eq);
    }
    cli_usage_error(p->ctx, "unknown flag %s", p->flag);
    return CLI_BAD;
}

int cli_next(cli_parser *p)
{
    p->value = NULL;
    if (p->short_at)
        return next_short(p);
    while (p->i < p->argc) {
        const char *word = p->argv[p->i];
        if (p->only_args || word[0] != '-' || word[1] == '\0') {
            /* "-" alone is an argument (stdin, stdout) */
            p->value = word;
            p->i++;
            p->args[p->nargs++] = (char *)word;
            if (p->stop_at_arg)
                p->only_args = 1;
            return CLI_ARG;
        }
        if (strcmp(word, "--") == 0) {
            p->i++;
            p->only_args = 1;
            continue;
        }
        if (word[1] != '-') {
            p->short_at = 1;
            return next_short(p);
        }
        int g = cli_take_global(p->ctx, p->argc, p->argv, &p->i);
        if (g < 0)
            return CLI_BAD;
        if (g == 0)
            return next_long(p);
    }
    return CLI_DONE;
}
