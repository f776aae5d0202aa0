/* A runtime URL with a path (envd_config_set_sandbox_base_url
 * "http://host:port/x"): RPCs go to /x/<service>/<method> and /files to
 * /x/files, once each (the Go client joins "<runtime URL>/files"). Checked
 * on the request line a scripted loopback server received. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "fault_server.h"
#include "envd/envd.h"

static void reply_file(int fd)
{
    fs_puts(fd, "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                "Content-Length: 2\r\nConnection: close\r\n\r\nok");
}

static void reply_list(int fd)
{
    fs_puts(fd, "HTTP/1.1 200 OK\r\nContent-Type: application/proto\r\nContent-Length: 0\r\n"
                "Connection: close\r\n\r\n");
}

static void request_line(char *out, size_t n)
{
    pthread_mutex_lock(&g_fs.mu);
    const char *eol = strstr(g_fs.last_head, "\r\n");
    size_t k = eol ? (size_t)(eol - g_fs.last_head) : strlen(g_fs.last_head);
    snprintf(out, n, "%.*s", (int)(k < n ? k : n - 1), g_fs.last_head);
    pthread_mutex_unlock(&g_fs.mu);
}

static void paths_join_once(void **state)
{
    (void)state;
    assert_int_equal(fs_start(), 0);
    envd_runtime *rt = NULL;
    assert_int_equal(envd_runtime_new(NULL, &rt), ENVD_OK);
    envd_config *cfg = envd_config_new();
    char url[96];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/x/", g_fs.port); /* trailing '/' dropped */
    assert_int_equal(envd_config_set_sandbox_base_url(cfg, url), ENVD_OK);
    assert_int_equal(envd_config_set_transport(cfg, ENVD_TRANSPORT_CONNECT), ENVD_OK);
    envd_client *c = NULL;
    assert_int_equal(envd_client_new(rt, "sbx-p", cfg, &c, NULL), ENVD_OK);
    envd_config_free(cfg);

    char line[512];
    fs_set(reply_file);
    uint8_t *data = NULL;
    size_t len = 0;
    envd_error *err = NULL;
    assert_int_equal(envd_files_read(c, "/a.txt", NULL, &data, &len, &err), ENVD_OK);
    assert_int_equal(len, 2);
    free(data);
    fs_join_conns();
    request_line(line, sizeof line);
    if (strncmp(line, "GET /x/files?path=", 18) != 0)
        fail_msg("/files request line: %s", line);

    fs_set(reply_list);
    envd_entry_list *l = NULL;
    assert_int_equal(envd_fs_list(c, "/", 1, &l, &err), ENVD_OK);
    envd_entry_list_free(l);
    fs_join_conns();
    request_line(line, sizeof line);
    assert_string_equal(line, "POST /x/filesystem.Filesystem/ListDir HTTP/1.1");

    envd_client_free(c);
    envd_runtime_free(rt);
    fs_stop();
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(paths_join_once)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
