/* envd_config: the Go client's options and defaults, plus ours. The setters
 * are the only validators of these options (the YAML loader goes through
 * them too), and each refusal leaves a reason in cfg->last_error. */
#include "config/config.h"
#include "core/alloc.h"
#include "envd/envd_code.h"

#include <ctype.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define DEFAULT_DOMAIN "domain.app"
#define DEFAULT_USER "root"

/* ------------------------------------------------------------- reasons */

static void clear_error(envd_config *cfg)
{
    cfg->last_error[0] = 0;
    cfg->reason_at = 0;
    cfg->bad_arg = 0;
}

/* Records "<arg>: <reason>" and returns st. arg_no: 1 = first after cfg. */
static envd_status refuse(envd_config *cfg, envd_status st, int arg_no, const char *arg,
                          const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 5, 6)))
#endif
    ;

static envd_status refuse(envd_config *cfg, envd_status st, int arg_no, const char *arg,
                          const char *fmt, ...)
{
    int n = snprintf(cfg->last_error, sizeof(cfg->last_error), "%s: ", arg);
    cfg->reason_at = n > 0 && (size_t)n < sizeof(cfg->last_error) ? (size_t)n : 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cfg->last_error + cfg->reason_at, sizeof(cfg->last_error) - cfg->reason_at, fmt, ap);
    va_end(ap);
    cfg->bad_arg = arg_no;
    return st;
}

#define NOT_NULL(cfg, v, arg_no, arg)                                                              \
    do {                                                                                           \
        if (!(v))                                                                                  \
            return refuse(cfg, ENVD_E_USAGE, arg_no, arg, "must not be NULL");                     \
    } while (0)

const char *envd_config_last_error(const envd_config *cfg)
{
    return cfg ? cfg->last_error : "cfg: is NULL";
}

const char *envd_config_last_reason(const envd_config *cfg)
{
    return cfg->last_error + cfg->reason_at;
}

int envd_config_last_bad_arg(const envd_config *cfg)
{
    return cfg->bad_arg;
}

/* ------------------------------------------------------ new, dup, free */

char *envd_basic_auth(const char *user)
{
    size_t ul = strlen(user);
    unsigned char *raw = envd_malloc(ul + 2);
    if (!raw)
        return NULL;
    memcpy(raw, user, ul);
    raw[ul] = ':';
    size_t b64 = 4 * ((ul + 1 + 2) / 3);
    char *out = envd_malloc(6 + b64 + 1);
    if (out) {
        memcpy(out, "Basic ", 6);
        EVP_EncodeBlock((unsigned char *)out + 6, raw, (int)(ul + 1));
    }
    free(raw);
    return out;
}

envd_config *envd_config_new(void)
{
    envd_config *c = envd_calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    /* As the Go client: read before options. Kept as given (not checked
     * here, where no error can be returned); envd_client_new refuses a
     * scheme other than http or https with a message naming it. */
    const char *scheme = getenv("SCHEME");
    if (envd_str_set(&c->domain, DEFAULT_DOMAIN) ||
        envd_str_set(&c->scheme, scheme && *scheme ? scheme : "http") ||
        envd_str_set(&c->user, DEFAULT_USER)) {
        envd_config_free(c);
        return NULL;
    }
    c->runtime_port = ENVD_DEFAULT_RUNTIME_PORT;
    c->code_port = ENVD_DEFAULT_CODE_PORT;
    c->request_timeout_ms = 60000;
    c->transport = ENVD_TRANSPORT_AUTO;
    c->keepalive_s = 50;
    c->idle_timeout_ms = 110000; /* a little over two keepalive intervals */
    c->workers = 0;
    c->max_inflight = 4096;
    c->fail_fast = 0;
    c->retries = ENVD_DEFAULT_RETRIES;
    c->max_message_bytes = ENVD_DEFAULT_MAX_MESSAGE_BYTES;
    c->max_list_entries = ENVD_DEFAULT_MAX_LIST_ENTRIES;
    c->files_min_bytes = ENVD_DEFAULT_FILES_MIN_BYTES;
    c->files_min_window_ms = ENVD_DEFAULT_FILES_MIN_WINDOW_MS;
    c->envd_version[0] = -1;
    c->streams_per_connection = ENVD_DEFAULT_STREAMS_PER_CONNECTION;
    c->max_connections = ENVD_DEFAULT_MAX_CONNECTIONS;
    return c;
}

void envd_config_free(envd_config *c)
{
    if (!c)
        return;
    free(c->domain);
    free(c->scheme);
    free(c->runtime_token);
    free(c->api_key);
    free(c->auth_header);
    free(c->user);
    free(c->sandbox_base_url);
    free(c->code_base_url);
    free(c->ca_file);
    free(c->traffic_token);
    envd_kvlist_free(&c->headers);
    free(c);
}

envd_config *envd_config_dup(const envd_config *src)
{
    if (!src)
        return envd_config_new();
    envd_config *c = envd_calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    *c = *src;
    c->domain = c->scheme = c->runtime_token = c->api_key = c->auth_header = c->user = NULL;
    c->sandbox_base_url = c->code_base_url = c->ca_file = c->traffic_token = NULL;
    memset(&c->headers, 0, sizeof(c->headers));
    clear_error(c);
    int bad = envd_str_set(&c->domain, src->domain) || envd_str_set(&c->scheme, src->scheme) ||
              envd_str_set(&c->runtime_token, src->runtime_token) ||
              envd_str_set(&c->api_key, src->api_key) ||
              envd_str_set(&c->auth_header, src->auth_header) ||
              envd_str_set(&c->user, src->user) ||
              envd_str_set(&c->sandbox_base_url, src->sandbox_base_url) ||
              envd_str_set(&c->code_base_url, src->code_base_url) ||
              envd_str_set(&c->ca_file, src->ca_file) ||
              envd_str_set(&c->traffic_token, src->traffic_token) ||
              envd_kvlist_copy(&c->headers, &src->headers);
    if (bad) {
        envd_config_free(c);
        return NULL;
    }
    return c;
}

/* ------------------------------------------------------------ checkers */

/* RFC 9110 token characters: what an HTTP field name may hold. */
static int is_tchar(unsigned char ch)
{
    return isalnum(ch) || (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

/* A field value: no CR or LF (they would start a new header), no other
 * control character (gRPC refuses them in metadata); tab is allowed. */
static int header_value_ok(const char *s)
{
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == 0x7f || (ch < 0x20 && ch != '\t'))
            return 0;
    }
    return 1;
}

static int has_space_or_control(const char *s)
{
    for (; *s; s++)
        if (isspace((unsigned char)*s) || iscntrl((unsigned char)*s))
            return 1;
    return 0;
}

/* "1".."65535" exactly: digits only, no sign, no leading '+'. */
static int port_ok(const char *p, size_t n)
{
    if (n == 0 || n > 5)
        return 0;
    long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)p[i]))
            return 0;
        v = v * 10 + (p[i] - '0');
    }
    return v >= 1 && v <= 65535;
}

/* NULL when d is host[:port] (an IPv6 host in brackets), else why not. */
static const char *hostport_problem(const char *d)
{
    if (strstr(d, "://"))
        return "is a URL";
    if (d[strcspn(d, "/?#@\\")])
        return "holds a character a host name cannot ('/', '?', '#', '@' or '\\')";
    if (has_space_or_control(d))
        return "holds a space or a control character";
    const char *port = NULL;
    if (d[0] == '[') {
        const char *close = strchr(d, ']');
        if (!close || close == d + 1)
            return "has an unterminated or empty [IPv6] host";
        for (const char *p = d + 1; p < close; p++)
            if (!isalnum((unsigned char)*p) && !strchr(":.%", *p))
                return "has a bad [IPv6] host";
        if (close[1] && close[1] != ':')
            return "has text after the [IPv6] host that is not ':port'";
        port = close[1] ? close + 2 : NULL;
    } else {
        const char *colon = strchr(d, ':');
        if (colon && strchr(colon + 1, ':'))
            return "looks like an IPv6 address: write it in brackets, as [::1]:49983";
        if (colon == d)
            return "has an empty host";
        port = colon ? colon + 1 : NULL;
    }
    if (port && !port_ok(port, strlen(port)))
        return "has a port that is not a number between 1 and 65535";
    return NULL;
}

/* http:// or https:// followed by a host, without spaces. */
static int base_url_ok(const char *u)
{
    size_t skip = strncasecmp(u, "http://", 7) == 0    ? 7
                  : strncasecmp(u, "https://", 8) == 0 ? 8
                                                       : 0;
    return skip && u[skip] && u[skip] != '/' && !has_space_or_control(u);
}

/* ----------------------------------------------------- string setters */

envd_status envd_config_set_domain(envd_config *cfg, const char *domain)
{
    if (!cfg)
        return ENVD_E_USAGE;
    clear_error(cfg);
    NOT_NULL(cfg, domain, 1, "domain");
    if (!*domain)
        return refuse(cfg, ENVD_INVALID_ARGUMENT, 1, "domain", "must not be empty");
    const char *why = hostport_problem(domain);
    if (why)
        return refuse(cfg, ENVD_INVALID_ARGUMENT, 1, "domain",
                      "must be host[:port]; '%.100s' %s (for a URL use "
                      "envd_config_set_sandbox_base_url)",
                      domain, why);
    return envd_str_set(&cfg->domain, domain) ? ENVD_E_NOMEM : ENVD_OK;
}

envd_status envd_config_set_scheme(envd_config *cfg, const char *scheme)
{
    if (!cfg)
        return ENVD_E_USAGE;
    clear_error(cfg);
    if (scheme && *scheme && strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)
        return refuse(cfg, ENVD_INVALID_ARGUMENT, 1, "scheme", "must be http or https, got '%.40s'",
                      scheme);
    return envd_str_set(&cfg->scheme, scheme && *scheme ? scheme : "http") ? ENVD_E_NOMEM
                                                                            : ENVD_OK;
}

/* A value sent as a header as it is (token, key, auth). */
static envd_status check_header_valued(envd_config *cfg, const char *v, const char *arg)
{
    if (!cfg)
        return ENVD_E_USAGE;
    clear_error(cfg);
    if (v && !header_value_ok(v))
        return refuse(cfg, ENVD_INVALID_ARGUMENT, 1, arg,
                      "is sent as a header value, so it must not hold CR, LF or other control "
                      "characters");
    return ENVD_OK;
}

/* The same, stored; NULL or "" unsets. */
static envd_status set_header_valued(envd_config *cfg, char **slot, const char *v,
                                     const char *arg)
{
    envd_status st = check_header_valued(cfg, v, arg);
    if (st != ENVD_OK)
        return st;
    return envd_str_set(slot, v && *v ? v : NULL) ? ENVD_E_NOMEM : ENVD_OK;
}

envd_status envd_config_set_runtime_token(envd_config *cfg, const char *token)
{
    return set_header_valued(cfg, cfg ? &cfg->runtime_token : NULL, token, "token");
}

envd_status envd_config_set_api_key(envd_config *cfg, const char *key)
{
    return set_header_valued(cfg, cfg ? &cfg->api_key : NULL, key, "key");
}

envd_status envd_config_set_ca_file(envd_config *cfg, const char *path)
{
    if (!cfg)
        return ENVD_E_USAGE;
    clear_error(cfg);
    return envd_str_set(&cfg->ca_file, path && *path ? path : NULL) ? ENVD_E_NOMEM : ENVD_OK;
}

envd_status envd_config_set_sandbox_base_url(envd_config *cfg, const char *url)
{
    if (!cfg)
        return ENVD_E_USAGE;
    clear_error(cfg);
    if (url && *url && !base_url_ok(url))
        return refuse(cfg, ENVD_INVALID_ARGUMENT, 1, "url",
                      "must be an http:// or https:// URL with a host and no spaces, got '%.100s'",
                      url);
    return envd_str_set(&cfg->sandbox_base_url, url && *url ? url : NULL) ? ENVD_E_NOMEM
                                                                           : ENVD_OK;
}

/* *user gets the user behind a "Basic base64(user:pass)" value, or NULL
 * when v names none. -1 on out of memory. */
static int user_from_basic(const char *v, char **user)
{
    *user = NULL;
    if (strncasecmp(v, "Basic ", 6) != 0)
        return 0;
    const char *b = v + 6;
    size_t n = strlen(b);
    if (n == 0 || n % 4 || n > INT_MAX)
        return 0;
    unsigned char *raw = envd_malloc(n / 4 * 3 + 1);
    if (!raw)
        return -1;
    int len = EVP_DecodeBlock(raw, (const unsigned char *)b, (int)n);
    if (len < 0) {
        free(raw);
        return 0;
    }
    while (len > 0 && b[n - 1] == '=' && raw[len - 1] == 0) { /* padding bytes */
        len--;
        n--;
    }
    raw[len] = 0;
    char *colon = memchr(raw, ':', (size_t)len);
    if (!colon || colon == (char *)raw) {
        free(raw);
        return 0;
    }
    *colon = 0;
    *user = (char *)raw;
    return 0;
}

envd_status envd_config_set_auth_header(envd_config *cfg, const char *value)
{
    envd_status st = check_header_valued(cfg, value, "value");
    if (st != ENVD_OK)
        return st;
    /* Everything allocated before anything changes: all or nothing. Keep
     * /files on the same user as the RPCs when the header names one. */
    char *h = NULL, *u = NULL;
    int on = value && *value;
    if (on ? !(h = envd_strdup(value)) || user_from_basic(value, &u) != 0
           : !(u = envd_strdup(DEFAULT_USER))) {
        free(h);
        return ENVD_E_NOMEM;
    }
    free(cfg->auth_header);
    cfg->auth_header = h;
    if (u) {
        free(cfg->user);
        cfg->user = u;
    }
    return ENVD_OK;
}

envd_status envd_config_set_user(envd_config *cfg, const char *user)
{
    if (!cfg)
        return ENVD_E_USAGE;
    clear_error(cfg);
    NOT_NULL(cfg, user, 1, "user");
    if (!*user || strchr(user, ':') || has_space_or_control(user))
        return refuse(cfg, ENVD_INVALID_ARGUMENT, 1, "user",
                      "must be a user name without ':', spaces or control characters, got "
                      "'%.64s'",
                      user);
    if (envd_str_set(&cfg->user, user))
        return ENVD_E_NOMEM;
    free(cfg->auth_header);
    cfg->auth_header = NULL;
    return ENVD_OK;
}

/* ------------------------------------------------------------- headers */

/* Why a custom header may not carry this name, or NULL. */
static const char *reserved_header(const char *name)
{
    if (strcasecmp(name, "connect-timeout-ms") == 0)
        return "is reserved: envd takes it as the lifetime of a process it starts and kills the "
               "process when it runs out, so it is sent only when starting a process, from "
               "envd_cmd_opts_set_timeout_ms";
    if (strcasecmp(name, "keepalive-ping-interval") == 0)
        return "is reserved: envd crashes on an interval of 0 or less; it is sent on streams "
               "from envd_config_set_keepalive_s";
    static const char *const owned[] = {"content-type", "content-length", "te", "host",
                                        "connection", "transfer-encoding", "upgrade",
                                        "keep-alive", "proxy-connection"};
    for (size_t i = 0; i < sizeof(owned) / sizeof(owned[0]); i++)
        if (strcasecmp(name, owned[i]) == 0)
            return "is set by the transport (HTTP framing), not by the caller";
    if (strncasecmp(name, "grpc-", 5) == 0 || strncasecmp(name, "connect-", 8) == 0)
        return "is set by the transport (the gRPC and Connect protocols own grpc-* and "
               "connect-*), not by the caller";
    return NULL;
}

/* One pair; name_arg/value_arg name the arguments in reasons. */
static envd_status set_one_header(envd_config *cfg, const char *name, const char *value,
                                  int arg_no, const char *name_arg, const char *value_arg)
{
    NOT_NULL(cfg, name, arg_no, name_arg);
    NOT_NULL(cfg, value, arg_no + 1, value_arg);
    int token = *name != 0;
    for (const char *p = name; *p && token; p++)
        token = is_tchar((unsigned char)*p);
    if (!token)
        return refuse(cfg, ENVD_INVALID_ARGUMENT, arg_no, name_arg,
                      "not a valid HTTP header name (a token of letters, digits and "
                      "!#$%%&'*+-.^_`|~), got '%.64s'",
                      name);
    const char *why = reserved_header(name);
    if (why)
        return refuse(cfg, ENVD_INVALID_ARGUMENT, arg_no, name_arg, "'%s' %s", name, why);
    if (!header_value_ok(value))
        return refuse(cfg, ENVD_INVALID_ARGUMENT, arg_no + 1, value_arg,
                      "not a valid HTTP header value (CR, LF and other control characters "
                      "are not allowed)");
    char *lname = envd_strdup(name); /* gRPC wants metadata keys in lower case */
    if (!lname)
        return ENVD_E_NOMEM;
    for (char *p = lname; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    int rc = envd_kvlist_set(&cfg->headers, lname, value, ENVD_KV_EXACT);
    free(lname);
    return rc ? ENVD_E_NOMEM : ENVD_OK;
}

envd_status envd_config_set_header(envd_config *cfg, const char *name, const char *value)
{
    if (!cfg)
        return ENVD_E_USAGE;
    clear_error(cfg);
    return set_one_header(cfg, name, value, 1, "name", "value");
}

envd_status envd_config_set_headers(envd_config *cfg, const char *const *names,
                                    const char *const *values, size_t n)
{
    if (!cfg)
        return ENVD_E_USAGE;
    clear_error(cfg);
    if (n && !names)
        return refuse(cfg, ENVD_E_USAGE, 1, "names", "must not be NULL when n > 0");
    if (n && !values)
        return refuse(cfg, ENVD_E_USAGE, 2, "values", "must not be NULL when n > 0");
    for (size_t i = 0; i < n; i++) {
        char na[32], va[32];
        snprintf(na, sizeof(na), "names[%zu]", i);
        snprintf(va, sizeof(va), "values[%zu]", i);
        envd_status s = set_one_header(cfg, names[i], values[i], 1, na, va);
        if (s != ENVD_OK)
            return s;
    }
    return ENVD_OK;
}

/* ---------------------------------------------------- numeric setters */

/* A port setting: 1..65535, 0 or less for the default. */
static envd_status set_port(envd_config *cfg, int *slot, int dflt, int port)
{
    if (!cfg)
        return ENVD_E_USAGE;
    clear_error(cfg);
    if (port > 65535)
        return refuse(cfg, ENVD_INVALID_ARGUMENT, 1, "port",
                      "must be between 1 and 65535 (0 or less: the default %d), got %d", dflt,
                      port);
    *slot = port > 0 ? port : dflt;
    return ENVD_OK;
}

envd_status envd_config_set_runtime_port(envd_config *cfg, int port)
{
    return set_port(cfg, cfg ? &cfg->runtime_port : NULL, ENVD_DEFAULT_RUNTIME_PORT, port);
}

/* The code interpreter's (envd_code.h), as the Go client's
 * WithCodeInterpreterPort and WithCodeInterpreterBaseURL. */
envd_status envd_config_set_code_port(envd_config *cfg, int port)
{
    return set_port(cfg, cfg ? &cfg->code_port : NULL, ENVD_DEFAULT_CODE_PORT, port);
}

envd_status envd_config_set_code_base_url(envd_config *cfg, const char *url)
{
    if (!cfg)
        return ENVD_E_USAGE;
    clear_error(cfg);
    if (url && *url && !base_url_ok(url))
        return refuse(cfg, ENVD_INVALID_ARGUMENT, 1, "url",
                      "must be an http:// or https:// URL with a host and no spaces, got '%.100s'",
                      url);
    return envd_str_set(&cfg->code_base_url, url && *url ? url : NULL) ? ENVD_E_NOMEM : ENVD_OK;
}

static envd_status set_ms(envd_config *cfg, int64_t *slot, int64_t ms)
{
    if (!cfg)
        return ENVD_E_USAGE;
    clear_error(cfg);
    if (ms < 0)
        return refuse(cfg, ENVD_INVALID_ARGUMENT, 1, "ms", "must be >= 0 (0: none), got %lld",
                      (long long)ms);
    *slot = ms;
    return ENVD_OK;
}

envd_status envd_config_set_request_timeout_ms(envd_config *cfg, int64_t ms)
{
    return set_ms(cfg, cfg ? &cfg->request_timeout_ms : NULL, ms);
}

envd_status envd_config_set_idle_timeout_ms(envd_config *cfg, int64_t ms)
{
    return set_ms(cfg, cfg ? &cfg->idle_timeout_ms : NULL, ms);
}

envd_status envd_config_set_transport(envd_config *cfg, envd_transport_kind kind)
{
    if (!cfg)
        return ENVD_E_USAGE;
    clear_error(cfg);
    if (kind != ENVD_TRANSPORT_GRPC && kind != ENVD_TRANSPORT_CONNECT &&
        kind != ENVD_TRANSPORT_AUTO)
        return refuse(cfg, ENVD_INVALID_ARGUMENT, 1, "kind",
                      "must be ENVD_TRANSPORT_GRPC, ENVD_TRANSPORT_CONNECT or "
                      "ENVD_TRANSPORT_AUTO, got %d",
                      (int)kind);
    cfg->transport = kind;
    return ENVD_OK;
}

envd_status envd_config_set_keepalive_s(envd_config *cfg, int seconds)
{
    if (!cfg)
        return ENVD_E_USAGE;
    clear_error(cfg);
    if (seconds <= 0 || seconds > ENVD_MAX_KEEPALIVE_S)
        return refuse(cfg, ENVD_INVALID_ARGUMENT, 1, "seconds",
                      "must be a positive number of seconds up to %d (envd crashes on 0 or "
                      "less), got %d",
                      ENVD_MAX_KEEPALIVE_S, seconds);
    cfg->keepalive_s = seconds;
    return ENVD_OK;
}

envd_status envd_config_set_h2c(envd_config *cfg, int enabled)
{
    if (!cfg)
        return ENVD_E_USAGE;
    clear_error(cfg);
    cfg->h2c = enabled != 0;
    return ENVD_OK;
}

envd_status envd_config_set_workers(envd_config *cfg, int workers)
{
    if (!cfg)
        return ENVD_E_USAGE;
    clear_error(cfg);
    if (workers > ENVD_MAX_WORKERS)
        return refuse(cfg, ENVD_INVALID_ARGUMENT, 1, "workers",
                      "must be at most %d (0 or less: one per online CPU), got %d",
                      ENVD_MAX_WORKERS, workers);
    cfg->workers = workers > 0 ? workers : 0;
    return ENVD_OK;
}

envd_status envd_config_set_max_inflight(envd_config *cfg, int max_inflight, int fail_fast)
{
    if (!cfg)
        return ENVD_E_USAGE;
    clear_error(cfg);
    if (max_inflight <= 0 || max_inflight > ENVD_MAX_INFLIGHT_LIMIT)
        return refuse(cfg, ENVD_INVALID_ARGUMENT, 1, "max_inflight",
                      "must be between 1 and %d, got %d", ENVD_MAX_INFLIGHT_LIMIT, max_inflight);
    cfg->max_inflight = max_inflight;
    cfg->fail_fast = fail_fast != 0;
    return ENVD_OK;
}

envd_status envd_config_set_retries(envd_config *cfg, int retries)
{
    if (!cfg)
        return ENVD_E_USAGE;
    clear_error(cfg);
    if (retries < 0 || retries > ENVD_MAX_RETRIES)
        return refuse(cfg, ENVD_INVALID_ARGUMENT, 1, "retries", "must be between 0 and %d, got %d",
                      ENVD_MAX_RETRIES, retries);
    cfg->retries = retries;
    return ENVD_OK;
}

envd_status envd_config_set_max_message_bytes(envd_config *cfg, int64_t bytes)
{
    if (!cfg)
        return ENVD_E_USAGE;
    clear_error(cfg);
    if (bytes < ENVD_MIN_MESSAGE_LIMIT || bytes > ENVD_MAX_MESSAGE_LIMIT)
        return refuse(cfg, ENVD_INVALID_ARGUMENT, 1, "bytes",
                      "must be between %lld (1 KiB) and %lld (1 GiB), got %lld",
                      (long long)ENVD_MIN_MESSAGE_LIMIT, (long long)ENVD_MAX_MESSAGE_LIMIT,
                      (long long)bytes);
    cfg->max_message_bytes = bytes;
    return ENVD_OK;
}

envd_status envd_config_set_max_list_entries(envd_config *cfg, int64_t entries)
{
    if (!cfg)
        return ENVD_E_USAGE;
    clear_error(cfg);
    if (entries < 1 || entries > ENVD_MAX_LIST_ENTRIES_LIMIT)
        return refuse(cfg, ENVD_INVALID_ARGUMENT, 1, "entries", "must be between 1 and %lld, got %lld",
                      (long long)ENVD_MAX_LIST_ENTRIES_LIMIT, (long long)entries);
    cfg->max_list_entries = entries;
    return ENVD_OK;
}

envd_status envd_config_set_files_min_rate(envd_config *cfg, int64_t bytes, int64_t window_ms)
{
    if (!cfg)
        return ENVD_E_USAGE;
    clear_error(cfg);
    if (bytes < 0)
        return refuse(cfg, ENVD_INVALID_ARGUMENT, 1, "bytes",
                      "must be 0 (no minimum) or more, got %lld", (long long)bytes);
    if (window_ms < 100 || window_ms > ENVD_MAX_RATE_WINDOW_MS)
        return refuse(cfg, ENVD_INVALID_ARGUMENT, 2, "window_ms",
                      "must be between 100 and %d, got %lld", ENVD_MAX_RATE_WINDOW_MS,
                      (long long)window_ms);
    cfg->files_min_bytes = bytes;
    cfg->files_min_window_ms = window_ms;
    return ENVD_OK;
}

envd_status envd_config_set_connection_limits(envd_config *cfg, int streams_per_connection,
                                              int max_connections)
{
    if (!cfg)
        return ENVD_E_USAGE;
    clear_error(cfg);
    if (streams_per_connection < 1 || streams_per_connection > 10000)
        return refuse(cfg, ENVD_INVALID_ARGUMENT, 1, "streams_per_connection",
                      "must be between 1 and 10000, got %d", streams_per_connection);
    if (max_connections < 1 || max_connections > 100000)
        return refuse(cfg, ENVD_INVALID_ARGUMENT, 2, "max_connections",
                      "must be between 1 and 100000, got %d", max_connections);
    cfg->streams_per_connection = streams_per_connection;
    cfg->max_connections = max_connections;
    return ENVD_OK;
}

/* "1.2.3", an optional leading 'v', then the end or a '-' / '+' suffix. */
static int parse_version(const char *v, int out[3])
{
    if (*v == 'v')
        v++;
    for (int i = 0; i < 3; i++) {
        if (*v < '0' || *v > '9')
            return -1;
        long n = 0;
        while (*v >= '0' && *v <= '9' && n < 100000)
            n = n * 10 + (*v++ - '0');
        if (n >= 100000 || (i < 2 && *v++ != '.'))
            return -1;
        out[i] = (int)n;
    }
    return *v == '\0' || *v == '-' || *v == '+' ? 0 : -1;
}

envd_status envd_config_set_envd_version(envd_config *cfg, const char *version)
{
    if (!cfg)
        return ENVD_E_USAGE;
    clear_error(cfg);
    int v[3] = {-1, 0, 0};
    if (version && *version && parse_version(version, v) != 0)
        return refuse(cfg, ENVD_INVALID_ARGUMENT, 1, "version",
                      "must be MAJOR.MINOR.PATCH (as envd reports it, e.g. 0.6.3), got '%.40s'",
                      version);
    memcpy(cfg->envd_version, v, sizeof v);
    return ENVD_OK;
}
