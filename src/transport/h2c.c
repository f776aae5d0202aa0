/* Connect over HTTP/2 on libnghttp2: cleartext with prior knowledge (h2c),
 * and over TLS (OpenSSL, ALPN h2) once an origin is known to speak HTTP/2.
 * /files transfers to the same origins run here too (envd_h2c_http_start,
 * from http.c), as streams beside the Connect calls: the request body is
 * http_body.c's, the clocks are the ones http.c's transfers have on
 * libcurl (reply timeout from the end of an upload, idle, whole-transfer
 * deadline, minimum rate), and a gzip or deflate response is decoded here.
 *
 * libcurl before 8.0 cannot reuse a prior-knowledge h2c connection (curl
 * issue #10634): every Connect call over h2c paid a TCP connection of its
 * own, and at 256 calls in flight the server's accept rate capped
 * throughput at a fifth of h2load's. This engine multiplexes instead: per
 * origin (host and port) a pool of HTTP/2 connections, each carrying up to
 * min(the peer's SETTINGS_MAX_CONCURRENT_STREAMS, streams_per_connection)
 * calls; a new connection opens when all are full, up to max_connections;
 * past that, calls wait in the origin's queue, in order, holding only their
 * own record.
 *
 * It has no thread of its own: the libcurl engine's I/O thread runs it, on
 * the same epoll set (its sockets are tagged, see H2_TAG) and the same
 * wake-up eventfd. Other threads hand it requests (add, cancel, resume, arm
 * timers) through a mutex-protected queue of its own, as curl_engine.c
 * does. The Connect protocol itself
 * (request bodies, reply reading, errors) is connect_call.c's, shared with
 * the libcurl carrier.
 *
 * A connection takes calls before the server's SETTINGS arrive (up to
 * streams_per_connection) but submits them only after: so a server that
 * allows fewer streams than we assumed gets the excess back into the
 * origin's queue instead of nghttp2's, where they would wait behind long
 * streams. A stream the server refused (REFUSED_STREAM, or past a GOAWAY's
 * last stream) never ran and goes back to the queue too.
 *
 * Over TLS: libcurl multiplexes HTTP/2 over TLS itself, but every socket
 * event makes it run each transfer on that connection (curl's multi_socket
 * expires them all), and each of those polls the socket: at 256 calls in
 * flight on 3 connections the client CPU per List call rose from 208 to
 * 340-420 us. Here an event costs the streams that have frames in it. The
 * engine only takes an https origin once libcurl has seen it choose h2 by
 * ALPN (curl_engine.c routes by that), so a server that speaks HTTP/1.1
 * over TLS keeps libcurl; should ALPN later say otherwise, the calls that
 * waited for that connection fail (not sent) and the origin goes back to
 * libcurl. Peer verification and host name checks are OpenSSL's, with the
 * endpoint's CA file or the system's roots; contexts are shared by every
 * origin with the same CA file and verification.
 */
#include "transport/connect_call.h"
#include "core/alloc.h"
#include "transport/curl_engine.h"
#include "transport/http_body.h"

#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <nghttp2/nghttp2.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

enum { Q_ADD = 1u, Q_CANCEL = 2u, Q_RESUME = 4u, Q_ARM = 8u };

/* A connection with no call for this long is closed. */
#define CONN_IDLE_MS 60000
/* From connect() to the server's SETTINGS, at most: past it the connection
 * is given up (its waiting calls fail as unreachable), so a peer that
 * swallows SYNs cannot hold an origin's calls forever. */
#define CONN_SETUP_MS 20000
#define DNS_RETRY_MS 1000
/* After ALPN turned HTTP/2 down, calls that were already on their way
 * here fail for this long without a new handshake each (later ones go to
 * libcurl). */
#define NOT_H2_HOLD_MS 5000
/* Flow control: what the server may send ahead of us, per stream and per
 * connection. Replies are consumed as they arrive (the reply reader holds
 * at most one envelope), so these bound nothing but the server's pace. */
#define STREAM_WINDOW (1 << 20)
#define CONN_WINDOW (16 << 20)
/* Bytes gathered before one write (frames of many streams together). */
#define WBUF_FLUSH (64 << 10)
#define RBUF_SIZE (64 << 10)

/* epoll data of this engine's sockets: the connection's address with the
 * top bit set (the libcurl engine's are plain descriptors). */
#define H2_TAG ((uint64_t)1 << 63)

#define H2_ORIGIN_BUCKETS 1024
#define H2_MAX_ADDRS 4

#define NOT_H2 "the server did not answer in HTTP/2 (not an h2c port? see envd_config_set_h2c)"
#define NOT_H2_TLS "the server did not choose HTTP/2 over TLS (ALPN); later calls use libcurl"

typedef struct h2_call h2_call;
typedef struct h2_conn h2_conn;
typedef struct h2_origin h2_origin;

enum call_state { C_NEW, C_QUEUED, C_PENDING, C_OPEN, C_DONE };

/* A /files transfer (envd_http_start) on this engine: what it has beyond a
 * Connect call's connection, stream and clocks. */
typedef struct h2_http {
    envd_http_callbacks cb;
    envd_http_body *body; /* NULL: no request body */
    const char *label;    /* "POST /files?path=..." for messages */
    int64_t reply_timeout_ms; /* the response is due this long after the body */
    int64_t *retry_after_out;
    int64_t last_progress;
    int body_eof;  /* the whole body was produced (or there is none) */
    int body_read; /* some of it was: the request can no longer be sent again */
    int headers_done;
    int encoding;  /* of the response: 0 none, -1 one not decoded here, else zlib's window bits */
    int inflating; /* zs is initialised */
    z_stream zs;
    envd_error *err; /* decided on the way; wins at the end */
} h2_http;

struct h2_call {
    envd_h2c_engine *eng;
    atomic_int refs;
    atomic_int cancel_requested;
    atomic_int finished;
    envd_connect_reply rep;
    envd_connect_sendq sq;
    h2_http *http; /* a /files transfer (then rep and sq are unused) */

    /* The request, in the call's own allocation. */
    nghttp2_nv *nva;
    size_t nvlen;
    const uint8_t *req;
    size_t req_len, req_off;
    const char *url;       /* for messages */
    const char *authority; /* host[:port] */
    const char *okey;      /* the origin's key: scheme, authority, CA file, verification */
    const char *ca_file;   /* TLS: in okey's allocation; NULL = the system's roots */
    int tls, insecure;

    int64_t timeout_ms, idle_timeout_ms;
    int timeout_whole, idle_before_first, timers_deferred;
    /* /files: a deadline on the whole transfer, and the response body's
     * minimum rate (min_bytes in every min_window_ms from its headers). */
    int64_t deadline_ms, min_bytes, min_window_ms;

    /* I/O thread. */
    int state;
    h2_origin *origin;
    h2_conn *conn;
    int32_t stream_id;
    int64_t first_deadline, last_activity;
    int64_t deadline_at, rate_from;
    uint64_t rate_bytes;
    int first_seen, timers_on;
    long status;
    int64_t content_length;
    char ctype[96];
    int64_t retry_after_ms;
    int responded; /* any response byte (headers included) */
    h2_call *prev, *next;   /* the engine's live list */
    h2_call *wprev, *wnext; /* origin queue, or the connection's pending / open list */

    envd_req rq; /* the engine's request queue (reqq.h) */
};

typedef struct call_list {
    h2_call *head, *tail;
    int n;
} call_list;

struct h2_conn {
    h2_origin *o;
    h2_conn *next;
    int fd;
    int addr_i;    /* which of the origin's addresses */
    nghttp2_session *s;
    SSL *ssl;      /* TLS origins */
    int tls_up;    /* the handshake is done (TLS) */
    int connected; /* TCP up */
    int ready;     /* the server's first SETTINGS came */
    int goaway;    /* no new streams */
    int wblocked;  /* the socket is full: wait for EPOLLOUT */
    uint32_t events;
    call_list pending; /* taken before ready */
    call_list open;    /* streams submitted, not closed */
    int n_streams;     /* nghttp2 streams not closed (open list plus detached ones) */
    int64_t idle_since;
    int64_t opened_at;
    uint8_t *wbuf;
    size_t wlen, wcap;
    h2_conn *dnext; /* engine's dirty list */
    int on_dirty; /* on the dirty list: has frames to send */
    char why[128]; /* nghttp2's word on why it ended the session */
};

typedef struct tls_ctx tls_ctx;
struct tls_ctx {
    tls_ctx *next;
    SSL_CTX *ctx;
    int insecure;
    char ca_file[]; /* "" = the system's roots */
};

struct h2_origin {
    h2_origin *next;
    char *key; /* "h|host:port", "s|host:port|insecure|ca-file" */
    char *host, *port;
    int tls, host_is_ip;
    tls_ctx *tc;         /* TLS: shared with origins of the same CA and verification */
    char tls_why[160];   /* TLS: why no context could be made ("" = none made yet) */
    /* The name's addresses, in getaddrinfo's order; cur is the one
     * connections go to: a refused or failed connect moves it on to the
     * next (localhost is ::1 first, a server may listen on 127.0.0.1
     * only). */
    struct sockaddr_storage addr[H2_MAX_ADDRS];
    socklen_t alen[H2_MAX_ADDRS];
    int naddr, cur;
    int resolved;
    /* A failed lookup is remembered for DNS_RETRY_MS: the calls queued
     * behind it fail with it instead of each blocking the I/O thread in
     * getaddrinfo again. */
    int64_t dns_failed_at;
    int dns_rc;
    char dns_why[96];
    h2_conn *conns;
    int n_conns;
    call_list queue;
    envd_h2c_engine *eng;
    h2_origin *hnext;  /* hash chain */
    h2_origin *pnext;  /* the engine's list of origins whose queue may move */
    int on_place;
    size_t bucket;
    int n_calls;       /* entered and not finished */
    int64_t not_h2_at; /* TLS: when ALPN last chose something else; for
                        * NOT_H2_HOLD_MS its calls fail at once */
    char *auth;        /* host[:port] as the endpoint gave it */
    const char *ca_file; /* TLS: in key; NULL = the system's roots */
    int insecure;
};

struct envd_h2c_engine {
    envd_rpc_transport tp;
    envd_pool_limits lim;
    pthread_mutex_t mu;
    envd_reqq q;            /* mu */
    int stopped;            /* mu: the I/O thread took its last queue */
    int wake_fd, epoll_fd;  /* the host loop's */

    /* I/O thread. */
    h2_call *live;
    h2_origin *origins; /* all of them, by next */
    h2_origin *obucket[H2_ORIGIN_BUCKETS];
    h2_origin *to_place; /* by pnext */
    h2_conn *dirty;
    int64_t next_check;
    int64_t next_sweep;
    nghttp2_session_callbacks *cbs;
    nghttp2_option *opt;
    tls_ctx *tls_ctxs;
    void (*not_h2)(void *ud, const char *authority);
    void *not_h2_ud;
    uint8_t rbuf[RBUF_SIZE];

    atomic_size_t n_conns, n_connects, n_calls;
};

static h2_call *call_of(envd_rpc *r)
{
    return (h2_call *)(void *)r;
}

/* ---- lists ------------------------------------------------------------------ */

static void list_push(call_list *l, h2_call *c, int front)
{
    c->wprev = c->wnext = NULL;
    if (!l->head) {
        l->head = l->tail = c;
    } else if (front) {
        c->wnext = l->head;
        l->head->wprev = c;
        l->head = c;
    } else {
        c->wprev = l->tail;
        l->tail->wnext = c;
        l->tail = c;
    }
    l->n++;
}

static void list_del(call_list *l, h2_call *c)
{
    if (c->wprev)
        c->wprev->wnext = c->wnext;
    else
        l->head = c->wnext;
    if (c->wnext)
        c->wnext->wprev = c->wprev;
    else
        l->tail = c->wprev;
    c->wprev = c->wnext = NULL;
    l->n--;
}

static h2_call *list_pop(call_list *l)
{
    h2_call *c = l->head;
    if (c)
        list_del(l, c);
    return c;
}

/* ---- references ------------------------------------------------------------- */

static void call_free(h2_call *c)
{
    if (c->http) {
        envd_http_body_free(c->http->body);
        if (c->http->inflating)
            inflateEnd(&c->http->zs);
        envd_error_free(c->http->err);
        free(c->http);
    }
    envd_connect_reply_free(&c->rep);
    envd_connect_sendq_free(&c->sq);
    free(c);
}

static void call_ref(h2_call *c)
{
    atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
}

static void call_unref(h2_call *c)
{
    if (c && atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) == 1)
        call_free(c);
}

/* ---- submission queue ------------------------------------------------------- */

static void wake(envd_h2c_engine *e)
{
    uint64_t one = 1;
    ssize_t n = write(e->wake_fd, &one, sizeof one);
    (void)n;
}

static int enqueue(envd_h2c_engine *e, h2_call *c, unsigned bits)
{
    pthread_mutex_lock(&e->mu);
    if (e->stopped) {
        pthread_mutex_unlock(&e->mu);
        return -1;
    }
    if (envd_reqq_put(&e->q, &c->rq, bits))
        call_ref(c);
    /* Under the lock, so the host loop's descriptor is still open. */
    wake(e);
    pthread_mutex_unlock(&e->mu);
    return 0;
}

#define CALL_OF(r) ENVD_REQ_OWNER(r, h2_call, rq)

static envd_req *take_queue(envd_h2c_engine *e, int stop)
{
    pthread_mutex_lock(&e->mu);
    envd_req *list = envd_reqq_take(&e->q);
    if (stop)
        e->stopped = 1;
    pthread_mutex_unlock(&e->mu);
    return list;
}

/* ---- finishing a call (I/O thread) ------------------------------------------ */

static void note_deadline(envd_h2c_engine *e, int64_t when)
{
    if (when < e->next_check)
        e->next_check = when;
}

static void conn_dirty(envd_h2c_engine *e, h2_conn *k)
{
    if (!k->on_dirty) {
        k->on_dirty = 1;
        k->dnext = e->dirty;
        e->dirty = k;
    }
}

/* o's queue may move on: place() it before the loop sleeps. */
static void want_place(h2_origin *o)
{
    envd_h2c_engine *e = o->eng;
    if (!o->on_place) {
        o->on_place = 1;
        o->pnext = e->to_place;
        e->to_place = o;
    }
}

/* Takes c off whatever holds it: the origin's queue, a connection's pending
 * list, or its stream (reset when the stream is still open). */
static void detach(envd_h2c_engine *e, h2_call *c, int reset)
{
    switch (c->state) {
    case C_QUEUED: list_del(&c->origin->queue, c); break;
    case C_PENDING: list_del(&c->conn->pending, c); break;
    case C_OPEN:
        list_del(&c->conn->open, c);
        nghttp2_session_set_stream_user_data(c->conn->s, c->stream_id, NULL);
        if (reset) {
            nghttp2_submit_rst_stream(c->conn->s, NGHTTP2_FLAG_NONE, c->stream_id,
                                      NGHTTP2_CANCEL);
            conn_dirty(e, c->conn);
        }
        want_place(c->origin);
        break;
    default: break;
    }
    c->conn = NULL;
    c->state = C_NEW;
}

/* A /files transfer's outcome, as http.c's over libcurl: this side's stop
 * (cancel, a clock) wins, then an error decided on the way (a body source
 * that failed, an undecodable body), then the carrier's; a stream that
 * ended before the response headers is a cut-off response. */
static envd_error *http_outcome(h2_call *c, envd_error *failed, int aborted)
{
    h2_http *h = c->http;
    envd_error *err = failed;
    if (!aborted && h->err) {
        envd_error_free(failed);
        err = h->err;
        h->err = NULL;
    } else if (!err && !h->headers_done) {
        err = envd_error_new(envd_failure_status(ENVD_FAILURE_BROKEN, 0), ENVD_TRANSPORT_HTTP, 0,
                             "%s: the stream ended inside the response headers", h->label);
    }
    return err;
}

/* Ends c: failed is the carrier's error (NULL: the reply arrived whole),
 * kind its failure kind for the retry rule (0: none), aborted whether this
 * side stopped the call. */
static void finish(envd_h2c_engine *e, h2_call *c, envd_error *failed, int kind, int aborted)
{
    if (atomic_exchange_explicit(&c->finished, 1, memory_order_acq_rel))
        return;
    detach(e, c, 1);
    if (c->origin) {
        atomic_fetch_sub_explicit(&e->n_calls, 1, memory_order_relaxed);
        c->origin->n_calls--;
    }
    c->state = C_DONE;
    if (c->prev)
        c->prev->next = c->next;
    else if (e->live == c)
        e->live = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    envd_error *err;
    if (c->http) {
        err = http_outcome(c, failed, aborted);
    } else {
        err = envd_connect_reply_finish(&c->rep, failed, aborted);
    }
    if (err) {
        if (kind && err == failed)
            envd_error_set_failure(err, kind);
        envd_error_set_retry_after(err, c->retry_after_ms);
    }
    if (c->http) {
        if (c->http->retry_after_out)
            *c->http->retry_after_out = c->retry_after_ms;
        c->http->cb.on_done(c->http->cb.ud, err);
    } else {
        c->rep.cb.on_done(c->rep.cb.ud, err);
    }
    call_unref(c); /* the engine's reference */
}

static void fail(envd_h2c_engine *e, h2_call *c, envd_failure kind, const char *what,
                 const char *detail)
{
    char buf[512];
    snprintf(buf, sizeof buf, "%s (%s): %s", what, c->url, detail);
    envd_status st = envd_failure_status(kind, 0);
    envd_error *err = c->http ? envd_error_new(st, ENVD_TRANSPORT_HTTP, (int)c->status, "%s: %s",
                                               c->http->label, buf)
                              : envd_connect_reply_broken(&c->rep, st, buf);
    finish(e, c, err, (int)kind, 0);
}

static void abort_call(envd_h2c_engine *e, h2_call *c, envd_status st, const char *why)
{
    envd_error *err;
    if (c->http) {
        /* The reply clock of an upload runs from the end of its body. */
        const char *after = st == ENVD_DEADLINE_EXCEEDED && c->http->body &&
                                    strncmp(why, "no response", 11) == 0
                                ? " after the upload"
                                : "";
        err = envd_error_new(st, ENVD_TRANSPORT_HTTP, (int)c->status, "%s: %s%s",
                             c->http->label, why, after);
    } else {
        err = envd_error_new(st, ENVD_TRANSPORT_CONNECT, 0, "%s: %s", c->rep.method, why);
    }
    finish(e, c, err, 0, 1);
}

/* ---- timers ----------------------------------------------------------------- */

static int idle_applies(const h2_call *c)
{
    return c->idle_timeout_ms > 0 && (c->first_seen || c->idle_before_first);
}

static void start_timers(envd_h2c_engine *e, h2_call *c, int64_t now)
{
    c->timers_on = 1;
    c->last_activity = now;
    c->first_deadline = 0;
    if (c->timeout_ms > 0 && (!c->first_seen || c->timeout_whole)) {
        c->first_deadline = now + c->timeout_ms;
        note_deadline(e, c->first_deadline);
    }
    if (idle_applies(c))
        note_deadline(e, now + c->idle_timeout_ms);
    if (c->deadline_ms > 0 && !c->deadline_at) {
        c->deadline_at = now + c->deadline_ms;
        note_deadline(e, c->deadline_at);
    }
}

static int rate_applies(const h2_call *c)
{
    return c->min_bytes > 0 && c->min_window_ms > 0 && c->rate_from > 0;
}

static void on_activity(void *ud, int whole)
{
    h2_call *c = ud;
    int64_t now = envd_now_ms();
    c->last_activity = now;
    if (whole && !c->first_seen) {
        c->first_seen = 1;
        if (!c->timeout_whole)
            c->first_deadline = 0;
        if (c->timers_on && c->idle_timeout_ms > 0)
            note_deadline(c->eng, now + c->idle_timeout_ms);
        c->rate_from = now;
        c->rate_bytes = 0;
        if (c->timers_on && rate_applies(c))
            note_deadline(c->eng, now + c->min_window_ms);
    }
}

/* Ends the calls whose clocks ran out; returns when the next may. */
static int64_t check_timers(envd_h2c_engine *e, int64_t now)
{
    int64_t next = INT64_MAX;
    char why[256];
    h2_call *c = e->live;
    while (c) {
        h2_call *nx = c->next;
        if (c->timers_on) {
            const char *wait =
                c->state == C_QUEUED || c->state == C_PENDING
                    ? " without a stream (still connecting, or every connection to the endpoint "
                      "full: envd_config_set_connection_limits)"
                    : "";
            if (c->deadline_at && now >= c->deadline_at) {
                snprintf(why, sizeof why, "deadline of %lld ms exceeded%s",
                         (long long)c->deadline_ms, wait);
                abort_call(e, c, envd_failure_status(ENVD_FAILURE_DEADLINE, 0), why);
            } else if (c->first_deadline && now >= c->first_deadline) {
                if (c->timeout_whole)
                    snprintf(why, sizeof why, "deadline of %lld ms exceeded%s",
                             (long long)c->timeout_ms, wait);
                else
                    snprintf(why, sizeof why, "no response within %lld ms%s",
                             (long long)c->timeout_ms, wait);
                abort_call(e, c, envd_failure_status(ENVD_FAILURE_DEADLINE, 0), why);
            } else if (idle_applies(c) && now - c->last_activity >= c->idle_timeout_ms) {
                snprintf(why, sizeof why, "no data received for %lld ms (idle timeout)%s",
                         (long long)(now - c->last_activity), wait);
                abort_call(e, c, envd_failure_status(ENVD_FAILURE_IDLE, 0), why);
            } else if (rate_applies(c) && now - c->rate_from >= c->min_window_ms &&
                       c->rate_bytes < (uint64_t)c->min_bytes) {
                snprintf(why, sizeof why,
                         "%llu bytes in %lld ms, under the minimum of %lld (too slow)",
                         (unsigned long long)c->rate_bytes, (long long)(now - c->rate_from),
                         (long long)c->min_bytes);
                abort_call(e, c, envd_failure_status(ENVD_FAILURE_IDLE, 0), why);
            } else {
                if (rate_applies(c) && now - c->rate_from >= c->min_window_ms) {
                    c->rate_from = now; /* the window was met: a new one */
                    c->rate_bytes = 0;
                }
                if (rate_applies(c) && c->rate_from + c->min_window_ms < next)
                    next = c->rate_from + c->min_window_ms;
                if (c->deadline_at && c->deadline_at < next)
                    next = c->deadline_at;
                if (c->first_deadline && c->first_deadline < next)
                    next = c->first_deadline;
                if (idle_applies(c) && c->last_activity + c->idle_timeout_ms < next)
                    next = c->last_activity + c->idle_timeout_ms;
            }
        }
        c = nx;
    }
    return next;
}

/* ---- connections ------------------------------------------------------------ */

static void conn_free(envd_h2c_engine *e, h2_conn *k)
{
    if (k->ssl)
        SSL_free(k->ssl);
    if (k->fd >= 0) {
        epoll_ctl(e->epoll_fd, EPOLL_CTL_DEL, k->fd, NULL);
        close(k->fd);
        atomic_fetch_sub_explicit(&e->n_conns, 1, memory_order_relaxed);
    }
    if (k->s)
        nghttp2_session_del(k->s);
    free(k->wbuf);
    free(k);
}

/* Unlinks k from its origin and the dirty list and frees it. Its calls must
 * be gone. */
static void conn_close(envd_h2c_engine *e, h2_conn *k)
{
    h2_origin *o = k->o;
    for (h2_conn **pp = &o->conns; *pp; pp = &(*pp)->next)
        if (*pp == k) {
            *pp = k->next;
            break;
        }
    o->n_conns--;
    for (h2_conn **pp = &e->dirty; *pp; pp = &(*pp)->dnext)
        if (*pp == k) {
            *pp = k->dnext;
            break;
        }
    want_place(o);
    conn_free(e, k);
}

/* The connection is gone: every call on it ends or goes back to the queue.
 * kind/what/detail describe the loss for calls that cannot be sent again;
 * before_response: the kind for calls that had no response byte yet
 * (0: the same kind). */
static void conn_lost(envd_h2c_engine *e, h2_conn *k, envd_failure kind, const char *what,
                      const char *detail, envd_failure before_response)
{
    h2_call *c;
    /* Pending calls were never sent: after a connection that was up, they
     * try the next one; after a failed connect, they fail with it (another
     * attempt would meet the same refusal, call after call). */
    while ((c = list_pop(&k->pending))) {
        c->state = C_NEW;
        c->conn = NULL;
        if (k->ready) {
            c->state = C_QUEUED;
            list_push(&c->origin->queue, c, 1);
        } else {
            fail(e, c, before_response ? before_response : kind, what, detail);
        }
    }
    while ((c = k->open.head)) {
        list_del(&k->open, c);
        c->state = C_NEW;
        c->conn = NULL;
        envd_failure f = c->responded || !before_response ? kind : before_response;
        fail(e, c, f, what, detail);
    }
    conn_close(e, k);
}

/* Gives up connections still without the server's SETTINGS CONN_SETUP_MS
 * after connect(); returns when the next one may run out. */
static int64_t check_setups(envd_h2c_engine *e, int64_t now)
{
    int64_t next = INT64_MAX;
    for (h2_origin *o = e->origins; o; o = o->next) {
        h2_conn *k = o->conns;
        while (k) {
            h2_conn *nx = k->next;
            if (!k->ready && now - k->opened_at >= CONN_SETUP_MS) {
                char detail[96];
                snprintf(detail, sizeof detail, "no HTTP/2 settings from the server within %d ms",
                         CONN_SETUP_MS);
                if (k->ssl && !k->tls_up && k->connected)
                    snprintf(detail, sizeof detail, "no TLS handshake within %d ms",
                             CONN_SETUP_MS);
                conn_lost(e, k, ENVD_FAILURE_UNREACHABLE,
                          !k->connected                ? "connection timed out"
                          : k->ssl && !k->tls_up       ? "TLS handshake timed out"
                                                       : "the server did not start HTTP/2",
                          detail, 0);
            } else if (!k->ready && k->opened_at + CONN_SETUP_MS < next) {
                next = k->opened_at + CONN_SETUP_MS;
            }
            k = nx;
        }
    }
    return next;
}

static int conn_cap(const envd_h2c_engine *e, const h2_conn *k)
{
    int cap = e->lim.streams_per_connection;
    if (k->ready) {
        uint32_t peer =
            nghttp2_session_get_remote_settings(k->s, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
        if (peer < (uint32_t)cap)
            cap = (int)peer;
    }
    return cap;
}

/* ---- /files (envd_http) on this engine ---------------------------------------- */

/* The request body as the stream takes it (http_body.c: the form, the
 * caller's sources, gzip); its end starts the wait for the response. */
static ssize_t http_body_read(h2_call *c, uint8_t *buf, size_t len, uint32_t *flags)
{
    h2_http *h = c->http;
    size_t got = envd_http_body_read(h->body, buf, len);
    if (got == (size_t)-1) {
        if (!h->err)
            h->err = envd_error_new(ENVD_E_IO, ENVD_TRANSPORT_HTTP, 0, "%s: %s", h->label,
                                    envd_http_body_error(h->body));
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* resets the stream */
    }
    h->body_read = 1;
    on_activity(c, 0);
    int64_t taken = envd_http_body_taken(h->body);
    if (h->cb.on_progress && taken != h->last_progress) {
        h->last_progress = taken;
        h->cb.on_progress(h->cb.ud, taken, envd_http_body_total(h->body));
    }
    if (got == 0 || envd_http_body_done(h->body)) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        if (!h->body_eof) {
            h->body_eof = 1;
            if (!c->first_seen && h->reply_timeout_ms > 0) {
                c->timeout_ms = h->reply_timeout_ms;
                c->first_deadline = envd_now_ms() + h->reply_timeout_ms;
                if (c->timers_on)
                    note_deadline(c->eng, c->first_deadline);
            }
        }
    }
    return (ssize_t)got;
}

/* The final response headers of a /files transfer. 0, or -1 when the
 * caller's on_status stopped it (or the encoding cannot be decoded: h->err). */
static int http_headers(h2_call *c)
{
    h2_http *h = c->http;
    h->headers_done = 1;
    on_activity(c, 1);
    if (h->encoding < 0) {
        h->err = envd_error_new(ENVD_E_PROTOCOL, ENVD_TRANSPORT_HTTP, (int)c->status,
                                "%s: the response came in a content encoding that cannot be "
                                "decoded (gzip and deflate can)",
                                h->label);
        return -1;
    }
    int64_t cl = h->encoding ? -1 : c->content_length; /* decoded size unknown */
    if (h->cb.on_status && h->cb.on_status(h->cb.ud, (int)c->status, cl) != 0)
        return -1;
    return 0;
}

/* Response body bytes, decoded when the server encoded them (asked or not,
 * as libcurl does with CURLOPT_ACCEPT_ENCODING), to the caller's on_data in
 * pieces of at most 16 KiB: a small compressed body that inflates to
 * gigabytes never sits in memory. 0, or -1 to stop (h->err says why, else
 * the caller did). */
static int http_data(h2_call *c, const uint8_t *data, size_t len)
{
    h2_http *h = c->http;
    c->rate_bytes += len;
    if (!h->encoding)
        return h->cb.on_data && len && h->cb.on_data(h->cb.ud, data, len) != 0 ? -1 : 0;
    if (!h->inflating) {
        if (inflateInit2(&h->zs, h->encoding) != Z_OK) {
            h->err = envd_error_new(ENVD_E_NOMEM, ENVD_TRANSPORT_HTTP, (int)c->status,
                                    "%s: out of memory", h->label);
            return -1;
        }
        h->inflating = 1;
    }
    uint8_t out[16 << 10];
    h->zs.next_in = (Bytef *)(uintptr_t)data;
    h->zs.avail_in = (uInt)len;
    while (h->zs.avail_in > 0) {
        h->zs.next_out = out;
        h->zs.avail_out = sizeof out;
        int zr = inflate(&h->zs, Z_NO_FLUSH);
        size_t n = sizeof out - h->zs.avail_out;
        if (n && h->cb.on_data && h->cb.on_data(h->cb.ud, out, n) != 0)
            return -1;
        if (zr == Z_STREAM_END)
            break; /* what follows the compressed stream is ignored */
        if (zr != Z_OK && !(zr == Z_BUF_ERROR && n)) {
            h->err = envd_error_new(ENVD_E_PROTOCOL, ENVD_TRANSPORT_HTTP, (int)c->status,
                                    "%s: the response body does not decode: %s", h->label,
                                    h->zs.msg ? h->zs.msg : "corrupt data");
            return -1;
        }
    }
    return 0;
}

/* Content-Encoding to zlib's window bits: gzip, deflate (zlib's format, or
 * gzip), 0 for identity, -1 for what cannot be decoded. */
static int http_encoding(const char *v, size_t n)
{
    while (n && (*v == ' ' || *v == '\t'))
        v++, n--;
    while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    if (n == 0 || (n == 8 && strncasecmp(v, "identity", 8) == 0))
        return 0;
    if ((n == 4 && strncasecmp(v, "gzip", 4) == 0) || (n == 6 && strncasecmp(v, "x-gzip", 6) == 0))
        return 15 + 16;
    if (n == 7 && strncasecmp(v, "deflate", 7) == 0)
        return 15 + 32; /* zlib header (or gzip) detected */
    return -1;
}

static ssize_t body_read(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len,
                         uint32_t *flags, nghttp2_data_source *src, void *ud)
{
    (void)s, (void)id, (void)ud;
    h2_call *c = src->ptr;
    if (c->http)
        return http_body_read(c, buf, len, flags);
    if (c->rep.kind == ENVD_RPC_CLIENT_STREAM) {
        size_t got = envd_connect_sendq_pull(&c->sq, buf, len);
        if (got == ENVD_SENDQ_PAUSE)
            return NGHTTP2_ERR_DEFERRED;
        if (got == 0)
            *flags |= NGHTTP2_DATA_FLAG_EOF;
        return (ssize_t)got;
    }
    size_t n = c->req_len - c->req_off;
    if (n > len)
        n = len;
    memcpy(buf, c->req + c->req_off, n);
    c->req_off += n;
    if (c->req_off == c->req_len)
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

/* Opens c's stream on k. */
static void submit(envd_h2c_engine *e, h2_conn *k, h2_call *c)
{
    nghttp2_data_provider prd = {.source = {.ptr = c}, .read_callback = body_read};
    int has_body = c->http ? !c->http->body_eof
                           : c->rep.kind == ENVD_RPC_CLIENT_STREAM || c->req_len > 0;
    int32_t id = nghttp2_submit_request(k->s, NULL, c->nva, c->nvlen, has_body ? &prd : NULL, c);
    if (id < 0) {
        c->state = C_NEW;
        c->conn = NULL;
        envd_status st = id == NGHTTP2_ERR_NOMEM ? ENVD_E_NOMEM : ENVD_E_TRANSPORT;
        if (id == NGHTTP2_ERR_STREAM_ID_NOT_AVAILABLE) {
            /* This connection has used up its stream ids: a fresh one. */
            k->goaway = 1;
            c->state = C_QUEUED;
            list_push(&c->origin->queue, c, 1);
            want_place(c->origin);
            return;
        }
        abort_call(e, c, st, nghttp2_strerror(id));
        return;
    }
    c->stream_id = id;
    c->conn = k;
    c->state = C_OPEN;
    list_push(&k->open, c, 0);
    k->n_streams++;
    conn_dirty(e, k);
}

static void assign(envd_h2c_engine *e, h2_conn *k, h2_call *c)
{
    c->conn = k;
    if (k->ready) {
        submit(e, k, c);
    } else {
        c->state = C_PENDING;
        list_push(&k->pending, c, 0);
    }
}

/* The origin's address (blocking: once per origin, and again after a
 * failed connect). 0, -1 (why says) or -2 out of memory. */
static int resolve(h2_origin *o, char *why, size_t cap)
{
    int64_t now = envd_now_ms();
    if (o->dns_failed_at && now - o->dns_failed_at < DNS_RETRY_MS) {
        snprintf(why, cap, "%s", o->dns_why);
        return o->dns_rc;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(o->host, o->port, &hints, &res);
    if (rc != 0 || !res) {
        snprintf(why, cap, "%s", rc == EAI_MEMORY ? "out of memory" : gai_strerror(rc));
        if (rc != EAI_MEMORY) {
            o->dns_failed_at = envd_now_ms();
            o->dns_rc = -1;
            snprintf(o->dns_why, sizeof o->dns_why, "%.*s", (int)sizeof o->dns_why - 1, why);
        }
        return rc == EAI_MEMORY ? -2 : -1;
    }
    o->dns_failed_at = 0;
    o->naddr = 0;
    o->cur = 0;
    for (struct addrinfo *ai = res; ai && o->naddr < H2_MAX_ADDRS; ai = ai->ai_next) {
        if (ai->ai_addrlen > sizeof o->addr[0])
            continue;
        memcpy(&o->addr[o->naddr], ai->ai_addr, ai->ai_addrlen);
        o->alen[o->naddr++] = ai->ai_addrlen;
    }
    o->resolved = o->naddr > 0;
    freeaddrinfo(res);
    return 0;
}

/* ---- TLS ---------------------------------------------------------------------- */

static void set_events(envd_h2c_engine *e, h2_conn *k, uint32_t ev);

/* The context for a CA file (NULL: the system's roots) and verification,
 * made once and shared; NULL with why set (*nomem when for want of
 * memory). A failure is not kept: the file may be there next time. */
static tls_ctx *tls_ctx_get(envd_h2c_engine *e, const char *ca_file, int insecure, char *why,
                            size_t cap, int *nomem)
{
    const char *name = ca_file ? ca_file : "";
    for (tls_ctx *t = e->tls_ctxs; t; t = t->next)
        if (t->insecure == insecure && strcmp(t->ca_file, name) == 0)
            return t;
    *nomem = 0;
    ERR_clear_error();
    size_t nl = strlen(name) + 1;
    tls_ctx *t = envd_calloc(1, sizeof *t + nl);
    SSL_CTX *ctx = t ? SSL_CTX_new(TLS_client_method()) : NULL;
    if (!ctx) {
        free(t);
        *nomem = 1;
        snprintf(why, cap, "out of memory");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    /* Partial and moved writes: the write buffer is compacted and grown
     * between attempts. Idle connections give their buffers back. */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    int ok = 1;
    if (insecure) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        ok = name[0] ? SSL_CTX_load_verify_locations(ctx, name, NULL)
                     : SSL_CTX_set_default_verify_paths(ctx);
    }
    if (!ok) {
        unsigned long ec = ERR_peek_last_error();
        char detail[120];
        ERR_error_string_n(ec, detail, sizeof detail);
        snprintf(why, cap, "cannot load the CA certificates%s%s: %s", name[0] ? " from " : "",
                 name, ec ? detail : "unknown error");
        SSL_CTX_free(ctx);
        free(t);
        return NULL;
    }
    t->ctx = ctx;
    t->insecure = insecure;
    memcpy(t->ca_file, name, nl);
    t->next = e->tls_ctxs;
    e->tls_ctxs = t;
    return t;
}

/* k's TLS session: ALPN h2, the server's name (SNI, not for addresses)
 * and, unless verification is off, the name or address the certificate
 * must carry. 0, or -1 out of memory. */
static int tls_setup(h2_conn *k)
{
    h2_origin *o = k->o;
    static const unsigned char alpn[] = {2, 'h', '2'};
    if (!(k->ssl = SSL_new(o->tc->ctx)) || SSL_set_fd(k->ssl, k->fd) != 1 ||
        SSL_set_alpn_protos(k->ssl, alpn, sizeof alpn) != 0)
        return -1;
    SSL_set_connect_state(k->ssl);
    if (!o->host_is_ip && SSL_set_tlsext_host_name(k->ssl, o->host) != 1)
        return -1;
    if (!o->insecure) {
        int ok = o->host_is_ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(k->ssl), o->host)
                               : SSL_set1_host(k->ssl, o->host);
        if (ok != 1)
            return -1;
    }
    return 0;
}

/* Moves k's handshake on: 1 done, 0 waiting for the socket, -1 failed (k
 * is gone, its calls failed). */
static int tls_step(envd_h2c_engine *e, h2_conn *k)
{
    ERR_clear_error();
    int r = SSL_do_handshake(k->ssl);
    int err = r == 1 ? SSL_ERROR_NONE : SSL_get_error(k->ssl, r);
    unsigned long ec = ERR_peek_last_error();
    /* A server that knows ALPN but not h2 ends the handshake with an alert
     * (nginx does); one that does not know ALPN chooses nothing. */
    int refused = err == SSL_ERROR_SSL && ERR_GET_LIB(ec) == ERR_LIB_SSL &&
                  ERR_GET_REASON(ec) == SSL_R_TLSV1_ALERT_NO_APPLICATION_PROTOCOL;
    if (r == 1 || refused) {
        const unsigned char *p = NULL;
        unsigned n = 0;
        if (r == 1)
            SSL_get0_alpn_selected(k->ssl, &p, &n);
        ERR_clear_error();
        if (n != 2 || memcmp(p, "h2", 2) != 0) {
            h2_origin *o = k->o;
            o->not_h2_at = envd_now_ms();
            if (e->not_h2)
                e->not_h2(e->not_h2_ud, o->auth);
            char detail[64];
            snprintf(detail, sizeof detail, "ALPN: %.*s", n ? (int)(n < 32 ? n : 32) : 16,
                     n ? (const char *)p : refused ? "no common protocol" : "none");
            conn_lost(e, k, ENVD_FAILURE_NOT_HTTP, NOT_H2_TLS, detail, 0);
            return -1;
        }
        k->tls_up = 1;
        conn_dirty(e, k);
        return 1;
    }
    if (err == SSL_ERROR_WANT_READ) {
        set_events(e, k, EPOLLIN);
        return 0;
    }
    if (err == SSL_ERROR_WANT_WRITE) {
        set_events(e, k, EPOLLIN | EPOLLOUT);
        return 0;
    }
    char detail[200];
    long vr = SSL_get_verify_result(k->ssl);
    if (vr != X509_V_OK && !k->o->insecure) {
        snprintf(detail, sizeof detail, "certificate verification failed: %s",
                 X509_verify_cert_error_string(vr));
    } else if (ec) {
        ERR_error_string_n(ec, detail, sizeof detail);
    } else {
        snprintf(detail, sizeof detail, "%s",
                 err == SSL_ERROR_SYSCALL && errno ? strerror(errno)
                                                   : "the server closed the connection");
    }
    ERR_clear_error();
    conn_lost(e, k, ENVD_FAILURE_TLS, "TLS handshake failed", detail, 0);
    return -1;
}

/* Reads from k's socket or its TLS session: > 0 bytes, 0 the end, -1 with
 * errno (EAGAIN: nothing now). */
static ssize_t conn_recv(h2_conn *k, uint8_t *buf, size_t cap)
{
    if (!k->ssl)
        return recv(k->fd, buf, cap, 0);
    ERR_clear_error();
    int n = SSL_read(k->ssl, buf, cap > INT_MAX ? INT_MAX : (int)cap);
    if (n > 0)
        return n;
    switch (SSL_get_error(k->ssl, n)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE: errno = EAGAIN; return -1;
    case SSL_ERROR_ZERO_RETURN: return 0;
    case SSL_ERROR_SYSCALL:
        if (errno == 0 || ERR_peek_last_error() != 0) {
            errno = ECONNRESET; /* closed without close_notify */
            ERR_clear_error();
        }
        return -1;
    default: ERR_clear_error(); errno = EPROTO; return -1;
    }
}

static ssize_t conn_send(h2_conn *k, const uint8_t *buf, size_t len)
{
    if (!k->ssl)
        return send(k->fd, buf, len, MSG_NOSIGNAL);
    ERR_clear_error();
    int n = SSL_write(k->ssl, buf, len > INT_MAX ? INT_MAX : (int)len);
    if (n > 0)
        return n;
    switch (SSL_get_error(k->ssl, n)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE: errno = EAGAIN; return -1;
    case SSL_ERROR_SYSCALL:
        if (errno == 0)
            errno = EPIPE;
        ERR_clear_error();
        return -1;
    default: ERR_clear_error(); errno = EPROTO; return -1;
    }
}

/* A new connection for o, connecting; NULL with *kind and why set. */
static h2_conn *conn_open(envd_h2c_engine *e, h2_origin *o, envd_failure *kind, char *why,
                          size_t cap)
{
    if (!o->resolved) {
        int r = resolve(o, why, cap);
        if (r != 0) {
            *kind = r == -2 ? ENVD_FAILURE_LOCAL : ENVD_FAILURE_DNS;
            return NULL;
        }
    }
    h2_conn *k = envd_calloc(1, sizeof *k);
    if (!k) {
        *kind = ENVD_FAILURE_LOCAL;
        snprintf(why, cap, "out of memory");
        return NULL;
    }
    if (o->tls && !o->tc) {
        int nomem = 0;
        o->tc = tls_ctx_get(e, o->ca_file, o->insecure, why, cap, &nomem);
        if (!o->tc) {
            *kind = nomem ? ENVD_FAILURE_LOCAL : ENVD_FAILURE_TLS;
            free(k);
            return NULL;
        }
    }
again:
    k->o = o;
    k->addr_i = o->cur;
    k->fd = socket(o->addr[o->cur].ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (k->fd < 0) {
        *kind = ENVD_FAILURE_LOCAL;
        snprintf(why, cap, "socket: %s", strerror(errno));
        free(k);
        return NULL;
    }
    atomic_fetch_add_explicit(&e->n_conns, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&e->n_connects, 1, memory_order_relaxed);
    int one = 1;
    setsockopt(k->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(k->fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    if (o->tls && tls_setup(k) != 0) {
        *kind = ENVD_FAILURE_LOCAL;
        snprintf(why, cap, "out of memory");
        conn_free(e, k);
        return NULL;
    }
    int rc = connect(k->fd, (struct sockaddr *)&o->addr[o->cur], o->alen[o->cur]);
    if (rc != 0 && errno != EINPROGRESS) {
        int err = errno;
        if (o->cur + 1 < o->naddr) { /* the name's next address */
            o->cur++;
            if (k->ssl)
                SSL_free(k->ssl);
            k->ssl = NULL;
            epoll_ctl(e->epoll_fd, EPOLL_CTL_DEL, k->fd, NULL);
            close(k->fd);
            atomic_fetch_sub_explicit(&e->n_conns, 1, memory_order_relaxed);
            memset(k, 0, sizeof *k);
            goto again;
        }
        *kind = err == ECONNREFUSED ? ENVD_FAILURE_REFUSED : ENVD_FAILURE_UNREACHABLE;
        snprintf(why, cap, "%s", strerror(err));
        o->resolved = 0; /* look the name up again next time */
        conn_free(e, k);
        return NULL;
    }
    k->connected = rc == 0;
    k->opened_at = k->idle_since = envd_now_ms();
    note_deadline(e, k->opened_at + CONN_SETUP_MS);
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, STREAM_WINDOW},
    };
    if (nghttp2_session_client_new2(&k->s, e->cbs, k, e->opt) != 0 ||
        nghttp2_submit_settings(k->s, NGHTTP2_FLAG_NONE, iv, sizeof iv / sizeof iv[0]) != 0 ||
        nghttp2_session_set_local_window_size(k->s, NGHTTP2_FLAG_NONE, 0, CONN_WINDOW) != 0) {
        *kind = ENVD_FAILURE_LOCAL;
        snprintf(why, cap, "out of memory");
        conn_free(e, k);
        return NULL;
    }
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.u64 = H2_TAG | (uintptr_t)k};
    k->events = ev.events;
    if (epoll_ctl(e->epoll_fd, EPOLL_CTL_ADD, k->fd, &ev) != 0) {
        *kind = ENVD_FAILURE_LOCAL;
        snprintf(why, cap, "epoll: %s", strerror(errno));
        conn_free(e, k);
        return NULL;
    }
    k->next = o->conns;
    o->conns = k;
    o->n_conns++;
    if (k->connected)
        conn_dirty(e, k);
    return k;
}

/* Gives o's waiting calls streams: on a connection with room (ready ones
 * first), or on a new connection while the origin has fewer than
 * max_connections. */
static void place(envd_h2c_engine *e, h2_origin *o)
{
    while (o->not_h2_at && envd_now_ms() - o->not_h2_at < NOT_H2_HOLD_MS && o->queue.head) {
        h2_call *c = list_pop(&o->queue);
        c->state = C_NEW;
        fail(e, c, ENVD_FAILURE_NOT_HTTP, NOT_H2_TLS, "ALPN");
    }
    while (o->queue.head) {
        h2_conn *best = NULL;
        for (h2_conn *k = o->conns; k; k = k->next) {
            if (k->goaway)
                continue;
            if (k->ready) {
                if (k->n_streams + k->pending.n < conn_cap(e, k)) {
                    best = k;
                    break;
                }
            } else if (!best && k->pending.n < e->lim.streams_per_connection) {
                best = k;
            }
        }
        if (!best && o->n_conns < e->lim.max_connections) {
            envd_failure kind;
            char why[256];
            best = conn_open(e, o, &kind, why, sizeof why);
            if (!best) {
                h2_call *c = list_pop(&o->queue);
                c->state = C_NEW;
                const char *what = kind == ENVD_FAILURE_DNS       ? "cannot resolve host"
                                   : kind == ENVD_FAILURE_LOCAL   ? "cannot open a connection"
                                                                  : "cannot connect";
                if (kind == ENVD_FAILURE_LOCAL && strcmp(why, "out of memory") == 0)
                    abort_call(e, c, ENVD_E_NOMEM, "out of memory");
                else
                    fail(e, c, kind, what, why);
                continue;
            }
        }
        if (!best)
            break;
        assign(e, best, list_pop(&o->queue));
    }
}

/* The server's SETTINGS came: submit what the connection may carry, the
 * rest goes back to the front of the queue, in order. */
static void conn_ready(envd_h2c_engine *e, h2_conn *k)
{
    k->ready = 1;
    int cap = conn_cap(e, k);
    call_list back = {0};
    h2_call *c;
    while ((c = list_pop(&k->pending))) {
        if (k->n_streams < cap && !k->goaway)
            submit(e, k, c);
        else
            list_push(&back, c, 0);
    }
    while ((c = back.tail)) {
        list_del(&back, c);
        c->state = C_QUEUED;
        c->conn = NULL;
        list_push(&k->o->queue, c, 1);
    }
    want_place(k->o);
}

/* ---- nghttp2 callbacks ------------------------------------------------------- */

/* A /files transfer stopped by this side while its stream is open: by the
 * caller (on_status, on_data) or by a body that cannot be decoded. */
static void http_stop(h2_call *c)
{
    envd_h2c_engine *e = c->eng;
    detach(e, c, 1);
    if (c->http->err)
        finish(e, c, NULL, 0, 0);
    else
        abort_call(e, c, ENVD_CANCELED, "canceled");
}

static h2_call *stream_call(nghttp2_session *s, int32_t id)
{
    return id > 0 ? nghttp2_session_get_stream_user_data(s, id) : NULL;
}

static int cb_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                     void *ud)
{
    (void)flags, (void)ud;
    if (f->hd.type != NGHTTP2_HEADERS)
        return 0;
    h2_call *c = stream_call(s, f->hd.stream_id);
    if (!c || (c->http ? c->http->headers_done : c->rep.headers_done))
        return 0; /* trailers: neither Connect nor /files puts anything there */
    c->responded = 1;
    on_activity(c, 0);
    const char *n = (const char *)name, *v = (const char *)value;
    if (namelen == 7 && memcmp(n, ":status", 7) == 0) {
        c->status = strtol(v, NULL, 10);
        if (c->http)
            c->http->encoding = 0; /* a new block (after a 1xx) */
    } else if (namelen == 16 && c->http && memcmp(n, "content-encoding", 16) == 0) {
        c->http->encoding = http_encoding(v, valuelen);
    } else if (namelen == 12 && memcmp(n, "content-type", 12) == 0) {
        size_t k = valuelen < sizeof c->ctype - 1 ? valuelen : sizeof c->ctype - 1;
        memcpy(c->ctype, v, k);
        c->ctype[k] = '\0';
    } else if (namelen == 14 && memcmp(n, "content-length", 14) == 0) {
        char *end;
        long long cl = strtoll(v, &end, 10);
        c->content_length = *end == '\0' && cl >= 0 ? cl : -1;
    } else if (namelen == 11 && memcmp(n, "retry-after", 11) == 0) {
        c->retry_after_ms = envd_retry_after_parse(v, time(NULL));
    }
    return 0;
}

static int cb_frame_recv(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
    h2_conn *k = ud;
    switch (f->hd.type) {
    case NGHTTP2_SETTINGS:
        if (!(f->hd.flags & NGHTTP2_FLAG_ACK)) {
            if (!k->ready)
                k->ready = -1; /* conn_ready runs after nghttp2 returns */
            want_place(k->o);
        }
        break;
    case NGHTTP2_HEADERS: {
        h2_call *c = stream_call(s, f->hd.stream_id);
        if (c && c->http && !c->http->headers_done && c->status >= 200) {
            if (http_headers(c) != 0)
                http_stop(c);
        } else if (c && !c->http && !c->rep.headers_done && c->status >= 200) {
            envd_connect_reply_headers(&c->rep, c->status, c->ctype[0] ? c->ctype : NULL,
                                       c->content_length);
            if (c->rep.kind != ENVD_RPC_UNARY && !c->rep.body_ok)
                on_activity(c, 1); /* an error reply is the response too */
        }
        break;
    }
    case NGHTTP2_GOAWAY:
        k->goaway = 1;
        want_place(k->o);
        break;
    default: break;
    }
    /* The answer is whole while our request is still going (a server that
     * answered early, an error to a client stream): the call is over. Stop
     * sending and close the stream, as RFC 9113 8.1 lets a server ask with
     * NO_ERROR; waiting for the server to read the rest, or to reset, hangs
     * on one that does neither (no clock runs once the answer is in). */
    if ((f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA) &&
        (f->hd.flags & NGHTTP2_FLAG_END_STREAM) && stream_call(s, f->hd.stream_id) &&
        !nghttp2_session_get_stream_local_close(s, f->hd.stream_id)) {
        nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, f->hd.stream_id, NGHTTP2_NO_ERROR);
        conn_dirty(k->o->eng, k);
    }
    return 0;
}

static int cb_data(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *data,
                   size_t len, void *ud)
{
    (void)flags;
    h2_conn *k = ud;
    h2_call *c = stream_call(s, id);
    if (!c)
        return 0;
    c->responded = 1;
    if (c->http) {
        on_activity(c, 0);
        if (http_data(c, data, len) != 0)
            http_stop(c);
        return 0;
    }
    if (!c->rep.headers_done)
        envd_connect_reply_headers(&c->rep, c->status, c->ctype[0] ? c->ctype : NULL,
                                   c->content_length);
    if (envd_connect_reply_body(&c->rep, data, len) != 0) {
        /* The reply reader stopped: an error in the body, too large, or the
         * caller's on_message veto (canceled). */
        list_del(&k->open, c);
        c->state = C_NEW;
        c->conn = NULL;
        nghttp2_session_set_stream_user_data(s, id, NULL);
        nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
        want_place(k->o);
        envd_h2c_engine *e = c->eng;
        conn_dirty(e, k);
        if (c->rep.err)
            finish(e, c, NULL, 0, 0);
        else
            abort_call(e, c, ENVD_CANCELED, "canceled");
    }
    return 0;
}

static int cb_stream_close(nghttp2_session *s, int32_t id, uint32_t code, void *ud)
{
    h2_conn *k = ud;
    k->n_streams--;
    want_place(k->o);
    if (k->n_streams == 0 && !k->open.n)
        k->idle_since = envd_now_ms();
    h2_call *c = stream_call(s, id);
    if (!c)
        return 0;
    nghttp2_session_set_stream_user_data(s, id, NULL);
    list_del(&k->open, c);
    c->state = C_NEW;
    c->conn = NULL;
    envd_h2c_engine *e = c->eng;
    if (code == NGHTTP2_NO_ERROR) {
        finish(e, c, NULL, 0, 0);
    } else if (code == NGHTTP2_REFUSED_STREAM && !c->responded &&
               (c->http ? !c->http->body_read : c->rep.kind != ENVD_RPC_CLIENT_STREAM)) {
        /* Not processed (RFC 9113 8.7): safe to send again. A client
         * stream's envelopes may already be gone from its queue, an
         * upload's source read on. */
        c->req_off = 0;
        c->state = C_QUEUED;
        list_push(&c->origin->queue, c, 1);
    } else {
        char detail[128];
        snprintf(detail, sizeof detail, "stream reset by the server: %s (HTTP/2 error %u)",
                 nghttp2_http2_strerror(code), (unsigned)code);
        fail(e, c, c->responded ? ENVD_FAILURE_BROKEN : ENVD_FAILURE_CLOSED, "HTTP/2 failure",
             detail);
    }
    return 0;
}

static int cb_error(nghttp2_session *s, int code, const char *msg, size_t len, void *ud)
{
    (void)s, (void)code;
    h2_conn *k = ud;
    if (!k->why[0])
        snprintf(k->why, sizeof k->why, "%.*s", (int)len, msg);
    return 0;
}

/* ---- socket I/O -------------------------------------------------------------- */

static void set_events(envd_h2c_engine *e, h2_conn *k, uint32_t ev)
{
    if (k->events == ev)
        return;
    struct epoll_event x = {.events = ev, .data.u64 = H2_TAG | (uintptr_t)k};
    if (epoll_ctl(e->epoll_fd, EPOLL_CTL_MOD, k->fd, &x) == 0)
        k->events = ev;
}

/* Writes what nghttp2 has for k, gathering frames into one write. Returns
 * 0, or -1 when the connection failed (errno set). */
static int on_send_ready(envd_h2c_engine *e, h2_conn *k)
{
    k->wblocked = 0;
    if (k->fd < 0) { /* the fuzzing seam's connection: what is sent goes nowhere */
        const uint8_t *p;
        ssize_t n;
        while ((n = nghttp2_session_mem_send(k->s, &p)) > 0)
            ;
        return n < 0 ? (errno = EPROTO, -1) : 0;
    }
    for (;;) {
        while (k->wlen < WBUF_FLUSH) {
            const uint8_t *p;
            ssize_t n = nghttp2_session_mem_send(k->s, &p);
            if (n < 0) {
                errno = EPROTO;
                return -1;
            }
            if (n == 0)
                break;
            if (k->wlen + (size_t)n > k->wcap) {
                size_t cap = k->wcap ? k->wcap : 16384;
                while (cap < k->wlen + (size_t)n)
                    cap *= 2;
                uint8_t *b = envd_realloc(k->wbuf, cap);
                if (!b) {
                    errno = ENOMEM;
                    return -1;
                }
                k->wbuf = b;
                k->wcap = cap;
            }
            memcpy(k->wbuf + k->wlen, p, (size_t)n);
            k->wlen += (size_t)n;
        }
        if (k->wlen == 0)
            break;
        ssize_t w = conn_send(k, k->wbuf, k->wlen);
        if (w < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                k->wblocked = 1;
                break;
            }
            if (errno == EINTR)
                continue;
            return -1;
        }
        memmove(k->wbuf, k->wbuf + w, k->wlen - (size_t)w);
        k->wlen -= (size_t)w;
        if (k->wlen > 0) {
            k->wblocked = 1;
            break;
        }
    }
    set_events(e, k, EPOLLIN | (k->wblocked ? EPOLLOUT : 0u));
    return 0;
}

static void conn_io_error(envd_h2c_engine *e, h2_conn *k, int err)
{
    char detail[160];
    snprintf(detail, sizeof detail, "%s", strerror(err));
    if (!k->connected)
        conn_lost(e, k, err == ECONNREFUSED ? ENVD_FAILURE_REFUSED : ENVD_FAILURE_UNREACHABLE,
                  "cannot connect", detail, 0);
    else
        conn_lost(e, k, ENVD_FAILURE_BROKEN, "the connection failed", detail,
                  ENVD_FAILURE_CLOSED);
}

/* Handles one epoll event for k; returns 0 when k lives on. */
static int conn_event(envd_h2c_engine *e, h2_conn *k, uint32_t ev)
{
    if (!k->connected) {
        int err = 0;
        socklen_t len = sizeof err;
        if (getsockopt(k->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
            err = errno;
        if (err) {
            h2_origin *o = k->o;
            if (k->addr_i + 1 < o->naddr && !k->pending.n && !k->open.n) {
                o->cur = k->addr_i + 1; /* no call waits on it: try the next address */
            } else if (k->addr_i + 1 < o->naddr) {
                /* Its calls were never sent: they go back to the queue, in
                 * order, for a connection to the name's next address. */
                o->cur = k->addr_i + 1;
                h2_call *c;
                while ((c = k->pending.tail)) {
                    list_del(&k->pending, c);
                    c->state = C_QUEUED;
                    c->conn = NULL;
                    list_push(&o->queue, c, 1);
                }
                conn_close(e, k);
                return -1;
            } else {
                o->resolved = 0;
            }
            conn_io_error(e, k, err);
            return -1;
        }
        if (!(ev & (EPOLLOUT | EPOLLIN)))
            return 0;
        k->connected = 1;
        conn_dirty(e, k);
    }
    if (k->ssl && !k->tls_up) {
        int r = tls_step(e, k);
        if (r <= 0)
            return r;
        ev |= EPOLLIN; /* records may have come with the handshake's last */
    }
    if (ev & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        for (;;) {
            ssize_t n = conn_recv(k, e->rbuf, sizeof e->rbuf);
            if (n < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK)
                    break;
                if (errno == EINTR)
                    continue;
                conn_io_error(e, k, errno);
                return -1;
            }
            if (n == 0) {
                if (!k->ready)
                    conn_lost(e, k, ENVD_FAILURE_CLOSED,
                              "the server closed the connection without a response",
                              "no HTTP/2 settings", 0);
                else
                    conn_lost(e, k, ENVD_FAILURE_BROKEN,
                              "the connection closed before the response was complete",
                              "end of file", ENVD_FAILURE_CLOSED);
                return -1;
            }
            int was_ready = k->ready;
            ssize_t r = nghttp2_session_mem_recv(k->s, e->rbuf, (size_t)n);
            if (r < 0) {
                if (!was_ready && k->ready == 0)
                    conn_lost(e, k, ENVD_FAILURE_NOT_HTTP, NOT_H2, nghttp2_strerror((int)r), 0);
                else
                    conn_lost(e, k, ENVD_FAILURE_BROKEN, "HTTP/2 failure",
                              nghttp2_strerror((int)r), ENVD_FAILURE_CLOSED);
                return -1;
            }
            if (k->ready < 0)
                conn_ready(e, k);
            /* A short read emptied the socket; TLS reads a record at a
             * time and what it buffered wakes no epoll: read on. */
            if (!k->ssl && (size_t)n < sizeof e->rbuf)
                break;
        }
        conn_dirty(e, k); /* acknowledgements, window updates */
    }
    if ((ev & EPOLLOUT) && k->connected) {
        k->wblocked = 0; /* room again: flush_dirty skips blocked ones */
        conn_dirty(e, k);
    }
    return 0;
}

static void flush_dirty(envd_h2c_engine *e)
{
    while (e->dirty) {
        h2_conn *k = e->dirty;
        e->dirty = k->dnext;
        k->on_dirty = 0;
        if (!k->connected || k->wblocked || (k->ssl && !k->tls_up))
            continue;
        if (on_send_ready(e, k) != 0) {
            conn_io_error(e, k, errno);
            continue;
        }
        if (!nghttp2_session_want_read(k->s) && !nghttp2_session_want_write(k->s) &&
            k->wlen == 0) {
            /* Both sides said goodbye: a GOAWAY from the server after its
             * last stream, or nghttp2's own on a broken frame. */
            const char *why = k->why[0] ? k->why : "the HTTP/2 session ended";
            if (!k->ready)
                conn_lost(e, k, ENVD_FAILURE_NOT_HTTP, NOT_H2, why, 0);
            else
                conn_lost(e, k, ENVD_FAILURE_BROKEN, "HTTP/2 failure", why, ENVD_FAILURE_CLOSED);
        }
    }
}

/* ---- origins ----------------------------------------------------------------- */

static h2_origin *origin_get(envd_h2c_engine *e, const h2_call *c)
{
    const char *key = c->okey, *auth = c->authority;
    uint64_t hv = 1469598103934665603ull;
    for (const char *q = key; *q; q++)
        hv = (hv ^ (unsigned char)*q) * 1099511628211ull;
    size_t b = (size_t)(hv & (H2_ORIGIN_BUCKETS - 1));
    h2_origin **bucket = &e->obucket[b];
    for (h2_origin *o = *bucket; o; o = o->hnext)
        if (strcmp(o->key, key) == 0)
            return o;
    size_t kl = strlen(key), al = strlen(auth);
    h2_origin *o = envd_calloc(1, sizeof *o + kl + 1 + 3 * (al + 1) + 4);
    if (!o)
        return NULL;
    char *p = (char *)(o + 1);
    o->key = p;
    memcpy(p, key, kl + 1);
    if (c->ca_file)
        o->ca_file = p + (c->ca_file - c->okey);
    o->insecure = c->insecure;
    p += kl + 1;
    o->auth = p;
    memcpy(p, auth, al + 1);
    p += al + 1;
    /* host and port: "[v6]:port", "host:port" or "host" (the scheme's) */
    const char *h = auth, *colon;
    size_t hl;
    if (auth[0] == '[') {
        const char *rb = strchr(auth, ']');
        h = auth + 1;
        hl = rb ? (size_t)(rb - h) : al - 1;
        colon = rb && rb[1] == ':' ? rb + 1 : NULL;
    } else {
        colon = strrchr(auth, ':');
        hl = colon ? (size_t)(colon - auth) : al;
    }
    o->host = p;
    memcpy(p, h, hl);
    p[hl] = '\0';
    p += hl + 1;
    o->port = p;
    strcpy(p, colon ? colon + 1 : c->tls ? "443" : "80");
    o->tls = c->tls;
    o->eng = e;
    unsigned char bin[16];
    o->host_is_ip = inet_pton(AF_INET, o->host, bin) == 1 || inet_pton(AF_INET6, o->host, bin) == 1;
    o->next = e->origins;
    e->origins = o;
    o->bucket = b;
    o->hnext = *bucket;
    *bucket = o;
    return o;
}

/* Unlinks o (no connection, call or queue left) and frees it. */
static void origin_free(envd_h2c_engine *e, h2_origin *o)
{
    for (h2_origin **pp = &e->origins; *pp; pp = &(*pp)->next)
        if (*pp == o) {
            *pp = o->next;
            break;
        }
    for (h2_origin **pp = &e->obucket[o->bucket]; *pp; pp = &(*pp)->hnext)
        if (*pp == o) {
            *pp = o->hnext;
            break;
        }
    for (h2_origin **pp = &e->to_place; *pp; pp = &(*pp)->pnext)
        if (*pp == o) {
            *pp = o->pnext;
            break;
        }
    free(o);
}

static void enter(envd_h2c_engine *e, h2_call *c)
{
    h2_origin *o = origin_get(e, c);
    if (!o) {
        abort_call(e, c, ENVD_E_NOMEM, "out of memory");
        return;
    }
    c->origin = o;
    o->n_calls++;
    atomic_fetch_add_explicit(&e->n_calls, 1, memory_order_relaxed);
    c->next = e->live;
    c->prev = NULL;
    if (e->live)
        e->live->prev = c;
    e->live = c;
    if (!c->timers_deferred)
        start_timers(e, c, envd_now_ms());
    c->state = C_QUEUED;
    list_push(&o->queue, c, 0);
    want_place(o);
}

static void process_queue(envd_h2c_engine *e, envd_req *list)
{
    for (envd_req *r = list, *nx; r; r = nx) {
        nx = r->tnext;
        h2_call *c = CALL_OF(r);
        unsigned bits = r->taken_bits;
        int done = atomic_load_explicit(&c->finished, memory_order_acquire);
        if ((bits & Q_ADD) && !done) {
            if (atomic_load_explicit(&c->cancel_requested, memory_order_acquire))
                abort_call(e, c, ENVD_CANCELED, "canceled");
            else
                enter(e, c);
            done = atomic_load_explicit(&c->finished, memory_order_acquire);
        }
        if ((bits & Q_CANCEL) && !done)
            abort_call(e, c, ENVD_CANCELED, "canceled");
        done = atomic_load_explicit(&c->finished, memory_order_acquire);
        if ((bits & Q_RESUME) && !done && c->state == C_OPEN) {
            nghttp2_session_resume_data(c->conn->s, c->stream_id);
            conn_dirty(e, c->conn);
        }
        if ((bits & Q_ARM) && !done && !c->timers_on)
            start_timers(e, c, envd_now_ms());
        call_unref(c); /* the queue's reference */
    }
}

/* The origins marked so far, once each: one marked again while this runs
 * waits for the next pass (as a flag per origin did). on_place is cleared
 * here, not in place(), which the fuzzing seam also calls directly: an
 * origin left on the list with its flag cleared could be pushed again and
 * point at itself. */
static void place_all(envd_h2c_engine *e)
{
    h2_origin *list = e->to_place;
    e->to_place = NULL;
    while (list) {
        h2_origin *o = list;
        list = o->pnext;
        o->on_place = 0;
        place(e, o);
    }
}

/* Closes connections that carried nothing for CONN_IDLE_MS, and forgets
 * origins left with no connection and no call (a batch over thousands of
 * sandboxes with a host name each leaves that many behind). */
static void sweep_idle(envd_h2c_engine *e, int64_t now)
{
    h2_origin *o = e->origins;
    while (o) {
        h2_origin *onx = o->next;
        h2_conn *k = o->conns;
        while (k) {
            h2_conn *nx = k->next;
            if (k->n_streams == 0 && k->open.n == 0 && k->pending.n == 0 && k->idle_since &&
                now - k->idle_since >= CONN_IDLE_MS)
                conn_close(e, k);
            k = nx;
        }
        if (!o->conns && o->n_calls == 0 && !o->queue.head)
            origin_free(e, o);
        o = onx;
    }
}

int64_t envd_h2c_engine_poll(envd_h2c_engine *e)
{
    process_queue(e, take_queue(e, 0));
    int64_t now = envd_now_ms();
    if (now >= e->next_check) {
        int64_t a = check_timers(e, now), b = check_setups(e, now);
        e->next_check = a < b ? a : b;
    }
    place_all(e);
    flush_dirty(e);
    if (now >= e->next_sweep) {
        sweep_idle(e, now);
        e->next_sweep = now + CONN_IDLE_MS / 4;
    }
    return e->next_check < e->next_sweep ? e->next_check : e->next_sweep;
}

int envd_h2c_engine_event(envd_h2c_engine *e, uint64_t data, uint32_t events)
{
    if (!(data & H2_TAG))
        return 0;
    /* A connection freed by an earlier event of the same batch cannot be
     * here: conn_lost only frees the connection whose event it handles. */
    (void)conn_event(e, (h2_conn *)(uintptr_t)(data & ~H2_TAG), events);
    return 1;
}

void envd_h2c_engine_shutdown(envd_h2c_engine *e)
{
    /* Whatever is queued or in flight ends as canceled. */
    envd_req *list = take_queue(e, 1);
    for (envd_req *r = list, *nx; r; r = nx) {
        nx = r->tnext;
        h2_call *c = CALL_OF(r);
        if ((r->taken_bits & Q_ADD) && !atomic_load_explicit(&c->finished, memory_order_acquire))
            abort_call(e, c, ENVD_CANCELED, "canceled: the engine is shutting down");
        call_unref(c);
    }
    while (e->live)
        abort_call(e, e->live, ENVD_CANCELED, "canceled: the engine is shutting down");
    while (e->origins) {
        h2_origin *o = e->origins;
        e->origins = o->next;
        while (o->conns) {
            h2_conn *k = o->conns;
            o->conns = k->next;
            conn_free(e, k);
        }
        free(o);
    }
}

/* ---- the transport ------------------------------------------------------------- */

static int header_ok(const char *s, int name)
{
    for (; *s; s++)
        if (*s == '\r' || *s == '\n' || (name && (*s == ':' || *s == ' ')))
            return 0;
    return 1;
}

static void nv_set(nghttp2_nv *nv, const char *name, const char *value)
{
    nv->name = (uint8_t *)(uintptr_t)name;
    nv->namelen = strlen(name);
    nv->value = (uint8_t *)(uintptr_t)value;
    nv->valuelen = strlen(value);
    nv->flags = NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE;
}

/* A call with what every request on this engine carries, in one
 * allocation: the origin key (scheme, authority, CA file, verification),
 * the authority, the URL for messages (base URL and tail), the four pseudo
 * headers (:path is the base URL's path prefix and tail) and the caller's
 * headers (names lower-cased, as HTTP/2 wants). Room is left for more_nv
 * more headers, and more bytes at *extra. ENVD_INVALID_ARGUMENT for a
 * header holding CR or LF (or a colon or space in a name), ENVD_E_USAGE
 * without an authority, ENVD_E_NOMEM. */
static envd_status call_new(envd_h2c_engine *e, const envd_endpoint *ep, const char *method,
                            const char *tail, const envd_kv *hd, size_t nh, size_t more_nv,
                            size_t more, h2_call **out, char **extra)
{
    *out = NULL;
    const char *auth = ep->authority;
    const char *base = ep->base_url;
    const char *rest = strstr(base, "://");
    rest = rest ? rest + 3 : base;
    rest += strcspn(rest, "/?#"); /* the base URL's path prefix */
    if (!auth || !auth[0])
        return ENVD_E_USAGE;
    size_t strings = 0;
    for (size_t i = 0; i < nh; i++) {
        const envd_kv *h = &hd[i];
        if (!h->name || !h->value || !h->name[0] || !header_ok(h->name, 1) ||
            !header_ok(h->value, 0))
            return ENVD_INVALID_ARGUMENT;
        strings += strlen(h->name) + 1 + strlen(h->value) + 1;
    }
    int tls = ep->tls ? 1 : 0;
    const char *ca = tls && ep->ca_file && ep->ca_file[0] ? ep->ca_file : "";
    size_t okl = 2 + strlen(auth) + (tls ? 3 + strlen(ca) : 0) + 1;
    size_t al = strlen(auth) + 1, tl = strlen(tail);
    size_t ul = strlen(base) + tl + 1, pl = strlen(rest) + tl + 1, ml = strlen(method) + 1;
    size_t nnv = 4 + nh + more_nv;
    h2_call *c = envd_calloc(
        1, sizeof(h2_call) + nnv * sizeof(nghttp2_nv) + strings + al + okl + ul + pl + ml + more);
    if (!c)
        return ENVD_E_NOMEM;
    c->eng = e;
    atomic_init(&c->refs, 1);
    envd_connect_sendq_init(&c->sq);
    c->content_length = -1;
    c->retry_after_ms = -1;
    c->nva = (nghttp2_nv *)(c + 1);
    char *p = (char *)(c->nva + nnv);
    char *a = p;
    memcpy(a, auth, al);
    p += al;
    c->authority = a;
    c->okey = p;
    c->tls = tls;
    c->insecure = tls && ep->insecure;
    if (tls) {
        int n0 = sprintf(p, "s|%s|%d|", auth, c->insecure);
        if (ca[0])
            c->ca_file = p + n0;
        p += n0 + (size_t)sprintf(p + n0, "%s", ca) + 1;
    } else {
        p += (size_t)sprintf(p, "h|%s", auth) + 1;
    }
    char *url = p;
    p += (size_t)sprintf(url, "%s%s", base, tail) + 1;
    c->url = url;
    char *path = p;
    p += (size_t)sprintf(path, "%s%s", rest, tail) + 1;
    char *m = p;
    memcpy(m, method, ml);
    p += ml;
    size_t n = 0;
    nv_set(&c->nva[n++], ":method", m);
    nv_set(&c->nva[n++], ":scheme", tls ? "https" : "http");
    nv_set(&c->nva[n++], ":authority", a);
    nv_set(&c->nva[n++], ":path", path);
    for (size_t i = 0; i < nh; i++) {
        size_t kl = strlen(hd[i].name) + 1, vl = strlen(hd[i].value) + 1;
        char *kn = p, *kv = p + kl;
        for (size_t j = 0; j < kl; j++)
            kn[j] = (char)(hd[i].name[j] >= 'A' && hd[i].name[j] <= 'Z' ? hd[i].name[j] + 32
                                                                          : hd[i].name[j]);
        memcpy(kv, hd[i].value, vl);
        p += kl + vl;
        nv_set(&c->nva[n++], kn, kv);
    }
    c->nvlen = n;
    *extra = p;
    *out = c;
    return ENVD_OK;
}

/* Hands a new call to the I/O thread. */
static envd_status call_submit(envd_h2c_engine *e, h2_call *c)
{
    call_ref(c); /* the engine's */
    if (enqueue(e, c, Q_ADD) != 0) {
        call_free(c);
        return ENVD_E_SHUTDOWN;
    }
    return ENVD_OK;
}

static envd_status h2c_start(envd_rpc_transport *t, const envd_rpc_request *req,
                             const envd_rpc_callbacks *cb, envd_rpc **out)
{
    *out = NULL;
    envd_status st = envd_connect_check(req, cb);
    if (st != ENVD_OK)
        return st;
    envd_h2c_engine *e = (envd_h2c_engine *)t;
    size_t body = envd_connect_body_size(req->kind, req->body_len);
    h2_call *c = NULL;
    char *p = NULL;
    st = call_new(e, req->ep, "POST", req->method, req->headers, req->n_headers, 4,
                  24 + strlen(req->method) + 1 + body, &c, &p);
    if (st != ENVD_OK)
        return st;
    char *clen = p;
    p += 24;
    char *method = p;
    p += (size_t)sprintf(method, "%s", req->method) + 1;
    nv_set(&c->nva[c->nvlen++], "content-type", envd_connect_content_type(req->kind));
    nv_set(&c->nva[c->nvlen++], "connect-protocol-version", "1");
    nv_set(&c->nva[c->nvlen++], "user-agent", ENVD_USER_AGENT);
    if (req->kind != ENVD_RPC_CLIENT_STREAM) {
        snprintf(clen, 24, "%zu", body);
        nv_set(&c->nva[c->nvlen++], "content-length", clen);
    }
    uint8_t *b = (uint8_t *)p;
    envd_connect_body_fill(b, req->kind, req->body, req->body_len);
    c->req = b;
    c->req_len = body;
    envd_connect_reply_init(&c->rep, req->kind, method, req->ep->max_message, cb,
                            &c->cancel_requested, on_activity, c);
    c->timeout_ms = req->timeout_ms;
    switch (req->kind) {
    case ENVD_RPC_UNARY: c->timeout_whole = 1; break;
    case ENVD_RPC_SERVER_STREAM:
        c->idle_timeout_ms = req->idle_timeout_ms;
        c->idle_before_first = req->timeout_ms <= 0;
        break;
    default:
        /* The response cannot start before close_send(): both clocks
         * start there. */
        c->idle_timeout_ms = req->idle_timeout_ms;
        c->idle_before_first = req->timeout_ms <= 0;
        c->timers_deferred = 1;
        break;
    }
    if ((st = call_submit(e, c)) == ENVD_OK)
        *out = (envd_rpc *)(void *)c;
    return st;
}

envd_status envd_h2c_http_start(envd_h2c_engine *e, const envd_http_request *req,
                                const envd_http_callbacks *cb, envd_rpc **out)
{
    *out = NULL;
    h2_http *h = envd_calloc(1, sizeof *h);
    if (!h)
        return ENVD_E_NOMEM;
    h->cb = *cb;
    envd_status st = ENVD_OK;
    int form = req->n_parts > 0;
    if ((form || req->raw) &&
        (st = envd_http_body_new(form ? req->parts : req->raw, form ? req->n_parts : 1, form,
                                 req->gzip_request, &h->body)) != ENVD_OK) {
        free(h);
        return st;
    }
    int64_t wire = h->body ? envd_http_body_wire_size(h->body) : 0;
    h->body_eof = wire == 0; /* an empty body is never read */
    size_t ll = strlen(req->method) + 1 + strlen(req->path) + 1;
    h2_call *c = NULL;
    char *p = NULL;
    st = call_new(e, req->ep, req->method, req->path, req->headers, req->n_headers, 5, ll + 24,
                  &c, &p);
    if (st != ENVD_OK) {
        envd_http_body_free(h->body);
        free(h);
        return st;
    }
    c->http = h;
    h->label = p;
    p += (size_t)sprintf(p, "%s %s", req->method, req->path) + 1;
    nv_set(&c->nva[c->nvlen++], "user-agent", ENVD_USER_AGENT);
    nv_set(&c->nva[c->nvlen++], "accept-encoding", req->accept_gzip ? "gzip" : "identity");
    if (h->body) {
        nv_set(&c->nva[c->nvlen++], "content-type", envd_http_body_content_type(h->body));
        if (req->gzip_request)
            nv_set(&c->nva[c->nvlen++], "content-encoding", "gzip");
    }
    if (wire >= 0 && strcmp(req->method, "GET") != 0) {
        snprintf(p, 24, "%lld", (long long)wire);
        nv_set(&c->nva[c->nvlen++], "content-length", p);
    }
    h->retry_after_out = req->retry_after_ms;
    h->reply_timeout_ms = req->timeout_ms;
    c->timeout_ms = h->body_eof ? req->timeout_ms : 0; /* else from the end of the body */
    c->idle_timeout_ms = req->idle_timeout_ms;
    c->idle_before_first = 1; /* an upload stalls before any response too */
    c->deadline_ms = req->deadline_ms;
    c->min_bytes = req->min_bytes;
    c->min_window_ms = req->min_window_ms;
    if ((st = call_submit(e, c)) == ENVD_OK)
        *out = (envd_rpc *)(void *)c;
    return st;
}

static envd_status h2c_send(envd_rpc *r, const uint8_t *msg, size_t len)
{
    h2_call *c = call_of(r);
    if (!c || c->rep.kind != ENVD_RPC_CLIENT_STREAM || (len > 0 && !msg))
        return ENVD_E_USAGE;
    if (atomic_load_explicit(&c->finished, memory_order_acquire))
        return ENVD_CANCELED;
    int w;
    envd_status st = envd_connect_sendq_push(&c->sq, msg, len, &w);
    if (w && !atomic_load_explicit(&c->finished, memory_order_acquire))
        (void)enqueue(c->eng, c, Q_RESUME);
    return st;
}

static envd_status h2c_close_send(envd_rpc *r)
{
    h2_call *c = call_of(r);
    if (!c || c->rep.kind != ENVD_RPC_CLIENT_STREAM)
        return ENVD_E_USAGE;
    int w;
    envd_status st = envd_connect_sendq_close(&c->sq, &w);
    if (st != ENVD_OK)
        return st;
    if (!atomic_load_explicit(&c->finished, memory_order_acquire))
        (void)enqueue(c->eng, c, (w ? Q_RESUME : 0u) | Q_ARM);
    return ENVD_OK;
}

static void h2c_cancel(envd_rpc *r)
{
    h2_call *c = call_of(r);
    if (!c || atomic_load_explicit(&c->finished, memory_order_acquire))
        return;
    atomic_store_explicit(&c->cancel_requested, 1, memory_order_release);
    (void)enqueue(c->eng, c, Q_CANCEL);
}

static void h2c_release(envd_rpc *r)
{
    call_unref(call_of(r));
}

static const envd_rpc_ops h2c_ops = {
    ENVD_TRANSPORT_CONNECT, h2c_start, h2c_send, h2c_close_send, h2c_cancel, h2c_release,
};

envd_status envd_h2c_engine_new(const envd_pool_limits *lim, int epoll_fd, int wake_fd,
                               envd_h2c_engine **out)
{
    *out = NULL;
    envd_h2c_engine *e = envd_calloc(1, sizeof *e);
    if (!e)
        return ENVD_E_NOMEM;
    e->tp.ops = &h2c_ops;
    e->lim = envd_pool_limits_or_default(lim);
    e->next_check = INT64_MAX;
    e->next_sweep = envd_now_ms() + CONN_IDLE_MS;
    e->epoll_fd = epoll_fd;
    e->wake_fd = wake_fd;
    if (nghttp2_session_callbacks_new(&e->cbs) != 0 || nghttp2_option_new(&e->opt) != 0) {
        nghttp2_session_callbacks_del(e->cbs);
        free(e);
        return ENVD_E_NOMEM;
    }
    nghttp2_session_callbacks_set_on_header_callback(e->cbs, cb_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(e->cbs, cb_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(e->cbs, cb_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(e->cbs, cb_stream_close);
    nghttp2_session_callbacks_set_error_callback2(e->cbs, cb_error);
    pthread_mutex_init(&e->mu, NULL);
    *out = e;
    return ENVD_OK;
}

void envd_h2c_engine_free(envd_h2c_engine *e)
{
    if (!e)
        return;
    nghttp2_session_callbacks_del(e->cbs);
    nghttp2_option_del(e->opt);
    while (e->tls_ctxs) {
        tls_ctx *t = e->tls_ctxs;
        e->tls_ctxs = t->next;
        SSL_CTX_free(t->ctx);
        free(t);
    }
    pthread_mutex_destroy(&e->mu);
    free(e);
}

void envd_h2c_engine_on_not_h2(envd_h2c_engine *e, void (*fn)(void *ud, const char *authority),
                               void *ud)
{
    e->not_h2 = fn;
    e->not_h2_ud = ud;
}

/* ---- fuzzing seam (tests/fuzz/fuzz_h2c.c) ----------------------------------- */

/* One call through a connection with no socket: the server's bytes are fed
 * to nghttp2 in cuts of `cut` bytes, what the engine writes is dropped, and
 * the end of the bytes is the server closing the connection. */
static void fuzz_feed(envd_h2c_engine *e, h2_conn *k, const uint8_t *data, size_t len,
                      size_t cut)
{
    for (size_t off = 0; off < len; off += cut) {
        size_t n = len - off < cut ? len - off : cut;
        int was_ready = k->ready;
        ssize_t r = nghttp2_session_mem_recv(k->s, data + off, n);
        if (r < 0) {
            conn_lost(e, k, was_ready ? ENVD_FAILURE_BROKEN : ENVD_FAILURE_NOT_HTTP,
                      "HTTP/2 failure", nghttp2_strerror((int)r), ENVD_FAILURE_CLOSED);
            return;
        }
        if (k->ready < 0)
            conn_ready(e, k);
        place_all(e);
        if (on_send_ready(e, k) != 0) {
            conn_io_error(e, k, errno);
            return;
        }
    }
    conn_lost(e, k, ENVD_FAILURE_BROKEN, "the connection closed before the response was complete",
              "end of file", ENVD_FAILURE_CLOSED);
}

/* The engine of a fuzzing run: one connection at most, never a real one. */
static envd_h2c_engine *fuzz_engine(void)
{
    envd_h2c_engine *e = NULL;
    envd_pool_limits lim = {100, 1};
    return envd_h2c_engine_new(&lim, -1, -1, &e) == ENVD_OK ? e : NULL;
}

/* Runs r, started on e, against the server's bytes; then ends everything. */
static void fuzz_drive(envd_h2c_engine *e, envd_rpc *r, const uint8_t *server, size_t len,
                       size_t cut)
{
    process_queue(e, take_queue(e, 0));
    h2_origin *o = e->origins;
    h2_conn *k = o ? envd_calloc(1, sizeof *k) : NULL;
    nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_ENABLE_PUSH, 0}};
    if (k) {
        k->o = o;
        k->fd = -1;
        k->connected = 1;
        if (nghttp2_session_client_new2(&k->s, e->cbs, k, e->opt) != 0 ||
            nghttp2_submit_settings(k->s, NGHTTP2_FLAG_NONE, iv, 1) != 0) {
            conn_free(e, k);
            k = NULL;
        }
    }
    if (k) {
        k->next = o->conns;
        o->conns = k;
        o->n_conns++;
        place(e, o);
        process_queue(e, take_queue(e, 0)); /* close_send's resume */
        fuzz_feed(e, k, server, len, cut ? cut : 1);
    }
    if (r)
        e->tp.ops->release(r);
    envd_h2c_engine_shutdown(e); /* anything still open ends here */
    envd_h2c_engine_free(e);
}

envd_status envd_h2c_fuzz_call(const envd_rpc_request *req, const envd_rpc_callbacks *cb,
                               const uint8_t *server, size_t len, size_t cut, int close_send)
{
    envd_h2c_engine *e = fuzz_engine();
    if (!e)
        return ENVD_E_NOMEM;
    envd_rpc *r = NULL;
    envd_status st = e->tp.ops->start(&e->tp, req, cb, &r);
    if (st == ENVD_OK && close_send && req->kind == ENVD_RPC_CLIENT_STREAM) {
        static const uint8_t msg[3] = {0x0a, 0x01, 'x'};
        e->tp.ops->send(r, msg, sizeof msg);
        e->tp.ops->close_send(r);
    }
    fuzz_drive(e, r, server, len, cut);
    return st;
}

envd_status envd_h2c_fuzz_http(const envd_http_request *req, const envd_http_callbacks *cb,
                               const uint8_t *server, size_t len, size_t cut)
{
    envd_h2c_engine *e = fuzz_engine();
    if (!e)
        return ENVD_E_NOMEM;
    envd_rpc *r = NULL;
    envd_status st = envd_h2c_http_start(e, req, cb, &r);
    fuzz_drive(e, r, server, len, cut);
    return st;
}

envd_rpc_transport *envd_h2c_engine_connect(envd_h2c_engine *e)
{
    return &e->tp;
}

void envd_h2c_engine_stats(envd_h2c_engine *e, size_t *open_conns, size_t *connects,
                           size_t *calls)
{
    if (calls)
        *calls = atomic_load_explicit(&e->n_calls, memory_order_relaxed);
    if (open_conns)
        *open_conns = atomic_load_explicit(&e->n_conns, memory_order_relaxed);
    if (connects)
        *connects = atomic_load_explicit(&e->n_connects, memory_order_relaxed);
}
