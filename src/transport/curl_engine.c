/* The libcurl engine: one I/O thread driving one multi handle through
 * curl's socket interface and epoll, so a wake-up costs work for the
 * sockets that are ready, not for every transfer in flight (with
 * curl_multi_perform, 256 HTTP/1.1 calls in flight made each one ~4x more
 * expensive).
 *
 * Every curl call on a submitted easy handle happens on the I/O thread.
 * Other threads talk to it through a mutex-protected queue of per-transfer
 * requests (add, cancel, resume, arm timers) followed by a write to an
 * eventfd that sits in the epoll set.
 * The client-side timeouts live in the loop itself: each pass checks the
 * transfers' deadlines when the earliest one may have passed, and the poll
 * timeout is bounded by that earliest deadline, so a timeout fires on the
 * I/O thread at the right time without a timer thread.
 */
#include "transport/curl_engine.h"
#include "core/alloc.h"
#include "core/thread.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum { Q_ADD = 1u, Q_CANCEL = 2u, Q_RESUME = 4u, Q_ARM = 8u };

/* Idle connections kept for reuse across all hosts (at least one host's
 * max_connections). */
#define ENVD_CURL_MAX_IDLE_CONNS 512

/* Longest single poll; only bounds how stale next_check can be. */
#define ENVD_POLL_MAX_MS 1000

#define ENVD_EASY_POOL 256

#define ENVD_ORIGIN_BUCKETS 256

/* The set of https authorities known to speak h2: buckets, and how many
 * it keeps before it starts over (re-learning costs one libcurl call per
 * authority; it bounds a process that meets millions of sandbox hosts). */
#define ENVD_H2TLS_BUCKETS 1024
#define ENVD_H2TLS_MAX 65536

typedef struct envd_h2tls_known envd_h2tls_known;
struct envd_h2tls_known {
    envd_h2tls_known *next;
    char auth[];
};

/* Transfers to one origin (scheme, host and port) in curl's multi handle,
 * and those waiting for a place there, oldest first. */
struct envd_curl_origin {
    envd_curl_origin *next; /* hash chain */
    envd_curl_origin *rnext; /* ready list */
    envd_curl_xfer *qhead, *qtail;
    int admitted;
    /* Admitted transfers that may open a multiplexed connection and have no
     * connection yet (see gated). */
    int connecting;
    /* What the origin's connections speak, learnt from a response: 0 not
     * known yet, 1 HTTP/2, -1 one request per connection. */
    int proto;
    int ready; /* on the ready list */
    int busy;  /* admit_ready is working on it: keep it */
    size_t bucket, keylen;
    char key[];
};

struct envd_curl_engine {
    CURLM *multi;
    envd_pool_limits lim; /* per endpoint (host and port) */
    pthread_t thread;
    pthread_mutex_t mu;
    envd_reqq q; /* mu */
    int stopping;                  /* mu: free requested; no new transfers */
    int stopped;                   /* mu: the thread took its last queue */
    envd_timers *timers;           /* kept for the interface; timeouts run in the loop */

    int wake_fd;  /* eventfd: the queue has work, or stop */
    int epoll_fd;

    /* I/O thread only. */
    int64_t curl_deadline; /* when curl wants CURL_SOCKET_TIMEOUT (ms); -1 = never */
    envd_curl_xfer *active;
    int64_t next_check; /* no deadline can pass before this (ms); INT64_MAX = none */

    envd_rpc_transport connect_tp;

    /* Connect over h2c (h2c.c), made on first use; this engine's I/O
     * thread runs it on the same epoll set. */
    _Atomic(envd_h2c_engine *) h2c;
    pthread_mutex_t h2c_mu;
    int h2c_failed; /* h2c_mu: could not be made; libcurl carries h2c then */
    int h2c_closed; /* h2c_mu: the I/O thread is shutting down: none made now */

    /* https authorities libcurl saw choose h2 by ALPN: their Connect calls
     * go to the nghttp2 engine (see envd_curl_engine_connect_for). */
    pthread_mutex_t h2tls_mu;
    envd_h2tls_known *h2tls[ENVD_H2TLS_BUCKETS];
    size_t n_h2tls;

    /* Admission (I/O thread): origins with transfers admitted or waiting,
     * chained by hash; those whose queue may move on (see release). */
    envd_curl_origin *origins[ENVD_ORIGIN_BUCKETS];
    envd_curl_origin *ready;
    int no_admit; /* shutting down */

    /* Finished easy handles, reset and kept for the next transfer: creating
     * one per call was a visible share of a unary call's CPU. mu. */
    CURL *idle_easy[ENVD_EASY_POOL];
    size_t n_idle_easy;
    size_t n_easy_held; /* mu: handed out by envd_curl_easy_get, not put back */

    /* The proxy environment, read once when the engine is made (see
     * proxy_env_read); NULL where unset. */
    char *proxy_http, *proxy_https, *no_proxy;

    /* Parsed URLs (see envd_curl_url): open addressing, never evicted. mu. */
    struct url_slot {
        char *url;
        CURLU *u;
    } *urls;
    size_t n_urls;
};

/* Distinct URLs parsed once; past this many, calls parse their own. */
#define ENVD_URL_CACHE_SLOTS 2048
#define ENVD_URL_CACHE_MAX (ENVD_URL_CACHE_SLOTS / 2)

/* ---- process-wide curl initialisation ----------------------------------- */

static pthread_once_t g_curl_once = PTHREAD_ONCE_INIT;
static CURLcode g_curl_init_rc = CURLE_FAILED_INIT;

static int g_h2c_reuse_broken;

static void curl_init_once(void)
{
    g_curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
    const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);
    g_h2c_reuse_broken = v && v->version_num < 0x080000;
}

/* ---- references --------------------------------------------------------- */

void envd_curl_xfer_ref(envd_curl_xfer *x)
{
    atomic_fetch_add_explicit(&x->refs, 1, memory_order_relaxed);
}

void envd_curl_xfer_unref(envd_curl_xfer *x)
{
    if (!x)
        return;
    if (atomic_fetch_sub_explicit(&x->refs, 1, memory_order_acq_rel) == 1)
        x->vt->destroy(x);
}

/* ---- transfer setup ------------------------------------------------------ */

static void connected(envd_curl_xfer *x);
static int multiplexed(const envd_curl_xfer *x);
static void release(envd_curl_engine *e, envd_curl_origin *o);
static void drain_done(envd_curl_engine *e);

/* CURLOPT_PREREQFUNCTION: the transfer has a connection, new or reused. */
static int on_prereq(void *ud, char *conn_primary_ip, char *conn_local_ip, int conn_primary_port,
                     int conn_local_port)
{
    (void)conn_primary_ip;
    (void)conn_local_ip;
    (void)conn_primary_port;
    (void)conn_local_port;
    envd_curl_xfer *x = ud;
    x->has_conn = 1;
    connected(x);
    return CURL_PREREQFUNC_OK;
}

/* curl_getenv's view of one variable: unset and empty are the same. */
static int env_dup(const char *name, char **out)
{
    const char *v = getenv(name);
    if (!v || !v[0])
        return 0;
    *out = envd_strdup(v);
    return *out ? 1 : -1;
}

/* The first of names[] that is set, as libcurl 7.88 looks them up for a
 * transfer that has no CURLOPT_PROXY / CURLOPT_NOPROXY of its own. */
static int env_first(const char *const *names, char **out)
{
    for (; *names; names++) {
        int r = env_dup(*names, out);
        if (r != 0)
            return r;
    }
    return 0;
}

/* Left to itself libcurl reads the proxy environment on every request (five
 * getenv + strdup per Connect call over http://, 1.3 % of its CPU). The
 * engine reads it here, once, with libcurl's precedence: http_proxy (only
 * lowercase, as curl does) or https_proxy / HTTPS_PROXY by scheme, then
 * all_proxy / ALL_PROXY; no_proxy / NO_PROXY. Every transfer then gets them
 * explicitly (an empty CURLOPT_PROXY means none), so proxy settings keep
 * working but a change to the environment after the runtime was made is not
 * seen. A tune hook's CURLOPT_PROXY (a kubeconfig's proxy-url) still wins,
 * and no_proxy still applies to it, as before. */
static int proxy_env_read(envd_curl_engine *e)
{
    static const char *const http_names[] = {"http_proxy", "all_proxy", "ALL_PROXY", NULL};
    static const char *const https_names[] = {"https_proxy", "HTTPS_PROXY", "all_proxy",
                                              "ALL_PROXY", NULL};
    static const char *const no_names[] = {"no_proxy", "NO_PROXY", NULL};
    if (env_first(http_names, &e->proxy_http) < 0 ||
        env_first(https_names, &e->proxy_https) < 0 || env_first(no_names, &e->no_proxy) < 0)
        return -1;
    return 0;
}

/* libcurl parses and re-assembles a CURLOPT_URL on every request (~6 k
 * instructions of a Connect Stat's ~115 k); given a CURLU it only copies it.
 * Entries are immutable once inserted and live until the engine is freed,
 * so a transfer may hold one without a reference. */
CURLU *envd_curl_url(envd_curl_engine *e, const char *url)
{
    uint64_t h = 1469598103934665603ull;
    for (const unsigned char *p = (const unsigned char *)url; *p; p++)
        h = (h ^ *p) * 1099511628211ull;
    CURLU *found = NULL;
    pthread_mutex_lock(&e->mu);
    if (!e->urls)
        e->urls = envd_calloc(ENVD_URL_CACHE_SLOTS, sizeof *e->urls);
    if (e->urls) {
        size_t i = (size_t)h & (ENVD_URL_CACHE_SLOTS - 1);
        while (e->urls[i].url && strcmp(e->urls[i].url, url) != 0)
            i = (i + 1) & (ENVD_URL_CACHE_SLOTS - 1);
        if (e->urls[i].url) {
            found = e->urls[i].u;
        } else if (e->n_urls < ENVD_URL_CACHE_MAX) {
            CURLU *u = curl_url();
            char *copy = envd_strdup(url);
            if (u && copy && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK) {
                e->urls[i].url = copy;
                e->urls[i].u = found = u;
                e->n_urls++;
            } else {
                curl_url_cleanup(u);
                free(copy);
            }
        }
    }
    pthread_mutex_unlock(&e->mu);
    return found;
}

static void url_cache_free(envd_curl_engine *e)
{
    for (size_t i = 0; e->urls && i < ENVD_URL_CACHE_SLOTS; i++) {
        free(e->urls[i].url);
        curl_url_cleanup(e->urls[i].u);
    }
    free(e->urls);
}

static void proxy_env_free(envd_curl_engine *e)
{
    free(e->proxy_http);
    free(e->proxy_https);
    free(e->no_proxy);
}

/* The options every transfer shares, from the endpoint's copy in x. */
static void apply_common(envd_curl_xfer *x, CURL *easy)
{
    envd_curl_engine *e = x->eng;
    curl_easy_setopt(easy, CURLOPT_PRIVATE, (void *)x);
    curl_easy_setopt(easy, CURLOPT_PREREQFUNCTION, on_prereq);
    curl_easy_setopt(easy, CURLOPT_PREREQDATA, (void *)x);
    curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, x->errbuf);
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(easy, CURLOPT_TCP_NODELAY, 1L);
    ENVD_CURL_COPYOPT(x, CURLOPT_USERAGENT, ENVD_USER_AGENT);
    ENVD_CURL_COPYOPT(x, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
    const char *proxy = x->tls ? e->proxy_https : e->proxy_http;
    ENVD_CURL_COPYOPT(x, CURLOPT_PROXY, proxy ? proxy : "");
    ENVD_CURL_COPYOPT(x, CURLOPT_NOPROXY, e->no_proxy ? e->no_proxy : "");
    if (x->tls) {
        /* HTTP/2 where ALPN offers it, HTTP/1.1 otherwise. */
        curl_easy_setopt(easy, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
        curl_easy_setopt(easy, CURLOPT_PIPEWAIT, 1L);
    } else if (x->h2c) {
        curl_easy_setopt(easy, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE);
        if (g_h2c_reuse_broken) {
            /* libcurl < 8.0.0 fails every stream on a reused prior-knowledge
             * connection ("Error in the HTTP2 framing layer", curl issue
             * #10634): one connection per transfer there, within
             * max_connections. Measured (envd-bench stat, 256 in flight):
             * 248 connections and ~8x the client CPU per call of gRPC.
             * Connect calls over h2c therefore go to h2c.c (nghttp2); what
             * still comes here is /files, and Connect through a proxy. */
            curl_easy_setopt(easy, CURLOPT_FRESH_CONNECT, 1L);
            curl_easy_setopt(easy, CURLOPT_FORBID_REUSE, 1L);
        } else {
            curl_easy_setopt(easy, CURLOPT_PIPEWAIT, 1L);
        }
    } else {
        /* Stock envd speaks HTTP/1.1 only; never try an h2c upgrade. */
        curl_easy_setopt(easy, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    }
    if (x->ca_file && x->ca_file[0])
        ENVD_CURL_COPYOPT(x, CURLOPT_CAINFO, x->ca_file);
    if (x->insecure) {
        curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, 0L);
    }
}

/* "scheme://host:port" of url: what admission counts by. */
static void origin_of(const char *url, const char **origin, size_t *len)
{
    const char *p = strstr(url, "://");
    p = p ? p + 3 : url;
    p += strcspn(p, "/?#");
    *origin = url;
    *len = (size_t)(p - url);
}

void envd_curl_xfer_init(envd_curl_xfer *x, const envd_curl_xfer_vt *vt, envd_curl_engine *e,
                         CURL *easy, const envd_endpoint *ep, const char *url)
{
    x->vt = vt;
    x->eng = e;
    x->easy = easy;
    x->errbuf[0] = '\0';
    atomic_init(&x->refs, 1);
    atomic_init(&x->cancel_requested, 0);
    atomic_init(&x->finished, 0);
    x->first_deadline = 0;
    x->deadline_at = 0;
    x->last_activity = 0;
    x->first_seen = 0;
    x->timers_on = 0;
    x->has_conn = 0;
    x->in_multi = 0;
    x->listed = 0;
    x->prev = x->next = NULL;
    x->req = (envd_req){0};
    x->ca_file = ep->ca_file;
    x->tls = ep->tls != 0;
    x->h2c = !ep->tls && ep->h2c_prior_knowledge;
    x->insecure = ep->insecure != 0;
    origin_of(url, &x->origin, &x->origin_len);
    x->slot = NULL;
    x->waiting = x->admitted = x->gating = 0;
    x->wprev = x->wnext = NULL;
    x->opt_nomem = 0;
    if (easy)
        apply_common(x, easy);
}

/* Bytes of the "name: value" line for one caller header (with its NUL), or 0
 * for a name or value curl could not send as given. */
static size_t header_line_size(const envd_kv *h)
{
    const char *value = h->value ? h->value : "";
    if (!h->name || !h->name[0] || strpbrk(h->name, "\r\n: \t") || strpbrk(value, "\r\n"))
        return 0;
    return strlen(h->name) + strlen(value) + 3;
}

static void header_line(char *line, const envd_kv *h)
{
    const char *value = h->value ? h->value : "";
    size_t nl = strlen(h->name), vl = strlen(value);
    memcpy(line, h->name, nl);
    if (vl == 0) {
        /* "name;" is curl's way to send a header with an empty value. */
        line[nl] = ';';
        line[nl + 1] = '\0';
    } else {
        line[nl] = ':';
        line[nl + 1] = ' ';
        memcpy(line + nl + 2, value, vl + 1);
    }
}

envd_status envd_curl_headers(const envd_kv *headers, size_t n, struct curl_slist **list)
{
    for (size_t i = 0; i < n; i++) {
        size_t sz = header_line_size(&headers[i]);
        if (!sz)
            return ENVD_INVALID_ARGUMENT;
        char *line = envd_malloc(sz);
        if (!line)
            return ENVD_E_NOMEM;
        header_line(line, &headers[i]);
        struct curl_slist *l = curl_slist_append(*list, line);
        free(line);
        if (!l)
            return ENVD_E_NOMEM;
        *list = l;
    }
    return ENVD_OK;
}

envd_status envd_curl_headers_size(const envd_kv *headers, size_t n, size_t nfixed, size_t *bytes)
{
    size_t total = (nfixed + n) * sizeof(struct curl_slist);
    for (size_t i = 0; i < n; i++) {
        size_t sz = header_line_size(&headers[i]);
        if (!sz)
            return ENVD_INVALID_ARGUMENT;
        total += sz;
    }
    *bytes = total;
    return ENVD_OK;
}

struct curl_slist *envd_curl_headers_fill(void *mem, const char *const *fixed, size_t nfixed,
                                          const envd_kv *headers, size_t n)
{
    struct curl_slist *nodes = mem;
    char *text = (char *)(nodes + nfixed + n);
    size_t k = nfixed + n;
    for (size_t i = 0; i < k; i++) {
        if (i < nfixed) {
            nodes[i].data = (char *)fixed[i]; /* curl only reads it */
        } else {
            const envd_kv *h = &headers[i - nfixed];
            header_line(text, h);
            nodes[i].data = text;
            text += header_line_size(h);
        }
        nodes[i].next = i + 1 < k ? &nodes[i + 1] : NULL;
    }
    return k ? nodes : NULL;
}

/* The request went out and no body byte came back: libcurl was reading the
 * response's status line and headers. */
static int in_headers(const envd_curl_xfer *x)
{
    long sent = 0;
    curl_off_t got = 0;
    if (!x->easy)
        return 0;
    curl_easy_getinfo(x->easy, CURLINFO_REQUEST_SIZE, &sent);
    curl_easy_getinfo(x->easy, CURLINFO_SIZE_DOWNLOAD_T, &got);
    return sent > 0 && got == 0;
}

/* Which failure of the one error model (failure.c) a libcurl code is. Sets
 * *st instead for what is not a failure of the way to the server (out of
 * memory, a bad URL). */
static envd_failure curl_failure(const envd_curl_xfer *x, CURLcode rc, const char **what,
                                 envd_status *st)
{
    switch (rc) {
    case CURLE_COULDNT_CONNECT: *what = "cannot connect"; return ENVD_FAILURE_REFUSED;
    case CURLE_OPERATION_TIMEDOUT: *what = "connection timed out"; return ENVD_FAILURE_UNREACHABLE;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY: *what = "cannot resolve host"; return ENVD_FAILURE_DNS;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS: *what = "TLS failure"; return ENVD_FAILURE_TLS;
    case CURLE_GOT_NOTHING:
        *what = "the server closed the connection without a response";
        return ENVD_FAILURE_CLOSED;
    case CURLE_PARTIAL_FILE:
        *what = "the connection closed before the response was complete";
        return ENVD_FAILURE_BROKEN;
    case CURLE_RECV_ERROR:
        if (strstr(x->errbuf, "Too large response header")) {
            /* libcurl's bound on a header block: the peer's doing */
            *what = "the response headers are over libcurl's size limits";
            return ENVD_FAILURE_PROTOCOL;
        }
        *what = "the connection failed while receiving";
        return ENVD_FAILURE_BROKEN;
    case CURLE_SEND_ERROR:
        *what = "the connection failed while sending";
        return ENVD_FAILURE_BROKEN;
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM: *what = "HTTP/2 failure"; return ENVD_FAILURE_BROKEN;
    case CURLE_WEIRD_SERVER_REPLY: *what = "malformed HTTP response"; return ENVD_FAILURE_NOT_HTTP;
    case CURLE_BAD_CONTENT_ENCODING:
        *what = "the response body does not decode";
        return ENVD_FAILURE_PROTOCOL;
    case CURLE_UNSUPPORTED_PROTOCOL:
        /* Also what libcurl 7.88 says when an HTTP/2-only server answers an
         * HTTP/1.1 request ("Received HTTP/0.9 when not allowed"). */
        if (strstr(x->errbuf, "HTTP/0.9")) {
            *what = "the server did not answer in HTTP/1.1 (an HTTP/2-only port? see "
                    "envd_config_set_h2c)";
            return ENVD_FAILURE_NOT_HTTP;
        }
        *what = "bad URL";
        *st = ENVD_E_CONFIG;
        return ENVD_FAILURE_LOCAL;
    case CURLE_URL_MALFORMAT:
        if (strstr(x->errbuf, "No URL set")) {
            /* Every transfer has a URL, one that parsed when a CURLU:
             * libcurl 7.88 says this when it cannot copy the URL out of
             * the CURLU at the start of a transfer (Curl_pretransfer). */
            *what = "out of memory";
            *st = ENVD_E_NOMEM;
            return ENVD_FAILURE_LOCAL;
        }
        *what = "bad URL";
        *st = ENVD_E_CONFIG;
        return ENVD_FAILURE_LOCAL;
    case CURLE_OUT_OF_MEMORY:
        if (in_headers(x)) {
            /* libcurl reports its own header bounds (a line over 100 KB, a
             * header block over 300 KB) as out of memory: that is the
             * peer's doing, not this process running short. */
            *what = "the response headers are over libcurl's size limits";
            return ENVD_FAILURE_PROTOCOL;
        }
        *what = "out of memory";
        *st = ENVD_E_NOMEM;
        return ENVD_FAILURE_LOCAL;
    default: *what = "transfer failed"; return ENVD_FAILURE_LOCAL;
    }
}

envd_status envd_curl_describe(const envd_curl_xfer *x, CURLcode rc, char *buf, size_t cap)
{
    const char *what;
    envd_status st = ENVD_OK;
    envd_failure kind = curl_failure(x, rc, &what, &st);
    if (st == ENVD_OK)
        st = envd_failure_status(kind, 0);
    const char *url = NULL;
    if (x->easy)
        curl_easy_getinfo(x->easy, CURLINFO_EFFECTIVE_URL, &url);
    const char *detail = x->errbuf[0] ? x->errbuf : curl_easy_strerror(rc);
    snprintf(buf, cap, "%s (%s): %s", what, url ? url : "?", detail);
    return st;
}

int64_t envd_curl_retry_after_ms(const envd_curl_xfer *x)
{
    struct curl_header *h = NULL;
    if (!x->easy || curl_easy_header(x->easy, "Retry-After", 0, CURLH_HEADER, -1, &h) != CURLHE_OK)
        return -1;
    return envd_retry_after_parse(h->value, time(NULL));
}

void envd_curl_annotate(const envd_curl_xfer *x, CURLcode rc, envd_error *err)
{
    if (!err)
        return;
    if (rc != CURLE_OK && !err->failure) {
        const char *what;
        envd_status st = ENVD_OK;
        envd_error_set_failure(err, curl_failure(x, rc, &what, &st));
    }
    envd_error_set_retry_after(err, envd_curl_retry_after_ms(x));
}

/* ---- submission queue ---------------------------------------------------- */

/* Queues bits for x (taking a reference for the queue) and wakes the I/O
 * thread. Fails once the thread has stopped taking requests. */
static void wake(envd_curl_engine *e)
{
    uint64_t one = 1;
    ssize_t n = write(e->wake_fd, &one, sizeof one);
    (void)n; /* EAGAIN: the counter is already non-zero, a wake-up is pending */
}

/* CURLMOPT_SOCKETFUNCTION: mirror curl's interest in a socket into epoll. */
static int on_socket(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
    (void)easy;
    envd_curl_engine *e = userp;
    if (what == CURL_POLL_REMOVE) {
        epoll_ctl(e->epoll_fd, EPOLL_CTL_DEL, s, NULL);
        return 0;
    }
    struct epoll_event ev = {0};
    ev.data.u64 = (uint64_t)(unsigned)s; /* the whole word: see wev */
    ev.events = ((what & CURL_POLL_IN) ? EPOLLIN : 0u) | ((what & CURL_POLL_OUT) ? EPOLLOUT : 0u);
    int op = socketp ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    if (epoll_ctl(e->epoll_fd, op, s, &ev) != 0) {
        /* curl reuses the socket pointer across a close and reopen of the
         * same descriptor number; fall back to the other operation. */
        op = op == EPOLL_CTL_ADD ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
        if (epoll_ctl(e->epoll_fd, op, s, &ev) != 0 && errno != EEXIST)
            return -1;
    }
    if (!socketp)
        curl_multi_assign(e->multi, s, e);
    return 0;
}

/* CURLMOPT_TIMERFUNCTION: when curl next wants a timeout action. */
static int on_timer(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    envd_curl_engine *e = userp;
    e->curl_deadline = timeout_ms < 0 ? -1 : envd_now_ms() + timeout_ms;
    return 0;
}

static envd_status enqueue(envd_curl_engine *e, envd_curl_xfer *x, unsigned bits)
{
    pthread_mutex_lock(&e->mu);
    if (e->stopped || ((bits & Q_ADD) && e->stopping)) {
        pthread_mutex_unlock(&e->mu);
        return ENVD_E_SHUTDOWN;
    }
    if (envd_reqq_put(&e->q, &x->req, bits))
        envd_curl_xfer_ref(x);
    /* Under the lock, so the engine cannot be gone yet. */
    wake(e);
    pthread_mutex_unlock(&e->mu);
    return ENVD_OK;
}

envd_status envd_curl_engine_submit(envd_curl_engine *e, envd_curl_xfer *x)
{
    envd_curl_xfer_ref(x); /* the engine's reference, until done */
    envd_status st = enqueue(e, x, Q_ADD);
    if (st != ENVD_OK)
        atomic_fetch_sub_explicit(&x->refs, 1, memory_order_relaxed);
    return st;
}

void envd_curl_xfer_cancel(envd_curl_xfer *x)
{
    if (!x || atomic_load_explicit(&x->finished, memory_order_acquire))
        return;
    if (atomic_exchange_explicit(&x->cancel_requested, 1, memory_order_acq_rel))
        return; /* already asked */
    (void)enqueue(x->eng, x, Q_CANCEL);
}

void envd_curl_xfer_resume(envd_curl_xfer *x)
{
    if (atomic_load_explicit(&x->finished, memory_order_acquire))
        return;
    (void)enqueue(x->eng, x, Q_RESUME);
}

void envd_curl_xfer_arm_timers(envd_curl_xfer *x)
{
    if (atomic_load_explicit(&x->finished, memory_order_acquire))
        return;
    (void)enqueue(x->eng, x, Q_ARM);
}

/* ---- I/O thread ------------------------------------------------------------ */

static void note_deadline(envd_curl_engine *e, int64_t when)
{
    if (when < e->next_check)
        e->next_check = when;
}

static int idle_applies(const envd_curl_xfer *x)
{
    return x->idle_timeout_ms > 0 && (x->first_seen || x->idle_before_first);
}

static void start_timers(envd_curl_xfer *x, int64_t now)
{
    envd_curl_engine *e = x->eng;
    x->timers_on = 1;
    x->last_activity = now;
    x->first_deadline = 0;
    if (x->timeout_ms > 0 && (!x->first_seen || x->timeout_whole)) {
        x->first_deadline = now + x->timeout_ms;
        note_deadline(e, x->first_deadline);
    }
    if (idle_applies(x))
        note_deadline(e, now + x->idle_timeout_ms);
    if (x->deadline_ms > 0 && !x->deadline_at) {
        x->deadline_at = now + x->deadline_ms;
        note_deadline(e, x->deadline_at);
    }
}

void envd_curl_xfer_touch(envd_curl_xfer *x)
{
    /* Called per received chunk: a clock read is cheap (vDSO). */
    x->last_activity = envd_now_ms();
}

void envd_curl_xfer_received(envd_curl_xfer *x, size_t n)
{
    envd_curl_xfer_touch(x);
    x->rate_bytes += n;
}

static int rate_applies(const envd_curl_xfer *x)
{
    return x->min_bytes > 0 && x->min_window_ms > 0 && x->rate_from > 0;
}

/* curl placed x on a connection: its origin's queue may go on. */
static void connected(envd_curl_xfer *x)
{
    envd_curl_origin *o = x->slot;
    if (!x->gating)
        return;
    x->gating = 0;
    if (--o->connecting == 0 && o->qhead)
        release(x->eng, o);
}

static size_t h2tls_bucket(const char *auth, size_t len)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)auth[i]) * 1099511628211ull;
    return (size_t)h & (ENVD_H2TLS_BUCKETS - 1);
}

/* Under h2tls_mu: the link that holds auth, or the end of its chain. */
static envd_h2tls_known **h2tls_find(envd_curl_engine *e, const char *auth, size_t len)
{
    envd_h2tls_known **pp = &e->h2tls[h2tls_bucket(auth, len)];
    while (*pp && !(strncmp((*pp)->auth, auth, len) == 0 && (*pp)->auth[len] == '\0'))
        pp = &(*pp)->next;
    return pp;
}

static void h2tls_clear(envd_curl_engine *e)
{
    for (size_t b = 0; b < ENVD_H2TLS_BUCKETS; b++)
        while (e->h2tls[b]) {
            envd_h2tls_known *k = e->h2tls[b];
            e->h2tls[b] = k->next;
            free(k);
        }
    e->n_h2tls = 0;
}

static void h2tls_learn(envd_curl_engine *e, const char *auth, size_t len)
{
    pthread_mutex_lock(&e->h2tls_mu);
    envd_h2tls_known **pp = h2tls_find(e, auth, len);
    if (!*pp) {
        if (e->n_h2tls >= ENVD_H2TLS_MAX) {
            h2tls_clear(e);
            pp = h2tls_find(e, auth, len);
        }
        envd_h2tls_known *k = envd_malloc(sizeof *k + len + 1);
        if (k) { /* out of memory: libcurl keeps carrying it */
            memcpy(k->auth, auth, len);
            k->auth[len] = '\0';
            k->next = NULL;
            *pp = k;
            e->n_h2tls++;
        }
    }
    pthread_mutex_unlock(&e->h2tls_mu);
}

static int h2tls_known(envd_curl_engine *e, const char *auth)
{
    pthread_mutex_lock(&e->h2tls_mu);
    int yes = *h2tls_find(e, auth, strlen(auth)) != NULL;
    pthread_mutex_unlock(&e->h2tls_mu);
    return yes;
}

void envd_curl_engine_h2tls_learn(envd_curl_engine *e, const char *authority)
{
    h2tls_learn(e, authority, strlen(authority));
}

/* The nghttp2 engine met an https origin whose ALPN no longer says h2. */
static void h2tls_forget(void *ud, const char *auth)
{
    envd_curl_engine *e = ud;
    pthread_mutex_lock(&e->h2tls_mu);
    envd_h2tls_known **pp = h2tls_find(e, auth, strlen(auth));
    if (*pp) {
        envd_h2tls_known *k = *pp;
        *pp = k->next;
        free(k);
        e->n_h2tls--;
    }
    pthread_mutex_unlock(&e->h2tls_mu);
}

void envd_curl_xfer_learn_proto(envd_curl_xfer *x)
{
    envd_curl_origin *o = x->slot;
    if (o && o->proto == 0 && x->easy && multiplexed(x)) {
        long v = 0;
        curl_easy_getinfo(x->easy, CURLINFO_HTTP_VERSION, &v);
        if (v == CURL_HTTP_VERSION_2_0) {
            o->proto = 1;
            /* Connect calls to it go to the nghttp2 engine from now on
             * (not through a proxy: those stay here, see connect_for). */
            if (x->tls && strncmp(x->origin, "https://", 8) == 0)
                h2tls_learn(x->eng, x->origin + 8, x->origin_len - 8);
        } else if (v == CURL_HTTP_VERSION_1_0 || v == CURL_HTTP_VERSION_1_1) {
            o->proto = -1; /* ALPN chose HTTP/1.1: no more gating */
        }
        if (o->proto < 0 && o->qhead)
            release(x->eng, o);
    }
}

void envd_curl_xfer_first_seen(envd_curl_xfer *x)
{
    if (x->first_seen)
        return;
    x->first_seen = 1;
    envd_curl_xfer_learn_proto(x);
    int64_t now = envd_now_ms();
    x->last_activity = now;
    x->rate_from = now;
    x->rate_bytes = 0;
    if (x->timers_on && rate_applies(x))
        note_deadline(x->eng, now + x->min_window_ms);
    if (!x->timeout_whole)
        x->first_deadline = 0;
    if (x->timers_on && x->idle_timeout_ms > 0)
        note_deadline(x->eng, now + x->idle_timeout_ms);
}

void envd_curl_xfer_expect_response(envd_curl_xfer *x, int64_t ms)
{
    if (x->first_seen || ms <= 0)
        return;
    x->timeout_ms = ms;
    x->first_deadline = envd_now_ms() + ms;
    if (x->timers_on)
        note_deadline(x->eng, x->first_deadline);
}

/* ---- admission (I/O thread) ----------------------------------------------
 * curl keeps a transfer past CURLMOPT_MAX_HOST_CONNECTIONS pending inside the
 * multi handle, easy handle, buffers and all (~5 KiB each in 7.88): with
 * 10,000 calls to one gateway, 9,800 of them. The engine admits into the
 * multi only what the origin's connections can carry at once and queues the
 * rest itself; a Connect call queued here has no easy handle yet. */

static int multiplexed(const envd_curl_xfer *x)
{
    return x->tls || (x->h2c && !g_h2c_reuse_broken);
}

/* Transfers of x's kind one origin can carry at once. */
static int admit_cap(const envd_curl_engine *e, const envd_curl_xfer *x)
{
    long n = e->lim.max_connections;
    if (multiplexed(x))
        n *= e->lim.streams_per_connection; /* multiplexed: curl spreads them */
    return n > INT_MAX ? INT_MAX : (int)n;
}

/* A burst to an HTTP/2 origin: once curl knows the origin multiplexes, a
 * transfer that finds every connection full opens a new one, and so does
 * each transfer after it while that connection is still being set up
 * (libcurl 7.88 does not wait for a connection it knows will multiplex; it
 * only waits, with PIPEWAIT, while the first connection's protocol is
 * unknown). Measured: 251 streams at once over TLS took 151 connections
 * where 3 carry them. So once an origin has a connection's worth of
 * streams admitted, a transfer past that may need a new connection, and
 * while one such transfer has no connection yet the rest of its origin wait
 * here: admission goes one transfer at a time until curl has placed it, on
 * a free stream of a connection it has (at once, see admit_ready) or on the
 * one new connection. Below a connection's worth nothing waits (a gate on
 * every call cost 30 % more CPU per Stat at 16 in flight over TLS). Not for
 * origins known to speak one request per connection (HTTP/1.1 over TLS),
 * whose connections are set up side by side. */
static int gated(const envd_curl_engine *e, const envd_curl_origin *o, const envd_curl_xfer *x)
{
    return multiplexed(x) && o->proto >= 0 && o->admitted >= e->lim.streams_per_connection;
}

/* x must wait in o's queue. */
static int blocked(const envd_curl_engine *e, const envd_curl_origin *o, const envd_curl_xfer *x)
{
    return o->admitted >= admit_cap(e, x) || (o->connecting > 0 && gated(e, o, x));
}

static envd_curl_origin *origin_get(envd_curl_engine *e, const envd_curl_xfer *x)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < x->origin_len; i++)
        h = (h ^ (unsigned char)x->origin[i]) * 1099511628211ull;
    size_t b = (size_t)h & (ENVD_ORIGIN_BUCKETS - 1);
    for (envd_curl_origin *o = e->origins[b]; o; o = o->next)
        if (o->keylen == x->origin_len && memcmp(o->key, x->origin, x->origin_len) == 0)
            return o;
    envd_curl_origin *o = envd_calloc(1, sizeof *o + x->origin_len);
    if (!o)
        return NULL;
    o->bucket = b;
    o->keylen = x->origin_len;
    memcpy(o->key, x->origin, x->origin_len);
    o->next = e->origins[b];
    e->origins[b] = o;
    return o;
}

static void origin_drop(envd_curl_engine *e, envd_curl_origin *o)
{
    envd_curl_origin **pp = &e->origins[o->bucket];
    while (*pp != o)
        pp = &(*pp)->next;
    *pp = o->next;
    free(o);
}

static void wait_push(envd_curl_origin *o, envd_curl_xfer *x)
{
    x->waiting = 1;
    x->wnext = NULL;
    x->wprev = o->qtail;
    if (o->qtail)
        o->qtail->wnext = x;
    else
        o->qhead = x;
    o->qtail = x;
}

static void wait_unlink(envd_curl_origin *o, envd_curl_xfer *x)
{
    if (x->wprev)
        x->wprev->wnext = x->wnext;
    else
        o->qhead = x->wnext;
    if (x->wnext)
        x->wnext->wprev = x->wprev;
    else
        o->qtail = x->wprev;
    x->wprev = x->wnext = NULL;
    x->waiting = 0;
}

static void finish(envd_curl_engine *e, envd_curl_xfer *x, CURLcode rc, envd_status abort,
                   const char *why);

/* Into curl's multi handle, with its easy handle taken and configured now
 * when the transport deferred it. */
static void admit(envd_curl_engine *e, envd_curl_xfer *x)
{
    if (x->slot) {
        if (gated(e, x->slot, x)) {
            x->gating = 1;
            x->slot->connecting++;
        }
        x->admitted = 1;
        x->slot->admitted++;
    }
    CURLcode fail = CURLE_OK;
    if (!x->easy) {
        x->easy = envd_curl_easy_get(e);
        if (!x->easy) {
            fail = CURLE_OUT_OF_MEMORY;
        } else {
            apply_common(x, x->easy);
            envd_status st = x->vt->setup(x);
            if (st != ENVD_OK)
                fail = st == ENVD_E_NOMEM ? CURLE_OUT_OF_MEMORY : CURLE_FAILED_INIT;
        }
    }
    if (fail == CURLE_OK && x->opt_nomem)
        fail = CURLE_OUT_OF_MEMORY;
    if (fail == CURLE_OK && curl_multi_add_handle(e->multi, x->easy) != CURLM_OK)
        fail = CURLE_FAILED_INIT;
    if (fail != CURLE_OK) {
        finish(e, x, fail, ENVD_OK, NULL);
        return;
    }
    x->in_multi = 1;
}

/* A submitted transfer arrives on the I/O thread: on the active list (its
 * timers run from here, waiting or not), then admitted or queued. */
static void enter(envd_curl_engine *e, envd_curl_xfer *x)
{
    x->listed = 1;
    x->prev = NULL;
    x->next = e->active;
    if (e->active)
        e->active->prev = x;
    e->active = x;
    if (!x->timers_deferred)
        start_timers(x, envd_now_ms());
    envd_curl_origin *o = x->slot = origin_get(e, x); /* NULL (no memory): not counted */
    if (o && (o->qhead || blocked(e, o, x))) {
        wait_push(o, x);
        return;
    }
    admit(e, x);
}

/* A transfer of o left: its queue may move on (admit_ready, outside any
 * walk of the active list), or o goes when nothing is left in it. */
static void release(envd_curl_engine *e, envd_curl_origin *o)
{
    if (o->busy || o->ready)
        return;
    if (o->qhead) {
        o->ready = 1;
        o->rnext = e->ready;
        e->ready = o;
    } else if (o->admitted == 0) {
        origin_drop(e, o);
    }
}

static void admit_ready(envd_curl_engine *e)
{
    int kicked = 0;
    while (e->ready && !e->no_admit) {
        envd_curl_origin *o = e->ready;
        e->ready = o->rnext;
        o->ready = 0;
        o->busy = 1;
        while (o->qhead && !blocked(e, o, o->qhead)) {
            envd_curl_xfer *x = o->qhead;
            /* Decided before admit, which may finish (and free) x. */
            int kick = gated(e, o, x);
            wait_unlink(o, x);
            admit(e, x);
            if (kick && o->qhead) {
                /* Let curl place it now: on a free stream of a connection
                 * it has, prereq runs within this call and the next can
                 * go; a new connection keeps the queue waiting. */
                int running;
                curl_multi_socket_action(e->multi, CURL_SOCKET_TIMEOUT, 0, &running);
                kicked = 1;
            }
        }
        o->busy = 0;
        if (!o->qhead && o->admitted == 0)
            origin_drop(e, o);
        if (!e->ready && kicked) {
            kicked = 0;
            drain_done(e); /* may put origins on the ready list again */
        }
    }
}

static void origins_free(envd_curl_engine *e)
{
    for (size_t b = 0; b < ENVD_ORIGIN_BUCKETS; b++)
        while (e->origins[b])
            origin_drop(e, e->origins[b]);
}

static void finish(envd_curl_engine *e, envd_curl_xfer *x, CURLcode rc, envd_status abort,
                   const char *why)
{
    atomic_store_explicit(&x->finished, 1, memory_order_release);
    if (x->in_multi) {
        curl_multi_remove_handle(e->multi, x->easy);
        x->in_multi = 0;
    }
    if (x->listed) {
        x->listed = 0;
        if (x->prev)
            x->prev->next = x->next;
        else
            e->active = x->next;
        if (x->next)
            x->next->prev = x->prev;
        x->prev = x->next = NULL;
    }
    envd_curl_origin *o = x->slot;
    x->slot = NULL;
    if (x->waiting)
        wait_unlink(o, x);
    if (x->admitted) {
        x->admitted = 0;
        o->admitted--;
    }
    if (x->gating) {
        x->gating = 0;
        o->connecting--;
    }
    if (abort == ENVD_OK && rc != CURLE_OK &&
        atomic_load_explicit(&x->cancel_requested, memory_order_acquire)) {
        abort = ENVD_CANCELED;
        why = "canceled";
    }
    x->vt->done(x, rc, abort, why);
    envd_curl_easy_put(e, x->easy);
    x->easy = NULL;
    if (o)
        release(e, o);
    envd_curl_xfer_unref(x); /* the engine's reference */
}

CURL *envd_curl_easy_get(envd_curl_engine *e)
{
    CURL *easy = NULL;
    pthread_mutex_lock(&e->mu);
    if (e->n_idle_easy > 0)
        easy = e->idle_easy[--e->n_idle_easy];
    pthread_mutex_unlock(&e->mu);
    if (!easy && !(easy = curl_easy_init()))
        return NULL;
    pthread_mutex_lock(&e->mu);
    e->n_easy_held++;
    pthread_mutex_unlock(&e->mu);
    return easy;
}

size_t envd_curl_engine_easy_held(envd_curl_engine *e)
{
    pthread_mutex_lock(&e->mu);
    size_t n = e->n_easy_held;
    pthread_mutex_unlock(&e->mu);
    return n;
}

void envd_curl_easy_put(envd_curl_engine *e, CURL *easy)
{
    if (!easy)
        return;
    curl_easy_reset(easy);
    pthread_mutex_lock(&e->mu);
    e->n_easy_held--;
    if (e->n_idle_easy < ENVD_EASY_POOL) {
        e->idle_easy[e->n_idle_easy++] = easy;
        easy = NULL;
    }
    pthread_mutex_unlock(&e->mu);
    if (easy)
        curl_easy_cleanup(easy);
}

#define XFER_OF(r) ENVD_REQ_OWNER(r, envd_curl_xfer, req)

static void process_queue(envd_curl_engine *e, envd_req *list)
{
    while (list) {
        envd_curl_xfer *x = XFER_OF(list);
        list = list->tnext;
        unsigned bits = x->req.taken_bits;
        int done = atomic_load_explicit(&x->finished, memory_order_acquire);

        if ((bits & Q_ADD) && !done) {
            if (atomic_load_explicit(&x->cancel_requested, memory_order_acquire))
                finish(e, x, CURLE_OK, ENVD_CANCELED, "canceled");
            else
                enter(e, x);
            done = atomic_load_explicit(&x->finished, memory_order_acquire);
        }
        if ((bits & Q_CANCEL) && !done && x->listed)
            finish(e, x, CURLE_OK, ENVD_CANCELED, "canceled");
        else if ((bits & Q_RESUME) && !done && x->in_multi)
            curl_easy_pause(x->easy, CURLPAUSE_CONT);
        done = atomic_load_explicit(&x->finished, memory_order_acquire);
        if ((bits & Q_ARM) && !done && x->listed && !x->timers_on)
            start_timers(x, envd_now_ms());
        envd_curl_xfer_unref(x); /* the queue's reference */
    }
}

/* Takes the whole queue (reqq.h). */
static envd_req *take_queue(envd_curl_engine *e, int final)
{
    pthread_mutex_lock(&e->mu);
    envd_req *list = envd_reqq_take(&e->q);
    if (final)
        e->stopped = 1;
    pthread_mutex_unlock(&e->mu);
    return list;
}

static int should_stop(envd_curl_engine *e)
{
    pthread_mutex_lock(&e->mu);
    int s = e->stopping;
    pthread_mutex_unlock(&e->mu);
    return s;
}

/* A timeout that fired before curl gave the transfer a connection says so:
 * with every connection to the endpoint busy, requests wait in curl's
 * queue and their clocks run meanwhile. */
static void no_conn_note(const envd_curl_engine *e, const envd_curl_xfer *x, char *why,
                         size_t cap, int n)
{
    if (!x->has_conn && n > 0 && (size_t)n < cap)
        snprintf(why + n, cap - (size_t)n,
                 " without a connection (still connecting, or all %d to the endpoint in "
                 "use: envd_config_set_connection_limits)",
                 e->lim.max_connections);
}

static void check_timers(envd_curl_engine *e)
{
    int64_t now = envd_now_ms();
    if (now < e->next_check)
        return;
    int64_t next = INT64_MAX;
    char why[256];
    envd_curl_xfer *x = e->active;
    while (x) {
        envd_curl_xfer *nx = x->next;
        if (x->timers_on) {
            if (x->deadline_at && now >= x->deadline_at) {
                int n = snprintf(why, sizeof why, "deadline of %lld ms exceeded",
                                 (long long)x->deadline_ms);
                no_conn_note(e, x, why, sizeof why, n);
                finish(e, x, CURLE_OK, envd_failure_status(ENVD_FAILURE_DEADLINE, 0), why);
            } else if (x->first_deadline && now >= x->first_deadline) {
                int n;
                if (x->timeout_whole)
                    n = snprintf(why, sizeof why, "deadline of %lld ms exceeded",
                                 (long long)x->timeout_ms);
                else
                    n = snprintf(why, sizeof why, "no response within %lld ms",
                                 (long long)x->timeout_ms);
                no_conn_note(e, x, why, sizeof why, n);
                finish(e, x, CURLE_OK, envd_failure_status(ENVD_FAILURE_DEADLINE, 0), why);
            } else if (idle_applies(x) && now - x->last_activity >= x->idle_timeout_ms) {
                int n = snprintf(why, sizeof why, "no data received for %lld ms (idle timeout)",
                                 (long long)(now - x->last_activity));
                no_conn_note(e, x, why, sizeof why, n);
                finish(e, x, CURLE_OK, envd_failure_status(ENVD_FAILURE_IDLE, 0), why);
            } else if (rate_applies(x) && now - x->rate_from >= x->min_window_ms &&
                       x->rate_bytes < (uint64_t)x->min_bytes) {
                snprintf(why, sizeof why,
                         "%llu bytes in %lld ms, under the minimum of %lld (too slow)",
                         (unsigned long long)x->rate_bytes, (long long)(now - x->rate_from),
                         (long long)x->min_bytes);
                finish(e, x, CURLE_OK, envd_failure_status(ENVD_FAILURE_IDLE, 0), why);
            } else {
                if (rate_applies(x) && now - x->rate_from >= x->min_window_ms) {
                    x->rate_from = now; /* the window was met: a new one */
                    x->rate_bytes = 0;
                }
                if (rate_applies(x) && x->rate_from + x->min_window_ms < next)
                    next = x->rate_from + x->min_window_ms;
                if (x->first_deadline && x->first_deadline < next)
                    next = x->first_deadline;
                if (x->deadline_at && x->deadline_at < next)
                    next = x->deadline_at;
                if (idle_applies(x) && x->last_activity + x->idle_timeout_ms < next)
                    next = x->last_activity + x->idle_timeout_ms;
            }
        }
        x = nx;
    }
    e->next_check = next;
}

static void drain_done(envd_curl_engine *e)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(e->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        envd_curl_xfer *x = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
        CURLcode rc = m->data.result;
        if (x && x->in_multi)
            finish(e, x, rc, ENVD_OK, NULL);
    }
}

static void *io_main(void *arg)
{
    envd_curl_engine *e = arg;
    struct epoll_event evs[64];
    int running = 0;
    for (;;) {
        process_queue(e, take_queue(e, 0));
        if (should_stop(e))
            break;
        envd_h2c_engine *h2 = atomic_load_explicit(&e->h2c, memory_order_acquire);
        int64_t h2_next = h2 ? envd_h2c_engine_poll(h2) : INT64_MAX;
        int64_t now = envd_now_ms();
        if (e->curl_deadline >= 0 && now >= e->curl_deadline) {
            e->curl_deadline = -1;
            curl_multi_socket_action(e->multi, CURL_SOCKET_TIMEOUT, 0, &running);
            drain_done(e);
        }
        check_timers(e);
        admit_ready(e);

        int64_t wait = ENVD_POLL_MAX_MS;
        now = envd_now_ms();
        if (e->next_check != INT64_MAX && e->next_check - now < wait)
            wait = e->next_check - now;
        if (e->curl_deadline >= 0 && e->curl_deadline - now < wait)
            wait = e->curl_deadline - now;
        if (h2_next != INT64_MAX && h2_next - now < wait)
            wait = h2_next - now;
        if (wait < 0)
            wait = 0;
        int n = epoll_wait(e->epoll_fd, evs, (int)(sizeof evs / sizeof evs[0]), (int)wait);
        for (int i = 0; i < n; i++) {
            if (h2 && envd_h2c_engine_event(h2, evs[i].data.u64, evs[i].events))
                continue;
            int fd = evs[i].data.fd;
            if (fd == e->wake_fd) {
                uint64_t v;
                ssize_t r = read(e->wake_fd, &v, sizeof v);
                (void)r;
                continue;
            }
            int mask = 0;
            if (evs[i].events & EPOLLIN)
                mask |= CURL_CSELECT_IN;
            if (evs[i].events & EPOLLOUT)
                mask |= CURL_CSELECT_OUT;
            if (evs[i].events & (EPOLLERR | EPOLLHUP))
                mask |= CURL_CSELECT_ERR;
            curl_multi_socket_action(e->multi, fd, mask, &running);
        }
        if (n > 0)
            drain_done(e);
    }

    /* Shutdown: whatever is queued or active ends as canceled. */
    e->no_admit = 1;
    envd_req *list = take_queue(e, 1);
    while (list) {
        envd_curl_xfer *x = XFER_OF(list);
        list = list->tnext;
        unsigned bits = x->req.taken_bits;
        if ((bits & Q_ADD) && !atomic_load_explicit(&x->finished, memory_order_acquire))
            finish(e, x, CURLE_OK, ENVD_CANCELED, "canceled: the engine is shutting down");
        envd_curl_xfer_unref(x);
    }
    while (e->active)
        finish(e, e->active, CURLE_OK, ENVD_CANCELED, "canceled: the engine is shutting down");
    pthread_mutex_lock(&e->h2c_mu);
    e->h2c_closed = 1;
    pthread_mutex_unlock(&e->h2c_mu);
    envd_h2c_engine *h2 = atomic_load_explicit(&e->h2c, memory_order_acquire);
    if (h2)
        envd_h2c_engine_shutdown(h2);
    return NULL;
}

/* ---- public -------------------------------------------------------------- */

envd_status envd_curl_engine_new(envd_timers *timers, const envd_pool_limits *lim,
                                 envd_curl_engine **out)
{
    *out = NULL;
    pthread_once(&g_curl_once, curl_init_once);
    if (g_curl_init_rc != CURLE_OK)
        return envd_failure_status(ENVD_FAILURE_LOCAL, 0);

    envd_curl_engine *e = envd_calloc(1, sizeof *e);
    if (!e)
        return ENVD_E_NOMEM;
    e->timers = timers;
    e->lim = envd_pool_limits_or_default(lim);
    e->next_check = INT64_MAX;
    e->multi = curl_multi_init();
    if (!e->multi || proxy_env_read(e) != 0) {
        if (e->multi)
            curl_multi_cleanup(e->multi);
        proxy_env_free(e);
        free(e);
        return ENVD_E_NOMEM;
    }
    /* Connections per host (scheme, name and port): at most max_connections;
     * past it curl keeps a transfer pending (our timers run meanwhile) and
     * hands it the next connection that frees. HTTP/2 over TLS multiplexes
     * up to streams_per_connection streams (or the peer's lower SETTINGS
     * value) on a connection, and a transfer that finds every connection
     * full opens another one, up to the cap: a long stream holds one slot,
     * not a whole connection. Without the cap 2,000 calls in flight over
     * HTTP/1.1 opened 2,000 connections at once and overflowed the server's
     * listen backlog. */
    curl_multi_setopt(e->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
    curl_multi_setopt(e->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)e->lim.max_connections);
    curl_multi_setopt(e->multi, CURLMOPT_MAX_CONCURRENT_STREAMS,
                      (long)e->lim.streams_per_connection);
    curl_multi_setopt(e->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, 0L);
    /* curl's default cache holds 4 x the transfers in the multi, which
     * shrinks as a burst drains and closes the connections a following
     * burst wants. Keep a whole host's worth of idle connections. */
    long idle = ENVD_CURL_MAX_IDLE_CONNS;
    if (idle < (long)e->lim.max_connections)
        idle = (long)e->lim.max_connections;
    curl_multi_setopt(e->multi, CURLMOPT_MAXCONNECTS, idle);
    e->curl_deadline = -1;
    e->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    e->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    /* The whole data word: h2c.c's sockets are told apart by its top bit. */
    struct epoll_event wev = {.events = EPOLLIN, .data.u64 = (uint64_t)e->wake_fd};
    if (e->wake_fd < 0 || e->epoll_fd < 0 ||
        epoll_ctl(e->epoll_fd, EPOLL_CTL_ADD, e->wake_fd, &wev) != 0) {
        if (e->wake_fd >= 0)
            close(e->wake_fd);
        if (e->epoll_fd >= 0)
            close(e->epoll_fd);
        curl_multi_cleanup(e->multi);
        proxy_env_free(e);
        free(e);
        return envd_failure_status(ENVD_FAILURE_LOCAL, 0);
    }
    curl_multi_setopt(e->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(e->multi, CURLMOPT_SOCKETDATA, e);
    curl_multi_setopt(e->multi, CURLMOPT_TIMERFUNCTION, on_timer);
    curl_multi_setopt(e->multi, CURLMOPT_TIMERDATA, e);
    pthread_mutex_init(&e->mu, NULL);
    pthread_mutex_init(&e->h2c_mu, NULL);
    pthread_mutex_init(&e->h2tls_mu, NULL);
    e->connect_tp.ops = &envd_connect_ops;
    if (envd_thread_start(&e->thread, io_main, e) != 0) {
        pthread_mutex_destroy(&e->mu);
        pthread_mutex_destroy(&e->h2c_mu);
        pthread_mutex_destroy(&e->h2tls_mu);
        curl_multi_cleanup(e->multi);
        close(e->wake_fd);
        close(e->epoll_fd);
        proxy_env_free(e);
        free(e);
        return ENVD_E_NOMEM;
    }
    *out = e;
    return ENVD_OK;
}

void envd_curl_engine_free(envd_curl_engine *e)
{
    if (!e)
        return;
    pthread_mutex_lock(&e->mu);
    e->stopping = 1;
    wake(e);
    pthread_mutex_unlock(&e->mu);
    pthread_join(e->thread, NULL);
    envd_h2c_engine_free(atomic_load(&e->h2c));
    pthread_mutex_destroy(&e->h2c_mu);
    h2tls_clear(e);
    pthread_mutex_destroy(&e->h2tls_mu);
    for (size_t i = 0; i < e->n_idle_easy; i++)
        curl_easy_cleanup(e->idle_easy[i]);
    curl_multi_cleanup(e->multi);
    close(e->wake_fd);
    close(e->epoll_fd);
    pthread_mutex_destroy(&e->mu);
    proxy_env_free(e);
    url_cache_free(e);
    origins_free(e);
    free(e);
}

envd_rpc_transport *envd_curl_engine_connect(envd_curl_engine *e)
{
    return &e->connect_tp;
}

/* Host part of an authority into buf (brackets of an IPv6 literal and a
 * trailing dot dropped); 0 when it does not fit. */
static size_t authority_host(const char *authority, char *buf, size_t cap)
{
    const char *h = authority, *end;
    if (*h == '[') {
        h++;
        end = strchr(h, ']');
        if (!end)
            return 0;
    } else {
        end = strchr(h, ':');
        if (!end || strchr(end + 1, ':')) /* no port, or a bare IPv6 address */
            end = h + strlen(h);
    }
    size_t n = (size_t)(end - h);
    if (n > 0 && h[n - 1] == '.')
        n--;
    if (n == 0 || n >= cap)
        return 0;
    memcpy(buf, h, n);
    buf[n] = '\0';
    return n;
}

/* entry "addr/bits" against the address host (both literal, same family). */
static int cidr_match(const char *entry, size_t len, const char *host)
{
    char a[INET6_ADDRSTRLEN + 8];
    if (len >= sizeof(a))
        return 0;
    memcpy(a, entry, len);
    a[len] = '\0';
    long bits = -1;
    char *slash = strchr(a, '/');
    if (slash) {
        char *endp;
        *slash = '\0';
        bits = strtol(slash + 1, &endp, 10);
        if (*endp || endp == slash + 1 || bits < 0)
            return 0;
    }
    unsigned char net[16], ip[16];
    size_t alen;
    if (inet_pton(AF_INET, a, net) == 1 && inet_pton(AF_INET, host, ip) == 1)
        alen = 4;
    else if (inet_pton(AF_INET6, a, net) == 1 && inet_pton(AF_INET6, host, ip) == 1)
        alen = 16;
    else
        return 0;
    if (bits < 0 || (size_t)bits > alen * 8)
        bits = (long)alen * 8;
    size_t whole = (size_t)bits / 8;
    if (memcmp(net, ip, whole) != 0)
        return 0;
    unsigned rest = (unsigned)bits % 8;
    if (!rest)
        return 1;
    unsigned char mask = (unsigned char)(0xffu << (8 - rest));
    return (net[whole] & mask) == (ip[whole] & mask);
}

int envd_no_proxy_match(const char *no_proxy, const char *authority)
{
    char host[256];
    if (!no_proxy || !authority)
        return 0;
    if (strcmp(no_proxy, "*") == 0) /* libcurl: only the whole list */
        return 1;
    size_t hl = authority_host(authority, host, sizeof(host));
    if (!hl)
        return 0;
    unsigned char scratch[16];
    int is_ip = inet_pton(AF_INET, host, scratch) == 1 || inet_pton(AF_INET6, host, scratch) == 1;
    for (const char *p = no_proxy; *p;) {
        p += strspn(p, ", \t");
        size_t len = strcspn(p, ", \t");
        if (!len)
            break;
        const char *ent = p;
        p += len;
        if (*ent == '.') {
            ent++;
            len--;
        }
        if (len && ent[len - 1] == '.')
            len--;
        if (!len)
            continue;
        if (is_ip) {
            if (cidr_match(ent, len, host))
                return 1;
            continue;
        }
        if (len == hl && strncasecmp(ent, host, len) == 0)
            return 1;
        if (len < hl && host[hl - len - 1] == '.' && strncasecmp(ent, host + hl - len, len) == 0)
            return 1;
    }
    return 0;
}

envd_h2c_engine *envd_curl_engine_h2_for(envd_curl_engine *e, const envd_endpoint *ep)
{
    /* Through a proxy, libcurl's way (the proxy may not speak h2c at all);
     * which hosts it covers is known once the endpoint is: decided per call
     * only while a proxy is set. https goes to nghttp2 once libcurl has
     * seen the authority choose h2 (ALPN): until then, and for servers
     * that speak HTTP/1.1 over TLS, libcurl carries it. */
    if (!ep)
        return NULL;
    const char *proxy = ep->tls ? e->proxy_https : e->proxy_http;
    if ((ep->tls ? !ep->authority || !h2tls_known(e, ep->authority) : !ep->h2c_prior_knowledge) ||
        (proxy && *proxy && !envd_no_proxy_match(e->no_proxy, ep->authority)))
        return NULL;
    envd_h2c_engine *h = atomic_load_explicit(&e->h2c, memory_order_acquire);
    if (!h) {
        pthread_mutex_lock(&e->h2c_mu);
        h = atomic_load_explicit(&e->h2c, memory_order_relaxed);
        if (!h && !e->h2c_failed && !e->h2c_closed) {
            if (envd_h2c_engine_new(&e->lim, e->epoll_fd, e->wake_fd, &h) == ENVD_OK) {
                envd_h2c_engine_on_not_h2(h, h2tls_forget, e);
                atomic_store_explicit(&e->h2c, h, memory_order_release);
            } else {
                e->h2c_failed = 1;
            }
        }
        pthread_mutex_unlock(&e->h2c_mu);
    }
    return h;
}

envd_rpc_transport *envd_curl_engine_connect_for(envd_curl_engine *e, const envd_endpoint *ep)
{
    envd_h2c_engine *h = envd_curl_engine_h2_for(e, ep);
    return h ? envd_h2c_engine_connect(h) : &e->connect_tp;
}

envd_h2c_engine *envd_curl_engine_h2c(envd_curl_engine *e)
{
    return atomic_load_explicit(&e->h2c, memory_order_acquire);
}

envd_curl_engine *envd_curl_engine_from_connect(envd_rpc_transport *t)
{
    return (envd_curl_engine *)((char *)t - offsetof(envd_curl_engine, connect_tp));
}
