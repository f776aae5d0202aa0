/* envdctl sandbox: getting sandboxes and giving them back. `claim` makes an
 * OpenKruise Agents SandboxClaim and prints one JSON line per sandbox it
 * got (what `batch --sandboxes` reads); `release` deletes a claim and, when
 * asked, its sandboxes. */
#include "envdctl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

static const char sandbox_usage[] =
    "usage: envdctl sandbox claim NAMESPACE/TEMPLATE [--replicas N] [OPTIONS]\n"
    "       envdctl sandbox release NAMESPACE/CLAIM [--delete-sandboxes]\n"
    "claim: creates a SandboxClaim for N sandboxes of the SandboxSet TEMPLATE, waits for it\n"
    "and prints one JSON line per running sandbox claimed:\n"
    "  {\"id\":ID,\"k8s\":\"NS/NAME\",\"namespace\":NS,\"name\":NAME,\"claim\":\"NS/CLAIM\"}\n"
    "(a file of them is a `batch --sandboxes` file). A claim that gets fewer than N prints\n"
    "what it got, says why on stderr and exits 1. Interrupted, it releases the claim and\n"
    "its sandboxes.\n"
    "  --replicas N             how many (default 1)\n"
    "  --name NAME              the SandboxClaim's name (default TEMPLATE-<8 hex digits>)\n"
    "  --claim-timeout DUR      spec.claimTimeout (server default 1m)\n"
    "  --wait-ready-timeout DUR spec.waitReadyTimeout (server default 30s)\n"
    "  --wait DUR               give up waiting after DUR (default: both timeouts + 30s)\n"
    "  --label K=V              a label for the claimed sandboxes (repeatable)\n"
    "  --env K=V                an environment variable for them (repeatable)\n"
    "release: deletes the SandboxClaim; its sandboxes stay unless\n"
    "  --delete-sandboxes       every sandbox labelled with the claim goes too\n";

/* "NS/NAME" or "NAME" (the context's namespace): *ns malloc'd or NULL. */
static int split_ref(cli_ctx *ctx, const char *ref, char **ns, const char **name)
{
    const char *slash = strchr(ref, '/');
    *ns = NULL;
    if (!*ref || (slash && (slash == ref || !slash[1] || strchr(slash + 1, '/'))))
        return cli_usage_error(ctx, "expected NAMESPACE/NAME or NAME, got '%s'", ref);
    if (slash && !(*ns = strndup(ref, (size_t)(slash - ref))))
        return cli_errorf(ctx, "out of memory");
    *name = slash ? slash + 1 : ref;
    return 0;
}

const envd_k8s_options *cli_k8s_options(const cli_ctx *ctx)
{
    return ctx->file ? envd_config_file_k8s_options(ctx->file) : NULL;
}

/* One line of the claim's output. */
static int print_sandbox(const envd_k8s_claimed *c, const envd_k8s_sandbox *s)
{
    cli_buf b = {0};
    char ref[600];
    snprintf(ref, sizeof(ref), "%s/%s", s->namespace_, s->name);
    int rc = cli_buf_append(&b, "{\"id\":", 6);
    rc |= cli_buf_json_string(&b, s->id, strlen(s->id));
    rc |= cli_buf_append(&b, ",\"k8s\":", 7);
    rc |= cli_buf_json_string(&b, ref, strlen(ref));
    rc |= cli_buf_append(&b, ",\"namespace\":", 13);
    rc |= cli_buf_json_string(&b, s->namespace_, strlen(s->namespace_));
    rc |= cli_buf_append(&b, ",\"name\":", 8);
    rc |= cli_buf_json_string(&b, s->name, strlen(s->name));
    snprintf(ref, sizeof(ref), "%s/%s", c->namespace_, c->name);
    rc |= cli_buf_append(&b, ",\"claim\":", 9);
    rc |= cli_buf_json_string(&b, ref, strlen(ref));
    rc |= cli_buf_append(&b, "}\n", 2);
    if (rc == 0)
        rc = fwrite(b.data, 1, b.len, stdout) == b.len ? 0 : -1;
    cli_buf_free(&b);
    return rc;
}

/* An option of claim into co; 0 or the exit status. */
static int claim_option(cli_ctx *ctx, envd_k8s_claim_options *co, int o, const char *v)
{
    int64_t ms = 0;
    uint64_t n = 0;
    envd_status st = ENVD_OK;
    if (o == 1) {
        if (cli_parse_uint(v, 10000, &n) != 0 || n == 0)
            return cli_usage_error(ctx, "--replicas: expected 1 to 10000, got '%s'", v);
        st = envd_k8s_claim_options_set_replicas(co, (int)n);
    } else if (o == 2) {
        st = envd_k8s_claim_options_set_name(co, v);
    } else if (o >= 3 && o <= 5) {
        if (cli_parse_duration(v, &ms) != 0)
            return cli_usage_error(ctx, "bad duration '%s'", v);
        st = o == 3   ? envd_k8s_claim_options_set_claim_timeout_ms(co, ms)
             : o == 4 ? envd_k8s_claim_options_set_wait_ready_timeout_ms(co, ms)
                      : envd_k8s_claim_options_set_wait_ms(co, ms);
    } else {
        const char *eq = strchr(v, '=');
        char *key = eq ? strndup(v, (size_t)(eq - v)) : NULL;
        if (!eq || eq == v)
            st = ENVD_INVALID_ARGUMENT;
        else
            st = !key       ? ENVD_E_NOMEM
                 : o == 6 ? envd_k8s_claim_options_set_label(co, key, eq + 1)
                          : envd_k8s_claim_options_set_env(co, key, eq + 1);
        free(key);
        if (st == ENVD_INVALID_ARGUMENT)
            return cli_usage_error(ctx, "expected KEY=VALUE, got '%s'", v);
    }
    if (st == ENVD_INVALID_ARGUMENT || st == ENVD_OUT_OF_RANGE)
        return cli_usage_error(ctx, "bad value '%s': %s", v, envd_strerror(st));
    return st == ENVD_OK ? 0 : cli_errorf(ctx, "%s", envd_strerror(st));
}

/* Waits for the claim; an interrupt cancels it. 1 if interrupted. */
static int wait_claim(envd_future *f)
{
    while (envd_future_wait(f, 100) == ENVD_E_TIMEOUT)
        if (cli_interrupted) {
            envd_future_cancel(f);
            envd_future_wait(f, -1);
            return 1;
        }
    return 0;
}

/* "<template>-<8 hex digits>", chosen here so that an interrupted claim
 * can be released by name. */
static int default_name(const char *tmpl, char *out, size_t cap)
{
    unsigned char r[4];
    if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
        return -1;
    snprintf(out, cap, "%.*s-%02x%02x%02x%02x", 200, tmpl, r[0], r[1], r[2], r[3]);
    return 0;
}

/* Creates the claim (the future waits for it); Ctrl-C is caught from here
 * on, so that the caller can release it. 0 or the exit status, printed. */
static int claim_begin(cli_ctx *ctx, const char *ns, const char *tmpl,
                       const envd_k8s_claim_options *co, const char *name, int quiet,
                       envd_future **f)
{
    cli_catch_interrupts();
    envd_status st = envd_k8s_claim_async(ctx->rt, cli_k8s_options(ctx), ns, tmpl, co, ctx->cfg, f);
    if (st != ENVD_OK)
        return cli_fail(ctx, "claim", st, NULL);
    if (!quiet) /* from here on Ctrl-C releases */
        fprintf(stderr, "claiming sandboxes of %s as claim %s%s%s\n", tmpl, ns ? ns : "",
                ns ? "/" : "", name);
    return 0;
}

/* Claims and waits; Ctrl-C cancels the wait and releases the claim with
 * its sandboxes. 0 with *out (the result, NULL when the claim was never
 * made) and *st / *why (the claim's status and, when not OK, its message,
 * malloc'd); else the exit status, printed. */
static int acquire(cli_ctx *ctx, const char *ns, const char *tmpl, envd_k8s_claim_options *co,
                   const char *name, int quiet, envd_k8s_claimed **out, envd_status *st,
                   char **why)
{
    *out = NULL;
    *why = NULL;
    envd_future *f = NULL;
    int rc = claim_begin(ctx, ns, tmpl, co, name, quiet, &f);
    if (rc != 0)
        return rc;
    if (wait_claim(f)) {
        envd_future_free(f);
        envd_error *err = NULL;
        *st = envd_k8s_claim_release(ctx->rt, cli_k8s_options(ctx), ns, name, 1, &err);
        if (*st != ENVD_OK)
            return cli_fail(ctx, "interrupted; releasing the claim", *st, err);
        return cli_errorf(ctx, "interrupted; claim %s released with its sandboxes", name);
    }
    *out = envd_future_take_k8s_claimed(f);
    *st = envd_future_status(f);
    const envd_error *e = envd_future_error(f);
    if (*st != ENVD_OK && !(*why = strdup(e ? envd_error_message(e) : envd_strerror(*st)))) {
        envd_future_free(f);
        envd_k8s_claimed_free(*out);
        *out = NULL;
        return cli_errorf(ctx, "out of memory");
    }
    envd_future_free(f);
    return 0;
}

static int claim_run(cli_ctx *ctx, const char *ns, const char *tmpl, envd_k8s_claim_options *co,
                     const char *name)
{
    envd_k8s_claimed *c = NULL;
    envd_status st;
    char *why = NULL;
    int rc = acquire(ctx, ns, tmpl, co, name, 0, &c, &st, &why);
    for (size_t i = 0; c && i < c->count && rc == 0; i++)
        rc = print_sandbox(c, &c->sandboxes[i]) ? cli_errorf(ctx, "stdout: write failed") : 0;
    if (fflush(stdout) != 0 && rc == 0)
        rc = cli_errorf(ctx, "stdout: write failed");
    if (why) {
        rc = cli_errorf(ctx, "%s", why);
        if (c)
            cli_errorf(ctx,
                       "%zu of %d sandboxes usable; give them back with: envdctl sandbox "
                       "release %s/%s --delete-sandboxes",
                       c->count, c->replicas, c->namespace_, c->name);
    }
    free(why);
    envd_k8s_claimed_free(c);
    return rc;
}

int cli_claim_start(cli_ctx *ctx, const char *ref, int replicas, int quiet, cli_claim *out)
{
    memset(out, 0, sizeof(*out));
    const char *tmpl = NULL;
    envd_k8s_claim_options *co = envd_k8s_claim_options_new();
    int rc = co ? split_ref(ctx, ref, &out->ns, &tmpl) : cli_errorf(ctx, "out of memory");
    if (rc == 0 && (default_name(tmpl, out->name, sizeof(out->name)) != 0 ||
                    envd_k8s_claim_options_set_name(co, out->name) != ENVD_OK))
        rc = cli_usage_error(ctx, "--claim: '%s' is not a template name", tmpl);
    if (rc == 0 && envd_k8s_claim_options_set_replicas(co, replicas) != ENVD_OK)
        rc = cli_usage_error(ctx, "--replicas: expected 1 to 10000, got %d", replicas);
    if (rc == 0 && !(out->template_name = strdup(tmpl)))
        rc = cli_errorf(ctx, "out of memory");
    out->replicas = replicas;
    if (rc == 0)
        rc = claim_begin(ctx, out->ns, tmpl, co, out->name, quiet, &out->f);
    envd_k8s_claim_options_free(co);
    return rc;
}

int cli_claim_release(cli_ctx *ctx, const cli_claim *c)
{
    envd_error *err = NULL;
    envd_status st = envd_k8s_claim_release(ctx->rt, cli_k8s_options(ctx), c->ns, c->name, 1,
                                            &err);
    if (st != ENVD_OK)
        return cli_fail(ctx, "releasing the claim", st, err);
    return 0;
}

void cli_claim_free(cli_claim *c)
{
    envd_future_free(c->f);
    free(c->ns);
    free(c->template_name);
    memset(c, 0, sizeof(*c));
}

static int claim(cli_ctx *ctx, int argc, char **argv)
{
    static const cli_opt opts[] = {
        {"replicas", 'n', 1, 1}, {"name", 0, 1, 2}, {"claim-timeout", 0, 1, 3},
        {"wait-ready-timeout", 0, 1, 4}, {"wait", 0, 1, 5}, {"label", 0, 1, 6},
        {"env", 0, 1, 7},        {NULL, 0, 0, 0}};
    cli_parser p;
    cli_parser_init(&p, ctx, argc, argv, opts, sandbox_usage);
    envd_k8s_claim_options *co = envd_k8s_claim_options_new();
    if (!co)
        return cli_errorf(ctx, "out of memory");
    char name[300] = "";
    int o, rc = 0;
    while ((o = cli_next(&p)) != CLI_DONE) {
        if (o < CLI_DONE) {
            envd_k8s_claim_options_free(co);
            return cli_stop(o);
        }
        if (o > 0 && (rc = claim_option(ctx, co, o, p.value)) != 0)
            break;
        if (o == 2)
            snprintf(name, sizeof(name), "%s", p.value);
    }
    if (rc == 0 && p.nargs != 1)
        rc = cli_usage_error(ctx, "expected one NAMESPACE/TEMPLATE");
    char *ns = NULL;
    const char *tmpl = NULL;
    if (rc == 0)
        rc = split_ref(ctx, p.args[0], &ns, &tmpl);
    if (rc == 0 && !name[0] &&
        (default_name(tmpl, name, sizeof(name)) != 0 ||
         envd_k8s_claim_options_set_name(co, name) != ENVD_OK))
        rc = cli_usage_error(ctx, "'%s' is not a template name", tmpl);
    if (rc == 0)
        rc = cli_ctx_ready(ctx);
    if (rc == 0)
        rc = claim_run(ctx, ns, tmpl, co, name);
    envd_k8s_claim_options_free(co);
    free(ns);
    return rc;
}

static int release(cli_ctx *ctx, int argc, char **argv)
{
    static const cli_opt opts[] = {{"delete-sandboxes", 0, 0, 1}, {NULL, 0, 0, 0}};
    cli_parser p;
    cli_parser_init(&p, ctx, argc, argv, opts, sandbox_usage);
    int o, all = 0;
    while ((o = cli_next(&p)) != CLI_DONE) {
        if (o < CLI_DONE)
            return cli_stop(o);
        all |= o == 1;
    }
    if (p.nargs != 1)
        return cli_usage_error(ctx, "expected one NAMESPACE/CLAIM");
    char *ns = NULL;
    const char *name = NULL;
    int rc = split_ref(ctx, p.args[0], &ns, &name);
    if (rc == 0)
        rc = cli_ctx_ready(ctx);
    if (rc == 0) {
        envd_error *err = NULL;
        envd_status st = envd_k8s_claim_release(ctx->rt, cli_k8s_options(ctx), ns, name, all, &err);
        if (st != ENVD_OK)
            rc = cli_fail(ctx, "release", st, err);
    }
    free(ns);
    return rc;
}

int cmd_sandbox(cli_ctx *ctx, int argc, char **argv)
{
    ctx->no_sandbox_needed = 1; /* its output is Sandbox objects, not calls to them */
    if (argc >= 2 && strcmp(argv[1], "claim") == 0)
        return claim(ctx, argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "release") == 0)
        return release(ctx, argc - 1, argv + 1);
    if (argc >= 2 && (strcmp(argv[1], "create") == 0 || strcmp(argv[1], "list") == 0 ||
                      strcmp(argv[1], "kill") == 0)) /* the E2B-compatible API: cmd_sandbox_api.c */
        return cmd_sandbox_api(ctx, argc - 1, argv + 1);
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        fputs(sandbox_usage, stdout);
        fputs(cli_sandbox_api_usage, stdout);
        return CLI_EXIT_OK;
    }
    if (argc < 2)
        return cli_usage_error(ctx, "expected claim, release, create, list or kill");
    return cli_usage_error(ctx, "unknown sandbox command '%s' (claim, release, create, list, kill)",
                           argv[1]);
}
