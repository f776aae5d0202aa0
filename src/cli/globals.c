/* envdctl's global options: the configuration (config file, then the
 * environment the quick start reads, then flags), the one runtime of the
 * process, and the one function turning a sandbox spec (an ID, a name from
 * the config file, or a Kubernetes NS/NAME) into a client. */
#include "envdctl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cli_ctx_init(cli_ctx *ctx)
{
    memset(ctx, 0, sizeof(*ctx));
    pthread_mutex_init(&ctx->lock, NULL);
}

void cli_ctx_free(cli_ctx *ctx)
{
    envd_runtime_free(ctx->rt);
    envd_config_free(ctx->cfg);
    envd_config_file_free(ctx->file);
    ctx->rt = NULL;
    ctx->cfg = NULL;
    ctx->file = NULL;
    ctx->ready = 0;
    pthread_mutex_destroy(&ctx->lock);
}

/* A flag's value, else the environment variable's; *from names the source
 * for messages. */
static const char *flag_or_env(const char *flag, const char *flag_name, const char *env,
                               const char **from)
{
    if (flag) {
        *from = flag_name;
        return flag;
    }
    const char *v = env ? getenv(env) : NULL;
    *from = env;
    return v && *v ? v : NULL;
}

static int parse_transport(const char *s, envd_transport_kind *kind)
{
    if (strcmp(s, "grpc") == 0)
        *kind = ENVD_TRANSPORT_GRPC;
    else if (strcmp(s, "connect") == 0)
        *kind = ENVD_TRANSPORT_CONNECT;
    else if (strcmp(s, "auto") == 0)
        *kind = ENVD_TRANSPORT_AUTO;
    else
        return -1;
    return 0;
}

/* A setter's refusal of an option: a usage error, except for want of
 * memory. */
static int refused(cli_ctx *ctx, envd_status st, const char *what)
{
    if (st == ENVD_E_NOMEM)
        return cli_errorf(ctx, "%s: out of memory", what);
    return cli_usage_error(ctx, "%s: %s", what, envd_config_last_error(ctx->cfg));
}

/* Applies the environment and the flags on top of ctx->cfg. */
static int apply_options(cli_ctx *ctx)
{
    const cli_globals *g = &ctx->g;
    const char *from = NULL, *v;
    envd_config *cfg = ctx->cfg;
    envd_status st;
    if ((v = flag_or_env(g->domain, "--domain", "ENVD_DOMAIN", &from)) &&
        (st = envd_config_set_domain(cfg, v)) != ENVD_OK)
        return refused(ctx, st, from);
    if (!v && !ctx->file && !ctx->no_sandbox_needed)
        return cli_usage_error(ctx, "no sandbox address: give --domain HOST:PORT (or "
                                    "$ENVD_DOMAIN) or --config FILE");
    if (g->scheme && (st = envd_config_set_scheme(cfg, g->scheme)) != ENVD_OK)
        return refused(ctx, st, "--scheme");
    if ((v = flag_or_env(g->token, "--token", "ENVD_RUNTIME_TOKEN", &from))) {
        if ((st = envd_config_set_runtime_token(cfg, v)) != ENVD_OK)
            return refused(ctx, st, from);
        ctx->token_explicit = 1;
    }
    if (g->user && (st = envd_config_set_user(cfg, g->user)) != ENVD_OK)
        return refused(ctx, st, "--user");
    if (g->transport) {
        envd_transport_kind kind;
        if (parse_transport(g->transport, &kind) != 0)
            return cli_usage_error(ctx, "--transport: expected grpc, connect or auto, got '%s'",
                                   g->transport);
        if ((st = envd_config_set_transport(cfg, kind)) != ENVD_OK)
            return refused(ctx, st, "--transport");
    }
    return 0;
}

static int build(cli_ctx *ctx)
{
    envd_error *err = NULL;
    envd_status st;
    if (ctx->g.config) {
        st = envd_config_file_load(ctx->g.config, NULL, &ctx->file, &err);
        if (st != ENVD_OK) {
            int rc = cli_fail(ctx, "--config", st, err);
            return st == ENVD_E_CONFIG ? CLI_EXIT_USAGE : rc;
        }
        ctx->cfg = envd_config_dup(envd_config_file_config(ctx->file));
    } else {
        ctx->cfg = envd_config_new();
    }
    if (!ctx->cfg)
        return cli_fail(ctx, "config", ENVD_E_NOMEM, NULL);
    int rc = apply_options(ctx);
    if (rc)
        return rc;
    if (!ctx->g.sandbox && !ctx->g.k8s) {
        const char *env = getenv("ENVD_SANDBOX_ID");
        if (env && *env)
            ctx->g.sandbox = env;
    }
    if ((st = envd_runtime_new(ctx->cfg, &ctx->rt)) != ENVD_OK)
        return cli_fail(ctx, "runtime", st, NULL);
    return 0;
}

int cli_ctx_ready(cli_ctx *ctx)
{
    pthread_mutex_lock(&ctx->lock);
    int rc = ctx->ready ? ctx->ready - 1 : build(ctx);
    ctx->ready = rc + 1; /* a failure is remembered, not retried */
    pthread_mutex_unlock(&ctx->lock);
    return rc;
}

/* ------------------------------------------------------- sandbox -> client */

/* Where a spec leads: a sandbox ID (maybe NULL: a direct envd), or a
 * Kubernetes object; and the token of a config-file entry. */
typedef struct target {
    const char *id;
    char *ns; /* owned; NULL: the context's namespace */
    const char *name;
    const char *token;
    const char *domain; /* NULL: the config's */
} target;

static int parse_k8s(const char *spec, const char *flag, target *t, char **errmsg)
{
    const char *slash = strchr(spec, '/');
    if (!*spec || (slash && (slash == spec || !slash[1] || strchr(slash + 1, '/')))) {
        *errmsg = cli_strdupf("%s: expected NAMESPACE/NAME or NAME, got '%s'", flag, spec);
        return CLI_EXIT_USAGE;
    }
    if (slash && !(t->ns = strndup(spec, (size_t)(slash - spec)))) {
        *errmsg = cli_strdupf("out of memory");
        return CLI_EXIT_FAIL;
    }
    t->name = slash ? slash + 1 : spec;
    return 0;
}

static int resolve(cli_ctx *ctx, const cli_sandbox *spec, target *t, char **errmsg)
{
    memset(t, 0, sizeof(*t));
    const char *k8s = spec && (spec->k8s || spec->id_or_name) ? spec->k8s : ctx->g.k8s;
    const char *idn = spec && (spec->k8s || spec->id_or_name) ? spec->id_or_name : ctx->g.sandbox;
    if (k8s)
        return parse_k8s(k8s, spec && spec->k8s ? "sandbox" : "--k8s", t, errmsg);
    const envd_sandbox_entry *e = NULL;
    if (ctx->file)
        e = idn ? envd_config_file_sandbox_find(ctx->file, idn)
                : envd_config_file_sandboxes(ctx->file, NULL);
    if (!e) {
        t->id = idn; /* not a name in the file: an ID */
        if (spec && spec->id_or_name && spec->token && !ctx->token_explicit)
            t->token = spec->token;
        if (spec && spec->id_or_name)
            t->domain = spec->domain;
        return 0;
    }
    if (e->runtime_token && !ctx->token_explicit)
        t->token = e->runtime_token;
    if (!e->k8s_name) {
        t->id = e->id;
        return 0;
    }
    t->name = e->k8s_name;
    if (e->k8s_namespace && !(t->ns = strdup(e->k8s_namespace))) {
        *errmsg = cli_strdupf("out of memory");
        return CLI_EXIT_FAIL;
    }
    return 0;
}

static int open_target(cli_ctx *ctx, const target *t, envd_client **out, envd_future **pending,
                       char **errmsg)
{
    envd_config *own = NULL;
    const envd_config *cfg = ctx->cfg;
    if (t->token || t->domain) {
        const char *bad = !(own = envd_config_dup(ctx->cfg)) ? "config"
                          : t->token && envd_config_set_runtime_token(own, t->token) != ENVD_OK
                              ? "token"
                          : t->domain && envd_config_set_domain(own, t->domain) != ENVD_OK
                              ? "domain"
                              : NULL;
        if (bad) {
            *errmsg = cli_strdupf("sandbox %s: %s", bad, envd_config_last_error(own));
            envd_config_free(own);
            return CLI_EXIT_FAIL;
        }
        cfg = own;
    }
    envd_error *err = NULL;
    envd_status st;
    const envd_k8s_options *ko = ctx->file ? envd_config_file_k8s_options(ctx->file) : NULL;
    const char *what = "client";
    if (t->name && pending) {
        what = "k8s lookup";
        st = envd_client_from_k8s_async(ctx->rt, t->ns, t->name, cfg, ko, pending);
    } else if (t->name) {
        what = "k8s lookup";
        st = envd_client_from_k8s(ctx->rt, t->ns, t->name, cfg, ko, out, &err);
    } else {
        st = envd_client_new(ctx->rt, t->id, cfg, out, &err);
    }
    envd_config_free(own);
    if (st != ENVD_OK) {
        *errmsg = cli_error_text(what, st, err);
        envd_error_free(err);
        return st == ENVD_E_USAGE || st == ENVD_INVALID_ARGUMENT ? CLI_EXIT_USAGE
                                                                  : CLI_EXIT_FAIL;
    }
    return 0;
}

static int client_open(cli_ctx *ctx, const cli_sandbox *spec, envd_client **out,
                       envd_future **pending, char **errmsg)
{
    *out = NULL;
    if (pending)
        *pending = NULL;
    *errmsg = NULL;
    int rc = cli_ctx_ready(ctx);
    if (rc) {
        *errmsg = strdup(""); /* cli_ctx_ready printed why */
        return rc;
    }
    target t;
    if ((rc = resolve(ctx, spec, &t, errmsg)) == 0)
        rc = open_target(ctx, &t, out, pending, errmsg);
    free(t.ns);
    if (rc && !*errmsg)
        *errmsg = cli_strdupf("out of memory");
    return rc;
}

int cli_client_open(cli_ctx *ctx, const cli_sandbox *spec, envd_client **out, char **errmsg)
{
    return client_open(ctx, spec, out, NULL, errmsg);
}

int cli_client_open_async(cli_ctx *ctx, const cli_sandbox *spec, envd_client **out,
                          envd_future **pending, char **errmsg)
{
    return client_open(ctx, spec, out, pending, errmsg);
}

int cli_open(cli_ctx *ctx, const char *sandbox, envd_client **out)
{
    cli_sandbox spec = {.id_or_name = sandbox};
    char *msg = NULL;
    int rc = cli_client_open(ctx, sandbox ? &spec : NULL, out, &msg);
    if (rc && (!msg || *msg))
        cli_errorf(ctx, "%s", msg ? msg : "cannot open the sandbox");
    free(msg);
    return rc;
}
