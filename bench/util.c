/* envd-bench helpers: clocks, the latency histogram, /proc readings, child
 * processes. */
#include "bench.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------ transports */

static const char *const transport_names[BT_COUNT] = {"grpc", "connect-h1", "connect-h2c",
                                                      "connect-tls"};

const char *bench_transport_name(int t)
{
    return t >= 0 && t < BT_COUNT ? transport_names[t] : "?";
}

int bench_transport_parse(const char *s)
{
    for (int t = 0; t < BT_COUNT; t++)
        if (strcmp(s, transport_names[t]) == 0)
            return t;
    /* friendlier spellings */
    if (strcmp(s, "connect") == 0 || strcmp(s, "connect-http1") == 0 || strcmp(s, "h1") == 0)
        return BT_CONNECT_H1;
    if (strcmp(s, "h2c") == 0)
        return BT_CONNECT_H2C;
    return -1;
}

const char *bench_transport_http(int t)
{
    return t == BT_CONNECT_H1 ? "http/1.1" : t == BT_CONNECT_TLS ? "h2" : "h2c";
}

/* ----------------------------------------------------------------- timing */

uint64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void bench_sleep_ns(uint64_t ns)
{
    struct timespec ts = {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

double bench_rusage_us(const struct rusage *ru)
{
    return (double)ru->ru_utime.tv_sec * 1e6 + (double)ru->ru_utime.tv_usec +
           (double)ru->ru_stime.tv_sec * 1e6 + (double)ru->ru_stime.tv_usec;
}

/* ------------------------------------------------------------- histogram */

/* Values below 128 have a bucket each; above, 64 buckets per power of two
 * (the top 7 significant bits). */
static size_t hist_index(uint64_t v)
{
    if (v < 128)
        return (size_t)v;
    int msb = 63 - __builtin_clzll(v);
    int shift = msb - 6;
    size_t idx = (size_t)shift * 64 + (size_t)(v >> shift);
    return idx < BENCH_HIST_BUCKETS ? idx : BENCH_HIST_BUCKETS - 1;
}

static double hist_value(size_t idx)
{
    if (idx < 128)
        return (double)idx;
    int shift = (int)(idx / 64) - 1;
    uint64_t m = idx - (uint64_t)shift * 64;
    return (double)(m << shift) + (double)(1ull << shift) / 2.0;
}

bench_hist *bench_hist_new(void)
{
    return calloc(1, sizeof(bench_hist));
}

void bench_hist_free(bench_hist *h)
{
    free(h);
}

void bench_hist_add(bench_hist *h, uint64_t ns)
{
    atomic_fetch_add_explicit(&h->b[hist_index(ns)], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum, ns, memory_order_relaxed);
    uint64_t m = atomic_load_explicit(&h->max, memory_order_relaxed);
    while (ns > m && !atomic_compare_exchange_weak_explicit(&h->max, &m, ns, memory_order_relaxed,
                                                            memory_order_relaxed))
        ;
}

double bench_hist_quantile(const bench_hist *h, double q)
{
    uint64_t n = atomic_load(&((bench_hist *)h)->count);
    if (n == 0)
        return 0;
    uint64_t rank = (uint64_t)(q * (double)n + 0.999999);
    if (rank < 1)
        rank = 1;
    uint64_t seen = 0;
    for (size_t i = 0; i < BENCH_HIST_BUCKETS; i++) {
        seen += atomic_load_explicit(&((bench_hist *)h)->b[i], memory_order_relaxed);
        if (seen >= rank)
            return hist_value(i);
    }
    return (double)atomic_load(&((bench_hist *)h)->max);
}

/* ------------------------------------------------- many calls awaited */

int bench_pending_init(bench_pending *p, long n)
{
    memset(p, 0, sizeof(*p));
    atomic_store(&p->n, n);
    p->hist = bench_hist_new();
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    return p->hist ? 0 : -1;
}

void bench_pending_destroy(bench_pending *p)
{
    bench_hist_free(p->hist);
    p->hist = NULL;
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
}

void bench_pending_on_done(envd_future *f, void *ud)
{
    bench_pending_call *c = ud;
    bench_pending *p = c->p;
    uint64_t now = bench_now_ns();
    envd_status st = envd_future_status(f);
    if (st == ENVD_OK) {
        bench_hist_add(p->hist, now - c->t0);
        atomic_fetch_add(&p->ok, 1);
    } else {
        const envd_error *e = envd_future_error(f);
        pthread_mutex_lock(&p->mu);
        if (!p->first_error[0])
            snprintf(p->first_error, sizeof(p->first_error), "%s",
                     e ? envd_error_message(e) : envd_strerror(st));
        pthread_mutex_unlock(&p->mu);
    }
    uint64_t last = atomic_load(&p->last_ns);
    while (now > last && !atomic_compare_exchange_weak(&p->last_ns, &last, now))
        ;
    if ((long)atomic_fetch_add(&p->done, 1) + 1 >= atomic_load(&p->n)) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
    }
}

long bench_pending_wait(bench_pending *p, long n, uint64_t timeout_ns)
{
    atomic_store(&p->n, n);
    uint64_t deadline = bench_now_ns() + timeout_ns;
    pthread_mutex_lock(&p->mu);
    while ((long)atomic_load(&p->done) < n && bench_now_ns() < deadline) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&p->cv, &p->mu, &ts);
    }
    pthread_mutex_unlock(&p->mu);
    return (long)atomic_load(&p->done);
}

/* --------------------------------------------------------------- results */

void bench_result_init(bench_result *r, const char *client, const char *scenario, int transport,
                       int concurrency)
{
    memset(r, 0, sizeof(*r));
    r->client = client;
    r->scenario = scenario;
    r->transport = transport;
    r->encoding = "proto";
    r->http = bench_transport_http(transport);
    r->concurrency = concurrency;
    r->connections = -1;
    r->peak_rss_kib = -1;
    r->server_cpu_us = -1;
    r->threads = -1;
    r->inflight = -1;
    r->runtime_threads = -1;
    r->rss_per_call_kib = -1;
    r->heap_per_call_kib = -1;
    r->baseline_rss_kib = -1;
    r->idle_rss_per_client_kib = -1;
}

/* ------------------------------------------------------------------ /proc */

double bench_proc_cpu_us(pid_t pid)
{
    if (pid <= 0)
        return -1;
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = 0;
    /* comm may hold spaces and parentheses: fields restart after the last ')' */
    char *p = strrchr(buf, ')');
    if (!p)
        return -1;
    p++;
    /* after ')': state(3) ppid(4) ... utime(14) stime(15) */
    unsigned long long utime = 0, stime = 0;
    int field = 2;
    char *save = NULL;
    for (char *tok = strtok_r(p, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
        field++;
        if (field == 14)
            utime = strtoull(tok, NULL, 10);
        else if (field == 15) {
            stime = strtoull(tok, NULL, 10);
            break;
        }
    }
    long hz = sysconf(_SC_CLK_TCK);
    if (hz <= 0)
        hz = 100;
    return (double)(utime + stime) * 1e6 / (double)hz;
}

int bench_count_conns(int port)
{
    int count = 0;
    const char *files[] = {"/proc/net/tcp", "/proc/net/tcp6"};
    for (size_t f = 0; f < 2; f++) {
        FILE *fp = fopen(files[f], "r");
        if (!fp)
            continue;
        char line[512];
        if (!fgets(line, sizeof(line), fp)) { /* header */
            fclose(fp);
            continue;
        }
        while (fgets(line, sizeof(line), fp)) {
            char local[128], remote[128];
            unsigned st;
            if (sscanf(line, "%*d: %127s %127s %x", local, remote, &st) != 3)
                continue;
            char *colon = strrchr(remote, ':');
            if (!colon || st != 0x01) /* ESTABLISHED */
                continue;
            if ((int)strtol(colon + 1, NULL, 16) == port)
                count++;
        }
        fclose(fp);
    }
    return count;
}

static long status_field_kib(const char *key)
{
    FILE *fp = fopen("/proc/self/status", "r");
    if (!fp)
        return -1;
    char line[256];
    size_t kl = strlen(key);
    long v = -1;
    while (fgets(line, sizeof(line), fp)) {
        if (strncmp(line, key, kl) == 0 && line[kl] == ':') {
            v = strtol(line + kl + 1, NULL, 10);
            break;
        }
    }
    fclose(fp);
    return v;
}

long bench_self_rss_kib(void)
{
    return status_field_kib("VmRSS");
}

long bench_self_hwm_kib(void)
{
    long v = status_field_kib("VmHWM");
    if (v < 0) {
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        v = ru.ru_maxrss;
    }
    return v;
}

/* Linux >= 4.0: writing 5 to clear_refs resets VmHWM to the current RSS, so
 * each case gets its own peak. */
void bench_self_reset_hwm(void)
{
    int fd = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    if (write(fd, "5", 1) != 1) {
        /* not fatal: the peak is then the process's since start */
    }
    close(fd);
}

int bench_proc_threads(pid_t pid)
{
    char path[64];
    if (pid > 0)
        snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
    else
        snprintf(path, sizeof(path), "/proc/self/task");
    DIR *d = opendir(path);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (isdigit((unsigned char)e->d_name[0]))
            n++;
    closedir(d);
    return n;
}

int bench_self_threads(void)
{
    return bench_proc_threads(0);
}

/* ---------------------------------------------------------------- logging */

void bench_log(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
}

/* --------------------------------------------------------------- children */

int bench_spawn(bench_child *ch, const char *const *argv, const char *const *env_add,
                const char *stdout_path)
{
    int p[2] = {-1, -1};
    ch->pid = -1;
    ch->out_fd = -1;
    if (!stdout_path && pipe2(p, O_CLOEXEC) != 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0) {
        if (p[0] >= 0) {
            close(p[0]);
            close(p[1]);
        }
        return -1;
    }
    if (pid == 0) {
        /* a bench killed hard must not leave servers or load generators */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (stdout_path) {
            int fd = open(stdout_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
            if (fd < 0)
                _exit(126);
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        } else {
            dup2(p[1], 1);
        }
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0) {
            dup2(devnull, 0);
            close(devnull);
        }
        for (size_t i = 0; env_add && env_add[i]; i++)
            putenv((char *)env_add[i]);
        execvp(argv[0], (char *const *)argv);
        fprintf(stderr, "envd-bench: cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    if (!stdout_path) {
        close(p[1]);
        ch->out_fd = p[0];
    }
    ch->pid = pid;
    return 0;
}

int bench_wait(bench_child *ch, int *status, struct rusage *ru)
{
    int st = 0;
    pid_t r;
    do {
        r = wait4(ch->pid, &st, 0, ru);
    } while (r < 0 && errno == EINTR);
    if (ch->out_fd >= 0) {
        close(ch->out_fd);
        ch->out_fd = -1;
    }
    if (status)
        *status = st;
    ch->pid = -1;
    return r < 0 ? -1 : 0;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    remove(path);
    return 0;
}

void bench_rm_tree(const char *dir)
{
    if (dir && dir[0])
        nftw(dir, rm_entry, 32, FTW_DEPTH | FTW_PHYS);
}
