/* Private side of the libcurl engine, shared by connect.c and http.c.
 *
 * A transfer (envd_curl_xfer) is embedded at the start of the transport's own
 * object. The transport builds the easy handle on the caller's thread, fills
 * in the timeouts and submits it; from then on the easy handle belongs to the
 * I/O thread, which runs every curl callback, enforces the client-side
 * timeouts and, once the handle has left the multi, calls vt->done exactly
 * once and cleans the easy handle up.
 *
 * Lifetime: reference counted. The transport's caller holds one reference
 * (dropped with envd_curl_xfer_unref), the engine holds one from submit until
 * done has returned, and each queued request (cancel, resume) holds one until
 * the I/O thread has seen it. vt->destroy runs when the count reaches zero,
 * on whichever thread dropped the last reference.
 */
#ifndef ENVD_TRANSPORT_CURL_ENGINE_H
#define ENVD_TRANSPORT_CURL_ENGINE_H

#include "transport/reqq.h"
#include "transport/transport.h"

#include <curl/curl.h>
#include <stdatomic.h>

typedef struct envd_curl_xfer envd_curl_xfer;

typedef struct envd_curl_xfer_vt {
    /* I/O thread, exactly once: the easy handle has left the multi (or was
     * never added). abort is ENVD_OK when curl finished the transfer (rc is
     * its result); otherwise the engine stopped it and says why:
     * ENVD_CANCELED (cancel or engine shutdown), ENVD_DEADLINE_EXCEEDED
     * (timeout_ms) or ENVD_E_IDLE_TIMEOUT, with a short text in why. The
     * easy handle is still valid here (curl_easy_getinfo works) and is
     * cleaned up by the engine right after. */
    void (*done)(envd_curl_xfer *x, CURLcode rc, envd_status abort, const char *why);
    /* Last reference dropped: free everything (the easy handle is gone). */
    void (*destroy)(envd_curl_xfer *x);
    /* I/O thread, for a transfer submitted without an easy handle: it was
     * admitted (see envd_curl_engine_submit) and x->easy now holds one with
     * the shared options set; set the transport's own. Non-OK ends the
     * transfer with that status (done gets CURLE_OUT_OF_MEMORY for
     * ENVD_E_NOMEM). NULL for transports that always pass a handle. */
    envd_status (*setup)(envd_curl_xfer *x);
} envd_curl_xfer_vt;

typedef struct envd_curl_origin envd_curl_origin;

struct envd_curl_xfer {
    const envd_curl_xfer_vt *vt;
    envd_curl_engine *eng;
    CURL *easy;
    char errbuf[CURL_ERROR_SIZE];

    /* Set by the transport before submit. */
    int64_t timeout_ms;      /* first deadline; 0 = none */
    int64_t idle_timeout_ms; /* 0 = none */
    int timeout_whole;       /* 1: timeout_ms covers the whole transfer (unary) */
    int idle_before_first;   /* 1: the idle clock runs before the first data too */
    int timers_deferred;     /* 1: timers start at envd_curl_xfer_arm_timers() */
    /* Deadline on the whole transfer from its start (waiting for a
     * connection included: curl's own CURLOPT_TIMEOUT_MS does not run while
     * a transfer waits for one); 0 = none. */
    int64_t deadline_ms;
    /* Minimum transfer rate of the response body: at least min_bytes
     * (counted by envd_curl_xfer_received) in every min_window_ms from the
     * first response event on. 0 = none. An idle clock alone never fires on
     * a body that trickles a byte at a time. */
    int64_t min_bytes;
    int64_t min_window_ms;
    int opt_nomem; /* see ENVD_CURL_COPYOPT */

    atomic_int refs;
    atomic_int cancel_requested; /* any thread may set; transports poll it */
    atomic_int finished;         /* done has run (or is running) */

    /* I/O thread only. */
    int64_t first_deadline; /* absolute ms; 0 = none / reached */
    int64_t deadline_at;    /* absolute ms of deadline_ms; 0 = none */
    int64_t last_activity;  /* absolute ms */
    int first_seen;
    int timers_on;
    int has_conn; /* curl gave it a connection (else pending or connecting) */
    int64_t rate_from;   /* absolute ms: start of the current rate window */
    uint64_t rate_bytes; /* body bytes received in it */
    int in_multi;
    int listed;                  /* on the active list (admitted or waiting) */
    envd_curl_xfer *prev, *next; /* active list */

    /* Connection options from the endpoint (envd_curl_xfer_init), set on
     * the easy handle when the transfer gets one. */
    const char *ca_file;
    unsigned char tls, h2c, insecure;

    /* Admission per origin (scheme, host and port), I/O thread: a transfer
     * past its origin's bound waits in the origin's queue, without an easy
     * handle when it was submitted without one. */
    const char *origin; /* points into the transport's URL */
    size_t origin_len;
    envd_curl_origin *slot;
    int waiting;  /* in slot's queue */
    int admitted; /* counted in slot's admitted */
    int gating;   /* counted in slot's connecting */
    envd_curl_xfer *wprev, *wnext;

    envd_req req; /* the engine's request queue (reqq.h) */
};

/* curl_easy_setopt of an option libcurl copies (a string, a blob) for the
 * handle of x. libcurl cannot copy it when memory is short: x->opt_nomem
 * then fails the transfer with ENVD_E_NOMEM when the engine admits it,
 * where it would otherwise run without the option (no URL, another method,
 * no CA, the environment's proxy). */
#define ENVD_CURL_COPYOPT(x, opt, val)                                                         \
    ((x)->opt_nomem |= curl_easy_setopt((x)->easy, (opt), (val)) != CURLE_OK)

/* An easy handle for a new transfer: a reset one from the engine's pool, or
 * a new one (NULL on OOM). Transfers handed to the engine are returned to
 * the pool when they finish; one that never got there goes back with
 * envd_curl_easy_put. */
CURL *envd_curl_easy_get(envd_curl_engine *e);
void envd_curl_easy_put(envd_curl_engine *e, CURL *easy);
/* Easy handles taken with envd_curl_easy_get and not put back (tests: a
 * call waiting for admission holds none). Any thread. */
size_t envd_curl_engine_easy_held(envd_curl_engine *e);

/* The URL parsed once per engine, for CURLOPT_CURLU (libcurl then skips its
 * per-request parse). Lives until the engine is freed; NULL when the URL
 * does not parse, memory is short or the engine already holds its limit of
 * distinct URLs: use CURLOPT_URL then. Any thread. */
CURLU *envd_curl_url(envd_curl_engine *e, const char *url);

/* Prepares x (refs = 1, the caller's) around an easy handle the transport
 * built: sets CURLOPT_PRIVATE, CURLOPT_ERRORBUFFER and the options every
 * transfer shares (no signals, TCP keepalive, TLS from the endpoint, HTTP
 * version). url: the transfer's URL, valid as long as x (its origin is the admission
 * key). With easy NULL the handle is taken and configured only when the
 * transfer is admitted (vt->setup must be set), and ep->ca_file must stay
 * valid until then (the transport keeps a copy). */
void envd_curl_xfer_init(envd_curl_xfer *x, const envd_curl_xfer_vt *vt, envd_curl_engine *e,
                         CURL *easy, const envd_endpoint *ep, const char *url);

/* Hands x to the I/O thread. On ENVD_OK the engine holds its reference and
 * vt->done will run exactly once. The transfer's timers start now (unless
 * deferred); it enters curl's multi handle only while its origin has fewer
 * than its bound of transfers there (max_connections over HTTP/1.1 and
 * unreused h2c, max_connections x streams_per_connection where connections
 * multiplex); the rest wait in order, holding only their own record. On failure (ENVD_E_SHUTDOWN) nothing was
 * taken: the transport still owns the easy handle and cleans it up. */
envd_status envd_curl_engine_submit(envd_curl_engine *e, envd_curl_xfer *x);

/* Any thread: stop the transfer; done reports ENVD_CANCELED unless it
 * finished first. A no-op once finished. */
void envd_curl_xfer_cancel(envd_curl_xfer *x);
/* Any thread: unpause the transfer (a read callback returned
 * CURL_READFUNC_PAUSE and has data now). */
void envd_curl_xfer_resume(envd_curl_xfer *x);
/* Any thread: start the deferred timers now (client stream after
 * close_send). */
void envd_curl_xfer_arm_timers(envd_curl_xfer *x);

/* I/O thread, from curl callbacks: bytes moved (idle clock restarts). */
void envd_curl_xfer_touch(envd_curl_xfer *x);
/* I/O thread: n response body bytes arrived (a touch that also counts
 * toward the minimum rate). */
void envd_curl_xfer_received(envd_curl_xfer *x, size_t n);
/* I/O thread: the first response event arrived (headers or first message);
 * the timeout_ms deadline no longer applies unless timeout_whole. */
void envd_curl_xfer_first_seen(envd_curl_xfer *x);
/* I/O thread, once the response headers are in: what the origin's
 * connection speaks (HTTP/2 or not) is known from here. */
void envd_curl_xfer_learn_proto(envd_curl_xfer *x);

/* I/O thread: the response headers are due within ms from now (0 = no
 * limit); replaces the first deadline. For an upload, whose response cannot
 * come before its body has gone out. A no-op once the response began. */
void envd_curl_xfer_expect_response(envd_curl_xfer *x, int64_t ms);

void envd_curl_xfer_ref(envd_curl_xfer *x);
void envd_curl_xfer_unref(envd_curl_xfer *x);

/* A curl_slist with "name: value" for every caller header plus extra lines.
 * Returns ENVD_INVALID_ARGUMENT for names or values holding CR, LF or a
 * colon in the name; ENVD_E_NOMEM. */
envd_status envd_curl_headers(const envd_kv *headers, size_t n, struct curl_slist **list);

/* The same list built in memory the caller owns (no allocation per header):
 * envd_curl_headers_size gives the bytes for nfixed fixed lines and the
 * caller's headers (ENVD_INVALID_ARGUMENT as above); envd_curl_headers_fill
 * builds the list in mem (pointer-aligned, that many bytes), fixed lines
 * first and referenced, not copied: they must outlive the list. Returns its
 * head (NULL when empty); never curl_slist_free_all it. */
envd_status envd_curl_headers_size(const envd_kv *headers, size_t n, size_t nfixed,
                                   size_t *bytes);
struct curl_slist *envd_curl_headers_fill(void *mem, const char *const *fixed, size_t nfixed,
                                          const envd_kv *headers, size_t n);

/* Text for a finished transfer's failure, e.g.
 * "connection refused (http://127.0.0.1:1/x): Failed to connect ..." and the
 * envd status it maps to through the one error model (failure.c):
 * ENVD_UNAVAILABLE for every way of not reaching the server or losing it,
 * ENVD_E_PROTOCOL, ENVD_E_NOMEM, ENVD_E_CONFIG, ENVD_E_TRANSPORT ... */
envd_status envd_curl_describe(const envd_curl_xfer *x, CURLcode rc, char *buf, size_t cap);
/* For the retry rule (failure.c), in vt->done: the failure kind curl's rc
 * names (when err has none yet and rc is not CURLE_OK) and the response's
 * Retry-After onto err. NULL err: nothing. */
void envd_curl_annotate(const envd_curl_xfer *x, CURLcode rc, envd_error *err);
/* The response's Retry-After in ms, or -1; in vt->done or a callback. */
int64_t envd_curl_retry_after_ms(const envd_curl_xfer *x);

/* The Connect transport object lives inside the engine (connect.c provides
 * the ops). */
extern const envd_rpc_ops envd_connect_ops;
envd_curl_engine *envd_curl_engine_from_connect(envd_rpc_transport *t);

#define ENVD_USER_AGENT "libenvd/0.1"

#endif
