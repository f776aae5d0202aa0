/* The Go peers, two builds of bench/go-driver (one harness, main.go):
 *
 *   go          the OpenKruise agents-api runtime client (agentsapi.go);
 *   go-connect  that client's own stack (goconnect.go, -tags goconnect):
 *               connect-go clients generated here from proto/process.proto
 *               and proto/filesystem.proto with the plugins at the versions
 *               go.mod pins, called as runtime calls them.
 *
 * Each is built once per bench run, the first time one of its cases comes
 * up: the sources are copied to the temp dir and built there with `go build
 * -mod=mod` (so a go.mod without the agents-api requirement resolves it
 * when the proxy serves it, and the repository's files are never
 * rewritten; Go's caches stay where go keeps them). go-connect first builds
 * protoc-gen-go and protoc-gen-connect-go from the modules go.mod pins and
 * runs protoc with them into the copy (go_package given by M options, the
 * protos untouched). Then each case runs under the protocol of
 * bench/driver.c: CPU from /proc at the edges of its window, peak RSS from
 * wait4(). When a build step fails, every row of that peer is present with
 * `unavailable` and the reason (not an error of the run). */
#include "bench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

typedef struct go_peer {
    const char *name;   /* client name */
    const char *what;   /* in messages */
    const char *tags;   /* go build -tags, or NULL */
    int protos;         /* generate the envd clients first */
    int state;          /* 0: not tried, 1: built, -1: unavailable */
    char dir[300];      /* the copy of bench/go-driver */
    char binary[512];
    char reason[480];
} go_peer;

static go_peer g_agents_api = {"go", "the agents-api Go driver", NULL, 0, 0, "", "", ""};
static char g_about[300] = "the agents-api runtime client's stack";
static go_peer g_connect = {"go-connect", "the go-connect driver", "goconnect", 1, 0, "", "", ""};

/* The telling line of a build step's output: the first naming a failure,
 * else the first. */
static void build_reason(go_peer *p, const char *log_path)
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
                         strstr(line, "undefined") || strstr(line, "requires go") ||
                         strstr(line, "No such file")))
            snprintf(pick, sizeof(pick), "%s", line);
    }
    if (fp)
        fclose(fp);
    snprintf(p->reason, sizeof(p->reason), "%s did not build: %.400s", p->what,
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

/* One build step (argv[0] looked up in PATH), output to the peer's log;
 * 0, or -1 with p->reason set. */
static int step(const bench_env *env, go_peer *p, const char *const *argv)
{
    char log_path[400];
    snprintf(log_path, sizeof(log_path), "%s/%s-build.log", env->tmpdir, p->name);
    bench_child ch;
    if (bench_spawn(&ch, argv, NULL, log_path) != 0) {
        snprintf(p->reason, sizeof(p->reason), "cannot run %s", argv[0]);
        return -1;
    }
    int st = 0;
    struct rusage ru;
    bench_wait(&ch, &st, &ru);
    if (WIFEXITED(st) && WEXITSTATUS(st) == 127) {
        snprintf(p->reason, sizeof(p->reason), "%s: `%s` is not installed (not in PATH)", p->what,
                 argv[0]);
        return -1;
    }
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        build_reason(p, log_path);
        return -1;
    }
    return 0;
}

/* protoc-gen-go and protoc-gen-connect-go from the pinned modules, then
 * protoc into the copy: envd-bench/go-driver/envd/{process,filesystem}. */
static int generate(const bench_env *env, go_peer *p)
{
    const bench_opts *o = env->opts;
    char gen_go[400], gen_connect[400], plug_go[450], plug_connect[450], inc[600], mods[300];
    snprintf(gen_go, sizeof(gen_go), "%s/protoc-gen-go", env->tmpdir);
    snprintf(gen_connect, sizeof(gen_connect), "%s/protoc-gen-connect-go", env->tmpdir);
    const char *b1[] = {o->go, "-C", p->dir, "build", "-mod=mod", "-o", gen_go,
                        "google.golang.org/protobuf/cmd/protoc-gen-go", NULL};
    const char *b2[] = {o->go, "-C", p->dir, "build", "-mod=mod", "-o", gen_connect,
                        "connectrpc.com/connect/cmd/protoc-gen-connect-go", NULL};
    if (step(env, p, b1) != 0 || step(env, p, b2) != 0)
        return -1;
    snprintf(plug_go, sizeof(plug_go), "--plugin=protoc-gen-go=%s", gen_go);
    snprintf(plug_connect, sizeof(plug_connect), "--plugin=protoc-gen-connect-go=%s", gen_connect);
    snprintf(inc, sizeof(inc), "-I%s/proto", o->source_dir);
    snprintf(mods, sizeof(mods),
             "module=envd-bench/go-driver,Mprocess.proto=envd-bench/go-driver/envd/process,"
             "Mfilesystem.proto=envd-bench/go-driver/envd/filesystem");
    char go_out[350], connect_out[350], go_opt[320], connect_opt[320];
    snprintf(go_out, sizeof(go_out), "--go_out=%s", p->dir);
    snprintf(connect_out, sizeof(connect_out), "--connect-go_out=%s", p->dir);
    snprintf(go_opt, sizeof(go_opt), "--go_opt=%s", mods);
    snprintf(connect_opt, sizeof(connect_opt), "--connect-go_opt=%s", mods);
    const char *gen[] = {"protoc", inc,         plug_go,     plug_connect,    go_out,
                         go_opt,   connect_out, connect_opt, "process.proto", "filesystem.proto",
                         NULL};
    return step(env, p, gen);
}

/* The version go.mod pins for module (the word after it), or "?". */
static void read_pin(const char *gomod, const char *module, char *out, size_t cap)
{
    FILE *fp = fopen(gomod, "r");
    char line[256];
    size_t n = strlen(module);
    snprintf(out, cap, "?");
    while (fp && fgets(line, sizeof(line), fp)) {
        char *s = line + strspn(line, " \t");
        if (strncmp(s, module, n) == 0 && s[n] == ' ') {
            s[n + 1 + strcspn(s + n + 1, " \t\r\n")] = 0;
            snprintf(out, cap, "%s", s + n + 1);
            break;
        }
    }
    if (fp)
        fclose(fp);
}

static void build_driver(const bench_env *env, go_peer *p)
{
    const bench_opts *o = env->opts;
    char from[700], to[700];
    snprintf(p->dir, sizeof(p->dir), "%s/%s", env->tmpdir, p->name);
    snprintf(p->binary, sizeof(p->binary), "%s/envd-bench-%s", env->tmpdir, p->name);
    p->state = -1;
    if (mkdir(p->dir, 0700) != 0) {
        snprintf(p->reason, sizeof(p->reason), "cannot make %.400s", p->dir);
        return;
    }
    static const char *const files[] = {"main.go", "agentsapi.go", "goconnect.go", "go.mod",
                                        "go.sum"};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        snprintf(from, sizeof(from), "%s/bench/go-driver/%s", o->source_dir, files[i]);
        snprintf(to, sizeof(to), "%s/%s", p->dir, files[i]);
        if (copy_file(from, to) != 0) {
            snprintf(p->reason, sizeof(p->reason), "cannot copy %.400s", from);
            return;
        }
    }
    bench_log("envd-bench: building %s (%s build) ...", p->what, o->go);
    if (p->protos) {
        char gomod[350], pin[64];
        snprintf(gomod, sizeof(gomod), "%s/go.mod", p->dir);
        read_pin(gomod, "connectrpc.com/connect", pin, sizeof(pin));
        snprintf(g_about, sizeof(g_about),
                 "the agents-api runtime client's stack, not the module (the Go proxy does not "
                 "serve it): connect-go %s clients generated from proto/, called as runtime "
                 "calls them",
                 pin);
    }
    if (p->protos && generate(env, p) != 0) {
        bench_log("envd-bench: %s", p->reason);
        return;
    }
    const char *tags = p->tags ? p->tags : "";
    const char *argv[] = {o->go, "-C", p->dir, "build", "-mod=mod", "-tags", tags,
                          "-o",  p->binary, ".", NULL};
    if (step(env, p, argv) != 0) {
        bench_log("envd-bench: %s", p->reason);
        return;
    }
    p->state = 1;
}

/* The driver's operation for a scenario: the same names as e2b-driver.mjs,
 * or the scenario's own for the Go drivers. */
static const char *go_op(const bench_scenario *sc)
{
    if (sc->run)
        return NULL;
    return sc->go_op ? sc->go_op : sc->e2b_op;
}

static int go_supports(const bench_env *env, const bench_scenario *sc, int transport)
{
    (void)env, (void)transport;
    return go_op(sc) != NULL;
}

static int peer_run(go_peer *p, bench_env *env, const bench_scenario *sc, int transport,
                    int concurrency, bench_result *out)
{
    const bench_opts *o = env->opts;
    if (p->state == 0)
        build_driver(env, p);
    if (p->state < 0) {
        out->skipped = 1;
        out->unavailable = 1;
        snprintf(out->note, sizeof(out->note), "%s", p->reason);
        return -1;
    }
    char cbuf[32], wbuf[32], dbuf[32];
    snprintf(cbuf, sizeof(cbuf), "%d", concurrency);
    snprintf(wbuf, sizeof(wbuf), "%g", o->warmup_s);
    snprintf(dbuf, sizeof(dbuf), "%g", o->duration_s);
    const char *argv[] = {p->binary,
                          "--addr",
                          bench_target_addr(env, transport),
                          "--transport",
                          bench_transport_name(transport),
                          "--op",
                          go_op(sc),
                          "--path",
                          env->stat_path ? env->stat_path : "/",
                          "--concurrency",
                          cbuf,
                          "--warmup",
                          wbuf,
                          "--duration",
                          dbuf,
                          "--ca",
                          env->tls_ca,
                          NULL};
    double self_cpu = 0;
    if (bench_driver_run(env, p->name, argv, NULL, out, &self_cpu) != 0)
        return -1;
    if (!out->note[0] && p == &g_connect)
        snprintf(out->note, sizeof(out->note), "%s; self-reported CPU %.0f us",
                 bench_go_connect_about(), self_cpu);
    else if (!out->note[0])
        snprintf(out->note, sizeof(out->note),
                 "agents-api runtime client (connect-go, net/http)%s; self-reported CPU %.0f us",
                 transport == BT_GRPC ? ", its envd stubs with connect.WithGRPC()" : "", self_cpu);
    return 0;
}

const char *bench_go_connect_about(void)
{
    return g_about;
}

static int go_run(bench_env *env, const bench_scenario *sc, int transport, int concurrency,
                  bench_result *out)
{
    return peer_run(&g_agents_api, env, sc, transport, concurrency, out);
}

static int go_connect_run(bench_env *env, const bench_scenario *sc, int transport,
                          int concurrency, bench_result *out)
{
    return peer_run(&g_connect, env, sc, transport, concurrency, out);
}

const bench_client_impl bench_client_go = {"go", go_supports, go_run};
const bench_client_impl bench_client_go_connect = {"go-connect", go_supports, go_connect_run};
