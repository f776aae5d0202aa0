/* Engine-thread marks: thread-local flags, set once per thread by the
 * trampoline below or by the thread itself. */
#include "core/thread.h"
#include "core/error.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>

static _Thread_local int tl_engine;
static _Thread_local int tl_callbacks; /* depth of completion callbacks */
static atomic_int fail_countdown;      /* test seam; 0 = off */

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

/* One count per start; the start that brings the countdown from 1 to 0 fails. */
static int injected_failure(void)
{
    int n = atomic_load(&fail_countdown);
    while (n > 0 && !atomic_compare_exchange_weak(&fail_countdown, &n, n - 1))
        ;
    return n == 1;
}

int envd_thread_start(pthread_t *t, void *(*fn)(void *), void *arg)
{
    if (injected_failure())
        return EAGAIN;
    trampoline *tr = malloc(sizeof(*tr));
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

void envd_thread_test_fail_start(int n) { atomic_store(&fail_countdown, n > 0 ? n : 0); }
