/* The code interpreter's execution stream reader (src/api/code_stream.c),
 * fed the bytes E2B's server writes, cut at every position and in random
 * pieces: the same events come out whatever the cuts.
 *
 * The stream below is written as e2b-dev/code-interpreter's server writes
 * it: template/server/stream.py (json.dumps per event: ", " and ": "
 * separators, non-ASCII as \uXXXX; '{"type": "end_of_execution"}' last),
 * messaging.py (None fields dropped; {"type": "keepalive"} while silent;
 * timestamps from Jupyter's header date), api/models/result.py (extra is
 * the MIME types left over, {} when none). The Go client skips unknown
 * types and caps a line at 16 MiB (openkruise/agents-api runtime code
 * interpreter: parseExecutionEvent, codeInterpreterMaxLineSize). */
#include "api/code_stream.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char STREAM[] =
    "{\"type\": \"keepalive\"}\n"
    "{\"type\": \"number_of_executions\", \"execution_count\": 7}\n"
    "{\"type\": \"stdout\", \"text\": \"h\\u00e9 \\ud83d\\ude00\\n\", \"timestamp\": "
    "\"2026-12-02T12:00:00.000000+00:00\"}\n"
    "{\"type\": \"stderr\", \"text\": \"a\\u0000b\"}\r\n"
    "\n"
    "{\"type\": \"result\", \"text\": \"x\", \"html\": \"<b/>\", \"markdown\": \"m\", \"svg\": "
    "\"<svg/>\", \"png\": \"UE5H\", \"jpeg\": \"SlBH\", \"pdf\": \"UERG\", \"latex\": \"$x$\", "
    "\"json\": {\"a\": [1, 2]}, \"javascript\": \"js\", \"data\": {\"d\": 1}, \"chart\": "
    "{\"type\": \"line\"}, \"extra\": {\"application/x\": \"y\"}, \"is_main_result\": false}\n"
    "{\"type\": \"result\", \"text\": \"42\", \"extra\": {}, \"is_main_result\": true}\n"
    "{\"type\": \"error\", \"name\": \"ValueError\", \"value\": \"bad\", \"traceback\": "
    "\"Traceback...\\nValueError: bad\\n\"}\n"
    "{\"type\": \"end_of_execution\"}\n";

/* What the callback saw, as one line of text per event. */
typedef struct seen {
    char log[4096];
    int stop_after; /* stop at this event (1-based), 0 never */
    int n;
} seen;

static void logf_(seen *s, const char *fmt, ...)
{
    size_t used = strlen(s->log);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->log + used, sizeof s->log - used, fmt, ap);
    va_end(ap);
}

static int on_event(void *ud, const envd_code_event *ev)
{
    seen *s = ud;
    s->n++;
    switch (ev->type) {
    case ENVD_CODE_EVENT_EXECUTION_COUNT:
        logf_(s, "count %lld|", (long long)ev->execution_count);
        break;
    case ENVD_CODE_EVENT_STDOUT:
    case ENVD_CODE_EVENT_STDERR:
        logf_(s, "%s %zu [", ev->type == ENVD_CODE_EVENT_STDOUT ? "out" : "err", ev->text_len);
        for (size_t i = 0; i < ev->text_len; i++)
            logf_(s, "%02x", (unsigned char)ev->text[i]);
        logf_(s, "] %s|", ev->timestamp ? ev->timestamp : "-");
        break;
    case ENVD_CODE_EVENT_RESULT: {
        const envd_code_result *r = ev->result;
        logf_(s, "result %d %s %s %s %s %s %s %s %s %s %s %s %s %s|", r->is_main_result,
              r->text ? r->text : "-", r->html ? r->html : "-", r->markdown ? r->markdown : "-",
              r->svg ? r->svg : "-", r->png ? r->png : "-", r->jpeg ? r->jpeg : "-",
              r->pdf ? r->pdf : "-", r->latex ? r->latex : "-", r->json ? r->json : "-",
              r->javascript ? r->javascript : "-", r->data ? r->data : "-",
              r->chart ? r->chart : "-", r->extra ? r->extra : "-");
        break;
    }
    case ENVD_CODE_EVENT_ERROR:
        logf_(s, "error %s %s %s|", ev->error->name, ev->error->value, ev->error->traceback);
        break;
    case ENVD_CODE_EVENT_END:
        logf_(s, "end|");
        break;
    }
    return s->stop_after && s->n >= s->stop_after;
}

static const char WANT[] =
    "count 7|"
    "out 9 [68c3a920f09f98800a] 2026-12-02T12:00:00.000000+00:00|"
    "err 3 [610062] -|"
    "result 0 x <b/> m <svg/> UE5H SlBH UERG $x$ {\"a\":[1,2]} js {\"d\":1} {\"type\":\"line\"} "
    "{\"application/x\":\"y\"}|"
    "result 1 42 - - - - - - - - - - - {}|"
    "error ValueError bad Traceback...\nValueError: bad\n|"
    "end|";

/* Feeds data in pieces of the given sizes (cycled); returns the status of
 * the feed and finish, with the reader's log in s. */
static int feed_cuts(const char *data, size_t len, const size_t *cuts, size_t ncuts, size_t cap,
                     seen *s, envd_status *code)
{
    envd_code_reader r;
    envd_code_reader_init(&r, cap, on_event, s);
    int rc = 0;
    for (size_t off = 0, i = 0; rc == 0 && off < len; i++) {
        size_t n = cuts[i % ncuts];
        if (n > len - off)
            n = len - off;
        rc = envd_code_reader_feed(&r, (const uint8_t *)data + off, n);
        off += n;
    }
    if (rc == 0)
        rc = envd_code_reader_finish(&r);
    *code = r.err ? envd_error_code(r.err) : ENVD_OK;
    envd_code_reader_done(&r);
    return rc;
}

static void every_cut_gives_the_same_events(void **state)
{
    (void)state;
    size_t len = strlen(STREAM);
    envd_status code;
    for (size_t at = 0; at <= len; at++) { /* two pieces, cut at every byte */
        seen s = {0};
        envd_code_reader r;
        envd_code_reader_init(&r, 1 << 20, on_event, &s);
        assert_int_equal(envd_code_reader_feed(&r, (const uint8_t *)STREAM, at), 0);
        assert_int_equal(envd_code_reader_feed(&r, (const uint8_t *)STREAM + at, len - at), 0);
        assert_int_equal(envd_code_reader_finish(&r), 0);
        envd_code_reader_done(&r);
        if (strcmp(s.log, WANT) != 0)
            fail_msg("cut at %zu:\n%s\nwant\n%s", at, s.log, WANT);
    }
    const size_t ones[] = {1};
    seen s = {0};
    assert_int_equal(feed_cuts(STREAM, len, ones, 1, 1 << 20, &s, &code), 0);
    assert_string_equal(s.log, WANT);
    srand(15);
    for (int round = 0; round < 200; round++) {
        size_t cuts[16];
        for (size_t i = 0; i < 16; i++)
            cuts[i] = 1 + (size_t)(rand() % 97);
        seen t = {0};
        assert_int_equal(feed_cuts(STREAM, len, cuts, 16, 1 << 20, &t, &code), 0);
        assert_string_equal(t.log, WANT);
    }
}

static void line_over_the_cap(void **state)
{
    (void)state;
    /* The longest line of STREAM is the first result; a cap one byte under
     * it stops there with a message naming the cap, whatever the cuts. */
    const char *start = strstr(STREAM, "{\"type\": \"result\"");
    size_t longest = (size_t)(strchr(start, '\n') - start);
    const size_t cuts[] = {1, 7, 4096};
    for (size_t i = 0; i < 3; i++) {
        seen s = {0};
        envd_code_reader r;
        envd_code_reader_init(&r, longest - 1, on_event, &s);
        int rc = 0;
        for (size_t off = 0, len = strlen(STREAM); rc == 0 && off < len; off += cuts[i]) {
            size_t n = cuts[i] < len - off ? cuts[i] : len - off;
            rc = envd_code_reader_feed(&r, (const uint8_t *)STREAM + off, n);
        }
        assert_int_equal(rc, -1);
        assert_int_equal(envd_error_code(r.err), ENVD_RESOURCE_EXHAUSTED);
        char want[64];
        snprintf(want, sizeof want, "cap of %zu bytes", longest - 1);
        assert_non_null(strstr(envd_error_message(r.err), want));
        assert_int_equal(s.n, 3); /* count, stdout, stderr came before */
        /* Stopped means stopped. */
        assert_int_equal(envd_code_reader_feed(&r, (const uint8_t *)"\n", 1), -1);
        envd_code_reader_done(&r);
    }
    /* Exactly the cap passes. */
    seen s = {0};
    envd_status code;
    const size_t big[] = {1 << 16};
    assert_int_equal(feed_cuts(STREAM, strlen(STREAM), big, 1, longest, &s, &code), 0);
    assert_string_equal(s.log, WANT);
}

static envd_status outcome(const char *data, seen *s)
{
    envd_status code;
    const size_t cuts[] = {3};
    feed_cuts(data, strlen(data), cuts, 1, 1 << 20, s, &code);
    return code;
}

static void bad_streams_fail_clearly(void **state)
{
    (void)state;
    seen s = {0};
    /* No end_of_execution: the Go client returns nil there; this fails. */
    assert_int_equal(outcome("{\"type\": \"stdout\", \"text\": \"x\"}\n", &s), ENVD_E_PROTOCOL);
    assert_int_equal(outcome("not json\n{\"type\": \"end_of_execution\"}\n", &s), ENVD_E_PROTOCOL);
    assert_int_equal(outcome("[1]\n{\"type\": \"end_of_execution\"}\n", &s), ENVD_E_PROTOCOL);
    assert_int_equal(outcome("{\"text\": \"no type\"}\n", &s), ENVD_E_PROTOCOL);
    assert_int_equal(outcome("{\"type\": \"stdout\", \"text\": 5}\n", &s), ENVD_E_PROTOCOL);
    assert_int_equal(outcome("{\"type\": \"number_of_executions\"}\n", &s), ENVD_E_PROTOCOL);
    assert_int_equal(outcome("{\"type\": \"result\", \"png\": [1]}\n", &s), ENVD_E_PROTOCOL);
    assert_int_equal(outcome("{\"type\": \"result\", \"is_main_result\": 1}\n", &s),
                     ENVD_E_PROTOCOL);
    assert_int_equal(outcome("{\"type\": \"end_of_execution\"}\n{\"type\": \"stdout\"}\n", &s),
                     ENVD_E_PROTOCOL);
    /* Fine: null fields (a server that keeps None), an unknown type, blank
     * lines and a last line without newline. */
    seen t = {0};
    assert_int_equal(outcome("{\"type\": \"error\", \"name\": null, \"value\": \"v\"}\n"
                             "{\"type\": \"future_kind\", \"x\": 1}\n  \n"
                             "{\"type\": \"end_of_execution\"}",
                             &t),
                     ENVD_OK);
    assert_string_equal(t.log, "error  v |end|");
    /* unexpected_end_of_execution (output.py) reads as an error, then the end. */
    seen u = {0};
    assert_int_equal(outcome("{\"type\": \"unexpected_end_of_execution\"}\n", &u), ENVD_OK);
    assert_non_null(strstr(u.log, "error UnexpectedEndOfExecution"));
    assert_non_null(strstr(u.log, "|end|"));
}

static void callback_stops_the_reader(void **state)
{
    (void)state;
    seen s = {.stop_after = 2};
    assert_int_equal(outcome(STREAM, &s), ENVD_CANCELED);
    assert_int_equal(s.n, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_cut_gives_the_same_events),
        cmocka_unit_test(line_over_the_cap),
        cmocka_unit_test(bad_streams_fail_clearly),
        cmocka_unit_test(callback_stops_the_reader),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
