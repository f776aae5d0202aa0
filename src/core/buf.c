/* envd_buf: see buf.h. */
#include "core/buf.h"
#include "core/alloc.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void envd_buf_init(envd_buf *b)
{
    memset(b, 0, sizeof(*b));
}

void envd_buf_init_capped(envd_buf *b, size_t max)
{
    memset(b, 0, sizeof(*b));
    b->max = max;
    b->has_max = 1;
}

int envd_buf_reserve(envd_buf *b, size_t extra)
{
    if (extra > SIZE_MAX - 1 - b->len)
        return -1;
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return 0;
    size_t nc = b->cap ? b->cap : 64;
    while (nc < need)
        nc = nc > SIZE_MAX / 2 ? need : nc * 2;
    char *nd = envd_realloc(b->data, nc);
    if (!nd)
        return -1;
    if (!b->data)
        nd[0] = 0;
    b->data = nd;
    b->cap = nc;
    return 0;
}

int envd_buf_append(envd_buf *b, const void *p, size_t n)
{
    if (b->has_max && n > (b->max > b->len ? b->max - b->len : 0)) {
        b->truncated = 1;
        n = b->max > b->len ? b->max - b->len : 0;
    }
    if (n == 0)
        return 0;
    if (envd_buf_reserve(b, n) != 0)
        return -1;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = 0;
    return 0;
}

int envd_buf_append_str(envd_buf *b, const char *s)
{
    return envd_buf_append(b, s, strlen(s));
}

int envd_buf_appendf(envd_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char small[256];
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0)
        return -1;
    if ((size_t)n < sizeof(small))
        return envd_buf_append(b, small, (size_t)n);
    char *big = envd_malloc((size_t)n + 1);
    if (!big)
        return -1;
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    int rc = envd_buf_append(b, big, (size_t)n);
    free(big);
    return rc;
}

char *envd_strdup_vprintf(const char *fmt, va_list ap)
{
    va_list again;
    va_copy(again, ap);
    int n = vsnprintf(NULL, 0, fmt, again);
    va_end(again);
    char *s = n >= 0 ? envd_malloc((size_t)n + 1) : NULL;
    if (s)
        vsnprintf(s, (size_t)n + 1, fmt, ap);
    return s;
}

char *envd_strdup_printf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = envd_strdup_vprintf(fmt, ap);
    va_end(ap);
    return s;
}

const char *envd_buf_str(const envd_buf *b)
{
    return b->data ? b->data : "";
}

char *envd_buf_take(envd_buf *b, size_t *len)
{
    char *d = b->data ? b->data : envd_calloc(1, 1);
    if (d && len)
        *len = b->len;
    if (d) {
        b->data = NULL;
        b->len = b->cap = 0;
        b->truncated = 0;
    }
    return d;
}

void envd_buf_clear(envd_buf *b)
{
    b->len = 0;
    b->truncated = 0;
    if (b->data)
        b->data[0] = 0;
}

void envd_buf_free(envd_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
    b->truncated = 0;
}
