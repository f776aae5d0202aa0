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
 */
#include "transport/transport.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

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

static envd_error *from_text(int http_status, const uint8_t *body, size_t len,
                             envd_transport_kind transport)
{
    char ex[EXCERPT_MAX + 8];
    excerpt(body, len, ex, sizeof ex);
    const uint8_t *p = skip_ws(body, body + len);
    const char *what = (p < body + len && *p == '<') ? " (HTML page, likely from a proxy)" : "";
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
        return from_text(http_status, body, len, transport);
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
        if (json_is_string(sid))
            e = envd_error_new(status_for_http(http_status, transport), transport, http_status,
                               "HTTP %d%s%s: %s (sandbox %s)", http_status, rp[0] ? " " : "", rp,
                               ex, json_string_value(sid));
        else
            e = envd_error_new(status_for_http(http_status, transport), transport, http_status,
                               "HTTP %d%s%s: %s", http_status, rp[0] ? " " : "", rp, ex);
    } else {
        e = from_text(http_status, body, len, transport);
    }
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
