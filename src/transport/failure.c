/* The one error model of every transport: what a failure on the way to envd
 * is called, whether gRPC core, libcurl carrying Connect, or libcurl carrying
 * /files saw it. grpc.c, connect.c and curl_engine.c first say which kind of
 * failure they saw, then take the status from this table, so a caller gets
 * the same code for the same event on every transport (and with `auto`,
 * whichever transport the endpoint settled on).
 *
 * The codes are the ones gRPC core and connect-go clients give, so code
 * written against either keeps working:
 *   - every way of not reaching the server or losing it (nothing listening,
 *     DNS, TLS, a reset, a server killed mid-call or mid-stream, a peer that
 *     answers the connection in something other than the HTTP asked for) is
 *     UNAVAILABLE, as gRPC core says "failed to connect to all addresses" and
 *     Go's HTTP client fails the request before any response. (libcurl over
 *     h2c could not tell that last one from a close anyway.) The message
 *     says which it was; with `auto` the HTTP-version mismatch is what makes
 *     the client fall back to Connect;
 *   - an HTTP status without an RPC status (a gateway's or a proxy's own
 *     reply) maps as grpc_http2_status_to_grpc_status and connect-go's
 *     connectHTTPToCode do (404 is a missing route: UNIMPLEMENTED).
 * Three rows keep a libenvd code where gRPC and Connect have none or a vague
 * one:
 *   - PROTOCOL is ENVD_E_PROTOCOL (gRPC core: INTERNAL or UNKNOWN): a
 *     response that came but breaks the RPC protocol (a malformed frame, a
 *     proxy's 200 page) is a deployment mistake or a broken server, not the
 *     server's own INTERNAL, and not worth retrying;
 *   - IDLE is ENVD_E_IDLE_TIMEOUT: the per-stream silence clock is
 *     libenvd's own (gRPC's keepalive would end the whole connection);
 *   - LOCAL is ENVD_E_TRANSPORT: gRPC core or libcurl failed on this side
 *     (refused to start a batch, could not set up its event loop) in a way
 *     that says nothing about the server.
 * HTTP 507 is envd's "sandbox disk full" and stays ENVD_E_NO_SPACE.
 *
 * The plain-HTTP API (/files) reads its statuses with envd's REST meaning
 * instead (envd_status_from_http: a 404 there is a missing file, a 400 a bad
 * argument); the gateway statuses (401, 403, 429, 502-504, 507) agree with
 * the rows below.
 */
#include "transport/transport.h"

#include <string.h>
#include <time.h>

typedef struct failure_row {
    envd_failure kind;
    int http; /* ENVD_FAILURE_HTTP rows: the status; 0 = every other one */
    envd_status status;
} failure_row;

static const failure_row failure_table[] = {
    /* kind                      http  status                   gRPC core / connect-go */
    {ENVD_FAILURE_REFUSED, 0, ENVD_UNAVAILABLE},      /* UNAVAILABLE / unavailable */
    {ENVD_FAILURE_UNREACHABLE, 0, ENVD_UNAVAILABLE},  /* UNAVAILABLE / unavailable */
    {ENVD_FAILURE_DNS, 0, ENVD_UNAVAILABLE},          /* UNAVAILABLE / unavailable */
    {ENVD_FAILURE_TLS, 0, ENVD_UNAVAILABLE},          /* UNAVAILABLE / unavailable */
    {ENVD_FAILURE_NOT_HTTP, 0, ENVD_UNAVAILABLE},     /* UNAVAILABLE / unavailable */
    {ENVD_FAILURE_CLOSED, 0, ENVD_UNAVAILABLE},       /* UNAVAILABLE / unavailable */
    {ENVD_FAILURE_BROKEN, 0, ENVD_UNAVAILABLE},       /* UNAVAILABLE / unavailable */
    {ENVD_FAILURE_PROTOCOL, 0, ENVD_E_PROTOCOL},      /* INTERNAL / internal */
    {ENVD_FAILURE_DEADLINE, 0, ENVD_DEADLINE_EXCEEDED}, /* DEADLINE_EXCEEDED */
    {ENVD_FAILURE_IDLE, 0, ENVD_E_IDLE_TIMEOUT},      /* none */
    {ENVD_FAILURE_LOCAL, 0, ENVD_E_TRANSPORT},        /* none (INTERNAL) */
    {ENVD_FAILURE_HTTP, 400, ENVD_INTERNAL},          /* INTERNAL / internal */
    {ENVD_FAILURE_HTTP, 401, ENVD_UNAUTHENTICATED},   /* UNAUTHENTICATED */
    {ENVD_FAILURE_HTTP, 403, ENVD_PERMISSION_DENIED}, /* PERMISSION_DENIED */
    {ENVD_FAILURE_HTTP, 404, ENVD_UNIMPLEMENTED},     /* UNIMPLEMENTED */
    {ENVD_FAILURE_HTTP, 429, ENVD_UNAVAILABLE},       /* UNAVAILABLE */
    {ENVD_FAILURE_HTTP, 502, ENVD_UNAVAILABLE},       /* UNAVAILABLE */
    {ENVD_FAILURE_HTTP, 503, ENVD_UNAVAILABLE},       /* UNAVAILABLE */
    {ENVD_FAILURE_HTTP, 504, ENVD_UNAVAILABLE},       /* UNAVAILABLE */
    {ENVD_FAILURE_HTTP, 507, ENVD_E_NO_SPACE},        /* UNKNOWN: envd's disk full */
    {ENVD_FAILURE_HTTP, 0, ENVD_UNKNOWN},             /* UNKNOWN / unknown */
};

envd_status envd_failure_status(envd_failure kind, int http_status)
{
    for (size_t i = 0; i < sizeof failure_table / sizeof failure_table[0]; i++) {
        const failure_row *r = &failure_table[i];
        if (r->kind == kind && (r->http == 0 || r->http == http_status))
            return r->status;
    }
    return ENVD_UNKNOWN;
}

/* ---- retries -------------------------------------------------------------
 *
 * The one retry rule, for RPCs (op.c restarts them) and /files reads alike.
 * An attempt is tried again only when nothing of it reached the sandbox:
 *   - the connection was refused (nothing was sent);
 *   - the gateway answered by itself with 429 or 503 (an HTTP status that
 *     carries no RPC status: OpenKruise's gateway_not_ready, E2B's edge
 *     rate limit, nginx without a live upstream). A Connect error that envd
 *     sent with HTTP 503 has a code of its own and is not one of these;
 *   - the connection was closed or reset before any response byte, and the
 *     call is idempotent (a reset after the request left may have reached
 *     envd: a Start would run its command twice).
 * Never when a response message came, never when the body cannot be sent
 * again (a client stream, an upload from a callback), never past the
 * retry count or the call's request timeout. A 502 (sandbox not found or
 * not running) is final. */

#define RETRY_BASE_MS 100
#define RETRY_MAX_MS 5000

static int retryable(const envd_error *e, const envd_retry_ctx *ctx)
{
    if (!e || !ctx->replayable || ctx->responded)
        return 0;
    if (e->failure == ENVD_FAILURE_HTTP)
        return e->http_status == 429 || e->http_status == 503;
    if (e->failure == ENVD_FAILURE_REFUSED)
        return 1;
    return e->failure == ENVD_FAILURE_CLOSED && ctx->idempotent;
}

int64_t envd_retry_delay_ms(const envd_error *e, const envd_retry_ctx *ctx, uint64_t rnd)
{
    if (ctx->attempt > ctx->max_retries || !retryable(e, ctx))
        return -1;
    int64_t d;
    if (e->retry_after_ms >= 0) {
        d = e->retry_after_ms;
    } else {
        /* Exponential, with jitter: half to all of the step, so that the
         * calls a gateway refused together do not come back together. */
        d = RETRY_BASE_MS;
        for (int i = 1; i < ctx->attempt && d < RETRY_MAX_MS; i++)
            d *= 2;
        if (d > RETRY_MAX_MS)
            d = RETRY_MAX_MS;
        d = d / 2 + (int64_t)(rnd % (uint64_t)(d / 2 + 1));
    }
    if (ctx->remaining_ms >= 0 && d >= ctx->remaining_ms)
        return -1; /* the answer would come after the call's deadline */
    return d;
}

/* Retry-After (RFC 9110 10.2.3): delay-seconds or an HTTP-date. */
int64_t envd_retry_after_parse(const char *v, time_t now)
{
    if (!v)
        return -1;
    while (*v == ' ' || *v == '\t')
        v++;
    if (*v >= '0' && *v <= '9') {
        int64_t s = 0;
        for (; *v >= '0' && *v <= '9'; v++) {
            s = s * 10 + (*v - '0');
            if (s > 86400)
                s = 86400; /* a day: past any request timeout anyway */
        }
        while (*v == ' ' || *v == '\t')
            v++;
        return *v ? -1 : s * 1000;
    }
    /* IMF-fixdate, the form a sender must use: "Sun, 06 Nov 1994 08:49:37 GMT". */
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *end = strptime(v, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    if (!end)
        return -1;
    while (*end == ' ' || *end == '\t')
        end++;
    if (*end)
        return -1;
    time_t at = timegm(&tm);
    if (at == (time_t)-1)
        return -1;
    return at <= now ? 0 : (int64_t)(at - now) * 1000;
}
