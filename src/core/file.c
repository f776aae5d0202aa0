/* Bounded whole-file reads: see file.h. */
#include "core/file.h"
#include "core/error.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

int envd_file_read(const char *path, size_t max, envd_buf *out)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return errno ? errno : EIO;
    size_t start = out->len;
    int rc = 0;
    for (;;) {
        /* one byte more than allowed tells "exactly max" from "too large" */
        size_t left = max - (out->len - start);
        size_t chunk = left < 65536 ? left + 1 : 65536;
        if (envd_buf_reserve(out, chunk) != 0) {
            rc = ENOMEM;
            break;
        }
        size_t got = fread(out->data + out->len, 1, chunk, fp);
        out->len += got;
        out->data[out->len] = 0;
        if (out->len - start > max) {
            rc = EFBIG;
            break;
        }
        if (got < chunk) {
            if (ferror(fp))
                rc = errno ? errno : EIO;
            break;
        }
    }
    fclose(fp);
    if (rc && out->data) {
        out->len = start;
        out->data[start] = 0;
    }
    return rc;
}

envd_status envd_file_read_err(const char *path, size_t max, envd_buf *out, envd_error **err)
{
    int e = envd_file_read(path, max, out);
    if (e == 0)
        return ENVD_OK;
    envd_status st = e == ENOMEM ? ENVD_E_NOMEM : ENVD_E_IO;
    if (err && e == EFBIG)
        *err = envd_error_new(st, ENVD_TRANSPORT_NONE, 0, "%s: larger than the %zu-byte limit",
                              path, max);
    else if (err)
        *err = envd_error_new(st, ENVD_TRANSPORT_NONE, 0, "%s: %s", path, strerror(e));
    return st;
}
