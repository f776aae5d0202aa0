/* h2load as the baseline client: the same request bytes and headers as
 * libenvd sends, at the same number of calls in flight.
 *
 *   grpc         h2load -c 1 -m C       body = 5-byte envelope + message,
 *                                       content-type: application/grpc, te: trailers
 *   connect-h2c  h2load -c 1 -m C       body = message, application/proto
 *   connect-h1   h2load --h1 -c C -m 1  body = message, application/proto
 *   connect-tls  h2load -c 1 -m C       as connect-h2c, over https (ALPN h2) to
 *                                       the nginx gateway in front of the server
 *
 * One connection for HTTP/2 (as libenvd's one gRPC channel); one connection
 * per call in flight for HTTP/1.1 (as libcurl without pipelining).
 * h2load counts HTTP statuses only; a gRPC error has :status 200, so the
 * request is checked once with libcurl before the run (grpc-status 0).
 * Two runs per case through one spawn path: a lean one (no --log-file) for
 * calls, CPU and peak RSS from wait4(), then one with --log-file for the
 * latency percentiles, since writing a line per request costs h2load CPU. */
#include "bench.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int h2load_supports(const bench_env *env, const bench_scenario *sc, int transport)
{
    (void)env, (void)transport;
    return sc->method != NULL && sc->request != NULL && sc->run == NULL;
}

/* The body file for (scenario, transport); returns its length or -1. */
static long write_body(bench_env *env, const bench_scenario *sc, int transport, char *path,
                       size_t path_len, uint8_t *copy, size_t copy_cap)
{
    uint8_t msg[4096];
    size_t n = sc->request(env, msg, sizeof(msg));
    if (n == SIZE_MAX)
        return -1;
    uint8_t body[4096 + 5];
    size_t len = 0;
    if (transport == BT_GRPC) {
        body[0] = 0;
        body[1] = (uint8_t)(n >> 24);
        body[2] = (uint8_t)(n >> 16);
        body[3] = (uint8_t)(n >> 8);
        body[4] = (uint8_t)n;
        len = 5;
    }
    memcpy(body + len, msg, n);
    len += n;
    snprintf(path, path_len, "%s/%s-%s.body", env->tmpdir, sc->name,
             bench_transport_name(transport));
    FILE *fp = fopen(path, "wb");
    if (!fp)
        return -1;
    size_t w = len ? fwrite(body, 1, len, fp) : 0;
    if (fclose(fp) != 0 || w != len)
        return -1;
    if (len <= copy_cap)
        memcpy(copy, body, len);
    return (long)len;
}

/* ---- the one-off check with libcurl ------------------------------------ */

typedef struct verify_state {
    int grpc_status; /* -1: not seen */
    char content_type[128];
} verify_state;

static size_t verify_header(char *buf, size_t size, size_t n, void *ud)
{
    verify_state *v = ud;
    size_t len = size * n;
    if (len > 12 && strncasecmp(buf, "grpc-status:", 12) == 0)
        v->grpc_status = atoi(buf + 12);
    if (len > 13 && strncasecmp(buf, "content-type:", 13) == 0) {
        const char *p = buf + 13;
        while (*p == ' ')
            p++;
        size_t l = strcspn(p, "\r\n");
        if (l >= sizeof(v->content_type))
            l = sizeof(v->content_type) - 1;
        memcpy(v->content_type, p, l);
        v->content_type[l] = 0;
    }
    return len;
}

static size_t verify_body(char *buf, size_t size, size_t n, void *ud)
{
    (void)buf, (void)ud;
    return size * n;
}

static int verify(bench_env *env, const bench_scenario *sc, int transport, const uint8_t *body,
                  size_t len, const char *const *headers, size_t nh, char *why, size_t why_len)
{
    CURL *e = curl_easy_init();
    if (!e)
        return -1;
    char url[512];
    snprintf(url, sizeof(url), "%s://%s%s", transport == BT_CONNECT_TLS ? "https" : "http",
             bench_target_addr(env, transport), sc->method);
    struct curl_slist *h = NULL;
    for (size_t i = 0; i < nh; i++)
        h = curl_slist_append(h, headers[i]);
    h = curl_slist_append(h, "Expect:");
    verify_state v = {.grpc_status = -1};
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, (const char *)body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)len);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, verify_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, &v);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, verify_body);
    curl_easy_setopt(e, CURLOPT_TIMEOUT, 20L);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION,
                     transport == BT_CONNECT_H1    ? (long)CURL_HTTP_VERSION_1_1
                     : transport == BT_CONNECT_TLS ? (long)CURL_HTTP_VERSION_2TLS
                                                   : (long)CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE);
    if (transport == BT_CONNECT_TLS)
        curl_easy_setopt(e, CURLOPT_CAINFO, env->tls_ca);
    CURLcode rc = curl_easy_perform(e);
    long status = 0, version = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(e, CURLINFO_HTTP_VERSION, &version);
    curl_slist_free_all(h);
    curl_easy_cleanup(e);
    if (rc != CURLE_OK) {
        snprintf(why, why_len, "request check: %s", curl_easy_strerror(rc));
        return -1;
    }
    if (status != 200) {
        snprintf(why, why_len, "request check: HTTP %ld", status);
        return -1;
    }
    if (transport == BT_GRPC && v.grpc_status != 0) {
        snprintf(why, why_len, "request check: grpc-status %d", v.grpc_status);
        return -1;
    }
    if (transport == BT_CONNECT_TLS && version != CURL_HTTP_VERSION_2_0) {
        snprintf(why, why_len, "request check: TLS without ALPN h2");
        return -1;
    }
    if (transport != BT_GRPC && strcmp(v.content_type, "application/proto") != 0) {
        snprintf(why, why_len, "request check: content-type %s", v.content_type);
        return -1;
    }
    return 0;
}

/* ---- output parsing ------------------------------------------------------ */

static int parse_output(const char *path, bench_result *out)
{
    FILE *fp = fopen(path, "r");
    if (!fp)
        return -1;
    char line[1024];
    int got = 0;
    while (fgets(line, sizeof(line), fp)) {
        double secs;
        unsigned long long total, started, done, ok, failed, errored, timeout;
        if (sscanf(line, "finished in %lfs", &secs) == 1) {
            /* h2load prints "ms" for short runs */
            if (strstr(line, "ms,") && strstr(line, "ms,") < strchr(line, ','))
                secs /= 1000.0;
            out->seconds = secs;
            got |= 1;
        } else if (sscanf(line,
                          "requests: %llu total, %llu started, %llu done, %llu succeeded, "
                          "%llu failed, %llu errored, %llu timeout",
                          &total, &started, &done, &ok, &failed, &errored, &timeout) == 7) {
            out->calls = ok;
            out->errors = failed + errored + timeout;
            got |= 2;
        }
    }
    fclose(fp);
    return got == 3 ? 0 : -1;
}

static int parse_log(const char *path, bench_result *out)
{
    FILE *fp = fopen(path, "r");
    if (!fp)
        return -1;
    bench_hist *h = bench_hist_new();
    if (!h) {
        fclose(fp);
        return -1;
    }
    char line[256];
    while (fgets(line, sizeof(line), fp)) {
        unsigned long long start, us;
        int status;
        if (sscanf(line, "%llu %d %llu", &start, &status, &us) == 3 && status >= 200 &&
            status < 300)
            bench_hist_add(h, us * 1000);
    }
    fclose(fp);
    out->p50_us = bench_hist_quantile(h, 0.50) / 1e3;
    out->p90_us = bench_hist_quantile(h, 0.90) / 1e3;
    out->p99_us = bench_hist_quantile(h, 0.99) / 1e3;
    out->max_us = (double)atomic_load(&h->max) / 1e3;
    uint64_t n = atomic_load(&h->count);
    out->mean_us = n ? (double)atomic_load(&h->sum) / 1e3 / (double)n : 0;
    out->calls = n; /* successful requests in the log */
    bench_hist_free(h);
    return 0;
}

/* One h2load run of the case. With `log_path`, h2load writes one line per
 * request there (--log-file): that run gives the latency percentiles only,
 * since the writes cost h2load CPU. Without it, the lean run gives calls,
 * CPU (wait4) and peak RSS, and the mid-run connection count. */
typedef struct h2load_case {
    const char *url;
    const char *body_path;
    long body_len;
    const char *const *hdrs;
    size_t nh;
    int h1;
    int concurrency;
    int port; /* where connections are counted */
} h2load_case;

static int h2load_once(bench_env *env, const h2load_case *hc, const char *log_path,
                       const char *out_path, bench_result *out, struct rusage *ru)
{
    const bench_opts *o = env->opts;
    char cbuf[32], mbuf[32], dbuf[32], logarg[600];
    snprintf(cbuf, sizeof(cbuf), "%d", hc->h1 ? hc->concurrency : 1);
    snprintf(mbuf, sizeof(mbuf), "%d", hc->h1 ? 1 : hc->concurrency);
    snprintf(dbuf, sizeof(dbuf), "%.0f", o->duration_s < 1 ? 1 : o->duration_s);
    const char *argv[40];
    size_t n = 0;
    argv[n++] = o->h2load;
    if (hc->h1)
        argv[n++] = "--h1";
    argv[n++] = "-c";
    argv[n++] = cbuf;
    argv[n++] = "-m";
    argv[n++] = mbuf;
    argv[n++] = "-t";
    argv[n++] = "1";
    argv[n++] = "-D";
    argv[n++] = dbuf;
    if (hc->body_len > 0) {
        argv[n++] = "-d";
        argv[n++] = hc->body_path;
    } else {
        /* h2load cannot mmap an empty -d file; an empty POST it can send */
        argv[n++] = "-H";
        argv[n++] = ":method: POST";
    }
    for (size_t i = 0; i < hc->nh; i++) {
        argv[n++] = "-H";
        argv[n++] = hc->hdrs[i];
    }
    if (log_path) {
        snprintf(logarg, sizeof(logarg), "--log-file=%s", log_path);
        argv[n++] = logarg;
    }
    argv[n++] = hc->url;
    argv[n] = NULL;

    bench_child ch;
    double srv0 = log_path ? -1 : bench_server_cpu_us(env);
    uint64_t t0 = bench_now_ns();
    if (bench_spawn(&ch, argv, NULL, out_path) != 0) {
        snprintf(out->note, sizeof(out->note), "cannot run %s: %s", o->h2load, strerror(errno));
        return -1;
    }
    uint64_t mid = t0 + (uint64_t)(o->duration_s * 0.5e9);
    int st = 0;
    for (;;) {
        pid_t r = wait4(ch.pid, &st, WNOHANG, ru);
        if (r == ch.pid)
            break;
        if (r < 0 && errno != EINTR) {
            memset(ru, 0, sizeof(*ru));
            break;
        }
        if (!log_path && out->connections < 0 && bench_now_ns() >= mid)
            out->connections = bench_count_conns(hc->port);
        bench_sleep_ns(20000000);
    }
    double srv1 = log_path ? -1 : bench_server_cpu_us(env);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        snprintf(out->note, sizeof(out->note), "h2load failed (status %d), see %s", st, out_path);
        return -1;
    }
    if (log_path)
        return parse_log(log_path, out);
    if (parse_output(out_path, out) != 0) {
        snprintf(out->note, sizeof(out->note), "cannot parse h2load output %s", out_path);
        return -1;
    }
    if (srv0 >= 0 && srv1 >= 0)
        out->server_cpu_us = srv1 - srv0;
    return 0;
}

static int h2load_run(bench_env *env, const bench_scenario *sc, int transport, int concurrency,
                      bench_result *out)
{
    const bench_opts *o = env->opts;
    char body_path[512], out_path[300], log_path[300], url[512];
    uint8_t body[8192];
    long len = write_body(env, sc, transport, body_path, sizeof(body_path), body, sizeof(body));
    if (len < 0 || (size_t)len > sizeof(body)) {
        out->skipped = 1;
        snprintf(out->note, sizeof(out->note), "cannot write the request body");
        return -1;
    }
    const char *grpc_h[] = {"content-type: application/grpc", "te: trailers"};
    const char *connect_h[] = {"content-type: application/proto", "connect-protocol-version: 1"};
    /* what libenvd's client sends besides its protocol headers */
    const char *common[] = {"authorization: Basic cm9vdDo=", "e2b-sandbox-id: envd-bench",
                            "e2b-sandbox-port: 49983"};
    const char *hdrs[8];
    size_t nh = 0;
    for (size_t i = 0; i < 2; i++)
        hdrs[nh++] = transport == BT_GRPC ? grpc_h[i] : connect_h[i];
    for (size_t i = 0; i < 3; i++)
        hdrs[nh++] = common[i];
    if (verify(env, sc, transport, body, (size_t)len, hdrs, nh, out->note, sizeof(out->note)) !=
        0) {
        out->skipped = 1;
        return -1;
    }
    snprintf(out_path, sizeof(out_path), "%s/h2load.out", env->tmpdir);
    snprintf(log_path, sizeof(log_path), "%s/h2load.log", env->tmpdir);
    snprintf(url, sizeof(url), "%s://%s%s", transport == BT_CONNECT_TLS ? "https" : "http",
             bench_target_addr(env, transport), sc->method);
    h2load_case hc = {url,         body_path, len, hdrs, nh, transport == BT_CONNECT_H1,
                      concurrency, bench_target_port(env, transport)};

    /* lean run: calls, CPU, RSS; then a run with the request log: latency */
    struct rusage ru;
    if (h2load_once(env, &hc, NULL, out_path, out, &ru) != 0) {
        out->skipped = 1;
        return -1;
    }
    out->cpu_us = bench_rusage_us(&ru);
    out->cpu_user_us = (double)ru.ru_utime.tv_sec * 1e6 + (double)ru.ru_utime.tv_usec;
    out->cpu_sys_us = out->cpu_us - out->cpu_user_us;
    out->peak_rss_kib = ru.ru_maxrss;
    out->threads = 1;
    struct rusage ru_log;
    bench_result lat;
    bench_result_init(&lat, out->client, out->scenario, transport, concurrency);
    if (h2load_once(env, &hc, log_path, out_path, &lat, &ru_log) != 0) {
        snprintf(out->note, sizeof(out->note),
                 "CPU, RSS and calls from a run without --log-file; the latency run failed: %.400s",
                 lat.note);
    } else {
        out->p50_us = lat.p50_us;
        out->p90_us = lat.p90_us;
        out->p99_us = lat.p99_us;
        out->mean_us = lat.mean_us;
        out->max_us = lat.max_us;
        snprintf(out->note, sizeof(out->note),
                 "CPU, RSS and calls from a run without --log-file (CPU includes connection "
                 "setup); latency from a separate run with it (%.1f us/call of CPU there)",
                 lat.calls ? bench_rusage_us(&ru_log) / (double)lat.calls : 0.0);
    }
    if (!o->verbose) {
        unlink(log_path);
        unlink(out_path);
    }
    return 0;
}

const bench_client_impl bench_client_h2load = {"h2load", h2load_supports, h2load_run};
