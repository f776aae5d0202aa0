/* envd-bench: what the bench's files share.
 *
 * A run is a grid of cases: scenario x transport x concurrency x client.
 * Scenarios (bench/scenarios.c) say what one call is; clients (libenvd,
 * h2load, e2b-js) say how to drive it and measure it. Every case ends in one
 * bench_result, printed as a table row or one JSON line.
 *
 * Adding a scenario: one entry in the table in scenarios.c. A unary or
 * closed-loop scenario fills `start` (one asynchronous libenvd call) and,
 * for the peer baselines, `method` + `request` (h2load) and `e2b_op`
 * (bench/e2b-driver.mjs). A scenario that needs its own measurement loop
 * (as `inflight` does) fills `run` instead.
 */
#ifndef ENVD_BENCH_H
#define ENVD_BENCH_H

#include "envd/envd.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>

/* ------------------------------------------------------------ transports */

/* BT_CONNECT_TLS: Connect over HTTPS with ALPN h2, the multiplexed
 * Connect path (E2B's edge). The reference server speaks cleartext, so
 * these cases go through nginx's TLS port (tests/gateway: TLS and HTTP/2 in,
 * HTTP/1.1 to the server), started on first use (bench_tls_gateway). */
enum bench_transport {
    BT_GRPC = 0,
    BT_CONNECT_H1 = 1,
    BT_CONNECT_H2C = 2,
    BT_CONNECT_TLS = 3,
    BT_COUNT = 4
};
/* What a scenario without a transports mask runs. */
#define BT_CLEARTEXT (1u << BT_GRPC | 1u << BT_CONNECT_H1 | 1u << BT_CONNECT_H2C)
/* The unary scenarios: those and Connect over TLS through the gateway. */
#define BT_ALL (BT_CLEARTEXT | 1u << BT_CONNECT_TLS)

/* "grpc", "connect-h1", "connect-h2c", "connect-tls". */
const char *bench_transport_name(int t);
/* -1 when unknown. */
int bench_transport_parse(const char *s);
/* "h2c" or "http/1.1". */
const char *bench_transport_http(int t);

/* ----------------------------------------------------------------- timing */

uint64_t bench_now_ns(void);
/* Sleeps, resuming after signals. */
void bench_sleep_ns(uint64_t ns);
/* user + system time of a rusage, in microseconds. */
double bench_rusage_us(const struct rusage *ru);

/* ------------------------------------------------- latency histogram */

/* Log-linear buckets (128 per power of two: < 0.8 % error), lock-free, so
 * completion callbacks on any engine thread record without a lock. Values
 * in nanoseconds. */
#define BENCH_HIST_BUCKETS 2432
typedef struct bench_hist {
    _Atomic uint64_t b[BENCH_HIST_BUCKETS];
    _Atomic uint64_t count;
    _Atomic uint64_t sum;
    _Atomic uint64_t max;
} bench_hist;

bench_hist *bench_hist_new(void);
void bench_hist_free(bench_hist *h);
void bench_hist_add(bench_hist *h, uint64_t ns);
/* q in [0,1]; nanoseconds; 0 when empty. */
double bench_hist_quantile(const bench_hist *h, double q);

/* ------------------------------------------------- many calls awaited */

/* Completions of many asynchronous calls, counted from whichever engine
 * thread completes them: successes, the first error's text, each
 * success's latency from its own start, and when the last one came. */
typedef struct bench_pending {
    _Atomic uint64_t done, ok;
    _Atomic uint64_t last_ns; /* bench_now_ns() of the latest completion */
    _Atomic long n;           /* the count bench_pending_wait is woken for */
    bench_hist *hist;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char first_error[200];
} bench_pending;

/* One call: ud of bench_pending_on_done; set t0 before starting the call. */
typedef struct bench_pending_call {
    bench_pending *p;
    uint64_t t0;
} bench_pending_call;

/* 0, or -1 (no memory). */
int bench_pending_init(bench_pending *p, long n);
void bench_pending_destroy(bench_pending *p);
/* An envd_future_on_complete callback; ud is a bench_pending_call. */
void bench_pending_on_done(envd_future *f, void *ud);
/* Waits until n calls completed (p->n is set to n) or timeout_ns passed;
 * returns how many completed. */
long bench_pending_wait(bench_pending *p, long n, uint64_t timeout_ns);

/* ------------------------------------------------------------- results */

typedef struct bench_result {
    const char *client; /* "libenvd", "h2load", "e2b-js", "go", "go-connect", "curl", "raw-curl" */
    const char *scenario;
    int transport;        /* BT_* */
    const char *encoding; /* "proto" or "json" */
    const char *http;     /* "h2c" or "http/1.1" */
    int concurrency;
    int connections; /* TCP connections to the server seen mid-run; -1 unknown */
    uint64_t calls;  /* successful calls completed in the window */
    uint64_t errors;
    double seconds; /* the measured window */
    double p50_us, p90_us, p99_us, mean_us, max_us;
    double cpu_us; /* client user+system CPU over the window */
    double cpu_user_us, cpu_sys_us;
    long peak_rss_kib;    /* the client process */
    double server_cpu_us; /* < 0: unknown */
    int threads;          /* client threads mid-run; -1 unknown */
    /* inflight */
    long inflight;
    int runtime_threads; /* threads libenvd itself started (not gRPC core's, not main) */
    double rss_per_call_kib;
    double heap_per_call_kib; /* malloc'd bytes (mallinfo2) per call in flight */
    double baseline_rss_kib;
    double idle_rss_per_client_kib; /* sandboxes: RSS per client made; < 0 elsewhere */
    int workers;
    /* upload / download (bench/scenario_files.c): 0 elsewhere */
    double bytes_per_s;
    int64_t file_bytes; /* size of each file moved */
    long files;         /* files per case */
    /* stream (bench/scenario_commands.c): output bytes read; 0 elsewhere
     * (bytes_per_s is their rate) */
    int64_t stream_bytes;
    int parts;          /* upload in parts (envd_files_opts_set_parallel); 0: one stream */
    /* batch (bench/batch.c): envdctl batch over the same jobs; 0 elsewhere */
    long batch_jobs;
    double batch_cpu_us;      /* envdctl's user+system CPU (wait4) */
    double batch_seconds;     /* its wall time */
    uint64_t batch_ok;        /* jobs its results file says ok */
    double batch_startup_cpu_us; /* envdctl's CPU for a batch of one job per sandbox */
    long check_lines;         /* lines of the --check file */
    long check_rss_kib;       /* envdctl batch --check's peak RSS (ru_maxrss) */
    char note[640];
    int skipped; /* not run: note says why */
    int unavailable; /* with skipped: the client's program is missing (Go not
                      * installed, its module not served); not an error */
} bench_result;

void bench_result_init(bench_result *r, const char *client, const char *scenario, int transport,
                       int concurrency);

/* --------------------------------------------------------------- options */

typedef struct bench_opts {
    const char *domain;     /* external server "HOST:PORT", or NULL: start our own */
    const char *source_dir; /* repository root (tests/peer, bench/e2b-driver.mjs) */
    const char *scenario;   /* NULL: the default set */
    const char *clients;    /* comma list, NULL: all */
    int transport;          /* -1: all */
    int concurrency;        /* 0: 1, 16, 256 (inflight: 10000) */
    double duration_s;
    int duration_set;       /* --duration given (soak runs 10 minutes otherwise) */
    double warmup_s;
    long calls; /* libenvd closed loop: end the window after this many calls (profiling) */
    int json;
    int workers;        /* libenvd runtime workers; 0: online CPUs */
    pid_t server_pid;   /* for --domain: lets inflight pause it and CPU be read */
    const char *h2load; /* program */
    const char *node;   /* program */
    const char *go;     /* program, to build bench/go-driver */
    const char *envdctl; /* program; NULL: next to envd-bench */
    int verbose;
} bench_opts;

/* ------------------------------------------------------- the environment */

typedef struct bench_server {
    pid_t pid; /* 0 for an external server without --server-pid */
    int owned; /* we started it */
    int port;
    int out_fd;     /* the read end of its stdout, kept open while it runs */
    char addr[128]; /* "127.0.0.1:PORT" */
    char root[300]; /* the server's --root when owned */
} bench_server;

typedef struct bench_env {
    const bench_opts *opts;
    bench_server server;
    char tmpdir[256];       /* for request bodies and logs */
    envd_runtime *setup_rt; /* a runtime + Connect client for scenario setup */
    envd_client *setup_client;
    const char *stat_path; /* wire path Stat targets */
    uint32_t bg_pids[8];   /* background processes List reports */
    size_t n_bg;
    /* connect-tls: nginx in front of the server (bench_tls_gateway) */
    struct test_gateway *tls_gw;
    char tls_addr[64]; /* "127.0.0.1:PORT" of its TLS port */
    char tls_ca[300];  /* the certificate to trust */
} bench_env;

/* Starts the reference server (or adopts --domain). 0 on success. */
int bench_server_start(bench_env *env);
void bench_server_stop(bench_env *env);
/* Stops the server we started and starts it again on the same port (its
 * files stay). 0, or -1 (not ours, or it did not come back). */
int bench_server_restart(bench_env *env);
/* The server's user+system CPU so far in microseconds; < 0 when unknown. */
double bench_server_cpu_us(const bench_env *env);
/* user+system CPU of any pid from /proc; < 0 when unknown. */
double bench_proc_cpu_us(pid_t pid);
/* Established TCP connections whose remote port is `port` (client side). */
int bench_count_conns(int port);
/* This process: resident and peak resident KiB (VmRSS/VmHWM), threads. */
long bench_self_rss_kib(void);
long bench_self_hwm_kib(void);
void bench_self_reset_hwm(void);
int bench_self_threads(void);
/* Threads of a process (0: this one); -1 unknown. */
int bench_proc_threads(pid_t pid);

/* Starts the TLS gateway in front of the server unless it runs; 0, or -1
 * (nginx missing or failed: message logged). */
int bench_tls_gateway(bench_env *env);
/* Stops it (if it runs): after each scenario, so that nginx's connections to
 * the server do not count as a later case's clients'. */
void bench_tls_gateway_stop(bench_env *env);
/* Where a client of the transport connects: the TLS gateway for
 * BT_CONNECT_TLS, the server otherwise ("HOST:PORT", and its port, which
 * connections are counted at). */
const char *bench_target_addr(const bench_env *env, int transport);
int bench_target_port(const bench_env *env, int transport);

/* A libenvd client for the server over a transport. NULL + message on error. */
envd_client *bench_client_new(bench_env *env, envd_runtime *rt, int transport, int64_t timeout_ms);
/* The same for a given sandbox ID (e2b-sandbox-id); the above sends "envd-bench". */
envd_client *bench_client_new_id(bench_env *env, envd_runtime *rt, int transport,
                                 int64_t timeout_ms, const char *sandbox_id);
/* The same at another address ("HOST:PORT": a gateway in front of the
 * server); BT_CONNECT_TLS: https, trusting ca_file. */
envd_client *bench_client_new_at(envd_runtime *rt, const char *addr, int transport,
                                 int64_t timeout_ms, const char *sandbox_id, const char *ca_file);
envd_runtime *bench_runtime_new(const bench_env *env, int max_inflight);
/* The same with max_connections per endpoint (0: the default, 200). */
envd_runtime *bench_runtime_new_pool(const bench_env *env, int max_inflight, int max_connections);

/* ------------------------------------------------------------- scenarios */

typedef struct bench_scenario bench_scenario;

struct bench_scenario {
    const char *name;
    const char *summary;
    int in_default;             /* part of a run without --scenario */
    int default_concurrency[4]; /* 0-terminated; empty: 1, 16, 256 */
    unsigned transports;        /* bit per BT_*; 0: all */
    /* Server-side state (files, processes) through env->setup_client. */
    int (*setup)(bench_env *env);
    void (*teardown)(bench_env *env);
    /* Closed loop: start one call. */
    envd_status (*start)(envd_client *c, bench_env *env, envd_future **out);
    /* Wire form for h2load: method path and serialized request message
     * (written into buf, returns its length; SIZE_MAX when too big). NULL:
     * no h2load baseline. */
    const char *method;
    size_t (*request)(bench_env *env, uint8_t *buf, size_t cap);
    /* Operation name for bench/e2b-driver.mjs; NULL: no e2b-js baseline. */
    const char *e2b_op;
    /* Operation name for bench/go-driver when e2b-js has none; NULL: e2b_op. */
    const char *go_op;
    /* Own runner (libenvd only), instead of the closed loop. */
    int (*run)(bench_env *env, const bench_scenario *sc, int transport, int concurrency,
               bench_result *out);
};

extern const bench_scenario bench_scenarios[];
extern const size_t bench_n_scenarios;
const bench_scenario *bench_scenario_find(const char *name);

/* --------------------------------------------------------------- clients */

typedef struct bench_client_impl {
    const char *name;
    int (*supports)(const bench_env *env, const bench_scenario *sc, int transport);
    /* Runs one case; fills out (out->skipped + note when it could not). */
    int (*run)(bench_env *env, const bench_scenario *sc, int transport, int concurrency,
               bench_result *out);
} bench_client_impl;

extern const bench_client_impl bench_client_libenvd;
extern const bench_client_impl bench_client_h2load;
extern const bench_client_impl bench_client_e2b_js;
extern const bench_client_impl bench_client_go;
extern const bench_client_impl bench_client_go_connect;
/* What go-connect is, for notes and target lines (bench/client_go.c). */
const char *bench_go_connect_about(void);

/* Runs a peer driver in another language (bench/driver.c: the
 * measure-start / measure-end / JSON-line protocol) and fills out; `what`
 * names it in errors. self_cpu_us: the CPU the driver reports of itself. */
int bench_driver_run(bench_env *env, const char *what, const char *const *argv,
                     const char *const *envs, bench_result *out, double *self_cpu_us);

/* The inflight scenario's runner (bench/inflight.c). */
int bench_run_inflight(bench_env *env, const bench_scenario *sc, int transport, int concurrency,
                       bench_result *out);
/* bench/scenario_sandboxes.c */
int bench_run_sandboxes(bench_env *env, const bench_scenario *sc, int transport, int concurrency,
                        bench_result *out);
/* bench/scenario_long.c */
int bench_run_long(bench_env *env, const bench_scenario *sc, int transport, int concurrency,
                   bench_result *out);
/* bench/soak.c */
int bench_run_soak(bench_env *env, const bench_scenario *sc, int transport, int concurrency,
                   bench_result *out);

/* bench/batch.c */
int bench_run_batch(bench_env *env, const bench_scenario *sc, int transport, int concurrency,
                    bench_result *out);
/* Its target lines (envdctl CPU/job <= 1.5x the loop's; --check RSS <= 64 MiB). */
void bench_batch_targets(FILE *fp, const bench_result *rs, size_t n, int *met, int *missed);

/* ---------------------------------------------------------------- output */

void bench_print_header(const bench_opts *o);
void bench_print_result(const bench_opts *o, const bench_result *r);
/* Target checks over every result of the run (to stdout in table mode,
 * stderr with --json so stdout stays JSON lines). */
void bench_print_targets(const bench_opts *o, const bench_result *rs, size_t n);

/* The object --json prints for a result: a new reference, NULL when out of
 * memory. bench_row_dumps: one such object as one line of JSON, without the
 * newline (free() it; NULL when out of memory). */
struct json_t *bench_result_json(const bench_result *r);
char *bench_row_dumps(const struct json_t *row);

/* --report DIR (bench/report.c): writes DIR/rows.jsonl (one bench_result_json
 * object per line) and SVG charts made by gnuplot (the program `gnuplot`, or
 * the path given). bench_report_run: the rows of this run;
 * bench_report_file: the rows of a JSON-lines file (as --json prints; "-"
 * is stdin), so that several runs' rows make one report. 0 on success; -1
 * with a message on stderr (rows.jsonl is still written when only the charts
 * failed, gnuplot missing included). */
int bench_report_run(const char *dir, const char *gnuplot, const bench_result *rs, size_t n);
int bench_report_file(const char *dir, const char *gnuplot, const char *rows_path);

/* Progress and diagnostics: stderr. */
void bench_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Child processes: spawn with stdout (and stderr) to a pipe or a file. */
typedef struct bench_child {
    pid_t pid;
    int out_fd; /* read end of stdout, or -1 */
} bench_child;

/* argv[0] is looked up in PATH. env_add: NULL-terminated "K=V" list added to
 * the environment. stdout_path: file for stdout+stderr, or NULL for a pipe
 * (out_fd) with stderr to ours. */
int bench_spawn(bench_child *ch, const char *const *argv, const char *const *env_add,
                const char *stdout_path);
/* Removes a directory tree (best effort). */
void bench_rm_tree(const char *dir);

/* wait4 for it; status and rusage. */
int bench_wait(bench_child *ch, int *status, struct rusage *ru);

#endif
