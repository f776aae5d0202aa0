/* Printing: the human table, JSON lines, and the target checks. */
#include "bench.h"
#include "scenario_commands.h"
#include "scenario_files.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static double per_call(double total, uint64_t calls)
{
    return calls ? total / (double)calls : 0;
}

/* no libm: the bench links only what the library does */
static double rnd(double v)
{
    return v >= 0 ? (double)(long long)(v + 0.5) : -(double)(long long)(-v + 0.5);
}

static double round1(double v)
{
    return rnd(v * 10.0) / 10.0;
}

static double cpu_per_call(const bench_result *r)
{
    return per_call(r->cpu_us, r->calls);
}

static double calls_per_s(const bench_result *r)
{
    return r->seconds > 0 ? (double)r->calls / r->seconds : 0;
}

void bench_print_header(const bench_opts *o)
{
    if (o->json)
        return;
    printf("%-10s %-8s %-11s %5s %8s %5s %9s %8s %8s %9s %8s %6s %6s %5s %4s\n", "client",
           "scenario", "transport", "c", "calls", "err", "calls/s", "p50 us", "p99 us", "cpu us/c",
           "rss KiB", "srv us", "srv %", "conns", "thr");
    fflush(stdout);
}

json_t *bench_result_json(const bench_result *r)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    json_object_set_new(o, "client", json_string(r->client));
    json_object_set_new(o, "scenario", json_string(r->scenario));
    json_object_set_new(o, "transport", json_string(bench_transport_name(r->transport)));
    json_object_set_new(o, "http", json_string(r->http));
    json_object_set_new(o, "encoding", json_string(r->encoding));
    json_object_set_new(o, "concurrency", json_integer(r->concurrency));
    json_object_set_new(o, "calls", json_integer((json_int_t)r->calls));
    json_object_set_new(o, "errors", json_integer((json_int_t)r->errors));
    json_object_set_new(o, "seconds", json_real(rnd(r->seconds * 1000) / 1000));
    json_object_set_new(o, "calls_per_s", json_real(round1(calls_per_s(r))));
    json_object_set_new(o, "p50_us", json_real(round1(r->p50_us)));
    json_object_set_new(o, "p90_us", json_real(round1(r->p90_us)));
    json_object_set_new(o, "p99_us", json_real(round1(r->p99_us)));
    json_object_set_new(o, "mean_us", json_real(round1(r->mean_us)));
    json_object_set_new(o, "max_us", json_real(round1(r->max_us)));
    json_object_set_new(o, "cpu_us_per_call", json_real(rnd(cpu_per_call(r) * 100) / 100));
    json_object_set_new(o, "cpu_us", json_real(rnd(r->cpu_us)));
    if (r->cpu_user_us >= 0) {
        json_object_set_new(o, "cpu_user_us", json_real(rnd(r->cpu_user_us)));
        json_object_set_new(o, "cpu_sys_us", json_real(rnd(r->cpu_sys_us)));
    }
    json_object_set_new(
        o, "calls_per_cpu_s",
        json_real(r->cpu_us > 0 ? round1((double)r->calls / (r->cpu_us / 1e6)) : 0));
    json_object_set_new(o, "peak_rss_kib",
                        r->peak_rss_kib >= 0 ? json_integer(r->peak_rss_kib) : json_null());
    if (r->server_cpu_us >= 0) {
        json_object_set_new(o, "server_cpu_us_per_call",
                            json_real(round1(per_call(r->server_cpu_us, r->calls))));
        json_object_set_new(
            o, "server_cpu_pct",
            json_real(r->seconds > 0 ? round1(100.0 * r->server_cpu_us / 1e6 / r->seconds) : 0));
    } else {
        json_object_set_new(o, "server_cpu_us_per_call", json_null());
        json_object_set_new(o, "server_cpu_pct", json_null());
    }
    json_object_set_new(o, "connections",
                        r->connections >= 0 ? json_integer(r->connections) : json_null());
    json_object_set_new(o, "threads", r->threads >= 0 ? json_integer(r->threads) : json_null());
    if (r->inflight >= 0) {
        json_object_set_new(o, "inflight", json_integer(r->inflight));
        json_object_set_new(o, "workers", json_integer(r->workers));
        json_object_set_new(o, "runtime_threads", json_integer(r->runtime_threads));
        json_object_set_new(o, "rss_per_call_kib", json_real(rnd(r->rss_per_call_kib * 100) / 100));
        json_object_set_new(o, "heap_per_call_kib",
                            json_real(rnd(r->heap_per_call_kib * 100) / 100));
        json_object_set_new(o, "baseline_rss_kib", json_real(r->baseline_rss_kib));
    }
    if (r->idle_rss_per_client_kib >= 0) {
        json_object_set_new(o, "idle_rss_per_client_kib",
                            json_real(rnd(r->idle_rss_per_client_kib * 100) / 100));
        json_object_set_new(o, "rss_per_sandbox_kib",
                            json_real(rnd(r->rss_per_call_kib * 100) / 100));
        json_object_set_new(o, "heap_per_sandbox_kib",
                            json_real(rnd(r->heap_per_call_kib * 100) / 100));
        json_object_set_new(o, "baseline_rss_kib", json_real(r->baseline_rss_kib));
    }
    if (r->file_bytes > 0) {
        json_object_set_new(o, "bytes_per_s", json_real(rnd(r->bytes_per_s)));
        json_object_set_new(o, "files", json_integer(r->files));
        json_object_set_new(o, "file_bytes", json_integer((json_int_t)r->file_bytes));
        if (r->parts)
            json_object_set_new(o, "parts", json_integer(r->parts));
    }
    if (r->stream_bytes > 0) {
        json_object_set_new(o, "bytes_per_s", json_real(rnd(r->bytes_per_s)));
        json_object_set_new(o, "stream_bytes", json_integer((json_int_t)r->stream_bytes));
    }
    if (r->batch_jobs > 0) {
        json_object_set_new(o, "batch_jobs", json_integer(r->batch_jobs));
        json_object_set_new(o, "batch_ok", json_integer((json_int_t)r->batch_ok));
        json_object_set_new(o, "batch_seconds", json_real(rnd(r->batch_seconds * 1000) / 1000));
        json_object_set_new(o, "batch_cpu_us", json_real(rnd(r->batch_cpu_us)));
        json_object_set_new(
            o, "batch_cpu_us_per_job",
            json_real(rnd(r->batch_cpu_us / (double)r->batch_jobs * 10) / 10));
        json_object_set_new(o, "batch_startup_cpu_us", json_real(rnd(r->batch_startup_cpu_us)));
        json_object_set_new(o, "check_lines", json_integer(r->check_lines));
        json_object_set_new(o, "check_peak_rss_kib", json_integer(r->check_rss_kib));
    }
    if (r->skipped)
        json_object_set_new(o, "skipped", json_true());
    if (r->unavailable)
        json_object_set_new(o, "unavailable", json_true());
    if (r->note[0])
        json_object_set_new(o, "note", json_string(r->note));
    return o;
}

char *bench_row_dumps(const json_t *row)
{
    return json_dumps(row, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(12));
}

static void print_json(const bench_result *r)
{
    json_t *o = bench_result_json(r);
    char *s = o ? bench_row_dumps(o) : NULL;
    if (s) {
        puts(s);
        free(s);
    }
    json_decref(o);
}

void bench_print_result(const bench_opts *o, const bench_result *r)
{
    if (o->json) {
        print_json(r);
        fflush(stdout);
        return;
    }
    if (r->skipped) {
        printf("%-10s %-8s %-11s %5d  %s: %s\n", r->client, r->scenario,
               bench_transport_name(r->transport), r->concurrency,
               r->unavailable ? "absent" : "skipped", r->note);
        fflush(stdout);
        return;
    }
    char srv_us[16] = "-", srv_pct[16] = "-", conns[16] = "-", thr[16] = "-", rss[24] = "-";
    if (r->peak_rss_kib >= 0)
        snprintf(rss, sizeof(rss), "%ld", r->peak_rss_kib);
    if (r->server_cpu_us >= 0 && r->seconds > 0) {
        snprintf(srv_us, sizeof(srv_us), "%.0f", per_call(r->server_cpu_us, r->calls));
        snprintf(srv_pct, sizeof(srv_pct), "%.0f", 100.0 * r->server_cpu_us / 1e6 / r->seconds);
    }
    if (r->connections >= 0)
        snprintf(conns, sizeof(conns), "%d", r->connections);
    if (r->threads >= 0)
        snprintf(thr, sizeof(thr), "%d", r->threads);
    printf("%-10s %-8s %-11s %5d %8llu %5llu %9.0f %8.0f %8.0f %9.1f %8s %6s %6s %5s %4s\n",
           r->client, r->scenario, bench_transport_name(r->transport), r->concurrency,
           (unsigned long long)r->calls, (unsigned long long)r->errors, calls_per_s(r), r->p50_us,
           r->p99_us, cpu_per_call(r), rss, srv_us, srv_pct, conns, thr);
    if (r->inflight >= 0)
        printf("         inflight %ld: %d threads (workers %d; %d started by libenvd, %d by gRPC "
               "core, 1 main), %.2f KiB RSS per call in flight (%.2f KiB of it malloc'd; "
               "baseline %.0f KiB)\n"
               "         %s\n",
               r->inflight, r->threads, r->workers, r->runtime_threads,
               r->threads - r->runtime_threads - 1, r->rss_per_call_kib, r->heap_per_call_kib,
               r->baseline_rss_kib, r->note);
    if (r->file_bytes > 0 || r->batch_jobs > 0 || r->idle_rss_per_client_kib >= 0 ||
        r->stream_bytes > 0 || (strcmp(r->scenario, "long") == 0 && r->note[0]))
        printf("         %s\n", r->note);
    fflush(stdout);
}

/* ------------------------------------------------------------- targets */

static const bench_result *find(const bench_result *rs, size_t n, const char *client,
                                const char *scenario, int transport, int conc)
{
    for (size_t i = 0; i < n; i++)
        if (!rs[i].skipped && rs[i].calls > 0 && strcmp(rs[i].client, client) == 0 &&
            strcmp(rs[i].scenario, scenario) == 0 && rs[i].transport == transport &&
            rs[i].concurrency == conc)
            return &rs[i];
    return NULL;
}

/* Peer clients whose rows are absent (Go not installed, module not served):
 * their targets cannot be checked; said once, with the reason. And what
 * go-connect stands for, once, when it has rows. */
static void absent_peers(FILE *fp, const bench_result *rs, size_t n)
{
    static const char *const peers[] = {"go", "go-connect", "e2b-js"};
    for (size_t p = 0; p < sizeof(peers) / sizeof(peers[0]); p++)
        for (size_t i = 0; i < n; i++)
            if (rs[i].unavailable && strcmp(rs[i].client, peers[p]) == 0) {
                fprintf(fp, "  %s client absent, its targets not checked: %s\n", peers[p],
                        rs[i].note);
                break;
            }
    for (size_t i = 0; i < n; i++)
        if (!rs[i].skipped && strcmp(rs[i].client, "go-connect") == 0) {
            fprintf(fp, "  go-connect: %s\n", bench_go_connect_about());
            break;
        }
}

static void count(int ok, int *met, int *missed)
{
    *met += ok;
    *missed += !ok;
}

/* Issue 11's targets for a closed-loop libenvd row: CPU per call against
 * lean h2load (gRPC <= 4x, Connect/HTTP/1.1 <= 1.6x h2load --h1), below the
 * Go client on every transport (the agents-api module, `go`, when it
 * builds; its stack, `go-connect`), >= 25x below the e2b SDK; and throughput at
 * c=256 >= 90% of h2load's. */
static void unary_targets(FILE *fp, const bench_result *rs, size_t n, const bench_result *l,
                          int *met, int *missed)
{
    const char *sc = l->scenario;
    const char *tn = bench_transport_name(l->transport);
    int c = l->concurrency;
    double mine = cpu_per_call(l);
    const bench_result *h = find(rs, n, "h2load", sc, l->transport, c);
    if (h) {
        double ratio = mine / cpu_per_call(h);
        double limit = l->transport == BT_GRPC ? 4.0 : l->transport == BT_CONNECT_H1 ? 1.6 : 0;
        const char *h1 = l->transport == BT_CONNECT_H1 ? " --h1" : "";
        if (limit > 0) {
            fprintf(fp, "  %-8s %-11s c=%-4d CPU/call %.1f us = %.2fx lean h2load%s's %.1f us "
                        "(<= %.1fx): %s\n",
                    sc, tn, c, mine, ratio, h1, cpu_per_call(h), limit,
                    ratio <= limit ? "met" : "MISSED");
            count(ratio <= limit, met, missed);
        } else {
            fprintf(fp, "  %-8s %-11s c=%-4d CPU/call %.1f us = %.2fx lean h2load's %.1f us "
                        "(no target)\n",
                    sc, tn, c, mine, ratio, cpu_per_call(h));
        }
        if (c == 256) {
            double tr = calls_per_s(l) / calls_per_s(h);
            fprintf(fp, "  %-8s %-11s c=%-4d throughput %.0f/s = %.0f%% of h2load's %.0f/s "
                        "(>= 90%%): %s\n",
                    sc, tn, c, calls_per_s(l), 100 * tr, calls_per_s(h),
                    tr >= 0.9 ? "met" : "MISSED");
            count(tr >= 0.9, met, missed);
        }
    }
    /* the Go client: the agents-api module, and its stack (go-connect) */
    static const char *const gos[][2] = {{"go", "the Go client's"},
                                         {"go-connect", "the Go client's stack (go-connect)"}};
    for (size_t k = 0; k < 2; k++) {
        const bench_result *g = find(rs, n, gos[k][0], sc, l->transport, c);
        if (!g)
            continue;
        double ratio = mine / cpu_per_call(g);
        fprintf(fp, "  %-8s %-11s c=%-4d CPU/call %.1f us = %.2fx %s %.1f us (< 1x): %s\n", sc,
                tn, c, mine, ratio, gos[k][1], cpu_per_call(g), ratio < 1 ? "met" : "MISSED");
        count(ratio < 1, met, missed);
    }
    if (l->transport != BT_CONNECT_H1)
        return;
    const bench_result *e = find(rs, n, "e2b-js", sc, l->transport, c);
    if (!e)
        return;
    double ratio = cpu_per_call(e) / mine;
    fprintf(fp, "  %-8s %-11s c=%-4d e2b-js CPU/call %.1f us = %.1fx libenvd's %.1f us "
                "(>= 25x): %s\n",
            sc, tn, c, cpu_per_call(e), ratio, mine, ratio >= 25 ? "met" : "MISSED");
    count(ratio >= 25, met, missed);
    const bench_result *gr = find(rs, n, "libenvd", sc, BT_GRPC, c);
    if (gr)
        fprintf(fp, "  %-8s %-11s c=%-4d   (vs libenvd over grpc %.1f us: %.1fx)\n", sc, "", c,
                cpu_per_call(gr), cpu_per_call(e) / cpu_per_call(gr));
}

void bench_print_targets(const bench_opts *o, const bench_result *rs, size_t n)
{
    FILE *fp = o->json ? stderr : stdout;
    int met = 0, missed = 0;
    fprintf(fp, "\ntargets\n");
    for (size_t i = 0; i < n; i++) {
        const bench_result *l = &rs[i];
        if (strcmp(l->client, "libenvd") != 0 || l->skipped)
            continue;
        const char *sc = l->scenario;
        const char *tn = bench_transport_name(l->transport);
        if (l->idle_rss_per_client_kib >= 0) {
            int ok1 = l->idle_rss_per_client_kib <= 4.0, ok2 = l->rss_per_call_kib <= 12.0;
            int ok3 = l->errors == 0;
            fprintf(fp, "  %-8s %-11s n=%-5d RSS per idle client %.2f KiB <= 4 KiB: %s\n", sc, tn,
                    l->concurrency, l->idle_rss_per_client_kib, ok1 ? "met" : "MISSED");
            fprintf(fp,
                    "  %-8s %-11s n=%-5d RSS per sandbox with a call in flight %.2f KiB <= 12 "
                    "KiB: %s\n",
                    sc, tn, l->concurrency, l->rss_per_call_kib, ok2 ? "met" : "MISSED");
            fprintf(fp, "  %-8s %-11s n=%-5d every call succeeded: %s\n", sc, tn, l->concurrency,
                    ok3 ? "met" : "MISSED");
            met += ok1 + ok2 + ok3;
            missed += !ok1 + !ok2 + !ok3;
            continue;
        }
        if (l->inflight >= 0) {
            int runtime_threads = l->threads - 1; /* all but the main thread */
            int ok1 = runtime_threads <= l->workers + 2;
            int ok2 = l->rss_per_call_kib <= 16.0;
            fprintf(fp,
                    "  %-8s %-11s n=%-5ld threads besides main %d <= workers+2 = %d: %s "
                    "(libenvd's own: %d, gRPC core's: %d)\n",
                    sc, tn, l->inflight, runtime_threads, l->workers + 2, ok1 ? "met" : "MISSED",
                    l->runtime_threads, runtime_threads - l->runtime_threads);
            fprintf(fp, "  %-8s %-11s n=%-5ld RSS per call in flight %.2f KiB <= 16 KiB: %s\n", sc,
                    tn, l->inflight, l->rss_per_call_kib, ok2 ? "met" : "MISSED");
            if (l->errors)
                fprintf(fp, "  %-8s %-11s n=%-5ld   (%llu of the calls failed)\n", sc, tn,
                        l->inflight, (unsigned long long)l->errors);
            met += ok1 + ok2;
            missed += !ok1 + !ok2;
            continue;
        }
        if (l->calls == 0)
            continue;
        unary_targets(fp, rs, n, l, &met, &missed);
    }
    absent_peers(fp, rs, n);
    bench_stream_targets(fp, rs, n, &met, &missed);
    bench_files_targets(fp, rs, n, &met, &missed);
    bench_batch_targets(fp, rs, n, &met, &missed);
    fprintf(fp, "  %d met, %d missed\n", met, missed);
    fflush(fp);
}
