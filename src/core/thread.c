/* Engine-thread marks: thread-local flags, set once per thread by the
 * trampoline below or by the thread itself. */
#include "core/thread.h"
#include "core/alloc.h"
#include "core/error.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>

static _Thread_local int tl_engine;
static _Thread_local int tl_callbacks; /* depth of completion callbacks */
static envd_fault start_fault;         /* test seam */

typedef struct trampoline {
    void *(*fn)(void *);
    void *arg;
} trampoline;

static void *thread_main(void *p)
{
    trampoline t = *(trampoline *)p;
    free(p);
    tl_engine = 1;
    return t.fn(t.arg);
}

int envd_thread_start(pthread_t *t, void *(*fn)(void *), void *arg)
{
    if (envd_fault_hit(&start_fault))
        return EAGAIN;
    trampoline *tr = envd_malloc(sizeof(*tr));
    if (!tr)
        return ENOMEM;
    tr->fn = fn;
    tr->arg = arg;
    int rc = pthread_create(t, NULL, thread_main, tr);
    if (rc != 0)
        free(tr);
    return rc;
}

void envd_thread_mark_engine(void) { tl_engine = 1; }

int envd_thread_is_engine(void) { return tl_engine || tl_callbacks > 0; }

envd_error *envd_thread_refusal(const char *fn)
{
    return envd_error_new(ENVD_E_USAGE, ENVD_TRANSPORT_NONE, 0,
                          "%s: called on an engine thread or in a callback, where waiting "
                          "would deadlock; use the asynchronous form and a completion callback",
                          fn);
}

void envd_thread_callback_enter(void) { tl_callbacks++; }

void envd_thread_callback_leave(void) { tl_callbacks--; }

void envd_thread_test_fail_start(int n) { envd_fault_arm(&start_fault, n); }
