/* Allocation failures in envdctl's batch: a batch of 3 jobs (an upload and
 * a download among them) runs in this process against the reference
 * server, with the k-th allocation failing, for every k until it runs with
 * nothing injected. envdctl does not allocate through the library's seam
 * (src/cli uses libc), so this binary is linked with --wrap for malloc,
 * calloc, realloc, strdup, strndup, vasprintf, getline and __getdelim
 * (getline when inlined): every such call made by envdctl's code or the
 * (static) library counts, on any thread. Calls inside the shared libraries
 * underneath (libc's own, libcurl, gRPC, libyaml, jansson: see
 * test_alloc_fail.c for why not jansson) are not failed; getline is failed
 * only when it has no buffer yet (then it must allocate).
 *
 * Each run must end with exit 0 and three "ok" results, or with exit 1 and
 * "out of memory" in what it printed or in the results file: never a crash
 * (the test would die), a leak (LSan, ASan build), a hang (the batch's
 * own deadlines are set short; ctest's timeout past them), a usage error
 * (exit 2) or a run that says nothing of memory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/alloc.h"
#include "envdctl.h"
#include "peer_server.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- the wrapped allocators ------------------------------------------------ */

static envd_fault fault;

void *__real_malloc(size_t n);
void *__real_calloc(size_t count, size_t size);
void *__real_realloc(void *p, size_t n);
char *__real_strdup(const char *s);
char *__real_strndup(const char *s, size_t n);
int __real_vasprintf(char **out, const char *fmt, va_list ap);
ssize_t __real_getline(char **line, size_t *cap, FILE *f);
ssize_t __real___getdelim(char **line, size_t *cap, int delim, FILE *f);

void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t count, size_t size);
void *__wrap_realloc(void *p, size_t n);
char *__wrap_strdup(const char *s);
char *__wrap_strndup(const char *s, size_t n);
int __wrap_vasprintf(char **out, const char *fmt, va_list ap);
ssize_t __wrap_getline(char **line, size_t *cap, FILE *f);
ssize_t __wrap___getdelim(char **line, size_t *cap, int delim, FILE *f);

static int fail_now(void)
{
    if (!envd_fault_hit(&fault))
        return 0;
    errno = ENOMEM;
    return 1;
}

void *__wrap_malloc(size_t n) { return fail_now() ? NULL : __real_malloc(n); }

void *__wrap_calloc(size_t count, size_t size)
{
    return fail_now() ? NULL : __real_calloc(count, size);
}

void *__wrap_realloc(void *p, size_t n) { return fail_now() ? NULL : __real_realloc(p, n); }

char *__wrap_strdup(const char *s) { return fail_now() ? NULL : __real_strdup(s); }

char *__wrap_strndup(const char *s, size_t n) { return fail_now() ? NULL : __real_strndup(s, n); }

int __wrap_vasprintf(char **out, const char *fmt, va_list ap)
{
    return fail_now() ? -1 : __real_vasprintf(out, fmt, ap);
}

ssize_t __wrap_getline(char **line, size_t *cap, FILE *f)
{
    if (!*line && fail_now())
        return -1;
    return __real_getline(line, cap, f);
}

/* what getline is inlined to when optimizing (glibc's bits/stdio.h) */
ssize_t __wrap___getdelim(char **line, size_t *cap, int delim, FILE *f)
{
    if (!*line && fail_now())
        return -1;
    return __real___getdelim(line, cap, delim, f);
}

/* ---- the batch --------------------------------------------------------------- */

static peer_proc peer;
static char dir[64]; /* jobs, the upload's source, results, downloads */

static void path_in(char *out, size_t n, const char *name)
{
    snprintf(out, n, "%s/%s", dir, name);
}

/* The whole of a file (NUL-terminated, caller frees), "" when absent. */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    char *s = calloc(1, 1 << 16);
    if (f && s)
        s[fread(s, 1, (1 << 16) - 1, f)] = '\0';
    if (f)
        fclose(f);
    return s;
}

/* One run of `envdctl batch` in this process, its standard output and
 * error in dir/out.txt; the exit status. */
static int run_batch(void)
{
    char jobs[128], results[128], report[128], out[128], dl[128];
    path_in(jobs, sizeof jobs, "jobs.jsonl");
    path_in(results, sizeof results, "results.jsonl");
    path_in(report, sizeof report, "report.json");
    path_in(out, sizeof out, "out.txt");
    path_in(dl, sizeof dl, "dl/out.txt");
    unlink(results);
    unlink(report);
    unlink(dl);
    fflush(stdout);
    fflush(stderr);
    int saved[2] = {dup(1), dup(2)};
    int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 1);
    dup2(fd, 2);
    close(fd);
    char *argv[] = {"batch",       "--domain",        peer.addr, "--results",
                    results,       "--report",        report,    "--retry-backoff",
                    "1ms",         "--pool-timeout",  "20s",     jobs,
                    NULL};
    cli_ctx ctx;
    cli_ctx_init(&ctx);
    ctx.cmd = "batch";
    int rc = cmd_batch(&ctx, (int)(sizeof argv / sizeof argv[0]) - 1, argv);
    fflush(stdout);
    fflush(stderr);
    cli_ctx_free(&ctx);
    dup2(saved[0], 1);
    dup2(saved[1], 2);
    close(saved[0]);
    close(saved[1]);
    return rc;
}

static size_t count(const char *s, const char *what)
{
    size_t n = 0;
    for (const char *p = s; (p = strstr(p, what)) != NULL; p += strlen(what))
        n++;
    return n;
}

/* The verdict on one run: NULL when it is one of the two allowed ends. */
static const char *judge(int rc, int injected, const char *out, const char *results)
{
    if (rc == CLI_EXIT_OK)
        return count(results, "\"status\":\"ok\"") != 3 ? "exit 0 without three ok results"
               : !strstr(out, "3 jobs: 3 ok")            ? "exit 0 without '3 jobs: 3 ok'"
                                                         : NULL;
    if (!injected)
        return "failed with nothing injected";
    if (rc != CLI_EXIT_FAIL)
        return "exit status neither 0 nor 1";
    if (!strstr(out, "out of memory") && !strstr(results, "out of memory") &&
        !strstr(out, strerror(ENOMEM)))
        return "failed without saying it was out of memory";
    return NULL;
}

static void batch_of_three_every_allocation_fails(void **state)
{
    (void)state;
    char outp[128], resp[128];
    path_in(outp, sizeof outp, "out.txt");
    path_in(resp, sizeof resp, "results.jsonl");
    int verbose = getenv("ENVD_ALLOC_FAIL_VERBOSE") != NULL;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    /* ENVD_ALLOC_FAIL_FROM=k: start at k (to debug one) */
    long n = getenv("ENVD_ALLOC_FAIL_FROM") ? atol(getenv("ENVD_ALLOC_FAIL_FROM")) : 1;
    long failed_runs = 0, bad_runs = 0, first_bad = 0;
    for (n = n > 0 ? n : 1;; n++) {
        envd_fault_arm(&fault, n);
        int rc = run_batch();
        int injected = envd_fault_fired(&fault);
        envd_fault_arm(&fault, 0);
        char *out = slurp(outp), *results = slurp(resp);
        const char *bad = judge(rc, injected, out ? out : "", results ? results : "");
        if (verbose || bad)
            fprintf(stderr, "k=%ld exit %d%s%s%s: %.300s\nresults: %.600s\n", n, rc,
                    injected ? "" : " (none injected)", bad ? ", wrong: " : "", bad ? bad : "",
                    out ? out : "", results ? results : "");
        free(out);
        free(results);
        if (bad && bad_runs++ == 0)
            first_bad = n;
        failed_runs += rc != CLI_EXIT_OK;
        if (!injected)
            break;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("batch of 3 jobs: %ld allocation sites failed in turn, %ld runs ended in an error "
           "(%.1f s)\n",
           n - 1, failed_runs,
           (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
    if (n == 1)
        fail_msg("no allocation was failed");
    if (bad_runs) /* every one was printed above */
        fail_msg("%ld runs ended wrongly, the first at allocation %ld", bad_runs, first_bad);
}

static int setup(void **state)
{
    (void)state;
    /* only the flags choose the sandbox */
    unsetenv("ENVD_DOMAIN");
    unsetenv("ENVD_SANDBOX_ID");
    unsetenv("ENVD_RUNTIME_TOKEN");
    unsetenv("ENVD_CONFIG");
    unsetenv("JOB_COMPLETION_INDEX");
    unsetenv("JOB_COMPLETIONS");
    snprintf(dir, sizeof dir, "/tmp/envd-alloc-batch-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    char p[128];
    path_in(p, sizeof p, "in.txt");
    FILE *f = fopen(p, "w");
    if (!f)
        return -1;
    fputs("uploaded\n", f);
    fclose(f);
    path_in(p, sizeof p, "jobs.jsonl");
    f = fopen(p, "w");
    if (!f)
        return -1;
    fprintf(f,
            "{\"id\": \"a\", \"cmd\": \"echo one\"}\n"
            "{\"id\": \"b\", \"cwd\": \"/alloc\", \"cmd\": \"cat in.txt > out.txt; echo two\","
            " \"upload\": [{\"src\": \"%s/in.txt\", \"dst\": \"/alloc/in.txt\"}],"
            " \"download\": [{\"src\": \"/alloc/out.txt\", \"dst\": \"%s/dl/out.txt\"}]}\n"
            "{\"id\": \"c\", \"cmd\": \"echo three >&2\"}\n",
            dir, dir);
    fclose(f);
    if (peer_spawn(&peer, "both", NULL, NULL) != 0)
        return -1;
    snprintf(p, sizeof p, "%s/alloc", peer.root); /* job b's cwd */
    return mkdir(p, 0755);
}

static int teardown(void **state)
{
    (void)state;
    peer_stop(&peer);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(batch_of_three_every_allocation_fails),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
