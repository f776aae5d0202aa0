/* The one internal interface every RPC transport implements (gRPC core over
 * HTTP/2, Connect over libcurl), plus plain HTTP for /files.
 *
 * Rules shared by every implementation:
 *  - start() either fails (returns non-OK, no callback ever runs) or succeeds
 *    and then on_done runs exactly once, last, after every on_message.
 *  - Callbacks run on engine threads, in order for one call, never
 *    concurrently for one call. They must not block for long.
 *  - The caller owns one reference to the call returned by start() and drops
 *    it with release() exactly once (it may do so inside on_done). cancel()
 *    may be called from any thread, any number of times, until release();
 *    after on_done it is a no-op.
 *  - Request data passed to start()/send() is copied (or fully consumed)
 *    before the function returns.
 *  - Header names are lower case. The transport adds its own protocol
 *    headers (content-type, te, user-agent ...); the caller's list carries
 *    envd's (authorization, x-access-token, e2b-sandbox-id, ...). A transport
 *    never sends Connect-Timeout-Ms or grpc-timeout on its own for a stream:
 *    envd reads Connect-Timeout-Ms on Start as the process lifetime. Timeouts
 *    are enforced on the client side instead.
 *  - A failure on the way to the server gets its status from the one error
 *    model (envd_failure_status below, table in failure.c), so the same
 *    event reads the same on every transport; a status the server itself
 *    sent is passed on as it is.
 */
#ifndef ENVD_TRANSPORT_H
#define ENVD_TRANSPORT_H

#include "envd/envd.h"
#include "core/error.h"
#include "core/timer.h"

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* envd_kv (a header name and value) is the public type from envd.h. */

/* Where calls go. Immutable once built; shared by reference. */
typedef struct envd_endpoint {
    char *base_url;      /* "http://127.0.0.1:49983" or "https://gw:443/prefix"; no trailing '/' */
    char *authority;     /* "127.0.0.1:49983": host[:port] as the gRPC target */
    int tls;             /* 1 for https */
    char *ca_file;       /* PEM bundle to trust instead of the system roots; NULL = system */
    int insecure;        /* 1 = skip TLS peer verification (tests only) */
    int h2c_prior_knowledge; /* 1 = Connect/HTTP over cleartext HTTP/2 without
                              * upgrade (h2c servers and gateways); 0 = HTTP/1.1
                              * for http:// (stock envd) */
    size_t max_message;      /* largest reply message; 0 = ENVD_FRAME_MAX_DEFAULT */
} envd_endpoint;

typedef enum envd_rpc_kind {
    ENVD_RPC_UNARY = 0,
    ENVD_RPC_SERVER_STREAM = 1,
    ENVD_RPC_CLIENT_STREAM = 2
} envd_rpc_kind;

typedef struct envd_rpc_request {
    const envd_endpoint *ep;
    const char *method;          /* "/process.Process/Start" */
    envd_rpc_kind kind;
    const envd_kv *headers;
    size_t n_headers;
    /* Unary and server stream: the request message (serialized protobuf).
     * Client stream: ignored; messages go through send(). */
    const uint8_t *body;
    size_t body_len;
    /* Unary: the whole call. Streams: until the response headers / first
     * message arrive. 0 = none. Fires as ENVD_DEADLINE_EXCEEDED. (Connect
     * client stream: this and the idle clock start at close_send(), as the
     * response cannot come before.) */
    int64_t timeout_ms;
    /* Streams: longest gap between two received messages (keepalives count)
     * before the stream is declared dead (ENVD_E_IDLE_TIMEOUT). 0 = none. */
    int64_t idle_timeout_ms;
} envd_rpc_request;

typedef struct envd_rpc_callbacks {
    /* One response message: serialized protobuf, valid only during the call.
     * Return 0 to go on; non-zero cancels the call (on_done then reports
     * ENVD_CANCELED). */
    int (*on_message)(void *ud, const uint8_t *msg, size_t len);
    /* Exactly once, last. err is NULL on success; otherwise the callee owns
     * it (frees it or keeps it). */
    void (*on_done)(void *ud, envd_error *err);
    void *ud;
} envd_rpc_callbacks;

typedef struct envd_rpc envd_rpc;

typedef struct envd_rpc_transport envd_rpc_transport;

typedef struct envd_rpc_ops {
    envd_transport_kind kind;
    envd_status (*start)(envd_rpc_transport *t, const envd_rpc_request *req,
                         const envd_rpc_callbacks *cb, envd_rpc **out);
    /* Client stream only: queue one message, sent in order. Copies msg. */
    envd_status (*send)(envd_rpc *call, const uint8_t *msg, size_t len);
    /* Client stream only: no more messages; the response follows. */
    envd_status (*close_send)(envd_rpc *call);
    void (*cancel)(envd_rpc *call);
    void (*release)(envd_rpc *call);
} envd_rpc_ops;

/* Every transport object starts with this header, so the API layer can call
 * through t->ops without knowing the implementation. */
struct envd_rpc_transport {
    const envd_rpc_ops *ops;
};

/* Connection pool bounds per endpoint (envd_config_set_connection_limits).
 * NULL where an engine takes one: the defaults. */
typedef struct envd_pool_limits {
    int streams_per_connection;
    int max_connections;
} envd_pool_limits;

static inline envd_pool_limits envd_pool_limits_or_default(const envd_pool_limits *lim)
{
    envd_pool_limits d = {ENVD_DEFAULT_STREAMS_PER_CONNECTION, ENVD_DEFAULT_MAX_CONNECTIONS};
    if (lim && lim->streams_per_connection > 0)
        d.streams_per_connection = lim->streams_per_connection;
    if (lim && lim->max_connections > 0)
        d.max_connections = lim->max_connections;
    return d;
}

/* ---- gRPC core (src/transport/grpc.c) ---------------------------------- */

typedef struct envd_grpc_engine envd_grpc_engine;

/* Starts `workers` threads, each draining its own completion queue. Calls
 * grpc_init(). Each endpoint (authority, tls, ca) gets a pool of channels,
 * each its own connection, made lazily: a call goes to the least-loaded
 * channel with fewer than lim->streams_per_connection calls on it, a new
 * channel opens when all are full (up to lim->max_connections; past it the
 * least-loaded takes the call and core queues it), and channels past the
 * first are closed after a minute without a call. */
envd_status envd_grpc_engine_new(int workers, envd_timers *timers, const envd_pool_limits *lim,
                                 envd_grpc_engine **out);
/* Cancels every call in flight (their on_done report ENVD_CANCELED), tears
 * down in the documented order and calls grpc_shutdown(). Must not be called
 * from an engine thread. */
void envd_grpc_engine_free(envd_grpc_engine *e);
/* Whether the first engine switched off Abseil's debug mutex deadlock
 * detection (see grpc.c): 1 done, 0 kept (ENVD_ABSL_DEADLOCK_DETECTION=1),
 * -1 not found in this Abseil. Runs the switch if no engine has yet. */
int envd_grpc_absl_deadlock_state(void);
envd_rpc_transport *envd_grpc_engine_transport(envd_grpc_engine *e);
/* Tests: channels over every pool and the calls counted on them. */
void envd_grpc_engine_pool_stats(envd_grpc_engine *e, size_t *channels, size_t *active);
/* Tests: how long a channel past a pool's first may stay idle before it is
 * closed (ms <= 0: the built-in minute). Applies from the next sweep. */
void envd_grpc_engine_set_idle_ms(envd_grpc_engine *e, int64_t ms);
/* Non-zero when err says the peer does not speak gRPC end to end (an
 * HTTP/1.1-only server, a gateway that drops trailers), as opposed to a
 * real answer (a grpc-status, a 401) or an unreachable peer. Transport auto
 * falls back to Connect on it. */
int envd_grpc_error_is_protocol_mismatch(const envd_error *err);

/* ---- libcurl (src/transport/curl_engine.c, connect.c, http.c) ----------- */

typedef struct envd_curl_engine envd_curl_engine;

/* Starts the I/O thread that drives one curl multi handle. */
envd_status envd_curl_engine_new(envd_timers *timers, const envd_pool_limits *lim,
                                 envd_curl_engine **out);
/* Cancels every transfer (on_done with ENVD_CANCELED), joins the thread. */
void envd_curl_engine_free(envd_curl_engine *e);
/* The Connect protocol (binary proto codec). */
envd_rpc_transport *envd_curl_engine_connect(envd_curl_engine *e);

/* The Connect transport for ep: Connect over cleartext HTTP/2 (h2c.c) for
 * an endpoint with h2c_prior_knowledge and no proxy in the way (none set,
 * or no_proxy names its host), made on
 * first use and owned by e; the libcurl one otherwise (and when the h2c
 * engine cannot start). */
envd_rpc_transport *envd_curl_engine_connect_for(envd_curl_engine *e, const envd_endpoint *ep);
/* 1 when no_proxy (libcurl's CURLOPT_NOPROXY syntax: names and addresses
 * separated by commas or spaces, "*" alone for every host, a name matching itself
 * and its subdomains with or without a leading '.', IPv6 without brackets,
 * addresses with a /bits CIDR suffix) exempts the host of authority
 * ("host", "host:port", "[v6]:port") from the proxy. */
int envd_no_proxy_match(const char *no_proxy, const char *authority);
/* The h2c engine behind envd_curl_engine_connect_for, NULL while none was
 * needed (tests). */
typedef struct envd_h2c_engine envd_h2c_engine;
envd_h2c_engine *envd_curl_engine_h2c(envd_curl_engine *e);
/* Tests: take the https authority ("host:port") as one that chose h2, as
 * if libcurl had seen it (its next Connect calls go to the h2c engine). */
void envd_curl_engine_h2tls_learn(envd_curl_engine *e, const char *authority);

/* ---- Connect over HTTP/2 on libnghttp2 (src/transport/h2c.c) ------------- */

/* h2c with prior knowledge, and https origins that chose h2 by ALPN (TLS
 * by OpenSSL, verified against the endpoint's CA file or the system's
 * roots unless insecure). Per origin (scheme, host, port, CA file and
 * verification) a pool of HTTP/2 connections, each carrying
 * up to min(the server's SETTINGS_MAX_CONCURRENT_STREAMS,
 * lim->streams_per_connection) calls, at most lim->max_connections of
 * them; calls past that wait in order. No thread of its own: a host loop
 * (the libcurl engine's I/O thread) owns epoll_fd and wake_fd, calls
 * envd_h2c_engine_poll on every pass and hands it its sockets' events;
 * other threads' requests write to wake_fd. */
envd_status envd_h2c_engine_new(const envd_pool_limits *lim, int epoll_fd, int wake_fd,
                               envd_h2c_engine **out);
/* Host loop: runs queued requests, timers and pending writes; returns the
 * time (ms, envd_now_ms clock) by which it wants the next pass. */
int64_t envd_h2c_engine_poll(envd_h2c_engine *e);
/* Host loop: an epoll event; returns 0 when data is not one of e's. */
int envd_h2c_engine_event(envd_h2c_engine *e, uint64_t data, uint32_t events);
/* Host loop, last: every call ends (on_done with ENVD_CANCELED), later
 * starts fail with ENVD_E_SHUTDOWN, connections close. */
void envd_h2c_engine_shutdown(envd_h2c_engine *e);
/* After the host loop is gone. */
void envd_h2c_engine_free(envd_h2c_engine *e);
envd_rpc_transport *envd_h2c_engine_connect(envd_h2c_engine *e);
/* fn(ud, authority) runs on the host loop when an https origin's ALPN
 * chose something other than h2: its next calls should go elsewhere. */
void envd_h2c_engine_on_not_h2(envd_h2c_engine *e, void (*fn)(void *ud, const char *authority),
                               void *ud);
/* Fuzzing seam: starts one call (req, cb) on an engine of its own whose
 * one connection has no socket: `server` is what the server sent, fed in
 * cuts of `cut` bytes, then the connection closes; a client stream sends
 * one message and closes when close_send. Every call ends (cb->on_done)
 * before it returns; non-OK: start() refused the request. */
envd_status envd_h2c_fuzz_call(const envd_rpc_request *req, const envd_rpc_callbacks *cb,
                               const uint8_t *server, size_t len, size_t cut, int close_send);
/* Tests and the bench: connections open now, opened in all, and calls the
 * engine holds (queued or on a stream). NULL for what is not wanted. */
void envd_h2c_engine_stats(envd_h2c_engine *e, size_t *open_conns, size_t *connects,
                           size_t *calls);

/* Plain HTTP for /files (http.c; request bodies in http_body.c). */
typedef struct envd_http_part {
    const char *name;            /* form field name; NULL = "file" */
    const char *filename;        /* may be NULL */
    const char *content_type;    /* NULL = application/octet-stream */
    /* Either data/len (copied by start), or read() with size (-1 when
     * unknown: the body goes chunked). */
    const uint8_t *data;
    size_t len;
    /* I/O thread: fill buf with up to cap bytes; return the count, 0 at the
     * end, or (size_t)-1 on a local error (the transfer fails with
     * ENVD_E_IO). A sized source must give exactly size bytes. */
    size_t (*read)(void *ud, uint8_t *buf, size_t cap);
    void *read_ud;
    int64_t size;
} envd_http_part;

typedef struct envd_http_request {
    const envd_endpoint *ep;
    const char *method;          /* "GET" or "POST" */
    const char *path;            /* "/files?path=...&username=..." already encoded */
    /* Options beyond the endpoint's, for a caller with its own TLS and
     * credentials (the Kubernetes lookup: an in-memory CA, a client
     * certificate, a proxy, basic auth): called once on the starting
     * thread with the transfer's CURL * after the library's options, before
     * the transfer is submitted. Non-OK fails the start. NULL = none. */
    envd_status (*tune)(void *ud, void *easy);
    void *tune_ud;
    const envd_kv *headers;
    size_t n_headers;
    /* POST body, one of: parts (multipart/form-data), or a single raw body
     * sent as its content_type. Streamed either way (http_body.h). */
    const envd_http_part *parts;
    size_t n_parts;
    const envd_http_part *raw;
    int gzip_request;            /* compress the body with gzip on the fly */
    /* Ask for gzip (else "identity"); an encoded reply is decoded either way,
     * and one in an encoding curl cannot decode fails (ENVD_E_PROTOCOL). */
    int accept_gzip;
    /* Until the response headers, 0 = none: from the start for a request
     * without a body, from the end of the body otherwise (an upload takes as
     * long as it takes). ENVD_DEADLINE_EXCEEDED. */
    int64_t timeout_ms;
    int64_t idle_timeout_ms;     /* longest stall in either direction; 0 = none */
    int64_t deadline_ms;         /* the whole transfer; 0 = none */
    /* The response body must bring at least min_bytes in every
     * min_window_ms (from the response headers on); 0 = no minimum. */
    int64_t min_bytes;
    int64_t min_window_ms;
    /* Where to store the response's Retry-After (ms, -1 none) before
     * on_done, for a caller that judges the status itself (the retry rule,
     * failure.c). Must outlive the transfer. NULL: not wanted. */
    int64_t *retry_after_ms;
} envd_http_request;

typedef struct envd_http_callbacks {
    /* Response status known (headers done). content_length is -1 when
     * unknown. Return non-zero to abort (on_done gets ENVD_CANCELED). */
    int (*on_status)(void *ud, int status, int64_t content_length);
    /* Response body bytes, as they arrive (decoded if gzip). Return non-zero
     * to abort. */
    int (*on_data)(void *ud, const uint8_t *data, size_t len);
    /* Upload progress, I/O thread, after each read of the body: bytes taken
     * from the parts so far (no framing, before gzip) and their total, or
     * -1. May be NULL. */
    void (*on_progress)(void *ud, int64_t sent, int64_t total);
    /* Exactly once, last. err is NULL when an HTTP response was received in
     * full (whatever its status: the caller judges the status); the callee
     * owns err. */
    void (*on_done)(void *ud, envd_error *err);
    void *ud;
} envd_http_callbacks;

typedef struct envd_http envd_http;

/* Starts a transfer. An endpoint whose Connect calls the nghttp2 engine
 * carries (h2c, or https known to speak h2; no proxy in the way) has its
 * transfers there too, as streams on the same connections; libcurl carries
 * the rest, and every request with a tune() of its own. */
envd_status envd_http_start(envd_curl_engine *e, const envd_http_request *req,
                            const envd_http_callbacks *cb, envd_http **out);
void envd_http_cancel(envd_http *h);
void envd_http_release(envd_http *h);

/* The same transfer on the nghttp2 engine (h2c.c): req is checked already
 * and has no tune(). *out ends like a Connect call of the engine
 * (envd_h2c_engine_connect(e)->ops: cancel, release). */
envd_status envd_h2c_http_start(envd_h2c_engine *e, const envd_http_request *req,
                                const envd_http_callbacks *cb, envd_rpc **out);
/* Fuzzing seam: as envd_h2c_fuzz_call, for a /files transfer. */
envd_status envd_h2c_fuzz_http(const envd_http_request *req, const envd_http_callbacks *cb,
                               const uint8_t *server, size_t len, size_t cut);
/* The nghttp2 engine that carries ep's Connect calls, made on first use;
 * NULL when libcurl does (see envd_curl_engine_connect_for). */
envd_h2c_engine *envd_curl_engine_h2_for(envd_curl_engine *e, const envd_endpoint *ep);

/* ---- transport choice (src/transport/select.c) -------------------------- */

/* What each endpoint turned out to speak, per runtime. */
typedef struct envd_transport_choice envd_transport_choice;

envd_transport_choice *envd_transport_choice_new(void);
void envd_transport_choice_free(envd_transport_choice *tc);
/* GRPC or CONNECT for ep, probing once (a gRPC List carrying `headers`)
 * when not known yet; concurrent callers wait for the probe. AUTO when the
 * endpoint could not be reached: nothing is remembered then. */
envd_transport_kind envd_transport_choose(envd_transport_choice *tc, envd_rpc_transport *grpc,
                                          const envd_endpoint *ep, const envd_kv *headers,
                                          size_t n_headers, int64_t timeout_ms);

/* ---- one error model (src/transport/failure.c) ------------------------- */

/* What went wrong on the way to the server, as every transport names it
 * before it picks a status. */
typedef enum envd_failure {
    ENVD_FAILURE_REFUSED = 1, /* nothing listening: connection refused */
    ENVD_FAILURE_UNREACHABLE, /* no route, connection setup timed out */
    ENVD_FAILURE_DNS,         /* the host name does not resolve */
    ENVD_FAILURE_TLS,         /* handshake or certificate verification failed */
    ENVD_FAILURE_NOT_HTTP,    /* the peer answered the connection in bytes that
                               * are not the HTTP asked for (garbage, HTTP/1.x
                               * to an HTTP/2 preface or the other way round) */
    ENVD_FAILURE_CLOSED,      /* connection closed or reset before any response */
    ENVD_FAILURE_BROKEN,      /* connection lost mid-call or mid-stream */
    ENVD_FAILURE_PROTOCOL,    /* a response that breaks the RPC protocol: a
                               * malformed frame, a 200 that is not an RPC
                               * reply, a body that does not decode */
    ENVD_FAILURE_DEADLINE,    /* the request timeout ran out */
    ENVD_FAILURE_IDLE,        /* a stream stayed silent past its idle timeout */
    ENVD_FAILURE_HTTP,        /* an HTTP status without an RPC status: a
                               * gateway's or proxy's own reply to an RPC */
    ENVD_FAILURE_LOCAL        /* gRPC core or libcurl failed on this side */
} envd_failure;

/* The status for a failure (http_status: ENVD_FAILURE_HTTP only). One table
 * for every transport; its comment says why each code was chosen. */
envd_status envd_failure_status(envd_failure kind, int http_status);

/* What the retry rule needs to know about a failed attempt besides its
 * error (the rule itself is in failure.c). */
typedef struct envd_retry_ctx {
    int attempt;          /* failed attempts so far, this one included (1..) */
    int max_retries;      /* attempts after the first, at most */
    int64_t remaining_ms; /* of the call's request timeout; -1 = unbounded */
    int replayable;       /* the request can be sent again as it was */
    int idempotent;       /* sending it twice does what sending it once does */
    int responded;        /* a response message or body byte came */
} envd_retry_ctx;

/* The delay before the next attempt in ms (Retry-After when the reply had
 * one, else exponential back-off with jitter drawn from rnd), or -1: no
 * retry, the error is final. */
int64_t envd_retry_delay_ms(const envd_error *e, const envd_retry_ctx *ctx, uint64_t rnd);

/* A Retry-After value (seconds or an HTTP-date, relative to now) in ms;
 * -1 when v is NULL or neither form. */
int64_t envd_retry_after_parse(const char *v, time_t now);

/* ---- error mapping shared by transports (src/transport/errmap.c) ------- */

/* Builds the error for a non-2xx HTTP response from its (possibly partial)
 * body: Connect JSON {"code":"not_found","message":...} wins; envd's own
 * {"code":401,"message":...} and plain proxy replies map from the status. */
envd_error *envd_error_from_http_body(int http_status, const uint8_t *body, size_t len,
                                      envd_transport_kind transport);

/* A gRPC error that is a sandbox gateway's local reply (Envoy turns its
 * replies to gRPC requests into grpc-status 14 with the text as
 * grpc-message): rewritten in place as the HTTP reply would read, with
 * failure ENVD_FAILURE_HTTP. Anything else is left alone. */
void envd_gateway_classify(envd_error *e);

/* Builds the error from a Connect end-of-stream JSON payload; returns NULL
 * when it reports success ({} or without "error"). */
envd_error *envd_error_from_connect_end(const uint8_t *json, size_t len);

#endif
