/* envdctl batch JOBS: options, the sandbox pool, and two passes over the
 * jobs file: the first validates every job (nothing runs if one is wrong)
 * and counts those of this shard, the second streams them to the
 * scheduler. Neither holds the file in memory. */
#include "batch.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char usage[] =
    "usage: envdctl batch [OPTIONS] JOBS\n"
    "\n"
    "Runs every job of JOBS (JSON Lines, or a YAML list when the name ends in\n"
    ".yaml/.yml; '-' reads standard input) over a pool of sandboxes and writes one\n"
    "JSON line per finished job to the results file.\n"
    "\n"
    "Job fields: id, cmd | argv | code, sandbox, env, cwd, user, timeout (s), stdin,\n"
    "  upload [{src: LOCAL, dst: SANDBOX_PATH}], download [{src: SANDBOX_PATH, dst: LOCAL}],\n"
    "  retries; language with code (run in the code interpreter, as envdctl code: no\n"
    "  user or stdin; failed with the error's name and value when the code raised).\n"
    "\n"
    "Pool (default: --sandbox/--k8s given globally, else the config file's sandboxes):\n"
    "  --sandbox ID|NAME        a sandbox (repeatable)\n"
    "  --k8s NS/NAME            a Kubernetes Sandbox object (repeatable)\n"
    "  --sandboxes FILE         one ID or name per line, or the JSON lines of\n"
    "                           `envdctl sandbox claim` (their \"k8s\", else \"id\") or of\n"
    "                           `sandbox create` (\"id\" with its \"domain\" and \"token\")\n"
    "  --k8s-selector NS:SEL    every Sandbox object of NS matching a label selector\n"
    "  --claim NS/TEMPLATE --replicas N\n"
    "                           claim N sandboxes of a SandboxSet; jobs start on the first\n"
    "                           ones claimed; release them (claim and sandboxes) at the\n"
    "                           end, also after Ctrl-C or an error\n"
    "  --create TEMPLATE --count N\n"
    "                           create N sandboxes through the E2B-compatible API\n"
    "                           ($E2B_API_URL, $E2B_API_KEY); jobs start on the first ones\n"
    "                           made; kill them all at the end, also after Ctrl-C or an error\n"
    "  --keep                   leave the claimed or created sandboxes in place\n"
    "  --per-sandbox K          jobs at once in one sandbox (default 1)\n"
    "  --jobs N                 jobs at once in all (default: pool size x per-sandbox)\n"
    "  --pool-timeout DUR       fail the rest when no sandbox answered for this long (60s)\n"
    "Results:\n"
    "  --results FILE           default results.jsonl; '-' is standard output\n"
    "  --output-dir DIR         full output in DIR/ID.stdout and DIR/ID.stderr\n"
    "  --report FILE            the summary as one JSON object: counts, wall_ms, phases\n"
    "                           (p50/p95/p99 ms), acquire (p50/p95/max ms per sandbox)\n"
    "  --max-output BYTES       stdout/stderr kept per job in the results (65536)\n"
    "  --resume                 skip jobs already ok or failed in the results file\n"
    "  --resume-failed          skip only those already ok\n"
    "Running:\n"
    "  --retries N              retries of a job that could not start or lost its\n"
    "                           sandbox (default 2)\n"
    "  --retry-backoff DUR      first retry delay, doubled each time, with jitter (500ms)\n"
    "  --halt-on-error N        start no new job after N failed or error ones\n"
    "  --grace DUR              after Ctrl-C, time left to running jobs (10s)\n"
    "  --shard I/N              only jobs whose 0-based index k has k mod N == I\n"
    "                           (default from JOB_COMPLETION_INDEX/JOB_COMPLETIONS)\n"
    "  --check                  validate JOBS and exit\n"
    "  --yaml                   JOBS on standard input is YAML\n"
    "  --progress               a progress line every 5 s when stderr is no terminal\n"
    "  --quiet                  no progress and no summary\n"
    "Kubernetes:\n"
    "  --k8s-job --image IMG --completions N [--parallelism P]\n"
    "                           print an Indexed Job running this batch over N pods\n"
    "\n"
    "Exit status: 0 when every job is ok, 1 otherwise, 2 on a usage error.\n";

enum {
    O_RESULTS = 1, O_OUTPUT_DIR, O_RESUME, O_RESUME_FAILED, O_RETRIES, O_RETRY_BACKOFF,
    O_HALT, O_GRACE, O_MAX_OUTPUT, O_JOBS, O_PER_SANDBOX, O_SANDBOXES, O_SELECTOR, O_SHARD,
    O_PROGRESS, O_QUIET, O_CHECK, O_POOL_TIMEOUT, O_K8S_JOB, O_IMAGE, O_COMPLETIONS,
    O_PARALLELISM, O_YAML, O_CLAIM, O_REPLICAS, O_KEEP, O_CREATE, O_COUNT, O_REPORT
};

static const cli_opt opts[] = {
    {"results", 0, 1, O_RESULTS},         {"output-dir", 0, 1, O_OUTPUT_DIR},
    {"resume", 0, 0, O_RESUME},           {"resume-failed", 0, 0, O_RESUME_FAILED},
    {"retries", 0, 1, O_RETRIES},         {"retry-backoff", 0, 1, O_RETRY_BACKOFF},
    {"halt-on-error", 0, 1, O_HALT},      {"grace", 0, 1, O_GRACE},
    {"max-output", 0, 1, O_MAX_OUTPUT},   {"jobs", 'j', 1, O_JOBS},
    {"per-sandbox", 0, 1, O_PER_SANDBOX}, {"sandboxes", 0, 1, O_SANDBOXES},
    {"k8s-selector", 0, 1, O_SELECTOR},   {"shard", 0, 1, O_SHARD},
    {"progress", 0, 0, O_PROGRESS},       {"quiet", 'q', 0, O_QUIET},
    {"check", 0, 0, O_CHECK},             {"pool-timeout", 0, 1, O_POOL_TIMEOUT},
    {"k8s-job", 0, 0, O_K8S_JOB},         {"image", 0, 1, O_IMAGE},
    {"completions", 0, 1, O_COMPLETIONS}, {"parallelism", 0, 1, O_PARALLELISM},
    {"yaml", 0, 0, O_YAML},               {"claim", 0, 1, O_CLAIM},
    {"replicas", 0, 1, O_REPLICAS},       {"keep", 0, 0, O_KEEP},
    {"create", 0, 1, O_CREATE},           {"count", 0, 1, O_COUNT},
    {"report", 0, 1, O_REPORT},           {NULL, 0, 0, 0},
};

typedef struct batch_args {
    batch_opts o;
    const char *sandboxes_file;
    const char *selectors[64];
    int n_selectors;
    int quiet, progress, stdin_yaml, k8s_job, per_sandbox;
    const char *image;
    uint64_t completions, parallelism;
    int shard_given;
    const char *claim; /* --claim NS/TEMPLATE */
    uint64_t replicas;
    int keep;
    const char *create; /* --create TEMPLATE */
    uint64_t count;
    batch_acq *acq; /* --claim / --create: released at the end */
    char **pass; /* options handed on to the pods of --k8s-job */
    int n_pass;
} batch_args;

static int parse_shard(const char *s, uint64_t *i, uint64_t *n)
{
    const char *slash = strchr(s, '/');
    char head[32];
    if (!slash || (size_t)(slash - s) >= sizeof(head))
        return -1;
    memcpy(head, s, (size_t)(slash - s));
    head[slash - s] = '\0';
    if (cli_parse_uint(head, UINT32_MAX, i) != 0 || cli_parse_uint(slash + 1, UINT32_MAX, n) != 0)
        return -1;
    return *n >= 1 && *i < *n ? 0 : -1;
}

static int bad_value(cli_parser *p, const char *expected)
{
    return cli_usage_error(p->ctx, "%s: expected %s, got '%s'", p->flag, expected, p->value);
}

/* Options that take a number or a duration. */
static int take_numeric(cli_parser *p, int id, batch_args *a)
{
    uint64_t u;
    int64_t ms;
    switch (id) {
    case O_RETRIES:
    case O_HALT:
    case O_JOBS:
    case O_PER_SANDBOX:
    case O_COMPLETIONS:
    case O_PARALLELISM:
    case O_REPLICAS:
    case O_COUNT:
    case O_MAX_OUTPUT:
        if (cli_parse_uint(p->value, id == O_MAX_OUTPUT ? (1u << 30) : 1000000, &u) != 0 ||
            (u == 0 && (id == O_JOBS || id == O_PER_SANDBOX || id == O_COMPLETIONS ||
                        id == O_PARALLELISM || id == O_REPLICAS || id == O_COUNT)))
            return bad_value(p, "a positive integer");
        if (id == O_RETRIES)
            a->o.retries = (int)u;
        else if (id == O_HALT)
            a->o.halt_on_error = (int)u;
        else if (id == O_JOBS)
            a->o.jobs = (int)u;
        else if (id == O_PER_SANDBOX)
            a->per_sandbox = (int)u;
        else if (id == O_COMPLETIONS)
            a->completions = u;
        else if (id == O_PARALLELISM)
            a->parallelism = u;
        else if (id == O_REPLICAS)
            a->replicas = u;
        else if (id == O_COUNT)
            a->count = u;
        else
            a->o.max_output = (size_t)u;
        return 0;
    default:
        if (cli_parse_duration(p->value, &ms) != 0)
            return bad_value(p, "a duration (500ms, 10s, 2m)");
        if (id == O_GRACE)
            a->o.grace_ms = ms;
        else if (id == O_POOL_TIMEOUT)
            a->o.pool_timeout_ms = ms;
        else
            a->o.retry_backoff_ms = ms;
        return 0;
    }
}

/* Options a pod of --k8s-job runs with, as written here. */
static int pass_on(batch_args *a, const cli_parser *p, int id)
{
    if (id == O_K8S_JOB || id == O_IMAGE || id == O_COMPLETIONS || id == O_PARALLELISM ||
        id == O_RESULTS || id == O_OUTPUT_DIR || id == O_CHECK || id == O_PROGRESS ||
        id == O_YAML || id == O_SHARD || id == O_SANDBOXES || id == O_REPORT)
        return 0;
    if (!(a->pass[a->n_pass++] = strdup(p->flag)))
        return -1;
    const cli_opt *o = opts;
    while (o->name && o->id != id)
        o++;
    if (o->has_value && !(a->pass[a->n_pass++] = strdup(p->value)))
        return -1;
    return 0;
}

static int take_option(cli_parser *p, int id, batch_args *a)
{
    switch (id) {
    case O_RESULTS: a->o.results_path = p->value; return 0;
    case O_OUTPUT_DIR: a->o.output_dir = p->value; return 0;
    case O_REPORT: a->o.report_path = p->value; return 0;
    case O_RESUME: a->o.resume = 1; return 0;
    case O_RESUME_FAILED: a->o.resume_failed = 1; return 0;
    case O_SANDBOXES: a->sandboxes_file = p->value; return 0;
    case O_PROGRESS: a->progress = 1; return 0;
    case O_QUIET: a->quiet = 1; return 0;
    case O_CHECK: a->o.check = 1; return 0;
    case O_K8S_JOB: a->k8s_job = 1; return 0;
    case O_IMAGE: a->image = p->value; return 0;
    case O_YAML: a->stdin_yaml = 1; return 0;
    case O_CLAIM: a->claim = p->value; return 0;
    case O_KEEP: a->keep = 1; return 0;
    case O_CREATE: a->create = p->value; return 0;
    case O_SELECTOR:
        if (a->n_selectors == (int)(sizeof(a->selectors) / sizeof(a->selectors[0])))
            return cli_usage_error(p->ctx, "%s: at most 64 selectors", p->flag);
        a->selectors[a->n_selectors++] = p->value;
        return 0;
    case O_SHARD:
        if (parse_shard(p->value, &a->o.shard_i, &a->o.shard_n) != 0)
            return bad_value(p, "I/N with 0 <= I < N");
        a->shard_given = 1;
        return 0;
    default: return take_numeric(p, id, a);
    }
}

/* --sandbox and --k8s are global options (one value) everywhere else; in
 * batch they are repeatable, so the pool takes every occurrence first. */
static int prescan_pool(int argc, char **argv, batch_pool *pool, batch_args *a)
{
    for (int i = 1; i < argc; i++) {
        const char *w = argv[i], *v = NULL;
        if (strcmp(w, "--") == 0)
            break;
        int k8s = strncmp(w, "--k8s", 5) == 0 && (w[5] == '\0' || w[5] == '=');
        int sbx = strncmp(w, "--sandbox", 9) == 0 && (w[9] == '\0' || w[9] == '=');
        if (!k8s && !sbx)
            continue;
        const char *eq = strchr(w, '=');
        if (eq)
            v = eq + 1;
        else if (i + 1 < argc)
            v = argv[++i];
        else
            continue; /* the option parser reports it */
        if (batch_pool_add(pool, k8s ? NULL : v, k8s ? v : NULL, 0) != 0 ||
            !(a->pass[a->n_pass++] = strdup(k8s ? "--k8s" : "--sandbox")) ||
            !(a->pass[a->n_pass++] = strdup(v)))
            return -1;
    }
    return 0;
}

static int parse_args(cli_ctx *ctx, int argc, char **argv, batch_args *a, batch_pool *pool)
{
    a->o.results_path = "results.jsonl";
    a->o.retries = 2;
    a->o.retry_backoff_ms = 500;
    a->o.grace_ms = 10000;
    a->o.pool_timeout_ms = 60000;
    a->o.max_output = 65536;
    a->o.shard_n = 1;
    a->per_sandbox = 1;
    if (!(a->pass = calloc((size_t)argc * 2 + 1, sizeof(char *))) ||
        prescan_pool(argc, argv, pool, a) != 0)
        return cli_errorf(ctx, "out of memory");
    cli_parser p;
    cli_parser_init(&p, ctx, argc, argv, opts, usage);
    int o;
    while ((o = cli_next(&p)) != CLI_DONE) {
        if (o < CLI_DONE) /* --help: CLI_HELP, so that nothing runs after it */
            return o == CLI_HELP ? CLI_HELP : cli_stop(o);
        if (o == CLI_ARG)
            continue;
        int rc = take_option(&p, o, a);
        if (rc)
            return rc;
        if (pass_on(a, &p, o) != 0)
            return cli_errorf(ctx, "out of memory");
    }
    if (p.nargs != 1)
        return cli_usage_error(ctx, p.nargs ? "one jobs file, got %d arguments"
                                            : "the jobs file is missing (JOBS)",
                               p.nargs);
    a->o.jobs_path = p.args[0];
    if (a->o.resume && a->o.resume_failed)
        return cli_usage_error(ctx, "--resume and --resume-failed exclude each other");
    if ((a->o.resume || a->o.resume_failed) && strcmp(a->o.results_path, "-") == 0)
        return cli_usage_error(ctx, "--resume needs a results file, not '-'");
    if (a->k8s_job && a->claim)
        return cli_usage_error(ctx, "--claim and --k8s-job exclude each other");
    if ((a->k8s_job || a->claim) && a->create)
        return cli_usage_error(ctx, "--create excludes --claim and --k8s-job");
    if (a->replicas && !a->claim)
        return cli_usage_error(ctx, "--replicas goes with --claim");
    if (a->count && !a->create)
        return cli_usage_error(ctx, "--count goes with --create");
    if (a->keep && !a->claim && !a->create)
        return cli_usage_error(ctx, "--keep goes with --claim or --create");
    if (a->create)
        ctx->no_sandbox_needed = 1; /* the API's replies say where each one is */
    if (a->k8s_job && (!a->image || !a->completions))
        return cli_usage_error(ctx, "--k8s-job needs --image IMG and --completions N");
    return 0;
}

/* The shard from the environment of a Kubernetes Indexed Job. */
static int shard_from_env(cli_ctx *ctx, batch_args *a)
{
    const char *idx = getenv("JOB_COMPLETION_INDEX"), *cnt = getenv("JOB_COMPLETIONS");
    if (a->shard_given || !idx || !cnt || !*idx || !*cnt)
        return 0;
    if (cli_parse_uint(idx, UINT32_MAX, &a->o.shard_i) != 0 ||
        cli_parse_uint(cnt, UINT32_MAX, &a->o.shard_n) != 0 || a->o.shard_n == 0 ||
        a->o.shard_i >= a->o.shard_n)
        return cli_usage_error(ctx, "JOB_COMPLETION_INDEX=%s / JOB_COMPLETIONS=%s: not a shard",
                               idx, cnt);
    return 0;
}

/* Pass one: every job valid, no ID twice; counts this run's jobs. Errors
 * are printed as FILE:LINE (the first 50): a usage error, unless memory
 * ran out. */
static int validate(cli_ctx *ctx, batch_reader *rd, const batch_args *a, const batch_idset *skip,
                    uint64_t *total, uint64_t *all)
{
    batch_idset ids = {0};
    size_t errors = 0;
    int nomem = 0;
    batch_job j;
    char *err = NULL;
    int rc;
    *total = *all = 0;
    while ((rc = batch_reader_next(rd, &j, &err)) != 0) {
        if (rc < 0) {
            if (errors++ < 50)
                cli_errorf(ctx, "%s", err ? err : "out of memory");
            free(err);
            continue;
        }
        int added = batch_idset_add(&ids, j.id);
        nomem |= added < 0;
        if (added <= 0 && errors++ < 50)
            cli_errorf(ctx, "%s:%ld: %s '%s'", a->o.jobs_path, j.line,
                       added ? "out of memory at id" : "duplicate id", j.id);
        (*all)++;
        if (j.index % a->o.shard_n == a->o.shard_i && !batch_idset_has(skip, j.id))
            (*total)++;
        batch_job_free(&j);
    }
    batch_idset_free(&ids);
    if (errors > 50)
        cli_errorf(ctx, "... %zu errors in all", errors);
    if (!errors)
        return 0;
    return nomem || batch_reader_nomem(rd) ? CLI_EXIT_FAIL : CLI_EXIT_USAGE;
}

static int build_pool(cli_ctx *ctx, batch_args *a, batch_pool *pool)
{
    char *err = NULL;
    if (a->sandboxes_file && batch_pool_add_file(pool, a->sandboxes_file, &err) != 0) {
        cli_usage_error(ctx, "%s", err ? err : "out of memory");
        free(err);
        return CLI_EXIT_USAGE;
    }
    for (int i = 0; i < a->n_selectors; i++) {
        int rc = batch_pool_add_selector(pool, a->selectors[i]);
        if (rc)
            return rc;
    }
    int rc = cli_ctx_ready(ctx);
    if (rc)
        return rc;
    size_t n = 0;
    const envd_sandbox_entry *e = ctx->file ? envd_config_file_sandboxes(ctx->file, &n) : NULL;
    if (a->claim || a->create)
        ; /* the pool is what they bring (and any --sandbox/--k8s given) */
    else if (pool->n == 0 && (ctx->g.k8s || ctx->g.sandbox))
        rc = batch_pool_add(pool, ctx->g.k8s ? NULL : ctx->g.sandbox, ctx->g.k8s, 0);
    else if (pool->n == 0 && n)
        for (size_t i = 0; i < n && rc == 0; i++)
            rc = batch_pool_add(pool, e[i].name, NULL, 0);
    else if (pool->n == 0)
        rc = batch_pool_add(pool, NULL, NULL, 0); /* a direct envd */
    if (rc)
        return cli_errorf(ctx, "out of memory");
    pool->per_sandbox = a->per_sandbox;
    if ((rc = batch_pool_open(pool)) != 0)
        return rc;
    /* the sandboxes come while the jobs run (batch_acquire.c) */
    if (a->claim)
        rc = batch_acq_start_claim(ctx, a->claim, a->replicas ? (int)a->replicas : 1, a->quiet,
                                   &a->acq);
    else if (a->create)
        rc = batch_acq_start_create(ctx, a->create, a->count ? (int)a->count : 1, a->quiet,
                                    &a->acq);
    return rc;
}

static int run_batch(cli_ctx *ctx, batch_args *a, batch_pool *pool)
{
    char *err = NULL;
    batch_idset skip = {0};
    uint64_t total = 0, all = 0;
    int rc = 0;
    batch_reader *rd = batch_reader_open(a->o.jobs_path, a->stdin_yaml, &err);
    if (!rd) { /* no err: out of memory, not a usage error */
        rc = err ? cli_usage_error(ctx, "%s", err) : cli_errorf(ctx, "out of memory");
        goto out;
    }
    if ((a->o.resume || a->o.resume_failed) &&
        batch_results_load(a->o.results_path, a->o.resume_failed, &skip, &err) != 0) {
        rc = cli_errorf(ctx, "--resume: %s", err ? err : "out of memory");
        goto out;
    }
    if ((rc = validate(ctx, rd, a, &skip, &total, &all)) != 0)
        goto out;
    if (a->o.check) {
        printf("%s: %llu jobs, valid\n", a->o.jobs_path, (unsigned long long)all);
        goto out;
    }
    if (a->k8s_job) {
        rc = batch_k8s_job(ctx, a->o.jobs_path, a->image, a->completions,
                           a->parallelism ? a->parallelism : a->completions, a->n_pass, a->pass);
        goto out;
    }
    if ((rc = build_pool(ctx, a, pool)) != 0 || (rc = batch_reader_rewind(rd, &err)) != 0) {
        if (err)
            cli_errorf(ctx, "%s", err);
        goto out;
    }
    rc = batch_run(ctx, &a->o, pool, rd, &skip, total, a->acq);
out:
    if (a->acq && batch_acq_release(a->acq, a->keep, a->o.quiet) != 0)
        rc = CLI_EXIT_FAIL;
    batch_acq_free(a->acq);
    a->acq = NULL;
    free(err);
    batch_idset_free(&skip);
    batch_reader_close(rd);
    return rc;
}

int cmd_batch(cli_ctx *ctx, int argc, char **argv)
{
    batch_args a;
    memset(&a, 0, sizeof(a));
    batch_pool pool;
    memset(&pool, 0, sizeof(pool));
    pool.ctx = ctx;
    pool.backoff_ms = 1000;
    int rc = parse_args(ctx, argc, argv, &a, &pool), help = rc == CLI_HELP;
    rc = help ? CLI_EXIT_OK : rc;
    if (rc == 0 && !help)
        rc = shard_from_env(ctx, &a);
    if (rc == 0 && !help) {
        a.o.progress_mode = a.quiet ? 0 : isatty(2) ? 2 : a.progress ? 1 : 0;
        a.o.quiet = a.quiet;
        pool.backoff_ms = a.o.retry_backoff_ms > 0 ? a.o.retry_backoff_ms * 2 : 1000;
        rc = run_batch(ctx, &a, &pool);
    }
    batch_pool_free(&pool);
    for (int i = 0; i < a.n_pass; i++)
        free(a.pass[i]);
    free(a.pass);
    return rc;
}
