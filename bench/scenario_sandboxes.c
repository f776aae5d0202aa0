/* The sandboxes scenario: memory per sandbox on one runtime. N clients
 * (default 10,000), each for its own sandbox id, against one server:
 *
 *   idle_rss_per_client_kib   (VmRSS with N clients made - VmRSS before) / N
 *   rss_per_call_kib          (VmRSS with N clients each with one Stat in
 *                             flight - VmRSS before the clients) / N: client
 *                             and call together, above the runtime's own
 *   heap_per_call_kib         the same in malloc'd bytes (mallinfo2)
 *   cpu_us (per call)         making the N clients, their calls, and freeing
 *                             them, per sandbox
 *
 * The calls are held in flight by pausing the server (SIGSTOP), as in the
 * inflight scenario; the server is resumed and every call must then
 * succeed. Targets (issue 11): <= 4 KiB per idle client, <= 12 KiB per
 * sandbox with its call. */
#include "bench.h"

#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

static double heap_kib(void)
{
    struct mallinfo2 mi = mallinfo2();
    return (double)mi.uordblks / 1024.0;
}

/* Makes the n clients; 0 or -1 (note set). */
static int make_clients(bench_env *env, envd_runtime *rt, int transport, envd_client **cs, long n,
                        bench_result *out)
{
    for (long i = 0; i < n; i++) {
        char id[32];
        snprintf(id, sizeof id, "sbx-%06ld", i);
        cs[i] = bench_client_new_id(env, rt, transport, 300000, id);
        if (!cs[i]) {
            snprintf(out->note, sizeof(out->note), "client #%ld could not be made", i);
            return -1;
        }
    }
    return 0;
}

int bench_run_sandboxes(bench_env *env, const bench_scenario *sc, int transport, int concurrency,
                        bench_result *out)
{
    (void)sc;
    long n = concurrency;
    if (env->server.pid <= 0) {
        out->skipped = 1;
        snprintf(out->note, sizeof(out->note),
                 "needs the server's pid to pause it (own server, or --server-pid)");
        return -1;
    }
    bench_pending w;
    int w_ok = bench_pending_init(&w, n) == 0;
    bench_pending_call *calls = calloc((size_t)n, sizeof(*calls));
    envd_client **cs = calloc((size_t)n, sizeof(*cs));
    envd_future **fs = calloc((size_t)n, sizeof(*fs));
    envd_runtime *rt = bench_runtime_new(env, (int)n + 64);
    envd_client *warm = rt ? bench_client_new(env, rt, transport, 300000) : NULL;
    int rc = -1, stopped = 0;
    long started = 0;
    if (!w_ok || !calls || !cs || !fs || !warm) {
        out->skipped = 1;
        snprintf(out->note, sizeof(out->note), "setup failed");
        goto done;
    }
    /* the runtime's own: engines, a connection, a first call */
    envd_entry_info *e = NULL;
    envd_error *err = NULL;
    envd_status st = envd_fs_get_info(warm, env->stat_path, &e, &err);
    envd_entry_info_free(e);
    if (st != ENVD_OK) {
        out->skipped = 1;
        snprintf(out->note, sizeof(out->note), "first call: %s",
                 err ? envd_error_message(err) : envd_strerror(st));
        envd_error_free(err);
        goto done;
    }
    malloc_trim(0);
    bench_self_reset_hwm();
    long rss0 = bench_self_rss_kib();
    double heap0 = heap_kib();
    out->baseline_rss_kib = (double)rss0;
    struct rusage ru0, ru1;
    getrusage(RUSAGE_SELF, &ru0);
    uint64_t t0 = bench_now_ns();
    if (make_clients(env, rt, transport, cs, n, out) != 0)
        goto done;
    double make_s = (double)(bench_now_ns() - t0) / 1e9;
    long rss1 = bench_self_rss_kib();
    double heap1 = heap_kib();

    if (kill(env->server.pid, SIGSTOP) != 0) {
        snprintf(out->note, sizeof(out->note), "cannot SIGSTOP the server");
        goto done;
    }
    stopped = 1;
    for (long i = 0; i < n; i++) {
        calls[i].p = &w;
        calls[i].t0 = bench_now_ns();
        if (envd_fs_get_info_async(cs[i], env->stat_path, &fs[i]) != ENVD_OK)
            break;
        envd_future_on_complete(fs[i], bench_pending_on_done, &calls[i]);
        started++;
    }
    bench_sleep_ns(1500000000ull); /* let the transports send what they can */
    long rss2 = bench_self_rss_kib();
    double heap2 = heap_kib();
    out->threads = bench_self_threads();
    out->connections = bench_count_conns(env->server.port);
    kill(env->server.pid, SIGCONT);
    stopped = 0;
    uint64_t t_resume = bench_now_ns();
    bench_pending_wait(&w, started, 240000000000ull);
    out->seconds = (double)(bench_now_ns() - t_resume) / 1e9;
    for (long i = 0; i < started; i++) {
        envd_future_free(fs[i]);
        fs[i] = NULL;
    }
    uint64_t t_free = bench_now_ns();
    for (long i = 0; i < n; i++) {
        envd_client_free(cs[i]);
        cs[i] = NULL;
    }
    double free_s = (double)(bench_now_ns() - t_free) / 1e9;
    getrusage(RUSAGE_SELF, &ru1);

    out->inflight = -1;
    out->calls = (uint64_t)atomic_load(&w.ok);
    out->errors = (uint64_t)(n - out->calls);
    out->cpu_us = bench_rusage_us(&ru1) - bench_rusage_us(&ru0);
    out->peak_rss_kib = bench_self_hwm_kib();
    out->idle_rss_per_client_kib = (double)(rss1 - rss0) / (double)n;
    out->rss_per_call_kib = started ? (double)(rss2 - rss0) / (double)started : -1;
    out->heap_per_call_kib = started ? (heap2 - heap0) / (double)started : -1;
    snprintf(out->note, sizeof(out->note),
             "%ld sandboxes: %.2f KiB RSS per idle client (%.2f KiB malloc'd), %.2f KiB per "
             "sandbox with a call in flight (%.2f KiB malloc'd), baseline %ld KiB; %.1f us to "
             "make a client, %.1f us to free one; %d connections to the server",
             n, out->idle_rss_per_client_kib, (heap1 - heap0) / (double)n, out->rss_per_call_kib,
             out->heap_per_call_kib, rss0, make_s * 1e6 / (double)n, free_s * 1e6 / (double)n,
             out->connections);
    rc = 0;
done:
    if (stopped)
        kill(env->server.pid, SIGCONT);
    for (long i = 0; fs && i < started; i++)
        envd_future_free(fs[i]);
    for (long i = 0; cs && i < n; i++)
        envd_client_free(cs[i]);
    envd_client_free(warm);
    envd_runtime_free(rt);
    free(fs);
    free(cs);
    free(calls);
    bench_pending_destroy(&w);
    return rc;
}
