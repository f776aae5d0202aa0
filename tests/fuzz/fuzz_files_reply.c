/* The reply to a /files upload (api/files_write.c): envd's JSON array of
 * written entries, or anything a gateway or a hostile server sends in its
 * place. Whatever the body, the result is envd's entries or the Go
 * client's fallback (the paths that were written), every string set. The
 * first byte picks how many files were sent (1..4) and whether the body
 * was cut at its cap. */
#include "fuzz_util.h"

#include "api/files_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t n_srcs = (size_t)(data[0] & 3) + 1;
    int cut = (data[0] & 4) != 0;
    static char *paths[4] = {"/a", "/tmp/b/", "/", "c"};
    envd_files_src srcs[4] = {{0}};
    for (size_t i = 0; i < n_srcs; i++)
        srcs[i].path = paths[i];
    files_xfer x;
    memset(&x, 0, sizeof x);
    envd_buf_init(&x.body);
    if (envd_buf_append(&x.body, data + 1, size - 1) != 0)
        return 0;
    x.body.truncated = cut;
    x.srcs = srcs;
    x.n_srcs = n_srcs;
    x.moved = (int64_t)size;
    envd_free_fn free_fn = NULL;
    envd_write_info *w = envd_files_write_result(&x, &free_fn);
    if (w) {
        FUZZ_CHECK(free_fn != NULL);
        FUZZ_CHECK(w->count > 0);
        for (size_t i = 0; i < w->count; i++)
            FUZZ_CHECK(w->items[i].path && w->items[i].name && w->items[i].type);
        free_fn(w);
    }
    envd_buf_free(&x.body);
    return 0;
}
