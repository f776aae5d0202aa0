/* A tiny HTTP/1.1 server on loopback for misbehaviour tests: every
 * connection reads one request, then runs the scenario function the test
 * installed, which writes whatever bytes it likes (or nothing) and returns;
 * the connection is then closed. The last request is kept for assertions.
 * In raw mode (fs_set_raw) the scenario gets the connection as accepted, for
 * faults before any request and for HTTP/2: the fs_h2_* helpers speak just
 * enough cleartext HTTP/2 (prior knowledge, as gRPC and Connect over h2c
 * use it) to answer one stream however the test likes. */
#ifndef ENVD_TEST_FAULT_SERVER_H
#define ENVD_TEST_FAULT_SERVER_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

typedef void (*fault_fn)(int fd);

typedef struct fault_server {
    int lfd;
    int port;
    pthread_t acceptor;
    atomic_int stop;
    pthread_mutex_t mu;
    fault_fn scenario;        /* mu */
    int raw;                  /* mu: scenario runs before any request is read */
    char last_head[8192];     /* mu: request line and headers */
    unsigned char *last_body; /* mu: request body (de-chunked) */
    size_t last_body_len;
    pthread_t conns[256]; /* mu */
    int n_conns;
} fault_server;

static fault_server g_fs;

static inline void fs_sleep_ms(int ms)
{
    struct timespec d = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&d, NULL);
}

static inline int fs_write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n > 0) {
        ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
        if (w <= 0)
            return -1;
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

static inline int fs_puts(int fd, const char *s)
{
    return fs_write_all(fd, s, strlen(s));
}

/* One HTTP/1.1 chunk. */
static inline int fs_chunk(int fd, const void *p, size_t n)
{
    char h[32];
    snprintf(h, sizeof h, "%zx\r\n", n);
    if (fs_puts(fd, h) || fs_write_all(fd, p, n) || fs_puts(fd, "\r\n"))
        return -1;
    return 0;
}

/* A Connect envelope as one chunk. */
static inline int fs_frame(int fd, unsigned flags, const void *p, size_t n)
{
    unsigned char *b = malloc(5 + n);
    b[0] = (unsigned char)flags;
    b[1] = (unsigned char)(n >> 24);
    b[2] = (unsigned char)(n >> 16);
    b[3] = (unsigned char)(n >> 8);
    b[4] = (unsigned char)n;
    if (n)
        memcpy(b + 5, p, n);
    int rc = fs_chunk(fd, b, 5 + n);
    free(b);
    return rc;
}

static inline int fs_stream_head(int fd)
{
    return fs_puts(fd, "HTTP/1.1 200 OK\r\nContent-Type: application/connect+proto\r\n"
                       "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
}

/* Waits until the client closes (or 10 s). */
static inline void fs_wait_close(int fd)
{
    char b[4096];
    for (int i = 0; i < 1000; i++) {
        ssize_t n = recv(fd, b, sizeof b, 0);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
            return;
        if (n < 0)
            fs_sleep_ms(10);
    }
}

static inline void *fs_conn_main(void *arg)
{
    int fd = (int)(intptr_t)arg;
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    pthread_mutex_lock(&g_fs.mu);
    fault_fn raw_fn = g_fs.raw ? g_fs.scenario : NULL;
    pthread_mutex_unlock(&g_fs.mu);
    if (raw_fn) {
        raw_fn(fd);
        close(fd);
        return NULL;
    }
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap + 1);
    char *end = NULL;
    while (!end) {
        if (len == cap) {
            cap *= 2;
            buf = realloc(buf, cap + 1);
        }
        ssize_t n = recv(fd, buf + len, cap - len, 0);
        if (n <= 0)
            break;
        len += (size_t)n;
        buf[len] = '\0';
        end = strstr(buf, "\r\n\r\n");
    }
    if (!end) {
        free(buf);
        close(fd);
        return NULL;
    }
    size_t head_len = (size_t)(end - buf) + 4;
    int chunked = strcasestr(buf, "\r\ntransfer-encoding: chunked") != NULL;
    const char *cl = strcasestr(buf, "\r\ncontent-length:");
    size_t want = cl ? (size_t)strtoull(cl + 17, NULL, 10) : 0;
    /* Read the body: by length, or until the last chunk. */
    for (;;) {
        size_t have = len - head_len;
        if (!chunked && have >= want)
            break;
        if (chunked) {
            buf[len] = '\0';
            if (have >= 5 && memmem(buf + head_len, have, "0\r\n\r\n", 5) &&
                (have == 5 || memmem(buf + head_len, have, "\r\n0\r\n\r\n", 7)))
                break;
        }
        if (len == cap) {
            cap *= 2;
            buf = realloc(buf, cap + 1);
        }
        ssize_t n = recv(fd, buf + len, cap - len, 0);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    /* De-chunk for the record. */
    unsigned char *body = malloc(len - head_len + 1);
    size_t blen = 0;
    if (chunked) {
        const char *p = buf + head_len, *e = buf + len;
        while (p < e) {
            size_t n = (size_t)strtoull(p, NULL, 16);
            const char *crlf = memmem(p, (size_t)(e - p), "\r\n", 2);
            if (!crlf || n == 0)
                break;
            p = crlf + 2;
            if ((size_t)(e - p) < n)
                n = (size_t)(e - p);
            memcpy(body + blen, p, n);
            blen += n;
            p += n + 2;
        }
    } else {
        blen = len - head_len;
        memcpy(body, buf + head_len, blen);
    }
    pthread_mutex_lock(&g_fs.mu);
    size_t hl = head_len < sizeof g_fs.last_head - 1 ? head_len : sizeof g_fs.last_head - 1;
    memcpy(g_fs.last_head, buf, hl);
    g_fs.last_head[hl] = '\0';
    free(g_fs.last_body);
    g_fs.last_body = body;
    g_fs.last_body_len = blen;
    fault_fn fn = g_fs.scenario;
    pthread_mutex_unlock(&g_fs.mu);
    free(buf);
    if (fn)
        fn(fd);
    close(fd);
    return NULL;
}

/* Ends the connection with a TCP reset rather than a FIN. */
static inline void fs_reset(int fd)
{
    struct linger lg = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
}

/* Reads and drops what the client sends until it closes or stays quiet
 * for quiet_ms, so closing does not reset a reply it has not read yet. */
static inline void fs_drain(int fd, int quiet_ms)
{
    char b[4096];
    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, quiet_ms) <= 0)
            return;
        if (recv(fd, b, sizeof b, 0) <= 0)
            return;
    }
}

/* ---- a little HTTP/2 --------------------------------------------------------- */

static inline int fs_recv_n(int fd, void *p, size_t n)
{
    char *c = p;
    while (n > 0) {
        ssize_t r = recv(fd, c, n, 0);
        if (r <= 0)
            return -1;
        c += r;
        n -= (size_t)r;
    }
    return 0;
}

static inline int fs_h2_frame(int fd, unsigned type, unsigned flags, uint32_t stream,
                              const void *p, size_t n)
{
    unsigned char h[9] = {(unsigned char)(n >> 16), (unsigned char)(n >> 8), (unsigned char)n,
                          (unsigned char)type,      (unsigned char)flags,
                          (unsigned char)(stream >> 24), (unsigned char)(stream >> 16),
                          (unsigned char)(stream >> 8), (unsigned char)stream};
    if (fs_write_all(fd, h, sizeof h))
        return -1;
    return n ? fs_write_all(fd, p, n) : 0;
}

/* The server side of the connection preface, then frames until the first
 * request's HEADERS (with END_HEADERS) arrive; SETTINGS are acknowledged.
 * Returns that stream's id, or -1. */
static inline int fs_h2_accept(int fd)
{
    char preface[24];
    if (fs_recv_n(fd, preface, sizeof preface) ||
        memcmp(preface, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 24) != 0)
        return -1;
    if (fs_h2_frame(fd, 0x4, 0, 0, NULL, 0)) /* our SETTINGS: the defaults */
        return -1;
    for (;;) {
        unsigned char h[9];
        if (fs_recv_n(fd, h, sizeof h))
            return -1;
        size_t len = (size_t)h[0] << 16 | (size_t)h[1] << 8 | h[2];
        uint32_t sid = ((uint32_t)h[5] << 24 | (uint32_t)h[6] << 16 | (uint32_t)h[7] << 8 | h[8]) &
                       0x7fffffffu;
        unsigned char *payload = malloc(len ? len : 1);
        if (!payload || fs_recv_n(fd, payload, len)) {
            free(payload);
            return -1;
        }
        free(payload);
        if (h[3] == 0x4 && !(h[4] & 0x1) && fs_h2_frame(fd, 0x4, 0x1, 0, NULL, 0))
            return -1;
        if (h[3] == 0x1 && (h[4] & 0x4))
            return (int)sid;
    }
}

/* One HPACK "literal header field without indexing, new name" (names and
 * values under 127 bytes). */
static inline size_t fs_hpack_literal(unsigned char *out, const char *name, const char *value)
{
    size_t nl = strlen(name), vl = strlen(value), o = 0;
    out[o++] = 0x00;
    out[o++] = (unsigned char)nl;
    memcpy(out + o, name, nl);
    o += nl;
    out[o++] = (unsigned char)vl;
    memcpy(out + o, value, vl);
    return o + vl;
}

/* Response HEADERS: :status and, unless NULL, content-type. */
static inline int fs_h2_headers(int fd, uint32_t sid, int status, const char *ctype,
                                int end_stream)
{
    unsigned char block[512];
    char st[16];
    snprintf(st, sizeof st, "%d", status);
    size_t n = fs_hpack_literal(block, ":status", st);
    if (ctype)
        n += fs_hpack_literal(block + n, "content-type", ctype);
    return fs_h2_frame(fd, 0x1, 0x4 | (end_stream ? 0x1 : 0), sid, block, n);
}

/* gRPC trailers: grpc-status (and END_STREAM). */
static inline int fs_h2_grpc_trailers(int fd, uint32_t sid, int grpc_status)
{
    unsigned char block[64];
    char st[16];
    snprintf(st, sizeof st, "%d", grpc_status);
    size_t n = fs_hpack_literal(block, "grpc-status", st);
    return fs_h2_frame(fd, 0x1, 0x4 | 0x1, sid, block, n);
}

static inline int fs_h2_data(int fd, uint32_t sid, const void *p, size_t n, int end_stream)
{
    return fs_h2_frame(fd, 0x0, end_stream ? 0x1 : 0, sid, p, n);
}

static inline void *fs_accept_main(void *arg)
{
    (void)arg;
    for (;;) {
        int fd = accept(g_fs.lfd, NULL, NULL);
        if (atomic_load(&g_fs.stop)) {
            if (fd >= 0)
                close(fd);
            return NULL;
        }
        if (fd < 0)
            continue;
        pthread_mutex_lock(&g_fs.mu);
        if (g_fs.n_conns < 256 && pthread_create(&g_fs.conns[g_fs.n_conns], NULL, fs_conn_main,
                                                 (void *)(intptr_t)fd) == 0)
            g_fs.n_conns++;
        else
            close(fd);
        pthread_mutex_unlock(&g_fs.mu);
    }
}

static inline int fs_start(void)
{
    memset(&g_fs, 0, sizeof g_fs);
    pthread_mutex_init(&g_fs.mu, NULL);
    g_fs.lfd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(g_fs.lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(g_fs.lfd, (struct sockaddr *)&a, sizeof a) || listen(g_fs.lfd, 64))
        return -1;
    socklen_t al = sizeof a;
    getsockname(g_fs.lfd, (struct sockaddr *)&a, &al);
    g_fs.port = ntohs(a.sin_port);
    return pthread_create(&g_fs.acceptor, NULL, fs_accept_main, NULL);
}

/* Joins the connection threads of the last test (they end when their
 * scenario returns). */
static inline void fs_join_conns(void)
{
    pthread_mutex_lock(&g_fs.mu);
    int n = g_fs.n_conns;
    pthread_t t[256];
    memcpy(t, g_fs.conns, sizeof(pthread_t) * (size_t)n);
    g_fs.n_conns = 0;
    pthread_mutex_unlock(&g_fs.mu);
    for (int i = 0; i < n; i++)
        pthread_join(t[i], NULL);
}

static inline void fs_set_mode(fault_fn fn, int raw)
{
    fs_join_conns();
    pthread_mutex_lock(&g_fs.mu);
    g_fs.scenario = fn;
    g_fs.raw = raw;
    g_fs.last_head[0] = '\0';
    pthread_mutex_unlock(&g_fs.mu);
}

static inline void fs_set(fault_fn fn)
{
    fs_set_mode(fn, 0);
}

/* fn gets each connection as accepted, before anything is read. */
static inline void fs_set_raw(fault_fn fn)
{
    fs_set_mode(fn, 1);
}

/* A 200 reply of text, gzip-encoded (Content-Encoding: gzip). */
static inline void fs_gzip_reply(int fd, const char *text)
{
    uint8_t out[1024];
    z_stream zs = {0};
    deflateInit2(&zs, 9, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
    zs.next_in = (Bytef *)text;
    zs.avail_in = (uInt)strlen(text);
    zs.next_out = out;
    zs.avail_out = sizeof out;
    deflate(&zs, Z_FINISH);
    size_t n = sizeof out - zs.avail_out;
    deflateEnd(&zs);
    char h[256];
    snprintf(h, sizeof h,
             "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Encoding: gzip\r\n"
             "Content-Length: %zu\r\nConnection: close\r\n\r\n",
             n);
    fs_puts(fd, h);
    fs_write_all(fd, out, n);
}

static inline void fs_stop(void)
{
    atomic_store(&g_fs.stop, 1);
    /* Wake accept() with a connection of our own. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((uint16_t)g_fs.port);
    connect(fd, (struct sockaddr *)&a, sizeof a);
    pthread_join(g_fs.acceptor, NULL);
    close(fd);
    close(g_fs.lfd);
    fs_join_conns();
    free(g_fs.last_body);
    pthread_mutex_destroy(&g_fs.mu);
}

#endif
