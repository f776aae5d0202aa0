/* Helpers shared by the libcurl transport tests (test_connect_*.c,
 * test_http_*.c): a recorder for one call's callbacks, endpoints from the
 * ENVD_TEST_* variables, and protobuf helpers for the process service. */
#ifndef ENVD_TEST_CURL_UTIL_H
#define ENVD_TEST_CURL_UTIL_H

#include "peer_server.h"
#include "process.pb-c.h"
#include "transport/transport.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Records what one call reports. */
typedef struct rec {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
    int done_count;
    envd_error *err;
    size_t messages;
    uint64_t bytes;        /* message bytes (Connect) or body bytes (HTTP) */
    uint64_t stdout_bytes; /* decoded StartResponse stdout */
    char out[4096];        /* first stdout bytes, NUL-terminated */
    size_t out_len;
    int started; /* StartEvent seen */
    uint32_t pid;
    int ended; /* EndEvent seen */
    int exit_code;
    int status; /* HTTP */
    int64_t content_length;
    int decode_start; /* decode messages as StartResponse */
    int cancel_after; /* >0: on_message returns 1 at this message */
    envd_rpc *call;   /* for cancel from a callback */
    const envd_rpc_ops *ops;
    int cancel_in_cb; /* call ops->cancel instead of returning 1 */
} rec;

static inline void rec_init(rec *r)
{
    memset(r, 0, sizeof *r);
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
}

static inline void rec_destroy(rec *r)
{
    envd_error_free(r->err);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
}

/* Waits up to ms for on_done; returns 1 if it ran. */
static inline int rec_wait(rec *r, int ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&r->mu);
    while (!r->done) {
        if (pthread_cond_timedwait(&r->cv, &r->mu, &ts) == ETIMEDOUT)
            break;
    }
    int d = r->done;
    pthread_mutex_unlock(&r->mu);
    return d;
}

/* Waits until pred(r) holds (checked under the lock) or ms pass. */
static inline int rec_wait_for(rec *r, int (*pred)(const rec *), int ms)
{
    for (int i = 0; i < ms / 5; i++) {
        pthread_mutex_lock(&r->mu);
        int ok = pred(r) || r->done;
        pthread_mutex_unlock(&r->mu);
        if (ok)
            return pred(r);
        struct timespec d = {0, 5000000L};
        nanosleep(&d, NULL);
    }
    return 0;
}

static inline envd_status rec_code(rec *r)
{
    pthread_mutex_lock(&r->mu);
    envd_status s = r->err ? envd_error_code(r->err) : ENVD_OK;
    pthread_mutex_unlock(&r->mu);
    return s;
}

static inline const char *rec_msg(rec *r)
{
    return r->err ? envd_error_message(r->err) : "(no error)";
}

static inline int rec_on_message(void *ud, const uint8_t *msg, size_t len)
{
    rec *r = ud;
    int stop = 0;
    pthread_mutex_lock(&r->mu);
    r->messages++;
    r->bytes += len;
    if (r->decode_start) {
        Process__StartResponse *m = process__start_response__unpack(NULL, len, msg);
        if (m && m->event) {
            Process__ProcessEvent *ev = m->event;
            if (ev->event_case == PROCESS__PROCESS_EVENT__EVENT_START) {
                r->started = 1;
                r->pid = ev->start->pid;
            } else if (ev->event_case == PROCESS__PROCESS_EVENT__EVENT_DATA &&
                       ev->data->output_case == PROCESS__PROCESS_EVENT__DATA_EVENT__OUTPUT_STDOUT) {
                ProtobufCBinaryData d = ev->data->stdout;
                r->stdout_bytes += d.len;
                size_t room = sizeof r->out - 1 - r->out_len;
                size_t k = d.len < room ? d.len : room;
                memcpy(r->out + r->out_len, d.data, k);
                r->out_len += k;
                r->out[r->out_len] = '\0';
            } else if (ev->event_case == PROCESS__PROCESS_EVENT__EVENT_END) {
                r->ended = 1;
                r->exit_code = ev->end->exit_code;
            }
        }
        if (m)
            process__start_response__free_unpacked(m, NULL);
    }
    if (r->cancel_after > 0 && r->messages == (size_t)r->cancel_after)
        stop = 1;
    int in_cb = r->cancel_in_cb;
    pthread_mutex_unlock(&r->mu);
    if (stop && in_cb) {
        r->ops->cancel(r->call);
        return 0;
    }
    return stop;
}

static inline void rec_on_done(void *ud, envd_error *err)
{
    rec *r = ud;
    pthread_mutex_lock(&r->mu);
    r->done = 1;
    r->done_count++;
    if (r->err)
        envd_error_free(r->err);
    r->err = err;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

static inline envd_rpc_callbacks rec_rpc_cb(rec *r)
{
    envd_rpc_callbacks cb = {rec_on_message, rec_on_done, r};
    return cb;
}

/* ---- endpoints ----------------------------------------------------------- */

typedef struct test_ep {
    envd_endpoint ep;
    char base[128];
    char auth[128];
} test_ep;

static inline void test_ep_init(test_ep *t, const char *hostport)
{
    memset(t, 0, sizeof *t);
    snprintf(t->base, sizeof t->base, "http://%s", hostport);
    snprintf(t->auth, sizeof t->auth, "%s", hostport);
    t->ep.base_url = t->base;
    t->ep.authority = t->auth;
}

/* Group setup for tests that need an HTTP/1.1 reference server: uses
 * ENVD_TEST_H1_ADDR/ENVD_TEST_ROOT when both are set (a server of your own),
 * else starts one (and sets them). Returns -1 when neither works: the group
 * then fails, it never skips. */
static inline int peer_ensure(peer_proc *p)
{
    p->pid = -1;
    const char *a = getenv("ENVD_TEST_H1_ADDR"), *root = getenv("ENVD_TEST_ROOT");
    if (a && a[0] && root && root[0])
        return 0;
    if (peer_spawn(p, "h1", "--default-user", "root") != 0)
        return -1;
    setenv("ENVD_TEST_H1_ADDR", p->addr, 1);
    setenv("ENVD_TEST_ROOT", p->root, 1);
    return 0;
}

/* The reference server's host:port, or NULL. */
static inline const char *peer_addr(void)
{
    const char *a = getenv("ENVD_TEST_H1_ADDR");
    return a && a[0] ? a : NULL;
}

static inline const char *peer_root(void)
{
    const char *a = getenv("ENVD_TEST_ROOT");
    return a && a[0] ? a : NULL;
}

/* envd's default headers for a call as root. */
static const envd_kv test_headers[] = {
    {"authorization", "Basic cm9vdDo="},
    {"keepalive-ping-interval", "50"},
};

/* ---- process messages ----------------------------------------------------- */

/* Serialises StartRequest{cmd, args, stdin}; caller frees *out. */
static inline size_t pack_start(const char *cmd, const char *const *args, size_t nargs,
                                int with_stdin, uint8_t **out)
{
    Process__ProcessConfig cfg = PROCESS__PROCESS_CONFIG__INIT;
    cfg.cmd = (char *)cmd;
    cfg.args = (char **)args;
    cfg.n_args = nargs;
    Process__StartRequest req = PROCESS__START_REQUEST__INIT;
    req.process = &cfg;
    req._stdin_case = PROCESS__START_REQUEST___STDIN_STDIN;
    req.stdin = with_stdin ? 1 : 0;
    size_t n = process__start_request__get_packed_size(&req);
    *out = malloc(n ? n : 1);
    process__start_request__pack(&req, *out);
    return n;
}

/* bash -l -c script */
static inline size_t pack_bash(const char *script, int with_stdin, uint8_t **out)
{
    const char *args[] = {"-l", "-c", script};
    return pack_start("/bin/bash", args, 3, with_stdin, out);
}

static inline size_t pack_stream_input_start(uint32_t pid, uint8_t **out)
{
    Process__ProcessSelector sel = PROCESS__PROCESS_SELECTOR__INIT;
    sel.selector_case = PROCESS__PROCESS_SELECTOR__SELECTOR_PID;
    sel.pid = pid;
    Process__StreamInputRequest__StartEvent st = PROCESS__STREAM_INPUT_REQUEST__START_EVENT__INIT;
    st.process = &sel;
    Process__StreamInputRequest req = PROCESS__STREAM_INPUT_REQUEST__INIT;
    req.event_case = PROCESS__STREAM_INPUT_REQUEST__EVENT_START;
    req.start = &st;
    size_t n = process__stream_input_request__get_packed_size(&req);
    *out = malloc(n ? n : 1);
    process__stream_input_request__pack(&req, *out);
    return n;
}

static inline size_t pack_stream_input_data(const char *text, uint8_t **out)
{
    Process__ProcessInput in = PROCESS__PROCESS_INPUT__INIT;
    in.input_case = PROCESS__PROCESS_INPUT__INPUT_STDIN;
    in.stdin.data = (uint8_t *)text;
    in.stdin.len = strlen(text);
    Process__StreamInputRequest__DataEvent de = PROCESS__STREAM_INPUT_REQUEST__DATA_EVENT__INIT;
    de.input = &in;
    Process__StreamInputRequest req = PROCESS__STREAM_INPUT_REQUEST__INIT;
    req.event_case = PROCESS__STREAM_INPUT_REQUEST__EVENT_DATA;
    req.data = &de;
    size_t n = process__stream_input_request__get_packed_size(&req);
    *out = malloc(n ? n : 1);
    process__stream_input_request__pack(&req, *out);
    return n;
}

#endif
