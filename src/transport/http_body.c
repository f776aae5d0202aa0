/* Request bodies for /files: see http_body.h. The multipart framing is
 * written here rather than by curl_mime because curl_mime cannot run a form
 * through gzip, and envd takes gzip-encoded forms. */
#include "transport/http_body.h"
#include "core/alloc.h"

#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define GZ_IN_CAP ((size_t)64 << 10)

enum { PH_HEAD, PH_DATA, PH_CLOSE, PH_DONE };

typedef struct body_part {
    char *label;     /* the filename, for messages; NULL for a raw body */
    char *head;      /* multipart framing before the part */
    size_t head_len;
    uint8_t *mem;    /* our copy of data/len */
    size_t (*read)(void *ud, uint8_t *buf, size_t cap);
    void *ud;
    int64_t size; /* -1: unknown, read until the callback returns 0 */
    int64_t done;
} body_part;

struct envd_http_body {
    body_part *parts;
    size_t n, cur;
    int multipart;
    int phase;
    size_t off; /* into the framing text being copied */
    char close[64];
    size_t close_len;
    char *content_type;
    int64_t total; /* payload bytes, -1 unknown */
    int64_t taken;
    char err[320];

    int gzip, z_init, in_eof, z_done;
    z_stream zs;
    uint8_t *zin;
};

/* ---- setup ------------------------------------------------------------------- */

/* Escapes a quoted Content-Disposition parameter the way Go's mime/multipart
 * does (backslash before \ and "), so envd reads the name back unchanged. */
static char *quote(const char *s)
{
    size_t n = 0;
    for (const char *q = s; *q; q++)
        n += (*q == '\\' || *q == '"') ? 2 : 1;
    char *out = envd_malloc(n + 1), *o = out;
    if (!out)
        return NULL;
    for (const char *q = s; *q; q++) {
        if (*q == '\\' || *q == '"')
            *o++ = '\\';
        *o++ = *q;
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

static int bad_text(const char *s)
{
    return s && strpbrk(s, "\r\n") != NULL;
}

/* "--<b>\r\nContent-Disposition: form-data; name="..."[; filename="..."]\r\n
 * Content-Type: ...\r\n\r\n", after the previous part's CRLF. */
static envd_status part_head(body_part *d, const envd_http_part *p, const char *boundary, int first)
{
    char *qn = quote(p->name ? p->name : "file");
    char *qf = p->filename ? quote(p->filename) : NULL;
    const char *ct = p->content_type ? p->content_type : "application/octet-stream";
    envd_status st = ENVD_E_NOMEM;
    if (qn && (qf || !p->filename)) {
        size_t hl = strlen(qn) + (qf ? strlen(qf) : 0) + strlen(ct) + strlen(boundary) + 128;
        if ((d->head = envd_malloc(hl))) {
            int k = snprintf(d->head, hl, "%s--%s\r\nContent-Disposition: form-data; name=\"%s\"",
                             first ? "" : "\r\n", boundary, qn);
            if (qf)
                k += snprintf(d->head + k, hl - (size_t)k, "; filename=\"%s\"", qf);
            k += snprintf(d->head + k, hl - (size_t)k, "\r\nContent-Type: %s\r\n\r\n", ct);
            d->head_len = (size_t)k;
            st = ENVD_OK;
        }
    }
    free(qn);
    free(qf);
    return st;
}

static envd_status part_init(envd_http_body *b, size_t i, const envd_http_part *p,
                             const char *boundary)
{
    body_part *d = &b->parts[i];
    if (!p->read && p->len > 0 && !p->data)
        return ENVD_E_USAGE;
    if (bad_text(p->name) || bad_text(p->filename) || bad_text(p->content_type))
        return ENVD_INVALID_ARGUMENT; /* cannot travel in a header */
    if (p->filename && !(d->label = envd_strdup(p->filename)))
        return ENVD_E_NOMEM;
    if (p->read) {
        d->read = p->read;
        d->ud = p->read_ud;
        d->size = p->size < 0 ? -1 : p->size;
    } else {
        if (!(d->mem = envd_malloc(p->len ? p->len : 1)))
            return ENVD_E_NOMEM;
        if (p->len)
            memcpy(d->mem, p->data, p->len);
        d->size = (int64_t)p->len;
    }
    b->total = (b->total < 0 || d->size < 0) ? -1 : b->total + d->size;
    return b->multipart ? part_head(d, p, boundary, i == 0) : ENVD_OK;
}

static envd_status body_types(envd_http_body *b, const envd_http_part *parts, const char *boundary)
{
    const char *ct = b->multipart ? "multipart/form-data; boundary=" : parts[0].content_type;
    if (!ct)
        ct = "application/octet-stream";
    size_t n = strlen(ct) + (b->multipart ? strlen(boundary) : 0) + 1;
    if (!(b->content_type = envd_malloc(n)))
        return ENVD_E_NOMEM;
    snprintf(b->content_type, n, "%s%s", ct, b->multipart ? boundary : "");
    if (b->multipart)
        b->close_len = (size_t)snprintf(b->close, sizeof b->close, "\r\n--%s--\r\n", boundary);
    return ENVD_OK;
}

static envd_status gzip_init(envd_http_body *b)
{
    /* windowBits 15 + 16: a gzip header and trailer, not zlib's. */
    if (deflateInit2(&b->zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) !=
        Z_OK)
        return ENVD_E_NOMEM;
    b->z_init = 1;
    return (b->zin = envd_malloc(GZ_IN_CAP)) ? ENVD_OK : ENVD_E_NOMEM;
}

envd_status envd_http_body_new(const envd_http_part *parts, size_t n, int multipart, int gzip,
                               envd_http_body **out)
{
    *out = NULL;
    if (!parts || n == 0 || (!multipart && n != 1))
        return ENVD_E_USAGE;
    envd_http_body *b = envd_calloc(1, sizeof *b);
    if (!b)
        return ENVD_E_NOMEM;
    b->multipart = multipart;
    b->gzip = gzip;
    b->phase = multipart ? PH_HEAD : PH_DATA;
    envd_status st = ENVD_E_NOMEM;
    char boundary[40] = "envd";
    if (!(b->parts = envd_calloc(n, sizeof *b->parts)) ||
        (multipart && random_boundary(boundary + 4, sizeof boundary - 4) != ENVD_OK))
        goto fail;
    b->n = n;
    for (size_t i = 0; i < n; i++)
        if ((st = part_init(b, i, &parts[i], boundary)) != ENVD_OK)
            goto fail;
    if ((st = body_types(b, parts, boundary)) != ENVD_OK ||
        (gzip && (st = gzip_init(b)) != ENVD_OK))
        goto fail;
    *out = b;
    return ENVD_OK;
fail:
    envd_http_body_free(b);
    return st;
}

void envd_http_body_free(envd_http_body *b)
{
    if (!b)
        return;
    for (size_t i = 0; b->parts && i < b->n; i++) {
        free(b->parts[i].label);
        free(b->parts[i].head);
        free(b->parts[i].mem);
    }
    free(b->parts);
    free(b->content_type);
    if (b->z_init)
        deflateEnd(&b->zs);
    free(b->zin);
    free(b);
}

/* ---- accessors ------------------------------------------------------------------ */

const char *envd_http_body_content_type(const envd_http_body *b)
{
    return b->content_type;
}

int64_t envd_http_body_wire_size(const envd_http_body *b)
{
    if (b->gzip || b->total < 0)
        return -1;
    int64_t t = b->total;
    for (size_t i = 0; i < b->n; i++)
        t += (int64_t)b->parts[i].head_len;
    return t + (int64_t)b->close_len;
}

int64_t envd_http_body_taken(const envd_http_body *b)
{
    return b->taken;
}

int64_t envd_http_body_total(const envd_http_body *b)
{
    return b->total;
}

int envd_http_body_done(const envd_http_body *b)
{
    return b->gzip ? b->z_done : b->phase == PH_DONE;
}

const char *envd_http_body_error(const envd_http_body *b)
{
    return b->err[0] ? b->err : "the request body failed";
}

/* ---- producing the body (I/O thread) ---------------------------------------------- */

static size_t fail(envd_http_body *b, const body_part *p, const char *what)
{
    if (!b->err[0]) {
        if (p && p->label)
            snprintf(b->err, sizeof b->err, "part %s: %s", p->label, what);
        else
            snprintf(b->err, sizeof b->err, "%s", what);
    }
    return (size_t)-1;
}

static void next_part(envd_http_body *b)
{
    b->cur++;
    b->off = 0;
    if (b->cur < b->n)
        b->phase = b->multipart ? PH_HEAD : PH_DATA;
    else
        b->phase = b->multipart ? PH_CLOSE : PH_DONE;
}

/* Copies framing text (a part's head or the closing line). */
static size_t copy_framing(envd_http_body *b, uint8_t *buf, size_t cap)
{
    int head = b->phase == PH_HEAD;
    const char *t = head ? b->parts[b->cur].head : b->close;
    size_t tl = head ? b->parts[b->cur].head_len : b->close_len;
    size_t k = tl - b->off < cap ? tl - b->off : cap;
    memcpy(buf, t + b->off, k);
    b->off += k;
    if (b->off == tl) {
        b->off = 0;
        b->phase = head ? PH_DATA : PH_DONE;
    }
    return k;
}

/* One read from a part's source: up to want bytes, (size_t)-1 on failure. */
static size_t part_read(envd_http_body *b, body_part *p, uint8_t *buf, size_t want)
{
    if (!p->read) {
        memcpy(buf, p->mem + p->done, want);
        return want;
    }
    size_t got = p->read(p->ud, buf, want);
    if (got == (size_t)-1)
        return fail(b, p, "the read callback failed");
    if (got > want)
        return fail(b, p, "the read callback returned more than it was asked for");
    if (got == 0 && p->size >= 0) {
        char what[96];
        snprintf(what, sizeof what, "the source ended after %lld of %lld bytes",
                 (long long)p->done, (long long)p->size);
        return fail(b, p, what);
    }
    return got;
}

/* The body before gzip: framing and the parts' bytes. */
static size_t framed_read(envd_http_body *b, uint8_t *buf, size_t cap)
{
    size_t n = 0;
    while (n < cap && b->phase != PH_DONE) {
        if (b->phase != PH_DATA) {
            n += copy_framing(b, buf + n, cap - n);
            continue;
        }
        body_part *p = &b->parts[b->cur];
        size_t want = cap - n;
        if (p->size >= 0 && (uint64_t)(p->size - p->done) < want)
            want = (size_t)(p->size - p->done);
        if (want == 0) { /* this part is complete */
            next_part(b);
            continue;
        }
        size_t got = part_read(b, p, buf + n, want);
        if (got == (size_t)-1)
            return got;
        if (got == 0) { /* a source of unknown size ended */
            next_part(b);
            continue;
        }
        p->done += (int64_t)got;
        b->taken += (int64_t)got;
        n += got;
        /* Move on as soon as a sized part is complete: with a known
         * Content-Length curl asks for nothing past the last byte. */
        if (p->size >= 0 && p->done == p->size)
            next_part(b);
        if (p->read)
            break; /* hand over what one read gave; the socket wants it */
    }
    return n;
}

static size_t gzip_read(envd_http_body *b, uint8_t *buf, size_t cap)
{
    if (b->z_done)
        return 0;
    b->zs.next_out = buf;
    b->zs.avail_out = (uInt)(cap > UINT32_MAX ? UINT32_MAX : cap);
    uInt out_cap = b->zs.avail_out;
    while (b->zs.avail_out > 0) {
        if (b->zs.avail_in == 0 && !b->in_eof) {
            size_t got = framed_read(b, b->zin, GZ_IN_CAP);
            if (got == (size_t)-1)
                return got;
            b->in_eof = got == 0;
            b->zs.next_in = b->zin;
            b->zs.avail_in = (uInt)got;
        }
        int rc = deflate(&b->zs, b->in_eof ? Z_FINISH : Z_NO_FLUSH);
        if (rc == Z_STREAM_END) {
            b->z_done = 1;
            break;
        }
        if (rc != Z_OK && rc != Z_BUF_ERROR)
            return fail(b, NULL, "gzip compression failed");
    }
    return out_cap - b->zs.avail_out;
}

size_t envd_http_body_read(envd_http_body *b, uint8_t *buf, size_t cap)
{
    return b->gzip ? gzip_read(b, buf, cap) : framed_read(b, buf, cap);
}
