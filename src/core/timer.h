/* A single timer thread shared by a runtime. Timers fire once; the callback
 * runs on the timer thread and must not block. Used for request, first-event
 * and idle timeouts that the transports enforce on the client side. */
#ifndef ENVD_CORE_TIMER_H
#define ENVD_CORE_TIMER_H

#include <stdint.h>

typedef struct envd_timers envd_timers;
typedef struct envd_timer envd_timer;

typedef void (*envd_timer_fn)(void *ud);

int envd_timers_new(envd_timers **out);
/* Stops the thread. Pending timers are dropped without firing. */
void envd_timers_free(envd_timers *ts);

/* Monotonic clock in milliseconds. */
int64_t envd_now_ms(void);

/* Arms a timer that calls fn(ud) at now + delay_ms. Returns NULL on
 * allocation failure. The timer is owned by the caller until cancelled. */
envd_timer *envd_timer_start(envd_timers *ts, int64_t delay_ms, envd_timer_fn fn, void *ud);

/* Moves the deadline of an armed timer to now + delay_ms (for idle timers
 * fed by traffic). Cheap: no allocation. No effect once it fired. */
void envd_timer_reset(envd_timer *t, int64_t delay_ms);

/* Disarms the timer and frees it. Every timer returned by envd_timer_start
 * must be passed here exactly once, whether or not it fired. If the callback
 * is running on the timer thread right now, this waits for it to return,
 * except when called from inside that very callback. After it returns the
 * callback is not running and will never run. Returns 1 if the timer was
 * disarmed before it fired, 0 if it had fired. */
int envd_timer_cancel(envd_timer *t);

#endif
