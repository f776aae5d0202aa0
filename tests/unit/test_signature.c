/* Signed /files URLs: the spec's test vectors (§6.2), and the URLs built
 * around the signature (escaping, username, expiration, base URL path). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "envd/envd.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TOKEN "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static void spec_vectors(void **state)
{
    (void)state;
    char *sig = NULL;
    /* raw "/home/user/hello.txt:read::<token>" */
    assert_int_equal(envd_files_signature("/home/user/hello.txt", "read", NULL, TOKEN, 0, &sig),
                     ENVD_OK);
    assert_string_equal(sig, "v1_Q1oODJQwZxJOp+Cv9RJhuccjbZgB7bld8m4C4Z73S4w");
    free(sig);
    /* user "" is the same as none */
    assert_int_equal(envd_files_signature("/home/user/hello.txt", "read", "", TOKEN, 0, &sig),
                     ENVD_OK);
    assert_string_equal(sig, "v1_Q1oODJQwZxJOp+Cv9RJhuccjbZgB7bld8m4C4Z73S4w");
    free(sig);
    /* raw "/home/user/hello.txt:write:user:<token>:1767225600" */
    assert_int_equal(
        envd_files_signature("/home/user/hello.txt", "write", "user", TOKEN, 1767225600, &sig),
        ENVD_OK);
    assert_string_equal(sig, "v1_wJF6PQqcwmxtoa5ct7ngvFVgFWwFMOHc0nXrjyxykpI");
    free(sig);
    /* no padding ever; a different input gives a different signature */
    assert_int_equal(envd_files_signature("/x", "read", "root", TOKEN, 0, &sig), ENVD_OK);
    assert_int_equal(strlen(sig), 3 + 43);
    assert_null(strchr(sig, '='));
    assert_string_not_equal(sig, "v1_Q1oODJQwZxJOp+Cv9RJhuccjbZgB7bld8m4C4Z73S4w");
    free(sig);
    assert_int_equal(envd_files_signature(NULL, "read", NULL, TOKEN, 0, &sig), ENVD_E_USAGE);
    assert_int_equal(envd_files_signature("/x", "read", NULL, NULL, 0, &sig), ENVD_E_USAGE);
    assert_null(sig);
}

typedef struct world {
    envd_runtime *rt;
} world;

static int setup(void **state)
{
    world *w = calloc(1, sizeof(*w));
    *state = w;
    return envd_runtime_new(NULL, &w->rt) == ENVD_OK ? 0 : -1;
}

static int teardown(void **state)
{
    world *w = *state;
    envd_runtime_free(w->rt);
    free(w);
    return 0;
}

static envd_client *client(world *w, const char *base_url, const char *token)
{
    envd_config *cfg = envd_config_new();
    envd_config_set_domain(cfg, "gw.example:7788");
    if (base_url)
        envd_config_set_sandbox_base_url(cfg, base_url);
    if (token)
        envd_config_set_runtime_token(cfg, token);
    envd_client *c = NULL;
    assert_int_equal(envd_client_new(w->rt, "sbx-1", cfg, &c, NULL), ENVD_OK);
    envd_config_free(cfg);
    return c;
}

/* The signature as it must appear in a query: + and / escaped. */
static char *escaped_sig(const char *path, const char *op, const char *user, int64_t exp)
{
    char *sig = NULL;
    assert_int_equal(envd_files_signature(path, op, user, TOKEN, exp, &sig), ENVD_OK);
    char *e = curl_easy_escape(NULL, sig, 0);
    char *out = strdup(e);
    curl_free(e);
    free(sig);
    return out;
}

static void download_and_upload_urls(void **state)
{
    world *w = *state;
    envd_client *c = client(w, NULL, TOKEN);
    char *url = NULL;
    envd_error *err = NULL;
    assert_int_equal(envd_files_url(c, "/home/user/hello.txt", ENVD_FILES_READ, "user", 0, &url, &err),
                     ENVD_OK);
    char *sig = escaped_sig("/home/user/hello.txt", "read", "user", 0);
    char want[1024];
    snprintf(want, sizeof want,
             "http://gw.example:7788/files?path=%%2Fhome%%2Fuser%%2Fhello.txt&username=user"
             "&signature=%s",
             sig);
    assert_string_equal(url, want);
    assert_null(strchr(strstr(url, "signature="), '+'));
    free(sig);
    free(url);

    /* the client's user by default; an expiration from now */
    time_t before = time(NULL);
    assert_int_equal(envd_files_url(c, "a b/c?&#%.txt", ENVD_FILES_WRITE, NULL, 120, &url, &err), ENVD_OK);
    time_t after = time(NULL);
    const char *e = strstr(url, "&signature_expiration=");
    assert_non_null(e);
    long long exp = atoll(e + strlen("&signature_expiration="));
    assert_true(exp >= before + 120 && exp <= after + 120);
    sig = escaped_sig("a b/c?&#%.txt", "write", "root", exp);
    snprintf(want, sizeof want,
             "http://gw.example:7788/files?path=a%%20b%%2Fc%%3F%%26%%23%%25.txt&username=root"
             "&signature=%s&signature_expiration=%lld",
             sig, exp);
    assert_string_equal(url, want);
    free(sig);
    free(url);
    envd_client_free(c);

    /* a base URL with a path (path-routed gateway) keeps its prefix */
    c = client(w, "http://gw.example:7788/kruise/sbx-1/49983/", TOKEN);
    assert_int_equal(envd_files_url(c, "/f", ENVD_FILES_READ, "root", 0, &url, &err), ENVD_OK);
    assert_true(strncmp(url, "http://gw.example:7788/kruise/sbx-1/49983/files?path=%2Ff&", 58) ==
                0);
    free(url);
    envd_client_free(c);

    /* no token: a plain URL; an expiration is refused */
    c = client(w, NULL, NULL);
    assert_int_equal(envd_files_url(c, "/f", ENVD_FILES_READ, NULL, 0, &url, &err), ENVD_OK);
    assert_string_equal(url, "http://gw.example:7788/files?path=%2Ff&username=root");
    free(url);
    assert_int_equal(envd_files_url(c, "/f", ENVD_FILES_READ, NULL, 10, &url, &err), ENVD_INVALID_ARGUMENT);
    assert_null(url);
    assert_non_null(err);
    envd_error_free(err);
    assert_int_equal(envd_files_url(c, NULL, ENVD_FILES_READ, NULL, 0, &url, &err), ENVD_E_USAGE);
    assert_non_null(err); /* the usage error names the argument */
    assert_non_null(strstr(envd_error_message(err), "path is NULL"));
    envd_error_free(err);
    envd_client_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(spec_vectors),
        cmocka_unit_test_setup_teardown(download_and_upload_urls, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
