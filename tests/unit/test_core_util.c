/* The core helpers every layer shares: the growable buffer (cap and
 * truncation as command output uses it), the name/value list (exact and
 * case-insensitive upsert), owned string slots, and the bounded file
 * reader with its error texts. */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include "core/buf.h"
#include "core/error.h"
#include "core/file.h"
#include "core/kv.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void buf_grows_and_stays_terminated(void **state)
{
    (void)state;
    envd_buf b = {0}; /* zeroed: empty, no cap */
    assert_string_equal(envd_buf_str(&b), "");
    assert_int_equal(envd_buf_append(&b, NULL, 0), 0);
    assert_null(b.data);
    assert_int_equal(envd_buf_append_str(&b, "abc"), 0);
    assert_int_equal(b.len, 3);
    assert_string_equal(b.data, "abc");
    /* binary data with NULs, across many reallocations */
    char chunk[1000];
    for (size_t i = 0; i < sizeof(chunk); i++)
        chunk[i] = (char)(i % 7);
    for (int i = 0; i < 300; i++)
        assert_int_equal(envd_buf_append(&b, chunk, sizeof(chunk)), 0);
    assert_int_equal(b.len, 3 + 300 * sizeof(chunk));
    assert_true(b.cap > b.len);
    assert_int_equal(b.data[b.len], 0);
    assert_memory_equal(b.data + 3 + 299 * sizeof(chunk), chunk, sizeof(chunk));
    assert_false(b.truncated);

    envd_buf_clear(&b);
    assert_int_equal(b.len, 0);
    assert_string_equal(envd_buf_str(&b), "");
    size_t cap = b.cap;
    assert_int_equal(envd_buf_appendf(&b, "%d-%s", 42, "x"), 0);
    assert_int_equal(b.cap, cap); /* memory kept */
    assert_string_equal(b.data, "42-x");
    /* longer than appendf's stack buffer */
    char big[2000];
    memset(big, 'z', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    assert_int_equal(envd_buf_appendf(&b, "[%s]", big), 0);
    assert_int_equal(b.len, 4 + 2 + 1999);
    assert_int_equal(b.data[b.len - 1], ']');

    size_t len = 0;
    char *taken = envd_buf_take(&b, &len);
    assert_int_equal(len, 2005);
    assert_int_equal(strlen(taken), 2005);
    free(taken);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    /* an empty buffer still hands out a string */
    taken = envd_buf_take(&b, &len);
    assert_non_null(taken);
    assert_string_equal(taken, "");
    assert_int_equal(len, 0);
    free(taken);

    /* reserve: room for extra bytes and the NUL; refuses overflow */
    assert_int_equal(envd_buf_reserve(&b, 100), 0);
    assert_true(b.cap >= 101);
    assert_string_equal(b.data, "");
    assert_int_equal(envd_buf_append_str(&b, "q"), 0);
    assert_int_equal(envd_buf_reserve(&b, SIZE_MAX), -1);
    assert_int_equal(envd_buf_reserve(&b, SIZE_MAX - 1), -1);
    assert_string_equal(b.data, "q"); /* unchanged */
    envd_buf_free(&b);
    assert_null(b.data);
    envd_buf_free(&b); /* twice is fine */
}

static void buf_cap_truncates(void **state)
{
    (void)state;
    envd_buf b;
    envd_buf_init_capped(&b, 10);
    assert_int_equal(envd_buf_append_str(&b, "0123456"), 0);
    assert_false(b.truncated);
    assert_int_equal(envd_buf_append_str(&b, "789"), 0); /* exactly at the cap */
    assert_false(b.truncated);
    assert_int_equal(envd_buf_append_str(&b, "X"), 0);
    assert_true(b.truncated);
    assert_string_equal(b.data, "0123456789");
    envd_buf_clear(&b);
    assert_false(b.truncated);
    assert_int_equal(envd_buf_append_str(&b, "abcdefghijklmnop"), 0); /* cut in the middle */
    assert_true(b.truncated);
    assert_int_equal(b.len, 10);
    assert_string_equal(b.data, "abcdefghij");
    assert_int_equal(envd_buf_appendf(&b, "%s", "more"), 0);
    assert_string_equal(b.data, "abcdefghij");
    envd_buf_free(&b);
    assert_int_equal(b.has_max, 1); /* the cap setting survives free */

    /* a cap of 0 keeps nothing, but says so */
    envd_buf_init_capped(&b, 0);
    assert_int_equal(envd_buf_append_str(&b, "x"), 0);
    assert_true(b.truncated);
    assert_int_equal(b.len, 0);
    assert_null(b.data);
    envd_buf_free(&b);

    /* the uncapped init */
    envd_buf_init(&b);
    assert_false(b.has_max);
    envd_buf_free(&b);
}

static char *vformat(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = envd_strdup_vprintf(fmt, ap);
    va_end(ap);
    return s;
}

static void strdup_printf_formats(void **state)
{
    (void)state;
    char *s = envd_strdup_printf("%s://%s:%d", "http", "h", 80);
    assert_string_equal(s, "http://h:80");
    free(s);
    s = envd_strdup_printf("%s", "");
    assert_string_equal(s, "");
    free(s);
    char big[5000];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    s = envd_strdup_printf("<%s>", big);
    assert_int_equal(strlen(s), sizeof(big) + 1);
    free(s);
    s = vformat("%d/%s", 7, "x"); /* the va_list form */
    assert_string_equal(s, "7/x");
    free(s);
}

/* Past INDEX_FROM entries lookups go through the hash: they must answer as
 * a scan would, also for names that differ only in case (an environment
 * may hold PATH and Path; a case-blind lookup finds the first added). */
static size_t scan_find(const envd_kvlist *l, const char *name, envd_kv_match m)
{
    for (size_t i = 0; i < l->n; i++)
        if ((m == ENVD_KV_NOCASE ? strcasecmp(l->names[i], name) : strcmp(l->names[i], name)) == 0)
            return i;
    return l->n;
}

static void kv_many_entries_answer_as_a_scan(void **state)
{
    (void)state;
    envd_kvlist l = {0};
    char name[32];
    for (int i = 0; i < 5000; i++) {
        snprintf(name, sizeof name, i % 3 ? "Var%d" : "VAR%d", i / 2);
        assert_int_equal(envd_kvlist_set(&l, name, "v", ENVD_KV_EXACT), 0);
    }
    assert_non_null(l.slots); /* the hash is in use */
    for (int i = 0; i < 2600; i++) {
        const char *forms[] = {"Var%d", "VAR%d", "var%d"};
        for (int f = 0; f < 3; f++) {
            snprintf(name, sizeof name, forms[f], i);
            assert_int_equal(envd_kvlist_find(&l, name, ENVD_KV_EXACT),
                             scan_find(&l, name, ENVD_KV_EXACT));
            assert_int_equal(envd_kvlist_find(&l, name, ENVD_KV_NOCASE),
                             scan_find(&l, name, ENVD_KV_NOCASE));
        }
    }
    /* upserts keep one entry per name */
    size_t n = l.n;
    assert_int_equal(envd_kvlist_set(&l, "var7", "x", ENVD_KV_NOCASE), 0);
    assert_int_equal(l.n, n);
    assert_string_equal(l.values[scan_find(&l, "var7", ENVD_KV_NOCASE)], "x");
    envd_kvlist c = {0};
    assert_int_equal(envd_kvlist_copy(&c, &l), 0);
    assert_int_equal(envd_kvlist_find(&c, "Var1200", ENVD_KV_EXACT),
                     scan_find(&l, "Var1200", ENVD_KV_EXACT));
    envd_kvlist_free(&c);
    envd_kvlist_free(&l);
    assert_null(l.slots);
}

static void kv_upsert_exact_and_nocase(void **state)
{
    (void)state;
    envd_kvlist l = {0};
    assert_int_equal(envd_kvlist_find(&l, "x", ENVD_KV_EXACT), 0);
    assert_null(envd_kvlist_get(&l, "x", ENVD_KV_NOCASE));
    /* environment: case matters */
    assert_int_equal(envd_kvlist_set(&l, "PATH", "/bin", ENVD_KV_EXACT), 0);
    assert_int_equal(envd_kvlist_set(&l, "path", "/usr/bin", ENVD_KV_EXACT), 0);
    assert_int_equal(l.n, 2);
    assert_string_equal(envd_kvlist_get(&l, "PATH", ENVD_KV_EXACT), "/bin");
    assert_string_equal(envd_kvlist_get(&l, "path", ENVD_KV_EXACT), "/usr/bin");
    assert_int_equal(envd_kvlist_set(&l, "PATH", "/sbin", ENVD_KV_EXACT), 0);
    assert_int_equal(l.n, 2);
    assert_string_equal(l.values[0], "/sbin");
    envd_kvlist_free(&l);
    assert_int_equal(l.n, 0);
    assert_null(l.names);

    /* headers: case does not matter; the first spelling stays, order kept */
    for (int i = 0; i < 20; i++) { /* past the first growth */
        char name[16];
        snprintf(name, sizeof(name), "X-H%d", i);
        assert_int_equal(envd_kvlist_set(&l, name, "v", ENVD_KV_NOCASE), 0);
    }
    assert_int_equal(envd_kvlist_set(&l, "x-h3", "three", ENVD_KV_NOCASE), 0);
    assert_int_equal(l.n, 20);
    assert_string_equal(l.names[3], "X-H3");
    assert_string_equal(l.values[3], "three");
    assert_int_equal(envd_kvlist_find(&l, "X-h19", ENVD_KV_NOCASE), 19);
    assert_int_equal(envd_kvlist_find(&l, "X-h19", ENVD_KV_EXACT), 20);
    assert_int_equal(envd_kvlist_set(&l, "X-Empty", "", ENVD_KV_NOCASE), 0);
    assert_string_equal(envd_kvlist_get(&l, "x-empty", ENVD_KV_NOCASE), "");

    envd_kvlist c = {0};
    assert_int_equal(envd_kvlist_set(&c, "old", "gone", ENVD_KV_EXACT), 0);
    assert_int_equal(envd_kvlist_copy(&c, &l), 0);
    assert_int_equal(c.n, 21);
    assert_null(envd_kvlist_get(&c, "old", ENVD_KV_EXACT));
    for (size_t i = 0; i < l.n; i++) {
        assert_string_equal(c.names[i], l.names[i]);
        assert_string_equal(c.values[i], l.values[i]);
        assert_ptr_not_equal(c.values[i], l.values[i]);
    }
    envd_kvlist_free(&l);
    assert_string_equal(c.values[3], "three"); /* a real copy */
    envd_kvlist_free(&c);
}

static void str_set_replaces(void **state)
{
    (void)state;
    char *s = NULL;
    assert_int_equal(envd_str_set(&s, "one"), 0);
    assert_string_equal(s, "one");
    assert_int_equal(envd_str_set(&s, ""), 0);
    assert_string_equal(s, "");
    assert_int_equal(envd_str_set(&s, NULL), 0);
    assert_null(s);
}

static char dir[64];

static const char *write_tmp(const char *name, const void *data, size_t len)
{
    static char path[128];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(data, 1, len, fp), len);
    fclose(fp);
    return path;
}

static void file_read_bounded(void **state)
{
    (void)state;
    envd_buf b = {0};
    const char *p = write_tmp("ten", "0123456789", 10);
    assert_int_equal(envd_file_read(p, 10, &b), 0); /* exactly the limit */
    assert_int_equal(b.len, 10);
    assert_string_equal(b.data, "0123456789");
    envd_buf_clear(&b);
    assert_int_equal(envd_file_read(p, 9, &b), EFBIG);
    assert_int_equal(b.len, 0);
    assert_int_equal(envd_file_read(p, SIZE_MAX, &b), 0); /* no practical bound */
    assert_int_equal(b.len, 10);
    /* appends after what the buffer held; an error leaves that alone */
    assert_int_equal(envd_file_read(p, 10, &b), 0);
    assert_string_equal(b.data, "01234567890123456789");
    assert_int_equal(envd_file_read(p, 5, &b), EFBIG);
    assert_string_equal(b.data, "01234567890123456789");
    envd_buf_free(&b);

    /* empty, and larger than one read chunk, with NUL bytes */
    p = write_tmp("empty", "", 0);
    assert_int_equal(envd_file_read(p, 0, &b), 0);
    assert_int_equal(b.len, 0);
    envd_buf_free(&b);
    size_t n = 200000;
    char *big = malloc(n);
    assert_non_null(big);
    for (size_t i = 0; i < n; i++)
        big[i] = (char)(i * 31);
    p = write_tmp("big", big, n);
    assert_int_equal(envd_file_read(p, n, &b), 0);
    assert_int_equal(b.len, n);
    assert_memory_equal(b.data, big, n);
    assert_int_equal(b.data[n], 0);
    envd_buf_free(&b);
    assert_int_equal(envd_file_read(p, n - 1, &b), EFBIG);
    envd_buf_free(&b);
    free(big);

    /* an endless file stops at the bound */
    assert_int_equal(envd_file_read("/dev/zero", 100000, &b), EFBIG);
    envd_buf_free(&b);
    assert_int_equal(envd_file_read(dir, 100, &b), EISDIR);
    char missing[128];
    snprintf(missing, sizeof(missing), "%s/missing", dir);
    assert_int_equal(envd_file_read(missing, 100, &b), ENOENT);
    assert_int_equal(b.len, 0);
    assert_string_equal(envd_buf_str(&b), "");
    envd_buf_free(&b);
}

static void file_read_errors_name_the_file(void **state)
{
    (void)state;
    envd_buf b = {0};
    envd_error *err = NULL;
    char missing[128], want[200];
    snprintf(missing, sizeof(missing), "%s/missing", dir);
    assert_int_equal(envd_file_read_err(missing, 100, &b, &err), ENVD_E_IO);
    snprintf(want, sizeof(want), "%s: No such file or directory", missing);
    assert_string_equal(envd_error_message(err), want);
    envd_error_free(err);
    err = NULL;
    assert_int_equal(envd_file_read_err("/dev/zero", 4096, &b, &err), ENVD_E_IO);
    assert_string_equal(envd_error_message(err), "/dev/zero: larger than the 4096-byte limit");
    envd_error_free(err);
    assert_int_equal(envd_file_read_err(missing, 100, &b, NULL), ENVD_E_IO); /* err optional */
    const char *p = write_tmp("ok", "fine\n", 5);
    err = NULL;
    assert_int_equal(envd_file_read_err(p, 100, &b, &err), ENVD_OK);
    assert_null(err);
    assert_string_equal(b.data, "fine\n");
    envd_buf_free(&b);
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/envd-core-XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(buf_grows_and_stays_terminated),
        cmocka_unit_test(buf_cap_truncates),
        cmocka_unit_test(strdup_printf_formats),
        cmocka_unit_test(kv_upsert_exact_and_nocase),
        cmocka_unit_test(kv_many_entries_answer_as_a_scan),
        cmocka_unit_test(str_set_replaces),
        cmocka_unit_test(file_read_bounded),
        cmocka_unit_test(file_read_errors_name_the_file),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
