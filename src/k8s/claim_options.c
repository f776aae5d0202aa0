/* envd_k8s_claim_options: what a SandboxClaim asks for, and the claim's
 * JSON body built from it (claim.c sends it). */
#include "k8s/claim.h"
#include "api/sync.h"
#include "core/alloc.h"
#include "core/buf.h"
#include "k8s/k8s.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define MAX_REPLICAS 10000
#define MAX_KV 1024

envd_k8s_claim_options *envd_k8s_claim_options_new(void)
{
    envd_k8s_claim_options *o = envd_calloc(1, sizeof(*o));
    if (o)
        o->replicas = 1;
    return o;
}

static void kv_free(envd_k8s_kvs *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->v[i].key);
        free(l->v[i].value);
    }
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

void envd_k8s_claim_options_free(envd_k8s_claim_options *o)
{
    if (!o)
        return;
    free(o->name);
    kv_free(&o->labels);
    kv_free(&o->env);
    free(o);
}

envd_status envd_k8s_claim_options_set_name(envd_k8s_claim_options *o, const char *name)
{
    if (!o)
        return ENVD_E_USAGE;
    char *copy = NULL;
    if (name && *name) {
        if (!envd_k8s_valid_name(name, 0))
            return ENVD_INVALID_ARGUMENT;
        if (!(copy = envd_strdup(name)))
            return ENVD_E_NOMEM;
    }
    free(o->name);
    o->name = copy;
    return ENVD_OK;
}

envd_status envd_k8s_claim_options_set_replicas(envd_k8s_claim_options *o, int replicas)
{
    if (!o)
        return ENVD_E_USAGE;
    if (replicas < 1 || replicas > MAX_REPLICAS)
        return ENVD_OUT_OF_RANGE;
    o->replicas = replicas;
    return ENVD_OK;
}

static envd_status set_ms(envd_k8s_claim_options *o, int64_t *field, int64_t ms)
{
    if (!o)
        return ENVD_E_USAGE;
    if (ms < 0 || ms > (int64_t)366 * 24 * 3600 * 1000)
        return ENVD_OUT_OF_RANGE;
    *field = ms;
    return ENVD_OK;
}

envd_status envd_k8s_claim_options_set_claim_timeout_ms(envd_k8s_claim_options *o, int64_t ms)
{
    return set_ms(o, o ? &o->claim_timeout_ms : NULL, ms);
}

envd_status envd_k8s_claim_options_set_wait_ready_timeout_ms(envd_k8s_claim_options *o, int64_t ms)
{
    return set_ms(o, o ? &o->wait_ready_timeout_ms : NULL, ms);
}

envd_status envd_k8s_claim_options_set_wait_ms(envd_k8s_claim_options *o, int64_t ms)
{
    return set_ms(o, o ? &o->wait_ms : NULL, ms);
}

static envd_status kv_set(envd_k8s_kvs *l, const char *key, const char *value)
{
    if (!key || !*key || !value)
        return ENVD_INVALID_ARGUMENT;
    char *k = envd_strdup(key), *v = envd_strdup(value);
    if (!k || !v) {
        free(k);
        free(v);
        return ENVD_E_NOMEM;
    }
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->v[i].key, key) == 0) {
            free(k);
            free(l->v[i].value);
            l->v[i].value = v;
            return ENVD_OK;
        }
    envd_k8s_kv *grown = l->n < MAX_KV ? envd_realloc(l->v, (l->n + 1) * sizeof(*grown)) : NULL;
    if (!grown) {
        free(k);
        free(v);
        return l->n < MAX_KV ? ENVD_E_NOMEM : ENVD_OUT_OF_RANGE;
    }
    l->v = grown;
    l->v[l->n++] = (envd_k8s_kv){k, v};
    return ENVD_OK;
}

envd_status envd_k8s_claim_options_set_label(envd_k8s_claim_options *o, const char *key,
                                             const char *value)
{
    return o ? kv_set(&o->labels, key, value) : ENVD_E_USAGE;
}

envd_status envd_k8s_claim_options_set_env(envd_k8s_claim_options *o, const char *key,
                                           const char *value)
{
    return o ? kv_set(&o->env, key, value) : ENVD_E_USAGE;
}

envd_status envd_k8s_claim_options_copy(const envd_k8s_claim_options *o,
                                        envd_k8s_claim_options **out)
{
    envd_k8s_claim_options *c = envd_k8s_claim_options_new();
    envd_status st = c ? ENVD_OK : ENVD_E_NOMEM;
    if (c && o) {
        c->replicas = o->replicas;
        c->claim_timeout_ms = o->claim_timeout_ms;
        c->wait_ready_timeout_ms = o->wait_ready_timeout_ms;
        c->wait_ms = o->wait_ms;
        if (o->name && !(c->name = envd_strdup(o->name)))
            st = ENVD_E_NOMEM;
        for (size_t i = 0; st == ENVD_OK && i < o->labels.n; i++)
            st = kv_set(&c->labels, o->labels.v[i].key, o->labels.v[i].value);
        for (size_t i = 0; st == ENVD_OK && i < o->env.n; i++)
            st = kv_set(&c->env, o->env.v[i].key, o->env.v[i].value);
    }
    if (st != ENVD_OK) {
        envd_k8s_claim_options_free(c);
        c = NULL;
    }
    *out = c;
    return st;
}

/* "<template>-<8 hex>", the template cut so that the name stays a valid
 * subdomain (253 characters, ending alphanumeric). */
char *envd_k8s_claim_name(const char *template_name)
{
    unsigned char r[4];
    if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
        return NULL;
    size_t n = strlen(template_name);
    if (n > 240)
        n = 240;
    while (n > 0 && (template_name[n - 1] == '-' || template_name[n - 1] == '.'))
        n--;
    return envd_strdup_printf("%.*s-%02x%02x%02x%02x", (int)n, template_name, r[0], r[1], r[2],
                              r[3]);
}

/* A metav1.Duration as Go's time.ParseDuration reads it. */
static json_t *duration(int64_t ms)
{
    char buf[32];
    if (ms % 1000 == 0)
        snprintf(buf, sizeof(buf), "%llds", (long long)(ms / 1000));
    else
        snprintf(buf, sizeof(buf), "%lldms", (long long)ms);
    return json_string(buf);
}

static json_t *kv_object(const envd_k8s_kvs *l)
{
    json_t *obj = json_object();
    for (size_t i = 0; obj && i < l->n; i++)
        if (json_object_set_new(obj, l->v[i].key, json_string(l->v[i].value)) != 0) {
            json_decref(obj);
            return NULL;
        }
    return obj;
}

char *envd_k8s_claim_body(const envd_k8s_claim_options *o, const char *ns, const char *name,
                          const char *template_name)
{
    json_t *spec = json_pack("{s:s, s:i}", "templateName", template_name, "replicas", o->replicas);
    int bad = !spec;
    if (!bad && o->claim_timeout_ms)
        bad = json_object_set_new(spec, "claimTimeout", duration(o->claim_timeout_ms)) != 0;
    if (!bad && o->wait_ready_timeout_ms)
        bad = json_object_set_new(spec, "waitReadyTimeout", duration(o->wait_ready_timeout_ms)) != 0;
    if (!bad && o->labels.n)
        bad = json_object_set_new(spec, "labels", kv_object(&o->labels)) != 0;
    if (!bad && o->env.n)
        bad = json_object_set_new(spec, "envVars", kv_object(&o->env)) != 0;
    json_t *root = bad ? NULL
                       : json_pack("{s:s, s:s, s:{s:s, s:s}, s:o}", "apiVersion",
                                   "agents.kruise.io/v1alpha1", "kind", "SandboxClaim", "metadata",
                                   "name", name, "namespace", ns, "spec", spec);
    if (!root) {
        if (!bad)
            return NULL; /* json_pack's "o" stole spec even on failure */
        json_decref(spec);
        return NULL;
    }
    char *text = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    /* json_dumps uses jansson's allocator (malloc): copy into ours */
    char *out = text ? envd_strdup(text) : NULL;
    free(text);
    return out;
}
