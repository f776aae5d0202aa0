/* Error bodies as they reach a client: Connect JSON, envd's integer-code
 * JSON, gateway and proxy replies (JSON, text, HTML), end-of-stream frames. */
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_connect_json),    cmocka_unit_test(test_envd_integer_code),
        cmocka_unit_test(test_gateway_json),    cmocka_unit_test(test_plain_and_html),
        cmocka_unit_test(test_excerpt_bounded), cmocka_unit_test(test_connect_end),
        cmocka_unit_test(test_null_empty_body),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
