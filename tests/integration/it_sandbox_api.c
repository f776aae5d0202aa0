/* Sandboxes from an E2B-compatible API, end to end: the API stub
 * (tests/e2bapi/stub.mjs) hands out sandboxes that all point at one
 * reference envd server, and commands run there through the clients the
 * library made from the stub's replies.
 *
 * Facts from the sources, each relied on below:
 *   - E2B spec/openapi.yml: POST /sandboxes takes NewSandbox {templateID,
 *     timeout, autoPause, secure, metadata, envVars} with X-API-Key and
 *     answers 201 Sandbox {sandboxID, envdAccessToken, domain (nullable),
 *     envdVersion}; DELETE /sandboxes/{id} 204 or 404; POST
 *     /sandboxes/{id}/timeout {timeout} 204; POST /sandboxes/{id}/connect
 *     {timeout} 200 (running) or 201 (resumed); GET /v2/sandboxes takes
 *     metadata ("k=v&k2=v2", each part URL-encoded), state, nextToken and
 *     limit (1..100) and answers a JSON array; errors are {code, message}.
 *   - The next page's token comes in the X-Next-Token header (E2B's
 *     pagination setHeader; the sandbox-manager's list.go "x-next-token").
 *   - E2B's ratelimit middleware answers 429 {"code":429,"message":"Rate
 *     limit exceeded"} with Retry-After in whole seconds (at least 1) beside
 *     RateLimit-Limit/-Remaining/-Reset.
 *   - The sandbox-manager (openkruise/agents pkg/servers/e2b/routes.go)
 *     serves the same routes, also under /kruise/api, reads the key from
 *     X-API-KEY and answers 401 "Invalid API Key" for an unknown one; its
 *     create reads extensions from metadata keys e2b.agents.kruise.io/...
 *     (models/extensions.go: claim-timeout-seconds, wait-ready-timeout-
 *     seconds, image, cpu-request, create-on-no-stock, never-timeout,
 *     skip-init-runtime). */
#include "harness.h"

#include "../e2bapi/e2bapi_stub.h"
#include "envd/envd_sandbox.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ENVD_TOKEN "e2bapi-envd-token"
#define KEY "test-key"

typedef struct fixture {
    test_server srv; /* the one envd every sandbox points at */
    envd_runtime *rt;
    envd_config *cfg;
} fixture;

static int setup(void **state)
{
    fixture *fx = calloc(1, sizeof(*fx));
    *state = fx;
    if (test_server_start(&fx->srv, "h1", ENVD_TOKEN) != 0)
        return -1;
    fx->cfg = envd_config_new();
    envd_config_set_api_key(fx->cfg, KEY);
    envd_config_set_transport(fx->cfg, ENVD_TRANSPORT_CONNECT);
    envd_config_set_request_timeout_ms(fx->cfg, 30000);
    /* a token envd refuses: only the one from the API's reply works */
    envd_config_set_runtime_token(fx->cfg, "not-the-token");
    return envd_runtime_new(NULL, &fx->rt) == ENVD_OK ? 0 : -1;
}

static int teardown(void **state)
{
    fixture *fx = *state;
    if (!fx)
        return 0;
    envd_runtime_free(fx->rt);
    envd_config_free(fx->cfg);
    test_server_stop(&fx->srv);
    free(fx);
    return 0;
}

/* A stub for this test (its arguments after --domain), and an API handle
 * on it. */
static envd_sandbox_api *start(fixture *fx, e2bapi_stub *stub, const char *const *args)
{
    const char *argv[24] = {"--envd-token", ENVD_TOKEN};
    size_t n = 2;
    for (size_t i = 0; args && args[i]; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    assert_int_equal(e2bapi_stub_start(stub, fx->srv.addr, argv), 0);
    envd_sandbox_api *api = NULL;
    assert_int_equal(envd_sandbox_api_new(fx->rt, fx->cfg, &api), ENVD_OK);
    assert_int_equal(envd_sandbox_api_set_url(api, stub->url), ENVD_OK);
    return api;
}

static void run_echo(envd_client *c, const char *word)
{
    char cmd[128], want[128];
    snprintf(cmd, sizeof(cmd), "echo %s", word);
    snprintf(want, sizeof(want), "%s\n", word);
    envd_command_result *r = NULL;
    envd_error *err = NULL;
    envd_status st = envd_commands_run(c, cmd, NULL, &r, &err);
    assert_envd_ok(st, err);
    assert_string_equal(r->stdout_data, want);
    envd_command_result_free(r);
}

static void kill_all(envd_sandbox_api *api, const e2bapi_stub *stub)
{
    envd_sandboxes *l = NULL;
    envd_error *err = NULL;
    envd_status st = envd_sandbox_list(api, NULL, 0, &l, &err);
    assert_envd_ok(st, err);
    for (size_t i = 0; i < l->count; i++) {
        int killed = 0;
        st = envd_sandbox_kill(api, l->items[i].id, &killed, &err);
        assert_envd_ok(st, err);
        assert_int_equal(killed, 1);
    }
    envd_sandboxes_free(l);
    assert_int_equal(e2bapi_stub_live(stub), 0);
}

/* The POST /sandboxes requests the stub saw: times (ms) and statuses. */
static size_t creates_seen(const e2bapi_stub *stub, double *t, int *status, int *retry_after,
                           size_t cap)
{
    json_t *j = e2bapi_stub_call(stub, "GET", "/_stub/stats", NULL);
    assert_non_null(j);
    json_t *reqs = json_object_get(j, "requests"), *r;
    size_t i, n = 0;
    json_array_foreach(reqs, i, r)
    {
        const char *m = json_string_value(json_object_get(r, "method"));
        const char *p = json_string_value(json_object_get(r, "path"));
        if (n < cap && m && p && strcmp(m, "POST") == 0 && strcmp(p, "/sandboxes") == 0) {
            t[n] = json_number_value(json_object_get(r, "t"));
            status[n] = (int)json_integer_value(json_object_get(r, "status"));
            retry_after[n] = (int)json_integer_value(json_object_get(r, "retryAfter"));
            n++;
        }
    }
    json_decref(j);
    return n;
}

static int stat_int(const e2bapi_stub *stub, const char *key)
{
    json_t *j = e2bapi_stub_call(stub, "GET", "/_stub/stats", NULL);
    assert_non_null(j);
    int v = (int)json_integer_value(json_object_get(j, key));
    json_decref(j);
    return v;
}

/* ------------------------------------------------------------------ tests */

/* 20 creates in flight at once, at most 4 at the API; each result is a
 * ready client (the stub's domain and token: the config's token is one
 * envd refuses) that runs a command. */
static void create_twenty_and_run(void **state)
{
    fixture *fx = *state;
    e2bapi_stub stub;
    envd_sandbox_api *api = start(fx, &stub, (const char *[]){"--create-delay-ms", "100", NULL});
    assert_int_equal(envd_sandbox_api_set_create_limits(api, 0, 4), ENVD_OK);
    envd_sandbox_opts *o = envd_sandbox_opts_new();
    assert_int_equal(envd_sandbox_opts_set_timeout_s(o, 600), ENVD_OK);
    assert_int_equal(envd_sandbox_opts_set_metadata(o, "e2b.agents.kruise.io/never-timeout",
                                                    "true"),
                     ENVD_OK);
    assert_int_equal(envd_sandbox_opts_set_env(o, "GREETING", "hi"), ENVD_OK);
    enum { N = 20 };
    envd_future *f[N];
    for (int i = 0; i < N; i++)
        assert_int_equal(envd_sandbox_create_async(api, "base", o, &f[i]), ENVD_OK);
    envd_sandbox_opts_free(o);
    assert_int_equal(envd_future_wait_all(f, N, 120000), ENVD_OK);
    for (int i = 0; i < N; i++) {
        assert_envd_ok(envd_future_status(f[i]), envd_future_error(f[i]));
        const envd_sandbox *s = envd_future_sandbox(f[i]);
        assert_non_null(s);
        assert_string_equal(s->domain, fx->srv.addr);
        assert_string_equal(s->access_token, ENVD_TOKEN);
        assert_string_equal(s->template_id, "base");
        for (int k = 0; k < i; k++)
            assert_string_not_equal(s->id, envd_future_sandbox(f[k])->id);
        envd_client *c = envd_sandbox_take_client(s);
        assert_non_null(c);
        assert_null(envd_sandbox_take_client(s)); /* taken once */
        char word[32];
        snprintf(word, sizeof(word), "sandbox-%d", i);
        run_echo(c, word);
        envd_client_free(c);
    }
    for (int i = 0; i < N; i++)
        envd_future_free(f[i]);
    int most = stat_int(&stub, "maxConcurrentCreates");
    assert_true(most <= 4);
    assert_true(most >= 2); /* the bound, not a queue of one */
    assert_int_equal(e2bapi_stub_live(&stub), N);
    kill_all(api, &stub);
    envd_sandbox_api_free(api);
    e2bapi_stub_stop(&stub);
}

/* GET /v2/sandboxes: a metadata filter (a value that needs encoding), and
 * every page followed (the stub pages by 3). */
static void list_filter_and_pages(void **state)
{
    fixture *fx = *state;
    e2bapi_stub stub;
    envd_sandbox_api *api = start(fx, &stub, (const char *[]){"--page-size", "3", NULL});
    for (int i = 0; i < 7; i++) {
        envd_sandbox_opts *o = envd_sandbox_opts_new();
        envd_sandbox_opts_set_metadata(o, "team", i % 2 ? "blue & co" : "red=1");
        envd_sandbox_opts_set_metadata(o, "n", i < 4 ? "low" : "high");
        envd_sandbox *s = NULL;
        envd_error *err = NULL;
        envd_status st = envd_sandbox_create(api, "base", o, &s, &err);
        assert_envd_ok(st, err);
        envd_sandbox_free(s); /* frees its client too */
        envd_sandbox_opts_free(o);
    }
    envd_sandboxes *l = NULL;
    envd_error *err = NULL;
    envd_status st = envd_sandbox_list(api, NULL, 0, &l, &err);
    assert_envd_ok(st, err);
    assert_int_equal(l->count, 7);
    for (size_t i = 0; i < l->count; i++) {
        assert_string_equal(l->items[i].state, "running");
        assert_non_null(l->items[i].end_at);
        assert_int_equal(l->items[i].n_metadata, 2);
    }
    envd_sandboxes_free(l);

    envd_kv blue[] = {{"team", "blue & co"}};
    st = envd_sandbox_list(api, blue, 1, &l, &err);
    assert_envd_ok(st, err);
    assert_int_equal(l->count, 3);
    for (size_t i = 0; i < l->count; i++)
        for (size_t k = 0; k < l->items[i].n_metadata; k++)
            if (strcmp(l->items[i].metadata[k].name, "team") == 0)
                assert_string_equal(l->items[i].metadata[k].value, "blue & co");
    envd_sandboxes_free(l);

    envd_kv two[] = {{"team", "red=1"}, {"n", "high"}};
    envd_future *f = NULL;
    assert_int_equal(envd_sandbox_list_async(api, two, 2, &f), ENVD_OK);
    assert_int_equal(envd_future_wait(f, 60000), ENVD_OK);
    assert_envd_ok(envd_future_status(f), envd_future_error(f));
    assert_int_equal(envd_future_sandboxes(f)->count, 2); /* i = 4, 6 */
    envd_future_free(f);
    kill_all(api, &stub);
    envd_sandbox_api_free(api);
    e2bapi_stub_stop(&stub);
}

/* POST /sandboxes/{id}/timeout: the sandbox ends then (the stub expires
 * it); unknown IDs are not_found for the timeout and "not killed" for a
 * kill. */
static void set_timeout_and_unknown(void **state)
{
    fixture *fx = *state;
    e2bapi_stub stub;
    envd_sandbox_api *api = start(fx, &stub, NULL);
    envd_sandbox *s = NULL;
    envd_error *err = NULL;
    envd_status st = envd_sandbox_create(api, "base", NULL, &s, &err);
    assert_envd_ok(st, err);
    st = envd_sandbox_set_timeout(api, s->id, 3600, &err);
    assert_envd_ok(st, err);
    assert_int_equal(e2bapi_stub_live(&stub), 1);
    st = envd_sandbox_set_timeout(api, s->id, 1, &err);
    assert_envd_ok(st, err);
    int live = 1;
    for (int i = 0; i < 300 && live != 0; i++) { /* 1 s, and slack for a loaded machine */
        usleep(100000);
        live = e2bapi_stub_live(&stub);
    }
    assert_int_equal(live, 0);
    st = envd_sandbox_set_timeout(api, s->id, 60, &err);
    assert_int_equal(st, ENVD_NOT_FOUND);
    assert_int_equal(envd_error_http_status(err), 404);
    assert_non_null(strstr(envd_error_message(err), s->id));
    envd_error_free(err);
    int killed = -1;
    st = envd_sandbox_kill(api, s->id, &killed, &err);
    assert_envd_ok(st, err);
    assert_int_equal(killed, 0);
    st = envd_sandbox_set_timeout(api, s->id, -1, &err);
    assert_int_equal(st, ENVD_INVALID_ARGUMENT);
    envd_error_free(err);
    envd_sandbox_free(s);
    envd_sandbox_api_free(api);
    e2bapi_stub_stop(&stub);
}

/* POST /sandboxes/{id}/connect on a paused sandbox: resumed, and the
 * result is a ready client again; also through the /kruise/api prefix. */
static void connect_paused(void **state)
{
    fixture *fx = *state;
    e2bapi_stub stub;
    envd_sandbox_api *api = start(fx, &stub, NULL);
    char url[128];
    snprintf(url, sizeof(url), "%s/kruise/api/", stub.url);
    assert_int_equal(envd_sandbox_api_set_url(api, url), ENVD_OK);
    envd_sandbox *s = NULL;
    envd_error *err = NULL;
    envd_status st = envd_sandbox_create(api, "base", NULL, &s, &err);
    assert_envd_ok(st, err);
    char path[128];
    snprintf(path, sizeof(path), "/_stub/pause/%s", s->id);
    json_decref(e2bapi_stub_call(&stub, "POST", path, NULL));
    envd_sandboxes *l = NULL;
    st = envd_sandbox_list(api, NULL, 0, &l, &err);
    assert_envd_ok(st, err);
    assert_string_equal(l->items[0].state, "paused");
    envd_sandboxes_free(l);
    envd_sandbox *again = NULL;
    st = envd_sandbox_connect(api, s->id, NULL, &again, &err);
    assert_envd_ok(st, err);
    assert_string_equal(again->id, s->id);
    envd_client *c = envd_sandbox_take_client(again);
    run_echo(c, "resumed");
    envd_client_free(c);
    envd_sandbox_free(again);
    st = envd_sandbox_list(api, NULL, 0, &l, &err);
    assert_envd_ok(st, err);
    assert_string_equal(l->items[0].state, "running");
    envd_sandboxes_free(l);
    st = envd_sandbox_connect(api, "no-such-sandbox", NULL, &again, &err);
    assert_int_equal(st, ENVD_NOT_FOUND);
    assert_null(again);
    envd_error_free(err);
    envd_sandbox_free(s);
    kill_all(api, &stub);
    envd_sandbox_api_free(api);
    e2bapi_stub_stop(&stub);
}

/* 429: the retry comes after Retry-After, every time; past the retries the
 * error says how many attempts were made; a Retry-After longer than the
 * longest wait allowed fails at once. */
static void rate_limited_429(void **state)
{
    fixture *fx = *state;
    e2bapi_stub stub;
    envd_sandbox_api *api = start(fx, &stub, NULL);
    json_decref(e2bapi_stub_call(&stub, "POST", "/_stub/throttle", "{\"count\":2,\"retryAfter\":1}"));
    envd_sandbox *s = NULL;
    envd_error *err = NULL;
    envd_status st = envd_sandbox_create(api, "base", NULL, &s, &err);
    assert_envd_ok(st, err);
    envd_sandbox_free(s);
    double t[8];
    int status[8], ra[8];
    assert_int_equal(creates_seen(&stub, t, status, ra, 8), 3);
    assert_int_equal(status[0], 429);
    assert_int_equal(status[1], 429);
    assert_int_equal(status[2], 201);
    assert_int_equal(ra[0], 1);
    /* The client's wait starts when the 429 arrives, after the request:
     * the next request arrives at least Retry-After later (1 ms of slack
     * for the two clocks' rounding). */
    assert_true(t[1] - t[0] >= 999);
    assert_true(t[2] - t[1] >= 999);

    assert_int_equal(envd_sandbox_api_set_retries(api, 1, 60000), ENVD_OK);
    json_decref(e2bapi_stub_call(&stub, "POST", "/_stub/throttle", "{\"count\":5,\"retryAfter\":1}"));
    st = envd_sandbox_create(api, "base", NULL, &s, &err);
    assert_int_equal(st, ENVD_RESOURCE_EXHAUSTED);
    assert_int_equal(envd_error_http_status(err), 429);
    assert_non_null(strstr(envd_error_message(err), "after 2 attempts"));
    assert_non_null(strstr(envd_error_message(err), "Rate limit exceeded"));
    envd_error_free(err);

    assert_int_equal(envd_sandbox_api_set_retries(api, 3, 1000), ENVD_OK);
    json_decref(e2bapi_stub_call(&stub, "POST", "/_stub/throttle", "{\"count\":1,\"retryAfter\":30}"));
    st = envd_sandbox_create(api, "base", NULL, &s, &err);
    assert_int_equal(st, ENVD_RESOURCE_EXHAUSTED);
    assert_non_null(strstr(envd_error_message(err), "after 1 attempt;"));
    envd_error_free(err);
    assert_int_equal(envd_sandbox_api_set_retries(api, 101, 0), ENVD_INVALID_ARGUMENT);
    kill_all(api, &stub);
    envd_sandbox_api_free(api);
    e2bapi_stub_stop(&stub);
}

/* The stub's own rate (2 per second) against 6 creates at once: the 429s
 * are honoured and every create succeeds; then the library's rate (4 per
 * second) spaces 6 creates so that the API never answers 429. */
static void rate_bounds(void **state)
{
    fixture *fx = *state;
    e2bapi_stub stub;
    envd_sandbox_api *api = start(fx, &stub, (const char *[]){"--rate", "2", "--burst", "2", NULL});
    envd_future *f[6];
    for (int i = 0; i < 6; i++)
        assert_int_equal(envd_sandbox_create_async(api, "base", NULL, &f[i]), ENVD_OK);
    assert_int_equal(envd_future_wait_all(f, 6, 120000), ENVD_OK);
    for (int i = 0; i < 6; i++) {
        assert_envd_ok(envd_future_status(f[i]), envd_future_error(f[i]));
        envd_future_free(f[i]);
    }
    double t[64];
    int status[64], ra[64];
    size_t n = creates_seen(&stub, t, status, ra, 64);
    assert_true(n > 6); /* some were refused, then sent again */
    kill_all(api, &stub);
    e2bapi_stub_stop(&stub);
    envd_sandbox_api_free(api);

    api = start(fx, &stub, (const char *[]){"--rate", "4", "--burst", "2", NULL});
    assert_int_equal(envd_sandbox_api_set_create_limits(api, 4, 0), ENVD_OK);
    assert_int_equal(envd_sandbox_api_set_create_limits(api, -1, 0), ENVD_INVALID_ARGUMENT);
    for (int i = 0; i < 6; i++)
        assert_int_equal(envd_sandbox_create_async(api, "base", NULL, &f[i]), ENVD_OK);
    assert_int_equal(envd_future_wait_all(f, 6, 120000), ENVD_OK);
    for (int i = 0; i < 6; i++) {
        assert_envd_ok(envd_future_status(f[i]), envd_future_error(f[i]));
        envd_future_free(f[i]);
    }
    n = creates_seen(&stub, t, status, ra, 64);
    assert_int_equal(n, 6);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(status[i], 201);
    /* one token at once, then one per 250 ms: the sixth no sooner than
     * 1.25 s after the first (a lower bound: load only adds to it) */
    assert_true(t[5] - t[0] >= 1200);
    kill_all(api, &stub);
    envd_sandbox_api_free(api);
    e2bapi_stub_stop(&stub);
}

/* A 403 quota error is final: not retried, and the message says so. */
static void quota_403_final(void **state)
{
    fixture *fx = *state;
    e2bapi_stub stub;
    envd_sandbox_api *api = start(fx, &stub, (const char *[]){"--max-live", "2", NULL});
    envd_sandbox *s = NULL;
    envd_error *err = NULL;
    for (int i = 0; i < 2; i++) {
        envd_status st = envd_sandbox_create(api, "base", NULL, &s, &err);
        assert_envd_ok(st, err);
        envd_sandbox_free(s);
    }
    envd_status st = envd_sandbox_create(api, "base", NULL, &s, &err);
    assert_int_equal(st, ENVD_PERMISSION_DENIED);
    assert_null(s);
    assert_int_equal(envd_error_http_status(err), 403);
    const char *m = envd_error_message(err);
    assert_non_null(strstr(m, "create sandbox from template 'base'"));
    assert_non_null(strstr(m, "quota"));
    assert_non_null(strstr(m, "not retried"));
    assert_non_null(strstr(m, "maximum number of concurrent sandboxes (2)"));
    envd_error_free(err);
    double t[8];
    int status[8], ra[8];
    assert_int_equal(creates_seen(&stub, t, status, ra, 8), 3); /* no retry */
    kill_all(api, &stub);
    envd_sandbox_api_free(api);
    e2bapi_stub_stop(&stub);
}

/* A key the API refuses: 401, clear, for every call. */
static void bad_api_key_401(void **state)
{
    fixture *fx = *state;
    e2bapi_stub stub;
    envd_config *cfg = envd_config_dup(fx->cfg);
    envd_config_set_api_key(cfg, "wrong-key");
    assert_int_equal(e2bapi_stub_start(&stub, fx->srv.addr, NULL), 0);
    envd_sandbox_api *api = NULL;
    assert_int_equal(envd_sandbox_api_new(fx->rt, cfg, &api), ENVD_OK);
    envd_config_free(cfg);
    assert_int_equal(envd_sandbox_api_set_url(api, stub.url), ENVD_OK);
    envd_sandbox *s = NULL;
    envd_error *err = NULL;
    envd_status st = envd_sandbox_create(api, "base", NULL, &s, &err);
    assert_int_equal(st, ENVD_UNAUTHENTICATED);
    assert_int_equal(envd_error_http_status(err), 401);
    assert_non_null(strstr(envd_error_message(err), "the API key was refused"));
    assert_non_null(strstr(envd_error_message(err), "Invalid API Key"));
    envd_error_free(err);
    envd_sandboxes *l = NULL;
    st = envd_sandbox_list(api, NULL, 0, &l, &err);
    assert_int_equal(st, ENVD_UNAUTHENTICATED);
    assert_null(l);
    envd_error_free(err);
    assert_int_equal(e2bapi_stub_live(&stub), 0);
    envd_sandbox_api_free(api);
    e2bapi_stub_stop(&stub);
}

/* A reply the library cannot use (a domain that is not host[:port]): the
 * create fails saying why, and the sandbox it made is deleted, not left
 * running. */
static void unusable_reply_cleaned_up(void **state)
{
    fixture *fx = *state;
    e2bapi_stub stub;
    envd_sandbox_api *api = start(fx, &stub, NULL);
    json_decref(e2bapi_stub_call(&stub, "POST", "/_stub/domain", "{\"domain\":\"http://x/\"}"));
    envd_sandbox *s = NULL;
    envd_error *err = NULL;
    envd_status st = envd_sandbox_create(api, "base", NULL, &s, &err);
    assert_int_equal(st, ENVD_E_PROTOCOL);
    assert_null(s);
    assert_non_null(strstr(envd_error_message(err), "unusable domain"));
    assert_non_null(strstr(envd_error_message(err), "the sandbox was deleted"));
    envd_error_free(err);
    assert_int_equal(stat_int(&stub, "created"), 1);
    assert_int_equal(e2bapi_stub_live(&stub), 0);
    envd_sandbox_api_free(api);
    e2bapi_stub_stop(&stub);
}

/* Creates waiting for the limits: a cancel ends one at once, freeing the
 * handle ends the rest; the one already sent completes. */
static void cancel_waiting_creates(void **state)
{
    fixture *fx = *state;
    e2bapi_stub stub;
    envd_sandbox_api *api = start(fx, &stub, (const char *[]){"--create-delay-ms", "300", NULL});
    assert_int_equal(envd_sandbox_api_set_create_limits(api, 0, 1), ENVD_OK);
    envd_future *f[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(envd_sandbox_create_async(api, "base", NULL, &f[i]), ENVD_OK);
    envd_future_cancel(f[3]);
    assert_int_equal(envd_future_wait(f[3], 10000), ENVD_OK);
    assert_int_equal(envd_future_status(f[3]), ENVD_CANCELED);
    envd_sandbox_api_free(api); /* f[1], f[2] were waiting */
    assert_int_equal(envd_future_wait_all(f, 3, 30000), ENVD_OK);
    assert_envd_ok(envd_future_status(f[0]), envd_future_error(f[0]));
    assert_int_equal(envd_future_status(f[1]), ENVD_CANCELED);
    assert_int_equal(envd_future_status(f[2]), ENVD_CANCELED);
    for (int i = 0; i < 4; i++)
        envd_future_free(f[i]);
    assert_int_equal(stat_int(&stub, "created"), 1);
    api = NULL;
    assert_int_equal(envd_sandbox_api_new(fx->rt, fx->cfg, &api), ENVD_OK);
    envd_sandbox_api_set_url(api, stub.url);
    kill_all(api, &stub);
    envd_sandbox_api_free(api);
    e2bapi_stub_stop(&stub);
}

/* Arguments the calls refuse before sending anything. */
static void bad_arguments(void **state)
{
    fixture *fx = *state;
    envd_sandbox_api *api = NULL;
    assert_int_equal(envd_sandbox_api_new(NULL, NULL, &api), ENVD_E_USAGE);
    assert_int_equal(envd_sandbox_api_new(fx->rt, NULL, &api), ENVD_OK);
    assert_int_equal(envd_sandbox_api_set_url(api, "ftp://x"), ENVD_INVALID_ARGUMENT);
    assert_int_equal(envd_sandbox_api_set_url(api, "http://"), ENVD_INVALID_ARGUMENT);
    assert_int_equal(envd_sandbox_api_set_url(api, "http://a b"), ENVD_INVALID_ARGUMENT);
    assert_int_equal(envd_sandbox_api_set_url(api, NULL), ENVD_OK);
    envd_sandbox *s = NULL;
    envd_error *err = NULL;
    assert_int_equal(envd_sandbox_create(api, "", NULL, &s, &err), ENVD_E_USAGE);
    assert_non_null(strstr(envd_error_message(err), "template_id"));
    envd_error_free(err);
    envd_future *f = NULL;
    assert_int_equal(envd_sandbox_kill_async(api, NULL, &f), ENVD_E_USAGE);
    assert_null(f);
    envd_sandbox_opts *o = envd_sandbox_opts_new();
    assert_int_equal(envd_sandbox_opts_set_timeout_s(o, -1), ENVD_INVALID_ARGUMENT);
    assert_int_equal(envd_sandbox_opts_set_secure(o, 2), ENVD_INVALID_ARGUMENT);
    assert_int_equal(envd_sandbox_opts_set_auto_pause(o, 1), ENVD_OK);
    assert_int_equal(envd_sandbox_opts_set_metadata(o, "", "x"), ENVD_INVALID_ARGUMENT);
    assert_int_equal(envd_sandbox_opts_set_env(o, NULL, "x"), ENVD_E_USAGE);
    envd_sandbox_opts_free(o);
    envd_sandbox_opts_free(NULL);
    envd_sandbox_free(NULL);
    envd_sandboxes_free(NULL);
    envd_sandbox_api_free(api);
    envd_sandbox_api_free(NULL);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(create_twenty_and_run), cmocka_unit_test(list_filter_and_pages),
        cmocka_unit_test(set_timeout_and_unknown), cmocka_unit_test(connect_paused),
        cmocka_unit_test(rate_limited_429),      cmocka_unit_test(rate_bounds),
        cmocka_unit_test(quota_403_final),       cmocka_unit_test(bad_api_key_401),
        cmocka_unit_test(cancel_waiting_creates), cmocka_unit_test(bad_arguments),
        cmocka_unit_test(unusable_reply_cleaned_up),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
