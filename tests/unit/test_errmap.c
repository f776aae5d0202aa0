/* Error bodies as they reach a client: Connect JSON, envd's integer-code
 * JSON, gateway and proxy replies (JSON, text, HTML), end-of-stream frames. */
#include "core/error.h"
#include "transport/transport.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

static envd_error *from_body(int status, const char *body)
{
    return envd_error_from_http_body(status, (const uint8_t *)body, strlen(body),
                                     ENVD_TRANSPORT_CONNECT);
}

static void assert_contains(const char *hay, const char *needle)
{
    if (!strstr(hay, needle))
        fail_msg("'%s' does not contain '%s'", hay, needle);
}

static void test_connect_json(void **state)
{
    (void)state;
    envd_error *e = from_body(
        404, "{\"code\":\"not_found\",\"message\":\"file not found: lstat /x: no such file or "
             "directory\"}");
    assert_int_equal(envd_error_code(e), ENVD_NOT_FOUND);
    assert_string_equal(envd_error_message(e),
                        "file not found: lstat /x: no such file or directory");
    assert_int_equal(envd_error_http_status(e), 404);
    assert_int_equal(envd_error_transport(e), ENVD_TRANSPORT_CONNECT);
    envd_error_free(e);

    /* The code wins over the status. */
    e = from_body(400, "{\"code\":\"failed_precondition\",\"message\":\"m\",\"details\":[]}");
    assert_int_equal(envd_error_code(e), ENVD_FAILED_PRECONDITION);
    envd_error_free(e);

    /* No message: the code name stands in. */
    e = from_body(409, "{\"code\":\"already_exists\"}");
    assert_int_equal(envd_error_code(e), ENVD_ALREADY_EXISTS);
    assert_contains(envd_error_message(e), "already_exists");
    envd_error_free(e);

    /* An unknown code name. */
    e = from_body(500, "{\"code\":\"weird_code\",\"message\":\"boom\"}");
    assert_int_equal(envd_error_code(e), ENVD_UNKNOWN);
    envd_error_free(e);
}

static void test_envd_integer_code(void **state)
{
    (void)state;
    envd_error *e =
        from_body(401, "{\"code\":401,\"message\":\"unauthorized access, please provide a valid "
                       "access token or method signing if supported\"}");
    assert_int_equal(envd_error_code(e), ENVD_UNAUTHENTICATED);
    assert_int_equal(envd_error_http_status(e), 401);
    assert_contains(envd_error_message(e), "HTTP 401");
    assert_contains(envd_error_message(e), "unauthorized access");
    envd_error_free(e);

    e = envd_error_from_http_body(
        507, (const uint8_t *)"{\"code\":507,\"message\":\"not enough disk space available\"}", 56,
        ENVD_TRANSPORT_HTTP);
    assert_int_equal(envd_error_code(e), ENVD_E_NO_SPACE);
    assert_int_equal(envd_error_http_status(e), 507);
    assert_int_equal(envd_error_transport(e), ENVD_TRANSPORT_HTTP);
    assert_contains(envd_error_message(e), "not enough disk space");
    envd_error_free(e);
}

static void test_gateway_json(void **state)
{
    (void)state;
    envd_error *e = from_body(
        502, "{\"sandboxId\":\"isb4x2\",\"message\":\"The sandbox was not found\",\"code\":502}");
    assert_int_equal(envd_error_code(e), ENVD_UNAVAILABLE);
    assert_int_equal(envd_error_http_status(e), 502);
    assert_contains(envd_error_message(e), "HTTP 502 Bad Gateway");
    assert_contains(envd_error_message(e), "The sandbox was not found");
    assert_contains(envd_error_message(e), "isb4x2");
    envd_error_free(e);

    /* A gateway's 401 in JSON without a Connect code. */
    e = from_body(401, "{\"message\":\"unauthorized: invalid or missing access token\"}");
    assert_int_equal(envd_error_code(e), ENVD_UNAUTHENTICATED);
    assert_contains(envd_error_message(e), "invalid or missing access token");
    envd_error_free(e);
}

static void test_plain_and_html(void **state)
{
    (void)state;
    const char *nginx = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
                        "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx/1.22.1"
                        "</center>\r\n</body>\r\n</html>\r\n";
    envd_error *e = from_body(502, nginx);
    assert_int_equal(envd_error_code(e), ENVD_UNAVAILABLE);
    assert_int_equal(envd_error_http_status(e), 502);
    const char *m = envd_error_message(e);
    assert_contains(m, "HTTP 502 Bad Gateway");
    assert_contains(m, "HTML");
    assert_contains(m, "nginx/1.22.1");
    assert_null(strchr(m, '<'));
    assert_null(strchr(m, '\n'));
    envd_error_free(e);

    /* A 404 without a Connect body is a missing route for an RPC (as gRPC
     * and connect-go read it), a missing file for /files. */
    e = from_body(404, "404 page not found\n");
    assert_int_equal(envd_error_code(e), ENVD_UNIMPLEMENTED);
    assert_string_equal(envd_error_message(e), "HTTP 404 Not Found: 404 page not found");
    envd_error_free(e);
    const char *envd404 = "{\"code\":404,\"message\":\"no file\"}";
    e = envd_error_from_http_body(404, (const uint8_t *)envd404, strlen(envd404),
                                  ENVD_TRANSPORT_HTTP);
    assert_int_equal(envd_error_code(e), ENVD_NOT_FOUND);
    envd_error_free(e);
    e = from_body(400, "bad request");
    assert_int_equal(envd_error_code(e), ENVD_INTERNAL);
    envd_error_free(e);

    e = from_body(503, "sandbox gateway is not ready");
    assert_int_equal(envd_error_code(e), ENVD_UNAVAILABLE);
    envd_error_free(e);

    e = envd_error_from_http_body(504, NULL, 0, ENVD_TRANSPORT_HTTP);
    assert_int_equal(envd_error_code(e), ENVD_UNAVAILABLE);
    assert_contains(envd_error_message(e), "empty body");
    envd_error_free(e);

    /* Broken JSON is shown as text. */
    e = from_body(500, "{\"code\":\"internal\", oops");
    assert_int_equal(envd_error_code(e), ENVD_UNKNOWN);
    assert_contains(envd_error_message(e), "oops");
    envd_error_free(e);
}

static void test_excerpt_bounded(void **state)
{
    (void)state;
    static uint8_t body[100000];
    for (size_t i = 0; i < sizeof body; i++)
        body[i] = (uint8_t)(i % 7 == 0 ? 0x01 : (i % 11 == 0 ? 0xc3 : 'a' + i % 26));
    envd_error *e = envd_error_from_http_body(500, body, sizeof body, ENVD_TRANSPORT_HTTP);
    const char *m = envd_error_message(e);
    assert_true(strlen(m) < 512 + 64);
    for (const char *p = m; *p; p++)
        assert_true(*p >= 0x20 && *p < 0x7f);
    assert_contains(m, "...");
    envd_error_free(e);
}

/* Callers pass NULL for an empty error body (a bare 401): that must be an
 * empty body, not NULL + 0 (undefined; clang's UBSan aborts on it, which is
 * how fuzzing found it). */
static void test_null_empty_body(void **state)
{
    (void)state;
    static const envd_transport_kind kinds[] = {ENVD_TRANSPORT_HTTP, ENVD_TRANSPORT_CONNECT,
                                                ENVD_TRANSPORT_GRPC};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        envd_error *e = envd_error_from_http_body(401, NULL, 0, kinds[i]);
        assert_contains(envd_error_message(e), "HTTP 401 Unauthorized with an empty body");
        assert_int_equal(envd_error_http_status(e), 401);
        envd_error_free(e);
        e = envd_error_from_http_body(503, NULL, 12345, kinds[i]); /* len ignored */
        assert_contains(envd_error_message(e), "empty body");
        envd_error_free(e);
    }
    envd_error *e = envd_error_from_connect_end(NULL, 7);
    assert_int_equal(envd_error_code(e), ENVD_E_PROTOCOL);
    assert_contains(envd_error_message(e), "(empty)");
    envd_error_free(e);
}

static void test_connect_end(void **state)
{
    (void)state;
    assert_null(envd_error_from_connect_end((const uint8_t *)"{}", 2));
    assert_null(envd_error_from_connect_end((const uint8_t *)"{\"metadata\":{\"a\":[\"b\"]}}", 24));
    const char *j = "{\"error\":{\"code\":\"not_found\",\"message\":\"process with pid 7 not "
                    "found\"},\"metadata\":{}}";
    envd_error *e = envd_error_from_connect_end((const uint8_t *)j, strlen(j));
    assert_int_equal(envd_error_code(e), ENVD_NOT_FOUND);
    assert_string_equal(envd_error_message(e), "process with pid 7 not found");
    assert_int_equal(envd_error_transport(e), ENVD_TRANSPORT_CONNECT);
    envd_error_free(e);

    j = "{\"error\":{\"code\":\"deadline_exceeded\"}}";
    e = envd_error_from_connect_end((const uint8_t *)j, strlen(j));
    assert_int_equal(envd_error_code(e), ENVD_DEADLINE_EXCEEDED);
    envd_error_free(e);

    e = envd_error_from_connect_end((const uint8_t *)"not json", 8);
    assert_int_equal(envd_error_code(e), ENVD_E_PROTOCOL);
    assert_contains(envd_error_message(e), "end-of-stream");
    envd_error_free(e);

    e = envd_error_from_connect_end((const uint8_t *)"{\"error\":7}", 11);
    assert_int_equal(envd_error_code(e), ENVD_E_PROTOCOL);
    envd_error_free(e);

    e = envd_error_from_connect_end(NULL, 0);
    assert_int_equal(envd_error_code(e), ENVD_E_PROTOCOL);
    envd_error_free(e);
}

/* The sandbox gateways' own replies, as their sources write them
 * (openkruise/agents pkg/sandbox-gateway/filter/filter.go: Envoy
 * SendLocalReply with a plain-text body, the detail name only in the access
 * log; e2b-dev/infra packages/shared/pkg/proxy/template: JSON
 * {"sandboxId","message"}, status 502, 404 in later versions). Each becomes
 * UNAVAILABLE naming the sandbox, with the HTTP status kept, and is marked
 * as the gateway's (no RPC status) for the retry rule. */
static void test_sandbox_gateway_replies(void **state)
{
    (void)state;
    static const struct {
        int status;
        const char *body, *want;
    } cases[] = {
        {502, "sandbox not found: sbx-okr1", "sandbox sbx-okr1 not found"},
        {502, "healthy sandbox not found: sbx-okr2", "sandbox sbx-okr2 not running"},
        {503, "sandbox gateway is not ready", "the gateway is not ready"},
        {502, "{\"sandboxId\":\"ie2b\",\"message\":\"The sandbox was not found\",\"code\":502}",
         "sandbox ie2b not found"},
        {404, "{\"sandboxId\":\"ie2b4\",\"message\":\"The sandbox was not found\"}",
         "sandbox ie2b4 not found"},
        /* a gateway whose local reply format puts the detail name in the body */
        {502, "{\"code\":502,\"message\":\"sandbox_not_found\"}", "not found"},
        {502, "sandbox_not_running", "not running"},
        {503, "gateway_not_ready", "not ready"},
    };
    static const envd_transport_kind kinds[] = {ENVD_TRANSPORT_CONNECT, ENVD_TRANSPORT_HTTP};
    for (size_t k = 0; k < 2; k++)
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            envd_error *e = envd_error_from_http_body(cases[i].status,
                                                      (const uint8_t *)cases[i].body,
                                                      strlen(cases[i].body), kinds[k]);
            assert_int_equal(envd_error_code(e), ENVD_UNAVAILABLE);
            assert_int_equal(envd_error_http_status(e), cases[i].status);
            assert_contains(envd_error_message(e), cases[i].want);
            assert_int_equal(e->failure, ENVD_FAILURE_HTTP);
            envd_error_free(e);
        }
    /* The same words from envd itself with another status stay envd's. */
    envd_error *e = from_body(500, "sandbox not found: x");
    assert_int_equal(envd_error_code(e), ENVD_UNKNOWN);
    assert_null(strstr(envd_error_message(e), "sandbox x not found"));
    envd_error_free(e);
    /* A Connect error carries its own code: not a gateway's reply. */
    e = from_body(503, "{\"code\":\"unavailable\",\"message\":\"busy\"}");
    assert_int_equal(e->failure, 0);
    envd_error_free(e);
}

/* Envoy answers a gRPC request with grpc-status 14 and its text as
 * grpc-message; classify rewrites that to the HTTP reply's reading. */
static void test_envoy_grpc_local_reply(void **state)
{
    (void)state;
    envd_error *e = envd_error_new(ENVD_UNAVAILABLE, ENVD_TRANSPORT_GRPC, 0,
                                   "sandbox not found: sbx-g1");
    envd_gateway_classify(e);
    assert_contains(envd_error_message(e), "sandbox sbx-g1 not found");
    assert_int_equal(envd_error_http_status(e), 502);
    assert_int_equal(e->failure, ENVD_FAILURE_HTTP);
    envd_error_free(e);
    e = envd_error_new(ENVD_UNAVAILABLE, ENVD_TRANSPORT_GRPC, 0, "sandbox gateway is not ready");
    envd_gateway_classify(e);
    assert_int_equal(envd_error_http_status(e), 503);
    assert_int_equal(e->failure, ENVD_FAILURE_HTTP);
    envd_error_free(e);
    /* envd's own UNAVAILABLE, or another code, is left alone */
    e = envd_error_new(ENVD_UNAVAILABLE, ENVD_TRANSPORT_GRPC, 0, "connection to the pty lost");
    envd_gateway_classify(e);
    assert_string_equal(envd_error_message(e), "connection to the pty lost");
    assert_int_equal(e->failure, 0);
    envd_error_free(e);
    e = envd_error_new(ENVD_NOT_FOUND, ENVD_TRANSPORT_GRPC, 0, "sandbox not found: f");
    envd_gateway_classify(e);
    assert_int_equal(e->failure, 0);
    envd_error_free(e);
}

static envd_error *failed(int failure, int http, int64_t retry_after)
{
    envd_error *e = envd_error_new(ENVD_UNAVAILABLE, ENVD_TRANSPORT_CONNECT, http, "x");
    e->failure = failure;
    e->retry_after_ms = retry_after;
    return e;
}

static void test_retry_rule(void **state)
{
    (void)state;
    envd_retry_ctx ctx = {.attempt = 1, .max_retries = 3, .remaining_ms = -1, .replayable = 1};
    envd_error *e503 = failed(ENVD_FAILURE_HTTP, 503, -1);
    envd_error *e429 = failed(ENVD_FAILURE_HTTP, 429, 2000);
    envd_error *e502 = failed(ENVD_FAILURE_HTTP, 502, -1);
    envd_error *refused = failed(ENVD_FAILURE_REFUSED, 0, -1);
    envd_error *closed = failed(ENVD_FAILURE_CLOSED, 0, -1);
    envd_error *broken = failed(ENVD_FAILURE_BROKEN, 0, -1);
    envd_error *envd503 = failed(0, 503, -1); /* envd's own Connect unavailable */
    /* back-off: half to all of 100, 200, 400 ... ms */
    for (int a = 1; a <= 3; a++) {
        ctx.attempt = a;
        int64_t step = 100 << (a - 1);
        for (uint64_t r = 0; r < 200; r += 7) {
            int64_t d = envd_retry_delay_ms(e503, &ctx, r);
            assert_true(d >= step / 2 && d <= step);
        }
    }
    ctx.attempt = 1;
    assert_int_equal(envd_retry_delay_ms(e429, &ctx, 0), 2000); /* Retry-After wins */
    assert_int_equal(envd_retry_delay_ms(e502, &ctx, 0), -1);  /* not found: final */
    assert_true(envd_retry_delay_ms(refused, &ctx, 0) >= 0);
    assert_int_equal(envd_retry_delay_ms(closed, &ctx, 0), -1); /* not idempotent */
    assert_int_equal(envd_retry_delay_ms(broken, &ctx, 0), -1);
    assert_int_equal(envd_retry_delay_ms(envd503, &ctx, 0), -1);
    ctx.idempotent = 1;
    assert_true(envd_retry_delay_ms(closed, &ctx, 0) >= 0);
    assert_int_equal(envd_retry_delay_ms(broken, &ctx, 0), -1); /* a response began */
    /* bounds: the count, the deadline, a message delivered, no replay */
    ctx.attempt = 4;
    assert_int_equal(envd_retry_delay_ms(e503, &ctx, 0), -1);
    ctx.attempt = 1;
    ctx.remaining_ms = 1500;
    assert_int_equal(envd_retry_delay_ms(e429, &ctx, 0), -1);
    assert_true(envd_retry_delay_ms(e503, &ctx, 0) >= 0);
    ctx.remaining_ms = -1;
    ctx.responded = 1;
    assert_int_equal(envd_retry_delay_ms(e503, &ctx, 0), -1);
    ctx.responded = 0;
    ctx.replayable = 0;
    assert_int_equal(envd_retry_delay_ms(refused, &ctx, 0), -1);
    assert_int_equal(envd_retry_delay_ms(NULL, &ctx, 0), -1);
    envd_error *all[] = {e503, e429, e502, refused, closed, broken, envd503};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        envd_error_free(all[i]);
}

static void test_retry_after_parse(void **state)
{
    (void)state;
    time_t now = 784111777; /* Sun, 06 Nov 1994 08:49:37 GMT */
    assert_int_equal(envd_retry_after_parse("120", now), 120000);
    assert_int_equal(envd_retry_after_parse(" 0 ", now), 0);
    assert_int_equal(envd_retry_after_parse("Sun, 06 Nov 1994 08:49:40 GMT", now), 3000);
    assert_int_equal(envd_retry_after_parse("Sun, 06 Nov 1994 08:49:00 GMT", now), 0); /* past */
    assert_int_equal(envd_retry_after_parse("99999999999999999999", now), 86400000);
    assert_int_equal(envd_retry_after_parse("1.5", now), -1);
    assert_int_equal(envd_retry_after_parse("soon", now), -1);
    assert_int_equal(envd_retry_after_parse("", now), -1);
    assert_int_equal(envd_retry_after_parse(NULL, now), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_connect_json),    cmocka_unit_test(test_envd_integer_code),
        cmocka_unit_test(test_gateway_json),    cmocka_unit_test(test_plain_and_html),
        cmocka_unit_test(test_excerpt_bounded), cmocka_unit_test(test_connect_end),
        cmocka_unit_test(test_null_empty_body),
        cmocka_unit_test(test_sandbox_gateway_replies),
        cmocka_unit_test(test_envoy_grpc_local_reply),
        cmocka_unit_test(test_retry_rule),
        cmocka_unit_test(test_retry_after_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
