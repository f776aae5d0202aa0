/* The calls of the sandbox API: their requests (JSON built with jansson),
 * their replies, and the results they leave in futures.
 *
 * Shapes (E2B's spec/openapi.yml, the sandbox-manager's models/sandbox.go):
 *   POST /sandboxes {templateID, timeout, autoPause, secure, metadata,
 *        envVars} -> 201 Sandbox {sandboxID, templateID, envdVersion,
 *        envdAccessToken, domain (nullable), ...}
 *   POST /sandboxes/{id}/connect {timeout} -> 200 or 201 Sandbox
 *   POST /sandboxes/{id}/timeout {timeout} -> 204
 *   DELETE /sandboxes/{id} -> 204, 404 when unknown
 *   GET /v2/sandboxes?metadata=<k=v&..., encoded>&limit=100[&nextToken=T]
 *        -> 200 [ListedSandbox {sandboxID, templateID, state, startedAt,
 *        endAt, metadata, envdVersion, ...}], the next page's token in
 *        X-Next-Token (absent on the last page). */
#include "sandbox/sandbox_internal.h"

#include "api/sync.h"
#include "core/alloc.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>

#define LIST_PAGE 100
#define LIST_MAX_PAGES 1000
#define CONNECT_TIMEOUT_S 300

/* A created or connected sandbox: the public struct and its client. */
typedef struct sbx_rec {
    envd_sandbox pub; /* first; pub.internal_ points back here */
    _Atomic(envd_client *) client;
} sbx_rec;

/* ------------------------------------------------------- sandbox records */

static char *dup_field(json_t *o, const char *key, int *nomem)
{
    const char *v = json_string_value(json_object_get(o, key));
    char *s = v ? envd_strdup(v) : NULL;
    if (v && !s)
        *nomem = 1;
    return s;
}

int sbx_from_json(envd_sandbox *s, json_t *o, const char **why)
{
    memset(s, 0, sizeof(*s));
    if (!json_is_object(o) || !json_is_string(json_object_get(o, "sandboxID")) ||
        !*json_string_value(json_object_get(o, "sandboxID"))) {
        *why = "a sandbox without a sandboxID";
        return -1;
    }
    int nomem = 0;
    s->id = dup_field(o, "sandboxID", &nomem);
    s->template_id = dup_field(o, "templateID", &nomem);
    s->domain = dup_field(o, "domain", &nomem);
    s->access_token = dup_field(o, "envdAccessToken", &nomem);
    s->envd_version = dup_field(o, "envdVersion", &nomem);
    s->state = dup_field(o, "state", &nomem);
    s->started_at = dup_field(o, "startedAt", &nomem);
    s->end_at = dup_field(o, "endAt", &nomem);
    json_t *md = json_object_get(o, "metadata");
    size_t n = json_is_object(md) ? json_object_size(md) : 0;
    envd_kv *kv = n ? envd_calloc(n, sizeof(*kv)) : NULL;
    if (n && !kv)
        nomem = 1;
    const char *k;
    json_t *v;
    if (kv)
        json_object_foreach(md, k, v) {
            if (!json_is_string(v))
                continue;
            char *kk = envd_strdup(k), *vv = envd_strdup(json_string_value(v));
            if (!kk || !vv) {
                free(kk);
                free(vv);
                nomem = 1;
                break;
            }
            kv[s->n_metadata++] = (envd_kv){kk, vv};
        }
    s->metadata = kv;
    if (nomem) {
        sbx_clear(s);
        *why = "out of memory";
        return -1;
    }
    return 0;
}

void sbx_clear(envd_sandbox *s)
{
    const char *f[] = {s->id,    s->template_id, s->domain, s->access_token, s->envd_version,
                       s->state, s->started_at,  s->end_at};
    for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
        free((char *)f[i]);
    for (size_t i = 0; i < s->n_metadata; i++) {
        free((char *)s->metadata[i].name);
        free((char *)s->metadata[i].value);
    }
    free((envd_kv *)s->metadata);
    memset(s, 0, sizeof(*s));
}

static void rec_free(void *p)
{
    sbx_rec *r = p;
    if (!r)
        return;
    envd_client_free(atomic_exchange(&r->client, NULL));
    sbx_clear(&r->pub);
    free(r);
}

void envd_sandbox_free(envd_sandbox *s)
{
    rec_free(s ? s->internal_ : NULL);
}

envd_client *envd_sandbox_take_client(const envd_sandbox *s)
{
    sbx_rec *r = s ? s->internal_ : NULL;
    return r ? atomic_exchange(&r->client, NULL) : NULL;
}

const envd_sandbox *envd_future_sandbox(const envd_future *f)
{
    if (envd_future_status(f) != ENVD_OK)
        return NULL;
    return envd_future_result(f, ENVD_FK_SANDBOX);
}

static int is_address_or_local(const char *d)
{
    if (strchr(d, ':') || strcmp(d, "localhost") == 0)
        return 1; /* a port (or an IPv6 literal) */
    for (; *d; d++)
        if (!((*d >= '0' && *d <= '9') || *d == '.'))
            return 0;
    return 1; /* IPv4 */
}

envd_status sbx_envd_host(const char *domain, const char *id, int port, char **host, int *https)
{
    static const char *const stable[] = {"e2b.app", "e2b.dev", "e2b.pro", "e2b-staging.dev"};
    *https = 0;
    for (size_t i = 0; i < sizeof stable / sizeof stable[0]; i++)
        if (strcmp(domain, stable[i]) == 0) {
            *https = 1;
            *host = envd_strdup_printf("sandbox.%s", domain);
            return *host ? ENVD_OK : ENVD_E_NOMEM;
        }
    *host = is_address_or_local(domain) ? envd_strdup(domain)
                                        : envd_strdup_printf("%d-%s.%s", port, id, domain);
    return *host ? ENVD_OK : ENVD_E_NOMEM;
}

/* The client of a created or connected sandbox: the handle's config with
 * the reply's domain (as the host sbx_envd_host picks), token and envd
 * version. */
static envd_error *make_client(sbx_call *c, sbx_rec *r)
{
    const envd_sandbox *s = &r->pub;
    envd_config *cfg = envd_config_dup(c->api->cfg);
    if (!cfg)
        return envd_error_new(ENVD_E_NOMEM, ENVD_TRANSPORT_NONE, 0, "out of memory");
    const char *bad = NULL;
    envd_status st = ENVD_OK;
    char *host = NULL;
    int https = 0;
    if (s->domain && *s->domain &&
        ((st = sbx_envd_host(s->domain, s->id, cfg->runtime_port, &host, &https)) != ENVD_OK ||
         (st = envd_config_set_domain(cfg, host)) != ENVD_OK ||
         (https && (st = envd_config_set_scheme(cfg, "https")) != ENVD_OK)))
        bad = "domain";
    else if (s->access_token && *s->access_token &&
             (st = envd_config_set_runtime_token(cfg, s->access_token)) != ENVD_OK)
        bad = "envdAccessToken";
    else if (s->envd_version && *s->envd_version &&
             (st = envd_config_set_envd_version(cfg, s->envd_version)) != ENVD_OK)
        bad = "envdVersion";
    envd_error *e = NULL;
    if (bad) {
        e = envd_error_new(st == ENVD_E_NOMEM ? st : ENVD_E_PROTOCOL, ENVD_TRANSPORT_HTTP,
                           (int)c->status, "%s: the API's reply for sandbox %s has an unusable %s: %s",
                           c->what, s->id, bad, envd_config_last_error(cfg));
    } else {
        envd_client *cl = NULL;
        if (envd_client_new(c->api->rt, s->id, cfg, &cl, &e) == ENVD_OK)
            atomic_store(&r->client, cl);
        else if (e)
            e = envd_error_wrap(e, c->what);
    }
    free(host);
    envd_config_free(cfg);
    return e;
}

static envd_error *bad_reply(sbx_call *c, const char *why)
{
    return envd_error_new(strcmp(why, "out of memory") == 0 ? ENVD_E_NOMEM : ENVD_E_PROTOCOL,
                          ENVD_TRANSPORT_HTTP, (int)c->status, "%s: the API's reply: %s", c->what,
                          why);
}

static char *id_path(const char *id, const char *tail);

/* create and connect: a Sandbox, then a client for it. */
static envd_error *sandbox_done(sbx_call *c, void **result, envd_free_fn *free_fn, int *again)
{
    json_t *j = json_loadb(envd_buf_str(&c->reply), c->reply.len, 0, NULL);
    sbx_rec *r = envd_calloc(1, sizeof(*r));
    const char *why = !j ? "not JSON" : !r ? "out of memory" : NULL;
    envd_error *e = NULL;
    if (!why && sbx_from_json(&r->pub, j, &why) == 0) {
        r->pub.internal_ = r;
        atomic_init(&r->client, NULL);
        e = make_client(c, r);
    } else {
        e = bad_reply(c, why);
    }
    json_decref(j);
    if (e && r && r->pub.internal_ && c->limited && c->status >= 200 && c->status <= 299) {
        /* A sandbox was made but cannot be used: delete it rather than
         * leave it running, then end with e (call.c: cleanup_over). */
        char *path = id_path(r->pub.id, "");
        if (path) {
            free(c->path);
            c->path = path;
            c->method = "DELETE";
            free(c->body);
            c->body = NULL;
            c->cleanup_err = e;
            rec_free(r);
            *again = 1;
            return NULL;
        }
    }
    if (e) {
        if (r && r->pub.internal_)
            rec_free(r);
        else
            free(r);
        return e;
    }
    *result = r;
    *free_fn = rec_free;
    return NULL;
}

/* set_timeout: any 2xx. */
static envd_error *none_done(sbx_call *c, void **result, envd_free_fn *free_fn, int *again)
{
    (void)c, (void)result, (void)free_fn, (void)again;
    return NULL;
}

static envd_error *bool_result(int v, void **result, envd_free_fn *free_fn)
{
    int *b = envd_malloc(sizeof(*b));
    if (!b)
        return envd_error_new(ENVD_E_NOMEM, ENVD_TRANSPORT_NONE, 0, "out of memory");
    *b = v;
    *result = b;
    *free_fn = free;
    return NULL;
}

/* A 404 is "not killed" and no error, as the SDKs' kill answers (call.c
 * hands it here for a call whose done is this one). */
envd_error *sbx_kill_done(sbx_call *c, void **result, envd_free_fn *free_fn, int *again)
{
    (void)again;
    return bool_result(c->status != 404, result, free_fn);
}

/* --------------------------------------------------------------- starters */

/* The call's what, path and body; takes body (a jansson object) and the
 * printf-made what. NULL on out of memory (nothing left behind). */
static sbx_call *call_build(envd_sandbox_api *api, const char *method, char *what, char *path,
                            json_t *body, sbx_done_fn done)
{
    sbx_call *c = what && path ? sbx_call_new(api, method) : NULL;
    char *b = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!c || (body && !b)) {
        if (c)
            sbx_call_unref(c);
        free(what);
        free(path);
        free(b);
        return NULL;
    }
    c->what = what;
    c->path = path;
    c->body = b;
    c->done = done;
    return c;
}

/* "/sandboxes/<id><tail>" with the ID escaped. */
static char *id_path(const char *id, const char *tail)
{
    char *e = curl_easy_escape(NULL, id, 0);
    char *p = e ? envd_strdup_printf("/sandboxes/%s%s", e, tail) : NULL;
    curl_free(e);
    return p;
}

static json_t *kv_object(const envd_kvlist *l)
{
    json_t *o = json_object();
    for (size_t i = 0; o && i < l->n; i++)
        if (json_object_set_new(o, l->names[i], json_string(l->values[i])) != 0) {
            json_decref(o);
            return NULL;
        }
    return o;
}

/* NewSandbox as E2B's spec names its fields. NULL on out of memory. */
static json_t *new_sandbox_body(const char *template_id, const envd_sandbox_opts *o)
{
    json_t *b = json_object();
    int bad = !b || json_object_set_new(b, "templateID", json_string(template_id)) != 0;
    if (o && !bad && o->timeout_s >= 0)
        bad = json_object_set_new(b, "timeout", json_integer(o->timeout_s)) != 0;
    if (o && !bad && o->secure >= 0)
        bad = json_object_set_new(b, "secure", json_boolean(o->secure)) != 0;
    if (o && !bad && o->auto_pause >= 0)
        bad = json_object_set_new(b, "autoPause", json_boolean(o->auto_pause)) != 0;
    if (o && !bad && o->metadata.n)
        bad = json_object_set_new(b, "metadata", kv_object(&o->metadata)) != 0;
    if (o && !bad && o->env.n)
        bad = json_object_set_new(b, "envVars", kv_object(&o->env)) != 0;
    if (bad) {
        json_decref(b);
        return NULL;
    }
    return b;
}

static envd_status started(sbx_call *c, int kind, envd_future **out)
{
    if (!c)
        return envd_start_error(ENVD_E_NOMEM, "out of memory");
    return sbx_call_start(c, kind, out);
}

envd_status envd_sandbox_create_async(envd_sandbox_api *api, const char *template_id,
                                      const envd_sandbox_opts *o, envd_future **out)
{
    if (!out)
        return envd_start_error(ENVD_E_USAGE, "out is NULL");
    *out = NULL;
    if (!api || !template_id || !*template_id)
        return envd_start_error(ENVD_E_USAGE, "%s", !api ? "api is NULL" : "template_id is empty");
    json_t *b = new_sandbox_body(template_id, o);
    char *what = envd_strdup_printf("create sandbox from template '%s'", template_id);
    sbx_call *c =
        b ? call_build(api, "POST", what, envd_strdup("/sandboxes"), b, sandbox_done) : NULL;
    if (!b)
        free(what);
    if (c)
        c->limited = 1;
    return started(c, ENVD_FK_SANDBOX, out);
}

/* The starters that address one sandbox by ID. */
static envd_status id_call(envd_sandbox_api *api, const char *id, const char *method,
                           const char *verb, const char *tail, json_t *body, sbx_done_fn done,
                           int kind, envd_future **out)
{
    if (!out) {
        json_decref(body);
        return envd_start_error(ENVD_E_USAGE, "out is NULL");
    }
    *out = NULL;
    if (!api || !id || !*id) {
        json_decref(body);
        return envd_start_error(ENVD_E_USAGE, "%s", !api ? "api is NULL" : "sandbox_id is empty");
    }
    char *what = envd_strdup_printf("%s sandbox %s", verb, id);
    return started(call_build(api, method, what, id_path(id, tail), body, done), kind, out);
}

static json_t *timeout_body(int seconds)
{
    json_t *b = json_object();
    if (b && json_object_set_new(b, "timeout", json_integer(seconds)) != 0) {
        json_decref(b);
        return NULL;
    }
    return b;
}

envd_status envd_sandbox_connect_async(envd_sandbox_api *api, const char *sandbox_id,
                                       const envd_sandbox_opts *o, envd_future **out)
{
    int t = o && o->timeout_s >= 0 ? o->timeout_s : CONNECT_TIMEOUT_S;
    json_t *b = timeout_body(t);
    if (!b)
        return envd_start_error(ENVD_E_NOMEM, "out of memory");
    return id_call(api, sandbox_id, "POST", "connect to", "/connect", b, sandbox_done,
                   ENVD_FK_SANDBOX, out);
}

envd_status envd_sandbox_kill_async(envd_sandbox_api *api, const char *sandbox_id,
                                    envd_future **out)
{
    envd_status st =
        id_call(api, sandbox_id, "DELETE", "kill", "", NULL, sbx_kill_done, ENVD_FK_BOOL, out);
    return st;
}

envd_status envd_sandbox_set_timeout_async(envd_sandbox_api *api, const char *sandbox_id,
                                           int seconds, envd_future **out)
{
    if (seconds < 0 || seconds > 86400 * 365) {
        if (out)
            *out = NULL;
        return envd_start_error(ENVD_INVALID_ARGUMENT,
                                "seconds: must be between 0 and 31536000, got %d", seconds);
    }
    json_t *b = timeout_body(seconds);
    if (!b)
        return envd_start_error(ENVD_E_NOMEM, "out of memory");
    return id_call(api, sandbox_id, "POST", "set the timeout of", "/timeout", b, none_done,
                   ENVD_FK_NONE, out);
}

/* ------------------------------------------------------------------ list */

typedef struct sbx_list {
    envd_sandboxes pub; /* first */
    envd_sandbox *items;
    size_t cap;
    int pages;
    char *query; /* "/v2/sandboxes?limit=100[&metadata=...]" */
} sbx_list;

static void list_free(void *p)
{
    sbx_list *l = p;
    if (!l)
        return;
    for (size_t i = 0; i < l->pub.count; i++)
        sbx_clear(&l->items[i]);
    free(l->items);
    free(l->query);
    free(l);
}

void envd_sandboxes_free(envd_sandboxes *l)
{
    list_free(l);
}

const envd_sandboxes *envd_future_sandboxes(const envd_future *f)
{
    if (envd_future_status(f) != ENVD_OK)
        return NULL;
    return envd_future_result(f, ENVD_FK_SANDBOX_LIST);
}

/* One page: its sandboxes appended; the next page asked for while
 * X-Next-Token names one. */
static envd_error *list_done(sbx_call *c, void **result, envd_free_fn *free_fn, int *again)
{
    sbx_list *l = c->ctx;
    json_t *j = json_loadb(envd_buf_str(&c->reply), c->reply.len, 0, NULL);
    const char *why = !j ? "not JSON" : !json_is_array(j) ? "not a JSON array" : NULL;
    size_t n = why ? 0 : json_array_size(j);
    if (!why && l->pub.count + n > l->cap) {
        size_t cap = l->pub.count + n + 16;
        envd_sandbox *v = envd_realloc(l->items, cap * sizeof(*v));
        if (!v)
            why = "out of memory";
        else {
            l->items = v;
            l->cap = cap;
            l->pub.items = v;
        }
    }
    for (size_t i = 0; !why && i < n; i++)
        if (sbx_from_json(&l->items[l->pub.count], json_array_get(j, i), &why) == 0)
            l->pub.count++;
    json_decref(j);
    if (why)
        return bad_reply(c, why);
    if (c->next_token && ++l->pages < LIST_MAX_PAGES) {
        char *e = curl_easy_escape(NULL, c->next_token, 0);
        char *path = e ? envd_strdup_printf("%s&nextToken=%s", l->query, e) : NULL;
        curl_free(e);
        if (!path)
            return envd_error_new(ENVD_E_NOMEM, ENVD_TRANSPORT_NONE, 0, "out of memory");
        free(c->path);
        c->path = path;
        *again = 1;
        return NULL;
    }
    if (c->next_token)
        return envd_error_new(ENVD_RESOURCE_EXHAUSTED, ENVD_TRANSPORT_HTTP, (int)c->status,
                              "%s: more than %d pages", c->what, LIST_MAX_PAGES);
    c->ctx = NULL; /* the list is the result now */
    *result = l;
    *free_fn = list_free;
    return NULL;
}

/* The metadata filter as E2B's spec asks: "k=v&k2=v2" with each key and
 * value URL-encoded, then the whole encoded as the query value. */
static char *metadata_query(const envd_kv *md, size_t n)
{
    envd_buf b;
    envd_buf_init(&b);
    int bad = 0;
    for (size_t i = 0; i < n && !bad; i++) {
        if (!md[i].name || !md[i].value)
            continue;
        char *k = curl_easy_escape(NULL, md[i].name, 0);
        char *v = curl_easy_escape(NULL, md[i].value, 0);
        bad = !k || !v || envd_buf_appendf(&b, "%s%s=%s", b.len ? "&" : "", k, v) != 0;
        curl_free(k);
        curl_free(v);
    }
    char *outer = !bad && b.len ? curl_easy_escape(NULL, envd_buf_str(&b), (int)b.len) : NULL;
    char *q = bad || (b.len && !outer)
                  ? NULL
                  : envd_strdup_printf("/v2/sandboxes?limit=%d%s%s", LIST_PAGE,
                                       outer ? "&metadata=" : "", outer ? outer : "");
    curl_free(outer);
    envd_buf_free(&b);
    return q;
}

envd_status envd_sandbox_list_async(envd_sandbox_api *api, const envd_kv *metadata, size_t n,
                                    envd_future **out)
{
    if (!out)
        return envd_start_error(ENVD_E_USAGE, "out is NULL");
    *out = NULL;
    if (!api || (n && !metadata))
        return envd_start_error(ENVD_E_USAGE, "%s", !api ? "api is NULL" : "metadata is NULL");
    sbx_list *l = envd_calloc(1, sizeof(*l));
    if (l && !(l->query = metadata_query(metadata, n))) {
        free(l);
        l = NULL;
    }
    sbx_call *c = l ? call_build(api, "GET", envd_strdup("list sandboxes"),
                                 envd_strdup(l->query), NULL, list_done)
                    : NULL;
    if (!c) {
        list_free(l);
        return envd_start_error(ENVD_E_NOMEM, "out of memory");
    }
    c->ctx = l;
    c->ctx_free = list_free;
    return sbx_call_start(c, ENVD_FK_SANDBOX_LIST, out);
}
