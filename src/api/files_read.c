/* Reads over /files: GET into the sink the options name (memory by
 * default, a file descriptor, or a callback), chunk by chunk as curl
 * receives it. */
#include "api/files_internal.h"
#include "core/alloc.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A read into memory stops here (ENVD_RESOURCE_EXHAUSTED) rather than at
 * whatever allocation fails first: bigger files go to an fd or callback. */
#if SIZE_MAX > 0xffffffffu
#define MEM_SINK_MAX ((size_t)4 << 30)
#else
#define MEM_SINK_MAX ((size_t)1 << 30)
#endif
/* What a Content-Length may reserve up front; the rest grows as it comes,
 * so a reply claiming more than it sends costs nothing. */
#define MEM_RESERVE_MAX ((size_t)8 << 20)

typedef struct bytes_result {
    uint8_t *data;
    size_t len;
} bytes_result;

typedef struct transfer_result {
    int64_t bytes;
} transfer_result;

static void bytes_free(void *p)
{
    bytes_result *b = p;
    if (b) {
        free(b->data);
        free(b);
    }
}

/* ---- the read side of a transfer (I/O thread) ------------------------------------ */

static int over_limit(files_xfer *x, uint64_t bytes)
{
    envd_files_fail(x, ENVD_RESOURCE_EXHAUSTED,
                    "failed to read file %s: %llu bytes do not fit the in-memory read limit of "
                    "%zu bytes; read it into a file descriptor or callback sink",
                    x->what, (unsigned long long)bytes, (size_t)MEM_SINK_MAX);
    return -1;
}

int envd_files_on_status_read(files_xfer *x, int64_t content_length)
{
    if (x->o.sink != ENVD_SINK_MEM)
        return 0;
    envd_buf_init_capped(&x->body, MEM_SINK_MAX);
    if (content_length <= 0)
        return 0;
    if ((uint64_t)content_length > MEM_SINK_MAX)
        return over_limit(x, (uint64_t)content_length);
    /* A hint only: without it the buffer grows as bytes come. */
    (void)envd_buf_reserve(&x->body, (size_t)content_length < MEM_RESERVE_MAX
                                         ? (size_t)content_length
                                         : MEM_RESERVE_MAX);
    return 0;
}

static int sink_fd(files_xfer *x, const uint8_t *d, size_t n)
{
    while (n > 0) {
        ssize_t w = write(x->o.sink_fd, d, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                struct pollfd p = {x->o.sink_fd, POLLOUT, 0};
                (void)poll(&p, 1, 1000);
                continue;
            }
            envd_files_fail(x, ENVD_E_IO,
                            "failed to read file %s: writing to the file descriptor: %s", x->what,
                            strerror(errno));
            return -1;
        }
        d += w;
        n -= (size_t)w;
    }
    return 0;
}

int envd_files_sink(files_xfer *x, const uint8_t *d, size_t n)
{
    int rc = 0;
    switch (x->o.sink) {
    case ENVD_SINK_MEM:
        rc = x->body.len + n > MEM_SINK_MAX ? over_limit(x, (uint64_t)x->body.len + n)
                                            : envd_files_keep(x, d, n);
        break;
    case ENVD_SINK_FD: rc = sink_fd(x, d, n); break;
    default:
        if (x->o.sink_cb(x->o.sink_ud, d, n) != 0) {
            envd_files_fail(x, ENVD_CANCELED,
                            "failed to read file %s: the data callback stopped the transfer",
                            x->what);
            rc = -1;
        }
        break;
    }
    if (rc == 0) {
        x->moved += (int64_t)n;
        envd_files_progress(x, x->content_length);
    }
    return rc;
}

void *envd_files_read_result(files_xfer *x, envd_free_fn *free_fn)
{
    if (x->o.sink != ENVD_SINK_MEM) {
        transfer_result *t = envd_malloc(sizeof *t);
        if (t) {
            t->bytes = x->moved;
            *free_fn = free;
        }
        return t;
    }
    bytes_result *b = envd_malloc(sizeof *b);
    if (!b || !(b->data = (uint8_t *)envd_buf_take(&x->body, &b->len))) {
        free(b);
        return NULL;
    }
    *free_fn = bytes_free;
    return b;
}

/* ---- the calls ------------------------------------------------------------------------ */

envd_status envd_files_read_async(envd_client *c, const char *path, const envd_files_opts *o,
                                  envd_future **out)
{
    files_args a = {.path = path, .is_read = 1};
    return envd_files_xfer_start(c, &a, o, out);
}

const uint8_t *envd_future_bytes(const envd_future *f, size_t *len)
{
    bytes_result *b = envd_future_result(f, ENVD_FK_BYTES);
    if (len)
        *len = b ? b->len : 0;
    return b ? b->data : NULL;
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
    case ENVD_FK_WRITE_INFO: return envd_files_write_info_bytes(f);
    default: return 0;
    }
}

void envd_files_read_out(void *r, int kind, uint8_t **data, size_t *len)
{
    if (r && kind == ENVD_FK_BYTES) {
        bytes_result *b = r;
        *data = b->data;
        *len = b->len;
    } else if (r) {
        *len = (size_t)((transfer_result *)r)->bytes;
    }
    free(r);
}
