/* A parallel upload (envd_files_opts_set_parallel): one operation whose
 * steps are the existing ones, each started as its own future and joined
 * here:
 *
 *   mkdir    MakeDir of the destination's directory (skipped for none), so
 *            that the parts do not race to create it;
 *   parts    one /files write per part (files_xfer.c), a slice of the
 *            source each (memory at an offset, or pread(2) of the fd);
 *   compose  /files/compose of the parts into the destination
 *            (files_compose.c), which deletes them;
 *   cleanup  after a failure or a cancel: Remove of every part that may
 *            exist, then the future fails with the first error.
 *
 * A step starts when every future of the one before completed (`pending`
 * reaches 0; whoever takes it there advances). The steps run under the
 * operation's one in-flight slot (files_args.no_slot, urgent RPCs), so a
 * step started on an engine thread never waits for a slot. The futures of
 * the steps are freed with the operation, so a cancel can reach them at
 * any time. */
#include "api/files_internal.h"
#include "api/sync.h"
#include "core/alloc.h"
#include "api/fs_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

enum { ST_MKDIR, ST_PARTS, ST_COMPOSE, ST_CLEANUP };

typedef struct pup {
    envd_op op; /* first */
    envd_future *f;
    envd_client *c; /* a reference */
    pthread_mutex_t mu;
    envd_files_opts o; /* scalars; user points at `user` */
    char *user;
    char *dest, *dir; /* dir: the destination's directory, or NULL */
    envd_files_src src; /* the source (path unused) and where it starts */
    int64_t size, part_size, deadline_ms;
    int n;
    char **paths;
    int64_t *moved;   /* per part (progress, I/O thread) */
    struct part_ud *pud;
    _Atomic(envd_future *) *steps; /* [0, n): parts, n: mkdir, n + 1: compose */
    envd_future **rm; /* cleanup's Removes: [0, n) the first round, [n, 2n) the second */
    int stage, pending, started; /* started: parts that may exist */
    int aborted;  /* a part ended without an answer: the server may still be at it */
    int sweeps;   /* cleanup rounds done */
    envd_error *err;             /* the first failure (mu) */
} pup;

static void pup_destroy(envd_op *op)
{
    pup *p = (pup *)op;
    for (int i = 0; p->steps && i < p->n + 2; i++)
        envd_future_free(atomic_load(&p->steps[i]));
    for (int i = 0; p->rm && i < 2 * p->n; i++)
        envd_future_free(p->rm[i]);
    for (int i = 0; p->paths && i < p->n; i++)
        free(p->paths[i]);
    free(p->paths);
    free(p->steps);
    free(p->rm);
    free(p->moved);
    free(p->pud);
    free(p->user);
    free(p->dest);
    free(p->dir);
    envd_error_free(p->err);
    if (p->c)
        envd_client_free(p->c);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

/* Stops what runs now (not the cleanup: it must reach the sandbox). */
static void stop_steps(pup *p)
{
    for (int i = 0; i < p->n + 2; i++) {
        envd_future *f = atomic_load(&p->steps[i]);
        if (f)
            envd_future_cancel(f);
    }
}

static void pup_stop(envd_op *op)
{
    stop_steps((pup *)op);
}

static const envd_op_class pup_class = {.destroy = pup_destroy, .stop = pup_stop};

/* ---- the join ------------------------------------------------------------- */

static void advance(pup *p);

/* Keeps the first failure (takes e). 1 when it was the first. */
static int record(pup *p, envd_error *e)
{
    pthread_mutex_lock(&p->mu);
    int first = e && !p->err;
    if (first)
        p->err = e;
    pthread_mutex_unlock(&p->mu);
    if (!first)
        envd_error_free(e);
    return first;
}

/* One step future done (any thread): its failure is kept, the others are
 * stopped, and the last one advances. */
static void step_done(envd_future *f, void *ud)
{
    pup *p = ud;
    envd_op_ref(&p->op); /* the last step's advance may end p */
    envd_error *e = NULL;
    pthread_mutex_lock(&p->mu);
    int cleaning = p->stage == ST_CLEANUP;
    pthread_mutex_unlock(&p->mu);
    if (envd_future_status(f) != ENVD_OK && !cleaning) {
        e = envd_future_take_error(f);
        if (!e)
            e = envd_error_new(envd_future_status(f), ENVD_TRANSPORT_NONE, 0, "%s",
                               envd_strerror(envd_future_status(f)));
        char what[64] = "making its directory";
        for (int i = 0; i < p->n; i++)
            if (atomic_load(&p->steps[i]) == f)
                snprintf(what, sizeof what, "part %d of %d", i + 1, p->n);
        if (atomic_load(&p->steps[p->n + 1]) == f)
            snprintf(what, sizeof what, "composing the parts");
        e = envd_error_wrap(e, what);
    }
    if (!cleaning && envd_future_status(f) != ENVD_OK && (!e || !envd_error_http_status(e))) {
        pthread_mutex_lock(&p->mu);
        p->aborted = 1;
        pthread_mutex_unlock(&p->mu);
    }
    if (record(p, e))
        stop_steps(p);
    pthread_mutex_lock(&p->mu);
    int last = --p->pending == 0;
    pthread_mutex_unlock(&p->mu);
    if (last)
        advance(p);
    envd_op_unref(&p->op);
}

/* Around a step's starts: pending holds one for the starter until the
 * starts are done, so that a step finishing at once cannot advance early. */
static void begin(pup *p, int stage)
{
    pthread_mutex_lock(&p->mu);
    p->stage = stage;
    p->pending = 1;
    pthread_mutex_unlock(&p->mu);
}

/* Publishes f as step `slot` (or a cleanup future) and joins it. */
static void joined(pup *p, envd_future *f, int slot)
{
    pthread_mutex_lock(&p->mu);
    p->pending++;
    pthread_mutex_unlock(&p->mu);
    if (slot >= 0) {
        atomic_store(&p->steps[slot], f);
        if (envd_op_stopped(&p->op)) /* a cancel that came before the store */
            envd_future_cancel(f);
    }
    envd_future_on_complete(f, step_done, p);
}

static void end(pup *p)
{
    pthread_mutex_lock(&p->mu);
    int last = --p->pending == 0;
    pthread_mutex_unlock(&p->mu);
    if (last)
        advance(p);
}

/* A step failed or the caller cancelled: start nothing more. */
static int failing(pup *p)
{
    pthread_mutex_lock(&p->mu);
    int f = p->err != NULL;
    pthread_mutex_unlock(&p->mu);
    return f || envd_op_stopped(&p->op);
}

static void failed_start(pup *p, envd_status st, const char *what)
{
    record(p, envd_error_new(st, ENVD_TRANSPORT_NONE, 0, "%s: could not start: %s", what,
                             envd_strerror(st)));
    stop_steps(p);
}

/* ---- the steps ------------------------------------------------------------- */

/* MakeDir's outcome: an existing directory is fine. */
static void dir_finish(void *ctx, const uint8_t *resp, size_t len, envd_error *err,
                       void **result, envd_free_fn *free_fn, envd_error **out_err)
{
    (void)ctx, (void)resp, (void)len, (void)result, (void)free_fn;
    if (err && err->code != ENVD_ALREADY_EXISTS)
        *out_err = envd_error_wrap(err, "failed to make directory");
    else
        envd_error_free(err);
}

/* A unary filesystem call on one path as the request's user, under the
 * operation's slot (urgent). */
static envd_status path_rpc(pup *p, int make_dir, const char *path, envd_future **out)
{
    envd_unary_spec spec = {.method = make_dir ? "/filesystem.Filesystem/MakeDir"
                                               : "/filesystem.Filesystem/Remove",
                            .kind = ENVD_FK_NONE,
                            .finish = make_dir ? dir_finish : envd_fs_outcome_finish,
                            .ctx = make_dir ? NULL : "failed to remove",
                            .user = p->user,
                            .urgent = 1};
    if (make_dir) {
        Filesystem__MakeDirRequest req = FILESYSTEM__MAKE_DIR_REQUEST__INIT;
        req.path = (char *)path;
        return envd_unary_start(p->c, &spec, &req.base, out);
    }
    Filesystem__RemoveRequest req = FILESYSTEM__REMOVE_REQUEST__INIT;
    req.path = (char *)path;
    return envd_unary_start(p->c, &spec, &req.base, out);
}

typedef struct part_ud {
    pup *p;
    int i;
} part_ud;

/* Every part's progress runs on the I/O thread: the sum needs no lock. */
static void part_progress(void *ud, int64_t done, int64_t total)
{
    (void)total;
    part_ud *u = ud;
    pup *p = u->p;
    p->moved[u->i] = done;
    int64_t sum = 0;
    for (int i = 0; i < p->n; i++)
        sum += p->moved[i];
    p->o.progress(p->o.progress_ud, sum, p->size);
}

/* The time left of the caller's deadline for the next step (0: none). */
static int64_t time_left(const pup *p)
{
    if (p->deadline_ms <= 0)
        return 0;
    int64_t left = p->deadline_ms - envd_now_ms();
    return left > 0 ? left : 1;
}

static void start_mkdir(pup *p)
{
    begin(p, ST_MKDIR);
    envd_future *f = NULL;
    envd_status st = path_rpc(p, 1, p->dir, &f);
    if (st == ENVD_OK)
        joined(p, f, p->n);
    else
        failed_start(p, st, "making its directory");
    end(p);
}

static void start_parts(pup *p)
{
    begin(p, ST_PARTS);
    envd_files_opts po = p->o;
    po.parts = 0;
    for (int i = 0; i < p->n && !failing(p); i++) {
        int64_t off = (int64_t)i * p->part_size;
        envd_files_src s = p->src;
        s.path = p->paths[i];
        s.size = i == p->n - 1 ? p->size - off : p->part_size;
        if (s.kind == ENVD_SRC_MEM)
            s.data += off;
        else
            s.at += off;
        po.timeout_ms = time_left(p);
        if (p->o.progress) {
            po.progress = part_progress;
            po.progress_ud = &p->pud[i];
        }
        files_args a = {.path = s.path, .srcs = &s, .n_srcs = 1, .no_slot = 1};
        envd_future *f = NULL;
        envd_status st = envd_files_xfer_start(p->c, &a, &po, &f);
        if (st != ENVD_OK) {
            char what[64];
            snprintf(what, sizeof what, "part %d of %d", i + 1, p->n);
            failed_start(p, st, what);
            break;
        }
        pthread_mutex_lock(&p->mu);
        p->started = i + 1;
        pthread_mutex_unlock(&p->mu);
        joined(p, f, i);
    }
    end(p);
}

static void start_compose(pup *p)
{
    begin(p, ST_COMPOSE);
    envd_files_opts co = p->o;
    co.timeout_ms = time_left(p);
    envd_future *f = NULL;
    envd_status st = envd_files_compose_start(p->c, (const char *const *)p->paths, (size_t)p->n,
                                              p->dest, &co, 1, &f);
    if (st == ENVD_OK)
        joined(p, f, p->n + 1);
    else
        failed_start(p, st, "composing the parts");
    end(p);
}

/* Best effort: a Remove that fails (the part never made, the sandbox gone)
 * is ignored. A part whose request was cut off (a cancel, a deadline, a
 * lost connection) may still be on its way to the disk when the first
 * Remove arrives (envd opens the file only after it made its directories):
 * a second round follows the first one's answers. */
static void start_cleanup(pup *p)
{
    begin(p, ST_CLEANUP);
    pthread_mutex_lock(&p->mu);
    int n = p->started;
    envd_future **rm = p->rm + (p->sweeps++ ? p->n : 0);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < n; i++)
        if (path_rpc(p, 0, p->paths[i], &rm[i]) == ENVD_OK)
            joined(p, rm[i], -1);
    end(p);
}

static void write_info_free_fn(void *w)
{
    envd_write_info_free(w);
}

/* The end: the compose's result, or the first error. */
static void finish(pup *p)
{
    envd_error *err = p->err;
    p->err = NULL;
    /* A cancel that came after the compose succeeded changes nothing. */
    int done = !err && p->stage == ST_COMPOSE;
    if (!done && envd_op_stopped(&p->op) && (!err || err->code != ENVD_DEADLINE_EXCEEDED)) {
        envd_error_free(err);
        err = envd_error_new(ENVD_CANCELED, ENVD_TRANSPORT_NONE, 0, "canceled");
    }
    envd_write_info *w = NULL;
    if (!err) {
        envd_future *cf = atomic_load(&p->steps[p->n + 1]);
        w = envd_future_take_result(cf, ENVD_FK_WRITE_INFO);
        envd_files_write_info_set_bytes(w, p->size);
        if (!w)
            err = envd_error_new(ENVD_E_NOMEM, ENVD_TRANSPORT_NONE, 0, "out of memory");
    }
    if (err) {
        char prefix[64];
        snprintf(prefix, sizeof prefix, "parallel upload of %.40s", p->dest);
        err = envd_error_wrap(err, prefix);
    }
    envd_op_release(&p->op); /* before the future: its caller may free the runtime */
    envd_future_complete(p->f, w, w ? write_info_free_fn : NULL, err);
    envd_op_unref(&p->op); /* the chain's */
}

/* The step before ended: start the next, or end. */
static void advance(pup *p)
{
    int failed = failing(p);
    pthread_mutex_lock(&p->mu);
    int stage = p->stage;
    pthread_mutex_unlock(&p->mu);
    if (stage == ST_MKDIR && !failed)
        start_parts(p);
    else if (stage == ST_PARTS && !failed)
        start_compose(p);
    else if (failed && (stage == ST_PARTS || stage == ST_COMPOSE) && p->started > 0)
        start_cleanup(p);
    else if (stage == ST_CLEANUP && p->aborted && p->sweeps < 2)
        start_cleanup(p);
    else
        finish(p);
}

/* ---- starting ------------------------------------------------------------- */

/* The size of s when it can be split (memory, a regular file's fd), or -1. */
static int64_t split_size(const envd_files_src *s)
{
    if (s->kind == ENVD_SRC_MEM)
        return s->size;
    struct stat st;
    if (s->kind != ENVD_SRC_FD || fstat(s->fd, &st) != 0 || !S_ISREG(st.st_mode))
        return -1;
    return s->size >= 0 ? s->size : envd_files_fd_remaining(s->fd);
}

static int part_count(const envd_files_opts *o, int64_t size)
{
    if (o->parts < 2 || o->part_min < 1 || size < 0)
        return 0;
    int64_t n = size / o->part_min;
    return n < 2 ? 0 : n < o->parts ? (int)n : o->parts;
}

int envd_files_parallel_applies(const envd_client *c, const envd_files_src *s,
                                const envd_files_opts *o)
{
    return c && o->parts >= 2 && o->meta.n == 0 && part_count(o, split_size(s)) >= 2 &&
           envd_client_serves(c, ENVD_GATE_COMPOSE);
}

/* "<dest>.envd-part.<16 hex>.<i>" for each part, and the directory. */
static envd_status name_parts(pup *p)
{
    uint64_t r = 0;
    if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r)
        r = (uint64_t)envd_now_ms() * 0x9E3779B97F4A7C15ull ^ (uint64_t)getpid() ^
            (uint64_t)(uintptr_t)p;
    const char *slash = strrchr(p->dest, '/');
    if (slash && slash != p->dest &&
        !(p->dir = envd_strdup_printf("%.*s", (int)(slash - p->dest), p->dest)))
        return ENVD_E_NOMEM;
    for (int i = 0; i < p->n; i++) {
        p->pud[i] = (part_ud){p, i};
        if (!(p->paths[i] = envd_strdup_printf("%s.envd-part.%016llx.%d", p->dest,
                                               (unsigned long long)r, i)))
            return ENVD_E_NOMEM;
    }
    return ENVD_OK;
}

static pup *pup_new(envd_client *c, const envd_files_src *s, const envd_files_opts *o)
{
    pup *p = envd_calloc(1, sizeof *p);
    if (!p)
        return NULL;
    envd_op_init(&p->op, &pup_class, c->rt);
    pthread_mutex_init(&p->mu, NULL);
    p->size = split_size(s);
    p->n = part_count(o, p->size);
    p->part_size = (p->size + p->n - 1) / p->n;
    p->o = *o;
    p->o.meta = (envd_kvlist){0};
    p->src = *s;
    p->src.path = NULL;
    if (s->kind == ENVD_SRC_FD) {
        off_t pos = lseek(s->fd, 0, SEEK_CUR);
        p->src.pread = 1;
        p->src.at = pos < 0 ? 0 : (int64_t)pos;
    }
    p->deadline_ms = o->timeout_ms > 0 ? envd_now_ms() + o->timeout_ms : 0;
    p->dest = envd_strdup(s->path);
    p->user = o->user ? envd_strdup(o->user) : NULL;
    p->o.user = p->user;
    p->paths = envd_calloc((size_t)p->n, sizeof *p->paths);
    p->moved = envd_calloc((size_t)p->n, sizeof *p->moved);
    p->pud = envd_calloc((size_t)p->n, sizeof *p->pud);
    p->steps = envd_calloc((size_t)p->n + 2, sizeof *p->steps);
    p->rm = envd_calloc(2 * (size_t)p->n, sizeof *p->rm);
    p->f = envd_future_create(ENVD_FK_WRITE_INFO);
    if (!p->dest || (o->user && !p->user) || !p->paths || !p->moved || !p->pud || !p->steps ||
        !p->rm || !p->f || name_parts(p) != ENVD_OK) {
        envd_future_discard(p->f);
        envd_op_unref(&p->op);
        return NULL;
    }
    envd_client_ref(c);
    p->c = c;
    return p;
}

envd_status envd_files_parallel_start(envd_client *c, const envd_files_src *s,
                                      const envd_files_opts *o, envd_future **out)
{
    if (!out)
        return envd_start_error(ENVD_E_USAGE, "out is NULL");
    *out = NULL;
    if (!s->path || !*s->path)
        return envd_start_error(ENVD_E_USAGE, "path is %s", s->path ? "empty" : "NULL");
    if (o->has_range)
        return envd_start_error(ENVD_E_USAGE, "a range applies to reads, not writes");
    pup *p = pup_new(c, s, o);
    if (!p)
        return ENVD_E_NOMEM;
    envd_status st = envd_op_acquire(&p->op);
    if (st != ENVD_OK) {
        envd_future_discard(p->f);
        envd_op_unref(&p->op);
        return st;
    }
    envd_future *f = p->f;
    envd_op_bind(&p->op, f);
    envd_op_ref(&p->op); /* the chain's, until finish */
    if (p->dir)
        start_mkdir(p);
    else
        start_parts(p);
    *out = f;
    envd_op_unref(&p->op);
    return ENVD_OK;
}
