/* Connect over h2c (transport/h2c.c): whatever an HTTP/2 server sends on
 * the connection, through nghttp2 and the engine's callbacks into the reply
 * reader, must end the call exactly once, with no sanitizer report and no
 * leak. The connection has no socket (envd_h2c_fuzz_call): the input is the
 * server's bytes, cut at the sizes byte 1 asks for, and their end closes
 * the connection.
 * /files transfers on the same engine go through its HTTP side (status,
 * content encodings and gzip decoding, the upload body) the same way.
 * Input: byte 0: bit 0 puts an empty SETTINGS frame first, bits 1-2 pick
 * the kind (unary, server stream, client stream), bit 3 sends a message
 * and closes a client stream, bit 4 makes it a /files transfer instead
 * (bit 5: an upload, else a download asking for gzip); byte 1 the cut
 * size; the rest is what the server sent. */
#include "fuzz_util.h"

#include "transport/transport.h"

typedef struct outcome {
    int done;
    size_t messages;
} outcome;

static int on_message(void *ud, const uint8_t *m, size_t n)
{
    (void)m;
    (void)n;
    outcome *o = ud;
    FUZZ_CHECK(!o->done);
    o->messages++;
    return 0;
}

static int on_status(void *ud, int status, int64_t content_length)
{
    (void)content_length;
    outcome *o = ud;
    FUZZ_CHECK(!o->done && status >= 200 && status <= 999);
    return 0;
}

static int on_data(void *ud, const uint8_t *d, size_t n)
{
    (void)d;
    outcome *o = ud;
    FUZZ_CHECK(!o->done && n > 0 && n <= (16 << 10)); /* decoded in bounded pieces */
    o->messages++;
    return 0;
}

static void on_done(void *ud, envd_error *err)
{
    outcome *o = ud;
    FUZZ_CHECK(!o->done);
    o->done++;
    if (err) /* every error has a message */
        FUZZ_CHECK(envd_error_message(err) && envd_error_message(err)[0]);
    envd_error_free(err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    static const envd_rpc_kind kinds[3] = {ENVD_RPC_UNARY, ENVD_RPC_SERVER_STREAM,
                                           ENVD_RPC_CLIENT_STREAM};
    envd_rpc_kind kind = kinds[((data[0] >> 1) & 3) % 3];
    size_t cut = (size_t)data[1] + 1;
    /* An empty SETTINGS frame, so most inputs get past the preface. */
    static const uint8_t settings[9] = {0, 0, 0, 4, 0, 0, 0, 0, 0};
    uint8_t *server = malloc(size - 2 + sizeof settings);
    if (!server)
        return 0;
    size_t n = 0;
    if (data[0] & 1) {
        memcpy(server, settings, sizeof settings);
        n = sizeof settings;
    }
    memcpy(server + n, data + 2, size - 2);
    n += size - 2;

    envd_endpoint ep = {.base_url = "http://fuzz:1", .authority = "fuzz:1",
                        .h2c_prior_knowledge = 1, .max_message = 1 << 20};
    static const envd_kv hdrs[] = {{"authorization", "Basic cm9vdDo="}};
    static const uint8_t body[3] = {0x0a, 0x01, '/'};
    envd_rpc_request req = {
        .ep = &ep,
        .method = kind == ENVD_RPC_UNARY ? "/filesystem.Filesystem/Stat"
                  : kind == ENVD_RPC_SERVER_STREAM ? "/process.Process/Start"
                                                   : "/process.Process/StreamInput",
        .kind = kind,
        .headers = hdrs,
        .n_headers = 1,
        .body = body,
        .body_len = sizeof body,
        .timeout_ms = 5000,
    };
    outcome o = {0};
    envd_status st;
    if (data[0] & 16) {
        static const envd_http_part part = {.data = (const uint8_t *)"hello", .len = 5};
        int up = (data[0] >> 5) & 1;
        envd_http_request hr = {
            .ep = &ep,
            .method = up ? "POST" : "GET",
            .path = "/files?path=%2Ftmp%2Fx&username=root",
            .headers = hdrs,
            .n_headers = 1,
            .parts = up ? &part : NULL,
            .n_parts = up ? 1 : 0,
            .accept_gzip = !up,
            .timeout_ms = 5000,
        };
        envd_http_callbacks hcb = {on_status, on_data, NULL, on_done, &o};
        st = envd_h2c_fuzz_http(&hr, &hcb, server, n, cut);
        kind = ENVD_RPC_SERVER_STREAM; /* any number of pieces */
    } else {
        envd_rpc_callbacks cb = {on_message, on_done, &o};
        st = envd_h2c_fuzz_call(&req, &cb, server, n, cut, (data[0] >> 3) & 1);
    }
    FUZZ_CHECK(st != ENVD_OK || o.done == 1);
    FUZZ_CHECK(kind != ENVD_RPC_UNARY || o.messages <= 1);
    free(server);
    return 0;
}
