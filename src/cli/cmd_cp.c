/* envdctl cp: files and directory trees between local paths and a sandbox
 * (":PATH" or "SANDBOX:PATH"). Uploads go as multi-file write batches (one
 * request for many small files), downloads as several concurrent reads
 * streamed to their files; neither holds file contents in memory. A
 * progress bar is drawn by the main thread while it waits, never by the
 * engine's threads. */
#include "envdctl.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Uploads: files and bytes per write request (a bigger file goes alone),
 * and requests at once; their product bounds the open descriptors. */
#define BATCH_FILES 128
#define BATCH_BYTES (32LL * 1024 * 1024)
#define UPLOADS_IN_FLIGHT 4
/* Downloads: one file per read, this many at once. */
#define READS_IN_FLIGHT 8
#define SLOTS_MAX 8

static const char cp_usage[] =
    "usage: envdctl cp [--gzip] [-q] SRC... DST\n"
    "Copies between local paths and sandbox paths, written :PATH (the --sandbox one)\n"
    "or SANDBOX:PATH. Directories are copied recursively. Either every SRC is local and\n"
    "DST is in a sandbox, or every SRC is in one sandbox and DST is local. With several\n"
    "SRCs, or a DST that is an existing directory or ends in '/', each SRC goes into DST.\n"
    "A local SRC '-' is standard input; a local DST '-' is standard output.\n"
    "  --gzip        compress on the wire (envd >= 0.5.3)\n"
    "  -q, --quiet   no progress bar (drawn on stderr when it is a terminal)\n"
    "  -r, -R        accepted for habit; directories are always recursive\n";

/* One file to move, and the directories to make (empty ones for uploads,
 * all of them for downloads). */
typedef struct cp_file {
    char *local;
    char *remote;
    int64_t size;
    uint32_t mode;
} cp_file;

typedef struct cp_plan {
    cp_file *files;
    size_t n, cap;
    char **dirs;
    size_t ndirs, dcap;
    int64_t total;
} cp_plan;

typedef struct cp_job {
    cli_ctx *ctx;
    envd_client *c;
    char *sandbox;
    int gzip;
    int bar;
    cp_plan plan;
    /* progress: bytes of finished requests, plus what the running ones
     * report through their slots */
    int64_t done_bytes;
    size_t done_files;
    int64_t started_ms, drawn_ms;
    int errors;
} cp_job;

/* ------------------------------------------------------------------ plan */

static int plan_file(cp_plan *p, const char *local, const char *remote, int64_t size,
                     uint32_t mode)
{
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 64;
        cp_file *f = realloc(p->files, cap * sizeof(*f));
        if (!f)
            return -1;
        p->files = f;
        p->cap = cap;
    }
    cp_file *f = &p->files[p->n];
    f->local = strdup(local);
    f->remote = strdup(remote);
    f->size = size;
    f->mode = mode;
    if (!f->local || !f->remote) {
        free(f->local);
        free(f->remote);
        return -1;
    }
    p->n++;
    p->total += size > 0 ? size : 0;
    return 0;
}

static int plan_dir(cp_plan *p, const char *dir)
{
    if (p->ndirs == p->dcap) {
        size_t cap = p->dcap ? p->dcap * 2 : 16;
        char **d = realloc(p->dirs, cap * sizeof(*d));
        if (!d)
            return -1;
        p->dirs = d;
        p->dcap = cap;
    }
    if (!(p->dirs[p->ndirs] = strdup(dir)))
        return -1;
    p->ndirs++;
    return 0;
}

static void plan_free(cp_plan *p)
{
    for (size_t i = 0; i < p->n; i++) {
        free(p->files[i].local);
        free(p->files[i].remote);
    }
    for (size_t i = 0; i < p->ndirs; i++)
        free(p->dirs[i]);
    free(p->files);
    free(p->dirs);
    memset(p, 0, sizeof(*p));
}

/* "a/b/" -> "b": the last component, trailing slashes ignored. */
static char *base_name(const char *path)
{
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/')
        n--;
    size_t s = n;
    while (s > 0 && path[s - 1] != '/')
        s--;
    return strndup(path + s, n - s);
}

static char *join(const char *dir, const char *name)
{
    size_t n = strlen(dir);
    int slash = n > 0 && dir[n - 1] == '/';
    return cli_strdupf("%s%s%s", dir, slash || n == 0 ? "" : "/", name);
}

static int ends_with_slash(const char *s)
{
    size_t n = strlen(s);
    return n > 0 && s[n - 1] == '/';
}

/* -------------------------------------------------------------- progress */

static void human(double bytes, char *buf, size_t cap)
{
    const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (bytes >= 1024 && u < 4) {
        bytes /= 1024;
        u++;
    }
    snprintf(buf, cap, u ? "%.1f %s" : "%.0f %s", bytes, units[u]);
}

/* Redraws the bar (at most 10 times a second unless final). running: bytes
 * the requests in flight reported so far. */
static void draw(cp_job *j, int64_t running, int final)
{
    if (!j->bar)
        return;
    int64_t now = cli_now_ms();
    if (!final && now - j->drawn_ms < 100)
        return;
    j->drawn_ms = now;
    int64_t done = j->done_bytes + running, total = j->plan.total;
    double frac = total > 0 ? (double)done / (double)total : (j->plan.n ? 1.0 : 0.0);
    if (frac > 1)
        frac = 1;
    char bar[31], d[32], t[32], r[32];
    int fill = (int)(frac * 30);
    for (int i = 0; i < 30; i++)
        bar[i] = i < fill ? '=' : (i == fill ? '>' : ' ');
    bar[30] = '\0';
    double secs = (double)(now - j->started_ms) / 1000.0;
    human((double)done, d, sizeof(d));
    human((double)total, t, sizeof(t));
    human(secs > 0 ? (double)done / secs : 0, r, sizeof(r));
    fprintf(stderr, "\r\033[K[%s] %3d%%  %s / %s  %s/s  %zu/%zu files", bar, (int)(frac * 100), d,
            t, r, j->done_files, j->plan.n);
    if (final)
        fputc('\n', stderr);
    fflush(stderr);
}

/* One request's progress, written by the I/O thread, read by the main one. */
typedef struct slot_progress {
    _Atomic int64_t done;
} slot_progress;

static void on_progress(void *ud, int64_t done, int64_t total)
{
    (void)total;
    slot_progress *s = ud;
    s->done = done;
}

/* --------------------------------------------------------------- uploads */

/* Adds the tree under local directory `dir` as files below `remote`; an
 * empty directory is kept as a directory to make. Symbolic links are
 * followed to files; a link to a directory is skipped (it could loop). */
static int walk_local(cp_job *j, const char *dir, const char *remote)
{
    DIR *d = opendir(dir);
    if (!d)
        return cli_errorf(j->ctx, "%s: %s", dir, strerror(errno));
    int rc = 0, any = 0;
    struct dirent *de;
    while (rc == 0 && (de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        char *lp = join(dir, de->d_name), *rp = join(remote, de->d_name);
        struct stat st, lst;
        if (!lp || !rp)
            rc = cli_errorf(j->ctx, "out of memory");
        else if (lstat(lp, &lst) != 0 || stat(lp, &st) != 0)
            rc = cli_errorf(j->ctx, "%s: %s", lp, strerror(errno));
        else if (S_ISDIR(st.st_mode) && S_ISLNK(lst.st_mode))
            fprintf(stderr, "envdctl: cp: %s: skipping a link to a directory\n", lp);
        else if (S_ISDIR(st.st_mode))
            rc = walk_local(j, lp, rp);
        else if (S_ISREG(st.st_mode) && plan_file(&j->plan, lp, rp, st.st_size, 0))
            rc = cli_errorf(j->ctx, "out of memory");
        else if (!S_ISREG(st.st_mode))
            fprintf(stderr, "envdctl: cp: %s: skipping, not a regular file\n", lp);
        any = 1;
        free(lp);
        free(rp);
    }
    closedir(d);
    if (rc == 0 && !any && plan_dir(&j->plan, remote))
        rc = cli_errorf(j->ctx, "out of memory");
    return rc;
}

/* Where each local SRC goes in the sandbox, by cp's rules. */
static int plan_upload(cp_job *j, char **srcs, int nsrc, const char *dst)
{
    envd_entry_info *e = NULL;
    envd_error *err = NULL;
    envd_status st = envd_fs_get_info(j->c, dst, &e, &err);
    if (st != ENVD_OK && st != ENVD_NOT_FOUND)
        return cli_fail(j->ctx, dst, st, err);
    envd_error_free(err);
    int exists = st == ENVD_OK, is_dir = exists && e->type == ENVD_FILE_TYPE_DIRECTORY;
    envd_entry_info_free(e);
    if (nsrc > 1 && exists && !is_dir)
        return cli_usage_error(j->ctx, "%s: not a directory (several SRCs)", dst);
    int into = is_dir || nsrc > 1 || ends_with_slash(dst);
    int rc = 0;
    for (int i = 0; i < nsrc && rc == 0; i++) {
        struct stat sb;
        int is_stdin = strcmp(srcs[i], "-") == 0;
        if (is_stdin && (into || nsrc > 1))
            return cli_usage_error(j->ctx, "'-' (standard input) needs a file DST");
        if (!is_stdin && stat(srcs[i], &sb) != 0)
            return cli_errorf(j->ctx, "%s: %s", srcs[i], strerror(errno));
        char *base = base_name(srcs[i]);
        char *target = into ? join(dst, base ? base : "") : strdup(dst);
        if (!base || !target)
            rc = cli_errorf(j->ctx, "out of memory");
        else if (is_stdin)
            rc = plan_file(&j->plan, "-", target, -1, 0) ? cli_errorf(j->ctx, "out of memory") : 0;
        else if (S_ISDIR(sb.st_mode))
            rc = walk_local(j, srcs[i], target);
        else if (plan_file(&j->plan, srcs[i], target, sb.st_size, 0))
            rc = cli_errorf(j->ctx, "out of memory");
        free(base);
        free(target);
    }
    return rc;
}

/* ------------------------------------------------------------- downloads */

/* Adds a remote directory's tree (one ListDir of the whole depth) below
 * local `target`. */
static int plan_remote_tree(cp_job *j, const envd_entry_info *top, const char *target)
{
    envd_entry_list *l = NULL;
    envd_error *err = NULL;
    envd_status st = envd_fs_list(j->c, top->path, UINT32_MAX, &l, &err);
    if (st != ENVD_OK)
        return cli_fail(j->ctx, top->path, st, err);
    int rc = plan_dir(&j->plan, target) ? cli_errorf(j->ctx, "out of memory") : 0;
    size_t pl = strlen(top->path);
    for (size_t i = 0; i < l->count && rc == 0; i++) {
        const envd_entry_info *e = &l->items[i];
        const char *rel = e->path + pl;
        while (*rel == '/')
            rel++;
        if (strncmp(e->path, top->path, pl) != 0 || !*rel)
            continue; /* not below top: envd would not send it */
        char *lp = join(target, rel);
        if (!lp)
            rc = cli_errorf(j->ctx, "out of memory");
        else if (e->type == ENVD_FILE_TYPE_DIRECTORY && e->symlink_target)
            fprintf(stderr, "envdctl: cp: %s: skipping a link to a directory\n", e->path);
        else if (e->type == ENVD_FILE_TYPE_DIRECTORY && plan_dir(&j->plan, lp))
            rc = cli_errorf(j->ctx, "out of memory");
        else if (e->type == ENVD_FILE_TYPE_FILE &&
                 plan_file(&j->plan, lp, e->path, e->size, e->mode))
            rc = cli_errorf(j->ctx, "out of memory");
        free(lp);
    }
    envd_entry_list_free(l);
    return rc;
}

/* Where each sandbox SRC goes locally, by cp's rules. */
static int plan_download(cp_job *j, const char **srcs, int nsrc, const char *dst)
{
    struct stat sb;
    int to_stdout = strcmp(dst, "-") == 0;
    int exists = !to_stdout && stat(dst, &sb) == 0, is_dir = exists && S_ISDIR(sb.st_mode);
    if (nsrc > 1 && exists && !is_dir)
        return cli_usage_error(j->ctx, "%s: not a directory (several SRCs)", dst);
    int into = is_dir || nsrc > 1 || ends_with_slash(dst);
    if (to_stdout && nsrc > 1)
        return cli_usage_error(j->ctx, "'-' (standard output) takes one SRC");
    if (into && !exists && plan_dir(&j->plan, dst))
        return cli_errorf(j->ctx, "out of memory");
    int rc = 0;
    for (int i = 0; i < nsrc && rc == 0; i++) {
        envd_entry_info *e = NULL;
        envd_error *err = NULL;
        envd_status st = envd_fs_get_info(j->c, srcs[i], &e, &err);
        if (st != ENVD_OK)
            return cli_fail(j->ctx, srcs[i], st, err);
        char *base = base_name(e->path);
        char *target = into ? join(dst, base ? base : "") : strdup(dst);
        if (!base || !target)
            rc = cli_errorf(j->ctx, "out of memory");
        else if (e->type == ENVD_FILE_TYPE_DIRECTORY && to_stdout)
            rc = cli_usage_error(j->ctx, "%s: a directory cannot go to standard output", srcs[i]);
        else if (e->type == ENVD_FILE_TYPE_DIRECTORY)
            rc = plan_remote_tree(j, e, target);
        else if (plan_file(&j->plan, target, e->path, e->size, e->mode))
            rc = cli_errorf(j->ctx, "out of memory");
        free(base);
        free(target);
        envd_entry_info_free(e);
    }
    return rc;
}

/* ------------------------------------------------------------- transfers */

/* One request in flight: files [from, to) of the plan (a write batch, or
 * one read), their descriptors, its future and its progress. */
typedef struct xfer_slot {
    envd_future *f;
    envd_files_opts *o;
    envd_write_batch *b;
    slot_progress sp;
    int fds[BATCH_FILES];
    size_t from, to;
} xfer_slot;

static void slot_release(xfer_slot *s)
{
    for (size_t i = s->from; i < s->to; i++)
        if (s->fds[i - s->from] >= 0)
            close(s->fds[i - s->from]);
    envd_future_free(s->f);
    envd_write_batch_free(s->b);
    s->f = NULL;
    s->b = NULL;
    s->from = s->to = 0;
}

/* Options for the slot's next request: gzip, its progress, a read's sink. */
static int slot_opts(cp_job *j, xfer_slot *s, int sink_fd)
{
    s->sp.done = 0;
    if (!s->o && !(s->o = envd_files_opts_new()))
        return cli_errorf(j->ctx, "out of memory");
    if (envd_files_opts_set_gzip(s->o, j->gzip) ||
        envd_files_opts_on_progress(s->o, on_progress, &s->sp) ||
        (sink_fd >= 0 && envd_files_opts_set_sink_fd(s->o, sink_fd)))
        return cli_errorf(j->ctx, "out of memory");
    return 0;
}

/* Starts the write of the next files: up to BATCH_FILES and BATCH_BYTES
 * (a bigger file alone) in one multipart request. */
static int upload_start(cp_job *j, xfer_slot *s, size_t *next)
{
    int64_t bytes = 0;
    s->from = s->to = *next;
    while (s->to < j->plan.n && s->to - s->from < BATCH_FILES &&
           (s->to == s->from || bytes + j->plan.files[s->to].size <= BATCH_BYTES))
        bytes += j->plan.files[s->to++].size;
    *next = s->to;
    for (size_t i = s->from; i < s->to; i++)
        s->fds[i - s->from] = -1;
    if (!(s->b = envd_write_batch_new()))
        return cli_errorf(j->ctx, "out of memory");
    for (size_t i = s->from; i < s->to; i++) {
        cp_file *f = &j->plan.files[i];
        int fd = strcmp(f->local, "-") == 0 ? dup(STDIN_FILENO)
                                            : open(f->local, O_RDONLY | O_CLOEXEC);
        if ((s->fds[i - s->from] = fd) < 0)
            return cli_errorf(j->ctx, "%s: %s", f->local, strerror(errno));
        if (envd_write_batch_add_fd(s->b, f->remote, fd, f->size) != ENVD_OK)
            return cli_usage_error(j->ctx, "%s: not a usable sandbox path", f->remote);
    }
    int rc = slot_opts(j, s, -1);
    envd_status st = rc ? ENVD_OK : envd_files_write_batch_async(j->c, s->b, s->o, &s->f);
    return rc ? rc : st == ENVD_OK ? 0 : cli_fail(j->ctx, j->plan.files[s->from].remote, st, NULL);
}

/* Starts the read of the next file into its local file. */
static int download_start(cp_job *j, xfer_slot *s, size_t *next)
{
    cp_file *f = &j->plan.files[*next];
    s->from = (*next)++;
    s->to = s->from + 1;
    mode_t mode = f->mode ? (mode_t)(f->mode & 0777) : 0644;
    s->fds[0] = strcmp(f->local, "-") == 0
                    ? dup(STDOUT_FILENO)
                    : open(f->local, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (s->fds[0] < 0)
        return cli_errorf(j->ctx, "%s: %s", f->local, strerror(errno));
    int rc = slot_opts(j, s, s->fds[0]);
    envd_status st = rc ? ENVD_OK : envd_files_read_async(j->c, f->remote, s->o, &s->f);
    return rc ? rc : st == ENVD_OK ? 0 : cli_fail(j->ctx, f->remote, st, NULL);
}

/* A finished request: its outcome, the counters, the slot made free. */
static int slot_finish(cp_job *j, xfer_slot *s, int up)
{
    envd_error *err = NULL;
    envd_status st = envd_future_get(s->f, 0, &err);
    const cp_file *first = &j->plan.files[s->from];
    int rc = 0;
    if (st != ENVD_OK)
        rc = cli_fail(j->ctx, first->remote, st, err);
    else if (!up && s->fds[0] >= 0 && close(s->fds[0]) != 0)
        rc = cli_errorf(j->ctx, "%s: %s", first->local, strerror(errno));
    if (!up)
        s->fds[0] = -1; /* closed above, whatever close said */
    if (rc == 0) {
        j->done_files += s->to - s->from;
        j->done_bytes += envd_future_transferred(s->f);
    }
    slot_release(s);
    return rc;
}

typedef int (*slot_start_fn)(cp_job *j, xfer_slot *s, size_t *next);

/* Keeps up to `width` requests in flight until the plan is done, drawing
 * the bar while it waits; a failed request does not stop the others. */
static int run_slots(cp_job *j, xfer_slot *slots, size_t width, slot_start_fn start, int up)
{
    size_t next = 0, running = 0;
    int rc = 0;
    while (next < j->plan.n || running) {
        for (size_t k = 0; k < width && next < j->plan.n && !cli_interrupted; k++) {
            if (slots[k].f)
                continue;
            int r = start(j, &slots[k], &next);
            if (r == 0) {
                running++;
                continue;
            }
            slot_release(&slots[k]);
            rc = rc ? rc : r;
        }
        if (!running)
            break;
        envd_future *fs[SLOTS_MAX];
        size_t idx[SLOTS_MAX], n = 0, which;
        int64_t in_flight = 0;
        for (size_t k = 0; k < width; k++)
            if (slots[k].f) {
                idx[n] = k;
                fs[n++] = slots[k].f;
                in_flight += slots[k].sp.done;
            }
        draw(j, in_flight, 0);
        if (cli_interrupted)
            for (size_t k = 0; k < n; k++)
                envd_future_cancel(fs[k]);
        if (envd_future_wait_any(fs, n, 100, &which) != ENVD_OK)
            continue;
        int r = slot_finish(j, &slots[idx[which]], up);
        running--;
        rc = rc ? rc : r;
    }
    return rc;
}

/* Directories first, then the files: uploads as UPLOADS_IN_FLIGHT write
 * batches at once, downloads as READS_IN_FLIGHT reads. */
static int run_transfers(cp_job *j, int up)
{
    for (size_t i = 0; i < j->plan.ndirs; i++) {
        envd_error *err = NULL;
        envd_status st = up ? envd_fs_make_dir(j->c, j->plan.dirs[i], NULL, &err) : ENVD_OK;
        if (st != ENVD_OK)
            return cli_fail(j->ctx, j->plan.dirs[i], st, err);
        if (!up && mkdir(j->plan.dirs[i], 0755) != 0 && errno != EEXIST)
            return cli_errorf(j->ctx, "%s: %s", j->plan.dirs[i], strerror(errno));
    }
    xfer_slot *slots = calloc(SLOTS_MAX, sizeof(*slots));
    if (!slots)
        return cli_errorf(j->ctx, "out of memory");
    fflush(stdout);
    int rc = run_slots(j, slots, up ? UPLOADS_IN_FLIGHT : READS_IN_FLIGHT,
                       up ? upload_start : download_start, up);
    for (size_t k = 0; k < SLOTS_MAX; k++)
        envd_files_opts_free(slots[k].o);
    free(slots);
    return rc;
}

/* ------------------------------------------------------------- the command */

/* Splits the arguments into sides: *up = 1 for local -> sandbox, 0 for
 * sandbox -> local; every sandbox path names the same sandbox (*sandbox).
 * Sandbox paths are rewritten in place to their path part. */
static int classify(cp_job *j, char **args, int n, int *up)
{
    int remote_dst = 0, remote_src = 0, local_src = 0;
    for (int i = 0; i < n; i++) {
        char *sb = NULL;
        const char *path = NULL;
        int r = cli_split_remote(args[i], &sb, &path);
        if (r < 0)
            return cli_errorf(j->ctx, "out of memory");
        if (r == 1 && !*path) {
            free(sb);
            return cli_usage_error(j->ctx, "'%s': empty sandbox path", args[i]);
        }
        if (r == 1 && ((sb == NULL) != (j->sandbox == NULL) || (sb && strcmp(sb, j->sandbox)))) {
            if (remote_src || remote_dst) {
                free(sb);
                return cli_usage_error(j->ctx, "every sandbox path must name the same sandbox");
            }
            free(j->sandbox);
            j->sandbox = sb;
            sb = NULL;
        }
        free(sb);
        if (i == n - 1)
            remote_dst = r;
        else if (r)
            remote_src = 1;
        else
            local_src = 1;
        args[i] = (char *)path;
    }
    if (remote_dst && remote_src)
        return cli_usage_error(j->ctx, "copying from a sandbox to a sandbox is not supported");
    if (!remote_dst && !remote_src)
        return cli_usage_error(j->ctx, "no sandbox path (write :PATH or SANDBOX:PATH)");
    if (remote_src && local_src)
        return cli_usage_error(j->ctx, "SRCs must all be local or all in the sandbox");
    *up = remote_dst;
    return 0;
}

int cmd_cp(cli_ctx *ctx, int argc, char **argv)
{
    static const cli_opt opts[] = {{"gzip", 0, 0, 1},
                                   {"quiet", 'q', 0, 2},
                                   {"recursive", 'r', 0, 3},
                                   {"recursive", 'R', 0, 3},
                                   {NULL, 0, 0, 0}};
    cli_parser p;
    cli_parser_init(&p, ctx, argc, argv, opts, cp_usage);
    cp_job j;
    memset(&j, 0, sizeof(j));
    j.ctx = ctx;
    int quiet = 0, o, up = 0;
    while ((o = cli_next(&p)) != CLI_DONE) {
        if (o < CLI_DONE)
            return cli_stop(o);
        j.gzip |= o == 1;
        quiet |= o == 2;
    }
    if (p.nargs < 2)
        return cli_usage_error(ctx, "expected SRC... DST");
    int rc = classify(&j, p.args, p.nargs, &up);
    if (rc == 0)
        rc = cli_open(ctx, j.sandbox, &j.c);
    cli_catch_interrupts();
    if (rc == 0)
        rc = up ? plan_upload(&j, p.args, p.nargs - 1, p.args[p.nargs - 1])
                : plan_download(&j, (const char **)p.args, p.nargs - 1, p.args[p.nargs - 1]);
    j.bar = !quiet && isatty(STDERR_FILENO);
    j.started_ms = cli_now_ms();
    if (rc == 0)
        rc = run_transfers(&j, up);
    if (rc == 0 && cli_interrupted)
        rc = cli_errorf(ctx, "interrupted");
    draw(&j, 0, 1);
    plan_free(&j.plan);
    envd_client_free(j.c);
    free(j.sandbox);
    return rc;
}
