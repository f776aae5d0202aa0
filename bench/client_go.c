/* The OpenKruise agents-api runtime Go client as a peer: bench/go-driver
 * (main.go, go.mod, go.sum) built once per bench run with the `go` command
 * into the temp dir (the Go build cache stays where go keeps it, outside the
 * repository), then run per case under the protocol of bench/driver.c: CPU
 * from /proc at the edges of its window, peak RSS from wait4().
 *
 * The build is a copy of the sources with -mod=mod, so that a go.mod
 * without the agents-api requirement (the module proxy did not serve it
 * when the driver was written) resolves it when it can, and the repository's
 * files are never rewritten. When Go is missing or the build fails, every Go
 * row is present with `unavailable` and the reason (not an error of the
 * run). */
#include "bench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

static int g_state; /* 0: not tried, 1: built, -1: unavailable */
static char g_binary[512];
static char g_reason[480];

/* The telling line of go's output: the first naming a failure, else the first. */
static void build_reason(const char *log_path)
{
    FILE *fp = fopen(log_path, "r");
    char line[512], first[512] = "", pick[512] = "";
    while (fp && fgets(line, sizeof(line), fp)) {
        line[strcspn(line, "\n")] = 0;
        if (!line[0])
            continue;
        if (!first[0])
            snprintf(first, sizeof(first), "%s", line);
        if (!pick[0] && (strstr(line, "Forbidden") || strstr(line, "not available") ||
                         strstr(line, "cannot find") || strstr(line, "error") ||
                         strstr(line, "undefined") || strstr(line, "requires go")))
            snprintf(pick, sizeof(pick), "%s", line);
    }
    if (fp)
        fclose(fp);
    snprintf(g_reason, sizeof(g_reason), "the agents-api Go driver did not build: %.400s",
             pick[0] ? pick : first[0] ? first : "(no output)");
}

static int copy_file(const char *from, const char *to)
{
    FILE *in = fopen(from, "rb");
    if (!in)
        return -1;
    FILE *out = fopen(to, "wb");
    int rc = out ? 0 : -1;
    char buf[8192];
    size_t n;
    while (out && (n = fread(buf, 1, sizeof(buf), in)) > 0)
        if (fwrite(buf, 1, n, out) != n)
            rc = -1;
    fclose(in);
    if (out && fclose(out) != 0)
        rc = -1;
    return rc;
}

static void build_driver(const bench_env *env)
{
    const bench_opts *o = env->opts;
    char src[512], dir[300], from[700], to[700], log_path[400];
    snprintf(src, sizeof(src), "%s/bench/go-driver", o->source_dir);
    snprintf(dir, sizeof(dir), "%s/go-driver", env->tmpdir);
    snprintf(g_binary, sizeof(g_binary), "%s/envd-bench-go", env->tmpdir);
    snprintf(log_path, sizeof(log_path), "%s/go-build.log", env->tmpdir);
    g_state = -1;
    if (mkdir(dir, 0700) != 0) {
        snprintf(g_reason, sizeof(g_reason), "cannot make %.400s", dir);
        return;
    }
    static const char *const files[] = {"main.go", "go.mod", "go.sum"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(from, sizeof(from), "%s/%s", src, files[i]);
        snprintf(to, sizeof(to), "%s/%s", dir, files[i]);
        if (copy_file(from, to) != 0) {
            snprintf(g_reason, sizeof(g_reason), "cannot copy %.400s", from);
            return;
        }
    }
    bench_log("envd-bench: building the agents-api Go driver (%s build) ...", o->go);
    char out_arg[600];
    snprintf(out_arg, sizeof(out_arg), "%s", g_binary);
    const char *argv[] = {o->go, "-C", dir, "build", "-mod=mod", "-o", out_arg, ".", NULL};
    bench_child ch;
    if (bench_spawn(&ch, argv, NULL, log_path) != 0) {
        snprintf(g_reason, sizeof(g_reason), "cannot run %s", o->go);
        return;
    }
    int st = 0;
    struct rusage ru;
    bench_wait(&ch, &st, &ru);
    if (WIFEXITED(st) && WEXITSTATUS(st) == 127) {
        snprintf(g_reason, sizeof(g_reason), "Go is not installed (no `%s` in PATH)", o->go);
        return;
    }
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        build_reason(log_path);
        bench_log("envd-bench: %s", g_reason);
        return;
    }
    g_state = 1;
}

static int go_supports(const bench_env *env, const bench_scenario *sc, int transport)
{
    (void)env, (void)transport;
    return sc->e2b_op && !sc->run; /* the same operation names as e2b-driver.mjs */
}

static int go_run(bench_env *env, const bench_scenario *sc, int transport, int concurrency,
                  bench_result *out)
{
    const bench_opts *o = env->opts;
    if (g_state == 0)
        build_driver(env);
    if (g_state < 0) {
        out->skipped = 1;
        out->unavailable = 1;
        snprintf(out->note, sizeof(out->note), "%s", g_reason);
        return -1;
    }
    char cbuf[32], wbuf[32], dbuf[32];
    snprintf(cbuf, sizeof(cbuf), "%d", concurrency);
    snprintf(wbuf, sizeof(wbuf), "%g", o->warmup_s);
    snprintf(dbuf, sizeof(dbuf), "%g", o->duration_s);
    const char *argv[] = {g_binary,
                          "--addr",
                          env->server.addr,
                          "--transport",
                          bench_transport_name(transport),
                          "--op",
                          sc->e2b_op,
                          "--path",
                          env->stat_path ? env->stat_path : "/",
                          "--concurrency",
                          cbuf,
                          "--warmup",
                          wbuf,
                          "--duration",
                          dbuf,
                          NULL};
    double self_cpu = 0;
    if (bench_driver_run(env, "go", argv, NULL, out, &self_cpu) != 0)
        return -1;
    if (!out->note[0])
        snprintf(out->note, sizeof(out->note),
                 "agents-api runtime client (connect-go, net/http)%s; self-reported CPU %.0f us",
                 transport == BT_GRPC ? ", its envd stubs with connect.WithGRPC()" : "", self_cpu);
    return 0;
}

const bench_client_impl bench_client_go = {"go", go_supports, go_run};
