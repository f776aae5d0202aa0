/* Internal side of envd_future: how operations create and complete them.
 *
 * A future has two owners: the caller (dropped by envd_future_free) and the
 * operation (dropped by envd_future_complete). Whichever goes last frees it.
 * Completion happens exactly once; a second complete is a bug and ignored. */
#ifndef ENVD_CORE_FUTURE_H
#define ENVD_CORE_FUTURE_H

#include "envd/envd.h"

typedef void (*envd_free_fn)(void *p);

/* What an operation exposes so a caller can cancel it. The future takes a
 * reference on op (ref) around each cancel call, so op stays valid even if
 * the operation completes concurrently. */
typedef struct envd_cancel_hook {
    void (*cancel)(void *op);
    void (*ref)(void *op);
    void (*unref)(void *op);
    void *op;
} envd_cancel_hook;

/* kind tags the result's type for the typed accessors. NULL on OOM. */
envd_future *envd_future_create(int kind);

/* Installs the cancel hook (once, before the operation can complete). If the
 * caller already asked for cancellation, hook.cancel runs right away. */
void envd_future_set_cancel(envd_future *f, const envd_cancel_hook *hook);

/* Completes f with a result (owned by f, released with free_fn; may be NULL)
 * and/or an error (owned by f). Runs the completion callback, wakes waiters, and drops
 * the operation's reference: f must not be touched by the operation after. */
void envd_future_complete(envd_future *f, void *result, envd_free_fn free_fn, envd_error *err);

/* The result if f is done and has this kind (also when it failed); else NULL. */
void *envd_future_result(const envd_future *f, int kind);

/* Moves the result out (f keeps no result afterwards). */
void *envd_future_take_result(envd_future *f, int kind);

int envd_future_kind(const envd_future *f);

/* A number the operation publishes before it completes, readable at any
 * time (0 until set): a run future's pid. */
void envd_future_set_aux(envd_future *f, uint64_t v);
uint64_t envd_future_aux(const envd_future *f);

#endif
