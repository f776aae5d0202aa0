#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef ENVD_SOURCE_DIR
#error "ENVD_SOURCE_DIR must be defined"
#endif

int test_server_start(test_server *s, const char *http, const char *token)
{
    memset(s, 0, sizeof(*s));
    snprintf(s->root, sizeof(s->root), "/tmp/envd-test-XXXXXX");
    if (!mkdtemp(s->root)) {
        perror("mkdtemp");
        return -1;
    }
    int out[2];
    if (pipe(out) != 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        dup2(out[1], 1);
        close(out[0]);
        close(out[1]);
        const char *argv[16];
        int n = 0;
        argv[n++] = "node";
        argv[n++] = ENVD_SOURCE_DIR "/tests/peer/server.mjs";
        argv[n++] = "--port";
        argv[n++] = "0";
        argv[n++] = "--host";
        argv[n++] = "127.0.0.1";
        argv[n++] = "--root";
        argv[n++] = s->root;
        argv[n++] = "--http";
        argv[n++] = http;
        if (token) {
            argv[n++] = "--token";
            argv[n++] = token;
        }
        argv[n] = NULL;
        execvp("node", (char *const *)argv);
        _exit(127);
    }
    close(out[1]);
    s->pid = pid;
    char buf[256];
    size_t len = 0;
    for (;;) {
        struct pollfd p = {out[0], POLLIN, 0};
        if (poll(&p, 1, 20000) <= 0)
            break;
        ssize_t r = read(out[0], buf + len, sizeof(buf) - 1 - len);
        if (r <= 0)
            break;
        len += (size_t)r;
        buf[len] = 0;
        char *l = strstr(buf, "listening ");
        if (l && strchr(l, '\n')) {
            s->port = atoi(l + 10);
            break;
        }
    }
    close(out[0]);
    if (s->port <= 0) {
        fprintf(stderr, "reference server did not start (output: %.*s)\n", (int)len, buf);
        test_server_stop(s);
        return -1;
    }
    snprintf(s->addr, sizeof(s->addr), "127.0.0.1:%d", s->port);
    return 0;
}

void test_server_stop(test_server *s)
{
    if (s->pid > 0) {
        kill(s->pid, SIGTERM);
        int st;
        for (int i = 0; i < 50; i++) {
            if (waitpid(s->pid, &st, WNOHANG) == s->pid) {
                s->pid = 0;
                break;
            }
            usleep(100000);
        }
        if (s->pid > 0) {
            kill(s->pid, SIGKILL);
            waitpid(s->pid, &st, 0);
        }
        s->pid = 0;
    }
    if (s->root[0]) {
        char cmd[300];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", s->root);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", s->root);
    }
}

envd_client *test_client(envd_runtime *rt, const test_server *s, envd_transport_kind kind,
                         const char *token)
{
    envd_config *cfg = envd_config_new();
    envd_config_set_domain(cfg, s->addr);
    envd_config_set_transport(cfg, kind);
    envd_config_set_request_timeout_ms(cfg, 20000);
    if (token)
        envd_config_set_runtime_token(cfg, token);
    envd_client *c = NULL;
    envd_error *err = NULL;
    envd_status st = envd_client_new(rt, "sbx-test", cfg, &c, &err);
    envd_config_free(cfg);
    if (st != ENVD_OK) {
        fprintf(stderr, "client: %s\n", err ? envd_error_message(err) : envd_strerror(st));
        envd_error_free(err);
        return NULL;
    }
    return c;
}
