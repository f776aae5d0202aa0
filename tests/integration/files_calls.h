/* Single-file transfers composed from the 0.2 /files API the way a caller
 * writes them: an fd or callback upload is a batch of one, an fd or
 * callback download is a read with that sink in the options, a per-call
 * user is an option. Header-only (static inline); used by the /files tests
 * and the bench. */
#ifndef ENVD_FILES_CALLS_H
#define ENVD_FILES_CALLS_H

#include "envd/envd.h"

#include <stddef.h>

/* Starts (f != NULL) or runs one write of the batch b, then frees b. */
static inline envd_status fc_write(envd_client *c, envd_write_batch *b, envd_status added,
                                   const envd_files_opts *o, envd_write_info **wi,
                                   envd_future **f, envd_error **err)
{
    envd_status st = added;
    if (err)
        *err = NULL;
    if (wi)
        *wi = NULL;
    if (f)
        *f = NULL;
    if (st == ENVD_OK)
        st = f ? envd_files_write_batch_async(c, b, o, f)
               : envd_files_write_batch(c, b, o, wi, err);
    envd_write_batch_free(b);
    return st;
}

static inline envd_status write_fd(envd_client *c, const char *path, int fd, int64_t size,
                                   const envd_files_opts *o, envd_write_info **wi,
                                   envd_error **err)
{
    envd_write_batch *b = envd_write_batch_new();
    return fc_write(c, b, envd_write_batch_add_fd(b, path, fd, size), o, wi, NULL, err);
}

static inline envd_status write_cb(envd_client *c, const char *path, envd_read_cb cb, void *ud,
                                   int64_t size, const envd_files_opts *o, envd_write_info **wi,
                                   envd_error **err)
{
    envd_write_batch *b = envd_write_batch_new();
    return fc_write(c, b, envd_write_batch_add_stream(b, path, cb, ud, size), o, wi, NULL, err);
}

static inline envd_status write_fd_async(envd_client *c, const char *path, int fd, int64_t size,
                                         const envd_files_opts *o, envd_future **f)
{
    envd_write_batch *b = envd_write_batch_new();
    return fc_write(c, b, envd_write_batch_add_fd(b, path, fd, size), o, NULL, f, NULL);
}

static inline envd_status write_cb_async(envd_client *c, const char *path, envd_read_cb cb,
                                         void *ud, int64_t size, const envd_files_opts *o,
                                         envd_future **f)
{
    envd_write_batch *b = envd_write_batch_new();
    return fc_write(c, b, envd_write_batch_add_stream(b, path, cb, ud, size), o, NULL, f, NULL);
}

/* data must stay valid until f completes. */
static inline envd_status write_mem_async(envd_client *c, const char *path, const void *data,
                                          size_t len, const envd_files_opts *o, envd_future **f)
{
    envd_write_batch *b = envd_write_batch_new();
    return fc_write(c, b, envd_write_batch_add(b, path, data, len), o, NULL, f, NULL);
}

/* Reads with a sink set on o (or on fresh options when o is NULL); o's sink
 * goes back to memory after. f != NULL: starts it instead. */
static inline envd_status fc_read(envd_client *c, const char *path, int fd, envd_data_cb cb,
                                  void *ud, envd_files_opts *o, envd_future **f, envd_error **err)
{
    envd_files_opts *own = o ? NULL : envd_files_opts_new();
    envd_files_opts *use = o ? o : own;
    envd_status st =
        cb ? envd_files_opts_set_sink(use, cb, ud) : envd_files_opts_set_sink_fd(use, fd);
    if (err)
        *err = NULL;
    if (f)
        *f = NULL;
    if (st == ENVD_OK) {
        if (f) {
            st = envd_files_read_async(c, path, use, f);
        } else {
            uint8_t *d = NULL;
            size_t n = 0;
            st = envd_files_read(c, path, use, &d, &n, err);
        }
    }
    envd_files_opts_set_sink(use, NULL, NULL);
    envd_files_opts_free(own);
    return st;
}

static inline envd_status read_fd(envd_client *c, const char *path, int fd, envd_files_opts *o,
                                  envd_error **err)
{
    return fc_read(c, path, fd, NULL, NULL, o, NULL, err);
}

static inline envd_status read_cb(envd_client *c, const char *path, envd_data_cb cb, void *ud,
                                  envd_files_opts *o, envd_error **err)
{
    return fc_read(c, path, -1, cb, ud, o, NULL, err);
}

static inline envd_status read_fd_async(envd_client *c, const char *path, int fd,
                                        envd_files_opts *o, envd_future **f)
{
    return fc_read(c, path, fd, NULL, NULL, o, f, NULL);
}

static inline envd_status read_cb_async(envd_client *c, const char *path, envd_data_cb cb,
                                        void *ud, envd_files_opts *o, envd_future **f)
{
    return fc_read(c, path, -1, cb, ud, o, f, NULL);
}

/* Options holding just a user (NULL for NULL); free with envd_files_opts_free. */
static inline envd_files_opts *user_opts(const char *user)
{
    envd_files_opts *o = user ? envd_files_opts_new() : NULL;
    if (o)
        envd_files_opts_set_user(o, user);
    return o;
}

static inline envd_status read_as(envd_client *c, const char *path, const char *user,
                                  uint8_t **data, size_t *len, envd_error **err)
{
    envd_files_opts *o = user_opts(user);
    envd_status st = envd_files_read(c, path, o, data, len, err);
    envd_files_opts_free(o);
    return st;
}

static inline envd_status write_as(envd_client *c, const char *path, const void *data, size_t len,
                                   const char *user, envd_error **err)
{
    envd_files_opts *o = user_opts(user);
    envd_status st = envd_files_write(c, path, data, len, o, NULL, err);
    envd_files_opts_free(o);
    return st;
}

#endif
