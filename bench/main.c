/* envd-bench: unary calls through libenvd against the reference server, next
 * to h2load and the e2b npm SDK making the same calls. See bench/README.md. */
#include "bench.h"
#include "scenario_commands.h"
#include "scenario_files.h"

#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#ifndef ENVD_SOURCE_DIR
#define ENVD_SOURCE_DIR "."
#endif

static const int default_concurrency[] = {1, 16, 256};

static void usage(FILE *fp)
{
    fprintf(fp,
            "usage: envd-bench [options]\n"
            "  --scenario NAME      run one scenario (default: all default ones)\n"
            "  --transport T        grpc | connect-h1 | connect-h2c | connect-tls (list, stat, run, long;\n"
            "                       through an nginx TLS gateway)\n"
            "                       (default: all a scenario runs)\n"
            "  --concurrency N      calls in flight (default: 1, 16, 256; inflight: 10000)\n"
            "  --duration S         measured seconds per case (default 3)\n"
            "  --warmup S           unmeasured seconds before (libenvd, e2b-js, Go; default 1)\n"
            "  --calls N            libenvd: end the window after N calls (for profiling)\n"
            "  --clients LIST       comma list of libenvd,h2load,e2b-js,go,go-connect,curl,\n"
            "                       raw-curl (default: all)\n"
            "  --domain HOST:PORT   use this server instead of starting the reference server\n"
            "  --server-pid PID     its pid (server CPU column; lets inflight pause it)\n"
            "  --workers N          libenvd runtime workers (default: online CPUs)\n"
            "  --source-dir DIR     repository root (default: %s)\n"
            "  --h2load PATH        h2load program (default: h2load)\n"
            "  --node PATH          node program (default: node)\n"
            "  --go PATH            go program, builds bench/go-driver (default: go; go-connect\n"
            "                       also needs protoc in PATH)\n"
            "  --envdctl PATH       envdctl program (batch; default: next to envd-bench)\n"
            "  --json               one JSON object per line per case on stdout\n"
            "  --verbose            keep h2load output files\n"
            "  --report DIR         also write DIR/rows.jsonl and SVG charts (gnuplot)\n"
            "  --rows FILE          with --report: chart these JSON lines (--json output of\n"
            "                       one or more runs; - for stdin) instead of running\n"
            "  --gnuplot PATH       gnuplot program (default: gnuplot)\n"
            "  --list               list the scenarios\n",
            ENVD_SOURCE_DIR);
}

static double parse_double(const char *s, const char *what)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || v < 0) {
        fprintf(stderr, "envd-bench: bad %s '%s'\n", what, s);
        exit(2);
    }
    return v;
}

static int client_wanted(const bench_opts *o, const char *name)
{
    if (!o->clients)
        return 1;
    size_t l = strlen(name);
    for (const char *p = o->clients; *p;) {
        size_t n = strcspn(p, ",");
        if (n == l && strncmp(p, name, l) == 0)
            return 1;
        p += n;
        if (*p == ',')
            p++;
    }
    return 0;
}

static bench_env *g_env; /* for the signal handler */

static void on_signal(int sig)
{
    if (g_env && g_env->server.owned && g_env->server.pid > 0) {
        kill(g_env->server.pid, SIGCONT);
        kill(g_env->server.pid, SIGTERM);
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

/* Setup state lives on the server; a Connect client of its own does it,
 * only around setup and teardown, so that no extra runtime's threads or
 * connections show up in a case's figures. */
static int env_setup_client(bench_env *env)
{
    env->setup_rt = bench_runtime_new(env, 64);
    if (!env->setup_rt)
        return -1;
    env->setup_client = bench_client_new(env, env->setup_rt, BT_CONNECT_H1, 30000);
    return env->setup_client ? 0 : -1;
}

static void env_setup_client_free(bench_env *env)
{
    envd_client_free(env->setup_client);
    envd_runtime_free(env->setup_rt);
    env->setup_client = NULL;
    env->setup_rt = NULL;
}

static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

int main(int argc, char **argv)
{
    bench_opts o = {
        .source_dir = ENVD_SOURCE_DIR,
        .transport = -1,
        .duration_s = 3,
        .warmup_s = 1,
        .h2load = "h2load",
        .node = "node",
        .go = "go",
    };
    enum {
        O_SCEN = 1,
        O_TRANS,
        O_CONC,
        O_DUR,
        O_WARM,
        O_CALLS,
        O_CLIENTS,
        O_DOMAIN,
        O_SPID,
        O_WORKERS,
        O_SRC,
        O_H2LOAD,
        O_NODE,
        O_GO,
        O_ENVDCTL,
        O_JSON,
        O_VERBOSE,
        O_REPORT,
        O_ROWS,
        O_GNUPLOT,
        O_LIST,
        O_HELP
    };
    static const struct option longopts[] = {
        {"scenario", required_argument, 0, O_SCEN},
        {"transport", required_argument, 0, O_TRANS},
        {"concurrency", required_argument, 0, O_CONC},
        {"duration", required_argument, 0, O_DUR},
        {"warmup", required_argument, 0, O_WARM},
        {"calls", required_argument, 0, O_CALLS},
        {"clients", required_argument, 0, O_CLIENTS},
        {"domain", required_argument, 0, O_DOMAIN},
        {"server-pid", required_argument, 0, O_SPID},
        {"workers", required_argument, 0, O_WORKERS},
        {"source-dir", required_argument, 0, O_SRC},
        {"h2load", required_argument, 0, O_H2LOAD},
        {"node", required_argument, 0, O_NODE},
        {"go", required_argument, 0, O_GO},
        {"envdctl", required_argument, 0, O_ENVDCTL},
        {"json", no_argument, 0, O_JSON},
        {"verbose", no_argument, 0, O_VERBOSE},
        {"report", required_argument, 0, O_REPORT},
        {"rows", required_argument, 0, O_ROWS},
        {"gnuplot", required_argument, 0, O_GNUPLOT},
        {"list", no_argument, 0, O_LIST},
        {"help", no_argument, 0, O_HELP},
        {0, 0, 0, 0},
    };
    const char *report_dir = NULL, *rows_path = NULL, *gnuplot = NULL;
    int ch;
    while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (ch) {
        case O_SCEN:
            if (!bench_scenario_find(optarg)) {
                fprintf(stderr, "envd-bench: unknown scenario '%s' (--list)\n", optarg);
                return 2;
            }
            o.scenario = optarg;
            break;
        case O_TRANS:
            o.transport = bench_transport_parse(optarg);
            if (o.transport < 0) {
                fprintf(stderr, "envd-bench: unknown transport '%s'\n", optarg);
                return 2;
            }
            break;
        case O_CONC:
            o.concurrency = (int)parse_double(optarg, "concurrency");
            if (o.concurrency < 1) {
                fprintf(stderr, "envd-bench: concurrency must be >= 1\n");
                return 2;
            }
            break;
        case O_DUR:
            o.duration_s = parse_double(optarg, "duration");
            o.duration_set = 1;
            break;
        case O_WARM: o.warmup_s = parse_double(optarg, "warmup"); break;
        case O_CALLS: o.calls = (long)parse_double(optarg, "calls"); break;
        case O_CLIENTS: o.clients = optarg; break;
        case O_DOMAIN: o.domain = optarg; break;
        case O_SPID: o.server_pid = (pid_t)parse_double(optarg, "pid"); break;
        case O_WORKERS: o.workers = (int)parse_double(optarg, "workers"); break;
        case O_SRC: o.source_dir = optarg; break;
        case O_H2LOAD: o.h2load = optarg; break;
        case O_NODE: o.node = optarg; break;
        case O_GO: o.go = optarg; break;
        case O_ENVDCTL: o.envdctl = optarg; break;
        case O_JSON: o.json = 1; break;
        case O_VERBOSE: o.verbose = 1; break;
        case O_REPORT: report_dir = optarg; break;
        case O_ROWS: rows_path = optarg; break;
        case O_GNUPLOT: gnuplot = optarg; break;
        case O_LIST:
            for (size_t i = 0; i < bench_n_scenarios; i++)
                printf("%-10s %s%s\n", bench_scenarios[i].name, bench_scenarios[i].summary,
                       bench_scenarios[i].in_default ? "" : " (not in the default run)");
            return 0;
        case O_HELP:
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        usage(stderr);
        return 2;
    }
    if (o.duration_s <= 0) {
        fprintf(stderr, "envd-bench: --duration must be > 0\n");
        return 2;
    }
    if (rows_path && !report_dir) {
        fprintf(stderr, "envd-bench: --rows needs --report DIR\n");
        return 2;
    }
    if (rows_path) /* chart earlier runs' rows; nothing runs */
        return bench_report_file(report_dir, gnuplot, rows_path) == 0 ? 0 : 1;
    signal(SIGPIPE, SIG_IGN);
    raise_nofile();
    curl_global_init(CURL_GLOBAL_DEFAULT);

    bench_env env;
    memset(&env, 0, sizeof(env));
    env.opts = &o;
    snprintf(env.tmpdir, sizeof(env.tmpdir), "/tmp/envd-bench-XXXXXX");
    if (!mkdtemp(env.tmpdir)) {
        perror("envd-bench: mkdtemp");
        return 1;
    }
    g_env = &env;
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    if (bench_server_start(&env) != 0) {
        bench_rm_tree(env.tmpdir);
        return 1;
    }
    bench_log("envd-bench: server %s%s (pid %d); duration %.1f s, warm-up %.1f s", env.server.addr,
              env.server.owned ? " (reference server, started here)" : "", (int)env.server.pid,
              o.duration_s, o.warmup_s);
    int rc = 0;

    const bench_client_impl *clients[] = {&bench_client_libenvd, &bench_client_h2load,
                                          &bench_client_e2b_js, &bench_client_go,
                                          &bench_client_go_connect, &bench_client_curl,
                                          &bench_client_raw_curl};
    size_t cap = 256, n_res = 0;
    bench_result *results = calloc(cap, sizeof(*results));
    int progress = !o.json && isatty(2);
    bench_print_header(&o);
    for (size_t si = 0; si < bench_n_scenarios && results; si++) {
        const bench_scenario *sc = &bench_scenarios[si];
        if (o.scenario ? strcmp(o.scenario, sc->name) != 0 : !sc->in_default)
            continue;
        if (sc->setup) {
            int ok = env_setup_client(&env) == 0 && sc->setup(&env) == 0;
            env_setup_client_free(&env);
            if (!ok) {
                bench_log("envd-bench: scenario %s: setup against %s failed, skipped", sc->name,
                          env.server.addr);
                rc = 1;
                continue;
            }
        }
        const int *concs = default_concurrency;
        size_t n_conc = 3;
        int one[1];
        if (o.concurrency) {
            one[0] = o.concurrency;
            concs = one;
            n_conc = 1;
        } else if (sc->default_concurrency[0]) {
            concs = sc->default_concurrency;
            for (n_conc = 0; n_conc < 4 && sc->default_concurrency[n_conc]; n_conc++)
                ;
        }
        for (int t = 0; t < BT_COUNT; t++) {
            if (o.transport >= 0 && t != o.transport)
                continue;
            if (!((sc->transports ? sc->transports : BT_CLEARTEXT) & (1u << t)))
                continue;
            for (size_t ci = 0; ci < n_conc; ci++) {
                for (size_t k = 0; k < sizeof(clients) / sizeof(clients[0]); k++) {
                    const bench_client_impl *cl = clients[k];
                    if (!client_wanted(&o, cl->name) || !cl->supports(&env, sc, t))
                        continue;
                    if (n_res == cap) {
                        bench_result *nr = realloc(results, 2 * cap * sizeof(*results));
                        if (!nr)
                            break;
                        results = nr;
                        cap *= 2;
                    }
                    bench_result *r = &results[n_res++];
                    bench_result_init(r, cl->name, sc->name, t, concs[ci]);
                    if (progress)
                        fprintf(stderr, "  running %s %s %s c=%d ...\r", cl->name, sc->name,
                                bench_transport_name(t), concs[ci]);
                    int gw_failed = t == BT_CONNECT_TLS && !sc->run && bench_tls_gateway(&env) != 0;
                    /* connections already there (none, normally) */
                    int base_conns = bench_count_conns(bench_target_port(&env, t));
                    if (gw_failed) {
                        r->skipped = 1;
                        snprintf(r->note, sizeof(r->note), "the nginx TLS gateway did not start");
                    } else {
                        cl->run(&env, sc, t, concs[ci], r);
                    }
                    if (r->connections >= base_conns)
                        r->connections -= base_conns;
                    if (progress)
                        fprintf(stderr, "\r%60s\r", "");
                    bench_print_result(&o, r);
                    if (r->skipped && !r->unavailable) {
                        bench_log("envd-bench: %s %s %s c=%d skipped: %s", cl->name, sc->name,
                                  bench_transport_name(t), concs[ci], r->note);
                        rc = 1;
                    }
                }
            }
        }
        /* nginx's connections to the server would count as clients' later */
        bench_tls_gateway_stop(&env);
        if (sc->teardown) {
            if (env_setup_client(&env) == 0)
                sc->teardown(&env);
            env_setup_client_free(&env);
        }
    }
    bench_print_targets(&o, results, n_res);
    if (report_dir && results && bench_report_run(report_dir, gnuplot, results, n_res) != 0)
        rc = 1;
    free(results);
    bench_server_stop(&env);
    g_env = NULL;
    bench_rm_tree(env.tmpdir); /* request bodies, the server's root */
    curl_global_cleanup();
    return rc;
}
