/* The reference server (tests/peer/server.mjs) as a child of a unit test:
 * started on a free loopback port with its own temporary root, killed with
 * the test. Shared by the transport tests so none of them depends on a
 * server someone else exported (they fail, never skip, when it cannot
 * start). */
#ifndef ENVD_TEST_PEER_SERVER_H
#define ENVD_TEST_PEER_SERVER_H

#include "../listening.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

typedef struct peer_proc {
    pid_t pid;
    int port;
    char root[64];
    char addr[32];
} peer_proc;

/* Starts `node tests/peer/server.mjs --port 0 --root <tmp> --http <http>
 * [flag val]` (or $ENVD_TEST_PEER_SERVER) and reads its port; flag may be
 * NULL. Returns -1 (with the reason on stderr) when node or the server is
 * not there or it does not listen within 20 s. The server dies with this
 * process. */
static inline int peer_spawn(peer_proc *p, const char *http, const char *flag, const char *val)
{
    memset(p, 0, sizeof *p);
    p->pid = -1;
    char script[1024];
    const char *env = getenv("ENVD_TEST_PEER_SERVER");
    if (env && env[0]) {
        snprintf(script, sizeof script, "%s", env);
    } else {
        /* tests/unit/<this file> -> tests/peer/server.mjs */
        snprintf(script, sizeof script, "%s", __FILE__);
        char *slash = strrchr(script, '/');
        if (!slash)
            return -1;
        *slash = '\0';
        slash = strrchr(script, '/');
        if (!slash)
            return -1;
        snprintf(slash, sizeof script - (size_t)(slash - script), "/peer/server.mjs");
    }
    if (access(script, R_OK) != 0) {
        fprintf(stderr, "reference server: cannot read %s\n", script);
        return -1;
    }
    snprintf(p->root, sizeof p->root, "/tmp/envd-peer-test-XXXXXX");
    if (!mkdtemp(p->root))
        return -1;
    const char *argv[] = {"node",      script, "--port", "0",  "--host", "127.0.0.1", "--root",
                          p->root,     "--http", http,  flag, val,      NULL};
    char seen[512];
    p->port = test_spawn_listening(argv, &p->pid, seen, sizeof seen);
    if (p->port <= 0) {
        fprintf(stderr, "reference server (%s) did not start: '%s'\n", script,
                p->pid > 0 ? seen : "fork failed");
        test_stop_child(&p->pid, 0);
        p->pid = -1;
        rmdir(p->root);
        p->root[0] = '\0';
        return -1;
    }
    snprintf(p->addr, sizeof p->addr, "127.0.0.1:%d", p->port);
    return 0;
}

/* Kills the server at once (SIGKILL, no goodbye on its connections): how a
 * test loses its server mid-call. The root stays for peer_stop. */
static inline void peer_kill(peer_proc *p)
{
    if (p->pid <= 0)
        return;
    kill(p->pid, SIGKILL);
    waitpid(p->pid, NULL, 0);
    p->pid = 0;
}

/* Stops a server peer_spawn started (a no-op for one it did not). */
static inline void peer_stop(peer_proc *p)
{
    test_stop_child(&p->pid, 5000);
    p->pid = -1;
    if (!p->root[0])
        return;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", p->root);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", p->root);
    p->root[0] = '\0';
}

#endif
