/* One thread, a binary min-heap of deadlines. Timers are few per call and
 * resets are frequent (idle timers move on every message), so a reset only
 * rewrites the deadline and lets the heap fix itself lazily: the thread
 * re-inserts an entry whose deadline moved later when it pops it. */
#include "core/timer.h"
#include "core/alloc.h"
#include "core/thread.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

enum { T_ARMED, T_FIRING, T_FIRED, T_CANCELLED };

struct envd_timer {
    envd_timers *ts;
    envd_timer_fn fn;
    void *ud;
    _Atomic int64_t deadline; /* updated by reset without the lock */
    int64_t heap_deadline;    /* the key the heap holds */
    size_t heap_index;        /* position in the heap, or SIZE_MAX */
    int state;                /* under ts->mu */
    int free_after_fire;      /* cancel() called from inside the callback */
};

struct envd_timers {
    pthread_mutex_t mu;
    pthread_cond_t cv;      /* wakes the thread: new earliest deadline, stop */
    pthread_cond_t done_cv; /* wakes cancel(): a callback returned */
    pthread_t thread;
    pthread_t self;         /* the timer thread's id, for cancel() from fn */
    envd_timer **heap;
    size_t n, cap;
    int stop;
};

int64_t envd_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void heap_swap(envd_timers *ts, size_t a, size_t b)
{
    envd_timer *t = ts->heap[a];
    ts->heap[a] = ts->heap[b];
    ts->heap[b] = t;
    ts->heap[a]->heap_index = a;
    ts->heap[b]->heap_index = b;
}

static void heap_up(envd_timers *ts, size_t i)
{
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (ts->heap[p]->heap_deadline <= ts->heap[i]->heap_deadline)
            break;
        heap_swap(ts, i, p);
        i = p;
    }
}

static void heap_down(envd_timers *ts, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < ts->n && ts->heap[l]->heap_deadline < ts->heap[m]->heap_deadline)
            m = l;
        if (r < ts->n && ts->heap[r]->heap_deadline < ts->heap[m]->heap_deadline)
            m = r;
        if (m == i)
            return;
        heap_swap(ts, i, m);
        i = m;
    }
}

static int heap_push(envd_timers *ts, envd_timer *t)
{
    if (ts->n == ts->cap) {
        size_t cap = ts->cap ? ts->cap * 2 : 64;
        envd_timer **h = envd_realloc(ts->heap, cap * sizeof(*h));
        if (!h)
            return -1;
        ts->heap = h;
        ts->cap = cap;
    }
    t->heap_deadline = atomic_load(&t->deadline);
    t->heap_index = ts->n;
    ts->heap[ts->n++] = t;
    heap_up(ts, t->heap_index);
    return 0;
}

static void heap_remove(envd_timers *ts, envd_timer *t)
{
    size_t i = t->heap_index;
    if (i == SIZE_MAX)
        return;
    ts->n--;
    if (i != ts->n) {
        ts->heap[i] = ts->heap[ts->n];
        ts->heap[i]->heap_index = i;
        heap_down(ts, i);
        heap_up(ts, i);
    }
    t->heap_index = SIZE_MAX;
}

static void abs_time(int64_t deadline_ms, struct timespec *out)
{
    /* Condition variable uses CLOCK_MONOTONIC (set in envd_timers_new). */
    out->tv_sec = deadline_ms / 1000;
    out->tv_nsec = (long)(deadline_ms % 1000) * 1000000L;
}

static void *timer_main(void *arg)
{
    envd_timers *ts = arg;
    pthread_mutex_lock(&ts->mu);
    while (!ts->stop) {
        if (ts->n == 0) {
            pthread_cond_wait(&ts->cv, &ts->mu);
            continue;
        }
        envd_timer *t = ts->heap[0];
        int64_t now = envd_now_ms();
        int64_t d = atomic_load(&t->deadline);
        if (d > t->heap_deadline) { /* moved later by reset: re-key */
            t->heap_deadline = d;
            heap_down(ts, 0);
            continue;
        }
        if (d > now) {
            struct timespec at;
            abs_time(d, &at);
            pthread_cond_timedwait(&ts->cv, &ts->mu, &at);
            continue;
        }
        heap_remove(ts, t);
        t->state = T_FIRING;
        pthread_mutex_unlock(&ts->mu);
        t->fn(t->ud);
        pthread_mutex_lock(&ts->mu);
        t->state = T_FIRED;
        if (t->free_after_fire)
            free(t);
        pthread_cond_broadcast(&ts->done_cv);
    }
    pthread_mutex_unlock(&ts->mu);
    return NULL;
}

int envd_timers_new(envd_timers **out)
{
    envd_timers *ts = envd_calloc(1, sizeof(*ts));
    if (!ts)
        return -1;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&ts->mu, NULL);
    pthread_cond_init(&ts->cv, &ca);
    pthread_cond_init(&ts->done_cv, NULL);
    pthread_condattr_destroy(&ca);
    if (envd_thread_start(&ts->thread, timer_main, ts) != 0) {
        pthread_mutex_destroy(&ts->mu);
        pthread_cond_destroy(&ts->cv);
        pthread_cond_destroy(&ts->done_cv);
        free(ts);
        return -1;
    }
    ts->self = ts->thread;
    *out = ts;
    return 0;
}

void envd_timers_free(envd_timers *ts)
{
    if (!ts)
        return;
    pthread_mutex_lock(&ts->mu);
    ts->stop = 1;
    pthread_cond_signal(&ts->cv);
    pthread_mutex_unlock(&ts->mu);
    pthread_join(ts->thread, NULL);
    /* Timers still armed belong to their owners, who must cancel them;
     * detach them from the heap so a late cancel does not touch it. */
    for (size_t i = 0; i < ts->n; i++) {
        ts->heap[i]->heap_index = SIZE_MAX;
        ts->heap[i]->ts = NULL;
    }
    free(ts->heap);
    pthread_mutex_destroy(&ts->mu);
    pthread_cond_destroy(&ts->cv);
    pthread_cond_destroy(&ts->done_cv);
    free(ts);
}

envd_timer *envd_timer_start(envd_timers *ts, int64_t delay_ms, envd_timer_fn fn, void *ud)
{
    envd_timer *t = envd_calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->ts = ts;
    t->fn = fn;
    t->ud = ud;
    atomic_store(&t->deadline, envd_now_ms() + (delay_ms > 0 ? delay_ms : 0));
    t->state = T_ARMED;
    pthread_mutex_lock(&ts->mu);
    if (heap_push(ts, t) != 0) {
        pthread_mutex_unlock(&ts->mu);
        free(t);
        return NULL;
    }
    if (t->heap_index == 0)
        pthread_cond_signal(&ts->cv);
    pthread_mutex_unlock(&ts->mu);
    return t;
}

void envd_timer_reset(envd_timer *t, int64_t delay_ms)
{
    /* Later deadlines are picked up lazily by the thread; an earlier one
     * needs the heap fixed now. Idle timers only ever move later. */
    int64_t d = envd_now_ms() + (delay_ms > 0 ? delay_ms : 0);
    int64_t old = atomic_exchange(&t->deadline, d);
    if (d < old && t->ts) {
        envd_timers *ts = t->ts;
        pthread_mutex_lock(&ts->mu);
        if (t->state == T_ARMED && t->heap_index != SIZE_MAX) {
            t->heap_deadline = d;
            heap_up(ts, t->heap_index);
            pthread_cond_signal(&ts->cv);
        }
        pthread_mutex_unlock(&ts->mu);
    }
}

int envd_timer_cancel(envd_timer *t)
{
    if (!t)
        return 0;
    envd_timers *ts = t->ts;
    if (!ts) { /* the service is gone; the timer never fired */
        free(t);
        return 1;
    }
    pthread_mutex_lock(&ts->mu);
    int disarmed = 0;
    if (t->state == T_ARMED) {
        heap_remove(ts, t);
        disarmed = 1;
    } else if (t->state == T_FIRING) {
        if (pthread_equal(pthread_self(), ts->self)) {
            t->free_after_fire = 1;
            pthread_mutex_unlock(&ts->mu);
            return 0;
        }
        while (t->state == T_FIRING)
            pthread_cond_wait(&ts->done_cv, &ts->mu);
    }
    pthread_mutex_unlock(&ts->mu);
    free(t);
    return disarmed;
}
