/* The blocking layer's contract (src/api/sync.h), through rows defined here
 * over a fake starter: results and errors moved out, *out NULL on every
 * error but a command's exit, refusals named, nothing started on an engine
 * thread; and envd_future_get. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "api/sync.h"
#include "core/thread.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { DEMO_OK, DEMO_FAIL, DEMO_EXIT, DEMO_REFUSE, DEMO_REFUSE_SILENT, DEMO_NO, DEMO_YES };

static atomic_int starts;

typedef struct later {
    envd_future *f;
    void *result;
    envd_free_fn free_fn;
    envd_error *err;
} later;

/* Completes from another thread after a while, so the blocking form waits. */
static void *complete_later(void *p)
{
    later *l = p;
    usleep(20000);
    envd_future_complete(l->f, l->result, l->free_fn, l->err);
    free(l);
    return NULL;
}

static envd_status start_demo(int mode, int kind, envd_future **out)
{
    atomic_fetch_add(&starts, 1);
    if (mode == DEMO_REFUSE)
        return envd_start_error(ENVD_E_USAGE, "path is NULL");
    if (mode == DEMO_REFUSE_SILENT)
        return ENVD_E_NOMEM;
    later *l = calloc(1, sizeof(*l));
    l->f = envd_future_create(kind);
    if (kind == ENVD_FK_BOOL) {
        int *b = malloc(sizeof(int));
        *b = mode == DEMO_YES;
        l->result = b;
    } else {
        l->result = strdup("result");
    }
    l->free_fn = free;
    if (mode == DEMO_FAIL)
        l->err = envd_error_new(ENVD_NOT_FOUND, ENVD_TRANSPORT_NONE, 0, "no such thing");
    if (mode == DEMO_EXIT)
        l->err = envd_error_new(ENVD_E_COMMAND_EXIT, ENVD_TRANSPORT_NONE, 0, "exit status 3");
    *out = l->f;
    pthread_t t;
    pthread_create(&t, NULL, complete_later, l);
    pthread_detach(t);
    return ENVD_OK;
}

static envd_status envd_demo_async(int mode, envd_future **out)
{
    return start_demo(mode, ENVD_FK_BYTES, out);
}
static envd_status envd_demo_bool_async(int mode, envd_future **out)
{
    return start_demo(mode, ENVD_FK_BOOL, out);
}
static envd_status envd_demo_none_async(int mode, envd_future **out)
{
    return start_demo(mode, ENVD_FK_NONE, out);
}

/* The rows: what src/api/sync.c holds for the real API. */
envd_status envd_demo(int mode, char **out, envd_error **err);
envd_status envd_demo_bool(int mode, int *out, envd_error **err);
envd_status envd_demo_none(int mode, envd_error **err);
ENVD_SYNC_TAKE(envd_demo, char *, ENVD_FK_BYTES, (mode, &f_), int mode)
ENVD_SYNC_BOOL(envd_demo_bool, (mode, &f_), int mode)
ENVD_SYNC_NONE(envd_demo_none, (mode, &f_), int mode)

static char sentinel[] = "untouched";

static void results_and_errors_move_out(void **state)
{
    (void)state;
    char *out = sentinel;
    envd_error *err = (envd_error *)sentinel;
    assert_int_equal(envd_demo(DEMO_OK, &out, &err), ENVD_OK);
    assert_string_equal(out, "result");
    assert_null(err);
    free(out);

    out = sentinel;
    assert_int_equal(envd_demo(DEMO_FAIL, &out, &err), ENVD_NOT_FOUND);
    assert_null(out); /* the result the operation had is freed with it */
    assert_string_equal(envd_error_message(err), "no such thing");
    envd_error_free(err);

    /* the one exception: a command's exit keeps its result */
    assert_int_equal(envd_demo(DEMO_EXIT, &out, &err), ENVD_E_COMMAND_EXIT);
    assert_string_equal(out, "result");
    assert_int_equal(envd_error_code(err), ENVD_E_COMMAND_EXIT);
    free(out);
    envd_error_free(err);

    /* both out-parameters may be NULL: dropped, nothing leaks */
    assert_int_equal(envd_demo(DEMO_FAIL, NULL, NULL), ENVD_NOT_FOUND);
    assert_int_equal(envd_demo(DEMO_OK, NULL, NULL), ENVD_OK);
}

static void refused_starts_say_why(void **state)
{
    (void)state;
    char *out = sentinel;
    envd_error *err = NULL;
    assert_int_equal(envd_demo(DEMO_REFUSE, &out, &err), ENVD_E_USAGE);
    assert_null(out);
    assert_int_equal(envd_error_code(err), ENVD_E_USAGE);
    assert_string_equal(envd_error_message(err), "envd_demo: path is NULL");
    envd_error_free(err);
    /* a starter that left no message: the status's text, named */
    assert_int_equal(envd_demo(DEMO_REFUSE_SILENT, &out, &err), ENVD_E_NOMEM);
    assert_int_equal(envd_error_code(err), ENVD_E_NOMEM);
    assert_non_null(strstr(envd_error_message(err), "envd_demo: "));
    assert_null(strstr(envd_error_message(err), "path is NULL")); /* not the last one's */
    envd_error_free(err);
}

static void bool_and_none_rows(void **state)
{
    (void)state;
    int yes = -5;
    envd_error *err = (envd_error *)sentinel;
    assert_int_equal(envd_demo_bool(DEMO_YES, &yes, &err), ENVD_OK);
    assert_int_equal(yes, 1);
    assert_null(err);
    assert_int_equal(envd_demo_bool(DEMO_NO, &yes, &err), ENVD_OK);
    assert_int_equal(yes, 0);
    yes = -5;
    assert_int_equal(envd_demo_bool(DEMO_FAIL, &yes, &err), ENVD_NOT_FOUND);
    assert_int_equal(yes, 0);
    envd_error_free(err);
    assert_int_equal(envd_demo_none(DEMO_OK, &err), ENVD_OK);
    assert_null(err);
    assert_int_equal(envd_demo_none(DEMO_FAIL, &err), ENVD_NOT_FOUND);
    assert_int_equal(envd_error_code(err), ENVD_NOT_FOUND);
    envd_error_free(err);
    assert_int_equal(envd_demo_none(DEMO_REFUSE, &err), ENVD_E_USAGE);
    assert_string_equal(envd_error_message(err), "envd_demo_none: path is NULL");
    envd_error_free(err);
}

typedef struct in_cb {
    envd_status take, yes, none, get;
    char *out;
    int yes_out;
    envd_error *take_err, *yes_err, *none_err, *get_err;
} in_cb;

static void blocking_in_callback(envd_future *f, void *ud)
{
    in_cb *r = ud;
    r->out = sentinel;
    r->yes_out = -5;
    r->take = envd_demo(DEMO_OK, &r->out, &r->take_err);
    r->yes = envd_demo_bool(DEMO_YES, &r->yes_out, &r->yes_err);
    r->none = envd_demo_none(DEMO_OK, &r->none_err);
    r->get = envd_future_get(f, 0, &r->get_err);
}

static void check_refusal(envd_status st, envd_error *err, const char *fn)
{
    assert_int_equal(st, ENVD_E_USAGE);
    assert_int_equal(envd_error_code(err), ENVD_E_USAGE);
    assert_non_null(strstr(envd_error_message(err), fn));
    envd_error_free(err);
}

static void refused_in_callbacks_without_starting(void **state)
{
    (void)state;
    int before = atomic_load(&starts);
    in_cb r = {0};
    envd_future *f = envd_future_create(ENVD_FK_NONE);
    envd_future_on_complete(f, blocking_in_callback, &r);
    envd_future_complete(f, NULL, NULL, NULL);
    assert_int_equal(atomic_load(&starts), before); /* nothing was started */
    assert_null(r.out);
    assert_int_equal(r.yes_out, 0);
    check_refusal(r.take, r.take_err, "envd_demo:");
    check_refusal(r.yes, r.yes_err, "envd_demo_bool:");
    check_refusal(r.none, r.none_err, "envd_demo_none:");
    check_refusal(r.get, r.get_err, "envd_future_get:");
    envd_future_free(f);
}

static void future_get(void **state)
{
    (void)state;
    envd_future *f = NULL;
    assert_int_equal(envd_demo_async(DEMO_FAIL, &f), ENVD_OK);
    envd_error *err = (envd_error *)sentinel;
    assert_int_equal(envd_future_get(f, 0, &err), ENVD_E_TIMEOUT); /* still pending */
    assert_null(err);
    assert_int_equal(envd_future_get(f, 5000, &err), ENVD_NOT_FOUND);
    assert_string_equal(envd_error_message(err), "no such thing");
    envd_error_free(err);
    /* the result stays for the typed accessor */
    assert_string_equal(envd_future_result(f, ENVD_FK_BYTES), "result");
    envd_future_free(f);

    assert_int_equal(envd_demo_async(DEMO_OK, &f), ENVD_OK);
    assert_int_equal(envd_future_get(f, -1, &err), ENVD_OK);
    assert_null(err);
    assert_int_equal(envd_future_get(f, 0, NULL), ENVD_OK);
    envd_future_free(f);

    assert_int_equal(envd_future_get(NULL, 0, &err), ENVD_E_USAGE);
    assert_non_null(strstr(envd_error_message(err), "envd_future_get"));
    envd_error_free(err);
}

static void future_bool_is_tri_state(void **state)
{
    (void)state;
    envd_future *f = NULL;
    assert_int_equal(envd_demo_bool_async(DEMO_YES, &f), ENVD_OK);
    assert_int_equal(envd_future_bool(f), -1); /* pending */
    envd_future_wait(f, 5000);
    assert_int_equal(envd_future_bool(f), 1);
    envd_future_free(f);
    assert_int_equal(envd_demo_bool_async(DEMO_NO, &f), ENVD_OK);
    envd_future_wait(f, 5000);
    assert_int_equal(envd_future_bool(f), 0);
    envd_future_free(f);
    assert_int_equal(envd_demo_bool_async(DEMO_FAIL, &f), ENVD_OK);
    envd_future_wait(f, 5000);
    assert_int_equal(envd_future_bool(f), -1); /* failed, though a value was there */
    envd_future_free(f);
    assert_int_equal(envd_future_bool(NULL), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(results_and_errors_move_out),
        cmocka_unit_test(refused_starts_say_why),
        cmocka_unit_test(bool_and_none_rows),
        cmocka_unit_test(refused_in_callbacks_without_starting),
        cmocka_unit_test(future_get),
        cmocka_unit_test(future_bool_is_tri_state),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
