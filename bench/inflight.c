/* The inflight scenario: N (default 10,000) Stat calls in flight at once on
 * one runtime, against a server paused with SIGSTOP so that none can
 * complete. While they are all pending it counts this process's threads and
 * the RSS they added; then it resumes the server and lets every call finish.
 *
 *   threads            every thread of the process, the main one included
 *   rss_per_call_kib   (VmRSS with N pending - VmRSS before) / N
 *   seconds, calls/s   from SIGCONT until the last call completed (drain)
 *   server CPU         over the drain
 *   p50/p99            from submission to completion: mostly the pause
 *   cpu_us_per_call    CPU from the first submission to the last completion */
#include "bench.h"

#include <dirent.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* Thread names, counted: "envd-bench x3, envd-grpc-0 x1, ...". *own gets
 * the threads libenvd made (its named workers and the unnamed ones, which
 * carry the program's name; the main thread is not counted). */
static void thread_names(char *buf, size_t len, int *own)
{
    buf[0] = 0;
    *own = 0;
    char self[20] = "";
    FILE *sf = fopen("/proc/self/comm", "r");
    if (sf) {
        if (fgets(self, sizeof(self), sf))
            self[strcspn(self, "\n")] = 0;
        fclose(sf);
    }
    DIR *d = opendir("/proc/self/task");
    if (!d)
        return;
    char names[64][20];
    int counts[64];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char path[300], name[20] = "?";
        snprintf(path, sizeof(path), "/proc/self/task/%s/comm", e->d_name);
        FILE *fp = fopen(path, "r");
        if (fp) {
            if (fgets(name, sizeof(name), fp))
                name[strcspn(name, "\n")] = 0;
            fclose(fp);
        }
        if (strcmp(name, self) == 0 || strncmp(name, "envd-", 5) == 0)
            (*own)++;
        int i;
        for (i = 0; i < n; i++)
            if (strcmp(names[i], name) == 0)
                break;
        if (i == n && n < 64) {
            snprintf(names[n], sizeof(names[n]), "%s", name);
            counts[n++] = 0;
        }
        if (i < 64)
            counts[i]++;
    }
    closedir(d);
    (*own)--; /* the main thread */
    size_t used = 0;
    for (int i = 0; i < n && used < len; i++)
        used += (size_t)snprintf(buf + used, len - used, "%s%s x%d", i ? ", " : "", names[i],
                                 counts[i]);
}

int bench_run_inflight(bench_env *env, const bench_scenario *sc, int transport, int concurrency,
                       bench_result *out)
{
    (void)sc;
    long n = concurrency;
    out->inflight = n;
    if (env->server.pid <= 0) {
        out->skipped = 1;
        snprintf(out->note, sizeof(out->note),
                 "needs the server's pid to pause it (own server, or --server-pid)");
        return -1;
    }
    bench_pending p;
    int p_ok = bench_pending_init(&p, n) == 0;
    bench_pending_call *calls = calloc((size_t)n, sizeof(*calls));
    envd_future **fs = calloc((size_t)n, sizeof(*fs));
    envd_runtime *rt = bench_runtime_new(env, (int)n + 64);
    envd_client *c = rt ? bench_client_new(env, rt, transport, 300000) : NULL;
    int rc = -1;
    int stopped = 0;
    long started = 0;
    if (!p_ok || !calls || !fs || !c) {
        out->skipped = 1;
        snprintf(out->note, sizeof(out->note), "setup failed");
        goto done;
    }
    /* warm: connect, and let the runtime's lazily made pieces exist */
    {
        envd_entry_info *e = NULL;
        envd_error *err = NULL;
        envd_status st = envd_fs_get_info(c, env->stat_path, &e, &err);
        envd_entry_info_free(e);
        if (st != ENVD_OK) {
            out->skipped = 1;
            snprintf(out->note, sizeof(out->note), "first call: %s",
                     err ? envd_error_message(err) : envd_strerror(st));
            envd_error_free(err);
            goto done;
        }
    }
    /* hand memory freed by earlier cases back to the kernel, so that what
     * these calls take shows up as RSS instead of reusing free lists */
    malloc_trim(0);
    bench_self_reset_hwm();
    long rss0 = bench_self_rss_kib();
    struct mallinfo2 mi0 = mallinfo2();
    int threads0 = bench_self_threads();
    out->baseline_rss_kib = (double)rss0;

    if (kill(env->server.pid, SIGSTOP) != 0) {
        out->skipped = 1;
        snprintf(out->note, sizeof(out->note), "cannot SIGSTOP the server");
        goto done;
    }
    stopped = 1;
    struct rusage ru0, ru1;
    getrusage(RUSAGE_SELF, &ru0);
    uint64_t t_submit = bench_now_ns();
    for (long i = 0; i < n; i++) {
        calls[i].p = &p;
        calls[i].t0 = bench_now_ns();
        envd_status st = envd_fs_get_info_async(c, env->stat_path, &fs[i]);
        if (st != ENVD_OK) {
            snprintf(out->note, sizeof(out->note), "start #%ld: %s", i, envd_strerror(st));
            break;
        }
        envd_future_on_complete(fs[i], bench_pending_on_done, &calls[i]);
        started++;
    }
    double submit_s = (double)(bench_now_ns() - t_submit) / 1e9;
    /* let the transports push out what they can while the server sleeps */
    bench_sleep_ns(1500000000ull);
    long rss1 = bench_self_rss_kib();
    struct mallinfo2 mi1 = mallinfo2();
    out->threads = bench_self_threads();
    char names[512];
    thread_names(names, sizeof(names), &out->runtime_threads);
    uint64_t early = atomic_load(&p.done);
    out->connections = bench_count_conns(env->server.port);

    double srv0 = bench_server_cpu_us(env);
    kill(env->server.pid, SIGCONT);
    stopped = 0;
    uint64_t t_resume = bench_now_ns();
    bench_pending_wait(&p, started, 240000000000ull);
    uint64_t t_end = bench_now_ns();
    getrusage(RUSAGE_SELF, &ru1);
    double srv1 = bench_server_cpu_us(env);
    if (srv0 >= 0 && srv1 >= 0)
        out->server_cpu_us = srv1 - srv0;

    out->calls = atomic_load(&p.ok);
    out->errors = (uint64_t)started - out->calls + (uint64_t)(n - started);
    out->seconds = (double)(t_end - t_resume) / 1e9;
    out->p50_us = bench_hist_quantile(p.hist, 0.50) / 1e3;
    out->p90_us = bench_hist_quantile(p.hist, 0.90) / 1e3;
    out->p99_us = bench_hist_quantile(p.hist, 0.99) / 1e3;
    out->max_us = (double)atomic_load(&p.hist->max) / 1e3;
    uint64_t cnt = atomic_load(&p.hist->count);
    out->mean_us = cnt ? (double)atomic_load(&p.hist->sum) / 1e3 / (double)cnt : 0;
    out->cpu_us = bench_rusage_us(&ru1) - bench_rusage_us(&ru0);
    out->cpu_user_us = (double)(ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec) * 1e6 +
                       (double)(ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec);
    out->cpu_sys_us = out->cpu_us - out->cpu_user_us;
    out->peak_rss_kib = bench_self_hwm_kib();
    out->rss_per_call_kib = started ? (double)(rss1 - rss0) / (double)started : -1;
    /* what malloc handed out, as opposed to the pages it touched */
    out->heap_per_call_kib =
        started ? ((double)mi1.uordblks - (double)mi0.uordblks) / 1024.0 / (double)started : -1;
    int workers = env->opts->workers;
    if (workers <= 0)
        workers = (int)sysconf(_SC_NPROCESSORS_ONLN);
    out->workers = workers;
    if (p.first_error[0] && !out->note[0])
        snprintf(out->note, sizeof(out->note), "first error: %s", p.first_error);
    size_t used = strlen(out->note);
    snprintf(out->note + used, sizeof(out->note) - used,
             "%s%ld started in %.2f s, %llu done while paused; threads before %d: %s",
             used ? "; " : "", started, submit_s, (unsigned long long)early, threads0, names);
    if ((long)atomic_load(&p.done) < started)
        bench_log("envd-bench: inflight: %ld calls still pending after 240 s; cancelling",
                  started - (long)atomic_load(&p.done));
    rc = 0;
done:
    if (stopped)
        kill(env->server.pid, SIGCONT);
    for (long i = 0; i < started; i++)
        envd_future_free(fs[i]); /* cancels any still pending */
    envd_client_free(c);
    envd_runtime_free(rt);
    free(fs);
    free(calls);
    bench_pending_destroy(&p);
    return rc;
}
