/* What the /files sources share (files_opts.c, files_read.c, files_write.c,
 * files_xfer.c): the options, upload sources, and the transfer operation
 * that turns one HTTP request into one future. */
#ifndef ENVD_API_FILES_INTERNAL_H
#define ENVD_API_FILES_INTERNAL_H

#include "api/op.h"
#include "core/buf.h"
#include "core/kv.h"

enum { ENVD_SINK_MEM, ENVD_SINK_FD, ENVD_SINK_CB };

struct envd_files_opts {
    char *user;
    int gzip;
    int octet;
    envd_kvlist meta; /* X-Metadata-<name>: value, names case-insensitive */
    int has_range;
    int64_t range_off, range_len;
    envd_progress_cb progress;
    void *progress_ud;
    int idle_set;
    int64_t idle_timeout_ms;
    int64_t timeout_ms;
    int sink; /* ENVD_SINK_* */
    int sink_fd;
    envd_data_cb sink_cb;
    void *sink_ud;
    int parts;        /* writes: at most this many parallel parts (< 2: off) */
    int64_t part_min; /* ... each at least this many bytes */
};

/* The defaults, for o == NULL. */
extern const envd_files_opts envd_files_opts_default;

enum { ENVD_SRC_MEM, ENVD_SRC_FD, ENVD_SRC_CB };

/* One file to upload. path is owned by whoever holds the source. */
typedef struct envd_files_src {
    char *path;
    int kind;
    const uint8_t *data; /* MEM */
    int fd;              /* FD */
    int pread;           /* FD: pread(2) from `at` on, the fd's offset untouched */
    int64_t at;
    envd_read_cb cb;     /* CB */
    void *ud;
    int64_t size; /* -1: unknown, read to the end */
} envd_files_src;

struct envd_write_batch {
    envd_files_src *items;
    size_t n, cap;
};

typedef struct files_xfer files_xfer;

/* A source as the transport reads it: the transfer and which file. */
typedef struct files_reader {
    files_xfer *x;
    const envd_files_src *s;
    size_t off; /* memory sources: bytes taken so far */
} files_reader;

struct files_xfer {
    envd_op op; /* first: lifetime, slot, stop, cancel hooks */
    envd_future *f;
    _Atomic(envd_http *) http; /* the work envd_op_stop cancels */

    char *what; /* the path, or "(N files)", for messages */
    int is_read;
    envd_files_opts o; /* copied scalars: sink, progress (no owned strings) */
    int64_t content_length;

    /* Response body kept in memory, capped by on_status: the file (memory
     * sink), a write's reply, or an error excerpt. */
    envd_buf body;

    envd_files_src *srcs; /* writes: our copies (paths owned) */
    files_reader *readers;
    size_t n_srcs;

    int64_t moved, reported; /* file bytes, for progress and results */
    int status;
    int body_ok;
    int error_kept; /* an error reply's body was read as far as it is kept */
    int stopped_by_cb;
    envd_error *local_err; /* a local failure (source, sink, limit) that stopped it */
    struct envd_traffic *traffic; /* a reference, to report a 401 (api/traffic.h) */
    uint64_t traffic_gen;
    int compose; /* POST /files/compose: a JSON reply of one entry */

    /* A read's next attempt (the one retry rule, op.h): the request as
     * built, the client (a reference), and the reply's Retry-After. */
    envd_client *c;
    char *target;
    struct req_headers *hd;
    int64_t started_ms;
    int64_t retry_after_ms;
    int attempts;
};

typedef struct files_args {
    const char *path; /* a read, or a write of one file (query path=) */
    int is_read;
    const envd_files_src *srcs; /* writes */
    size_t n_srcs;
    /* POST /files/compose: this JSON body (path = the destination, for
     * messages) instead of /files with sources. */
    const char *compose_json;
    /* Runs under an in-flight slot its caller holds (a parallel upload's
     * steps, files_parallel.c): takes none of its own. */
    int no_slot;
} files_args;

/* Starts a read or write. *out is NULL on every error path. */
envd_status envd_files_xfer_start(envd_client *c, const files_args *a, const envd_files_opts *o,
                                  envd_future **out);

/* Records the first local failure of x (kept over the transport's error). */
void envd_files_fail(files_xfer *x, envd_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Appends to x->body (up to its cap); -1 on OOM, with x's error set. */
int envd_files_keep(files_xfer *x, const uint8_t *d, size_t n);
void envd_files_progress(files_xfer *x, int64_t total);

/* files_read.c: the read side of a transfer (I/O thread). */
int envd_files_on_status_read(files_xfer *x, int64_t content_length);
int envd_files_sink(files_xfer *x, const uint8_t *d, size_t n);
void *envd_files_read_result(files_xfer *x, envd_free_fn *free_fn);

/* files_write.c: the write side. */
size_t envd_files_src_read(void *ud, uint8_t *buf, size_t cap); /* an envd_http_part read */
void envd_files_srcs_free(envd_files_src *s, size_t n);
void *envd_files_write_result(files_xfer *x, envd_free_fn *free_fn);
/* The rest of a regular file from fd's offset, or -1. */
int64_t envd_files_fd_remaining(int fd);
int64_t envd_files_write_info_bytes(const envd_future *f);

/* Starters behind the blocking rows of sync.c that have no _async of their
 * own: one file from memory (a batch of one), and a string. */
envd_status envd_files_write_one(envd_client *c, const char *path, const void *data, size_t len,
                                 const envd_files_opts *o, envd_future **out);
envd_status envd_files_write_text_start(envd_client *c, const char *path, const char *text,
                                        const envd_files_opts *o, envd_future **out);
/* files_compose.c: envd_files_compose_async, with no_slot (files_args). */
envd_status envd_files_compose_start(envd_client *c, const char *const *sources, size_t n,
                                     const char *destination, const envd_files_opts *o,
                                     int no_slot, envd_future **out);

/* files_parallel.c: a write of one file in parts uploaded at once and
 * composed (envd_files_opts_set_parallel). applies: the source is one the
 * options split (memory, or a regular file's fd), big enough, and the
 * server has /files/compose. */
int envd_files_parallel_applies(const envd_client *c, const envd_files_src *s,
                                const envd_files_opts *o);
envd_status envd_files_parallel_start(envd_client *c, const envd_files_src *s,
                                      const envd_files_opts *o, envd_future **out);
/* Sets the byte count envd_future_transferred reports for a write result. */
void envd_files_write_info_set_bytes(envd_write_info *w, int64_t bytes);

/* A finished read's result (ENVD_FK_BYTES or ENVD_FK_TRANSFER) into the
 * blocking form's outputs; frees r. */
void envd_files_read_out(void *r, int kind, uint8_t **data, size_t *len);

#endif
