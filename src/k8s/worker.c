/* The runtime's Kubernetes worker (see worker.h). */
#include "k8s/worker.h"
#include "core/alloc.h"
#include "core/thread.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

struct envd_k8s_worker {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    envd_k8s_job *head, *tail;
    pthread_t thread;
    int started;  /* the thread exists (joined by stop) */
    int stopping; /* under mu */
    atomic_int stop_flag;
    int wake_fd;  /* eventfd */
};

envd_k8s_worker *envd_k8s_worker_new(void)
{
    envd_k8s_worker *w = envd_calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    w->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->wake_fd < 0) {
        free(w);
        return NULL;
    }
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    atomic_init(&w->stop_flag, 0);
    return w;
}

/* Takes the next job; NULL when stopping and the queue is empty. */
static envd_k8s_job *next_job(envd_k8s_worker *w, int *stopping)
{
    pthread_mutex_lock(&w->mu);
    while (!w->head && !w->stopping)
        pthread_cond_wait(&w->cv, &w->mu);
    envd_k8s_job *j = w->head;
    if (j) {
        w->head = j->next;
        if (!w->head)
            w->tail = NULL;
        j->next = NULL;
    }
    *stopping = w->stopping;
    pthread_mutex_unlock(&w->mu);
    return j;
}

static void *worker_main(void *arg)
{
    envd_k8s_worker *w = arg;
    int stopping = 0;
    envd_k8s_job *j;
    while ((j = next_job(w, &stopping)) != NULL)
        j->run(j, stopping);
    return NULL;
}

envd_status envd_k8s_worker_submit(envd_k8s_worker *w, envd_k8s_job *j)
{
    envd_status st = ENVD_OK;
    pthread_mutex_lock(&w->mu);
    if (w->stopping) {
        st = ENVD_E_SHUTDOWN;
    } else if (!w->started) {
        if (envd_thread_start(&w->thread, worker_main, w) == 0)
            w->started = 1;
        else
            st = ENVD_E_NOMEM;
    }
    if (st == ENVD_OK) {
        j->next = NULL;
        if (w->tail)
            w->tail->next = j;
        else
            w->head = j;
        w->tail = j;
        pthread_cond_signal(&w->cv);
    }
    pthread_mutex_unlock(&w->mu);
    return st;
}

void envd_k8s_worker_wake(envd_k8s_worker *w)
{
    uint64_t one = 1;
    ssize_t n = write(w->wake_fd, &one, sizeof one);
    (void)n; /* EAGAIN: a wake-up is already pending */
}

int envd_k8s_worker_wake_fd(const envd_k8s_worker *w)
{
    return w->wake_fd;
}

void envd_k8s_worker_drain(envd_k8s_worker *w)
{
    uint64_t v;
    ssize_t n = read(w->wake_fd, &v, sizeof v);
    (void)n;
}

int envd_k8s_worker_stopping(envd_k8s_worker *w)
{
    return atomic_load(&w->stop_flag);
}

void envd_k8s_worker_stop(envd_k8s_worker *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->mu);
    int was = w->stopping, started = w->started;
    w->stopping = 1;
    atomic_store(&w->stop_flag, 1);
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    if (was)
        return;
    envd_k8s_worker_wake(w);
    if (started)
        pthread_join(w->thread, NULL);
}

void envd_k8s_worker_free(envd_k8s_worker *w)
{
    if (!w)
        return;
    envd_k8s_worker_stop(w);
    close(w->wake_fd);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    free(w);
}
