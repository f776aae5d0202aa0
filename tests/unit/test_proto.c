/* The generated protobuf-c code must produce envd's exact bytes. The
 * vectors come from the spec (§3.3) and from `protoc --encode` run on the
 * files in proto/ (an independent encoder), not from the code under test. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "filesystem.pb-c.h"
#include "process.pb-c.h"

static size_t unhex(const char *hex, uint8_t *out)
{
    size_t n = 0;
    for (; hex[0] && hex[1]; hex += 2) {
        while (*hex == ' ')
            hex++;
        unsigned v;
        sscanf(hex, "%2x", &v);
        out[n++] = (uint8_t)v;
    }
    return n;
}

/* spec §3.3: {process:{cmd:"/bin/bash", args:["-l","-c","echo hi"]}, stdin:false} */
static const char *START_HEX = "0a1c0a092f62696e2f6261736812022d6c12022d6312076563686f2068692000";

static void start_request_bytes(void **state)
{
    (void)state;
    Process__StartRequest req = PROCESS__START_REQUEST__INIT;
    Process__ProcessConfig cfg = PROCESS__PROCESS_CONFIG__INIT;
    char *args[] = {"-l", "-c", "echo hi"};
    cfg.cmd = "/bin/bash";
    cfg.args = args;
    cfg.n_args = 3;
    req.process = &cfg;
    req._stdin_case = PROCESS__START_REQUEST___STDIN_STDIN;
    req.stdin = 0; /* explicit false must still be encoded */

    uint8_t want[64];
    size_t wn = unhex(START_HEX, want);
    size_t n = process__start_request__get_packed_size(&req);
    assert_int_equal(n, wn);
    uint8_t got[64];
    process__start_request__pack(&req, got);
    assert_memory_equal(got, want, wn);

    Process__StartRequest *back = process__start_request__unpack(NULL, wn, want);
    assert_non_null(back);
    assert_string_equal(back->process->cmd, "/bin/bash");
    assert_int_equal(back->process->n_args, 3);
    assert_string_equal(back->process->args[2], "echo hi");
    assert_int_equal(back->_stdin_case, PROCESS__START_REQUEST___STDIN_STDIN);
    assert_false(back->stdin);
    assert_int_equal(back->_pty_case, PROCESS__START_REQUEST___PTY__NOT_SET);
    assert_int_equal(back->_tag_case, PROCESS__START_REQUEST___TAG__NOT_SET);
    process__start_request__free_unpacked(back, NULL);
}

static void start_request_unset_stdin_is_absent(void **state)
{
    (void)state;
    Process__StartRequest req = PROCESS__START_REQUEST__INIT;
    Process__ProcessConfig cfg = PROCESS__PROCESS_CONFIG__INIT;
    cfg.cmd = "/bin/bash";
    req.process = &cfg;
    uint8_t got[64];
    size_t n = process__start_request__pack(&req, got);
    /* 0a 0b 0a 09 "/bin/bash": no field 4 at all. */
    assert_int_equal(n, 13);
    assert_int_equal(got[0], 0x0a);
    assert_int_equal(got[1], 0x0b);
}

/* exit_code is sint32: -1 is varint 1, 1 is varint 2 (ZigZag). */
static void end_event_zigzag(void **state)
{
    (void)state;
    /* protoc --encode: end { exit_code: -1 status: "signal: killed" error: "signal: killed" } */
    const char *killed = "1a2208011a0e7369676e616c3a206b696c6c6564220e7369676e616c3a206b696c6c6564";
    /* end { exit_code: 1 exited: true status: "exit status 1" } */
    const char *one = "1a13080210011a0d65786974207374617475732031";
    uint8_t buf[128];
    size_t n = unhex(killed, buf);
    Process__ProcessEvent *ev = process__process_event__unpack(NULL, n, buf);
    assert_non_null(ev);
    assert_int_equal(ev->event_case, PROCESS__PROCESS_EVENT__EVENT_END);
    assert_int_equal(ev->end->exit_code, -1);
    assert_false(ev->end->exited);
    assert_string_equal(ev->end->status, "signal: killed");
    assert_int_equal(ev->end->_error_case, PROCESS__PROCESS_EVENT__END_EVENT___ERROR_ERROR);
    assert_string_equal(ev->end->error, "signal: killed");
    uint8_t again[128];
    assert_int_equal(process__process_event__pack(ev, again), n);
    assert_memory_equal(again, buf, n);
    process__process_event__free_unpacked(ev, NULL);

    n = unhex(one, buf);
    ev = process__process_event__unpack(NULL, n, buf);
    assert_non_null(ev);
    assert_int_equal(ev->end->exit_code, 1);
    assert_true(ev->end->exited);
    assert_int_equal(ev->end->_error_case, PROCESS__PROCESS_EVENT__END_EVENT___ERROR__NOT_SET);
    process__process_event__free_unpacked(ev, NULL);

    Process__ProcessEvent__EndEvent end = PROCESS__PROCESS_EVENT__END_EVENT__INIT;
    end.exit_code = -1;
    uint8_t z[8];
    assert_int_equal(protobuf_c_message_pack(&end.base, z), 2);
    assert_int_equal(z[0], 0x08);
    assert_int_equal(z[1], 0x01);
    end.exit_code = 1;
    protobuf_c_message_pack(&end.base, z);
    assert_int_equal(z[1], 0x02);
    end.exit_code = 127;
    protobuf_c_message_pack(&end.base, z);
    assert_int_equal(z[1], 0xfe);
}

static void data_event(void **state)
{
    (void)state;
    const char *hex = "12050a0368690a"; /* data { stdout: "hi\n" } */
    uint8_t buf[16];
    size_t n = unhex(hex, buf);
    Process__ProcessEvent *ev = process__process_event__unpack(NULL, n, buf);
    assert_non_null(ev);
    assert_int_equal(ev->event_case, PROCESS__PROCESS_EVENT__EVENT_DATA);
    assert_int_equal(ev->data->output_case, PROCESS__PROCESS_EVENT__DATA_EVENT__OUTPUT_STDOUT);
    assert_int_equal(ev->data->stdout.len, 3);
    assert_memory_equal(ev->data->stdout.data, "hi\n", 3);
    process__process_event__free_unpacked(ev, NULL);
}

static void entry_info(void **state)
{
    (void)state;
    /* protoc --encode=filesystem.EntryInfo: name "a b.txt", FILE, path
     * "/home/user/a b.txt", size 1234567890123, mode 420, "-rw-r--r--",
     * user/user, mtime {1700000000, 5}, symlink_target "" (present),
     * metadata {k: v} */
    const char *hex = "0a076120622e74787410011a122f686f6d652f757365722f6120622e74787420cb89ec8ff72328"
                      "a403320a2d72772d722d2d722d2d3a04757365724204757365724a080880e2cfaa06100552005a"
                      "060a016b120176";
    uint8_t buf[256];
    size_t n = unhex(hex, buf);
    Filesystem__EntryInfo *e = filesystem__entry_info__unpack(NULL, n, buf);
    assert_non_null(e);
    assert_string_equal(e->name, "a b.txt");
    assert_int_equal(e->type, FILESYSTEM__FILE_TYPE__FILE_TYPE_FILE);
    assert_string_equal(e->path, "/home/user/a b.txt");
    assert_true(e->size == 1234567890123LL);
    assert_int_equal(e->mode, 0644);
    assert_string_equal(e->permissions, "-rw-r--r--");
    assert_string_equal(e->owner, "user");
    assert_string_equal(e->group, "user");
    assert_non_null(e->modified_time);
    assert_true(e->modified_time->seconds == 1700000000);
    assert_int_equal(e->modified_time->nanos, 5);
    assert_int_equal(e->_symlink_target_case,
                     FILESYSTEM__ENTRY_INFO___SYMLINK_TARGET_SYMLINK_TARGET);
    assert_string_equal(e->symlink_target, "");
    assert_int_equal(e->n_metadata, 1);
    assert_string_equal(e->metadata[0]->key, "k");
    assert_string_equal(e->metadata[0]->value, "v");
    uint8_t again[256];
    assert_int_equal(filesystem__entry_info__pack(e, again), n);
    assert_memory_equal(again, buf, n);
    filesystem__entry_info__free_unpacked(e, NULL);
}

static void stream_input_data_is_field_two(void **state)
{
    (void)state;
    Process__StreamInputRequest req = PROCESS__STREAM_INPUT_REQUEST__INIT;
    Process__StreamInputRequest__DataEvent data = PROCESS__STREAM_INPUT_REQUEST__DATA_EVENT__INIT;
    Process__ProcessInput in = PROCESS__PROCESS_INPUT__INIT;
    in.input_case = PROCESS__PROCESS_INPUT__INPUT_STDIN;
    in.stdin.data = (uint8_t *)"x";
    in.stdin.len = 1;
    data.input = &in;
    req.event_case = PROCESS__STREAM_INPUT_REQUEST__EVENT_DATA;
    req.data = &data;
    uint8_t got[16];
    size_t n = process__stream_input_request__pack(&req, got);
    /* 12 05 | 12 03 | 0a 01 78 */
    const uint8_t want[] = {0x12, 0x05, 0x12, 0x03, 0x0a, 0x01, 0x78};
    assert_int_equal(n, sizeof(want));
    assert_memory_equal(got, want, sizeof(want));
}

static void malformed_input_is_rejected(void **state)
{
    (void)state;
    const uint8_t bad[] = {0x1a, 0x40, 0x08}; /* length past the end */
    assert_null(process__process_event__unpack(NULL, sizeof(bad), bad));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(start_request_bytes),
        cmocka_unit_test(start_request_unset_stdin_is_absent),
        cmocka_unit_test(end_event_zigzag),
        cmocka_unit_test(data_event),
        cmocka_unit_test(entry_info),
        cmocka_unit_test(stream_input_data_is_field_two),
        cmocka_unit_test(malformed_input_is_rejected),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
