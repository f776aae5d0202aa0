/* The Sandbox object: its fields, whether the gateway would route to it,
 * and the errors a user can act on for the answers that are not it. */
#include "core/error.h"
#include "core/alloc.h"
#include "core/buf.h"
#include "k8s/k8s.h"

#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------- parsing */

static char *dup_or(const char *s, const char *dflt)
{
    return envd_strdup(s ? s : dflt);
}

void envd_k8s_sandbox_free(envd_k8s_sandbox *pub)
{
    if (!pub)
        return;
    envd_k8s_sb *s = (envd_k8s_sb *)pub;
    free(s->ns);
    free(s->name);
    free(s->id);
    free(s->token);
    free(s->phase);
    free(s->ready);
    free(s->ready_reason);
    free(s->ready_message);
    free(s->pod_ip);
    free(s->deleting);
    free(s->pool);
    free(s);
}

static const char *str_at(json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s && *s ? s : NULL;
}

static int is_running(const envd_k8s_sb *s)
{
    return !s->deleting && !s->paused && !s->pool && strcmp(s->phase, "Running") == 0 &&
           strcmp(s->ready, "True") == 0;
}

/* The public view of the owned strings. */
static void publish(envd_k8s_sb *s)
{
    s->pub = (envd_k8s_sandbox){s->ns,    s->name,   s->id,         s->token,
                                s->phase, s->ready, s->pod_ip, is_running(s)};
}

/* One Sandbox object (root is borrowed). NULL on out of memory. */
static envd_k8s_sb *from_json(const char *ns, const char *name, json_t *root)
{
    envd_k8s_sb *s = envd_calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    json_t *md = json_object_get(root, "metadata");
    json_t *ann = json_object_get(md, "annotations");
    json_t *labels = json_object_get(md, "labels");
    json_t *spec = json_object_get(root, "spec");
    json_t *status = json_object_get(root, "status");
    const char *tok = str_at(ann, ENVD_K8S_ANN_TOKEN);
    if (!tok)
        tok = str_at(ann, ENVD_K8S_ANN_TOKEN_LEGACY);
    const char *id = str_at(labels, ENVD_K8S_LABEL_ID);
    int bad = !(s->ns = envd_strdup(ns)) || !(s->name = envd_strdup(name)) ||
              (tok && !(s->token = envd_strdup(tok))) ||
              !(s->phase = dup_or(str_at(status, "phase"), "")) ||
              !(s->pod_ip = dup_or(str_at(json_object_get(status, "podInfo"), "podIP"), ""));
    if (!bad) {
        if (id)
            s->id = envd_strdup(id);
        else
            s->id = envd_strdup_printf("%s--%s", ns, name);
        bad = !s->id;
    }
    const char *rs = NULL, *rr = NULL, *rm = NULL;
    json_t *conds = json_object_get(status, "conditions");
    for (size_t i = 0; json_is_array(conds) && i < json_array_size(conds); i++) {
        json_t *c = json_array_get(conds, i);
        const char *type = str_at(c, "type");
        if (type && strcmp(type, "Ready") == 0) {
            rs = str_at(c, "status");
            rr = str_at(c, "reason");
            rm = str_at(c, "message");
            break;
        }
    }
    bad = bad || !(s->ready = dup_or(rs, "")) || (rr && !(s->ready_reason = envd_strdup(rr))) ||
          (rm && !(s->ready_message = envd_strdup(rm)));
    const char *del = str_at(md, "deletionTimestamp");
    bad = bad || (del && !(s->deleting = envd_strdup(del)));
    s->paused = json_is_true(json_object_get(spec, "paused"));
    json_t *owners = json_object_get(md, "ownerReferences");
    for (size_t i = 0; !bad && json_is_array(owners) && i < json_array_size(owners); i++) {
        json_t *o = json_array_get(owners, i);
        const char *kind = str_at(o, "kind");
        if (json_is_true(json_object_get(o, "controller")) && kind &&
            strcmp(kind, "SandboxSet") == 0)
            bad = !(s->pool = dup_or(str_at(o, "name"), "?"));
    }
    if (bad) {
        envd_k8s_sandbox_free(&s->pub);
        return NULL;
    }
    publish(s);
    return s;
}

static json_t *load_object(const char *text, size_t len, char **problem)
{
    *problem = NULL;
    json_error_t je;
    json_t *root = json_loadb(text, len, 0, &je);
    if (!json_is_object(root)) {
        *problem = envd_strdup_printf("the answer is not a JSON object (%s)",
                                      root ? "another JSON value" : je.text);
        json_decref(root);
        return NULL;
    }
    return root;
}

envd_k8s_sb *envd_k8s_sandbox_parse(const char *ns, const char *name, const char *text,
                                    size_t len, char **problem)
{
    json_t *root = load_object(text, len, problem);
    envd_k8s_sb *s = root ? from_json(ns, name, root) : NULL;
    json_decref(root);
    return s;
}

/* The list and what its items point into. */
typedef struct sb_list {
    envd_k8s_sandboxes pub; /* first */
    envd_k8s_sandbox *items;
    envd_k8s_sb **owned;
} sb_list;

void envd_k8s_sandboxes_free(envd_k8s_sandboxes *pub)
{
    sb_list *l = (sb_list *)pub;
    if (!l)
        return;
    for (size_t i = 0; i < l->pub.count; i++)
        envd_k8s_sandbox_free(&l->owned[i]->pub);
    free(l->owned);
    free(l->items);
    free(l);
}

envd_k8s_sandboxes *envd_k8s_sandboxes_parse(const char *ns, const char *text, size_t len,
                                                   char **problem)
{
    json_t *root = load_object(text, len, problem);
    if (!root)
        return NULL;
    json_t *items = json_object_get(root, "items");
    if (!json_is_array(items) && !json_is_null(items) && items) {
        *problem = envd_strdup("the answer is not a list (\"items\" is no array)");
        json_decref(root);
        return NULL;
    }
    size_t n = json_array_size(items);
    sb_list *l = envd_calloc(1, sizeof(*l));
    int bad = !l || (n && (!(l->items = envd_calloc(n, sizeof(*l->items))) ||
                           !(l->owned = envd_calloc(n, sizeof(*l->owned)))));
    for (size_t i = 0; !bad && i < n; i++) {
        json_t *item = json_array_get(items, i), *md = json_object_get(item, "metadata");
        const char *name = str_at(md, "name"), *ins = str_at(md, "namespace");
        envd_k8s_sb *sb = from_json(ins ? ins : ns, name ? name : "", item);
        if (!(bad = !sb)) {
            l->owned[l->pub.count] = sb;
            l->items[l->pub.count++] = sb->pub;
        }
    }
    json_decref(root);
    if (bad) {
        envd_k8s_sandboxes_free(l ? &l->pub : NULL);
        return NULL; /* out of memory */
    }
    l->pub.items = l->items;
    return &l->pub;
}

envd_error *envd_k8s_not_running_error(const envd_k8s_sb *s)
{
    if (is_running(s))
        return NULL;
    char extra[512] = "";
    size_t n = 0;
    if (s->deleting)
        n += (size_t)snprintf(extra + n, sizeof(extra) - n, "; it is being deleted (since %s)",
                              s->deleting);
    if (s->paused && n < sizeof(extra))
        n += (size_t)snprintf(extra + n, sizeof(extra) - n, "; spec.paused is true");
    if (s->pool && n < sizeof(extra))
        snprintf(extra + n, sizeof(extra) - n,
                 "; it is still in the pool of SandboxSet '%s' (not claimed), and the gateway "
                 "routes only claimed sandboxes",
                 s->pool);
    return envd_error_new(
        ENVD_FAILED_PRECONDITION, ENVD_TRANSPORT_NONE, 0,
        "sandbox %s/%s is not running: status.phase is \"%s\", Ready condition is "
        "%s%s%s%s%s%s%s%s%s",
        s->ns, s->name, *s->phase ? s->phase : "(unset)", *s->ready ? "\"" : "",
        *s->ready ? s->ready : "absent", *s->ready ? "\"" : "", s->ready_reason ? " (reason: " : "",
        s->ready_reason ? s->ready_reason : "", s->ready_message ? ", message: " : "",
        s->ready_message ? s->ready_message : "", s->ready_reason ? ")" : "", extra);
}

/* ------------------------------------------------------- error answers */

/* An API error answer: a metav1.Status when the server made it. */
envd_error *envd_k8s_status_error(const envd_k8s_conn *c, const char *cred_kind, long code,
                                  const char *body, size_t len, const char *ns, const char *name,
                                  const envd_k8s_what *w)
{
    json_t *st = body ? json_loadb(body, len, 0, NULL) : NULL;
    const char *kind = str_at(st, "kind");
    int is_status = kind && strcmp(kind, "Status") == 0;
    const char *msg = is_status ? str_at(st, "message") : NULL;
    char raw[256] = "";
    if (!msg && body) {
        snprintf(raw, sizeof(raw), "%.200s", body);
        for (char *p = raw; *p; p++)
            if (*p == '\n' || *p == '\r')
                *p = ' ';
        msg = raw;
    }
    if (!msg || !*msg)
        msg = "(no message)";
    envd_error *e;
    int http = (int)code;
    if (code == 401) {
        e = envd_error_new(ENVD_UNAUTHENTICATED, ENVD_TRANSPORT_HTTP, http,
                           "401 Unauthorized: the Kubernetes API server at %s rejected %s of %s "
                           "(%s): %s",
                           c->server, cred_kind, c->user_desc, c->origin, msg);
    } else if (code == 403) {
        e = envd_error_new(ENVD_PERMISSION_DENIED, ENVD_TRANSPORT_HTTP, http,
                           "403 Forbidden: %s; %s (%s) needs the RBAC verb \"%s\" on resource "
                           "\"%s\" in API group \"agents.kruise.io\" in namespace \"%s\"",
                           msg, c->user_desc, c->origin, w->verb, w->resource, ns);
    } else if (code == 404) {
        json_t *details = json_object_get(st, "details");
        const char *dname = str_at(details, "name");
        if (is_status && dname && *name && strcmp(dname, name) == 0)
            e = envd_error_new(ENVD_NOT_FOUND, ENVD_TRANSPORT_HTTP, http,
                               "%s %s/%s not found (404 from %s)", w->noun, ns, name, c->server);
        else
            e = envd_error_new(ENVD_NOT_FOUND, ENVD_TRANSPORT_HTTP, http,
                               "404 from %s: it does not serve agents.kruise.io/v1alpha1 "
                               "%s (is OpenKruise Agents installed in this cluster?): %s",
                               c->server, w->resource, msg);
    } else if (code == 409 || code == 422) {
        /* AlreadyExists / Conflict, Invalid: the server's message says which field */
        e = envd_error_new(code == 409 ? ENVD_ALREADY_EXISTS : ENVD_INVALID_ARGUMENT,
                           ENVD_TRANSPORT_HTTP, http, "%ld %s: %s (%s %s in namespace %s)", code,
                           code == 409 ? "Conflict" : "Unprocessable Entity", msg, w->verb,
                           w->resource, ns);
    } else {
        e = envd_error_new(envd_status_from_http(http), ENVD_TRANSPORT_HTTP, http,
                           "HTTP %ld from the Kubernetes API server at %s: %s", code, c->server,
                           msg);
    }
    json_decref(st);
    return e;
}

/* DNS-1123: a label for namespaces, a subdomain for names. */
int envd_k8s_valid_name(const char *s, int label)
{
    size_t n = strlen(s);
    if (n == 0 || n > (label ? 63u : 253u))
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        int ok = (ch >= 'a' && ch <= 'z') || isdigit(ch) || ch == '-' || (!label && ch == '.');
        if (!ok)
            return 0;
    }
    return isalnum((unsigned char)s[0]) && isalnum((unsigned char)s[n - 1]);
}
