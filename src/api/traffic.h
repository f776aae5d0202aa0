/* Traffic tokens (envd.h: envd_config_set_traffic_token_provider): the
 * per-client state behind a provider, and the one place the token joins a
 * call's headers (envd_op_headers calls envd_traffic_header).
 *
 * State: the current token, its expiry and margin, whether a 401 made it
 * stale, and the refresh in progress. A refresh is a job on the runtime's
 * job thread (k8s/worker.h); at most one is queued or running per client,
 * and callers that need a token meanwhile wait on a condition variable for
 * it to finish. A timer (core/timer.h) queues the next refresh ahead of
 * expiry while the token is in use.
 *
 * Lifetime: reference counted. The client holds one and closes the state
 * when it is freed (no refresh starts after, the timer is cancelled, a
 * provider call in progress is waited for); the queued job and the armed
 * timer hold one each; a /files transfer holds one to report a 401. */
#ifndef ENVD_API_TRAFFIC_H
#define ENVD_API_TRAFFIC_H

#include "api/op.h"

typedef struct envd_traffic envd_traffic;

/* The state for c's provider (c->cfg->traffic_cb non-NULL). NULL on OOM. */
envd_traffic *envd_traffic_new(envd_client *c);
void envd_traffic_ref(envd_traffic *t);
void envd_traffic_unref(envd_traffic *t);
/* The client is being freed: see above. Drops the client's reference. */
void envd_traffic_close(envd_traffic *t);

/* A token for one request, refreshing (and waiting) when needed. On
 * success *token is malloc'd, or NULL for no header; *gen identifies it
 * for envd_traffic_rejected. On failure the status, with the reason left
 * by envd_start_error. */
envd_status envd_traffic_get(envd_traffic *t, char **token, uint64_t *gen);
/* The gateway answered 401 to a request that carried token gen (0: the
 * current one): the next call refreshes. A newer token is left alone. */
void envd_traffic_rejected(envd_traffic *t, uint64_t gen);

/* envd_op_headers' part: puts the client's traffic token (static or from
 * the provider) into out[0..n), replacing a custom header of that name,
 * and returns the new count. The token is kept in scratch; a failure is
 * scratch->status (the call must not be sent). */
size_t envd_traffic_header(envd_client *c, envd_kv *out, size_t n, envd_header_scratch *scratch);

#endif
