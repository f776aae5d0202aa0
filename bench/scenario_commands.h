/* The command scenarios (bench/scenario_commands.c), for the table in
 * bench/scenarios.c:
 *
 *   run     .start = bench_cmd_run_start   (closed loop, default concurrency)
 *   stream  .run   = bench_cmd_stream_run  (its own runner, concurrency 1)
 */
#ifndef ENVD_BENCH_SCENARIO_COMMANDS_H
#define ENVD_BENCH_SCENARIO_COMMANDS_H

#include "bench.h"

/* One Commands.Run of `true`. */
envd_status bench_cmd_run_start(envd_client *c, bench_env *env, envd_future **out);

/* One command printing 1 GiB through a counting callback, then the same
 * stream read raw; fills out (figures in out->note). */
int bench_cmd_stream_run(bench_env *env, const bench_scenario *sc, int transport, int concurrency,
                         bench_result *out);

#endif
