/* envdctl helpers: messages and exit codes, durations, numbers, RFC 3339
 * times, a growable buffer with JSON string escaping, sandbox path syntax. */
#include "envdctl.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------- messages */

static void vmessage(const cli_ctx *ctx, const char *fmt, va_list ap)
{
    /* One fprintf per line keeps concurrent messages (batch) unmixed. */
    char text[2048];
    vsnprintf(text, sizeof(text), fmt, ap);
    if (ctx && ctx->cmd)
        fprintf(stderr, "envdctl: %s: %s\n", ctx->cmd, text);
    else
        fprintf(stderr, "envdctl: %s\n", text);
}

int cli_usage_error(const cli_ctx *ctx, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmessage(ctx, fmt, ap);
    va_end(ap);
    if (ctx && ctx->cmd)
        fprintf(stderr, "(see 'envdctl %s --help')\n", ctx->cmd);
    else
        fprintf(stderr, "(see 'envdctl --help')\n");
    return CLI_EXIT_USAGE;
}

int cli_errorf(const cli_ctx *ctx, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmessage(ctx, fmt, ap);
    va_end(ap);
    return CLI_EXIT_FAIL;
}

char *cli_strdupf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0)
        s = NULL;
    va_end(ap);
    return s;
}

char *cli_error_text(const char *what, envd_status st, const envd_error *err)
{
    const char *msg = err ? envd_error_message(err) : envd_strerror(st);
    return what && *what ? cli_strdupf("%s: %s", what, msg) : cli_strdupf("%s", msg);
}

int cli_fail(const cli_ctx *ctx, const char *what, envd_status st, envd_error *err)
{
    char *text = cli_error_text(what, st, err);
    cli_errorf(ctx, "%s", text ? text : envd_strerror(st));
    free(text);
    envd_error_free(err);
    return st == ENVD_E_USAGE ? CLI_EXIT_USAGE : CLI_EXIT_FAIL;
}

/* -------------------------------------------------------------- signals */

volatile sig_atomic_t cli_interrupted;

static void on_interrupt(int sig) { cli_interrupted = sig; }

void cli_catch_interrupts(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_interrupt;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
}

/* -------------------------------------------------------------- numbers */

int cli_parse_duration(const char *s, int64_t *ms)
{
    /* digits with at most one '.', then the unit: strtod alone would take
     * "0x10", "1e3", "inf" or a leading sign */
    size_t num = s ? strspn(s, "0123456789.") : 0;
    if (num == 0 || memchr(s, '.', num) != memrchr(s, '.', num) || (num == 1 && *s == '.'))
        return -1;
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end != s + num || !isfinite(v))
        return -1;
    double scale;
    if (*end == '\0' || strcmp(end, "s") == 0)
        scale = 1000.0;
    else if (strcmp(end, "ms") == 0)
        scale = 1.0;
    else if (strcmp(end, "m") == 0)
        scale = 60000.0;
    else if (strcmp(end, "h") == 0)
        scale = 3600000.0;
    else
        return -1;
    double r = v * scale;
    if (r > 9.0e15) /* past what int64 milliseconds hold with room to add */
        return -1;
    *ms = (int64_t)(r + 0.5);
    return 0;
}

int cli_parse_uint(const char *s, uint64_t max, uint64_t *out)
{
    if (!s || *s < '0' || *s > '9')
        return -1;
    uint64_t v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        unsigned d = (unsigned)(*s - '0');
        if (v > (max - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

void cli_format_time(int64_t sec, int32_t nsec, char *buf, size_t cap)
{
    time_t t = (time_t)sec;
    struct tm tm;
    if (!gmtime_r(&t, &tm)) {
        snprintf(buf, cap, "1970-01-01T00:00:00.000Z");
        return;
    }
    char day[32];
    strftime(day, sizeof(day), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, cap, "%s.%03dZ", day, (int)(nsec / 1000000));
}

int64_t cli_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* --------------------------------------------------------------- buffer */

int cli_buf_append(cli_buf *b, const void *data, size_t len)
{
    if (b->len + len + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + len + 1)
            cap *= 2;
        char *d = realloc(b->data, cap);
        if (!d)
            return -1;
        b->data = d;
        b->cap = cap;
    }
    if (len)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
    return 0;
}

int cli_buf_appendf(cli_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0)
        return -1;
    int rc = cli_buf_append(b, s, (size_t)n);
    free(s);
    return rc;
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), 0 if invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    size_t need;
    unsigned min;
    if (s[0] < 0x80)
        return 1;
    if ((s[0] & 0xE0) == 0xC0)
        need = 2, min = 0x80;
    else if ((s[0] & 0xF0) == 0xE0)
        need = 3, min = 0x800;
    else if ((s[0] & 0xF8) == 0xF0)
        need = 4, min = 0x10000;
    else
        return 0;
    if (n < need)
        return 0;
    unsigned cp = s[0] & (0x7F >> need);
    for (size_t i = 1; i < need; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return need;
}

int cli_buf_json_string(cli_buf *b, const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    if (cli_buf_append(b, "\"", 1))
        return -1;
    for (size_t i = 0; i < len;) {
        size_t n = utf8_len(u + i, len - i);
        char esc[8];
        const char *out = esc;
        size_t out_len = 2;
        if (n == 0) {
            /* Not UTF-8: U+FFFD keeps the line valid JSON. */
            out = "\xEF\xBF\xBD";
            out_len = 3;
            n = 1;
        } else if (u[i] == '"' || u[i] == '\\') {
            esc[0] = '\\', esc[1] = (char)u[i];
        } else if (u[i] == '\n') {
            out = "\\n";
        } else if (u[i] == '\r') {
            out = "\\r";
        } else if (u[i] == '\t') {
            out = "\\t";
        } else if (u[i] < 0x20 || u[i] == 0x7F) {
            snprintf(esc, sizeof(esc), "\\u%04x", u[i]);
            out_len = 6;
        } else {
            out = (const char *)u + i;
            out_len = n;
        }
        if (cli_buf_append(b, out, out_len))
            return -1;
        i += n;
    }
    return cli_buf_append(b, "\"", 1);
}

void cli_buf_free(cli_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

int cli_write_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* ---------------------------------------------------------- remote paths */

int cli_split_remote(const char *arg, char **sandbox, const char **path)
{
    *sandbox = NULL;
    *path = arg;
    const char *colon = strchr(arg, ':');
    if (!colon || memchr(arg, '/', (size_t)(colon - arg)))
        return 0;
    if (colon > arg && !(*sandbox = strndup(arg, (size_t)(colon - arg))))
        return -1;
    *path = colon + 1;
    return 1;
}
