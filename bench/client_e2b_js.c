/* The `e2b` npm SDK as the baseline client: bench/e2b-driver.mjs in a Node
 * child, debug mode against our server. Its CPU is read from outside
 * (/proc/<pid>/stat at the edges of its measured window, which it announces
 * on stdout), its peak RSS from wait4(). Over plain http:// the SDK speaks
 * Connect with JSON bodies over HTTP/1.1, so only connect-h1 applies. */
#include "bench.h"

#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void module_path(const bench_env *env, char *buf, size_t len)
{
    snprintf(buf, len, "%s/tests/peer/node_modules/e2b/dist/index.mjs", env->opts->source_dir);
}

static int e2b_supports(const bench_env *env, const bench_scenario *sc, int transport)
{
    char path[1024];
    struct stat st;
    module_path(env, path, sizeof(path));
    return sc->e2b_op && !sc->run && transport == BT_CONNECT_H1 && stat(path, &st) == 0;
}

static double jnum(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_number(v) ? json_number_value(v) : 0;
}

static int e2b_run(bench_env *env, const bench_scenario *sc, int transport, int concurrency,
                   bench_result *out)
{
    (void)transport;
    const bench_opts *o = env->opts;
    out->encoding = "json";
    char module[1024], driver[1024], cbuf[32], wbuf[32], dbuf[32];
    module_path(env, module, sizeof(module));
    snprintf(driver, sizeof(driver), "%s/bench/e2b-driver.mjs", o->source_dir);
    snprintf(cbuf, sizeof(cbuf), "%d", concurrency);
    snprintf(wbuf, sizeof(wbuf), "%g", o->warmup_s);
    snprintf(dbuf, sizeof(dbuf), "%g", o->duration_s);
    const char *argv[] = {
        o->node,         driver,     "--module", module,
        "--op",          sc->e2b_op, "--path",   env->stat_path ? env->stat_path : "/",
        "--concurrency", cbuf,       "--warmup", wbuf,
        "--duration",    dbuf,       NULL};
    char url[300], conns[64];
    snprintf(url, sizeof(url), "E2B_SANDBOX_URL=http://%s", env->server.addr);
    /* the SDK's default pool is 200 connections; give it one per call in
     * flight as libcurl has, and no FIFO cap */
    snprintf(conns, sizeof(conns), "E2B_ENVD_RPC_CONNECTIONS=%d",
             concurrency > 200 ? concurrency : 200);
    const char *envs[] = {"E2B_DEBUG=true", url, conns, "E2B_ENVD_RPC_INFLIGHT_REQUESTS=0", NULL};
    bench_child ch;
    if (bench_spawn(&ch, argv, envs, NULL) != 0) {
        out->skipped = 1;
        snprintf(out->note, sizeof(out->note), "cannot run %s: %s", o->node, strerror(errno));
        return -1;
    }
    char buf[8192];
    size_t len = 0;
    double cpu0 = -1, cpu1 = -1, srv0 = -1, srv1 = -1;
    json_t *res = NULL;
    uint64_t t_start = 0;
    uint64_t deadline = bench_now_ns() + (uint64_t)((o->warmup_s + o->duration_s + 60.0) * 1e9);
    while (!res && bench_now_ns() < deadline) {
        struct pollfd p = {ch.out_fd, POLLIN, 0};
        int pr = poll(&p, 1, 100);
        if (t_start && out->connections < 0 &&
            bench_now_ns() >= t_start + (uint64_t)(o->duration_s * 0.5e9)) {
            out->connections = bench_count_conns(env->server.port);
            out->threads = bench_proc_threads(ch.pid);
        }
        if (pr <= 0)
            continue;
        ssize_t r = read(ch.out_fd, buf + len, sizeof(buf) - 1 - len);
        if (r <= 0)
            break;
        len += (size_t)r;
        buf[len] = 0;
        char *nl;
        while ((nl = strchr(buf, '\n'))) {
            *nl = 0;
            if (strcmp(buf, "measure-start") == 0) {
                cpu0 = bench_proc_cpu_us(ch.pid);
                srv0 = bench_server_cpu_us(env);
                t_start = bench_now_ns();
            } else if (strcmp(buf, "measure-end") == 0) {
                cpu1 = bench_proc_cpu_us(ch.pid);
                srv1 = bench_server_cpu_us(env);
            } else if (buf[0] == '{') {
                res = json_loads(buf, 0, NULL);
            }
            size_t used = (size_t)(nl - buf) + 1;
            memmove(buf, nl + 1, len - used + 1);
            len -= used;
        }
        if (len == sizeof(buf) - 1)
            len = 0; /* an absurdly long line: drop it */
    }
    if (!res)
        kill(ch.pid, SIGTERM);
    int st = 0;
    struct rusage ru;
    memset(&ru, 0, sizeof(ru));
    bench_wait(&ch, &st, &ru);
    if (!res) {
        out->skipped = 1;
        snprintf(out->note, sizeof(out->note), "the e2b driver gave no result (status %d)", st);
        return -1;
    }
    out->calls = (uint64_t)jnum(res, "calls");
    out->errors = (uint64_t)jnum(res, "errors");
    out->seconds = jnum(res, "seconds");
    out->p50_us = jnum(res, "p50_us");
    out->p90_us = jnum(res, "p90_us");
    out->p99_us = jnum(res, "p99_us");
    out->mean_us = jnum(res, "mean_us");
    out->max_us = jnum(res, "max_us");
    if (cpu0 >= 0 && cpu1 >= 0)
        out->cpu_us = cpu1 - cpu0;
    else
        out->cpu_us = jnum(res, "self_cpu_us");
    out->cpu_user_us = -1;
    out->cpu_sys_us = -1;
    out->peak_rss_kib = ru.ru_maxrss;
    if (srv0 >= 0 && srv1 >= 0)
        out->server_cpu_us = srv1 - srv0;
    json_t *fe = json_object_get(res, "first_error");
    if (json_is_string(fe))
        snprintf(out->note, sizeof(out->note), "first error: %s", json_string_value(fe));
    else
        snprintf(out->note, sizeof(out->note),
                 "Connect JSON over HTTP/1.1 (undici); "
                 "self-reported CPU %.0f us",
                 jnum(res, "self_cpu_us"));
    json_decref(res);
    return 0;
}

const bench_client_impl bench_client_e2b_js = {"e2b-js", e2b_supports, e2b_run};
