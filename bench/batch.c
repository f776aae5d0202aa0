/* The batch scenario (issue 10, "Cost"): what envdctl's scheduler costs
 * beside the calls it makes.
 *
 * N `true` jobs (10,000; $ENVD_BENCH_BATCH_JOBS to change it) over 8
 * sandbox IDs (s1..s8) with `concurrency` jobs at once (default 8: one per
 * sandbox, envdctl's default for a pool of 8), run twice against the same
 * server:
 *   (a) `envdctl batch` as a child process on a generated JSONL jobs file,
 *       results to a temp file, --quiet: its CPU and wall time from wait4(),
 *       so they include its start-up, the jobs file read and the results
 *       written;
 *   (b) libenvd's own async run loop in this process: 8 clients (one per
 *       sandbox ID) on one runtime, envd_commands_run_async of `true` with
 *       the next job started from the completion callback; CPU from
 *       getrusage(RUSAGE_SELF) around the jobs (after one warm call per
 *       client, so connecting is outside the window).
 * A batch of one job per sandbox is run by envdctl first: its CPU is the
 * fixed part (start-up, config, 8 connections, the file opened twice),
 * reported beside the per-job figures (not taken out of them).
 * The row's calls/CPU are (b); envdctl's figures and the ratio are in the
 * note and the JSON keys batch_*; the target is envdctl <= 1.5x (b) per job.
 *
 * Then `envdctl batch --check` on a 1,000,000-line jobs file
 * ($ENVD_BENCH_BATCH_CHECK_LINES): its peak RSS (ru_maxrss) shows whether
 * the file is streamed (target <= 64 MiB). */
#include "bench.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

enum { N_SANDBOXES = 8 };

static long env_long(const char *name, long dflt)
{
    const char *s = getenv(name);
    long v = s ? atol(s) : 0;
    return v > 0 ? v : dflt;
}

/* --envdctl, else envdctl in envd-bench's own directory (the build dir). */
static int find_envdctl(const bench_env *env, char *buf, size_t cap)
{
    if (env->opts->envdctl) {
        snprintf(buf, cap, "%s", env->opts->envdctl);
    } else {
        char self[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
        if (n <= 0)
            return -1;
        self[n] = 0;
        char *slash = strrchr(self, '/');
        if (slash)
            *slash = 0;
        if (snprintf(buf, cap, "%s/envdctl", self) >= (int)cap)
            return -1;
    }
    return access(buf, X_OK);
}

static int write_jobs(const char *path, long n)
{
    FILE *fp = fopen(path, "w");
    if (!fp)
        return -1;
    for (long i = 1; i <= n; i++)
        fprintf(fp, "{\"id\":\"j%ld\",\"cmd\":\"true\"}\n", i);
    return fclose(fp) == 0 ? 0 : -1;
}

typedef struct child_fig {
    int status; /* wait status */
    double cpu_us, seconds;
    long maxrss_kib;
} child_fig;

/* Runs argv with stdout+stderr to log; CPU and peak RSS from wait4(). */
static int run_child(const char *const *argv, const char *log, child_fig *f)
{
    /* an ENVD_* environment of the caller's must not redirect envdctl */
    static const char *const env_add[] = {"ENVD_DOMAIN=", "ENVD_SANDBOX_ID=",
                                          "ENVD_RUNTIME_TOKEN=", NULL};
    bench_child ch;
    uint64_t t0 = bench_now_ns();
    if (bench_spawn(&ch, argv, env_add, log) != 0)
        return -1;
    struct rusage ru;
    if (bench_wait(&ch, &f->status, &ru) != 0)
        return -1;
    f->seconds = (double)(bench_now_ns() - t0) / 1e9;
    f->cpu_us = bench_rusage_us(&ru);
    f->maxrss_kib = ru.ru_maxrss;
    return 0;
}

static uint64_t count_ok(const char *results)
{
    FILE *fp = fopen(results, "r");
    if (!fp)
        return 0;
    char line[4096];
    uint64_t ok = 0;
    while (fgets(line, sizeof line, fp))
        ok += strstr(line, "\"status\":\"ok\"") != NULL;
    fclose(fp);
    return ok;
}

/* (a): envdctl batch over the jobs file; fills out->batch_*. */
static int via_envdctl(bench_env *env, const char *prog, int transport, int concurrency,
                       const char *jobs, bench_result *out)
{
    char results[300], log[300], per[16], conc[16];
    snprintf(results, sizeof results, "%s/batch-results.jsonl", env->tmpdir);
    snprintf(log, sizeof log, "%s/batch-envdctl.log", env->tmpdir);
    int k = concurrency / N_SANDBOXES;
    snprintf(per, sizeof per, "%d", k > 0 ? k : 1);
    snprintf(conc, sizeof conc, "%d", concurrency);
    const char *argv[48] = {prog, "--domain", env->server.addr, "--transport",
                            transport == BT_GRPC ? "grpc" : "connect", "batch"};
    size_t n = 6;
    static const char *const ids[N_SANDBOXES] = {"s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8"};
    for (int i = 0; i < N_SANDBOXES; i++) {
        argv[n++] = "--sandbox";
        argv[n++] = ids[i];
    }
    const char *rest[] = {"--per-sandbox", per, "--jobs", conc, "--results", results, "--quiet",
                          jobs, NULL};
    for (size_t i = 0; rest[i]; i++)
        argv[n++] = rest[i];
    argv[n] = NULL;
    child_fig f;
    if (run_child(argv, log, &f) != 0) {
        snprintf(out->note, sizeof out->note, "cannot run %.300s", prog);
        return -1;
    }
    out->batch_cpu_us = f.cpu_us;
    out->batch_seconds = f.seconds;
    out->batch_ok = count_ok(results);
    if (!WIFEXITED(f.status) || WEXITSTATUS(f.status) != 0)
        bench_log("envd-bench: envdctl batch exited with status 0x%x (log: %s)", f.status, log);
    return 0;
}

/* ---------------------------------------------- (b) libenvd's own run loop */

typedef struct inproc {
    envd_client *c[N_SANDBOXES];
    long total;
    _Atomic long next, ok, errors, finished;
    bench_hist *hist; /* latency of ok jobs, from the start call */
    pthread_mutex_t mu;
    pthread_cond_t cv;
} inproc;

typedef struct inslot {
    inproc *ip;
    int client;
    uint64_t t0;
} inslot;

static void finish_one(inproc *ip, int ok)
{
    atomic_fetch_add(ok ? &ip->ok : &ip->errors, 1);
    if (atomic_fetch_add(&ip->finished, 1) + 1 == ip->total) {
        pthread_mutex_lock(&ip->mu);
        pthread_cond_broadcast(&ip->cv);
        pthread_mutex_unlock(&ip->mu);
    }
}

static void job_done(envd_future *f, void *ud);

/* Starts the next job on this slot's client, if any is left. A job that
 * cannot start counts as an error and the slot takes the one after. */
static void job_next(inslot *s)
{
    inproc *ip = s->ip;
    while (atomic_fetch_add(&ip->next, 1) < ip->total) {
        envd_future *f = NULL;
        s->t0 = bench_now_ns();
        if (envd_commands_run_async(ip->c[s->client], "true", NULL, &f) == ENVD_OK) {
            if (envd_future_on_complete(f, job_done, s) == ENVD_OK)
                return;
            envd_future_free(f);
        }
        finish_one(ip, 0);
    }
}

static void job_done(envd_future *f, void *ud)
{
    inslot *s = ud;
    int ok = envd_future_status(f) == ENVD_OK;
    if (ok)
        bench_hist_add(s->ip->hist, bench_now_ns() - s->t0);
    finish_one(s->ip, ok);
    envd_future_free(f);
    job_next(s);
}

static int warm(envd_client *c)
{
    envd_command_result *res = NULL;
    envd_status st = envd_commands_run(c, "true", NULL, &res, NULL);
    envd_command_result_free(res);
    return st == ENVD_OK ? 0 : -1;
}

/* Waits until every job finished (or 10 min passed: a stuck run). */
static int wait_all(inproc *ip)
{
    uint64_t until = bench_now_ns() + 600000000000ull;
    pthread_mutex_lock(&ip->mu);
    while (atomic_load(&ip->finished) < ip->total && bench_now_ns() < until) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 100000000;
        ts.tv_sec += ts.tv_nsec / 1000000000;
        ts.tv_nsec %= 1000000000;
        pthread_cond_timedwait(&ip->cv, &ip->mu, &ts);
    }
    pthread_mutex_unlock(&ip->mu);
    return atomic_load(&ip->finished) == ip->total ? 0 : -1;
}

/* (b): fills out->calls/errors/seconds/cpu_*. */
static int in_process(bench_env *env, int transport, int concurrency, long jobs, bench_result *out)
{
    inproc ip;
    memset(&ip, 0, sizeof ip);
    ip.total = jobs;
    pthread_mutex_init(&ip.mu, NULL);
    pthread_cond_init(&ip.cv, NULL);
    envd_runtime *rt = bench_runtime_new(env, concurrency + 64);
    inslot *slots = calloc((size_t)concurrency, sizeof *slots);
    ip.hist = bench_hist_new();
    int rc = slots && rt && ip.hist ? 0 : -1;
    for (int i = 0; rc == 0 && i < N_SANDBOXES; i++) {
        char id[8];
        snprintf(id, sizeof id, "s%d", i + 1);
        ip.c[i] = bench_client_new_id(env, rt, transport, 60000, id);
        if (!ip.c[i] || warm(ip.c[i]) != 0)
            rc = -1;
    }
    if (rc != 0) {
        snprintf(out->note, sizeof out->note, "in-process setup or first run failed");
    } else {
        struct rusage ru0, ru1;
        getrusage(RUSAGE_SELF, &ru0);
        uint64_t t0 = bench_now_ns();
        for (int i = 0; i < concurrency; i++) {
            slots[i] = (inslot){&ip, i % N_SANDBOXES, 0};
            job_next(&slots[i]);
        }
        rc = wait_all(&ip);
        out->seconds = (double)(bench_now_ns() - t0) / 1e9;
        getrusage(RUSAGE_SELF, &ru1);
        out->cpu_us = bench_rusage_us(&ru1) - bench_rusage_us(&ru0);
        out->cpu_user_us = (double)(ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec) * 1e6 +
                           (double)(ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec);
        out->cpu_sys_us = out->cpu_us - out->cpu_user_us;
        out->calls = (uint64_t)atomic_load(&ip.ok);
        out->errors = (uint64_t)atomic_load(&ip.errors);
        out->p50_us = bench_hist_quantile(ip.hist, 0.50) / 1e3;
        out->p90_us = bench_hist_quantile(ip.hist, 0.90) / 1e3;
        out->p99_us = bench_hist_quantile(ip.hist, 0.99) / 1e3;
        out->max_us = (double)atomic_load(&ip.hist->max) / 1e3;
        out->mean_us = out->calls ? (double)atomic_load(&ip.hist->sum) / 1e3 / (double)out->calls : 0;
        if (rc != 0)
            snprintf(out->note, sizeof out->note, "in-process run did not finish in 10 min");
    }
    for (int i = 0; i < N_SANDBOXES; i++)
        envd_client_free(ip.c[i]); /* after a stuck run this cancels what is left */
    envd_runtime_free(rt);
    free(slots);
    bench_hist_free(ip.hist);
    pthread_mutex_destroy(&ip.mu);
    pthread_cond_destroy(&ip.cv);
    return rc;
}

/* envdctl batch --check on a big jobs file: its peak RSS. */
static int check_rss(bench_env *env, const char *prog, bench_result *out)
{
    long lines = env_long("ENVD_BENCH_BATCH_CHECK_LINES", 1000000);
    char jobs[300], log[300];
    snprintf(jobs, sizeof jobs, "%s/batch-check.jsonl", env->tmpdir);
    snprintf(log, sizeof log, "%s/batch-check.log", env->tmpdir);
    if (write_jobs(jobs, lines) != 0)
        return -1;
    const char *argv[] = {prog, "batch", "--check", jobs, NULL};
    child_fig f;
    int rc = run_child(argv, log, &f);
    unlink(jobs);
    if (rc != 0 || !WIFEXITED(f.status) || WEXITSTATUS(f.status) != 0) {
        bench_log("envd-bench: envdctl batch --check failed (status 0x%x, log %s)", f.status, log);
        return -1;
    }
    out->check_lines = lines;
    out->check_rss_kib = f.maxrss_kib;
    return 0;
}

static void batch_note(bench_result *out)
{
    double per_a = out->batch_cpu_us / (double)out->batch_jobs;
    double per_b = out->cpu_us / (double)out->batch_jobs;
    double fixed = out->batch_startup_cpu_us;
    size_t o = (size_t)snprintf(
        out->note, sizeof out->note,
        "envdctl batch: %llu/%ld ok, %.2f s, %.0f jobs/s, CPU %.1f us/job = %.2fx libenvd's "
        "loop (%.1f us/job, %.0f jobs/s); envdctl's fixed CPU (a batch of %d jobs) %.1f ms, "
        "without it %.2fx",
        (unsigned long long)out->batch_ok, out->batch_jobs, out->batch_seconds,
        (double)out->batch_jobs / out->batch_seconds, per_a, per_a / per_b, per_b,
        (double)out->batch_jobs / out->seconds, N_SANDBOXES, fixed / 1e3,
        (out->batch_cpu_us - fixed) / out->cpu_us);
    if (out->check_lines > 0 && o < sizeof out->note)
        snprintf(out->note + o, sizeof out->note - o, "; --check of %ld lines: peak RSS %.1f MiB",
                 out->check_lines, (double)out->check_rss_kib / 1024);
}

int bench_run_batch(bench_env *env, const bench_scenario *sc, int transport, int concurrency,
                    bench_result *out)
{
    (void)sc;
    char prog[PATH_MAX] = "", jobs[300];
    if (find_envdctl(env, prog, sizeof prog) != 0) {
        snprintf(out->note, sizeof out->note, "no envdctl at %.300s (build it, or --envdctl PATH)",
                 prog);
        out->skipped = 1;
        return -1;
    }
    long n = env_long("ENVD_BENCH_BATCH_JOBS", 10000);
    snprintf(jobs, sizeof jobs, "%s/batch-jobs.jsonl", env->tmpdir);
    out->batch_jobs = n;
    bench_result small = *out;
    if (write_jobs(jobs, N_SANDBOXES) != 0 ||
        via_envdctl(env, prog, transport, concurrency, jobs, &small) != 0 ||
        write_jobs(jobs, n) != 0 || via_envdctl(env, prog, transport, concurrency, jobs, out) != 0) {
        if (!out->note[0])
            snprintf(out->note, sizeof out->note, "%s", small.note[0] ? small.note : "envdctl failed");
        out->skipped = 1;
        return -1;
    }
    out->batch_startup_cpu_us = small.batch_cpu_us;
    double srv0 = bench_server_cpu_us(env);
    if (in_process(env, transport, concurrency, n, out) != 0) {
        out->skipped = 1;
        return -1;
    }
    double srv1 = bench_server_cpu_us(env);
    if (srv0 >= 0 && srv1 >= 0) /* the row's server columns: the in-process run */
        out->server_cpu_us = srv1 - srv0;
    check_rss(env, prog, out);
    out->peak_rss_kib = bench_self_hwm_kib();
    batch_note(out);
    return 0;
}

void bench_batch_targets(FILE *fp, const bench_result *rs, size_t n, int *met, int *missed)
{
    for (size_t i = 0; i < n; i++) {
        const bench_result *r = &rs[i];
        if (r->skipped || r->batch_jobs <= 0 || r->cpu_us <= 0)
            continue;
        const char *tn = bench_transport_name(r->transport);
        double ratio = r->batch_cpu_us / r->cpu_us; /* same jobs: the ratio per job */
        int ok = ratio <= 1.5 && r->batch_ok == (uint64_t)r->batch_jobs;
        fprintf(fp,
                "  batch    %-11s n=%-6ld envdctl CPU/job %.1f us = %.2fx libenvd loop's %.1f us "
                "(<= 1.5x): %s\n",
                tn, r->batch_jobs, r->batch_cpu_us / (double)r->batch_jobs, ratio,
                r->cpu_us / (double)r->batch_jobs, ok ? "met" : "MISSED");
        *met += ok;
        *missed += !ok;
        if (r->check_lines <= 0)
            continue;
        ok = r->check_rss_kib <= 64 * 1024;
        fprintf(fp, "  batch    --check n=%-8ld peak RSS %.1f MiB <= 64 MiB: %s\n",
                r->check_lines, (double)r->check_rss_kib / 1024, ok ? "met" : "MISSED");
        *met += ok;
        *missed += !ok;
    }
}
