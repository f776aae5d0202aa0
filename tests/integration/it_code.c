/* The code interpreter (envd_code.h) against the reference server's
 * (tests/peer/lib/code-interpreter.mjs, a python3 process per context),
 * reached as the Go client reaches E2B's: the runtime URL with
 * e2b-sandbox-port: 49999 (openkruise/agents-api runtime config.go
 * CodeInterpreterPort, CodeInterpreterHeaders), or a base URL of its own
 * (CodeInterpreterBaseURL).
 *
 * Wire facts relied on (e2b-dev/code-interpreter template/server): main.py
 * (/execute answers 404 for an unknown context, /contexts create, list,
 * delete, restart), messaging.py (number_of_executions first, one error
 * at most, the end last, display_data is not the main result), result.py
 * (text/plain's quotes stripped, MIME types to fields, the rest in extra),
 * stream.py (the end_of_execution line). The Go client's RunCode returns
 * the code's exception in Execution.Error, not as a Go error
 * (agents-api runtime code interpreter, RunCode's comment). */
#include "harness.h"

#include "envd/envd_code.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static test_server srv;
static envd_runtime *rt;
static envd_client *cl;

static envd_client *client_with(const char *domain, int code_port, const char *code_url)
{
    envd_config *cfg = envd_config_new();
    envd_client *c = NULL;
    assert_int_equal(envd_config_set_domain(cfg, domain), ENVD_OK);
    assert_int_equal(envd_config_set_request_timeout_ms(cfg, 20000), ENVD_OK);
    if (code_port)
        assert_int_equal(envd_config_set_code_port(cfg, code_port), ENVD_OK);
    if (code_url)
        assert_int_equal(envd_config_set_code_base_url(cfg, code_url), ENVD_OK);
    assert_int_equal(envd_client_new(rt, "sbx-code", cfg, &c, NULL), ENVD_OK);
    envd_config_free(cfg);
    return c;
}

/* Runs code (blocking form), fails the test on any error but the code's. */
static envd_code_execution *run(envd_client *c, const char *code, const envd_code_opts *o)
{
    envd_code_execution *x = NULL;
    envd_error *err = NULL;
    envd_status st = envd_code_run(c, code, o, &x, &err);
    assert_envd_ok(st, err);
    assert_non_null(x);
    return x;
}

static const envd_code_result *main_result(const envd_code_execution *x)
{
    for (size_t i = 0; i < x->n_results; i++)
        if (x->results[i].is_main_result)
            return &x->results[i];
    return NULL;
}

/* ---- each event kind ------------------------------------------------------ */

static const char RICH[] =
    "import sys\n"
    "class Rich:\n"
    "    def _repr_html_(self): return '<b>hi</b>'\n"
    "    def _repr_markdown_(self): return '**hi**'\n"
    "    def _repr_svg_(self): return '<svg/>'\n"
    "    def _repr_png_(self): return b'PNGDATA'\n"
    "    def _repr_jpeg_(self): return b'JPEGDATA'\n"
    "    def _repr_pdf_(self): return b'PDFDATA'\n"
    "    def _repr_latex_(self): return '$x$'\n"
    "    def _repr_json_(self): return {'a': 1}\n"
    "    def _repr_javascript_(self): return 'alert(1)'\n"
    "    def _repr_mimebundle_(self):\n"
    "        return {'e2b/data': {'k': [1, 2]}, 'e2b/chart': {'type': 'line'},\n"
    "                'application/x-custom': 'custom'}\n"
    "print('out', 1)\n"
    "print('err', 2, file=sys.stderr)\n"
    "display(Rich())\n"
    "40 + 2\n";

static void each_event_kind(void **state)
{
    (void)state;
    envd_code_execution *x = run(cl, RICH, NULL);
    assert_true(x->execution_count >= 1);
    assert_string_equal(x->stdout_text, "out 1\n");
    assert_int_equal(x->stdout_len, 6);
    assert_string_equal(x->stderr_text, "err 2\n");
    assert_null(x->error);
    assert_int_equal(x->n_results, 2);
    const envd_code_result *d = &x->results[0]; /* display() comes first */
    assert_false(d->is_main_result);
    assert_non_null(d->text); /* repr() of the object */
    assert_string_equal(d->html, "<b>hi</b>");
    assert_string_equal(d->markdown, "**hi**");
    assert_string_equal(d->svg, "<svg/>");
    assert_string_equal(d->png, "UE5HREFUQQ==");   /* base64("PNGDATA") */
    assert_string_equal(d->jpeg, "SlBFR0RBVEE="); /* base64("JPEGDATA") */
    assert_string_equal(d->pdf, "UERGREFUQQ==");
    assert_string_equal(d->latex, "$x$");
    assert_string_equal(d->javascript, "alert(1)");
    assert_string_equal(d->json, "{\"a\":1}");
    assert_string_equal(d->data, "{\"k\":[1,2]}");
    assert_string_equal(d->chart, "{\"type\":\"line\"}");
    assert_string_equal(d->extra, "{\"application/x-custom\":\"custom\"}");
    const envd_code_result *m = main_result(x);
    assert_ptr_equal(m, &x->results[1]);
    assert_string_equal(m->text, "42");
    assert_null(m->html);
    assert_null(m->png);
    assert_string_equal(m->extra, "{}"); /* result.py: extra is what is left, {} */
    envd_code_execution_free(x);

    /* result.py strips the quotes of a str's text/plain. */
    x = run(cl, "'abc'", NULL);
    assert_string_equal(main_result(x)->text, "abc");
    envd_code_execution_free(x);
    /* Non-ASCII goes through Python's \u escapes and back. */
    x = run(cl, "print('h\\u00e9 \\U0001F600')", NULL);
    assert_string_equal(x->stdout_text, "h\xc3\xa9 \xf0\x9f\x98\x80\n");
    envd_code_execution_free(x);
}

/* ---- errors the code raised ----------------------------------------------- */

static void syntax_error(void **state)
{
    (void)state;
    envd_code_execution *x = run(cl, "def f(:\n    pass\n", NULL);
    assert_non_null(x->error);
    assert_string_equal(x->error->name, "SyntaxError");
    assert_non_null(strstr(x->error->traceback, "SyntaxError"));
    assert_int_equal(x->n_results, 0);
    envd_code_execution_free(x);
}

static void exception_with_traceback(void **state)
{
    (void)state;
    envd_code_execution *x = run(
        cl, "print('before')\ndef inner():\n    raise ValueError('bad value')\ninner()\n", NULL);
    assert_string_equal(x->stdout_text, "before\n");
    assert_non_null(x->error);
    assert_string_equal(x->error->name, "ValueError");
    assert_string_equal(x->error->value, "bad value");
    assert_non_null(strstr(x->error->traceback, "in inner"));
    assert_non_null(strstr(x->error->traceback, "ValueError: bad value"));
    envd_code_execution_free(x);
}

/* ---- contexts ------------------------------------------------------------- */

static void two_contexts_keep_separate_state(void **state)
{
    (void)state;
    envd_code_context *a = NULL, *b = NULL;
    envd_error *err = NULL;
    assert_envd_ok(envd_code_context_create(cl, NULL, NULL, &a, &err), err);
    assert_envd_ok(envd_code_context_create(cl, "python", "/tmp/ctx-b", &b, &err), err);
    assert_string_not_equal(a->id, b->id);
    assert_string_equal(a->language, "python"); /* the server's defaults */
    assert_string_equal(a->cwd, "/home/user");
    assert_string_equal(b->cwd, "/tmp/ctx-b");

    envd_code_opts *oa = envd_code_opts_new(), *ob = envd_code_opts_new();
    assert_int_equal(envd_code_opts_set_context(oa, a->id), ENVD_OK);
    assert_int_equal(envd_code_opts_set_context(ob, b->id), ENVD_OK);
    envd_code_execution_free(run(cl, "x = 'in a'", oa));
    envd_code_execution_free(run(cl, "x = 'in b'", ob));
    envd_code_execution *x = run(cl, "x", oa);
    assert_string_equal(main_result(x)->text, "in a");
    envd_code_execution_free(x);
    x = run(cl, "x", ob);
    assert_string_equal(main_result(x)->text, "in b");
    envd_code_execution_free(x);

    envd_code_contexts *l = NULL;
    assert_envd_ok(envd_code_context_list(cl, &l, &err), err);
    int seen = 0;
    for (size_t i = 0; i < l->n; i++)
        seen += !strcmp(l->items[i].id, a->id) + 2 * !strcmp(l->items[i].id, b->id);
    assert_int_equal(seen, 3);
    envd_code_contexts_free(l);

    /* A restart loses the state. */
    assert_envd_ok(envd_code_context_restart(cl, b->id, &err), err);
    x = run(cl, "x", ob);
    assert_non_null(x->error);
    assert_string_equal(x->error->name, "NameError");
    envd_code_execution_free(x);

    /* Removed: running in it or removing it again is not found (404). */
    assert_envd_ok(envd_code_context_remove(cl, a->id, &err), err);
    envd_code_execution *gone = NULL;
    assert_int_equal(envd_code_run(cl, "1", oa, &gone, &err), ENVD_NOT_FOUND);
    assert_null(gone);
    assert_int_equal(envd_error_http_status(err), 404);
    assert_non_null(strstr(envd_error_message(err), "not found"));
    envd_error_free(err);
    err = NULL;
    assert_int_equal(envd_code_context_remove(cl, a->id, &err), ENVD_NOT_FOUND);
    envd_error_free(err);
    err = NULL;
    assert_int_equal(envd_code_context_restart(cl, a->id, &err), ENVD_NOT_FOUND);
    envd_error_free(err);
    assert_envd_ok(envd_code_context_remove(cl, b->id, NULL), NULL);

    envd_code_opts_free(oa);
    envd_code_opts_free(ob);
    envd_code_context_free(a);
    envd_code_context_free(b);
}

static void unknown_language_fails(void **state)
{
    (void)state;
    envd_code_context *c = NULL;
    envd_error *err = NULL;
    envd_status st = envd_code_context_create(cl, "cobol", NULL, &c, &err);
    assert_int_not_equal(st, ENVD_OK);
    assert_null(c);
    assert_int_equal(envd_error_http_status(err), 500);
    assert_non_null(strstr(envd_error_message(err), "create context failed (status 500)"));
    envd_error_free(err);
}

/* ---- streaming ------------------------------------------------------------ */

typedef struct seen_events {
    int types[64];
    char text[256];
    int n;
    pthread_t caller;
    int on_caller_thread;
    int stop_at_stdout;
} seen_events;

static int record(void *ud, const envd_code_event *ev)
{
    seen_events *s = ud;
    if (pthread_equal(pthread_self(), s->caller))
        s->on_caller_thread = 1;
    if (s->n < 64)
        s->types[s->n++] = (int)ev->type;
    if (ev->type == ENVD_CODE_EVENT_STDOUT)
        strncat(s->text, ev->text, sizeof s->text - strlen(s->text) - 1);
    return s->stop_at_stdout && ev->type == ENVD_CODE_EVENT_STDOUT;
}

static void streaming_order(void **state)
{
    (void)state;
    /* Pauses longer than the server's keepalive (PEER_CODE_KEEPALIVE_MS in
     * setup): {"type": "keepalive"} lines come between the events and are
     * skipped. */
    seen_events s = {.caller = pthread_self()};
    envd_future *f = NULL;
    assert_int_equal(envd_code_run_stream_async(cl,
                                                "import time, sys\n"
                                                "for i in range(3):\n"
                                                "    print('line', i, flush=True)\n"
                                                "    time.sleep(0.3)\n"
                                                "print('oops', file=sys.stderr)\n"
                                                "'done'\n",
                                                NULL, record, &s, &f),
                     ENVD_OK);
    envd_error *err = NULL;
    assert_envd_ok(envd_future_get(f, 30000, &err), err);
    assert_null(envd_future_code_execution(f)); /* nothing collected */
    envd_future_free(f);
    int want[] = {ENVD_CODE_EVENT_EXECUTION_COUNT, ENVD_CODE_EVENT_STDOUT, ENVD_CODE_EVENT_STDOUT,
                  ENVD_CODE_EVENT_STDOUT,          ENVD_CODE_EVENT_STDERR, ENVD_CODE_EVENT_RESULT,
                  ENVD_CODE_EVENT_END};
    assert_int_equal(s.n, 7);
    for (int i = 0; i < 7; i++)
        assert_int_equal(s.types[i], want[i]);
    assert_string_equal(s.text, "line 0\nline 1\nline 2\n");
    assert_false(s.on_caller_thread);
}

static void callback_stops_execution(void **state)
{
    (void)state;
    seen_events s = {.caller = pthread_self(), .stop_at_stdout = 1};
    envd_future *f = NULL;
    const char *code = "import time\nprint('go', flush=True)\ntime.sleep(60)\n";
    assert_int_equal(envd_code_run_async(cl, code, NULL, record, &s, &f), ENVD_OK);
    assert_int_equal(envd_future_wait(f, 30000), ENVD_OK);
    assert_int_equal(envd_future_status(f), ENVD_CANCELED);
    assert_null(envd_future_code_execution(f));
    envd_future_free(f);
    /* The server interrupted the kernel when the request went away: the
     * default context serves the next execution. */
    envd_code_execution *x = run(cl, "6 * 7", NULL);
    assert_string_equal(main_result(x)->text, "42");
    envd_code_execution_free(x);
}

static void line_over_cap(void **state)
{
    (void)state;
    envd_code_opts *o = envd_code_opts_new();
    assert_int_equal(envd_code_opts_set_max_line(o, 4096), ENVD_OK);
    envd_code_execution *x = NULL;
    envd_error *err = NULL;
    assert_int_equal(envd_code_run(cl, "print('y' * 10000)", o, &x, &err),
                     ENVD_RESOURCE_EXHAUSTED);
    assert_null(x);
    assert_non_null(strstr(envd_error_message(err), "cap of 4096 bytes"));
    envd_error_free(err);
    /* Under the cap it passes, and the client goes on. */
    x = run(cl, "print('y' * 3000)", o);
    assert_int_equal(x->stdout_len, 3001);
    envd_code_execution_free(x);
    envd_code_opts_free(o);
}

/* ---- options and routing -------------------------------------------------- */

static void env_vars_for_one_execution(void **state)
{
    (void)state;
    envd_code_opts *o = envd_code_opts_new();
    assert_int_equal(envd_code_opts_set_env(o, "CODE_IT_VAR", "v\xc3\xa9"), ENVD_OK);
    assert_int_equal(envd_code_opts_set_env(o, "", "x"), ENVD_INVALID_ARGUMENT);
    envd_code_execution *x = run(cl, "import os\nos.environ['CODE_IT_VAR']", o);
    assert_string_equal(main_result(x)->text, "v\xc3\xa9");
    envd_code_execution_free(x);
    x = run(cl, "import os\nos.environ.get('CODE_IT_VAR')", NULL); /* restored after */
    assert_null(main_result(x));
    envd_code_execution_free(x);
    envd_code_opts_free(o);
}

static void port_header_and_base_url(void **state)
{
    (void)state;
    /* Another code port: e2b-sandbox-port says 5000, the request reaches
     * envd's own routes, where there is no /execute. */
    envd_client *c = client_with(srv.addr, 5000, NULL);
    envd_code_execution *x = NULL;
    envd_error *err = NULL;
    assert_int_not_equal(envd_code_run(c, "1", NULL, &x, &err), ENVD_OK);
    assert_int_equal(envd_error_http_status(err), 404);
    envd_error_free(err);
    envd_client_free(c);

    /* A base URL of its own: the runtime URL points nowhere, the code
     * interpreter's is the server. */
    char url[96];
    snprintf(url, sizeof url, "http://%s", srv.addr);
    c = client_with("127.0.0.1:1", 0, url);
    x = run(c, "1 + 1", NULL);
    assert_string_equal(main_result(x)->text, "2");
    envd_code_execution_free(x);
    envd_client_free(c);
}

static void usage_errors(void **state)
{
    (void)state;
    envd_future *f = NULL;
    envd_error *err = NULL;
    envd_code_execution *x = NULL;
    assert_int_equal(envd_code_run_async(NULL, "1", NULL, NULL, NULL, &f), ENVD_E_USAGE);
    assert_int_equal(envd_code_run_async(cl, "", NULL, NULL, NULL, &f), ENVD_E_USAGE);
    assert_null(f);
    assert_int_equal(envd_code_run_stream_async(cl, "1", NULL, NULL, NULL, &f), ENVD_E_USAGE);
    assert_int_equal(envd_code_run(cl, NULL, NULL, &x, &err), ENVD_E_USAGE);
    assert_non_null(strstr(envd_error_message(err), "code is NULL"));
    envd_error_free(err);
    err = NULL;
    assert_int_equal(envd_code_context_remove(cl, "", &err), ENVD_E_USAGE);
    envd_error_free(err);

    envd_config *cfg = envd_config_new();
    assert_int_equal(envd_config_set_code_port(cfg, 70000), ENVD_INVALID_ARGUMENT);
    assert_non_null(strstr(envd_config_last_error(cfg), "port"));
    assert_int_equal(envd_config_set_code_port(cfg, 0), ENVD_OK);
    assert_int_equal(envd_config_set_code_base_url(cfg, "ftp://x"), ENVD_INVALID_ARGUMENT);
    assert_int_equal(envd_config_set_code_base_url(cfg, ""), ENVD_OK);
    assert_int_equal(envd_config_set_code_port(NULL, 1), ENVD_E_USAGE);
    envd_config_free(cfg);

    envd_code_opts *o = envd_code_opts_new();
    assert_int_equal(envd_code_opts_set_max_line(o, 10), ENVD_INVALID_ARGUMENT);
    assert_int_equal(envd_code_opts_set_timeout_ms(o, -1), ENVD_INVALID_ARGUMENT);
    assert_int_equal(envd_code_opts_set_max_output(o, -1), ENVD_INVALID_ARGUMENT);
    assert_int_equal(envd_code_opts_set_language(NULL, "python"), ENVD_E_USAGE);
    envd_code_opts_free(o);
}

static void timeout_cancels(void **state)
{
    (void)state;
    envd_code_opts *o = envd_code_opts_new();
    assert_int_equal(envd_code_opts_set_timeout_ms(o, 500), ENVD_OK);
    envd_code_execution *x = NULL;
    envd_error *err = NULL;
    assert_int_equal(envd_code_run(cl, "import time\ntime.sleep(60)", o, &x, &err),
                     ENVD_DEADLINE_EXCEEDED);
    envd_error_free(err);
    envd_code_opts_free(o);
    /* Interrupted on the server too: the next execution runs. */
    x = run(cl, "'next'", NULL);
    assert_string_equal(main_result(x)->text, "next");
    envd_code_execution_free(x);
}

static int setup(void **state)
{
    (void)state;
    setenv("PEER_CODE_KEEPALIVE_MS", "100", 1);
    int rc = test_server_start(&srv, "h1", NULL);
    unsetenv("PEER_CODE_KEEPALIVE_MS");
    if (rc != 0 || envd_runtime_new(NULL, &rt) != ENVD_OK)
        return -1;
    envd_config *cfg = envd_config_new();
    envd_config_set_domain(cfg, srv.addr);
    envd_config_set_request_timeout_ms(cfg, 20000);
    rc = envd_client_new(rt, "sbx-code", cfg, &cl, NULL) == ENVD_OK ? 0 : -1;
    envd_config_free(cfg);
    return rc;
}

static int teardown(void **state)
{
    (void)state;
    envd_client_free(cl);
    envd_runtime_free(rt);
    test_server_stop(&srv);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(each_event_kind),
        cmocka_unit_test(syntax_error),
        cmocka_unit_test(exception_with_traceback),
        cmocka_unit_test(two_contexts_keep_separate_state),
        cmocka_unit_test(unknown_language_fails),
        cmocka_unit_test(streaming_order),
        cmocka_unit_test(callback_stops_execution),
        cmocka_unit_test(line_over_cap),
        cmocka_unit_test(env_vars_for_one_execution),
        cmocka_unit_test(port_header_and_base_url),
        cmocka_unit_test(usage_errors),
        cmocka_unit_test(timeout_cancels),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
