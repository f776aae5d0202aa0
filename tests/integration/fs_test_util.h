/* Helpers shared by the filesystem and /files integration tests: files on
 * the reference server's disk (its --root), SHA-256, a deterministic byte
 * stream. Header-only (static inline) so each test links only harness.c. */
#ifndef ENVD_FS_TEST_UTIL_H
#define ENVD_FS_TEST_UTIL_H

#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* srv->root + vpath into buf. */
static inline const char *disk_path(const test_server *srv, const char *vpath, char *buf,
                                    size_t cap)
{
    snprintf(buf, cap, "%s%s", srv->root, vpath);
    return buf;
}

static inline void mkdirs(const char *path)
{
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p == '/') {
            *p = 0;
            mkdir(tmp, 0755);
            *p = '/';
        }
    }
    mkdir(tmp, 0755);
}

/* Writes len bytes to srv->root + vpath, creating parents. */
static inline void disk_write(const test_server *srv, const char *vpath, const void *data,
                              size_t len)
{
    char p[1024], dir[1024];
    disk_path(srv, vpath, p, sizeof p);
    snprintf(dir, sizeof dir, "%s", p);
    char *slash = strrchr(dir, '/');
    if (slash) {
        *slash = 0;
        mkdirs(dir);
    }
    FILE *f = fopen(p, "wb");
    if (!f)
        fail_msg("cannot create %s: %s", p, strerror(errno));
    if (len && fwrite(data, 1, len, f) != len)
        fail_msg("cannot write %s", p);
    fclose(f);
}

/* The content of srv->root + vpath (NUL-terminated; caller frees), or NULL
 * when it does not exist. */
static inline uint8_t *disk_read(const test_server *srv, const char *vpath, size_t *len)
{
    char p[1024];
    disk_path(srv, vpath, p, sizeof p);
    FILE *f = fopen(p, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    uint8_t *b = malloc(cap);
    size_t r;
    while ((r = fread(b + n, 1, cap - n - 1, f)) > 0) {
        n += r;
        if (cap - n - 1 == 0) {
            cap *= 2;
            b = realloc(b, cap);
        }
    }
    fclose(f);
    b[n] = 0;
    if (len)
        *len = n;
    return b;
}

static inline int disk_exists(const test_server *srv, const char *vpath)
{
    char p[1024];
    struct stat st;
    return lstat(disk_path(srv, vpath, p, sizeof p), &st) == 0;
}

/* ---- SHA-256 ---- */

typedef struct sha {
    EVP_MD_CTX *ctx;
} sha;

static inline void sha_init(sha *s)
{
    s->ctx = EVP_MD_CTX_new();
    EVP_DigestInit_ex(s->ctx, EVP_sha256(), NULL);
}
static inline void sha_update(sha *s, const void *d, size_t n)
{
    EVP_DigestUpdate(s->ctx, d, n);
}
/* hex digest into out[65]; frees the context */
static inline void sha_final(sha *s, char out[65])
{
    unsigned char md[32];
    unsigned int n = 0;
    EVP_DigestFinal_ex(s->ctx, md, &n);
    EVP_MD_CTX_free(s->ctx);
    for (unsigned i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}
static inline void sha_of(const void *d, size_t n, char out[65])
{
    sha s;
    sha_init(&s);
    sha_update(&s, d, n);
    sha_final(&s, out);
}

/* ---- a deterministic byte stream (xorshift64*) ---- */

/* A byte stream that does not depend on how it is read: the bytes of a
 * word not taken by one fill are the next fill's first (an upload source
 * is read in whatever pieces the transport asks for). */
typedef struct prng {
    uint64_t s;
    uint64_t v;  /* the current word */
    int used;    /* its bytes taken; 0 = none drawn yet */
} prng;

static inline void prng_fill(prng *r, uint8_t *buf, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (r->used == 0 || r->used == 8) {
            r->s ^= r->s >> 12;
            r->s ^= r->s << 25;
            r->s ^= r->s >> 27;
            r->v = r->s * 0x2545F4914F6CDD1DULL;
            r->used = 0;
        }
        buf[i] = (uint8_t)(r->v >> (8 * r->used++));
    }
}

static inline int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Peak RSS of this process in KiB. */
static inline long max_rss_kib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

/* Current RSS in KiB (from /proc/self/statm). */
static inline long cur_rss_kib(void)
{
    long pages = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
            rss = 0;
        fclose(f);
    }
    return rss * (sysconf(_SC_PAGESIZE) / 1024);
}

#endif
