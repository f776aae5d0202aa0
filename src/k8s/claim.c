/* SandboxClaims: create, wait, list, clients; and release. Both are step
 * operations of the lookup (lookup.c): the same connections, kubeconfig,
 * exec plugin and error answers as a Sandbox read, one request after the
 * other, a poll's back-off on the runtime's timers. */
#include "k8s/claim.h"
#include "api/sync.h"
#include "core/alloc.h"
#include "core/buf.h"
#include "k8s/k8s.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define API "/apis/agents.kruise.io/v1alpha1/namespaces/"
#define POLL_FIRST_MS 100
#define POLL_MAX_MS 2000
#define DEFAULT_CLAIM_TIMEOUT_MS 60000 /* the CRD's default claimTimeout */
#define DEFAULT_WAIT_READY_MS 30000    /* and waitReadyTimeout */
#define WAIT_SLACK_MS 30000

static const envd_k8s_what CREATE = {"create", "sandboxclaims", "sandbox claim"};
static const envd_k8s_what GET = {"get", "sandboxclaims", "sandbox claim"};
static const envd_k8s_what LIST = {"list", "sandboxes", "sandbox"};
static const envd_k8s_what DELETE = {"delete", "sandboxclaims", "sandbox claim"};
static const envd_k8s_what DELETE_ALL = {"deletecollection", "sandboxes", "sandbox"};

/* ------------------------------------------------------------ the result */

typedef struct claimed {
    envd_k8s_claimed pub; /* first */
    char *ns, *name, *template_name;
    envd_k8s_sandboxes *list; /* every listed Sandbox; items point into it */
    envd_k8s_sandbox *items;
} claimed;

void envd_k8s_claimed_free(envd_k8s_claimed *pub)
{
    claimed *c = (claimed *)pub;
    if (!c)
        return;
    for (size_t i = 0; c->pub.clients && i < c->pub.count; i++)
        envd_client_free(c->pub.clients[i]);
    free(c->pub.clients);
    free(c->items);
    envd_k8s_sandboxes_free(c->list);
    free(c->ns);
    free(c->name);
    free(c->template_name);
    free(c);
}

static void claimed_free_fn(void *p)
{
    envd_k8s_claimed_free(p);
}

/* ------------------------------------------------------------- the claim */

enum { S_START, S_CREATE, S_POLL, S_LIST };

typedef struct claim_ctx {
    envd_runtime *rt;
    envd_config *cfg;
    envd_k8s_claim_options *o;
    char *template_name, *name, *ns;
    int stage;
    int64_t deadline_ms, wait_ms, backoff_ms;
    /* the claim's status as last read */
    int claimed, completed, timed_out, gave_up;
    char phase[32], message[512];
} claim_ctx;

static void claim_ctx_free(void *p)
{
    claim_ctx *cx = p;
    if (!cx)
        return;
    envd_config_free(cx->cfg);
    envd_k8s_claim_options_free(cx->o);
    free(cx->template_name);
    free(cx->name);
    free(cx->ns);
    free(cx);
}

static envd_error *nomem(void)
{
    return envd_error_new(ENVD_E_NOMEM, ENVD_TRANSPORT_NONE, 0, "out of memory");
}

/* "claim <ns>/<name> of template '<t>'": every error of the claim says it. */
static envd_error *wrap(const claim_ctx *cx, envd_error *e)
{
    char prefix[700];
    snprintf(prefix, sizeof(prefix), "claim %s/%s of template '%s'", cx->ns, cx->name,
             cx->template_name);
    return envd_error_wrap(e, prefix);
}

static envd_error *answer_error(const claim_ctx *cx, const envd_k8s_answer *a, const char *name,
                                const envd_k8s_what *w)
{
    return wrap(cx, envd_k8s_status_error(a->conn, a->cred_kind, a->status, a->body, a->len,
                                          a->ns, name, w));
}

static const char *str_at(json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s ? s : "";
}

/* Reads status.phase, claimedReplicas, message and the conditions. */
static envd_error *read_status(claim_ctx *cx, const envd_k8s_answer *a)
{
    json_error_t je;
    json_t *root = json_loadb(a->body ? a->body : "", a->len, 0, &je);
    if (!json_is_object(root)) {
        json_decref(root);
        return wrap(cx, envd_error_new(ENVD_E_PROTOCOL, ENVD_TRANSPORT_HTTP, (int)a->status,
                                       "the SandboxClaim from %s is not a JSON object (%s)",
                                       a->conn->server, je.text));
    }
    json_t *status = json_object_get(root, "status");
    snprintf(cx->phase, sizeof(cx->phase), "%s", str_at(status, "phase"));
    snprintf(cx->message, sizeof(cx->message), "%s", str_at(status, "message"));
    json_int_t n = json_integer_value(json_object_get(status, "claimedReplicas"));
    cx->claimed = n < 0 ? 0 : n > 1000000 ? 1000000 : (int)n;
    cx->completed = strcmp(cx->phase, "Completed") == 0;
    json_t *conds = json_object_get(status, "conditions");
    for (size_t i = 0; i < json_array_size(conds); i++) {
        json_t *c = json_array_get(conds, i);
        int is_true = strcmp(str_at(c, "status"), "True") == 0;
        if (strcmp(str_at(c, "type"), "TimedOut") == 0 && is_true) {
            cx->timed_out = 1;
            if (!cx->message[0]) /* the condition's words when the status has none */
                snprintf(cx->message, sizeof(cx->message), "%s", str_at(c, "message"));
        } else if (strcmp(str_at(c, "type"), "Completed") == 0 && is_true) {
            cx->completed = 1;
        }
    }
    json_decref(root);
    return NULL;
}

/* The next request: another look at the claim after the back-off, or,
 * once it completed (or the wait bound ran out), the list of its
 * Sandboxes. */
static int poll_or_list(claim_ctx *cx, envd_k8s_req *next)
{
    int64_t now = envd_now_ms();
    if (!cx->completed && !cx->timed_out && now >= cx->deadline_ms)
        cx->gave_up = 1;
    if (cx->completed || cx->timed_out || cx->gave_up) {
        cx->stage = S_LIST;
        next->path = envd_strdup_printf(API "%s/sandboxes?labelSelector=" ENVD_K8S_LABEL_CLAIM
                                                "%%3D%s",
                                        cx->ns, cx->name);
    } else {
        next->path = envd_strdup_printf(API "%s/sandboxclaims/%s", cx->ns, cx->name);
        next->delay_ms = cx->backoff_ms;
        if (next->delay_ms > cx->deadline_ms - now)
            next->delay_ms = cx->deadline_ms - now;
        cx->backoff_ms = cx->backoff_ms * 3 / 2 > POLL_MAX_MS ? POLL_MAX_MS : cx->backoff_ms * 3 / 2;
    }
    next->method = "GET"; /* a NULL path: step_next reports it */
    return 1;
}

/* A result without Sandboxes yet: the claim's name, for a release. */
static claimed *claimed_new(const claim_ctx *cx)
{
    claimed *c = envd_calloc(1, sizeof(*c));
    if (!c || !(c->ns = envd_strdup(cx->ns)) || !(c->name = envd_strdup(cx->name)) ||
        !(c->template_name = envd_strdup(cx->template_name))) {
        envd_k8s_claimed_free(c ? &c->pub : NULL);
        return NULL;
    }
    c->pub = (envd_k8s_claimed){.namespace_ = c->ns,
                                .name = c->name,
                                .template_name = c->template_name,
                                .replicas = cx->o->replicas,
                                .claimed = cx->claimed};
    return c;
}

/* A client for each running Sandbox of the list; what is not becomes
 * part of *why ("ns/name: phase ..., Ready ...; ..."). Returns how many
 * of the listed ones are not usable; *nomem counts those of them that
 * memory ran out for. */
static size_t make_clients(const claim_ctx *cx, claimed *c, char *why, size_t cap, size_t *nomem)
{
    const envd_k8s_sandboxes *l = c->list;
    size_t bad = 0, w = 0;
    *nomem = 0;
    for (size_t i = 0; i < l->count; i++) {
        const envd_k8s_sandbox *s = &l->items[i];
        envd_client *client = NULL;
        envd_error *e = NULL;
        envd_status st = ENVD_E_NOMEM; /* what kept its client from being made */
        envd_config *cfg = s->running ? envd_config_dup(cx->cfg) : NULL;
        if (cfg && s->token && (st = envd_config_set_runtime_token(cfg, s->token)) != ENVD_OK) {
            envd_config_free(cfg);
            cfg = NULL;
        }
        if (cfg)
            st = envd_client_new(cx->rt, s->id, cfg, &client, &e);
        envd_config_free(cfg);
        if (client) {
            c->items[c->pub.count] = *s;
            c->pub.clients[c->pub.count++] = client;
            continue;
        }
        bad++;
        *nomem += s->running && st == ENVD_E_NOMEM;
        if (w + 2 < cap) {
            int n = s->running ? snprintf(why + w, cap - w, "%s%s/%s: %s", w ? "; " : "",
                                          s->namespace_, s->name,
                                          e ? envd_error_message(e) : envd_strerror(st))
                               : snprintf(why + w, cap - w, "%s%s/%s: phase \"%s\", Ready \"%s\"",
                                          w ? "; " : "", s->namespace_, s->name, s->phase,
                                          s->ready);
            w += n > 0 ? (size_t)n : 0;
        }
        envd_error_free(e);
    }
    return bad;
}

/* What the claim got, in words, when it is not everything asked for. */
static envd_error *shortfall(const claim_ctx *cx, const claimed *c, size_t not_ready,
                             const char *why)
{
    int want = cx->o->replicas;
    char counts[160], tail[1400] = "";
    snprintf(counts, sizeof(counts), "%d of %d sandboxes claimed", cx->claimed, want);
    if (not_ready)
        snprintf(tail, sizeof(tail), "; %zu of the %zu listed cannot be used: %s", not_ready,
                 c->list->count, why);
    const char *msg = cx->message[0] ? cx->message : "no message from the controller";
    if (cx->timed_out)
        return envd_error_new(ENVD_DEADLINE_EXCEEDED, ENVD_TRANSPORT_NONE, 0,
                              "timed out (condition TimedOut) with %s: %s%s", counts, msg, tail);
    if (cx->gave_up)
        return envd_error_new(ENVD_DEADLINE_EXCEEDED, ENVD_TRANSPORT_NONE, 0,
                              "not completed after %lld ms (phase \"%s\"), %s%s",
                              (long long)cx->wait_ms, cx->phase[0] ? cx->phase : "(unset)",
                              counts, tail);
    if (c->list->count < (size_t)want)
        return envd_error_new(ENVD_RESOURCE_EXHAUSTED, ENVD_TRANSPORT_NONE, 0,
                              "completed with %s (%zu found by label " ENVD_K8S_LABEL_CLAIM
                              "): %s%s",
                              counts, c->list->count, msg, tail);
    if (not_ready)
        return envd_error_new(ENVD_FAILED_PRECONDITION, ENVD_TRANSPORT_NONE, 0,
                              "%s, but %zu cannot be used: %s", counts, not_ready, why);
    return NULL;
}

/* The list answered: the result, and the error when it is not all. */
static int finish(claim_ctx *cx, const envd_k8s_answer *a, void **result, envd_error **err)
{
    claimed *c = claimed_new(cx);
    if (!c) {
        *err = nomem();
        return 0;
    }
    *result = c;
    if (a->status != 200) {
        *err = answer_error(cx, a, "", &LIST);
        return 0;
    }
    char *problem = NULL;
    c->list = envd_k8s_sandboxes_parse(cx->ns, a->body, a->len, &problem);
    size_t n = c->list ? c->list->count : 0;
    if (!c->list || (n && (!(c->items = envd_calloc(n, sizeof(*c->items))) ||
                           !(c->pub.clients = envd_calloc(n, sizeof(envd_client *)))))) {
        *err = problem ? wrap(cx, envd_error_new(ENVD_E_PROTOCOL, ENVD_TRANSPORT_HTTP, 200,
                                                 "%s from %s", problem, a->conn->server))
                       : nomem();
        free(problem);
        return 0;
    }
    c->pub.sandboxes = c->items;
    char why[1024] = "";
    size_t nomem_n;
    size_t not_ready = make_clients(cx, c, why, sizeof(why), &nomem_n);
    /* Running Sandboxes without a client for want of memory: out of
     * memory, not a claim that fell short. */
    envd_error *e = nomem_n ? envd_error_new(ENVD_E_NOMEM, ENVD_TRANSPORT_NONE, 0,
                                             "out of memory making clients: %s", why)
                            : shortfall(cx, c, not_ready, why);
    if (e)
        *err = wrap(cx, e);
    return 0;
}

static int claim_step(void *ctx, const envd_k8s_answer *a, envd_k8s_req *next, void **result,
                      envd_free_fn *free_fn, envd_error **err)
{
    claim_ctx *cx = ctx;
    *free_fn = claimed_free_fn;
    envd_error *e = NULL;
    switch (cx->stage) {
    case S_START:
        if (!(cx->ns = envd_strdup(a->ns))) {
            *err = nomem();
            return 0;
        }
        next->method = "POST";
        next->body = envd_k8s_claim_body(cx->o, cx->ns, cx->name, cx->template_name);
        if (next->body)
            next->path = envd_strdup_printf(API "%s/sandboxclaims", cx->ns);
        cx->stage = S_CREATE;
        return 1;
    case S_CREATE:
        if (a->status != 200 && a->status != 201) {
            *err = answer_error(cx, a, "", &CREATE);
            return 0;
        }
        cx->deadline_ms = envd_now_ms() + cx->wait_ms;
        cx->backoff_ms = POLL_FIRST_MS;
        cx->stage = S_POLL;
        if ((e = read_status(cx, a)) == NULL)
            return poll_or_list(cx, next);
        break;
    case S_POLL:
        if (a->status != 200)
            e = answer_error(cx, a, cx->name, &GET);
        else if ((e = read_status(cx, a)) == NULL)
            return poll_or_list(cx, next);
        break;
    default:
        return finish(cx, a, result, err);
    }
    /* The claim exists: a result with its name, and the error. */
    *err = e;
    *result = claimed_new(cx);
    return 0;
}

envd_status envd_k8s_claim_async(envd_runtime *rt, const envd_k8s_options *k8s, const char *ns,
                                 const char *template_name, const envd_k8s_claim_options *co,
                                 const envd_config *cfg, envd_future **out)
{
    if (!out)
        return envd_start_error(ENVD_E_USAGE, "out is NULL");
    *out = NULL;
    if (!rt)
        return envd_start_error(ENVD_E_USAGE, "runtime is NULL");
    if (!template_name || !envd_k8s_valid_name(template_name, 0))
        return envd_start_error(ENVD_INVALID_ARGUMENT,
                                "invalid template name '%s': the name of a SandboxSet",
                                template_name ? template_name : "(null)");
    envd_k8s_worker *w = envd_k8s_runtime_worker(rt);
    claim_ctx *cx = w ? envd_calloc(1, sizeof(*cx)) : NULL;
    int ok = cx && envd_k8s_claim_options_copy(co, &cx->o) == ENVD_OK &&
             (cx->cfg = envd_config_dup(cfg)) &&
             (cx->template_name = envd_strdup(template_name)) &&
             (cx->name = cx->o->name ? envd_strdup(cx->o->name) : envd_k8s_claim_name(template_name));
    if (!ok) {
        claim_ctx_free(cx);
        return envd_start_error(ENVD_E_NOMEM, "out of memory");
    }
    cx->rt = rt;
    cx->wait_ms = cx->o->wait_ms;
    if (!cx->wait_ms)
        cx->wait_ms = (cx->o->claim_timeout_ms ? cx->o->claim_timeout_ms : DEFAULT_CLAIM_TIMEOUT_MS) +
                      (cx->o->wait_ready_timeout_ms ? cx->o->wait_ready_timeout_ms
                                                    : DEFAULT_WAIT_READY_MS) +
                      WAIT_SLACK_MS;
    char what[600];
    snprintf(what, sizeof(what), "claim %s of template '%s'", cx->name, template_name);
    envd_k8s_finish fin = {.kind = ENVD_FK_K8S_CLAIM,
                           .ctx = cx,
                           .ctx_free = claim_ctx_free,
                           .step = claim_step,
                           .what = what,
                           .timers = rt->timers};
    return envd_k8s_lookup_start(rt, rt->curl, w, k8s, ns, NULL, &fin, out);
}

envd_k8s_claimed *envd_future_take_k8s_claimed(envd_future *f)
{
    return envd_future_take_result(f, ENVD_FK_K8S_CLAIM);
}

/* Not an ENVD_SYNC_TAKE row: the result is kept beside the error. */
envd_status envd_k8s_claim(envd_runtime *rt, const envd_k8s_options *k8s, const char *ns,
                           const char *template_name, const envd_k8s_claim_options *co,
                           const envd_config *cfg, envd_k8s_claimed **out, envd_error **err)
{
    if (out)
        *out = NULL;
    envd_status st = envd_sync_begin(__func__, err);
    if (st != ENVD_OK)
        return st;
    envd_future *f = NULL;
    st = envd_k8s_claim_async(rt, k8s, ns, template_name, co, cfg, &f);
    if (st != ENVD_OK || !f)
        return envd_sync_call(__func__, st, f, ENVD_FK_K8S_CLAIM, NULL, err);
    envd_future_wait(f, -1);
    envd_k8s_claimed *r = envd_future_take_k8s_claimed(f);
    if (out)
        *out = r;
    else
        envd_k8s_claimed_free(r);
    st = envd_future_status(f);
    envd_error *e = envd_future_take_error(f);
    if (err)
        *err = e;
    else
        envd_error_free(e);
    envd_future_free(f);
    return st;
}

/* ----------------------------------------------------------- the release */

enum { R_START, R_CLAIM, R_SANDBOXES };

typedef struct release_ctx {
    char *name;
    int delete_sandboxes, stage;
} release_ctx;

static void release_ctx_free(void *p)
{
    release_ctx *cx = p;
    if (cx)
        free(cx->name);
    free(cx);
}

static envd_error *release_error(const release_ctx *cx, const envd_k8s_answer *a,
                                 const envd_k8s_what *w)
{
    char prefix[400];
    snprintf(prefix, sizeof(prefix), "release of claim %s/%s", a->ns, cx->name);
    return envd_error_wrap(envd_k8s_status_error(a->conn, a->cred_kind, a->status, a->body, a->len,
                                                 a->ns, w == &DELETE ? cx->name : "", w),
                           prefix);
}

static int release_step(void *ctx, const envd_k8s_answer *a, envd_k8s_req *next, void **result,
                        envd_free_fn *free_fn, envd_error **err)
{
    release_ctx *cx = ctx;
    (void)result;
    (void)free_fn;
    int ok = a->status == 200 || a->status == 202;
    switch (cx->stage) {
    case R_START:
        cx->stage = R_CLAIM;
        next->method = "DELETE";
        next->path = envd_strdup_printf(API "%s/sandboxclaims/%s", a->ns, cx->name);
        return 1;
    case R_CLAIM:
        /* gone already (ttlAfterCompleted): its Sandboxes may well not be */
        if (!ok && !(a->status == 404 && cx->delete_sandboxes)) {
            *err = release_error(cx, a, &DELETE);
            return 0;
        }
        if (!cx->delete_sandboxes)
            return 0;
        cx->stage = R_SANDBOXES;
        next->method = "DELETE";
        next->path = envd_strdup_printf(API "%s/sandboxes?labelSelector=" ENVD_K8S_LABEL_CLAIM
                                                "%%3D%s",
                                        a->ns, cx->name);
        return 1;
    default:
        if (!ok)
            *err = release_error(cx, a, &DELETE_ALL);
        return 0;
    }
}

envd_status envd_k8s_claim_release_async(envd_runtime *rt, const envd_k8s_options *k8s,
                                         const char *ns, const char *name, int delete_sandboxes,
                                         envd_future **out)
{
    if (!out)
        return envd_start_error(ENVD_E_USAGE, "out is NULL");
    *out = NULL;
    if (!rt)
        return envd_start_error(ENVD_E_USAGE, "runtime is NULL");
    if (!name || !envd_k8s_valid_name(name, 0))
        return envd_start_error(ENVD_INVALID_ARGUMENT, "invalid claim name '%s'",
                                name ? name : "(null)");
    envd_k8s_worker *w = envd_k8s_runtime_worker(rt);
    release_ctx *cx = w ? envd_calloc(1, sizeof(*cx)) : NULL;
    if (!cx || !(cx->name = envd_strdup(name))) {
        release_ctx_free(cx);
        return envd_start_error(ENVD_E_NOMEM, "out of memory");
    }
    cx->delete_sandboxes = delete_sandboxes != 0;
    char what[400];
    snprintf(what, sizeof(what), "release of claim %s", name);
    envd_k8s_finish fin = {.kind = ENVD_FK_NONE,
                           .ctx = cx,
                           .ctx_free = release_ctx_free,
                           .step = release_step,
                           .what = what,
                           .timers = rt->timers};
    return envd_k8s_lookup_start(rt, rt->curl, w, k8s, ns, NULL, &fin, out);
}

ENVD_SYNC_NONE(envd_k8s_claim_release, (rt, k8s, ns, name, delete_sandboxes, &f_),
               envd_runtime *rt, const envd_k8s_options *k8s, const char *ns, const char *name,
               int delete_sandboxes)
