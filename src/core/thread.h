/* Threads the runtime starts, and the rule that rests on them: a thread
 * that runs the library's callbacks must never wait for the library, since
 * the thing it waits for may need that very thread to make progress. Such
 * threads are marked; waits and blocking calls refuse on them with
 * ENVD_E_USAGE instead of hanging. */
#ifndef ENVD_CORE_THREAD_H
#define ENVD_CORE_THREAD_H

#include <pthread.h>

/* Starts fn(arg) on a new joinable thread marked as an engine thread (the
 * mark is set before fn runs). 0, or an errno value with nothing started. */
int envd_thread_start(pthread_t *t, void *(*fn)(void *), void *arg);

/* Marks the calling thread as an engine thread (for threads not started by
 * envd_thread_start). */
void envd_thread_mark_engine(void);

/* 1 when blocking here could deadlock: on an engine thread, or inside a
 * completion callback on any thread (envd_future_on_complete may run one on
 * the caller's thread, envd_future_cancel on the cancelling one). */
int envd_thread_is_engine(void);

/* The error a blocking function fn returns on such a thread (ENVD_E_USAGE,
 * naming fn). */
struct envd_error *envd_thread_refusal(const char *fn);

/* Brackets a completion callback run by the future code. Nests. */
void envd_thread_callback_enter(void);
void envd_thread_callback_leave(void);

/* Test seam: the n-th envd_thread_start from now (1 = the next) fails with
 * EAGAIN, as when the system is out of threads; 0 disarms. */
void envd_thread_test_fail_start(int n);

#endif
