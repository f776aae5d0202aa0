/* A growable byte buffer, always NUL-terminated once it holds anything, with
 * an optional cap: appends past the cap keep what fits and set `truncated`
 * (command output, a plugin's stdout, an HTTP body kept in memory). A
 * zeroed envd_buf is an empty buffer without a cap. */
#ifndef ENVD_CORE_BUF_H
#define ENVD_CORE_BUF_H

#include <stdarg.h>
#include <stddef.h>

typedef struct envd_buf {
    char *data;    /* NULL until the first byte (or reserve); then data[len] == 0 */
    size_t len;    /* bytes held, without the NUL */
    size_t cap;    /* bytes allocated, including room for the NUL */
    size_t max;    /* with has_max: most bytes ever held */
    int has_max;
    int truncated; /* an append was cut (or dropped) at max */
} envd_buf;

/* Empty, no cap. */
void envd_buf_init(envd_buf *b);
/* Empty, holding at most max bytes (0 keeps nothing but still counts as
 * truncated when something is appended). */
void envd_buf_init_capped(envd_buf *b, size_t max);

/* Makes room for `extra` more bytes plus the NUL: afterwards
 * b->cap >= b->len + extra + 1. 0, or -1 on out of memory or size overflow
 * (b unchanged). Ignores the cap: it is about memory, not content. */
int envd_buf_reserve(envd_buf *b, size_t extra);

/* Appends n bytes (p may be NULL when n is 0). Past the cap, appends the
 * part that fits, sets truncated and still returns 0. -1 on out of memory
 * (b unchanged). */
int envd_buf_append(envd_buf *b, const void *p, size_t n);
int envd_buf_append_str(envd_buf *b, const char *s);
/* printf-style append; -1 on out of memory or a format error. */
int envd_buf_appendf(envd_buf *b, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* A new string formatted with printf rules (asprintf through the
 * allocation seam); free with free(). NULL on out of memory or a format
 * error. */
char *envd_strdup_printf(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;
/* The same with a va_list (vasprintf); ap is left as vsnprintf leaves it. */
char *envd_strdup_vprintf(const char *fmt, va_list ap)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 0)))
#endif
    ;

/* The text held, "" when empty. Valid until the next change to b. */
const char *envd_buf_str(const envd_buf *b);

/* Hands the bytes to the caller (free with free()) and leaves b empty with
 * its cap setting, truncated cleared (read it first). An empty buffer
 * yields an allocated "" (NULL only on out of memory, b then unchanged).
 * *len, when non-NULL, gets the length. */
char *envd_buf_take(envd_buf *b, size_t *len);

/* Empties b, keeping its memory, cap setting and clearing truncated. */
void envd_buf_clear(envd_buf *b);
/* Releases the memory; b is then an empty buffer with its cap setting. */
void envd_buf_free(envd_buf *b);

#endif
