/* The one error model (src/transport/failure.c): each row of its table,
 * provoked for real over loopback and carried by every RPC transport, must
 * reach the caller as the same status:
 *
 *   gRPC          gRPC core over h2c
 *   Connect/1.1   Connect over HTTP/1.1 (stock envd)
 *   Connect/h2c   Connect over cleartext HTTP/2 (gateways)
 *
 * The peers: the reference server (tests/peer, --http both: h2c gRPC and
 * Connect on one port, started here), a port with nothing listening, a name
 * that cannot resolve, and the C fault server (fault_server.h) that resets,
 * sends garbage, stalls, or answers with a hand-made HTTP/2 or HTTP/1.1
 * reply (a gateway's status, a malformed frame, a page that is not an RPC).
 * Every call runs on engines of its own, so no row sees what an earlier one
 * left in a connection cache (gRPC backs off after a failed connection).
 * The expected codes are written out, not read from the table: a change to
 * the table must be a change to this test too. Two rows have no test here:
 * UNREACHABLE (no route or a connect timeout cannot be made on loopback; it
 * shares REFUSED's code) and LOCAL (no server can make gRPC core or libcurl
 * fail on this side).
 */
#include "curl_test_util.h"
#include "fault_server.h"

#include "core/timer.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
/* cmocka.h needs the four above first. */
#include <cmocka.h>

typedef enum variant { V_GRPC, V_CONNECT_H1, V_CONNECT_H2C, N_VARIANTS } variant;

static const char *const variant_name[N_VARIANTS] = {"gRPC", "Connect/1.1", "Connect/h2c"};

static envd_timers *g_timers;
static peer_proc g_peer; /* --http both */

static const envd_kv g_headers[] = {
    {"authorization", "Basic cm9vdDo="},
    {"keepalive-ping-interval", "60"},
};

/* ---- one call on fresh engines ---------------------------------------------- */

typedef struct vcall {
    variant v;
    envd_grpc_engine *grpc;
    envd_curl_engine *curl;
    envd_rpc_transport *t;
    test_ep ep;
    envd_rpc *rpc;
    rec r;
} vcall;

typedef struct call_spec {
    const char *hostport;
    int tls;
    envd_rpc_kind kind;
    const char *script;  /* server streams: the command Start runs */
    int64_t timeout_ms;  /* 0: 10 s, so a hang fails the test rather than stalling it */
    int64_t idle_ms;
} call_spec;

static void vcall_start(vcall *c, variant v, const call_spec *s)
{
    memset(c, 0, sizeof *c);
    c->v = v;
    rec_init(&c->r);
    c->r.decode_start = s->kind == ENVD_RPC_SERVER_STREAM;
    test_ep_init(&c->ep, s->hostport);
    if (s->tls) {
        snprintf(c->ep.base, sizeof c->ep.base, "https://%s", s->hostport);
        c->ep.ep.tls = 1;
    }
    c->ep.ep.h2c_prior_knowledge = v == V_CONNECT_H2C;
    if (v == V_GRPC) {
        assert_int_equal(envd_grpc_engine_new(1, g_timers, NULL, &c->grpc), ENVD_OK);
        c->t = envd_grpc_engine_transport(c->grpc);
    } else {
        assert_int_equal(envd_curl_engine_new(g_timers, NULL, &c->curl), ENVD_OK);
        c->t = envd_curl_engine_connect_for(c->curl, &c->ep.ep);
    }
    uint8_t *body = NULL;
    size_t len;
    Process__ListRequest lr = PROCESS__LIST_REQUEST__INIT;
    if (s->kind == ENVD_RPC_SERVER_STREAM) {
        len = pack_bash(s->script ? s->script : "echo hi", 0, &body);
    } else {
        len = process__list_request__get_packed_size(&lr);
        body = malloc(len ? len : 1);
        process__list_request__pack(&lr, body);
    }
    envd_rpc_request req = {
        .ep = &c->ep.ep,
        .method = s->kind == ENVD_RPC_SERVER_STREAM ? "/process.Process/Start"
                                                    : "/process.Process/List",
        .kind = s->kind,
        .headers = g_headers,
        .n_headers = sizeof g_headers / sizeof g_headers[0],
        .body = body,
        .body_len = len,
        .timeout_ms = s->timeout_ms ? s->timeout_ms : 10000,
        .idle_timeout_ms = s->idle_ms,
    };
    envd_rpc_callbacks cb = rec_rpc_cb(&c->r);
    assert_int_equal(c->t->ops->start(c->t, &req, &cb, &c->rpc), ENVD_OK);
    free(body);
}

/* Waits for on_done, frees the engines, returns the status the caller saw. */
static envd_status vcall_finish(vcall *c)
{
    if (!rec_wait(&c->r, 20000))
        fail_msg("%s: no on_done within 20 s", variant_name[c->v]);
    envd_status st = rec_code(&c->r);
    print_message("  %-12s %-20s %s\n", variant_name[c->v], envd_strerror(st), rec_msg(&c->r));
    assert_int_equal(c->r.done_count, 1);
    c->t->ops->release(c->rpc);
    if (c->grpc)
        envd_grpc_engine_free(c->grpc);
    if (c->curl)
        envd_curl_engine_free(c->curl);
    rec_destroy(&c->r);
    return st;
}

static envd_status run_one(variant v, const call_spec *s)
{
    vcall c;
    vcall_start(&c, v, s);
    return vcall_finish(&c);
}

static void expect_status(variant v, envd_status got, envd_status want)
{
    if (got != want)
        fail_msg("%s: %s (%d), want %s (%d)", variant_name[v], envd_strerror(got), (int)got,
                 envd_strerror(want), (int)want);
}

/* The same call over every transport; each must end with want. */
static void expect_all(const call_spec *s, envd_status want)
{
    envd_status got[N_VARIANTS];
    for (int v = 0; v < N_VARIANTS; v++)
        got[v] = run_one((variant)v, s);
    for (int v = 0; v < N_VARIANTS; v++)
        expect_status((variant)v, got[v], want);
}

static char g_fault_addr[32];

/* ---- fault scenarios -------------------------------------------------------- */

/* What the HTTP/2 and HTTP/1.1 reply scenarios send (set by the test before
 * the call; read by the connection thread). */
typedef struct reply_spec {
    int status;
    const char *ctype;
    const uint8_t *data;
    size_t len;
    int grpc_status; /* >= 0: gRPC trailers after the data */
    int cut;         /* reset the connection after the data, mid-response */
} reply_spec;

static pthread_mutex_t g_reply_mu = PTHREAD_MUTEX_INITIALIZER;
static reply_spec g_reply;

static void set_reply(reply_spec r)
{
    pthread_mutex_lock(&g_reply_mu);
    g_reply = r;
    pthread_mutex_unlock(&g_reply_mu);
}

static reply_spec get_reply(void)
{
    pthread_mutex_lock(&g_reply_mu);
    reply_spec r = g_reply;
    pthread_mutex_unlock(&g_reply_mu);
    return r;
}

/* Waits until the client has sent its request (or 1 s). */
static void await_request(int fd)
{
    char b[4096];
    struct pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, 1000) > 0)
        (void)recv(fd, b, sizeof b, 0);
}

static void sc_reset(int fd)
{
    await_request(fd);
    fs_reset(fd);
}

static void sc_close(int fd)
{
    await_request(fd);
}

static void sc_garbage(int fd)
{
    await_request(fd);
    static const char junk[] = "\x17\x03\x03 this is not HTTP at all \x01\x02\xff\xfe\n\n";
    fs_write_all(fd, junk, sizeof junk - 1);
    fs_drain(fd, 500);
}

/* An HTTP/1.1 server's answer to an HTTP/2 preface (and to anything). */
static void sc_h1_answer(int fd)
{
    await_request(fd);
    fs_puts(fd, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    fs_drain(fd, 500);
}

/* An HTTP/2 server's first frame (its SETTINGS), whatever was asked. */
static void sc_h2_answer(int fd)
{
    await_request(fd);
    fs_h2_frame(fd, 0x4, 0, 0, NULL, 0);
    fs_drain(fd, 500);
}

static void sc_stall(int fd)
{
    fs_drain(fd, 15000); /* until the client gives up */
}

/* One HTTP/2 stream answered as g_reply says. */
static void sc_h2_reply(int fd)
{
    int sid = fs_h2_accept(fd);
    if (sid <= 0)
        return;
    reply_spec r = get_reply();
    int end_after_headers = !r.data && r.grpc_status < 0 && !r.cut;
    fs_h2_headers(fd, (uint32_t)sid, r.status, r.ctype, end_after_headers);
    if (r.data)
        fs_h2_data(fd, (uint32_t)sid, r.data, r.len, r.grpc_status < 0 && !r.cut);
    if (r.cut) {
        fs_sleep_ms(100); /* let the client take in what came */
        fs_reset(fd);
        return;
    }
    if (r.grpc_status >= 0)
        fs_h2_grpc_trailers(fd, (uint32_t)sid, r.grpc_status);
    fs_drain(fd, 500);
}

/* The same reply in HTTP/1.1 (after the request was read). */
static void sc_h1_reply(int fd)
{
    reply_spec r = get_reply();
    char head[256];
    /* A cut reply announces more than it sends. */
    snprintf(head, sizeof head,
             "HTTP/1.1 %d X\r\n%s%s%sContent-Length: %zu\r\nConnection: close\r\n\r\n",
             r.status, r.ctype ? "Content-Type: " : "", r.ctype ? r.ctype : "",
             r.ctype ? "\r\n" : "", (r.data ? r.len : 0) + (r.cut ? 1000 : 0));
    fs_puts(fd, head);
    if (r.data)
        fs_write_all(fd, r.data, r.len);
    if (r.cut) {
        fs_sleep_ms(100);
        fs_reset(fd);
        return;
    }
    fs_drain(fd, 200);
}

/* The reply over gRPC and Connect/h2c (HTTP/2 scenario) and Connect/1.1. */
static void expect_reply(const call_spec *s, reply_spec h2_grpc, reply_spec h2_connect,
                         reply_spec h1_connect, envd_status want)
{
    envd_status got[N_VARIANTS];
    fs_set_raw(sc_h2_reply);
    set_reply(h2_grpc);
    got[V_GRPC] = run_one(V_GRPC, s);
    set_reply(h2_connect);
    got[V_CONNECT_H2C] = run_one(V_CONNECT_H2C, s);
    fs_set(sc_h1_reply);
    set_reply(h1_connect);
    got[V_CONNECT_H1] = run_one(V_CONNECT_H1, s);
    for (int v = 0; v < N_VARIANTS; v++)
        expect_status((variant)v, got[v], want);
}

/* ---- the rows ------------------------------------------------------------------ */

static void row_nothing_listening(void **state)
{
    (void)state;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &al), 0);
    close(fd); /* the port is free again: nothing listens on it */
    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", ntohs(a.sin_port));
    call_spec unary = {.hostport = addr, .kind = ENVD_RPC_UNARY};
    expect_all(&unary, ENVD_UNAVAILABLE);
    call_spec stream = {.hostport = addr, .kind = ENVD_RPC_SERVER_STREAM};
    expect_all(&stream, ENVD_UNAVAILABLE);
}

static void row_dns_failure(void **state)
{
    (void)state;
    /* .invalid never resolves (RFC 6761). */
    call_spec s = {.hostport = "envd-error-model.invalid:49983", .kind = ENVD_RPC_UNARY};
    expect_all(&s, ENVD_UNAVAILABLE);
}

static void row_tls_failure(void **state)
{
    (void)state;
    /* TLS to a cleartext port: the handshake fails. */
    call_spec s = {.hostport = g_peer.addr, .tls = 1, .kind = ENVD_RPC_UNARY};
    envd_status g = run_one(V_GRPC, &s), c = run_one(V_CONNECT_H1, &s);
    expect_status(V_GRPC, g, ENVD_UNAVAILABLE);
    expect_status(V_CONNECT_H1, c, ENVD_UNAVAILABLE);
}

static void row_reset_before_response(void **state)
{
    (void)state;
    call_spec s = {.hostport = g_fault_addr, .kind = ENVD_RPC_UNARY};
    fs_set_raw(sc_reset);
    expect_all(&s, ENVD_UNAVAILABLE);
    /* Closed (FIN, not RST) without a byte of response. */
    fs_set_raw(sc_close);
    expect_all(&s, ENVD_UNAVAILABLE);
    s.kind = ENVD_RPC_SERVER_STREAM;
    expect_all(&s, ENVD_UNAVAILABLE);
}

static int p_started(const rec *r)
{
    return r->started;
}

static void row_server_killed_mid_stream(void **state)
{
    (void)state;
    peer_proc victim;
    assert_int_equal(peer_spawn(&victim, "both", NULL, NULL), 0);
    call_spec s = {.hostport = victim.addr,
                   .kind = ENVD_RPC_SERVER_STREAM,
                   .script = "echo started; sleep 60"};
    vcall c[N_VARIANTS];
    for (int v = 0; v < N_VARIANTS; v++)
        vcall_start(&c[v], (variant)v, &s);
    for (int v = 0; v < N_VARIANTS; v++)
        if (!rec_wait_for(&c[v].r, p_started, 10000))
            fail_msg("%s: the process did not start: %s", variant_name[v], rec_msg(&c[v].r));
    peer_kill(&victim); /* SIGKILL: no goodbye on any connection */
    envd_status got[N_VARIANTS];
    for (int v = 0; v < N_VARIANTS; v++)
        got[v] = vcall_finish(&c[v]);
    peer_stop(&victim);
    for (int v = 0; v < N_VARIANTS; v++)
        expect_status((variant)v, got[v], ENVD_UNAVAILABLE);
}

/* The connection dies in the middle of a unary reply: headers and part of
 * the body came, then a reset. */
static void row_lost_mid_call(void **state)
{
    (void)state;
    static const uint8_t part[] = {0, 0, 0, 0, 50, 1, 2, 3};
    reply_spec g = {200, "application/grpc", part, sizeof part, -1, 1};
    reply_spec c = {200, "application/proto", part + 5, 3, -1, 1};
    call_spec s = {.hostport = g_fault_addr, .kind = ENVD_RPC_UNARY};
    expect_reply(&s, g, c, c, ENVD_UNAVAILABLE);
}

/* A peer that answers the connection in something other than the HTTP the
 * client speaks: the connection never carries a request, as gRPC core and
 * Go's HTTP client both report it (UNAVAILABLE, with the reason in the
 * message). */
static void row_not_http(void **state)
{
    (void)state;
    call_spec s = {.hostport = g_fault_addr, .kind = ENVD_RPC_UNARY};
    fs_set_raw(sc_garbage);
    expect_all(&s, ENVD_UNAVAILABLE);
    /* The other HTTP version: HTTP/1.1 to an HTTP/2 preface, HTTP/2 to an
     * HTTP/1.1 request. */
    envd_status got[N_VARIANTS];
    fs_set_raw(sc_h1_answer);
    got[V_GRPC] = run_one(V_GRPC, &s);
    got[V_CONNECT_H2C] = run_one(V_CONNECT_H2C, &s);
    fs_set_raw(sc_h2_answer);
    got[V_CONNECT_H1] = run_one(V_CONNECT_H1, &s);
    for (int v = 0; v < N_VARIANTS; v++)
        expect_status((variant)v, got[v], ENVD_UNAVAILABLE);
}

static void row_malformed_frame(void **state)
{
    (void)state;
    call_spec s = {.hostport = g_fault_addr, .kind = ENVD_RPC_SERVER_STREAM};
    /* gRPC: a message prefix that declares 64 bytes, then the stream ends
     * after 3. Connect: an envelope with flags 0xff. */
    static const uint8_t grpc_cut[] = {0, 0, 0, 0, 64, 'a', 'b', 'c'};
    static const uint8_t connect_bad[] = {0xff, 0, 0, 0, 1, 'x'};
    reply_spec g = {200, "application/grpc", grpc_cut, sizeof grpc_cut, -1, 0};
    reply_spec c = {200, "application/connect+proto", connect_bad, sizeof connect_bad, -1, 0};
    expect_reply(&s, g, c, c, ENVD_E_PROTOCOL);
}

static void row_not_an_rpc_reply(void **state)
{
    (void)state;
    /* A 200 from something that is not envd: a proxy's HTML page. */
    static const char page[] = "<html><body>welcome to nginx</body></html>";
    reply_spec r = {200, "text/html", (const uint8_t *)page, sizeof page - 1, -1, 0};
    call_spec s = {.hostport = g_fault_addr, .kind = ENVD_RPC_UNARY};
    expect_reply(&s, r, r, r, ENVD_E_PROTOCOL);
    s.kind = ENVD_RPC_SERVER_STREAM;
    expect_reply(&s, r, r, r, ENVD_E_PROTOCOL);
}

static void row_request_deadline(void **state)
{
    (void)state;
    fs_set_raw(sc_stall);
    call_spec s = {.hostport = g_fault_addr, .kind = ENVD_RPC_UNARY, .timeout_ms = 300};
    expect_all(&s, ENVD_DEADLINE_EXCEEDED);
    s.kind = ENVD_RPC_SERVER_STREAM;
    expect_all(&s, ENVD_DEADLINE_EXCEEDED);
    fs_set_raw(NULL);
}

static void row_idle_timeout(void **state)
{
    (void)state;
    /* The process starts, then says nothing (keepalives every 60 s). */
    call_spec s = {.hostport = g_peer.addr,
                   .kind = ENVD_RPC_SERVER_STREAM,
                   .script = "sleep 5",
                   .timeout_ms = -1,
                   .idle_ms = 400};
    expect_all(&s, ENVD_E_IDLE_TIMEOUT);
}

static void row_gateway_statuses(void **state)
{
    (void)state;
    static const struct {
        int http;
        envd_status want;
    } rows[] = {
        {400, ENVD_INTERNAL},     {401, ENVD_UNAUTHENTICATED}, {403, ENVD_PERMISSION_DENIED},
        {404, ENVD_UNIMPLEMENTED}, {429, ENVD_UNAVAILABLE},     {502, ENVD_UNAVAILABLE},
        {503, ENVD_UNAVAILABLE},  {504, ENVD_UNAVAILABLE},     {507, ENVD_E_NO_SPACE},
        {418, ENVD_UNKNOWN},
    };
    static const char body[] = "the gateway says no";
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        print_message("HTTP %d:\n", rows[i].http);
        reply_spec r = {rows[i].http, "text/plain", (const uint8_t *)body, sizeof body - 1, -1,
                        0};
        call_spec s = {.hostport = g_fault_addr, .kind = ENVD_RPC_UNARY};
        expect_reply(&s, r, r, r, rows[i].want);
        s.kind = ENVD_RPC_SERVER_STREAM;
        expect_reply(&s, r, r, r, rows[i].want);
    }
}

/* ---- group ---------------------------------------------------------------------- */

static int setup(void **state)
{
    (void)state;
    signal(SIGPIPE, SIG_IGN);
    if (peer_spawn(&g_peer, "both", NULL, NULL) != 0)
        return -1;
    if (envd_timers_new(&g_timers) != 0 || fs_start() != 0)
        return -1;
    snprintf(g_fault_addr, sizeof g_fault_addr, "127.0.0.1:%d", g_fs.port);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    fs_stop();
    envd_timers_free(g_timers);
    peer_stop(&g_peer);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(row_nothing_listening),
        cmocka_unit_test(row_dns_failure),
        cmocka_unit_test(row_tls_failure),
        cmocka_unit_test(row_reset_before_response),
        cmocka_unit_test(row_lost_mid_call),
        cmocka_unit_test(row_server_killed_mid_stream),
        cmocka_unit_test(row_not_http),
        cmocka_unit_test(row_malformed_frame),
        cmocka_unit_test(row_not_an_rpc_reply),
        cmocka_unit_test(row_request_deadline),
        cmocka_unit_test(row_idle_timeout),
        cmocka_unit_test(row_gateway_statuses),
    };
    return cmocka_run_group_tests_name("error_model", tests, setup, teardown);
}
