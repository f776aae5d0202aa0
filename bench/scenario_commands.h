/* The command scenarios (bench/scenario_commands.c), for the table in
 * bench/scenarios.c:
 *
 *   run     .start = bench_cmd_run_start   (closed loop, default concurrency)
 *   stream  .run   = bench_cmd_stream_run  (its own runner, concurrency 1)
 */
#ifndef ENVD_BENCH_SCENARIO_COMMANDS_H
#define ENVD_BENCH_SCENARIO_COMMANDS_H

#include "bench.h"

#include <stdio.h>

/* One Commands.Run of `true`. */
envd_status bench_cmd_run_start(envd_client *c, bench_env *env, envd_future **out);

/* One command printing 1 GiB through a counting callback; fills out
 * (bytes_per_s, stream_bytes; the rest in out->note). */
int bench_cmd_stream_run(bench_env *env, const bench_scenario *sc, int transport, int concurrency,
                         bench_result *out);

/* The stream's baseline, client "raw-curl": the same request by raw libcurl,
 * counting the response bytes. */
extern const bench_client_impl bench_client_raw_curl;

/* stream: libenvd's MB/s >= 90% of raw-curl's, per transport. */
void bench_stream_targets(FILE *fp, const bench_result *rs, size_t n, int *met, int *missed);

#endif
