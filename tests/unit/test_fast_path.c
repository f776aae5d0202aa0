/* The hand-written fast path for command output (envd_peek_output in
 * commands.c) must agree with protobuf-c on every input: whenever it takes
 * a message, protobuf-c decodes that message to the same output field and
 * bytes; it takes every canonical output message; it never takes what
 * protobuf-c rejects (truncated messages, length varints over 5 bytes or
 * past the end) nor a message with anything beside the output (those go to
 * the full decoder). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "api/commands.h"
#include "process.pb-c.h"

/* Compares the fast path with protobuf-c on msg. Returns what the fast
 * path answered. */
static int agree(const uint8_t *msg, size_t len)
{
    int field = 0;
    const uint8_t *data = NULL;
    size_t n = 0;
    int fast = envd_peek_output(msg, len, &field, &data, &n);
    Process__StartResponse *r = process__start_response__unpack(NULL, len, msg);
    if (fast) {
        assert_non_null(r); /* the fast path took what protobuf-c rejects */
        assert_non_null(r->event);
        assert_int_equal(r->event->event_case, PROCESS__PROCESS_EVENT__EVENT_DATA);
        const Process__ProcessEvent__DataEvent *d = r->event->data;
        assert_non_null(d);
        ProtobufCBinaryData want = {0, NULL};
        switch (d->output_case) {
        case PROCESS__PROCESS_EVENT__DATA_EVENT__OUTPUT_STDOUT: want = d->stdout; break;
        case PROCESS__PROCESS_EVENT__DATA_EVENT__OUTPUT_STDERR: want = d->stderr; break;
        case PROCESS__PROCESS_EVENT__DATA_EVENT__OUTPUT_PTY: want = d->pty; break;
        default: fail_msg("protobuf-c found no output in a message the fast path took");
        }
        assert_int_equal(field, (int)d->output_case);
        assert_int_equal(n, want.len);
        if (n)
            assert_memory_equal(data, want.data, n);
    }
    if (r)
        process__start_response__free_unpacked(r, NULL);
    return fast;
}

/* A canonical StartResponse{event{data{<field>: bytes}}}; caller frees. */
static uint8_t *output_msg(int field, const uint8_t *bytes, size_t n, size_t *len)
{
    Process__StartResponse resp = PROCESS__START_RESPONSE__INIT;
    Process__ProcessEvent ev = PROCESS__PROCESS_EVENT__INIT;
    Process__ProcessEvent__DataEvent d = PROCESS__PROCESS_EVENT__DATA_EVENT__INIT;
    ProtobufCBinaryData b = {n, (uint8_t *)bytes};
    d.output_case = (Process__ProcessEvent__DataEvent__OutputCase)field;
    if (field == 1)
        d.stdout = b;
    else if (field == 2)
        d.stderr = b;
    else
        d.pty = b;
    ev.event_case = PROCESS__PROCESS_EVENT__EVENT_DATA;
    ev.data = &d;
    resp.event = &ev;
    *len = process__start_response__get_packed_size(&resp);
    uint8_t *buf = malloc(*len);
    assert_non_null(buf);
    process__start_response__pack(&resp, buf);
    return buf;
}

static const size_t sizes[] = {0, 1, 2, 100, 116, 117, 118, 127, 128, 300, 16383, 16384, 70000};

static void canonical_messages(void **state)
{
    (void)state;
    uint8_t *bytes = malloc(70000);
    assert_non_null(bytes);
    for (size_t i = 0; i < 70000; i++)
        bytes[i] = (uint8_t)(i * 31 + 7);
    for (int field = 1; field <= 3; field++) {
        for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
            size_t len;
            uint8_t *m = output_msg(field, bytes, sizes[k], &len);
            assert_int_equal(agree(m, len), 1); /* every canonical one is taken */
            free(m);
        }
    }
    free(bytes);
}

static void truncated_messages(void **state)
{
    (void)state;
    const uint8_t text[] = "some output\n";
    for (int field = 1; field <= 3; field++) {
        size_t len;
        uint8_t *m = output_msg(field, text, sizeof(text) - 1, &len);
        for (size_t cut = 0; cut < len; cut++) {
            uint8_t *copy = malloc(cut ? cut : 1); /* exact size: ASan sees overreads */
            memcpy(copy, m, cut);
            assert_int_equal(agree(copy, cut), 0);
            free(copy);
        }
        free(m);
    }
}

/* 0a <L1> 12 <L2> 0a <L3> data, with each length written as given. */
static size_t build(uint8_t *out, const uint8_t *l1, size_t n1, const uint8_t *l2, size_t n2,
                    const uint8_t *l3, size_t n3, const char *data)
{
    size_t p = 0;
    out[p++] = 0x0a;
    memcpy(out + p, l1, n1), p += n1;
    out[p++] = 0x12;
    memcpy(out + p, l2, n2), p += n2;
    out[p++] = 0x0a;
    memcpy(out + p, l3, n3), p += n3;
    memcpy(out + p, data, strlen(data)), p += strlen(data);
    return p;
}

static void long_varints(void **state)
{
    (void)state;
    uint8_t m[64];
    /* data "hi": DataEvent is 4 bytes, ProcessEvent 6 (with 1-byte lengths) */
    const uint8_t two[] = {0x02}, two5[] = {0x82, 0x80, 0x80, 0x80, 0x00};
    const uint8_t two6[] = {0x82, 0x80, 0x80, 0x80, 0x80, 0x00};
    const uint8_t four[] = {0x04}, six[] = {0x06};
    /* non-minimal but 5 bytes or fewer: protobuf-c reads them; so may we
     * (the outer lengths count the longer inner prefix) */
    const uint8_t eight[] = {0x08}, ten[] = {0x0a};
    size_t n = build(m, ten, 1, eight, 1, two5, 5, "hi");
    assert_int_equal(agree(m, n), 1);
    n = build(m, six, 1, four, 1, two, 1, "hi");
    assert_int_equal(agree(m, n), 1);
    /* 6 bytes: protobuf-c rejects the message; the fast path must too */
    const uint8_t nine[] = {0x09}, eleven[] = {0x0b};
    n = build(m, eleven, 1, nine, 1, two6, 6, "hi");
    assert_int_equal(agree(m, n), 0);
    const uint8_t ten6[] = {0x8a, 0x80, 0x80, 0x80, 0x80, 0x00};
    n = build(m, ten6, 6, four, 1, two, 1, "hi");
    assert_int_equal(agree(m, n), 0);
    /* lengths past the end, and ones that overflow 32 bits */
    const uint8_t huge[] = {0xff, 0xff, 0xff, 0xff, 0x0f};
    const uint8_t huge10[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
    n = build(m, six, 1, four, 1, huge, 5, "hi");
    assert_int_equal(agree(m, n), 0);
    n = build(m, huge10, 10, four, 1, two, 1, "hi");
    assert_int_equal(agree(m, n), 0);
    /* a varint that never ends */
    const uint8_t open5[] = {0x80, 0x80, 0x80, 0x80, 0x80};
    n = build(m, six, 1, four, 1, open5, 5, "");
    assert_int_equal(agree(m, n), 0);
}

static void other_shapes(void **state)
{
    (void)state;
    uint8_t m[64];
    size_t n;
    const uint8_t zero[] = {0x00}, two[] = {0x02}, four[] = {0x04}, six[] = {0x06};
    /* zero-length output */
    n = build(m, (const uint8_t[]){0x04}, 1, two, 1, zero, 1, "");
    assert_int_equal(agree(m, n), 1);
    /* an extra field after the output, in each message */
    n = build(m, (const uint8_t[]){0x08}, 1, (const uint8_t[]){0x06}, 1, two, 1, "hi");
    m[n++] = 0x10, m[n++] = 0x01; /* DataEvent field 2 as a varint: unknown wire type use */
    agree(m, n);
    n = build(m, six, 1, four, 1, two, 1, "hi");
    m[n++] = 0x12, m[n++] = 0x00; /* StartResponse field 2 (unknown) */
    assert_int_equal(agree(m, n), 0);
    /* two outputs in one DataEvent: protobuf-c keeps the last */
    const uint8_t msg2[] = {0x0a, 0x0a, 0x12, 0x08, 0x0a, 0x02, 'a', 'b', 0x12, 0x02, 'c', 'd'};
    assert_int_equal(agree(msg2, sizeof(msg2)), 0);
    /* other events and wire types */
    const uint8_t start[] = {0x0a, 0x04, 0x0a, 0x02, 0x08, 0x07};  /* start{pid 7} */
    const uint8_t end[] = {0x0a, 0x04, 0x1a, 0x02, 0x08, 0x01};    /* end{exit 1} */
    const uint8_t field4[] = {0x0a, 0x04, 0x12, 0x02, 0x22, 0x00}; /* DataEvent field 4 */
    const uint8_t varint[] = {0x0a, 0x04, 0x12, 0x02, 0x08, 0x05}; /* stdout as a varint */
    assert_int_equal(agree(start, sizeof(start)), 0);
    assert_int_equal(agree(end, sizeof(end)), 0);
    assert_int_equal(agree(field4, sizeof(field4)), 0);
    assert_int_equal(agree(varint, sizeof(varint)), 0);
    assert_int_equal(agree(m, 0), 0);
}

/* Random single-byte changes of canonical messages: whatever the fast path
 * takes, protobuf-c must read the same. */
static void mutations(void **state)
{
    (void)state;
    srand(42);
    uint8_t text[300];
    for (size_t i = 0; i < sizeof(text); i++)
        text[i] = (uint8_t)rand();
    for (int round = 0; round < 20000; round++) {
        size_t len;
        uint8_t *m = output_msg(1 + round % 3, text, (size_t)rand() % sizeof(text), &len);
        int flips = 1 + rand() % 3;
        for (int k = 0; k < flips; k++)
            m[(size_t)rand() % (len < 8 ? len : 8)] = (uint8_t)rand();
        agree(m, len);
        free(m);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(canonical_messages), cmocka_unit_test(truncated_messages),
        cmocka_unit_test(long_varints),       cmocka_unit_test(other_shapes),
        cmocka_unit_test(mutations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
