/* The `e2b` npm SDK as the baseline client: bench/e2b-driver.mjs in a Node
 * child, debug mode against our server. Its CPU is read from outside
 * (/proc/<pid>/stat at the edges of its measured window, which it announces
 * on stdout), its peak RSS from wait4(): the protocol of bench/driver.c.
 * Over plain http:// the SDK speaks Connect with JSON bodies over HTTP/1.1,
 * so only connect-h1 applies. */
#include "bench.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

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
    double self_cpu = 0;
    if (bench_driver_run(env, "e2b", argv, envs, out, &self_cpu) != 0)
        return -1;
    if (!out->note[0])
        snprintf(out->note, sizeof(out->note),
                 "Connect JSON over HTTP/1.1 (undici); self-reported CPU %.0f us", self_cpu);
    return 0;
}

const bench_client_impl bench_client_e2b_js = {"e2b-js", e2b_supports, e2b_run};
