/* Connect over TLS on the nghttp2 engine (src/transport/h2c.c), through the
 * nginx gateway's TLS ports: libcurl carries an https authority until it
 * has seen it choose h2 by ALPN, the engine after that. What must hold on
 * the engine's side: calls answer, the certificate is verified against
 * the endpoint's CA file (or the system's roots) and must name the host,
 * a server that speaks HTTP/1.1 over TLS stays with libcurl, one that
 * turns h2 down later fails the calls already on their way with a clear
 * error and the next ones go back to libcurl, and a server that never
 * answers the handshake ends the call at its request timeout.
 * (The command suite over this path is it_commands' "gateway tls h2".) */
#include "harness.h"
#include "api/internal.h"
#include "../test_clock.h"

#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct tls_fx {
    test_server srv;
    test_gateway gw;
    envd_runtime *rt;
    char ca[300];
} tls_fx;

static int setup(void **state)
{
    tls_fx *fx = calloc(1, sizeof(*fx));
    *state = fx;
    static const char *const ids[1] = {"sbx-tls"};
    if (test_server_start(&fx->srv, "h1", NULL) != 0 ||
        test_gateway_start(&fx->gw, &fx->srv, ids, 1) != 0)
        return -1;
    snprintf(fx->ca, sizeof(fx->ca), "%s/tls.crt", fx->gw.dir);
    return envd_runtime_new(NULL, &fx->rt) == ENVD_OK ? 0 : -1;
}

static int teardown(void **state)
{
    tls_fx *fx = *state;
    envd_runtime_free(fx->rt);
    test_gateway_stop(&fx->gw);
    test_server_stop(&fx->srv);
    free(fx);
    return 0;
}

/* An https client of host:port; ca NULL: the system's roots. No retries:
 * each call is one attempt, so the errors are the first ones. */
static envd_client *tls_client(tls_fx *fx, const char *host, int port, const char *ca,
                               int64_t request_ms)
{
    envd_config *cfg = envd_config_new();
    char addr[128];
    snprintf(addr, sizeof(addr), "%s:%d", host, port);
    envd_config_set_domain(cfg, addr);
    envd_config_set_transport(cfg, ENVD_TRANSPORT_CONNECT);
    assert_int_equal(envd_config_set_scheme(cfg, "https"), ENVD_OK);
    if (ca)
        assert_int_equal(envd_config_set_ca_file(cfg, ca), ENVD_OK);
    envd_config_set_retries(cfg, 0);
    envd_config_set_request_timeout_ms(cfg, request_ms);
    envd_client *c = NULL;
    envd_error *err = NULL;
    envd_status st = envd_client_new(fx->rt, "sbx-tls", cfg, &c, &err);
    assert_envd_ok(st, err);
    envd_config_free(cfg);
    return c;
}

static envd_status try_stat(envd_client *c, envd_error **err)
{
    envd_entry_info *info = NULL;
    envd_status st = envd_fs_get_info(c, "/", &info, err);
    envd_entry_info_free(info);
    return st;
}

static void stat_ok(envd_client *c)
{
    envd_error *err = NULL;
    envd_status st = try_stat(c, &err);
    assert_envd_ok(st, err);
}

/* Connections the nghttp2 engine opened so far (0 while it does not exist). */
static size_t h2_connects(tls_fx *fx)
{
    envd_h2c_engine *h = envd_curl_engine_h2c(fx->rt->curl);
    size_t n = 0;
    if (h)
        envd_h2c_engine_stats(h, NULL, &n, NULL);
    return n;
}

/* st failed with UNAVAILABLE and a message holding want. */
static void assert_fails_with(envd_status st, envd_error *err, const char *want)
{
    assert_int_equal(st, ENVD_UNAVAILABLE);
    assert_non_null(err);
    const char *msg = envd_error_message(err);
    if (!strstr(msg, want))
        fail_msg("\"%s\" is not in: %s", want, msg);
    envd_error_free(err);
}

/* The first call goes by libcurl, the rest by the engine: 64 Stats at once
 * and a run whose output comes back, on the engine's connection. */
static void learns_then_multiplexes(void **state)
{
    tls_fx *fx = *state;
    envd_client *c = tls_client(fx, "127.0.0.1", fx->gw.tls_port, fx->ca, 20000);
    assert_int_equal(h2_connects(fx), 0);
    stat_ok(c);
    assert_int_equal(h2_connects(fx), 0); /* that one was libcurl's */
    enum { N = 64 };
    envd_future *f[N];
    for (int i = 0; i < N; i++)
        assert_int_equal(envd_fs_get_info_async(c, "/", &f[i]), ENVD_OK);
    assert_int_equal(envd_future_wait_all(f, N, 20000), ENVD_OK);
    for (int i = 0; i < N; i++) {
        assert_int_equal(envd_future_status(f[i]), ENVD_OK);
        envd_future_free(f[i]);
    }
    envd_command_result *r = NULL;
    envd_error *err = NULL;
    envd_status st = envd_commands_run(c, "echo over-h2-tls", NULL, &r, &err);
    assert_envd_ok(st, err);
    assert_string_equal(r->stdout_data, "over-h2-tls\n");
    envd_command_result_free(r);
    size_t n = h2_connects(fx);
    fprintf(stderr, "nghttp2 engine connections: %zu\n", n);
    assert_in_range(n, 1, 2);
    envd_client_free(c);
}

/* Once the authority is known to speak h2, a client that does not trust
 * the gateway's certificate (the system's roots) is refused by the
 * engine's verification, not let through. */
static void verifies_the_certificate(void **state)
{
    tls_fx *fx = *state;
    envd_client *good = tls_client(fx, "127.0.0.1", fx->gw.tls_port, fx->ca, 20000);
    stat_ok(good);
    stat_ok(good);
    size_t before = h2_connects(fx);
    assert_true(before >= 1);
    envd_client *bad = tls_client(fx, "127.0.0.1", fx->gw.tls_port, NULL, 20000);
    envd_error *err = NULL;
    envd_status st = try_stat(bad, &err);
    assert_fails_with(st, err, "certificate verification failed: self-signed certificate");
    assert_true(h2_connects(fx) > before); /* the engine's own handshake */
    stat_ok(good); /* the trusting client's connection is untouched */
    envd_client_free(bad);
    envd_client_free(good);
}

/* The certificate names 127.0.0.1 only: reached as "localhost" (learnt as
 * h2 by hand, since libcurl refuses that name before it could learn it),
 * the engine refuses it. */
static void checks_the_host_name(void **state)
{
    tls_fx *fx = *state;
    char auth[64];
    snprintf(auth, sizeof(auth), "localhost:%d", fx->gw.tls_port);
    envd_curl_engine_h2tls_learn(fx->rt->curl, auth);
    envd_client *c = tls_client(fx, "localhost", fx->gw.tls_port, fx->ca, 20000);
    envd_error *err = NULL;
    envd_status st = try_stat(c, &err);
    assert_fails_with(st, err, "certificate verification failed: hostname mismatch");
    envd_client_free(c);
}

/* A TLS server without h2 in ALPN stays with libcurl: every call answers
 * and the engine opens nothing for it. */
static void http1_over_tls_stays_with_libcurl(void **state)
{
    tls_fx *fx = *state;
    envd_client *c = tls_client(fx, "127.0.0.1", fx->gw.tls1_port, fx->ca, 20000);
    size_t before = h2_connects(fx);
    for (int i = 0; i < 20; i++)
        stat_ok(c);
    assert_int_equal(h2_connects(fx), before);
    envd_client_free(c);
}

/* An authority known as h2 whose server then chooses HTTP/1.1: the call
 * that met it fails, unsent, saying so; the next goes to libcurl and
 * answers. */
static void h2_turned_down_goes_back_to_libcurl(void **state)
{
    tls_fx *fx = *state;
    char auth[64];
    snprintf(auth, sizeof(auth), "127.0.0.1:%d", fx->gw.tls1_port);
    envd_curl_engine_h2tls_learn(fx->rt->curl, auth);
    envd_client *c = tls_client(fx, "127.0.0.1", fx->gw.tls1_port, fx->ca, 20000);
    envd_error *err = NULL;
    envd_status st = try_stat(c, &err);
    assert_fails_with(st, err, "the server did not choose HTTP/2 over TLS (ALPN)");
    size_t after = h2_connects(fx);
    for (int i = 0; i < 5; i++)
        stat_ok(c);
    assert_int_equal(h2_connects(fx), after);
    envd_client_free(c);
}

/* A peer that takes the connection and never answers the ClientHello:
 * the call ends at its request timeout, and the runtime serves others. */
static void stalled_handshake_times_out(void **state)
{
    tls_fx *fx = *state;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof(a);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(fd, 16), 0); /* never accepted: the kernel completes TCP */
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &al), 0);
    int port = ntohs(a.sin_port);
    char auth[64];
    snprintf(auth, sizeof(auth), "127.0.0.1:%d", port);
    envd_curl_engine_h2tls_learn(fx->rt->curl, auth);
    envd_client *c = tls_client(fx, "127.0.0.1", port, fx->ca, 800);
    int64_t t0 = test_now_ms();
    envd_error *err = NULL;
    envd_status st = try_stat(c, &err);
    int64_t took = test_now_ms() - t0;
    assert_int_equal(st, ENVD_DEADLINE_EXCEEDED);
    envd_error_free(err);
    fprintf(stderr, "stalled handshake: ended after %lld ms\n", (long long)took);
    assert_in_range(took, 700, 5000);
    envd_client *ok = tls_client(fx, "127.0.0.1", fx->gw.tls_port, fx->ca, 20000);
    stat_ok(ok);
    envd_client_free(ok);
    envd_client_free(c);
    close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(learns_then_multiplexes, setup, teardown),
        cmocka_unit_test_setup_teardown(verifies_the_certificate, setup, teardown),
        cmocka_unit_test_setup_teardown(checks_the_host_name, setup, teardown),
        cmocka_unit_test_setup_teardown(http1_over_tls_stays_with_libcurl, setup, teardown),
        cmocka_unit_test_setup_teardown(h2_turned_down_goes_back_to_libcurl, setup, teardown),
        cmocka_unit_test_setup_teardown(stalled_handshake_times_out, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
