/* POST /files/compose (envd_files_compose) against the reference server,
 * directly and through the nginx gateway. Facts from envd's compose.go
 * (e2b-dev/infra packages/envd/internal/api/compose.go), which the
 * reference server follows and these tests pin down:
 *   - body {"source_paths":[...],"destination":"...","username":"..."};
 *     200 with one EntryInfo object {name, path, type:"file"}, not an array;
 *   - the parts are concatenated in order into
 *     <dest>.e2b-compose.<uuid>.tmp, renamed over dest (an existing file is
 *     replaced), and the sources are deleted afterwards;
 *   - 400 for a source equal to the destination or not a regular file,
 *     404 "source file not found: <src>" (nothing is deleted), 401 for an
 *     unknown user, 500 when the parent cannot be made, 507 on ENOSPC (the
 *     temporary file is removed, the sources stay);
 *   - envd >= 0.5.5 (refused up front when the configured version is older). */
/* fs_test_util.h's disk_path, inlined here, trips GCC's truncation guess. */
#pragma GCC diagnostic ignored "-Wformat-truncation"
#include "fs_test_util.h"

#include <dirent.h>

#define NPARTS 8

typedef test_fx fixture;

static int setup_direct(void **state)
{
    return test_fx_direct(state, NULL);
}

static int setup_gateway(void **state)
{
    return test_fx_gateway(state, "sbx-compose");
}

static int teardown(void **state)
{
    return test_fx_teardown(state);
}

static void expect_error(envd_status st, envd_error *err, envd_status want, int http,
                         const char *text)
{
    if (st != want)
        fail_msg("got %s (%s), want %s", envd_strerror(st), err ? envd_error_message(err) : "-",
                 envd_strerror(want));
    assert_non_null(err);
    if (http)
        assert_int_equal(envd_error_http_status(err), http);
    if (text && !strstr(envd_error_message(err), text))
        fail_msg("message '%s' lacks '%s'", envd_error_message(err), text);
    envd_error_free(err);
}

/* Files in srv->root + vdir whose name holds ".e2b-compose.". */
static int leftover_tmp(const test_server *srv, const char *vdir)
{
    char p[1024];
    DIR *d = opendir(disk_path(srv, vdir, p, sizeof p));
    if (!d)
        return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += strstr(e->d_name, ".e2b-compose.") != NULL;
    closedir(d);
    return n;
}

/* Uploads NPARTS parts of varied sizes (one empty) through the library
 * under dir, naming them in paths[]; returns the SHA-256 of them in order. */
static void upload_parts(fixture *fx, const char *dir, char paths[NPARTS][128], char hex[65],
                         size_t *total)
{
    static const size_t sizes[NPARTS] = {1, 4096, 0, 65537, 300000, 17, 1 << 20, 123457};
    prng r = {.s = 0x1234567u};
    sha s;
    sha_init(&s);
    *total = 0;
    for (int i = 0; i < NPARTS; i++) {
        uint8_t *b = malloc(sizes[i] + 1);
        prng_fill(&r, b, sizes[i]);
        snprintf(paths[i], 128, "%s/part-%d", dir, i);
        envd_error *err = NULL;
        envd_status st = envd_files_write(fx->c, paths[i], b, sizes[i], NULL, NULL, &err);
        assert_envd_ok(st, err);
        sha_update(&s, b, sizes[i]);
        *total += sizes[i];
        free(b);
    }
    sha_final(&s, hex);
}

static void eight_parts_by_hash(void **state)
{
    fixture *fx = *state;
    char paths[NPARTS][128], want[65], got[65];
    size_t total;
    upload_parts(fx, "/compose/parts", paths, want, &total);
    const char *srcs[NPARTS];
    for (int i = 0; i < NPARTS; i++)
        srcs[i] = paths[i];
    /* An existing destination is replaced, not appended to. */
    disk_write(&fx->srv, "/compose/out/whole.bin", "old content", 11);
    envd_write_info *info = NULL;
    envd_error *err = NULL;
    envd_status st =
        envd_files_compose(fx->c, srcs, NPARTS, "/compose/out/whole.bin", NULL, &info, &err);
    assert_envd_ok(st, err);
    assert_non_null(info);
    assert_int_equal(info->count, 1);
    assert_string_equal(info->items[0].path, "/compose/out/whole.bin");
    assert_string_equal(info->items[0].name, "whole.bin");
    assert_string_equal(info->items[0].type, "file");
    envd_write_info_free(info);
    /* Read back through the library, and from the disk. */
    uint8_t *data = NULL;
    size_t len = 0;
    st = envd_files_read(fx->c, "/compose/out/whole.bin", NULL, &data, &len, &err);
    assert_envd_ok(st, err);
    assert_int_equal(len, total);
    sha_of(data, len, got);
    assert_string_equal(got, want);
    free(data);
    data = disk_read(&fx->srv, "/compose/out/whole.bin", &len);
    assert_non_null(data);
    sha_of(data, len, got);
    assert_string_equal(got, want);
    free(data);
    print_message("    8 parts, %zu bytes, sha256 %.16s...\n", total, want);
    for (int i = 0; i < NPARTS; i++)
        if (disk_exists(&fx->srv, paths[i]))
            fail_msg("source %s still exists", paths[i]);
    assert_int_equal(leftover_tmp(&fx->srv, "/compose/out"), 0);
}

/* The async form, a per-call user and relative paths (the user's home),
 * parents of the destination created. */
static void async_user_relative(void **state)
{
    fixture *fx = *state;
    envd_error *err = NULL;
    envd_files_opts *o = envd_files_opts_new();
    assert_int_equal(envd_files_opts_set_user(o, "user"), ENVD_OK);
    const char *parts[] = {"a.txt", "b.txt", "c.txt"};
    const char *text[] = {"alpha,", "beta,", "gamma"};
    for (int i = 0; i < 3; i++) {
        envd_status st = envd_files_write_text(fx->c, parts[i], text[i], o, NULL, &err);
        assert_envd_ok(st, err);
    }
    envd_future *f = NULL;
    assert_int_equal(envd_files_compose_async(fx->c, parts, 3, "deep/er/abc.txt", o, &f), ENVD_OK);
    assert_int_equal(envd_future_wait(f, 20000), ENVD_OK);
    assert_envd_ok(envd_future_status(f), envd_future_error(f));
    const envd_write_info *wi = envd_future_write_info(f);
    assert_non_null(wi);
    assert_int_equal(wi->count, 1);
    assert_string_equal(wi->items[0].path, "/home/user/deep/er/abc.txt");
    envd_future_free(f);
    uint8_t *d = disk_read(&fx->srv, "/home/user/deep/er/abc.txt", NULL);
    assert_non_null(d);
    assert_string_equal((char *)d, "alpha,beta,gamma");
    free(d);
    for (int i = 0; i < 3; i++) {
        char v[64];
        snprintf(v, sizeof v, "/home/user/%s", parts[i]);
        assert_false(disk_exists(&fx->srv, v));
    }
    envd_files_opts_free(o);
}

static void error_statuses(void **state)
{
    fixture *fx = *state;
    envd_error *err = NULL;
    disk_write(&fx->srv, "/errs/one", "1", 1);
    disk_write(&fx->srv, "/errs/two", "2", 1);
    mkdirs(disk_path(&fx->srv, "/errs/adir", (char[1024]){0}, 1024));

    /* 404: a missing source; nothing is deleted or created */
    const char *missing[] = {"/errs/one", "/errs/nope", "/errs/two"};
    envd_status st = envd_files_compose(fx->c, missing, 3, "/errs/out", NULL, NULL, &err);
    expect_error(st, err, ENVD_NOT_FOUND, 404, "source file not found: /errs/nope");
    assert_true(disk_exists(&fx->srv, "/errs/one"));
    assert_true(disk_exists(&fx->srv, "/errs/two"));
    assert_false(disk_exists(&fx->srv, "/errs/out"));

    /* 400: a source that is the destination */
    const char *same[] = {"/errs/one", "/errs/two"};
    st = envd_files_compose(fx->c, same, 2, "/errs/two", NULL, NULL, &err);
    expect_error(st, err, ENVD_INVALID_ARGUMENT, 400, "cannot be the same as destination");

    /* 400: a source that is not a regular file */
    const char *dir[] = {"/errs/one", "/errs/adir"};
    st = envd_files_compose(fx->c, dir, 2, "/errs/out", NULL, NULL, &err);
    expect_error(st, err, ENVD_INVALID_ARGUMENT, 400, "not a regular file: /errs/adir");

    /* 401: an unknown user */
    envd_files_opts *o = envd_files_opts_new();
    envd_files_opts_set_user(o, "nobody-here");
    st = envd_files_compose(fx->c, same, 2, "/errs/out", o, NULL, &err);
    envd_files_opts_free(o);
    expect_error(st, err, ENVD_UNAUTHENTICATED, 401, "nobody-here");

    /* 500: the destination's parent is a regular file */
    st = envd_files_compose(fx->c, same, 2, "/errs/one/out", NULL, NULL, &err);
    expect_error(st, err, ENVD_INTERNAL, 500, "error ensuring directories");
    assert_true(disk_exists(&fx->srv, "/errs/one"));
    assert_true(disk_exists(&fx->srv, "/errs/two"));

    /* Refused before anything is sent. */
    const char *empty[] = {"/errs/one", ""};
    assert_int_equal(envd_files_compose(fx->c, same, 0, "/errs/out", NULL, NULL, &err),
                     ENVD_E_USAGE);
    expect_error(ENVD_E_USAGE, err, ENVD_E_USAGE, 0, "no sources");
    assert_int_equal(envd_files_compose(fx->c, same, 2, NULL, NULL, NULL, &err), ENVD_E_USAGE);
    expect_error(ENVD_E_USAGE, err, ENVD_E_USAGE, 0, "destination is NULL");
    assert_int_equal(envd_files_compose(fx->c, empty, 2, "/errs/out", NULL, NULL, &err),
                     ENVD_E_USAGE);
    expect_error(ENVD_E_USAGE, err, ENVD_E_USAGE, 0, "sources[1] is empty");
    envd_future *f = (envd_future *)1;
    assert_int_equal(envd_files_compose_async(NULL, same, 2, "/x", NULL, &f), ENVD_E_USAGE);
    assert_null(f);
}

/* 507: the destination on a 64 KiB tmpfs, 192 KiB of sources beside it. */
static void disk_full(void **state)
{
    fixture *fx = *state;
    char p[1024];
    disk_path(&fx->srv, "/cfull", p, sizeof p);
    mkdirs(p);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "mount -t tmpfs -o size=64k tmpfs '%s' 2>/dev/null", p);
    if (system(cmd) != 0) {
        print_message("    (cannot mount a tmpfs here: no ENOSPC to provoke)\n");
        skip();
    }
    size_t len = (size_t)96 << 10;
    uint8_t *b = calloc(1, len);
    disk_write(&fx->srv, "/cparts/x", b, len);
    disk_write(&fx->srv, "/cparts/y", b, len);
    free(b);
    const char *srcs[] = {"/cparts/x", "/cparts/y"};
    envd_error *err = NULL;
    envd_status st = envd_files_compose(fx->c, srcs, 2, "/cfull/big.bin", NULL, NULL, &err);
    int left = leftover_tmp(&fx->srv, "/cfull");
    snprintf(cmd, sizeof cmd, "umount '%s'", p);
    if (system(cmd) != 0)
        print_message("    (umount failed)\n");
    expect_error(st, err, ENVD_E_NO_SPACE, 507, "not enough disk space");
    assert_int_equal(left, 0);
    assert_true(disk_exists(&fx->srv, "/cparts/x"));
    assert_true(disk_exists(&fx->srv, "/cparts/y"));
}

/* envd before 0.5.5 has no /files/compose: refused at start, naming both. */
static void version_gate(void **state)
{
    fixture *fx = *state;
    envd_config *cfg = envd_config_new();
    envd_config_set_domain(cfg, fx->srv.addr);
    envd_config_set_transport(cfg, ENVD_TRANSPORT_CONNECT);
    const char *v[] = {"0.5.4", "0.5.5"};
    disk_write(&fx->srv, "/gate/a", "a", 1);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(envd_config_set_envd_version(cfg, v[i]), ENVD_OK);
        envd_client *c = NULL;
        envd_error *err = NULL;
        assert_int_equal(envd_client_new(fx->rt, "", cfg, &c, &err), ENVD_OK);
        const char *srcs[] = {"/gate/a"};
        envd_status st = envd_files_compose(c, srcs, 1, "/gate/b", NULL, NULL, &err);
        if (i == 0)
            expect_error(st, err, ENVD_UNIMPLEMENTED, 0, "needs envd 0.5.5 or later; the sandbox runs 0.5.4");
        else
            assert_envd_ok(st, err);
        envd_client_free(c);
    }
    assert_true(disk_exists(&fx->srv, "/gate/b"));
    envd_config_free(cfg);
}

int main(void)
{
    if (getenv("ENVD_TEST_FILTER"))
        cmocka_set_test_filter(getenv("ENVD_TEST_FILTER"));
    const struct CMUnitTest direct[] = {
        cmocka_unit_test(eight_parts_by_hash), cmocka_unit_test(async_user_relative),
        cmocka_unit_test(error_statuses),      cmocka_unit_test(disk_full),
        cmocka_unit_test(version_gate),
    };
    const struct CMUnitTest gateway[] = {
        cmocka_unit_test(eight_parts_by_hash),
        cmocka_unit_test(error_statuses),
    };
    int failed = cmocka_run_group_tests_name("compose, direct", direct, setup_direct, teardown);
    failed += cmocka_run_group_tests_name("compose, through the gateway", gateway, setup_gateway,
                                          teardown);
    return failed;
}
