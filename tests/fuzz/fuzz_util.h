/* Shared bits of the libFuzzer targets (tests/fuzz/fuzz_*.c): file-backed
 * inputs for the loaders that take a path, and a check that aborts with a
 * message (a fuzzer finding, not a test of caller input). */
#ifndef ENVD_FUZZ_UTIL_H
#define ENVD_FUZZ_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                                          \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);              \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* The bytes as a file the loaders can open by name ("/proc/self/fd/N"), in
 * memory. Returns the fd (close it when done) or -1. */
static inline int fuzz_memfile(const uint8_t *data, size_t size, char *path, size_t cap)
{
    int fd = memfd_create("fuzz", 0);
    if (fd < 0)
        return -1;
    size_t off = 0;
    while (off < size) {
        ssize_t w = write(fd, data + off, size - off);
        if (w <= 0) {
            close(fd);
            return -1;
        }
        off += (size_t)w;
    }
    snprintf(path, cap, "/proc/self/fd/%d", fd);
    return fd;
}

/* Splits data at the first occurrence of sep (not included); returns the
 * length of the first part, or size when sep is absent. */
static inline size_t fuzz_split(const uint8_t *data, size_t size, const char *sep)
{
    size_t n = strlen(sep);
    for (size_t i = 0; i + n <= size; i++)
        if (memcmp(data + i, sep, n) == 0)
            return i;
    return size;
}

#endif
