/* The test servers (tests/peer/server.mjs, tests/k8s/stub.mjs) print
 * "listening <port>" once they accept connections. Reads fd until that line
 * (or EOF, or timeout_ms of silence) and returns the port, or -1 with what
 * was read in out (NUL-terminated) for the error message. */
#ifndef ENVD_TEST_LISTENING_H
#define ENVD_TEST_LISTENING_H

#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static inline int test_read_listening_port(int fd, int timeout_ms, char *out, size_t cap)
{
    size_t len = 0;
    out[0] = 0;
    while (len + 1 < cap) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, timeout_ms) <= 0)
            break;
        ssize_t r = read(fd, out + len, cap - 1 - len);
        if (r <= 0)
            break;
        len += (size_t)r;
        out[len] = 0;
        char *l = strstr(out, "listening ");
        if (l && strchr(l, '\n'))
            return atoi(l + 10);
    }
    return -1;
}

#endif
