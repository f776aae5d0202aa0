/* Every allocation of the library goes through here, so that a test can
 * make any one of them fail and check that the failure comes back as a
 * clean ENVD_E_NOMEM with nothing leaked. Without a test armed these are
 * the libc functions plus one relaxed atomic load. Internal: not in the
 * public header; tests reach it through the static test library. */
#ifndef ENVD_CORE_ALLOC_H
#define ENVD_CORE_ALLOC_H

#include <stdatomic.h>
#include <stddef.h>

void *envd_malloc(size_t n);
void *envd_calloc(size_t count, size_t size);
void *envd_realloc(void *p, size_t n);
char *envd_strdup(const char *s);
char *envd_strndup(const char *s, size_t n);

/* A fault seam: "the n-th event from now fails". Shared by allocations and
 * thread starts. */
typedef struct envd_fault {
    atomic_long countdown; /* 0: disarmed */
    atomic_int fired;
} envd_fault;

/* Arms f so that its n-th hit from now fails (1 = the next); n <= 0
 * disarms. Clears the fired flag. */
void envd_fault_arm(envd_fault *f, long n);
/* Counts one event; 1 when this one must fail. */
int envd_fault_hit(envd_fault *f);
/* 1 when a failure was injected since f was last armed. */
int envd_fault_fired(envd_fault *f);

/* Test hooks for allocations: the n-th envd_* allocation from now, on any
 * thread, returns NULL (n <= 0 disarms); whether that happened. */
void envd_alloc_test_fail(long n);
int envd_alloc_test_fired(void);

#endif
