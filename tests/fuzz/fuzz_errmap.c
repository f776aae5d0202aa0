/* HTTP error bodies and the status mapping (transport/errmap.c): any status
 * and body, over each transport's table, including the empty body as NULL.
 * The message must be printable, bounded and never empty.
 * Input: bytes 0-1 the HTTP status (100..999), the rest the body. */
#include "fuzz_util.h"

#include "transport/transport.h"

static void check(envd_error *e)
{
    FUZZ_CHECK(e != NULL);
    const char *m = envd_error_message(e);
    FUZZ_CHECK(m && m[0]);
    envd_error_free(e);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    int status = 100 + ((data[0] << 8) | data[1]) % 900;
    const uint8_t *body = size > 2 ? data + 2 : NULL;
    size_t len = size - 2;
    static const envd_transport_kind kinds[] = {ENVD_TRANSPORT_HTTP, ENVD_TRANSPORT_CONNECT,
                                                ENVD_TRANSPORT_GRPC};
    for (size_t i = 0; i < 3; i++)
        check(envd_error_from_http_body(status, body, len, kinds[i]));
    envd_error *e = envd_error_from_connect_end(body, len);
    if (e)
        check(e);
    return 0;
}
