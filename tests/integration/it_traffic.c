/* Traffic tokens (envd_config_set_traffic_token_provider and the static
 * envd_config_set_traffic_token) against the reference server standing in
 * for a gateway that enforces them (PEER_TRAFFIC_CHECK: 401 unless
 * e2b-traffic-access-token is "tok-<unix ms expiry>" with the expiry still
 * ahead; one log line per request), over gRPC, Connect and /files.
 *
 * Facts from the Go client (openkruise/agents-api runtime, the file with
 * TrafficTokenHeader, and its e2b package's traffic token manager):
 *   - the header is "e2b-traffic-access-token" on data-plane requests;
 *   - the provider is invoked immediately before each request is sent;
 *     an error fails the request before it leaves the process
 *     (fail-closed); an empty token sends no header;
 *   - the manager refreshes ahead of expiry (a fraction of the validity,
 *     bounded, minus jitter), coalesces concurrent refreshes into one, and
 *     keeps using the current token when a refresh fails but it has not
 *     expired yet; a failed refresh is retried after a backoff (1 s,
 *     doubling to 30 s).
 * libenvd calls the provider on its job thread instead of per request: the
 * token is cached until near expiry, renewed ahead of it by a timer, and
 * renewed after a 401. What is checked here: every request the server saw
 * carried a token that had not expired; the provider ran a handful of
 * times for hundreds of requests and never twice at once; a provider
 * error fails the call before anything is sent, with its message; the
 * static token reaches the server. */
#include "fs_test_util.h"

#include <pthread.h>
#include <stdatomic.h>

typedef struct prov {
    atomic_int calls;
    atomic_int inflight;
    atomic_int overlap; /* two calls at once were seen */
    atomic_int fail;    /* answer ENVD_PERMISSION_DENIED */
    atomic_int rejected_first; /* the first token is one the gateway refuses */
    int64_t validity_ms;
    int sleep_ms;
} prov;

static int64_t unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static envd_status provide(void *ud, char **token, int64_t *expires, char **message)
{
    prov *p = ud;
    if (atomic_fetch_add(&p->inflight, 1) != 0)
        atomic_store(&p->overlap, 1);
    if (p->sleep_ms)
        usleep((useconds_t)p->sleep_ms * 1000);
    int n = atomic_fetch_add(&p->calls, 1);
    envd_status st = ENVD_OK;
    if (atomic_load(&p->fail)) {
        *message = strdup("vault sealed");
        st = ENVD_PERMISSION_DENIED;
    } else {
        int64_t e = unix_ms() + p->validity_ms;
        char buf[64];
        /* "tok-1" expired in 1970: the gateway refuses it, though the
         * provider claims it is good for the validity. */
        if (n == 0 && atomic_load(&p->rejected_first))
            snprintf(buf, sizeof buf, "tok-1");
        else
            snprintf(buf, sizeof buf, "tok-%lld", (long long)e);
        *token = strdup(buf);
        *expires = e;
    }
    atomic_fetch_sub(&p->inflight, 1);
    return st;
}

typedef struct fixture {
    test_server srv;
    envd_runtime *rt;
    char log[300];
} fixture;

static int setup(void **state)
{
    fixture *fx = calloc(1, sizeof(*fx));
    *state = fx;
    snprintf(fx->log, sizeof fx->log, "/tmp/envd-it-traffic-%d.log", (int)getpid());
    unlink(fx->log);
    setenv("PEER_TRAFFIC_CHECK", fx->log, 1);
    int rc = test_server_start(&fx->srv, "both", NULL);
    unsetenv("PEER_TRAFFIC_CHECK");
    /* The /files calls' parent, made here: concurrent first writes would
     * race to create it (the server's EnsureDirs is not atomic). */
    char dir[512];
    snprintf(dir, sizeof dir, "%s/traffic", fx->srv.root);
    mkdir(dir, 0755);
    return rc == 0 && envd_runtime_new(NULL, &fx->rt) == ENVD_OK ? 0 : -1;
}

static int teardown(void **state)
{
    fixture *fx = *state;
    if (!fx)
        return 0;
    envd_runtime_free(fx->rt);
    test_server_stop(&fx->srv);
    unlink(fx->log);
    free(fx);
    return 0;
}

/* Lines of the server's log so far: all, and those it refused. */
static void log_counts(fixture *fx, int *all, int *bad)
{
    *all = *bad = 0;
    FILE *f = fopen(fx->log, "r");
    if (!f)
        return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        (*all)++;
        *bad += strstr(line, " bad") != NULL;
    }
    fclose(f);
}

static envd_client *client(fixture *fx, envd_transport_kind kind, prov *p, const char *token)
{
    envd_config *cfg = envd_config_new();
    envd_config_set_domain(cfg, fx->srv.addr);
    envd_config_set_transport(cfg, kind);
    envd_config_set_request_timeout_ms(cfg, 20000);
    if (p)
        assert_int_equal(envd_config_set_traffic_token_provider(cfg, provide, p), ENVD_OK);
    if (token)
        assert_int_equal(envd_config_set_traffic_token(cfg, token), ENVD_OK);
    envd_client *c = NULL;
    envd_error *err = NULL;
    envd_status st = envd_client_new(fx->rt, "sbx-traffic", cfg, &c, &err);
    envd_config_free(cfg);
    assert_envd_ok(st, err);
    return c;
}

/* ---- steady use: tokens valid ~1 s, calls for 3.5 s ---- */

typedef struct worker {
    envd_client *c;
    int kind; /* 0 unary, 1 server stream (a command), 2 /files */
    int64_t until;
    int ok, failed;
    char first_error[256];
} worker;

static int one_call(worker *w, int i, envd_error **err)
{
    envd_status st;
    if (w->kind == 0) {
        envd_entry_info *e = NULL;
        st = envd_fs_get_info(w->c, "/", &e, err);
        envd_entry_info_free(e);
    } else if (w->kind == 1) {
        envd_command_result *r = NULL;
        st = envd_commands_run(w->c, "true", NULL, &r, err);
        envd_command_result_free(r);
    } else {
        char path[64], body[32];
        /* A file per worker: another's truncating write would race the read. */
        snprintf(path, sizeof path, "/traffic/f%p-%d", (void *)w, i % 4);
        snprintf(body, sizeof body, "n%d", i);
        st = envd_files_write_text(w->c, path, body, NULL, NULL, err);
        uint8_t *d = NULL;
        size_t len = 0;
        if (st == ENVD_OK && (st = envd_files_read(w->c, path, NULL, &d, &len, err)) == ENVD_OK &&
            strcmp((char *)d, body) != 0)
            st = ENVD_DATA_LOSS;
        free(d);
    }
    return st;
}

static void *work(void *arg)
{
    worker *w = arg;
    for (int i = 0; now_ms() < w->until; i++) {
        envd_error *err = NULL;
        if (one_call(w, i, &err) == ENVD_OK) {
            w->ok++;
        } else {
            if (!w->failed++)
                snprintf(w->first_error, sizeof w->first_error, "%s",
                         err ? envd_error_message(err) : "read back other content");
        }
        envd_error_free(err);
    }
    return NULL;
}

static void steady(fixture *fx, envd_transport_kind kind)
{
    prov p = {.validity_ms = 1000, .sleep_ms = 20};
    envd_client *c = client(fx, kind, &p, NULL);
    int all0, bad0;
    log_counts(fx, &all0, &bad0);
    enum { N = 4 };
    worker w[N];
    pthread_t th[N];
    int64_t until = now_ms() + 3500;
    for (int i = 0; i < N; i++) {
        w[i] = (worker){.c = c, .kind = i % 3, .until = until};
        pthread_create(&th[i], NULL, work, &w[i]);
    }
    int ok = 0;
    for (int i = 0; i < N; i++) /* all of them, before a failure leaves */
        pthread_join(th[i], NULL);
    for (int i = 0; i < N; i++) {
        if (w[i].failed)
            fail_msg("kind %d: %d calls failed: %s", w[i].kind, w[i].failed, w[i].first_error);
        ok += w[i].ok;
    }
    int all, bad;
    log_counts(fx, &all, &bad);
    int calls = atomic_load(&p.calls);
    print_message("    %d calls, %d requests seen, %d refused, %d provider calls\n", ok, all - all0,
                  bad - bad0, calls);
    assert_int_equal(bad - bad0, 0);
    assert_true(all - all0 >= ok); /* every call reached the server checked */
    /* Tokens live 1 s: over 3.5 s it must have been renewed ... */
    assert_true(calls >= 3);
    /* ... but not per request, and never twice at once. */
    assert_true(calls * 5 <= ok);
    assert_int_equal(atomic_load(&p.overlap), 0);
    /* Idle: the timer lets an unused token run out (at most the renewal
     * already due), and nothing calls the provider after the free. */
    usleep(2500 * 1000);
    int idle = atomic_load(&p.calls) - calls;
    assert_true(idle <= 1);
    envd_client_free(c);
    calls = atomic_load(&p.calls);
    usleep(1200 * 1000);
    assert_int_equal(atomic_load(&p.calls), calls);
}

static void steady_grpc(void **state)
{
    steady(*state, ENVD_TRANSPORT_GRPC);
}

static void steady_connect(void **state)
{
    steady(*state, ENVD_TRANSPORT_CONNECT);
}

/* ---- many calls at once on a fresh client: one provider call ---- */

static void *stat_once(void *arg)
{
    worker *w = arg;
    envd_error *err = NULL;
    if (one_call(w, 0, &err) == ENVD_OK)
        w->ok++;
    else
        snprintf(w->first_error, sizeof w->first_error, "%s", err ? envd_error_message(err) : "read back other content");
    envd_error_free(err);
    return NULL;
}

static void concurrent_first_calls(void **state)
{
    fixture *fx = *state;
    prov p = {.validity_ms = 60000, .sleep_ms = 300};
    envd_client *c = client(fx, ENVD_TRANSPORT_CONNECT, &p, NULL);
    enum { N = 8 };
    worker w[N];
    pthread_t th[N];
    for (int i = 0; i < N; i++) {
        w[i] = (worker){.c = c, .kind = i % 2 ? 0 : 2};
        pthread_create(&th[i], NULL, stat_once, &w[i]);
    }
    for (int i = 0; i < N; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < N; i++) {
        if (!w[i].ok)
            fail_msg("call %d: %s", i, w[i].first_error);
    }
    /* Those that came during the refresh waited for it. */
    assert_int_equal(atomic_load(&p.calls), 1);
    assert_int_equal(atomic_load(&p.overlap), 0);
    envd_client_free(c);
}

/* ---- fail-closed ---- */

static void provider_error(envd_transport_kind kind, fixture *fx)
{
    prov p = {.validity_ms = 60000};
    atomic_store(&p.fail, 1);
    envd_client *c = client(fx, kind, &p, NULL);
    int all0, bad0, all, bad;
    log_counts(fx, &all0, &bad0);
    envd_entry_info *e = NULL;
    envd_error *err = NULL;
    envd_status st = envd_fs_get_info(c, "/", &e, &err);
    assert_int_equal(st, ENVD_PERMISSION_DENIED);
    assert_non_null(err);
    if (!strstr(envd_error_message(err), "traffic token provider failed: vault sealed"))
        fail_msg("message: %s", envd_error_message(err));
    envd_error_free(err);
    /* Within the backoff the provider is not asked again; the call fails
     * at once, saying so; /files and the async starters alike. */
    st = envd_files_write_text(c, "/traffic/x", "x", NULL, NULL, &err);
    assert_int_equal(st, ENVD_PERMISSION_DENIED);
    if (!strstr(envd_error_message(err), "next try in"))
        fail_msg("message: %s", envd_error_message(err));
    envd_error_free(err);
    envd_future *f = (envd_future *)1;
    assert_int_equal(envd_fs_get_info_async(c, "/", &f), ENVD_PERMISSION_DENIED);
    assert_null(f);
    assert_int_equal(atomic_load(&p.calls), 1);
    log_counts(fx, &all, &bad);
    assert_int_equal(all, all0); /* nothing left the process */
    /* The provider recovers: after the backoff, calls go through. */
    atomic_store(&p.fail, 0);
    usleep(1100 * 1000);
    st = envd_fs_get_info(c, "/", &e, &err);
    assert_envd_ok(st, err);
    envd_entry_info_free(e);
    assert_int_equal(atomic_load(&p.calls), 2);
    envd_client_free(c);
}

static void provider_error_grpc(void **state)
{
    provider_error(ENVD_TRANSPORT_GRPC, *state);
}

static void provider_error_connect(void **state)
{
    provider_error(ENVD_TRANSPORT_CONNECT, *state);
}

/* ---- a 401 from the gateway: the next call gets a new token ---- */

/* over /files, then over a unary RPC on gRPC and Connect (server streams
 * do not report a 401 yet: their token is renewed at expiry) */
static void rejected_then_renewed(void **state)
{
    fixture *fx = *state;
    /* /files, unary RPCs over both transports, and a server stream (a
     * command run) over both */
    envd_transport_kind kinds[] = {ENVD_TRANSPORT_CONNECT, ENVD_TRANSPORT_GRPC,
                                   ENVD_TRANSPORT_CONNECT, ENVD_TRANSPORT_GRPC,
                                   ENVD_TRANSPORT_CONNECT};
    for (int k = 0; k < 5; k++) {
        prov p = {.validity_ms = 60000};
        atomic_store(&p.rejected_first, 1);
        envd_client *c = client(fx, kinds[k], &p, NULL);
        envd_error *err = NULL;
        envd_entry_info *e = NULL;
        envd_command_result *r = NULL;
        envd_status st = k == 0  ? envd_files_write_text(c, "/traffic/r", "r", NULL, NULL, &err)
                         : k < 3 ? envd_fs_get_info(c, "/", &e, &err)
                                 : envd_commands_run(c, "true", NULL, &r, &err);
        assert_int_equal(st, ENVD_UNAUTHENTICATED);
        assert_int_equal(envd_error_http_status(err), 401);
        envd_error_free(err);
        st = k == 0  ? envd_files_write_text(c, "/traffic/r", "r", NULL, NULL, &err)
             : k < 3 ? envd_fs_get_info(c, "/", &e, &err)
                     : envd_commands_run(c, "true", NULL, &r, &err);
        assert_envd_ok(st, err);
        envd_entry_info_free(e);
        envd_command_result_free(r);
        assert_int_equal(atomic_load(&p.calls), 2);
        envd_client_free(c);
    }
}

/* ---- the static form ---- */

static void static_token(void **state)
{
    fixture *fx = *state;
    char tok[64];
    snprintf(tok, sizeof tok, "tok-%lld", (long long)(unix_ms() + 3600 * 1000));
    envd_transport_kind kinds[] = {ENVD_TRANSPORT_GRPC, ENVD_TRANSPORT_CONNECT};
    for (int k = 0; k < 2; k++) {
        envd_client *c = client(fx, kinds[k], NULL, tok);
        envd_entry_info *e = NULL;
        envd_error *err = NULL;
        assert_envd_ok(envd_fs_get_info(c, "/", &e, &err), err);
        envd_entry_info_free(e);
        assert_envd_ok(envd_files_write_text(c, "/traffic/s", "s", NULL, NULL, &err), err);
        envd_client_free(c);
        /* An expired one is refused by the gateway, so the header is what
         * the check above accepted. */
        c = client(fx, kinds[k], NULL, "tok-1");
        assert_int_equal(envd_fs_get_info(c, "/", &e, &err), ENVD_UNAUTHENTICATED);
        envd_error_free(err);
        assert_int_equal(envd_files_write_text(c, "/traffic/s", "s", NULL, NULL, &err),
                         ENVD_UNAUTHENTICATED);
        envd_error_free(err);
        envd_client_free(c);
    }
    /* Without any token the gateway refuses; a bad value is refused by the
     * setter; the provider replaces the static form. */
    envd_config *cfg = envd_config_new();
    assert_int_equal(envd_config_set_traffic_token(cfg, "a\r\nb"), ENVD_INVALID_ARGUMENT);
    assert_non_null(strstr(envd_config_last_error(cfg), "token:"));
    assert_int_equal(envd_config_set_traffic_token(NULL, "x"), ENVD_E_USAGE);
    assert_int_equal(envd_config_set_traffic_token_provider(NULL, provide, NULL), ENVD_E_USAGE);
    envd_config_free(cfg);
    envd_client *c = client(fx, ENVD_TRANSPORT_CONNECT, NULL, NULL);
    envd_entry_info *e = NULL;
    envd_error *err = NULL;
    assert_int_equal(envd_fs_get_info(c, "/", &e, &err), ENVD_UNAUTHENTICATED);
    envd_error_free(err);
    envd_client_free(c);
}

int main(void)
{
    if (getenv("ENVD_TEST_FILTER"))
        cmocka_set_test_filter(getenv("ENVD_TEST_FILTER"));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(steady_grpc),
        cmocka_unit_test(steady_connect),
        cmocka_unit_test(concurrent_first_calls),
        cmocka_unit_test(provider_error_grpc),
        cmocka_unit_test(provider_error_connect),
        cmocka_unit_test(rejected_then_renewed),
        cmocka_unit_test(static_token),
    };
    return cmocka_run_group_tests_name("traffic tokens", tests, setup, teardown);
}
