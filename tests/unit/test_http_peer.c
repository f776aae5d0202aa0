/* /files over the libcurl engine against the reference server: uploads and
 * downloads streamed through callbacks with flat memory, chunked and gzip
 * uploads, multipart with two parts, error statuses, cancellation. Uses
 * ENVD_TEST_H1_ADDR and ENVD_TEST_ROOT when set, else starts the reference
 * server itself; fails when neither works. */
#include "curl_test_util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>

#include <cmocka.h>

static envd_curl_engine *g_eng;
static peer_proc g_peer; /* started when ENVD_TEST_H1_ADDR is unset */
static test_ep g_ep;

static int setup(void **state)
{
    (void)state;
    if (peer_ensure(&g_peer) != 0)
        return -1;
    if (envd_curl_engine_new(NULL, NULL, &g_eng) != ENVD_OK)
        return -1;
    if (peer_addr())
        test_ep_init(&g_ep, peer_addr());
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    envd_curl_engine_free(g_eng);
    peer_stop(&g_peer);
    return 0;
}

/* ---- memory ------------------------------------------------------------------- */

static long rss_kb(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, res = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &res) != 2)
            res = 0;
        fclose(f);
    }
    return res * (sysconf(_SC_PAGESIZE) / 1024);
}

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define CHECK_RSS 0
#else
#define CHECK_RSS 1
#endif

/* ---- a deterministic byte source, read and verified in pieces --------------- */

typedef struct gen {
    uint64_t state;
    uint64_t pos, size; /* size: UINT64_MAX until the caller stops */
    int compressible;   /* text-like data for gzip */
    int fail_at;        /* >0: fail the read after this many calls */
    int calls;
    long rss_base, rss_peak;
} gen;

static uint8_t gen_byte(gen *g)
{
    g->state = g->state * 6364136223846793005ULL + 1442695040888963407ULL;
    if (g->compressible)
        return (uint8_t)("abcdefgh \n"[(g->state >> 33) % 10]);
    return (uint8_t)(g->state >> 56);
}

static void gen_init(gen *g, uint64_t seed, uint64_t size, int compressible)
{
    memset(g, 0, sizeof *g);
    g->state = seed;
    g->size = size;
    g->compressible = compressible;
    g->rss_base = rss_kb();
}

static void gen_sample_rss(gen *g)
{
    if ((g->pos & ((1u << 20) - 1)) < 65536) {
        long r = rss_kb();
        if (r > g->rss_peak)
            g->rss_peak = r;
    }
}

static size_t gen_read(void *ud, uint8_t *buf, size_t cap)
{
    gen *g = ud;
    if (g->fail_at && ++g->calls >= g->fail_at)
        return (size_t)-1;
    size_t n = 0;
    while (n < cap && g->pos < g->size) {
        buf[n++] = gen_byte(g);
        g->pos++;
    }
    gen_sample_rss(g);
    return n;
}

/* ---- a download sink that verifies against a generator ---------------------- */

typedef struct sink {
    rec r;
    gen expect;
    int verify;
    uint64_t mismatches;
    int64_t progress_last;
    int progress_calls;
    int progress_backwards;
    int64_t progress_total;
    uint8_t body[8192]; /* excerpt for small bodies */
    size_t body_len;
    int abort_after_bytes; /* >0: on_data returns 1 past this */
} sink;

static int sk_status(void *ud, int status, int64_t cl)
{
    sink *s = ud;
    pthread_mutex_lock(&s->r.mu);
    s->r.status = status;
    s->r.content_length = cl;
    pthread_mutex_unlock(&s->r.mu);
    return 0;
}

static int sk_data(void *ud, const uint8_t *d, size_t n)
{
    sink *s = ud;
    pthread_mutex_lock(&s->r.mu);
    s->r.bytes += n;
    size_t room = sizeof s->body - s->body_len;
    memcpy(s->body + s->body_len, d, n < room ? n : room);
    s->body_len += n < room ? n : room;
    uint64_t total = s->r.bytes;
    pthread_mutex_unlock(&s->r.mu);
    if (s->verify) {
        for (size_t i = 0; i < n; i++)
            if (gen_byte(&s->expect) != d[i])
                s->mismatches++;
        s->expect.pos += n;
        gen_sample_rss(&s->expect);
    }
    return s->abort_after_bytes > 0 && total > (uint64_t)s->abort_after_bytes;
}

static void sk_progress(void *ud, int64_t sent, int64_t total)
{
    sink *s = ud;
    if (sent < s->progress_last)
        s->progress_backwards = 1;
    s->progress_last = sent;
    s->progress_total = total;
    s->progress_calls++;
}

static void sink_init(sink *s)
{
    memset(s, 0, sizeof *s);
    rec_init(&s->r);
}

static envd_http_callbacks sink_cb(sink *s)
{
    envd_http_callbacks cb = {sk_status, sk_data, sk_progress, rec_on_done, s};
    return cb;
}

/* Files go to /libenvd-http-test in the sandbox, which is
 * ENVD_TEST_ROOT/libenvd-http-test on this machine. */
#define VDIR "/libenvd-http-test"

static void files_path(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "/files?path=" VDIR "/%s&username=root", name);
}

static void real_path(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s" VDIR "/%s", peer_root(), name);
}

static envd_http *do_http(sink *s, const char *method, const char *path,
                          const envd_http_part *parts, size_t n_parts, const envd_http_part *raw,
                          int gzip_request, int accept_gzip)
{
    envd_http_request req = {.ep = &g_ep.ep,
                             .method = method,
                             .path = path,
                             .headers = test_headers,
                             .n_headers = 1,
                             .parts = parts,
                             .n_parts = n_parts,
                             .raw = raw,
                             .gzip_request = gzip_request,
                             .accept_gzip = accept_gzip,
                             .timeout_ms = 30000,
                             .idle_timeout_ms = 10000};
    envd_http_callbacks cb = sink_cb(s);
    envd_http *h = NULL;
    assert_int_equal(envd_http_start(g_eng, &req, &cb, &h), ENVD_OK);
    return h;
}

static void upload_then_download(const char *name, uint64_t size, int64_t declared, int gzip,
                                 int compressible)
{
    char path[512];
    files_path(path, sizeof path, name);

    gen src;
    gen_init(&src, 42 + size, size, compressible);
    envd_http_part raw = {.read = gen_read, .read_ud = &src, .size = declared};
    sink up;
    sink_init(&up);
    int64_t t0 = envd_now_ms();
    envd_http *h = do_http(&up, "POST", path, NULL, 0, &raw, gzip, 0);
    assert_true(rec_wait(&up.r, 60000));
    int64_t dt_up = envd_now_ms() - t0;
    if (rec_code(&up.r) != ENVD_OK)
        fail_msg("upload: %s", rec_msg(&up.r));
    assert_int_equal(up.r.status, 200);
    assert_true(src.pos == size);
    assert_true(up.progress_calls > 0);
    assert_false(up.progress_backwards);
    /* Progress counts the caller's bytes: no chunk framing, before gzip. */
    if (up.progress_last != (int64_t)size)
        fail_msg("progress %lld of %llu", (long long)up.progress_last, (unsigned long long)size);
    assert_true(up.progress_total == (declared >= 0 ? (int64_t)size : -1));
    up.body[up.body_len < sizeof up.body ? up.body_len : sizeof up.body - 1] = '\0';
    assert_non_null(strstr((const char *)up.body, name));
    envd_http_release(h);

    sink down;
    sink_init(&down);
    down.verify = 1;
    gen_init(&down.expect, 42 + size, size, compressible);
    t0 = envd_now_ms();
    h = do_http(&down, "GET", path, NULL, 0, NULL, 0, gzip);
    assert_true(rec_wait(&down.r, 60000));
    int64_t dt_down = envd_now_ms() - t0;
    if (rec_code(&down.r) != ENVD_OK)
        fail_msg("download: %s", rec_msg(&down.r));
    assert_int_equal(down.r.status, 200);
    assert_true(down.r.bytes == size);
    assert_true(down.mismatches == 0);
    if (!gzip)
        assert_true(down.r.content_length == (int64_t)size);
    envd_http_release(h);

    long grow_up = src.rss_peak - src.rss_base;
    long grow_down = down.expect.rss_peak - down.expect.rss_base;
    print_message("%s: %llu bytes up in %lld ms, down in %lld ms; RSS growth %ld / %ld KiB\n", name,
                  (unsigned long long)size, (long long)dt_up, (long long)dt_down, grow_up,
                  grow_down);
    if (CHECK_RSS) {
        /* Flat memory: far less than the file size. */
        assert_true(grow_up < 12 * 1024);
        assert_true(grow_down < 12 * 1024);
    }
    rec_destroy(&up.r);
    rec_destroy(&down.r);
}

static void test_upload_download_known_size(void **state)
{
    (void)state;
    upload_then_download("big-known.bin", (uint64_t)48 << 20, (int64_t)48 << 20, 0, 0);
}

static void test_upload_download_chunked(void **state)
{
    (void)state;
    upload_then_download("big-chunked.bin", (uint64_t)5 << 20, -1, 0, 0);
}

static void test_upload_download_gzip(void **state)
{
    (void)state;
    upload_then_download("big-gzip.txt", (uint64_t)6 << 20, -1, 1, 1);
}

static void test_raw_from_memory(void **state)
{
    (void)state;
    char path[512];
    files_path(path, sizeof path, "mem.txt");
    static const char text[] = "from memory\n";
    envd_http_part raw = {.data = (const uint8_t *)text,
                          .len = sizeof text - 1,
                          .content_type = "application/octet-stream"};
    sink s;
    sink_init(&s);
    envd_http *h = do_http(&s, "POST", path, NULL, 0, &raw, 0, 0);
    assert_true(rec_wait(&s.r, 10000));
    assert_int_equal(rec_code(&s.r), ENVD_OK);
    assert_int_equal(s.r.status, 200);
    envd_http_release(h);
    rec_destroy(&s.r);

    /* gzip from memory */
    sink_init(&s);
    h = do_http(&s, "POST", path, NULL, 0, &raw, 1, 0);
    assert_true(rec_wait(&s.r, 10000));
    assert_int_equal(rec_code(&s.r), ENVD_OK);
    assert_int_equal(s.r.status, 200);
    envd_http_release(h);
    rec_destroy(&s.r);

    char fpath[512];
    real_path(fpath, sizeof fpath, "mem.txt");
    FILE *f = fopen(fpath, "r");
    assert_non_null(f);
    char got[64] = {0};
    assert_true(fread(got, 1, sizeof got - 1, f) == sizeof text - 1);
    fclose(f);
    assert_string_equal(got, text);
}

static void test_multipart_two_parts(void **state)
{
    (void)state;
    const char *v1 = VDIR "/mp-one.txt", *v2 = VDIR "/mp-two.bin";
    char f1[512], f2[512];
    real_path(f1, sizeof f1, "mp-one.txt");
    real_path(f2, sizeof f2, "mp-two.bin");
    static const char one[] = "hello part one\n";
    gen src;
    gen_init(&src, 7, 300000, 0);
    envd_http_part parts[2] = {
        {.name = "file",
         .filename = v1,
         .content_type = "text/plain",
         .data = (const uint8_t *)one,
         .len = sizeof one - 1},
        {.name = "file", .filename = v2, .read = gen_read, .read_ud = &src, .size = -1},
    };
    sink s;
    sink_init(&s);
    /* No path=: each part's filename is its full path. */
    envd_http *h = do_http(&s, "POST", "/files?username=root", parts, 2, NULL, 0, 0);
    assert_true(rec_wait(&s.r, 20000));
    if (rec_code(&s.r) != ENVD_OK)
        fail_msg("%s", rec_msg(&s.r));
    s.body[s.body_len < sizeof s.body ? s.body_len : sizeof s.body - 1] = '\0';
    if (s.r.status != 200)
        fail_msg("status %d: %s", s.r.status, s.body);
    assert_non_null(strstr((const char *)s.body, "mp-one.txt"));
    assert_non_null(strstr((const char *)s.body, "mp-two.bin"));
    envd_http_release(h);
    rec_destroy(&s.r);

    FILE *f = fopen(f1, "r");
    assert_non_null(f);
    char got[64] = {0};
    assert_true(fread(got, 1, sizeof got - 1, f) == sizeof one - 1);
    fclose(f);
    assert_string_equal(got, one);
    f = fopen(f2, "r");
    assert_non_null(f);
    gen check;
    gen_init(&check, 7, 300000, 0);
    int c;
    size_t n = 0, bad = 0;
    while ((c = fgetc(f)) != EOF) {
        if ((uint8_t)c != gen_byte(&check))
            bad++;
        n++;
    }
    fclose(f);
    assert_int_equal(n, 300000);
    assert_int_equal(bad, 0);
}

static void test_download_missing(void **state)
{
    (void)state;
    char path[512];
    files_path(path, sizeof path, "does-not-exist");
    sink s;
    sink_init(&s);
    envd_http *h = do_http(&s, "GET", path, NULL, 0, NULL, 0, 0);
    assert_true(rec_wait(&s.r, 10000));
    /* A complete response: no transport error; the caller judges 404. */
    assert_int_equal(rec_code(&s.r), ENVD_OK);
    assert_int_equal(s.r.status, 404);
    envd_error *e = envd_error_from_http_body(s.r.status, s.body, s.body_len, ENVD_TRANSPORT_HTTP);
    assert_int_equal(envd_error_code(e), ENVD_NOT_FOUND);
    assert_int_equal(envd_error_http_status(e), 404);
    print_message("missing: %s\n", envd_error_message(e));
    envd_error_free(e);
    envd_http_release(h);
    rec_destroy(&s.r);
}

static void test_cancel_and_failures(void **state)
{
    (void)state;
    char path[512];
    files_path(path, sizeof path, "big-known.bin"); /* from the first test */

    /* on_data asks to stop */
    sink s;
    sink_init(&s);
    s.abort_after_bytes = 100000;
    envd_http *h = do_http(&s, "GET", path, NULL, 0, NULL, 0, 0);
    assert_true(rec_wait(&s.r, 10000));
    assert_int_equal(rec_code(&s.r), ENVD_CANCELED);
    assert_int_equal(s.r.done_count, 1);
    envd_http_release(h);
    rec_destroy(&s.r);

    /* cancel from this thread */
    sink_init(&s);
    h = do_http(&s, "GET", path, NULL, 0, NULL, 0, 0);
    envd_http_cancel(h);
    envd_http_cancel(h);
    assert_true(rec_wait(&s.r, 10000));
    assert_int_equal(rec_code(&s.r), ENVD_CANCELED);
    assert_int_equal(s.r.done_count, 1);
    envd_http_cancel(h);
    envd_http_release(h);
    rec_destroy(&s.r);

    /* the read callback fails */
    char up[512];
    files_path(up, sizeof up, "fails.bin");
    gen src;
    gen_init(&src, 1, (uint64_t)4 << 20, 0);
    src.fail_at = 5;
    envd_http_part raw = {.read = gen_read, .read_ud = &src, .size = (int64_t)4 << 20};
    sink_init(&s);
    h = do_http(&s, "POST", up, NULL, 0, &raw, 0, 0);
    assert_true(rec_wait(&s.r, 10000));
    assert_int_equal(rec_code(&s.r), ENVD_E_IO);
    print_message("read failure: %s\n", rec_msg(&s.r));
    envd_http_release(h);
    rec_destroy(&s.r);
}

static void test_bad_requests(void **state)
{
    (void)state;
    test_ep ep;
    test_ep_init(&ep, "127.0.0.1:1");
    sink s;
    sink_init(&s);
    envd_http_callbacks cb = sink_cb(&s);
    envd_http *h = NULL;
    envd_http_part raw = {.data = (const uint8_t *)"x", .len = 1};
    envd_http_request req = {.ep = &ep.ep, .method = "GET", .path = "/files", .raw = &raw};
    assert_int_equal(envd_http_start(g_eng, &req, &cb, &h), ENVD_E_USAGE);
    req.method = "POST";
    req.path = "files";
    assert_int_equal(envd_http_start(g_eng, &req, &cb, &h), ENVD_E_USAGE);
    req.path = "/files?a=b\r\nX: y";
    assert_int_equal(envd_http_start(g_eng, &req, &cb, &h), ENVD_INVALID_ARGUMENT);
    assert_null(h);
    assert_false(s.r.done);

    /* refused */
    req.path = "/files?path=/x";
    assert_int_equal(envd_http_start(g_eng, &req, &cb, &h), ENVD_OK);
    assert_true(rec_wait(&s.r, 10000));
    assert_int_equal(rec_code(&s.r), ENVD_UNAVAILABLE);
    assert_int_equal(envd_error_transport(s.r.err), ENVD_TRANSPORT_HTTP);
    envd_http_release(h);
    rec_destroy(&s.r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_upload_download_known_size),
        cmocka_unit_test(test_upload_download_chunked),
        cmocka_unit_test(test_upload_download_gzip),
        cmocka_unit_test(test_raw_from_memory),
        cmocka_unit_test(test_multipart_two_parts),
        cmocka_unit_test(test_download_missing),
        cmocka_unit_test(test_cancel_and_failures),
        cmocka_unit_test(test_bad_requests),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
