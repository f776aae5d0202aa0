/*
 * envdctl batch: the pieces of the batch runner (batch_*.c), shared among
 * them only.
 *
 *   batch_jobs.c     the jobs file: streamed JSON Lines or YAML, one job at
 *                    a time, each validated (errors are "FILE:LINE: ...")
 *   batch_idset.c    a set of job IDs kept as 64-bit hashes (duplicate IDs,
 *                    --resume), so a million jobs cost 16 MiB, not a copy
 *   batch_results.c  the results file: one flushed JSON line per job, and
 *                    reading it back for --resume
 *   batch_pool.c     the sandboxes: clients, per-sandbox slots, back-off
 *   batch_sched.c    the scheduler: futures, a completion queue drained by
 *                    the main thread, retries, Ctrl-C
 *   batch_report.c   the progress line and the summary
 *   batch_acquire.c  --create / --claim: sandboxes joining the pool as
 *                    they become ready, and their release
 *   batch_k8s.c      --k8s-job (an Indexed Job manifest) and --k8s-selector
 *   batch.c          cmd_batch: options, the two passes over the jobs file
 */
#ifndef ENVDCTL_BATCH_H
#define ENVDCTL_BATCH_H

#include "envdctl.h"

#include <jansson.h>
#include <stdio.h>

/* ----------------------------------------------------------------- jobs */

typedef struct batch_xfer {
    char *src, *dst;
} batch_xfer;

typedef struct batch_job {
    char *id;
    size_t index; /* 0-based position among the file's jobs (--shard) */
    long line;    /* where it starts in the file, for messages */
    char *cmd;    /* exactly one of cmd, argv and code */
    char **argv;  /* NULL-terminated */
    char *code;   /* run in the code interpreter (envd_code.h) */
    char *language; /* code only; NULL: the server's default */
    char *sandbox;
    char **env; /* "K", "V", "K", "V", ..., NULL */
    char *cwd, *user;
    int64_t timeout_ms; /* 0: none */
    char *stdin_data;   /* NULL: no stdin */
    size_t stdin_len;
    batch_xfer *up, *down;
    size_t n_up, n_down;
    int retries; /* -1: --retries */
} batch_job;

void batch_job_free(batch_job *j);

typedef struct batch_reader batch_reader;

/* Opens the jobs file (YAML when its name ends in .yaml/.yml). "-" is
 * standard input, copied to a temporary file first so it can be read twice
 * (validation, then the run) without being held in memory. NULL with *err
 * (malloc'd) on failure. */
batch_reader *batch_reader_open(const char *path, int stdin_yaml, char **err);
/* Back to the first job. 0 or -1. */
int batch_reader_rewind(batch_reader *r, char **err);
/* The next job: 1 (filled in *job), 0 at the end, -1 on an error with *err
 * ("FILE:LINE: message", malloc'd). After a job's own error (bad field) the
 * reader can go on; after a syntax error in YAML it cannot (returns 0 next). */
int batch_reader_next(batch_reader *r, batch_job *job, char **err);
/* 1 when an error it returned was for want of memory (not the file's fault). */
int batch_reader_nomem(const batch_reader *r);
void batch_reader_close(batch_reader *r);

/* ---------------------------------------------------------------- id set */

typedef struct batch_idset {
    uint64_t *slots; /* 0: empty */
    size_t cap, count;
} batch_idset;

/* 1 if added, 0 if it was there, -1 out of memory. */
int batch_idset_add(batch_idset *s, const char *id);
int batch_idset_has(const batch_idset *s, const char *id);
void batch_idset_free(batch_idset *s);

/* -------------------------------------------------------------- results */

typedef enum batch_status {
    BATCH_OK = 0,
    BATCH_FAILED = 1,
    BATCH_ERROR = 2,
    BATCH_CANCELED = 3
} batch_status;

extern const char *const batch_status_names[4];

typedef struct batch_result {
    const char *id, *sandbox;
    batch_status status;
    int has_exit;
    int exit_code;
    const char *error; /* NULL: none */
    int attempts;
    int64_t started_sec; /* wall clock */
    int32_t started_nsec;
    int64_t duration_ms, upload_ms, run_ms, download_ms;
    const cli_buf *out, *err; /* NULL with --output-dir */
    int out_truncated, err_truncated;
} batch_result;

/* Appends one JSON line to f and flushes it. 0 or -1 (errno). */
int batch_result_write(FILE *f, const batch_result *r);
/* Reads an existing results file into *skip: the IDs whose last status is
 * ok or failed (with rerun_failed, for --resume-failed, only ok).
 * A missing file is an empty set. 0, or -1 with *err. */
int batch_results_load(const char *path, int rerun_failed, batch_idset *skip, char **err);

/* ---------------------------------------------------------------- report */

/* Latencies without keeping them: a log-scale histogram (about 2 %). */
#define BATCH_HIST_BUCKETS (64 + 32 * 34)
typedef struct batch_hist {
    uint32_t n[BATCH_HIST_BUCKETS];
    uint64_t count;
} batch_hist;

void batch_hist_add(batch_hist *h, int64_t ms);
int64_t batch_hist_quantile(const batch_hist *h, double q);

typedef struct batch_slow {
    char *id;
    int64_t ms;
} batch_slow;

typedef struct batch_report {
    int mode; /* 0 quiet, 1 plain lines (--progress), 2 bar (TTY) */
    uint64_t total;
    uint64_t counts[4];
    int64_t t0, last_draw;
    batch_hist phase[4]; /* duration, upload, run, download */
    batch_slow slow[5];
    int drawn;
    /* --create / --claim: how long each sandbox took to join the pool,
     * from the start of the acquisition */
    int acquiring;
    batch_hist acquire;
    int64_t acquire_max;
    uint64_t acquire_failed;
} batch_report;

void batch_report_init(batch_report *r, int mode, uint64_t total);
void batch_report_add(batch_report *r, const batch_result *res);
/* Redraws the progress (at most 10 times a second on a TTY, every 5 s for
 * plain lines) unless force. */
void batch_report_tick(batch_report *r, int force);
/* A sandbox joined the pool ms after the acquisition began; or n failed. */
void batch_report_acquired(batch_report *r, int64_t ms);
void batch_report_acquire_failed(batch_report *r, uint64_t n);
/* The summary on stderr. */
void batch_report_summary(batch_report *r);
/* The same as one JSON object (--report FILE). 0 or -1 (errno). */
int batch_report_json(const batch_report *r, const char *path);
void batch_report_free(batch_report *r);

/* ------------------------------------------------------------------ pool */

typedef struct batch_sbx {
    char *label;      /* as the user wrote it: ID, config name, NS/NAME */
    cli_sandbox spec; /* points into label, domain and token */
    char *domain, *token; /* a `sandbox create` line's own, or NULL */
    envd_client *client;
    int pinned;   /* only for jobs naming it, not for the scheduler's picks */
    int running;  /* jobs in it now */
    int fails;    /* transport failures in a row */
    int64_t down_until;
    char *open_error; /* it could not be opened (not a transport error) */
} batch_sbx;

typedef struct batch_pool {
    cli_ctx *ctx;
    batch_sbx **s;
    size_t n, cap;
    int per_sandbox;
    int64_t backoff_ms; /* first back-off; doubles per failure in a row */
    size_t next;        /* round-robin start */
    int64_t last_ok;    /* last time any sandbox answered */
} batch_pool;

/* Adds a sandbox spec (ID or config name, or k8s NS/NAME). 0 or -1. */
int batch_pool_add(batch_pool *p, const char *id_or_name, const char *k8s, int pinned);
/* Adds one per line of FILE (blank lines and '#' skipped). 0 or -1 with *err. */
int batch_pool_add_file(batch_pool *p, const char *path, char **err);
/* Opens the clients (blocking, once). 0, or the exit status with a message
 * printed when no sandbox at all could be opened. */
int batch_pool_open(batch_pool *p);
/* A sandbox for a job: the named one (found or added pinned) or the least
 * loaded usable one, other than avoid if there is another. NULL when none
 * is free now; *wait_ms says when one might be (or -1 when every sandbox is
 * unusable for good). */
batch_sbx *batch_pool_pick(batch_pool *p, const char *name, const batch_sbx *avoid, int64_t now,
                           int64_t *wait_ms);
/* After a job ends on s: transport = 1 puts it out for a back-off. */
void batch_pool_release(batch_pool *p, batch_sbx *s, int transport_failure, int64_t now);
size_t batch_pool_usable(const batch_pool *p);
void batch_pool_free(batch_pool *p);

/* Lists the Sandbox objects matching NS:SELECTOR through the library and
 * adds each as NS/NAME. 0 or the exit status (printed). */
int batch_pool_add_selector(batch_pool *p, const char *ns_selector);

/* ----------------------------------------------------------- acquisition */

/* --create / --claim (batch_acquire.c): the sandboxes join the pool while
 * the jobs run, each as soon as it is ready; all of them, also those that
 * come after Ctrl-C, are released at the end. */
typedef struct batch_acq batch_acq;

/* Starts the creates or the claim. 0 with *out, or the exit status,
 * printed; *out may be set either way (release and free it). */
int batch_acq_start_create(cli_ctx *ctx, const char *template_id, int count, int quiet,
                           batch_acq **out);
int batch_acq_start_claim(cli_ctx *ctx, const char *ref, int replicas, int quiet,
                          batch_acq **out);
/* On the scheduler's thread, never waiting: adds the sandboxes that became
 * ready to p (their times to rep), says the failures. 1 while more may
 * come, 0 once the acquisition is over. */
int batch_acq_poll(batch_acq *a, batch_pool *p, batch_report *rep);
/* Ctrl-C: start nothing more. */
void batch_acq_stop(batch_acq *a);
/* Waits for what is still coming, then gives everything back (keep: says
 * what is left). 0 or the exit status, printed. */
int batch_acq_release(batch_acq *a, int keep, int quiet);
void batch_acq_free(batch_acq *a);

/* ------------------------------------------------------------- scheduler */

typedef struct batch_opts {
    const char *jobs_path;
    const char *results_path;
    const char *output_dir;
    int resume, resume_failed;
    int retries;
    int64_t retry_backoff_ms;
    int halt_on_error; /* 0: never */
    int64_t grace_ms;
    int64_t pool_timeout_ms;
    size_t max_output;
    int jobs; /* 0: pool size x per-sandbox */
    uint64_t shard_i, shard_n;
    int progress_mode;
    int quiet;
    int check;
    const char *report_path; /* --report: the summary as JSON */
} batch_opts;

/* Runs the jobs the reader yields (already validated) that belong to the
 * shard and are not in skip, on the pool and what acq (NULL: none) adds to
 * it. Returns the exit status. */
int batch_run(cli_ctx *ctx, const batch_opts *o, batch_pool *pool, batch_reader *rd,
              const batch_idset *skip, uint64_t total, batch_acq *acq);

/* The Indexed Job manifest for --k8s-job. argv: the batch options to pass
 * on (without --k8s-job, --image, --completions, --parallelism). */
int batch_k8s_job(cli_ctx *ctx, const char *jobs_path, const char *image, uint64_t completions,
                  uint64_t parallelism, int argc, char **argv);

#endif
