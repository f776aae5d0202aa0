/* Traffic tokens: the configuration setters, the per-client refresh state
 * and the header (the model is in traffic.h, the contract in envd.h). */
#include "api/traffic.h"
#include "api/sync.h"
#include "core/alloc.h"
#include "core/buf.h"
#include "k8s/k8s.h"
#include "k8s/worker.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BACKOFF_FIRST_MS 1000
#define BACKOFF_MAX_MS 30000
#define MARGIN_MAX_MS 1000
#define AHEAD_MIN_MS 60000
#define AHEAD_MAX_MS 300000

/* ---- configuration ----------------------------------------------------------- */

/* As config.c's setters record a refusal: "<argument>: <reason>". */
static envd_status cfg_refuse(envd_config *cfg, envd_status st, int arg, const char *name,
                              const char *reason)
{
    int n = snprintf(cfg->last_error, sizeof cfg->last_error, "%s: %s", name, reason);
    cfg->reason_at = n > 0 ? strlen(name) + 2 : 0;
    cfg->bad_arg = arg;
    return st;
}

static void cfg_ok(envd_config *cfg)
{
    cfg->last_error[0] = '\0';
    cfg->reason_at = 0;
    cfg->bad_arg = 0;
}

envd_status envd_config_set_traffic_token_provider(envd_config *cfg, envd_traffic_token_cb cb,
                                                   void *ud)
{
    if (!cfg)
        return ENVD_E_USAGE;
    cfg_ok(cfg);
    cfg->traffic_cb = cb;
    cfg->traffic_ud = cb ? ud : NULL;
    if (cb) {
        free(cfg->traffic_token);
        cfg->traffic_token = NULL;
    }
    return ENVD_OK;
}

envd_status envd_config_set_traffic_token(envd_config *cfg, const char *token)
{
    if (!cfg)
        return ENVD_E_USAGE;
    cfg_ok(cfg);
    for (const char *p = token; p && *p; p++)
        if ((unsigned char)*p == 0x7f || ((unsigned char)*p < 0x20 && *p != '\t'))
            return cfg_refuse(cfg, ENVD_INVALID_ARGUMENT, 1, "token",
                              "not a valid HTTP header value (CR, LF and other control "
                              "characters are not allowed)");
    if (envd_str_set(&cfg->traffic_token, token && *token ? token : NULL) != 0)
        return ENVD_E_NOMEM;
    if (token && *token)
        cfg->traffic_cb = NULL, cfg->traffic_ud = NULL;
    return ENVD_OK;
}

/* ---- the state ------------------------------------------------------------------- */

struct envd_traffic {
    atomic_int refs;
    envd_runtime *rt;
    envd_traffic_token_cb cb;
    void *ud;
    int64_t wait_ms; /* the request timeout: the longest a call waits; 0 = no bound */
    envd_k8s_job job;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    /* mu guards the rest. */
    char *token;      /* NULL: none yet (or the provider gave none) */
    int have;         /* a refresh succeeded: token/expires are meaningful */
    int64_t expires;  /* Unix ms; 0 = never */
    int64_t margin;   /* ms before expires when it is no longer handed out */
    uint64_t gen;     /* successful refreshes */
    uint64_t done;    /* finished refreshes */
    int refreshing;   /* the job is queued or running */
    int running;      /* the provider is being called, on runner */
    pthread_t runner;
    int stale;        /* a 401 came for the current token */
    int used;         /* handed out since it came */
    int closed;
    envd_status fail; /* the last refresh's outcome */
    char why[256];
    int64_t retry_at; /* Unix ms: no refresh before, after a failure */
    int64_t backoff;
    envd_timer *timer;
    unsigned seed;
};

static int64_t unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void envd_traffic_ref(envd_traffic *t)
{
    atomic_fetch_add(&t->refs, 1);
}

void envd_traffic_unref(envd_traffic *t)
{
    if (!t || atomic_fetch_sub(&t->refs, 1) != 1)
        return;
    pthread_mutex_destroy(&t->mu);
    pthread_cond_destroy(&t->cv);
    free(t->token);
    free(t);
}

static void refresh_run(envd_k8s_job *j, int stopping);

envd_traffic *envd_traffic_new(envd_client *c)
{
    envd_traffic *t = envd_calloc(1, sizeof *t);
    if (!t)
        return NULL;
    atomic_init(&t->refs, 1);
    t->rt = c->rt;
    t->cb = c->cfg->traffic_cb;
    t->ud = c->cfg->traffic_ud;
    t->wait_ms = c->cfg->request_timeout_ms;
    t->job.run = refresh_run;
    t->backoff = BACKOFF_FIRST_MS;
    t->seed = (unsigned)(uintptr_t)t ^ (unsigned)unix_ms();
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->cv, NULL);
    return t;
}

/* Either the one who cancels an armed timer or its callback drops the
 * timer's reference: whoever sees it end. */
static void timer_drop(envd_traffic *t, envd_timer *tm)
{
    if (tm && envd_timer_cancel(tm))
        envd_traffic_unref(t);
}

void envd_traffic_close(envd_traffic *t)
{
    if (!t)
        return;
    pthread_mutex_lock(&t->mu);
    t->closed = 1;
    envd_timer *tm = t->timer;
    t->timer = NULL;
    /* The provider's ud may go with the client: let a call in progress end
     * (unless the provider itself freed the client). */
    while (t->running && !pthread_equal(t->runner, pthread_self()))
        pthread_cond_wait(&t->cv, &t->mu);
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
    timer_drop(t, tm);
    envd_traffic_unref(t);
}

/* Queues the refresh job (mu held, no refresh pending). */
static envd_status start_refresh(envd_traffic *t)
{
    envd_k8s_worker *w = envd_k8s_runtime_worker(t->rt);
    if (!w)
        return ENVD_E_NOMEM;
    t->refreshing = 1;
    envd_traffic_ref(t); /* the job's */
    envd_status s = envd_k8s_worker_submit(w, &t->job);
    if (s != ENVD_OK) {
        t->refreshing = 0;
        atomic_fetch_sub(&t->refs, 1); /* the caller holds another */
    }
    return s;
}

static void timer_fire(void *ud)
{
    envd_traffic *t = ud;
    pthread_mutex_lock(&t->mu);
    envd_timer *tm = t->timer; /* this one, or a newer that replaced it */
    t->timer = NULL;
    /* An idle client lets its token run out rather than renewing it. */
    if (!t->closed && !t->refreshing && t->used)
        start_refresh(t); /* on failure the next call tries again */
    pthread_mutex_unlock(&t->mu);
    timer_drop(t, tm);
    envd_traffic_unref(t); /* this timer's: it ran */
}

/* How long before expiry a token of this validity is renewed. */
static int64_t refresh_ahead(envd_traffic *t, int64_t validity)
{
    int64_t ahead = validity / 5;
    int64_t floor = validity / 2 < AHEAD_MIN_MS ? validity / 2 : AHEAD_MIN_MS;
    if (ahead < floor)
        ahead = floor;
    if (ahead > AHEAD_MAX_MS)
        ahead = AHEAD_MAX_MS;
    int64_t jitter = ahead / 10;
    return ahead + (jitter > 0 ? (int64_t)(rand_r(&t->seed) % (jitter + 1)) : 0);
}

/* Arms the timer to fire at Unix time `at` (mu held). Returns the timer it
 * replaced, for the caller to drop after unlocking. */
static envd_timer *arm(envd_traffic *t, int64_t at)
{
    envd_timer *old = t->timer;
    int64_t delay = at - unix_ms();
    envd_traffic_ref(t); /* the timer's */
    t->timer = envd_timer_start(t->rt->timers, delay > 0 ? delay : 0, timer_fire, t);
    if (!t->timer)
        atomic_fetch_sub(&t->refs, 1);
    return old;
}

/* The provider's answer into the state (mu held). Returns a timer to drop. */
static envd_timer *record(envd_traffic *t, envd_status st, char *tok, int64_t exp, char *msg)
{
    int64_t now = unix_ms();
    if (st == ENVD_OK && exp != 0 && exp <= now) {
        st = ENVD_UNAUTHENTICATED;
        free(msg);
        msg = envd_strdup_printf("the token it gave expired %lld ms ago", (long long)(now - exp));
    }
    envd_timer *old = NULL;
    if (st == ENVD_OK) {
        free(t->token);
        t->token = tok && *tok ? tok : NULL;
        if (!t->token)
            free(tok);
        t->have = 1;
        t->expires = exp;
        int64_t validity = exp ? exp - now : 0;
        t->margin = validity / 20 < MARGIN_MAX_MS ? validity / 20 : MARGIN_MAX_MS;
        t->gen++;
        t->stale = t->used = 0;
        t->fail = ENVD_OK;
        t->retry_at = 0;
        t->backoff = BACKOFF_FIRST_MS;
        if (exp && !t->closed)
            old = arm(t, exp - refresh_ahead(t, validity));
    } else {
        free(tok);
        t->fail = st;
        snprintf(t->why, sizeof t->why, "%s", msg && *msg ? msg : envd_strerror(st));
        t->retry_at = now + t->backoff;
        /* Still valid: try again before it runs out. */
        if (t->have && t->expires > t->retry_at && !t->closed)
            old = arm(t, t->retry_at);
        t->backoff = t->backoff * 2 < BACKOFF_MAX_MS ? t->backoff * 2 : BACKOFF_MAX_MS;
    }
    free(msg);
    return old;
}

/* The job thread: one provider call. */
static void refresh_run(envd_k8s_job *j, int stopping)
{
    envd_traffic *t = (envd_traffic *)((char *)j - offsetof(envd_traffic, job));
    pthread_mutex_lock(&t->mu);
    int go = !stopping && !t->closed;
    t->running = go;
    t->runner = pthread_self();
    pthread_mutex_unlock(&t->mu);
    char *tok = NULL, *msg = NULL;
    int64_t exp = 0;
    envd_status st = go ? t->cb(t->ud, &tok, &exp, &msg) : ENVD_E_SHUTDOWN;
    if (st == ENVD_OK && exp < 0)
        exp = 0;
    pthread_mutex_lock(&t->mu);
    envd_timer *old = record(t, st, tok, exp, msg);
    t->done++;
    t->refreshing = t->running = 0;
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
    timer_drop(t, old);
    envd_traffic_unref(t); /* the job's */
}

/* The current token may go out (mu held). fresh: it just came. */
static int usable(envd_traffic *t, int64_t now, int fresh)
{
    if (!t->have || t->stale)
        return 0;
    return t->expires == 0 || now + (fresh ? 0 : t->margin) < t->expires;
}

static envd_status hand_out(envd_traffic *t, char **token, uint64_t *gen)
{
    *token = NULL;
    if (t->token && !(*token = envd_strdup(t->token)))
        return ENVD_E_NOMEM;
    *gen = t->gen;
    t->used = 1;
    return ENVD_OK;
}

static envd_status failed(envd_traffic *t, const char *extra)
{
    envd_status st = t->fail != ENVD_OK ? t->fail : ENVD_UNAUTHENTICATED;
    return envd_start_error(st, "traffic token provider failed%s: %s", extra, t->why);
}

/* Waits for the refresh after `done` (mu held); non-OK on timeout. */
static envd_status wait_refresh(envd_traffic *t, uint64_t done)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    int64_t ns = until.tv_nsec + (t->wait_ms % 1000) * 1000000;
    until.tv_sec += t->wait_ms / 1000 + ns / 1000000000;
    until.tv_nsec = ns % 1000000000;
    while (t->done == done && !t->closed) {
        if (t->wait_ms <= 0)
            pthread_cond_wait(&t->cv, &t->mu);
        else if (pthread_cond_timedwait(&t->cv, &t->mu, &until) == ETIMEDOUT)
            return envd_start_error(ENVD_DEADLINE_EXCEEDED,
                                    "traffic token provider did not answer within %lld ms",
                                    (long long)t->wait_ms);
    }
    return ENVD_OK;
}

envd_status envd_traffic_get(envd_traffic *t, char **token, uint64_t *gen)
{
    *token = NULL;
    *gen = 0;
    envd_status s = ENVD_OK;
    pthread_mutex_lock(&t->mu);
    for (int fresh = 0;; ) {
        int64_t now = unix_ms();
        if (t->closed) {
            s = envd_start_error(ENVD_E_SHUTDOWN, "the client is being freed");
            break;
        }
        if (usable(t, now, fresh)) {
            s = hand_out(t, token, gen);
            break;
        }
        if (fresh) { /* the refresh this call waited for failed */
            s = failed(t, "");
            break;
        }
        if (!t->refreshing) {
            /* After a failure, wait out the backoff (a 401 does not). */
            if (t->fail != ENVD_OK && now < t->retry_at && !t->stale) {
                char extra[64];
                snprintf(extra, sizeof extra, " (next try in %lld ms)",
                         (long long)(t->retry_at - now));
                s = failed(t, extra);
                break;
            }
            if ((s = start_refresh(t)) != ENVD_OK) {
                s = envd_start_error(s, "cannot refresh the traffic token: %s", envd_strerror(s));
                break;
            }
        }
        uint64_t done = t->done;
        if ((s = wait_refresh(t, done)) != ENVD_OK)
            break;
        fresh = t->done != done;
    }
    pthread_mutex_unlock(&t->mu);
    return s;
}

void envd_traffic_rejected(envd_traffic *t, uint64_t gen)
{
    if (!t)
        return;
    pthread_mutex_lock(&t->mu);
    if (gen == 0 || gen == t->gen)
        t->stale = 1;
    pthread_mutex_unlock(&t->mu);
}

/* ---- the header ------------------------------------------------------------------ */

size_t envd_traffic_header(envd_client *c, envd_kv *out, size_t n, envd_header_scratch *scratch)
{
    const char *tok = c->cfg->traffic_token;
    if (c->traffic) {
        scratch->status = envd_traffic_get(c->traffic, &scratch->traffic, &scratch->traffic_gen);
        tok = scratch->traffic;
    }
    if (!tok || !*tok)
        return n;
    for (size_t i = 0; i < n; i++)
        if (strcmp(out[i].name, ENVD_TRAFFIC_TOKEN_HEADER) == 0) {
            out[i].value = tok;
            return n;
        }
    out[n++] = (envd_kv){ENVD_TRAFFIC_TOKEN_HEADER, tok};
    return n;
}
