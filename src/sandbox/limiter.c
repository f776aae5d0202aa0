/* The creation limits of one API handle: a token bucket (rate per second,
 * holding up to max(1, rate) tokens) and a count of creates in flight. The
 * creates that cannot go yet wait in a FIFO; nothing blocks a thread. The
 * FIFO moves when a create ends (a slot frees) and when a token is due (the
 * handle's one timer). A create retried after a 429 keeps its slot and
 * waits for a token at the head of the FIFO. */
#include "sandbox/sandbox_internal.h"

#include <stdlib.h>

static void pump(envd_sandbox_api *api);

static void timer_fire(void *ud)
{
    envd_sandbox_api *api = ud;
    pthread_mutex_lock(&api->mu);
    envd_timer *t = api->timer;
    api->timer = NULL;
    pthread_mutex_unlock(&api->mu);
    if (t)
        envd_timer_cancel(t); /* from its own callback: frees it */
    pump(api);
}

/* Under api->mu. */
static void refill(envd_sandbox_api *api, int64_t now)
{
    if (api->rate <= 0)
        return;
    double cap = api->rate < 1 ? 1 : api->rate;
    api->tokens += (double)(now - api->refill_ms) * api->rate / 1000.0;
    if (api->tokens > cap)
        api->tokens = cap;
    api->refill_ms = now;
}

/* Starts every waiting create the limits allow, in order; arms the timer
 * for the next token when the head waits for one. */
static void pump(envd_sandbox_api *api)
{
    sbx_call *go = NULL, **go_tail = &go;
    pthread_mutex_lock(&api->mu);
    int64_t now = envd_now_ms();
    refill(api, now);
    while (api->head && !api->closing) {
        sbx_call *c = api->head;
        if (!c->has_slot && api->concurrency > 0 && api->active >= api->concurrency)
            break;
        if (api->rate > 0 && api->tokens < 1) {
            if (!api->timer) {
                int64_t ms = (int64_t)((1 - api->tokens) * 1000.0 / api->rate) + 1;
                api->timer = envd_timer_start(api->rt->timers, ms, timer_fire, api);
            }
            break;
        }
        if (api->rate > 0)
            api->tokens -= 1;
        if (!c->has_slot) {
            c->has_slot = 1;
            api->active++;
        }
        api->head = c->next;
        if (!api->head)
            api->tail = NULL;
        c->queued = 0;
        c->next = NULL;
        *go_tail = c;
        go_tail = &c->next;
    }
    pthread_mutex_unlock(&api->mu);
    while (go) {
        sbx_call *c = go;
        go = c->next;
        c->next = NULL;
        sbx_call_send(c);
        sbx_call_unref(c); /* the FIFO's */
    }
}

void sbx_limiter_enter(sbx_call *c)
{
    envd_sandbox_api *api = c->api;
    pthread_mutex_lock(&api->mu);
    if (api->closing) { /* a retry after envd_sandbox_api_free */
        pthread_mutex_unlock(&api->mu);
        envd_op_stop(&c->base);
        sbx_call_complete(c, NULL, NULL, NULL); /* stopped: ENVD_CANCELED */
        return;
    }
    envd_op_ref(&c->base); /* the FIFO's */
    c->queued = 1;
    if (c->has_slot) { /* a retry: ahead of the creates that have none */
        c->next = api->head;
        api->head = c;
        if (!api->tail)
            api->tail = c;
    } else {
        c->next = NULL;
        if (api->tail)
            api->tail->next = c;
        else
            api->head = c;
        api->tail = c;
    }
    pthread_mutex_unlock(&api->mu);
    pump(api);
}

int sbx_limiter_leave(sbx_call *c)
{
    envd_sandbox_api *api = c->api;
    int was = 0;
    pthread_mutex_lock(&api->mu);
    if (c->queued) {
        sbx_call **pp = &api->head, *prev = NULL;
        while (*pp && *pp != c) {
            prev = *pp;
            pp = &(*pp)->next;
        }
        if (*pp) {
            *pp = c->next;
            if (api->tail == c)
                api->tail = prev;
            was = 1;
        }
        c->queued = 0;
        c->next = NULL;
    }
    pthread_mutex_unlock(&api->mu);
    return was;
}

void sbx_limiter_done(sbx_call *c)
{
    envd_sandbox_api *api = c->api;
    pthread_mutex_lock(&api->mu);
    int had = c->has_slot;
    if (had) {
        c->has_slot = 0;
        api->active--;
    }
    pthread_mutex_unlock(&api->mu);
    if (had)
        pump(api);
}

void sbx_limiter_close(envd_sandbox_api *api)
{
    pthread_mutex_lock(&api->mu);
    api->closing = 1;
    sbx_call *waiting = api->head;
    api->head = api->tail = NULL;
    envd_timer *t = api->timer;
    api->timer = NULL;
    for (sbx_call *c = waiting; c; c = c->next)
        c->queued = 0;
    pthread_mutex_unlock(&api->mu);
    envd_timer_cancel(t);
    while (waiting) {
        sbx_call *c = waiting;
        waiting = c->next;
        c->next = NULL;
        envd_op_stop(&c->base);
        sbx_call_complete(c, NULL, NULL, NULL); /* stopped: ENVD_CANCELED */
        sbx_call_unref(c);                      /* the FIFO's */
    }
}
