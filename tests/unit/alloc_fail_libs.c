/* The libraries' allocations on the library's seam, for test_alloc_fail_libs
 * (test_alloc_fail.c built with ENVD_ALLOC_FAIL_LIBS): libcurl's, jansson's
 * and libyaml's allocations go through envd_malloc and friends, so that the
 * one countdown armed by envd_alloc_test_fail fails the k-th allocation
 * whoever makes it.
 *
 * - libcurl: curl_global_init_mem, before the library's own
 *   curl_global_init (which then only counts a reference and keeps these).
 * - jansson: json_set_alloc_funcs, except inside json_loadb (wrapped with
 *   --wrap): jansson 2.14's decoder cannot survive a failed allocation.
 *   Its lexer drops the byte it could not save (lex_save ignores
 *   strbuffer_append_byte's result, load.c), so a string decodes with a byte
 *   missing and is reported as success, an escape whose letter was dropped
 *   hits `default: assert(0)` in lex_scan_string, and a string whose closing
 *   quote was dropped is read past its end; a failed string copy comes back
 *   as the syntax error "invalid token". Encoding and building documents
 *   (json_object_set_new, json_dumps...) report failures properly and are
 *   failed here. One failure the decoder survives, its first allocation
 *   (lex_init, before a byte is read), is made on demand by
 *   alloc_fail_libs_decoder_fails.
 * - libyaml: no allocator hooks, but libyaml.so calls its yaml_malloc,
 *   yaml_realloc and yaml_strdup through the PLT (objdump: 57, 3 and 21
 *   calls), so definitions in this executable, exported, replace them for
 *   the whole of libyaml.
 *
 * Not reached: OpenSSL's allocations under libcurl's TLS (its own
 * allocator), gRPC core's (gpr_malloc aborts on NULL by design: only
 * Connect operations run in this mode), libc's internal ones. */
#include "core/alloc.h"

#include <curl/curl.h>
#include <jansson.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <yaml.h>

/* >0 on a thread inside json_loadb: jansson's allocations there use plain
 * malloc, not counted */
static _Thread_local int decoding;
/* 1: the next json_loadb fails its first allocation (lex_init's, before a
 * byte is read: a failure jansson survives) */
static atomic_int decoder_fails;
static _Thread_local int fail_this_decode;

void alloc_fail_libs_decoder_fails(void);
void alloc_fail_libs_decoder_fails(void) { atomic_store(&decoder_fails, 1); }

static void *json_alloc(size_t n)
{
    if (fail_this_decode) {
        fail_this_decode = 0;
        return NULL;
    }
    return decoding ? malloc(n) : envd_malloc(n);
}

json_t *__real_json_loadb(const char *buf, size_t len, size_t flags, json_error_t *err);
json_t *__wrap_json_loadb(const char *buf, size_t len, size_t flags, json_error_t *err);

json_t *__wrap_json_loadb(const char *buf, size_t len, size_t flags, json_error_t *err)
{
    decoding++;
    fail_this_decode = atomic_exchange(&decoder_fails, 0);
    json_t *j = __real_json_loadb(buf, len, flags, err);
    fail_this_decode = 0;
    decoding--;
    return j;
}

/* libyaml's own allocators (yaml_private.h), with its size-0 rule */
void *yaml_malloc(size_t size);
void *yaml_realloc(void *p, size_t size);
unsigned char *yaml_strdup(const unsigned char *s);

void *yaml_malloc(size_t size) { return envd_malloc(size ? size : 1); }

void *yaml_realloc(void *p, size_t size) { return envd_realloc(p, size ? size : 1); }

unsigned char *yaml_strdup(const unsigned char *s)
{
    return s ? (unsigned char *)envd_strdup((const char *)s) : NULL;
}

/* 1 when the next allocation of `what` fails (the hook reaches it). */
static int reaches(int (*what)(void))
{
    envd_alloc_test_fail(1);
    int failed = what();
    int fired = envd_alloc_test_fired();
    envd_alloc_test_fail(0);
    return failed && fired;
}

static int curl_fails(void)
{
    struct curl_slist *l = curl_slist_append(NULL, "X-A: b");
    curl_slist_free_all(l);
    return l == NULL;
}

static int jansson_fails(void)
{
    json_t *j = json_object();
    json_decref(j);
    return j == NULL;
}

static int yaml_fails(void)
{
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p))
        return 1;
    yaml_parser_delete(&p);
    return 0;
}

/* 0 when the hooks are in place and reach each library (checked: each
 * fails an allocation when armed, and the decoder does not); to be called
 * before anything else uses the libraries. */
int alloc_fail_libs_install(void);

int alloc_fail_libs_install(void)
{
    json_set_alloc_funcs(json_alloc, free);
    if (curl_global_init_mem(CURL_GLOBAL_DEFAULT, envd_malloc, free, envd_realloc, envd_strdup,
                             envd_calloc) != CURLE_OK)
        return -1;
    envd_alloc_test_fail(1);
    json_t *j = json_loadb("[\"a long enough string\"]", 24, 0, NULL);
    int decoder_failed = envd_alloc_test_fired() || !j;
    envd_alloc_test_fail(0);
    json_decref(j);
    return reaches(curl_fails) && reaches(jansson_fails) && reaches(yaml_fails) && !decoder_failed
               ? 0
               : -1;
}
