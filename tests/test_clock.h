/* Small measurements the tests share: a monotonic clock in milliseconds,
 * this process's resident memory, and how a cost grows with its input. */
#ifndef ENVD_TEST_CLOCK_H
#define ENVD_TEST_CLOCK_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

static inline int64_t test_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* VmRSS in KiB, or -1 when /proc cannot tell. */
static inline long test_rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb;
}

/* How the CPU time of run(ud, n) grows from n = small to n = large: the
 * best of `reps` runs of each, on this thread's CPU clock, as a ratio. A
 * complexity check (n log n grows about as n; n^2 as its square) that holds
 * under sanitizers and beside other work, where an absolute time would not:
 * performance itself is the bench's to measure. */
static inline double test_growth(void (*run)(void *ud, size_t n), void *ud, size_t small,
                                 size_t large, int reps)
{
    double best[2] = {0, 0};
    const size_t ns[2] = {small, large};
    for (int r = 0; r < reps; r++)
        for (int k = 0; k < 2; k++) {
            struct timespec a, b;
            clock_gettime(CLOCK_THREAD_CPUTIME_ID, &a);
            run(ud, ns[k]);
            clock_gettime(CLOCK_THREAD_CPUTIME_ID, &b);
            double s = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
            if (r == 0 || s < best[k])
                best[k] = s;
        }
    fprintf(stderr, "  growth from n=%zu (%.4f s) to n=%zu (%.4f s): %.1fx\n", small, best[0],
            large, best[1], best[0] > 0 ? best[1] / best[0] : 0.0);
    return best[0] > 0 ? best[1] / best[0] : 0.0;
}

#endif
