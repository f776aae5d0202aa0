/* The allocation seam (see alloc.h). */
#include "core/alloc.h"

#include <stdlib.h>
#include <string.h>

static envd_fault alloc_fault;

void envd_fault_arm(envd_fault *f, long n)
{
    atomic_store(&f->fired, 0);
    atomic_store(&f->countdown, n > 0 ? n : 0);
}

int envd_fault_hit(envd_fault *f)
{
    long n = atomic_load_explicit(&f->countdown, memory_order_relaxed);
    while (n > 0 && !atomic_compare_exchange_weak(&f->countdown, &n, n - 1))
        ;
    if (n != 1)
        return 0;
    atomic_store(&f->fired, 1);
    return 1;
}

int envd_fault_fired(envd_fault *f) { return atomic_load(&f->fired); }

void envd_alloc_test_fail(long n) { envd_fault_arm(&alloc_fault, n); }

int envd_alloc_test_fired(void) { return envd_fault_fired(&alloc_fault); }

void *envd_malloc(size_t n) { return envd_fault_hit(&alloc_fault) ? NULL : malloc(n); }

void *envd_calloc(size_t count, size_t size)
{
    return envd_fault_hit(&alloc_fault) ? NULL : calloc(count, size);
}

void *envd_realloc(void *p, size_t n)
{
    return envd_fault_hit(&alloc_fault) ? NULL : realloc(p, n);
}

char *envd_strdup(const char *s) { return envd_fault_hit(&alloc_fault) ? NULL : strdup(s); }

char *envd_strndup(const char *s, size_t n)
{
    return envd_fault_hit(&alloc_fault) ? NULL : strndup(s, n);
}
