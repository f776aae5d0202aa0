/* envdctl sandbox create / list / kill: sandboxes from an E2B-compatible
 * API (E2B, or the OpenKruise sandbox-manager), through envd_sandbox.h.
 * `create` prints one JSON line per sandbox, which `batch --sandboxes`
 * reads. */
#include "envdctl.h"

#include <envd/envd_sandbox.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char cli_sandbox_api_usage[] =
    "usage: envdctl sandbox create --template T [--count N] [--timeout DUR] [--metadata K=V]...\n"
    "       envdctl sandbox list [--metadata K=V]...\n"
    "       envdctl sandbox kill ID...\n"
    "create, list, kill: the E2B-compatible sandbox API (E2B, or the sandbox-manager of\n"
    "OpenKruise Agents). create prints one JSON line per sandbox:\n"
    "  {\"id\":ID,\"domain\":D,\"token\":T,\"envd_version\":V,\"template\":T}\n"
    "(a file of them is a `batch --sandboxes` file); list prints one per sandbox with its\n"
    "state, times and metadata; kill exits 1 if one was unknown.\n"
    "  --api-url URL            the API (default $E2B_API_URL, else https://api.<domain>)\n"
    "  --api-key KEY            X-API-Key (default $E2B_API_KEY, else the config's api_key)\n"
    "  --template T             create: the template (a SandboxSet for the sandbox-manager)\n"
    "  --count N                create: how many (default 1)\n"
    "  --timeout DUR            create: time to live (the API's default: 15s on E2B)\n"
    "  --metadata K=V           create: metadata (repeatable; e2b.agents.kruise.io/... keys\n"
    "                           are the sandbox-manager's extensions); list: a filter\n"
    "  --env K=V                create: an environment variable of the sandbox (repeatable)\n"
    "  --rate R                 create: at most R creates sent per second (default none)\n"
    "  --concurrency N          create: at most N creates in flight (default 16)\n";

typedef struct api_args {
    const char *url, *key, *template_id;
    uint64_t count, concurrency;
    double rate;
    envd_sandbox_opts *opts;
    envd_kv *filter; /* list: --metadata pairs (strings point into argv, '=' cut) */
    size_t n_filter;
} api_args;

/* KEY=VALUE into its two halves (in place); 0 or the usage error. */
static int split_kv(cli_ctx *ctx, const char *flag, char *v, envd_kv *out)
{
    char *eq = strchr(v, '=');
    if (!eq || eq == v)
        return cli_usage_error(ctx, "%s: expected KEY=VALUE, got '%s'", flag, v);
    *eq = '\0';
    *out = (envd_kv){v, eq + 1};
    return 0;
}

static int parse_option(cli_ctx *ctx, api_args *a, int o, char *v)
{
    uint64_t n = 0;
    int64_t ms = 0;
    envd_kv kv;
    switch (o) {
    case 1: a->url = v; return 0;
    case 2: a->key = v; return 0;
    case 3: a->template_id = v; return 0;
    case 4:
        if (cli_parse_uint(v, 100000, &n) != 0 || n == 0)
            return cli_usage_error(ctx, "--count: expected 1 to 100000, got '%s'", v);
        a->count = n;
        return 0;
    case 5:
        if (cli_parse_duration(v, &ms) != 0 || ms > (int64_t)86400 * 365 * 1000)
            return cli_usage_error(ctx, "--timeout: bad duration '%s'", v);
        envd_sandbox_opts_set_timeout_s(a->opts, (int)((ms + 999) / 1000));
        return 0;
    case 6:
    case 7:
        if (split_kv(ctx, o == 6 ? "--metadata" : "--env", v, &kv) != 0)
            return CLI_EXIT_USAGE;
        if (o == 6) {
            envd_kv *f = realloc(a->filter, (a->n_filter + 1) * sizeof(*f));
            if (!f)
                return cli_errorf(ctx, "out of memory");
            a->filter = f;
            a->filter[a->n_filter++] = kv;
        }
        return (o == 6 ? envd_sandbox_opts_set_metadata(a->opts, kv.name, kv.value)
                       : envd_sandbox_opts_set_env(a->opts, kv.name, kv.value)) == ENVD_OK
                   ? 0
                   : cli_errorf(ctx, "out of memory");
    case 8: {
        char *end = NULL;
        a->rate = strtod(v, &end);
        if (!*v || *end || !(a->rate >= 0 && a->rate <= 10000))
            return cli_usage_error(ctx, "--rate: expected 0 to 10000 per second, got '%s'", v);
        return 0;
    }
    case 9:
        if (cli_parse_uint(v, 100000, &n) != 0)
            return cli_usage_error(ctx, "--concurrency: expected 0 to 100000, got '%s'", v);
        a->concurrency = n;
        return 0;
    }
    return 0;
}

/* The options every subcommand takes (the others are refused by name), and
 * the positional arguments in p. 0, or the exit status. */
static int parse(cli_ctx *ctx, cli_parser *p, int argc, char **argv, api_args *a,
                 const char *allowed)
{
    static const cli_opt opts[] = {
        {"api-url", 0, 1, 1},  {"api-key", 0, 1, 2},  {"template", 't', 1, 3},
        {"count", 'n', 1, 4},  {"timeout", 0, 1, 5},  {"metadata", 'm', 1, 6},
        {"env", 'e', 1, 7},    {"rate", 0, 1, 8},     {"concurrency", 0, 1, 9},
        {NULL, 0, 0, 0}};
    cli_parser_init(p, ctx, argc, argv, opts, cli_sandbox_api_usage);
    int o;
    while ((o = cli_next(p)) != CLI_DONE) {
        if (o < CLI_DONE)
            return cli_stop(o);
        if (o > 0 && !strchr(allowed, '0' + o))
            return cli_usage_error(ctx, "%s: not an option of sandbox %s", p->flag, argv[0]);
        int rc = o > 0 ? parse_option(ctx, a, o, (char *)p->value) : 0;
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* The handle: the config's options, the API's URL and key. */
static int open_api(cli_ctx *ctx, const api_args *a, envd_sandbox_api **api)
{
    ctx->no_sandbox_needed = 1; /* it talks to the API; --domain only names its host */
    int rc = cli_ctx_ready(ctx);
    if (rc != 0)
        return rc;
    const char *key = a->key ? a->key : getenv("E2B_API_KEY");
    envd_config *cfg = envd_config_dup(ctx->cfg);
    if (!cfg)
        return cli_errorf(ctx, "out of memory");
    if (key && *key && envd_config_set_api_key(cfg, key) != ENVD_OK) {
        rc = cli_usage_error(ctx, "--api-key: %s", envd_config_last_error(cfg));
        envd_config_free(cfg);
        return rc;
    }
    envd_status st = envd_sandbox_api_new(ctx->rt, cfg, api);
    envd_config_free(cfg);
    if (st != ENVD_OK)
        return cli_fail(ctx, "the sandbox API", st, NULL);
    const char *url = a->url ? a->url : getenv("E2B_API_URL");
    if (url && *url && envd_sandbox_api_set_url(*api, url) != ENVD_OK) {
        envd_sandbox_api_free(*api);
        *api = NULL;
        return cli_usage_error(ctx, "--api-url: expected http(s)://HOST[:PORT][/PREFIX], got '%s'",
                               url);
    }
    return 0;
}

/* ,"name":"value" (nothing for a NULL value); non-zero on out of memory. */
static int json_field(cli_buf *b, const char *name, const char *v, int first)
{
    if (!v)
        return 0;
    return (!first && cli_buf_append(b, ",", 1)) || cli_buf_json_string(b, name, strlen(name)) ||
           cli_buf_append(b, ":", 1) || cli_buf_json_string(b, v, strlen(v));
}

/* One line of create's output, or of list's (with state, times and
 * metadata). */
/* Where a created sandbox's client reaches envd: the host of its runtime
 * URL (sandbox.<domain> for E2B's domains, <port>-<id>.<domain> for others;
 * see envd_sandbox_create_async), so that batch --sandboxes reaches it the
 * same way. */
static void reach_host(const envd_sandbox *s, char *out, size_t cap)
{
    out[0] = '\0';
    envd_client *cl = envd_sandbox_take_client(s);
    const char *url = cl ? envd_client_runtime_url(cl) : NULL;
    const char *h = url ? strstr(url, "://") : NULL;
    if (h) {
        h += 3;
        size_t n = strcspn(h, "/");
        snprintf(out, cap, "%.*s", (int)(n < cap ? n : cap - 1), h);
    }
    envd_client_free(cl);
}

static int print_sandbox(const envd_sandbox *s, int listed)
{
    cli_buf b = {0};
    int rc = cli_buf_append(&b, "{", 1) | json_field(&b, "id", s->id, 1);
    if (!listed) {
        char host[512];
        reach_host(s, host, sizeof host);
        rc |= json_field(&b, "domain", host[0] ? host : s->domain, 0) |
              json_field(&b, "token", s->access_token, 0);
    }
    rc |= json_field(&b, "envd_version", s->envd_version, 0) |
          json_field(&b, "template", s->template_id, 0);
    if (listed) {
        rc |= json_field(&b, "state", s->state, 0) | json_field(&b, "started_at", s->started_at, 0) |
              json_field(&b, "end_at", s->end_at, 0) | cli_buf_append(&b, ",\"metadata\":{", 13);
        for (size_t i = 0; i < s->n_metadata; i++)
            rc |= json_field(&b, s->metadata[i].name, s->metadata[i].value, i == 0);
        rc |= cli_buf_append(&b, "}", 1);
    }
    rc |= cli_buf_append(&b, "}\n", 2);
    if (rc == 0 && b.data)
        rc = fwrite(b.data, 1, b.len, stdout) == b.len ? 0 : -1;
    cli_buf_free(&b);
    return rc;
}

/* ---------------------------------------------------------------- create */

/* The creates of one `sandbox create` or `batch --create`: all started at
 * once (the handle's limits space them out), each taken as it completes.
 * Every sandbox made is remembered until it is killed (or kept). */
struct cli_created {
    api_args a;            /* url and key, to open a handle for the kills */
    envd_sandbox_api *api; /* NULL once stopped */
    envd_future **f;       /* one per create */
    char *taken;           /* f[i]'s outcome was handed on */
    size_t n_f, pending;
    char **ids; /* every sandbox made */
    size_t n;
};

void cli_created_free(cli_created *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n_f; i++)
        envd_future_free(c->f[i]);
    for (size_t i = 0; i < c->n; i++)
        free(c->ids[i]);
    free(c->f);
    free(c->taken);
    free(c->ids);
    envd_sandbox_api_free(c->api);
    free(c);
}

size_t cli_created_count(const cli_created *c)
{
    return c ? c->n : 0;
}

/* Opens the handle with a's limits and starts a->count creates. 0 with
 * *out (also when a create could not start: *out holds what did), or the
 * exit status, printed. */
static int create_start(cli_ctx *ctx, const api_args *a, cli_created **out)
{
    size_t n = a->count;
    cli_created *c = calloc(1, sizeof(*c));
    *out = c;
    if (!c || !(c->f = calloc(n, sizeof(*c->f))) || !(c->taken = calloc(n, 1)) ||
        !(c->ids = calloc(n, sizeof(*c->ids))))
        return cli_errorf(ctx, "out of memory");
    c->a = *a;
    int rc = open_api(ctx, a, &c->api);
    if (rc == 0 && envd_sandbox_api_set_create_limits(c->api, a->rate, (int)a->concurrency) != ENVD_OK)
        rc = cli_usage_error(ctx, "bad --rate or --concurrency");
    for (; rc == 0 && c->n_f < n; c->n_f++, c->pending++) {
        envd_status st = envd_sandbox_create_async(c->api, a->template_id, a->opts, &c->f[c->n_f]);
        if (st != ENVD_OK)
            rc = cli_fail(ctx, "create", st, NULL);
    }
    return rc;
}

int cli_create_start(cli_ctx *ctx, const char *template_id, int count, cli_created **out)
{
    api_args a = {.template_id = template_id, .count = (uint64_t)count, .concurrency = 16,
                  .opts = envd_sandbox_opts_new()};
    int rc = a.opts ? create_start(ctx, &a, out) : cli_errorf(ctx, "out of memory");
    envd_sandbox_opts_free(a.opts);
    if (*out)
        (*out)->a.opts = NULL; /* freed: only the creates above used it */
    return rc;
}

size_t cli_create_poll(cli_ctx *ctx, cli_created *c, int (*made)(void *ud, const envd_sandbox *s),
                       void *ud, size_t *failed)
{
    for (size_t i = 0; i < c->n_f; i++) {
        if (c->taken[i] || !envd_future_done(c->f[i]))
            continue;
        c->taken[i] = 1;
        c->pending--;
        const envd_sandbox *s = envd_future_sandbox(c->f[i]);
        char *id = s ? strdup(s->id) : NULL;
        if (id)
            c->ids[c->n++] = id;
        if (id && (!made || made(ud, s) == 0))
            continue;
        if (!id && !c->api && envd_future_status(c->f[i]) == ENVD_CANCELED)
            continue; /* stopped before it was sent: not a failure */
        if (failed)
            (*failed)++;
        const envd_error *e = envd_future_error(c->f[i]);
        if (id)
            cli_errorf(ctx, "sandbox %s: made, but could not be used (killed at the end)", id);
        else
            cli_errorf(ctx, "%s", e ? envd_error_message(e) : "out of memory");
    }
    return c->pending;
}

/* Waits (up to ms) for the next create to complete. */
static void create_wait(const cli_created *c, int64_t ms)
{
    envd_future **w = malloc((c->pending ? c->pending : 1) * sizeof(*w));
    size_t n = 0, idx = 0;
    for (size_t i = 0; w && i < c->n_f; i++)
        if (!c->taken[i])
            w[n++] = c->f[i];
    if (n)
        envd_future_wait_any(w, n, ms, &idx);
    free(w);
}

void cli_create_stop(cli_created *c)
{
    /* Cancels the creates still waiting for the limits; those sent go on. */
    envd_sandbox_api_free(c->api);
    c->api = NULL;
}

int cli_create_release(cli_ctx *ctx, cli_created *c, int keep, size_t *killed)
{
    *killed = 0;
    cli_create_stop(c);
    envd_future_wait_all(c->f, c->n_f, -1); /* a sent create may still make one */
    cli_create_poll(ctx, c, NULL, NULL, NULL);
    if (keep || c->n == 0)
        return 0;
    envd_sandbox_api *api = NULL;
    int rc = open_api(ctx, &c->a, &api);
    envd_future **f = rc == 0 ? calloc(c->n, sizeof(*f)) : NULL;
    if (rc == 0 && !f)
        rc = cli_errorf(ctx, "out of memory");
    for (size_t i = 0; f && i < c->n; i++) /* all at once */
        if (envd_sandbox_kill_async(api, c->ids[i], &f[i]) != ENVD_OK)
            f[i] = NULL;
    for (size_t i = 0; f && i < c->n; i++) {
        if (f[i])
            envd_future_wait(f[i], -1);
        if (envd_future_bool(f[i]) == 1) {
            (*killed)++;
            continue;
        }
        const envd_error *e = f[i] ? envd_future_error(f[i]) : NULL;
        rc = cli_errorf(ctx, "killing %s: %s", c->ids[i], e ? envd_error_message(e) : "not found");
    }
    for (size_t i = 0; f && i < c->n; i++)
        envd_future_free(f[i]);
    free(f);
    envd_sandbox_api_free(api);
    return rc;
}

static int print_made(void *ud, const envd_sandbox *s)
{
    (void)ud;
    int rc = print_sandbox(s, 0);
    fflush(stdout);
    return rc;
}

/* Prints each sandbox as it is made. 0 when all N were. Interrupted: the
 * creates waiting for the limits are dropped, the ones sent waited for,
 * and everything made is killed. */
static int create_run(cli_ctx *ctx, const api_args *a)
{
    cli_created *c = NULL;
    cli_catch_interrupts();
    int rc = create_start(ctx, a, &c);
    size_t failed = 0, killed = 0;
    while (c && c->pending && !cli_interrupted) {
        create_wait(c, 100);
        cli_create_poll(ctx, c, print_made, NULL, &failed);
    }
    if (c && (rc != 0 || cli_interrupted)) {
        int krc = cli_create_release(ctx, c, 0, &killed);
        rc = rc ? rc
                : cli_errorf(ctx, "interrupted; %zu sandbox%s killed", killed,
                             killed == 1 ? "" : "es");
        rc = rc ? rc : krc;
    } else if (c && c->n < a->count) {
        rc = cli_errorf(ctx, "%zu of %zu sandboxes created; kill them with: envdctl sandbox kill "
                             "ID... (the ids above)",
                        c->n, (size_t)a->count);
    }
    cli_created_free(c);
    return rc;
}

static int create(cli_ctx *ctx, int argc, char **argv, api_args *a)
{
    cli_parser p;
    int rc = parse(ctx, &p, argc, argv, a, "123456789");
    if (rc == 0 && (p.nargs || !a->template_id || !*a->template_id))
        rc = cli_usage_error(ctx, p.nargs ? "create takes no arguments" : "--template is required");
    if (rc == 0)
        rc = create_run(ctx, a);
    return rc;
}

/* ------------------------------------------------------------ list, kill */

static int list(cli_ctx *ctx, int argc, char **argv, api_args *a)
{
    cli_parser p;
    int rc = parse(ctx, &p, argc, argv, a, "126");
    if (rc == 0 && p.nargs)
        rc = cli_usage_error(ctx, "list takes no arguments");
    envd_sandbox_api *api = NULL;
    if (rc == 0)
        rc = open_api(ctx, a, &api);
    envd_sandboxes *l = NULL;
    envd_error *err = NULL;
    envd_status st = rc == 0 ? envd_sandbox_list(api, a->filter, a->n_filter, &l, &err) : ENVD_OK;
    if (rc == 0 && st != ENVD_OK)
        rc = cli_fail(ctx, "list", st, err);
    for (size_t i = 0; l && i < l->count && rc == 0; i++)
        if (print_sandbox(&l->items[i], 1) != 0)
            rc = cli_errorf(ctx, "stdout: write failed");
    envd_sandboxes_free(l);
    envd_sandbox_api_free(api);
    return rc;
}

static int kill_ids(cli_ctx *ctx, int argc, char **argv, api_args *a)
{
    cli_parser p;
    int rc = parse(ctx, &p, argc, argv, a, "12");
    if (rc == 0 && !p.nargs)
        rc = cli_usage_error(ctx, "kill needs at least one sandbox ID");
    envd_sandbox_api *api = NULL;
    if (rc == 0)
        rc = open_api(ctx, a, &api);
    envd_future **f = rc == 0 ? calloc((size_t)p.nargs, sizeof(*f)) : NULL;
    if (rc == 0 && !f)
        rc = cli_errorf(ctx, "out of memory");
    int failed = 0;
    for (int i = 0; rc == 0 && i < p.nargs; i++) /* all at once */
        if (envd_sandbox_kill_async(api, p.args[i], &f[i]) != ENVD_OK) {
            f[i] = NULL;
            failed = 1;
            cli_errorf(ctx, "%s: not a sandbox ID", p.args[i]);
        }
    for (int i = 0; f && i < p.nargs; i++) {
        if (!f[i])
            continue;
        envd_future_wait(f[i], -1);
        if (envd_future_bool(f[i]) == 1)
            continue;
        const envd_error *e = envd_future_error(f[i]);
        failed = 1;
        if (e)
            cli_errorf(ctx, "%s", envd_error_message(e));
        else
            cli_errorf(ctx, "%s: no such sandbox", p.args[i]);
    }
    for (int i = 0; f && i < p.nargs; i++)
        envd_future_free(f[i]);
    free(f);
    envd_sandbox_api_free(api);
    return rc ? rc : failed ? CLI_EXIT_FAIL : CLI_EXIT_OK;
}

int cmd_sandbox_api(cli_ctx *ctx, int argc, char **argv)
{
    api_args a = {.count = 1, .concurrency = 16, .opts = envd_sandbox_opts_new()};
    if (!a.opts)
        return cli_errorf(ctx, "out of memory");
    int rc = strcmp(argv[0], "create") == 0 ? create(ctx, argc, argv, &a)
             : strcmp(argv[0], "list") == 0 ? list(ctx, argc, argv, &a)
                                            : kill_ids(ctx, argc, argv, &a);
    envd_sandbox_opts_free(a.opts);
    free(a.filter);
    return rc;
}
