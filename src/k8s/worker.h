/* The runtime's Kubernetes worker: one thread, started on the first job,
 * that runs exec credential plugins (blocking work: spawn, read its output,
 * wait) so that neither the caller nor an I/O thread waits for a plugin.
 * HTTPS lookups do not come here; they run on the runtime's curl engine.
 *
 * Jobs run one at a time, in order. envd_k8s_worker_stop wakes the job in
 * progress (a plugin is killed), runs every queued job with stopping = 1
 * (each completes as canceled) and joins the thread; after it, submit
 * refuses with ENVD_E_SHUTDOWN. */
#ifndef ENVD_K8S_WORKER_H
#define ENVD_K8S_WORKER_H

#include "envd/envd.h"

typedef struct envd_k8s_job envd_k8s_job;
struct envd_k8s_job {
    /* Worker thread, once per submit. stopping: the worker is shutting
     * down; start nothing, complete as canceled. */
    void (*run)(envd_k8s_job *j, int stopping);
    envd_k8s_job *next;
};

typedef struct envd_k8s_worker envd_k8s_worker;

/* NULL on OOM. No thread yet. */
envd_k8s_worker *envd_k8s_worker_new(void);
/* Queues j. ENVD_E_SHUTDOWN once stopping, ENVD_E_NOMEM when the thread
 * cannot be started; j is not queued then. */
envd_status envd_k8s_worker_submit(envd_k8s_worker *w, envd_k8s_job *j);
/* Any thread: the job in progress should look at its cancel flag now. */
void envd_k8s_worker_wake(envd_k8s_worker *w);
/* Worker thread: a descriptor that polls readable after a wake-up; read
 * it with envd_k8s_worker_drain. */
int envd_k8s_worker_wake_fd(const envd_k8s_worker *w);
void envd_k8s_worker_drain(envd_k8s_worker *w);
/* 1 once envd_k8s_worker_stop began. */
int envd_k8s_worker_stopping(envd_k8s_worker *w);
/* See above. Idempotent; must not run on the worker thread. */
void envd_k8s_worker_stop(envd_k8s_worker *w);
/* Stops if needed, then frees. */
void envd_k8s_worker_free(envd_k8s_worker *w);

#endif
