/* The runtime: timer thread, gRPC workers, curl I/O thread, in-flight cap. */
#include "api/op.h"
#include "core/alloc.h"
#include "core/thread.h"
#include "k8s/worker.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void runtime_destroy(envd_runtime *rt);

const char *envd_version(void) { return ENVD_VERSION_STRING; }

/* The number of gRPC workers to start, or 0 when cfg asks for more than
 * the bound (the setter refuses those; a config filled some other way must
 * not get past it: tens of thousands of threads end in an abort inside
 * gRPC rather than an error). */
static int worker_count(const envd_config *cfg)
{
    if (cfg->workers > ENVD_MAX_WORKERS)
        return 0;
    if (cfg->workers > 0)
        return cfg->workers;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n <= 0 ? 1 : n > ENVD_MAX_WORKERS ? ENVD_MAX_WORKERS : (int)n;
}

envd_status envd_runtime_new(const envd_config *cfg, envd_runtime **out)
{
    if (!out)
        return ENVD_E_USAGE;
    *out = NULL;
    envd_config *defaults = NULL;
    if (!cfg) {
        defaults = envd_config_new();
        if (!defaults)
            return ENVD_E_NOMEM;
        cfg = defaults;
    }
    int workers = worker_count(cfg);
    envd_runtime *rt = workers > 0 ? envd_calloc(1, sizeof(*rt)) : NULL;
    if (rt) {
        rt->max_inflight = cfg->max_inflight;
        rt->fail_fast = cfg->fail_fast;
        rt->pool.streams_per_connection = cfg->streams_per_connection;
        rt->pool.max_connections = cfg->max_connections;
    }
    envd_config_free(defaults);
    if (!rt)
        return workers > 0 ? ENVD_E_NOMEM : ENVD_E_CONFIG;
    pthread_mutex_init(&rt->mu, NULL);
    pthread_cond_init(&rt->slot_cv, NULL);
    pthread_cond_init(&rt->kills_cv, NULL);
    pthread_cond_init(&rt->later_cv, NULL);
    /* Any thread that cannot start fails the whole runtime: what started
     * is stopped and freed again below. */
    envd_status s = ENVD_OK;
    if (envd_timers_new(&rt->timers) != 0 || !(rt->choice = envd_transport_choice_new()))
        s = ENVD_E_NOMEM;
    if (s == ENVD_OK)
        s = envd_grpc_engine_new(workers, rt->timers, &rt->pool, &rt->grpc);
    if (s == ENVD_OK)
        s = envd_curl_engine_new(rt->timers, &rt->pool, &rt->curl);
    if (s != ENVD_OK) {
        runtime_destroy(rt);
        return s;
    }
    *out = rt;
    return ENVD_OK;
}

static void runtime_destroy(envd_runtime *rt)
{
    pthread_mutex_lock(&rt->mu);
    rt->closing = 1;
    pthread_cond_broadcast(&rt->slot_cv);
    pthread_mutex_unlock(&rt->mu);
    /* Runs in flight are killed (cancel means stop), before the engines
     * that carry the kills go. */
    envd_ops_shutdown(rt);
    /* Engines cancel what is in flight; every future completes. The
     * Kubernetes worker stops first: its jobs hand requests to curl. */
    envd_k8s_worker_stop(rt->k8s);
    if (rt->curl)
        envd_curl_engine_free(rt->curl);
    envd_k8s_worker_free(rt->k8s);
    if (rt->grpc)
        envd_grpc_engine_free(rt->grpc);
    if (rt->timers)
        envd_timers_free(rt->timers);
    envd_transport_choice_free(rt->choice);
    pthread_mutex_destroy(&rt->mu);
    pthread_cond_destroy(&rt->slot_cv);
    pthread_cond_destroy(&rt->kills_cv);
    pthread_cond_destroy(&rt->later_cv);
    free(rt);
}

envd_status envd_runtime_free(envd_runtime *rt)
{
    if (!rt)
        return ENVD_OK;
    /* Joining the engine's threads from one of them would never return. */
    if (envd_thread_is_engine())
        return ENVD_E_USAGE;
    runtime_destroy(rt);
    return ENVD_OK;
}

envd_status envd_rt_acquire(envd_runtime *rt)
{
    pthread_mutex_lock(&rt->mu);
    while (!rt->closing && rt->inflight >= rt->max_inflight) {
        if (rt->fail_fast) {
            pthread_mutex_unlock(&rt->mu);
            return ENVD_E_BUSY;
        }
        pthread_cond_wait(&rt->slot_cv, &rt->mu);
    }
    if (rt->closing) {
        pthread_mutex_unlock(&rt->mu);
        return ENVD_E_SHUTDOWN;
    }
    rt->inflight++;
    pthread_mutex_unlock(&rt->mu);
    return ENVD_OK;
}

void envd_rt_release(envd_runtime *rt)
{
    pthread_mutex_lock(&rt->mu);
    rt->inflight--;
    pthread_cond_signal(&rt->slot_cv);
    pthread_mutex_unlock(&rt->mu);
}

char *envd_strdup0(const char *s) { return envd_strdup(s ? s : ""); }
