/* The E2B-compatible sandbox API (include/envd/envd_sandbox.h): what its
 * files share.
 *
 * Every call is one sbx_call, an envd_op (api/op.h): a JSON request to the
 * API over the runtime's curl engine, sent again after Retry-After on 429
 * (bounded), and finished by the call's own `done` on a 2xx reply. A
 * create also goes through the handle's limiter first (limiter.c): a token
 * bucket for the rate and a count for the concurrency, with a FIFO of the
 * creates waiting for them and one timer for the next token. */
#ifndef ENVD_SANDBOX_INTERNAL_H
#define ENVD_SANDBOX_INTERNAL_H

#include "api/op_wire.h"
#include "core/buf.h"
#include "core/kv.h"
#include "envd/envd_sandbox.h"

#include <jansson.h>
#include <pthread.h>

typedef struct sbx_call sbx_call;

struct envd_sandbox_api {
    atomic_int refs; /* the caller's, one per call */
    envd_runtime *rt;
    envd_config *cfg;
    pthread_mutex_t mu; /* everything below */
    char *url;          /* no trailing '/' */
    int retries;
    int64_t max_wait_ms;
    /* the limiter (limiter.c) */
    double rate;     /* creates per second, 0 = none */
    int concurrency; /* creates in flight, 0 = none */
    double tokens;
    int64_t refill_ms; /* when tokens was last brought up to date */
    int active;        /* creates holding a concurrency slot */
    sbx_call *head, *tail; /* waiting, FIFO */
    envd_timer *timer;     /* the next token, when one is awaited */
    int closing;
};

void sbx_api_ref(envd_sandbox_api *api);
void sbx_api_unref(envd_sandbox_api *api);

struct envd_sandbox_opts {
    int timeout_s; /* -1: not sent */
    int secure, auto_pause; /* -1: not sent */
    envd_kvlist metadata, env;
};

/* A 2xx reply: the call's own ending. Returns the error to complete with,
 * or NULL having set *result and *free_fn; or sets *again to send another
 * request (the next page) with the call's new path. */
typedef envd_error *(*sbx_done_fn)(sbx_call *c, void **result, envd_free_fn *free_fn, int *again);

struct sbx_call {
    envd_op base; /* first */
    envd_sandbox_api *api;
    envd_future *f;
    atomic_int completed;
    char *what;   /* "create sandbox from template 'x'", for messages */
    const char *method;
    char *path;   /* after the API URL */
    char *body;   /* JSON, or NULL */
    sbx_done_fn done;
    void *ctx;    /* the call's own state, freed with ctx_free */
    envd_free_fn ctx_free;
    int limited;  /* a create: through the limiter */
    /* A create whose reply could not be used: the error it ends with,
     * while the sandbox it made is deleted (calls.c). */
    envd_error *cleanup_err;

    /* limiter.c, under api->mu */
    sbx_call *next;
    int queued;   /* in the FIFO */
    int has_slot; /* holds a concurrency slot */

    envd_op_wire wire; /* the request, or the wait before it is sent again */

    /* one reply (curl I/O thread) */
    int attempts;
    void *easy;
    long status;
    int64_t retry_after_s;
    char *next_token;
    envd_buf reply;
    int reply_nomem;
};

/* Starts c (built by the starters in calls.c, one reference held by the
 * caller, which this takes over): in-flight slot, future of `kind`, then
 * the limiter or the request. ENVD_OK with *out, or an error with nothing
 * started. */
envd_status sbx_call_start(sbx_call *c, int kind, envd_future **out);
/* A new call on api (a reference taken); NULL on out of memory. */
sbx_call *sbx_call_new(envd_sandbox_api *api, const char *method);
void sbx_call_unref(sbx_call *c);
/* Sends the request (again). */
void sbx_call_send(sbx_call *c);
/* Completes the future once (takes err / result). */
void sbx_call_complete(sbx_call *c, void *result, envd_free_fn free_fn, envd_error *err);

/* limiter.c: a create enters (queued until a slot and a token are free),
 * a retry asks for a token again (keeping its slot), the end of a create
 * gives its slot back. leave: drop c from the FIFO; 1 if it was there. */
void sbx_limiter_enter(sbx_call *c);
void sbx_limiter_done(sbx_call *c);
int sbx_limiter_leave(sbx_call *c);
/* Cancels every waiting create (api_free). */
void sbx_limiter_close(envd_sandbox_api *api);

/* calls.c: the JSON of a sandbox into s (strings copied); 0, or -1 with
 * *why (static) for a reply that is not one. */
int sbx_from_json(envd_sandbox *s, json_t *o, const char **why);
/* The host a created sandbox's envd is reached at, as the E2B SDKs pick it:
 * E2B's own domains have one stable host (sandbox.<domain>, https) and
 * route by the e2b-sandbox-* headers; another domain gets its per-sandbox
 * host <port>-<id>.<domain>, which E2B's edge and the OpenKruise gateway
 * both route (the headers go too); a domain that names a port, an address
 * or localhost is a gateway reached as it is. Caller frees *host. */
envd_status sbx_envd_host(const char *domain, const char *id, int port, char **host,
                          int *https);
void sbx_clear(envd_sandbox *s);
/* The done of a kill: the one call whose 404 is an answer (0, not killed). */
envd_error *sbx_kill_done(sbx_call *c, void **result, envd_free_fn *free_fn, int *again);

#endif
