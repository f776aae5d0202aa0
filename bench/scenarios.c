/* The scenario table. Each entry says what one call is, for every client
 * that can make it (see bench.h for how to add one). */
#include "bench.h"
#include "scenario_commands.h"
#include "scenario_files.h"

#include <stdio.h>
#include <string.h>

/* ------------------------------------------------------- protobuf bytes */

/* Hand-encoded request messages for h2load's body file: the same bytes
 * libenvd's protobuf-c code sends. */
static size_t put_varint(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

/* field `num` of wire type 2 (length-delimited) */
static size_t put_string(uint8_t *buf, size_t cap, unsigned num, const char *s)
{
    size_t len = strlen(s);
    if (len + 12 > cap)
        return SIZE_MAX;
    size_t n = put_varint(buf, (uint64_t)num << 3 | 2);
    n += put_varint(buf + n, len);
    memcpy(buf + n, s, len);
    return n + len;
}

/* ------------------------------------------------------------------ list */

/* A few background processes, so List returns something to decode. */
static int list_setup(bench_env *env)
{
    envd_cmd_opts *o = envd_cmd_opts_new();
    if (!o)
        return -1;
    envd_cmd_opts_set_tag(o, "envd-bench");
    for (size_t i = 0; i < 3; i++) {
        envd_handle *h = NULL;
        envd_error *err = NULL;
        envd_status s = envd_commands_start(env->setup_client, "sleep 3600", o, &h, &err);
        if (s != ENVD_OK) {
            bench_log("envd-bench: list setup: start: %s",
                      err ? envd_error_message(err) : envd_strerror(s));
            envd_error_free(err);
            break;
        }
        env->bg_pids[env->n_bg++] = envd_handle_pid(h);
        /* detach, and wait until the stream is really gone: its end still
         * touches the client, which is freed right after setup */
        envd_handle_disconnect(h);
        envd_future_wait(envd_handle_future(h), 10000);
        envd_handle_free(h);
    }
    envd_cmd_opts_free(o);
    return env->n_bg > 0 ? 0 : -1;
}

static void list_teardown(bench_env *env)
{
    for (size_t i = 0; i < env->n_bg; i++) {
        int killed = 0;
        envd_error *err = NULL;
        envd_commands_kill(env->setup_client, ENVD_PID(env->bg_pids[i]), &killed, &err);
        envd_error_free(err);
    }
    env->n_bg = 0;
}

static envd_status list_start(envd_client *c, bench_env *env, envd_future **out)
{
    (void)env;
    return envd_commands_list_async(c, out);
}

static size_t list_request(bench_env *env, uint8_t *buf, size_t cap)
{
    (void)env, (void)buf, (void)cap;
    return 0; /* ListRequest has no fields */
}

/* ------------------------------------------------------------------ stat */

#define STAT_PATH "/tmp/envd-bench/stat-target.txt"

static int stat_setup(bench_env *env)
{
    static const char text[] = "envd-bench stat target\n";
    envd_error *err = NULL;
    envd_status s =
        envd_files_write(env->setup_client, STAT_PATH, text, sizeof(text) - 1, NULL, NULL, &err);
    if (s != ENVD_OK) {
        bench_log("envd-bench: stat setup: write %s: %s", STAT_PATH,
                  err ? envd_error_message(err) : envd_strerror(s));
        envd_error_free(err);
        return -1;
    }
    env->stat_path = STAT_PATH;
    return 0;
}

static envd_status stat_start(envd_client *c, bench_env *env, envd_future **out)
{
    return envd_fs_get_info_async(c, env->stat_path, out);
}

static size_t stat_request(bench_env *env, uint8_t *buf, size_t cap)
{
    return put_string(buf, cap, 1, env->stat_path); /* StatRequest.path = 1 */
}

/* --------------------------------------------------------------- the table */

const bench_scenario bench_scenarios[] = {
    {
        .name = "list",
        .summary = "unary Process.List (3 background processes listed)",
        .in_default = 1,
        .transports = BT_ALL,
        .setup = list_setup,
        .teardown = list_teardown,
        .start = list_start,
        .method = "/process.Process/List",
        .request = list_request,
        .e2b_op = "list",
    },
    {
        .name = "stat",
        .summary = "unary Filesystem.Stat of a small file",
        .in_default = 1,
        .transports = BT_ALL,
        .setup = stat_setup,
        .start = stat_start,
        .method = "/filesystem.Filesystem/Stat",
        .request = stat_request,
        .e2b_op = "stat",
    },
    {
        .name = "run",
        .summary = "Commands.Run of `true` (/bin/bash -l -c true): runs/s, CPU per run",
        .in_default = 1,
        .transports = BT_ALL,
        .start = bench_cmd_run_start,
        .go_op = "run",
    },
    {
        .name = "stream",
        .summary = "one command printing 1 GiB through a callback: MB/s, CPU per MB, RSS; "
                   "vs a raw libcurl reader",
        .in_default = 1,
        .default_concurrency = {1},
        .run = bench_cmd_stream_run,
    },
    /* /files: two entries per name, told apart by `files`/`file_bytes` */
    {
        .name = "upload",
        .summary = "/files upload of 1 MiB x 1000 from a local file: MB/s, CPU per GB, RSS; "
                   "vs curl",
        .in_default = 1,
        .default_concurrency = {1, 16},
        .transports = 1u << BT_CONNECT_H1 | 1u << BT_CONNECT_H2C | 1u << BT_CONNECT_TLS,
        .teardown = bench_files_teardown,
        .run = bench_files_upload_small_run,
    },
    {
        .name = "upload",
        .summary = "/files upload of 1 GiB x 1 from a local file: MB/s, CPU per GB, peak RSS; "
                   "vs curl",
        .in_default = 1,
        .default_concurrency = {1},
        .transports = 1u << BT_CONNECT_H1,
        .teardown = bench_files_teardown,
        .run = bench_files_upload_big_run,
    },
    {
        .name = "upload",
        .summary = "/files upload of 1 GiB x 1 in parts uploaded at once and composed "
                   "(ENVD_BENCH_FILES_PARTS, default 8): MB/s, CPU per GB, peak RSS",
        .in_default = 1,
        .default_concurrency = {1},
        .transports = 1u << BT_CONNECT_H1,
        .teardown = bench_files_teardown,
        .run = bench_files_upload_parts_run,
    },
    {
        .name = "download",
        .summary = "/files download of 1 MiB x 1000 to /dev/null: MB/s, CPU per GB, RSS; "
                   "vs curl",
        .in_default = 1,
        .default_concurrency = {1, 16},
        .transports = 1u << BT_CONNECT_H1 | 1u << BT_CONNECT_H2C | 1u << BT_CONNECT_TLS,
        .teardown = bench_files_teardown,
        .run = bench_files_download_small_run,
    },
    {
        .name = "download",
        .summary = "/files download of 1 GiB x 1 to /dev/null: MB/s, CPU per GB, peak RSS; "
                   "vs curl",
        .in_default = 1,
        .default_concurrency = {1},
        .transports = 1u << BT_CONNECT_H1,
        .teardown = bench_files_teardown,
        .run = bench_files_download_big_run,
    },
    /* Not in the default set: over a minute with its 1,000,000-line --check. */
    {
        .name = "batch",
        .summary = "10,000 `true` jobs over 8 sandbox IDs by envdctl batch vs libenvd's async "
                   "loop: CPU per job; peak RSS of --check on 1,000,000 lines",
        .in_default = 0,
        .default_concurrency = {8},
        .transports = 1u << BT_GRPC | 1u << BT_CONNECT_H1,
        .run = bench_run_batch,
    },
    /* Not in the default set: it runs for minutes. */
    {
        .name = "soak",
        .summary = "runs, streams, files, watches and cancels for 10 min (--duration) with "
                   "server restarts: RSS, fds and threads flat",
        .in_default = 0,
        .default_concurrency = {8},
        .transports = 1u << BT_GRPC | 1u << BT_CONNECT_H2C | 1u << BT_CONNECT_H1,
        .run = bench_run_soak,
    },
    /* Not in the default set: a paused server and 10,000 clients. */
    {
        .name = "sandboxes",
        .summary = "10,000 clients (distinct sandbox ids) on one runtime, idle, then each with "
                   "a Stat in flight against a paused server: RSS per sandbox",
        .in_default = 0,
        .default_concurrency = {10000},
        .transports = 1u << BT_GRPC | 1u << BT_CONNECT_H2C | 1u << BT_CONNECT_H1,
        .setup = stat_setup,
        .run = bench_run_sandboxes,
    },
    /* Not in the default set: 1,000 processes and an nginx gateway. */
    {
        .name = "long",
        .summary = "1,000 long commands at once through nginx (100 streams a connection): "
                   "time until all started, connections, CPU and RSS per command, a Stat "
                   "meanwhile",
        .in_default = 0,
        .default_concurrency = {1000},
        .transports =
            1u << BT_GRPC | 1u << BT_CONNECT_H1 | 1u << BT_CONNECT_H2C | 1u << BT_CONNECT_TLS,
        .setup = stat_setup,
        .run = bench_run_long,
    },
    /* Last: its 10,000 calls leave the heap large, which would show as the
     * peak RSS of whatever ran after it in the same process. */
    {
        .name = "inflight",
        .summary = "10,000 Stat calls in flight against a paused server: threads, RSS per call",
        .in_default = 1,
        .default_concurrency = {10000},
        .transports = 1u << BT_GRPC | 1u << BT_CONNECT_H2C | 1u << BT_CONNECT_H1,
        .setup = stat_setup,
        .run = bench_run_inflight,
    },
};

const size_t bench_n_scenarios = sizeof(bench_scenarios) / sizeof(bench_scenarios[0]);

const bench_scenario *bench_scenario_find(const char *name)
{
    for (size_t i = 0; i < bench_n_scenarios; i++)
        if (strcmp(bench_scenarios[i].name, name) == 0)
            return &bench_scenarios[i];
    return NULL;
}
