/* Transport choice for ENVD_TRANSPORT_AUTO: which protocol an endpoint
 * speaks, learned once per base URL and remembered for the runtime's life.
 *
 * The probe is a gRPC Process.List with the caller's headers. List is
 * read-only, so trying it costs a round trip and nothing else, while
 * probing with the caller's real call could run it twice if a gateway ran
 * it and then dropped the trailers. One probe runs per runtime at a time;
 * callers for an endpoint being probed wait for its answer. */
#include "transport/transport.h"
#include "core/alloc.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct choice {
    char *key; /* base URL */
    envd_transport_kind kind;
    struct choice *next;
} choice;

struct envd_transport_choice {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int probing;
    choice *known;
};

envd_transport_choice *envd_transport_choice_new(void)
{
    envd_transport_choice *tc = envd_calloc(1, sizeof(*tc));
    if (!tc)
        return NULL;
    pthread_mutex_init(&tc->mu, NULL);
    pthread_cond_init(&tc->cv, NULL);
    return tc;
}

void envd_transport_choice_free(envd_transport_choice *tc)
{
    if (!tc)
        return;
    for (choice *c = tc->known, *n; c; c = n) {
        n = c->next;
        free(c->key);
        free(c);
    }
    pthread_mutex_destroy(&tc->mu);
    pthread_cond_destroy(&tc->cv);
    free(tc);
}

static envd_transport_kind remembered(envd_transport_choice *tc, const char *key)
{
    for (choice *c = tc->known; c; c = c->next)
        if (strcmp(c->key, key) == 0)
            return c->kind;
    return ENVD_TRANSPORT_AUTO;
}

typedef struct probe_state {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
    envd_error *err;
} probe_state;

static int probe_msg(void *ud, const uint8_t *m, size_t n)
{
    (void)ud, (void)m, (void)n;
    return 0;
}

static void probe_done(void *ud, envd_error *err)
{
    probe_state *ps = ud;
    pthread_mutex_lock(&ps->mu);
    ps->err = err;
    ps->done = 1;
    pthread_cond_signal(&ps->cv);
    pthread_mutex_unlock(&ps->mu);
}

/* What a failed probe says about the endpoint. */
static envd_transport_kind judge(const envd_error *err)
{
    if (!err)
        return ENVD_TRANSPORT_GRPC;
    if (envd_grpc_error_is_protocol_mismatch(err))
        return ENVD_TRANSPORT_CONNECT;
    if (err->http_status > 0)
        /* An HTTP/2 reply that is not a mismatch (a gateway's 502 for an
         * unknown sandbox, a 401): the endpoint speaks HTTP/2 and the caller
         * should see that reply, not a Connect error from an HTTP/1.1
         * attempt at an h2-only port. */
        return ENVD_TRANSPORT_GRPC;
    if (err->code == ENVD_UNAVAILABLE || err->code == ENVD_E_TRANSPORT ||
        err->code == ENVD_DEADLINE_EXCEEDED)
        return ENVD_TRANSPORT_AUTO; /* nothing learned */
    return ENVD_TRANSPORT_GRPC;     /* a real answer over gRPC */
}

static envd_transport_kind probe(envd_rpc_transport *grpc, const envd_endpoint *ep,
                                 const envd_kv *headers, size_t n_headers, int64_t timeout_ms)
{
    /* ListRequest has no fields: its encoding is empty. */
    static const uint8_t empty[1];
    envd_rpc_request req = {
        .ep = ep,
        .method = "/process.Process/List",
        .kind = ENVD_RPC_UNARY,
        .headers = headers,
        .n_headers = n_headers,
        .body = empty,
        .body_len = 0,
        .timeout_ms = timeout_ms > 0 && timeout_ms < 10000 ? timeout_ms : 10000,
    };
    probe_state ps = {.done = 0, .err = NULL};
    pthread_mutex_init(&ps.mu, NULL);
    pthread_cond_init(&ps.cv, NULL);
    envd_rpc_callbacks cb = {probe_msg, probe_done, &ps};
    envd_rpc *rpc = NULL;
    envd_transport_kind kind = ENVD_TRANSPORT_AUTO;
    if (grpc->ops->start(grpc, &req, &cb, &rpc) == ENVD_OK) {
        pthread_mutex_lock(&ps.mu);
        while (!ps.done)
            pthread_cond_wait(&ps.cv, &ps.mu);
        pthread_mutex_unlock(&ps.mu);
        grpc->ops->release(rpc);
        kind = judge(ps.err);
        envd_error_free(ps.err);
    }
    pthread_mutex_destroy(&ps.mu);
    pthread_cond_destroy(&ps.cv);
    return kind;
}

static void remember(envd_transport_choice *tc, const char *key, envd_transport_kind kind)
{
    choice *c = envd_calloc(1, sizeof(*c));
    if (c && (c->key = envd_strdup(key))) {
        c->kind = kind;
        c->next = tc->known;
        tc->known = c;
    } else {
        free(c); /* forgetting only costs another probe */
    }
}

envd_transport_kind envd_transport_choose(envd_transport_choice *tc, envd_rpc_transport *grpc,
                                          const envd_endpoint *ep, const envd_kv *headers,
                                          size_t n_headers, int64_t timeout_ms)
{
    pthread_mutex_lock(&tc->mu);
    envd_transport_kind known;
    while ((known = remembered(tc, ep->base_url)) == ENVD_TRANSPORT_AUTO && tc->probing)
        pthread_cond_wait(&tc->cv, &tc->mu);
    if (known == ENVD_TRANSPORT_AUTO) {
        tc->probing = 1;
        pthread_mutex_unlock(&tc->mu);
        known = probe(grpc, ep, headers, n_headers, timeout_ms);
        pthread_mutex_lock(&tc->mu);
        tc->probing = 0;
        if (known != ENVD_TRANSPORT_AUTO)
            remember(tc, ep->base_url, known);
        pthread_cond_broadcast(&tc->cv);
    }
    pthread_mutex_unlock(&tc->mu);
    return known;
}
