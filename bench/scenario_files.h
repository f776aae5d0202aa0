/* The /files scenarios (bench/scenario_files.c), for the table in
 * bench/scenarios.c, and the curl client that moves the same files:
 *
 *   upload    1 MiB x 1000   .run = bench_files_upload_small_run   c = 1, 16
 *   upload    1 GiB x 1      .run = bench_files_upload_big_run     c = 1
 *   upload    1 GiB x 1      .run = bench_files_upload_parts_run   c = 1
 *             in ENVD_BENCH_FILES_PARTS parts (default 8) uploaded at once
 *             and composed (envd_files_opts_set_parallel; libenvd only,
 *             beside the single stream and curl's)
 *   download  1 MiB x 1000   .run = bench_files_download_small_run c = 1, 16
 *   download  1 GiB x 1      .run = bench_files_download_big_run   c = 1
 *
 * Two table entries share each name (--scenario upload runs both sizes);
 * results tell them apart by `files` and `file_bytes`. Over HTTP/1.1
 * (connect-h1): /files is plain HTTP, the same for every RPC transport.
 *
 * Result fields: calls = files moved, bytes_per_s, files, file_bytes,
 * cpu_us (client user+system over the transfer: MB/s and CPU per GB are in
 * the note), peak_rss_kib (libenvd: this process's VmHWM, reset before the
 * case; curl: the child's maxrss). */
#ifndef ENVD_BENCH_SCENARIO_FILES_H
#define ENVD_BENCH_SCENARIO_FILES_H

#include "bench.h"

#include <stdio.h>

int bench_files_upload_small_run(bench_env *env, const bench_scenario *sc, int transport,
                                 int concurrency, bench_result *out);
int bench_files_upload_big_run(bench_env *env, const bench_scenario *sc, int transport,
                               int concurrency, bench_result *out);
int bench_files_upload_parts_run(bench_env *env, const bench_scenario *sc, int transport,
                                 int concurrency, bench_result *out);
int bench_files_download_small_run(bench_env *env, const bench_scenario *sc, int transport,
                                   int concurrency, bench_result *out);
int bench_files_download_big_run(bench_env *env, const bench_scenario *sc, int transport,
                                 int concurrency, bench_result *out);
/* Teardown for the table entries: removes what the scenario left on the
 * server. */
void bench_files_teardown(bench_env *env);

/* The curl program (PATH, or $ENVD_BENCH_CURL) moving the same files to the
 * same server: one process per case, its transfers listed in a config file
 * (-K), reusing its connection, --parallel-max = concurrency. */
extern const bench_client_impl bench_client_curl;

/* The targets for these scenarios: libenvd >= 90 % of curl's bytes/s for
 * every case with both, peak RSS <= 32 MiB for the 1 GiB cases. */
void bench_files_targets(FILE *fp, const bench_result *rs, size_t n, int *met, int *missed);

#endif
