/* Writes over /files: a batch of sources (memory, file descriptor,
 * callback) as one multipart request, or one file as a raw octet-stream
 * body; a single file is a batch of one. The bytes are pulled from the
 * sources on the engine's I/O thread as the socket takes them
 * (transport/http_body.c). */
#include "api/files_internal.h"
#include "core/alloc.h"
#include "api/sync.h"

#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- batches ------------------------------------------------------------------- */

envd_write_batch *envd_write_batch_new(void)
{
    return envd_calloc(1, sizeof(envd_write_batch));
}

void envd_files_srcs_free(envd_files_src *s, size_t n)
{
    for (size_t i = 0; s && i < n; i++)
        free(s[i].path);
    free(s);
}

void envd_write_batch_free(envd_write_batch *b)
{
    if (b)
        envd_files_srcs_free(b->items, b->n);
    free(b);
}

static envd_status batch_push(envd_write_batch *b, const envd_files_src *s)
{
    if (!b || !s->path || !*s->path)
        return ENVD_E_USAGE;
    if (strpbrk(s->path, "\r\n"))
        return ENVD_INVALID_ARGUMENT; /* cannot travel in a part header */
    if (b->n == b->cap) {
        size_t nc = b->cap ? b->cap * 2 : 16;
        envd_files_src *ni = envd_realloc(b->items, nc * sizeof(*ni));
        if (!ni)
            return ENVD_E_NOMEM;
        b->items = ni;
        b->cap = nc;
    }
    envd_files_src *d = &b->items[b->n];
    *d = *s;
    if (!(d->path = envd_strdup(s->path)))
        return ENVD_E_NOMEM;
    b->n++;
    return ENVD_OK;
}

envd_status envd_write_batch_add(envd_write_batch *b, const char *path, const void *data,
                                 size_t len)
{
    if (!data && len)
        return ENVD_E_USAGE;
    envd_files_src s = {
        .path = (char *)path, .kind = ENVD_SRC_MEM, .data = data, .fd = -1, .size = (int64_t)len};
    return batch_push(b, &s);
}

envd_status envd_write_batch_add_fd(envd_write_batch *b, const char *path, int fd, int64_t size)
{
    if (fd < 0)
        return ENVD_E_USAGE;
    envd_files_src s = {
        .path = (char *)path, .kind = ENVD_SRC_FD, .fd = fd, .size = size < 0 ? -1 : size};
    return batch_push(b, &s);
}

envd_status envd_write_batch_add_stream(envd_write_batch *b, const char *path, envd_read_cb cb,
                                        void *ud, int64_t size)
{
    if (!cb)
        return ENVD_E_USAGE;
    envd_files_src s = {.path = (char *)path,
                        .kind = ENVD_SRC_CB,
                        .cb = cb,
                        .ud = ud,
                        .fd = -1,
                        .size = size < 0 ? -1 : size};
    return batch_push(b, &s);
}

/* ---- sources (I/O thread) --------------------------------------------------------- */

int64_t envd_files_fd_remaining(int fd)
{
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
        return -1;
    off_t pos = lseek(fd, 0, SEEK_CUR);
    if (pos < 0)
        return -1;
    return st.st_size > pos ? (int64_t)(st.st_size - pos) : 0;
}

static size_t fd_read(files_reader *rd, const envd_files_src *s, uint8_t *buf, size_t want)
{
    for (;;) {
        ssize_t r = s->pread ? pread(s->fd, buf, want, (off_t)(s->at + (int64_t)rd->off))
                             : read(s->fd, buf, want);
        if (r >= 0) {
            rd->off += (size_t)r;
            return (size_t)r;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            struct pollfd p = {s->fd, POLLIN, 0};
            (void)poll(&p, 1, 1000);
            continue;
        }
        envd_files_fail(rd->x, ENVD_E_IO,
                        "failed to write file %s: reading the file descriptor: %s",
                        s->path, strerror(errno));
        return (size_t)-1;
    }
}

/* One read for the transport's body (an envd_http_part read callback). The
 * memory source keeps its offset in the bytes taken so far. */
size_t envd_files_src_read(void *ud, uint8_t *buf, size_t cap)
{
    files_reader *r = ud;
    const envd_files_src *s = r->s;
    switch (s->kind) {
    case ENVD_SRC_MEM:
        memcpy(buf, s->data + r->off, cap);
        r->off += cap;
        return cap;
    case ENVD_SRC_FD: return fd_read(r, s, buf, cap);
    default: {
        size_t got = s->cb(s->ud, buf, cap);
        if (got == ENVD_READ_ABORT)
            envd_files_fail(r->x, ENVD_E_IO, "failed to write file %s: the read callback failed",
                            s->path);
        return got;
    }
    }
}

/* ---- results ------------------------------------------------------------------------- */

typedef struct write_info_full {
    envd_write_info pub; /* first: the caller frees through it */
    envd_write_entry *items;
    int64_t bytes;
} write_info_full;

void envd_write_info_free(envd_write_info *w)
{
    write_info_full *wf = (write_info_full *)w;
    if (!wf)
        return;
    for (size_t i = 0; i < wf->pub.count; i++) {
        free((char *)wf->items[i].path);
        free((char *)wf->items[i].name);
        free((char *)wf->items[i].type);
    }
    free(wf->items);
    free(wf);
}

static void write_info_free_fn(void *p)
{
    envd_write_info_free(p);
}

const envd_write_info *envd_future_write_info(const envd_future *f)
{
    return envd_future_result(f, ENVD_FK_WRITE_INFO);
}

void envd_files_write_info_set_bytes(envd_write_info *w, int64_t bytes)
{
    if (w)
        ((write_info_full *)w)->bytes = bytes;
}

int64_t envd_files_write_info_bytes(const envd_future *f)
{
    const write_info_full *w = envd_future_result(f, ENVD_FK_WRITE_INFO);
    return w ? w->bytes : 0;
}

static const char *base_name(const char *p)
{
    size_t n = strlen(p);
    while (n > 1 && p[n - 1] == '/')
        n--;
    const char *s = p + n;
    while (s > p && s[-1] != '/')
        s--;
    return s;
}

static write_info_full *write_info_new(size_t n)
{
    write_info_full *w = envd_calloc(1, sizeof(*w));
    if (w && !(w->items = envd_calloc(n ? n : 1, sizeof *w->items))) {
        free(w);
        return NULL;
    }
    if (w)
        w->pub.items = w->items;
    return w;
}

static int write_info_push(write_info_full *w, const char *path, const char *name, const char *type)
{
    char *p = envd_strdup(path), *nm = envd_strdup(name), *t = envd_strdup(type);
    if (!p || !nm || !t) {
        free(p);
        free(nm);
        free(t);
        return -1;
    }
    w->items[w->pub.count++] = (envd_write_entry){p, nm, t};
    return 0;
}

/* envd's JSON array; NULL when it is not that (*bad set) or on OOM. */
static write_info_full *parse_reply(files_xfer *x, int *bad)
{
    json_t *root = NULL;
    json_error_t je = {.text = "?"};
    if (!x->body.truncated && x->body.len > 0)
        root = json_loadb(x->body.data, x->body.len, 0, &je);
    /* jansson 2.14's decoder fails with no error text when it cannot
     * allocate (lex_init, json_object... in load.c): out of memory, not a
     * reply to fall back from */
    int oom = !root && je.text[0] == '\0';
    /* /files/compose answers one EntryInfo object, not an array. */
    int one = x->compose && json_is_object(root);
    size_t n = one ? 1 : root && json_is_array(root) ? json_array_size(root) : 0;
    write_info_full *w = n ? write_info_new(n) : NULL;
    *bad = n == 0 && !oom;
    for (size_t i = 0; w && i < n; i++) {
        json_t *e = one ? root : json_array_get(root, i);
        const char *p = json_string_value(json_object_get(e, "path"));
        const char *nm = json_string_value(json_object_get(e, "name"));
        const char *t = json_string_value(json_object_get(e, "type"));
        if (!p) /* not what envd sends */
            *bad = 1;
        if (!p || write_info_push(w, p, nm ? nm : base_name(p), t ? t : "file") != 0) {
            envd_write_info_free(&w->pub);
            w = NULL;
        }
    }
    json_decref(root);
    return w;
}

void *envd_files_write_result(files_xfer *x, envd_free_fn *free_fn)
{
    int bad = 0;
    write_info_full *w = parse_reply(x, &bad);
    if (!w && bad && x->compose) { /* the destination, as for a write */
        if ((w = write_info_new(1)) && write_info_push(w, x->what, base_name(x->what), "file")) {
            envd_write_info_free(&w->pub);
            w = NULL;
        }
    } else if (!w && bad) {
        /* The Go client's fallback: the paths it wrote to. */
        w = write_info_new(x->n_srcs);
        for (size_t i = 0; w && i < x->n_srcs; i++) {
            const char *p = x->srcs[i].path;
            if (write_info_push(w, p, base_name(p), "file") != 0) {
                envd_write_info_free(&w->pub);
                w = NULL;
            }
        }
    }
    if (w) {
        w->bytes = x->moved;
        *free_fn = write_info_free_fn;
    }
    return w;
}

/* ---- the calls ------------------------------------------------------------------------ */

envd_status envd_files_write_batch_async(envd_client *c, const envd_write_batch *b,
                                         const envd_files_opts *o, envd_future **out)
{
    if (out)
        *out = NULL;
    if (!b || b->n == 0)
        return envd_start_error(ENVD_E_USAGE, "the batch is %s", b ? "empty" : "NULL");
    if (b->n == 1 && o && envd_files_parallel_applies(c, &b->items[0], o))
        return envd_files_parallel_start(c, &b->items[0], o, out);
    files_args a = {.path = b->n == 1 ? b->items[0].path : NULL,
                    .srcs = b->items,
                    .n_srcs = b->n};
    return envd_files_xfer_start(c, &a, o, out);
}

envd_status envd_files_write_one(envd_client *c, const char *path, const void *data, size_t len,
                                 const envd_files_opts *o, envd_future **out)
{
    if (out)
        *out = NULL;
    if (!data && len)
        return envd_start_error(ENVD_E_USAGE, "data is NULL");
    envd_files_src src = {
        .path = (char *)path, .kind = ENVD_SRC_MEM, .data = data, .fd = -1, .size = (int64_t)len};
    envd_write_batch one = {&src, 1, 1};
    return envd_files_write_batch_async(c, &one, o, out);
}

envd_status envd_files_write_text_start(envd_client *c, const char *path, const char *text,
                                        const envd_files_opts *o, envd_future **out)
{
    if (out)
        *out = NULL;
    if (!text)
        return envd_start_error(ENVD_E_USAGE, "text is NULL");
    return envd_files_write_one(c, path, text, strlen(text), o, out);
}
