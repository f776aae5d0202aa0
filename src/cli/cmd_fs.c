/* envdctl's filesystem subcommands: ls, stat, rm, mkdir, mv, cat, watch.
 * Each is one or a few blocking calls of the public API; a PATH may be
 * written SANDBOX:PATH to name another sandbox than the global one. */
#include "envdctl.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* A path argument and the client for its sandbox (the global one, or the
 * one named before a ':'), opened once per distinct sandbox. */
typedef struct fs_target {
    char *sandbox;
    const char *path;
    envd_client *c;
} fs_target;

static int target_open(cli_ctx *ctx, const char *arg, fs_target *t)
{
    memset(t, 0, sizeof(*t));
    if (cli_split_remote(arg, &t->sandbox, &t->path) < 0)
        return cli_errorf(ctx, "out of memory");
    if (!*t->path)
        return cli_usage_error(ctx, "empty path in '%s'", arg);
    return cli_open(ctx, t->sandbox, &t->c);
}

static void target_close(fs_target *t)
{
    envd_client_free(t->c);
    free(t->sandbox);
    memset(t, 0, sizeof(*t));
}

/* What a subcommand does to one path argument (index i), its sandbox open
 * in t; flags are its options. */
typedef int (*path_fn)(cli_ctx *ctx, const char *arg, fs_target *t, int flags, int i);

/* Runs fn on every path argument, each in its own sandbox; a failure does
 * not stop the others, and the first one's status is the result. */
static int each_path(cli_ctx *ctx, const cli_parser *p, path_fn fn, int flags)
{
    if (p->nargs == 0)
        return cli_usage_error(ctx, "missing PATH");
    int rc = 0;
    for (int i = 0; i < p->nargs; i++) {
        fs_target t;
        int r = target_open(ctx, p->args[i], &t);
        if (r == 0)
            r = fn(ctx, p->args[i], &t, flags, i);
        target_close(&t);
        rc = rc ? rc : r;
    }
    return rc;
}

/* Parses a subcommand whose options are all flags without values: their
 * ids are bits, OR-ed into *flags. -1 to go on, else the exit status. */
static int parse_flags(cli_parser *p, int *flags)
{
    int o;
    *flags = 0;
    while ((o = cli_next(p)) != CLI_DONE) {
        if (o < CLI_DONE)
            return cli_stop(o);
        if (o > 0)
            *flags |= o;
    }
    return -1;
}

/* A subcommand that is flags and paths: parse, then fn on each path. */
static int per_path_cmd(cli_ctx *ctx, int argc, char **argv, const cli_opt *opts,
                        const char *usage, path_fn fn)
{
    cli_parser p;
    cli_parser_init(&p, ctx, argc, argv, opts, usage);
    int flags, rc = parse_flags(&p, &flags);
    return rc >= 0 ? rc : each_path(ctx, &p, fn, flags);
}

static const char *type_name(envd_file_type t)
{
    switch (t) {
    case ENVD_FILE_TYPE_FILE: return "file";
    case ENVD_FILE_TYPE_DIRECTORY: return "directory";
    case ENVD_FILE_TYPE_SYMLINK: return "symlink";
    default: return "unknown";
    }
}

/* One entry as a JSON object (no newline). */
static int entry_json(cli_buf *b, const envd_entry_info *e)
{
    char when[40];
    cli_format_time(e->modified_sec, e->modified_nsec, when, sizeof(when));
    int rc = cli_buf_append(b, "{\"name\":", 8);
    rc |= cli_buf_json_string(b, e->name, strlen(e->name));
    rc |= cli_buf_appendf(b, ",\"path\":");
    rc |= cli_buf_json_string(b, e->path, strlen(e->path));
    rc |= cli_buf_appendf(b, ",\"type\":\"%s\",\"size\":%lld,\"mode\":\"%04o\",\"permissions\":",
                          type_name(e->type), (long long)e->size, (unsigned)e->mode);
    rc |= cli_buf_json_string(b, e->permissions, strlen(e->permissions));
    rc |= cli_buf_appendf(b, ",\"owner\":");
    rc |= cli_buf_json_string(b, e->owner, strlen(e->owner));
    rc |= cli_buf_appendf(b, ",\"group\":");
    rc |= cli_buf_json_string(b, e->group, strlen(e->group));
    rc |= cli_buf_appendf(b, ",\"modified\":\"%s\"", when);
    if (e->symlink_target) {
        rc |= cli_buf_appendf(b, ",\"symlink_target\":");
        rc |= cli_buf_json_string(b, e->symlink_target, strlen(e->symlink_target));
    }
    rc |= cli_buf_appendf(b, ",\"metadata\":{");
    for (size_t i = 0; i < e->n_metadata; i++) {
        rc |= cli_buf_appendf(b, i ? "," : "");
        rc |= cli_buf_json_string(b, e->metadata[i].name, strlen(e->metadata[i].name));
        rc |= cli_buf_append(b, ":", 1);
        rc |= cli_buf_json_string(b, e->metadata[i].value, strlen(e->metadata[i].value));
    }
    return rc | cli_buf_append(b, "}}", 2);
}

static int print_json_entry(const cli_ctx *ctx, const envd_entry_info *e)
{
    cli_buf b = {0};
    int bad = entry_json(&b, e) || cli_buf_append(&b, "\n", 1);
    if (!bad)
        fwrite(b.data, 1, b.len, stdout);
    cli_buf_free(&b);
    return bad ? cli_errorf(ctx, "out of memory") : 0;
}

/* "-rw-r--r--  root  root  1234  2026-12-02T05:50:25.000Z  name[ -> target]" */
static void print_long(const envd_entry_info *e, const char *shown)
{
    char when[40];
    cli_format_time(e->modified_sec, e->modified_nsec, when, sizeof(when));
    printf("%s %-8s %-8s %10lld %s %s", e->permissions, e->owner, e->group, (long long)e->size,
           when, shown);
    if (e->symlink_target)
        printf(" -> %s", e->symlink_target);
    putchar('\n');
}

/* ------------------------------------------------------------------ stat */

static const char stat_usage[] =
    "usage: envdctl stat [--json] PATH...\n"
    "Shows each path's type, size, mode, owner, modification time and metadata.\n"
    "  --json   one JSON object per line\n";

static void print_stat(const envd_entry_info *e)
{
    char when[40];
    cli_format_time(e->modified_sec, e->modified_nsec, when, sizeof(when));
    printf("path: %s\ntype: %s\nsize: %lld\nmode: %04o (%s)\nowner: %s\ngroup: %s\n"
           "modified: %s\n",
           e->path, type_name(e->type), (long long)e->size, (unsigned)e->mode, e->permissions,
           e->owner, e->group, when);
    if (e->symlink_target)
        printf("symlink: %s\n", e->symlink_target);
    for (size_t i = 0; i < e->n_metadata; i++)
        printf("metadata: %s=%s\n", e->metadata[i].name, e->metadata[i].value);
}

static int stat_one(cli_ctx *ctx, const char *arg, fs_target *t, int json, int i)
{
    envd_entry_info *e = NULL;
    envd_error *err = NULL;
    envd_status st = envd_fs_get_info(t->c, t->path, &e, &err);
    if (st != ENVD_OK)
        return cli_fail(ctx, arg, st, err);
    int rc = 0;
    if (json) {
        rc = print_json_entry(ctx, e);
    } else {
        if (i > 0)
            putchar('\n');
        print_stat(e);
    }
    envd_entry_info_free(e);
    return rc;
}

int cmd_stat(cli_ctx *ctx, int argc, char **argv)
{
    static const cli_opt opts[] = {{"json", 0, 0, 1}, {NULL, 0, 0, 0}};
    return per_path_cmd(ctx, argc, argv, opts, stat_usage, stat_one);
}

/* -------------------------------------------------------------------- ls */

static const char ls_usage[] =
    "usage: envdctl ls [-l] [--depth N] [--json] [PATH]\n"
    "Lists a directory (default: the user's home), parents before children.\n"
    "  -l          long format: permissions, owner, group, size, time, name\n"
    "  --depth N   descend N levels (default 1)\n"
    "  --json      one JSON object per entry and line\n";

/* The entry's path below the listed directory ("sub/file"). */
static const char *shown_name(const envd_entry_info *e, const char *dir_path, size_t dir_len)
{
    if (dir_len && strncmp(e->path, dir_path, dir_len) == 0 && e->path[dir_len] == '/')
        return e->path + dir_len + 1;
    if (dir_len == 1 && dir_path[0] == '/' && e->path[0] == '/')
        return e->path + 1;
    return e->name;
}

static int ls_print(const cli_ctx *ctx, const envd_entry_info *e, const char *shown, int mode)
{
    if (mode == 2)
        return print_json_entry(ctx, e);
    if (mode == 1)
        print_long(e, shown);
    else
        puts(shown);
    return 0;
}

/* ls of one path: a file is shown itself, a directory by its entries, named
 * relative to it (envd reports absolute paths). */
static int ls_one(cli_ctx *ctx, const char *arg, uint32_t depth, int mode)
{
    fs_target t;
    int rc = target_open(ctx, arg, &t);
    if (rc)
        return rc;
    envd_entry_info *self = NULL;
    envd_entry_list *l = NULL;
    envd_error *err = NULL;
    envd_status st = envd_fs_get_info(t.c, t.path, &self, &err);
    if (st == ENVD_OK && self->type != ENVD_FILE_TYPE_DIRECTORY)
        rc = ls_print(ctx, self, t.path, mode);
    else if (st == ENVD_OK && (st = envd_fs_list(t.c, t.path, depth, &l, &err)) == ENVD_OK) {
        size_t dl = strlen(self->path);
        for (size_t i = 0; i < l->count && rc == 0; i++)
            rc = ls_print(ctx, &l->items[i], shown_name(&l->items[i], self->path, dl), mode);
    }
    if (st != ENVD_OK)
        rc = cli_fail(ctx, arg, st, err);
    envd_entry_list_free(l);
    envd_entry_info_free(self);
    target_close(&t);
    return rc;
}

int cmd_ls(cli_ctx *ctx, int argc, char **argv)
{
    static const cli_opt opts[] = {
        {"long", 'l', 0, 1}, {"depth", 0, 1, 2}, {"json", 0, 0, 3}, {NULL, 0, 0, 0}};
    cli_parser p;
    cli_parser_init(&p, ctx, argc, argv, opts, ls_usage);
    int mode = 0, o;
    uint64_t depth = 1;
    while ((o = cli_next(&p)) != CLI_DONE) {
        if (o < CLI_DONE)
            return cli_stop(o);
        if (o == 1 && mode == 0)
            mode = 1;
        else if (o == 3)
            mode = 2;
        else if (o == 2 && (cli_parse_uint(p.value, UINT32_MAX, &depth) != 0 || depth == 0))
            return cli_usage_error(ctx, "--depth: expected a positive integer, got '%s'",
                                   p.value);
    }
    if (p.nargs == 0)
        return ls_one(ctx, ".", (uint32_t)depth, mode);
    int rc = 0;
    for (int i = 0; i < p.nargs; i++) {
        if (p.nargs > 1 && mode != 2)
            printf("%s%s:\n", i ? "\n" : "", p.args[i]);
        int r = ls_one(ctx, p.args[i], (uint32_t)depth, mode);
        rc = rc ? rc : r;
    }
    return rc;
}

/* ----------------------------------------------------------- rm, mkdir, mv */

static const char rm_usage[] =
    "usage: envdctl rm [-f] PATH...\n"
    "Removes files and directories, recursively.\n"
    "  -f, --force   a missing path is not an error\n";

#define RM_FORCE 1

static int rm_one(cli_ctx *ctx, const char *arg, fs_target *t, int flags, int i)
{
    int exists = 1;
    envd_error *err = NULL;
    envd_status st = ENVD_OK;
    /* envd removes like os.RemoveAll: a missing path is fine to it, not to rm */
    if (!(flags & RM_FORCE))
        st = envd_fs_exists(t->c, t->path, &exists, &err);
    if (st == ENVD_OK && !exists)
        return cli_errorf(ctx, "%s: no such file or directory", arg);
    if (st == ENVD_OK)
        st = envd_fs_remove(t->c, t->path, &err);
    return st == ENVD_OK ? 0 : cli_fail(ctx, arg, st, err);
}

int cmd_rm(cli_ctx *ctx, int argc, char **argv)
{
    static const cli_opt opts[] = {{"force", 'f', 0, RM_FORCE}, {"recursive", 'r', 0, 2},
                                   {"recursive", 'R', 0, 2},    {NULL, 0, 0, 0}};
    return per_path_cmd(ctx, argc, argv, opts, rm_usage, rm_one);
}

static const char mkdir_usage[] =
    "usage: envdctl mkdir [-p] PATH...\n"
    "Makes directories.\n"
    "  -p, --parents   make missing parents; an existing directory is fine\n";

/* The parent of path ("/a/b" -> "/a", "a" -> "."), malloc'd. */
static char *parent_of(const char *path)
{
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/')
        n--;
    while (n > 0 && path[n - 1] != '/')
        n--;
    while (n > 1 && path[n - 1] == '/')
        n--;
    return n == 0 ? strdup(".") : strndup(path, n);
}

/* Without -p, mkdir refuses what envd would do silently: a missing parent,
 * an existing directory. */
static int mkdir_one(cli_ctx *ctx, const char *arg, fs_target *t, int parents, int i)
{
    int exists = 1, created = 0, rc = 0;
    envd_error *err = NULL;
    envd_status st = ENVD_OK;
    char *parent = parent_of(t->path);
    if (!parent)
        return cli_errorf(ctx, "out of memory");
    if (!parents)
        st = envd_fs_exists(t->c, parent, &exists, &err);
    if (st == ENVD_OK && !exists)
        rc = cli_errorf(ctx, "%s: no such directory: %s (use -p)", arg, parent);
    else if (st == ENVD_OK)
        st = envd_fs_make_dir(t->c, t->path, &created, &err);
    if (!rc && st != ENVD_OK)
        rc = cli_fail(ctx, arg, st, err);
    else if (!rc && !created && !parents)
        rc = cli_errorf(ctx, "%s: already exists", arg);
    free(parent);
    return rc;
}

int cmd_mkdir(cli_ctx *ctx, int argc, char **argv)
{
    static const cli_opt opts[] = {{"parents", 'p', 0, 1}, {NULL, 0, 0, 0}};
    return per_path_cmd(ctx, argc, argv, opts, mkdir_usage, mkdir_one);
}

static const char mv_usage[] =
    "usage: envdctl mv SRC DST\n"
    "Moves or renames SRC to DST inside one sandbox; into DST when it is a directory.\n";

int cmd_mv(cli_ctx *ctx, int argc, char **argv)
{
    cli_parser p;
    cli_parser_init(&p, ctx, argc, argv, NULL, mv_usage);
    int none, rc = parse_flags(&p, &none);
    if (rc >= 0)
        return rc;
    if (p.nargs != 2)
        return cli_usage_error(ctx, "expected SRC and DST, got %d argument%s", p.nargs,
                               p.nargs == 1 ? "" : "s");
    fs_target t;
    rc = target_open(ctx, p.args[0], &t);
    char *dsb = NULL;
    const char *dst = NULL;
    if (!rc && cli_split_remote(p.args[1], &dsb, &dst) < 0)
        rc = cli_errorf(ctx, "out of memory");
    else if (!rc && ((dsb == NULL) != (t.sandbox == NULL) ||
                     (dsb && strcmp(dsb, t.sandbox) != 0)))
        rc = cli_usage_error(ctx, "SRC and DST must be in the same sandbox (use cp)");
    envd_entry_info *d = NULL, *moved = NULL;
    envd_error *err = NULL;
    char *into = NULL;
    if (!rc && envd_fs_get_info(t.c, dst, &d, NULL) == ENVD_OK &&
        d->type == ENVD_FILE_TYPE_DIRECTORY) {
        const char *base = strrchr(t.path, '/');
        into = cli_strdupf("%s/%s", d->path, base ? base + 1 : t.path);
        dst = into;
    }
    envd_status st = rc ? ENVD_OK : envd_fs_rename(t.c, t.path, dst, &moved, &err);
    if (!rc && st != ENVD_OK)
        rc = cli_fail(ctx, p.args[0], st, err);
    envd_entry_info_free(d);
    envd_entry_info_free(moved);
    free(into);
    free(dsb);
    target_close(&t);
    return rc;
}

/* ------------------------------------------------------------------- cat */

static const char cat_usage[] =
    "usage: envdctl cat PATH...\n"
    "Writes the files to standard output, streamed.\n";

static int cat_one(cli_ctx *ctx, const char *arg, fs_target *t, int flags, int i)
{
    envd_files_opts *fo = envd_files_opts_new();
    if (!fo || envd_files_opts_set_sink_fd(fo, STDOUT_FILENO) != ENVD_OK) {
        envd_files_opts_free(fo);
        return cli_errorf(ctx, "out of memory");
    }
    size_t len = 0;
    uint8_t *data = NULL;
    envd_error *err = NULL;
    envd_status st = envd_files_read(t->c, t->path, fo, &data, &len, &err);
    free(data);
    envd_files_opts_free(fo);
    return st == ENVD_OK ? 0 : cli_fail(ctx, arg, st, err);
}

int cmd_cat(cli_ctx *ctx, int argc, char **argv)
{
    fflush(stdout); /* the files go to fd 1 directly */
    return per_path_cmd(ctx, argc, argv, NULL, cat_usage, cat_one);
}

/* ----------------------------------------------------------------- watch */

static const char watch_usage[] =
    "usage: envdctl watch [-r] [--count N] [--timeout DUR] PATH\n"
    "Prints the changes under a directory as JSON lines, until Ctrl-C:\n"
    "  {\"type\":\"create\",\"name\":\"sub/a.txt\",\"path\":\"/dir/sub/a.txt\",\"time\":\"...\"}\n"
    "types: create, write, remove, rename (the old name), chmod. \"watching PATH\" goes\n"
    "to stderr once the watch is in place.\n"
    "  -r, --recursive   the whole subtree\n"
    "  --count N         exit after N events\n"
    "  --timeout DUR     exit after DUR (500ms, 10s, 2m)\n";

typedef struct watch_state {
    const char *dir; /* the watched directory's absolute path */
    _Atomic long seen;
    long limit; /* --count: events past it are not printed */
    _Atomic int failed_output; /* set on an engine thread, read by the waiting one */
} watch_state;

static const char *event_name(envd_fs_event_type t)
{
    switch (t) {
    case ENVD_FS_EVENT_CREATE: return "create";
    case ENVD_FS_EVENT_WRITE: return "write";
    case ENVD_FS_EVENT_REMOVE: return "remove";
    case ENVD_FS_EVENT_RENAME: return "rename";
    case ENVD_FS_EVENT_CHMOD: return "chmod";
    default: return "unknown";
    }
}

/* On an engine thread: one line per event, flushed, so a pipe reader sees
 * each as it happens. */
static void on_event(void *ud, const envd_fs_event *ev)
{
    watch_state *w = ud;
    long n = ++w->seen;
    if (w->limit && n > w->limit)
        return;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    char when[40];
    cli_format_time(now.tv_sec, (int32_t)now.tv_nsec, when, sizeof(when));
    cli_buf b = {0};
    int rc = cli_buf_appendf(&b, "{\"type\":\"%s\",\"name\":", event_name(ev->type));
    rc |= cli_buf_json_string(&b, ev->name, strlen(ev->name));
    rc |= cli_buf_append(&b, ",\"path\":", 8);
    char *full = cli_strdupf("%s%s%s", w->dir, strcmp(w->dir, "/") ? "/" : "", ev->name);
    rc |= !full || cli_buf_json_string(&b, full, strlen(full));
    rc |= cli_buf_appendf(&b, ",\"time\":\"%s\"}\n", when);
    if (rc || fwrite(b.data, 1, b.len, stdout) != b.len || fflush(stdout) != 0)
        w->failed_output = 1;
    free(full);
    cli_buf_free(&b);
}

static int watch_parse(cli_ctx *ctx, cli_parser *p, unsigned *flags, uint64_t *count,
                       int64_t *timeout_ms)
{
    int o;
    while ((o = cli_next(p)) != CLI_DONE) {
        if (o < CLI_DONE)
            return cli_stop(o) + 100; /* distinguishes help (100) from errors */
        if (o == 1)
            *flags |= ENVD_WATCH_RECURSIVE;
        else if (o == 2 && (cli_parse_uint(p->value, INT32_MAX, count) != 0 || *count == 0))
            return cli_usage_error(ctx, "--count: expected a positive integer, got '%s'",
                                   p->value);
        else if (o == 3 && cli_parse_duration(p->value, timeout_ms) != 0)
            return cli_usage_error(ctx, "--timeout: expected a duration (500ms, 10s, 2m), got '%s'",
                                   p->value);
    }
    if (p->nargs != 1)
        return cli_usage_error(ctx, p->nargs ? "expected one PATH" : "missing PATH");
    return 0;
}

/* Waits for the end: the stream's, --count, --timeout or a signal. */
static int watch_wait(cli_ctx *ctx, envd_watch *w, watch_state *st, uint64_t count,
                      int64_t timeout_ms, const char *arg)
{
    int64_t deadline = timeout_ms > 0 ? cli_now_ms() + timeout_ms : 0;
    envd_future *f = envd_watch_future(w);
    while (envd_future_wait(f, 100) == ENVD_E_TIMEOUT) {
        if (cli_interrupted || (count && (uint64_t)st->seen >= count) ||
            (deadline && cli_now_ms() >= deadline) || st->failed_output)
            break;
    }
    int ended = envd_future_done(f);
    envd_watch_stop(w);
    if (st->failed_output)
        return cli_errorf(ctx, "writing to standard output failed");
    if (ended && envd_future_status(f) != ENVD_OK)
        return cli_fail(ctx, arg, envd_future_status(f), envd_future_take_error(f));
    return 0;
}

int cmd_watch(cli_ctx *ctx, int argc, char **argv)
{
    static const cli_opt opts[] = {{"recursive", 'r', 0, 1},
                                   {"count", 0, 1, 2},
                                   {"timeout", 0, 1, 3},
                                   {NULL, 0, 0, 0}};
    cli_parser p;
    cli_parser_init(&p, ctx, argc, argv, opts, watch_usage);
    unsigned flags = 0;
    uint64_t count = 0;
    int64_t timeout_ms = 0;
    int rc = watch_parse(ctx, &p, &flags, &count, &timeout_ms);
    if (rc)
        return rc >= 100 ? rc - 100 : rc;
    cli_catch_interrupts();
    fs_target t;
    if ((rc = target_open(ctx, p.args[0], &t)) != 0)
        return rc;
    envd_entry_info *dir = NULL;
    envd_watch *w = NULL;
    envd_error *err = NULL;
    watch_state st = {0};
    st.limit = (long)count;
    envd_status s = envd_fs_get_info(t.c, t.path, &dir, &err);
    if (s == ENVD_OK) {
        st.dir = dir->path;
        s = envd_fs_watch_dir(t.c, t.path, flags, on_event, &st, &w, &err);
    }
    if (s != ENVD_OK) {
        rc = cli_fail(ctx, p.args[0], s, err);
    } else {
        /* every change from now on is reported: a script may go ahead */
        fprintf(stderr, "envdctl: watch: watching %s\n", dir->path);
        rc = watch_wait(ctx, w, &st, count, timeout_ms, p.args[0]);
    }
    envd_watch_free(w);
    envd_entry_info_free(dir);
    target_close(&t);
    return rc;
}
