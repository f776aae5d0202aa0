/* The /files scenarios: upload and download of 1 MiB x 1000 and 1 GiB x 1
 * through libenvd's streamed transfers (write_from_fd / read_to_fd), next
 * to the curl program moving the same files to the same server in the
 * same run.
 *
 * What both sides do, so the comparison is fair:
 *   upload    the file is read from the client's disk (one local source
 *             file, page-cache hot, uploaded to n different paths) and sent
 *             as multipart part `file` (libenvd: write_from_fd; curl: -F
 *             file=@src, with Expect: off so it does not wait for a 100).
 *   download  the body goes to /dev/null (libenvd: read_to_fd; curl: -o).
 * Server-side sources for downloads are uploaded once, unmeasured.
 *
 * ENVD_BENCH_FILES_N (default 1000) and ENVD_BENCH_FILES_BIG_MIB (default
 * 1024) shrink the cases for a quick run. */
#include "scenario_files.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define SMALL_BYTES ((int64_t)1 << 20)

typedef struct fcase {
    int upload;
    int big;
    int parts; /* uploads: envd_files_opts_set_parallel's max_parts (0: one stream) */
} fcase;

/* ENVD_BENCH_FILES_PARTS (default 8): the parts of the parallel case. */
static int case_parts(void)
{
    const char *s = getenv("ENVD_BENCH_FILES_PARTS");
    int n = s ? atoi(s) : 0;
    return n >= 2 && n <= ENVD_FILES_MAX_PARTS ? n : 8;
}

static int64_t case_bytes(const fcase *fc)
{
    if (!fc->big)
        return SMALL_BYTES;
    const char *s = getenv("ENVD_BENCH_FILES_BIG_MIB");
    long mib = s ? atol(s) : 0;
    return (int64_t)(mib > 0 ? mib : 1024) << 20;
}

static int case_files(const fcase *fc)
{
    if (fc->big)
        return 1;
    const char *s = getenv("ENVD_BENCH_FILES_N");
    int n = s ? atoi(s) : 0;
    return n > 0 ? n : 1000;
}

/* ------------------------------------------------------------ the files */

static struct {
    int64_t local_small, local_big;   /* bytes of the local sources made */
    int64_t remote_small, remote_big; /* bytes of the server's sources made */
    int remote_small_n;
} g_made;

static void local_src(const bench_env *env, int big, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s/files-src-%s.bin", env->tmpdir, big ? "big" : "small");
}

static void remote_path(const char *who, const fcase *fc, int i, char *buf, size_t cap)
{
    if (fc->big)
        snprintf(buf, cap, "/bench/files/%s/big.bin", who);
    else
        snprintf(buf, cap, "/bench/files/%s/small/%04d.bin", who, i);
}

/* The destination directory, made before the uploads: concurrent uploads
 * creating the same new directory race in the reference server's
 * EnsureDirs ("mkdir ...: file exists"). */
static int make_dirs(envd_client *c, const char *who, const fcase *fc)
{
    char path[256];
    remote_path(who, fc, 0, path, sizeof path);
    *strrchr(path, '/') = 0;
    envd_error *err = NULL;
    envd_status st = envd_fs_make_dir(c, path, NULL, &err);
    envd_error_free(err);
    return st == ENVD_OK ? 0 : -1;
}

/* Pseudo-random bytes (incompressible) into the local source file. */
static int make_local(const bench_env *env, int big, int64_t bytes)
{
    int64_t *made = big ? &g_made.local_big : &g_made.local_small;
    if (*made == bytes)
        return 0;
    char path[512];
    local_src(env, big, path, sizeof path);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    size_t chunk = 1 << 20;
    uint64_t *b = malloc(chunk);
    uint64_t s = 0x9E3779B97F4A7C15ULL ^ (uint64_t)bytes;
    int rc = b ? 0 : -1;
    for (int64_t done = 0; rc == 0 && done < bytes; done += (int64_t)chunk) {
        for (size_t i = 0; i < chunk / 8; i++) {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            b[i] = s;
        }
        size_t k = bytes - done < (int64_t)chunk ? (size_t)(bytes - done) : chunk;
        if (write(fd, b, k) != (ssize_t)k)
            rc = -1;
    }
    free(b);
    close(fd);
    if (rc == 0)
        *made = bytes;
    return rc;
}

/* One file per request: an upload is a batch of one fd source, a download
 * goes to the fd sink set in `down`. */
static envd_status start_move(envd_client *c, const char *path, int fd, int64_t size,
                              const envd_files_opts *down, const envd_files_opts *up,
                              envd_future **f)
{
    if (down)
        return envd_files_read_async(c, path, down, f);
    envd_write_batch *b = envd_write_batch_new();
    envd_status st = b ? envd_write_batch_add_fd(b, path, fd, size) : ENVD_E_NOMEM;
    if (st == ENVD_OK)
        st = envd_files_write_batch_async(c, b, up, f);
    envd_write_batch_free(b);
    return st;
}

/* Moves n files (one source file to n paths, or n paths to /dev/null) with
 * at most `conc` in flight. Returns the bytes moved; counts failures. */
static int64_t move_files(envd_client *c, const bench_env *env, const fcase *fc, const char *who,
                          int n, int conc, uint64_t *errors, char *why, size_t why_len)
{
    int64_t size = case_bytes(fc);
    char src[512];
    local_src(env, fc->big, src, sizeof src);
    int devnull = fc->upload ? -1 : open("/dev/null", O_WRONLY | O_CLOEXEC);
    envd_future **fs = calloc((size_t)conc, sizeof(*fs));
    int *fds = calloc((size_t)conc, sizeof(int));
    envd_files_opts *down = fc->upload ? NULL : envd_files_opts_new();
    envd_files_opts *up = fc->parts ? envd_files_opts_new() : NULL;
    if (up) /* every part at least 1 MiB */
        envd_files_opts_set_parallel(up, fc->parts, (int64_t)1 << 20);
    int64_t moved = 0;
    int next = 0, active = 0;
    if (!fs || !fds || (!fc->upload && (devnull < 0 || !down ||
                                        envd_files_opts_set_sink_fd(down, devnull) != ENVD_OK))) {
        snprintf(why, why_len, "out of memory or no /dev/null");
        *errors += (uint64_t)n;
        n = 0;
    }
    while (next < n || active > 0) {
        while (active < conc && next < n) {
            char path[256];
            remote_path(fc->upload ? who : "src", fc, next++, path, sizeof path);
            envd_future *f = NULL;
            envd_status st;
            int fd = -1;
            if (fc->upload) {
                fd = open(src, O_RDONLY | O_CLOEXEC);
                st = fd < 0 ? ENVD_E_IO : start_move(c, path, fd, size, NULL, up, &f);
            } else {
                st = start_move(c, path, -1, size, down, NULL, &f);
            }
            if (st != ENVD_OK) {
                if (fd >= 0)
                    close(fd);
                (*errors)++;
                snprintf(why, why_len, "%s: %s", path, envd_strerror(st));
                continue;
            }
            fs[active] = f;
            fds[active] = fd;
            active++;
        }
        if (active == 0)
            break;
        size_t idx = 0;
        envd_future_wait_any(fs, (size_t)active, -1, &idx);
        envd_future *f = fs[idx];
        if (envd_future_status(f) == ENVD_OK && envd_future_transferred(f) == size) {
            moved += size;
        } else {
            (*errors)++;
            const envd_error *e = envd_future_error(f);
            snprintf(why, why_len, "%s", e ? envd_error_message(e) : "short transfer");
        }
        envd_future_free(f);
        if (fds[idx] >= 0)
            close(fds[idx]);
        active--;
        fs[idx] = fs[active];
        fds[idx] = fds[active];
    }
    if (devnull >= 0)
        close(devnull);
    envd_files_opts_free(down);
    envd_files_opts_free(up);
    free(fs);
    free(fds);
    return moved;
}

/* The server's download sources, uploaded once (not measured). */
static int make_remote(bench_env *env, const fcase *fc, char *why, size_t why_len)
{
    int64_t size = case_bytes(fc);
    int n = case_files(fc);
    if (fc->big ? g_made.remote_big == size
                : (g_made.remote_small == size && g_made.remote_small_n >= n))
        return 0;
    if (make_local(env, fc->big, size) != 0) {
        snprintf(why, why_len, "cannot write the local source: %s", strerror(errno));
        return -1;
    }
    envd_runtime *rt = bench_runtime_new(env, 64);
    envd_client *c = rt ? bench_client_new(env, rt, BT_CONNECT_H1, 600000) : NULL;
    int rc = -1;
    if (c && make_dirs(c, "src", fc) == 0) {
        fcase up = {1, fc->big, 0};
        uint64_t errors = 0;
        move_files(c, env, &up, "src", n, 16, &errors, why, why_len);
        rc = errors ? -1 : 0;
    }
    envd_client_free(c);
    envd_runtime_free(rt);
    if (rc == 0) {
        if (fc->big) {
            g_made.remote_big = size;
        } else {
            g_made.remote_small = size;
            g_made.remote_small_n = n;
        }
    }
    return rc;
}

static int prepare(bench_env *env, const fcase *fc, bench_result *out)
{
    int rc = fc->upload ? make_local(env, fc->big, case_bytes(fc))
                        : make_remote(env, fc, out->note, sizeof out->note);
    if (rc != 0) {
        out->skipped = 1;
        if (!out->note[0])
            snprintf(out->note, sizeof out->note, "cannot prepare the files: %s", strerror(errno));
    }
    return rc;
}

/* Before each measured case: the previous case's (or the setup's) writes
 * are still being flushed to disk on a local server, which would slow
 * whichever client runs next. Flush them first. */
static void settle(void)
{
    sync();
}

static void finish_result(bench_result *out, const fcase *fc, int64_t moved, double seconds,
                          const struct rusage *ru0, const struct rusage *ru1, uint64_t errors,
                          const char *why)
{
    int64_t size = case_bytes(fc);
    out->files = (long)case_files(fc);
    out->parts = fc->parts;
    out->file_bytes = size;
    out->calls = size ? (uint64_t)(moved / size) : 0;
    out->errors = errors;
    out->seconds = seconds;
    out->bytes_per_s = seconds > 0 ? (double)moved / seconds : 0;
    out->cpu_user_us = (double)(ru1->ru_utime.tv_sec - ru0->ru_utime.tv_sec) * 1e6 +
                       (double)(ru1->ru_utime.tv_usec - ru0->ru_utime.tv_usec);
    out->cpu_sys_us = (double)(ru1->ru_stime.tv_sec - ru0->ru_stime.tv_sec) * 1e6 +
                      (double)(ru1->ru_stime.tv_usec - ru0->ru_stime.tv_usec);
    out->cpu_us = out->cpu_user_us + out->cpu_sys_us;
    if (out->calls) {
        out->mean_us = seconds * 1e6 / (double)out->calls;
    }
    char size_txt[32];
    if (size >= ((int64_t)1 << 30))
        snprintf(size_txt, sizeof size_txt, "%lld GiB", (long long)(size >> 30));
    else
        snprintf(size_txt, sizeof size_txt, "%lld MiB", (long long)(size >> 20));
    double gb = (double)moved / 1e9;
    char parts_txt[32] = "";
    if (fc->parts)
        snprintf(parts_txt, sizeof parts_txt, " in %d parts", fc->parts);
    snprintf(out->note, sizeof out->note,
             "%s %s x %ld%s: %.1f MB/s, client CPU %.3f s per GB (user %.3f, sys %.3f), peak RSS "
             "%.1f MiB%s%s",
             fc->upload ? "upload" : "download", size_txt, out->files, parts_txt,
             out->bytes_per_s / 1e6,
             gb > 0 ? out->cpu_us / 1e6 / gb : 0, gb > 0 ? out->cpu_user_us / 1e6 / gb : 0,
             gb > 0 ? out->cpu_sys_us / 1e6 / gb : 0, (double)out->peak_rss_kib / 1024.0,
             errors ? "; last error: " : "", errors ? why : "");
}

/* ------------------------------------------------------------ libenvd */

static int lib_run(bench_env *env, const fcase *fc, int transport, int conc, bench_result *out)
{
    if (prepare(env, fc, out) != 0)
        return -1;
    if (transport == BT_CONNECT_TLS && bench_tls_gateway(env) != 0) {
        out->skipped = 1;
        snprintf(out->note, sizeof out->note, "the nginx TLS gateway did not start");
        return -1;
    }
    envd_runtime *rt = bench_runtime_new(env, conc + 16);
    envd_client *c = rt ? bench_client_new(env, rt, transport, 600000) : NULL;
    /* Over https a Connect call first: libcurl carries the first calls to
     * a host until it has seen it choose h2 (the warm-up of the other
     * scenarios). make_dirs is one; a download makes one of its own. */
    envd_entry_info *warm = NULL;
    if (c && transport == BT_CONNECT_TLS && !fc->upload)
        envd_fs_get_info(c, "/", &warm, NULL);
    envd_entry_info_free(warm);
    if (!c || (fc->upload && make_dirs(c, fc->parts ? "parts" : "libenvd", fc) != 0)) {
        out->skipped = 1;
        snprintf(out->note, sizeof out->note, "setup failed (runtime/client/directory)");
        envd_client_free(c);
        envd_runtime_free(rt);
        return -1;
    }
    int n = case_files(fc);
    char why[512] = "";
    uint64_t errors = 0;
    struct rusage ru0, ru1;
    settle();
    bench_self_reset_hwm();
    double srv0 = bench_server_cpu_us(env);
    getrusage(RUSAGE_SELF, &ru0);
    uint64_t t0 = bench_now_ns();
    int64_t moved = move_files(c, env, fc, fc->parts ? "parts" : "libenvd", n, conc, &errors, why,
                               sizeof why);
    uint64_t t1 = bench_now_ns();
    getrusage(RUSAGE_SELF, &ru1);
    double srv1 = bench_server_cpu_us(env);
    out->peak_rss_kib = bench_self_hwm_kib();
    out->connections = -1;
    if (srv0 >= 0 && srv1 >= 0)
        out->server_cpu_us = srv1 - srv0;
    finish_result(out, fc, moved, (double)(t1 - t0) / 1e9, &ru0, &ru1, errors, why);
    envd_client_free(c);
    envd_runtime_free(rt);
    return errors ? -1 : 0;
}

int bench_files_upload_small_run(bench_env *env, const bench_scenario *sc, int transport,
                                 int concurrency, bench_result *out)
{
    (void)sc;
    fcase fc = {1, 0, 0};
    return lib_run(env, &fc, transport, concurrency, out);
}

int bench_files_upload_big_run(bench_env *env, const bench_scenario *sc, int transport,
                               int concurrency, bench_result *out)
{
    (void)sc;
    fcase fc = {1, 1, 0};
    return lib_run(env, &fc, transport, concurrency, out);
}

int bench_files_upload_parts_run(bench_env *env, const bench_scenario *sc, int transport,
                                 int concurrency, bench_result *out)
{
    (void)sc;
    fcase fc = {1, 1, case_parts()};
    return lib_run(env, &fc, transport, concurrency, out);
}

int bench_files_download_small_run(bench_env *env, const bench_scenario *sc, int transport,
                                   int concurrency, bench_result *out)
{
    (void)sc;
    fcase fc = {0, 0, 0};
    return lib_run(env, &fc, transport, concurrency, out);
}

int bench_files_download_big_run(bench_env *env, const bench_scenario *sc, int transport,
                                 int concurrency, bench_result *out)
{
    (void)sc;
    fcase fc = {0, 1, 0};
    return lib_run(env, &fc, transport, concurrency, out);
}

void bench_files_teardown(bench_env *env)
{
    envd_error *err = NULL;
    envd_fs_remove(env->setup_client, "/bench/files", &err);
    envd_error_free(err);
    memset(&g_made, 0, sizeof g_made);
    char p[512];
    for (int big = 0; big <= 1; big++) {
        local_src(env, big, p, sizeof p);
        unlink(p);
    }
}

/* ------------------------------------------------------------------ curl */

static int fcase_of(const bench_scenario *sc, fcase *fc)
{
    if (sc->run == bench_files_upload_small_run)
        *fc = (fcase){1, 0, 0};
    else if (sc->run == bench_files_upload_big_run)
        *fc = (fcase){1, 1, 0};
    else if (sc->run == bench_files_download_small_run)
        *fc = (fcase){0, 0, 0};
    else if (sc->run == bench_files_download_big_run)
        *fc = (fcase){0, 1, 0};
    else
        return -1;
    return 0;
}

static const char *curl_program(void)
{
    const char *p = getenv("ENVD_BENCH_CURL");
    return p && *p ? p : "curl";
}

static int curl_supports(const bench_env *env, const bench_scenario *sc, int transport)
{
    (void)env;
    fcase fc;
    return fcase_of(sc, &fc) == 0 && transport == BT_CONNECT_H1;
}

/* The config file: one group per transfer, separated by `next`. */
static int write_curl_config(const bench_env *env, const fcase *fc, const char *cfg_path)
{
    FILE *f = fopen(cfg_path, "w");
    if (!f)
        return -1;
    char src[512];
    local_src(env, fc->big, src, sizeof src);
    int n = case_files(fc);
    for (int i = 0; i < n; i++) {
        char path[256];
        remote_path(fc->upload ? "curl" : "src", fc, i, path, sizeof path);
        char *ep = curl_easy_escape(NULL, path, 0);
        if (i)
            fputs("next\n", f);
        fprintf(f, "url = \"http://%s/files?path=%s&username=root\"\n", env->server.addr, ep);
        curl_free(ep);
        fputs("output = \"/dev/null\"\nfail\nheader = \"e2b-sandbox-id: envd-bench\"\n", f);
        if (fc->upload)
            fprintf(f, "form = \"file=@%s\"\nheader = \"Expect:\"\n", src);
    }
    return fclose(f);
}

static int curl_run(bench_env *env, const bench_scenario *sc, int transport, int concurrency,
                    bench_result *out)
{
    (void)transport;
    fcase fc;
    if (fcase_of(sc, &fc) != 0 || prepare(env, &fc, out) != 0)
        return -1;
    if (fc.upload) { /* its destination directory, as for libenvd */
        envd_runtime *rt = bench_runtime_new(env, 16);
        envd_client *c = rt ? bench_client_new(env, rt, BT_CONNECT_H1, 60000) : NULL;
        int ok = c && make_dirs(c, "curl", &fc) == 0;
        envd_client_free(c);
        envd_runtime_free(rt);
        if (!ok) {
            out->skipped = 1;
            snprintf(out->note, sizeof out->note, "cannot make the destination directory");
            return -1;
        }
    }
    char cfg[512], log[512], conc[16];
    snprintf(cfg, sizeof cfg, "%s/curl-files.cfg", env->tmpdir);
    snprintf(log, sizeof log, "%s/curl-files.log", env->tmpdir);
    if (write_curl_config(env, &fc, cfg) != 0) {
        out->skipped = 1;
        snprintf(out->note, sizeof out->note, "cannot write %s", cfg);
        return -1;
    }
    snprintf(conc, sizeof conc, "%d", concurrency);
    const char *argv[12];
    int k = 0;
    argv[k++] = curl_program();
    argv[k++] = "-s";
    argv[k++] = "-S";
    argv[k++] = "-K";
    argv[k++] = cfg;
    if (concurrency > 1) {
        argv[k++] = "--parallel";
        argv[k++] = "--parallel-immediate";
        argv[k++] = "--parallel-max";
        argv[k++] = conc;
    }
    argv[k] = NULL;
    bench_child ch;
    settle();
    double srv0 = bench_server_cpu_us(env);
    uint64_t t0 = bench_now_ns();
    if (bench_spawn(&ch, argv, NULL, log) != 0) {
        out->skipped = 1;
        snprintf(out->note, sizeof out->note, "cannot run %s: %s", argv[0], strerror(errno));
        return -1;
    }
    int status = 0;
    struct rusage ru;
    memset(&ru, 0, sizeof ru);
    bench_wait(&ch, &status, &ru);
    uint64_t t1 = bench_now_ns();
    double srv1 = bench_server_cpu_us(env);
    if (srv0 >= 0 && srv1 >= 0)
        out->server_cpu_us = srv1 - srv0;
    int ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 127) {
        out->skipped = 1;
        snprintf(out->note, sizeof out->note, "%s not found", argv[0]);
        return -1;
    }
    struct rusage zero;
    memset(&zero, 0, sizeof zero);
    out->peak_rss_kib = ru.ru_maxrss;
    int n = case_files(&fc);
    char why[256] = "";
    if (!ok) {
        FILE *lf = fopen(log, "r");
        if (lf) {
            if (!fgets(why, sizeof why, lf))
                why[0] = 0;
            fclose(lf);
        }
        why[strcspn(why, "\n")] = 0;
    }
    finish_result(out, &fc, ok ? (int64_t)n * case_bytes(&fc) : 0, (double)(t1 - t0) / 1e9, &zero,
                  &ru, ok ? 0 : (uint64_t)n, why);
    return ok ? 0 : -1;
}

const bench_client_impl bench_client_curl = {"curl", curl_supports, curl_run};

/* --------------------------------------------------------------- targets */

/* A parallel upload beside the single stream and curl of the same case:
 * figures, not a target (whether it gains depends on the path). */
static void parts_figures(FILE *fp, const bench_result *rs, size_t n, const bench_result *l)
{
    fprintf(fp, "  %s %lld MiB x %ld in %d parts c=%d: %.0f MB/s", l->scenario,
            (long long)(l->file_bytes >> 20), l->files, l->parts, l->concurrency,
            l->bytes_per_s / 1e6);
    for (size_t j = 0; j < n; j++) {
        const bench_result *o = &rs[j];
        if (o->skipped || !o->calls || o->parts || strcmp(o->scenario, l->scenario) != 0 ||
            o->transport != l->transport || o->concurrency != l->concurrency ||
            o->file_bytes != l->file_bytes || o->bytes_per_s <= 0)
            continue;
        fprintf(fp, "; %.0f%% of %s's %.0f MB/s",
                100 * l->bytes_per_s / o->bytes_per_s,
                strcmp(o->client, "libenvd") == 0 ? "one stream" : o->client, o->bytes_per_s / 1e6);
    }
    fprintf(fp, " (figures, not a target)\n");
}

void bench_files_targets(FILE *fp, const bench_result *rs, size_t n, int *met, int *missed)
{
    for (size_t i = 0; i < n; i++) {
        const bench_result *l = &rs[i];
        if (strcmp(l->client, "libenvd") != 0 || l->skipped || l->file_bytes <= 0 || !l->calls)
            continue;
        if (l->parts) {
            parts_figures(fp, rs, n, l);
            continue;
        }
        const bench_result *c = NULL;
        for (size_t j = 0; j < n && !c; j++)
            if (strcmp(rs[j].client, "curl") == 0 && !rs[j].skipped && rs[j].calls &&
                strcmp(rs[j].scenario, l->scenario) == 0 && rs[j].transport == l->transport &&
                rs[j].concurrency == l->concurrency && rs[j].file_bytes == l->file_bytes)
                c = &rs[j];
        char what[64];
        snprintf(what, sizeof what, "%s %lld MiB x %ld", l->scenario,
                 (long long)(l->file_bytes >> 20), l->files);
        if (c) {
            double r = c->bytes_per_s > 0 ? l->bytes_per_s / c->bytes_per_s : 0;
            int ok = r >= 0.9;
            fprintf(fp, "  %-24s c=%-3d %.0f MB/s = %.0f%% of curl's %.0f MB/s (>= 90%%): %s\n",
                    what, l->concurrency, l->bytes_per_s / 1e6, 100 * r, c->bytes_per_s / 1e6,
                    ok ? "met" : "MISSED");
            *met += ok;
            *missed += !ok;
        }
        if (l->file_bytes >= ((int64_t)1 << 30)) {
            int ok = l->peak_rss_kib >= 0 && l->peak_rss_kib <= 32 * 1024;
            fprintf(fp, "  %-24s c=%-3d peak RSS %.1f MiB <= 32 MiB: %s%s\n", what, l->concurrency,
                    (double)l->peak_rss_kib / 1024.0, ok ? "met" : "MISSED",
                    c ? "" : " (no curl figure)");
            if (c)
                fprintf(fp, "  %-24s        (curl's peak RSS %.1f MiB)\n", "",
                        (double)c->peak_rss_kib / 1024.0);
            *met += ok;
            *missed += !ok;
        }
    }
}
