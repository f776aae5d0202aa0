/* The code interpreter's options, request bodies and results. */
#include "api/code_internal.h"
#include "core/alloc.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

const envd_code_opts envd_code_opts_default = {
    .max_line = (size_t)ENVD_CODE_MAX_LINE_DEFAULT,
    .max_output = (size_t)ENVD_CODE_MAX_OUTPUT_DEFAULT,
};

/* ---- options -------------------------------------------------------------- */

envd_code_opts *envd_code_opts_new(void)
{
    envd_code_opts *o = envd_calloc(1, sizeof *o);
    if (o)
        *o = envd_code_opts_default;
    return o;
}

void envd_code_opts_free(envd_code_opts *o)
{
    if (!o)
        return;
    free(o->language);
    free(o->context_id);
    free(o->cwd);
    envd_kvlist_free(&o->env);
    free(o);
}

static envd_status set_str(envd_code_opts *o, char **slot, const char *v)
{
    if (!o)
        return ENVD_E_USAGE;
    return envd_str_set(slot, v && *v ? v : NULL) ? ENVD_E_NOMEM : ENVD_OK;
}

envd_status envd_code_opts_set_language(envd_code_opts *o, const char *language)
{
    return set_str(o, o ? &o->language : NULL, language);
}

envd_status envd_code_opts_set_context(envd_code_opts *o, const char *context_id)
{
    return set_str(o, o ? &o->context_id : NULL, context_id);
}

envd_status envd_code_opts_set_cwd(envd_code_opts *o, const char *cwd)
{
    return set_str(o, o ? &o->cwd : NULL, cwd);
}

envd_status envd_code_opts_set_env(envd_code_opts *o, const char *name, const char *value)
{
    if (!o || !name || !value)
        return ENVD_E_USAGE;
    if (!*name) /* the Go client: "environment variable key cannot be empty" */
        return ENVD_INVALID_ARGUMENT;
    return envd_kvlist_set(&o->env, name, value, ENVD_KV_EXACT) ? ENVD_E_NOMEM : ENVD_OK;
}

envd_status envd_code_opts_set_timeout_ms(envd_code_opts *o, int64_t ms)
{
    if (!o)
        return ENVD_E_USAGE;
    if (ms < 0)
        return ENVD_INVALID_ARGUMENT;
    o->timeout_ms = ms;
    return ENVD_OK;
}

envd_status envd_code_opts_set_max_line(envd_code_opts *o, int64_t bytes)
{
    if (!o)
        return ENVD_E_USAGE;
    if (bytes < 1024 || bytes > ((int64_t)1 << 30))
        return ENVD_INVALID_ARGUMENT;
    o->max_line = (size_t)bytes;
    return ENVD_OK;
}

envd_status envd_code_opts_set_max_output(envd_code_opts *o, int64_t bytes)
{
    if (!o)
        return ENVD_E_USAGE;
    if (bytes < 0)
        return ENVD_INVALID_ARGUMENT;
    o->max_output = (size_t)bytes;
    return ENVD_OK;
}

/* ---- request bodies ------------------------------------------------------- */

static char *dump(json_t *o, int bad)
{
    char *s = !bad && o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return s;
}

/* json_dumps allocates with jansson's allocator, the caller frees with free(). */
char *envd_code_request_json(const char *code, const envd_code_opts *o)
{
    if (!o)
        o = &envd_code_opts_default;
    json_t *j = json_object();
    int bad = !j || json_object_set_new(j, "code", json_string(code));
    if (!bad && o->context_id) /* the context pins the language */
        bad = json_object_set_new(j, "context_id", json_string(o->context_id));
    else if (!bad)
        bad = json_object_set_new(j, "language", json_string(o->language ? o->language : "python"));
    if (!bad && o->cwd)
        bad = json_object_set_new(j, "cwd", json_string(o->cwd));
    if (!bad && o->env.n) {
        json_t *env = json_object();
        bad = !env || json_object_set_new(j, "env_vars", env);
        for (size_t i = 0; !bad && i < o->env.n; i++)
            bad = json_object_set_new(env, o->env.names[i], json_string(o->env.values[i]));
    }
    if (!bad && o->timeout_ms > 0)
        bad = json_object_set_new(j, "timeout", json_real((double)o->timeout_ms / 1000.0));
    return dump(j, bad);
}

char *envd_code_context_request_json(const char *language, const char *cwd)
{
    json_t *j = json_object();
    int bad = !j;
    if (!bad && cwd && *cwd)
        bad = json_object_set_new(j, "cwd", json_string(cwd));
    if (!bad && language && *language)
        bad = json_object_set_new(j, "language", json_string(language));
    return dump(j, bad);
}

/* ---- the collected execution ---------------------------------------------- */

code_exec *envd_code_execution_new(void)
{
    code_exec *x = envd_calloc(1, sizeof *x);
    if (!x)
        return NULL;
    x->pub.execution_count = -1;
    x->pub.stdout_text = x->pub.stderr_text = "";
    return x;
}

static void result_free(envd_code_result *r)
{
    const char *f[] = {r->text, r->html,  r->markdown,   r->svg,  r->png,  r->jpeg,  r->pdf,
                       r->latex, r->javascript, r->json, r->data, r->chart, r->extra};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        free((char *)f[i]);
}

static void error_free(envd_code_error *e)
{
    free((char *)e->name);
    free((char *)e->value);
    free((char *)e->traceback);
}

void envd_code_execution_free(envd_code_execution *pub)
{
    code_exec *x = (code_exec *)pub;
    if (!x)
        return;
    envd_buf_free(&x->out);
    envd_buf_free(&x->err);
    for (size_t i = 0; i < x->pub.n_results; i++)
        result_free(&x->results[i]);
    free(x->results);
    error_free(&x->error);
    free(x);
}

/* *dst = copy of src (NULL stays NULL); -1 on out of memory. */
static int copy(const char **dst, const char *src)
{
    *dst = src ? envd_strdup(src) : NULL;
    return src && !*dst ? -1 : 0;
}

static int add_result(code_exec *x, const envd_code_result *r)
{
    if (x->pub.n_results == x->cap) {
        size_t cap = x->cap ? x->cap * 2 : 4;
        envd_code_result *n = envd_realloc(x->results, cap * sizeof *n);
        if (!n)
            return -1;
        x->results = n;
        x->cap = cap;
        x->pub.results = n;
    }
    envd_code_result *d = &x->results[x->pub.n_results];
    memset(d, 0, sizeof *d);
    d->is_main_result = r->is_main_result;
    int bad = copy(&d->text, r->text) | copy(&d->html, r->html) | copy(&d->markdown, r->markdown) |
              copy(&d->svg, r->svg) | copy(&d->png, r->png) | copy(&d->jpeg, r->jpeg) |
              copy(&d->pdf, r->pdf) | copy(&d->latex, r->latex) |
              copy(&d->javascript, r->javascript) | copy(&d->json, r->json) |
              copy(&d->data, r->data) | copy(&d->chart, r->chart) | copy(&d->extra, r->extra);
    if (bad) {
        result_free(d);
        return -1;
    }
    x->pub.n_results++;
    return 0;
}

/* The first error is kept, as E2B's server sends only one (messaging.py
 * `errored`); the Go client keeps the last, which is the same then. */
static int set_error(code_exec *x, const envd_code_error *e)
{
    if (x->pub.error)
        return 0;
    if (copy(&x->error.name, e->name) | copy(&x->error.value, e->value) |
        copy(&x->error.traceback, e->traceback)) {
        error_free(&x->error);
        memset(&x->error, 0, sizeof x->error);
        return -1;
    }
    x->pub.error = &x->error;
    return 0;
}

static int add_text(envd_buf *b, const envd_code_event *ev, size_t max, const char **text,
                    size_t *len, int *truncated)
{
    if (!b->has_max)
        envd_buf_init_capped(b, max);
    if (envd_buf_append(b, ev->text, ev->text_len) != 0)
        return -1;
    *text = envd_buf_str(b);
    *len = b->len;
    *truncated = b->truncated;
    return 0;
}

int envd_code_execution_add(code_exec *x, const envd_code_event *ev, size_t max_output)
{
    int rc = 0;
    switch (ev->type) {
    case ENVD_CODE_EVENT_STDOUT:
        rc = add_text(&x->out, ev, max_output, &x->pub.stdout_text, &x->pub.stdout_len,
                      &x->pub.stdout_truncated);
        break;
    case ENVD_CODE_EVENT_STDERR:
        rc = add_text(&x->err, ev, max_output, &x->pub.stderr_text, &x->pub.stderr_len,
                      &x->pub.stderr_truncated);
        break;
    case ENVD_CODE_EVENT_RESULT:
        rc = add_result(x, ev->result);
        break;
    case ENVD_CODE_EVENT_ERROR:
        rc = set_error(x, ev->error);
        break;
    case ENVD_CODE_EVENT_EXECUTION_COUNT:
        x->pub.execution_count = ev->execution_count;
        break;
    case ENVD_CODE_EVENT_END:
        break;
    }
    if (rc != 0)
        x->oom = 1;
    return rc;
}

/* ---- contexts ------------------------------------------------------------- */

typedef struct ctx_list {
    envd_code_contexts pub;
    envd_code_context *items;
} ctx_list;

static void ctx_fields_free(envd_code_context *x)
{
    free((char *)x->id);
    free((char *)x->language);
    free((char *)x->cwd);
}

void envd_code_context_free(envd_code_context *x)
{
    if (!x)
        return;
    ctx_fields_free(x);
    free(x);
}

void envd_code_contexts_free(envd_code_contexts *pub)
{
    ctx_list *l = (ctx_list *)pub;
    if (!l)
        return;
    for (size_t i = 0; i < l->pub.n; i++)
        ctx_fields_free(&l->items[i]);
    free(l->items);
    free(l);
}

static const char *str_or(json_t *o, const char *key, const char *dflt)
{
    json_t *v = json_object_get(o, key);
    return json_is_string(v) && *json_string_value(v) ? json_string_value(v) : dflt;
}

/* One context object; defaults as the Go client's CreateContext applies
 * them when the reply omits a field (dflt 1), or "" (a listing). */
static envd_error *ctx_from(json_t *o, envd_code_context *c, int dflt)
{
    if (!json_is_object(o) || !json_is_string(json_object_get(o, "id")))
        return envd_error_new(ENVD_E_PROTOCOL, ENVD_TRANSPORT_HTTP, 0,
                              "code interpreter: a context reply without a string 'id'");
    if (copy(&c->id, str_or(o, "id", "")) |
        copy(&c->language, str_or(o, "language", dflt ? "python" : "")) |
        copy(&c->cwd, str_or(o, "cwd", dflt ? "/home/user" : ""))) {
        ctx_fields_free(c);
        memset(c, 0, sizeof *c);
        return envd_error_new(ENVD_E_NOMEM, ENVD_TRANSPORT_NONE, 0, "out of memory");
    }
    return NULL;
}

static json_t *load(const char *body, size_t len, envd_error **err)
{
    json_error_t jerr;
    json_t *j = json_loadb(body ? body : "", len, 0, &jerr);
    if (!j)
        *err = envd_error_new(ENVD_E_PROTOCOL, ENVD_TRANSPORT_HTTP, 0,
                              "code interpreter: reply is not JSON (%s)", jerr.text);
    return j;
}

envd_error *envd_code_context_parse(const char *body, size_t len, void **result,
                                    envd_free_fn *free_fn)
{
    envd_error *err = NULL;
    json_t *j = load(body, len, &err);
    envd_code_context *c = j ? envd_calloc(1, sizeof *c) : NULL;
    if (j && !c)
        err = envd_error_new(ENVD_E_NOMEM, ENVD_TRANSPORT_NONE, 0, "out of memory");
    if (c && !(err = ctx_from(j, c, 1))) {
        *result = c;
        *free_fn = (envd_free_fn)envd_code_context_free;
    } else
        free(c);
    json_decref(j);
    return err;
}

envd_error *envd_code_context_list_parse(const char *body, size_t len, void **result,
                                         envd_free_fn *free_fn)
{
    envd_error *err = NULL;
    json_t *j = load(body, len, &err);
    if (!j)
        return err;
    ctx_list *l = NULL;
    if (!json_is_array(j))
        err = envd_error_new(ENVD_E_PROTOCOL, ENVD_TRANSPORT_HTTP, 0,
                             "code interpreter: the context list is not a JSON array");
    else if (!(l = envd_calloc(1, sizeof *l)) ||
             (json_array_size(j) &&
              !(l->items = envd_calloc(json_array_size(j), sizeof *l->items))))
        err = envd_error_new(ENVD_E_NOMEM, ENVD_TRANSPORT_NONE, 0, "out of memory");
    for (size_t i = 0; !err && i < json_array_size(j); i++) {
        if (!(err = ctx_from(json_array_get(j, i), &l->items[i], 0)))
            l->pub.n = i + 1;
    }
    json_decref(j);
    if (l)
        l->pub.items = l->items;
    if (err) {
        envd_code_contexts_free(l ? &l->pub : NULL);
        return err;
    }
    *result = l;
    *free_fn = (envd_free_fn)envd_code_contexts_free;
    return NULL;
}
