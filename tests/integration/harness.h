/* Test harness: starts the reference envd server (tests/peer) on loopback
 * for one test process, with its own temporary root, and stops it. */
#ifndef ENVD_TEST_HARNESS_H
#define ENVD_TEST_HARNESS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
/* envd-bench builds the harness too (servers, gateway) without cmocka. */
#ifndef ENVD_HARNESS_NO_CMOCKA
#include <cmocka.h>
#endif
#include <pthread.h>
#include <sys/types.h>

#include "envd/envd.h"

typedef struct test_server {
    pid_t pid;
    int stdin_fd; /* closing it stops the server */
    int port;
    char addr[64];  /* "127.0.0.1:PORT" */
    char root[256]; /* the server's --root */
    int external;   /* ENVD_TEST_EXTERNAL: a server we did not start */
} test_server;

/* http: "h1" or "both"; token may be NULL. Returns 0 or -1 (message printed). */
int test_server_start(test_server *s, const char *http, const char *token);
/* The same with more server.mjs options (NULL-terminated, e.g.
 * {"--max-streams", "100", NULL}). */
int test_server_start_args(test_server *s, const char *http, const char *token,
                           const char *const *extra);
void test_server_stop(test_server *s);
/* kill(2) on the server; -1 (and a message) when there is none of ours to
 * signal (ENVD_TEST_EXTERNAL), so that a test can skip() instead. */
int test_server_signal(test_server *s, int sig);

typedef struct test_gateway {
    pid_t pid;
    int h1_port, h2_port, grpc_port;
    int tls_port;    /* TLS (ALPN h2), CA file dir/tls.crt */
    int tls1_port;   /* as tls_port, but HTTP/1.1 only (no h2 in ALPN) */
    int goaway_port; /* as grpc_port, but GOAWAY after 20 requests a connection */
    char dir[256];
} test_gateway;

/* nginx from tests/gateway/nginx.conf.in (its header lists the sandbox
 * ids it knows), routing sandbox ids[i] to servers[i] (ids may be NULL:
 * none), ids starting with "h-" to all n servers by a consistent hash of
 * the id, and gw-flaky-* to servers[0] on every third request. Returns 0
 * or -1. */
int test_gateway_start(test_gateway *g, const test_server *servers, const char *const *ids,
                       size_t n);
void test_gateway_stop(test_gateway *g);

/* Reading the gateway's access log (one line per request: port,
 * connection, sandbox id, status). test_gateway_log_size: where it ends
 * now, to count only what comes later. */
long test_gateway_log_size(const test_gateway *g);
/* Requests on port (0 = any) for sandbox id (NULL = any) past offset;
 * with status != 0 only those answered with it. */
int test_gateway_requests(const test_gateway *g, long offset, int port, const char *id,
                          int status);
/* nginx writes a request's line as it ends, which may be after the client
 * saw the response: waits (up to 3 s) for want matching lines, then a
 * little longer for any beyond, and returns the count. */
int test_gateway_wait_requests(const test_gateway *g, long offset, int port, const char *id,
                               int status, int want);
/* Distinct client connections that carried requests on port past offset. */
int test_gateway_connections(const test_gateway *g, long offset, int port);

/* A runtime + client on s with the given transport (and token). */
envd_client *test_client(envd_runtime *rt, const test_server *s, envd_transport_kind kind,
                         const char *token);
/* A client for sandbox `id` behind a gateway port (h2c: Connect and /files
 * over cleartext HTTP/2). */
envd_client *test_gateway_client(envd_runtime *rt, int port, const char *id,
                                 envd_transport_kind kind, int h2c);

/* Established TCP connections of this process to 127.0.0.1:port (IPv4 or
 * v4-mapped IPv6), each counted once; only this process's sockets (by inode
 * from /proc/self/fd), since another process's socket may carry the same
 * port number. -1 when /proc cannot be read. */
int test_tcp_conns_to(int port);

/* The most of those seen at once, sampled every 2 ms by a thread of its
 * own from start to stop: sampling can miss a peak, never invent one (0:
 * none seen, or /proc unreadable). */
typedef struct test_conn_sampler {
    pthread_t th;
    int port;
    _Atomic int stop;
    int peak;
} test_conn_sampler;

/* 0, or -1 when the thread could not start. */
int test_conn_sampler_start(test_conn_sampler *s, int port);
/* Stops it; returns the peak. */
int test_conn_sampler_stop(test_conn_sampler *s);

/* Fails the test with the error's text when st != ENVD_OK. */
#define assert_envd_ok(st, err)                                                                   \
    do {                                                                                           \
        if ((st) != ENVD_OK)                                                                       \
            fail_msg("%s: %s", envd_strerror(st), (err) ? envd_error_message(err) : "(no error)"); \
    } while (0)

/* A reference server over HTTP/1.1, a runtime and a Connect client of it,
 * directly (test_fx_direct, with a token or NULL) or through the gateway's
 * HTTP/1.1 port as sandbox `id` (test_fx_gateway): the setup of the /files
 * tests, as cmocka group setups (*state is the test_fx). test_fx_direct_h2c:
 * directly, the server speaking h2c too and the client h2c (prior
 * knowledge), h2c set so that the tests make every client of theirs h2c. */
typedef struct test_fx {
    test_server srv;
    test_gateway gw;
    int has_gw;
    int h2c;
    envd_runtime *rt;
    envd_client *c;
} test_fx;

int test_fx_direct(void **state, const char *token);
int test_fx_direct_h2c(void **state);
int test_fx_gateway(void **state, const char *id);
int test_fx_teardown(void **state);

#endif
