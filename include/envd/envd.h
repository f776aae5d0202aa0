/*
 * libenvd: a C11 client for envd, the process and filesystem daemon inside
 * E2B-style and OpenKruise agent sandboxes.
 *
 * Shape of the API
 *   envd_runtime  the engine: worker threads draining gRPC completion queues,
 *                 one libcurl I/O thread and a timer thread. Share one per
 *                 process; any number of clients use it from any thread.
 *   envd_config   every option, behind setters. Copied by whoever takes it.
 *   envd_client   one sandbox (or one sandbox behind a gateway).
 *   envd_future   the result of an asynchronous operation. Every call has an
 *                 asynchronous form returning a future; the synchronous forms
 *                 start the future and wait for it.
 *
 * Conventions
 *   - Functions that can fail return envd_status; ENVD_OK is 0.
 *   - A function that starts an operation and returns an error produced no
 *     future, and no callback of it will ever run.
 *   - Strings passed in are copied; the caller keeps ownership.
 *   - Ownership of what is returned is written above each function.
 *   - Every *_free function accepts NULL.
 *
 * Threads and callbacks
 *   A runtime starts its engine threads: envd_config_set_workers gRPC
 *   workers, one libcurl I/O thread, one timer thread, and on first use one
 *   Kubernetes worker (exec plugins). Every callback (command output, watch
 *   events, /files sinks, sources and progress, future completion) runs on
 *   one of them, in order for one stream and never concurrently for one
 *   stream:
 *     - an RPC carried by gRPC: the worker its call was bound to (the
 *       one with the fewest calls at the start, fixed for the call's
 *       life). A slow callback delays every other gRPC call bound to that
 *       worker;
 *     - an RPC carried by Connect, and every /files transfer and Kubernetes
 *       request: the single I/O thread. A slow callback there stalls every
 *       Connect call, /files transfer and Kubernetes lookup of the runtime;
 *     - a completion callback runs on the thread that completes the future
 *       (one of the above, or the Kubernetes worker); attached to a future
 *       that is already complete, it runs at once on the attaching thread.
 *   Keep callbacks short: copy what you need and hand it to a thread of
 *   your own. Through envd, a stalled output callback also slows the
 *   process writing that output. On an engine thread, waits, blocking calls
 *   and envd_runtime_free return ENVD_E_USAGE instead of deadlocking.
 *
 * Teardown order: free handles and futures, then clients, then the runtime.
 * A command handle keeps what it needs of its client (kill, resize,
 * reconnect ...), and a future may outlive its client. Freeing the runtime
 * cancels whatever is still in flight: those futures complete with
 * ENVD_CANCELED, and the processes of runs still in flight are killed
 * first (cancel means stop; see the commands section).
 */
#ifndef ENVD_ENVD_H
#define ENVD_ENVD_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) && __GNUC__ >= 4
#define ENVD_API __attribute__((visibility("default")))
#else
#define ENVD_API
#endif

#define ENVD_VERSION_MAJOR 0
#define ENVD_VERSION_MINOR 2
#define ENVD_VERSION_PATCH 0
#define ENVD_VERSION_STRING "0.2.0"

/* Library version, "0.2.0". 0.x releases break the ABI between minor
 * versions: the SONAME is libenvd.so.0.MINOR. */
ENVD_API const char *envd_version(void);

/* A name and a value (headers, environment variables, metadata). In
 * results the strings belong to the result; passed in, they are copied. */
typedef struct envd_kv {
    const char *name;
    const char *value;
} envd_kv;

/* ---------------------------------------------------------------- status */

/* 1..16 are the Connect/gRPC codes with their canonical numbers; 100 and up
 * are produced by the client itself. A failure gets the same code on every
 * transport, as gRPC and connect-go clients name it: not reaching the server
 * or losing it (refused, DNS, TLS, reset, server gone mid-stream) is
 * ENVD_UNAVAILABLE. */
typedef enum envd_status {
    ENVD_OK = 0,
    ENVD_CANCELED = 1,
    ENVD_UNKNOWN = 2,
    ENVD_INVALID_ARGUMENT = 3,
    ENVD_DEADLINE_EXCEEDED = 4,
    ENVD_NOT_FOUND = 5,
    ENVD_ALREADY_EXISTS = 6,
    ENVD_PERMISSION_DENIED = 7,
    ENVD_RESOURCE_EXHAUSTED = 8,
    ENVD_FAILED_PRECONDITION = 9,
    ENVD_ABORTED = 10,
    ENVD_OUT_OF_RANGE = 11,
    ENVD_UNIMPLEMENTED = 12,
    ENVD_INTERNAL = 13,
    ENVD_UNAVAILABLE = 14,
    ENVD_DATA_LOSS = 15,
    ENVD_UNAUTHENTICATED = 16,

    ENVD_E_TRANSPORT = 100,    /* gRPC core or libcurl failed on this side */
    ENVD_E_PROTOCOL = 101,     /* the peer broke the protocol (bad frame, ...) */
    ENVD_E_COMMAND_EXIT = 102, /* a command ran and exited non-zero */
    ENVD_E_NO_SPACE = 103,     /* the sandbox is out of disk (HTTP 507) */
    /* Out of memory in the client. Where libenvd and the libraries under it
     * can report that, a call that cannot allocate ends with this and
     * leaves nothing behind. Limits: on the gRPC transport, gRPC core
     * aborts the process when malloc fails (gpr_malloc, gRPC 1.51
     * src/core/lib/gpr/alloc.cc); libenvd cannot change that. libcurl
     * 7.88 reports some of its own failures as other errors (its resolver
     * as "Could not resolve host", a header buffer as oversize headers),
     * and jansson 2.14's decoder may mistake one for a syntax error. */
    ENVD_E_NOMEM = 104,
    ENVD_E_BUSY = 105,         /* in-flight cap reached (fail-fast mode) */
    ENVD_E_SHUTDOWN = 106,     /* the runtime is shutting down */
    ENVD_E_TIMEOUT = 107,      /* a wait ran out of time; the operation goes on */
    ENVD_E_IDLE_TIMEOUT = 108, /* a stream went silent past the idle timeout */
    ENVD_E_IO = 109,           /* a local file or callback failed */
    ENVD_E_CONFIG = 110,       /* bad configuration */
    ENVD_E_USAGE = 111         /* called in a way the contract forbids */
} envd_status;

/* Static text for a status: "not_found", "command exited non-zero" ... */
ENVD_API const char *envd_strerror(envd_status status);

typedef enum envd_transport_kind {
    ENVD_TRANSPORT_NONE = 0, /* the error did not come from the wire */
    ENVD_TRANSPORT_GRPC = 1,
    ENVD_TRANSPORT_CONNECT = 2,
    ENVD_TRANSPORT_HTTP = 3, /* plain HTTP: /files */
    ENVD_TRANSPORT_AUTO = 4  /* config only: probe gRPC, fall back to Connect */
} envd_transport_kind;

/* ----------------------------------------------------------------- error */

/* An error: code, message, HTTP status where one exists, and the transport
 * that produced it. Errors returned through an `envd_error **` out-parameter
 * belong to the caller (free with envd_error_free). */
typedef struct envd_error envd_error;

ENVD_API envd_status envd_error_code(const envd_error *e);
/* Never NULL for a non-NULL e; valid as long as e. */
ENVD_API const char *envd_error_message(const envd_error *e);
/* The HTTP status of the response behind the error, or 0. */
ENVD_API int envd_error_http_status(const envd_error *e);
ENVD_API envd_transport_kind envd_error_transport(const envd_error *e);
/* For ENVD_E_COMMAND_EXIT: the exit code; otherwise 0. */
ENVD_API int envd_error_exit_code(const envd_error *e);
ENVD_API void envd_error_free(envd_error *e);

/* ---------------------------------------------------------------- config */

typedef struct envd_config envd_config;

/* A config holding the Go client's defaults: domain "domain.app", scheme
 * "http" (or $SCHEME), runtime port 49983, Authorization "Basic cm9vdDo="
 * (user root), request timeout 60 s, transport auto, keepalive 50 s, idle
 * timeout 110 s, workers = online CPUs, in-flight cap 4096 (blocking).
 * Caller frees with envd_config_free. NULL on out of memory. */
ENVD_API envd_config *envd_config_new(void);
ENVD_API envd_config *envd_config_dup(const envd_config *cfg);
ENVD_API void envd_config_free(envd_config *cfg);

/* The setters below are the only place options are checked (a config file
 * goes through them too). Each returns ENVD_OK; ENVD_INVALID_ARGUMENT for a
 * value out of its range, leaving the option as it was; ENVD_E_USAGE for a
 * NULL cfg or a NULL argument the setter needs; ENVD_E_NOMEM. None of them
 * substitutes a value silently. */

/* Why the last setter called on cfg failed, as "<argument>: <reason>"
 * (e.g. "port: must be between 1 and 65535 ..., got 70000"); "" when it
 * succeeded. Valid until the next setter call on cfg. For a NULL cfg, a
 * static text saying so. */
ENVD_API const char *envd_config_last_error(const envd_config *cfg);

/* "host[:port]" of the gateway or envd: a host name, an IPv4 address or an
 * IPv6 address in brackets ("[::1]:49983"), and a port 1..65535. Anything
 * else is refused: a URL ("http://..."; give those to
 * envd_config_set_sandbox_base_url), '/', '?', '#', '@', spaces, an empty
 * host, a bad port. NULL: ENVD_E_USAGE. */
ENVD_API envd_status envd_config_set_domain(envd_config *cfg, const char *domain);
/* "http" or "https"; NULL or "" restores "http". */
ENVD_API envd_status envd_config_set_scheme(envd_config *cfg, const char *scheme);
/* Sent as X-Access-Token when non-empty (so no CR, LF or other control
 * characters). NULL or "" unsets. */
ENVD_API envd_status envd_config_set_runtime_token(envd_config *cfg, const char *token);
/* Sent as e2b-sandbox-port. 1..65535; 0 or less means the default 49983 (as
 * the Go client); above 65535 is refused. */
ENVD_API envd_status envd_config_set_runtime_port(envd_config *cfg, int port);
/* Sent as X-API-Key when non-empty (a header value, as the token). */
ENVD_API envd_status envd_config_set_api_key(envd_config *cfg, const char *key);
/* The whole Authorization header value (no CR, LF or other control
 * characters); NULL or "" restores the default. A "Basic" value naming a
 * user makes that user the /files user too. */
ENVD_API envd_status envd_config_set_auth_header(envd_config *cfg, const char *value);
/* The Linux user for RPCs (Authorization: Basic base64("user:")) and for
 * /files (username=). Default "root". Replaces any auth header. Must be
 * non-empty, without ':', spaces or control characters; NULL: ENVD_E_USAGE. */
ENVD_API envd_status envd_config_set_user(envd_config *cfg, const char *user);
/* When set, used as is as the runtime URL instead of scheme://domain. Must
 * start with http:// or https:// followed by a host, without spaces. NULL
 * or "" unsets. */
ENVD_API envd_status envd_config_set_sandbox_base_url(envd_config *cfg, const char *url);
/* Adds or replaces one custom header (names ignore case), sent last: it
 * overrides the built-in ones (Authorization, X-Access-Token, ...). The
 * name must be an HTTP token, the value must hold no CR, LF or other
 * control characters (tab is allowed). Refused names:
 *   - Connect-Timeout-Ms: envd takes it as the lifetime of the process a
 *     Start creates and kills the process when it runs out; the library
 *     sends it only on Start, from envd_cmd_opts_set_timeout_ms.
 *   - Keepalive-Ping-Interval: envd crashes on 0 or less; it is sent on
 *     streams from envd_config_set_keepalive_s.
 *   - the headers the transports own: Content-Type, Content-Length, TE,
 *     Host, Connection, Transfer-Encoding, Upgrade, Keep-Alive,
 *     Proxy-Connection, and every grpc-* and connect-* name.
 * NULL name or value: ENVD_E_USAGE. */
ENVD_API envd_status envd_config_set_header(envd_config *cfg, const char *name,
                                            const char *value);
/* Adds or replaces n headers at once (the Go client's WithHeaders), each
 * checked as by envd_config_set_header. On an error the pairs before the
 * failing one are applied and none after it; envd_config_last_error names
 * it ("names[2]: ..."). */
ENVD_API envd_status envd_config_set_headers(envd_config *cfg, const char *const *names,
                                             const char *const *values, size_t n);
/* Unary calls and the start of a stream; >= 0, 0 = none. Default 60000. */
ENVD_API envd_status envd_config_set_request_timeout_ms(envd_config *cfg, int64_t ms);
/* ENVD_TRANSPORT_GRPC, _CONNECT or _AUTO. */
ENVD_API envd_status envd_config_set_transport(envd_config *cfg, envd_transport_kind kind);
/* Keepalive-Ping-Interval in seconds, 1..86400 (envd crashes on 0). */
ENVD_API envd_status envd_config_set_keepalive_s(envd_config *cfg, int seconds);
/* A stream with no message for this long is dead; >= 0, 0 = none. */
ENVD_API envd_status envd_config_set_idle_timeout_ms(envd_config *cfg, int64_t ms);
/* Speak cleartext HTTP/2 with prior knowledge (h2c) for Connect and /files
 * on http:// URLs, for gateways that accept only HTTP/2. Default off: stock
 * envd speaks HTTP/1.1 only. (gRPC is always HTTP/2.) Connect calls then
 * share multiplexed connections (libnghttp2; see
 * envd_config_set_connection_limits), and so do /files transfers, as
 * streams beside them; unless an http_proxy covers the host (no_proxy is
 * honoured as libcurl reads it), which libcurl then speaks to, with a
 * connection for each /files transfer. */
ENVD_API envd_status envd_config_set_h2c(envd_config *cfg, int enabled);
/* PEM bundle to trust for https instead of the system store. NULL or ""
 * unsets. */
ENVD_API envd_status envd_config_set_ca_file(envd_config *cfg, const char *path);
/* The envd version the sandbox runs, when the caller knows it (E2B's API
 * returns it on create as envdVersion): "0.5.1", "v0.6.3", "0.6.2-rc.1".
 * Calls that version cannot serve are then refused at start with
 * ENVD_UNIMPLEMENTED, naming the version they need and the one set,
 * instead of reaching envd and failing there or being ignored:
 *   stdin explicitly disabled (envd_cmd_opts_set_stdin 0)   0.3.0
 *   close stdin                                             0.5.2
 *   /files/compose (envd_files_compose)                     0.5.5
 *   upload metadata (envd_files_opts_set_metadata)          0.6.2
 *   recursive watch                                         0.1.4
 *   watch ENVD_WATCH_INCLUDE_ENTRY                          0.6.3
 *   watch ENVD_WATCH_ALLOW_NETWORK_MOUNTS                   0.6.4
 * An octet-stream upload (0.5.7) falls back to multipart instead, as the
 * E2B SDKs do. NULL or "": unknown (the default), nothing is checked. */
ENVD_API envd_status envd_config_set_envd_version(envd_config *cfg, const char *version);

/* Traffic tokens: the short-lived token a sandbox gateway that enforces
 * traffic auth wants in ENVD_TRAFFIC_TOKEN_HEADER on every data-plane
 * request (RPCs over gRPC and Connect, /files, /files/compose), as the Go
 * client's WithTrafficTokenProvider sends it.
 *
 * The provider gives a token and its expiry: on success *token is a string
 * it allocated with malloc (libenvd frees it; NULL or "" means "send no
 * header") and *expires_unix_ms the wall-clock expiry in Unix milliseconds
 * (0 = does not expire). On failure it returns a status other than ENVD_OK
 * and may set *message to a malloc'd explanation (libenvd frees it).
 *
 * Threads and timing. The provider runs on the runtime's job thread (the
 * one exec credential plugins use), never on the caller's thread or an I/O
 * thread, and never more than once at a time per client: calls that need
 * a token while a refresh runs wait for that refresh. It is called
 *   - when a call needs a token and the client has none, or only one that
 *     expires within its margin (1/20 of its validity, at most 1 s);
 *   - ahead of expiry, from a timer, so that a client in steady use never
 *     waits: half the validity ahead for tokens valid under 2 minutes,
 *     else 20% of it bounded to 60 s..300 s, minus up to 10% jitter (the
 *     Go client's manager: a fraction of the validity, bounded, minus
 *     jitter). A token nobody used since it came is not renewed early;
 *   - after a 401 from the gateway to any RPC (unary or stream) or a
 *     /files request: the token is marked stale and the next call gets a
 *     new one.
 * A failed refresh is retried after 1 s, doubling up to 30 s; meanwhile
 * the current token is used while it has not expired.
 *
 * Fail-closed. When no valid token can be had, the call is not sent: its
 * starter returns the provider's status (ENVD_UNAUTHENTICATED for a token
 * already expired when it came, ENVD_DEADLINE_EXCEEDED when the provider
 * did not answer within the request timeout), and the blocking forms'
 * *err says "traffic token provider failed: <message>". The provider must
 * not call libenvd's blocking functions. ud must stay valid until every
 * client made with this configuration is freed (envd_client_free waits
 * for a provider call in progress). */
#define ENVD_TRAFFIC_TOKEN_HEADER "e2b-traffic-access-token"
typedef envd_status (*envd_traffic_token_cb)(void *ud, char **token, int64_t *expires_unix_ms,
                                             char **message);
/* cb NULL removes the provider. Replaces a static token. */
ENVD_API envd_status envd_config_set_traffic_token_provider(envd_config *cfg,
                                                            envd_traffic_token_cb cb, void *ud);
/* The static form: this token on every data-plane request (no CR, LF or
 * other control characters). NULL or "" unsets. Replaces a provider. A
 * custom header of the same name is replaced by either form. */
ENVD_API envd_status envd_config_set_traffic_token(envd_config *cfg, const char *token);
/* Runtime options (read by envd_runtime_new). workers <= 0: one per online
 * CPU; at most 1024. The bound is there because each worker is a thread
 * with its own gRPC completion queue, and gRPC aborts the whole process
 * when it cannot create a thread: a count the system cannot honour must be
 * refused here, where it can still be an error. */
ENVD_API envd_status envd_config_set_workers(envd_config *cfg, int workers);
/* Most operations in flight per runtime, 1..1000000; past it a start call
 * blocks, or with fail_fast returns ENVD_E_BUSY. */
ENVD_API envd_status envd_config_set_max_inflight(envd_config *cfg, int max_inflight,
                                                  int fail_fast);
/* Attempts after the first, 0..10, default 3, for a call that nothing of
 * reached the sandbox: the connection was refused, a gateway answered 429
 * or 503 itself (gateway_not_ready, a rate limit), or the connection closed
 * before any response byte on an idempotent call (Stat, ListDir, List, a
 * /files read). Exponential back-off from 100 ms (to 5 s) with jitter, or
 * the reply's Retry-After (seconds or an HTTP date), all within the call's
 * request timeout. Never retried: a reply from envd, a 502 (a gateway's
 * sandbox not found / not running: ENVD_UNAVAILABLE naming the sandbox),
 * a stream that delivered a message, a client stream or an upload. */
ENVD_API envd_status envd_config_set_retries(envd_config *cfg, int retries);

/* ---- Limits ------------------------------------------------------------------
 * A sandbox runs untrusted code, and a gateway or proxy may answer in envd's
 * place, so what a server can make the client hold or wait for is bounded.
 * Each bound is a setting with a default; the fixed ones are listed too.
 *
 *   largest reply message     envd_config_set_max_message_bytes, default
 *                             16 MiB: one unary reply or one stream message
 *                             (a Connect envelope, a gRPC message after
 *                             decompression). Over it the call fails
 *                             (ENVD_E_PROTOCOL on Connect, ENVD_RESOURCE_
 *                             EXHAUSTED from gRPC).
 *   entries of a list reply   envd_config_set_max_list_entries, default
 *                             262,144: ListDir entries and List processes,
 *                             counted on the wire before anything is
 *                             decoded; over it the call fails with
 *                             ENVD_RESOURCE_EXHAUSTED naming the setting.
 *                             An entry can be 2 bytes on the wire and a few
 *                             hundred decoded, so the message bound alone
 *                             would let a 16 MiB reply take over 1 GiB. At
 *                             the default, the worst reply decodes to about
 *                             what the largest real listing that fits in
 *                             16 MiB does (~160,000 entries of ~100 bytes).
 *   slowest /files body       envd_config_set_files_min_rate, default 1 KiB
 *                             per 30 s: a response body that moves less than
 *                             that in a window fails with ENVD_E_IDLE_TIMEOUT
 *                             (the idle timeout alone never fires on a body
 *                             that trickles one byte at a time).
 *   error body kept           64 KiB of a non-2xx body (the message quotes at
 *                             most 512 printable bytes of it); the rest is
 *                             read and dropped.
 *   response headers          libcurl's bounds (a line of 100 KB, a block of
 *                             300 KB; over them: ENVD_E_PROTOCOL); gRPC
 *                             core's metadata bound (16 KiB).
 *   /files reply kept         a write's JSON reply 1 MiB; a read into memory
 *                             as the sink's own cap (Content-Length is a
 *                             claim, never an allocation).
 */
#define ENVD_DEFAULT_MAX_MESSAGE_BYTES ((int64_t)16 << 20)
#define ENVD_DEFAULT_MAX_LIST_ENTRIES ((int64_t)1 << 18)
#define ENVD_MAX_LIST_ENTRIES_LIMIT ((int64_t)1 << 30)
#define ENVD_DEFAULT_FILES_MIN_BYTES 1024
#define ENVD_DEFAULT_FILES_MIN_WINDOW_MS 30000
/* 1 KiB .. 1 GiB. */
ENVD_API envd_status envd_config_set_max_message_bytes(envd_config *cfg, int64_t bytes);
/* 1 .. ENVD_MAX_LIST_ENTRIES_LIMIT. */
ENVD_API envd_status envd_config_set_max_list_entries(envd_config *cfg, int64_t entries);
/* At least bytes (0 = no minimum) in every window_ms (100 .. 3600000) of a
 * /files response body, counted from the response headers on. */
ENVD_API envd_status envd_config_set_files_min_rate(envd_config *cfg, int64_t bytes,
                                                    int64_t window_ms);

/* ---- Connection pools (runtime options) ----------------------------------
 * Calls to one endpoint (scheme, host and port: a gateway carries thousands
 * of sandboxes on one) share the runtime's connections; sandbox routing is
 * per-call metadata, so a client owns no connection.
 *   streams_per_connection  HTTP/2 streams put on one connection before
 *                           another is opened (default 100, the limit E2B's
 *                           edge and most gateways advertise; a peer's lower
 *                           SETTINGS_MAX_CONCURRENT_STREAMS wins where the
 *                           transport can read it). A running command, a
 *                           watch or an input stream holds its stream for its
 *                           whole life.
 *   max_connections         connections per endpoint, HTTP/2 and HTTP/1.1
 *                           alike (default 200). Past it requests queue (the
 *                           runtime's in-flight cap bounds the queue) and
 *                           their request timeout runs while they wait.
 * Connect and /files (libcurl): over HTTP/1.1 a connection carries one call
 * at a time, so max_connections bounds the calls on the wire (2,000 runs at
 * once no longer open 2,000 connections). In the queue run the request
 * timeout, or for an upload (whose reply clock starts once its body is
 * sent) its envd_files_opts_set_timeout_ms deadline and idle timeout; one
 * that fires there says "without a connection". A cancelled request leaves
 * the queue at once. Over HTTPS, libcurl carries Connect calls to a
 * host:port until it has seen that server choose h2 by ALPN; from then on
 * they run on the nghttp2 engine below, as h2c does, over TLS (OpenSSL:
 * the certificate verified against envd_config_set_ca_file's file or the
 * system's roots, and the host name or address checked; SNI). A server
 * that speaks HTTP/1.1 over TLS stays with libcurl; should one known as h2
 * later turn h2 down, the calls already waiting for it fail unsent
 * (UNAVAILABLE, "did not choose HTTP/2 over TLS") and the next go to
 * libcurl again. Through a proxy (https_proxy, not exempt by no_proxy)
 * everything stays with libcurl. While libcurl carries HTTPS with ALPN h2,
 * a call that finds every connection's streams in use opens another
 * connection, up to max_connections; the runtime sets up one new
 * connection at a time per origin, and a burst's calls wait for it rather
 * than each opening its own (250 streams at once take 3 connections;
 * libcurl alone took 151). /files transfers follow the endpoint's Connect
 * calls: on the nghttp2 engine where those are (streams on the same
 * connections, the response decoded from gzip or deflate there), on
 * libcurl elsewhere. Through a proxy, /files over cleartext h2c costs a
 * connection per transfer (libcurl before 8.0 cannot reuse one, curl
 * issue #10634), within max_connections.
 * Connect and /files over h2c, and over HTTPS once known as h2 (libnghttp2): a
 * connection carries up to the smaller of
 * streams_per_connection and the server's SETTINGS_MAX_CONCURRENT_STREAMS,
 * read from its SETTINGS before any call is sent; a call that finds every
 * connection full opens another, up to max_connections; past that calls
 * wait in order, the request timeout running ("without a stream"). A
 * stream the server refused unprocessed (REFUSED_STREAM, past a GOAWAY) is
 * sent again on another connection. The host name is resolved once, on the
 * runtime's I/O thread, and again after a failed connect; a connect that
 * fails moves on to the name's next address (up to 4).
 * gRPC: one channel per connection; gRPC core does not expose the peer's
 * SETTINGS_MAX_CONCURRENT_STREAMS, so streams_per_connection is what is
 * counted (a peer allowing fewer makes core queue the excess on that
 * connection), and unary calls share the same connections.
 * Idle connections past the first are closed after a while (gRPC: 60 s);
 * the nghttp2 engine closes every connection idle for 60 s. */
#define ENVD_DEFAULT_STREAMS_PER_CONNECTION 100
#define ENVD_DEFAULT_MAX_CONNECTIONS 200
/* streams_per_connection 1..10000, max_connections 1..100000. */
ENVD_API envd_status envd_config_set_connection_limits(envd_config *cfg, int streams_per_connection,
                                                       int max_connections);

/* --------------------------------------------------------------- runtime */

typedef struct envd_runtime envd_runtime;

/* Starts the engine threads. cfg may be NULL (defaults); only the runtime
 * options (workers, in-flight cap) are read. Caller frees with
 * envd_runtime_free. ENVD_E_CONFIG for more workers than the setter allows,
 * ENVD_E_NOMEM when memory or a thread cannot be had; either way nothing is
 * left running or allocated and *out is NULL.
 * Connect and /files calls honour the proxy environment as libcurl reads it
 * (http_proxy, https_proxy / HTTPS_PROXY, all_proxy / ALL_PROXY, no_proxy /
 * NO_PROXY), read once here: changes made after envd_runtime_new are not
 * seen by this runtime. */
ENVD_API envd_status envd_runtime_new(const envd_config *cfg, envd_runtime **out);
/* Cancels what is in flight, joins the threads. On an engine thread (a
 * thread of any runtime, or inside any callback) it frees nothing and
 * returns ENVD_E_USAGE: joining the thread it runs on would never return.
 * ENVD_OK otherwise (also for NULL). */
ENVD_API envd_status envd_runtime_free(envd_runtime *rt);

/* ---------------------------------------------------------------- future */

typedef struct envd_future envd_future;
typedef void (*envd_future_cb)(envd_future *f, void *ud);

/* Waiting on an engine thread: the waits below, envd_runtime_free and every
 * blocking (non-_async) call return ENVD_E_USAGE at once when called from a
 * thread the runtime started (gRPC workers, the curl I/O thread, the timer
 * thread) or from inside a completion callback on any thread, because what
 * they would wait for may need that thread. Use envd_future_on_complete
 * there instead, or hand the work to a thread of your own. */

/* Waits until f completes or timeout_ms passes (< 0: forever). Returns ENVD_OK
 * once complete (whatever the outcome) or ENVD_E_TIMEOUT. Like every wait
 * below (wait_any, wait_all, envd_future_get), it returns only after f's
 * completion callback, if any, has returned. */
ENVD_API envd_status envd_future_wait(envd_future *f, int64_t timeout_ms);
/* Waits for the first of n futures; *index gets its position. */
ENVD_API envd_status envd_future_wait_any(envd_future *const *fs, size_t n, int64_t timeout_ms,
                                          size_t *index);
/* Waits until all n futures completed. */
ENVD_API envd_status envd_future_wait_all(envd_future *const *fs, size_t n, int64_t timeout_ms);
/* 1 once the outcome is set (its completion callback may still be
 * running), else 0. Never waits. */
ENVD_API int envd_future_done(const envd_future *f);
/* The outcome once done: ENVD_OK or the error's code. */
ENVD_API envd_status envd_future_status(const envd_future *f);
/* The error once done, or NULL. Valid until the future is freed. */
ENVD_API const envd_error *envd_future_error(const envd_future *f);
/* Moves the error out of the future (caller frees it); the future keeps
 * none afterwards (envd_future_error answers NULL) but envd_future_status
 * still reports the code. NULL while pending or when there was none. */
ENVD_API envd_error *envd_future_take_error(envd_future *f);
/* Waits up to timeout_ms (< 0: forever) and returns the outcome: ENVD_OK or
 * the error's code, with the error moved into *err (caller frees; may be
 * NULL to drop it). ENVD_E_TIMEOUT, *err NULL, if f is still pending: get
 * again later. The result stays in f for its typed accessor. This is what
 * every blocking function does with the future of its _async form, except
 * that the blocking form also moves the result out and frees the future.
 *
 * Blocking forms share one contract: *out and *err are cleared first; *out
 * is set only on ENVD_OK (and on ENVD_E_COMMAND_EXIT, where the command's
 * result is kept beside the error, as the Go client returns both); on any
 * error *err says what failed, naming the function. */
ENVD_API envd_status envd_future_get(envd_future *f, int64_t timeout_ms, envd_error **err);
/* Runs cb exactly once when f completes, on the completing thread; if f is
 * already complete, runs it now on this thread. One callback per future. */
ENVD_API envd_status envd_future_on_complete(envd_future *f, envd_future_cb cb, void *ud);
/* Asks the operation to stop; it completes with ENVD_CANCELED unless it
 * completed first. A no-op after completion. */
ENVD_API void envd_future_cancel(envd_future *f);
/* Releases f. A pending operation is cancelled; its callback still runs
 * (with ENVD_CANCELED) but must not touch f after... it receives f only for
 * reading the status. */
ENVD_API void envd_future_free(envd_future *f);


/* ---------------------------------------------------------------- client */

typedef struct envd_client envd_client;

/* A client for one sandbox. sandbox_id is sent as e2b-sandbox-id (may be
 * NULL or "" for a direct envd). cfg may be NULL (defaults); it is copied.
 * Caller frees with envd_client_free, before the runtime. */
ENVD_API envd_status envd_client_new(envd_runtime *rt, const char *sandbox_id,
                                     const envd_config *cfg, envd_client **out,
                                     envd_error **err);
ENVD_API void envd_client_free(envd_client *c);
/* <scheme>://<domain>, or the sandbox base URL when set, as the Go client's
 * SandboxURL. Valid as long as the client. */
ENVD_API const char *envd_client_runtime_url(const envd_client *c);
/* The RPC transport calls use: GRPC or CONNECT once known; AUTO while the
 * endpoint has not been probed yet. */
ENVD_API envd_transport_kind envd_client_transport(const envd_client *c);

/* -------------------------------------------------------------- commands */

/* Processes in the sandbox: the Go client's Commands and CommandHandle
 * (run, start, connect, list, kill, send_stdin; handle wait, disconnect,
 * kill), plus argv starts, tags, signals, stdin closing, ordered input
 * streams, PTY sessions and re-attaching.
 *
 * Timeouts, never confused:
 *   request timeout  the start of a stream, until envd's first event (the
 *                    client's, or envd_cmd_opts_set_request_timeout_ms);
 *                    ENVD_DEADLINE_EXCEEDED. The process is unaffected.
 *   process timeout  opt-in (envd_cmd_opts_set_timeout_ms): envd kills the
 *                    process when it fires. The only thing that ever sends
 *                    Connect-Timeout-Ms, and only on Start.
 *   idle timeout     a stream that receives nothing, not even envd's
 *                    keepalive (Keepalive-Ping-Interval, the client's
 *                    keepalive_s), for this long is dead:
 *                    ENVD_E_IDLE_TIMEOUT. The process is unaffected.
 *   wait timeout     envd_handle_wait / envd_future_wait; the wait ends,
 *                    the operation goes on (ENVD_E_TIMEOUT).
 *
 * Cancel means stop: cancelling a run or start future, or freeing the
 * runtime while a run is in flight, also SIGKILLs the process it started
 * (unless envd_cmd_opts_set_detach). A cancel that comes before envd named
 * the pid takes effect at the start event (the future completes then, with
 * ENVD_CANCELED); envd_runtime_free kills the runs whose pid is known and
 * waits up to 5 s for the kills to be answered. A start future's handle,
 * once delivered, is the caller's: freeing the handle only disconnects.
 *
 * Output produced while no stream is attached to a process is lost (envd
 * does not replay it). A stream holds one in-flight slot of the runtime for
 * its whole life. */

/* Output callback: raw bytes (not NUL-terminated, not decoded), valid only
 * during the call. Runs on an engine thread, in order for one stream; must
 * not block for long (a slow callback slows the process's output down:
 * envd stops reading its pipes) and must not call the synchronous API. */
typedef void (*envd_output_cb)(void *ud, const uint8_t *data, size_t len);

/* Signals envd accepts (SendSignal). Other values are passed through and
 * answered by envd (today: ENVD_UNIMPLEMENTED). */
typedef enum envd_signal { ENVD_SIGNAL_SIGKILL = 9, ENVD_SIGNAL_SIGTERM = 15 } envd_signal;

/* Which process a call addresses: by pid, or by tag when tag is non-NULL.
 * A pid is exact. A tag is a hint: envd walks its processes in random
 * order, skipping untagged ones, and stops at the first one with another
 * tag, so while any differently tagged process is alive a tag lookup can
 * answer ENVD_NOT_FOUND spuriously, and with several processes sharing the
 * tag any of them may be picked. Use a tag only when it is the one tag
 * alive in the sandbox; otherwise look the pid up (envd_commands_list)
 * and use ENVD_PID. */
typedef struct envd_proc {
    uint32_t pid;
    const char *tag;
} envd_proc;
#define ENVD_PID(p) (&(const envd_proc){(uint32_t)(p), NULL})
#define ENVD_TAG(t) (&(const envd_proc){0, (t)})

typedef struct envd_cmd_opts envd_cmd_opts;

/* Options for run/start/connect. Caller frees with envd_cmd_opts_free; the
 * options are copied by the call that takes them (the callbacks' ud
 * pointers must stay valid as long as the stream). Setters answer
 * ENVD_E_USAGE for a NULL o and ENVD_INVALID_ARGUMENT for a bad value. */
ENVD_API envd_cmd_opts *envd_cmd_opts_new(void);
ENVD_API void envd_cmd_opts_free(envd_cmd_opts *o);
ENVD_API envd_status envd_cmd_opts_set_env(envd_cmd_opts *o, const char *name, const char *value);
ENVD_API envd_status envd_cmd_opts_set_cwd(envd_cmd_opts *o, const char *cwd);
/* Pipe stdin (default off: /dev/null, encoded explicitly as envd needs).
 * With it on, a program reading stdin waits for input until
 * envd_commands_close_stdin. */
ENVD_API envd_status envd_cmd_opts_set_stdin(envd_cmd_opts *o, int enabled);
/* A free-form tag (not unique) for List and for ENVD_TAG references (see
 * envd_proc for how envd resolves a tag). Starting a process with a tag
 * drops envd's kept exit of every finished process with that tag. */
ENVD_API envd_status envd_cmd_opts_set_tag(envd_cmd_opts *o, const char *tag);
/* Run as this user instead of the client's (Authorization: Basic
 * base64("user:"), as envd reads it). No ':' allowed. */
ENVD_API envd_status envd_cmd_opts_set_user(envd_cmd_opts *o, const char *user);
/* Process timeout: envd SIGKILLs the process after ms (sent as
 * Connect-Timeout-Ms on Start, never on anything else). 0 (default) = none.
 * When it fires the outcome is the same over either transport: the
 * process was killed, so ENVD_E_COMMAND_EXIT with exit code -1 (in the
 * error and in the result, which keeps the output so far), the message
 * starting "process timeout of N ms reached". */
ENVD_API envd_status envd_cmd_opts_set_timeout_ms(envd_cmd_opts *o, int64_t ms);
/* Request timeout for this command's stream start (0 = none); default the
 * client's. */
ENVD_API envd_status envd_cmd_opts_set_request_timeout_ms(envd_cmd_opts *o, int64_t ms);
/* Idle timeout for this command's stream (0 = none); default the client's.
 * A value at or under the keepalive interval would end every quiet stream
 * and is raised to 2 intervals + 10 s. */
ENVD_API envd_status envd_cmd_opts_set_idle_timeout_ms(envd_cmd_opts *o, int64_t ms);
/* Start with a pseudo-terminal of cols x rows (0, 0 = none, the default).
 * stdout and stderr are then merged by the terminal: output goes to the
 * on_stdout callback and the result's stdout. For connect, any size marks
 * the handle as a PTY handle (its input goes to the terminal); the size is
 * not sent. */
ENVD_API envd_status envd_cmd_opts_set_pty(envd_cmd_opts *o, uint32_t cols, uint32_t rows);
/* Run argv[0] with argv[1..] (NULL-terminated, copied) directly, without a
 * shell: no quoting, no login profile. The cmd argument of run/start must
 * then be NULL. NULL clears it. */
ENVD_API envd_status envd_cmd_opts_set_argv(envd_cmd_opts *o, const char *const *argv);
/* Non-zero: cancelling the run/start future or freeing the runtime leaves
 * the process running (default 0: it is killed, "cancel means stop"). */
ENVD_API envd_status envd_cmd_opts_set_detach(envd_cmd_opts *o, int detach);
ENVD_API envd_status envd_cmd_opts_on_stdout(envd_cmd_opts *o, envd_output_cb cb, void *ud);
ENVD_API envd_status envd_cmd_opts_on_stderr(envd_cmd_opts *o, envd_output_cb cb, void *ud);
/* Keep at most this many bytes of stdout and of stderr in the result
 * (callbacks still see everything). Default 64 MiB each; 0 = keep none,
 * so memory stays flat whatever the process prints. */
ENVD_API envd_status envd_cmd_opts_set_max_output(envd_cmd_opts *o, size_t bytes);

/* What a command left: read-only, freed with envd_command_result_free. */
typedef struct envd_command_result {
    const char *stdout_data; /* NUL-terminated ("" when none); may hold NULs */
    size_t stdout_len;
    const char *stderr_data;
    size_t stderr_len;
    int exit_code;     /* -1 when a signal killed the process */
    const char *error; /* envd's text for a non-zero exit ("exit status 1"), or "" */
    int truncated;     /* output beyond the max-output cap was dropped */
} envd_command_result;
ENVD_API void envd_command_result_free(envd_command_result *r);

/* Runs a command and waits for it: `/bin/bash -l -c cmd`, or the argv of
 * o (cmd NULL). On a non-zero exit both *res and *err are set
 * (ENVD_E_COMMAND_EXIT, whose message is the Go client's "command exited
 * with code N: <error>\nstderr: <stderr>" and whose envd_error_exit_code
 * is N), as the Go client returns both. Caller frees *res and *err. */
ENVD_API envd_status envd_commands_run(envd_client *c, const char *cmd, const envd_cmd_opts *o,
                                       envd_command_result **res, envd_error **err);
/* The future's result: envd_future_command_result; envd_future_pid once
 * the process started. Cancelling or freeing it before it completes stops
 * the stream and kills the process (unless detached). */
ENVD_API envd_status envd_commands_run_async(envd_client *c, const char *cmd,
                                             const envd_cmd_opts *o, envd_future **out);
/* The result of a run or handle future, also when it failed with
 * ENVD_E_COMMAND_EXIT (a non-zero exit, a process timeout). Valid until
 * the future is freed. */
ENVD_API const envd_command_result *envd_future_command_result(const envd_future *f);
/* The pid of a run or start future's process once envd reported it; 0
 * before (and for other futures). */
ENVD_API uint32_t envd_future_pid(const envd_future *f);

typedef struct envd_handle envd_handle;

/* Starts a command and returns once envd reported its pid (the request
 * timeout bounds this): cmd or o's argv as for run; with cmd NULL, no argv
 * and a pty set in o, an interactive login shell (`/bin/bash -i -l`,
 * TERM=xterm-256color, LANG=LC_ALL=C.UTF-8; o's envs override them). Output
 * goes to the callbacks in o and into the result of envd_handle_wait.
 * Errors: the call's ("failed to start command: ..."), a stream that ends
 * without a start event, or one that starts with another event
 * (ENVD_E_PROTOCOL). Caller frees *out with envd_handle_free. */
ENVD_API envd_status envd_commands_start(envd_client *c, const char *cmd, const envd_cmd_opts *o,
                                         envd_handle **out, envd_error **err);
/* The future completes at the start event; its result:
 * envd_future_take_handle. Cancelled before that, the process is killed
 * (unless detached). */
ENVD_API envd_status envd_commands_start_async(envd_client *c, const char *cmd,
                                               const envd_cmd_opts *o, envd_future **out);
/* Attaches to a process: output from now on, then its end. A process that
 * ended less than 30 s ago (envd >= 0.6.12) still gives its exit code; an
 * unknown one gives ENVD_NOT_FOUND. The handle's pid is the one envd's
 * first event names. o: callbacks, user, max output, request and idle
 * timeouts, pty (a PTY handle); a process timeout is never sent here. */
ENVD_API envd_status envd_commands_connect(envd_client *c, const envd_proc *p,
                                           const envd_cmd_opts *o, envd_handle **out,
                                           envd_error **err);
ENVD_API envd_status envd_commands_connect_async(envd_client *c, const envd_proc *p,
                                                 const envd_cmd_opts *o, envd_future **out);
/* Moves the handle out of a start/connect/reconnect future; caller frees
 * it. Freeing the future without taking it frees the handle. */
ENVD_API envd_handle *envd_future_take_handle(envd_future *f);

ENVD_API uint32_t envd_handle_pid(const envd_handle *h);
/* Waits for the end of the process (timeout_ms < 0: forever; ENVD_E_TIMEOUT
 * leaves the handle usable). Same result/error rules as envd_commands_run;
 * a stream that broke gives the transport's error ("stream error: ...",
 * ENVD_E_IDLE_TIMEOUT, ...) and the handle can re-attach with
 * envd_handle_reconnect. The result can be taken once. */
ENVD_API envd_status envd_handle_wait(envd_handle *h, int64_t timeout_ms,
                                      envd_command_result **res, envd_error **err);
/* A future that completes when the stream ends (for wait-any/wait-all over
 * many handles; its result: envd_future_command_result). Owned by the
 * handle: do not free it; valid until the handle is freed. */
ENVD_API envd_future *envd_handle_future(envd_handle *h);
/* Stops receiving output: no callback runs once this returns, except one
 * already running; the process keeps running. A pending wait ends with
 * ENVD_CANCELED. */
ENVD_API void envd_handle_disconnect(envd_handle *h);
/* SIGKILL. Returns 1 if killed, 0 if it was already gone (or on error). */
ENVD_API int envd_handle_kill(envd_handle *h);
/* Input to the process: its stdin (started with stdin on), or its terminal
 * for a PTY handle (o with a pty). */
ENVD_API envd_status envd_handle_send_input(envd_handle *h, const void *data, size_t len,
                                            envd_error **err);
/* EOF on the process's stdin (envd >= 0.5.2; a PTY takes Ctrl-D instead). */
ENVD_API envd_status envd_handle_close_stdin(envd_handle *h, envd_error **err);
/* Resizes a PTY handle's terminal. */
ENVD_API envd_status envd_handle_resize(envd_handle *h, uint32_t cols, uint32_t rows,
                                        envd_error **err);
/* A new handle on the same process (Connect by pid), with the callbacks,
 * user, max output and timeouts h was made with: for a handle whose stream
 * broke or was disconnected. The old handle stays valid; free both. */
ENVD_API envd_status envd_handle_reconnect(envd_handle *h, envd_handle **out, envd_error **err);
ENVD_API envd_status envd_handle_reconnect_async(envd_handle *h, envd_future **out);
/* Disconnects if needed and frees. */
ENVD_API void envd_handle_free(envd_handle *h);

/* Any signal; *sent = 0 when envd does not know the process (no error), as
 * the Go client. SIGTERM and SIGKILL also end the process's stream even if
 * children keep its output open. The future's result: envd_future_bool. */
ENVD_API envd_status envd_commands_signal(envd_client *c, const envd_proc *p, envd_signal sig,
                                          int *sent, envd_error **err);
ENVD_API envd_status envd_commands_signal_async(envd_client *c, const envd_proc *p,
                                                envd_signal sig, envd_future **out);
/* SIGKILL (the Go client's Kill): *killed = 0 when envd does not know the
 * process. Async: envd_commands_signal_async with ENVD_SIGNAL_SIGKILL. */
ENVD_API envd_status envd_commands_kill(envd_client *c, const envd_proc *p, int *killed,
                                        envd_error **err);

/* Where input goes: the process's stdin, or its terminal (a PTY process). */
typedef enum envd_input { ENVD_INPUT_STDIN = 0, ENVD_INPUT_PTY = 1 } envd_input;

/* Writes to the stdin (or terminal) of a process (SendInput; data is
 * copied; the Go client's SendStdin). Calls are unordered relative to each
 * other when they overlap: for ordered input use an input stream. */
ENVD_API envd_status envd_commands_send_input(envd_client *c, const envd_proc *p, envd_input kind,
                                              const void *data, size_t len, envd_error **err);
ENVD_API envd_status envd_commands_send_input_async(envd_client *c, const envd_proc *p,
                                                    envd_input kind, const void *data,
                                                    size_t len, envd_future **out);
/* EOF on the process's stdin (CloseStdin, envd >= 0.5.2). Idempotent. */
ENVD_API envd_status envd_commands_close_stdin(envd_client *c, const envd_proc *p,
                                               envd_error **err);
ENVD_API envd_status envd_commands_close_stdin_async(envd_client *c, const envd_proc *p,
                                                     envd_future **out);
/* Resizes the terminal of a PTY process (Update). */
ENVD_API envd_status envd_commands_resize(envd_client *c, const envd_proc *p, uint32_t cols,
                                          uint32_t rows, envd_error **err);
ENVD_API envd_status envd_commands_resize_async(envd_client *c, const envd_proc *p, uint32_t cols,
                                                uint32_t rows, envd_future **out);

/* Ordered input over one StreamInput call: writes reach the process in
 * the order they were made. envd answers once the input ends, so a problem
 * (an unknown pid, stdin not enabled) shows up in a later write or in
 * envd_input_stream_close. Writes are queued in memory until sent. While
 * open, the stream sends a keepalive every keepalive interval. */
typedef struct envd_input_stream envd_input_stream;

/* Opens input to a process: its stdin, or its terminal. Caller frees *out
 * with envd_input_stream_free. */
ENVD_API envd_status envd_commands_open_input(envd_client *c, const envd_proc *p, envd_input kind,
                                              envd_input_stream **out);
/* Queues data (copied). Fails with the stream's error (in *err) once it is
 * over, and with ENVD_E_USAGE after envd_input_stream_end. */
ENVD_API envd_status envd_input_stream_write(envd_input_stream *s, const void *data, size_t len,
                                             envd_error **err);
/* No more input; returns at once. envd_input_stream_future tells the
 * outcome. */
ENVD_API envd_status envd_input_stream_end(envd_input_stream *s);
/* Ends the input and waits for envd's answer: ENVD_OK once all of it was
 * delivered. */
ENVD_API envd_status envd_input_stream_close(envd_input_stream *s, envd_error **err);
/* Completes with the stream's outcome. Owned by the stream: do not free it;
 * valid until the stream is freed. */
ENVD_API envd_future *envd_input_stream_future(envd_input_stream *s);
/* Frees s. Input not ended is cut off (envd may have applied part of it);
 * ended input completes on its own. */
ENVD_API void envd_input_stream_free(envd_input_stream *s);

/* One live process as List reports it; strings valid as long as the list. */
typedef struct envd_process_info {
    uint32_t pid;
    const char *tag; /* "" when none */
    const char *cmd;
    const char *const *args;
    size_t n_args;
    const envd_kv *envs; /* given at start (not the inherited ones) */
    size_t n_envs;
    const char *cwd; /* given at start, "" when none was */
} envd_process_info;
typedef struct envd_process_list {
    size_t count;
    const envd_process_info *items;
} envd_process_list;
/* The live processes (including other clients' and tagged ones, and ones
 * that have exited while something they started still holds their output),
 * in no particular order. Caller frees *out with envd_process_list_free. */
ENVD_API envd_status envd_commands_list(envd_client *c, envd_process_list **out,
                                        envd_error **err);
/* The future's result: envd_future_process_list. */
ENVD_API envd_status envd_commands_list_async(envd_client *c, envd_future **out);
/* The list of a list future; valid until the future is freed. */
ENVD_API const envd_process_list *envd_future_process_list(const envd_future *f);
ENVD_API void envd_process_list_free(envd_process_list *l);

/* ------------------------------------------------------------ filesystem */

typedef enum envd_file_type {
    ENVD_FILE_TYPE_UNKNOWN = 0,
    ENVD_FILE_TYPE_FILE = 1,
    ENVD_FILE_TYPE_DIRECTORY = 2,
    ENVD_FILE_TYPE_SYMLINK = 3
} envd_file_type;

/* One file's metadata, a plain read-only struct. Strings are valid as long
 * as the entry. */
typedef struct envd_entry_info {
    const char *name;
    envd_file_type type;
    const char *path;
    int64_t size;
    uint32_t mode;           /* permission bits */
    const char *permissions; /* "-rw-r--r--" */
    const char *owner;
    const char *group;
    int64_t modified_sec;    /* Unix time; 0 when unknown */
    int32_t modified_nsec;
    const char *symlink_target; /* NULL when not a symlink */
    /* File metadata (envd >= 0.6.2): the user.e2b.* extended attributes
     * that X-Metadata-* headers set on upload, prefix stripped, sorted by
     * name. NULL and 0 when there is none. */
    const envd_kv *metadata;
    size_t n_metadata;
} envd_entry_info;

ENVD_API void envd_entry_info_free(envd_entry_info *e);

/* Stat. Caller frees *out with envd_entry_info_free. */
ENVD_API envd_status envd_fs_get_info(envd_client *c, const char *path, envd_entry_info **out,
                                      envd_error **err);
ENVD_API envd_status envd_fs_get_info_async(envd_client *c, const char *path,
                                            envd_future **out);
/* The entry of a get_info future; valid until the future is freed. */
ENVD_API const envd_entry_info *envd_future_entry(const envd_future *f);
/* *exists = 0 on not_found (no error). */
ENVD_API envd_status envd_fs_exists(envd_client *c, const char *path, int *exists,
                                    envd_error **err);
/* The future's result: envd_future_bool (1 exists, 0 not found). */
ENVD_API envd_status envd_fs_exists_async(envd_client *c, const char *path, envd_future **out);
/* The answer of a boolean future (exists, make_dir, kill): 1 or 0 once it
 * succeeded; -1 while it is pending, when it failed, and for NULL. */
ENVD_API int envd_future_bool(const envd_future *f);

/* The filesystem RPCs run as the client's user (envd_config_set_user; the
 * Go client's root by default): it decides how relative and ~ paths resolve
 * and who owns what MakeDir and Move create. For another user, make another
 * client from a config with that user; clients are cheap and share the
 * runtime's connections. */

/* A directory listing: count entries in items[]. */
typedef struct envd_entry_list {
    size_t count;
    const envd_entry_info *items;
} envd_entry_list;

/* ListDir: the entries up to `depth` levels below path (depth 0 means 1, the
 * Go client's default), in envd's order: lexical, depth first, parents
 * before children; path itself is not included. Entries of unknown type
 * (sockets, devices, broken symlinks) are dropped, as the Go client does.
 * Caller frees *out with envd_entry_list_free. */
ENVD_API envd_status envd_fs_list(envd_client *c, const char *path, uint32_t depth,
                                  envd_entry_list **out, envd_error **err);
ENVD_API envd_status envd_fs_list_async(envd_client *c, const char *path, uint32_t depth,
                                        envd_future **out);
/* The list of a list future; valid until the future is freed. */
ENVD_API const envd_entry_list *envd_future_entry_list(const envd_future *f);
ENVD_API void envd_entry_list_free(envd_entry_list *l);

/* MakeDir, with parents (mkdir -p). *created = 0 (and ENVD_OK) when the
 * directory already existed; a path that exists as a file is
 * ENVD_INVALID_ARGUMENT. created may be NULL. */
ENVD_API envd_status envd_fs_make_dir(envd_client *c, const char *path, int *created,
                                      envd_error **err);
/* The future's result: envd_future_bool (1 created, 0 already there). */
ENVD_API envd_status envd_fs_make_dir_async(envd_client *c, const char *path, envd_future **out);

/* Move: rename(2), so an existing destination file is replaced; missing
 * parents of the destination are created. *out (may be NULL) gets the
 * destination's entry; caller frees it with envd_entry_info_free. */
ENVD_API envd_status envd_fs_rename(envd_client *c, const char *old_path, const char *new_path,
                                    envd_entry_info **out, envd_error **err);
/* The future's result: envd_future_entry. */
ENVD_API envd_status envd_fs_rename_async(envd_client *c, const char *old_path,
                                          const char *new_path, envd_future **out);

/* Remove, recursively. A path that does not exist is not an error (envd's
 * os.RemoveAll). */
ENVD_API envd_status envd_fs_remove(envd_client *c, const char *path, envd_error **err);
ENVD_API envd_status envd_fs_remove_async(envd_client *c, const char *path, envd_future **out);

/* ---- watching a directory */

typedef enum envd_fs_event_type {
    ENVD_FS_EVENT_UNKNOWN = 0,
    ENVD_FS_EVENT_CREATE = 1,
    ENVD_FS_EVENT_WRITE = 2,
    ENVD_FS_EVENT_REMOVE = 3,
    ENVD_FS_EVENT_RENAME = 4, /* the old name; the new one comes as CREATE */
    ENVD_FS_EVENT_CHMOD = 5
} envd_fs_event_type;

/* One change under a watched directory. name is relative to it
 * ("sub/file.txt" when recursive). entry is set only with
 * ENVD_WATCH_INCLUDE_ENTRY, for create, write and chmod, when the file could
 * still be stat-ed (envd >= 0.6.3). */
typedef struct envd_fs_event {
    envd_fs_event_type type;
    const char *name;
    const envd_entry_info *entry; /* may be NULL */
} envd_fs_event;

/* Flags for envd_fs_watch_dir and envd_fs_watcher_create. */
#define ENVD_WATCH_RECURSIVE 1u             /* the whole subtree (envd >= 0.1.4) */
#define ENVD_WATCH_INCLUDE_ENTRY 2u         /* attach EntryInfo (envd >= 0.6.3) */
#define ENVD_WATCH_ALLOW_NETWORK_MOUNTS 4u  /* NFS, FUSE ... (envd >= 0.6.4) */

/* Called once per event, in envd's order, on an engine thread; ev and
 * everything it points to are valid only during the call. */
typedef void (*envd_fs_event_cb)(void *ud, const envd_fs_event *ev);

typedef struct envd_watch envd_watch;

/* WatchDir: a stream of events for path (a directory), delivered to cb.
 * Returns once envd confirmed the watch (its start event), so every change
 * made after the return is reported. The request timeout bounds the wait
 * for that confirmation; afterwards the stream has no deadline, only the
 * client's idle timeout (envd sends keepalives). Caller stops it with
 * envd_watch_stop and frees it with envd_watch_free. */
ENVD_API envd_status envd_fs_watch_dir(envd_client *c, const char *path, unsigned flags,
                                       envd_fs_event_cb cb, void *ud, envd_watch **out,
                                       envd_error **err);
/* The future completes at the start event (or the failure before it); its
 * result: envd_future_take_watch. */
ENVD_API envd_status envd_fs_watch_dir_async(envd_client *c, const char *path, unsigned flags,
                                             envd_fs_event_cb cb, void *ud, envd_future **out);
/* Moves the watch out of a watch_dir future; caller frees it. */
ENVD_API envd_watch *envd_future_take_watch(envd_future *f);
/* Ends the stream. Once it returns, cb is not running and will not run
 * again, except when called from cb itself (then cb is not called again
 * after it returns). Idempotent. */
ENVD_API void envd_watch_stop(envd_watch *w);
/* A future that completes when the stream ends: ENVD_OK after
 * envd_watch_stop, otherwise the error that ended it (envd's, the idle
 * timeout, a lost connection). Owned by the watch: do not free it; valid
 * until the watch is freed. */
ENVD_API envd_future *envd_watch_future(envd_watch *w);
/* Stops if needed, then frees. Must not be called from cb. */
ENVD_API void envd_watch_free(envd_watch *w);

/* The polling variant (CreateWatcher / GetWatcherEvents / RemoveWatcher),
 * as the Python SDK's synchronous watch_dir: the watcher lives in envd, not
 * in a connection, and buffers events until they are fetched (without a
 * bound: fetch regularly, remove when done). */

/* *id gets the watcher id; caller frees it with free(). */
ENVD_API envd_status envd_fs_watcher_create(envd_client *c, const char *path, unsigned flags,
                                            char **id, envd_error **err);
/* The future's result: envd_future_watcher_id. */
ENVD_API envd_status envd_fs_watcher_create_async(envd_client *c, const char *path,
                                                  unsigned flags, envd_future **out);
/* The id of a watcher_create future; valid until the future is freed. */
ENVD_API const char *envd_future_watcher_id(const envd_future *f);

/* The events of one envd_fs_watcher_events call: count in items[]. */
typedef struct envd_fs_event_list {
    size_t count;
    const envd_fs_event *items;
} envd_fs_event_list;

/* The events buffered since the previous call, oldest first. Caller frees
 * *out with envd_fs_event_list_free. */
ENVD_API envd_status envd_fs_watcher_events(envd_client *c, const char *id,
                                            envd_fs_event_list **out, envd_error **err);
/* The future's result: envd_future_event_list. */
ENVD_API envd_status envd_fs_watcher_events_async(envd_client *c, const char *id,
                                                  envd_future **out);
ENVD_API const envd_fs_event_list *envd_future_event_list(const envd_future *f);
ENVD_API void envd_fs_event_list_free(envd_fs_event_list *l);

/* Stops and deletes the watcher; an unknown id is ENVD_NOT_FOUND. */
ENVD_API envd_status envd_fs_watcher_remove(envd_client *c, const char *id, envd_error **err);
ENVD_API envd_status envd_fs_watcher_remove_async(envd_client *c, const char *id,
                                                  envd_future **out);

/* ----------------------------------------------------------------- files */

/* File contents go over envd's plain HTTP API: GET and POST
 * <runtime URL>/files?path=<path>&username=<user>, with the client's headers
 * (Authorization, X-Access-Token, e2b-sandbox-id ...) on every request.
 *
 * The user. The Go client runs its RPCs as root (Authorization: Basic root:)
 * but sends username=node on /files, so on images without a `node` account
 * (stock agent images) its reads and writes fail with 401. libenvd has one
 * user: envd_config_set_user (default root) sets both the Authorization
 * header and the /files username. envd_files_opts_set_user replaces both
 * for one request.
 *
 * Errors: 404 is ENVD_NOT_FOUND "file not found: <path>"; other statuses map
 * as the spec says (401 ENVD_UNAUTHENTICATED, 507 ENVD_E_NO_SPACE, 416
 * ENVD_OUT_OF_RANGE ...) with the status and an excerpt of the body in the
 * message; envd_error_http_status gives the status. A NULL or empty path is
 * ENVD_E_USAGE.
 *
 * Timeouts, all kept by the engine's I/O loop: the client's request timeout
 * bounds the wait for the response headers: from the start for a read, from
 * the end of the request body for a write (an upload takes as long as it
 * takes). The idle timeout (client's, or envd_files_opts_set_idle_timeout_ms)
 * fails a transfer that moves no byte in either direction for that long.
 * envd_files_opts_set_timeout_ms adds a deadline on the whole transfer
 * (none by default).
 *
 * Callbacks (progress, sinks, sources) and fd reads/writes run on the curl
 * engine's single I/O thread: a slow one stalls every Connect and /files
 * transfer of the runtime. */

/* Progress: bytes of file content moved so far and the total (-1 when
 * unknown, e.g. a gzip download). */
typedef void (*envd_progress_cb)(void *ud, int64_t done, int64_t total);
/* Read sink: bytes as they arrive (valid only during the call). Return 0 to
 * go on, non-zero to stop the transfer (it ends with ENVD_CANCELED). */
typedef int (*envd_data_cb)(void *ud, const uint8_t *data, size_t len);
/* Write source: fill buf with up to cap bytes and return the count; 0 at
 * the end; ENVD_READ_ABORT to fail the transfer (ENVD_E_IO). */
typedef size_t (*envd_read_cb)(void *ud, uint8_t *buf, size_t cap);
#define ENVD_READ_ABORT ((size_t)-1)

/* ---- options (NULL everywhere means the defaults) */

typedef struct envd_files_opts envd_files_opts;

/* Caller frees with envd_files_opts_free; calls copy what they need. Setters
 * return ENVD_E_USAGE for NULL options and ENVD_INVALID_ARGUMENT for a value
 * out of range (a negative time, a bad header name ...). */
ENVD_API envd_files_opts *envd_files_opts_new(void);
ENVD_API void envd_files_opts_free(envd_files_opts *o);
/* The user for this request (NULL or "" = the client's). */
ENVD_API envd_status envd_files_opts_set_user(envd_files_opts *o, const char *user);
/* gzip on the wire (envd >= 0.5.3): a write sends Content-Encoding: gzip,
 * compressing as it streams; a read asks for it and decodes as it streams.
 * (A reply compressed without being asked is decoded too.) */
ENVD_API envd_status envd_files_opts_set_gzip(envd_files_opts *o, int enabled);
/* Writes: a raw application/octet-stream body instead of multipart (envd >=
 * 0.5.7); one file per request (a bigger batch is ENVD_E_USAGE). */
ENVD_API envd_status envd_files_opts_set_octet_stream(envd_files_opts *o, int enabled);
/* Writes: X-Metadata-<key>: value, stored by envd (>= 0.6.2) as file
 * metadata (see envd_entry_info.metadata). A write replaces the file's
 * whole metadata set. Printable ASCII only; keys are lower-cased by envd. */
ENVD_API envd_status envd_files_opts_set_metadata(envd_files_opts *o, const char *key,
                                                  const char *value);
/* Reads: only `length` bytes from `offset` (Range; length < 0: to the end).
 * A range past the end fails with ENVD_OUT_OF_RANGE (416). A write with a
 * range is ENVD_E_USAGE. */
ENVD_API envd_status envd_files_opts_set_range(envd_files_opts *o, int64_t offset,
                                               int64_t length);
ENVD_API envd_status envd_files_opts_on_progress(envd_files_opts *o, envd_progress_cb cb,
                                                 void *ud);
/* Longest time without a byte moving; 0 = none. Default: the client's idle
 * timeout. */
ENVD_API envd_status envd_files_opts_set_idle_timeout_ms(envd_files_opts *o, int64_t ms);
/* Deadline for the whole transfer (ENVD_DEADLINE_EXCEEDED); 0 = none
 * (default). */
ENVD_API envd_status envd_files_opts_set_timeout_ms(envd_files_opts *o, int64_t ms);
/* Reads: where the bytes go. Default: memory (the whole file, up to 4 GiB,
 * ENVD_RESOURCE_EXHAUSTED past that). An fd is written with write(2) from
 * its current position on and must stay open until the read completes; on
 * failure it may hold part of the file. A callback gets the bytes chunk by
 * chunk (cb NULL: back to memory). Either way memory stays flat. */
ENVD_API envd_status envd_files_opts_set_sink_fd(envd_files_opts *o, int fd);
ENVD_API envd_status envd_files_opts_set_sink(envd_files_opts *o, envd_data_cb cb, void *ud);

/* ---- reads */

/* Reads path into the options' sink. Memory sink: *data is the file,
 * NUL-terminated for convenience (caller frees with free()), *len its size.
 * fd or callback sink: *data = NULL, *len = bytes moved. */
ENVD_API envd_status envd_files_read(envd_client *c, const char *path, const envd_files_opts *o,
                                     uint8_t **data, size_t *len, envd_error **err);
ENVD_API envd_status envd_files_read_async(envd_client *c, const char *path,
                                           const envd_files_opts *o, envd_future **out);
/* The bytes of a memory read future (NUL-terminated); valid until it is
 * freed. NULL for another sink. */
ENVD_API const uint8_t *envd_future_bytes(const envd_future *f, size_t *len);
/* Bytes of file content moved by a finished transfer future (read: body
 * bytes after gzip decoding; write: bytes taken from the sources). */
ENVD_API int64_t envd_future_transferred(const envd_future *f);
/* envd_files_read as a string (the Go client's ReadText): *text is
 * NUL-terminated, caller frees with free(). A file holding NUL bytes reads
 * fine but the string ends at the first one. Options with another sink are
 * ENVD_E_USAGE. */
ENVD_API envd_status envd_files_read_text(envd_client *c, const char *path,
                                          const envd_files_opts *o, char **text,
                                          envd_error **err);

/* ---- writes: a batch of files in one request; one file is a batch of one */

typedef struct envd_write_batch envd_write_batch;

/* Each file's target path is its multipart filename (envd reads it when no
 * path query is given). Caller frees with envd_write_batch_free, any time
 * after the write call returned. A NULL or empty path is ENVD_E_USAGE, one
 * holding CR or LF ENVD_INVALID_ARGUMENT. */
ENVD_API envd_write_batch *envd_write_batch_new(void);
ENVD_API void envd_write_batch_free(envd_write_batch *b);
/* data is not copied: it must stay valid until the write completes. */
ENVD_API envd_status envd_write_batch_add(envd_write_batch *b, const char *path, const void *data,
                                          size_t len);
/* `size` bytes from fd's current position (size < 0: the rest of a regular
 * file, or until EOF for a pipe, sent chunked); fd must stay open until the
 * write completes. */
ENVD_API envd_status envd_write_batch_add_fd(envd_write_batch *b, const char *path, int fd,
                                             int64_t size);
/* What cb produces: exactly `size` bytes, or until it returns 0 when
 * size < 0. */
ENVD_API envd_status envd_write_batch_add_stream(envd_write_batch *b, const char *path,
                                                 envd_read_cb cb, void *ud, int64_t size);

/* What envd reported for a write: one entry per file written (the JSON
 * array of the reply; when it cannot be parsed, the requested paths, as the
 * Go client falls back to). Read-only; free with envd_write_info_free. */
typedef struct envd_write_entry {
    const char *path;
    const char *name;
    const char *type; /* "file" */
} envd_write_entry;
typedef struct envd_write_info {
    size_t count;
    const envd_write_entry *items;
} envd_write_info;
ENVD_API void envd_write_info_free(envd_write_info *w);
/* The result of a write future; valid until the future is freed. */
ENVD_API const envd_write_info *envd_future_write_info(const envd_future *f);

/* Writes (creates or overwrites; parents are created) every file of b in
 * one request (multipart, part `file` each, as the Go client does). Parts
 * are sent in order; if envd fails part way, the files before the failing
 * one are written. *info (may be NULL) gets envd's reply. */
ENVD_API envd_status envd_files_write_batch(envd_client *c, const envd_write_batch *b,
                                            const envd_files_opts *o, envd_write_info **info,
                                            envd_error **err);
ENVD_API envd_status envd_files_write_batch_async(envd_client *c, const envd_write_batch *b,
                                                  const envd_files_opts *o, envd_future **out);
/* One file from memory (the Go client's Write): a batch of one. */
ENVD_API envd_status envd_files_write(envd_client *c, const char *path, const void *data,
                                      size_t len, const envd_files_opts *o,
                                      envd_write_info **info, envd_error **err);
/* envd_files_write of a NUL-terminated string (the Go client's WriteText). */
ENVD_API envd_status envd_files_write_text(envd_client *c, const char *path, const char *text,
                                           const envd_files_opts *o, envd_write_info **info,
                                           envd_error **err);

/* Concatenates the n files at sources, in order, into destination, on the
 * sandbox's side (POST /files/compose, envd >= 0.5.5: refused with
 * ENVD_UNIMPLEMENTED when the configured envd version is older). envd
 * writes a temporary file next to destination and renames it over
 * destination (parents are created), then DELETES the sources. Paths
 * resolve as for /files (relative to the user's home). *info (may be
 * NULL) gets one entry: the destination. From the options only the user
 * and the timeouts apply. Errors: ENVD_NOT_FOUND for a missing source
 * (404 "source file not found: <src>"); ENVD_INVALID_ARGUMENT (400) for a
 * source that is the destination or not a regular file; 401 for an
 * unknown user; ENVD_E_NO_SPACE (507). Empty or NULL sources or
 * destination, or n == 0: ENVD_E_USAGE. */
ENVD_API envd_status envd_files_compose(envd_client *c, const char *const *sources, size_t n,
                                        const char *destination, const envd_files_opts *o,
                                        envd_write_info **info, envd_error **err);
ENVD_API envd_status envd_files_compose_async(envd_client *c, const char *const *sources,
                                              size_t n, const char *destination,
                                              const envd_files_opts *o, envd_future **out);

/* Parallel upload (off by default). With max_parts >= 2, a write of ONE
 * file whose size is known up front (envd_files_write, a batch of one
 * memory item, or a batch of one fd item of a regular file) of at least
 * 2 * min_part_size bytes is split into min(max_parts, size /
 * min_part_size) parts uploaded at once, each over its own request and
 * connection, to temporary files next to the destination
 * ("<destination>.envd-part.<random>.<i>"), which are then composed into
 * the destination (envd_files_compose: the parts are deleted by envd).
 * Before the parts, the destination's directory is made (MakeDir as the
 * request's user: envd's upload fails when two requests create the same
 * new directory at once).
 *
 * One future for the whole, with the result of a write: one entry, the
 * destination; envd_future_transferred the file's size. Progress is the sum
 * over the parts. Cancelling it (or the timeout of
 * envd_files_opts_set_timeout_ms, which bounds the whole, compose
 * included) stops every part. When any step fails, the others are stopped,
 * the parts that may exist are removed (Remove RPCs, best effort: a part
 * the sandbox cannot delete stays) and the future fails with the first
 * error, prefixed with "parallel upload of <destination>" and the part
 * ("part 3 of 8"). An fd is read with pread(2): its offset does not move.
 * A parallel upload counts as one call against the in-flight cap
 * (envd_config_set_max_inflight); its requests queue behind max_connections
 * (envd_config_set_connection_limits) like any others.
 *
 * A single upload is made instead when the file is smaller, the source is
 * a pipe or a callback, metadata is set (composing does not keep it), or
 * the configured envd version has no /files/compose (before 0.5.5).
 *
 * Off by default because it was slower where it was measured: over
 * loopback to the reference server 1 GiB in 2, 4 or 8 parts ran at about
 * 140 MB/s against 240 MB/s for one stream (bench/README.md): the sandbox's
 * write of the body is the bottleneck there, and the compose writes the
 * file a second time. Use it when one connection does not fill the path
 * to the sandbox (a long round trip through a gateway, a per-connection
 * rate limit) and the sandbox's disk does not limit.
 *
 * max_parts 0..ENVD_FILES_MAX_PARTS (0 or 1: off); min_part_size >= 1. */
#define ENVD_FILES_MAX_PARTS 64
ENVD_API envd_status envd_files_opts_set_parallel(envd_files_opts *o, int max_parts,
                                                  int64_t min_part_size);

/* ---- signed URLs (envd's v1 signatures, spec §6.2) */

typedef enum envd_files_op { ENVD_FILES_READ = 0, ENVD_FILES_WRITE = 1 } envd_files_op;

/* A URL that reads (GET) or writes (POST, multipart part `file` or a raw
 * octet-stream body) path without the access-token header, for handing to
 * another program: <runtime URL>/files?path=..&username=..[&signature=..
 * [&signature_expiration=..]]. Signed when the client has a runtime token,
 * plain otherwise. expires_in_s > 0 adds an expiration that many seconds
 * from now (ENVD_INVALID_ARGUMENT without a token). user NULL = the
 * client's. Caller frees *url with free(). The URL carries no routing
 * headers: behind a gateway that routes by e2b-sandbox-id, give the client
 * a base URL that routes by path or host (e.g. .../kruise/<id>/49983). */
ENVD_API envd_status envd_files_url(envd_client *c, const char *path, envd_files_op op,
                                    const char *user, int64_t expires_in_s, char **url,
                                    envd_error **err);
/* The signature itself: "v1_" + unpadded base64 of SHA-256 of
 * "<path>:<operation>:<user>:<token>[:<expiration>]". operation is "read" or
 * "write"; user NULL = ""; expiration <= 0 = none. Caller frees *out with
 * free(). */
ENVD_API envd_status envd_files_signature(const char *path, const char *operation,
                                          const char *user, const char *token,
                                          int64_t expiration, char **out);

#ifdef __cplusplus
}
#endif
/* Kubernetes lookup (NewFromK8s) and configuration files. */
#include "envd_k8s.h"

#endif
