/* envdctl batch: the scheduler. Every call is a future; its completion
 * callback only queues the job (under a mutex) and wakes the main thread,
 * which advances the job to its next phase (uploads, the command, the
 * downloads), writes its result line, and starts the next jobs. So the
 * engine threads never wait for the scheduler, the results file has one
 * writer, and a million jobs cost one small struct per job in flight. */
#include "batch.h"

#include <envd/envd_code.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define RETRY_MAX_MS 30000

/* A job with stdin starts (PH_START), gets its input (PH_STDIN) and EOF
 * (PH_EOF), then runs to its end on the handle's future (PH_RUN). */
typedef enum phase { PH_UPLOAD, PH_START, PH_STDIN, PH_EOF, PH_RUN, PH_DOWNLOAD } phase;

/* One output stream of a job: to a file (--output-dir) or a capped buffer. */
typedef struct capture {
    cli_buf buf;
    size_t cap;
    int truncated;
    int fd;
} capture;

typedef struct brun brun;
typedef struct sched sched;

struct brun {
    sched *S;
    batch_job job;
    batch_sbx *sb;     /* holds a slot in it while set */
    const char *where; /* the last attempt's sandbox (the pool owns it) */
    batch_sbx *failed_in; /* where the last attempt lost its sandbox */
    int attempts, max_retries;
    phase ph;
    envd_future *f;  /* the phase's future (owned unless it is h's) */
    envd_handle *h;  /* a job with stdin: started, then fed */
    envd_write_batch *wb;
    int *up_fds;
    int dl_fd;
    size_t dl_i;
    int cancel; /* Ctrl-C: stop at the next completion */
    int64_t t_attempt, t_phase, upload_ms, run_ms, download_ms;
    struct timespec wall;
    capture out, err;
    int has_exit, exit_code;
    char *error;
    batch_status status;
    int64_t ready_at; /* a retry waits until then */
    brun *next;       /* the completion queue, or the retry list */
    brun *all_prev, *all_next;
};

struct sched {
    cli_ctx *ctx;
    const batch_opts *o;
    batch_pool *pool;
    batch_reader *rd;
    const batch_idset *skip;
    FILE *results;
    batch_report rep;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    brun *done_head, *done_tail; /* filled by callbacks, drained by main */
    brun *retries;               /* jobs waiting to try again */
    brun *held;                  /* read, waiting for a sandbox */
    brun *all;                   /* every job started and not finished */
    int eof, stopping, killed, halted, write_failed;
    envd_future **kills; /* our own SIGKILLs at cancel, awaited before exit */
    size_t n_kills;
    int64_t grace_deadline;
    int n_active, max_jobs;
    uint64_t bad;
    batch_acq *acq; /* --create / --claim: the pool grows meanwhile */
    int acquiring;  /* more sandboxes may come */
    int starved;    /* the acquisition is over and no sandbox is usable */
};

static volatile sig_atomic_t signals_seen;

static void on_signal(int sig)
{
    (void)sig;
    signals_seen++;
}

/* ------------------------------------------------------------ output */

static void capture_cb(capture *c, const uint8_t *data, size_t len)
{
    if (c->fd >= 0) {
        cli_write_all(c->fd, data, len);
        return;
    }
    size_t room = c->cap > c->buf.len ? c->cap - c->buf.len : 0;
    if (len > room)
        c->truncated = 1;
    if (room)
        cli_buf_append(&c->buf, data, len < room ? len : room);
}

static void on_stdout(void *ud, const uint8_t *data, size_t len)
{
    capture_cb(&((brun *)ud)->out, data, len);
}

static void on_stderr(void *ud, const uint8_t *data, size_t len)
{
    capture_cb(&((brun *)ud)->err, data, len);
}

/* DIR/ID.ext, with the '/' of an ID and a leading '.' made '_' so that an
 * ID names one file inside DIR. */
static char *output_path(const char *dir, const char *id, const char *ext)
{
    char *p = cli_strdupf("%s/%s.%s", dir, id, ext);
    char *name = p ? p + strlen(dir) + 1 : NULL;
    for (size_t i = 0; name && i < strlen(id); i++)
        if (name[i] == '/' || (i == 0 && name[i] == '.'))
            name[i] = '_';
    return p;
}

static int capture_reset(capture *c, size_t cap, const char *dir, const char *id, const char *ext)
{
    c->buf.len = 0;
    c->truncated = 0;
    c->cap = cap;
    if (!dir)
        return 0;
    if (c->fd < 0) {
        char *path = output_path(dir, id, ext);
        c->fd = path ? open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644) : -1;
        free(path);
        return c->fd < 0 ? -1 : 0;
    }
    return ftruncate(c->fd, 0) == 0 && lseek(c->fd, 0, SEEK_SET) == 0 ? 0 : -1;
}

/* -------------------------------------------------------- completions */

static void on_complete(envd_future *f, void *ud)
{
    (void)f;
    brun *r = ud;
    sched *S = r->S;
    pthread_mutex_lock(&S->mu);
    r->next = NULL;
    if (S->done_tail)
        S->done_tail->next = r;
    else
        S->done_head = r;
    S->done_tail = r;
    pthread_cond_signal(&S->cv);
    pthread_mutex_unlock(&S->mu);
}

static void watch(brun *r)
{
    envd_future_on_complete(r->f, on_complete, r);
}

/* --------------------------------------------------------- finishing */

static void set_error(brun *r, char *msg)
{
    free(r->error);
    r->error = msg ? msg : cli_strdupf("out of memory");
}

static void release_slot(brun *r, int transport)
{
    if (r->sb)
        batch_pool_release(r->S->pool, r->sb, transport, cli_now_ms());
    r->sb = NULL;
}

static void unlink_all(sched *S, brun *r)
{
    if (r->all_prev)
        r->all_prev->all_next = r->all_next;
    else if (S->all == r)
        S->all = r->all_next;
    if (r->all_next)
        r->all_next->all_prev = r->all_prev;
    r->all_prev = r->all_next = NULL;
}

static void free_run(brun *r)
{
    if (r->out.fd >= 0)
        close(r->out.fd);
    if (r->err.fd >= 0)
        close(r->err.fd);
    cli_buf_free(&r->out.buf);
    cli_buf_free(&r->err.buf);
    free(r->error);
    batch_job_free(&r->job);
    free(r);
}

/* The job is over: its line in the results, the counts, its slot. */
static void finish(brun *r)
{
    sched *S = r->S;
    release_slot(r, 0);
    unlink_all(S, r);
    S->n_active--;
    int64_t now = cli_now_ms();
    batch_result res = {
        .id = r->job.id,
        .sandbox = r->where,
        .status = r->status,
        .has_exit = r->has_exit,
        .exit_code = r->exit_code,
        .error = r->error,
        .attempts = r->attempts,
        .started_sec = r->wall.tv_sec,
        .started_nsec = (int32_t)r->wall.tv_nsec,
        .duration_ms = r->t_attempt ? now - r->t_attempt : 0,
        .upload_ms = r->upload_ms,
        .run_ms = r->run_ms,
        .download_ms = r->download_ms,
        .out = S->o->output_dir ? NULL : &r->out.buf,
        .err = S->o->output_dir ? NULL : &r->err.buf,
        .out_truncated = r->out.truncated,
        .err_truncated = r->err.truncated,
    };
    if (batch_result_write(S->results, &res) != 0 && !S->write_failed) {
        S->write_failed = 1;
        cli_errorf(S->ctx, "%s: %s", S->o->results_path, strerror(errno));
    }
    batch_report_add(&S->rep, &res);
    if (r->status == BATCH_FAILED || r->status == BATCH_ERROR)
        S->bad++;
    if (S->o->halt_on_error && S->bad >= (uint64_t)S->o->halt_on_error && !S->halted) {
        S->halted = 1;
        cli_errorf(S->ctx, "--halt-on-error %d reached: no new jobs are started",
                   S->o->halt_on_error);
    }
    free_run(r);
}

/* Errors worth another try: the job could not start, or its sandbox went
 * away before the command's end (a connection refused or reset, envd
 * unavailable, a gateway answering 502/503). */
static int is_transport(envd_status st, const envd_error *e)
{
    int http = e ? envd_error_http_status(e) : 0;
    return st == ENVD_E_TRANSPORT || st == ENVD_UNAVAILABLE || http == 502 || http == 503;
}

static void schedule_retry(brun *r)
{
    sched *S = r->S;
    int64_t d = S->o->retry_backoff_ms;
    for (int i = 1; i < r->attempts && d < RETRY_MAX_MS; i++)
        d *= 2;
    if (d > RETRY_MAX_MS)
        d = RETRY_MAX_MS;
    /* Jitter (half to all of the delay) so that jobs that failed together
     * do not come back together. */
    d = d / 2 + (d > 1 ? (int64_t)((uint64_t)rand() % (uint64_t)(d / 2 + 1)) : 0);
    r->ready_at = cli_now_ms() + d;
    r->next = S->retries;
    S->retries = r;
}

/* The phase's call failed: retry, or end the job as error/canceled. */
static void attempt_failed(brun *r, const char *what, envd_status st, const envd_error *e)
{
    sched *S = r->S;
    int transport = is_transport(st, e);
    if (transport)
        r->failed_in = r->sb;
    release_slot(r, transport);
    set_error(r, cli_error_text(what, st, e));
    if (st == ENVD_CANCELED || r->cancel) {
        r->status = BATCH_CANCELED;
        set_error(r, cli_strdupf("canceled (%s)", what));
        finish(r);
        return;
    }
    if (transport && r->attempts <= r->max_retries && !S->stopping) {
        schedule_retry(r);
        return;
    }
    r->status = BATCH_ERROR;
    finish(r);
}

/* ------------------------------------------------------------- phases */

static void next_phase(brun *r);

static void start_failed(brun *r, const char *what, envd_status st)
{
    attempt_failed(r, what, st, NULL);
}

static void upload_done(brun *r);

static void start_upload(brun *r)
{
    const batch_job *j = &r->job;
    r->wb = envd_write_batch_new();
    r->up_fds = calloc(j->n_up, sizeof(int));
    envd_status st = r->wb && r->up_fds ? ENVD_OK : ENVD_E_NOMEM;
    for (size_t i = 0; r->up_fds && i < j->n_up; i++)
        r->up_fds[i] = -1;
    for (size_t i = 0; i < j->n_up && st == ENVD_OK; i++) {
        struct stat sb;
        int fd = open(j->up[i].src, O_RDONLY | O_CLOEXEC);
        r->up_fds[i] = fd;
        if (fd < 0 || fstat(fd, &sb) != 0) {
            char *msg = cli_strdupf("upload %s: %s", j->up[i].src, strerror(errno));
            upload_done(r);
            release_slot(r, 0);
            r->status = BATCH_ERROR;
            set_error(r, msg);
            finish(r);
            return;
        }
        st = envd_write_batch_add_fd(r->wb, j->up[i].dst, fd, (int64_t)sb.st_size);
    }
    envd_files_opts *fo = envd_files_opts_new();
    if (st == ENVD_OK && (!fo || (j->user && envd_files_opts_set_user(fo, j->user) != ENVD_OK)))
        st = ENVD_E_NOMEM;
    if (st == ENVD_OK)
        st = envd_files_write_batch_async(r->sb->client, r->wb, fo, &r->f);
    envd_files_opts_free(fo);
    if (st != ENVD_OK) {
        upload_done(r); /* a retry starts anew */
        start_failed(r, "upload", st);
    } else {
        watch(r);
    }
}

static void upload_done(brun *r)
{
    for (size_t i = 0; r->up_fds && i < r->job.n_up; i++)
        if (r->up_fds[i] >= 0)
            close(r->up_fds[i]);
    free(r->up_fds);
    r->up_fds = NULL;
    envd_write_batch_free(r->wb);
    r->wb = NULL;
}

static envd_cmd_opts *command_opts(brun *r)
{
    const batch_job *j = &r->job;
    envd_cmd_opts *o = envd_cmd_opts_new();
    envd_status st = o ? ENVD_OK : ENVD_E_NOMEM;
    for (char **e = j->env; st == ENVD_OK && e && *e; e += 2)
        st = envd_cmd_opts_set_env(o, e[0], e[1]);
    if (st == ENVD_OK && j->cwd)
        st = envd_cmd_opts_set_cwd(o, j->cwd);
    if (st == ENVD_OK && j->user)
        st = envd_cmd_opts_set_user(o, j->user);
    if (st == ENVD_OK && j->timeout_ms)
        st = envd_cmd_opts_set_timeout_ms(o, j->timeout_ms);
    if (st == ENVD_OK && j->argv)
        st = envd_cmd_opts_set_argv(o, (const char *const *)j->argv);
    if (st == ENVD_OK && j->stdin_data)
        st = envd_cmd_opts_set_stdin(o, 1);
    if (st == ENVD_OK)
        st = envd_cmd_opts_set_max_output(o, 0); /* kept here, capped */
    if (st == ENVD_OK)
        st = envd_cmd_opts_on_stdout(o, on_stdout, r);
    if (st == ENVD_OK)
        st = envd_cmd_opts_on_stderr(o, on_stderr, r);
    if (st != ENVD_OK) {
        envd_cmd_opts_free(o);
        return NULL;
    }
    return o;
}

/* A code job's events (I/O thread), as envdctl code prints them: results
 * as text with stdout, an error's traceback with stderr. */
static int on_code_event(void *ud, const envd_code_event *ev)
{
    brun *r = ud;
    const envd_code_error *e = ev->error;
    if (ev->type == ENVD_CODE_EVENT_STDOUT)
        capture_cb(&r->out, (const uint8_t *)ev->text, ev->text_len);
    else if (ev->type == ENVD_CODE_EVENT_STDERR)
        capture_cb(&r->err, (const uint8_t *)ev->text, ev->text_len);
    else if (ev->type == ENVD_CODE_EVENT_RESULT && ev->result->text) {
        capture_cb(&r->out, (const uint8_t *)ev->result->text, strlen(ev->result->text));
        capture_cb(&r->out, (const uint8_t *)"\n", 1);
    } else if (ev->type == ENVD_CODE_EVENT_ERROR)
        capture_cb(&r->err, (const uint8_t *)e->traceback, strlen(e->traceback));
    return 0;
}

static envd_status start_code(brun *r)
{
    const batch_job *j = &r->job;
    envd_code_opts *o = envd_code_opts_new();
    envd_status st = o ? ENVD_OK : ENVD_E_NOMEM;
    for (char **e = j->env; st == ENVD_OK && e && *e; e += 2)
        st = envd_code_opts_set_env(o, e[0], e[1]);
    if (st == ENVD_OK && j->cwd)
        st = envd_code_opts_set_cwd(o, j->cwd);
    if (st == ENVD_OK && j->language)
        st = envd_code_opts_set_language(o, j->language);
    if (st == ENVD_OK && j->timeout_ms)
        st = envd_code_opts_set_timeout_ms(o, j->timeout_ms);
    if (st == ENVD_OK)
        st = envd_code_opts_set_max_output(o, 0); /* kept here, capped */
    if (st == ENVD_OK)
        st = envd_code_run_async(r->sb->client, j->code, o, on_code_event, r, &r->f);
    envd_code_opts_free(o);
    return st;
}

static void start_command(brun *r)
{
    const batch_opts *bo = r->S->o;
    if (capture_reset(&r->out, bo->max_output, bo->output_dir, r->job.id, "stdout") != 0 ||
        capture_reset(&r->err, bo->max_output, bo->output_dir, r->job.id, "stderr") != 0) {
        release_slot(r, 0);
        r->status = BATCH_ERROR;
        set_error(r, cli_strdupf("--output-dir %s: %s", bo->output_dir, strerror(errno)));
        finish(r);
        return;
    }
    envd_cmd_opts *o = r->job.code ? NULL : command_opts(r);
    envd_status st = ENVD_E_NOMEM;
    const char *cmd = r->job.argv ? NULL : r->job.cmd;
    r->ph = r->job.stdin_data ? PH_START : PH_RUN;
    if (r->job.code)
        st = start_code(r);
    else if (o && r->ph == PH_START)
        st = envd_commands_start_async(r->sb->client, cmd, o, &r->f);
    else if (o)
        st = envd_commands_run_async(r->sb->client, cmd, o, &r->f);
    envd_cmd_opts_free(o);
    if (st != ENVD_OK)
        start_failed(r, "start", st);
    else
        watch(r);
}

/* The handle of a job with stdin, done with: killed when the job did not
 * get to its end (an input that failed, a cancel). */
static void drop_handle(brun *r, int kill)
{
    if (r->h && kill)
        envd_handle_kill(r->h);
    envd_handle_free(r->h); /* it owns its future */
    r->h = NULL;
}

/* A job with stdin, one step further on each completion: take the handle,
 * send the input, send EOF, then wait on the handle's future. */
static void feed_stdin(brun *r, envd_status st, const envd_error *e)
{
    const char *what = r->ph == PH_START ? "start" : "stdin";
    if (r->ph == PH_START && st == ENVD_OK && !(r->h = envd_future_take_handle(r->f)))
        st = ENVD_E_PROTOCOL;
    envd_future_free(r->f);
    r->f = NULL;
    if (st == ENVD_OK && !r->cancel) {
        const envd_proc *pid = ENVD_PID(envd_handle_pid(r->h));
        envd_client *c = r->sb->client;
        if (r->ph == PH_START && r->job.stdin_len)
            st = envd_commands_send_input_async(c, pid, ENVD_INPUT_STDIN, r->job.stdin_data,
                                                r->job.stdin_len, &r->f);
        else if (r->ph != PH_EOF)
            st = envd_commands_close_stdin_async(c, pid, &r->f);
        r->ph = r->f ? (r->ph == PH_START && r->job.stdin_len ? PH_STDIN : PH_EOF) : PH_RUN;
        if (st == ENVD_OK) {
            if (!r->f)
                r->f = envd_handle_future(r->h);
            watch(r);
            return;
        }
    }
    drop_handle(r, 1);
    attempt_failed(r, what, r->cancel ? ENVD_CANCELED : st, e);
}

static char *local_parent_mkdir(const char *path)
{
    char *copy = strdup(path);
    for (char *p = copy ? copy + 1 : NULL; p && *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(copy, 0755) != 0 && errno != EEXIST) {
            char *msg = cli_strdupf("%s: %s", copy, strerror(errno));
            free(copy);
            return msg;
        }
        *p = '/';
    }
    free(copy);
    return NULL;
}

static void start_download(brun *r)
{
    const batch_xfer *x = &r->job.down[r->dl_i];
    char *why = local_parent_mkdir(x->dst);
    r->dl_fd = why ? -1 : open(x->dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (r->dl_fd < 0) {
        if (!why)
            why = cli_strdupf("%s: %s", x->dst, strerror(errno));
        if (!r->error)
            r->error = cli_strdupf("download %s: %s", x->src, why ? why : "out of memory");
        free(why);
        r->dl_i++;
        next_phase(r);
        return;
    }
    envd_files_opts *fo = envd_files_opts_new();
    envd_status st = fo ? envd_files_opts_set_sink_fd(fo, r->dl_fd) : ENVD_E_NOMEM;
    if (st == ENVD_OK && r->job.user)
        st = envd_files_opts_set_user(fo, r->job.user);
    if (st == ENVD_OK)
        st = envd_files_read_async(r->sb->client, x->src, fo, &r->f);
    envd_files_opts_free(fo);
    if (st != ENVD_OK) {
        close(r->dl_fd);
        r->dl_fd = -1;
        if (!r->error)
            r->error = cli_error_text("download", st, NULL);
        r->dl_i++;
        next_phase(r);
        return;
    }
    watch(r);
}

/* After the command: the downloads in turn, then the end. */
static void next_phase(brun *r)
{
    int64_t now = cli_now_ms();
    if (r->dl_i < r->job.n_down && !r->cancel) {
        r->ph = PH_DOWNLOAD;
        start_download(r);
        return;
    }
    r->download_ms = r->job.n_down ? now - r->t_phase : 0;
    if (r->error && r->status == BATCH_OK)
        r->status = BATCH_ERROR; /* ran, but a download failed */
    finish(r);
}

/* A code job's end: ran, and failed when the code raised (no exit code). */
static int code_outcome(brun *r)
{
    const envd_code_execution *x = envd_future_code_execution(r->f);
    if (!x)
        return 0;
    r->status = x->error ? BATCH_FAILED : BATCH_OK;
    if (x->error)
        set_error(r, cli_strdupf("%s: %s", x->error->name, x->error->value));
    return 1;
}

static void command_done(brun *r, envd_status st)
{
    const envd_command_result *res = r->job.code ? NULL : envd_future_command_result(r->f);
    int64_t now = cli_now_ms();
    r->run_ms = now - r->t_phase;
    if ((r->job.code && code_outcome(r)) ||
        ((st == ENVD_OK || st == ENVD_E_COMMAND_EXIT) && res)) {
        if (res) {
            r->has_exit = 1;
            r->exit_code = res->exit_code;
            r->status = res->exit_code == 0 && st == ENVD_OK ? BATCH_OK : BATCH_FAILED;
        }
        if (res && r->status == BATCH_FAILED)
            set_error(r, cli_error_text(NULL, st, envd_future_error(r->f)));
        if (r->cancel)
            r->status = BATCH_CANCELED;
        r->t_phase = now;
        if (r->h)
            drop_handle(r, 0);
        else
            envd_future_free(r->f);
        r->f = NULL;
        next_phase(r);
        return;
    }
    envd_error *e = envd_future_take_error(r->f);
    if (r->h)
        drop_handle(r, 0);
    else
        envd_future_free(r->f);
    r->f = NULL;
    attempt_failed(r, "command", st, e);
    envd_error_free(e);
}

/* One completion, on the main thread. */
static void advance(brun *r)
{
    envd_status st = envd_future_status(r->f);
    int64_t now = cli_now_ms();
    if (r->ph == PH_RUN) {
        command_done(r, st);
        return;
    }
    envd_error *e = envd_future_take_error(r->f);
    if (r->ph == PH_START || r->ph == PH_STDIN || r->ph == PH_EOF) {
        feed_stdin(r, st, e);
    } else if (r->ph == PH_DOWNLOAD) {
        close(r->dl_fd);
        r->dl_fd = -1;
        if (st != ENVD_OK && !r->error)
            r->error = cli_error_text("download", st, e);
        envd_future_free(r->f);
        r->f = NULL;
        r->dl_i++;
        next_phase(r);
    } else if (r->ph == PH_UPLOAD && st == ENVD_OK && !r->cancel) {
        upload_done(r);
        envd_future_free(r->f);
        r->f = NULL;
        r->upload_ms = now - r->t_phase;
        r->t_phase = now;
        start_command(r);
    } else {
        if (r->ph == PH_UPLOAD)
            upload_done(r);
        envd_future_free(r->f);
        r->f = NULL;
        attempt_failed(r, "upload", r->cancel ? ENVD_CANCELED : st, e);
    }
    envd_error_free(e);
}

static void start_attempt(brun *r, batch_sbx *sb)
{
    r->sb = sb;
    r->where = sb->label;
    sb->running++;
    r->attempts++;
    r->t_attempt = r->t_phase = cli_now_ms();
    clock_gettime(CLOCK_REALTIME, &r->wall);
    r->upload_ms = r->run_ms = r->download_ms = 0;
    r->has_exit = 0;
    r->status = BATCH_OK;
    free(r->error);
    r->error = NULL;
    r->dl_i = 0;
    r->ph = PH_UPLOAD;
    if (r->job.n_up)
        start_upload(r);
    else
        start_command(r);
}

/* ---------------------------------------------------------- main loop */

/* The next job of the file for this run (shard, not finished before). */
static brun *read_next(sched *S)
{
    while (!S->eof) {
        batch_job j;
        char *err = NULL;
        int rc = batch_reader_next(S->rd, &j, &err);
        if (rc < 0) { /* validated already: only an I/O error gets here */
            cli_errorf(S->ctx, "%s", err ? err : "cannot read the jobs");
            free(err);
            S->eof = 1;
            break;
        }
        if (rc == 0) {
            S->eof = 1;
            break;
        }
        if (j.index % S->o->shard_n != S->o->shard_i || batch_idset_has(S->skip, j.id)) {
            batch_job_free(&j);
            continue;
        }
        brun *r = calloc(1, sizeof(*r));
        if (!r) {
            batch_job_free(&j);
            S->eof = 1;
            cli_errorf(S->ctx, "out of memory");
            break;
        }
        r->S = S;
        r->job = j;
        r->out.fd = r->err.fd = r->dl_fd = -1;
        r->max_retries = j.retries >= 0 ? j.retries : S->o->retries;
        return r;
    }
    return NULL;
}

/* A job that will not get a sandbox: every one is gone for good, or has
 * been unreachable for longer than --pool-timeout. */
static void fail_unplaced(sched *S, brun *r, const char *why)
{
    r->status = BATCH_ERROR;
    if (!r->error || !r->attempts)
        set_error(r, cli_strdupf("%s", why));
    if (!r->all_prev && S->all != r) {
        r->all_next = S->all;
        if (S->all)
            S->all->all_prev = r;
        S->all = r;
        S->n_active++;
    }
    finish(r);
}

/* Takes the next job to place: a retry that is due, else the held one,
 * else a new one. *link: where a retry sits in the list (NULL: new). */
static brun *next_candidate(sched *S, int64_t now, brun ***link)
{
    for (brun **p = &S->retries; *p; p = &(*p)->next)
        if ((*p)->ready_at <= now) {
            *link = p;
            return *p;
        }
    *link = NULL;
    if (S->stopping || S->halted || S->starved)
        return NULL;
    if (!S->held)
        S->held = read_next(S);
    return S->held;
}

static int64_t start_jobs(sched *S, int64_t now)
{
    int64_t wait = 100;
    for (;;) {
        brun **link;
        brun *r = next_candidate(S, now, &link);
        if (!r)
            break;
        int is_new = !link;
        if (is_new && S->n_active >= S->max_jobs)
            break;
        int64_t w;
        batch_sbx *sb = batch_pool_pick(S->pool, r->job.sandbox, r->failed_in, now, &w);
        if (!sb && S->acquiring && !r->job.sandbox && (w < 0 || !batch_pool_usable(S->pool))) {
            wait = 25; /* the pool is still being acquired */
            break;
        }
        if (!sb) {
            const char *why = NULL;
            if (w < 0)
                why = r->job.sandbox ? "the job's sandbox cannot be opened"
                                     : "no sandbox of the pool can be used";
            else if (now - S->pool->last_ok > S->o->pool_timeout_ms)
                why = "every sandbox of the pool has been unreachable for --pool-timeout";
            if (!why) {
                if (w < wait)
                    wait = w;
                break;
            }
            if (link)
                *link = r->next;
            else
                S->held = NULL;
            fail_unplaced(S, r, why);
            continue;
        }
        if (link) {
            *link = r->next;
        } else {
            S->held = NULL;
            S->n_active++;
            r->all_next = S->all;
            if (S->all)
                S->all->all_prev = r;
            S->all = r;
        }
        start_attempt(r, sb);
    }
    return wait;
}

/* Ctrl-C: the first stops new jobs and starts the grace period, the second
 * (or the end of the grace) cancels what runs. Jobs waiting for a retry
 * are canceled at once: they are not running. */
static void cancel_running(sched *S)
{
    S->killed = 1;
    size_t n = 0;
    for (brun *r = S->all; r; r = r->all_next)
        n++;
    S->kills = calloc(n ? n : 1, sizeof(*S->kills));
    for (brun *r = S->all; r; r = r->all_next) {
        r->cancel = 1;
        /* The library kills a cancelled run too, but fire-and-forget: a
         * process exiting right after could drop that call with its
         * runtime. Our own kill is awaited before envdctl exits. */
        uint32_t pid = r->h                       ? envd_handle_pid(r->h)
                       : r->f && r->ph == PH_RUN ? envd_future_pid(r->f)
                                                 : 0;
        if (pid && S->kills && r->sb &&
            envd_commands_signal_async(r->sb->client, ENVD_PID(pid), ENVD_SIGNAL_SIGKILL,
                                       &S->kills[S->n_kills]) == ENVD_OK)
            S->n_kills++;
        if (r->h && r->ph == PH_RUN)
            envd_future_cancel(envd_handle_future(r->h));
        else if (r->f)
            envd_future_cancel(r->f);
    }
}

static void check_signals(sched *S, int64_t now)
{
    int seen = signals_seen;
    if (seen >= 1 && !S->stopping) {
        S->stopping = 1;
        if (S->acq)
            batch_acq_stop(S->acq); /* what still comes is only released */
        S->grace_deadline = now + S->o->grace_ms;
        if (S->rep.mode)
            fputs(S->rep.drawn ? "\n" : "", stderr);
        cli_errorf(S->ctx, "interrupted: no new jobs; running ones have %lld ms, Ctrl-C again "
                           "cancels them",
                   (long long)S->o->grace_ms);
        while (S->retries) {
            brun *r = S->retries;
            S->retries = r->next;
            r->status = BATCH_CANCELED;
            set_error(r, cli_strdupf("canceled while waiting to retry"));
            finish(r);
        }
    }
    if (S->stopping && !S->killed && (seen >= 2 || now >= S->grace_deadline))
        cancel_running(S);
}

static void drain(sched *S)
{
    pthread_mutex_lock(&S->mu);
    brun *list = S->done_head;
    S->done_head = S->done_tail = NULL;
    pthread_mutex_unlock(&S->mu);
    while (list) {
        brun *r = list;
        list = r->next;
        r->next = NULL;
        advance(r);
    }
}

static void wait_for_work(sched *S, int64_t ms)
{
    if (ms < 1)
        ms = 1;
    if (ms > 100)
        ms = 100; /* signals and the progress line are polled */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&S->mu);
    if (!S->done_head)
        pthread_cond_timedwait(&S->cv, &S->mu, &ts);
    pthread_mutex_unlock(&S->mu);
}

static int64_t next_retry_in(const sched *S, int64_t now, int64_t wait)
{
    for (const brun *r = S->retries; r; r = r->next)
        if (r->ready_at - now < wait)
            wait = r->ready_at - now;
    return wait;
}

/* New sandboxes from --create / --claim join the pool (and widen the
 * default --jobs); an acquisition over without any leaves nothing to run
 * on. */
static void acquire_more(sched *S)
{
    if (!S->acquiring)
        return;
    S->acquiring = batch_acq_poll(S->acq, S->pool, &S->rep);
    size_t usable = batch_pool_usable(S->pool);
    if (!S->o->jobs && usable * (size_t)S->pool->per_sandbox > (size_t)S->max_jobs)
        S->max_jobs = (int)(usable * (size_t)S->pool->per_sandbox);
    if (!S->acquiring && !usable && !S->stopping)
        S->starved = 1;
}

static void loop(sched *S)
{
    for (;;) {
        int64_t now = cli_now_ms();
        check_signals(S, now);
        acquire_more(S);
        drain(S);
        if ((S->stopping || S->halted || S->starved) && S->held) {
            free_run(S->held); /* never started: --resume runs it */
            S->held = NULL;
        }
        int64_t wait = start_jobs(S, now);
        if (S->n_active == 0 && !S->held && (S->eof || S->stopping || S->halted || S->starved))
            break;
        batch_report_tick(&S->rep, 0);
        if (S->acquiring && wait > 25)
            wait = 25; /* sandboxes that become ready join soon */
        wait_for_work(S, next_retry_in(S, now, wait));
    }
}

static FILE *open_results(const batch_opts *o)
{
    if (strcmp(o->results_path, "-") == 0)
        return stdout;
    return fopen(o->results_path, o->resume || o->resume_failed ? "a" : "w");
}

int batch_run(cli_ctx *ctx, const batch_opts *o, batch_pool *pool, batch_reader *rd,
              const batch_idset *skip, uint64_t total, batch_acq *acq)
{
    sched S;
    memset(&S, 0, sizeof(S));
    S.ctx = ctx;
    S.o = o;
    S.pool = pool;
    S.rd = rd;
    S.skip = skip;
    S.acq = acq;
    S.acquiring = acq != NULL;
    S.max_jobs = o->jobs ? o->jobs : (int)(batch_pool_usable(pool) * (size_t)pool->per_sandbox);
    if (S.max_jobs < 1)
        S.max_jobs = 1;
    if (o->output_dir && mkdir(o->output_dir, 0755) != 0 && errno != EEXIST)
        return cli_errorf(ctx, "--output-dir %s: %s", o->output_dir, strerror(errno));
    if (!(S.results = open_results(o)))
        return cli_errorf(ctx, "--results %s: %s", o->results_path, strerror(errno));
    pthread_mutex_init(&S.mu, NULL);
    pthread_cond_init(&S.cv, NULL);
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    if (cli_interrupted) /* while the acquisition started */
        signals_seen = 1;
    srand((unsigned)(time(NULL) ^ getpid()));
    batch_report_init(&S.rep, o->progress_mode, total);
    loop(&S);
    if (S.n_kills)
        envd_future_wait_all(S.kills, S.n_kills, 5000);
    for (size_t i = 0; i < S.n_kills; i++)
        envd_future_free(S.kills[i]);
    free(S.kills);
    batch_report_tick(&S.rep, 1);
    if (!o->quiet)
        batch_report_summary(&S.rep);
    if (o->report_path && batch_report_json(&S.rep, o->report_path) != 0)
        S.write_failed = cli_errorf(ctx, "--report %s: %s", o->report_path, strerror(errno)) != 0;
    int rc = S.rep.counts[BATCH_OK] == total && !S.write_failed ? CLI_EXIT_OK : CLI_EXIT_FAIL;
    if (S.results != stdout)
        fclose(S.results);
    else
        fflush(stdout);
    batch_report_free(&S.rep);
    pthread_cond_destroy(&S.cv);
    pthread_mutex_destroy(&S.mu);
    return rc;
}
