/* The gRPC transport: gRPC Core C API (1.51) over HTTP/2, h2c or TLS.
 *
 * Shape (see shared/spec/grpc-core-notes.md):
 *  - N worker threads, each draining its own GRPC_CQ_NEXT completion queue.
 *    A call is bound to one queue (the worker with the fewest calls, the
 *    lowest index on a tie) for its whole life, so all of its completions,
 *    and therefore all of its callbacks, run on one thread, one at a time,
 *    in order. Workers past the first park on their own condition variable
 *    while no call is bound to them, instead of waiting in their queue:
 *    core's poller is process-wide (epoll1), so every thread inside
 *    grpc_completion_queue_next polls every connection, and an idle worker
 *    took the poller role from the busy one on every read (a stream's CPU
 *    per message doubled with two workers; envd-bench stream, issue 11).
 *    Worker 0 never parks, so a connection the peer closes or sends GOAWAY
 *    on while no call is in flight (a gateway's idle timeout) is still
 *    read at once, as before, and not found dead by the next call; and a
 *    lone call goes to worker 0, so it does not wake another poller.
 *  - Every tag is a `gtag` whose first member is the function to run.
 *  - A pool of channels per (authority, tls, ca_file, insecure,
 *    max_message), each channel one TCP connection. A running command, a
 *    watch or an input stream holds its HTTP/2 stream for its whole life,
 *    and a peer allows ~100 streams per connection (envd, E2B's edge,
 *    gateways), so one connection would make every other call queue
 *    behind 100 long streams. Each channel counts its active calls; a new
 *    call (unary or stream) goes to the least-loaded channel with a free
 *    stream, a new channel opens when all are full, and at max_connections
 *    the least-loaded takes it anyway (core queues it until a stream
 *    frees). Channels past a pool's first that stay idle for POOL_IDLE_MS
 *    are closed by a sweep on the shared timer thread.
 *    The cap is counted, not read: gRPC core 1.51's C API does not expose
 *    the peer's SETTINGS_MAX_CONCURRENT_STREAMS (grpc_channel_get_info
 *    gives only the LB policy and service config; GRPC_ARG_MAX_CONCURRENT_
 *    STREAMS is a server-side setting), so streams_per_connection
 *    (envd_pool_limits) stands for it. A peer that allows fewer still
 *    works: core queues the excess on that connection.
 *  - Unary: one batch of six ops. Server stream: a send batch, a
 *    RECV_STATUS batch and a RECV_MESSAGE batch re-armed after every
 *    message. Client stream: SEND_INITIAL_METADATA, one batch for
 *    response + status, and one SEND_MESSAGE outstanding at a time fed from
 *    a queue, then SEND_CLOSE_FROM_CLIENT.
 *  - A call finishes (on_done) once its status is in and no batch is
 *    outstanding; that covers the "last RECV_MESSAGE(NULL) and RECV_STATUS
 *    may come in either order" rule and keeps every tag alive until it has
 *    been dequeued.
 *  - Streams never carry a gRPC deadline (envd's Start would read none, but
 *    a deadline would end a long-running process's stream). Their timeouts
 *    run on the shared timer thread and cancel the call. Unary calls do use
 *    a gRPC deadline (grpc-timeout), which also tells the server.
 *    Server stream: timeout_ms runs until the first message; idle_timeout_ms
 *    then runs between messages (from the start when timeout_ms is 0).
 *    Client stream: timeout_ms runs from close_send() to the response (the
 *    input phase may last as long as the caller likes); no idle timer.
 *  - release() drops the caller's reference only; it does not cancel.
 *  - A status read off the wire is passed on as the server sent it; one core
 *    made up itself (a connection that failed or dropped, an HTTP status
 *    without grpc-status, bytes that broke HTTP/2) is named as a failure of
 *    the one error model and takes its code from failure.c, so it matches
 *    what Connect and /files report for the same event.
 *
 * Locking: each call has one mutex guarding its state and serialising every
 * grpc_call_start_batch on it. The engine mutex guards the pools (and
 * every count in them), the sweep timer and the list of live calls; order
 * is engine -> call, and engine -> the timer service's own lock. Timer
 * functions are never called with a call mutex held (a timer callback
 * takes that mutex); the sweep callback takes the engine mutex, so its
 * timer is cancelled without it.
 */
#include "core/thread.h"
#include "core/alloc.h"
#include "transport/connect_frame.h"
#include "transport/transport.h"

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>

#include <ctype.h>
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define GRPC_USER_AGENT "libenvd/" ENVD_VERSION_STRING

/* Marks an error as "the peer does not carry gRPC"; read back by
 * envd_grpc_error_is_protocol_mismatch. Part of a readable sentence. */
#define MISMATCH_MARK "does not speak gRPC end to end"

/* How long a pooled connection past an endpoint's first may stay without a
 * call before it is closed (envd_grpc_engine_set_idle_ms for tests). */
#define POOL_IDLE_MS 60000

/* ------------------------------------------------------------------ types */

typedef struct gtag gtag;
typedef void (*gtag_fn)(gtag *tag, int ok);
struct gtag {
    /* First member: the worker calls ((gtag *)ev.tag)->fn. Stored with
     * release once the call is fully built and loaded with acquire by the
     * worker, so the hand-off through core (invisible to ThreadSanitizer,
     * core is not instrumented) is still a visible happens-before edge. */
    _Atomic(gtag_fn) fn;
    envd_rpc *rpc;
};

static void tag_init(gtag *t, gtag_fn fn, envd_rpc *r)
{
    t->rpc = r;
    atomic_store_explicit(&t->fn, fn, memory_order_release);
}

/* One pooled connection: its own grpc_channel, kept out of core's global
 * subchannel pool (GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL), so that it really
 * is one TCP connection of its own (core reconnects it as needed). */
/* Methods registered on a channel (grpc_channel_register_call): core
 * keeps the :path slice and its metadata ready, so a call made from the
 * handle skips building them. envd has fewer methods than slots; a method
 * past the last slot is created the ordinary way. */
#define REG_SLOTS 24

typedef struct greg {
    char *path; /* NULL = free */
    void *handle; /* owned by the channel */
} greg;

typedef struct gconn {
    struct gconn *next;
    grpc_channel *channel;
    int active;         /* calls from creation to on_done (a stream: its life) */
    int64_t idle_since; /* envd_now_ms() when active last fell to 0 */
    greg reg[REG_SLOTS];
} gconn;

/* Prepared metadata: one header as the slices core is given (lower-case
 * key, value), checked once and then reused by reference. The calls of a
 * client send the same few headers every time, and building them (the
 * skip list, two copies and two legality checks each) cost ~4 k
 * instructions per Stat of ~72 k (issue 11). Direct-mapped by a hash of
 * name and value; a header not found is built as before and takes its
 * slot, so headers that change per call (a process timeout, a rotating
 * token) only evict. Guarded by envd_grpc_engine.md_mu. */
#define MD_SLOTS 64

typedef struct md_slot {
    uint64_t hash;
    char *name; /* as the caller spelled it; NULL = empty slot */
    char *value;
    int skip;   /* a header this transport does not send */
    grpc_slice k, v;
} md_slot;

/* The pool of one endpoint, keyed as the channel cache always was. */
typedef struct gpool {
    struct gpool *next;
    char *authority;
    char *ca_file;
    int tls;
    int insecure;
    size_t max_message; /* the channels' receive limit comes from it */
    gconn *conns;       /* oldest first; the first is never closed for idleness */
    int n_conns;
} gpool;

/* A worker drains its queue only while calls are bound to it (see
 * worker_main); without any it parks on cv. */
typedef struct gworker {
    struct envd_grpc_engine *e;
    grpc_completion_queue *cq;
    pthread_t thread;
    int index;
    atomic_int calls; /* bound calls between rpc_register and unlink_live */
    pthread_mutex_t mu; /* with cv: parking only */
    pthread_cond_t cv;
} gworker;

struct envd_grpc_engine {
    envd_rpc_transport base; /* what envd_grpc_engine_transport returns */
    envd_timers *timers;
    envd_pool_limits lim;
    gworker *workers;
    int n_workers;
    atomic_int stopping; /* workers: stop parking, drain to shutdown */

    pthread_mutex_t mu;
    pthread_cond_t drained; /* n_live reached 0 while closing */
    gpool *pools;
    envd_timer *sweep; /* armed while a connection past a pool's first is idle */
    int64_t idle_ms;   /* POOL_IDLE_MS, or a test's shorter period */
    envd_rpc *live; /* calls between start and on_done */
    size_t n_live;
    int closing;

    pthread_mutex_t md_mu;
    md_slot md[MD_SLOTS];
};

typedef struct sendq {
    struct sendq *next;
    grpc_byte_buffer *bb;
} sendq;

struct envd_rpc {
    envd_grpc_engine *e;
    gworker *w; /* the worker its completions go to; set by rpc_register */
    gpool *pool; /* where it runs; set under e->mu by rpc_register */
    gconn *conn;
    envd_rpc_kind kind;
    envd_rpc_callbacks cb;
    char *target; /* authority, for messages */
    char *method; /* full :path, for messages */
    void *reg;    /* method registered on conn's channel, or NULL */
    int tls;
    int64_t timeout_ms;
    int64_t idle_ms;

    pthread_mutex_t mu;
    int refs;        /* the caller's + the transport's */
    grpc_call *call; /* NULL once finished */
    int pending;     /* batches started, not yet dequeued */
    int status_done;
    int finishing; /* on_done is being (or has been) delivered */
    int got_message;
    int dropped;       /* a received message was not delivered */
    envd_status local; /* why we cancelled: 0, CANCELED, DEADLINE, IDLE, ... */
    envd_timer *first_timer;
    envd_timer *idle_timer;

    gtag t_start, t_recv, t_status, t_send;
    grpc_metadata_array init_md, trail_md;
    grpc_byte_buffer *req_bb;
    grpc_byte_buffer *recv_bb;
    grpc_status_code status;
    grpc_slice details;
    const char *error_string;

    /* client stream */
    sendq *q_head, *q_tail;
    grpc_byte_buffer *send_bb; /* in flight */
    int send_busy;
    int close_requested;
    int close_sent;

    envd_rpc *prev, *next; /* engine->live */
};

static const envd_rpc_ops grpc_ops;

/* ----------------------------------------------------------- small utils */

static char *dup_str(const char *s)
{
    if (!s)
        return NULL;
    size_t n = strlen(s) + 1;
    char *d = envd_malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

static int str_eq(const char *a, const char *b)
{
    if (!a || !b)
        return a == b;
    return strcmp(a, b) == 0;
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 16384, len = 0;
    char *buf = envd_malloc(cap);
    while (buf) {
        if (len + 1 >= cap) {
            char *nb = envd_realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        size_t got = fread(buf + len, 1, cap - len - 1, f);
        len += got;
        if (got == 0) {
            if (ferror(f)) {
                free(buf);
                buf = NULL;
            }
            break;
        }
    }
    fclose(f);
    if (buf)
        buf[len] = '\0';
    return buf;
}

static grpc_byte_buffer *make_bb(const uint8_t *data, size_t len)
{
    grpc_slice s = grpc_slice_malloc(len);
    if (len)
        memcpy(GRPC_SLICE_START_PTR(s), data, len);
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
    grpc_slice_unref(s);
    return bb;
}

/* --------------------------------------------------------------- channels */

static grpc_channel_credentials *make_creds(const envd_endpoint *ep, envd_status *st)
{
    if (!ep->tls)
        return grpc_insecure_credentials_create();
    if (ep->insecure) {
        /* Tests only: TLS without any peer verification. */
        grpc_tls_credentials_options *o = grpc_tls_credentials_options_create();
        grpc_tls_certificate_verifier *v = grpc_tls_certificate_verifier_no_op_create();
        grpc_tls_credentials_options_set_verify_server_cert(o, 0);
        grpc_tls_credentials_options_set_certificate_verifier(o, v);
        grpc_tls_credentials_options_set_check_call_host(o, 0);
        grpc_tls_certificate_verifier_release(v);
        return grpc_tls_credentials_create(o); /* takes o */
    }
    char *pem = NULL;
    if (ep->ca_file) {
        pem = read_file(ep->ca_file);
        if (!pem) {
            *st = ENVD_E_CONFIG;
            return NULL;
        }
    }
    grpc_channel_credentials *c = grpc_ssl_credentials_create(pem, NULL, NULL, NULL);
    free(pem);
    return c;
}

static grpc_channel *new_channel(const envd_endpoint *ep, envd_status *st)
{
    /* The receive limit bounds what one reply makes core buffer and the
     * client decode (a ListDir of empty entries grows ~90x in protobuf-c). */
    int max_recv = ep->max_message && ep->max_message <= INT_MAX ? (int)ep->max_message
                                                                   : (int)ENVD_FRAME_MAX_DEFAULT;
    grpc_arg args[] = {
        /* connect-go gzips every reply when gzip is offered. */
        {.type = GRPC_ARG_INTEGER,
         .key = GRPC_COMPRESSION_CHANNEL_ENABLED_ALGORITHMS_BITSET,
         .value.integer = 1},
        {.type = GRPC_ARG_INTEGER,
         .key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,
         .value.integer = max_recv},
        {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_MAX_SEND_MESSAGE_LENGTH, .value.integer = -1},
        {.type = GRPC_ARG_STRING,
         .key = GRPC_ARG_PRIMARY_USER_AGENT_STRING,
         .value.string = (char *)GRPC_USER_AGENT},
        /* HTTP/2 PINGs keep long, quiet streams (Start of a silent process)
         * alive through NATs and notice dead peers. Go's and Node's HTTP/2
         * servers do not police ping rates. */
        {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_KEEPALIVE_TIME_MS, .value.integer = 30000},
        {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_KEEPALIVE_TIMEOUT_MS, .value.integer = 10000},
        {.type = GRPC_ARG_INTEGER,
         .key = GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA,
         .value.integer = 0},
        /* A sandbox that is still booting should be retried soon, not after
         * core's default of up to two minutes. */
        {.type = GRPC_ARG_INTEGER,
         .key = GRPC_ARG_MAX_RECONNECT_BACKOFF_MS,
         .value.integer = 10000},
        /* No transparent retries: libenvd decides what may be repeated (a
         * Start must never run twice), and core's retry state costs ~6 KiB
         * and 10-20% CPU per call (envd-bench, massif). */
        {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_ENABLE_RETRIES, .value.integer = 0},
        /* Channels with equal target and args share one connection through
         * core's global subchannel pool: a pooled channel must own its
         * connection (it_pool counts them). */
        {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, .value.integer = 1},
        /* Not GRPC_ARG_MINIMAL_STACK (~7% less CPU per call): in core 1.51
         * it drops the message size filter, so the receive limit above is
         * no longer enforced (a 16 KiB reply passed a 4 KiB limit), and the
         * client deadline filter, so a unary call to a server that stopped
         * answering never ends (it_engine reply_over_max_message_fails,
         * stopped_server_hits_the_deadline). */
    };
    grpc_channel_args ca = {.num_args = sizeof args / sizeof args[0], .args = args};
    grpc_channel_credentials *creds = make_creds(ep, st);
    if (!creds) {
        if (*st == ENVD_OK)
            *st = ENVD_E_NOMEM;
        return NULL;
    }
    grpc_channel *ch = grpc_channel_create(ep->authority, creds, &ca);
    grpc_channel_credentials_release(creds); /* the channel keeps its own ref */
    if (!ch)
        *st = envd_failure_status(ENVD_FAILURE_LOCAL, 0);
    return ch;
}

/* Called with e->mu held. The pool for ep, made (empty) on first use. */
static gpool *get_pool(envd_grpc_engine *e, const envd_endpoint *ep, envd_status *st)
{
    int insecure = ep->tls && ep->insecure;
    const char *ca = ep->tls ? ep->ca_file : NULL;
    for (gpool *p = e->pools; p; p = p->next) {
        if (p->tls == !!ep->tls && p->insecure == insecure && str_eq(p->authority, ep->authority) &&
            str_eq(p->ca_file, ca) && p->max_message == ep->max_message)
            return p;
    }
    gpool *p = envd_calloc(1, sizeof *p);
    if (!p) {
        *st = ENVD_E_NOMEM;
        return NULL;
    }
    p->authority = dup_str(ep->authority);
    p->ca_file = dup_str(ca);
    p->tls = !!ep->tls;
    p->insecure = insecure;
    p->max_message = ep->max_message;
    if (!p->authority || (ca && !p->ca_file)) {
        free(p->authority);
        free(p->ca_file);
        free(p);
        *st = ENVD_E_NOMEM;
        return NULL;
    }
    p->next = e->pools;
    e->pools = p;
    return p;
}

/* Called with e->mu held. The connection for one more call: the
 * least-loaded one with a free stream; else a new one while the pool is
 * under max_connections; else the least-loaded (core queues the call on
 * it). NULL with *st only when the pool is empty and no channel can be
 * made. */
static gconn *pick_conn(envd_grpc_engine *e, gpool *p, const envd_endpoint *ep, envd_status *st)
{
    gconn *best = NULL, *last = NULL;
    for (gconn *c = p->conns; c; c = c->next) {
        if (!best || c->active < best->active)
            best = c;
        last = c;
    }
    if (best && (best->active < e->lim.streams_per_connection ||
                 p->n_conns >= e->lim.max_connections))
        return best;
    gconn *c = envd_calloc(1, sizeof *c);
    if (c && !(c->channel = new_channel(ep, st))) {
        free(c);
        c = NULL;
    }
    if (!c) {
        if (best) /* better queued on a full connection than failed */
            *st = ENVD_OK;
        else if (*st == ENVD_OK)
            *st = ENVD_E_NOMEM;
        return best;
    }
    if (last)
        last->next = c;
    else
        p->conns = c;
    p->n_conns++;
    return c;
}

/* Abseil's mutex deadlock detection is a debug check: an Abseil compiled
 * with NDEBUG (as gRPC's release builds bundle it) has it off, but Debian's
 * libabsl is built without NDEBUG, so each mutex gRPC core takes also
 * updates a lock-order graph: ~4.6 k of ~67 k instructions per gRPC Stat
 * (callgrind, issue 11). Switched off once, at the first engine; with
 * ENVD_ABSL_DEADLOCK_DETECTION=1 in the environment Abseil's setting is
 * kept. The function is looked up by its mangled name (Debian's inline
 * namespace, or none), so against another Abseil this changes nothing. */
static pthread_once_t absl_once = PTHREAD_ONCE_INIT;
static int absl_state = -1;

static void absl_deadlock_off(void)
{
    static const char *const names[] = {
        "_ZN4absl7debian329SetMutexDeadlockDetectionModeENS0_15OnDeadlockCycleE",
        "_ZN4absl29SetMutexDeadlockDetectionModeENS_15OnDeadlockCycleE",
    };
    const char *keep = getenv("ENVD_ABSL_DEADLOCK_DETECTION");
    if (keep && strcmp(keep, "1") == 0) {
        absl_state = 0;
        return;
    }
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        void *sym = dlsym(RTLD_DEFAULT, names[i]);
        if (sym) {
            void (*set_mode)(int);
            memcpy(&set_mode, &sym, sizeof set_mode); /* object to function pointer */
            set_mode(0); /* absl::OnDeadlockCycle::kIgnore */
            absl_state = 1;
            return;
        }
    }
}

int envd_grpc_absl_deadlock_state(void)
{
    pthread_once(&absl_once, absl_deadlock_off);
    return absl_state;
}

/* Called with e->mu held. The registered handle of path on c, registering
 * it on first use; NULL (an ordinary call) when the slots are full or out
 * of memory. */
static void *conn_registered(gconn *c, const char *path)
{
    for (int i = 0; i < REG_SLOTS; i++) {
        greg *g = &c->reg[i];
        if (!g->path) {
            if (!(g->path = dup_str(path)))
                return NULL;
            g->handle = grpc_channel_register_call(c->channel, g->path, NULL, NULL);
            return g->handle;
        }
        if (strcmp(g->path, path) == 0)
            return g->handle;
    }
    return NULL;
}

/* Destroys c's channel (with its registrations) and frees c. */
static void conn_free(gconn *c)
{
    grpc_channel_destroy(c->channel);
    for (int i = 0; i < REG_SLOTS && c->reg[i].path; i++)
        free(c->reg[i].path);
    free(c);
}

/* The timer callback: closes the connections past each pool's first that
 * have been idle for idle_ms, and re-arms for the next one to come due. */
static void sweep_idle(void *ud)
{
    envd_grpc_engine *e = ud;
    pthread_mutex_lock(&e->mu);
    if (e->closing) { /* engine_free owns (and cancels) this timer now */
        pthread_mutex_unlock(&e->mu);
        return;
    }
    envd_timer *self = e->sweep;
    e->sweep = NULL;
    int64_t now = envd_now_ms(), next = -1;
    gconn *dead = NULL;
    for (gpool *p = e->pools; p; p = p->next) {
        if (!p->conns)
            continue;
        gconn **pp = &p->conns->next; /* the first stays */
        while (*pp) {
            gconn *c = *pp;
            int64_t due = c->idle_since + e->idle_ms;
            if (c->active == 0 && due <= now) {
                *pp = c->next;
                p->n_conns--;
                c->next = dead;
                dead = c;
                continue;
            }
            if (c->active == 0 && (next < 0 || due < next))
                next = due;
            pp = &c->next;
        }
    }
    if (next >= 0)
        e->sweep = envd_timer_start(e->timers, next - now, sweep_idle, e);
    pthread_mutex_unlock(&e->mu);
    /* No call is on these (active was 0 under the lock, and a call only
     * finds a channel through the pool). */
    while (dead) {
        gconn *c = dead;
        dead = c->next;
        conn_free(c);
    }
    envd_timer_cancel(self); /* from inside its own callback: freed after */
}

/* Called with e->mu held: one call fewer on r's connection. Arms the idle
 * sweep when a connection that may be closed falls idle. */
static void conn_release_locked(envd_grpc_engine *e, envd_rpc *r)
{
    gconn *c = r->conn;
    if (!c)
        return;
    r->conn = NULL;
    if (--c->active > 0)
        return;
    c->idle_since = envd_now_ms();
    if (c != r->pool->conns && !e->sweep && !e->closing)
        e->sweep = envd_timer_start(e->timers, e->idle_ms, sweep_idle, e);
}

/* ----------------------------------------------------------------- errors */

/* "Received http2 header with status: 401" -> 401: core's whole details
 * text when the response carried no grpc-status. */
static int http_status_from_details(const char *s)
{
    static const char key[] = "Received http2 header with status: ";
    if (!s || strncmp(s, key, sizeof key - 1) != 0)
        return 0;
    const char *p = s + sizeof key - 1;
    int v = 0, n = 0;
    while (*p >= '0' && *p <= '9' && n < 4) {
        v = v * 10 + (*p - '0');
        p++;
        n++;
    }
    return (n == 3 && *p == '\0') ? v : 0;
}

static int contains_ci(const char *hay, const char *needle)
{
    if (!hay)
        return 0;
    size_t n = strlen(needle);
    for (; *hay; hay++) {
        if (strncasecmp(hay, needle, n) == 0)
            return 1;
    }
    return 0;
}

/* Did a response (headers or status) come back from the peer at all? Core's
 * debug string says "Error received from peer" for statuses read off the
 * wire. */
static int status_from_peer(const char *error_string)
{
    return contains_ci(error_string, "received from peer");
}

/* Decides whether a failed call shows that the path to the peer does not
 * carry gRPC. What core 1.51 reported in our experiments (details text;
 * Node servers, python http.server, raw sockets and nginx 1.22 as peers):
 *
 *   HTTP/1.1-only server answering the preface    UNAVAILABLE "failed to connect
 *     with an HTTP/1.x error (Node, raw 400)       to all addresses; last error:
 *                                                  INTERNAL: ipv4:...: Trying to
 *                                                  connect an http1.x server"
 *   HTTP/1.0 server (python http.server)           UNAVAILABLE "... Failed parsing
 *                                                  HTTP/2"
 *   server closing / resetting on the preface      UNAVAILABLE "... Socket closed",
 *                                                  "... recvmsg:Connection reset by
 *                                                  peer"
 *   TLS server without ALPN h2 (nginx ssl, no      UNAVAILABLE "... Tls handshake
 *     http2)                                       failed: ... tlsv1 alert no
 *                                                  application protocol"
 *   nginx h2c -> proxy_pass HTTP/1.1 upstream      UNKNOWN "Stream removed" (the
 *     (trailers dropped; messages did arrive),     headers and messages came, no
 *     nginx `return 200 "text"`                    grpc-status ever did)
 *   nginx `return 404` / `return 415`              UNIMPLEMENTED / UNKNOWN "Received
 *                                                  http2 header with status: N"
 *
 * Deliberately not a mismatch: connection refused ("Failed to connect to
 * remote host: Connection refused"), DNS, certificate verification,
 * timeouts; 401/403 (auth is the same on every protocol); 429/502/503/504
 * (gateways use them for "sandbox not there"; nginx grpc_pass to an
 * HTTP/1.1 upstream also gives 502, and Connect would not get through that
 * gateway either); and any real grpc-status. A dropped connection counts
 * only during connection setup ("failed to connect to all addresses" and
 * nothing received): once HTTP/2 is up the peer does speak it. */
static int classify_mismatch(grpc_status_code st, const char *details, int http, int responded)
{
    if (http) {
        /* No grpc-status came with these: 200 is what we inferred for
         * "Stream removed"; the others are core's "Received http2 header
         * with status: N". */
        switch (http) {
        case 200:
        case 404:
        case 405:
        case 406:
        case 415:
        case 426:
        case 505: return 1;
        default: return 0;
        }
    }
    if (!details)
        return 0;
    /* Core's words for a stream that ended without any grpc-status. */
    if (st == GRPC_STATUS_UNKNOWN && strcmp(details, "Stream removed") == 0)
        return 1;
    /* Connection setup failed after TCP connected: the peer refused HTTP/2.
     * Matching only core's own prefix keeps a server's grpc-message (which
     * may contain any text, e.g. a file name) out of this. */
    if (st != GRPC_STATUS_UNAVAILABLE || responded ||
        strncmp(details, "failed to connect to all addresses", 34) != 0 ||
        contains_ci(details, "Connection refused"))
        return 0;
    static const char *const signs[] = {
        "http1.x server", "Failed parsing HTTP/2", "no application protocol", "ALPN",
        "Socket closed",  "Connection reset",      "End of TCP stream",       "Broken pipe",
    };
    for (size_t i = 0; i < sizeof signs / sizeof signs[0]; i++) {
        if (contains_ci(details, signs[i]))
            return 1;
    }
    return 0;
}

/* The error for a call this side ended (r->local): a timer, a callback, a
 * message core could not read, or core refusing an operation. */
static envd_error *local_error(const envd_rpc *r)
{
    switch (r->local) {
    case ENVD_DEADLINE_EXCEEDED:
        return envd_error_new(envd_failure_status(ENVD_FAILURE_DEADLINE, 0), ENVD_TRANSPORT_GRPC,
                              0, "gRPC %s: no response within %lld ms", r->method,
                              (long long)r->timeout_ms);
    case ENVD_E_IDLE_TIMEOUT:
        return envd_error_new(envd_failure_status(ENVD_FAILURE_IDLE, 0), ENVD_TRANSPORT_GRPC, 0,
                              "gRPC %s: stream idle for more than %lld ms", r->method,
                              (long long)r->idle_ms);
    case ENVD_E_PROTOCOL:
        return envd_error_new(envd_failure_status(ENVD_FAILURE_PROTOCOL, 0), ENVD_TRANSPORT_GRPC,
                              0, "gRPC %s: cannot read a response message", r->method);
    case ENVD_E_TRANSPORT:
        return envd_error_new(envd_failure_status(ENVD_FAILURE_LOCAL, 0), ENVD_TRANSPORT_GRPC, 0,
                              "gRPC %s: gRPC core refused an operation on the call", r->method);
    default:
        return envd_error_new(r->local == ENVD_OK ? ENVD_CANCELED : r->local, ENVD_TRANSPORT_GRPC,
                              0, "gRPC %s: canceled", r->method);
    }
}

/* Core's words for a connection that failed or dropped (an UNAVAILABLE it
 * made up itself), as a failure of the one error model. */
static envd_failure unavailable_kind(const char *details, int responded)
{
    if (contains_ci(details, "http1.x server") || contains_ci(details, "Failed parsing HTTP/2"))
        return ENVD_FAILURE_NOT_HTTP;
    if (contains_ci(details, "DNS resolution failed") || contains_ci(details, "name resolution"))
        return ENVD_FAILURE_DNS;
    if (contains_ci(details, "handshake") || contains_ci(details, "SSL") ||
        contains_ci(details, "certificate"))
        return ENVD_FAILURE_TLS;
    if (contains_ci(details, "Connection refused"))
        return ENVD_FAILURE_REFUSED;
    /* A stream past a GOAWAY's last stream id, which the peer did not
     * process (RFC 9113 6.8): as good as never sent, so any call may go
     * again (core's own transparent retry is off: GRPC_ARG_ENABLE_RETRIES). */
    if (contains_ci(details, "GOAWAY received") && !responded)
        return ENVD_FAILURE_REFUSED;
    return responded ? ENVD_FAILURE_BROKEN : ENVD_FAILURE_CLOSED;
}

/* Core's own words for a connection that went away under a call. Core
 * files such a status as "received from peer" too, so the words are what
 * tells it from a server that sent UNAVAILABLE itself. */
static int connection_lost(grpc_status_code st, const char *details)
{
    static const char *const words[] = {"Socket closed",     "Connection reset",
                                        "Broken pipe",       "End of TCP stream",
                                        "keepalive watchdog timeout", "GOAWAY received",
                                        "Transport closed"};
    if (st != GRPC_STATUS_UNAVAILABLE)
        return 0;
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
        if (contains_ci(details, words[i]))
            return 1;
    }
    return 0;
}

/* Which failure of the one error model (failure.c) a finished call shows;
 * 0 when its status is the server's own answer (a grpc-status read off the
 * wire), which is passed on as it is. */
static envd_failure call_failure(const envd_rpc *r, const char *details, int http, int peer,
                                 int responded)
{
    if (http)
        /* 200 is a reply that never carried a grpc-status. */
        return http == 200 ? ENVD_FAILURE_PROTOCOL : ENVD_FAILURE_HTTP;
    /* Core's words for a stream the peer ended without any grpc-status
     * (whether or not headers or messages came first): not a gRPC reply. */
    if (r->status == GRPC_STATUS_UNKNOWN && details && strcmp(details, "Stream removed") == 0)
        return ENVD_FAILURE_PROTOCOL;
    if (peer && !connection_lost(r->status, details))
        return (envd_failure)0;
    switch (r->status) {
    case GRPC_STATUS_DEADLINE_EXCEEDED: return ENVD_FAILURE_DEADLINE; /* our unary deadline */
    case GRPC_STATUS_INTERNAL: return ENVD_FAILURE_PROTOCOL; /* the peer's bytes broke HTTP/2 */
    case GRPC_STATUS_UNAVAILABLE: return unavailable_kind(details, responded);
    default: return (envd_failure)0;
    }
}

/* The text for a failure core saw; d is core's details (may be NULL). */
static envd_error *failure_error(const envd_rpc *r, envd_failure kind, envd_status code, int http,
                                 const char *d)
{
    const char *via = r->tls ? "TLS" : "h2c";
    if (kind == ENVD_FAILURE_DEADLINE)
        return envd_error_new(code, ENVD_TRANSPORT_GRPC, 0, "gRPC %s: no response within %lld ms",
                              r->method, (long long)r->timeout_ms);
    if (kind == ENVD_FAILURE_BROKEN || kind == ENVD_FAILURE_CLOSED)
        return envd_error_new(code, ENVD_TRANSPORT_GRPC, 0,
                              "lost the connection to %s during %s (gRPC over %s): %s", r->target,
                              r->method, via, d ? d : "unavailable");
    if (kind == ENVD_FAILURE_PROTOCOL && !http)
        return envd_error_new(code, ENVD_TRANSPORT_GRPC, 0,
                              "%s broke the gRPC protocol (%s over %s): %s", r->target, r->method,
                              via, d ? d : "no details");
    if (kind != ENVD_FAILURE_HTTP && kind != ENVD_FAILURE_PROTOCOL)
        return envd_error_new(code, ENVD_TRANSPORT_GRPC, 0, "cannot reach %s over gRPC (%s): %s",
                              r->target, via, d ? d : "unavailable");
    if (d)
        return envd_error_new(code, ENVD_TRANSPORT_GRPC, http, "%s", d);
    return envd_error_new(code, ENVD_TRANSPORT_GRPC, http, "gRPC %s: status %d", r->method,
                          (int)r->status);
}

/* Builds the on_done error. Called by the finishing worker only. */
static envd_error *rpc_error(envd_rpc *r)
{
    if (r->local != ENVD_OK && (r->status != GRPC_STATUS_OK || r->dropped))
        return local_error(r);
    if (r->status == GRPC_STATUS_OK) {
        if (r->kind != ENVD_RPC_SERVER_STREAM && !r->got_message)
            return envd_error_new(envd_failure_status(ENVD_FAILURE_PROTOCOL, 0),
                                  ENVD_TRANSPORT_GRPC, 0,
                                  "gRPC %s: status OK without a response message", r->method);
        return NULL;
    }

    char *details = grpc_slice_to_c_string(r->details);
    const char *d = (details && *details) ? details : NULL;
    int http = http_status_from_details(d);
    int peer = status_from_peer(r->error_string);
    int responded = r->init_md.count > 0 || r->got_message;
    /* Core hands up response headers only for :status 200; a stream that
     * then ends without grpc-status was an HTTP 200 without gRPC trailers. */
    if (!http && responded && d && r->status == GRPC_STATUS_UNKNOWN &&
        strcmp(d, "Stream removed") == 0)
        http = 200;
    envd_failure kind = call_failure(r, d, http, peer, responded);
    int code = (int)r->status;
    if (code < 1 || code > 16)
        code = ENVD_UNKNOWN;
    if (kind)
        code = (int)envd_failure_status(kind, http);
    envd_error *err;
    if (classify_mismatch(r->status, d, http, responded))
        err = envd_error_new((envd_status)code, ENVD_TRANSPORT_GRPC, http,
                             "%s://%s " MISMATCH_MARK " (%s): %s", r->tls ? "https" : "h2c",
                             r->target, r->method, d ? d : "no details");
    else if (kind)
        err = failure_error(r, kind, (envd_status)code, http, d);
    else if (d)
        err = envd_error_new((envd_status)code, ENVD_TRANSPORT_GRPC, http, "%s", d);
    else
        err = envd_error_new((envd_status)code, ENVD_TRANSPORT_GRPC, http, "gRPC %s: status %d",
                             r->method, (int)r->status);
    envd_error_set_failure(err, kind); /* for the retry rule (failure.c) */
    gpr_free(details);
    return err;
}

/* Declared in transport.h. The classification happened when the error was
 * built (classify_mismatch above); this reads the mark it left in the
 * message, which survives envd_error_dup and envd_error_wrap. */
int envd_grpc_error_is_protocol_mismatch(const envd_error *err)
{
    if (!err || err->transport != ENVD_TRANSPORT_GRPC || !err->message)
        return 0;
    return strstr(err->message, MISMATCH_MARK) != NULL;
}

/* -------------------------------------------------------------- call life */

static void rpc_free(envd_rpc *r)
{
    pthread_mutex_destroy(&r->mu);
    free(r->target);
    free(r->method);
    free(r);
}

static void rpc_unref(envd_rpc *r)
{
    pthread_mutex_lock(&r->mu);
    int last = --r->refs == 0;
    pthread_mutex_unlock(&r->mu);
    if (last)
        rpc_free(r);
}

/* With r->mu held: cancels the call for `why` unless it is already over or
 * already cancelled. */
static void cancel_locked(envd_rpc *r, envd_status why)
{
    if (r->finishing)
        return;
    if (r->local == ENVD_OK)
        r->local = why;
    if (r->call)
        grpc_call_cancel(r->call, NULL);
}

/* With r->mu held: returns 1 when the caller must run rpc_finish. */
static int finish_due_locked(envd_rpc *r)
{
    if (r->finishing || !r->status_done || r->pending > 0)
        return 0;
    r->finishing = 1;
    return 1;
}

static void drop_sendq_locked(envd_rpc *r)
{
    while (r->q_head) {
        sendq *n = r->q_head;
        r->q_head = n->next;
        grpc_byte_buffer_destroy(n->bb);
        free(n);
    }
    r->q_tail = NULL;
}

static void unlink_live(envd_grpc_engine *e, envd_rpc *r)
{
    pthread_mutex_lock(&e->mu);
    if (r->prev)
        r->prev->next = r->next;
    else
        e->live = r->next;
    if (r->next)
        r->next->prev = r->prev;
    r->prev = r->next = NULL;
    conn_release_locked(e, r);
    atomic_fetch_sub_explicit(&r->w->calls, 1, memory_order_release);
    if (--e->n_live == 0 && e->closing)
        pthread_cond_broadcast(&e->drained);
    pthread_mutex_unlock(&e->mu);
}

/* Runs once per call, on its worker, after the last completion. */
static void rpc_finish(envd_rpc *r)
{
    pthread_mutex_lock(&r->mu);
    envd_timer *t1 = r->first_timer, *t2 = r->idle_timer;
    r->first_timer = r->idle_timer = NULL;
    pthread_mutex_unlock(&r->mu);
    /* After these the timer callbacks are not running and never will. */
    if (t1)
        envd_timer_cancel(t1);
    if (t2)
        envd_timer_cancel(t2);

    envd_error *err = rpc_error(r);

    pthread_mutex_lock(&r->mu);
    grpc_call *call = r->call;
    r->call = NULL;
    drop_sendq_locked(r);
    pthread_mutex_unlock(&r->mu);

    grpc_call_unref(call);
    grpc_metadata_array_destroy(&r->init_md);
    grpc_metadata_array_destroy(&r->trail_md);
    grpc_slice_unref(r->details);
    if (r->error_string)
        gpr_free((void *)r->error_string);
    r->error_string = NULL;
    if (r->req_bb)
        grpc_byte_buffer_destroy(r->req_bb);
    r->req_bb = NULL;
    if (r->recv_bb)
        grpc_byte_buffer_destroy(r->recv_bb);
    r->recv_bb = NULL;

    r->cb.on_done(r->cb.ud, err);

    unlink_live(r->e, r);
    rpc_unref(r); /* the transport's reference */
}

/* Hands one received message to on_message; returns its verdict. A
 * single-slice, uncompressed buffer is passed without a copy. */
static int deliver(envd_rpc *r, grpc_byte_buffer *bb, int *bad)
{
    static const uint8_t empty[1];
    if (bb->type == GRPC_BB_RAW && bb->data.raw.compression == GRPC_COMPRESS_NONE) {
        grpc_slice_buffer *sb = &bb->data.raw.slice_buffer;
        if (sb->count == 0)
            return r->cb.on_message(r->cb.ud, empty, 0);
        if (sb->count == 1)
            return r->cb.on_message(r->cb.ud, GRPC_SLICE_START_PTR(sb->slices[0]),
                                    GRPC_SLICE_LENGTH(sb->slices[0]));
    }
    grpc_byte_buffer_reader rd;
    if (!grpc_byte_buffer_reader_init(&rd, bb)) {
        *bad = 1;
        return 1;
    }
    grpc_slice s = grpc_byte_buffer_reader_readall(&rd);
    grpc_byte_buffer_reader_destroy(&rd);
    size_t n = GRPC_SLICE_LENGTH(s);
    int rc = r->cb.on_message(r->cb.ud, n ? GRPC_SLICE_START_PTR(s) : empty, n);
    grpc_slice_unref(s);
    return rc;
}

static void on_idle_timeout(void *ud)
{
    envd_rpc *r = ud;
    pthread_mutex_lock(&r->mu);
    cancel_locked(r, ENVD_E_IDLE_TIMEOUT);
    pthread_mutex_unlock(&r->mu);
}

static void on_first_timeout(void *ud)
{
    envd_rpc *r = ud;
    pthread_mutex_lock(&r->mu);
    cancel_locked(r, ENVD_DEADLINE_EXCEEDED);
    pthread_mutex_unlock(&r->mu);
}

/* Worker side, before delivering a message: the first message ends the
 * first-message timeout and starts the idle one; later ones feed it. */
static void note_traffic(envd_rpc *r, int first)
{
    if (r->kind != ENVD_RPC_SERVER_STREAM)
        return;
    if (first) {
        pthread_mutex_lock(&r->mu);
        envd_timer *t = r->first_timer;
        r->first_timer = NULL;
        int need_idle = r->idle_ms > 0 && !r->idle_timer && !r->finishing;
        pthread_mutex_unlock(&r->mu);
        if (t)
            envd_timer_cancel(t);
        if (need_idle) {
            /* Only this worker sets idle_timer after start(), and only it
             * finishes the call, so no one else can race on the slot. */
            envd_timer *it = envd_timer_start(r->e->timers, r->idle_ms, on_idle_timeout, r);
            pthread_mutex_lock(&r->mu);
            r->idle_timer = it;
            pthread_mutex_unlock(&r->mu);
            return;
        }
    }
    /* idle_timer is written only by start() and this worker. */
    if (r->idle_timer)
        envd_timer_reset(r->idle_timer, r->idle_ms);
}

/* Server stream: one RECV_MESSAGE completed. */
static void on_recv(gtag *t, int ok)
{
    envd_rpc *r = t->rpc;
    pthread_mutex_lock(&r->mu);
    grpc_byte_buffer *bb = r->recv_bb;
    r->recv_bb = NULL;
    int deliver_it = ok && bb && r->local == ENVD_OK;
    if (bb && !deliver_it)
        r->dropped = 1;
    int first = bb && !r->got_message;
    if (bb)
        r->got_message = 1;
    pthread_mutex_unlock(&r->mu);

    int stop = 0, bad = 0;
    if (bb) {
        note_traffic(r, first);
        if (deliver_it)
            stop = deliver(r, bb, &bad);
        grpc_byte_buffer_destroy(bb);
    }

    pthread_mutex_lock(&r->mu);
    if (stop) {
        r->dropped = 1;
        cancel_locked(r, bad ? ENVD_E_PROTOCOL : ENVD_CANCELED);
    }
    if (bb && ok && r->local == ENVD_OK && r->call) {
        grpc_op op;
        memset(&op, 0, sizeof op);
        op.op = GRPC_OP_RECV_MESSAGE;
        op.data.recv_message.recv_message = &r->recv_bb;
        if (grpc_call_start_batch(r->call, &op, 1, &r->t_recv, NULL) == GRPC_CALL_OK)
            r->pending++;
        else if (!r->status_done)
            cancel_locked(r, ENVD_E_TRANSPORT);
        /* else: the call is complete; there is nothing left to read. */
    }
    r->pending--;
    int fin = finish_due_locked(r);
    pthread_mutex_unlock(&r->mu);
    if (fin)
        rpc_finish(r);
}

/* The batch holding RECV_STATUS_ON_CLIENT completed (always with ok=1).
 * Unary and client stream: it also carries the one response message. */
static void on_status(gtag *t, int ok)
{
    (void)ok;
    envd_rpc *r = t->rpc;
    pthread_mutex_lock(&r->mu);
    grpc_byte_buffer *bb = NULL;
    int deliver_it = 0;
    if (r->kind != ENVD_RPC_SERVER_STREAM) {
        bb = r->recv_bb;
        r->recv_bb = NULL;
        if (bb) {
            r->got_message = 1;
            deliver_it = r->status == GRPC_STATUS_OK && r->local == ENVD_OK;
            if (!deliver_it)
                r->dropped = 1;
        }
    }
    pthread_mutex_unlock(&r->mu);

    int stop = 0, bad = 0;
    if (bb) {
        if (deliver_it)
            stop = deliver(r, bb, &bad);
        grpc_byte_buffer_destroy(bb);
    }

    pthread_mutex_lock(&r->mu);
    if (stop) {
        r->dropped = 1;
        if (r->local == ENVD_OK)
            r->local = bad ? ENVD_E_PROTOCOL : ENVD_CANCELED;
    }
    r->status_done = 1;
    /* Nothing more will be read or written; queued input is moot. */
    drop_sendq_locked(r);
    r->pending--;
    int fin = finish_due_locked(r);
    pthread_mutex_unlock(&r->mu);
    if (fin)
        rpc_finish(r);
}

/* The first send batch (initial metadata, plus the request for server
 * streams) completed. Failures show up in the status. */
static void on_start(gtag *t, int ok)
{
    (void)ok;
    envd_rpc *r = t->rpc;
    pthread_mutex_lock(&r->mu);
    r->pending--;
    int fin = finish_due_locked(r);
    pthread_mutex_unlock(&r->mu);
    if (fin)
        rpc_finish(r);
}

/* With r->mu held: starts the next send batch of a client stream, if any. */
static void pump_send_locked(envd_rpc *r)
{
    if (r->send_busy || r->status_done || r->finishing || r->local != ENVD_OK || !r->call ||
        r->close_sent)
        return;
    grpc_op ops[2];
    memset(ops, 0, sizeof ops);
    size_t n = 0;
    grpc_byte_buffer *bb = NULL;
    if (r->q_head) {
        sendq *q = r->q_head;
        r->q_head = q->next;
        if (!r->q_head)
            r->q_tail = NULL;
        bb = q->bb;
        free(q);
        ops[n].op = GRPC_OP_SEND_MESSAGE;
        ops[n].data.send_message.send_message = bb;
        n++;
    }
    if (r->close_requested && !r->q_head) {
        ops[n].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
        n++;
    }
    if (n == 0)
        return;
    if (grpc_call_start_batch(r->call, ops, n, &r->t_send, NULL) != GRPC_CALL_OK) {
        if (bb)
            grpc_byte_buffer_destroy(bb);
        drop_sendq_locked(r);
        cancel_locked(r, ENVD_E_TRANSPORT);
        return;
    }
    r->send_bb = bb;
    r->send_busy = 1;
    if (ops[n - 1].op == GRPC_OP_SEND_CLOSE_FROM_CLIENT)
        r->close_sent = 1;
    r->pending++;
}

/* Client stream: one send batch completed. */
static void on_sent(gtag *t, int ok)
{
    envd_rpc *r = t->rpc;
    pthread_mutex_lock(&r->mu);
    /* Only now may the buffer be destroyed (core owned its slices). */
    if (r->send_bb)
        grpc_byte_buffer_destroy(r->send_bb);
    r->send_bb = NULL;
    r->send_busy = 0;
    if (!ok)
        drop_sendq_locked(r); /* the stream broke; the status says why */
    else
        pump_send_locked(r);
    r->pending--;
    int fin = finish_due_locked(r);
    pthread_mutex_unlock(&r->mu);
    if (fin)
        rpc_finish(r);
}

/* ------------------------------------------------------------ the worker */

/* Parks w (not worker 0) until a call is bound to it or the engine stops.
 * A worker in
 * grpc_completion_queue_next also polls every connection's sockets (core's
 * epoll1 poller is global): with two workers in it and one busy stream,
 * they hand the poller role to each other on every read, which doubled the
 * CPU per message of a stream (envd-bench stream, issue 11). A worker with
 * nothing bound stays out of it; the worker whose calls it is polls. */
static void worker_park(gworker *w)
{
    if (w->index == 0 || atomic_load_explicit(&w->calls, memory_order_acquire) > 0)
        return;
    pthread_mutex_lock(&w->mu);
    while (atomic_load_explicit(&w->calls, memory_order_acquire) == 0 &&
           !atomic_load(&w->e->stopping))
        pthread_cond_wait(&w->cv, &w->mu);
    pthread_mutex_unlock(&w->mu);
}

/* Counts a new call on w, waking it when it was parked. */
static void worker_bind(gworker *w)
{
    if (atomic_fetch_add_explicit(&w->calls, 1, memory_order_acq_rel) == 0) {
        pthread_mutex_lock(&w->mu);
        pthread_cond_signal(&w->cv);
        pthread_mutex_unlock(&w->mu);
    }
}

static void *worker_main(void *arg)
{
    gworker *w = arg;
    char name[16];
    snprintf(name, sizeof name, "envd-grpc-%d", w->index);
    pthread_setname_np(pthread_self(), name);
    for (;;) {
        worker_park(w);
        grpc_event ev = grpc_completion_queue_next(w->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN)
            break;
        if (ev.type != GRPC_OP_COMPLETE)
            continue;
        gtag *t = ev.tag;
        gtag_fn fn = atomic_load_explicit(&t->fn, memory_order_acquire);
        fn(t, ev.success);
    }
    return NULL;
}

/* ------------------------------------------------------------- the ops */

static int header_skipped(const char *name)
{
    /* Set by core or meaningless on HTTP/2; core rejects some of them. */
    static const char *const skip[] = {
        "te",         "content-type", "content-length", "connection", "transfer-encoding",
        "keep-alive", "upgrade",      "host",           "user-agent", "proxy-connection"};
    if (name[0] == ':' || strncmp(name, "grpc-", 5) == 0)
        return 1;
    for (size_t i = 0; i < sizeof skip / sizeof skip[0]; i++) {
        if (strcmp(name, skip[i]) == 0)
            return 1;
    }
    return 0;
}

/* One header as core takes it: *skip = 1 for a header not sent, else
 * *k and *v (the caller's references). ENVD_E_CONFIG for a name or value
 * core would refuse. */
static envd_status header_make(const envd_kv *kv, int *skip, grpc_slice *k, grpc_slice *v)
{
    size_t len = strlen(kv->name);
    char lower[256];
    if (len == 0 || len >= sizeof lower)
        return ENVD_E_CONFIG;
    for (size_t j = 0; j <= len; j++)
        lower[j] = (char)tolower((unsigned char)kv->name[j]);
    *skip = header_skipped(lower);
    if (*skip)
        return ENVD_OK;
    *k = grpc_slice_from_copied_string(lower);
    *v = grpc_slice_from_copied_string(kv->value);
    int bin = len > 4 && strcmp(lower + len - 4, "-bin") == 0;
    if (!grpc_header_key_is_legal(*k) || (!bin && !grpc_header_nonbin_value_is_legal(*v))) {
        grpc_slice_unref(*k);
        grpc_slice_unref(*v);
        return ENVD_E_CONFIG;
    }
    return ENVD_OK;
}

static uint64_t header_hash(const envd_kv *kv)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (const char *p = kv->name; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    h = (h ^ 0xffu) * 1099511628211ull; /* between name and value */
    for (const char *p = kv->value; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    return h;
}

static void md_slot_clear(md_slot *m)
{
    if (m->name && !m->skip) {
        grpc_slice_unref(m->k);
        grpc_slice_unref(m->v);
    }
    free(m->name);
    free(m->value);
    memset(m, 0, sizeof *m);
}

/* 1 with *skip, *k, *v (new references) when the header is in e's table. */
static int md_lookup(envd_grpc_engine *e, const envd_kv *kv, uint64_t h, int *skip, grpc_slice *k,
                     grpc_slice *v)
{
    md_slot *m = &e->md[h % MD_SLOTS];
    pthread_mutex_lock(&e->md_mu);
    int hit = m->name && m->hash == h && strcmp(m->name, kv->name) == 0 &&
              strcmp(m->value, kv->value) == 0;
    if (hit) {
        *skip = m->skip;
        if (!m->skip) {
            *k = grpc_slice_ref(m->k);
            *v = grpc_slice_ref(m->v);
        }
    }
    pthread_mutex_unlock(&e->md_mu);
    return hit;
}

/* Keeps a header just built in its slot (its own references). */
static void md_store(envd_grpc_engine *e, const envd_kv *kv, uint64_t h, int skip, grpc_slice k,
                     grpc_slice v)
{
    md_slot n = {.hash = h, .skip = skip};
    n.name = dup_str(kv->name);
    n.value = dup_str(kv->value);
    if (!n.name || !n.value) { /* not kept; the call has its own */
        free(n.name);
        free(n.value);
        return;
    }
    if (!skip) {
        n.k = grpc_slice_ref(k);
        n.v = grpc_slice_ref(v);
    }
    pthread_mutex_lock(&e->md_mu);
    md_slot old = e->md[h % MD_SLOTS];
    e->md[h % MD_SLOTS] = n;
    pthread_mutex_unlock(&e->md_mu);
    md_slot_clear(&old);
}

/* Builds the metadata array; returns ENVD_OK or the reason to refuse. The
 * slices in md[0..*n) must be unreffed by the caller. */
static envd_status build_metadata(envd_grpc_engine *e, const envd_rpc_request *req,
                                  grpc_metadata *md, size_t *n)
{
    *n = 0;
    for (size_t i = 0; i < req->n_headers; i++) {
        const envd_kv *kv = &req->headers[i];
        if (!kv->name || !kv->value)
            continue;
        uint64_t h = header_hash(kv);
        int skip = 0;
        grpc_slice k, v;
        if (!md_lookup(e, kv, h, &skip, &k, &v)) {
            envd_status st = header_make(kv, &skip, &k, &v);
            if (st != ENVD_OK)
                return st;
            md_store(e, kv, h, skip, k, v);
        }
        if (skip)
            continue;
        md[*n].key = k;
        md[*n].value = v;
        (*n)++;
    }
    return ENVD_OK;
}

/* "https://gw:443/prefix" -> "/prefix"; "" when there is no path. */
static const char *url_path_prefix(const char *base_url)
{
    if (!base_url)
        return "";
    const char *p = strstr(base_url, "://");
    p = p ? p + 3 : base_url;
    p = strchr(p, '/');
    return p ? p : "";
}

/* The request's metadata, on the stack for the usual handful of headers. */
typedef struct md_list {
    grpc_metadata stack[16];
    grpc_metadata *md;
    size_t n;
} md_list;

static envd_status md_list_build(envd_grpc_engine *e, const envd_rpc_request *req, md_list *ml)
{
    ml->n = 0;
    ml->md = req->n_headers <= 16 ? ml->stack : envd_calloc(req->n_headers, sizeof *ml->md);
    return ml->md ? build_metadata(e, req, ml->md, &ml->n) : ENVD_E_NOMEM;
}

static void md_list_free(md_list *ml)
{
    if (!ml->md)
        return;
    for (size_t i = 0; i < ml->n; i++) {
        grpc_slice_unref(ml->md[i].key);
        grpc_slice_unref(ml->md[i].value);
    }
    if (ml->md != ml->stack)
        free(ml->md);
    ml->md = NULL;
    ml->n = 0;
}

/* A new call object for req (two references: the caller's and the
 * transport's), or NULL when memory runs out. */
static envd_rpc *rpc_new(envd_grpc_engine *e, const envd_rpc_request *req,
                         const envd_rpc_callbacks *cb)
{
    envd_rpc *r = envd_calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->e = e;
    r->kind = req->kind;
    r->cb = *cb;
    r->tls = !!req->ep->tls;
    r->timeout_ms = req->timeout_ms > 0 ? req->timeout_ms : 0;
    r->idle_ms = (req->kind == ENVD_RPC_SERVER_STREAM && req->idle_timeout_ms > 0)
                     ? req->idle_timeout_ms
                     : 0;
    r->refs = 2;
    r->target = dup_str(req->ep->authority);
    const char *prefix = url_path_prefix(req->ep->base_url);
    size_t plen = strlen(prefix), mlen = strlen(req->method);
    while (plen > 0 && prefix[plen - 1] == '/')
        plen--;
    r->method = envd_malloc(plen + mlen + 1);
    if (!r->target || !r->method) {
        free(r->target);
        free(r->method);
        free(r);
        return NULL;
    }
    memcpy(r->method, prefix, plen);
    memcpy(r->method + plen, req->method, mlen + 1);
    pthread_mutex_init(&r->mu, NULL);
    grpc_metadata_array_init(&r->init_md);
    grpc_metadata_array_init(&r->trail_md);
    r->details = grpc_empty_slice();
    return r;
}

/* Frees a call no batch was ever started for. */
static void rpc_discard(envd_rpc *r)
{
    if (r->req_bb)
        grpc_byte_buffer_destroy(r->req_bb);
    grpc_metadata_array_destroy(&r->init_md);
    grpc_metadata_array_destroy(&r->trail_md);
    grpc_slice_unref(r->details);
    rpc_free(r);
}

/* The worker a new call goes to: the fewest calls bound, the lowest index
 * on a tie (worker 0 polls anyway; see the file comment). Counts only
 * change under e->mu (rpc_register, unlink_live), which the caller holds. */
static gworker *least_busy_worker(envd_grpc_engine *e)
{
    gworker *best = &e->workers[0];
    int least = atomic_load_explicit(&best->calls, memory_order_relaxed);
    for (int i = 1; i < e->n_workers && least > 0; i++) {
        int n = atomic_load_explicit(&e->workers[i].calls, memory_order_relaxed);
        if (n < least) {
            least = n;
            best = &e->workers[i];
        }
    }
    return best;
}

/* Picks the pooled channel for ep, counts r on it, and puts r on the live
 * list (so engine_free waits for it). NULL with *st set when the engine is closing or the
 * channel cannot be made. */
static grpc_channel *rpc_register(envd_grpc_engine *e, envd_rpc *r, const envd_endpoint *ep,
                                  envd_status *st)
{
    pthread_mutex_lock(&e->mu);
    if (e->closing) {
        pthread_mutex_unlock(&e->mu);
        *st = ENVD_E_SHUTDOWN;
        return NULL;
    }
    gpool *p = get_pool(e, ep, st);
    gconn *c = p ? pick_conn(e, p, ep, st) : NULL;
    grpc_channel *ch = c ? c->channel : NULL;
    if (ch) {
        r->pool = p;
        r->conn = c;
        r->reg = conn_registered(c, r->method);
        c->active++;
        r->w = least_busy_worker(e);
        worker_bind(r->w);
        r->next = e->live;
        if (e->live)
            e->live->prev = r;
        e->live = r;
        e->n_live++;
    }
    pthread_mutex_unlock(&e->mu);
    return ch;
}

/* The core call on its worker's queue. Only unary calls carry a gRPC
 * deadline (see the file comment). */
static grpc_call *rpc_create_call(envd_rpc *r, grpc_channel *ch)
{
    /* A refcounted copy, not a static slice over r->method: the HPACK
     * encoder keeps :path values (by reference) to index them, long after
     * this call and its r->method are gone; a stale static slice whose
     * memory a later call reused made core send a new method under an old
     * method's index (a SendSignal arrived at the server as Stat). */
    gpr_timespec deadline = gpr_inf_future(GPR_CLOCK_REALTIME);
    if (r->kind == ENVD_RPC_UNARY && r->timeout_ms > 0)
        deadline = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                                gpr_time_from_millis(r->timeout_ms, GPR_TIMESPAN));
    if (r->reg)
        return grpc_channel_create_registered_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, r->w->cq,
                                                   r->reg, deadline, NULL);
    grpc_slice method = grpc_slice_from_copied_string(r->method);
    grpc_call *call = grpc_channel_create_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, r->w->cq,
                                               method, NULL, deadline, NULL);
    grpc_slice_unref(method); /* the call holds its own reference */
    return call;
}

static void recv_status_op(envd_rpc *r, grpc_op *op)
{
    op->op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    op->data.recv_status_on_client.trailing_metadata = &r->trail_md;
    op->data.recv_status_on_client.status = &r->status;
    op->data.recv_status_on_client.status_details = &r->details;
    op->data.recv_status_on_client.error_string = &r->error_string;
}

/* With r->mu held, after the first batch was accepted: a batch core refuses
 * now cannot fail for a reason the first one did not, so cancel; on_done
 * still comes once the accepted batches drain. A refused status batch also
 * stands in for the status that will never arrive. */
static void follow_up_batch_locked(envd_rpc *r, grpc_op *ops, size_t n, gtag *tag, int is_status)
{
    if (grpc_call_start_batch(r->call, ops, n, tag, NULL) == GRPC_CALL_OK) {
        r->pending++;
        return;
    }
    if (is_status) {
        r->status = GRPC_STATUS_INTERNAL;
        r->status_done = 1;
    }
    cancel_locked(r, ENVD_E_TRANSPORT);
}

/* Unary and server stream: the request goes out whole with the headers. */
static void send_request_ops(envd_rpc *r, grpc_op ops[4])
{
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = r->req_bb;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &r->init_md;
}

/* Unary: one batch of six ops. */
static grpc_call_error start_unary_locked(envd_rpc *r, grpc_op ops[6])
{
    send_request_ops(r, ops);
    ops[4].op = GRPC_OP_RECV_MESSAGE;
    ops[4].data.recv_message.recv_message = &r->recv_bb;
    recv_status_op(r, &ops[5]);
    grpc_call_error ce = grpc_call_start_batch(r->call, ops, 6, &r->t_status, NULL);
    if (ce == GRPC_CALL_OK)
        r->pending++;
    return ce;
}

/* Server stream: the send batch, then RECV_STATUS and the first
 * RECV_MESSAGE (re-armed by on_recv). */
static grpc_call_error start_server_stream_locked(envd_rpc *r, grpc_op ops[6])
{
    send_request_ops(r, ops);
    grpc_call_error ce = grpc_call_start_batch(r->call, ops, 4, &r->t_start, NULL);
    if (ce != GRPC_CALL_OK)
        return ce;
    r->pending++;
    grpc_op sop, mop;
    memset(&sop, 0, sizeof sop);
    memset(&mop, 0, sizeof mop);
    recv_status_op(r, &sop);
    follow_up_batch_locked(r, &sop, 1, &r->t_status, 1);
    mop.op = GRPC_OP_RECV_MESSAGE;
    mop.data.recv_message.recv_message = &r->recv_bb;
    follow_up_batch_locked(r, &mop, 1, &r->t_recv, 0);
    return ce;
}

/* Client stream: the initial metadata, then one batch for response +
 * status; messages follow through grpc_send. */
static grpc_call_error start_client_stream_locked(envd_rpc *r, grpc_op ops[6])
{
    grpc_call_error ce = grpc_call_start_batch(r->call, ops, 1, &r->t_start, NULL);
    if (ce != GRPC_CALL_OK)
        return ce;
    r->pending++;
    grpc_op rops[3];
    memset(rops, 0, sizeof rops);
    rops[0].op = GRPC_OP_RECV_INITIAL_METADATA;
    rops[0].data.recv_initial_metadata.recv_initial_metadata = &r->init_md;
    rops[1].op = GRPC_OP_RECV_MESSAGE;
    rops[1].data.recv_message.recv_message = &r->recv_bb;
    recv_status_op(r, &rops[2]);
    follow_up_batch_locked(r, rops, 3, &r->t_status, 1);
    return ce;
}

/* Hands call to r and starts its batches. Once a batch is out the worker
 * may finish the call at any moment. */
static grpc_call_error start_batches(envd_rpc *r, grpc_call *call, const md_list *ml)
{
    /* Publish the finished object to the worker (see struct gtag). */
    tag_init(&r->t_start, on_start, r);
    tag_init(&r->t_recv, on_recv, r);
    tag_init(&r->t_status, on_status, r);
    tag_init(&r->t_send, on_sent, r);
    grpc_op ops[6];
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[0].data.send_initial_metadata.count = ml->n;
    ops[0].data.send_initial_metadata.metadata = ml->n ? ml->md : NULL;
    pthread_mutex_lock(&r->mu);
    r->call = call;
    grpc_call_error ce;
    if (r->kind == ENVD_RPC_UNARY)
        ce = start_unary_locked(r, ops);
    else if (r->kind == ENVD_RPC_SERVER_STREAM)
        ce = start_server_stream_locked(r, ops);
    else
        ce = start_client_stream_locked(r, ops);
    if (ce == GRPC_CALL_OK && r->local != ENVD_OK)
        grpc_call_cancel(call, NULL); /* cancelled (engine shutdown) while starting */
    if (ce != GRPC_CALL_OK)
        r->call = NULL;
    pthread_mutex_unlock(&r->mu);
    return ce;
}

static int start_args_ok(const envd_grpc_engine *e, const envd_rpc_request *req,
                         const envd_rpc_callbacks *cb, envd_rpc **out)
{
    return e && req && cb && out && req->ep && req->ep->authority && req->method &&
           cb->on_done && cb->on_message && req->method[0] == '/' &&
           (req->kind == ENVD_RPC_UNARY || req->kind == ENVD_RPC_SERVER_STREAM ||
            req->kind == ENVD_RPC_CLIENT_STREAM) &&
           (req->n_headers == 0 || req->headers);
}

static envd_status grpc_start(envd_rpc_transport *t, const envd_rpc_request *req,
                              const envd_rpc_callbacks *cb, envd_rpc **out)
{
    envd_grpc_engine *e = (envd_grpc_engine *)t;
    if (out)
        *out = NULL;
    if (!start_args_ok(e, req, cb, out))
        return ENVD_E_USAGE;
    envd_rpc *r = rpc_new(e, req, cb);
    if (!r)
        return ENVD_E_NOMEM;

    md_list ml;
    envd_status st = md_list_build(e, req, &ml);
    if (st == ENVD_OK && req->kind != ENVD_RPC_CLIENT_STREAM &&
        !(r->req_bb = make_bb(req->body, req->body_len)))
        st = ENVD_E_NOMEM;
    grpc_channel *ch = st == ENVD_OK ? rpc_register(e, r, req->ep, &st) : NULL;
    if (!ch) {
        md_list_free(&ml);
        rpc_discard(r);
        return st;
    }
    grpc_call *call = rpc_create_call(r, ch);
    if (!call) {
        md_list_free(&ml);
        unlink_live(e, r);
        rpc_discard(r);
        return envd_failure_status(ENVD_FAILURE_LOCAL, 0);
    }

    /* Stream timers are armed before any batch runs: once a batch is out,
     * the worker may finish the call at any moment. */
    if (r->kind == ENVD_RPC_SERVER_STREAM) {
        if (r->timeout_ms > 0)
            r->first_timer = envd_timer_start(e->timers, r->timeout_ms, on_first_timeout, r);
        else if (r->idle_ms > 0)
            r->idle_timer = envd_timer_start(e->timers, r->idle_ms, on_idle_timeout, r);
    }
    *out = r;
    grpc_call_error ce = start_batches(r, call, &ml);
    md_list_free(&ml);
    if (ce == GRPC_CALL_OK)
        return ENVD_OK;

    /* No batch is out: nothing will ever complete for this call. */
    *out = NULL;
    if (r->first_timer)
        envd_timer_cancel(r->first_timer);
    if (r->idle_timer)
        envd_timer_cancel(r->idle_timer);
    grpc_call_unref(call);
    unlink_live(e, r);
    rpc_discard(r);
    return ce == GRPC_CALL_ERROR_INVALID_METADATA ? ENVD_E_CONFIG
                                                  : envd_failure_status(ENVD_FAILURE_LOCAL, 0);
}

static envd_status grpc_send(envd_rpc *r, const uint8_t *msg, size_t len)
{
    if (!r || (len && !msg))
        return ENVD_E_USAGE;
    if (r->kind != ENVD_RPC_CLIENT_STREAM)
        return ENVD_E_USAGE;
    grpc_byte_buffer *bb = make_bb(msg, len);
    sendq *node = envd_malloc(sizeof *node);
    if (!bb || !node) {
        if (bb)
            grpc_byte_buffer_destroy(bb);
        free(node);
        return ENVD_E_NOMEM;
    }
    node->next = NULL;
    node->bb = bb;
    envd_status st = ENVD_OK;
    pthread_mutex_lock(&r->mu);
    if (r->close_requested)
        st = ENVD_E_USAGE;
    else if (r->finishing || r->status_done || r->local != ENVD_OK || !r->call)
        st = ENVD_CANCELED; /* the stream is over; on_done tells why */
    if (st == ENVD_OK) {
        if (r->q_tail)
            r->q_tail->next = node;
        else
            r->q_head = node;
        r->q_tail = node;
        pump_send_locked(r);
    }
    pthread_mutex_unlock(&r->mu);
    if (st != ENVD_OK) {
        grpc_byte_buffer_destroy(bb);
        free(node);
    }
    return st;
}

static envd_status grpc_close_send(envd_rpc *r)
{
    if (!r)
        return ENVD_E_USAGE;
    if (r->kind != ENVD_RPC_CLIENT_STREAM)
        return ENVD_E_USAGE;
    pthread_mutex_lock(&r->mu);
    if (r->close_requested) {
        pthread_mutex_unlock(&r->mu);
        return ENVD_OK;
    }
    r->close_requested = 1;
    int live = !r->finishing && !r->status_done;
    pump_send_locked(r);
    pthread_mutex_unlock(&r->mu);

    /* For a client stream the request timeout covers the wait for the
     * response once the input is complete. */
    if (live && r->timeout_ms > 0) {
        envd_timer *t = envd_timer_start(r->e->timers, r->timeout_ms, on_first_timeout, r);
        if (t) {
            pthread_mutex_lock(&r->mu);
            int keep = !r->finishing && !r->first_timer;
            if (keep)
                r->first_timer = t;
            pthread_mutex_unlock(&r->mu);
            if (!keep)
                envd_timer_cancel(t);
        }
    }
    return ENVD_OK;
}

static void grpc_cancel(envd_rpc *r)
{
    if (!r)
        return;
    pthread_mutex_lock(&r->mu);
    cancel_locked(r, ENVD_CANCELED);
    pthread_mutex_unlock(&r->mu);
}

static void grpc_release(envd_rpc *r)
{
    if (r)
        rpc_unref(r);
}

static const envd_rpc_ops grpc_ops = {
    .kind = ENVD_TRANSPORT_GRPC,
    .start = grpc_start,
    .send = grpc_send,
    .close_send = grpc_close_send,
    .cancel = grpc_cancel,
    .release = grpc_release,
};

/* ----------------------------------------------------------- the engine */

static void stop_workers(envd_grpc_engine *e, int started)
{
    atomic_store(&e->stopping, 1);
    for (int i = 0; i < e->n_workers; i++) {
        if (e->workers[i].cq)
            grpc_completion_queue_shutdown(e->workers[i].cq);
        pthread_mutex_lock(&e->workers[i].mu);
        pthread_cond_broadcast(&e->workers[i].cv);
        pthread_mutex_unlock(&e->workers[i].mu);
    }
    for (int i = 0; i < started; i++)
        pthread_join(e->workers[i].thread, NULL);
    for (int i = 0; i < e->n_workers; i++) {
        if (!e->workers[i].cq)
            continue;
        if (i >= started) {
            /* Never drained by a worker: drain here before destroying. */
            for (;;) {
                grpc_event ev = grpc_completion_queue_next(
                    e->workers[i].cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
                if (ev.type == GRPC_QUEUE_SHUTDOWN)
                    break;
            }
        }
        grpc_completion_queue_destroy(e->workers[i].cq);
        e->workers[i].cq = NULL;
    }
    for (int i = 0; i < e->n_workers; i++) {
        pthread_cond_destroy(&e->workers[i].cv);
        pthread_mutex_destroy(&e->workers[i].mu);
    }
}

envd_status envd_grpc_engine_new(int workers, envd_timers *timers, const envd_pool_limits *lim,
                                 envd_grpc_engine **out)
{
    if (!out || !timers)
        return ENVD_E_USAGE;
    *out = NULL;
    if (workers <= 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        workers = n > 0 ? (int)n : 1;
    }
    envd_grpc_engine *e = envd_calloc(1, sizeof *e);
    if (!e)
        return ENVD_E_NOMEM;
    e->workers = envd_calloc((size_t)workers, sizeof *e->workers);
    if (!e->workers) {
        free(e);
        return ENVD_E_NOMEM;
    }
    envd_grpc_absl_deadlock_state();
    grpc_init();
    e->base.ops = &grpc_ops;
    e->timers = timers;
    e->lim = envd_pool_limits_or_default(lim);
    e->idle_ms = POOL_IDLE_MS;
    e->n_workers = workers;
    atomic_init(&e->stopping, 0);
    for (int i = 0; i < workers; i++) {
        e->workers[i].e = e;
        atomic_init(&e->workers[i].calls, 0);
        pthread_mutex_init(&e->workers[i].mu, NULL);
        pthread_cond_init(&e->workers[i].cv, NULL);
    }
    pthread_mutex_init(&e->mu, NULL);
    pthread_mutex_init(&e->md_mu, NULL);
    pthread_cond_init(&e->drained, NULL);

    /* Workers block every signal: they belong to the application's threads. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int started = 0;
    envd_status st = ENVD_OK;
    for (int i = 0; i < workers; i++) {
        e->workers[i].index = i;
        e->workers[i].cq = grpc_completion_queue_create_for_next(NULL);
        if (!e->workers[i].cq) {
            st = ENVD_E_NOMEM;
            break;
        }
    }
    for (int i = 0; st == ENVD_OK && i < workers; i++) {
        if (envd_thread_start(&e->workers[i].thread, worker_main, &e->workers[i]) != 0) {
            st = ENVD_E_NOMEM;
            break;
        }
        started++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (st != ENVD_OK) {
        stop_workers(e, started);
        pthread_cond_destroy(&e->drained);
        pthread_mutex_destroy(&e->md_mu);
        pthread_mutex_destroy(&e->mu);
        free(e->workers);
        free(e);
        grpc_shutdown();
        return st;
    }
    *out = e;
    return ENVD_OK;
}

void envd_grpc_engine_pool_stats(envd_grpc_engine *e, size_t *channels, size_t *active)
{
    size_t n = 0, a = 0;
    pthread_mutex_lock(&e->mu);
    for (gpool *p = e->pools; p; p = p->next) {
        for (gconn *c = p->conns; c; c = c->next) {
            n++;
            a += (size_t)c->active;
        }
    }
    pthread_mutex_unlock(&e->mu);
    if (channels)
        *channels = n;
    if (active)
        *active = a;
}

void envd_grpc_engine_set_idle_ms(envd_grpc_engine *e, int64_t ms)
{
    pthread_mutex_lock(&e->mu);
    e->idle_ms = ms > 0 ? ms : POOL_IDLE_MS;
    pthread_mutex_unlock(&e->mu);
}

envd_rpc_transport *envd_grpc_engine_transport(envd_grpc_engine *e)
{
    return e ? &e->base : NULL;
}

void envd_grpc_engine_free(envd_grpc_engine *e)
{
    if (!e)
        return;
    /* 1. cancel every call and wait until each on_done has run (each call
     *    also dropped its grpc_call by then). */
    pthread_mutex_lock(&e->mu);
    e->closing = 1;
    for (envd_rpc *r = e->live; r; r = r->next) {
        pthread_mutex_lock(&r->mu);
        cancel_locked(r, ENVD_CANCELED);
        pthread_mutex_unlock(&r->mu);
    }
    while (e->n_live > 0)
        pthread_cond_wait(&e->drained, &e->mu);
    gpool *pools = e->pools;
    e->pools = NULL;
    envd_timer *sweep = e->sweep;
    e->sweep = NULL;
    pthread_mutex_unlock(&e->mu);
    /* A sweep running now sees closing and leaves its timer to us; after
     * this it is not running and never will. */
    envd_timer_cancel(sweep);

    /* 2. destroy the channels. */
    while (pools) {
        gpool *p = pools;
        pools = p->next;
        while (p->conns) {
            gconn *c = p->conns;
            p->conns = c->next;
            conn_free(c);
        }
        free(p->authority);
        free(p->ca_file);
        free(p);
    }
    /* 3-4. shut down each queue, let its worker drain it to
     *      GRPC_QUEUE_SHUTDOWN, join, destroy. */
    stop_workers(e, e->n_workers);
    for (int i = 0; i < MD_SLOTS; i++)
        md_slot_clear(&e->md[i]);

    pthread_cond_destroy(&e->drained);
    pthread_mutex_destroy(&e->md_mu);
    pthread_mutex_destroy(&e->mu);
    free(e->workers);
    free(e);
    /* 5. from the calling thread, never from a worker. */
    grpc_shutdown();
}
