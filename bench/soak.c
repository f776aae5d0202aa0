/* The soak scenario (issue 13): a mixed load for a long time (--duration,
 * default 10 minutes here rather than the bench's 3 s), with the reference
 * server restarted every duration / 6, to show that nothing accumulates:
 * resident memory, open descriptors and threads at the start (after a first
 * round of every kind of call) and at the end must agree within 5 %.
 *
 * Each of --concurrency threads (default 8) loops over: a run with a line of
 * output, a run streaming 2,000 lines, a 64 KiB /files write and read back,
 * a directory watch that sees one event, and a run cancelled 20 ms in. Calls
 * that fail while the server restarts are counted by kind, not fatal. */
#include "bench.h"

#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { K_RUN, K_STREAM, K_FILES, K_WATCH, K_CANCEL, K_COUNT };
static const char *const KIND[K_COUNT] = {"run", "stream", "files", "watch", "cancel"};

typedef struct soak {
    envd_client *c;
    _Atomic int stop;
    _Atomic uint64_t calls[K_COUNT];
    _Atomic uint64_t errors[K_COUNT];
    _Atomic uint64_t by_status[128];
    bench_hist *hist;
} soak;

typedef struct worker {
    soak *s;
    int id;
    pthread_t t;
} worker;

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    if (!d)
        return -1;
    while (readdir(d))
        n++;
    closedir(d);
    return n - 3; /* ".", ".." and the DIR's own */
}

/* The open descriptors by kind, for the report: "7 sockets, 4 pipes, ...". */
static void fd_kinds(char *out, size_t cap)
{
    static const char *const kinds[] = {"socket:", "pipe:", "anon_inode:", "/"};
    static const char *const names[] = {"sockets", "pipes", "anon inodes", "files"};
    int n[4] = {0};
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    while (d && (e = readdir(d))) {
        char path[300], link[256];
        snprintf(path, sizeof path, "/proc/self/fd/%s", e->d_name);
        ssize_t k = readlink(path, link, sizeof link - 1);
        if (k <= 0)
            continue;
        link[k] = 0;
        for (int i = 0; i < 4; i++)
            if (strncmp(link, kinds[i], strlen(kinds[i])) == 0) {
                n[i]++;
                break;
            }
    }
    if (d)
        closedir(d);
    snprintf(out, cap, "%d %s, %d %s, %d %s, %d %s", n[0], names[0], n[1], names[1], n[2],
             names[2], n[3], names[3]);
}

static void on_event(void *ud, const envd_fs_event *ev)
{
    (void)ev;
    atomic_fetch_add((_Atomic int *)ud, 1);
}

static envd_status do_watch(envd_client *c, int id)
{
    char dir[64], file[96];
    snprintf(dir, sizeof dir, "/soak-w%d", id);
    snprintf(file, sizeof file, "%s/f", dir);
    envd_status st = envd_fs_make_dir(c, dir, NULL, NULL);
    if (st != ENVD_OK && st != ENVD_ALREADY_EXISTS)
        return st;
    _Atomic int seen = 0;
    envd_watch *w = NULL;
    if ((st = envd_fs_watch_dir(c, dir, 0, on_event, &seen, &w, NULL)) != ENVD_OK)
        return st;
    st = envd_files_write(c, file, "w", 1, NULL, NULL, NULL);
    for (int i = 0; st == ENVD_OK && i < 200 && !atomic_load(&seen); i++)
        bench_sleep_ns(10000000);
    if (st == ENVD_OK && !atomic_load(&seen))
        st = ENVD_DEADLINE_EXCEEDED;
    envd_watch_free(w);
    return st;
}

static envd_status do_files(envd_client *c, int id)
{
    enum { SIZE = 64 << 10 };
    char *block = malloc(SIZE);
    if (!block)
        return ENVD_E_NOMEM;
    memset(block, 'a' + id % 26, SIZE);
    char path[64];
    snprintf(path, sizeof path, "/soak-%d.bin", id);
    envd_status st = envd_files_write(c, path, block, SIZE, NULL, NULL, NULL);
    uint8_t *d = NULL;
    size_t n = 0;
    if (st == ENVD_OK)
        st = envd_files_read(c, path, NULL, &d, &n, NULL);
    if (st == ENVD_OK && (n != SIZE || memcmp(d, block, n) != 0))
        st = ENVD_DATA_LOSS;
    free(d);
    free(block);
    return st;
}

static envd_status do_cancel(envd_client *c)
{
    envd_future *f = NULL;
    envd_status st = envd_commands_run_async(c, "sleep 5", NULL, &f);
    if (st != ENVD_OK)
        return st;
    bench_sleep_ns(20000000);
    envd_future_cancel(f);
    st = envd_future_wait(f, 30000);
    if (st == ENVD_OK) {
        st = envd_future_status(f);
        if (st == ENVD_CANCELED)
            st = ENVD_OK; /* what a cancel should end in */
    }
    envd_future_free(f);
    return st;
}

static envd_status one_call(envd_client *c, int kind, int id)
{
    envd_command_result *res = NULL;
    envd_status st;
    switch (kind) {
    case K_RUN: st = envd_commands_run(c, "echo soak", NULL, &res, NULL); break;
    case K_STREAM: st = envd_commands_run(c, "seq 1 2000", NULL, &res, NULL); break;
    case K_FILES: st = do_files(c, id); break;
    case K_WATCH: st = do_watch(c, id); break;
    default: st = do_cancel(c); break;
    }
    envd_command_result_free(res);
    return st;
}

static void *work(void *arg)
{
    worker *w = arg;
    soak *s = w->s;
    for (unsigned i = (unsigned)w->id; !atomic_load(&s->stop); i++) {
        int kind = (int)(i % K_COUNT);
        uint64_t t0 = bench_now_ns();
        envd_status st = one_call(s->c, kind, w->id);
        atomic_fetch_add(&s->calls[kind], 1);
        if (st == ENVD_OK) {
            bench_hist_add(s->hist, bench_now_ns() - t0);
        } else {
            atomic_fetch_add(&s->errors[kind], 1);
            atomic_fetch_add(&s->by_status[(unsigned)st % 128], 1);
            bench_sleep_ns(200000000); /* a restart: do not spin */
        }
    }
    return NULL;
}

typedef struct gauges {
    long rss_kib;
    int fds, threads;
    char fd_kinds[96];
} gauges;

/* The floor of ten readings over a second: a descriptor or a thread that
 * lives for one call comes and goes; one that leaks stays in every reading. */
static gauges measure(void)
{
    gauges g = {bench_self_rss_kib(), count_fds(), bench_self_threads(), ""};
    for (int i = 0; i < 9; i++) {
        bench_sleep_ns(100000000);
        long rss = bench_self_rss_kib();
        int fds = count_fds(), th = bench_self_threads();
        g.rss_kib = rss < g.rss_kib ? rss : g.rss_kib;
        g.fds = fds < g.fds ? fds : g.fds;
        g.threads = th < g.threads ? th : g.threads;
    }
    fd_kinds(g.fd_kinds, sizeof g.fd_kinds);
    return g;
}

static int flat(double a, double b)
{
    return b <= a * 1.05 + 1;
}

/* Runs the load for secs, restarting the server every secs / 6. The gauges
 * are read with the load running: *g0 once it is warm (a twelfth in, before
 * the first restart), *g1 at the end, so both see the same threads and a
 * full connection cache. */
static void soak_loop(bench_env *env, double secs, int *restarts, gauges *g0, gauges *g1)
{
    uint64_t start = bench_now_ns(), end = start + (uint64_t)(secs * 1e9);
    uint64_t every = (uint64_t)(secs * 1e9 / 6), next = start + every;
    uint64_t warm = start + every / 2;
    int warmed = 0;
    while (bench_now_ns() < end) {
        bench_sleep_ns(100000000);
        if (!warmed && bench_now_ns() >= warm) {
            *g0 = measure();
            warmed = 1;
        }
        if (bench_now_ns() >= next && bench_now_ns() + every / 2 < end) {
            if (bench_server_restart(env) == 0)
                (*restarts)++;
            next += every;
        }
    }
    *g1 = measure();
}

/* base: before the runtime was made; after: once it was freed again. */
static void report(bench_result *out, const soak *s, gauges g0, gauges g1, int restarts,
                   int fds_base, int fds_after)
{
    size_t o = 0;
    char *n = out->note;
    o += (size_t)snprintf(n + o, sizeof out->note - o,
                          "RSS %ld->%ld KiB, fds %d->%d, threads %d->%d (%s); fds %s -> %s; "
                          "%d before the runtime, %d after its free; %d restarts; calls",
                          g0.rss_kib, g1.rss_kib, g0.fds, g1.fds, g0.threads, g1.threads,
                          flat((double)g0.rss_kib, (double)g1.rss_kib) && flat(g0.fds, g1.fds) &&
                                  flat(g0.threads, g1.threads)
                              ? "flat"
                              : "GREW",
                          g0.fd_kinds, g1.fd_kinds, fds_base, fds_after, restarts);
    for (int k = 0; k < K_COUNT && o < sizeof out->note; k++)
        o += (size_t)snprintf(n + o, sizeof out->note - o, " %s %llu/%llu err", KIND[k],
                              (unsigned long long)s->calls[k], (unsigned long long)s->errors[k]);
    for (int st = 0; st < 128 && o < sizeof out->note; st++)
        if (s->by_status[st])
            o += (size_t)snprintf(n + o, sizeof out->note - o, "%s %s x%llu",
                                  st == 0 ? "" : ";", envd_strerror((envd_status)st),
                                  (unsigned long long)s->by_status[st]);
}

int bench_run_soak(bench_env *env, const bench_scenario *sc, int transport, int concurrency,
                   bench_result *out)
{
    (void)sc;
    double secs = env->opts->duration_set ? env->opts->duration_s : 600;
    int nthreads = concurrency > 0 ? concurrency : 8;
    soak s;
    memset(&s, 0, sizeof s);
    int fds_base = count_fds();
    envd_runtime *rt = bench_runtime_new(env, 0);
    s.c = rt ? bench_client_new(env, rt, transport, 10000) : NULL;
    s.hist = bench_hist_new();
    worker *ws = calloc((size_t)nthreads, sizeof *ws);
    if (!s.c || !s.hist || !ws) {
        snprintf(out->note, sizeof out->note, "setup failed");
        out->skipped = 1;
        free(ws);
        bench_hist_free(s.hist);
        envd_client_free(s.c);
        envd_runtime_free(rt);
        return -1;
    }
    for (int k = 0; k < K_COUNT; k++) /* a first round: lazily made state exists */
        one_call(s.c, k, 0);
    gauges g0 = measure(), g1;
    uint64_t t0 = bench_now_ns();
    for (int i = 0; i < nthreads; i++) {
        ws[i] = (worker){&s, i, 0};
        pthread_create(&ws[i].t, NULL, work, &ws[i]);
    }
    int restarts = 0;
    soak_loop(env, secs, &restarts, &g0, &g1);
    atomic_store(&s.stop, 1);
    for (int i = 0; i < nthreads; i++)
        pthread_join(ws[i].t, NULL);
    out->seconds = (double)(bench_now_ns() - t0) / 1e9;
    for (int k = 0; k < K_COUNT; k++) {
        out->calls += s.calls[k] - s.errors[k];
        out->errors += s.errors[k];
    }
    out->p50_us = bench_hist_quantile(s.hist, 0.5) / 1000;
    out->p99_us = bench_hist_quantile(s.hist, 0.99) / 1000;
    out->threads = g1.threads;
    out->peak_rss_kib = bench_self_hwm_kib();
    free(ws);
    bench_hist_free(s.hist);
    envd_client_free(s.c);
    envd_runtime_free(rt);
    report(out, &s, g0, g1, restarts, fds_base, count_fds());
    return 0;
}
