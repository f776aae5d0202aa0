/* The code interpreter's execution stream (NDJSON: one JSON event per line),
 * read incrementally with a cap on the line length, each line turned into
 * an envd_code_event for a callback. No I/O here: the HTTP transfer feeds
 * it (code.c), and so do the unit tests and the fuzz target, in any cuts. */
#ifndef ENVD_API_CODE_STREAM_H
#define ENVD_API_CODE_STREAM_H

#include "core/buf.h"
#include "core/error.h"
#include "envd/envd_code.h"

#include <stdint.h>

typedef struct envd_code_reader {
    envd_buf line;   /* the part of a line seen so far */
    size_t max_line; /* bytes, without the newline */
    uint64_t lineno; /* lines completed, for messages */
    int ended;       /* end_of_execution seen */
    envd_code_event_cb cb;
    void *ud;
    envd_error *err; /* why the reader stopped */
} envd_code_reader;

void envd_code_reader_init(envd_code_reader *r, size_t max_line, envd_code_event_cb cb, void *ud);
/* Feeds the next bytes of the stream. 0 to go on; -1 when the stream must
 * stop: r->err says why (a line over the cap, a malformed event, data after
 * end_of_execution, out of memory, or ENVD_CANCELED when cb returned
 * non-zero). After -1 further calls return -1 and do nothing. */
int envd_code_reader_feed(envd_code_reader *r, const uint8_t *data, size_t len);
/* The body ended: a last line without newline is taken, then a stream that
 * never sent end_of_execution is an error (ENVD_E_PROTOCOL). 0 or -1. */
int envd_code_reader_finish(envd_code_reader *r);
/* Frees the buffer and any error left. */
void envd_code_reader_done(envd_code_reader *r);

/* One line (without its newline) as an event for cb. 1 when cb ran and
 * went on, 0 for a line that is skipped (blank, or a type this library
 * does not know: the server's keepalive), -1 on error (*err set; ENVD_CANCELED
 * when cb returned non-zero). *end is set to 1 for end_of_execution. */
int envd_code_line_dispatch(const char *line, size_t len, envd_code_event_cb cb, void *ud,
                            int *end, envd_error **err);

#endif
