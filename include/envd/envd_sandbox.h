/*
 * libenvd: sandboxes from an E2B-compatible sandbox API (E2B's own, or the
 * OpenKruise sandbox-manager, which serves the same routes).
 *
 *   envd_sandbox_api   where the API is (URL, X-API-Key), with the creation
 *                      limits every create through it shares.
 *   envd_sandbox_create  POST /sandboxes: a new sandbox and a ready client
 *                      for it (its ID, domain and envdAccessToken from the
 *                      reply, the config's envd port): no further setup.
 *   envd_sandbox_connect POST /sandboxes/{id}/connect: the same for an
 *                      existing one (a paused one is resumed).
 *   envd_sandbox_kill, envd_sandbox_set_timeout, envd_sandbox_list
 *                      DELETE /sandboxes/{id}, POST /sandboxes/{id}/timeout,
 *                      GET /v2/sandboxes (every page, by X-Next-Token).
 *
 * Every call has an _async form returning a future (envd.h's conventions);
 * the requests go through the runtime's libcurl I/O thread, so hundreds of
 * creates can be in flight from one thread.
 *
 * Errors, on every call: the API's reply {"code":N,"message":"..."} gives
 * the message. 401 ENVD_UNAUTHENTICATED ("the API key was refused"), 403
 * ENVD_PERMISSION_DENIED (E2B and the sandbox-manager answer 403 when the
 * key's quota of sandboxes is used up: final, not retried, and the message
 * says so), 404 ENVD_NOT_FOUND, 400 ENVD_INVALID_ARGUMENT, 409
 * ENVD_FAILED_PRECONDITION, 5xx ENVD_UNAVAILABLE / ENVD_INTERNAL (the
 * sandbox-manager answers 500 when a claim fails). 429: the request is sent
 * again after the reply's Retry-After (seconds; 1 s when absent or not a
 * number), at most `retries` times and never waiting longer than
 * max_wait_ms for one retry; past that ENVD_RESOURCE_EXHAUSTED naming the
 * attempts. Not reaching the API is ENVD_UNAVAILABLE as for envd.
 */
#ifndef ENVD_ENVD_SANDBOX_H
#define ENVD_ENVD_SANDBOX_H

#include "envd.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------- the API */

typedef struct envd_sandbox_api envd_sandbox_api;

/* A handle on the API, on the runtime rt. cfg (NULL: defaults; copied)
 * gives the API key (envd_config_set_api_key, sent as X-API-Key), the CA
 * file, the request timeout (each request), and everything the clients of
 * created sandboxes use (scheme, envd port, user, transport ...). The API
 * URL defaults to "https://api.<cfg's domain>", as the E2B SDKs build it.
 * No creation limit by default; 3 retries on 429, each wait at most 60 s.
 * Caller frees with envd_sandbox_api_free, before the runtime. Thread-safe:
 * any number of threads may call through one handle. */
ENVD_API envd_status envd_sandbox_api_new(envd_runtime *rt, const envd_config *cfg,
                                          envd_sandbox_api **out);
/* Cancels the creates still waiting for the limits (their futures complete
 * ENVD_CANCELED); requests already sent finish on their own. */
ENVD_API void envd_sandbox_api_free(envd_sandbox_api *api);
/* The API's base URL: http:// or https://, a host, optionally a port and a
 * path prefix ("http://127.0.0.1:3000", "https://gw.example/kruise/api"
 * for the sandbox-manager's prefixed routes). NULL or "": the default. */
ENVD_API envd_status envd_sandbox_api_set_url(envd_sandbox_api *api, const char *url);
/* Creation limits, shared by every create of this handle: at most
 * per_second creates sent per second (a token bucket holding up to
 * max(1, per_second) tokens; 0 = no limit; up to 10000) and at most
 * concurrency creates in flight (0 = no limit; up to 100000). Creates past
 * them wait in order, without a thread. Both platforms limit the creation
 * rate (E2B: 1/s or 5/s by plan; the sandbox-manager: 49 per second per
 * replica by default). Applies to creates started afterwards. */
ENVD_API envd_status envd_sandbox_api_set_create_limits(envd_sandbox_api *api, double per_second,
                                                        int concurrency);
/* 429 handling: retries 0..100 (0: a 429 fails at once), max_wait_ms
 * 0..3600000 (a Retry-After longer than this fails at once). */
ENVD_API envd_status envd_sandbox_api_set_retries(envd_sandbox_api *api, int retries,
                                                  int64_t max_wait_ms);

/* --------------------------------------------------- creation options */

typedef struct envd_sandbox_opts envd_sandbox_opts;

/* Defaults: the API's (timeout 15 s on E2B), no metadata or env vars,
 * secure and autoPause not sent. Caller frees with
 * envd_sandbox_opts_free; copied by the calls that take it. Setters
 * answer ENVD_E_USAGE for NULL o (or NULL name) and ENVD_INVALID_ARGUMENT
 * for a bad value. */
ENVD_API envd_sandbox_opts *envd_sandbox_opts_new(void);
ENVD_API void envd_sandbox_opts_free(envd_sandbox_opts *o);
/* Time to live in seconds (sent as "timeout"), 0..86400*365; for connect,
 * the new time to live from now. */
ENVD_API envd_status envd_sandbox_opts_set_timeout_s(envd_sandbox_opts *o, int seconds);
/* Adds or replaces one metadata entry ("metadata"). The sandbox-manager
 * reads its extensions from here: e2b.agents.kruise.io/claim-timeout-seconds,
 * .../wait-ready-timeout-seconds, .../image, .../cpu-request,
 * .../create-on-no-stock, .../never-timeout, .../skip-init-runtime ... */
ENVD_API envd_status envd_sandbox_opts_set_metadata(envd_sandbox_opts *o, const char *name,
                                                    const char *value);
/* Adds or replaces one environment variable of the sandbox ("envVars"). */
ENVD_API envd_status envd_sandbox_opts_set_env(envd_sandbox_opts *o, const char *name,
                                               const char *value);
/* "secure" and "autoPause": 0 or 1 sends the value; -1 (default) sends
 * nothing. */
ENVD_API envd_status envd_sandbox_opts_set_secure(envd_sandbox_opts *o, int secure);
ENVD_API envd_status envd_sandbox_opts_set_auto_pause(envd_sandbox_opts *o, int auto_pause);

/* ------------------------------------------------------------ sandboxes */

/* One sandbox as the API described it: a plain read-only struct. Strings
 * are NULL when the reply left them out. */
typedef struct envd_sandbox {
    const char *id;           /* sandboxID */
    const char *template_id;  /* templateID */
    const char *domain;       /* where its envd is reached (create, connect) */
    const char *access_token; /* envdAccessToken (create, connect) */
    const char *envd_version; /* envdVersion */
    const char *state;        /* "running" | "paused" (list) */
    const char *started_at;   /* RFC 3339 (list) */
    const char *end_at;
    size_t n_metadata;
    const envd_kv *metadata;
    void *internal_; /* the library's: do not touch */
} envd_sandbox;

/* POST /sandboxes with templateID = template_id and the options o (may be
 * NULL), through the handle's creation limits. On success the result
 * (envd_future_sandbox) holds the sandbox and a client for it: the API
 * handle's config with the reply's domain (the config's when the reply has
 * none), envdAccessToken as the runtime token and envdVersion as the envd
 * version (envd_config_set_envd_version), addressed to its sandbox ID.
 * The host is chosen as the E2B SDKs choose it: E2B's own domains (e2b.app,
 * e2b.dev, e2b.pro, e2b-staging.dev) through sandbox.<domain> over https;
 * another domain through <runtime port>-<id>.<domain> (E2B's edge and the
 * OpenKruise gateway route that host); a domain with a port, an address or
 * localhost as it is. The e2b-sandbox-* headers go in every case.
 * Take the client with envd_sandbox_take_client. Returns an error (and no
 * future) only for a NULL api/template_id/out, an empty template_id, or
 * out of memory. Cancelling a create still waiting for the limits ends it
 * ENVD_CANCELED; one already sent may still create the sandbox. */
ENVD_API envd_status envd_sandbox_create_async(envd_sandbox_api *api, const char *template_id,
                                               const envd_sandbox_opts *o, envd_future **out);
/* Caller frees *out with envd_sandbox_free. */
ENVD_API envd_status envd_sandbox_create(envd_sandbox_api *api, const char *template_id,
                                         const envd_sandbox_opts *o, envd_sandbox **out,
                                         envd_error **err);
/* POST /sandboxes/{id}/connect with o's timeout (o NULL or without one:
 * 300 s, the SDKs' default); a paused sandbox is resumed. The result as
 * for create. */
ENVD_API envd_status envd_sandbox_connect_async(envd_sandbox_api *api, const char *sandbox_id,
                                                const envd_sandbox_opts *o, envd_future **out);
ENVD_API envd_status envd_sandbox_connect(envd_sandbox_api *api, const char *sandbox_id,
                                          const envd_sandbox_opts *o, envd_sandbox **out,
                                          envd_error **err);
/* The sandbox of a create or connect future; valid until the future is
 * freed. NULL unless it succeeded. */
ENVD_API const envd_sandbox *envd_future_sandbox(const envd_future *f);
/* Moves the client out of s (also one from envd_future_sandbox). Caller
 * frees it with envd_client_free before the runtime; NULL once taken or
 * for a listed sandbox. */
ENVD_API envd_client *envd_sandbox_take_client(const envd_sandbox *s);
/* Frees s and its client unless taken. Only for sandboxes returned by the
 * blocking forms (a future's is freed with the future). */
ENVD_API void envd_sandbox_free(envd_sandbox *s);

/* DELETE /sandboxes/{id}. The future's result: envd_future_bool, 1 killed,
 * 0 when the API did not know it (404, no error), as the SDKs' kill. */
ENVD_API envd_status envd_sandbox_kill_async(envd_sandbox_api *api, const char *sandbox_id,
                                             envd_future **out);
ENVD_API envd_status envd_sandbox_kill(envd_sandbox_api *api, const char *sandbox_id, int *killed,
                                       envd_error **err);

/* POST /sandboxes/{id}/timeout: the sandbox ends `seconds` from now
 * (0..86400*365). */
ENVD_API envd_status envd_sandbox_set_timeout_async(envd_sandbox_api *api, const char *sandbox_id,
                                                    int seconds, envd_future **out);
ENVD_API envd_status envd_sandbox_set_timeout(envd_sandbox_api *api, const char *sandbox_id,
                                              int seconds, envd_error **err);

/* What GET /v2/sandboxes listed: read-only. */
typedef struct envd_sandboxes {
    size_t count;
    const envd_sandbox *items;
} envd_sandboxes;

/* GET /v2/sandboxes, running and paused, filtered by metadata (every
 * name=value of the n pairs must match; NULL/0: all), following
 * X-Next-Token page after page (at most 1000 pages of 100). The future's
 * result: envd_future_sandboxes. */
ENVD_API envd_status envd_sandbox_list_async(envd_sandbox_api *api, const envd_kv *metadata,
                                             size_t n, envd_future **out);
/* Caller frees *out with envd_sandboxes_free. */
ENVD_API envd_status envd_sandbox_list(envd_sandbox_api *api, const envd_kv *metadata, size_t n,
                                       envd_sandboxes **out, envd_error **err);
/* Valid until the future is freed; NULL unless it succeeded. */
ENVD_API const envd_sandboxes *envd_future_sandboxes(const envd_future *f);
ENVD_API void envd_sandboxes_free(envd_sandboxes *l);

#ifdef __cplusplus
}
#endif
#endif
