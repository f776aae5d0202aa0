/* Small measurements the tests share: a monotonic clock in milliseconds
 * and this process's resident memory. */
#ifndef ENVD_TEST_CLOCK_H
#define ENVD_TEST_CLOCK_H

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

#endif
