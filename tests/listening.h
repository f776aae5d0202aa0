/* The test servers (tests/peer/server.mjs, tests/k8s/stub.mjs) print
 * "listening <port>" once they accept connections. Reads fd until that line
 * (or EOF, or timeout_ms of silence) and returns the port, or -1 with what
 * was read in out (NUL-terminated) for the error message. */
#ifndef ENVD_TEST_LISTENING_H
#define ENVD_TEST_LISTENING_H

#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
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

/* Starts argv (argv[0] looked up in PATH) with its stdout on a pipe, killed
 * when this test process dies (a failed assertion leaves no server behind),
 * and reads the port it prints. Returns the port, or -1 with what it printed
 * in out. *pid is the child either way (-1 when none was started); stop it
 * with test_stop_child. */
static inline int test_spawn_listening(const char *const *argv, pid_t *pid, char *out, size_t cap)
{
    int fds[2];
    out[0] = 0;
    *pid = -1;
    if (pipe(fds) != 0)
        return -1;
    pid_t child = fork();
    if (child == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(fds[1]);
    int port = child > 0 ? test_read_listening_port(fds[0], 20000, out, cap) : -1;
    close(fds[0]);
    *pid = child;
    return port;
}

/* SIGTERM, then SIGKILL after wait_ms; reaps it and sets *pid to 0. */
static inline void test_stop_child(pid_t *pid, int wait_ms)
{
    if (*pid <= 0)
        return;
    kill(*pid, SIGTERM);
    int st, gone = 0;
    for (int waited = 0; !gone && waited < wait_ms; waited += 20) {
        gone = waitpid(*pid, &st, WNOHANG) == *pid;
        if (!gone)
            usleep(20000);
    }
    if (!gone) {
        kill(*pid, SIGKILL);
        waitpid(*pid, &st, 0);
    }
    *pid = 0;
}

#endif
