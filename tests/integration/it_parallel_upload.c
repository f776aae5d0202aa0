/* Parallel uploads (envd_files_opts_set_parallel) against the reference
 * server: parts uploaded at once to "<dest>.envd-part.<hex>.<i>" and
 * composed by /files/compose; directly, and through the nginx gateway,
 * whose access log counts the requests and connections. */
/* fs_test_util.h's disk_path, inlined here, trips GCC's truncation guess. */
#pragma GCC diagnostic ignored "-Wformat-truncation"
#include "fs_test_util.h"

#include <dirent.h>
#include <pthread.h>

typedef test_fx fixture;

static int setup_direct(void **state)
{
    return test_fx_direct(state, NULL);
}

static int setup_gateway(void **state)
{
    return test_fx_gateway(state, "sbx-parts");
}

static int teardown(void **state)
{
    return test_fx_teardown(state);
}

/* Names in srv->root + vdir holding ".envd-part." (parts left behind). */
static int leftover_parts(const test_server *srv, const char *vdir)
{
    char p[1024];
    DIR *d = opendir(disk_path(srv, vdir, p, sizeof p));
    if (!d)
        return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strstr(e->d_name, ".envd-part.")) {
            print_message("    left behind: %s/%s\n", vdir, e->d_name);
            n++;
        }
    closedir(d);
    return n;
}

static envd_files_opts *parallel_opts(int parts, int64_t min_part)
{
    envd_files_opts *o = envd_files_opts_new();
    assert_non_null(o);
    assert_int_equal(envd_files_opts_set_parallel(o, parts, min_part), ENVD_OK);
    return o;
}

static envd_status write_async(envd_client *c, const char *path,
                                                   const void *data, size_t len,
                                                   const envd_files_opts *o, envd_future **f)
{
    envd_write_batch *wb = envd_write_batch_new();
    envd_status st = envd_write_batch_add(wb, path, data, len);
    if (st == ENVD_OK)
        st = envd_files_write_batch_async(c, wb, o, f);
    envd_write_batch_free(wb);
    return st;
}

static uint8_t *random_bytes(size_t n, uint32_t seed, char hex[65])
{
    uint8_t *b = malloc(n);
    assert_non_null(b);
    prng r = {.s = seed};
    prng_fill(&r, b, n);
    sha_of(b, n, hex);
    return b;
}

static void expect_disk_sha(const test_server *srv, const char *vpath, size_t want_len,
                            const char *want)
{
    size_t len = 0;
    uint8_t *d = disk_read(srv, vpath, &len);
    assert_non_null(d);
    assert_int_equal(len, want_len);
    char got[65];
    sha_of(d, len, got);
    assert_string_equal(got, want);
    free(d);
}

typedef struct progress_sum {
    int64_t last, total;
    int calls;
} progress_sum;

static void on_progress(void *ud, int64_t done, int64_t total)
{
    progress_sum *p = ud;
    if (done < p->last)
        p->last = -1; /* never goes back */
    else if (p->last >= 0)
        p->last = done;
    p->total = total;
    p->calls++;
}

/* 5 MiB + 3 bytes from memory in 16 parts into a new directory; SHA-256 of
 * the file on the server's disk; no part left; progress sums to the size. */
static void memory_many_parts(void **state)
{
    fixture *fx = *state;
    size_t n = ((size_t)5 << 20) + 3;
    char want[65];
    uint8_t *b = random_bytes(n, 0xC0FFEEu, want);
    envd_files_opts *o = parallel_opts(16, 256 << 10);
    progress_sum ps = {0, 0, 0};
    envd_files_opts_on_progress(o, on_progress, &ps);
    envd_future *f = NULL;
    envd_write_batch *wb = envd_write_batch_new();
    assert_int_equal(envd_write_batch_add(wb, "/pup/new/dir/mem.bin", b, n), ENVD_OK);
    assert_int_equal(envd_files_write_batch_async(fx->c, wb, o, &f), ENVD_OK);
    envd_write_batch_free(wb);
    assert_int_equal(envd_future_wait(f, 60000), ENVD_OK);
    assert_envd_ok(envd_future_status(f), envd_future_error(f));
    const envd_write_info *wi = envd_future_write_info(f);
    assert_non_null(wi);
    assert_int_equal(wi->count, 1);
    assert_string_equal(wi->items[0].path, "/pup/new/dir/mem.bin");
    assert_string_equal(wi->items[0].name, "mem.bin");
    assert_int_equal(envd_future_transferred(f), (int64_t)n);
    envd_future_free(f);
    expect_disk_sha(&fx->srv, "/pup/new/dir/mem.bin", n, want);
    assert_int_equal(leftover_parts(&fx->srv, "/pup/new/dir"), 0);
    assert_int_equal(ps.last, (int64_t)n);
    assert_int_equal(ps.total, (int64_t)n);
    print_message("    %zu bytes in 16 parts, sha256 %.16s..., %d progress calls\n", n, want,
                  ps.calls);
    free(b);
    envd_files_opts_free(o);
}

/* A regular file's fd read from its current offset (pread: the offset does
 * not move), the blocking form, a relative destination (the user's home),
 * an existing destination replaced. */
static void fd_source_relative(void **state)
{
    fixture *fx = *state;
    size_t n = (size_t)3 << 20, skip = 1000;
    char want[65];
    uint8_t *b = random_bytes(n + skip, 0xBEEFu, want);
    sha_of(b + skip, n, want);
    char tmpl[] = "/tmp/it_pup_XXXXXX";
    int fd = mkstemp(tmpl);
    assert_true(fd >= 0);
    unlink(tmpl);
    assert_int_equal(write(fd, b, n + skip), (ssize_t)(n + skip));
    assert_int_equal(lseek(fd, (off_t)skip, SEEK_SET), (off_t)skip);
    disk_write(&fx->srv, "/root/rel/fd.bin", "old", 3);
    envd_files_opts *o = parallel_opts(7, 100000);
    envd_write_batch *wb = envd_write_batch_new();
    assert_int_equal(envd_write_batch_add_fd(wb, "rel/fd.bin", fd, -1), ENVD_OK);
    envd_write_info *info = NULL;
    envd_error *err = NULL;
    envd_status st = envd_files_write_batch(fx->c, wb, o, &info, &err);
    assert_envd_ok(st, err);
    assert_non_null(info);
    assert_string_equal(info->items[0].path, "/root/rel/fd.bin");
    envd_write_info_free(info);
    assert_int_equal(lseek(fd, 0, SEEK_CUR), (off_t)skip);
    expect_disk_sha(&fx->srv, "/root/rel/fd.bin", n, want);
    assert_int_equal(leftover_parts(&fx->srv, "/root/rel"), 0);
    envd_write_batch_free(wb);
    envd_files_opts_free(o);
    close(fd);
    free(b);
}

/* The compose fails (the destination is a directory): the parts, all
 * uploaded, are removed and the error names the step. */
static void compose_failure_cleans_up(void **state)
{
    fixture *fx = *state;
    char p[1024];
    mkdirs(disk_path(&fx->srv, "/pfail/dest.bin/inside", p, sizeof p));
    char want[65];
    size_t n = (size_t)1 << 20;
    uint8_t *b = random_bytes(n, 7, want);
    envd_files_opts *o = parallel_opts(8, 64 << 10);
    envd_error *err = NULL;
    envd_status st = envd_files_write(fx->c, "/pfail/dest.bin", b, n, o, NULL, &err);
    assert_int_not_equal(st, ENVD_OK);
    assert_non_null(err);
    print_message("    %s\n", envd_error_message(err));
    assert_non_null(strstr(envd_error_message(err), "parallel upload of /pfail/dest.bin"));
    assert_non_null(strstr(envd_error_message(err), "composing the parts"));
    assert_int_equal(envd_error_http_status(err), 500);
    envd_error_free(err);
    assert_int_equal(leftover_parts(&fx->srv, "/pfail"), 0);
    envd_files_opts_free(o);
    free(b);
}

/* Parts that fail on the server (ENOSPC on a 1 MiB tmpfs, after some were
 * written): the whole fails with 507, no part stays. */
static void part_failure_cleans_up(void **state)
{
    fixture *fx = *state;
    char p[1024];
    disk_path(&fx->srv, "/pfull", p, sizeof p);
    mkdirs(p);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "mount -t tmpfs -o size=1m tmpfs '%s' 2>/dev/null", p);
    if (system(cmd) != 0) {
        print_message("    (cannot mount a tmpfs here: no ENOSPC to provoke)\n");
        skip();
    }
    char want[65];
    size_t n = (size_t)4 << 20;
    uint8_t *b = random_bytes(n, 9, want);
    envd_files_opts *o = parallel_opts(8, 64 << 10);
    envd_error *err = NULL;
    envd_status st = envd_files_write(fx->c, "/pfull/x.bin", b, n, o, NULL, &err);
    int left = leftover_parts(&fx->srv, "/pfull");
    int dest = disk_exists(&fx->srv, "/pfull/x.bin");
    snprintf(cmd, sizeof cmd, "umount '%s'", p);
    if (system(cmd) != 0)
        print_message("    (umount failed)\n");
    assert_int_equal(st, ENVD_E_NO_SPACE);
    print_message("    %s\n", envd_error_message(err));
    assert_non_null(strstr(envd_error_message(err), "parallel upload of /pfull/x.bin: part "));
    assert_int_equal(envd_error_http_status(err), 507);
    envd_error_free(err);
    assert_int_equal(left, 0);
    assert_false(dest);
    envd_files_opts_free(o);
    free(b);
}

/* Every part refused (an unknown user, 401), at the root (no MakeDir). */
static void unknown_user(void **state)
{
    fixture *fx = *state;
    uint8_t b[4096] = {1};
    envd_files_opts *o = parallel_opts(4, 1024);
    envd_files_opts_set_user(o, "nobody-here");
    envd_error *err = NULL;
    envd_status st = envd_files_write(fx->c, "/who.bin", b, sizeof b, o, NULL, &err);
    assert_int_equal(st, ENVD_UNAUTHENTICATED);
    assert_non_null(strstr(envd_error_message(err), "parallel upload of /who.bin: part "));
    assert_non_null(strstr(envd_error_message(err), "nobody-here"));
    envd_error_free(err);
    assert_false(disk_exists(&fx->srv, "/who.bin"));
    assert_int_equal(leftover_parts(&fx->srv, "/"), 0);
    envd_files_opts_free(o);
}

/* A progress callback that holds the I/O thread at its first call until the
 * test has acted (cancelled, or let the deadline pass). */
typedef struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int reached, released;
} gate;

static void gate_progress(void *ud, int64_t done, int64_t total)
{
    (void)done, (void)total;
    gate *g = ud;
    pthread_mutex_lock(&g->mu);
    if (!g->reached) {
        g->reached = 1;
        pthread_cond_broadcast(&g->cv);
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 10;
        while (!g->released)
            if (pthread_cond_timedwait(&g->cv, &g->mu, &until) != 0)
                break;
    }
    pthread_mutex_unlock(&g->mu);
}

static void gate_wait_reached(gate *g)
{
    pthread_mutex_lock(&g->mu);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 20;
    while (!g->reached)
        if (pthread_cond_timedwait(&g->cv, &g->mu, &until) != 0)
            fail_msg("no progress within 20 s");
    pthread_mutex_unlock(&g->mu);
}

static void gate_release(gate *g)
{
    pthread_mutex_lock(&g->mu);
    g->released = 1;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

/* stop: 0 cancel the future, 1 let a 200 ms deadline pass. */
static void stopped_mid_upload(fixture *fx, int deadline, const char *dest, const char *dir)
{
    size_t n = (size_t)16 << 20;
    char want[65];
    uint8_t *b = random_bytes(n, 11, want);
    gate g = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};
    envd_files_opts *o = parallel_opts(8, 1 << 20);
    envd_files_opts_on_progress(o, gate_progress, &g);
    if (deadline)
        envd_files_opts_set_timeout_ms(o, 200);
    envd_future *f = NULL;
    envd_write_batch *wb = envd_write_batch_new();
    assert_int_equal(envd_write_batch_add(wb, dest, b, n), ENVD_OK);
    assert_int_equal(envd_files_write_batch_async(fx->c, wb, o, &f), ENVD_OK);
    gate_wait_reached(&g);
    if (deadline)
        usleep(400 * 1000);
    else
        envd_future_cancel(f);
    gate_release(&g);
    assert_int_equal(envd_future_wait(f, 30000), ENVD_OK);
    envd_status want_st = deadline ? ENVD_DEADLINE_EXCEEDED : ENVD_CANCELED;
    if (envd_future_status(f) != want_st)
        fail_msg("got %s (%s), want %s", envd_strerror(envd_future_status(f)),
                 envd_future_error(f) ? envd_error_message(envd_future_error(f)) : "-",
                 envd_strerror(want_st));
    print_message("    %s\n", envd_error_message(envd_future_error(f)));
    assert_non_null(strstr(envd_error_message(envd_future_error(f)), "parallel upload of"));
    envd_future_free(f);
    envd_write_batch_free(wb);
    assert_false(disk_exists(&fx->srv, dest));
    assert_int_equal(leftover_parts(&fx->srv, dir), 0);
    envd_files_opts_free(o);
    free(b);
}

static void cancel_mid_upload(void **state)
{
    stopped_mid_upload(*state, 0, "/pcancel/c.bin", "/pcancel");
}

static void deadline_mid_upload(void **state)
{
    stopped_mid_upload(*state, 1, "/pdeadline/d.bin", "/pdeadline");
}

/* The runtime freed while the parts are on the wire (its own runtime and
 * client, over gRPC so that the cleanup's Removes meet an engine still
 * running): the future completes, nothing hangs or leaks (ASan). */
static void runtime_freed_mid_upload(void **state)
{
    (void)state;
    test_server srv; /* gRPC needs HTTP/2 */
    assert_int_equal(test_server_start(&srv, "both", NULL), 0);
    envd_runtime *rt = NULL;
    assert_int_equal(envd_runtime_new(NULL, &rt), ENVD_OK);
    envd_client *c = test_client(rt, &srv, ENVD_TRANSPORT_GRPC, NULL);
    assert_non_null(c);
    size_t n = (size_t)16 << 20;
    char want[65];
    uint8_t *b = random_bytes(n, 13, want);
    gate g = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};
    envd_files_opts *o = parallel_opts(8, 1 << 20);
    envd_files_opts_on_progress(o, gate_progress, &g);
    envd_future *f = NULL;
    assert_int_equal(write_async(c, "/pfree/f.bin", b, n, o, &f), ENVD_OK);
    gate_wait_reached(&g);
    gate_release(&g);
    envd_client_free(c);
    assert_int_equal(envd_runtime_free(rt), ENVD_OK);
    assert_true(envd_future_done(f));
    print_message("    %s\n", envd_future_error(f) ? envd_error_message(envd_future_error(f))
                                                     : "completed before the runtime went");
    envd_future_free(f);
    envd_files_opts_free(o);
    free(b);
    test_server_stop(&srv);
}

static void setter(void **state)
{
    (void)state;
    envd_files_opts *o = envd_files_opts_new();
    assert_int_equal(envd_files_opts_set_parallel(NULL, 4, 1), ENVD_E_USAGE);
    assert_int_equal(envd_files_opts_set_parallel(o, -1, 1), ENVD_INVALID_ARGUMENT);
    assert_int_equal(envd_files_opts_set_parallel(o, ENVD_FILES_MAX_PARTS + 1, 1),
                     ENVD_INVALID_ARGUMENT);
    assert_int_equal(envd_files_opts_set_parallel(o, 4, 0), ENVD_INVALID_ARGUMENT);
    assert_int_equal(envd_files_opts_set_parallel(o, ENVD_FILES_MAX_PARTS, 1), ENVD_OK);
    assert_int_equal(envd_files_opts_set_parallel(o, 0, 1), ENVD_OK);
    envd_files_opts_free(o);
}

/* Through the gateway: its log counts the requests. version: the client's
 * configured envd version (NULL: unknown). */
static int requests_for_upload(fixture *fx, const char *version, size_t n, int parts,
                               int64_t min_part, const char *dest, int *conns)
{
    envd_config *cfg = envd_config_new();
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", fx->gw.h1_port);
    envd_config_set_domain(cfg, addr);
    envd_config_set_transport(cfg, ENVD_TRANSPORT_CONNECT);
    if (version)
        assert_int_equal(envd_config_set_envd_version(cfg, version), ENVD_OK);
    envd_client *c = NULL;
    envd_error *err = NULL;
    assert_int_equal(envd_client_new(fx->rt, "sbx-parts", cfg, &c, &err), ENVD_OK);
    char want[65];
    uint8_t *b = random_bytes(n, 5, want);
    envd_files_opts *o = parallel_opts(parts, min_part);
    long off = test_gateway_log_size(&fx->gw);
    envd_status st = envd_files_write(c, dest, b, n, o, NULL, &err);
    assert_envd_ok(st, err);
    int want_reqs = 1;
    if (!version && (int64_t)n >= 2 * min_part)
        want_reqs = 2 + parts; /* MakeDir, the parts, compose */
    int got = test_gateway_wait_requests(&fx->gw, off, fx->gw.h1_port, "sbx-parts", 200, want_reqs);
    *conns = test_gateway_connections(&fx->gw, off, fx->gw.h1_port);
    expect_disk_sha(&fx->srv, dest, n, want);
    envd_files_opts_free(o);
    envd_client_free(c);
    envd_config_free(cfg);
    free(b);
    return got;
}

static void gateway_counts(void **state)
{
    fixture *fx = *state;
    int conns = 0;
    /* 8 parts over several connections: MakeDir + 8 + compose. */
    int n = requests_for_upload(fx, NULL, (size_t)2 << 20, 8, 128 << 10, "/gw/a/par.bin", &conns);
    print_message("    parallel: %d requests over %d connections\n", n, conns);
    assert_int_equal(n, 10);
    assert_true(conns > 1);
    assert_int_equal(leftover_parts(&fx->srv, "/gw/a"), 0);
    /* envd 0.5.4 has no compose: one upload. */
    n = requests_for_upload(fx, "0.5.4", (size_t)2 << 20, 8, 128 << 10, "/gw/b/old.bin", &conns);
    print_message("    envd 0.5.4: %d request\n", n);
    assert_int_equal(n, 1);
    /* Smaller than two parts: one upload. */
    n = requests_for_upload(fx, NULL, 200 << 10, 8, 128 << 10, "/gw/c/small.bin", &conns);
    assert_int_equal(n, 1);
}

int main(void)
{
    if (getenv("ENVD_TEST_FILTER"))
        cmocka_set_test_filter(getenv("ENVD_TEST_FILTER"));
    const struct CMUnitTest direct[] = {
        cmocka_unit_test(setter),
        cmocka_unit_test(memory_many_parts),
        cmocka_unit_test(fd_source_relative),
        cmocka_unit_test(compose_failure_cleans_up),
        cmocka_unit_test(part_failure_cleans_up),
        cmocka_unit_test(unknown_user),
        cmocka_unit_test(cancel_mid_upload),
        cmocka_unit_test(deadline_mid_upload),
        cmocka_unit_test(runtime_freed_mid_upload),
    };
    const struct CMUnitTest gateway[] = {
        cmocka_unit_test(gateway_counts),
        cmocka_unit_test(memory_many_parts),
    };
    int failed = cmocka_run_group_tests_name("parallel upload, direct", direct, setup_direct,
                                             teardown);
    failed += cmocka_run_group_tests_name("parallel upload, through the gateway", gateway,
                                          setup_gateway, teardown);
    return failed;
}
