/* Shared by the it_commands*.c tests: one fixture per transport (direct to
 * the reference server, or through the nginx gateway) and an output sink
 * for callbacks. */
#ifndef ENVD_TEST_CMD_UTIL_H
#define ENVD_TEST_CMD_UTIL_H

#include "harness.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

typedef enum fx_route {
    FX_GRPC,    /* gRPC over h2c, straight to the server */
    FX_CONNECT, /* Connect over HTTP/1.1, straight to the server */
    FX_H2C,     /* Connect over h2c (the nghttp2 engine), straight to the server */
    FX_GW_H1,   /* Connect over HTTP/1.1 through the gateway (HTTP/1.1 upstream) */
    FX_GW_GRPC, /* gRPC through the gateway's grpc_pass port */
    FX_GW_TLS   /* Connect over TLS with ALPN h2 through the gateway: libcurl
                 * for the first call, the nghttp2 engine after it */
} fx_route;

typedef struct fixture {
    test_server srv;
    test_gateway gw;
    int has_gw;
    envd_runtime *rt;
    envd_client *c;
    fx_route route;
    envd_transport_kind kind;
} fixture;

/* Client options the tests may tune before the client is made. */
typedef struct fx_tuning {
    int keepalive_s;    /* 0: default */
    int64_t idle_ms;    /* 0: default */
    int64_t request_ms; /* 0: 20000 */
} fx_tuning;

static inline envd_client *fx_client(fixture *fx, const fx_tuning *t)
{
    envd_config *cfg = envd_config_new();
    char addr[64];
    int port = fx->srv.port;
    if (fx->route == FX_GW_H1)
        port = fx->gw.h1_port;
    else if (fx->route == FX_GW_GRPC)
        port = fx->gw.grpc_port;
    else if (fx->route == FX_GW_TLS)
        port = fx->gw.tls_port;
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    envd_config_set_domain(cfg, addr);
    if (fx->route == FX_GW_TLS) {
        char ca[300];
        snprintf(ca, sizeof(ca), "%s/tls.crt", fx->gw.dir);
        envd_config_set_scheme(cfg, "https");
        envd_config_set_ca_file(cfg, ca);
    }
    envd_config_set_transport(cfg, fx->kind);
    if (fx->route == FX_H2C)
        envd_config_set_h2c(cfg, 1);
    envd_config_set_request_timeout_ms(cfg, t && t->request_ms ? t->request_ms : 20000);
    if (t && t->keepalive_s)
        envd_config_set_keepalive_s(cfg, t->keepalive_s);
    if (t && t->idle_ms)
        envd_config_set_idle_timeout_ms(cfg, t->idle_ms);
    envd_client *c = NULL;
    envd_error *err = NULL;
    if (envd_client_new(fx->rt, "sbx-cmd", cfg, &c, &err) != ENVD_OK) {
        fprintf(stderr, "client: %s\n", err ? envd_error_message(err) : "?");
        envd_error_free(err);
    }
    envd_config_free(cfg);
    return c;
}

static inline int fx_setup(void **state, fx_route route, const fx_tuning *t)
{
    fixture *fx = calloc(1, sizeof(*fx));
    *state = fx;
    fx->route = route;
    fx->kind =
        (route == FX_GRPC || route == FX_GW_GRPC) ? ENVD_TRANSPORT_GRPC : ENVD_TRANSPORT_CONNECT;
    if (test_server_start(&fx->srv, "both", NULL) != 0)
        return -1;
    char tmp[300];
    snprintf(tmp, sizeof(tmp), "%s/tmp", fx->srv.root);
    mkdir(tmp, 0777); /* the sandbox's /tmp, for cwd tests */
    if (route == FX_GW_H1 || route == FX_GW_GRPC || route == FX_GW_TLS) {
        static const char *const ids[1] = {"sbx-cmd"};
        if (test_gateway_start(&fx->gw, &fx->srv, ids, 1) != 0)
            return -1;
        fx->has_gw = 1;
    }
    if (envd_runtime_new(NULL, &fx->rt) != ENVD_OK)
        return -1;
    fx->c = fx_client(fx, t);
    if (fx->c && route == FX_GW_TLS) {
        /* libcurl learns that the gateway speaks h2 (ALPN): the tests'
         * calls then run on the nghttp2 engine */
        envd_entry_info *info = NULL;
        envd_error *err = NULL;
        if (envd_fs_get_info(fx->c, "/", &info, &err) != ENVD_OK) {
            fprintf(stderr, "first call over TLS: %s\n", err ? envd_error_message(err) : "?");
            envd_error_free(err);
            return -1;
        }
        envd_entry_info_free(info);
    }
    return fx->c ? 0 : -1;
}

static inline int fx_teardown(void **state)
{
    fixture *fx = *state;
    if (!fx)
        return 0;
    envd_client_free(fx->c);
    envd_runtime_free(fx->rt);
    if (fx->has_gw)
        test_gateway_stop(&fx->gw);
    test_server_stop(&fx->srv);
    free(fx);
    return 0;
}

/* Collects what an output callback receives (any thread). */
typedef struct sink {
    pthread_mutex_t mu;
    char *buf;
    size_t len, cap;
    size_t total; /* bytes seen, also past keep */
    size_t keep;  /* bytes kept in buf; 0 = all */
    int calls;
} sink;

static inline void sink_init(sink *s, size_t keep)
{
    memset(s, 0, sizeof(*s));
    pthread_mutex_init(&s->mu, NULL);
    s->keep = keep;
}

static inline void sink_free(sink *s)
{
    free(s->buf);
    pthread_mutex_destroy(&s->mu);
}

static inline void sink_cb(void *ud, const uint8_t *d, size_t n)
{
    sink *s = ud;
    pthread_mutex_lock(&s->mu);
    s->calls++;
    s->total += n;
    size_t take = n;
    if (s->keep && s->len + take > s->keep)
        take = s->keep > s->len ? s->keep - s->len : 0;
    if (take) {
        if (s->len + take + 1 > s->cap) {
            size_t nc = s->cap ? s->cap : 256;
            while (nc < s->len + take + 1)
                nc *= 2;
            s->buf = realloc(s->buf, nc);
            s->cap = nc;
        }
        memcpy(s->buf + s->len, d, take);
        s->len += take;
        s->buf[s->len] = 0;
    }
    pthread_mutex_unlock(&s->mu);
}

/* Waits up to ms for needle to show up in the sink. */
static inline int sink_wait_for(sink *s, const char *needle, int ms)
{
    for (int waited = 0; waited <= ms; waited += 20) {
        pthread_mutex_lock(&s->mu);
        int found = s->buf && strstr(s->buf, needle) != NULL;
        pthread_mutex_unlock(&s->mu);
        if (found)
            return 1;
        usleep(20000);
    }
    return 0;
}

static inline int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Is pid in envd's process list? */
static inline int listed(envd_client *c, uint32_t pid)
{
    envd_process_list *l = NULL;
    envd_error *err = NULL;
    envd_status st = envd_commands_list(c, &l, &err);
    assert_envd_ok(st, err);
    int seen = 0;
    for (size_t i = 0; i < l->count; i++)
        seen |= l->items[i].pid == pid;
    envd_process_list_free(l);
    return seen;
}

#endif
