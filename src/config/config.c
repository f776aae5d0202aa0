/* envd_config: the Go client's options and defaults, plus ours. */
#include "config/config.h"

#include <ctype.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_DOMAIN "domain.app"
#define DEFAULT_USER "root"

static int set_str(char **slot, const char *v)
{
    char *c = NULL;
    if (v && !(c = strdup(v)))
        return -1;
    free(*slot);
    *slot = c;
    return 0;
}

char *envd_basic_auth(const char *user)
{
    size_t ul = strlen(user);
    unsigned char *raw = malloc(ul + 2);
    if (!raw)
        return NULL;
    memcpy(raw, user, ul);
    raw[ul] = ':';
    size_t b64 = 4 * ((ul + 1 + 2) / 3);
    char *out = malloc(6 + b64 + 1);
    if (out) {
        memcpy(out, "Basic ", 6);
        EVP_EncodeBlock((unsigned char *)out + 6, raw, (int)(ul + 1));
    }
    free(raw);
    return out;
}

envd_config *envd_config_new(void)
{
    envd_config *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    const char *scheme = getenv("SCHEME"); /* as the Go client: before options */
    if (set_str(&c->domain, DEFAULT_DOMAIN) || set_str(&c->scheme, scheme && *scheme ? scheme : "http") ||
        set_str(&c->user, DEFAULT_USER)) {
        envd_config_free(c);
        return NULL;
    }
    c->runtime_port = 49983;
    c->request_timeout_ms = 60000;
    c->transport = ENVD_TRANSPORT_AUTO;
    c->keepalive_s = 50;
    c->idle_timeout_ms = 110000; /* a little over two keepalive intervals */
    c->workers = 0;
    c->max_inflight = 4096;
    c->fail_fast = 0;
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
    free(c->ca_file);
    for (size_t i = 0; i < c->n_headers; i++) {
        free(c->header_names[i]);
        free(c->header_values[i]);
    }
    free(c->header_names);
    free(c->header_values);
    free(c);
}

envd_config *envd_config_dup(const envd_config *src)
{
    if (!src)
        return envd_config_new();
    envd_config *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    *c = *src;
    c->domain = c->scheme = c->runtime_token = c->api_key = c->auth_header = c->user = NULL;
    c->sandbox_base_url = c->ca_file = NULL;
    c->header_names = c->header_values = NULL;
    c->n_headers = 0;
    int bad = set_str(&c->domain, src->domain) || set_str(&c->scheme, src->scheme) ||
              set_str(&c->runtime_token, src->runtime_token) || set_str(&c->api_key, src->api_key) ||
              set_str(&c->auth_header, src->auth_header) || set_str(&c->user, src->user) ||
              set_str(&c->sandbox_base_url, src->sandbox_base_url) ||
              set_str(&c->ca_file, src->ca_file);
    for (size_t i = 0; !bad && i < src->n_headers; i++)
        bad = envd_config_set_header(c, src->header_names[i], src->header_values[i]) != ENVD_OK;
    if (bad) {
        envd_config_free(c);
        return NULL;
    }
    return c;
}

#define SETTER_STR(fn, field)                                                                     \
    envd_status fn(envd_config *cfg, const char *v)                                               \
    {                                                                                              \
        if (!cfg)                                                                                  \
            return ENVD_E_USAGE;                                                                   \
        return set_str(&cfg->field, v && *v ? v : NULL) ? ENVD_E_NOMEM : ENVD_OK;                 \
    }

SETTER_STR(envd_config_set_runtime_token, runtime_token)
SETTER_STR(envd_config_set_api_key, api_key)
SETTER_STR(envd_config_set_sandbox_base_url, sandbox_base_url)
SETTER_STR(envd_config_set_ca_file, ca_file)

envd_status envd_config_set_domain(envd_config *cfg, const char *v)
{
    if (!cfg || !v || !*v)
        return cfg ? ENVD_INVALID_ARGUMENT : ENVD_E_USAGE;
    return set_str(&cfg->domain, v) ? ENVD_E_NOMEM : ENVD_OK;
}

envd_status envd_config_set_scheme(envd_config *cfg, const char *v)
{
    if (!cfg)
        return ENVD_E_USAGE;
    if (v && *v && strcmp(v, "http") != 0 && strcmp(v, "https") != 0)
        return ENVD_INVALID_ARGUMENT;
    return set_str(&cfg->scheme, v && *v ? v : "http") ? ENVD_E_NOMEM : ENVD_OK;
}

envd_status envd_config_set_runtime_port(envd_config *cfg, int port)
{
    if (!cfg)
        return ENVD_E_USAGE;
    cfg->runtime_port = port > 0 && port < 65536 ? port : 49983;
    return ENVD_OK;
}

/* The user behind a "Basic base64(user:pass)" value, or NULL. */
static char *user_from_basic(const char *v)
{
    if (strncasecmp(v, "Basic ", 6) != 0)
        return NULL;
    const char *b = v + 6;
    size_t n = strlen(b);
    if (n == 0 || n % 4)
        return NULL;
    unsigned char *raw = malloc(n / 4 * 3 + 1);
    if (!raw)
        return NULL;
    int len = EVP_DecodeBlock(raw, (const unsigned char *)b, (int)n);
    if (len < 0) {
        free(raw);
        return NULL;
    }
    while (len > 0 && b[n - 1] == '=' && raw[len - 1] == 0) { /* padding bytes */
        len--;
        n--;
    }
    raw[len] = 0;
    char *colon = memchr(raw, ':', (size_t)len);
    if (!colon || colon == (char *)raw) {
        free(raw);
        return NULL;
    }
    *colon = 0;
    return (char *)raw;
}

envd_status envd_config_set_auth_header(envd_config *cfg, const char *v)
{
    if (!cfg)
        return ENVD_E_USAGE;
    if (!v || !*v) {
        free(cfg->auth_header);
        cfg->auth_header = NULL;
        return set_str(&cfg->user, DEFAULT_USER) ? ENVD_E_NOMEM : ENVD_OK;
    }
    if (set_str(&cfg->auth_header, v))
        return ENVD_E_NOMEM;
    /* Keep /files on the same user as the RPCs when the header names one. */
    char *u = user_from_basic(v);
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
    if (!user || !*user || strchr(user, ':'))
        return ENVD_INVALID_ARGUMENT;
    if (set_str(&cfg->user, user))
        return ENVD_E_NOMEM;
    free(cfg->auth_header);
    cfg->auth_header = NULL;
    return ENVD_OK;
}

static int header_ok(const char *s, int name)
{
    if (name && !*s)
        return 0;
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '\r' || ch == '\n' || ch == 0x7f || (ch < 0x20 && ch != '\t'))
            return 0;
        if (name && (ch == ':' || isspace(ch)))
            return 0;
    }
    return 1;
}

envd_status envd_config_set_header(envd_config *cfg, const char *name, const char *value)
{
    if (!cfg || !name || !value)
        return ENVD_E_USAGE;
    if (!header_ok(name, 1) || !header_ok(value, 0))
        return ENVD_INVALID_ARGUMENT;
    char *lname = strdup(name);
    if (!lname)
        return ENVD_E_NOMEM;
    for (char *p = lname; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    for (size_t i = 0; i < cfg->n_headers; i++) {
        if (strcmp(cfg->header_names[i], lname) == 0) {
            free(lname);
            return set_str(&cfg->header_values[i], value) ? ENVD_E_NOMEM : ENVD_OK;
        }
    }
    char *v = strdup(value);
    char **nn = realloc(cfg->header_names, (cfg->n_headers + 1) * sizeof(char *));
    if (nn)
        cfg->header_names = nn;
    char **nv = realloc(cfg->header_values, (cfg->n_headers + 1) * sizeof(char *));
    if (nv)
        cfg->header_values = nv;
    if (!v || !nn || !nv) {
        free(v);
        free(lname);
        return ENVD_E_NOMEM;
    }
    cfg->header_names[cfg->n_headers] = lname;
    cfg->header_values[cfg->n_headers] = v;
    cfg->n_headers++;
    return ENVD_OK;
}

envd_status envd_config_set_headers(envd_config *cfg, const char *const *names,
                                    const char *const *values, size_t n)
{
    if (!cfg || (n && (!names || !values)))
        return ENVD_E_USAGE;
    for (size_t i = 0; i < n; i++) {
        envd_status s = envd_config_set_header(cfg, names[i], values[i]);
        if (s != ENVD_OK)
            return s;
    }
    return ENVD_OK;
}

envd_status envd_config_set_request_timeout_ms(envd_config *cfg, int64_t ms)
{
    if (!cfg)
        return ENVD_E_USAGE;
    if (ms < 0)
        return ENVD_INVALID_ARGUMENT;
    cfg->request_timeout_ms = ms;
    return ENVD_OK;
}

envd_status envd_config_set_transport(envd_config *cfg, envd_transport_kind kind)
{
    if (!cfg)
        return ENVD_E_USAGE;
    if (kind != ENVD_TRANSPORT_GRPC && kind != ENVD_TRANSPORT_CONNECT && kind != ENVD_TRANSPORT_AUTO)
        return ENVD_INVALID_ARGUMENT;
    cfg->transport = kind;
    return ENVD_OK;
}

envd_status envd_config_set_keepalive_s(envd_config *cfg, int seconds)
{
    if (!cfg)
        return ENVD_E_USAGE;
    if (seconds <= 0) /* envd panics on a non-positive ticker interval */
        return ENVD_INVALID_ARGUMENT;
    cfg->keepalive_s = seconds;
    return ENVD_OK;
}

envd_status envd_config_set_h2c(envd_config *cfg, int enabled)
{
    if (!cfg)
        return ENVD_E_USAGE;
    cfg->h2c = enabled != 0;
    return ENVD_OK;
}

envd_status envd_config_set_idle_timeout_ms(envd_config *cfg, int64_t ms)
{
    if (!cfg)
        return ENVD_E_USAGE;
    if (ms < 0)
        return ENVD_INVALID_ARGUMENT;
    cfg->idle_timeout_ms = ms;
    return ENVD_OK;
}

envd_status envd_config_set_workers(envd_config *cfg, int workers)
{
    if (!cfg)
        return ENVD_E_USAGE;
    cfg->workers = workers > 0 ? workers : 0;
    return ENVD_OK;
}

envd_status envd_config_set_max_inflight(envd_config *cfg, int max_inflight, int fail_fast)
{
    if (!cfg)
        return ENVD_E_USAGE;
    if (max_inflight <= 0)
        return ENVD_INVALID_ARGUMENT;
    cfg->max_inflight = max_inflight;
    cfg->fail_fast = fail_fast != 0;
    return ENVD_OK;
}
