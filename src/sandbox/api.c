/* The API handle and the creation options: setters only; the calls are in
 * calls.c, their machinery in call.c and limiter.c. */
#include "sandbox/sandbox_internal.h"

#include "core/alloc.h"

#include <stdlib.h>
#include <string.h>

#define MAX_RATE 10000.0
#define MAX_CONCURRENCY 100000
#define MAX_RETRIES 100
#define MAX_RETRY_WAIT_MS 3600000
#define MAX_TIMEOUT_S (86400 * 365)

void sbx_api_ref(envd_sandbox_api *api)
{
    atomic_fetch_add(&api->refs, 1);
}

void sbx_api_unref(envd_sandbox_api *api)
{
    if (!api || atomic_fetch_sub(&api->refs, 1) != 1)
        return;
    envd_config_free(api->cfg);
    free(api->url);
    pthread_mutex_destroy(&api->mu);
    free(api);
}

/* "https://api.<domain>", as the E2B SDKs build the API URL. */
static char *default_url(const envd_config *cfg)
{
    return envd_strdup_printf("https://api.%s", cfg->domain);
}

envd_status envd_sandbox_api_new(envd_runtime *rt, const envd_config *cfg, envd_sandbox_api **out)
{
    if (!out)
        return ENVD_E_USAGE;
    *out = NULL;
    if (!rt)
        return ENVD_E_USAGE;
    envd_sandbox_api *api = envd_calloc(1, sizeof(*api));
    if (!api)
        return ENVD_E_NOMEM;
    atomic_init(&api->refs, 1);
    pthread_mutex_init(&api->mu, NULL);
    api->rt = rt;
    api->retries = 3;
    api->max_wait_ms = 60000;
    api->cfg = cfg ? envd_config_dup(cfg) : envd_config_new();
    api->url = api->cfg ? default_url(api->cfg) : NULL;
    if (!api->url) {
        sbx_api_unref(api);
        return ENVD_E_NOMEM;
    }
    *out = api;
    return ENVD_OK;
}

void envd_sandbox_api_free(envd_sandbox_api *api)
{
    if (!api)
        return;
    sbx_limiter_close(api);
    sbx_api_unref(api);
}

envd_status envd_sandbox_api_set_url(envd_sandbox_api *api, const char *url)
{
    if (!api)
        return ENVD_E_USAGE;
    char *u;
    if (!url || !*url) {
        u = default_url(api->cfg);
    } else {
        size_t n = strlen(url);
        const char *host = strncmp(url, "http://", 7) == 0    ? url + 7
                           : strncmp(url, "https://", 8) == 0 ? url + 8
                                                               : NULL;
        if (!host || !*host || *host == '/' || strpbrk(url, " \t\r\n?#"))
            return ENVD_INVALID_ARGUMENT;
        while (n > 0 && url[n - 1] == '/')
            n--;
        u = envd_strndup(url, n);
    }
    if (!u)
        return ENVD_E_NOMEM;
    pthread_mutex_lock(&api->mu);
    free(api->url);
    api->url = u;
    pthread_mutex_unlock(&api->mu);
    return ENVD_OK;
}

envd_status envd_sandbox_api_set_create_limits(envd_sandbox_api *api, double per_second,
                                               int concurrency)
{
    if (!api)
        return ENVD_E_USAGE;
    if (!(per_second >= 0 && per_second <= MAX_RATE) || concurrency < 0 ||
        concurrency > MAX_CONCURRENCY)
        return ENVD_INVALID_ARGUMENT;
    pthread_mutex_lock(&api->mu);
    api->rate = per_second;
    api->concurrency = concurrency;
    api->tokens = per_second > 1 ? 1 : per_second; /* one may go at once */
    api->refill_ms = envd_now_ms();
    pthread_mutex_unlock(&api->mu);
    return ENVD_OK;
}

envd_status envd_sandbox_api_set_retries(envd_sandbox_api *api, int retries, int64_t max_wait_ms)
{
    if (!api)
        return ENVD_E_USAGE;
    if (retries < 0 || retries > MAX_RETRIES || max_wait_ms < 0 ||
        max_wait_ms > MAX_RETRY_WAIT_MS)
        return ENVD_INVALID_ARGUMENT;
    pthread_mutex_lock(&api->mu);
    api->retries = retries;
    api->max_wait_ms = max_wait_ms;
    pthread_mutex_unlock(&api->mu);
    return ENVD_OK;
}

/* ------------------------------------------------------------- options */

envd_sandbox_opts *envd_sandbox_opts_new(void)
{
    envd_sandbox_opts *o = envd_calloc(1, sizeof(*o));
    if (o)
        o->timeout_s = o->secure = o->auto_pause = -1;
    return o;
}

void envd_sandbox_opts_free(envd_sandbox_opts *o)
{
    if (!o)
        return;
    envd_kvlist_free(&o->metadata);
    envd_kvlist_free(&o->env);
    free(o);
}

envd_status envd_sandbox_opts_set_timeout_s(envd_sandbox_opts *o, int seconds)
{
    if (!o)
        return ENVD_E_USAGE;
    if (seconds < 0 || seconds > MAX_TIMEOUT_S)
        return ENVD_INVALID_ARGUMENT;
    o->timeout_s = seconds;
    return ENVD_OK;
}

static envd_status set_pair(envd_kvlist *l, const char *name, const char *value)
{
    if (!name || !value)
        return ENVD_E_USAGE;
    if (!*name)
        return ENVD_INVALID_ARGUMENT;
    return envd_kvlist_set(l, name, value, ENVD_KV_EXACT) == 0 ? ENVD_OK : ENVD_E_NOMEM;
}

envd_status envd_sandbox_opts_set_metadata(envd_sandbox_opts *o, const char *name,
                                           const char *value)
{
    return o ? set_pair(&o->metadata, name, value) : ENVD_E_USAGE;
}

envd_status envd_sandbox_opts_set_env(envd_sandbox_opts *o, const char *name, const char *value)
{
    return o ? set_pair(&o->env, name, value) : ENVD_E_USAGE;
}

static envd_status set_flag(envd_sandbox_opts *o, int *slot, int v)
{
    if (!o)
        return ENVD_E_USAGE;
    if (v < -1 || v > 1)
        return ENVD_INVALID_ARGUMENT;
    *slot = v;
    return ENVD_OK;
}

envd_status envd_sandbox_opts_set_secure(envd_sandbox_opts *o, int secure)
{
    return set_flag(o, o ? &o->secure : NULL, secure);
}

envd_status envd_sandbox_opts_set_auto_pause(envd_sandbox_opts *o, int auto_pause)
{
    return set_flag(o, o ? &o->auto_pause : NULL, auto_pause);
}
