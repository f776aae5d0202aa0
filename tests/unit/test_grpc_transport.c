/* The gRPC transport against real servers over loopback: two reference
 * servers (tests/peer) this test starts itself, one with `--http both`
 * (HTTP/1.1 + h2c on one port) and one with `--http h1`. When the group
 * cannot start them every test fails; none is ever skipped.
 *
 *   ENVD_TEST_H2C_ADDR  host:port of a `--http both` server to use instead
 *   ENVD_TEST_H1_ADDR   host:port of a `--http h1` server to use instead
 *
 * The connection-refused and timeout tests bring their own peers: a port
 * with nothing listening, and a "black hole" that accepts TCP and never
 * answers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
/* cmocka.h needs the four above first. */
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/error.h"
#include "core/timer.h"
#include "peer_server.h"
#include "filesystem.pb-c.h"
#include "process.pb-c.h"
#include "transport/transport.h"

/* ------------------------------------------------------------- fixtures */

typedef struct {
    envd_timers *timers;
    envd_grpc_engine *engine;
    envd_rpc_transport *t;
    envd_endpoint h2c, h1;
    char h2c_url[300], h1_url[300];
    peer_proc h2c_peer, h1_peer; /* started unless the variables name servers */
} world;

static world W;

static void set_endpoint(envd_endpoint *ep, char *url, size_t cap, const char *addr)
{
    snprintf(url, cap, "http://%s", addr);
    memset(ep, 0, sizeof *ep);
    ep->base_url = url;
    ep->authority = url + 7;
}

/* The server named by var, or one started with --http http. */
static int use_peer(envd_endpoint *ep, char *url, size_t cap, const char *var, const char *http,
                    peer_proc *p)
{
    p->pid = -1;
    const char *addr = getenv(var);
    if (!addr || !*addr) {
        if (peer_spawn(p, http, NULL, NULL) != 0)
            return -1;
        addr = p->addr;
    }
    set_endpoint(ep, url, cap, addr);
    return 0;
}

static int group_setup(void **state)
{
    (void)state;
    if (use_peer(&W.h2c, W.h2c_url, sizeof W.h2c_url, "ENVD_TEST_H2C_ADDR", "both",
                 &W.h2c_peer) != 0 ||
        use_peer(&W.h1, W.h1_url, sizeof W.h1_url, "ENVD_TEST_H1_ADDR", "h1", &W.h1_peer) != 0)
        return -1;
    if (envd_timers_new(&W.timers) != 0)
        return -1;
    if (envd_grpc_engine_new(2, W.timers, NULL, &W.engine) != ENVD_OK)
        return -1;
    W.t = envd_grpc_engine_transport(W.engine);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    envd_grpc_engine_free(W.engine);
    envd_timers_free(W.timers);
    peer_stop(&W.h2c_peer);
    peer_stop(&W.h1_peer);
    return 0;
}

/* ------------------------------------------------------------------ sink */

/* Records what the transport hands to the callbacks. */
typedef struct sink {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int n_msgs;
    int done;           /* on_done calls: must end at exactly 1 */
    int msg_after_done; /* contract breach if non-zero */
    envd_error *err;
    int stop_after; /* on_message returns 1 at this count; 0 = never */
    int is_start;   /* decode process.StartResponse */
    uint32_t pid;
    int ended, exit_code, keepalives;
    char out[8192];
    size_t out_len;
    uint8_t last[4096];
    size_t last_len;
    /* every stdout byte, when keep_all (out keeps only the first 8 KiB) */
    int keep_all;
    char *all;
    size_t all_len, all_cap;
    /* the thread of the first callback, and callbacks on any other */
    pthread_t thr;
    int thr_set, thr_changes;
} sink;

static void sink_init(sink *s, int is_start)
{
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    s->is_start = is_start;
}

static void sink_fini(sink *s)
{
    free(s->all);
    envd_error_free(s->err);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
}

static void note_thread(sink *s)
{
    if (!s->thr_set) {
        s->thr = pthread_self();
        s->thr_set = 1;
    } else if (!pthread_equal(s->thr, pthread_self())) {
        s->thr_changes++;
    }
}

static void keep_out(sink *s, const uint8_t *d, size_t n)
{
    if (s->all_len + n > s->all_cap) {
        size_t cap = s->all_cap ? s->all_cap : 65536;
        while (cap < s->all_len + n)
            cap *= 2;
        char *a = realloc(s->all, cap);
        assert_non_null(a);
        s->all = a;
        s->all_cap = cap;
    }
    memcpy(s->all + s->all_len, d, n);
    s->all_len += n;
}

static int on_message(void *ud, const uint8_t *msg, size_t len)
{
    sink *s = ud;
    pthread_mutex_lock(&s->mu);
    note_thread(s);
    if (s->done)
        s->msg_after_done++;
    s->n_msgs++;
    if (len <= sizeof s->last) {
        memcpy(s->last, msg, len);
        s->last_len = len;
    }
    if (s->is_start) {
        Process__StartResponse *r = process__start_response__unpack(NULL, len, msg);
        if (r && r->event) {
            Process__ProcessEvent *ev = r->event;
            switch (ev->event_case) {
            case PROCESS__PROCESS_EVENT__EVENT_START: s->pid = ev->start->pid; break;
            case PROCESS__PROCESS_EVENT__EVENT_DATA:
                if (ev->data->output_case == PROCESS__PROCESS_EVENT__DATA_EVENT__OUTPUT_STDOUT) {
                    size_t n = ev->data->stdout.len;
                    if (s->keep_all)
                        keep_out(s, ev->data->stdout.data, n);
                    if (n > sizeof s->out - 1 - s->out_len)
                        n = sizeof s->out - 1 - s->out_len;
                    memcpy(s->out + s->out_len, ev->data->stdout.data, n);
                    s->out_len += n;
                    s->out[s->out_len] = '\0';
                }
                break;
            case PROCESS__PROCESS_EVENT__EVENT_END:
                s->ended = 1;
                s->exit_code = ev->end->exit_code;
                break;
            case PROCESS__PROCESS_EVENT__EVENT_KEEPALIVE: s->keepalives++; break;
            default: break;
            }
        }
        if (r)
            process__start_response__free_unpacked(r, NULL);
    }
    int stop = s->stop_after && s->n_msgs >= s->stop_after;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return stop;
}

static void on_done(void *ud, envd_error *err)
{
    sink *s = ud;
    pthread_mutex_lock(&s->mu);
    note_thread(s);
    s->done++;
    if (s->err)
        envd_error_free(err);
    else
        s->err = err;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static void deadline_in(struct timespec *ts, int ms)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* Waits until pred(s) holds; returns its final value. */
static int sink_wait(sink *s, int (*pred)(sink *, const void *), const void *arg, int ms)
{
    struct timespec ts;
    deadline_in(&ts, ms);
    pthread_mutex_lock(&s->mu);
    int ok;
    while (!(ok = pred(s, arg))) {
        if (pthread_cond_timedwait(&s->cv, &s->mu, &ts) != 0) {
            ok = pred(s, arg);
            break;
        }
    }
    pthread_mutex_unlock(&s->mu);
    return ok;
}

static int p_done(sink *s, const void *a)
{
    (void)a;
    return s->done > 0;
}
static int p_pid(sink *s, const void *a)
{
    (void)a;
    return s->pid != 0 || s->done;
}
static int p_out(sink *s, const void *a)
{
    return strstr(s->out, a) != NULL || s->done;
}

static int wait_done(sink *s, int ms)
{
    return sink_wait(s, p_done, NULL, ms);
}

/* ----------------------------------------------------------- requests */

static uint8_t *pack(const ProtobufCMessage *m, size_t *len)
{
    *len = protobuf_c_message_get_packed_size(m);
    uint8_t *b = malloc(*len ? *len : 1);
    protobuf_c_message_pack(m, b);
    return b;
}

static uint8_t *start_request(const char *cmd, int stdin_open, size_t *len)
{
    Process__StartRequest req = PROCESS__START_REQUEST__INIT;
    Process__ProcessConfig cfg = PROCESS__PROCESS_CONFIG__INIT;
    char *args[] = {"-l", "-c", (char *)cmd};
    cfg.cmd = "/bin/bash";
    cfg.args = args;
    cfg.n_args = 3;
    req.process = &cfg;
    if (!stdin_open) {
        req._stdin_case = PROCESS__START_REQUEST___STDIN_STDIN;
        req.stdin = 0;
    }
    return pack(&req.base, len);
}

static uint8_t *list_request(size_t *len)
{
    Process__ListRequest req = PROCESS__LIST_REQUEST__INIT;
    return pack(&req.base, len);
}

static uint8_t *stat_request(const char *path, size_t *len)
{
    Filesystem__StatRequest req = FILESYSTEM__STAT_REQUEST__INIT;
    req.path = (char *)path;
    return pack(&req.base, len);
}

static uint8_t *close_stdin_request(uint32_t pid, size_t *len)
{
    Process__CloseStdinRequest req = PROCESS__CLOSE_STDIN_REQUEST__INIT;
    Process__ProcessSelector sel = PROCESS__PROCESS_SELECTOR__INIT;
    sel.selector_case = PROCESS__PROCESS_SELECTOR__SELECTOR_PID;
    sel.pid = pid;
    req.process = &sel;
    return pack(&req.base, len);
}

static uint8_t *input_start(uint32_t pid, size_t *len)
{
    Process__StreamInputRequest req = PROCESS__STREAM_INPUT_REQUEST__INIT;
    Process__StreamInputRequest__StartEvent st = PROCESS__STREAM_INPUT_REQUEST__START_EVENT__INIT;
    Process__ProcessSelector sel = PROCESS__PROCESS_SELECTOR__INIT;
    sel.selector_case = PROCESS__PROCESS_SELECTOR__SELECTOR_PID;
    sel.pid = pid;
    st.process = &sel;
    req.event_case = PROCESS__STREAM_INPUT_REQUEST__EVENT_START;
    req.start = &st;
    return pack(&req.base, len);
}

static uint8_t *input_data(const char *text, size_t *len)
{
    Process__StreamInputRequest req = PROCESS__STREAM_INPUT_REQUEST__INIT;
    Process__StreamInputRequest__DataEvent d = PROCESS__STREAM_INPUT_REQUEST__DATA_EVENT__INIT;
    Process__ProcessInput in = PROCESS__PROCESS_INPUT__INIT;
    in.input_case = PROCESS__PROCESS_INPUT__INPUT_STDIN;
    in.stdin.data = (uint8_t *)text;
    in.stdin.len = strlen(text);
    d.input = &in;
    req.event_case = PROCESS__STREAM_INPUT_REQUEST__EVENT_DATA;
    req.data = &d;
    return pack(&req.base, len);
}

static const envd_kv KEEPALIVE_60[] = {{"keepalive-ping-interval", "60"}};

typedef struct {
    const envd_endpoint *ep;
    const char *method;
    envd_rpc_kind kind;
    uint8_t *body; /* freed by call() */
    size_t len;
    const envd_kv *headers;
    size_t n_headers;
    int64_t timeout_ms, idle_ms;
} call_args;

static envd_rpc *call_on(envd_rpc_transport *t, call_args a, sink *s, envd_status *st_out)
{
    envd_rpc_request req = {
        .ep = a.ep,
        .method = a.method,
        .kind = a.kind,
        .headers = a.headers,
        .n_headers = a.n_headers,
        .body = a.body,
        .body_len = a.len,
        .timeout_ms = a.timeout_ms,
        .idle_timeout_ms = a.idle_ms,
    };
    envd_rpc_callbacks cb = {on_message, on_done, s};
    envd_rpc *rpc = NULL;
    envd_status st = t->ops->start(t, &req, &cb, &rpc);
    free(a.body); /* start() copied it */
    if (st_out)
        *st_out = st;
    else
        assert_int_equal(st, ENVD_OK);
    return rpc;
}

static envd_rpc *call(call_args a, sink *s)
{
    return call_on(W.t, a, s, NULL);
}

static void release(envd_rpc *r)
{
    W.t->ops->release(r);
}

static int64_t now_ms(void)
{
    return envd_now_ms();
}

/* ------------------------------------------------------ our own peers */

/* A TCP port with nothing listening on it. */
static int dead_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    bind(fd, (struct sockaddr *)&a, sizeof a);
    getsockname(fd, (struct sockaddr *)&a, &al);
    close(fd);
    return ntohs(a.sin_port);
}

/* Accepts connections, reads and discards, never writes. */
typedef struct {
    int lfd;
    int stop_pipe[2];
    pthread_t th;
    int port;
    char url[64];
    envd_endpoint ep;
} black_hole;

static void *black_hole_main(void *arg)
{
    black_hole *b = arg;
    struct pollfd p[66];
    int n = 2;
    p[0] = (struct pollfd){.fd = b->lfd, .events = POLLIN};
    p[1] = (struct pollfd){.fd = b->stop_pipe[0], .events = POLLIN};
    for (;;) {
        if (poll(p, (nfds_t)n, -1) < 0)
            continue;
        if (p[1].revents)
            break;
        if (p[0].revents & POLLIN) {
            int c = accept(b->lfd, NULL, NULL);
            if (c >= 0 && n < 66)
                p[n++] = (struct pollfd){.fd = c, .events = POLLIN};
            else if (c >= 0)
                close(c);
        }
        for (int i = 2; i < n; i++) {
            if (!p[i].revents)
                continue;
            char buf[4096];
            if (read(p[i].fd, buf, sizeof buf) <= 0) {
                close(p[i].fd);
                p[i--] = p[--n];
            }
        }
    }
    for (int i = 2; i < n; i++)
        close(p[i].fd);
    return NULL;
}

static void black_hole_start(black_hole *b)
{
    memset(b, 0, sizeof *b);
    b->lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    assert_int_equal(bind(b->lfd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(b->lfd, 16), 0);
    getsockname(b->lfd, (struct sockaddr *)&a, &al);
    b->port = ntohs(a.sin_port);
    assert_int_equal(pipe(b->stop_pipe), 0);
    snprintf(b->url, sizeof b->url, "http://127.0.0.1:%d", b->port);
    b->ep.base_url = b->url;
    b->ep.authority = b->url + 7;
    pthread_create(&b->th, NULL, black_hole_main, b);
}

static void black_hole_stop(black_hole *b)
{
    assert_int_equal(write(b->stop_pipe[1], "x", 1), 1);
    pthread_join(b->th, NULL);
    close(b->lfd);
    close(b->stop_pipe[0]);
    close(b->stop_pipe[1]);
}

/* ---------------------------------------------------------------- tests */

static void unary_ok(void **state)
{
    (void)state;
    sink s;
    sink_init(&s, 0);
    size_t len;
    uint8_t *b = list_request(&len);
    envd_rpc *r = call(
        (call_args){&W.h2c, "/process.Process/List", ENVD_RPC_UNARY, b, len, NULL, 0, 10000, 0},
        &s);
    assert_true(wait_done(&s, 10000));
    assert_null(s.err);
    assert_int_equal(s.n_msgs, 1);
    Process__ListResponse *lr = process__list_response__unpack(NULL, s.last_len, s.last);
    assert_non_null(lr);
    process__list_response__free_unpacked(lr, NULL);
    W.t->ops->cancel(r); /* after on_done: a no-op */
    release(r);
    assert_int_equal(s.done, 1);
    sink_fini(&s);
}

static void unary_not_found(void **state)
{
    (void)state;
    sink s;
    sink_init(&s, 0);
    size_t len;
    uint8_t *b = stat_request("/definitely/not/here/libenvd", &len);
    envd_rpc *r = call((call_args){&W.h2c, "/filesystem.Filesystem/Stat", ENVD_RPC_UNARY, b, len,
                                   NULL, 0, 10000, 0},
                       &s);
    assert_true(wait_done(&s, 10000));
    release(r);
    assert_non_null(s.err);
    assert_int_equal(envd_error_code(s.err), ENVD_NOT_FOUND);
    assert_int_equal(envd_error_transport(s.err), ENVD_TRANSPORT_GRPC);
    assert_non_null(strstr(envd_error_message(s.err), "not"));
    assert_false(envd_grpc_error_is_protocol_mismatch(s.err));
    assert_int_equal(s.n_msgs, 0);
    sink_fini(&s);
}

static void server_stream(void **state)
{
    (void)state;
    sink s;
    sink_init(&s, 1);
    size_t len;
    uint8_t *b = start_request("seq 1 5", 0, &len);
    envd_rpc *r = call((call_args){&W.h2c, "/process.Process/Start", ENVD_RPC_SERVER_STREAM, b, len,
                                   KEEPALIVE_60, 1, 10000, 10000},
                       &s);
    assert_true(wait_done(&s, 15000));
    release(r);
    if (s.err)
        print_error("unexpected error: %s\n", envd_error_message(s.err));
    assert_null(s.err);
    assert_true(s.n_msgs >= 3); /* start, data..., end */
    assert_true(s.pid > 0);
    assert_string_equal(s.out, "1\n2\n3\n4\n5\n");
    assert_true(s.ended);
    assert_int_equal(s.exit_code, 0);
    assert_int_equal(s.msg_after_done, 0);
    assert_int_equal(s.done, 1);
    sink_fini(&s);
}

static void client_stream(void **state)
{
    (void)state;
    sink proc, in;
    sink_init(&proc, 1);
    sink_init(&in, 0);
    size_t len;
    uint8_t *b = start_request("cat", 1, &len);
    envd_rpc *pr = call((call_args){&W.h2c, "/process.Process/Start", ENVD_RPC_SERVER_STREAM, b,
                                    len, KEEPALIVE_60, 1, 10000, 0},
                        &proc);
    assert_true(sink_wait(&proc, p_pid, NULL, 10000));
    assert_true(proc.pid > 0);

    envd_rpc *ir = call((call_args){&W.h2c, "/process.Process/StreamInput", ENVD_RPC_CLIENT_STREAM,
                                    NULL, 0, NULL, 0, 10000, 0},
                        &in);
    b = input_start(proc.pid, &len);
    assert_int_equal(W.t->ops->send(ir, b, len), ENVD_OK);
    free(b);
    const char *parts[] = {"hello ", "from ", "libenvd ", "over ", "grpc\n"};
    for (size_t i = 0; i < 5; i++) {
        b = input_data(parts[i], &len);
        assert_int_equal(W.t->ops->send(ir, b, len), ENVD_OK);
        free(b);
    }
    assert_int_equal(W.t->ops->close_send(ir), ENVD_OK);
    /* After close_send, send is a usage error; close_send is idempotent. */
    b = input_data("late\n", &len);
    assert_int_equal(W.t->ops->send(ir, b, len), ENVD_E_USAGE);
    free(b);
    assert_int_equal(W.t->ops->close_send(ir), ENVD_OK);
    assert_true(wait_done(&in, 10000));
    if (in.err)
        print_error("StreamInput: %s\n", envd_error_message(in.err));
    assert_null(in.err);
    assert_int_equal(in.n_msgs, 1);
    release(ir);

    assert_true(sink_wait(&proc, p_out, "hello from libenvd over grpc\n", 10000));
    assert_string_equal(proc.out, "hello from libenvd over grpc\n");

    /* send() on a server stream is a usage error. */
    assert_int_equal(W.t->ops->send(pr, (const uint8_t *)"x", 1), ENVD_E_USAGE);

    /* End cat by closing its stdin. */
    sink cs;
    sink_init(&cs, 0);
    b = close_stdin_request(proc.pid, &len);
    envd_rpc *cr = call((call_args){&W.h2c, "/process.Process/CloseStdin", ENVD_RPC_UNARY, b, len,
                                    NULL, 0, 10000, 0},
                        &cs);
    assert_true(wait_done(&cs, 10000));
    release(cr);
    assert_null(cs.err);
    assert_true(wait_done(&proc, 10000));
    assert_null(proc.err);
    assert_true(proc.ended);
    assert_int_equal(proc.exit_code, 0);
    release(pr);
    sink_fini(&cs);
    sink_fini(&in);
    sink_fini(&proc);
}

static void cancel_mid_stream(void **state)
{
    (void)state;
    sink s;
    sink_init(&s, 1);
    size_t len;
    uint8_t *b = start_request("for i in $(seq 1 200); do echo $i; sleep 0.02; done", 0, &len);
    envd_rpc *r = call((call_args){&W.h2c, "/process.Process/Start", ENVD_RPC_SERVER_STREAM, b, len,
                                   KEEPALIVE_60, 1, 10000, 0},
                       &s);
    assert_true(sink_wait(&s, p_out, "3\n", 10000));
    assert_int_equal(s.done, 0);
    W.t->ops->cancel(r);
    W.t->ops->cancel(r); /* any number of times */
    assert_true(wait_done(&s, 5000));
    assert_non_null(s.err);
    assert_int_equal(envd_error_code(s.err), ENVD_CANCELED);
    assert_false(s.ended);
    usleep(300 * 1000);
    assert_int_equal(s.done, 1);
    assert_int_equal(s.msg_after_done, 0);
    W.t->ops->cancel(r); /* after on_done: no-op */
    release(r);
    sink_fini(&s);
}

static void callback_stops_stream(void **state)
{
    (void)state;
    sink s;
    sink_init(&s, 1);
    s.stop_after = 2;
    size_t len;
    uint8_t *b = start_request("for i in $(seq 1 200); do echo $i; sleep 0.02; done", 0, &len);
    envd_rpc *r = call((call_args){&W.h2c, "/process.Process/Start", ENVD_RPC_SERVER_STREAM, b, len,
                                   KEEPALIVE_60, 1, 10000, 0},
                       &s);
    assert_true(wait_done(&s, 10000));
    release(r);
    assert_non_null(s.err);
    assert_int_equal(envd_error_code(s.err), ENVD_CANCELED);
    assert_int_equal(s.n_msgs, 2); /* nothing delivered after the refusal */
    sink_fini(&s);
}

static void idle_timeout(void **state)
{
    (void)state;
    sink s;
    sink_init(&s, 1);
    size_t len;
    uint8_t *b = start_request("sleep 5", 0, &len);
    int64_t t0 = now_ms();
    envd_rpc *r = call((call_args){&W.h2c, "/process.Process/Start", ENVD_RPC_SERVER_STREAM, b, len,
                                   KEEPALIVE_60, 1, 5000, 300},
                       &s);
    assert_true(wait_done(&s, 5000));
    int64_t took = now_ms() - t0;
    release(r);
    assert_non_null(s.err);
    assert_int_equal(envd_error_code(s.err), ENVD_E_IDLE_TIMEOUT);
    assert_true(s.pid > 0); /* the start event came, then silence */
    assert_true(took >= 250 && took < 3000);
    sink_fini(&s);
}

/* The first-message timeout, against a peer that never answers. */
static void first_message_timeout(void **state)
{
    (void)state;
    black_hole bh;
    black_hole_start(&bh);
    sink s;
    sink_init(&s, 0);
    size_t len;
    uint8_t *b = start_request("echo never", 0, &len);
    int64_t t0 = now_ms();
    envd_rpc *r = call((call_args){&bh.ep, "/process.Process/Start", ENVD_RPC_SERVER_STREAM, b, len,
                                   NULL, 0, 300, 0},
                       &s);
    assert_true(wait_done(&s, 5000));
    int64_t took = now_ms() - t0;
    release(r);
    assert_non_null(s.err);
    assert_int_equal(envd_error_code(s.err), ENVD_DEADLINE_EXCEEDED);
    assert_int_equal(envd_error_transport(s.err), ENVD_TRANSPORT_GRPC);
    assert_false(envd_grpc_error_is_protocol_mismatch(s.err));
    assert_true(took >= 250 && took < 3000);
    sink_fini(&s);

    /* Unary: the call deadline. */
    sink u;
    sink_init(&u, 0);
    b = list_request(&len);
    t0 = now_ms();
    r = call((call_args){&bh.ep, "/process.Process/List", ENVD_RPC_UNARY, b, len, NULL, 0, 300, 0},
             &u);
    assert_true(wait_done(&u, 5000));
    took = now_ms() - t0;
    release(r);
    assert_non_null(u.err);
    assert_int_equal(envd_error_code(u.err), ENVD_DEADLINE_EXCEEDED);
    assert_true(took >= 250 && took < 3000);
    sink_fini(&u);
    black_hole_stop(&bh);
}

static void connection_refused(void **state)
{
    (void)state;
    char url[64];
    int port = dead_port();
    snprintf(url, sizeof url, "http://127.0.0.1:%d", port);
    envd_endpoint ep = {.base_url = url, .authority = url + 7};
    sink s;
    sink_init(&s, 0);
    size_t len;
    uint8_t *b = list_request(&len);
    envd_rpc *r = call(
        (call_args){&ep, "/process.Process/List", ENVD_RPC_UNARY, b, len, NULL, 0, 10000, 0}, &s);
    assert_true(wait_done(&s, 10000));
    release(r);
    assert_non_null(s.err);
    print_message("connection refused -> %d \"%s\"\n", envd_error_code(s.err),
                  envd_error_message(s.err));
    assert_int_equal(envd_error_code(s.err), ENVD_UNAVAILABLE);
    assert_int_equal(envd_error_transport(s.err), ENVD_TRANSPORT_GRPC);
    assert_non_null(strstr(envd_error_message(s.err), url + 7));
    assert_false(envd_grpc_error_is_protocol_mismatch(s.err));
    sink_fini(&s);
}

static void protocol_mismatch_h1(void **state)
{
    (void)state;
    /* Unary and server stream: both must be recognised. */
    for (int i = 0; i < 2; i++) {
        sink s;
        sink_init(&s, 0);
        size_t len;
        uint8_t *b = i == 0 ? list_request(&len) : start_request("echo hi", 0, &len);
        envd_rpc *r =
            call((call_args){&W.h1, i == 0 ? "/process.Process/List" : "/process.Process/Start",
                             i == 0 ? ENVD_RPC_UNARY : ENVD_RPC_SERVER_STREAM, b, len, NULL, 0,
                             10000, 0},
                 &s);
        assert_true(wait_done(&s, 15000));
        release(r);
        assert_non_null(s.err);
        print_message("h1-only server -> %d \"%s\"\n", envd_error_code(s.err),
                      envd_error_message(s.err));
        assert_int_equal(envd_error_transport(s.err), ENVD_TRANSPORT_GRPC);
        assert_true(envd_grpc_error_is_protocol_mismatch(s.err));
        /* The mark survives wrapping by the API layer. */
        envd_error *w = envd_error_wrap(envd_error_dup(s.err), "failed to list processes");
        assert_true(envd_grpc_error_is_protocol_mismatch(w));
        envd_error_free(w);
        sink_fini(&s);
    }
}

/* 200 unary calls and 50 streams at once, started from four threads. */
enum { N_UNARY = 200, N_STREAMS = 50, N_STARTERS = 4 };

typedef struct {
    sink *sinks;
    envd_rpc **rpcs;
    int from, to;
} starter_arg;

static void *starter(void *arg)
{
    starter_arg *a = arg;
    for (int i = a->from; i < a->to; i++) {
        size_t len;
        envd_status st;
        if (i < N_UNARY) {
            uint8_t *b = list_request(&len);
            a->rpcs[i] = call_on(W.t,
                                 (call_args){&W.h2c, "/process.Process/List", ENVD_RPC_UNARY, b,
                                             len, NULL, 0, 30000, 0},
                                 &a->sinks[i], &st);
        } else {
            uint8_t *b = start_request("echo hi", 0, &len);
            a->rpcs[i] =
                call_on(W.t,
                        (call_args){&W.h2c, "/process.Process/Start", ENVD_RPC_SERVER_STREAM, b,
                                    len, KEEPALIVE_60, 1, 30000, 30000},
                        &a->sinks[i], &st);
        }
        if (st != ENVD_OK)
            a->rpcs[i] = NULL;
    }
    return NULL;
}

static void many_concurrent(void **state)
{
    (void)state;
    int n = N_UNARY + N_STREAMS;
    sink *sinks = calloc((size_t)n, sizeof *sinks);
    envd_rpc **rpcs = calloc((size_t)n, sizeof *rpcs);
    for (int i = 0; i < n; i++)
        sink_init(&sinks[i], i >= N_UNARY);
    /* Interleave kinds across starters. */
    pthread_t th[N_STARTERS];
    starter_arg args[N_STARTERS];
    for (int k = 0; k < N_STARTERS; k++) {
        args[k] = (starter_arg){sinks, rpcs, k * n / N_STARTERS, (k + 1) * n / N_STARTERS};
        pthread_create(&th[k], NULL, starter, &args[k]);
    }
    for (int k = 0; k < N_STARTERS; k++)
        pthread_join(th[k], NULL);
    int ok = 0;
    for (int i = 0; i < n; i++) {
        assert_non_null(rpcs[i]);
        assert_true(wait_done(&sinks[i], 60000));
        if (sinks[i].err)
            print_error("call %d: %s\n", i, envd_error_message(sinks[i].err));
        assert_null(sinks[i].err);
        if (i < N_UNARY) {
            assert_int_equal(sinks[i].n_msgs, 1);
        } else {
            assert_string_equal(sinks[i].out, "hi\n");
            assert_true(sinks[i].ended);
        }
        assert_int_equal(sinks[i].done, 1);
        release(rpcs[i]);
        ok++;
    }
    assert_int_equal(ok, n);
    for (int i = 0; i < n; i++)
        sink_fini(&sinks[i]);
    free(sinks);
    free(rpcs);
}

/* The prepared-metadata table (grpc.c md_lookup): headers are built once
 * and reused by content. 300 Stats, each with its user's authorization
 * (five users in turn) and a header whose value changes every call (300
 * values for 64 slots: evictions and slot collisions all along), from two
 * threads at once: every reply must be for the user that call sent (the
 * path "." resolves to that user's home), so no call ever went out with
 * another call's header. */
typedef struct md_worker {
    int first, step;
    int bad;
    char why[200];
} md_worker;

static const char *const MD_USERS[] = {"root", "user", "daemon", "bin", "sys"};

static void *md_calls(void *arg)
{
    md_worker *w = arg;
    for (int i = w->first; i < 300 && !w->bad; i += w->step) {
        const char *u = MD_USERS[i % 5];
        char auth[64], n[16], home[64];
        char raw[32];
        snprintf(raw, sizeof raw, "%s:", u);
        /* base64 of "name:" for these short names, by hand */
        static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        size_t rl = strlen(raw), o = 0;
        char enc[48];
        for (size_t j = 0; j < rl; j += 3) {
            uint32_t v = (uint32_t)(unsigned char)raw[j] << 16;
            if (j + 1 < rl)
                v |= (uint32_t)(unsigned char)raw[j + 1] << 8;
            if (j + 2 < rl)
                v |= (unsigned char)raw[j + 2];
            enc[o++] = b64[(v >> 18) & 63];
            enc[o++] = b64[(v >> 12) & 63];
            enc[o++] = j + 1 < rl ? b64[(v >> 6) & 63] : '=';
            enc[o++] = j + 2 < rl ? b64[v & 63] : '=';
        }
        enc[o] = 0;
        snprintf(auth, sizeof auth, "Basic %s", enc);
        snprintf(n, sizeof n, "%d", i);
        envd_kv h[] = {{"authorization", auth}, {"x-libenvd-test", n}, {"TE", "trailers"}};
        sink s;
        sink_init(&s, 0);
        size_t len;
        uint8_t *b = stat_request(".", &len);
        envd_rpc *r = call((call_args){&W.h2c, "/filesystem.Filesystem/Stat", ENVD_RPC_UNARY, b,
                                       len, h, 3, 10000, 0},
                           &s);
        int done = wait_done(&s, 15000);
        release(r);
        snprintf(home, sizeof home, strcmp(u, "root") == 0 ? "/root" : "/home/%s", u);
        Filesystem__StatResponse *sr =
            done && !s.err && s.n_msgs == 1
                ? filesystem__stat_response__unpack(NULL, s.last_len, s.last)
                : NULL;
        if (!sr || !sr->entry || !sr->entry->path || strcmp(sr->entry->path, home) != 0) {
            w->bad = 1;
            snprintf(w->why, sizeof w->why, "call %d as %s: %s", i, u,
                     !done     ? "no answer"
                     : s.err   ? envd_error_message(s.err)
                     : sr && sr->entry && sr->entry->path ? sr->entry->path
                               : "no entry");
        }
        if (sr)
            filesystem__stat_response__free_unpacked(sr, NULL);
        sink_fini(&s);
    }
    return NULL;
}

static void headers_built_once_stay_per_call(void **state)
{
    (void)state;
    md_worker w[2] = {{0, 2, 0, ""}, {1, 2, 0, ""}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, md_calls, &w[i]), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < 2; i++)
        if (w[i].bad)
            fail_msg("%s", w[i].why);
}

/* Workers past the first park outside core while no call is bound to them
 * (grpc.c worker_park), and a call goes to the least busy worker: while
 * the stream holds worker 0, each Stat goes to a parked worker and must
 * wake it; the stream must go on meanwhile; and an engine whose other
 * workers are all parked must still free. Also checks the threading
 * contract under it: every callback of a call runs on one thread, messages
 * in order (the whole `seq` output, byte for byte). */
static void parked_workers_wake(void **state)
{
    (void)state;
    envd_grpc_engine *e;
    assert_int_equal(envd_grpc_engine_new(4, W.timers, NULL, &e), ENVD_OK);
    envd_rpc_transport *t = envd_grpc_engine_transport(e);
    enum { SEQ = 60000 };
    char cmd[64];
    snprintf(cmd, sizeof cmd, "seq 1 %d; sleep 2", SEQ); /* outlives round 0 */
    sink st;
    sink_init(&st, 1);
    st.keep_all = 1;
    size_t len;
    uint8_t *b = start_request(cmd, 0, &len);
    envd_rpc *sr = call_on(t,
                           (call_args){&W.h2c, "/process.Process/Start", ENVD_RPC_SERVER_STREAM, b,
                                       len, KEEPALIVE_60, 1, 10000, 10000},
                           &st, NULL);
    /* Short calls one at a time: in round 0 the stream holds worker 0, so
     * each goes to a parked worker; in round 1 to worker 0 alone. */
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < 9; i++) {
            sink u;
            sink_init(&u, 0);
            b = stat_request("/", &len);
            envd_rpc *ur = call_on(t,
                                   (call_args){&W.h2c, "/filesystem.Filesystem/Stat",
                                               ENVD_RPC_UNARY, b, len, NULL, 0, 10000, 0},
                                   &u, NULL);
            assert_true(wait_done(&u, 15000));
            t->ops->release(ur);
            if (u.err)
                fail_msg("Stat %d/%d: %s", round, i, envd_error_message(u.err));
            assert_int_equal(u.n_msgs, 1);
            assert_int_equal(u.thr_changes, 0);
            sink_fini(&u);
        }
        if (round == 0)
            assert_true(wait_done(&st, 30000));
        usleep(100 * 1000); /* every worker parked now */
    }
    t->ops->release(sr);
    if (st.err)
        fail_msg("stream: %s", envd_error_message(st.err));
    assert_int_equal(st.done, 1);
    assert_int_equal(st.msg_after_done, 0);
    assert_int_equal(st.thr_changes, 0);
    assert_true(st.ended);
    /* the output, whole and in order */
    char *want = malloc((size_t)SEQ * 8);
    size_t wl = 0;
    for (int i = 1; i <= SEQ; i++)
        wl += (size_t)sprintf(want + wl, "%d\n", i);
    assert_int_equal(st.all_len, wl);
    assert_memory_equal(st.all, want, wl);
    free(want);
    sink_fini(&st);
    envd_grpc_engine_free(e); /* all parked: must join */
}

/* Freeing the engine with calls in flight: each on_done runs exactly once,
 * with CANCELED, before envd_grpc_engine_free returns. */
static void free_with_calls_in_flight(void **state)
{
    (void)state;
    envd_grpc_engine *e;
    assert_int_equal(envd_grpc_engine_new(3, W.timers, NULL, &e), ENVD_OK);
    envd_rpc_transport *t = envd_grpc_engine_transport(e);
    black_hole bh;
    black_hole_start(&bh);
    enum { N = 8 };
    sink s[N];
    envd_rpc *r[N];
    int n_streams = 4;
    for (int i = 0; i < N; i++) {
        sink_init(&s[i], 1);
        size_t len;
        if (i < n_streams) {
            uint8_t *b = start_request("sleep 5", 0, &len);
            r[i] = call_on(t,
                           (call_args){&W.h2c, "/process.Process/Start", ENVD_RPC_SERVER_STREAM, b,
                                       len, KEEPALIVE_60, 1, 0, 0},
                           &s[i], NULL);
        } else if (i % 2) {
            uint8_t *b = list_request(&len);
            r[i] = call_on(
                t,
                (call_args){&bh.ep, "/process.Process/List", ENVD_RPC_UNARY, b, len, NULL, 0, 0, 0},
                &s[i], NULL);
        } else {
            r[i] = call_on(t,
                           (call_args){&bh.ep, "/process.Process/StreamInput",
                                       ENVD_RPC_CLIENT_STREAM, NULL, 0, NULL, 0, 0, 0},
                           &s[i], NULL);
            size_t l2;
            uint8_t *b = input_data("queued", &l2);
            assert_int_equal(t->ops->send(r[i], b, l2), ENVD_OK);
            assert_int_equal(t->ops->send(r[i], b, l2), ENVD_OK);
            free(b);
        }
    }
    for (int i = 0; i < n_streams; i++)
        assert_true(sink_wait(&s[i], p_pid, NULL, 10000));
    const envd_rpc_ops *ops = t->ops; /* static; t itself dies with e */
    envd_grpc_engine_free(e);
    for (int i = 0; i < N; i++) {
        assert_int_equal(s[i].done, 1); /* already, with no waiting */
        assert_non_null(s[i].err);
        assert_int_equal(envd_error_code(s[i].err), ENVD_CANCELED);
        /* The caller's reference outlives the engine. */
        ops->cancel(r[i]);
        ops->release(r[i]);
        sink_fini(&s[i]);
    }
    black_hole_stop(&bh);
}

static void start_usage_errors(void **state)
{
    (void)state;
    sink s;
    sink_init(&s, 0);
    envd_endpoint ep = {.base_url = "http://127.0.0.1:1", .authority = "127.0.0.1:1"};
    envd_rpc_request req = {.ep = &ep, .method = "process.Process/List"}; /* no leading / */
    envd_rpc_callbacks cb = {on_message, on_done, &s};
    envd_rpc *r = (envd_rpc *)&s;
    assert_int_equal(W.t->ops->start(W.t, &req, &cb, &r), ENVD_E_USAGE);
    assert_null(r);
    /* Illegal header value: refused up front, no callback. */
    envd_kv bad[] = {{"x-access-token", "a\nb"}};
    req.method = "/process.Process/List";
    req.headers = bad;
    req.n_headers = 1;
    assert_int_equal(W.t->ops->start(W.t, &req, &cb, &r), ENVD_E_CONFIG);
    assert_null(r);
    usleep(100 * 1000);
    assert_int_equal(s.done, 0);
    sink_fini(&s);
}

/* Methods are registered on each channel (grpc.c conn_registered) and
 * calls made from the handles: each call must still reach its own method,
 * also once the slots are full and further methods go the ordinary way.
 * 30 unknown methods (UNIMPLEMENTED from the server), each followed by a
 * Stat and a List on the same connection that must be answered as
 * themselves. */
static void registered_methods_keep_their_paths(void **state)
{
    (void)state;
    envd_grpc_engine *e;
    assert_int_equal(envd_grpc_engine_new(1, W.timers, NULL, &e), ENVD_OK);
    envd_rpc_transport *t = envd_grpc_engine_transport(e);
    for (int i = 0; i < 30; i++) {
        char method[64];
        snprintf(method, sizeof method, "/filesystem.Filesystem/NoSuch%02d", i);
        const struct {
            const char *method;
            int stat;
        } calls[] = {{method, 1}, {"/filesystem.Filesystem/Stat", 1}, {"/process.Process/List", 0}};
        for (size_t k = 0; k < 3; k++) {
            sink s;
            sink_init(&s, 0);
            size_t len;
            uint8_t *b = calls[k].stat ? stat_request("/", &len) : list_request(&len);
            envd_rpc *r = call_on(t,
                                  (call_args){&W.h2c, calls[k].method, ENVD_RPC_UNARY, b, len,
                                              NULL, 0, 10000, 0},
                                  &s, NULL);
            assert_true(wait_done(&s, 10000));
            t->ops->release(r);
            if (k == 0) {
                assert_non_null(s.err);
                assert_int_equal(envd_error_code(s.err), ENVD_UNIMPLEMENTED);
            } else {
                if (s.err)
                    fail_msg("%s after %s: %s", calls[k].method, method, envd_error_message(s.err));
                assert_int_equal(s.n_msgs, 1);
                if (k == 1) {
                    Filesystem__StatResponse *sr =
                        filesystem__stat_response__unpack(NULL, s.last_len, s.last);
                    assert_non_null(sr);
                    assert_non_null(sr->entry);
                    filesystem__stat_response__free_unpacked(sr, NULL);
                } else {
                    Process__ListResponse *lr =
                        process__list_response__unpack(NULL, s.last_len, s.last);
                    assert_non_null(lr);
                    process__list_response__free_unpacked(lr, NULL);
                }
            }
            sink_fini(&s);
        }
    }
    size_t channels = 0, active = 0;
    envd_grpc_engine_pool_stats(e, &channels, &active);
    assert_int_equal(channels, 1);
    envd_grpc_engine_free(e);
}

/* On Debian's Abseil (built without NDEBUG) the first engine switches its
 * debug deadlock detection off (grpc.c absl_deadlock_off); if an Abseil
 * update renames the function, this says so instead of the bench slowing
 * down silently. */
static void absl_debug_checks_off(void **state)
{
    (void)state;
    const char *keep = getenv("ENVD_ABSL_DEADLOCK_DETECTION");
    assert_int_equal(envd_grpc_absl_deadlock_state(), keep && strcmp(keep, "1") == 0 ? 0 : 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(start_usage_errors),
        cmocka_unit_test(unary_ok),
        cmocka_unit_test(unary_not_found),
        cmocka_unit_test(server_stream),
        cmocka_unit_test(client_stream),
        cmocka_unit_test(cancel_mid_stream),
        cmocka_unit_test(callback_stops_stream),
        cmocka_unit_test(idle_timeout),
        cmocka_unit_test(first_message_timeout),
        cmocka_unit_test(connection_refused),
        cmocka_unit_test(protocol_mismatch_h1),
        cmocka_unit_test(many_concurrent),
        cmocka_unit_test(free_with_calls_in_flight),
        cmocka_unit_test(parked_workers_wake),
        cmocka_unit_test(headers_built_once_stay_per_call),
        cmocka_unit_test(registered_methods_keep_their_paths),
        cmocka_unit_test(absl_debug_checks_off),
    };
    return cmocka_run_group_tests_name("grpc_transport", tests, group_setup, group_teardown);
}
