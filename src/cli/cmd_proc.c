/* envdctl ps and kill: the sandbox's processes, by pid or tag. */
#include "envdctl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char ps_usage[] =
    "usage: envdctl ps [--json]\n"
    "Lists the sandbox's processes started through envd: PID, TAG, command line.\n"
    "  --json   one JSON object per process and line\n";

static int ps_json(const envd_process_info *p)
{
    cli_buf b = {0};
    int rc = cli_buf_appendf(&b, "{\"pid\":%u,\"tag\":", (unsigned)p->pid);
    rc |= cli_buf_json_string(&b, p->tag, strlen(p->tag));
    rc |= cli_buf_append(&b, ",\"cmd\":", 7);
    rc |= cli_buf_json_string(&b, p->cmd, strlen(p->cmd));
    rc |= cli_buf_append(&b, ",\"args\":[", 9);
    for (size_t i = 0; i < p->n_args; i++) {
        rc |= cli_buf_append(&b, ",", i ? 1 : 0);
        rc |= cli_buf_json_string(&b, p->args[i], strlen(p->args[i]));
    }
    rc |= cli_buf_append(&b, "],\"cwd\":", 8);
    rc |= cli_buf_json_string(&b, p->cwd, strlen(p->cwd));
    rc |= cli_buf_append(&b, ",\"env\":{", 8);
    for (size_t i = 0; i < p->n_envs; i++) {
        rc |= cli_buf_append(&b, ",", i ? 1 : 0);
        rc |= cli_buf_json_string(&b, p->envs[i].name, strlen(p->envs[i].name));
        rc |= cli_buf_append(&b, ":", 1);
        rc |= cli_buf_json_string(&b, p->envs[i].value, strlen(p->envs[i].value));
    }
    rc |= cli_buf_append(&b, "}}\n", 3);
    if (rc == 0)
        fwrite(b.data, 1, b.len, stdout);
    cli_buf_free(&b);
    return rc;
}

int cmd_ps(cli_ctx *ctx, int argc, char **argv)
{
    static const cli_opt opts[] = {{"json", 0, 0, 1}, {NULL, 0, 0, 0}};
    cli_parser p;
    cli_parser_init(&p, ctx, argc, argv, opts, ps_usage);
    int json = 0, o;
    while ((o = cli_next(&p)) != CLI_DONE) {
        if (o < CLI_DONE)
            return cli_stop(o);
        json |= o == 1;
    }
    if (p.nargs)
        return cli_usage_error(ctx, "unexpected argument '%s'", p.args[0]);
    envd_client *c = NULL;
    int rc = cli_open(ctx, NULL, &c);
    envd_process_list *l = NULL;
    envd_error *err = NULL;
    envd_status st = rc ? ENVD_OK : envd_commands_list(c, &l, &err);
    if (!rc && st != ENVD_OK)
        rc = cli_fail(ctx, "list", st, err);
    if (!rc && !json)
        printf("%-8s %-16s %s\n", "PID", "TAG", "COMMAND");
    for (size_t i = 0; !rc && i < l->count; i++) {
        const envd_process_info *pi = &l->items[i];
        if (json) {
            rc = ps_json(pi) ? cli_errorf(ctx, "out of memory") : 0;
            continue;
        }
        printf("%-8u %-16s %s", (unsigned)pi->pid, *pi->tag ? pi->tag : "-", pi->cmd);
        for (size_t k = 0; k < pi->n_args; k++)
            printf(" %s", pi->args[k]);
        putchar('\n');
    }
    envd_process_list_free(l);
    envd_client_free(c);
    return rc;
}

static const char kill_usage[] =
    "usage: envdctl kill [--signal TERM|KILL] PID|--tag TAG\n"
    "Signals a process of the sandbox (default TERM, as kill(1)).\n"
    "  -s, --signal SIG   TERM or KILL (also SIGTERM, 15, SIGKILL, 9)\n"
    "  --tag TAG          every process started with this tag (run --tag)\n";

static int parse_signal(const char *s, envd_signal *sig)
{
    if (strncasecmp(s, "SIG", 3) == 0)
        s += 3;
    if (strcasecmp(s, "TERM") == 0 || strcmp(s, "15") == 0)
        *sig = ENVD_SIGNAL_SIGTERM;
    else if (strcasecmp(s, "KILL") == 0 || strcmp(s, "9") == 0)
        *sig = ENVD_SIGNAL_SIGKILL;
    else
        return -1;
    return 0;
}

/* Signals every process tagged tag. The tag is matched against List, not
 * sent to envd: envd's own tag lookup stops at the first tagged process it
 * meets, which may carry another tag, and then answers "not found". *sent
 * counts the processes reached. */
static int signal_tag(cli_ctx *ctx, envd_client *c, const char *tag, envd_signal sig, int *sent)
{
    envd_process_list *l = NULL;
    envd_error *err = NULL;
    envd_status st = envd_commands_list(c, &l, &err);
    if (st != ENVD_OK)
        return cli_fail(ctx, tag, st, err);
    int rc = 0;
    for (size_t i = 0; i < l->count && rc == 0; i++) {
        if (strcmp(l->items[i].tag, tag) != 0)
            continue;
        int one = 0;
        st = envd_commands_signal(c, ENVD_PID(l->items[i].pid), sig, &one, &err);
        if (st != ENVD_OK)
            rc = cli_fail(ctx, tag, st, err);
        *sent += one; /* 0: it ended since the list was made */
    }
    envd_process_list_free(l);
    return rc;
}

int cmd_kill(cli_ctx *ctx, int argc, char **argv)
{
    static const cli_opt opts[] = {{"signal", 's', 1, 1}, {"tag", 0, 1, 2}, {NULL, 0, 0, 0}};
    cli_parser p;
    cli_parser_init(&p, ctx, argc, argv, opts, kill_usage);
    envd_signal sig = ENVD_SIGNAL_SIGTERM;
    const char *tag = NULL;
    int o;
    while ((o = cli_next(&p)) != CLI_DONE) {
        if (o < CLI_DONE)
            return cli_stop(o);
        if (o == 1 && parse_signal(p.value, &sig) != 0)
            return cli_usage_error(ctx, "--signal: expected TERM or KILL, got '%s'", p.value);
        if (o == 2)
            tag = p.value;
    }
    uint64_t pid = 0;
    if ((tag && p.nargs) || (!tag && p.nargs != 1))
        return cli_usage_error(ctx, "expected one PID or --tag TAG");
    if (!tag && (cli_parse_uint(p.args[0], UINT32_MAX, &pid) != 0 || pid == 0))
        return cli_usage_error(ctx, "PID: expected a process id, got '%s'", p.args[0]);
    envd_client *c = NULL;
    int rc = cli_open(ctx, NULL, &c), sent = 0;
    envd_error *err = NULL;
    envd_status st = ENVD_OK;
    if (!rc && tag)
        rc = signal_tag(ctx, c, tag, sig, &sent);
    else if (!rc)
        st = envd_commands_signal(c, ENVD_PID(pid), sig, &sent, &err);
    if (!rc && st != ENVD_OK)
        rc = cli_fail(ctx, p.args[0], st, err);
    else if (!rc && !sent)
        rc = cli_errorf(ctx, "%s: no such process", tag ? tag : p.args[0]);
    envd_client_free(c);
    return rc;
}
