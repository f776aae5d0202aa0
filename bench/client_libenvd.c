/* libenvd as the client: a closed loop keeping `concurrency` calls in flight
 * with the async API. Each completion callback records the call and starts
 * the next one from the engine thread it runs on, so nothing polls. */
#include "bench.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

enum { PH_WARMUP = 0, PH_MEASURE = 1, PH_STOP = 2 };

typedef struct loop loop;

typedef struct slot {
    loop *lp;
    uint64_t t0;
    struct slot *next; /* on the restart list */
} slot;

struct loop {
    bench_env *env;
    const bench_scenario *sc;
    envd_client *client;
    atomic_int phase;
    _Atomic uint64_t calls, errors;
    atomic_int active; /* slots with a call in flight or queued for restart */
    bench_hist *hist;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    slot *restart; /* slots whose restart was handed to the main thread */
    uint64_t limit; /* --calls: the window closes after this many calls; 0: none */
    int limit_hit;  /* under mu */
    char first_error[200];
};

/* Depth of callback -> start -> callback chains on this thread: a future
 * that is already complete runs its callback at once, inside
 * envd_future_on_complete. Past a few levels the main thread restarts. */
static _Thread_local int chain_depth;

static void note_error(loop *lp, const char *msg)
{
    pthread_mutex_lock(&lp->mu);
    if (!lp->first_error[0])
        snprintf(lp->first_error, sizeof(lp->first_error), "%s", msg);
    pthread_mutex_unlock(&lp->mu);
}

static void slot_retire(loop *lp)
{
    if (atomic_fetch_sub(&lp->active, 1) == 1) {
        pthread_mutex_lock(&lp->mu);
        pthread_cond_broadcast(&lp->cv);
        pthread_mutex_unlock(&lp->mu);
    }
}

static void on_done(envd_future *f, void *ud);

static void issue(slot *s)
{
    loop *lp = s->lp;
    envd_future *f = NULL;
    s->t0 = bench_now_ns();
    envd_status st = lp->sc->start(lp->client, lp->env, &f);
    if (st != ENVD_OK) {
        /* nothing started: the slot stops (the run shows it in errors) */
        atomic_fetch_add(&lp->errors, 1);
        note_error(lp, envd_strerror(st));
        slot_retire(lp);
        return;
    }
    chain_depth++;
    if (envd_future_on_complete(f, on_done, s) != ENVD_OK) {
        envd_future_free(f);
        atomic_fetch_add(&lp->errors, 1);
        note_error(lp, "envd_future_on_complete failed");
        slot_retire(lp);
    }
    chain_depth--;
}

static void on_done(envd_future *f, void *ud)
{
    slot *s = ud;
    loop *lp = s->lp;
    uint64_t t1 = bench_now_ns();
    int phase = atomic_load_explicit(&lp->phase, memory_order_relaxed);
    envd_status st = envd_future_status(f);
    if (phase == PH_MEASURE) {
        if (st == ENVD_OK) {
            uint64_t k = atomic_fetch_add_explicit(&lp->calls, 1, memory_order_relaxed) + 1;
            bench_hist_add(lp->hist, t1 - s->t0);
            if (k == lp->limit) {
                pthread_mutex_lock(&lp->mu);
                lp->limit_hit = 1;
                pthread_cond_broadcast(&lp->cv);
                pthread_mutex_unlock(&lp->mu);
            }
        } else {
            atomic_fetch_add_explicit(&lp->errors, 1, memory_order_relaxed);
        }
    }
    if (st != ENVD_OK) {
        const envd_error *e = envd_future_error(f);
        note_error(lp, e ? envd_error_message(e) : envd_strerror(st));
    }
    envd_future_free(f); /* allowed in the callback: the engine holds its own reference */
    if (phase == PH_STOP) {
        slot_retire(lp);
        return;
    }
    if (chain_depth < 8) {
        issue(s);
        return;
    }
    pthread_mutex_lock(&lp->mu);
    s->next = lp->restart;
    lp->restart = s;
    pthread_cond_broadcast(&lp->cv);
    pthread_mutex_unlock(&lp->mu);
}

/* Sleeps until `until_ns`, restarting handed-over slots meanwhile. */
static void main_wait(loop *lp, uint64_t until_ns)
{
    for (;;) {
        pthread_mutex_lock(&lp->mu);
        while (!lp->restart && !lp->limit_hit && bench_now_ns() < until_ns &&
               atomic_load(&lp->active) > 0) {
            uint64_t left = until_ns - bench_now_ns();
            if (left > 50000000)
                left = 50000000;
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += (long)left;
            ts.tv_sec += ts.tv_nsec / 1000000000;
            ts.tv_nsec %= 1000000000;
            pthread_cond_timedwait(&lp->cv, &lp->mu, &ts);
        }
        slot *list = lp->restart;
        lp->restart = NULL;
        pthread_mutex_unlock(&lp->mu);
        if (!list)
            return;
        while (list) {
            slot *s = list;
            list = s->next;
            issue(s);
        }
    }
}

static int libenvd_supports(const bench_env *env, const bench_scenario *sc, int transport)
{
    (void)env, (void)transport;
    return sc->start != NULL || sc->run != NULL;
}

/* One synchronous-style call first: connects and proves the case works. */
static int first_call(loop *lp, char *why, size_t why_len)
{
    envd_future *f = NULL;
    envd_status st = lp->sc->start(lp->client, lp->env, &f);
    if (st != ENVD_OK) {
        snprintf(why, why_len, "start: %s", envd_strerror(st));
        return -1;
    }
    envd_future_wait(f, 30000);
    st = envd_future_status(f);
    if (st != ENVD_OK) {
        const envd_error *e = envd_future_error(f);
        snprintf(why, why_len, "first call: %s", e ? envd_error_message(e) : envd_strerror(st));
    }
    envd_future_free(f);
    return st == ENVD_OK ? 0 : -1;
}

static int libenvd_run(bench_env *env, const bench_scenario *sc, int transport, int concurrency,
                       bench_result *out)
{
    if (sc->run)
        return sc->run(env, sc, transport, concurrency, out);
    const bench_opts *o = env->opts;
    loop lp;
    memset(&lp, 0, sizeof(lp));
    lp.env = env;
    lp.sc = sc;
    lp.limit = (uint64_t)o->calls;
    pthread_mutex_init(&lp.mu, NULL);
    pthread_cond_init(&lp.cv, NULL);
    lp.hist = bench_hist_new();
    slot *slots = calloc((size_t)concurrency, sizeof(slot));
    envd_runtime *rt = bench_runtime_new(env, concurrency + 64);
    if (rt)
        lp.client = bench_client_new(env, rt, transport, 30000);
    int rc = -1;
    if (!lp.hist || !slots || !rt || !lp.client) {
        out->skipped = 1;
        snprintf(out->note, sizeof(out->note), "setup failed (runtime/client)");
        goto done;
    }
    if (first_call(&lp, out->note, sizeof(out->note)) != 0) {
        out->skipped = 1;
        goto done;
    }
    bench_self_reset_hwm();
    atomic_store(&lp.active, concurrency);
    for (int i = 0; i < concurrency; i++) {
        slots[i].lp = &lp;
        issue(&slots[i]);
    }
    main_wait(&lp, bench_now_ns() + (uint64_t)(o->warmup_s * 1e9));

    struct rusage ru0, ru1;
    double srv0 = bench_server_cpu_us(env);
    getrusage(RUSAGE_SELF, &ru0);
    uint64_t t0 = bench_now_ns();
    atomic_store(&lp.phase, PH_MEASURE);
    main_wait(&lp, t0 + (uint64_t)(o->duration_s * 0.5e9));
    /* the bench's own look at /proc costs CPU: take it out of the figure */
    struct rusage pr0, pr1;
    getrusage(RUSAGE_THREAD, &pr0);
    if (!lp.limit) { /* --calls (profiling): no /proc reads in the profile */
        out->connections = bench_count_conns(bench_target_port(env, out->transport));
        out->threads = bench_self_threads();
    }
    getrusage(RUSAGE_THREAD, &pr1);
    main_wait(&lp, t0 + (uint64_t)(o->duration_s * 1e9));
    atomic_store(&lp.phase, PH_STOP);
    uint64_t t1 = bench_now_ns();
    pthread_mutex_lock(&lp.mu);
    lp.limit_hit = 0; /* or the drain below would spin */
    pthread_mutex_unlock(&lp.mu);
    getrusage(RUSAGE_SELF, &ru1);
    double probe_us = bench_rusage_us(&pr1) - bench_rusage_us(&pr0);
    double srv1 = bench_server_cpu_us(env);
    out->peak_rss_kib = bench_self_hwm_kib();

    /* drain: every slot retires at its next completion */
    uint64_t drain_until = bench_now_ns() + 35000000000ull;
    while (atomic_load(&lp.active) > 0 && bench_now_ns() < drain_until)
        main_wait(&lp, drain_until);
    if (atomic_load(&lp.active) > 0)
        bench_log("envd-bench: %d calls still in flight after the drain", atomic_load(&lp.active));

    out->calls = atomic_load(&lp.calls);
    out->errors = atomic_load(&lp.errors);
    out->seconds = (double)(t1 - t0) / 1e9;
    out->p50_us = bench_hist_quantile(lp.hist, 0.50) / 1e3;
    out->p90_us = bench_hist_quantile(lp.hist, 0.90) / 1e3;
    out->p99_us = bench_hist_quantile(lp.hist, 0.99) / 1e3;
    out->max_us = (double)atomic_load(&lp.hist->max) / 1e3;
    out->mean_us = out->calls ? (double)atomic_load(&lp.hist->sum) / 1e3 / (double)out->calls : 0;
    out->cpu_us = bench_rusage_us(&ru1) - bench_rusage_us(&ru0) - probe_us;
    out->cpu_user_us = (double)(ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec) * 1e6 +
                       (double)(ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec) -
                       ((double)(pr1.ru_utime.tv_sec - pr0.ru_utime.tv_sec) * 1e6 +
                        (double)(pr1.ru_utime.tv_usec - pr0.ru_utime.tv_usec));
    out->cpu_sys_us = out->cpu_us - out->cpu_user_us;
    if (srv0 >= 0 && srv1 >= 0)
        out->server_cpu_us = srv1 - srv0;
    if (out->errors && lp.first_error[0])
        snprintf(out->note, sizeof(out->note), "first error: %s", lp.first_error);
    rc = 0;
done:
    envd_client_free(lp.client);
    envd_runtime_free(rt);
    free(slots);
    bench_hist_free(lp.hist);
    pthread_mutex_destroy(&lp.mu);
    pthread_cond_destroy(&lp.cv);
    return rc;
}

const bench_client_impl bench_client_libenvd = {"libenvd", libenvd_supports, libenvd_run};
