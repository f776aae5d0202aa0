/* Peer clients in another language (bench/e2b-driver.mjs, bench/go-driver)
 * share one protocol with envd-bench, run here:
 *
 *   - the child keeps C calls in flight for warm-up + duration;
 *   - it prints "measure-start" and "measure-end" on stdout at the edges of
 *     its measured window: its CPU is read from /proc/<pid>/stat at those
 *     moments (from outside, as for every client), the server's too;
 *   - then one JSON line {calls, errors, seconds, p50_us, p90_us, p99_us,
 *     mean_us, max_us, self_cpu_us, first_error}.
 *
 * Peak RSS comes from wait4(); connections and threads are read mid-window. */
#include "bench.h"

#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static double jnum(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_number(v) ? json_number_value(v) : 0;
}

/* Reads the child's stdout until its JSON line (or the deadline). */
static json_t *read_result(bench_env *env, bench_child *ch, bench_result *out, double *cpu0,
                           double *cpu1, double *srv0, double *srv1)
{
    const bench_opts *o = env->opts;
    char buf[8192];
    size_t len = 0;
    json_t *res = NULL;
    uint64_t t_start = 0;
    uint64_t deadline = bench_now_ns() + (uint64_t)((o->warmup_s + o->duration_s + 60.0) * 1e9);
    while (!res && bench_now_ns() < deadline) {
        struct pollfd p = {ch->out_fd, POLLIN, 0};
        int pr = poll(&p, 1, 100);
        if (t_start && out->connections < 0 &&
            bench_now_ns() >= t_start + (uint64_t)(o->duration_s * 0.5e9)) {
            out->connections = bench_count_conns(bench_target_port(env, out->transport));
            out->threads = bench_proc_threads(ch->pid);
        }
        if (pr <= 0)
            continue;
        ssize_t r = read(ch->out_fd, buf + len, sizeof(buf) - 1 - len);
        if (r <= 0)
            break;
        len += (size_t)r;
        buf[len] = 0;
        char *nl;
        while ((nl = strchr(buf, '\n'))) {
            *nl = 0;
            if (strcmp(buf, "measure-start") == 0) {
                *cpu0 = bench_proc_cpu_us(ch->pid);
                *srv0 = bench_server_cpu_us(env);
                t_start = bench_now_ns();
            } else if (strcmp(buf, "measure-end") == 0) {
                *cpu1 = bench_proc_cpu_us(ch->pid);
                *srv1 = bench_server_cpu_us(env);
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
    return res;
}

int bench_driver_run(bench_env *env, const char *what, const char *const *argv,
                     const char *const *envs, bench_result *out, double *self_cpu_us)
{
    bench_child ch;
    if (bench_spawn(&ch, argv, envs, NULL) != 0) {
        out->skipped = 1;
        snprintf(out->note, sizeof(out->note), "cannot run %s: %s", argv[0], strerror(errno));
        return -1;
    }
    double cpu0 = -1, cpu1 = -1, srv0 = -1, srv1 = -1;
    json_t *res = read_result(env, &ch, out, &cpu0, &cpu1, &srv0, &srv1);
    if (!res)
        kill(ch.pid, SIGTERM);
    int st = 0;
    struct rusage ru;
    memset(&ru, 0, sizeof(ru));
    bench_wait(&ch, &st, &ru);
    if (!res) {
        out->skipped = 1;
        snprintf(out->note, sizeof(out->note), "the %s driver gave no result (status %d)", what,
                 st);
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
    *self_cpu_us = jnum(res, "self_cpu_us");
    out->cpu_us = cpu0 >= 0 && cpu1 >= 0 ? cpu1 - cpu0 : *self_cpu_us;
    out->cpu_user_us = -1;
    out->cpu_sys_us = -1;
    out->peak_rss_kib = ru.ru_maxrss;
    if (srv0 >= 0 && srv1 >= 0)
        out->server_cpu_us = srv1 - srv0;
    json_t *fe = json_object_get(res, "first_error");
    if (json_is_string(fe))
        snprintf(out->note, sizeof(out->note), "first error: %s", json_string_value(fe));
    json_decref(res);
    return 0;
}
