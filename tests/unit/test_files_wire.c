/* /files on the wire, seen by a fake server: the request line and its URL
 * encoding, the Go client's headers on every request, the user in both
 * Authorization and username=, the multipart body byte for byte (part
 * `file`, Go's filename quoting), octet-stream, gzip, metadata and Range
 * headers; and how replies are read: 200/201, the JSON write result and
 * its fallback, 404, a long error body cut to an excerpt. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "envd/envd.h"
#include "fault_server.h"
#include "../integration/files_calls.h"

#include <zlib.h>

static envd_runtime *g_rt;

static int setup(void **state)
{
    (void)state;
    if (fs_start() != 0)
        return -1;
    return envd_runtime_new(NULL, &g_rt) == ENVD_OK ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    fs_set(NULL);
    envd_runtime_free(g_rt);
    return 0;
}

static envd_client *client(const char *user)
{
    envd_config *cfg = envd_config_new();
    char dom[64];
    snprintf(dom, sizeof dom, "127.0.0.1:%d", g_fs.port);
    envd_config_set_domain(cfg, dom);
    envd_config_set_runtime_token(cfg, "tok");
    envd_config_set_api_key(cfg, "key");
    envd_config_set_header(cfg, "X-Custom", "yes");
    envd_config_set_request_timeout_ms(cfg, 5000);
    if (user)
        envd_config_set_user(cfg, user);
    envd_client *c = NULL;
    assert_int_equal(envd_client_new(g_rt, "sbx-9", cfg, &c, NULL), ENVD_OK);
    envd_config_free(cfg);
    return c;
}

static void reply_json(int fd)
{
    const char *body =
        "[{\"path\":\"/srv/said/this.txt\",\"name\":\"this.txt\",\"type\":\"file\"}]";
    char h[256];
    snprintf(h, sizeof h,
             "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
             "Connection: close\r\n\r\n",
             strlen(body));
    fs_puts(fd, h);
    fs_puts(fd, body);
}

static void reply_201_garbage(int fd)
{
    fs_puts(fd, "HTTP/1.1 201 Created\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot json!");
}

static void reply_file(int fd)
{
    fs_puts(fd, "HTTP/1.1 206 Partial Content\r\nContent-Length: 5\r\nConnection: close\r\n\r\n"
                "hello");
}

static void reply_404(int fd)
{
    fs_puts(fd, "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n"
                "Content-Length: 51\r\nConnection: close\r\n\r\n"
                "{\"code\":404,\"message\":\"path '/x/y' does not exist\"}");
}

static void reply_500_long(int fd)
{
    size_t n = 20000;
    char *body = malloc(n + 1);
    memset(body, 'e', n);
    memcpy(body, "<html><body>proxy says no ", 26);
    body[n] = 0;
    char h[256];
    snprintf(h, sizeof h,
             "HTTP/1.1 503 Service Unavailable\r\nContent-Length: %zu\r\n"
             "Connection: close\r\n\r\n",
             n);
    fs_puts(fd, h);
    fs_puts(fd, body);
    free(body);
}

/* Claims far more than it sends, then closes. */
static void reply_claims_64g(int fd)
{
    fs_puts(fd, "HTTP/1.1 200 OK\r\nContent-Length: 68719476736\r\nConnection: close\r\n\r\n"
                "hello");
}

static void reply_claims_1g(int fd)
{
    fs_puts(fd, "HTTP/1.1 200 OK\r\nContent-Length: 1073741824\r\nConnection: close\r\n\r\n"
                "hello");
}

/* gzip although the request asked for identity. */
static void reply_gzip_unasked(int fd)
{
    fs_gzip_reply(fd, "compressed anyway\n");
}

static const char *head(void)
{
    return g_fs.last_head;
}

static void assert_header(const char *line)
{
    if (!strcasestr(head(), line))
        fail_msg("no '%s' in:\n%s", line, head());
}

/* The boundary from the request's content type. */
static void boundary_of(char *out, size_t cap)
{
    const char *b = strcasestr(head(), "boundary=");
    assert_non_null(b);
    b += 9;
    size_t n = strcspn(b, "\r\n");
    assert_true(n < cap);
    memcpy(out, b, n);
    out[n] = 0;
}

static void write_request_shape(void **state)
{
    (void)state;
    fs_set(reply_json);
    envd_client *c = client(NULL);
    envd_write_info *wi = NULL;
    envd_error *err = NULL;
    const char *path = "/a b/q\"u\\o?&#%+.txt";
    envd_status st = write_cb(c, path, NULL, NULL, 0, NULL, &wi, &err);
    assert_int_equal(st, ENVD_E_USAGE); /* no callback */
    st = envd_files_write(c, path, "hello", 5, NULL, NULL, &err);
    assert_int_equal(st, ENVD_OK);
    fs_join_conns();
    assert_true(strncmp(head(),
                        "POST /files?path=%2Fa%20b%2Fq%22u%5Co%3F%26%23%25%2B.txt&username=root "
                        "HTTP/1.1\r\n",
                        80) == 0);
    assert_header("\r\nauthorization: Basic cm9vdDo=\r\n");
    assert_header("\r\nx-api-key: key\r\n");
    assert_header("\r\nx-access-token: tok\r\n");
    assert_header("\r\ne2b-sandbox-id: sbx-9\r\n");
    assert_header("\r\ne2b-sandbox-port: 49983\r\n");
    assert_header("\r\nx-custom: yes\r\n");
    assert_header("\r\ncontent-type: multipart/form-data; boundary=");
    char b[80], want[512];
    boundary_of(b, sizeof b);
    snprintf(want, sizeof want,
             "--%s\r\nContent-Disposition: form-data; name=\"file\"; "
             "filename=\"/a b/q\\\"u\\\\o?&#%%+.txt\"\r\n"
             "Content-Type: application/octet-stream\r\n\r\nhello\r\n--%s--\r\n",
             b, b);
    assert_int_equal(g_fs.last_body_len, strlen(want));
    assert_memory_equal(g_fs.last_body, want, strlen(want));

    /* the write result is the reply's first entry */
    fs_set(reply_json);
    st = write_fd(c, "/x", 0, 0, NULL, &wi, &err);
    assert_int_equal(st, ENVD_OK);
    assert_string_equal((wi)->items[0].path, "/srv/said/this.txt");
    assert_string_equal((wi)->items[0].name, "this.txt");
    envd_write_info_free(wi);
    /* 201 counts; an unreadable reply falls back to the path */
    fs_set(reply_201_garbage);
    st = write_fd(c, "/dir/fallback.txt", 0, 0, NULL, &wi, &err);
    assert_int_equal(st, ENVD_OK);
    assert_int_equal((wi)->count, 1);
    assert_string_equal((wi)->items[0].path, "/dir/fallback.txt");
    assert_string_equal((wi)->items[0].name, "fallback.txt");
    assert_string_equal((wi)->items[0].type, "file");
    envd_write_info_free(wi);
    envd_client_free(c);
}

static void user_in_both_places(void **state)
{
    (void)state;
    envd_client *c = client("user");
    envd_error *err = NULL;
    uint8_t *d = NULL;
    size_t n;
    fs_set(reply_file);
    assert_int_equal(envd_files_read(c, "rel.txt", NULL, &d, &n, &err), ENVD_OK);
    free(d);
    fs_join_conns();
    assert_true(strncmp(head(), "GET /files?path=rel.txt&username=user HTTP/1.1\r\n", 48) == 0);
    assert_header("\r\nauthorization: Basic dXNlcjo=\r\n"); /* user: */
    /* per call: both change for that request only */
    fs_set(reply_file);
    assert_int_equal(read_as(c, "rel.txt", "root", &d, &n, &err), ENVD_OK);
    free(d);
    fs_join_conns();
    assert_true(strncmp(head(), "GET /files?path=rel.txt&username=root HTTP/1.1\r\n", 48) == 0);
    assert_header("\r\nauthorization: Basic cm9vdDo=\r\n");
    envd_client_free(c);
}

static void options_on_the_wire(void **state)
{
    (void)state;
    envd_client *c = client(NULL);
    envd_error *err = NULL;
    envd_files_opts *o = envd_files_opts_new();
    envd_files_opts_set_metadata(o, "Owner", "bob");
    envd_files_opts_set_metadata(o, "tag", "a b");
    envd_files_opts_set_octet_stream(o, 1);
    fs_set(reply_json);
    FILE *f = tmpfile();
    fputs("raw body", f);
    rewind(f);
    assert_int_equal(write_fd(c, "/o.bin", fileno(f), -1, o, NULL, &err), ENVD_OK);
    fclose(f);
    fs_join_conns();
    assert_header("\r\ncontent-type: application/octet-stream\r\n");
    assert_header("\r\ncontent-length: 8\r\n");
    assert_header("\r\nx-metadata-Owner: bob\r\n");
    assert_header("\r\nx-metadata-tag: a b\r\n");
    assert_int_equal(g_fs.last_body_len, 8);
    assert_memory_equal(g_fs.last_body, "raw body", 8);

    /* gzip: the body inflates to the multipart form */
    envd_files_opts_free(o);
    o = envd_files_opts_new();
    envd_files_opts_set_gzip(o, 1);
    fs_set(reply_json);
    /* no options, no gzip */
    assert_int_equal(envd_files_write(c, "/g.txt", "x", 1, NULL, NULL, &err), ENVD_OK);
    fs_join_conns();
    assert_null(strcasestr(head(), "content-encoding"));
    fs_set(reply_json);
    envd_write_batch *b = envd_write_batch_new();
    envd_write_batch_add(b, "/one", "1", 1);
    envd_write_batch_add(b, "/two", "22", 2);
    assert_int_equal(envd_files_write_batch(c, b, o, NULL, &err), ENVD_OK);
    envd_write_batch_free(b);
    fs_join_conns();
    /* several files: no path in the query, the names in the parts */
    assert_true(strncmp(head(), "POST /files?username=root HTTP/1.1\r\n", 36) == 0);
    assert_header("\r\ncontent-encoding: gzip\r\n");
    uint8_t plain[4096];
    z_stream zs = {0};
    inflateInit2(&zs, 15 + 16);
    zs.next_in = g_fs.last_body;
    zs.avail_in = (uInt)g_fs.last_body_len;
    zs.next_out = plain;
    zs.avail_out = sizeof plain;
    assert_int_equal(inflate(&zs, Z_FINISH), Z_STREAM_END);
    size_t pl = sizeof plain - zs.avail_out;
    inflateEnd(&zs);
    char bd[80], want[1024];
    boundary_of(bd, sizeof bd);
    snprintf(want, sizeof want,
             "--%s\r\nContent-Disposition: form-data; name=\"file\"; filename=\"/one\"\r\n"
             "Content-Type: application/octet-stream\r\n\r\n1\r\n"
             "--%s\r\nContent-Disposition: form-data; name=\"file\"; filename=\"/two\"\r\n"
             "Content-Type: application/octet-stream\r\n\r\n22\r\n--%s--\r\n",
             bd, bd, bd);
    assert_int_equal(pl, strlen(want));
    assert_memory_equal(plain, want, pl);
    envd_files_opts_free(o);

    /* reads: Range, Accept-Encoding */
    o = envd_files_opts_new();
    envd_files_opts_set_range(o, 100, 5);
    envd_files_opts_set_gzip(o, 1);
    fs_set(reply_file);
    FILE *out = tmpfile();
    assert_int_equal(read_fd(c, "/r", fileno(out), o, &err), ENVD_OK);
    fs_join_conns();
    assert_header("\r\nrange: bytes=100-104\r\n");
    assert_header("\r\nAccept-Encoding: gzip\r\n");
    assert_int_equal(ftell(out), 5);
    fclose(out);
    envd_files_opts_set_range(o, 7, -1);
    fs_set(reply_file);
    out = tmpfile();
    assert_int_equal(read_fd(c, "/r", fileno(out), o, &err), ENVD_OK);
    fclose(out);
    fs_join_conns();
    assert_header("\r\nrange: bytes=7-\r\n");
    envd_files_opts_free(o);
    envd_client_free(c);
}

static void error_replies(void **state)
{
    (void)state;
    envd_client *c = client(NULL);
    envd_error *err = NULL;
    uint8_t *d = NULL;
    size_t n;
    fs_set(reply_404);
    envd_status st = envd_files_read(c, "/x/y", NULL, &d, &n, &err);
    assert_int_equal(st, ENVD_NOT_FOUND);
    assert_string_equal(envd_error_message(err), "file not found: /x/y");
    assert_int_equal(envd_error_http_status(err), 404);
    assert_int_equal(envd_error_transport(err), ENVD_TRANSPORT_HTTP);
    envd_error_free(err);

    fs_set(reply_500_long);
    st = envd_files_write(c, "/x/y", "z", 1, NULL, NULL, &err);
    assert_int_equal(st, ENVD_UNAVAILABLE);
    assert_int_equal(envd_error_http_status(err), 503);
    const char *m = envd_error_message(err);
    assert_non_null(strstr(m, "failed to write file (status 503): "));
    assert_non_null(strstr(m, "proxy says no"));
    assert_true(strlen(m) < 1200); /* an excerpt, not 20 KB */
    envd_error_free(err);
    envd_client_free(c);
}

static void expect_err(envd_status st, envd_error *err, envd_status want, const char *text)
{
    if (st != want)
        fail_msg("got %s (%s), want %s", envd_strerror(st), err ? envd_error_message(err) : "-",
                 envd_strerror(want));
    assert_non_null(err);
    if (text && !strstr(envd_error_message(err), text))
        fail_msg("'%s' lacks '%s'", envd_error_message(err), text);
    envd_error_free(err);
}

/* Content-Length is a claim, not an allocation: a memory read past the
 * limit fails at once as RESOURCE_EXHAUSTED, a smaller claim costs nothing
 * until bytes arrive, and an fd sink takes any size. */
static void reply_sizes_are_claims(void **state)
{
    (void)state;
    envd_client *c = client(NULL);
    envd_error *err = NULL;
    uint8_t *d = (uint8_t *)"x";
    size_t n = 1;
    fs_set(reply_claims_64g);
    envd_status st = envd_files_read(c, "/huge", NULL, &d, &n, &err);
    assert_null(d);
    assert_int_equal(n, 0);
    expect_err(st, err, ENVD_RESOURCE_EXHAUSTED, "68719476736 bytes do not fit");

    fs_set(reply_claims_1g);
    st = envd_files_read(c, "/liar", NULL, &d, &n, &err);
    expect_err(st, err, ENVD_UNAVAILABLE, "before the response was complete");

    FILE *out = tmpfile();
    fs_set(reply_claims_64g);
    st = read_fd(c, "/huge", fileno(out), NULL, &err);
    expect_err(st, err, ENVD_UNAVAILABLE, "before the response was complete");
    assert_int_equal(ftell(out), 5); /* what came went to the fd */
    fclose(out);
    envd_client_free(c);
}

static void gzip_not_asked_for_is_decoded(void **state)
{
    (void)state;
    envd_client *c = client(NULL);
    envd_error *err = NULL;
    uint8_t *d = NULL;
    size_t n = 0;
    fs_set(reply_gzip_unasked);
    envd_status st = envd_files_read(c, "/z", NULL, &d, &n, &err);
    if (st != ENVD_OK)
        fail_msg("%s", envd_error_message(err));
    assert_int_equal(n, 18);
    assert_string_equal((char *)d, "compressed anyway\n");
    free(d);
    fs_join_conns();
    assert_header("\r\nAccept-Encoding: identity\r\n");
    envd_client_free(c);
}

/* The call first, then its error (argument evaluation order is unspecified). */
#define EXPECT(call, want, text)                                                                   \
    do {                                                                                           \
        envd_status st_ = (call);                                                                  \
        expect_err(st_, err, want, text);                                                          \
    } while (0)

/* Usage errors name the argument; starters leave *out NULL; option setters
 * tell a NULL object (E_USAGE) from a bad value (INVALID_ARGUMENT). */
static void usage_errors(void **state)
{
    (void)state;
    envd_client *c = client(NULL);
    envd_error *err = NULL;
    fs_set(reply_json);
    EXPECT(envd_files_write(c, "", "x", 1, NULL, NULL, &err), ENVD_E_USAGE,
               "envd_files_write: path is empty");
    EXPECT(envd_files_write(c, NULL, "x", 1, NULL, NULL, &err), ENVD_E_USAGE,
               "envd_files_write: path is NULL");
    EXPECT(envd_files_write(NULL, "/a", "x", 1, NULL, NULL, &err), ENVD_E_USAGE,
               "client is NULL");
    EXPECT(envd_files_write_text(c, "/a", NULL, NULL, NULL, &err), ENVD_E_USAGE,
               "text is NULL");
    uint8_t *d = NULL;
    size_t n = 0;
    EXPECT(envd_files_read(c, "", NULL, &d, &n, &err), ENVD_E_USAGE, "path is empty");
    char *url = NULL;
    EXPECT(envd_files_url(c, "", ENVD_FILES_READ, NULL, 0, &url, &err), ENVD_E_USAGE,
               "envd_files_url: path is empty");
    EXPECT(envd_files_url(c, "/a", (envd_files_op)7, NULL, 0, &url, &err), ENVD_E_USAGE,
               "op");
    assert_null(url);

    envd_future *f = (envd_future *)&f; /* not NULL: the starter must clear it */
    assert_int_equal(envd_files_read_async(c, "", NULL, &f), ENVD_E_USAGE);
    assert_null(f);
    f = (envd_future *)&f;
    assert_int_equal(envd_files_read_async(NULL, "/a", NULL, &f), ENVD_E_USAGE);
    assert_null(f);
    envd_write_batch *b = envd_write_batch_new();
    f = (envd_future *)&f;
    assert_int_equal(envd_files_write_batch_async(c, b, NULL, &f), ENVD_E_USAGE);
    assert_null(f);
    assert_int_equal(envd_write_batch_add(b, "", "x", 1), ENVD_E_USAGE);
    assert_int_equal(envd_write_batch_add(b, NULL, "x", 1), ENVD_E_USAGE);
    assert_int_equal(envd_write_batch_add(b, "/a\nb", "x", 1), ENVD_INVALID_ARGUMENT);
    assert_int_equal(envd_write_batch_add(b, "/a", "x", 1), ENVD_OK);
    assert_int_equal(envd_write_batch_add(b, "/b", "y", 1), ENVD_OK);
    envd_files_opts *o = envd_files_opts_new();
    envd_files_opts_set_octet_stream(o, 1); /* one file per octet-stream request */
    f = (envd_future *)&f;
    assert_int_equal(envd_files_write_batch_async(c, b, o, &f), ENVD_E_USAGE);
    assert_null(f);
    envd_write_batch_free(b);

    assert_int_equal(envd_files_opts_set_timeout_ms(o, -1), ENVD_INVALID_ARGUMENT);
    assert_int_equal(envd_files_opts_set_idle_timeout_ms(o, -5), ENVD_INVALID_ARGUMENT);
    assert_int_equal(envd_files_opts_set_range(o, -1, 4), ENVD_INVALID_ARGUMENT);
    assert_int_equal(envd_files_opts_set_sink_fd(o, -1), ENVD_INVALID_ARGUMENT);
    assert_int_equal(envd_files_opts_set_timeout_ms(NULL, 5), ENVD_E_USAGE);
    assert_int_equal(envd_files_opts_set_idle_timeout_ms(NULL, 5), ENVD_E_USAGE);
    assert_int_equal(envd_files_opts_set_sink_fd(NULL, 1), ENVD_E_USAGE);
    assert_int_equal(envd_files_opts_set_sink(NULL, NULL, NULL), ENVD_E_USAGE);
    assert_int_equal(envd_files_opts_set_gzip(NULL, 1), ENVD_E_USAGE);
    char *t = (char *)"x";
    assert_int_equal(envd_files_opts_set_sink_fd(o, 1), ENVD_OK);
    EXPECT(envd_files_read_text(c, "/a", o, &t, &err), ENVD_E_USAGE, "sink");
    assert_null(t);
    envd_files_opts_free(o);
    envd_client_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(write_request_shape),
        cmocka_unit_test(user_in_both_places),
        cmocka_unit_test(options_on_the_wire),
        cmocka_unit_test(error_replies),
        cmocka_unit_test(reply_sizes_are_claims),
        cmocka_unit_test(gzip_not_asked_for_is_decoded),
        cmocka_unit_test(usage_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
