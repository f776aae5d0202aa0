/* envd_client: URL, endpoint and the headers every request carries. */
#include "api/internal.h"
#include "api/traffic.h"
#include "core/alloc.h"
#include "core/buf.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

envd_status envd_endpoint_parse(const char *url, envd_endpoint *ep, char **files_path,
                                envd_error **err)
{
    CURLU *u = curl_url();
    if (!u)
        return ENVD_E_NOMEM;
    char *scheme = NULL, *host = NULL, *port = NULL, *path = NULL;
    envd_status s = ENVD_OK;
    CURLUcode rc = curl_url_set(u, CURLUPART_URL, url, 0);
    if (rc == CURLUE_OK)
        rc = curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
    if (rc == CURLUE_OK)
        rc = curl_url_get(u, CURLUPART_HOST, &host, 0);
    if (rc == CURLUE_OK)
        rc = curl_url_get(u, CURLUPART_PATH, &path, 0);
    if (rc == CURLUE_OK) {
        rc = curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT);
        rc = rc == CURLUE_NO_PORT ? CURLUE_OK : rc;
    }
    if (rc == CURLUE_OUT_OF_MEMORY) {
        s = ENVD_E_NOMEM;
        goto out;
    }
    if (rc != CURLUE_OK) {
        if (err)
            *err = envd_error_new(ENVD_E_CONFIG, ENVD_TRANSPORT_NONE, 0,
                                  "invalid runtime URL '%s'", url);
        s = ENVD_E_CONFIG;
        goto out;
    }
    if (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0) {
        if (err)
            *err = envd_error_new(ENVD_E_CONFIG, ENVD_TRANSPORT_NONE, 0,
                                  "runtime URL '%s': scheme must be http or https", url);
        s = ENVD_E_CONFIG;
        goto out;
    }
    ep->tls = strcmp(scheme, "https") == 0;
    size_t plen = path ? strlen(path) : 0;
    while (plen > 0 && path[plen - 1] == '/')
        plen--;
    const char *p = path ? path : "";
    ep->authority = envd_strdup_printf("%s%s%s", host, port ? ":" : "", port ? port : "");
    ep->base_url = ep->authority ? envd_strdup_printf("%s://%s%.*s", scheme, ep->authority,
                                                      (int)plen, p)
                                 : NULL;
    *files_path = envd_strdup("/files"); /* joined to base_url, which has the path */
    if (!ep->base_url || !*files_path)
        s = ENVD_E_NOMEM;
out:
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_free(path);
    curl_url_cleanup(u);
    return s;
}

static int has_custom(const envd_config *cfg, const char *name)
{
    return envd_kvlist_find(&cfg->headers, name, ENVD_KV_EXACT) < cfg->headers.n;
}

static envd_status build_headers(envd_client *c)
{
    const envd_config *cfg = c->cfg;
    size_t cap = 5 + cfg->headers.n;
    c->headers = envd_calloc(cap, sizeof(envd_kv));
    char *auth = cfg->auth_header ? envd_strdup(cfg->auth_header) : envd_basic_auth(cfg->user);
    char *port = envd_strdup_printf("%d", cfg->runtime_port);
    if (!c->headers || !auth || !port) {
        free(auth);
        free(port);
        return ENVD_E_NOMEM;
    }
    c->own_auth = auth;
    c->own_port = port;
    size_t n = 0;
    c->auth_index = SIZE_MAX;
    if (!has_custom(cfg, "authorization")) {
        c->auth_index = n;
        c->headers[n++] = (envd_kv){"authorization", auth};
    }
    if (cfg->api_key && !has_custom(cfg, "x-api-key"))
        c->headers[n++] = (envd_kv){"x-api-key", cfg->api_key};
    if (cfg->runtime_token && !has_custom(cfg, "x-access-token"))
        c->headers[n++] = (envd_kv){"x-access-token", cfg->runtime_token};
    if (c->sandbox_id && !has_custom(cfg, "e2b-sandbox-id"))
        c->headers[n++] = (envd_kv){"e2b-sandbox-id", c->sandbox_id};
    if (!has_custom(cfg, "e2b-sandbox-port"))
        c->headers[n++] = (envd_kv){"e2b-sandbox-port", port};
    for (size_t i = 0; i < cfg->headers.n; i++)
        c->headers[n++] = (envd_kv){cfg->headers.names[i], cfg->headers.values[i]};
    c->n_headers = n;
    return ENVD_OK;
}

/* Everything after the allocation; on an error the caller frees c. */
static envd_status client_init(envd_client *c, envd_runtime *rt, const char *sandbox_id,
                               const envd_config *cfg, envd_error **err)
{
    atomic_init(&c->refs, 1);
    c->rt = rt;
    c->cfg = envd_config_dup(cfg);
    c->sandbox_id = envd_strdup(sandbox_id ? sandbox_id : "");
    if (!c->cfg || !c->sandbox_id ||
        !(c->keepalive = envd_strdup_printf("%d", c->cfg->keepalive_s)))
        return ENVD_E_NOMEM;
    c->runtime_url = c->cfg->sandbox_base_url
                         ? envd_strdup(c->cfg->sandbox_base_url)
                         : envd_strdup_printf("%s://%s", c->cfg->scheme, c->cfg->domain);
    if (!c->runtime_url)
        return ENVD_E_NOMEM;
    envd_status s = envd_endpoint_parse(c->runtime_url, &c->ep, &c->files_path, err);
    if (s != ENVD_OK)
        return s;
    if (c->cfg->ca_file && !(c->ep.ca_file = envd_strdup(c->cfg->ca_file)))
        return ENVD_E_NOMEM;
    c->ep.h2c_prior_knowledge = c->cfg->h2c && !c->ep.tls;
    c->ep.max_message = (size_t)c->cfg->max_message_bytes;
    if ((s = build_headers(c)) != ENVD_OK)
        return s;
    atomic_init(&c->transport, c->cfg->transport);
    if (c->cfg->traffic_cb && !(c->traffic = envd_traffic_new(c)))
        return ENVD_E_NOMEM;
    return ENVD_OK;
}

envd_status envd_client_new(envd_runtime *rt, const char *sandbox_id, const envd_config *cfg,
                            envd_client **out, envd_error **err)
{
    if (err)
        *err = NULL;
    if (out)
        *out = NULL;
    if (!rt || !out) {
        if (err)
            *err = envd_error_new(ENVD_E_USAGE, ENVD_TRANSPORT_NONE, 0,
                                  "envd_client_new: %s must not be NULL", !rt ? "rt" : "out");
        return ENVD_E_USAGE;
    }
    envd_client *c = envd_calloc(1, sizeof(*c));
    envd_status s = c ? client_init(c, rt, sandbox_id, cfg, err) : ENVD_E_NOMEM;
    if (s != ENVD_OK) {
        envd_client_free(c);
        if (err && !*err)
            *err = envd_error_new(s, ENVD_TRANSPORT_NONE, 0, "envd_client_new: %s",
                                  envd_strerror(s));
        return s;
    }
    *out = c;
    return ENVD_OK;
}

void envd_client_ref(envd_client *c)
{
    atomic_fetch_add(&c->refs, 1);
}

void envd_client_free(envd_client *c)
{
    if (!c || atomic_fetch_sub(&c->refs, 1) != 1)
        return;
    envd_traffic_close(c->traffic);
    free(c->headers);
    free(c->own_auth);
    free(c->own_port);
    envd_config_free(c->cfg);
    free(c->sandbox_id);
    free(c->runtime_url);
    free(c->keepalive);
    free(c->files_path);
    free(c->ep.base_url);
    free(c->ep.authority);
    free(c->ep.ca_file);
    free(c);
}

const char *envd_client_runtime_url(const envd_client *c) { return c ? c->runtime_url : NULL; }

envd_transport_kind envd_client_transport(const envd_client *c)
{
    return c ? (envd_transport_kind)atomic_load(&c->transport) : ENVD_TRANSPORT_NONE;
}
