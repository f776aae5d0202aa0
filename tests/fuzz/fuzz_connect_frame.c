/* Connect envelopes (transport/connect_frame.c) fed whole and in arbitrary
 * cuts must give the same frames and the same verdict; every end-of-stream
 * payload goes through the end-of-stream JSON mapping (errmap.c), every
 * message through the command-output fast path, which must agree with
 * protobuf-c (api/commands.c envd_peek_output).
 * Input: byte 0 seeds the cut sizes, the rest is the response body. */
#include "fuzz_util.h"

#include "api/commands.h"
#include "process.pb-c.h"
#include "transport/connect_frame.h"
#include "transport/transport.h"

typedef struct seen {
    size_t frames;
    uint64_t hash; /* FNV-1a over flags, length and payload of each frame */
} seen;

static uint64_t fnv(uint64_t h, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

static void check_fast_path(const uint8_t *msg, size_t len)
{
    int field = 0;
    const uint8_t *data = NULL;
    size_t n = 0;
    int fast = envd_peek_output(msg, len, &field, &data, &n);
    if (!fast)
        return;
    Process__StartResponse *r = process__start_response__unpack(NULL, len, msg);
    FUZZ_CHECK(r && r->event && r->event->event_case == PROCESS__PROCESS_EVENT__EVENT_DATA);
    const Process__ProcessEvent__DataEvent *d = r->event->data;
    FUZZ_CHECK(d && (int)d->output_case == field);
    const ProtobufCBinaryData *want = field == 1 ? &d->stdout : field == 2 ? &d->stderr : &d->pty;
    FUZZ_CHECK(field >= 1 && field <= 3 && want->len == n);
    FUZZ_CHECK(n == 0 || memcmp(want->data, data, n) == 0);
    process__start_response__free_unpacked(r, NULL);
}

static int on_frame(void *ud, unsigned flags, const uint8_t *p, size_t len)
{
    seen *s = ud;
    FUZZ_CHECK(p != NULL); /* consumers compute p + len */
    uint8_t h[5];
    envd_frame_header(h, flags, (uint32_t)len);
    s->hash = fnv(fnv(s->hash, h, 5), p, len);
    s->frames++;
    if (flags & ENVD_FRAME_END_STREAM)
        envd_error_free(envd_error_from_connect_end(p, len));
    else
        check_fast_path(p, len);
    return 0;
}

/* Feeds body in pieces of the given sizes (0: all at once). */
static envd_status run(const uint8_t *body, size_t size, uint8_t seed, seen *s, envd_status *fin)
{
    envd_frame_parser p;
    envd_frame_parser_init(&p, 1 << 20);
    memset(s, 0, sizeof *s);
    s->hash = 1469598103934665603ull;
    char why[256];
    envd_status st = ENVD_OK;
    uint32_t x = seed ? seed : 0;
    size_t off = 0;
    while (off < size && st == ENVD_OK) {
        size_t n = size - off;
        if (seed) {
            x = x * 1103515245u + 12345u;
            size_t cut = 1 + (x >> 16) % 9;
            n = cut < n ? cut : n;
        }
        st = envd_frame_parser_feed(&p, body + off, n, on_frame, s, why, sizeof why);
        off += n;
    }
    *fin = st == ENVD_OK ? envd_frame_parser_finish(&p, why, sizeof why) : st;
    envd_frame_parser_free(&p);
    return st;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    seen whole, split;
    envd_status fin_w, fin_s;
    envd_status st_w = run(data + 1, size - 1, 0, &whole, &fin_w);
    envd_status st_s = run(data + 1, size - 1, (uint8_t)(data[0] | 1), &split, &fin_s);
    FUZZ_CHECK(st_w == st_s);
    FUZZ_CHECK(fin_w == fin_s);
    FUZZ_CHECK(whole.frames == split.frames);
    FUZZ_CHECK(whole.hash == split.hash);
    return 0;
}
