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

/* Kills what an interrupted or failed create made; the count killed. */
static size_t kill_made(envd_sandbox_api *api, envd_future **f, size_t n)
{
    size_t killed = 0;
    for (size_t i = 0; i < n; i++) {
        const envd_sandbox *s = envd_future_sandbox(f[i]);
        int k = 0;
        if (s && envd_sandbox_kill(api, s->id, &k, NULL) == ENVD_OK && k)
            killed++;
    }
    return killed;
}

/* Interrupted: the creates still waiting for the limits are cancelled
 * (freeing the handle does that), the ones already sent may still make a
 * sandbox, so they are waited for; then everything made is killed through
 * a new handle. */
static int create_interrupted(cli_ctx *ctx, envd_sandbox_api **api, const api_args *a,
                              envd_future **f, size_t n)
{
    envd_sandbox_api_free(*api);
    *api = NULL;
    envd_future_wait_all(f, n, -1);
    int rc = open_api(ctx, a, api);
    size_t k = rc == 0 ? kill_made(*api, f, n) : 0;
    return cli_errorf(ctx, "interrupted; %zu sandbox%s killed", k, k == 1 ? "" : "es");
}

/* Starts the N creates and hands each sandbox to made() as its create
 * completes (in that order); a failed one is said on stderr. Interrupted:
 * create_interrupted, and its status. Else 0 with *n_made. */
static int create_each(cli_ctx *ctx, envd_sandbox_api **api, const api_args *a,
                       int (*made)(void *ud, const envd_sandbox *s), void *ud, size_t *n_made)
{
    size_t n = a->count, ok = 0, failed = 0, started = 0;
    envd_future **f = calloc(n, sizeof(*f));
    char *shown = calloc(n, 1);
    if (!f || !shown) {
        free(f);
        free(shown);
        return cli_errorf(ctx, "out of memory");
    }
    cli_catch_interrupts();
    int rc = 0;
    for (; started < n && rc == 0; started++) {
        envd_status st = envd_sandbox_create_async(*api, a->template_id, a->opts, &f[started]);
        if (st != ENVD_OK)
            rc = cli_fail(ctx, "create", st, NULL);
    }
    while (rc == 0 && ok + failed < n && !cli_interrupted) {
        size_t idx = 0; /* wait_any only wakes us: the scan reads every future */
        if (envd_future_wait_any(f, n, 100, &idx) == ENVD_E_TIMEOUT)
            continue;
        for (size_t i = 0; i < n; i++) {
            if (shown[i] || !envd_future_done(f[i]))
                continue;
            shown[i] = 1;
            const envd_sandbox *s = envd_future_sandbox(f[i]);
            if (s && made(ud, s) == 0) {
                ok++;
            } else {
                failed++;
                const envd_error *e = envd_future_error(f[i]);
                cli_errorf(ctx, "%s", e ? envd_error_message(e) : "out of memory");
            }
        }
    }
    if (rc == 0 && cli_interrupted)
        rc = create_interrupted(ctx, api, a, f, started);
    for (size_t i = 0; i < n; i++)
        envd_future_free(f[i]);
    free(f);
    free(shown);
    *n_made = ok;
    return rc;
}

static int print_made(void *ud, const envd_sandbox *s)
{
    (void)ud;
    int rc = print_sandbox(s, 0);
    fflush(stdout);
    return rc;
}

/* Prints each sandbox as it is made. 0 when all N were. */
static int create_run(cli_ctx *ctx, envd_sandbox_api **api, const api_args *a)
{
    size_t made = 0;
    int rc = create_each(ctx, api, a, print_made, NULL, &made);
    if (rc == 0 && made < a->count)
        rc = cli_errorf(ctx, "%zu of %zu sandboxes created; kill them with: envdctl sandbox kill "
                             "ID... (the ids above)",
                        made, (size_t)a->count);
    return rc;
}

/* ------------------------------------------------------- batch --create */

static int pool_made(void *ud, const envd_sandbox *s)
{
    cli_created *c = ud;
    char *id = strdup(s->id);
    envd_client *cl = id ? envd_sandbox_take_client(s) : NULL;
    if (!cl) {
        free(id);
        return -1;
    }
    c->ids[c->n] = id;
    c->clients[c->n++] = cl;
    return 0;
}

int cli_create_pool(cli_ctx *ctx, const char *template_id, int count, int quiet,
                    cli_created **out)
{
    *out = NULL;
    api_args a = {.template_id = template_id, .count = (uint64_t)count, .concurrency = 16,
                  .opts = envd_sandbox_opts_new()};
    cli_created *c = calloc(1, sizeof(*c));
    if (c) {
        c->ids = calloc((size_t)count, sizeof(*c->ids));
        c->clients = calloc((size_t)count, sizeof(*c->clients));
    }
    int rc = !a.opts || !c || !c->ids || !c->clients ? cli_errorf(ctx, "out of memory") : 0;
    if (rc == 0)
        rc = open_api(ctx, &a, &c->api);
    int64_t t0 = cli_now_ms();
    size_t made = 0;
    if (rc == 0)
        rc = create_each(ctx, &c->api, &a, pool_made, c, &made);
    if (rc == 0 && made == 0)
        rc = cli_errorf(ctx, "--create: no sandbox created");
    else if (rc == 0 && !quiet)
        fprintf(stderr, "created %zu of %d sandboxes of %s in %.1f s\n", made, count,
                template_id, (double)(cli_now_ms() - t0) / 1000.0);
    envd_sandbox_opts_free(a.opts);
    if (rc != 0) {
        if (c && c->api)
            cli_create_release(ctx, c);
        cli_created_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

int cli_create_release(cli_ctx *ctx, cli_created *c)
{
    envd_future **f = calloc(c->n ? c->n : 1, sizeof(*f));
    if (!f)
        return cli_errorf(ctx, "out of memory");
    for (size_t i = 0; i < c->n; i++) /* all at once */
        if (envd_sandbox_kill_async(c->api, c->ids[i], &f[i]) != ENVD_OK)
            f[i] = NULL;
    int rc = 0;
    for (size_t i = 0; i < c->n; i++) {
        if (f[i])
            envd_future_wait(f[i], -1);
        if (envd_future_bool(f[i]) == 1)
            continue;
        const envd_error *e = f[i] ? envd_future_error(f[i]) : NULL;
        rc = cli_errorf(ctx, "killing %s: %s", c->ids[i], e ? envd_error_message(e) : "not found");
    }
    for (size_t i = 0; i < c->n; i++)
        envd_future_free(f[i]);
    free(f);
    return rc;
}

void cli_created_free(cli_created *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n; i++) {
        free(c->ids[i]);
        envd_client_free(c->clients[i]);
    }
    free(c->ids);
    free(c->clients);
    envd_sandbox_api_free(c->api);
    free(c);
}

static int create(cli_ctx *ctx, int argc, char **argv, api_args *a)
{
    cli_parser p;
    int rc = parse(ctx, &p, argc, argv, a, "123456789");
    if (rc == 0 && (p.nargs || !a->template_id || !*a->template_id))
        rc = cli_usage_error(ctx, p.nargs ? "create takes no arguments" : "--template is required");
    envd_sandbox_api *api = NULL;
    if (rc == 0)
        rc = open_api(ctx, a, &api);
    if (rc == 0 && envd_sandbox_api_set_create_limits(api, a->rate, (int)a->concurrency) != ENVD_OK)
        rc = cli_usage_error(ctx, "bad --rate or --concurrency");
    if (rc == 0)
        rc = create_run(ctx, &api, a);
    envd_sandbox_api_free(api);
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
