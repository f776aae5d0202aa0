/* The command scenarios.
 *
 *   run     closed loop of Commands.Run of `true` (/bin/bash -l -c true):
 *           runs/s (calls/s), client CPU per run (cpu_us_per_call), peak RSS.
 *   stream  one command printing STREAM_BYTES (1 GiB; $ENVD_BENCH_STREAM_MIB
 *           to change it) through a stdout callback that keeps nothing:
 *           MB/s of output (bytes_per_s), client CPU per MB, peak RSS
 *           (flat). calls = 1 run. Its baseline is the row of client
 *           raw-curl, run right after it: the same stream read by a raw
 *           libcurl client that only counts bytes (the same request bytes on
 *           the same protocol), which is what the server can send. */
#include "scenario_commands.h"

#include "process.pb-c.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

/* ------------------------------------------------------------------- run */

envd_status bench_cmd_run_start(envd_client *c, bench_env *env, envd_future **out)
{
    (void)env;
    return envd_commands_run_async(c, "true", NULL, out);
}

/* ---------------------------------------------------------------- stream */

static uint64_t stream_bytes(void)
{
    const char *s = getenv("ENVD_BENCH_STREAM_MIB");
    long mib = s ? atol(s) : 0;
    return (uint64_t)(mib > 0 ? mib : 1024) << 20;
}

typedef struct counter {
    _Atomic uint64_t bytes;
    _Atomic uint64_t calls;
} counter;

static void count_cb(void *ud, const uint8_t *data, size_t len)
{
    (void)data;
    counter *c = ud;
    atomic_fetch_add_explicit(&c->bytes, len, memory_order_relaxed);
    atomic_fetch_add_explicit(&c->calls, 1, memory_order_relaxed);
}

static void cmd_for(char *buf, size_t cap, uint64_t bytes)
{
    snprintf(buf, cap, "head -c %llu /dev/zero", (unsigned long long)bytes);
}

/* The raw reader: POST the Start request as libenvd sends it, count the
 * response bytes, nothing else. */
typedef struct raw_state {
    uint64_t bytes;
} raw_state;

static size_t raw_write(char *p, size_t size, size_t n, void *ud)
{
    (void)p;
    ((raw_state *)ud)->bytes += size * n;
    return size * n;
}

static int raw_stream(bench_env *env, int transport, const char *cmd, double *seconds,
                      uint64_t *bytes, double *cpu_us, double *user_us, char *why, size_t why_len)
{
    Process__StartRequest req = PROCESS__START_REQUEST__INIT;
    Process__ProcessConfig cfg = PROCESS__PROCESS_CONFIG__INIT;
    char *args[3] = {"-l", "-c", (char *)cmd};
    cfg.cmd = "/bin/bash";
    cfg.args = args;
    cfg.n_args = 3;
    req.process = &cfg;
    req._stdin_case = PROCESS__START_REQUEST___STDIN_STDIN;
    req.stdin = 0;
    size_t n = process__start_request__get_packed_size(&req);
    uint8_t *body = malloc(n + 5);
    if (!body)
        return -1;
    /* the gRPC and the Connect envelope have the same 5-byte header */
    body[0] = 0;
    body[1] = (uint8_t)(n >> 24);
    body[2] = (uint8_t)(n >> 16);
    body[3] = (uint8_t)(n >> 8);
    body[4] = (uint8_t)n;
    process__start_request__pack(&req, body + 5);

    char url[256];
    snprintf(url, sizeof(url), "http://%s/process.Process/Start", env->server.addr);
    CURL *e = curl_easy_init();
    struct curl_slist *h = NULL;
    if (transport == BT_GRPC) {
        h = curl_slist_append(h, "Content-Type: application/grpc");
        h = curl_slist_append(h, "TE: trailers");
    } else {
        h = curl_slist_append(h, "Content-Type: application/connect+proto");
        h = curl_slist_append(h, "Connect-Protocol-Version: 1");
    }
    h = curl_slist_append(h, "Keepalive-Ping-Interval: 50");
    h = curl_slist_append(h, "Expect:");
    raw_state st = {0};
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, (char *)body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(n + 5));
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, raw_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &st);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION,
                     transport == BT_CONNECT_H1 ? (long)CURL_HTTP_VERSION_1_1
                                                : (long)CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    struct rusage r0, r1;
    getrusage(RUSAGE_THREAD, &r0);
    uint64_t t0 = bench_now_ns();
    CURLcode rc = curl_easy_perform(e);
    uint64_t t1 = bench_now_ns();
    getrusage(RUSAGE_THREAD, &r1);
    long code = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
    curl_slist_free_all(h);
    curl_easy_cleanup(e);
    free(body);
    if (rc != CURLE_OK || code != 200) {
        snprintf(why, why_len, "raw client: %s (HTTP %ld)", curl_easy_strerror(rc), code);
        return -1;
    }
    *seconds = (double)(t1 - t0) / 1e9;
    *bytes = st.bytes;
    *cpu_us = bench_rusage_us(&r1) - bench_rusage_us(&r0);
    *user_us = (double)(r1.ru_utime.tv_sec - r0.ru_utime.tv_sec) * 1e6 +
               (double)(r1.ru_utime.tv_usec - r0.ru_utime.tv_usec);
    return 0;
}

/* The raw reader's row: a warm-up read (64 MiB at most), then the
 * measured one. It runs in the bench process, on this thread: CPU is this
 * thread's (RUSAGE_THREAD), and there is no peak RSS of its own. */
static int raw_supports(const bench_env *env, const bench_scenario *sc, int transport)
{
    (void)env;
    return sc->run == bench_cmd_stream_run && transport >= 0 && transport < BT_COUNT;
}

static int raw_run(bench_env *env, const bench_scenario *sc, int transport, int concurrency,
                   bench_result *out)
{
    (void)sc, (void)concurrency;
    const uint64_t want = stream_bytes();
    char cmd[96], warm[96], why[200] = "";
    cmd_for(cmd, sizeof(cmd), want);
    cmd_for(warm, sizeof(warm), want < ((uint64_t)64 << 20) ? want : (uint64_t)64 << 20);
    double secs = 0, cpu = 0, user = 0;
    uint64_t got = 0;
    out->peak_rss_kib = -1;
    double srv0 = -1, srv1 = -1;
    int ok = raw_stream(env, transport, warm, &secs, &got, &cpu, &user, why, sizeof(why)) == 0;
    if (ok) {
        srv0 = bench_server_cpu_us(env);
        ok = raw_stream(env, transport, cmd, &secs, &got, &cpu, &user, why, sizeof(why)) == 0;
        srv1 = bench_server_cpu_us(env);
    }
    if (!ok) {
        out->skipped = 1;
        snprintf(out->note, sizeof(out->note), "%s", why);
        return -1;
    }
    if (srv0 >= 0 && srv1 >= 0)
        out->server_cpu_us = srv1 - srv0;
    out->calls = 1;
    out->seconds = secs;
    out->cpu_us = cpu;
    out->cpu_user_us = user;
    out->cpu_sys_us = cpu - user;
    out->p50_us = out->p90_us = out->p99_us = out->mean_us = out->max_us = secs * 1e6;
    out->stream_bytes = (int64_t)got;
    out->bytes_per_s = secs > 0 ? (double)got / secs : 0;
    double mb = (double)got / 1e6;
    snprintf(out->note, sizeof(out->note),
             "%.0f MB of the same stream's response body in %.2f s: %.1f MB/s, CPU %.0f us/MB "
             "(in the bench process: this thread's CPU, no RSS of its own)",
             mb, secs, out->bytes_per_s / 1e6, mb > 0 ? cpu / mb : 0);
    return 0;
}

const bench_client_impl bench_client_raw_curl = {"raw-curl", raw_supports, raw_run};

void bench_stream_targets(FILE *fp, const bench_result *rs, size_t n, int *met, int *missed)
{
    for (size_t i = 0; i < n; i++) {
        const bench_result *l = &rs[i];
        if (strcmp(l->client, "libenvd") != 0 || l->skipped || l->stream_bytes <= 0)
            continue;
        const bench_result *c = NULL;
        for (size_t j = 0; j < n && !c; j++)
            if (strcmp(rs[j].client, "raw-curl") == 0 && !rs[j].skipped &&
                rs[j].stream_bytes > 0 && strcmp(rs[j].scenario, l->scenario) == 0 &&
                rs[j].transport == l->transport)
                c = &rs[j];
        if (!c)
            continue;
        double r = l->bytes_per_s / c->bytes_per_s;
        int ok = r >= 0.9;
        fprintf(fp,
                "  %-8s %-11s c=%-3d %.1f MB/s = %.0f%% of raw-curl's %.1f MB/s (>= 90%%): %s\n"
                "  %-8s %-11s        (CPU per MB: libenvd %.0f us, all threads; raw-curl %.0f "
                "us)\n",
                l->scenario, bench_transport_name(l->transport), l->concurrency,
                l->bytes_per_s / 1e6, 100 * r, c->bytes_per_s / 1e6, ok ? "met" : "MISSED", "",
                "", l->cpu_us / ((double)l->stream_bytes / 1e6),
                c->cpu_us / ((double)c->stream_bytes / 1e6));
        *met += ok;
        *missed += !ok;
    }
}

int bench_cmd_stream_run(bench_env *env, const bench_scenario *sc, int transport, int concurrency,
                         bench_result *out)
{
    (void)sc, (void)concurrency;
    const uint64_t want = stream_bytes();
    char cmd[96];
    cmd_for(cmd, sizeof(cmd), want);
    envd_runtime *rt = bench_runtime_new(env, 64);
    envd_client *c = rt ? bench_client_new(env, rt, transport, 30000) : NULL;
    envd_cmd_opts *o = envd_cmd_opts_new();
    counter cnt;
    atomic_init(&cnt.bytes, 0);
    atomic_init(&cnt.calls, 0);
    int rc = -1;
    if (!c || !o) {
        out->skipped = 1;
        snprintf(out->note, sizeof(out->note), "setup failed (runtime/client)");
        goto done;
    }
    envd_cmd_opts_on_stdout(o, count_cb, &cnt);
    envd_cmd_opts_set_max_output(o, 0); /* keep nothing: memory must stay flat */

    /* warm-up: the connection, buffers, and the server's JIT */
    char warm[96];
    cmd_for(warm, sizeof(warm), want < ((uint64_t)64 << 20) ? want : (uint64_t)64 << 20);
    envd_command_result *res = NULL;
    envd_error *err = NULL;
    envd_status st = envd_commands_run(c, warm, o, &res, &err);
    envd_command_result_free(res);
    if (st != ENVD_OK) {
        out->skipped = 1;
        snprintf(out->note, sizeof(out->note), "first call: %s",
                 err ? envd_error_message(err) : envd_strerror(st));
        envd_error_free(err);
        goto done;
    }
    atomic_store(&cnt.bytes, 0);
    atomic_store(&cnt.calls, 0);

    long rss0 = bench_self_rss_kib();
    bench_self_reset_hwm();
    struct rusage ru0, ru1;
    double srv0 = bench_server_cpu_us(env);
    getrusage(RUSAGE_SELF, &ru0);
    uint64_t t0 = bench_now_ns();
    st = envd_commands_run(c, cmd, o, &res, &err);
    uint64_t t1 = bench_now_ns();
    getrusage(RUSAGE_SELF, &ru1);
    double srv1 = bench_server_cpu_us(env);
    envd_command_result_free(res);
    out->peak_rss_kib = bench_self_hwm_kib();
    out->threads = bench_self_threads();
    out->seconds = (double)(t1 - t0) / 1e9;
    out->cpu_us = bench_rusage_us(&ru1) - bench_rusage_us(&ru0);
    out->cpu_user_us = (double)(ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec) * 1e6 +
                       (double)(ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec);
    out->cpu_sys_us = out->cpu_us - out->cpu_user_us;
    if (srv0 >= 0 && srv1 >= 0)
        out->server_cpu_us = srv1 - srv0;
    out->p50_us = out->p90_us = out->p99_us = out->mean_us = out->max_us = out->seconds * 1e6;
    uint64_t got = atomic_load(&cnt.bytes);
    if (st != ENVD_OK || got != want) {
        out->errors = 1;
        snprintf(out->note, sizeof(out->note), "stream failed after %llu of %llu bytes: %s",
                 (unsigned long long)got, (unsigned long long)want,
                 err ? envd_error_message(err) : envd_strerror(st));
        envd_error_free(err);
        rc = 0;
        goto done;
    }
    out->calls = 1;
    out->stream_bytes = (int64_t)got;
    out->bytes_per_s = (double)got / out->seconds;
    double mb = (double)got / 1e6;
    snprintf(out->note, sizeof(out->note),
             "%.0f MB of output in %.2f s: %.1f MB/s, client CPU %.0f us/MB, %llu callbacks (%.1f "
             "KiB each), RSS %ld -> peak %ld KiB",
             mb, out->seconds, out->bytes_per_s / 1e6, out->cpu_us / mb,
             (unsigned long long)atomic_load(&cnt.calls),
             (double)got / 1024.0 / (double)(atomic_load(&cnt.calls) ? atomic_load(&cnt.calls) : 1),
             rss0, out->peak_rss_kib);
    rc = 0;
done:
    envd_cmd_opts_free(o);
    envd_client_free(c);
    envd_runtime_free(rt);
    return rc;
}
