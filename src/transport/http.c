/* Plain HTTP for envd's /files over the libcurl engine.
 *
 * Bodies stream both ways: a download goes to on_data chunk by chunk as curl
 * receives it, an upload is pulled from the caller's read callbacks (or from
 * one copy of the caller's buffer) as the socket takes it, optionally through
 * a streaming gzip deflate. Memory stays flat whatever the file size.
 */
#include "transport/curl_engine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

#define GZ_IN_CAP ((size_t)64 << 10)

typedef struct part_src {
    envd_http *h;
    size_t (*read)(void *ud, uint8_t *buf, size_t cap);
    void *ud;
} part_src;

struct envd_http {
    envd_curl_xfer x; /* first */
    envd_http_callbacks cb;
    char *label; /* "POST /files?path=..." for messages */
    char *url;
    struct curl_slist *hdrs;
    curl_mime *mime;
    part_src *parts;

    /* Raw body source: caller's callback or our copy of its buffer. */
    size_t (*read)(void *ud, uint8_t *buf, size_t cap);
    void *read_ud;
    uint8_t *mem;
    size_t mem_len;

    /* gzip on the fly */
    int gzip;
    int zs_init;
    z_stream zs;
    uint8_t *zin;
    int in_eof, z_done;

    /* Progress counts the caller's body bytes (before gzip, without chunk
     * framing) for raw bodies; curl's count (with the multipart framing) for
     * forms. */
    int progress_from_source;
    int64_t src_bytes;
    int64_t upload_total; /* -1 unknown */
    int64_t last_ul;

    /* I/O thread. */
    int has_body;
    int body_eof; /* a read-callback body returned its end */
    int headers_done;
    long status;
    int encoded; /* the response had a Content-Encoding */
    envd_error *err;
};

static envd_http *http_of(envd_curl_xfer *x)
{
    return (envd_http *)x;
}

static void set_err(envd_http *h, envd_status code, const char *what)
{
    if (!h->err)
        h->err =
            envd_error_new(code, ENVD_TRANSPORT_HTTP, (int)h->status, "%s: %s", h->label, what);
}

/* ---- response (I/O thread) ----------------------------------------------- */

static int headers_complete(envd_http *h, long code)
{
    h->headers_done = 1;
    h->status = code;
    if (h->has_body) {
        /* An error reply to a request with a body (e.g. 507 half way through
         * an upload) may come before the server read the whole body, and
         * curl would keep the connection even when it stopped sending: the
         * server, still expecting body bytes (or not draining them), then
         * reads the next request as body and both sides wait. Never reuse
         * such a connection; error replies are rare, a new connection is
         * cheap. Same for a success before the body went out in full.
         * (libcurl reads this option when the transfer is done.) */
        curl_off_t want = -1, sent = 0;
        curl_easy_getinfo(h->x.easy, CURLINFO_CONTENT_LENGTH_UPLOAD_T, &want);
        curl_easy_getinfo(h->x.easy, CURLINFO_SIZE_UPLOAD_T, &sent);
        if (code >= 300 || (!h->body_eof && (want < 0 || sent < want)))
            curl_easy_setopt(h->x.easy, CURLOPT_FORBID_REUSE, 1L);
    }
    envd_curl_xfer_first_seen(&h->x);
    curl_off_t cl = -1;
    curl_easy_getinfo(h->x.easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
    if (h->encoded)
        cl = -1; /* decoded size unknown */
    if (h->cb.on_status && h->cb.on_status(h->cb.ud, (int)code, (int64_t)cl) != 0) {
        atomic_store_explicit(&h->x.cancel_requested, 1, memory_order_release);
        return -1;
    }
    return 0;
}

static size_t on_header(char *buf, size_t size, size_t n, void *ud)
{
    envd_http *h = ud;
    size_t len = size * n;
    envd_curl_xfer_touch(&h->x);
    if (h->headers_done)
        return len; /* trailers */
    if (len >= 5 && memcmp(buf, "HTTP/", 5) == 0) {
        h->encoded = 0; /* a new header block (after a 1xx) */
    } else if (len > 17 && strncasecmp(buf, "content-encoding:", 17) == 0) {
        const char *v = buf + 17;
        while (v < buf + len && (*v == ' ' || *v == '\t'))
            v++;
        if (v < buf + len && strncasecmp(v, "identity", 8) != 0 && *v != '\r' && *v != '\n')
            h->encoded = 1;
    } else if (len <= 2 && (buf[0] == '\r' || buf[0] == '\n')) {
        long code = 0;
        curl_easy_getinfo(h->x.easy, CURLINFO_RESPONSE_CODE, &code);
        if (code >= 200 && headers_complete(h, code) != 0)
            return 0;
    }
    return len;
}

static size_t on_write(char *ptr, size_t size, size_t n, void *ud)
{
    envd_http *h = ud;
    size_t len = size * n;
    envd_curl_xfer_touch(&h->x);
    if (atomic_load_explicit(&h->x.cancel_requested, memory_order_acquire))
        return 0;
    if (!h->headers_done) {
        long code = 0;
        curl_easy_getinfo(h->x.easy, CURLINFO_RESPONSE_CODE, &code);
        if (headers_complete(h, code) != 0)
            return 0;
    }
    if (h->cb.on_data && len > 0 && h->cb.on_data(h->cb.ud, (const uint8_t *)ptr, len) != 0) {
        atomic_store_explicit(&h->x.cancel_requested, 1, memory_order_release);
        return 0;
    }
    return len;
}

static int on_xferinfo(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    envd_http *h = ud;
    (void)dltotal;
    (void)dlnow;
    int64_t sent = (int64_t)ulnow, total = h->upload_total;
    if (h->progress_from_source) {
        sent = h->src_bytes;
        if (h->mem) /* gzip from memory: what deflate has consumed */
            sent = (int64_t)(h->mem_len - h->zs.avail_in);
    } else if (total < 0 && ultotal > 0) {
        total = (int64_t)ultotal;
    }
    if (sent != h->last_ul) {
        h->last_ul = sent;
        h->cb.on_progress(h->cb.ud, sent, total);
    }
    return 0;
}

/* ---- request body (I/O thread) ------------------------------------------- */

/* One read from the caller's callback, with its failure turned into our
 * error. Returns (size_t)-1 on failure. */
static size_t user_read(envd_http *h, size_t (*fn)(void *, uint8_t *, size_t), void *ud,
                        uint8_t *buf, size_t cap)
{
    size_t got = fn(ud, buf, cap);
    if (got == (size_t)-1) {
        set_err(h, ENVD_E_IO, "the body read callback failed");
        return (size_t)-1;
    }
    if (got > cap) {
        set_err(h, ENVD_E_IO, "the body read callback returned more than it was asked for");
        return (size_t)-1;
    }
    envd_curl_xfer_touch(&h->x);
    h->src_bytes += (int64_t)got;
    return got;
}

static size_t on_read_raw(char *buf, size_t size, size_t n, void *ud)
{
    envd_http *h = ud;
    if (atomic_load_explicit(&h->x.cancel_requested, memory_order_acquire))
        return CURL_READFUNC_ABORT;
    size_t got = user_read(h, h->read, h->read_ud, (uint8_t *)buf, size * n);
    if (got == 0)
        h->body_eof = 1;
    return got == (size_t)-1 ? CURL_READFUNC_ABORT : got;
}

static size_t on_read_gzip(char *buf, size_t size, size_t n, void *ud)
{
    envd_http *h = ud;
    size_t cap = size * n;
    if (atomic_load_explicit(&h->x.cancel_requested, memory_order_acquire))
        return CURL_READFUNC_ABORT;
    if (h->z_done)
        return 0;
    h->zs.next_out = (Bytef *)buf;
    h->zs.avail_out = (uInt)(cap > UINT32_MAX ? UINT32_MAX : cap);
    uInt out_cap = h->zs.avail_out;
    while (h->zs.avail_out > 0) {
        if (h->zs.avail_in == 0 && !h->in_eof) {
            if (h->read) {
                size_t got = user_read(h, h->read, h->read_ud, h->zin, GZ_IN_CAP);
                if (got == (size_t)-1)
                    return CURL_READFUNC_ABORT;
                if (got == 0)
                    h->in_eof = 1;
                h->zs.next_in = h->zin;
                h->zs.avail_in = (uInt)got;
            } else {
                h->in_eof = 1; /* the whole buffer was handed over at start */
            }
        }
        int rc = deflate(&h->zs, h->in_eof ? Z_FINISH : Z_NO_FLUSH);
        if (rc == Z_STREAM_END) {
            h->z_done = 1;
            h->body_eof = 1;
            break;
        }
        if (rc != Z_OK && rc != Z_BUF_ERROR) {
            set_err(h, ENVD_E_IO, "gzip compression failed");
            return CURL_READFUNC_ABORT;
        }
    }
    return out_cap - h->zs.avail_out;
}

static size_t on_read_part(char *buf, size_t size, size_t n, void *ud)
{
    part_src *p = ud;
    if (atomic_load_explicit(&p->h->x.cancel_requested, memory_order_acquire))
        return CURL_READFUNC_ABORT;
    size_t got = user_read(p->h, p->read, p->ud, (uint8_t *)buf, size * n);
    return got == (size_t)-1 ? CURL_READFUNC_ABORT : got;
}

/* ---- lifecycle --------------------------------------------------------------- */

static void http_done(envd_curl_xfer *x, CURLcode rc, envd_status abort, const char *why)
{
    envd_http *h = http_of(x);
    envd_error *err = NULL;
    if (abort != ENVD_OK) {
        err = envd_error_new(abort, ENVD_TRANSPORT_HTTP, (int)h->status, "%s: %s", h->label, why);
    } else if (h->err) {
        err = h->err;
        h->err = NULL;
    } else if (rc != CURLE_OK) {
        char buf[CURL_ERROR_SIZE + 512];
        envd_status st = envd_curl_describe(x, rc, buf, sizeof buf);
        err = envd_error_new(st, ENVD_TRANSPORT_HTTP, (int)h->status, "%s: %s", h->label, buf);
    }
    h->cb.on_done(h->cb.ud, err);
}

static void http_destroy(envd_curl_xfer *x)
{
    envd_http *h = http_of(x);
    if (h->x.easy)
        curl_easy_cleanup(h->x.easy);
    curl_mime_free(h->mime); /* after the easy handle */
    curl_slist_free_all(h->hdrs);
    if (h->zs_init)
        deflateEnd(&h->zs);
    free(h->zin);
    free(h->mem);
    free(h->parts);
    free(h->label);
    free(h->url);
    envd_error_free(h->err);
    free(h);
}

static const envd_curl_xfer_vt http_vt = {http_done, http_destroy};

static envd_status add_header(struct curl_slist **l, const char *line)
{
    struct curl_slist *n = curl_slist_append(*l, line);
    if (!n)
        return ENVD_E_NOMEM;
    *l = n;
    return ENVD_OK;
}

static envd_status setup_mime(envd_http *h, const envd_http_request *req)
{
    h->mime = curl_mime_init(h->x.easy);
    h->parts = calloc(req->n_parts, sizeof *h->parts);
    if (!h->mime || !h->parts)
        return ENVD_E_NOMEM;
    int64_t total = 0;
    for (size_t i = 0; i < req->n_parts; i++) {
        const envd_http_part *p = &req->parts[i];
        if (!p->name || (!p->read && p->len > 0 && !p->data))
            return ENVD_E_USAGE;
        curl_mimepart *mp = curl_mime_addpart(h->mime);
        if (!mp || curl_mime_name(mp, p->name) != CURLE_OK ||
            curl_mime_type(mp, p->content_type ? p->content_type : "application/octet-stream") !=
                CURLE_OK)
            return ENVD_E_NOMEM;
        if (p->filename && curl_mime_filename(mp, p->filename) != CURLE_OK)
            return ENVD_E_NOMEM;
        if (p->read) {
            h->parts[i] = (part_src){h, p->read, p->read_ud};
            if (curl_mime_data_cb(mp, p->size < 0 ? (curl_off_t)-1 : (curl_off_t)p->size,
                                  on_read_part, NULL, NULL, &h->parts[i]) != CURLE_OK)
                return ENVD_E_NOMEM;
            total = (p->size < 0 || total < 0) ? -1 : total + p->size;
        } else {
            /* curl copies the bytes. */
            if (curl_mime_data(mp, p->len ? (const char *)p->data : "", p->len) != CURLE_OK)
                return ENVD_E_NOMEM;
            if (total >= 0)
                total += (int64_t)p->len;
        }
    }
    (void)total; /* curl knows the framed size; see on_xferinfo */
    h->upload_total = -1;
    curl_easy_setopt(h->x.easy, CURLOPT_MIMEPOST, h->mime);
    return ENVD_OK;
}

static envd_status setup_raw(envd_http *h, const envd_http_request *req)
{
    const envd_http_part *raw = req->raw;
    if (!raw->read && raw->len > 0 && !raw->data)
        return ENVD_E_USAGE;
    char ct[256];
    snprintf(ct, sizeof ct, "Content-Type: %s",
             raw->content_type ? raw->content_type : "application/octet-stream");
    if (strpbrk(ct, "\r\n"))
        return ENVD_INVALID_ARGUMENT;
    envd_status st = add_header(&h->hdrs, ct);
    if (st != ENVD_OK)
        return st;
    CURL *easy = h->x.easy;
    curl_easy_setopt(easy, CURLOPT_POST, 1L);

    if (req->gzip_request) {
        h->gzip = 1;
        if ((st = add_header(&h->hdrs, "Content-Encoding: gzip")) != ENVD_OK)
            return st;
        /* windowBits 15 + 16: a gzip header and trailer, not zlib's. */
        if (deflateInit2(&h->zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8,
                         Z_DEFAULT_STRATEGY) != Z_OK)
            return ENVD_E_NOMEM;
        h->zs_init = 1;
        if (raw->read) {
            h->read = raw->read;
            h->read_ud = raw->read_ud;
            if (!(h->zin = malloc(GZ_IN_CAP)))
                return ENVD_E_NOMEM;
        } else {
            h->mem_len = raw->len;
            if (!(h->mem = malloc(raw->len ? raw->len : 1)))
                return ENVD_E_NOMEM;
            if (raw->len)
                memcpy(h->mem, raw->data, raw->len);
            /* deflate counts input in uInt. */
            if (raw->len > UINT32_MAX)
                return ENVD_INVALID_ARGUMENT;
            h->zs.next_in = h->mem;
            h->zs.avail_in = (uInt)raw->len;
        }
        h->progress_from_source = 1;
        h->upload_total = raw->read ? (raw->size < 0 ? -1 : raw->size) : (int64_t)raw->len;
        curl_easy_setopt(easy, CURLOPT_READFUNCTION, on_read_gzip);
        curl_easy_setopt(easy, CURLOPT_READDATA, h);
        curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)-1);
    } else if (raw->read) {
        h->read = raw->read;
        h->read_ud = raw->read_ud;
        h->progress_from_source = 1;
        h->upload_total = raw->size < 0 ? -1 : raw->size;
        curl_easy_setopt(easy, CURLOPT_READFUNCTION, on_read_raw);
        curl_easy_setopt(easy, CURLOPT_READDATA, h);
        curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE,
                         (curl_off_t)(raw->size < 0 ? -1 : raw->size));
    } else {
        h->upload_total = (int64_t)raw->len;
        curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)raw->len);
        if (curl_easy_setopt(easy, CURLOPT_COPYPOSTFIELDS,
                             raw->len ? (const char *)raw->data : "") != CURLE_OK)
            return ENVD_E_NOMEM;
    }
    return ENVD_OK;
}

envd_status envd_http_start(envd_curl_engine *e, const envd_http_request *req,
                            const envd_http_callbacks *cb, envd_http **out)
{
    *out = NULL;
    if (!e || !req || !cb || !cb->on_done || !req->ep || !req->ep->base_url || !req->method ||
        !req->method[0] || !req->path || req->path[0] != '/' || (req->n_parts && !req->parts) ||
        (req->n_parts && req->raw) || (req->gzip_request && !req->raw))
        return ENVD_E_USAGE;
    if (strpbrk(req->method, "\r\n \t") || strpbrk(req->path, "\r\n \t"))
        return ENVD_INVALID_ARGUMENT;
    int is_get = strcmp(req->method, "GET") == 0;
    if (is_get && (req->n_parts || req->raw))
        return ENVD_E_USAGE;

    envd_http *h = calloc(1, sizeof *h);
    if (!h)
        return ENVD_E_NOMEM;
    h->cb = *cb;
    h->upload_total = -1;
    h->last_ul = 0;
    size_t bl = strlen(req->ep->base_url), pl = strlen(req->path);
    size_t ml = strlen(req->method);
    h->url = malloc(bl + pl + 1);
    h->label = malloc(ml + 1 + pl + 1);
    CURL *easy = envd_curl_easy_get(e);
    if (!h->url || !h->label || !easy) {
        if (easy)
            curl_easy_cleanup(easy);
        http_destroy(&h->x);
        return ENVD_E_NOMEM;
    }
    memcpy(h->url, req->ep->base_url, bl);
    memcpy(h->url + bl, req->path, pl + 1);
    memcpy(h->label, req->method, ml);
    h->label[ml] = ' ';
    memcpy(h->label + ml + 1, req->path, pl + 1);
    envd_curl_xfer_init(&h->x, &http_vt, e, easy, req->ep);

    envd_status st = add_header(&h->hdrs, "Expect:");
    if (st != ENVD_OK)
        goto fail;

    curl_easy_setopt(easy, CURLOPT_URL, h->url);
    curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(easy, CURLOPT_HEADERDATA, h);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, h);
    if (req->accept_gzip)
        curl_easy_setopt(easy, CURLOPT_ACCEPT_ENCODING, "gzip");
    if (cb->on_progress) {
        curl_easy_setopt(easy, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(easy, CURLOPT_XFERINFOFUNCTION, on_xferinfo);
        curl_easy_setopt(easy, CURLOPT_XFERINFODATA, h);
    }

    if (is_get) {
        curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L);
    } else {
        if (req->n_parts)
            st = setup_mime(h, req);
        else if (req->raw)
            st = setup_raw(h, req);
        else {
            curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)0);
            curl_easy_setopt(easy, CURLOPT_POSTFIELDS, "");
        }
        if (st != ENVD_OK)
            goto fail;
        h->has_body = req->n_parts || req->raw;
        if (strcmp(req->method, "POST") != 0)
            curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, req->method);
    }
    if ((st = envd_curl_headers(req->headers, req->n_headers, &h->hdrs)) != ENVD_OK)
        goto fail;
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, h->hdrs);

    h->x.timeout_ms = req->timeout_ms;
    h->x.idle_timeout_ms = req->idle_timeout_ms;
    h->x.idle_before_first = 1; /* uploads stall before any response too */
    if (req->tune && (st = req->tune(req->tune_ud, easy)) != ENVD_OK)
        goto fail;
    if ((st = envd_curl_engine_submit(e, &h->x)) != ENVD_OK)
        goto fail;
    *out = h;
    return ENVD_OK;

fail:
    http_destroy(&h->x);
    return st;
}

void envd_http_cancel(envd_http *h)
{
    if (h)
        envd_curl_xfer_cancel(&h->x);
}

void envd_http_release(envd_http *h)
{
    if (h)
        envd_curl_xfer_unref(&h->x);
}
