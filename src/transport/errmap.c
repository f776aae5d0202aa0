/* Errors from HTTP bodies and Connect end-of-stream frames.
 *
 * Three shapes reach a client:
 *   - a Connect error: {"code":"not_found","message":"..."}: the code wins;
 *   - envd's own HTTP API errors and gateway replies: JSON with an integer
 *     code ({"code":401,"message":...}, E2B's proxy
 *     {"sandboxId":...,"message":"The sandbox was not found","code":502}):
 *     mapped from the HTTP status, message kept;
 *   - plain text or HTML from a proxy (nginx, envoy): mapped from the HTTP
 *     status, with a short printable excerpt so the user sees who answered.
 * "Mapped from the HTTP status" is the one error model's table (failure.c)
 * for RPCs, and envd's REST meaning for /files.
 *
 * A sandbox gateway's own replies about the sandbox become errors that say
 * so (ENVD_UNAVAILABLE, the HTTP status kept, never retried):
 *   - OpenKruise's sandbox-gateway (Envoy local replies, plain text):
 *     502 "sandbox not found: <id>" (details sandbox_not_found), 502
 *     "healthy sandbox not found: <id>" (sandbox_not_running), 503
 *     "sandbox gateway is not ready" (gateway_not_ready). To a gRPC request
 *     Envoy gives the same text as grpc-message with grpc-status 14;
 *   - E2B's edge: {"sandboxId":"<id>","message":"The sandbox was not
 *     found","code":502}, with HTTP 502 (newer versions: 404).
 * The detail names (sandbox_not_found ...) are recognised too, for a
 * gateway whose local reply format puts them in the body.
 */
#include "transport/transport.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define EXCERPT_MAX 512

static const char *reason_phrase(int status)
{
    switch (status) {
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 415: return "Unsupported Media Type";
    case 429: return "Too Many Requests";
    case 499: return "Client Closed Request";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    case 507: return "Insufficient Storage";
    default: return "";
    }
}

/* An RPC's HTTP status goes through the one error model (failure.c); the
 * plain-HTTP API (/files) keeps envd's REST meaning, where a 404 is a
 * missing file rather than a missing route. */
static envd_status status_for_http(int http_status, envd_transport_kind transport)
{
    if (transport == ENVD_TRANSPORT_HTTP)
        return envd_status_from_http(http_status);
    return envd_failure_status(ENVD_FAILURE_HTTP, http_status);
}

static const uint8_t *skip_ws(const uint8_t *p, const uint8_t *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
        p++;
    return p;
}

/* Printable excerpt of body into out (cap > EXCERPT_MAX + 4): control and
 * non-ASCII bytes become '?', whitespace runs collapse to one space, HTML tags
 * are dropped. */
static void excerpt(const uint8_t *body, size_t len, char *out, size_t cap)
{
    const uint8_t *p = body, *end = body + len;
    p = skip_ws(p, end);
    int html = p < end && *p == '<';
    size_t o = 0;
    int space = 0, in_tag = 0, truncated = 0;
    for (; p < end; p++) {
        uint8_t c = *p;
        if (html) {
            if (c == '<') {
                in_tag = 1;
                space = o > 0;
                continue;
            }
            if (in_tag) {
                if (c == '>')
                    in_tag = 0;
                continue;
            }
        }
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
            space = o > 0;
            continue;
        }
        if (o + (space ? 2 : 1) > EXCERPT_MAX) {
            truncated = 1;
            break;
        }
        if (space && out[o - 1] != ' ')
            out[o++] = ' ';
        space = 0;
        out[o++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    if (truncated && o + 3 < cap) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
}

/* What a gateway said about the sandbox, from the text of its reply. */
typedef enum gw_kind { GW_NONE, GW_NOT_FOUND, GW_NOT_RUNNING, GW_NOT_READY } gw_kind;

static const char *find_ci(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (; *hay; hay++)
        if (strncasecmp(hay, needle, n) == 0)
            return hay;
    return NULL;
}

static gw_kind gateway_kind(const char *text)
{
    if (find_ci(text, "healthy sandbox not found") || find_ci(text, "sandbox_not_running"))
        return GW_NOT_RUNNING;
    if (find_ci(text, "sandbox not found") || find_ci(text, "sandbox was not found") ||
        find_ci(text, "sandbox_not_found"))
        return GW_NOT_FOUND;
    if (find_ci(text, "sandbox gateway is not ready") || find_ci(text, "gateway_not_ready"))
        return GW_NOT_READY;
    return GW_NONE;
}

/* The sandbox id in OpenKruise's text ("...not found: <id>") into id. */
static void id_after_colon(const char *text, char *id, size_t cap)
{
    const char *p = find_ci(text, "not found: ");
    id[0] = '\0';
    if (!p)
        return;
    p += strlen("not found: ");
    size_t n = 0;
    while (p[n] && p[n] != ' ' && p[n] != '"' && p[n] != ',' && n + 1 < cap)
        n++;
    memcpy(id, p, n);
    id[n] = '\0';
}

/* The error for a gateway's reply about the sandbox, or NULL when the
 * reply is not one. text is the reply's printable excerpt, id the sandbox
 * it names (may be empty). */
static envd_error *gateway_error(int http_status, const char *text, const char *id,
                                 envd_transport_kind transport)
{
    gw_kind k = gateway_kind(text);
    int ok = k == GW_NOT_READY ? http_status == 503
                               : k != GW_NONE && (http_status == 502 || http_status == 404);
    if (!ok)
        return NULL;
    char found[128];
    if (!id || !id[0]) {
        id_after_colon(text, found, sizeof found);
        id = found;
    }
    const char *what = k == GW_NOT_FOUND     ? "not found"
                       : k == GW_NOT_RUNNING ? "not running"
                                             : "unreachable: the gateway is not ready";
    const char *rp = reason_phrase(http_status);
    envd_error *e = envd_error_new(ENVD_UNAVAILABLE, transport, http_status,
                                   "sandbox %s%s%s (gateway reply: HTTP %d%s%s: %s)", id,
                                   id[0] ? " " : "", what, http_status, rp[0] ? " " : "", rp, text);
    envd_error_set_failure(e, ENVD_FAILURE_HTTP);
    return e;
}

void envd_gateway_classify(envd_error *e)
{
    if (!e || e->code != ENVD_UNAVAILABLE || e->failure == ENVD_FAILURE_HTTP)
        return;
    /* Envoy's answer to a gRPC request: grpc-status 14, its text as
     * grpc-message, HTTP 200. */
    gw_kind k = gateway_kind(e->message);
    if (k == GW_NONE || e->transport != ENVD_TRANSPORT_GRPC)
        return;
    envd_error *g = gateway_error(k == GW_NOT_READY ? 503 : 502, e->message, NULL, e->transport);
    if (!g || g->code != ENVD_UNAVAILABLE || e->code != ENVD_UNAVAILABLE) {
        envd_error_free(g);
        return;
    }
    free(e->message);
    e->message = g->message;
    e->http_status = g->http_status;
    e->failure = ENVD_FAILURE_HTTP;
    g->message = NULL;
    envd_error_free(g);
}

static envd_error *from_text(int http_status, const uint8_t *body, size_t len,
                             envd_transport_kind transport)
{
    char ex[EXCERPT_MAX + 8];
    excerpt(body, len, ex, sizeof ex);
    const uint8_t *p = skip_ws(body, body + len);
    const char *what = (p < body + len && *p == '<') ? " (HTML page, likely from a proxy)" : "";
    envd_error *g = gateway_error(http_status, ex, NULL, transport);
    if (g)
        return g;
    const char *rp = reason_phrase(http_status);
    envd_status st = status_for_http(http_status, transport);
    if (!ex[0])
        return envd_error_new(st, transport, http_status, "HTTP %d%s%s with an empty body",
                              http_status, rp[0] ? " " : "", rp);
    return envd_error_new(st, transport, http_status, "HTTP %d%s%s%s: %s", http_status,
                          rp[0] ? " " : "", rp, what, ex);
}

envd_error *envd_error_from_http_body(int http_status, const uint8_t *body, size_t len,
                                      envd_transport_kind transport)
{
    /* Callers pass NULL for an empty body; pointer arithmetic on NULL is
     * undefined even with a zero offset, so the empty body is a real one. */
    static const uint8_t empty[1];
    if (!body) {
        body = empty;
        len = 0;
    }
    const uint8_t *p = skip_ws(body, body + len);
    json_t *j = NULL;
    if (p < body + len && *p == '{')
        j = json_loadb((const char *)body, len, 0, NULL);
    if (!json_is_object(j)) {
        json_decref(j);
        envd_error *t = from_text(http_status, body, len, transport);
        envd_error_set_failure(t, ENVD_FAILURE_HTTP);
        return t;
    }
    json_t *code = json_object_get(j, "code");
    json_t *msg = json_object_get(j, "message");
    const char *m = json_is_string(msg) ? json_string_value(msg) : NULL;
    envd_error *e;
    if (json_is_string(code)) {
        /* A Connect error: the code names the status. */
        const char *name = json_string_value(code);
        envd_status st = envd_status_from_connect_name(name);
        if (m && m[0])
            e = envd_error_new(st, transport, http_status, "%s", m);
        else
            e = envd_error_new(st, transport, http_status, "%s (HTTP %d)", name, http_status);
    } else if (m) {
        /* envd's HTTP API, a gateway or E2B's proxy: the status decides. */
        const char *rp = reason_phrase(http_status);
        json_t *sid = json_object_get(j, "sandboxId");
        char ex[EXCERPT_MAX + 8];
        excerpt((const uint8_t *)m, strlen(m), ex, sizeof ex);
        if ((e = gateway_error(http_status, ex, json_is_string(sid) ? json_string_value(sid) : NULL,
                               transport)))
            ;
        else if (json_is_string(sid))
            e = envd_error_new(status_for_http(http_status, transport), transport, http_status,
                               "HTTP %d%s%s: %s (sandbox %s)", http_status, rp[0] ? " " : "", rp,
                               ex, json_string_value(sid));
        else
            e = envd_error_new(status_for_http(http_status, transport), transport, http_status,
                               "HTTP %d%s%s: %s", http_status, rp[0] ? " " : "", rp, ex);
    } else {
        e = from_text(http_status, body, len, transport);
    }
    /* No RPC status of its own: a gateway's or proxy's reply (or envd's
     * REST one), as far as the retry rule is concerned. */
    if (!json_is_string(code))
        envd_error_set_failure(e, ENVD_FAILURE_HTTP);
    json_decref(j);
    return e;
}

envd_error *envd_error_from_connect_end(const uint8_t *json, size_t len)
{
    static const uint8_t empty[1]; /* NULL + 0 is undefined; see above */
    if (!json) {
        json = empty;
        len = 0;
    }
    json_error_t jerr;
    json_t *j = json_loadb((const char *)json, len, 0, &jerr);
    if (!json_is_object(j)) {
        json_decref(j);
        char ex[EXCERPT_MAX + 8];
        excerpt(json, len, ex, sizeof ex);
        return envd_error_new(ENVD_E_PROTOCOL, ENVD_TRANSPORT_CONNECT, 0,
                              "malformed end-of-stream frame: %s", ex[0] ? ex : "(empty)");
    }
    json_t *err = json_object_get(j, "error");
    if (!err || json_is_null(err)) {
        json_decref(j);
        return NULL;
    }
    envd_error *e;
    if (!json_is_object(err)) {
        e = envd_error_new(ENVD_E_PROTOCOL, ENVD_TRANSPORT_CONNECT, 0,
                           "malformed end-of-stream frame: \"error\" is not an object");
    } else {
        json_t *code = json_object_get(err, "code");
        json_t *msg = json_object_get(err, "message");
        const char *name = json_is_string(code) ? json_string_value(code) : "unknown";
        envd_status st = envd_status_from_connect_name(name);
        const char *m = json_is_string(msg) ? json_string_value(msg) : NULL;
        if (m && m[0])
            e = envd_error_new(st, ENVD_TRANSPORT_CONNECT, 0, "%s", m);
        else
            e = envd_error_new(st, ENVD_TRANSPORT_CONNECT, 0, "%s", name);
    }
    json_decref(j);
    return e;
}
