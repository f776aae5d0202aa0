/* /files over envd's plain HTTP API: reads into memory, a file descriptor or
 * a callback, writes from memory, a file descriptor or a callback, one file
 * or many per request, with gzip, metadata, ranges, progress and timeouts.
 *
 * Uploads never hold a file in memory: the request body (the multipart
 * framing this file writes itself, or a raw octet-stream body) is produced
 * piece by piece by body_read() on the engine's I/O thread as the socket
 * takes it, optionally through the transport's streaming gzip. Downloads go
 * to their sink chunk by chunk as curl receives them. */
#include "api/internal.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <openssl/rand.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define ERROR_BODY_MAX 4096
#define REPLY_MAX ((size_t)4 << 20) /* a write's JSON reply: ~100 bytes a file */

/* ---- options ----------------------------------------------------------------- */

struct envd_files_opts {
    char *user;
    int gzip;
    int octet;
    char **meta_keys, **meta_values;
    size_t n_meta;
    int has_range;
    int64_t range_off, range_len;
    envd_progress_cb progress;
    void *progress_ud;
    int idle_set;
    int64_t idle_timeout_ms;
    int64_t timeout_ms;
};

envd_files_opts *envd_files_opts_new(void)
{
    return calloc(1, sizeof(envd_files_opts));
}

void envd_files_opts_free(envd_files_opts *o)
{
    if (!o)
        return;
    free(o->user);
    for (size_t i = 0; i < o->n_meta; i++) {
        free(o->meta_keys[i]);
        free(o->meta_values[i]);
    }
    free(o->meta_keys);
    free(o->meta_values);
    free(o);
}

envd_status envd_files_opts_set_user(envd_files_opts *o, const char *user)
{
    if (!o)
        return ENVD_E_USAGE;
    char *u = user && *user ? strdup(user) : NULL;
    if (user && *user && !u)
        return ENVD_E_NOMEM;
    free(o->user);
    o->user = u;
    return ENVD_OK;
}

envd_status envd_files_opts_set_gzip(envd_files_opts *o, int enabled)
{
    if (!o)
        return ENVD_E_USAGE;
    o->gzip = enabled != 0;
    return ENVD_OK;
}

envd_status envd_files_opts_set_octet_stream(envd_files_opts *o, int enabled)
{
    if (!o)
        return ENVD_E_USAGE;
    o->octet = enabled != 0;
    return ENVD_OK;
}

/* An HTTP token character (RFC 9110), the only ones a header name may hold. */
static int is_tchar(unsigned char ch)
{
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
           (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

envd_status envd_files_opts_set_metadata(envd_files_opts *o, const char *key, const char *value)
{
    if (!o || !key || !value)
        return ENVD_E_USAGE;
    if (!*key)
        return ENVD_INVALID_ARGUMENT;
    for (const unsigned char *p = (const unsigned char *)key; *p; p++)
        if (!is_tchar(*p))
            return ENVD_INVALID_ARGUMENT;
    for (const unsigned char *p = (const unsigned char *)value; *p; p++)
        if (*p < 0x20 || *p > 0x7e)
            return ENVD_INVALID_ARGUMENT; /* envd takes printable ASCII only */
    char *v = strdup(value);
    if (!v)
        return ENVD_E_NOMEM;
    for (size_t i = 0; i < o->n_meta; i++) {
        if (strcasecmp(o->meta_keys[i], key) == 0) {
            free(o->meta_values[i]);
            o->meta_values[i] = v;
            return ENVD_OK;
        }
    }
    char *k = strdup(key);
    char **nk = realloc(o->meta_keys, (o->n_meta + 1) * sizeof(char *));
    if (nk)
        o->meta_keys = nk;
    char **nv = nk ? realloc(o->meta_values, (o->n_meta + 1) * sizeof(char *)) : NULL;
    if (nv)
        o->meta_values = nv;
    if (!k || !nk || !nv) {
        free(k);
        free(v);
        return ENVD_E_NOMEM;
    }
    o->meta_keys[o->n_meta] = k;
    o->meta_values[o->n_meta] = v;
    o->n_meta++;
    return ENVD_OK;
}

envd_status envd_files_opts_set_range(envd_files_opts *o, int64_t offset, int64_t length)
{
    if (!o)
        return ENVD_E_USAGE;
    if (offset < 0 || length == 0)
        return ENVD_INVALID_ARGUMENT;
    o->has_range = 1;
    o->range_off = offset;
    o->range_len = length < 0 ? -1 : length;
    return ENVD_OK;
}

envd_status envd_files_opts_on_progress(envd_files_opts *o, envd_progress_cb cb, void *ud)
{
    if (!o)
        return ENVD_E_USAGE;
    o->progress = cb;
    o->progress_ud = ud;
    return ENVD_OK;
}

envd_status envd_files_opts_set_idle_timeout_ms(envd_files_opts *o, int64_t ms)
{
    if (!o || ms < 0)
        return ENVD_E_USAGE;
    o->idle_set = 1;
    o->idle_timeout_ms = ms;
    return ENVD_OK;
}

envd_status envd_files_opts_set_timeout_ms(envd_files_opts *o, int64_t ms)
{
    if (!o || ms < 0)
        return ENVD_E_USAGE;
    o->timeout_ms = ms;
    return ENVD_OK;
}

/* ---- upload sources and batches ---------------------------------------------- */

enum { SRC_MEM, SRC_FD, SRC_CB };

typedef struct src {
    char *path; /* target path */
    int kind;
    const uint8_t *data; /* SRC_MEM */
    int fd;              /* SRC_FD */
    envd_read_cb cb;     /* SRC_CB */
    void *ud;
    int64_t size; /* -1: unknown, read to the end */
    int64_t done; /* bytes taken so far */
    char *head;   /* multipart framing before this part */
    size_t head_len;
} src;

struct envd_write_batch {
    src *items;
    size_t n, cap;
};

envd_write_batch *envd_write_batch_new(void)
{
    return calloc(1, sizeof(envd_write_batch));
}

void envd_write_batch_free(envd_write_batch *b)
{
    if (!b)
        return;
    for (size_t i = 0; i < b->n; i++)
        free(b->items[i].path);
    free(b->items);
    free(b);
}

size_t envd_write_batch_count(const envd_write_batch *b)
{
    return b ? b->n : 0;
}

/* The rest of a regular file from its current offset, or -1. */
static int64_t fd_remaining(int fd)
{
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
        return -1;
    off_t pos = lseek(fd, 0, SEEK_CUR);
    if (pos < 0)
        return -1;
    return st.st_size > pos ? (int64_t)(st.st_size - pos) : 0;
}

static envd_status batch_push(envd_write_batch *b, const src *s)
{
    if (!b || !s->path)
        return ENVD_E_USAGE;
    if (strpbrk(s->path, "\r\n"))
        return ENVD_INVALID_ARGUMENT; /* cannot travel in a part header */
    if (b->n == b->cap) {
        size_t nc = b->cap ? b->cap * 2 : 16;
        src *ni = realloc(b->items, nc * sizeof(*ni));
        if (!ni)
            return ENVD_E_NOMEM;
        b->items = ni;
        b->cap = nc;
    }
    src *d = &b->items[b->n];
    *d = *s;
    if (!(d->path = strdup(s->path)))
        return ENVD_E_NOMEM;
    b->n++;
    return ENVD_OK;
}

envd_status envd_write_batch_add(envd_write_batch *b, const char *path, const void *data,
                                 size_t len)
{
    if (!data && len)
        return ENVD_E_USAGE;
    src s = {.path = (char *)path, .kind = SRC_MEM, .data = data, .fd = -1, .size = (int64_t)len};
    return batch_push(b, &s);
}

envd_status envd_write_batch_add_fd(envd_write_batch *b, const char *path, int fd, int64_t size)
{
    if (fd < 0)
        return ENVD_E_USAGE;
    src s = {.path = (char *)path, .kind = SRC_FD, .fd = fd, .size = size < 0 ? -1 : size};
    return batch_push(b, &s);
}

envd_status envd_write_batch_add_stream(envd_write_batch *b, const char *path, envd_read_cb cb,
                                        void *ud, int64_t size)
{
    if (!cb)
        return ENVD_E_USAGE;
    src s = {.path = (char *)path,
             .kind = SRC_CB,
             .cb = cb,
             .ud = ud,
             .fd = -1,
             .size = size < 0 ? -1 : size};
    return batch_push(b, &s);
}

/* ---- results ------------------------------------------------------------------- */

typedef struct bytes_result {
    uint8_t *data;
    size_t len;
} bytes_result;

static void bytes_free(void *p)
{
    bytes_result *b = p;
    if (b) {
        free(b->data);
        free(b);
    }
}

typedef struct transfer_result {
    int64_t bytes;
} transfer_result;

struct envd_write_info {
    size_t n;
    char **paths, **names, **types;
    int64_t bytes;
};

void envd_write_info_free(envd_write_info *w)
{
    if (!w)
        return;
    for (size_t i = 0; i < w->n; i++) {
        free(w->paths[i]);
        free(w->names[i]);
        free(w->types[i]);
    }
    free(w->paths);
    free(w->names);
    free(w->types);
    free(w);
}

static void write_info_free_fn(void *p)
{
    envd_write_info_free(p);
}

size_t envd_write_info_count(const envd_write_info *w)
{
    return w ? w->n : 0;
}
const char *envd_write_info_path(const envd_write_info *w, size_t i)
{
    return w && i < w->n ? w->paths[i] : NULL;
}
const char *envd_write_info_name(const envd_write_info *w, size_t i)
{
    return w && i < w->n ? w->names[i] : NULL;
}
const char *envd_write_info_type(const envd_write_info *w, size_t i)
{
    return w && i < w->n ? w->types[i] : NULL;
}

const envd_write_info *envd_future_write_info(const envd_future *f)
{
    return envd_future_result(f, ENVD_FK_WRITE_INFO);
}

int64_t envd_future_transferred(const envd_future *f)
{
    switch (envd_future_kind(f)) {
    case ENVD_FK_BYTES: {
        const bytes_result *b = envd_future_result(f, ENVD_FK_BYTES);
        return b ? (int64_t)b->len : 0;
    }
    case ENVD_FK_TRANSFER: {
        const transfer_result *t = envd_future_result(f, ENVD_FK_TRANSFER);
        return t ? t->bytes : 0;
    }
    case ENVD_FK_WRITE_INFO: {
        const envd_write_info *w = envd_future_result(f, ENVD_FK_WRITE_INFO);
        return w ? w->bytes : 0;
    }
    default: return 0;
    }
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

static envd_write_info *write_info_new(size_t n)
{
    envd_write_info *w = calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    w->paths = calloc(n ? n : 1, sizeof(char *));
    w->names = calloc(n ? n : 1, sizeof(char *));
    w->types = calloc(n ? n : 1, sizeof(char *));
    if (!w->paths || !w->names || !w->types) {
        envd_write_info_free(w);
        return NULL;
    }
    return w;
}

static int write_info_push(envd_write_info *w, const char *path, const char *name, const char *type)
{
    char *p = strdup(path), *nm = strdup(name), *t = strdup(type);
    if (!p || !nm || !t) {
        free(p);
        free(nm);
        free(t);
        return -1;
    }
    w->paths[w->n] = p;
    w->names[w->n] = nm;
    w->types[w->n] = t;
    w->n++;
    return 0;
}

/* ---- one transfer ---------------------------------------------------------------- */

enum { SINK_MEM, SINK_FD, SINK_CB };
enum { PH_HEAD, PH_DATA, PH_CLOSE, PH_DONE };
enum { TO_NONE, TO_DEADLINE, TO_REPLY };

typedef struct xfer {
    atomic_int refs;
    envd_runtime *rt; /* not the client: it may be freed while this runs */
    envd_future *f;
    _Atomic(envd_http *) http;
    char *what; /* the path, or "N files", for messages */
    int is_read;

    /* read */
    int sink;
    int fd;
    envd_data_cb data_cb;
    void *data_ud;
    int64_t content_length;

    /* response body kept in memory: the file (SINK_MEM), a write's reply,
     * or an error excerpt */
    uint8_t *buf;
    size_t len, cap;
    int reply_truncated;

    /* write */
    src *srcs;
    size_t n_srcs, cur;
    int multipart;
    int phase;
    size_t head_off;
    char close[64];
    size_t close_len;
    int64_t payload_total; /* -1 unknown */

    /* progress */
    envd_progress_cb progress;
    void *progress_ud;
    int64_t moved, reported;

    int status;
    int body_ok;
    int oom;
    int stopped_by_cb;
    envd_error *local_err; /* a local failure (source, sink) that stopped it */

    /* timeouts the transport cannot express */
    envd_timers *timers;
    envd_timer *deadline_t; /* whole transfer */
    envd_timer *reply_t;    /* writes: body sent, waiting for the headers */
    int64_t timeout_ms, reply_timeout_ms;
    atomic_int timed_out; /* TO_* */
} xfer;

static void srcs_free(src *s, size_t n)
{
    for (size_t i = 0; s && i < n; i++) {
        free(s[i].path);
        free(s[i].head);
    }
    free(s);
}

static void xfer_unref(void *p)
{
    xfer *x = p;
    if (atomic_fetch_sub(&x->refs, 1) != 1)
        return;
    envd_http *h = atomic_load(&x->http);
    if (h)
        envd_http_release(h);
    srcs_free(x->srcs, x->n_srcs);
    envd_error_free(x->local_err);
    free(x->what);
    free(x->buf);
    free(x);
}

static void xfer_ref(void *p)
{
    atomic_fetch_add(&((xfer *)p)->refs, 1);
}

static void xfer_cancel(void *p)
{
    envd_http *h = atomic_load(&((xfer *)p)->http);
    if (h)
        envd_http_cancel(h);
}

static void on_timer(xfer *x, int why)
{
    int none = TO_NONE;
    atomic_compare_exchange_strong(&x->timed_out, &none, why);
    xfer_cancel(x);
}
static void on_deadline(void *ud)
{
    on_timer(ud, TO_DEADLINE);
}
static void on_reply_timeout(void *ud)
{
    on_timer(ud, TO_REPLY);
}

static void local_fail(xfer *x, envd_status code, const char *fmt, const char *a, const char *b)
{
    if (!x->local_err)
        x->local_err = envd_error_new(code, ENVD_TRANSPORT_NONE, 0, fmt, a, b);
}

static void report_progress(xfer *x)
{
    if (x->progress && x->moved != x->reported) {
        x->reported = x->moved;
        x->progress(x->progress_ud, x->moved,
                    x->is_read ? (x->content_length >= 0 && x->body_ok ? x->content_length : -1)
                               : x->payload_total);
    }
}

/* Keeps up to max bytes of d in x->buf. */
static int keep(xfer *x, const uint8_t *d, size_t n, size_t max)
{
    if (x->len + n > max) {
        x->reply_truncated = 1;
        n = max > x->len ? max - x->len : 0;
    }
    if (x->len + n + 1 > x->cap) {
        size_t nc = x->cap ? x->cap : 16384;
        while (nc < x->len + n + 1)
            nc *= 2;
        uint8_t *nb = realloc(x->buf, nc);
        if (!nb) {
            x->oom = 1;
            return -1;
        }
        x->buf = nb;
        x->cap = nc;
    }
    if (n)
        memcpy(x->buf + x->len, d, n);
    x->len += n;
    return 0;
}

/* ---- the response side (I/O thread) */

static int on_status(void *ud, int status, int64_t content_length)
{
    xfer *x = ud;
    x->status = status;
    x->content_length = content_length;
    x->body_ok = x->is_read ? (status == 200 || status == 206) : (status == 200 || status == 201);
    if (x->reply_t) { /* the reply came: no more waiting for it */
        envd_timer_cancel(x->reply_t);
        x->reply_t = NULL;
    }
    if (x->is_read && x->body_ok && x->sink == SINK_MEM && content_length > 0 &&
        (uint64_t)content_length < SIZE_MAX - 1) {
        x->buf = malloc((size_t)content_length + 1);
        if (!x->buf) {
            x->oom = 1;
            return -1;
        }
        x->cap = (size_t)content_length + 1;
    }
    return 0;
}

static int sink_fd(xfer *x, const uint8_t *d, size_t n)
{
    while (n > 0) {
        ssize_t w = write(x->fd, d, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                struct pollfd p = {x->fd, POLLOUT, 0};
                (void)poll(&p, 1, 1000);
                continue;
            }
            local_fail(x, ENVD_E_IO, "failed to read file %s: writing to the file descriptor: %s",
                       x->what, strerror(errno));
            return -1;
        }
        d += w;
        n -= (size_t)w;
    }
    return 0;
}

static int on_data(void *ud, const uint8_t *d, size_t n)
{
    xfer *x = ud;
    if (!x->body_ok)
        return keep(x, d, n, ERROR_BODY_MAX);
    if (!x->is_read)
        return keep(x, d, n, REPLY_MAX);
    int rc = 0;
    switch (x->sink) {
    case SINK_MEM: rc = keep(x, d, n, SIZE_MAX - 1); break;
    case SINK_FD: rc = sink_fd(x, d, n); break;
    case SINK_CB:
        if (x->data_cb(x->data_ud, d, n) != 0) {
            x->stopped_by_cb = 1;
            rc = -1;
        }
        break;
    }
    if (rc == 0) {
        x->moved += (int64_t)n;
        report_progress(x);
    }
    return rc;
}

/* ---- the request body (I/O thread) */

/* One read from a source; (size_t)-1 on failure (x->local_err set). */
static size_t src_read(xfer *x, src *s, uint8_t *buf, size_t want)
{
    switch (s->kind) {
    case SRC_MEM: memcpy(buf, s->data + s->done, want); return want;
    case SRC_FD:
        for (;;) {
            ssize_t r = read(s->fd, buf, want);
            if (r >= 0)
                return (size_t)r;
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                struct pollfd p = {s->fd, POLLIN, 0};
                (void)poll(&p, 1, 1000);
                continue;
            }
            local_fail(x, ENVD_E_IO, "failed to write file %s: reading the file descriptor: %s",
                       s->path, strerror(errno));
            return (size_t)-1;
        }
    default: {
        size_t r = s->cb(s->ud, buf, want);
        if (r == ENVD_READ_ABORT) {
            local_fail(x, ENVD_E_IO, "failed to write file %s: %s", s->path,
                       "the read callback failed");
            return (size_t)-1;
        }
        if (r > want) {
            local_fail(x, ENVD_E_IO, "failed to write file %s: %s", s->path,
                       "the read callback returned more than it was asked for");
            return (size_t)-1;
        }
        return r;
    }
    }
}

static void next_part(xfer *x)
{
    x->cur++;
    x->head_off = 0;
    if (x->cur < x->n_srcs)
        x->phase = x->multipart ? PH_HEAD : PH_DATA;
    else
        x->phase = x->multipart ? PH_CLOSE : PH_DONE;
}

static size_t body_read(void *ud, uint8_t *buf, size_t cap)
{
    xfer *x = ud;
    size_t n = 0;
    while (n < cap && x->phase != PH_DONE) {
        if (x->phase == PH_HEAD || x->phase == PH_CLOSE) {
            const char *t = x->phase == PH_HEAD ? x->srcs[x->cur].head : x->close;
            size_t tl = x->phase == PH_HEAD ? x->srcs[x->cur].head_len : x->close_len;
            size_t k = tl - x->head_off;
            if (k > cap - n)
                k = cap - n;
            memcpy(buf + n, t + x->head_off, k);
            n += k;
            x->head_off += k;
            if (x->head_off == tl) {
                x->head_off = 0;
                x->phase = x->phase == PH_HEAD ? PH_DATA : PH_DONE;
            }
            continue;
        }
        src *s = &x->srcs[x->cur];
        size_t want = cap - n;
        if (s->size >= 0 && (uint64_t)(s->size - s->done) < want)
            want = (size_t)(s->size - s->done);
        if (want == 0) { /* this source is complete */
            next_part(x);
            continue;
        }
        size_t got = src_read(x, s, buf + n, want);
        if (got == (size_t)-1)
            return ENVD_READ_ABORT;
        if (got == 0) {
            if (s->size >= 0) {
                char a[48];
                snprintf(a, sizeof a, "%lld of %lld", (long long)s->done, (long long)s->size);
                local_fail(x, ENVD_E_IO, "failed to write file %s: the source ended after %s bytes",
                           s->path, a);
                return ENVD_READ_ABORT;
            }
            next_part(x);
            continue;
        }
        s->done += (int64_t)got;
        x->moved += (int64_t)got;
        n += got;
        /* Move on as soon as a sized source is complete: with a known
         * Content-Length curl asks for nothing past the last byte. */
        if (s->size >= 0 && s->done == s->size)
            next_part(x);
        if (s->kind != SRC_MEM)
            break; /* hand over what one read gave; the socket wants it */
    }
    report_progress(x);
    if (x->phase == PH_DONE && !x->reply_t && x->reply_timeout_ms > 0 && x->timers)
        x->reply_t = envd_timer_start(x->timers, x->reply_timeout_ms, on_reply_timeout, x);
    return n;
}

/* ---- completion (I/O thread) */

static envd_write_info *parse_reply(xfer *x)
{
    envd_write_info *w = NULL;
    json_t *root = NULL;
    if (!x->reply_truncated && x->len > 0)
        root = json_loadb((const char *)x->buf, x->len, 0, NULL);
    size_t n = root && json_is_array(root) ? json_array_size(root) : 0;
    if (n > 0) {
        w = write_info_new(n);
        for (size_t i = 0; w && i < n; i++) {
            json_t *e = json_array_get(root, i);
            const char *p = json_string_value(json_object_get(e, "path"));
            const char *nm = json_string_value(json_object_get(e, "name"));
            const char *t = json_string_value(json_object_get(e, "type"));
            if (!p) { /* not what envd sends: fall back to what was asked */
                envd_write_info_free(w);
                w = NULL;
                n = 0;
                break;
            }
            if (write_info_push(w, p, nm ? nm : base_name(p), t ? t : "file") != 0) {
                envd_write_info_free(w);
                json_decref(root);
                return NULL;
            }
        }
    }
    json_decref(root);
    if (n == 0) {
        /* The Go client's fallback: the path it wrote to. */
        w = write_info_new(x->n_srcs);
        for (size_t i = 0; w && i < x->n_srcs; i++) {
            if (write_info_push(w, x->srcs[i].path, base_name(x->srcs[i].path), "file") != 0) {
                envd_write_info_free(w);
                w = NULL;
            }
        }
    }
    if (w)
        w->bytes = x->moved;
    return w;
}

static void on_done(void *ud, envd_error *err)
{
    xfer *x = ud;
    if (x->deadline_t) {
        envd_timer_cancel(x->deadline_t);
        x->deadline_t = NULL;
    }
    if (x->reply_t) {
        envd_timer_cancel(x->reply_t);
        x->reply_t = NULL;
    }
    const char *verb = x->is_read ? "read" : "write";
    void *result = NULL;
    envd_free_fn free_fn = NULL;
    int to = atomic_load(&x->timed_out);
    if (x->local_err) {
        envd_error_free(err);
        err = x->local_err;
        x->local_err = NULL;
    } else if (err && x->oom) {
        envd_error_free(err);
        err = envd_error_new(ENVD_E_NOMEM, ENVD_TRANSPORT_HTTP, x->status,
                             "failed to %s file %s: out of memory", verb, x->what);
    } else if (err && to != TO_NONE && err->code == ENVD_CANCELED) {
        envd_error_free(err);
        if (to == TO_DEADLINE)
            err = envd_error_new(ENVD_DEADLINE_EXCEEDED, ENVD_TRANSPORT_HTTP, x->status,
                                 "failed to %s file %s: deadline of %lld ms exceeded", verb,
                                 x->what, (long long)x->timeout_ms);
        else
            err = envd_error_new(ENVD_DEADLINE_EXCEEDED, ENVD_TRANSPORT_HTTP, 0,
                                 "failed to write file %s: no response within %lld ms after "
                                 "the upload",
                                 x->what, (long long)x->reply_timeout_ms);
    } else if (err && x->stopped_by_cb) {
        envd_error_free(err);
        err = envd_error_new(ENVD_CANCELED, ENVD_TRANSPORT_HTTP, x->status,
                             "failed to read file %s: the data callback stopped the transfer",
                             x->what);
    } else if (err) {
        envd_error_wrap(err, x->is_read ? "failed to read file" : "failed to write file");
    } else if (x->status == 404) {
        err =
            envd_error_new(ENVD_NOT_FOUND, ENVD_TRANSPORT_HTTP, 404, "file not found: %s", x->what);
    } else if (!x->body_ok) {
        envd_error *e = envd_error_from_http_body(x->status, x->buf, x->len, ENVD_TRANSPORT_HTTP);
        /* envd's /files answers 500 for its own I/O failures (open, write,
         * EnsureDirs), which its RPCs report as internal. */
        if (x->status == 500 && e->code == ENVD_UNKNOWN)
            e->code = ENVD_INTERNAL;
        err = envd_error_new(e->code, ENVD_TRANSPORT_HTTP, x->status,
                             "failed to %s file (status %d): %s", verb, x->status, e->message);
        envd_error_free(e);
    } else if (!x->is_read) {
        if ((result = parse_reply(x)))
            free_fn = write_info_free_fn;
    } else if (x->sink == SINK_MEM) {
        bytes_result *b = malloc(sizeof(*b));
        if (b && (x->buf || (x->buf = malloc(1)))) {
            x->buf[x->len] = 0;
            b->data = x->buf;
            b->len = x->len;
            x->buf = NULL;
            result = b;
            free_fn = bytes_free;
        } else {
            free(b);
        }
    } else {
        transfer_result *t = malloc(sizeof(*t));
        if (t) {
            t->bytes = x->moved;
            result = t;
            free_fn = free;
        }
    }
    if (!err && !result)
        err = envd_error_new(ENVD_E_NOMEM, ENVD_TRANSPORT_HTTP, x->status, "out of memory");
    envd_rt_release(x->rt);
    envd_future_complete(x->f, result, free_fn, err);
    xfer_unref(x);
}

/* ---- starting a transfer --------------------------------------------------------- */

typedef struct xfer_args {
    const char *path; /* single file (read, or a write of one source) */
    int is_read;
    int sink;
    int fd;
    envd_data_cb data_cb;
    void *data_ud;
    const src *srcs; /* writes */
    size_t n_srcs;
    int fk; /* future kind */
} xfer_args;

/* Escapes a path for a quoted Content-Disposition parameter the way Go's
 * mime/multipart does (backslash before \ and "), so envd reads it back
 * unchanged. CR and LF, which no quoting survives, become spaces (they are
 * refused earlier where the name matters). */
static char *quote_filename(const char *p)
{
    size_t n = 0;
    for (const char *q = p; *q; q++)
        n += (*q == '\\' || *q == '"') ? 2 : 1;
    char *out = malloc(n + 1), *o = out;
    if (!out)
        return NULL;
    for (const char *q = p; *q; q++) {
        if (*q == '\\' || *q == '"')
            *o++ = '\\';
        *o++ = (*q == '\r' || *q == '\n') ? ' ' : *q;
    }
    *o = 0;
    return out;
}

static envd_status random_boundary(char *out, size_t cap)
{
    unsigned char r[15];
    if (cap < 2 * sizeof r + 1 || RAND_bytes(r, (int)sizeof r) != 1)
        return ENVD_E_NOMEM;
    for (size_t i = 0; i < sizeof r; i++)
        snprintf(out + 2 * i, 3, "%02x", r[i]);
    return ENVD_OK;
}

/* Copies the sources and lays out the multipart framing. */
static envd_status setup_body(xfer *x, const src *srcs, size_t n, int multipart)
{
    x->srcs = calloc(n, sizeof(*x->srcs));
    if (!x->srcs)
        return ENVD_E_NOMEM;
    x->n_srcs = n;
    x->multipart = multipart;
    char boundary[40] = "envd";
    if (multipart && random_boundary(boundary + 4, sizeof boundary - 4) != ENVD_OK)
        return ENVD_E_NOMEM;
    int64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        src *s = &x->srcs[i];
        *s = srcs[i];
        s->head = NULL;
        s->done = 0;
        if (!(s->path = strdup(srcs[i].path)))
            return ENVD_E_NOMEM;
        if (s->kind == SRC_FD && s->size < 0)
            s->size = fd_remaining(s->fd);
        total = (total < 0 || s->size < 0) ? -1 : total + s->size;
        if (multipart) {
            char *q = quote_filename(s->path);
            if (!q)
                return ENVD_E_NOMEM;
            size_t hl = strlen(q) + strlen(boundary) + 160;
            s->head = malloc(hl);
            if (!s->head) {
                free(q);
                return ENVD_E_NOMEM;
            }
            int k = snprintf(s->head, hl,
                             "%s--%s\r\n"
                             "Content-Disposition: form-data; name=\"file\"; filename=\"%s\"\r\n"
                             "Content-Type: application/octet-stream\r\n\r\n",
                             i ? "\r\n" : "", boundary, q);
            free(q);
            s->head_len = (size_t)k;
        }
    }
    x->payload_total = total;
    if (multipart) {
        x->close_len = (size_t)snprintf(x->close, sizeof x->close, "\r\n--%s--\r\n", boundary);
        x->phase = PH_HEAD;
    } else {
        x->phase = n ? PH_DATA : PH_DONE;
    }
    return ENVD_OK;
}

/* Bytes of the whole body: framing plus payload, or -1. */
static int64_t body_size(const xfer *x)
{
    if (x->payload_total < 0)
        return -1;
    int64_t t = x->payload_total;
    if (x->multipart) {
        for (size_t i = 0; i < x->n_srcs; i++)
            t += (int64_t)x->srcs[i].head_len;
        t += (int64_t)x->close_len;
    }
    return t;
}

/* "<files_path>?path=<p>&username=<u>" (path omitted when NULL). */
static char *files_target(envd_client *c, const char *path, const char *user)
{
    char *ep = path ? curl_easy_escape(NULL, path, 0) : NULL;
    char *eu = curl_easy_escape(NULL, user, 0);
    char *out = NULL;
    if ((ep || !path) && eu) {
        size_t n = strlen(c->files_path) + (ep ? strlen(ep) : 0) + strlen(eu) + 32;
        out = malloc(n);
        if (out) {
            if (ep)
                snprintf(out, n, "%s?path=%s&username=%s", c->files_path, ep, eu);
            else
                snprintf(out, n, "%s?username=%s", c->files_path, eu);
        }
    }
    curl_free(ep);
    curl_free(eu);
    return out;
}

static envd_status xfer_start(envd_client *c, const xfer_args *a, const envd_files_opts *o,
                              envd_future **out)
{
    if (!out)
        return ENVD_E_USAGE;
    *out = NULL;
    if (!c || (a->is_read && !a->path) || (!a->is_read && a->n_srcs == 0))
        return ENVD_E_USAGE;
    if (o && !a->is_read && o->octet && a->n_srcs != 1)
        return ENVD_E_USAGE; /* one file per octet-stream request */
    if (o && o->has_range && !a->is_read)
        return ENVD_E_USAGE;
    const char *user = o && o->user ? o->user : c->cfg->user;
    int other_user = strcmp(user, c->cfg->user) != 0;
    const char *qpath = a->is_read ? a->path : (a->n_srcs == 1 ? a->srcs[0].path : NULL);
    int multipart = !a->is_read && !(o && o->octet);

    xfer *x = calloc(1, sizeof(*x));
    if (!x)
        return ENVD_E_NOMEM;
    atomic_init(&x->refs, 2); /* this function + the transport's on_done */
    atomic_init(&x->timed_out, TO_NONE);
    x->rt = c->rt;
    x->is_read = a->is_read;
    x->sink = a->sink;
    x->fd = a->fd;
    x->data_cb = a->data_cb;
    x->data_ud = a->data_ud;
    x->content_length = -1;
    x->timers = c->rt->timers;
    if (o) {
        x->progress = o->progress;
        x->progress_ud = o->progress_ud;
        x->timeout_ms = o->timeout_ms;
    }
    if (!a->is_read)
        x->reply_timeout_ms = c->cfg->request_timeout_ms;
    char what[32];
    snprintf(what, sizeof what, "(%zu files)", a->n_srcs);
    x->what = strdup(qpath ? qpath : what);
    x->f = envd_future_create(a->fk);
    char *target = files_target(c, qpath, user);
    char *meta_lines = NULL;
    envd_status s = ENVD_E_NOMEM;
    int acquired = 0;
    if (!x->what || !x->f || !target)
        goto fail;
    if (!a->is_read && (s = setup_body(x, a->srcs, a->n_srcs, multipart)) != ENVD_OK)
        goto fail;
    if ((s = envd_rt_acquire(c->rt)) != ENVD_OK)
        goto fail;
    acquired = 1;
    {
        size_t n_meta = o && !a->is_read ? o->n_meta : 0;
        envd_kv hdrs[c->n_headers + 2 + n_meta];
        char *owned = NULL;
        /* Same headers as the RPCs: Authorization follows the same user. */
        size_t nh = envd_call_headers(c, other_user ? user : NULL, hdrs, &owned);
        char range[64];
        if (o && o->has_range && a->is_read) {
            if (o->range_len < 0)
                snprintf(range, sizeof range, "bytes=%lld-", (long long)o->range_off);
            else
                snprintf(range, sizeof range, "bytes=%lld-%lld", (long long)o->range_off,
                         (long long)(o->range_off + o->range_len - 1));
            hdrs[nh++] = (envd_kv){"range", range};
        }
        if (n_meta) {
            /* "x-metadata-<key>\0" for each key, in one block */
            size_t need = 0;
            for (size_t i = 0; i < n_meta; i++)
                need += strlen(o->meta_keys[i]) + sizeof("x-metadata-");
            if (!(meta_lines = malloc(need))) {
                free(owned);
                goto fail;
            }
            char *p = meta_lines;
            for (size_t i = 0; i < n_meta; i++) {
                int k = sprintf(p, "x-metadata-%s", o->meta_keys[i]);
                hdrs[nh++] = (envd_kv){p, o->meta_values[i]};
                p += k + 1;
            }
        }
        char ctype[96];
        envd_http_part raw = {0};
        if (!a->is_read) {
            if (multipart) {
                /* the boundary: from the closing line "\r\n--<b>--\r\n" */
                snprintf(ctype, sizeof ctype, "multipart/form-data; boundary=%.*s",
                         (int)(x->close_len - 8), x->close + 4);
            } else {
                snprintf(ctype, sizeof ctype, "application/octet-stream");
            }
            raw.content_type = ctype;
            raw.read = body_read;
            raw.read_ud = x;
            raw.size = body_size(x);
        }
        envd_http_request req = {
            .ep = &c->ep,
            .method = a->is_read ? "GET" : "POST",
            .path = target,
            .headers = hdrs,
            .n_headers = nh,
            .raw = a->is_read ? NULL : &raw,
            .gzip_request = !a->is_read && o && o->gzip,
            .accept_gzip = a->is_read && o && o->gzip,
            /* A read waits for its headers; a write gets them only after its
             * body, however long that takes: its wait starts at the end of
             * the body (reply_t). */
            .timeout_ms = a->is_read ? c->cfg->request_timeout_ms : 0,
            .idle_timeout_ms = o && o->idle_set ? o->idle_timeout_ms : c->cfg->idle_timeout_ms,
        };
        envd_http_callbacks cb = {on_status, on_data, NULL, on_done, x};
        if (x->timeout_ms > 0 &&
            !(x->deadline_t = envd_timer_start(x->timers, x->timeout_ms, on_deadline, x))) {
            free(owned);
            goto fail;
        }
        envd_http *h = NULL;
        s = envd_http_start(c->rt->curl, &req, &cb, &h);
        free(owned);
        if (s != ENVD_OK) {
            if (x->deadline_t)
                envd_timer_cancel(x->deadline_t);
            x->deadline_t = NULL;
            goto fail;
        }
        atomic_store(&x->http, h);
        if (atomic_load(&x->timed_out) != TO_NONE) /* the deadline beat the store */
            envd_http_cancel(h);
    }
    free(meta_lines);
    free(target);
    envd_future *f = x->f;
    envd_cancel_hook hook = {xfer_cancel, xfer_ref, xfer_unref, x};
    envd_future_set_cancel(f, &hook);
    *out = f;
    xfer_unref(x);
    return ENVD_OK;
fail:
    if (acquired)
        envd_rt_release(c->rt);
    free(meta_lines);
    free(target);
    if (x->f) {
        envd_future_complete(x->f, NULL, NULL, NULL);
        envd_future_free(x->f);
    }
    srcs_free(x->srcs, x->n_srcs);
    free(x->what);
    free(x);
    return s;
}

/* ---- reads ---------------------------------------------------------------------- */

static envd_status read_start(envd_client *c, const char *path, int sink, int fd, envd_data_cb cb,
                              void *ud, const envd_files_opts *o, envd_future **out)
{
    xfer_args a = {.path = path,
                   .is_read = 1,
                   .sink = sink,
                   .fd = fd,
                   .data_cb = cb,
                   .data_ud = ud,
                   .fk = sink == SINK_MEM ? ENVD_FK_BYTES : ENVD_FK_TRANSFER};
    return xfer_start(c, &a, o, out);
}

/* The per-call user as options (NULL when none). */
static envd_files_opts *user_opts(envd_files_opts *tmp, const char *user)
{
    if (!user || !*user)
        return NULL;
    memset(tmp, 0, sizeof(*tmp));
    tmp->user = (char *)user;
    return tmp;
}

envd_status envd_files_read_async(envd_client *c, const char *path, const char *user,
                                  envd_future **out)
{
    envd_files_opts tmp;
    return read_start(c, path, SINK_MEM, -1, NULL, NULL, user_opts(&tmp, user), out);
}

const uint8_t *envd_future_bytes(const envd_future *f, size_t *len)
{
    bytes_result *b = envd_future_result(f, ENVD_FK_BYTES);
    if (len)
        *len = b ? b->len : 0;
    return b ? b->data : NULL;
}

envd_status envd_files_read(envd_client *c, const char *path, const char *user, uint8_t **data,
                            size_t *len, envd_error **err)
{
    if (err)
        *err = NULL;
    if (!data || !len)
        return ENVD_E_USAGE;
    *data = NULL;
    *len = 0;
    envd_future *f;
    envd_status s = envd_files_read_async(c, path, user, &f);
    if (s != ENVD_OK)
        return s;
    bytes_result *b = NULL;
    s = envd_sync_finish(f, (void **)&b, err);
    if (b) {
        *data = b->data;
        *len = b->len;
        free(b);
    }
    return s;
}

envd_status envd_files_read_text(envd_client *c, const char *path, const char *user, char **text,
                                 envd_error **err)
{
    if (text)
        *text = NULL;
    if (!text) {
        if (err)
            *err = NULL;
        return ENVD_E_USAGE;
    }
    uint8_t *d = NULL;
    size_t n = 0;
    envd_status s = envd_files_read(c, path, user, &d, &n, err);
    *text = (char *)d;
    return s;
}

/* Waits for a transfer future that has no result the caller wants. */
static envd_status finish_plain(envd_future *f, envd_error **err)
{
    void *r = NULL;
    envd_status s = envd_sync_finish(f, &r, err);
    free(r);
    return s;
}

envd_status envd_files_read_to_fd_async(envd_client *c, const char *path, int fd,
                                        const envd_files_opts *o, envd_future **out)
{
    if (fd < 0)
        return ENVD_E_USAGE;
    return read_start(c, path, SINK_FD, fd, NULL, NULL, o, out);
}

envd_status envd_files_read_to_fd(envd_client *c, const char *path, int fd,
                                  const envd_files_opts *o, envd_error **err)
{
    if (err)
        *err = NULL;
    envd_future *f;
    envd_status s = envd_files_read_to_fd_async(c, path, fd, o, &f);
    if (s != ENVD_OK)
        return s;
    return finish_plain(f, err);
}

envd_status envd_files_read_stream_async(envd_client *c, const char *path, envd_data_cb cb,
                                         void *ud, const envd_files_opts *o, envd_future **out)
{
    if (!cb)
        return ENVD_E_USAGE;
    return read_start(c, path, SINK_CB, -1, cb, ud, o, out);
}

envd_status envd_files_read_stream(envd_client *c, const char *path, envd_data_cb cb, void *ud,
                                   const envd_files_opts *o, envd_error **err)
{
    if (err)
        *err = NULL;
    envd_future *f;
    envd_status s = envd_files_read_stream_async(c, path, cb, ud, o, &f);
    if (s != ENVD_OK)
        return s;
    return finish_plain(f, err);
}

/* ---- writes --------------------------------------------------------------------- */

static envd_status write_start(envd_client *c, const src *srcs, size_t n, const envd_files_opts *o,
                               envd_future **out)
{
    for (size_t i = 0; i < n; i++)
        if (!srcs[i].path)
            return ENVD_E_USAGE;
    xfer_args a = {.is_read = 0, .srcs = srcs, .n_srcs = n, .fk = ENVD_FK_WRITE_INFO, .fd = -1};
    return xfer_start(c, &a, o, out);
}

static envd_status write_finish(envd_future *f, envd_write_info **info, envd_error **err)
{
    envd_write_info *w = NULL;
    envd_status s = envd_sync_finish(f, (void **)&w, err);
    if (info)
        *info = w;
    else
        envd_write_info_free(w);
    return s;
}

envd_status envd_files_write_async(envd_client *c, const char *path, const void *data, size_t len,
                                   const char *user, envd_future **out)
{
    if (!path || (!data && len))
        return ENVD_E_USAGE;
    src s = {.path = (char *)path, .kind = SRC_MEM, .data = data, .fd = -1, .size = (int64_t)len};
    envd_files_opts tmp;
    return write_start(c, &s, 1, user_opts(&tmp, user), out);
}

envd_status envd_files_write(envd_client *c, const char *path, const void *data, size_t len,
                             const char *user, envd_error **err)
{
    if (err)
        *err = NULL;
    envd_future *f;
    envd_status s = envd_files_write_async(c, path, data, len, user, &f);
    if (s != ENVD_OK)
        return s;
    return write_finish(f, NULL, err);
}

envd_status envd_files_write_text(envd_client *c, const char *path, const char *text,
                                  const char *user, envd_error **err)
{
    if (!text) {
        if (err)
            *err = NULL;
        return ENVD_E_USAGE;
    }
    return envd_files_write(c, path, text, strlen(text), user, err);
}

envd_status envd_files_write_from_fd_async(envd_client *c, const char *path, int fd, int64_t size,
                                           const envd_files_opts *o, envd_future **out)
{
    if (!path || fd < 0)
        return ENVD_E_USAGE;
    src s = {.path = (char *)path, .kind = SRC_FD, .fd = fd, .size = size < 0 ? -1 : size};
    return write_start(c, &s, 1, o, out);
}

envd_status envd_files_write_from_fd(envd_client *c, const char *path, int fd, int64_t size,
                                     const envd_files_opts *o, envd_write_info **info,
                                     envd_error **err)
{
    if (err)
        *err = NULL;
    if (info)
        *info = NULL;
    envd_future *f;
    envd_status s = envd_files_write_from_fd_async(c, path, fd, size, o, &f);
    if (s != ENVD_OK)
        return s;
    return write_finish(f, info, err);
}

envd_status envd_files_write_stream_async(envd_client *c, const char *path, envd_read_cb cb,
                                          void *ud, int64_t size, const envd_files_opts *o,
                                          envd_future **out)
{
    if (!path || !cb)
        return ENVD_E_USAGE;
    src s = {.path = (char *)path,
             .kind = SRC_CB,
             .cb = cb,
             .ud = ud,
             .fd = -1,
             .size = size < 0 ? -1 : size};
    return write_start(c, &s, 1, o, out);
}

envd_status envd_files_write_stream(envd_client *c, const char *path, envd_read_cb cb, void *ud,
                                    int64_t size, const envd_files_opts *o, envd_write_info **info,
                                    envd_error **err)
{
    if (err)
        *err = NULL;
    if (info)
        *info = NULL;
    envd_future *f;
    envd_status s = envd_files_write_stream_async(c, path, cb, ud, size, o, &f);
    if (s != ENVD_OK)
        return s;
    return write_finish(f, info, err);
}

envd_status envd_files_write_batch_async(envd_client *c, const envd_write_batch *b,
                                         const envd_files_opts *o, envd_future **out)
{
    if (!b || b->n == 0) {
        if (out)
            *out = NULL;
        return ENVD_E_USAGE;
    }
    return write_start(c, b->items, b->n, o, out);
}

envd_status envd_files_write_batch(envd_client *c, const envd_write_batch *b,
                                   const envd_files_opts *o, envd_write_info **info,
                                   envd_error **err)
{
    if (err)
        *err = NULL;
    if (info)
        *info = NULL;
    envd_future *f;
    envd_status s = envd_files_write_batch_async(c, b, o, &f);
    if (s != ENVD_OK)
        return s;
    return write_finish(f, info, err);
}
