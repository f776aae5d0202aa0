/* envdctl batch: the sandbox pool. One client per sandbox on the shared
 * runtime (a client is only a routing header and a token: thousands share
 * the runtime's connections), a count of jobs running in each, and a
 * back-off for a sandbox that failed with a transport error, doubling while
 * it keeps failing. */
#include "batch.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define BACKOFF_MAX_MS 30000
#define BUSY 1000000 /* ready_in: full, until a job of it ends */

int batch_pool_add(batch_pool *p, const char *id_or_name, const char *k8s, int pinned)
{
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 8;
        batch_sbx **v = realloc(p->s, cap * sizeof(*v));
        if (!v)
            return -1;
        p->s = v;
        p->cap = cap;
    }
    /* Each sandbox is its own allocation: running jobs point at it while
     * the array grows (a job naming a sandbox outside the pool adds one). */
    batch_sbx *s = calloc(1, sizeof(*s));
    if (!s || !(s->label = strdup(id_or_name ? id_or_name : k8s ? k8s : "default"))) {
        free(s);
        return -1;
    }
    p->s[p->n] = s;
    if (k8s)
        s->spec.k8s = s->label;
    else if (id_or_name)
        s->spec.id_or_name = s->label;
    /* neither: the global choice (a direct envd when there is none) */
    s->pinned = pinned;
    p->n++;
    return 0;
}

/* The domain and token of a `sandbox create` line (JSON strings or NULL). */
static int batch_sbx_reach(batch_pool *p, batch_sbx *s, json_t *domain, json_t *token)
{
    const char *d = json_string_value(domain), *t = json_string_value(token);
    if ((d && !(s->domain = strdup(d))) || (t && !(s->token = strdup(t))))
        return -1;
    s->spec.domain = s->domain;
    s->spec.token = s->token;
    if (d)
        p->ctx->no_sandbox_needed = 1; /* the lines say where: no --domain needed */
    return 0;
}

int batch_pool_add_file(batch_pool *p, const char *path, char **err)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        *err = cli_strdupf("--sandboxes: %s: %s", path, strerror(errno));
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    int rc = 0;
    size_t lineno = 0;
    while (rc == 0 && getline(&line, &cap, f) >= 0) {
        char *s = line + strspn(line, " \t");
        lineno++;
        if (*s == '{') { /* a line of `envdctl sandbox claim` */
            json_t *o = json_loads(s, 0, NULL);
            const char *k8s = json_string_value(json_object_get(o, "k8s"));
            const char *id = json_string_value(json_object_get(o, "id"));
            if (k8s || id)
                rc = batch_pool_add(p, k8s ? NULL : id, k8s, 0);
            if (rc == 0 && id && !k8s) /* `sandbox create`'s: its own address and token */
                rc = batch_sbx_reach(p, p->s[p->n - 1], json_object_get(o, "domain"),
                                     json_object_get(o, "token"));
            if (!(k8s || id))
                *err = cli_strdupf("--sandboxes: %s:%zu: a JSON line needs \"k8s\" or \"id\"",
                                   path, lineno);
            json_decref(o);
            if (*err)
                break;
            continue;
        }
        s[strcspn(s, " \t\r\n")] = '\0';
        if (*s && *s != '#')
            rc = batch_pool_add(p, s, NULL, 0);
    }
    if (rc)
        *err = cli_strdupf("--sandboxes: out of memory");
    else if (*err)
        rc = -1;
    free(line);
    fclose(f);
    return rc;
}

/* Starts s's client (a Kubernetes lookup becomes a future in *pending). */
static void open_start(batch_pool *p, batch_sbx *s, envd_future **pending)
{
    char *msg = NULL;
    *pending = NULL;
    if (cli_client_open_async(p->ctx, &s->spec, &s->client, pending, &msg) != 0)
        s->open_error = msg && *msg ? msg : (free(msg), cli_strdupf("cannot open it"));
    else
        free(msg);
}

static void open_finish(batch_sbx *s, envd_future *f)
{
    envd_future_wait(f, -1);
    if (!(s->client = envd_future_take_client(f)))
        s->open_error = cli_error_text("k8s lookup", envd_future_status(f), envd_future_error(f));
    envd_future_free(f);
}

int batch_pool_open(batch_pool *p)
{
    /* Kubernetes lookups run at once, on the runtime; IDs open at once. */
    envd_future **pending = calloc(p->n ? p->n : 1, sizeof(*pending));
    if (!pending)
        return cli_errorf(p->ctx, "out of memory");
    for (size_t i = 0; i < p->n; i++)
        if (!p->s[i]->client && !p->s[i]->open_error)
            open_start(p, p->s[i], &pending[i]);
    size_t usable = 0;
    for (size_t i = 0; i < p->n; i++) {
        if (pending[i])
            open_finish(p->s[i], pending[i]);
        if (p->s[i]->open_error && *p->s[i]->open_error)
            cli_errorf(p->ctx, "sandbox %s: %s", p->s[i]->label, p->s[i]->open_error);
        usable += p->s[i]->client != NULL;
    }
    free(pending);
    p->last_ok = cli_now_ms();
    if (!usable && p->n)
        return cli_errorf(p->ctx, "no sandbox of the pool could be opened");
    return 0;
}

static batch_sbx *find_named(batch_pool *p, const char *name)
{
    for (size_t i = 0; i < p->n; i++)
        if (strcmp(p->s[i]->label, name) == 0)
            return p->s[i];
    if (batch_pool_add(p, name, NULL, 1) != 0)
        return NULL;
    batch_sbx *s = p->s[p->n - 1];
    envd_future *f = NULL;
    open_start(p, s, &f);
    if (f)
        open_finish(s, f);
    return s;
}

/* When s can take one more job: now (0), later (> 0), never (-1). */
static int64_t ready_in(const batch_pool *p, const batch_sbx *s, int64_t now)
{
    if (!s->client)
        return -1;
    if (s->down_until > now)
        return s->down_until - now;
    return s->running < p->per_sandbox ? 0 : BUSY;
}

batch_sbx *batch_pool_pick(batch_pool *p, const char *name, const batch_sbx *avoid, int64_t now,
                           int64_t *wait_ms)
{
    *wait_ms = -1;
    if (name) {
        batch_sbx *s = find_named(p, name);
        *wait_ms = s ? ready_in(p, s, now) : -1;
        return *wait_ms == 0 ? s : NULL;
    }
    batch_sbx *best = NULL, *fallback = NULL;
    int others_up = 0; /* a sandbox other than avoid, up (maybe busy) */
    for (size_t k = 0; k < p->n; k++) {
        batch_sbx *s = p->s[(p->next + k) % p->n];
        if (s->pinned)
            continue;
        int64_t w = ready_in(p, s, now);
        if (w == 0 && s == avoid)
            fallback = s;
        else if (w == 0 && (!best || s->running < best->running))
            best = s;
        else if (w > 0 && (*wait_ms < 0 || w < *wait_ms))
            *wait_ms = w;
        others_up |= s != avoid && (w == 0 || w == BUSY);
    }
    /* A retry waits for another sandbox while there is one up: its last
     * one just failed it. */
    if (!best && !others_up)
        best = fallback;
    if (!best && fallback)
        *wait_ms = BUSY;
    if (best) {
        p->next = (p->next + 1) % p->n;
        *wait_ms = 0;
    }
    return best;
}

void batch_pool_release(batch_pool *p, batch_sbx *s, int transport_failure, int64_t now)
{
    s->running--;
    if (!transport_failure) {
        s->fails = 0;
        p->last_ok = now;
        return;
    }
    if (s->down_until > now)
        return; /* the jobs that were in it when it went down: one failure */
    int64_t d = p->backoff_ms;
    for (int i = 1; i < s->fails && d < BACKOFF_MAX_MS; i++)
        d *= 2;
    s->fails++;
    int64_t until = now + (d < BACKOFF_MAX_MS ? d : BACKOFF_MAX_MS);
    if (until > s->down_until)
        s->down_until = until;
}

size_t batch_pool_usable(const batch_pool *p)
{
    size_t n = 0;
    for (size_t i = 0; i < p->n; i++)
        n += p->s[i]->client && !p->s[i]->pinned;
    return n;
}

void batch_pool_free(batch_pool *p)
{
    for (size_t i = 0; i < p->n; i++) {
        envd_client_free(p->s[i]->client);
        free(p->s[i]->label);
        free(p->s[i]->domain);
        free(p->s[i]->token);
        free(p->s[i]->open_error);
        free(p->s[i]);
    }
    free(p->s);
    p->s = NULL;
    p->n = p->cap = 0;
}
