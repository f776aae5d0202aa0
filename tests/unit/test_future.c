/* Futures and timers: completion exactly once, waits, wait-any/all,
 * callbacks, cancel hooks, and timers firing, resetting and cancelling. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "config/config.h"
#include "core/error.h"
#include "core/future.h"
#include "core/thread.h"
#include "core/timer.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

static void counting_cb(envd_future *f, void *ud)
{
    (void)f;
    atomic_fetch_add((atomic_int *)ud, 1);
}

static void complete_once(void **state)
{
    (void)state;
    envd_future *f = envd_future_create(7);
    atomic_int calls = 0;
    assert_int_equal(envd_future_on_complete(f, counting_cb, &calls), ENVD_OK);
    assert_int_equal(envd_future_wait(f, 10), ENVD_E_TIMEOUT);
    assert_false(envd_future_done(f));
    int *v = malloc(sizeof(int));
    *v = 42;
    /* the second complete must be ignored, and free what it was given */
    envd_future_complete(f, v, free, NULL);
    assert_int_equal(atomic_load(&calls), 1);
    assert_true(envd_future_done(f));
    int *again = malloc(sizeof(int));
    *again = 7;
    envd_future_complete(f, again, free, NULL);
    assert_int_equal(atomic_load(&calls), 1);
    assert_int_equal(envd_future_status(f), ENVD_OK);
    assert_int_equal(*(int *)envd_future_result(f, 7), 42);
    assert_null(envd_future_result(f, 8)); /* wrong kind */
    assert_int_equal(envd_future_wait(f, 0), ENVD_OK);
    envd_future_free(f);
}

static void error_and_late_callback(void **state)
{
    (void)state;
    envd_future *f = envd_future_create(1);
    envd_future_complete(f, NULL, NULL,
                         envd_error_new(ENVD_NOT_FOUND, ENVD_TRANSPORT_CONNECT, 404, "gone %d", 5));
    atomic_int calls = 0;
    /* registering after completion runs the callback right away */
    assert_int_equal(envd_future_on_complete(f, counting_cb, &calls), ENVD_OK);
    assert_int_equal(atomic_load(&calls), 1);
    assert_int_equal(envd_future_status(f), ENVD_NOT_FOUND);
    const envd_error *e = envd_future_error(f);
    assert_non_null(e);
    assert_string_equal(envd_error_message(e), "gone 5");
    assert_int_equal(envd_error_http_status(e), 404);
    assert_int_equal(envd_error_transport(e), ENVD_TRANSPORT_CONNECT);
    envd_error *taken = envd_future_take_error(f);
    assert_int_equal(envd_error_code(taken), ENVD_NOT_FOUND);
    envd_error_free(taken);
    envd_future_free(f);
    envd_future_free(NULL);
    envd_error_free(NULL);
}

typedef struct {
    envd_future *f;
    int delay_ms;
    int value;
} completer;

static void *complete_later(void *arg)
{
    completer *c = arg;
    usleep((useconds_t)c->delay_ms * 1000);
    int *v = malloc(sizeof(int));
    *v = c->value;
    envd_future_complete(c->f, v, free, NULL);
    return NULL;
}

static void wait_any_and_all(void **state)
{
    (void)state;
    enum { N = 8, FIRST = 5 };
    envd_future *fs[N];
    completer cs[N];
    pthread_t th[N];
    for (int i = 0; i < N; i++) {
        fs[i] = envd_future_create(3);
        cs[i] = (completer){fs[i], 20, i};
    }
    size_t idx = 99;
    assert_int_equal(envd_future_wait_any(fs, N, 5, &idx), ENVD_E_TIMEOUT);
    /* one completes while wait_any sleeps; the others only after it
     * returned, so the answer does not depend on thread scheduling */
    pthread_create(&th[FIRST], NULL, complete_later, &cs[FIRST]);
    assert_int_equal(envd_future_wait_any(fs, N, 5000, &idx), ENVD_OK);
    assert_int_equal(idx, FIRST);
    assert_int_equal(envd_future_wait_all(fs, N, 5), ENVD_E_TIMEOUT);
    for (int i = 0; i < N; i++)
        if (i != FIRST)
            pthread_create(&th[i], NULL, complete_later, &cs[i]);
    assert_int_equal(envd_future_wait_all(fs, N, 5000), ENVD_OK);
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(*(int *)envd_future_result(fs[i], 3), i);
        envd_future_free(fs[i]);
    }
    assert_int_equal(envd_future_wait_any(NULL, 0, 0, &idx), ENVD_E_USAGE);
}

typedef struct fake_op {
    atomic_int refs;
    atomic_int cancels;
    envd_future *f;
} fake_op;

static void fop_ref(void *p) { atomic_fetch_add(&((fake_op *)p)->refs, 1); }
static void fop_unref(void *p) { atomic_fetch_sub(&((fake_op *)p)->refs, 1); }
static void fop_cancel(void *p)
{
    fake_op *op = p;
    atomic_fetch_add(&op->cancels, 1);
    envd_future_complete(op->f, NULL, NULL,
                         envd_error_new(ENVD_CANCELED, ENVD_TRANSPORT_NONE, 0, "canceled"));
}

static void cancel_hook(void **state)
{
    (void)state;
    fake_op op = {0};
    atomic_init(&op.refs, 1);
    op.f = envd_future_create(1);
    envd_cancel_hook h = {fop_cancel, fop_ref, fop_unref, &op};
    envd_future_set_cancel(op.f, &h);
    atomic_int calls = 0;
    envd_future_on_complete(op.f, counting_cb, &calls);
    envd_future_cancel(op.f);
    envd_future_cancel(op.f); /* no-op the second time */
    assert_int_equal(atomic_load(&op.cancels), 1);
    assert_int_equal(atomic_load(&calls), 1);
    assert_int_equal(envd_future_status(op.f), ENVD_CANCELED);
    assert_int_equal(atomic_load(&op.refs), 1); /* refs balanced */
    envd_future_free(op.f);

    /* cancel requested before the hook exists: the hook runs on install */
    fake_op op2 = {0};
    atomic_init(&op2.refs, 1);
    op2.f = envd_future_create(1);
    envd_future_cancel(op2.f);
    envd_cancel_hook h2 = {fop_cancel, fop_ref, fop_unref, &op2};
    envd_future_set_cancel(op2.f, &h2);
    assert_int_equal(atomic_load(&op2.cancels), 1);
    assert_int_equal(envd_future_status(op2.f), ENVD_CANCELED);
    envd_future_free(op2.f);
}

static void free_pending_then_complete(void **state)
{
    (void)state;
    /* the caller drops a pending future; the operation completes later */
    envd_future *f = envd_future_create(1);
    atomic_int calls = 0;
    envd_future_on_complete(f, counting_cb, &calls);
    envd_future_free(f);
    assert_int_equal(atomic_load(&calls), 0);
    int *v = malloc(sizeof(int));
    envd_future_complete(f, v, free, NULL); /* frees f and v; LSan checks */
    assert_int_equal(atomic_load(&calls), 1);
}

static void fire_cb(void *ud) { atomic_fetch_add((atomic_int *)ud, 1); }

/* Polls flag for up to ms; the time it took to be set, or -1. */
static int64_t wait_flag(atomic_int *flag, int64_t ms)
{
    int64_t t0 = envd_now_ms();
    while (!atomic_load(flag) && envd_now_ms() - t0 < ms)
        usleep(1000);
    return atomic_load(flag) ? envd_now_ms() - t0 : -1;
}

/* Deadlines are far apart compared with scheduling delays (a loaded CI box,
 * TSan): a timer must not fire hundreds of ms early, and must fire. */
static void timers(void **state)
{
    (void)state;
    envd_timers *ts;
    assert_int_equal(envd_timers_new(&ts), 0);
    atomic_int a = 0, b = 0, c = 0;
    envd_timer *ta = envd_timer_start(ts, 30, fire_cb, &a);
    envd_timer *tb = envd_timer_start(ts, 400, fire_cb, &b);
    envd_timer *tc = envd_timer_start(ts, 60000, fire_cb, &c);
    /* keep b alive by resetting it, as an idle timer fed by traffic */
    int64_t last_reset = 0; /* read before the reset: b fires 400 ms after it at the earliest */
    for (int i = 0; i < 6; i++) {
        usleep(100000);
        last_reset = envd_now_ms();
        envd_timer_reset(tb, 400);
    }
    assert_true(wait_flag(&a, 5000) >= 0);
    assert_int_equal(atomic_load(&b), 0); /* 600 ms after start, alive */
    assert_true(wait_flag(&b, 5000) >= 0);
    assert_true(envd_now_ms() - last_reset >= 400);
    assert_int_equal(envd_timer_cancel(ta), 0); /* had fired */
    assert_int_equal(envd_timer_cancel(tb), 0);
    assert_int_equal(envd_timer_cancel(tc), 1); /* disarmed */
    assert_int_equal(atomic_load(&c), 0);
    /* an earlier deadline set by reset is honoured */
    envd_timer *td = envd_timer_start(ts, 60000, fire_cb, &c);
    envd_timer_reset(td, 10);
    int64_t took = wait_flag(&c, 5000);
    assert_true(took >= 0 && took < 5000);
    envd_timer_cancel(td);
    envd_timers_free(ts);
}

/* What a thread that must not block sees when it tries to. */
typedef struct refusal {
    envd_future *pending; /* never completes while the probe runs */
    envd_runtime *rt;
    envd_status wait, any, all, rt_free;
    int64_t took_ms;
    atomic_int ran;
} refusal;

static void try_to_block(refusal *r)
{
    int64_t t0 = envd_now_ms();
    size_t idx = 99;
    r->wait = envd_future_wait(r->pending, -1);
    r->any = envd_future_wait_any(&r->pending, 1, -1, &idx);
    r->all = envd_future_wait_all(&r->pending, 1, -1);
    r->rt_free = envd_runtime_free(r->rt);
    r->took_ms = envd_now_ms() - t0;
    atomic_store(&r->ran, 1);
}

static void refusing_cb(envd_future *f, void *ud)
{
    (void)f;
    try_to_block(ud);
}

static void *refusing_thread(void *ud)
{
    try_to_block(ud);
    return NULL;
}

static void assert_refused(refusal *r)
{
    assert_int_equal(atomic_load(&r->ran), 1);
    assert_int_equal(r->wait, ENVD_E_USAGE);
    assert_int_equal(r->any, ENVD_E_USAGE);
    assert_int_equal(r->all, ENVD_E_USAGE);
    assert_int_equal(r->rt_free, ENVD_E_USAGE);
    assert_true(r->took_ms < 1000);
    atomic_store(&r->ran, 0);
}

static void engine_threads_refuse_to_wait(void **state)
{
    (void)state;
    refusal r = {0};
    r.pending = envd_future_create(1);
    assert_int_equal(envd_runtime_new(NULL, &r.rt), ENVD_OK);
    /* a completion callback run by the completing (here: this) thread */
    envd_future *f = envd_future_create(1);
    assert_int_equal(envd_future_on_complete(f, refusing_cb, &r), ENVD_OK);
    envd_future_complete(f, NULL, NULL, NULL);
    assert_refused(&r);
    /* registered after completion: runs at once, on this thread */
    assert_int_equal(envd_future_on_complete(f, refusing_cb, &r), ENVD_OK);
    assert_refused(&r);
    envd_future_free(f);
    /* a thread started the way the runtime starts its own */
    pthread_t t;
    assert_int_equal(envd_thread_start(&t, refusing_thread, &r), 0);
    pthread_join(t, NULL);
    assert_refused(&r);
    /* outside callbacks, this thread may wait again */
    assert_false(envd_thread_is_engine());
    assert_int_equal(envd_future_wait(r.pending, 0), ENVD_E_TIMEOUT);
    envd_future_complete(r.pending, NULL, NULL, NULL);
    envd_future_free(r.pending);
    assert_int_equal(envd_runtime_free(r.rt), ENVD_OK);
}

/* A slow completion callback: every wait must return after it, so that a
 * caller who waited may rely on what the callback did. */
typedef struct slow_cb {
    atomic_int finished;
} slow_cb;

static void slow_callback(envd_future *f, void *ud)
{
    (void)f;
    usleep(100000);
    atomic_store(&((slow_cb *)ud)->finished, 1);
}

static void *complete_soon(void *p)
{
    usleep(10000);
    envd_future_complete(p, NULL, NULL, NULL);
    return NULL;
}

enum { BY_WAIT, BY_ANY, BY_ALL, BY_GET };

static void wait_returns_after_callback_by(int how)
{
    slow_cb cb = {0};
    envd_future *fs[2] = {envd_future_create(1), envd_future_create(1)};
    envd_future_on_complete(fs[0], slow_callback, &cb);
    pthread_t t;
    pthread_create(&t, NULL, complete_soon, fs[0]);
    size_t idx = 99;
    if (how == BY_WAIT)
        assert_int_equal(envd_future_wait(fs[0], 5000), ENVD_OK);
    if (how == BY_ANY) {
        assert_int_equal(envd_future_wait_any(fs, 2, 5000, &idx), ENVD_OK);
        assert_int_equal(idx, 0);
    }
    if (how == BY_ALL)
        assert_int_equal(envd_future_wait_all(fs, 1, 5000), ENVD_OK);
    if (how == BY_GET)
        assert_int_equal(envd_future_get(fs[0], 5000, NULL), ENVD_OK);
    assert_int_equal(atomic_load(&cb.finished), 1);
    pthread_join(t, NULL);
    envd_future_complete(fs[1], NULL, NULL, NULL);
    envd_future_free(fs[0]);
    envd_future_free(fs[1]);
}

static void waits_return_after_the_callback(void **state)
{
    (void)state;
    wait_returns_after_callback_by(BY_WAIT);
    wait_returns_after_callback_by(BY_ANY);
    wait_returns_after_callback_by(BY_ALL);
    wait_returns_after_callback_by(BY_GET);
}

static void take_error_moves_it(void **state)
{
    (void)state;
    envd_future *f = envd_future_create(1);
    envd_future_complete(f, NULL, NULL,
                         envd_error_new(ENVD_NOT_FOUND, ENVD_TRANSPORT_NONE, 0, "gone"));
    envd_error *e = envd_future_take_error(f);
    assert_string_equal(envd_error_message(e), "gone");
    /* the future keeps no error, but still knows how it ended */
    assert_null(envd_future_error(f));
    assert_null(envd_future_take_error(f));
    assert_int_equal(envd_future_status(f), ENVD_NOT_FOUND);
    envd_error *again = (envd_error *)1;
    assert_int_equal(envd_future_get(f, 0, &again), ENVD_NOT_FOUND);
    assert_null(again);
    envd_future_free(f);
    /* still valid after the future is gone: it was moved, not lent */
    assert_int_equal(envd_error_code(e), ENVD_NOT_FOUND);
    envd_error_free(e);
}

/* Every thread the runtime starts may fail to start; each failure is a
 * clean error with nothing left running or allocated (ASan checks). */
static void runtime_new_fails_cleanly(void **state)
{
    (void)state;
    envd_config *cfg = envd_config_new();
    assert_int_equal(envd_config_set_workers(cfg, 3), ENVD_OK);
    int n = 1;
    for (;; n++) {
        envd_runtime *rt = (envd_runtime *)cfg; /* must be cleared */
        envd_thread_test_fail_start(n);
        envd_status s = envd_runtime_new(cfg, &rt);
        envd_thread_test_fail_start(0);
        if (s == ENVD_OK) {
            assert_int_equal(envd_runtime_free(rt), ENVD_OK);
            break;
        }
        assert_int_equal(s, ENVD_E_NOMEM);
        assert_null(rt);
    }
    assert_int_equal(n, 1 + 3 + 1 + 1); /* timer, 3 workers, curl I/O, then none fails */
    /* more workers than the bound, however the config got them: refused */
    cfg->workers = 100000;
    envd_runtime *rt = NULL;
    assert_int_equal(envd_runtime_new(cfg, &rt), ENVD_E_CONFIG);
    assert_null(rt);
    envd_config_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(complete_once),
        cmocka_unit_test(error_and_late_callback),
        cmocka_unit_test(wait_any_and_all),
        cmocka_unit_test(cancel_hook),
        cmocka_unit_test(free_pending_then_complete),
        cmocka_unit_test(timers),
        cmocka_unit_test(engine_threads_refuse_to_wait),
        cmocka_unit_test(waits_return_after_the_callback),
        cmocka_unit_test(take_error_moves_it),
        cmocka_unit_test(runtime_new_fails_cleanly),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
