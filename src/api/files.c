/* /files over plain HTTP: whole-buffer read and write. */
#include "api/internal.h"

#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ERROR_BODY_MAX 4096

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

typedef struct files_op {
    envd_client *c;
    envd_future *f;
    _Atomic(envd_http *) http;
    atomic_int refs;
    char *path; /* for messages */
    int is_read;
    int status;
    uint8_t *buf;
    size_t len, cap;
    int oom;
} files_op;

static void op_unref(void *p)
{
    files_op *op = p;
    if (atomic_fetch_sub(&op->refs, 1) != 1)
        return;
    envd_http *h = atomic_load(&op->http);
    if (h)
        envd_http_release(h);
    free(op->path);
    free(op->buf);
    free(op);
}

static void op_ref(void *p) { atomic_fetch_add(&((files_op *)p)->refs, 1); }

static void op_cancel(void *p)
{
    envd_http *h = atomic_load(&((files_op *)p)->http);
    if (h)
        envd_http_cancel(h);
}

static int on_status(void *ud, int status, int64_t content_length)
{
    files_op *op = ud;
    op->status = status;
    if (op->is_read && status == 200 && content_length > 0 && (uint64_t)content_length < SIZE_MAX) {
        op->buf = malloc((size_t)content_length + 1);
        if (!op->buf)
            return -1;
        op->cap = (size_t)content_length + 1;
    }
    return 0;
}

static int on_data(void *ud, const uint8_t *d, size_t n)
{
    files_op *op = ud;
    int ok_body = op->is_read && op->status == 200;
    if (!ok_body && op->len >= ERROR_BODY_MAX)
        return 0; /* keep only an excerpt of error bodies */
    if (!ok_body && op->len + n > ERROR_BODY_MAX)
        n = ERROR_BODY_MAX - op->len;
    if (op->len + n + 1 > op->cap) {
        size_t nc = op->cap ? op->cap : 16384;
        while (nc < op->len + n + 1)
            nc *= 2;
        uint8_t *nb = realloc(op->buf, nc);
        if (!nb) {
            op->oom = 1;
            return -1;
        }
        op->buf = nb;
        op->cap = nc;
    }
    memcpy(op->buf + op->len, d, n);
    op->len += n;
    return 0;
}

static void on_done(void *ud, envd_error *err)
{
    files_op *op = ud;
    void *result = NULL;
    envd_free_fn free_fn = NULL;
    const char *verb = op->is_read ? "read" : "write";
    if (err) {
        if (op->oom) {
            envd_error_free(err);
            err = envd_error_new(ENVD_E_NOMEM, ENVD_TRANSPORT_HTTP, 0, "out of memory reading %s",
                                 op->path);
        }
        envd_error_wrap(err, op->is_read ? "failed to read file" : "failed to write file");
    } else if (op->status == 404) {
        err = envd_error_new(ENVD_NOT_FOUND, ENVD_TRANSPORT_HTTP, 404, "file not found: %s",
                             op->path);
    } else if (op->is_read ? op->status != 200 : (op->status != 200 && op->status != 201)) {
        envd_error *e = envd_error_from_http_body(op->status, op->buf, op->len,
                                                  ENVD_TRANSPORT_HTTP);
        err = envd_error_new(e->code, ENVD_TRANSPORT_HTTP, op->status,
                             "failed to %s file (status %d): %s", verb, op->status, e->message);
        envd_error_free(e);
    } else if (op->is_read) {
        bytes_result *b = malloc(sizeof(*b));
        if (!b || (!op->buf && !(op->buf = malloc(1)))) {
            free(b);
            err = envd_error_new(ENVD_E_NOMEM, ENVD_TRANSPORT_HTTP, 0, "out of memory");
        } else {
            op->buf[op->len] = 0;
            b->data = op->buf;
            b->len = op->len;
            op->buf = NULL;
            result = b;
            free_fn = bytes_free;
        }
    }
    envd_rt_release(op->c->rt); /* before completing: the caller may free the client */
    envd_future_complete(op->f, result, free_fn, err);
    op_unref(op);
}

/* "/files?path=<p>&username=<u>" with both values URL-encoded. */
static char *files_target(envd_client *c, const char *path, const char *user)
{
    char *ep = curl_easy_escape(NULL, path, 0);
    char *eu = curl_easy_escape(NULL, user, 0);
    char *out = NULL;
    if (ep && eu) {
        size_t n = strlen(c->files_path) + strlen(ep) + strlen(eu) + 32;
        out = malloc(n);
        if (out)
            snprintf(out, n, "%s?path=%s&username=%s", c->files_path, ep, eu);
    }
    curl_free(ep);
    curl_free(eu);
    return out;
}

static envd_status files_start(envd_client *c, const char *path, const char *user, int is_read,
                               const void *data, size_t len, envd_future **out)
{
    if (!c || !path || !out || (!is_read && !data && len))
        return ENVD_E_USAGE;
    *out = NULL;
    if (!user || !*user)
        user = c->cfg->user;
    files_op *op = calloc(1, sizeof(*op));
    if (!op)
        return ENVD_E_NOMEM;
    atomic_init(&op->refs, 2);
    op->c = c;
    op->is_read = is_read;
    op->path = strdup(path);
    op->f = envd_future_create(is_read ? ENVD_FK_BYTES : ENVD_FK_NONE);
    char *target = files_target(c, path, user);
    envd_status s = ENVD_E_NOMEM;
    if (!op->path || !op->f || !target)
        goto fail;
    if ((s = envd_rt_acquire(c->rt)) != ENVD_OK)
        goto fail;
    {
        envd_kv hdrs[c->n_headers + 1];
        char *owned = NULL;
        /* Same headers as the RPCs: authorization follows the same user. */
        size_t nh = envd_call_headers(c, user == c->cfg->user ? NULL : user, hdrs, &owned);
        envd_http_part part = {
            .name = "file",
            .filename = path,
            .content_type = "application/octet-stream",
            .data = data,
            .len = len,
            .size = (int64_t)len,
        };
        envd_http_request req = {
            .ep = &c->ep,
            .method = is_read ? "GET" : "POST",
            .path = target,
            .headers = hdrs,
            .n_headers = nh,
            .parts = is_read ? NULL : &part,
            .n_parts = is_read ? 0 : 1,
            .timeout_ms = c->cfg->request_timeout_ms,
            .idle_timeout_ms = c->cfg->idle_timeout_ms,
        };
        envd_http_callbacks cb = {on_status, on_data, NULL, on_done, op};
        envd_http *h = NULL;
        s = envd_http_start(c->rt->curl, &req, &cb, &h);
        free(owned);
        if (s != ENVD_OK) {
            envd_rt_release(c->rt);
            goto fail;
        }
        atomic_store(&op->http, h);
    }
    free(target);
    envd_future *f = op->f;
    envd_cancel_hook hook = {op_cancel, op_ref, op_unref, op};
    envd_future_set_cancel(f, &hook);
    *out = f;
    op_unref(op);
    return ENVD_OK;
fail:
    free(target);
    if (op->f) {
        envd_future_complete(op->f, NULL, NULL, NULL);
        envd_future_free(op->f);
    }
    free(op->path);
    free(op);
    return s;
}

envd_status envd_files_read_async(envd_client *c, const char *path, const char *user,
                                  envd_future **out)
{
    return files_start(c, path, user, 1, NULL, 0, out);
}

envd_status envd_files_write_async(envd_client *c, const char *path, const void *data,
                                   size_t len, const char *user, envd_future **out)
{
    return files_start(c, path, user, 0, data, len, out);
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

envd_status envd_files_write(envd_client *c, const char *path, const void *data, size_t len,
                             const char *user, envd_error **err)
{
    if (err)
        *err = NULL;
    envd_future *f;
    envd_status s = envd_files_write_async(c, path, data, len, user, &f);
    if (s != ENVD_OK)
        return s;
    return envd_sync_finish(f, NULL, err);
}
