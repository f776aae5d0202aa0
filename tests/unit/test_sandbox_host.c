/* Where a sandbox created through the E2B-compatible API is reached
 * (sbx_envd_host), as the E2B SDKs pick it (connection_config.py /
 * connectionConfig.ts, sandbox_domains.py): E2B's own domains through the
 * stable host sandbox.<domain> over https with the e2b-sandbox-* headers;
 * any other domain through <port>-<id>.<domain>; a gateway named by
 * address, port or localhost as it is. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "sandbox/sandbox_internal.h"

static void check(const char *domain, const char *want, int want_https)
{
    char *host = NULL;
    int https = -1;
    assert_int_equal(sbx_envd_host(domain, "sbx-1", 49983, &host, &https), ENVD_OK);
    assert_string_equal(host, want);
    assert_int_equal(https, want_https);
    free(host);
}

static void hosts_as_the_sdks_pick_them(void **state)
{
    (void)state;
    check("e2b.app", "sandbox.e2b.app", 1);
    check("e2b.dev", "sandbox.e2b.dev", 1);
    check("e2b.pro", "sandbox.e2b.pro", 1);
    check("e2b-staging.dev", "sandbox.e2b-staging.dev", 1);
    check("agents.example.com", "49983-sbx-1.agents.example.com", 0);
    check("e2b.app.example", "49983-sbx-1.e2b.app.example", 0);
    check("127.0.0.1:7788", "127.0.0.1:7788", 0);
    check("10.0.0.7", "10.0.0.7", 0);
    check("localhost", "localhost", 0);
    check("gw.example:7788", "gw.example:7788", 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(hosts_as_the_sdks_pick_them)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
