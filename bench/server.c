/* The reference server (tests/peer/server.mjs) as a child process, and the
 * libenvd runtime/client every case builds. */
#include "bench.h"
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static int dir_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* tests/peer/node_modules is normally there; install it when it is not. */
static int ensure_node_modules(const char *src)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/tests/peer/node_modules/@connectrpc", src);
    if (dir_exists(path))
        return 0;
    bench_log("envd-bench: %s/tests/peer/node_modules missing, running npm ci", src);
    char cmd[1200];
    snprintf(cmd, sizeof(cmd), "cd '%s/tests/peer' && npm ci --no-audit --no-fund >&2", src);
    return system(cmd) == 0 ? 0 : -1;
}

static int spawn_server(bench_env *env, int port);
static void end_server(bench_server *s);

int bench_server_start(bench_env *env)
{
    const bench_opts *o = env->opts;
    bench_server *s = &env->server;
    memset(s, 0, sizeof(*s));
    if (o->domain) {
        snprintf(s->addr, sizeof(s->addr), "%s", o->domain);
        const char *colon = strrchr(o->domain, ':');
        s->port = colon ? atoi(colon + 1) : 80;
        s->pid = o->server_pid;
        return 0;
    }
    if (ensure_node_modules(o->source_dir) != 0) {
        bench_log("envd-bench: npm ci failed; run it in tests/peer by hand");
        return -1;
    }
    snprintf(s->root, sizeof(s->root), "%s/root", env->tmpdir);
    if (mkdir(s->root, 0700) != 0 && errno != EEXIST) {
        bench_log("envd-bench: mkdir %s: %s", s->root, strerror(errno));
        return -1;
    }
    if (spawn_server(env, 0) != 0) {
        bench_rm_tree(s->root);
        return -1;
    }
    return 0;
}

/* Starts the reference server on port (0: any) and reads the port it took. */
static int spawn_server(bench_env *env, int port)
{
    const bench_opts *o = env->opts;
    bench_server *s = &env->server;
    char port_s[16];
    snprintf(port_s, sizeof port_s, "%d", port);
    char server[1024];
    snprintf(server, sizeof(server), "%s/tests/peer/server.mjs", o->source_dir);
    const char *argv[] = {o->node,   server,   "--port", port_s, "--host", "127.0.0.1",
                          "--root",  s->root,  "--http", "both", NULL};
    bench_child ch;
    if (bench_spawn(&ch, argv, NULL, NULL) != 0) {
        bench_log("envd-bench: cannot start %s: %s", o->node, strerror(errno));
        return -1;
    }
    s->pid = ch.pid;
    s->owned = 1;
    char buf[512];
    size_t len = 0;
    uint64_t deadline = bench_now_ns() + 20000000000ull;
    while (bench_now_ns() < deadline && len < sizeof(buf) - 1) {
        struct pollfd p = {ch.out_fd, POLLIN, 0};
        if (poll(&p, 1, 200) <= 0)
            continue;
        ssize_t r = read(ch.out_fd, buf + len, sizeof(buf) - 1 - len);
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
    /* The server prints nothing more; a closed pipe would only matter if it
     * did (SIGPIPE), so keep the read end open until it stops. */
    if (s->port <= 0) {
        close(ch.out_fd);
        bench_log("envd-bench: the reference server did not start (output: %.*s)", (int)len, buf);
        end_server(s);
        return -1;
    }
    fcntl(ch.out_fd, F_SETFD, FD_CLOEXEC);
    s->out_fd = ch.out_fd; /* closed when it ends (a restart made one a time) */
    snprintf(s->addr, sizeof(s->addr), "127.0.0.1:%d", s->port);
    return 0;
}

/* SIGTERM, then SIGKILL after 5 s; reaps it. */
static void end_server(bench_server *s)
{
    kill(s->pid, SIGCONT); /* in case inflight left it stopped */
    kill(s->pid, SIGTERM);
    int st;
    int gone = 0;
    for (int i = 0; i < 100 && !gone; i++) {
        if (waitpid(s->pid, &st, WNOHANG) == s->pid)
            gone = 1;
        else
            bench_sleep_ns(50000000);
    }
    if (!gone) {
        kill(s->pid, SIGKILL);
        waitpid(s->pid, &st, 0);
    }
    s->pid = 0;
    if (s->out_fd > 0)
        close(s->out_fd);
    s->out_fd = 0;
}

int bench_tls_gateway(bench_env *env)
{
    if (env->tls_gw)
        return 0;
    test_gateway *gw = calloc(1, sizeof(*gw));
    test_server srv;
    memset(&srv, 0, sizeof(srv));
    if (!gw || strlen(env->server.addr) >= sizeof(srv.addr)) {
        free(gw);
        return -1;
    }
    memcpy(srv.addr, env->server.addr, strlen(env->server.addr) + 1);
    static const char *const ids[] = {"envd-bench"}; /* what every client sends */
    if (test_gateway_start(gw, &srv, ids, 1) != 0) {
        bench_log("envd-bench: the nginx TLS gateway did not start");
        free(gw);
        return -1;
    }
    snprintf(env->tls_addr, sizeof(env->tls_addr), "127.0.0.1:%d", gw->tls_port);
    snprintf(env->tls_ca, sizeof(env->tls_ca), "%s/tls.crt", gw->dir);
    env->tls_gw = gw;
    return 0;
}

const char *bench_target_addr(const bench_env *env, int transport)
{
    return transport == BT_CONNECT_TLS && env->tls_gw ? env->tls_addr : env->server.addr;
}

int bench_target_port(const bench_env *env, int transport)
{
    return transport == BT_CONNECT_TLS && env->tls_gw ? env->tls_gw->tls_port : env->server.port;
}

void bench_tls_gateway_stop(bench_env *env)
{
    if (env->tls_gw) {
        test_gateway_stop(env->tls_gw);
        free(env->tls_gw);
        env->tls_gw = NULL;
        env->tls_ca[0] = '\0';
    }
}

void bench_server_stop(bench_env *env)
{
    bench_server *s = &env->server;
    bench_tls_gateway_stop(env);
    if (!s->owned || s->pid <= 0)
        return;
    end_server(s);
    bench_rm_tree(s->root);
}

int bench_server_restart(bench_env *env)
{
    bench_server *s = &env->server;
    if (!s->owned || s->pid <= 0)
        return -1;
    int port = s->port;
    end_server(s);
    s->port = 0;
    /* the same port, so clients reconnect to where they were pointed */
    for (int i = 0; i < 50; i++) {
        if (spawn_server(env, port) == 0 && s->port == port)
            return 0;
        bench_sleep_ns(100000000);
    }
    return -1;
}

double bench_server_cpu_us(const bench_env *env)
{
    return bench_proc_cpu_us(env->server.pid);
}

envd_runtime *bench_runtime_new(const bench_env *env, int max_inflight)
{
    return bench_runtime_new_pool(env, max_inflight, 0);
}

envd_runtime *bench_runtime_new_pool(const bench_env *env, int max_inflight, int max_connections)
{
    envd_config *cfg = envd_config_new();
    if (!cfg)
        return NULL;
    if (env->opts->workers > 0)
        envd_config_set_workers(cfg, env->opts->workers);
    envd_config_set_max_inflight(cfg, max_inflight, 0);
    if (max_connections > 0)
        envd_config_set_connection_limits(cfg, ENVD_DEFAULT_STREAMS_PER_CONNECTION,
                                          max_connections);
    envd_runtime *rt = NULL;
    envd_status s = envd_runtime_new(cfg, &rt);
    envd_config_free(cfg);
    if (s != ENVD_OK) {
        bench_log("envd-bench: envd_runtime_new: %s", envd_strerror(s));
        return NULL;
    }
    return rt;
}

envd_client *bench_client_new(bench_env *env, envd_runtime *rt, int transport, int64_t timeout_ms)
{
    return bench_client_new_id(env, rt, transport, timeout_ms, "envd-bench");
}

envd_client *bench_client_new_id(bench_env *env, envd_runtime *rt, int transport,
                                 int64_t timeout_ms, const char *sandbox_id)
{
    return bench_client_new_at(rt, bench_target_addr(env, transport), transport, timeout_ms,
                               sandbox_id, env->tls_ca[0] ? env->tls_ca : NULL);
}

envd_client *bench_client_new_at(envd_runtime *rt, const char *addr, int transport,
                                 int64_t timeout_ms, const char *sandbox_id, const char *ca_file)
{
    envd_config *cfg = envd_config_new();
    if (!cfg)
        return NULL;
    envd_config_set_domain(cfg, addr);
    envd_config_set_scheme(cfg, transport == BT_CONNECT_TLS ? "https" : "http");
    if (transport == BT_CONNECT_TLS && ca_file)
        envd_config_set_ca_file(cfg, ca_file);
    envd_config_set_request_timeout_ms(cfg, timeout_ms);
    envd_config_set_transport(cfg,
                              transport == BT_GRPC ? ENVD_TRANSPORT_GRPC : ENVD_TRANSPORT_CONNECT);
    envd_config_set_h2c(cfg, transport == BT_CONNECT_H2C);
    envd_client *c = NULL;
    envd_error *err = NULL;
    envd_status s = envd_client_new(rt, sandbox_id, cfg, &c, &err);
    envd_config_free(cfg);
    if (s != ENVD_OK) {
        bench_log("envd-bench: envd_client_new: %s",
                  err ? envd_error_message(err) : envd_strerror(s));
        envd_error_free(err);
        return NULL;
    }
    return c;
}
